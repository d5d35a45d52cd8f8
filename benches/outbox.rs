//! Outbox cost per notification: `put` (a durable commit) then `delivered` (another), on a
//! file in the system temp directory (set TMPDIR to measure another disk); and the delivery
//! loop's read, `due_for`, on a storm's backlog.
// A bench that cannot set up or write should stop loudly, not measure something else.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logwarden::route::notification::{Kind, Notification};
use logwarden::rule::Severity;
use logwarden::sink::outbox::Outbox;

fn note(id: u64) -> Notification {
    note_for(id, "webhook", Severity::High)
}

fn note_for(id: u64, sink: &str, severity: Severity) -> Notification {
    Notification {
        id: format!("{id:016x}"),
        sink: sink.to_owned(),
        route: "default".to_owned(),
        kind: Kind::New,
        group: [("user.name".to_owned(), "alice".to_owned())].into(),
        severity,
        title: "ssh brute force from 203.0.113.7".to_owned(),
        alerts: vec![serde_json::json!({
            "rule": "ssh-brute-force", "severity": "high", "count": 12,
            "group": {"source.ip": "203.0.113.7"},
            "first_seen": "2026-11-23T09:00:00Z", "last_seen": "2026-11-23T09:01:00Z"
        })],
        suppressed: 0,
        created: "2026-11-23T09:01:00Z".to_owned(),
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = Outbox::open(dir.path().join("state.redb")).expect("open outbox");
    // A backlog, so the tables are not trivially small.
    for i in 0..1_000u64 {
        outbox.put(&note(u64::MAX - i), 0).expect("put");
    }
    let mut group = c.benchmark_group("outbox");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function("put_then_delivered", |b| {
        b.iter(|| {
            next += 1;
            let n = note(next);
            black_box(outbox.put(&n, next as i64).expect("put"));
            black_box(outbox.delivered(&n.id).expect("delivered"));
        })
    });
    // The router hands the outbox what one alert or tick made due in one `put_all`: one
    // commit for the lot (64 is a storm's tick, or one alert fanned out to many sinks).
    group.throughput(Throughput::Elements(64));
    group.bench_function("put_all_64", |b| {
        b.iter(|| {
            let batch: Vec<Notification> = (0..64)
                .map(|_| {
                    next += 1;
                    note(next)
                })
                .collect();
            black_box(outbox.put_all(&batch, next as i64).expect("put_all"));
        })
    });
    // A storm: 10,000 notifications due for one sink, every 100th critical and the rest low,
    // and the delivery loop asking for the next 32 (its largest read).
    let storm: Vec<Notification> = (0..10_000u64)
        .map(|i| {
            let severity = if i % 100 == 99 { Severity::Critical } else { Severity::Low };
            note_for((1 << 40) | i, "storm", severity)
        })
        .collect();
    for (i, chunk) in storm.chunks(500).enumerate() {
        outbox.put_all(chunk, i as i64).expect("put_all");
    }
    group.throughput(Throughput::Elements(32));
    group.bench_function("due_for_32_of_10k", |b| {
        b.iter(|| {
            let due = outbox.due_for("storm", i64::MAX - 1, 32).expect("due_for");
            assert_eq!(due.len(), 32);
            black_box(due)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
