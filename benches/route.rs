//! Router decisions: alerts through dedup, silences, three routes, grouping and a rate limit.

// A bench that cannot set up should stop loudly, not measure something else.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use logwarden::alert::{Alert, fingerprint};
use logwarden::event::{Event, Timestamp};
use logwarden::route::matcher::{AlertMatcher, SeverityBound};
use logwarden::route::router::{RateLimit, Route, Router, RouterConfig};
use logwarden::rule::Severity;
use logwarden::rule::duration::Span;

const ALERTS: usize = 100_000;

fn alerts() -> Vec<Arc<Alert>> {
    (0..ALERTS)
        .map(|i| {
            // 5,000 attackers hitting three rules, each alert a new burst of five.
            let ip = format!("198.51.{}.{}", (i % 5000) / 250, i % 250);
            let rule = ["ssh-bruteforce", "ssh-password-spraying", "sudo-auth-failures"][i % 3];
            let group = vec![("source.ip".to_owned(), ip.clone())];
            Arc::new(Alert {
                rule_id: rule.into(),
                rule_title: rule.into(),
                severity: if i % 7 == 0 { Severity::Critical } else { Severity::High },
                tags: vec!["attack.t1110".into()],
                title: format!("{rule} from {ip}"),
                fingerprint: fingerprint(rule, &group),
                group,
                count: 5,
                first_seen: Timestamp(i as i64),
                last_seen: Timestamp(i as i64 + 1),
                events: Vec::new(),
                sample: vec![Event::default()],
                detail: None,
                explain: None,
            })
        })
        .collect()
}

fn config() -> RouterConfig {
    let route = |name: &str, sev: Option<&str>, sink: &str, cont: bool| Route {
        name: name.into(),
        matcher: AlertMatcher {
            severity: sev.and_then(|s| SeverityBound::parse(s).ok()),
            ..AlertMatcher::default()
        },
        sinks: vec![sink.into()],
        cont,
        send_resolved: false,
        group_by: vec!["rule.id".into(), "source.ip".into()],
        group_wait: Span::from_secs(30),
        group_interval: Span::from_secs(300),
        repeat_interval: Span::from_secs(4 * 3600),
    };
    let mut cfg = RouterConfig {
        routes: vec![
            route("pager", Some(">= critical"), "pager", true),
            route("soc", Some(">= high"), "slack", false),
            route("rest", None, "email", false),
        ],
        ..RouterConfig::default()
    };
    cfg.rate_limits
        .insert("slack".into(), RateLimit { count: 30, per: Span::from_secs(60), burst: 10 });
    cfg
}

fn bench(c: &mut Criterion) {
    let alerts = alerts();
    let mut g = c.benchmark_group("route");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ALERTS as u64));
    g.bench_function("router_ingest", |b| {
        b.iter_batched(
            || Router::new(config()),
            |mut r| {
                let mut out = Vec::new();
                let t0 = 1_700_000_000_000_000_000i64;
                for (i, a) in alerts.iter().enumerate() {
                    // One alert every 10 ms: 1,000 s of a storm.
                    r.ingest_shared(Arc::clone(a), Timestamp(t0 + i as i64 * 10_000_000), &mut out);
                    if i % 100 == 0 {
                        r.tick(Timestamp(t0 + i as i64 * 10_000_000), &mut out);
                    }
                    out.clear();
                }
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    latency(&alerts);
}

/// The time each decision takes (ingest, plus the tick every 100th alert), as percentiles:
/// criterion reports means of whole runs, and a router that stalls one alert in a thousand
/// would hide in a mean.
fn latency(alerts: &[Arc<Alert>]) {
    let mut h =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
    for _ in 0..5 {
        let mut r = Router::new(config());
        let mut out = Vec::new();
        let t0 = 1_700_000_000_000_000_000i64;
        for (i, a) in alerts.iter().enumerate() {
            let now = Timestamp(t0 + i as i64 * 10_000_000);
            let start = std::time::Instant::now();
            r.ingest_shared(Arc::clone(a), now, &mut out);
            if i % 100 == 0 {
                r.tick(now, &mut out);
            }
            h.saturating_record(start.elapsed().as_nanos() as u64);
            out.clear();
        }
    }
    println!(
        "route/decision_latency  p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns  ({} decisions)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
