//! Detection benchmarks: matching events against 100 loaded rules (the default pack plus
//! CloudTrail-style single-event rules) through the dataset/action index, and the full engine
//! (matching + behaviour state) over generated sshd-heavy syslog.

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use logwarden::alert::Alert;
use logwarden::event::{Event, Sym, Timestamp};
use logwarden::parse::Parser;
use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
use logwarden::rule::behaviour::Services;
use logwarden::rule::engine::Engine;
use logwarden::rule::load::{load_dir, load_str};
use logwarden::rule::set::{Hit, RuleSet};
use logwarden::source::{Origin, RawRecord};

const LINES: u64 = 200_000;

fn syslog_events() -> Vec<Event> {
    let mut buf = Vec::new();
    logwarden::generate::write_syslog(&mut buf, LINES, 42).unwrap_or_default();
    let mut parser = SyslogParser::new(SyslogOptions {
        year: Some(2026),
        now: Some(Timestamp(0)),
        ..SyslogOptions::default()
    });
    let source = Sym::from_static("bench");
    let mut events = Vec::with_capacity(LINES as usize);
    for (i, line) in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let rec = RawRecord {
            bytes: bytes::Bytes::copy_from_slice(line),
            origin: Origin { source: source.clone(), record: i as u64 + 1, offset: 0 },
            received: None,
        };
        let _ = parser.parse(&rec, &mut events);
    }
    events
}

/// The default pack, padded to 100 rules with single-event CloudTrail rules of the shape
/// SigmaHQ's have (logsource aws/cloudtrail, an eventSource and eventName selection).
fn hundred_rules() -> RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let mut rules = load_dir(&dir).unwrap_or_default();
    let mut text = String::new();
    for i in rules.len()..100 {
        text.push_str(&format!(
            "---\nid: pad-{i}\ntitle: pad\nlevel: low\nlogsource: {{product: aws, service: cloudtrail}}\n\
             detection:\n  sel:\n    eventSource: service{i}.amazonaws.com\n    eventName: [Delete{i}, Stop{i}]\n  \
             condition: sel\n"
        ));
    }
    rules.extend(load_str(&text, "pad.yml").unwrap_or_default());
    assert_eq!(rules.len(), 100);
    RuleSet::new(rules)
}

fn bench(c: &mut Criterion) {
    let events = syslog_events();
    let set = Arc::new(hundred_rules());
    let n = events.len() as u64;

    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("match_100_rules", |b| {
        let mut hits: Vec<Hit> = Vec::with_capacity(8);
        b.iter(|| {
            let mut total = 0usize;
            for e in &events {
                hits.clear();
                set.hits(e, &mut hits);
                total += hits.len();
            }
            total
        })
    });
    g.bench_function("engine_100_rules", |b| {
        b.iter_batched(
            || Engine::new(Arc::clone(&set), &Services::default(), false),
            |mut engine| {
                let mut alerts: Vec<Alert> = Vec::new();
                for e in &events {
                    engine.process(e, &mut alerts);
                    alerts.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
