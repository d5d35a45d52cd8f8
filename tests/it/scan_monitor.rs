//! Continuous monitoring through the binary (issue 6's sequence): ingest a real Trivy report,
//! evaluate, evaluate again (nothing), a new advisory (one notification, to the owner's
//! route only), its severity raised (one update), the component upgraded (resolved), and a
//! waiver on a fake clock (quiet, then notified once it ends).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::logwarden;
use crate::corpus;

struct Setup {
    dir: tempfile::TempDir,
    config: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(
            rules.join("vulnerable.yml"),
            "id: vulnerable-package\ntitle: Vulnerable package\nkind: policy\nseverity: high\n\
             detection:\n  any:\n    finding.id|exists: true\n  condition: any\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("osv")).unwrap();
        let config = dir.path().join("logwarden.yml");
        std::fs::write(
            &config,
            "state: state.redb\nrules: rules\n\
             applications:\n  - {name: base, owners: [team-a], criticality: high}\n  - {name: other, owners: [team-b]}\n\
             sinks:\n  a: {type: file, path: a.jsonl}\n  b: {type: file, path: b.jsonl}\n\
             routes:\n\
             \x20 - {name: team-a, match: {labels: {app.owner: team-a}}, sinks: [a], send_resolved: true, group_wait: 0s}\n\
             \x20 - {name: team-b, match: {labels: {app.owner: team-b}}, sinks: [b], group_wait: 0s}\n",
        )
        .unwrap();
        Setup { config: config.display().to_string(), dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn advisory(&self, severity: &str) {
        // libssl1.1 below 1.1.1d-r3; the report has 1.1.1c-r0 installed.
        let record = json!({
            "id": "ALPINE-CVE-2099-0001", "aliases": ["CVE-2099-0001"],
            "database_specific": {"severity": severity},
            "affected": [{"package": {"ecosystem": "Alpine:v3.10", "name": "libssl1.1"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1d-r3"}]}]}]
        });
        std::fs::write(self.path("osv/a.json"), record.to_string()).unwrap();
    }

    fn run(&self, args: &[&str]) -> crate::cli::Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-c", &self.config]);
        let run = logwarden(&all);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        run
    }

    /// `scan ingest --state` (stored, judged at the next evaluation).
    fn ingest(&self, app: &str, report: &Path) {
        let state = self.path("state.redb").display().to_string();
        let report = report.display().to_string();
        let run = logwarden(["scan", "ingest", "--app", app, "--state", &state, &report]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }

    fn evaluate(&self, now: &str) -> crate::cli::Run {
        let osv = self.path("osv").display().to_string();
        self.run(&["scan", "evaluate", "--advisories", &osv, "--now", now])
    }

    /// The notifications sink `name` received so far.
    fn received(&self, name: &str) -> Vec<Value> {
        match std::fs::read_to_string(self.path(name)) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// (change, finding id, component purl) of each alert in `notifications`.
fn alerts(notifications: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = notifications
        .iter()
        .flat_map(|n| n["alerts"].as_array().unwrap().clone())
        .map(|a| {
            (
                a["detail"]["change"].as_str().unwrap().to_owned(),
                a["group"]["finding.id"].as_str().unwrap().to_owned(),
                a["group"]["component.purl"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn owned(v: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    v.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
}

/// The Trivy corpus report with libssl1.1 upgraded past every advisory (a scanner lists
/// vulnerable packages only, so it is gone from the report).
fn upgraded(to: &Path) {
    let text = std::fs::read_to_string(corpus::path("scanners/trivy/alpine-310.json.golden.json"))
        .unwrap();
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    for r in doc["Results"].as_array_mut().unwrap() {
        if let Some(vs) = r["Vulnerabilities"].as_array_mut() {
            vs.retain(|v| v["PkgName"] != "libssl1.1");
        }
    }
    std::fs::write(to, doc.to_string()).unwrap();
}

const SSL: &str = "pkg:apk/alpine/libssl1.1@1.1.1c-r0";
const CRYPTO: &str = "pkg:apk/alpine/libcrypto1.1@1.1.1c-r0";

#[test]
fn new_and_changed_violations_notify_once_to_the_owner_and_resolve_on_upgrade() {
    let s = Setup::new();
    let trivy = corpus::path("scanners/trivy/alpine-310.json.golden.json");
    // Stored without -c: judged at the next evaluation.
    s.ingest("base", &trivy);

    // First evaluation: the report's four findings are new, to team-a only.
    let run = s.evaluate("2026-12-03T10:00:00Z");
    assert_eq!(run.stdout.lines().count(), 4, "{}", run.stdout);
    let first = s.received("a.jsonl");
    assert_eq!(
        alerts(&first),
        owned(&[
            ("new", "CVE-2019-1549", CRYPTO),
            ("new", "CVE-2019-1549", SSL),
            ("new", "CVE-2019-1551", CRYPTO),
            ("new", "CVE-2019-1551", SSL),
        ])
    );
    assert!(first.iter().all(|n| n["route"] == "team-a" && n["severity"] == "high"));

    // Again: nothing new, nothing sent.
    let run = s.evaluate("2026-12-03T11:00:00Z");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("0 to notify, 4 already notified"), "{}", run.stderr);
    assert_eq!(s.received("a.jsonl").len(), first.len());

    // A new advisory for an installed component: exactly one notification.
    s.advisory("MEDIUM");
    s.evaluate("2026-12-03T12:00:00Z");
    let sent = s.received("a.jsonl");
    assert_eq!(sent.len(), first.len() + 1);
    let last = &sent[sent.len() - 1];
    assert_eq!(alerts(std::slice::from_ref(last)), owned(&[("new", "CVE-2099-0001", SSL)]));
    let alert = &last["alerts"][0];
    assert_eq!(alert["group"]["app.owner"], "team-a");
    assert_eq!(alert["detail"]["details"]["severity"], "medium");
    assert_eq!(alert["detail"]["details"]["fixed"], json!(["1.1.1d-r3"]));
    assert_eq!(
        alert["title"],
        "Vulnerable package: CVE-2099-0001 in pkg:apk/alpine/libssl1.1@1.1.1c-r0 (base)"
    );
    s.evaluate("2026-12-03T13:00:00Z");
    assert_eq!(s.received("a.jsonl").len(), sent.len(), "unchanged: quiet");

    // Its severity raised: one update saying what changed.
    s.advisory("CRITICAL");
    s.evaluate("2026-12-03T14:00:00Z");
    let sent = s.received("a.jsonl");
    let last = &sent[sent.len() - 1];
    assert_eq!(alerts(std::slice::from_ref(last)), owned(&[("updated", "CVE-2099-0001", SSL)]));
    let alert = &last["alerts"][0];
    assert_eq!(alert["detail"]["changed"], json!(["severity"]));
    assert_eq!(alert["detail"]["previous"]["severity"], "medium");
    assert_eq!(alert["detail"]["details"]["severity"], "critical");
    assert!(alert["title"].as_str().unwrap().starts_with("Updated: "), "{}", alert["title"]);
    let before = sent.len();

    // The component upgraded in a new scan: its three violations resolved (team-a's route
    // sends resolved notices), libcrypto's stay quiet.
    let report = s.path("upgraded.json");
    upgraded(&report);
    s.ingest("base", &report);
    s.evaluate("2026-12-03T15:00:00Z");
    let sent = s.received("a.jsonl");
    assert_eq!(
        alerts(&sent[before..]),
        owned(&[
            ("resolved", "CVE-2019-1549", SSL),
            ("resolved", "CVE-2019-1551", SSL),
            ("resolved", "CVE-2099-0001", SSL),
        ])
    );
    // A resolved notice carries the document last judged: routes can still match its labels.
    let resolved = sent[before..]
        .iter()
        .flat_map(|n| n["alerts"].as_array().unwrap().clone())
        .find(|a| a["group"]["finding.id"] == "CVE-2099-0001")
        .unwrap();
    assert_eq!(
        resolved["title"],
        "Resolved: Vulnerable package: CVE-2099-0001 in pkg:apk/alpine/libssl1.1@1.1.1c-r0 (base)"
    );
    assert!(resolved["sample"].to_string().contains(r#"\"criticality\":\"high\""#), "{resolved}");
    let run = s.evaluate("2026-12-03T16:00:00Z");
    assert_eq!(run.stdout, "", "resolved once");
    assert_eq!(s.received("a.jsonl").len(), sent.len());
}

#[test]
fn a_waiver_keeps_a_violation_quiet_until_it_ends() {
    let s = Setup::new();
    let state = s.path("state.redb").display().to_string();
    let trivy = corpus::path("scanners/trivy/alpine-310.json.golden.json");
    s.ingest("base", &trivy);
    s.evaluate("2026-12-03T10:00:00Z");
    let before = s.received("a.jsonl").len();

    // A waiver that has already ended is refused; a date that is not one names itself.
    let waive = |until: &str| {
        logwarden([
            "scan",
            "waive",
            "--app",
            "base",
            "--vuln",
            "CVE-1",
            "--until",
            until,
            "--reason",
            "r",
            "--state",
            &state,
            "--now",
            "2026-12-03T10:30:00Z",
        ])
    };
    let past = waive("2026-12-03");
    assert_ne!(past.code, 0);
    assert!(
        past.stderr.contains("--until 2026-12-03T00:00:00+00:00 is not in the future"),
        "{}",
        past.stderr
    );
    let bad = waive("next week");
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("`next week` is not a date"), "{}", bad.stderr);

    // Waived until tomorrow: the new advisory's violation is not notified, nor listed as new.
    let run = logwarden([
        "scan",
        "waive",
        "--app",
        "base",
        "--vuln",
        "cve-2099-0001",
        "--until",
        "2026-12-04",
        "--reason",
        "no fix in our base image yet",
        "--by",
        "alice",
        "--state",
        &state,
        "--now",
        "2026-12-03T10:30:00Z",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.advisory("HIGH");
    let run = s.evaluate("2026-12-03T12:00:00Z");
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("1 waived"), "{}", run.stderr);
    assert_eq!(s.received("a.jsonl").len(), before);
    let osv = s.path("osv").display().to_string();
    let listed =
        s.run(&["scan", "list", "--new", "--advisories", &osv, "--now", "2026-12-03T12:00:00Z"]);
    assert_eq!(listed.stdout.lines().count(), 1, "header only: {}", listed.stdout);
    let waived = s.run(&["scan", "list", "--waived", "--now", "2026-12-03T12:00:00Z"]);
    assert_eq!(
        waived.stdout,
        "APP\tVULN\tUNTIL\tACTIVE\tBY\tREASON\n\
         base\tcve-2099-0001\t2026-12-04T00:00:00Z\tyes\talice\tno fix in our base image yet\n"
    );

    // The day after: the waiver ended, the violation is notified, once.
    let run = s.evaluate("2026-12-04T00:00:00Z");
    assert_eq!(
        run.stdout.lines().collect::<Vec<_>>(),
        [format!("new\tbase\tbuild\tvulnerable-package\tCVE-2099-0001\t{SSL}")]
    );
    let sent = s.received("a.jsonl");
    assert_eq!(alerts(&sent[before..]), owned(&[("new", "CVE-2099-0001", SSL)]));
    s.evaluate("2026-12-04T01:00:00Z");
    assert_eq!(s.received("a.jsonl").len(), sent.len());
    let waived = s.run(&["scan", "list", "--waived", "--now", "2026-12-04T01:00:00Z"]);
    assert!(waived.stdout.contains("\texpired\t"), "{}", waived.stdout);
}

#[test]
fn the_shipped_scan_example_does_what_its_header_says() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb").display().to_string();
    let vars = [("LOGWARDEN_STATE", state.as_str())];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("examples/scan.yml").display().to_string();
    let report = root.join("examples/scan/shop-trivy.json").display().to_string();
    let run = crate::cli::logwarden_env(
        ["scan", "ingest", "--app", "shop", "-c", &config, &report],
        &vars,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let notices: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("new\t")).collect();
    assert_eq!(notices.len(), 4, "{}", run.stdout);
    let sent: Vec<Value> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|n| n["route"] == "payments"), "{sent:?}");
    assert!(
        sent.iter()
            .any(|n| n["title"] == "Upgrade node-forge in shop: CVE-2022-24771 fixed in 1.3.0"),
        "the example advisory's violation: {sent:?}"
    );
    let run = crate::cli::logwarden_env(["scan", "evaluate", "-c", &config], &vars);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("0 to notify, 4 already notified"), "{}", run.stderr);
}

#[test]
fn each_team_hears_of_its_own_application_withdrawals_too_and_resolved_only_if_asked() {
    let s = Setup::new();
    let trivy = corpus::path("scanners/trivy/alpine-310.json.golden.json");
    for app in ["base", "other"] {
        s.ingest(app, &trivy);
    }
    s.advisory("HIGH");
    s.evaluate("2026-12-03T10:00:00Z");
    let apps = |name: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .received(name)
            .iter()
            .flat_map(|n| n["alerts"].as_array().unwrap().clone())
            .map(|a| a["group"]["app.name"].as_str().unwrap().to_owned())
            .collect();
        v.dedup();
        v
    };
    assert_eq!(apps("a.jsonl"), ["base"]);
    assert_eq!(apps("b.jsonl"), ["other"]);
    assert_eq!(s.received("a.jsonl").len(), 5);
    assert_eq!(s.received("b.jsonl").len(), 5);

    // The advisory withdrawn: both teams are told (a change of details, not a resolution).
    let record = json!({
        "id": "ALPINE-CVE-2099-0001", "aliases": ["CVE-2099-0001"],
        "withdrawn": "2026-12-03T11:00:00Z",
        "affected": [{"package": {"ecosystem": "Alpine:v3.10", "name": "libssl1.1"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.1.1d-r3"}]}]}]
    });
    std::fs::write(s.path("osv/a.json"), record.to_string()).unwrap();
    s.evaluate("2026-12-03T12:00:00Z");
    for sink in ["a.jsonl", "b.jsonl"] {
        let sent = s.received(sink);
        assert_eq!(sent.len(), 6, "{sink}");
        assert_eq!(alerts(&sent[5..]), owned(&[("withdrawn", "CVE-2099-0001", SSL)]), "{sink}");
    }

    // `other` upgraded: team-b's route does not send resolved notices; nobody is told.
    let report = s.path("upgraded.json");
    upgraded(&report);
    s.ingest("other", &report);
    let run = s.evaluate("2026-12-03T13:00:00Z");
    assert_eq!(
        run.stdout.lines().filter(|l| l.starts_with("resolved\t")).count(),
        2,
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("2 unrouted"), "{}", run.stderr);
    assert_eq!(s.received("a.jsonl").len(), 6);
    assert_eq!(s.received("b.jsonl").len(), 6);
}

#[test]
fn an_emptied_advisory_directory_resolves_nothing() {
    let s = Setup::new();
    let trivy = corpus::path("scanners/trivy/alpine-310.json.golden.json");
    s.ingest("base", &trivy);
    s.advisory("HIGH");
    s.evaluate("2026-12-03T10:00:00Z");
    assert_eq!(s.received("a.jsonl").len(), 5);
    // Mid-sync, the directory is empty: nothing reads as resolved.
    std::fs::remove_file(s.path("osv/a.json")).unwrap();
    let run = s.evaluate("2026-12-03T11:00:00Z");
    assert_eq!(run.stdout, "");
    s.advisory("HIGH");
    let run = s.evaluate("2026-12-03T12:00:00Z");
    assert_eq!(run.stdout, "", "still notified, unchanged");
    assert_eq!(s.received("a.jsonl").len(), 5);
}
