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
    /// The document the policy judged.
    pub subject: Value,
}

/// Whether `policy` judges findings (it names a `finding.` field) rather than components.
pub fn judges_findings(policy: &Rule) -> bool {
    policy.fields().iter().any(|f| match f {
        Field::Original(path) => path == "finding" || path.starts_with("finding."),
        _ => false,
    })
}

/// The document a policy reads for `component` (and `finding`, if any) of `scan`.
pub fn subject(
    app: &AppSpec,
    scan: &Scan,
    component: &Component,
    finding: Option<&Finding>,
) -> Value {
    let mut a = Map::new();
    a.insert("name".into(), json!(app.name));
    a.insert("stage".into(), json!(scan.stage));
    a.insert("owners".into(), json!(app.owners));
    if let Some(c) = app.criticality {
        a.insert("criticality".into(), json!(c.as_str()));
    }
    let mut doc = Map::new();
    doc.insert("app".into(), Value::Object(a));
    doc.insert(
        "component".into(),
        json!({
            "purl": component.purl,
            "name": component.name,
            "version": component.version,
            "ecosystem": component.ecosystem,
            "licenses": component.licenses,
        }),
    );
    doc.insert("license".into(), json!(component.licenses));
    if let Some(f) = finding {
        let mut m = Map::new();
        m.insert("id".into(), json!(f.id));
        m.insert("aliases".into(), json!(f.aliases));
        m.insert("severity".into(), json!(f.severity.as_str()));
        if let Some(c) = f.cvss {
            m.insert("cvss".into(), json!(c));
        }
        m.insert("fixed".into(), json!(!f.fixed.is_empty()));
        m.insert("fixed_versions".into(), json!(f.fixed));
        if let Some(t) = &f.title {
            m.insert("title".into(), json!(t));
        }
        if let Some(l) = &f.location {
            m.insert("location".into(), json!(l));
        }
        m.insert("scanners".into(), json!(f.scanners));
        doc.insert("finding".into(), Value::Object(m));
    }
    doc.insert("scan".into(), json!({ "scanned_at": scan.scanned_at }));
    Value::Object(doc)
}

/// The event policies match `subject` as, at `at`.
pub fn event(subject: &Value, at: Timestamp) -> Event {
    let message = subject
        .pointer("/finding/title")
        .or_else(|| subject.pointer("/finding/id"))
        .or_else(|| subject.pointer("/component/purl"))
        .and_then(Value::as_str)
        .map(Box::from);
    Event {
        timestamp: at,
        dataset: Some(Sym::from_static(DATASET)),
        message,
        original: Some(Original::from_parsed_text(subject.to_string().into())),
        ..Event::default()
    }
}

/// Every violation `policies` find in `report` (a stored scan's findings, or its
/// re-evaluation), in policy order, then component, then finding order.
pub fn judge(policies: &[&Rule], app: &AppSpec, scan: &Scan, report: &Report) -> Vec<Violation> {
    // The time only reaches `@timestamp`, which policies have no reason to read.
    let at = Timestamp(0);
    let mut components: Vec<&Component> = report.components.iter().collect();
    for f in &report.findings {
        if !components.iter().any(|c| c.purl == f.component.purl) {
            components.push(&f.component);
        }
    }
    let findings: Vec<(Value, Event, &Finding)> = report
        .findings
        .iter()
        .map(|f| {
            let doc = subject(app, scan, &f.component, Some(f));
            let e = event(&doc, at);
            (doc, e, f)
        })
        .collect();
    let mut bare: Vec<(Value, Event, &Component)> = Vec::new();
    let mut out = Vec::new();
    for p in policies {
        if judges_findings(p) {
            for (doc, e, f) in &findings {
                if p.matches(e) {
                    out.push(Violation {
                        policy: p.id.clone(),
                        app: scan.app.clone(),
                        stage: scan.stage.clone(),
                        purl: f.component.purl.clone(),
                        id: f.id.clone(),
                        aliases: f.aliases.clone(),
                        details: Details {
                            severity: Some(f.severity),
                            cvss: f.cvss,
                            fixed: f.fixed.clone(),
                            licenses: f.component.licenses.clone(),
                        },
                        subject: doc.clone(),
                    });
                }
            }
        } else {
            if bare.is_empty() {
                bare = components
                    .iter()
                    .map(|c| {
                        let doc = subject(app, scan, c, None);
                        let e = event(&doc, at);
                        (doc, e, *c)
                    })
                    .collect();
            }
            for (doc, e, c) in &bare {
                if p.matches(e) {
                    out.push(Violation {
                        policy: p.id.clone(),
                        app: scan.app.clone(),
                        stage: scan.stage.clone(),
                        purl: c.purl.clone(),
                        id: String::new(),
                        aliases: Vec::new(),
                        details: Details { licenses: c.licenses.clone(), ..Details::default() },
                        subject: doc.clone(),
                    });
                }
            }
        }
    }
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
        assert_eq!(v[0].subject.pointer("/app/name"), Some(&json!("shop")));
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
