//! Re-evaluation: a stored scan's inventory run against an advisory database, joined with the
//! scan's own findings. What changed since the last evaluation, and notifying it, comes on top.

use super::advisory::Advisories;
use super::store::Scan;
use crate::parse::scan::{Report, merge};
use crate::scan::version;

/// The findings `scan` has now: its stored findings, and what `db` says of every component of
/// its inventory (the scan's VEX statements still set findings aside).
pub fn evaluate(scan: &Scan, db: &Advisories) -> Report {
    let mut found = Vec::new();
    for c in &scan.report.components {
        let parsed = version::parse(&c.ecosystem, &c.version);
        found.extend(db.findings(c, parsed.as_ref()));
    }
    let advisories = Report { findings: found, ..Report::default() };
    merge([scan.report.clone(), advisories])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::parse::scan::{Component, Vex, VexState};

    #[test]
    fn an_advisory_for_an_installed_component_adds_a_finding_and_vex_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let record = |id: &str, name: &str| {
            serde_json::json!({"id": id, "affected": [{"package": {"ecosystem": "npm", "name": name},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "2.0.0"}]}]}]})
        };
        std::fs::write(dir.path().join("a.json"), record("GHSA-a", "left-pad").to_string())
            .unwrap();
        std::fs::write(dir.path().join("b.json"), record("GHSA-b", "right-pad").to_string())
            .unwrap();
        let db = Advisories::load(dir.path()).unwrap();
        let c = |name: &str| Component::new(None, "npm", name, "1.0.0", vec![]);
        let scan = Scan {
            app: "shop".into(),
            stage: "build".into(),
            scanned_at: "2026-12-03T10:00:00Z".into(),
            files: vec![],
            formats: vec![],
            report: Report {
                findings: vec![],
                components: vec![c("left-pad"), c("right-pad"), c("up-pad")],
                vex: vec![Vex {
                    purl: "pkg:npm/right-pad@1.0.0".into(),
                    ids: vec!["GHSA-b".into()],
                    state: VexState::NotAffected,
                    justification: None,
                }],
            },
        };
        let now = evaluate(&scan, &db);
        let got: Vec<(&str, &str)> =
            now.findings.iter().map(|f| (f.component.purl.as_str(), f.id.as_str())).collect();
        assert_eq!(got, [("pkg:npm/left-pad@1.0.0", "GHSA-a")]);
        assert_eq!(now.findings[0].fixed, ["2.0.0"]);
        assert_eq!(now.findings[0].scanners, ["osv"]);
    }
}
