//! Policies over scans (DESIGN §5): a policy is a rule document with `kind: policy`, in the
//! same detection language as event rules. Each finding, with its component, becomes an event
//! whose original record is the finding's document (below), so the rule matcher judges it
//! unchanged; a policy that names no `finding.` field (a license deny list) judges each
//! component once instead, so it is not raised once per vulnerability of the component.
//!
//! The document a policy reads:
//! ```json
//! {"app": {"name": "shop", "stage": "build", "owners": ["team-a"], "criticality": "high"},
//!  "component": {"purl": "pkg:npm/left-pad@1.0.0", "name": "left-pad", "version": "1.0.0",
//!                "ecosystem": "npm", "licenses": ["MIT"]},
//!  "license": ["MIT"],
//!  "finding": {"id": "CVE-2024-1", "aliases": ["CVE-2024-1", "GHSA-x"], "severity": "high",
//!              "cvss": 7.5, "fixed": true, "fixed_versions": ["1.0.1"], "title": "...",
//!              "location": "/app/package-lock.json", "scanners": ["grype"]},
//!  "scan": {"scanned_at": "2026-12-03T10:00:00Z"}}
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::scan::AppSpec;
use crate::event::{Event, Field, Original, Sym, Timestamp};
use crate::parse::scan::{Component, Finding, Report, Severity};
use crate::rule::Rule;
use crate::scan::store::Scan;

/// `event.dataset` of the events policies judge.
pub const DATASET: &str = "scan";

/// What a violation says, compared between evaluations to tell a changed one from the same.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Details {
    /// The finding's severity (none for a component policy).
    pub severity: Option<Severity>,
    /// The finding's CVSS base score.
    pub cvss: Option<f64>,
    /// Versions that fix it.
    pub fixed: Vec<String>,
    /// The component's licenses.
    pub licenses: Vec<String>,
}

impl Details {
    /// The names of what differs from `before`: `severity`, `cvss`, `fixed`, `licenses`.
    pub fn changed_from(&self, before: &Details) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.severity != before.severity {
            out.push("severity");
        }
        if self.cvss != before.cvss {
            out.push("cvss");
        }
        if self.fixed != before.fixed {
            out.push("fixed");
        }
        if self.licenses != before.licenses {
            out.push("licenses");
        }
        out
    }
}

/// One policy's verdict on one finding (or component) of one application stage.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The policy's id.
    pub policy: String,
    /// The application.
    pub app: String,
    /// The stage.
    pub stage: String,
    /// The component's purl.
    pub purl: String,
    /// The vulnerability id; empty for a component policy.
    pub id: String,
    /// Every id the vulnerability is known by.
    pub aliases: Vec<String>,
    /// What it says now.
    pub details: Details,
    /// What was judged, in the report judged: its document is built only when needed.
    pub at: Judged,
}

/// Where in a report a violation was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judged {
    /// `report.findings[i]`.
    Finding(usize),
    /// The i-th component judged (the report's components, then those only its findings
    /// name, see [`components`]).
    Component(usize),
}

/// Whether `policy` judges findings (it names a `finding.` field, or `message` and
/// `event.original`, which are a finding's text) rather than components.
pub fn judges_findings(policy: &Rule) -> bool {
    policy.fields().iter().any(|f| match f {
        Field::Original(path) => path == "finding" || path.starts_with("finding."),
        Field::Message | Field::OriginalText => true,
        _ => false,
    })
}

/// The leaves of the document, in the order [`Wanted`] keeps them.
const LEAVES: [&str; 20] = [
    "app.name",
    "app.stage",
    "app.owners",
    "app.criticality",
    "component.purl",
    "component.name",
    "component.version",
    "component.ecosystem",
    "component.licenses",
    "license",
    "finding.id",
    "finding.aliases",
    "finding.severity",
    "finding.cvss",
    "finding.fixed",
    "finding.fixed_versions",
    "finding.title",
    "finding.location",
    "finding.scanners",
    "scan.scanned_at",
];

/// Which leaves a document needs: all of them for a notice, only what the policies read
/// for judging (building the whole document for each of half a million findings, to read
/// one field, was most of a re-evaluation's time).
#[derive(Clone, Copy, Debug)]
pub struct Wanted([bool; LEAVES.len()]);

impl Wanted {
    /// Every leaf.
    pub const ALL: Wanted = Wanted([true; LEAVES.len()]);

    /// The leaves `policies` read; every leaf if one reads a path outside the document's
    /// known leaves or matches keywords anywhere in it.
    pub fn of(policies: &[&Rule]) -> Wanted {
        let mut w = [false; LEAVES.len()];
        for p in policies {
            if p.reads_keywords() {
                return Wanted::ALL;
            }
            for f in p.fields() {
                let path = match f {
                    Field::Original(path) => path,
                    // The message is the title, id or purl; the original is all of it.
                    Field::Message | Field::OriginalText => return Wanted::ALL,
                    _ => continue,
                };
                let mut known = false;
                for (i, leaf) in LEAVES.iter().enumerate() {
                    let within = |a: &str, b: &str| {
                        a == b || (a.starts_with(b) && a.as_bytes().get(b.len()) == Some(&b'.'))
                    };
                    if within(path, leaf) || within(leaf, path) {
                        w[i] = true;
                        known = true;
                    }
                }
                if !known {
                    return Wanted::ALL;
                }
            }
        }
        Wanted(w)
    }

    fn has(&self, leaf: &str) -> bool {
        LEAVES.iter().position(|l| *l == leaf).is_some_and(|i| self.0[i])
    }
}

/// The document a policy reads for `component` (and `finding`, if any) of `scan`, with the
/// leaves `want` names.
pub fn subject(
    app: &AppSpec,
    scan: &Scan,
    component: &Component,
    finding: Option<&Finding>,
    want: &Wanted,
) -> Value {
    let mut doc = Map::new();
    let mut a = Map::new();
    if want.has("app.name") {
        a.insert("name".into(), json!(app.name));
    }
    if want.has("app.stage") {
        a.insert("stage".into(), json!(scan.stage));
    }
    if want.has("app.owners") {
        a.insert("owners".into(), json!(app.owners));
    }
    if let Some(c) = app.criticality.filter(|_| want.has("app.criticality")) {
        a.insert("criticality".into(), json!(c.as_str()));
    }
    if !a.is_empty() {
        doc.insert("app".into(), Value::Object(a));
    }
    let mut c = Map::new();
    if want.has("component.purl") {
        c.insert("purl".into(), json!(component.purl));
    }
    if want.has("component.name") {
        c.insert("name".into(), json!(component.name));
    }
    if want.has("component.version") {
        c.insert("version".into(), json!(component.version));
    }
    if want.has("component.ecosystem") {
        c.insert("ecosystem".into(), json!(component.ecosystem));
    }
    if want.has("component.licenses") {
        c.insert("licenses".into(), json!(component.licenses));
    }
    if !c.is_empty() {
        doc.insert("component".into(), Value::Object(c));
    }
    if want.has("license") {
        doc.insert("license".into(), json!(component.licenses));
    }
    if let Some(f) = finding {
        let mut m = Map::new();
        if want.has("finding.id") {
            m.insert("id".into(), json!(f.id));
        }
        if want.has("finding.aliases") {
            m.insert("aliases".into(), json!(f.aliases));
        }
        if want.has("finding.severity") {
            m.insert("severity".into(), json!(f.severity.as_str()));
        }
        if let Some(c) = f.cvss.filter(|_| want.has("finding.cvss")) {
            m.insert("cvss".into(), json!(c));
        }
        if want.has("finding.fixed") {
            m.insert("fixed".into(), json!(!f.fixed.is_empty()));
        }
        if want.has("finding.fixed_versions") {
            m.insert("fixed_versions".into(), json!(f.fixed));
        }
        if let Some(t) = f.title.as_ref().filter(|_| want.has("finding.title")) {
            m.insert("title".into(), json!(t));
        }
        if let Some(l) = f.location.as_ref().filter(|_| want.has("finding.location")) {
            m.insert("location".into(), json!(l));
        }
        if want.has("finding.scanners") {
            m.insert("scanners".into(), json!(f.scanners));
        }
        doc.insert("finding".into(), Value::Object(m));
    }
    if want.has("scan.scanned_at") {
        doc.insert("scan".into(), json!({ "scanned_at": scan.scanned_at }));
    }
    Value::Object(doc)
}

/// The event policies match `doc` as, at `at`.
pub fn event(doc: Value, at: Timestamp) -> Event {
    let message = doc
        .pointer("/finding/title")
        .or_else(|| doc.pointer("/finding/id"))
        .or_else(|| doc.pointer("/component/purl"))
        .and_then(Value::as_str)
        .map(Box::from);
    Event {
        timestamp: at,
        dataset: Some(Sym::from_static(DATASET)),
        message,
        original: Some(Original::with_value(doc.to_string().into_boxed_str(), doc)),
        ..Event::default()
    }
}

/// `items` sorted without repeats: compared as a set, so another order from another
/// advisory file is not a change.
fn sorted(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

/// The components a report's component policies judge: its components, then those only its
/// findings name.
pub fn components(report: &Report) -> Vec<&Component> {
    let mut out: Vec<&Component> = report.components.iter().collect();
    let mut seen: HashSet<&str> = out.iter().map(|c| c.purl.as_str()).collect();
    for f in &report.findings {
        if seen.insert(&f.component.purl) {
            out.push(&f.component);
        }
    }
    out
}

/// The whole document of violation `v` found in `report` of `scan`, as JSON text.
pub fn document(app: &AppSpec, scan: &Scan, report: &Report, v: &Violation) -> Arc<str> {
    let doc = match v.at {
        Judged::Finding(i) => {
            report.findings.get(i).map(|f| subject(app, scan, &f.component, Some(f), &Wanted::ALL))
        }
        Judged::Component(i) => {
            components(report).get(i).map(|c| subject(app, scan, c, None, &Wanted::ALL))
        }
    };
    Arc::from(doc.unwrap_or_default().to_string())
}

/// Every violation `policies` find in `report` (a stored scan's findings, or its
/// re-evaluation), in policy order, then component, then finding order.
pub fn judge(policies: &[&Rule], app: &AppSpec, scan: &Scan, report: &Report) -> Vec<Violation> {
    // The time only reaches `@timestamp`, which policies have no reason to read.
    let at = Timestamp(0);
    let want = Wanted::of(policies);
    let (on_findings, on_components): (Vec<&Rule>, Vec<&Rule>) =
        policies.iter().partition(|p| judges_findings(p));
    let mut out = Vec::new();
    if !on_findings.is_empty() {
        for (i, f) in report.findings.iter().enumerate() {
            let e = event(subject(app, scan, &f.component, Some(f), &want), at);
            for p in &on_findings {
                if p.matches(&e) {
                    out.push(Violation {
                        policy: p.id.clone(),
                        app: scan.app.clone(),
                        stage: scan.stage.clone(),
                        purl: f.component.purl.clone(),
                        id: f.id.clone(),
                        aliases: f.aliases.clone(),
                        // Licenses are not a vulnerability's details: an SBOM adding them
                        // must not re-notify every vulnerability of the component.
                        details: Details {
                            severity: Some(f.severity),
                            cvss: f.cvss,
                            fixed: sorted(&f.fixed),
                            licenses: Vec::new(),
                        },
                        at: Judged::Finding(i),
                    });
                }
            }
        }
    }
    if !on_components.is_empty() {
        for (i, c) in components(report).into_iter().enumerate() {
            let e = event(subject(app, scan, c, None, &want), at);
            for p in &on_components {
                if p.matches(&e) {
                    out.push(Violation {
                        policy: p.id.clone(),
                        app: scan.app.clone(),
                        stage: scan.stage.clone(),
                        purl: c.purl.clone(),
                        id: String::new(),
                        aliases: Vec::new(),
                        details: Details { licenses: sorted(&c.licenses), ..Details::default() },
                        at: Judged::Component(i),
                    });
                }
            }
        }
    }
    // Policy order first, as documented (the loops above go finding by finding).
    let rank = |id: &str| policies.iter().position(|p| p.id == id).unwrap_or(usize::MAX);
    out.sort_by_key(|v| rank(&v.policy));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::rule::load::load_str;

    fn policies(text: &str) -> Vec<Rule> {
        load_str(text, "p.yml").unwrap()
    }

    fn scan() -> Scan {
        let c = |name: &str, lic: &[&str]| {
            Component::new(None, "npm", name, "1.0.0", lic.iter().map(|s| s.to_string()).collect())
        };
        let mut f = Finding::new(c("left-pad", &["MIT"]), &["GHSA-aaaa", "CVE-2024-0001"], "grype");
        f.severity = Severity::High;
        f.cvss = Some(7.5);
        f.fixed = vec!["1.0.1".into()];
        let mut low = Finding::new(c("left-pad", &["MIT"]), &["CVE-2024-0002"], "grype");
        low.severity = Severity::Low;
        Scan {
            app: "shop".into(),
            stage: "build".into(),
            scanned_at: "2026-12-03T10:00:00Z".into(),
            files: vec![],
            formats: vec![],
            report: Report {
                findings: vec![f, low],
                components: vec![c("left-pad", &["MIT"]), c("gpl-thing", &["GPL-3.0-only"])],
                vex: vec![],
            },
        }
    }

    const POLICIES: &str = "\
id: fixable-high
title: Fixable high or critical vulnerability
kind: policy
severity: high
detection:
  bad:
    finding.severity: [high, critical]
    finding.fixed: true
    component.purl|startswith: pkg:npm/
  condition: bad
---
id: copyleft
title: Copyleft license
kind: policy
severity: medium
monitor: false
detection:
  denied:
    license: [GPL-3.0-only, AGPL-3.0-only]
  condition: denied
";

    #[test]
    fn policies_judge_findings_and_license_lists_judge_components_once() {
        let ps = policies(POLICIES);
        assert!(judges_findings(&ps[0]) && !judges_findings(&ps[1]));
        assert!(ps[0].monitor && !ps[1].monitor);
        let s = scan();
        let app = crate::scan::app::Applications::default().get("shop");
        let v = judge(&ps.iter().collect::<Vec<_>>(), &app, &s, &s.report);
        let got: Vec<(&str, &str, &str)> =
            v.iter().map(|v| (v.policy.as_str(), v.purl.as_str(), v.id.as_str())).collect();
        assert_eq!(
            got,
            [
                ("fixable-high", "pkg:npm/left-pad@1.0.0", "CVE-2024-0001"),
                ("copyleft", "pkg:npm/gpl-thing@1.0.0", ""),
            ]
        );
        assert_eq!(v[0].details.severity, Some(Severity::High));
        assert_eq!(v[0].details.fixed, ["1.0.1"]);
        let doc: Value = serde_json::from_str(&document(&app, &s, &s.report, &v[0])).unwrap();
        assert_eq!(doc.pointer("/app/name"), Some(&json!("shop")));
        assert_eq!(doc.pointer("/finding/fixed_versions/0"), Some(&json!("1.0.1")));
        let want = Wanted::of(&ps.iter().collect::<Vec<_>>());
        let small =
            subject(&app, &s, &s.report.findings[0].component, Some(&s.report.findings[0]), &want);
        assert_eq!(
            small,
            json!({"component": {"purl": "pkg:npm/left-pad@1.0.0"}, "license": ["MIT"],
                   "finding": {"severity": "high", "fixed": true}}),
            "only what the policies read"
        );
    }

    #[test]
    fn a_policy_on_the_message_reads_the_finding_title() {
        let ps = policies(
            "id: pp\ntitle: t\nkind: policy\nseverity: low\ndetection:\n  a:\n    message|contains: pollution\n  condition: a\n",
        );
        assert!(judges_findings(&ps[0]));
        let mut s = scan();
        s.report.findings[1].title = Some("prototype pollution".into());
        let app = crate::scan::app::Applications::default().get("shop");
        let v = judge(&ps.iter().collect::<Vec<_>>(), &app, &s, &s.report);
        let ids: Vec<&str> = v.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["CVE-2024-0002"]);
    }

    #[test]
    fn policies_are_not_event_rules_and_event_rules_take_no_monitor_key() {
        let ps = policies(POLICIES);
        let set = crate::rule::set::RuleSet::new(ps);
        assert!(set.is_empty(), "policies never run against events");
        let errors = load_str(
            "id: r\ntitle: t\nseverity: low\nmonitor: true\ndetection:\n  a:\n    x: 1\n  condition: a\n",
            "r.yml",
        )
        .unwrap_err();
        assert!(errors[0].to_string().contains("`monitor`"), "{}", errors[0]);
        let errors = load_str(
            "id: p\ntitle: t\nkind: policy\nseverity: low\ndetection:\n  a:\n    x: 1\n  condition: a\nthreshold:\n  count: 2\n  window: 1m\n",
            "p.yml",
        )
        .unwrap_err();
        assert!(errors[0].to_string().contains("a policy takes no behaviour"), "{}", errors[0]);
    }
}
