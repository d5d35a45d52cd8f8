//! Snapshot benchmarks: the cost of saving and restoring detector and router state (DESIGN
//! section 6), which the daemon pays at most once a second.
//!
//! Detector state: the shipped rule pack plus one `new_value` rule (the pack has none), fed
//! parsed sshd and sudo lines from distinct addresses and users so that every behaviour tracks
//! groups: failures (threshold and sequence groups per address), logins placed on the map
//! (travel and new_value groups per user), sudo commands (spike groups per host and user).
//! Measured at 100k groups, and at 1M with `max_groups` raised so the pack can hold them.
//! Change sets: after a mark, the lines of about 3,000 addresses again (about 10k groups
//! touched, a busy second's worth), then the change set and its application to a restored
//! base. Router state: 10k alerts waiting in notification groups, with their dedup windows.

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use logwarden::alert::Alert;
use logwarden::event::{Event, Geo, Sym, Timestamp};
use logwarden::parse::Parser;
use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
use logwarden::route::router::{Route, Router, RouterConfig};
use logwarden::rule::behaviour::Services;
use logwarden::rule::duration::Span;
use logwarden::rule::engine::Engine;
use logwarden::rule::load::load_str;
use logwarden::rule::set::RuleSet;
use logwarden::source::{Origin, RawRecord};

const NEW_VALUE_RULE: &str = "
id: ssh-login-new-host
title: First SSH login of a user on a host
severity: low
detection:
  ok:
    event.dataset: sshd
    event.action: ssh_login
    event.outcome: success
  condition: ok
new_value:
  group_by: [user.name]
  field: host.name
  learning: 1d
";

/// The pack and the `new_value` rule; with `max_groups`, every behaviour keeps that many.
fn rules(max_groups: Option<usize>) -> Arc<RuleSet> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .filter_map(|p| Some((std::fs::read_to_string(&p).ok()?, p.display().to_string())))
        .collect();
    texts.push((NEW_VALUE_RULE.to_owned(), "new-value.yml".to_owned()));
    let mut all = Vec::new();
    for (mut text, file) in texts {
        if let Some(max) = max_groups {
            for key in ["threshold:", "sequence:", "travel:", "spike:", "new_value:"] {
                text =
                    text.replace(&format!("\n{key}\n"), &format!("\n{key}\n  max_groups: {max}\n"));
            }
        }
        all.extend(load_str(&text, &file).unwrap_or_default());
    }
    Arc::new(RuleSet::new(all))
}

/// Lines from `n` addresses and users: a failure from each, a login placed on the map from
/// every other one, a sudo command from every fourth.
fn events(n: u32) -> Vec<Event> {
    let mut parser = SyslogParser::new(SyslogOptions {
        year: Some(2026),
        now: Some(Timestamp(0)),
        ..SyslogOptions::default()
    });
    let path = Sym::from("/var/log/auth.log");
    let mut events = Vec::new();
    let mut offset = 0u64;
    let mut push = |line: String, geo: Option<(f64, f64)>| {
        let rec = RawRecord {
            bytes: bytes::Bytes::from(line.into_bytes()),
            origin: Origin { source: path.clone(), record: 0, offset },
            received: None,
        };
        offset += rec.bytes.len() as u64 + 1;
        let from = events.len();
        let _ = parser.parse(&rec, &mut events);
        for e in &mut events[from..] {
            e.log_file_path = Some(path.clone());
            e.source_geo =
                geo.map(|location| Box::new(Geo { location: Some(location), ..Geo::default() }));
        }
    };
    for i in 0..n {
        let s = 600 + i / 2000;
        let stamp = format!("Mar  3 10:{:02}:{:02}", s / 60 % 60, s % 60);
        let ip = format!("{}.{}.{}.7", 11 + i / 65_536, i / 256 % 256, i % 256);
        push(
            format!("{stamp} web-1 sshd[1]: Failed password for root from {ip} port 22 ssh2"),
            None,
        );
        if i % 2 == 0 {
            let place = (f64::from(i % 170) - 85.0, f64::from(i % 350) - 175.0);
            let line =
                format!("{stamp} web-1 sshd[2]: Accepted password for u{i} from {ip} port 22 ssh2");
            push(line, Some(place));
        }
        if i % 4 == 0 {
            let line = format!(
                "{stamp} web-1 sudo:    u{i} : TTY=pts/0 ; PWD=/home/u{i} ; USER=root ; COMMAND=/bin/ls"
            );
            push(line, None);
        }
    }
    events
}

/// An engine tracking about `groups` groups.
fn engine(groups: usize, max_groups: Option<usize>) -> (Engine, usize) {
    // About 3.25 groups per address: measured, then scaled to the target.
    let n = (groups as f64 / 3.25) as u32;
    let set = rules(max_groups);
    let mut engine = Engine::new(Arc::clone(&set), &Services::default(), false);
    let mut alerts = Vec::new();
    for e in events(n) {
        engine.process(&e, &mut alerts);
        alerts.clear();
    }
    let tracked = engine.stats().iter().map(|s| s.behaviour.groups).sum();
    (engine, tracked)
}

fn bench_engine(c: &mut Criterion, name: &str, target: usize, max_groups: Option<usize>) {
    let (mut engine, tracked) = engine(target, max_groups);
    let bytes = engine.snapshot().unwrap_or_default();
    eprintln!(
        "{name}: {tracked} groups, snapshot {} bytes ({:.1} per group)",
        bytes.len(),
        bytes.len() as f64 / tracked.max(1) as f64
    );
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Elements(tracked as u64));
    g.bench_function("snapshot", |b| b.iter(|| engine.snapshot().map(|v| v.len())));
    let mut buf = Vec::new();
    g.bench_function("snapshot_into_reused_buffer", |b| {
        b.iter(|| engine.snapshot_into(&mut buf).map(|()| buf.len()))
    });
    g.bench_function("restore", |b| {
        b.iter_batched(
            // As after a restart: the rules loaded afresh, the state from the snapshot.
            || Engine::new(rules(max_groups), &Services::default(), false),
            |mut fresh| {
                let _ = fresh.restore(&bytes);
                fresh
            },
            BatchSize::PerIteration,
        )
    });

    engine.mark();
    let mut alerts = Vec::new();
    for e in events(3_077) {
        engine.process(&e, &mut alerts);
    }
    let changes = engine.snapshot_changes().unwrap_or_default();
    eprintln!("{name}: change set after 10k groups touched: {} bytes", changes.len());
    g.bench_function("changes_10k_touched", |b| {
        b.iter(|| engine.snapshot_changes().map(|v| v.len()))
    });
    g.bench_function("apply_changes_10k_touched", |b| {
        b.iter_batched(
            || {
                let mut fresh = Engine::new(rules(max_groups), &Services::default(), false);
                let _ = fresh.restore(&bytes);
                fresh
            },
            |mut restored| {
                let _ = restored.apply_changes(&changes);
                restored
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_detectors(c: &mut Criterion) {
    bench_engine(c, "snapshot_engine_100k", 100_000, None);
    bench_engine(c, "snapshot_engine_1m", 1_000_000, Some(1_000_000));
}

/// A router holding `n` alerts in notification groups (a minute's wait, one group per
/// address), each with its dedup window.
fn router(n: u32) -> (Router, RouterConfig) {
    let config = RouterConfig {
        routes: vec![Route {
            name: "all".into(),
            matcher: Default::default(),
            sinks: vec!["slack".into()],
            cont: false,
            send_resolved: false,
            group_by: vec!["rule.id".into(), "source.ip".into()],
            group_wait: Span::from_secs(60),
            group_interval: Span::from_secs(300),
            repeat_interval: Span::from_secs(3600),
        }],
        ..RouterConfig::default()
    };
    let mut r = Router::new(config.clone());
    let mut out = Vec::new();
    let set = rules(None);
    let mut engine = Engine::new(set, &Services::default(), false);
    let mut alerts: Vec<Alert> = Vec::new();
    // Five failures from each address fire ssh-bruteforce once: real alerts, with their
    // events and sample.
    for e in events(n) {
        for _ in 0..5 {
            engine.process(&e, &mut alerts);
        }
    }
    for a in alerts.iter().filter(|a| a.rule_id == "ssh-bruteforce").take(n as usize) {
        r.ingest(a, a.last_seen, &mut out);
    }
    (r, config)
}

fn bench_router(c: &mut Criterion) {
    let (r, config) = router(10_000);
    let bytes = r.snapshot().unwrap_or_default();
    eprintln!(
        "snapshot_router_10k: {} alerts, snapshot {} bytes ({:.1} per alert)",
        r.stats().alerts,
        bytes.len(),
        bytes.len() as f64 / r.stats().alerts.max(1) as f64
    );
    let mut g = c.benchmark_group("snapshot_router_10k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(r.stats().alerts));
    g.bench_function("snapshot", |b| b.iter(|| r.snapshot().map(|v| v.len())));
    g.bench_function("restore", |b| {
        b.iter_batched(
            || Router::new(config.clone()),
            |mut fresh| {
                let _ = fresh.restore(&bytes);
                fresh
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_detectors, bench_router);
criterion_main!(benches);
