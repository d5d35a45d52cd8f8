//! Detection benchmarks: matching events against 100 loaded rules (the default pack plus
//! CloudTrail-style single-event rules) through the dataset/action index, and the full engine
//! (matching + behaviour state) over generated sshd-heavy syslog.

use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use logwarden::alert::Alert;
use logwarden::event::{Event, Sym};
use logwarden::parse::Parser;
use logwarden::rule::behaviour::Services;
use logwarden::rule::engine::Engine;
use logwarden::rule::load::{load_dir, load_str};
use logwarden::rule::set::{Hit, RuleSet};

const LINES: u64 = 200_000;

fn syslog_events() -> Vec<Event> {
    logwarden::generate::parsed_events(LINES, 42)
}

/// The default pack and SigmaHQ's CloudTrail rules, padded to 100 with single-event CloudTrail
/// rules of the same shape (logsource aws/cloudtrail, an eventSource and eventName selection).
fn hundred_rules() -> RuleSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rules = load_dir(&root.join("rules")).unwrap_or_default();
    rules.extend(load_dir(&root.join("tests/data/sigma-cloudtrail")).unwrap_or_default());
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

/// Every Invictus CloudTrail record as an event.
fn cloudtrail_events() -> Vec<Event> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/invictus-aws-dataset");
    let mut events = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let Ok(input) = logwarden::source::detect::open(&p, None) else { continue };
                let mut parser = logwarden::parse::cloudtrail::CloudTrailParser::default();
                let _ = logwarden::source::cloudtrail::read_records(
                    input.reader,
                    Sym::from_static("bench"),
                    |rec| {
                        let _ = parser.parse(&rec, &mut events);
                        std::ops::ControlFlow::Continue(())
                    },
                );
            }
        }
    }
    events
}

fn bench(c: &mut Criterion) {
    let cloudtrail = cloudtrail_events();
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
    g.throughput(Throughput::Elements(cloudtrail.len() as u64));
    g.bench_function("match_100_rules_cloudtrail", |b| {
        let mut hits: Vec<Hit> = Vec::with_capacity(8);
        b.iter(|| {
            let mut total = 0usize;
            for e in &cloudtrail {
                hits.clear();
                set.hits(e, &mut hits);
                total += hits.len();
            }
            total
        })
    });
    g.throughput(Throughput::Elements(n));
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
