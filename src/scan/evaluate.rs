//! Re-evaluation: a stored scan's inventory run against an advisory database, joined with the
//! scan's own findings; the policies' violations in it; and, against what was notified
//! before ([`super::monitor`]), what to notify now.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::advisory::Advisories;
use super::app::Applications;
use super::monitor::{Lookups, Notified, Plan, plan_stage};
use super::store::{Scan, StoreError};
use super::violation::{document, judge};
use super::waiver::Waiver;
use crate::parse::scan::{Report, merge};
use crate::rule::{Rule, RuleKind};
use crate::scan::version;

/// Which stored scans an evaluation judges, with which policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every scan, every policy (`scan evaluate`, `scan list`).
    Everything,
    /// The schedule: monitored applications at their monitored stage, monitored policies.
    Monitored,
    /// A scan just ingested: that stage, every policy.
    Stage {
        /// The application.
        app: &'a str,
        /// The stage.
        stage: &'a str,
    },
}

/// What an evaluation reads besides the scans.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    /// Rules and policies (only `kind: policy` documents are used).
    pub policies: &'a [Rule],
    /// The configured applications.
    pub apps: &'a Applications,
    /// The advisory database, if re-evaluating against one.
    pub advisories: Option<&'a Advisories>,
    /// Every waiver.
    pub waivers: &'a [Waiver],
}

/// Scans per worker below which an evaluation stays on one thread.
const PER_WORKER: usize = 16;

/// What `scans` violate now and what of it to notify, judged against `notified` at `now`.
/// Scans are judged on up to `available_parallelism` threads (each scan on its own; the
/// plan keeps scan order), since the daily run of a thousand applications is CPU-bound.
pub fn plan(
    scans: &[Scan],
    notified: &Notified,
    inputs: Inputs<'_>,
    scope: Scope<'_>,
    now: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let all: Vec<&Rule> = inputs.policies.iter().filter(|r| r.kind == RuleKind::Policy).collect();
    let monitored: Vec<&Rule> = all.iter().copied().filter(|r| r.monitor).collect();
    let ctx = Ctx { notified, inputs, scope, now, all: &all, monitored: &monitored };
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(scans.len() / PER_WORKER)
        .max(1);
    if workers == 1 {
        return ctx.run(scans);
    }
    let chunk = scans.len().div_ceil(workers);
    let parts: Vec<Result<Plan, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = scans.chunks(chunk).map(|part| s.spawn(|| ctx.run(part))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut plan = Plan::default();
    for part in parts {
        let part = part?;
        plan.notices.extend(part.notices);
        plan.writes.extend(part.writes);
        plan.current.extend(part.current);
        plan.quiet += part.quiet;
    }
    Ok(plan)
}

/// What every scan of one evaluation is judged with.
struct Ctx<'a> {
    notified: &'a Notified,
    inputs: Inputs<'a>,
    scope: Scope<'a>,
    now: DateTime<Utc>,
    all: &'a [&'a Rule],
    monitored: &'a [&'a Rule],
}

impl Ctx<'_> {
    fn run(&self, scans: &[Scan]) -> Result<Plan, StoreError> {
        let Ctx { notified, inputs, scope, now, .. } = *self;
        let mut plan = Plan::default();
        let withdrawn = |ids: &[String]| inputs.advisories.is_some_and(|db| db.withdrawn(ids));
        for scan in scans {
            let policies = match scope {
                Scope::Everything => self.all,
                Scope::Monitored if inputs.apps.monitors(&scan.app, &scan.stage) => self.monitored,
                Scope::Monitored => continue,
                Scope::Stage { app, stage } if scan.app == app && scan.stage == stage => self.all,
                Scope::Stage { .. } => continue,
            };
            let mut report = match inputs.advisories {
                Some(db) => evaluate(scan, db),
                None => scan.report.clone(),
            };
            report.findings.retain(|f| !withdrawn(&f.aliases));
            let app = inputs.apps.get(&scan.app);
            let current = judge(policies, &app, scan, &report);
            let records = notified.stage(&scan.app, &scan.stage)?;
            let ids: BTreeSet<&str> = policies.iter().map(|p| p.id.as_str()).collect();
            let look = Lookups {
                withdrawn: &withdrawn,
                document: &|v| document(&app, scan, &report, v),
                subject: &|k| notified.subject(k).ok().flatten(),
                resolve: inputs.advisories.is_none_or(|db| !db.is_empty()),
            };
            plan_stage(&mut plan, &records, current, &ids, inputs.waivers, &look, now);
        }
        Ok(plan)
    }
}

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
