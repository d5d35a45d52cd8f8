//! The latency routing adds to an alert, network excluded: from the alert reaching the
//! dispatcher (router decision, the durable outbox write) to a sink task calling `send`, with
//! a route that does not wait (`group_wait: 0s`) and a sink that accepts at once. Reported as
//! criterion's time per alert and as hdrhistogram percentiles.

// A bench that cannot set up should stop loudly, not measure something else.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use logwarden::alert::{Alert, AlertSink, fingerprint};
use logwarden::event::{Event, Timestamp};
use logwarden::route::dispatch::Dispatcher;
use logwarden::route::notification::Notification;
use logwarden::route::router::{Route, Router, RouterConfig};
use logwarden::rule::Severity;
use logwarden::rule::duration::Span;
use logwarden::sink::outbox::{Outbox, RetryPolicy, SystemClock, deliver};
use logwarden::sink::{BoxFuture, Sink, SinkError};

/// Accepts every notification and tells the bench when.
struct Signal(tokio::sync::mpsc::UnboundedSender<Instant>);

impl Sink for Signal {
    fn send<'a>(&'a self, _: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        let _ = self.0.send(Instant::now());
        Box::pin(async { Ok(()) })
    }
}

fn alert(i: u64) -> Alert {
    let ip = format!("198.51.100.{}", i % 250);
    let group = vec![("source.ip".to_owned(), ip.clone())];
    Alert {
        rule_id: "ssh-bruteforce".into(),
        rule_title: "SSH brute force".into(),
        severity: Severity::High,
        tags: vec!["attack.t1110".into()],
        title: format!("SSH brute force from {ip}"),
        fingerprint: fingerprint(&format!("ssh-bruteforce-{i}"), &group),
        group,
        count: 5,
        first_seen: Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000),
        last_seen: Timestamp(1_700_000_000_000_000_000 + i as i64 * 1_000_000),
        events: Vec::new(),
        sample: vec![Event::default()],
        detail: None,
        explain: None,
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = Arc::new(Outbox::open(dir.path().join("state.redb")).expect("outbox"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sinks: HashMap<String, Arc<dyn Sink>> =
        HashMap::from([("hook".to_owned(), Arc::new(Signal(tx)) as Arc<dyn Sink>)]);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let delivery = runtime.spawn(deliver(
        outbox.clone(),
        sinks,
        RetryPolicy::default(),
        stopped,
        Arc::new(SystemClock),
    ));
    let config = RouterConfig {
        routes: vec![Route {
            name: "now".into(),
            matcher: Default::default(),
            sinks: vec!["hook".into()],
            cont: false,
            send_resolved: false,
            group_by: vec!["rule.id".into(), "fingerprint".into()],
            group_wait: Span(0),
            group_interval: Span::from_secs(300),
            repeat_interval: Span::from_secs(4 * 3600),
        }],
        ..RouterConfig::default()
    };
    let dispatcher =
        Mutex::new(Dispatcher::new(Router::new(config), outbox, Arc::new(SystemClock), None));
    let histogram =
        Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram"));
    let mut next = 0u64;
    let mut g = c.benchmark_group("dispatch");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("alert_to_sink", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                next += 1;
                // Every alert is new (its own fingerprint), so each makes one notification.
                let a = alert(next);
                let start = Instant::now();
                dispatcher.lock().expect("dispatcher").alert(a).expect("dispatched");
                let sent = rx.blocking_recv().expect("delivered");
                let took = sent.duration_since(start);
                histogram.lock().expect("histogram").saturating_record(took.as_nanos() as u64);
                total += took;
            }
            total
        })
    });
    g.finish();
    stop.send_replace(true);
    runtime.block_on(delivery).expect("delivery stops");
    let h = histogram.lock().expect("histogram");
    println!(
        "dispatch/alert_to_sink latency  p50 {} us  p99 {} us  p99.9 {} us  max {} us  ({} alerts)",
        h.value_at_quantile(0.5) / 1000,
        h.value_at_quantile(0.99) / 1000,
        h.value_at_quantile(0.999) / 1000,
        h.max() / 1000,
        h.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
