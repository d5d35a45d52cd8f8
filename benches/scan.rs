//! Re-evaluation benchmark (issue 6 target: 1,000 applications x 500 components against 50,000
//! advisories in under 5 s): synthetic npm inventories and OSV records over 20,000 package
//! names, each advisory one SEMVER range; about 2.5 advisories a package, and about one finding
//! per component (493 k in all).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};

use logwarden::parse::scan::{Component, Report};
use logwarden::scan::advisory::Advisories;
use logwarden::scan::app::Applications;
use logwarden::scan::evaluate::{Inputs, Scope, evaluate, plan};
use logwarden::scan::monitor::Notified;
use logwarden::scan::store::Scan;

/// `SCAN_BENCH_APPS` overrides, for a quick look at a fraction of the load.
fn apps() -> usize {
    std::env::var("SCAN_BENCH_APPS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}
const COMPONENTS: usize = 500;
const ADVISORIES: usize = 50_000;
const PACKAGES: usize = 20_000;

/// A cheap deterministic sequence (no rand in benches: the same data every run).
fn mix(i: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) ^ (i >> 7)) % 1_000_003
}

fn advisories() -> Advisories {
    let mut db = Advisories::default();
    for i in 0..ADVISORIES {
        let pkg = mix(i) % PACKAGES;
        let fixed = format!("{}.{}.0", 1 + mix(i + 1) % 3, mix(i + 2) % 10);
        let record = serde_json::json!({
            "id": format!("GHSA-bench-{i:05}"), "aliases": [format!("CVE-2099-{i:05}")],
            "database_specific": {"severity": "HIGH"},
            "affected": [{"package": {"ecosystem": "npm", "name": format!("pkg-{pkg}")},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]
        });
        if let Err(e) = db.insert(Path::new("bench"), record) {
            panic!("{e}");
        }
    }
    db
}

fn scans() -> Vec<Scan> {
    (0..apps())
        .map(|a| Scan {
            app: format!("app-{a}"),
            stage: "build".into(),
            scanned_at: "2026-12-03T00:00:00Z".into(),
            files: vec![],
            formats: vec![],
            report: Report {
                components: (0..COMPONENTS)
                    .map(|c| {
                        let k = mix(a * COMPONENTS + c);
                        let version = format!("{}.{}.{}", 1 + k % 4, k % 10, k % 7);
                        Component::new(
                            None,
                            "npm",
                            &format!("pkg-{}", k % PACKAGES),
                            &version,
                            vec![],
                        )
                    })
                    .collect(),
                ..Report::default()
            },
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let db = advisories();
    let scans = scans();
    let found: usize = scans.iter().map(|s| evaluate(s, &db).findings.len()).sum();
    eprintln!(
        "{} apps x {COMPONENTS} components against {} advisories: {found} findings",
        scans.len(),
        db.len()
    );
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.bench_function("evaluate_1000_apps_x_500_against_50k", |b| {
        b.iter(|| scans.iter().map(|s| evaluate(s, &db).findings.len()).sum::<usize>())
    });
    // The daily run as the daemon does it: re-evaluation, a policy judging every finding, and
    // the comparison with what was notified (all of it, unchanged: nothing to send).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("state.redb");
    let db_file = logwarden::state::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let notified = Notified::new(db_file, path.clone()).unwrap_or_else(|e| panic!("{e}"));
    let policies =
        logwarden::rule::load::load_str(POLICY, "bench.yml").unwrap_or_else(|e| panic!("{e:?}"));
    let apps = Applications::default();
    let inputs = Inputs { policies: &policies, apps: &apps, advisories: Some(&db), waivers: &[] };
    let now = chrono::Utc::now();
    let run = || plan(&scans, &notified, inputs, Scope::Monitored, now);
    let t = std::time::Instant::now();
    let first = run().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("first evaluation: {} notices in {:?}", first.notices.len(), t.elapsed());
    let t = std::time::Instant::now();
    notified.commit(&first.writes).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("recorded in {:?}", t.elapsed());
    drop(first);
    let t = std::time::Instant::now();
    let again = run().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("again: {} notices, {} quiet in {:?}", again.notices.len(), again.quiet, t.elapsed());
    drop(again);
    g.bench_function("monitor_1000_apps_x_500_against_50k_all_notified", |b| {
        b.iter(|| {
            let p = run().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.notices.len(), 0);
            p.quiet
        })
    });
    g.finish();
}

const POLICY: &str = "id: high\ntitle: High or critical\nkind: policy\nseverity: high\n\
detection:\n  bad:\n    finding.severity: [high, critical]\n  condition: bad\n";

criterion_group!(benches, bench);
criterion_main!(benches);
