//! A rule's own test cases (`tests:` in the rule file) and the runner behind `logwarden test`.
//!
//! A case feeds input lines (or a file, relative to the rule file's directory) through the
//! same replay pipeline as `logwarden replay`, with only that rule loaded, and compares the
//! alerts with `expect`: the same number of alerts, in order, and in each every key the case
//! names equal (`count`, `severity`, `title`, `first_seen`, `last_seen`, `fingerprint`, or a
//! group field such as `source.ip`). `expect: []` is a case that must not alert.
//!
//! A policy's case reads a scan report instead (any format `scan ingest` reads), as the
//! scan of application `test` at stage `build`, and expects the violations' alerts (group
//! fields `component.purl`, `finding.id`, `app.name`).

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::alert::Alert;
use crate::parse::Format;
use crate::rule::Rule;
use crate::rule::behaviour::Services;
use crate::rule::set::RuleSet;

/// One test case as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows.
    pub name: String,
    /// Log lines, or a file path relative to the rule file's directory.
    pub input: TestInput,
    /// `syslog`, `cloudtrail` or `json`; detected from the input when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// Year of RFC 3164 timestamps (default 2024, so cases do not depend on the clock).
    #[serde(default)]
    pub year: Option<i32>,
    /// The alerts expected, in order; each names only the keys it checks.
    pub expect: Vec<Map<String, Value>>,
}

/// A case's input.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TestInput {
    /// A file path.
    File(String),
    /// Lines, joined with newlines.
    Lines(Vec<String>),
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    /// The rule's id.
    pub rule: String,
    /// The case's name.
    pub name: String,
    /// `Err` holds what differed, expected against got, one line each.
    pub outcome: Result<(), String>,
}

/// Runs every test case of every rule, in rule order.
pub fn run(rules: &[Rule], services: &Services) -> Vec<CaseResult> {
    let mut out = Vec::new();
    for rule in rules {
        for case in &rule.tests {
            let outcome = run_case(rule, case, services);
            out.push(CaseResult { rule: rule.id.clone(), name: case.name.clone(), outcome });
        }
    }
    out
}

fn run_case(rule: &Rule, case: &TestCase, services: &Services) -> Result<(), String> {
    let alerts = alerts_for(rule, case, services)?;
    compare(&case.expect, &alerts)
}

/// The alerts `rule` raises on the case's input.
pub fn alerts_for(rule: &Rule, case: &TestCase, services: &Services) -> Result<Vec<Alert>, String> {
    let (name, bytes) = input(rule, case)?;
    if rule.kind == crate::rule::RuleKind::Policy {
        return policy_alerts(rule, &name, &bytes);
    }
    let format = match case.format.as_deref() {
        None => None,
        Some("syslog") => Some(Format::Syslog),
        Some("cloudtrail") => Some(Format::CloudTrail),
        Some("json") => Some(Format::Json),
        Some(other) => return Err(format!("unknown format `{other}` (syslog, cloudtrail, json)")),
    };
    let opts = crate::replay::ReplayOptions {
        format,
        syslog: crate::parse::syslog::SyslogOptions {
            year: Some(case.year.unwrap_or(2024)),
            ..Default::default()
        },
        rules: Some(Arc::new(RuleSet::new(vec![rule.clone()]))),
        services: services.clone(),
        ..Default::default()
    };
    let mut alerts: Vec<Alert> = Vec::new();
    let mut outputs =
        crate::replay::Outputs { events: None, dead_letter: None, alerts: Some(&mut alerts) };
    crate::replay::replay_bytes(&name, bytes, &opts, &mut outputs)
        .map_err(|e| format!("replay: {e}"))?;
    Ok(alerts)
}

/// A policy's alerts on a scan report (any format `scan ingest` reads) of application
/// `test`, stage `build`, as the first evaluation would notify them.
fn policy_alerts(rule: &Rule, name: &str, bytes: &[u8]) -> Result<Vec<Alert>, String> {
    use crate::scan::monitor::{Plan, plan_stage};
    let (format, report) =
        crate::parse::scan::read(std::path::Path::new(name), bytes).map_err(|e| e.to_string())?;
    let scan = crate::scan::store::Scan {
        app: "test".into(),
        stage: "build".into(),
        scanned_at: "2024-01-01T00:00:00Z".into(),
        files: vec![name.to_owned()],
        formats: vec![format],
        report,
    };
    let app = crate::scan::app::Applications::default().get("test");
    let found = crate::scan::violation::judge(&[rule], &app, &scan, &scan.report);
    let at = chrono::DateTime::UNIX_EPOCH;
    let mut plan = Plan::default();
    let ids = [rule.id.as_str()].into();
    let look = crate::scan::monitor::Lookups {
        withdrawn: &|_| false,
        document: &|v| crate::scan::violation::document(&app, &scan, &scan.report, v),
        subject: &|_| None,
        resolve: true,
    };
    plan_stage(&mut plan, &Default::default(), found, &ids, &[], &look, at);
    Ok(plan
        .notices
        .iter()
        .flat_map(|n| crate::scan::notice::alerts(n, rule, &[], crate::event::Timestamp(0)))
        .collect())
}

/// The case's input: its name and bytes.
fn input(rule: &Rule, case: &TestCase) -> Result<(String, Vec<u8>), String> {
    Ok(match &case.input {
        TestInput::Lines(lines) => {
            let mut text = lines.join("\n");
            text.push('\n');
            ("<input>".to_owned(), text.into_bytes())
        }
        TestInput::File(path) => {
            let dir = rule.file.parent().map(PathBuf::from).unwrap_or_default();
            let full = dir.join(path);
            let bytes =
                std::fs::read(&full).map_err(|e| format!("input {}: {e}", full.display()))?;
            (full.display().to_string(), bytes)
        }
    })
}

/// The value of an expectation key in an alert, as JSON.
fn actual(a: &Alert, key: &str) -> Option<Value> {
    let json = a.to_json();
    match key {
        "count" | "severity" | "title" | "first_seen" | "last_seen" | "fingerprint" => {
            json.get(key).cloned()
        }
        "rule.id" => Some(Value::String(a.rule_id.clone())),
        "change" => a.detail.as_ref().and_then(|d| d.get("change")).cloned(),
        _ => a.group.iter().find(|(k, _)| k == key).map(|(_, v)| Value::String(v.clone())),
    }
}

fn loosely_equal(want: &Value, got: &Value) -> bool {
    match (want, got) {
        // YAML may write a number or an address unquoted; compare the text.
        (Value::Number(w), Value::String(g)) => w.to_string() == *g,
        (w, g) => w == g,
    }
}

/// Compares expectations with alerts; `Err` describes every difference.
pub fn compare(expect: &[Map<String, Value>], alerts: &[Alert]) -> Result<(), String> {
    let mut diff = Vec::new();
    if expect.len() != alerts.len() {
        diff.push(format!("expected {} alert(s), got {}", expect.len(), alerts.len()));
    }
    for (i, want) in expect.iter().enumerate() {
        let Some(a) = alerts.get(i) else {
            diff.push(format!("- alert {i}: {}", Value::Object(want.clone())));
            continue;
        };
        for (k, w) in want {
            let got = actual(a, k);
            if !got.as_ref().is_some_and(|g| loosely_equal(w, g)) {
                let got = got.map_or_else(|| "(absent)".to_owned(), |g| g.to_string());
                diff.push(format!("  alert {i}: {k}: expected {w}, got {got}"));
            }
        }
    }
    for (i, a) in alerts.iter().enumerate().skip(expect.len()) {
        let group: Vec<String> = a.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
        diff.push(format!("+ alert {i}: count={} {} `{}`", a.count, group.join(" "), a.title));
    }
    if diff.is_empty() { Ok(()) } else { Err(diff.join("\n")) }
}
