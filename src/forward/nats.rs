//! NATS JetStream (DESIGN §7): forwarders publish each event to `{subject}.{partition}`, the
//! partition chosen by the `partition_by` fields so that all events of one key reach the same
//! detector; detectors read one partition each with [`consume`], a durable pull consumer.
//!
//! The partition is `FNV-1a-64(key) % partitions`, where the key is the `partition_by` values
//! as a rule's `group_by` renders them (unit-separated, `-` for an absent field). Every agent
//! must compute the same partition for the same key, so this function is part of the wire
//! format: change it only with a new subject.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::ContextBuilder;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, Context, stream};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};

use super::buffer::Entry;
use super::{ForwardError, NatsConfig, NatsSourceConfig};
use crate::event::{Event, Sym, Timestamp};
use crate::rule::group::GroupBy;
use crate::sink::outbox::RetryPolicy;
use crate::source::{Batch, Origin, RawRecord, SourceCounters};

/// The publishing side: one connection, made at the first send and kept (the client
/// reconnects by itself after that).
pub struct NatsSender {
    cfg: NatsConfig,
    fields: GroupBy,
    /// Prefix of every message id, so the stream's de-duplication tells a retried publish
    /// from another agent's message.
    instance: String,
    target: String,
    js: tokio::sync::Mutex<Option<Context>>,
}

impl NatsSender {
    /// A sender for `cfg`; `instance` is the buffer's id (see [`super::buffer::Buffer`]).
    pub fn new(cfg: &NatsConfig, instance: &str) -> NatsSender {
        NatsSender {
            fields: GroupBy::new(&cfg.partition_by),
            instance: instance.to_owned(),
            target: redacted(&cfg.url),
            cfg: cfg.clone(),
            js: tokio::sync::Mutex::new(None),
        }
    }

    /// The server, without credentials.
    pub fn target(&self) -> &str {
        &self.target
    }

    async fn context(&self) -> Result<Context, ForwardError> {
        let mut js = self.js.lock().await;
        if let Some(c) = js.as_ref() {
            return Ok(c.clone());
        }
        let client = connect(&self.cfg.url, self.cfg.timeout, &self.target).await?;
        let ctx = ContextBuilder::new().timeout(self.cfg.timeout).build(client);
        ensure_stream(&ctx, &self.cfg.stream, &self.cfg.subject, &self.target).await?;
        *js = Some(ctx.clone());
        Ok(ctx)
    }

    /// Publishes every event of `entries` to its partition, then waits for every ack; `Ok`
    /// only when the stream has stored them all.
    pub async fn send(&self, entries: &[Entry]) -> Result<(), ForwardError> {
        // Publishing waits for room in the client's queue, which a lost connection never
        // makes: bound the whole round so `run` gets the error and can back off and stop.
        let within = self.cfg.timeout.saturating_mul(2);
        let r = match tokio::time::timeout(within, self.publish(entries)).await {
            Ok(r) => r,
            Err(_) => Err(ForwardError::Unreachable {
                target: self.target.clone(),
                detail: format!("publishing a batch took over {within:?}"),
            }),
        };
        if r.is_err() {
            // Start over at the next attempt: a new connection, and the stream made again in
            // case the server lost it (a server restarted without its store).
            *self.js.lock().await = None;
        }
        r
    }

    async fn publish(&self, entries: &[Entry]) -> Result<(), ForwardError> {
        let js = self.context().await?;
        let nats = |detail: String| ForwardError::Nats { target: self.target.clone(), detail };
        // All publishes first, then the acks: one round trip for the batch, not one per event.
        let mut acks = Vec::with_capacity(entries.iter().map(|e| e.events as usize).sum());
        for e in entries {
            for (i, line) in e.lines().enumerate() {
                let subject = format!("{}.{}", self.cfg.subject, self.partition_of_line(&line));
                let id = format!("{}-{}-{i}", self.instance, e.seq);
                let msg = PublishMessage::build().payload(line).message_id(id);
                let ack = js
                    .send_publish(subject, msg)
                    .await
                    .map_err(|err| nats(format!("publish: {err}")))?;
                acks.push(ack);
            }
        }
        for ack in acks {
            ack.await.map_err(|err| nats(format!("publish not acknowledged: {err}")))?;
        }
        Ok(())
    }

    fn partition_of_line(&self, line: &[u8]) -> u32 {
        // The line was written by this forwarder from an Event, so it reads back; if it ever
        // did not, partition 0 still delivers it (in the wrong place rather than nowhere).
        match std::str::from_utf8(line).ok().and_then(|t| Event::from_json(t).ok()) {
            Some(e) => partition(&self.fields, &e, self.cfg.partitions.get()),
            None => 0,
        }
    }
}

/// The partition of `e`: FNV-1a-64 of its `fields` key, modulo `partitions`.
pub fn partition(fields: &GroupBy, e: &Event, partitions: u32) -> u32 {
    let key = fields.key_or_dash(e);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}

async fn connect(
    url: &str,
    timeout: Duration,
    target: &str,
) -> Result<async_nats::Client, ForwardError> {
    async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .connect(url)
        .await
        .map_err(|e| ForwardError::Unreachable { target: target.to_owned(), detail: e.to_string() })
}

/// Creates the stream (subjects `{subject}.>`, file storage) unless it exists.
async fn ensure_stream(
    js: &Context,
    name: &str,
    subject: &str,
    target: &str,
) -> Result<stream::Stream, ForwardError> {
    js.get_or_create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("{subject}.>")],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| ForwardError::Nats {
        target: target.to_owned(),
        detail: format!("stream `{name}`: {e}"),
    })
}

/// Reads partition `cfg.partition` with the durable consumer `cfg.durable_name()` until
/// `shutdown` (or until `tx` is closed), handing records downstream in batches: one record
/// per message, the ECS JSON line as it was published, numbered by its stream sequence.
///
/// A message is acknowledged only after its batch was accepted by `tx`; until then the server
/// keeps it (what was taken but not acknowledged when the process stops is delivered again).
/// While `tx` is full the messages are kept alive with "in progress" acks, so a slow pipeline
/// does not make the server deliver them twice. Connection and server errors are retried
/// forever with backoff; the function returns only at shutdown.
pub async fn consume(
    cfg: &NatsSourceConfig,
    name: Sym,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff = RetryPolicy {
        attempts: u32::MAX,
        base: Duration::from_millis(500),
        max: Duration::from_secs(30),
        send_timeout: Duration::ZERO,
    };
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() || tx.is_closed() {
            return;
        }
        match consume_once(cfg, &name, &tx, &counters, &mut shutdown, &mut failures).await {
            Ok(()) => return,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures.is_power_of_two() {
                    eprintln!("logwarden: source `{name}`: {e} (attempt {failures}); retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff.delay(failures)) => {}
                    r = shutdown.changed() => if r.is_err() { return },
                }
            }
        }
    }
}

/// One connection's worth of [`consume`]: `Ok` at shutdown, `Err` to reconnect.
async fn consume_once(
    cfg: &NatsSourceConfig,
    name: &Sym,
    tx: &mpsc::Sender<Batch>,
    counters: &SourceCounters,
    shutdown: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<(), ForwardError> {
    let target = redacted(&cfg.url);
    let nats = |detail: String| ForwardError::Nats { target: target.clone(), detail };
    let client = connect(&cfg.url, cfg.timeout, &target).await?;
    let js = jetstream::ContextBuilder::new().timeout(cfg.timeout).build(client.clone());
    let stream = ensure_stream(&js, &cfg.stream, &cfg.subject, &target).await?;
    let durable = cfg.durable_name();
    let max = cfg.batch_max_events.get();
    let consumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: format!("{}.{}", cfg.subject, cfg.partition),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: cfg.ack_wait,
                // Room for the batch being handed over and the one being fetched.
                // Batches wait for the daemon's commit (up to a second) before their ack:
                // room for many in flight.
                max_ack_pending: i64::try_from(max.saturating_mul(256)).unwrap_or(i64::MAX),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| nats(format!("consumer `{durable}`: {e}")))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(max)
        .messages()
        .await
        .map_err(|e| nats(format!("consumer `{durable}`: {e}")))?;
    if *failures > 0 {
        eprintln!(
            "logwarden: source `{name}`: reading `{durable}` again after {failures} failures"
        );
        *failures = 0;
    }
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            r = shutdown.changed() => {
                if r.is_err() || *shutdown.borrow() { return Ok(()) }
                continue;
            }
        };
        let mut batch = match first {
            Some(Ok(m)) => vec![m],
            Some(Err(e)) => return Err(nats(format!("consumer `{durable}`: {e}"))),
            None => return Err(nats(format!("consumer `{durable}`: message stream ended"))),
        };
        // Whatever else has arrived already goes in the same batch.
        while batch.len() < max {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => batch.push(m),
                _ => break,
            }
        }
        let now = Timestamp::now();
        let records: Vec<RawRecord> = batch
            .iter()
            .map(|m| RawRecord {
                bytes: m.payload.clone(),
                origin: Origin {
                    source: name.clone(),
                    record: m.info().map_or(0, |i| i.stream_sequence),
                    offset: 0,
                },
                received: Some(now),
            })
            .collect();
        let bytes: usize = records.iter().map(|r| r.bytes.len()).sum();
        let permit = loop {
            tokio::select! {
                p = tx.reserve() => match p {
                    Ok(p) => break p,
                    // Downstream is gone: what was not acknowledged is delivered again later.
                    Err(_) => return Ok(()),
                },
                _ = tokio::time::sleep(cfg.ack_wait / 3) => {
                    for m in &batch {
                        let _ = m.ack_with(AckKind::Progress).await;
                    }
                }
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return Ok(()) },
            }
        };
        counters.records_in.fetch_add(records.len() as u64, Ordering::Relaxed);
        counters.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        let (done, committed) = tokio::sync::oneshot::channel();
        permit.send(Batch { records, checkpoint: None, done: Some(done) });
        // Acknowledged only once the daemon committed what these messages led to: a crash
        // before that has JetStream deliver them again. Waiting here would allow one batch
        // per commit, so a task waits for each batch while the next are read.
        let acker = client.clone();
        tokio::spawn(async move {
            if committed.await.is_ok() {
                for m in &batch {
                    // A lost ack means one more delivery, not a loss.
                    let _ = m.ack().await;
                }
                let _ = acker.flush().await;
            }
        });
    }
}

/// `nats://user:pw@host:4222` -> `nats://host:4222`: credentials stay out of logs.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://{host}")
        }
        None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::{HashMap, HashSet};
    use std::num::{NonZeroU32, NonZeroUsize};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use super::*;
    use crate::forward::{ForwardConfig, Forwarder};

    const LIMIT: Duration = Duration::from_secs(60);

    #[test]
    fn partitions_are_stable_and_spread() {
        let f = GroupBy::new(&["host.name".to_owned()]);
        let ev = |h: &str| Event { host_name: Some(Sym::from(h)), ..Event::default() };
        // Pinned: every agent, every version, must agree.
        assert_eq!(partition(&f, &ev("web-1"), 4), partition(&f, &ev("web-1"), 4));
        let used: HashSet<u32> = (0..50).map(|i| partition(&f, &ev(&format!("h{i}")), 4)).collect();
        assert_eq!(used.len(), 4);
        assert_eq!(partition(&f, &ev("anything"), 1), 0);
        assert_eq!(redacted("nats://u:p@h:4222"), "nats://h:4222");
        assert_eq!(redacted("h:4222"), "h:4222");
    }

    /// A `nats-server -js` on a free loopback port, killed on drop.
    struct Server {
        child: Child,
        url: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn nats_server() -> Option<PathBuf> {
        ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    async fn start_server() -> Option<Server> {
        let Some(bin) = nats_server() else {
            assert!(
                std::env::var("CI").is_err(),
                "nats-server is not installed (apt-get install nats-server); required under CI"
            );
            println!("SKIPPED: nats-server is not installed");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir };
        let started = Instant::now();
        while async_nats::connect(&server.url).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(server)
    }

    fn event(i: usize) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(1_765_349_746 + i as i64, 0),
            host_name: Some(Sym::from(format!("host-{}", i % 13).as_str())),
            message: Some(format!("n={i}").into()),
            ..Event::default()
        }
    }

    fn number(line: &[u8]) -> (usize, String) {
        let e = Event::from_json(std::str::from_utf8(line).unwrap()).unwrap();
        let n = e.message.as_deref().unwrap().strip_prefix("n=").unwrap().parse().unwrap();
        (n, e.host_name.unwrap().as_str().to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwarded_events_reach_each_partition_exactly_once() {
        let Some(server) = start_server().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.redb");
        let cfg = ForwardConfig {
            http: None,
            nats: Some(NatsConfig {
                url: server.url.clone(),
                stream: "LOGWARDEN".into(),
                subject: "logwarden.events".into(),
                partitions: NonZeroU32::new(4).unwrap(),
                partition_by: vec!["host.name".into()],
                timeout: Duration::from_secs(10),
            }),
            batch_max_events: NonZeroUsize::new(250).unwrap(),
            batch_max_bytes: 4 << 20,
            batch_max_wait: Duration::from_millis(50),
            buffer_max_bytes: 64 << 20,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            r#where: None,
            fields: None,
        };
        let fwd = Arc::new(Forwarder::new(&cfg, crate::state::open(&path).unwrap(), path).unwrap());
        let (stop, stopped) = watch::channel(false);
        let run = tokio::spawn(Arc::clone(&fwd).run(stopped));
        let events: Vec<Event> = (0..1000).map(event).collect();
        let f = Arc::clone(&fwd);
        tokio::task::spawn_blocking(move || {
            for chunk in events.chunks(100) {
                f.enqueue(chunk).unwrap();
            }
        })
        .await
        .unwrap();
        let started = Instant::now();
        while fwd.stats().sent_events < 1000 {
            assert!(started.elapsed() < LIMIT, "forwarded only {:?}", fwd.stats());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let publish_time = started.elapsed();
        stop.send_replace(true);
        let stats = tokio::time::timeout(LIMIT, run).await.unwrap().unwrap();
        assert_eq!((stats.buffered_events, stats.retries), (0, 0), "{stats:?}");

        // One detector per partition.
        let mut by_partition: Vec<Vec<(usize, String)>> = Vec::new();
        for p in 0..4 {
            let src = NatsSourceConfig {
                url: server.url.clone(),
                stream: "LOGWARDEN".into(),
                subject: "logwarden.events".into(),
                partition: p,
                durable: None,
                batch_max_events: NonZeroUsize::new(100).unwrap(),
                timeout: Duration::from_secs(10),
                ack_wait: Duration::from_secs(30),
                max_silence: None,
            };
            let (tx, mut rx) = mpsc::channel(2);
            let (stop, stopped) = watch::channel(false);
            let counters = Arc::new(SourceCounters::default());
            let reader = tokio::spawn(async move {
                consume(&src, Sym::from("nats"), tx, counters, stopped).await
            });
            let mut got = Vec::new();
            // Everything is in the stream already: a second of quiet means the end.
            while let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                got.extend(b.records.iter().map(|r| number(&r.bytes)));
                // As the daemon does once the batch is committed: only then is it acked.
                if let Some(done) = b.done {
                    let _ = done.send(());
                }
            }
            stop.send_replace(true);
            drop(rx);
            tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
            by_partition.push(got);
        }
        let all: Vec<usize> = by_partition.iter().flatten().map(|(n, _)| *n).collect();
        let unique: HashSet<usize> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (1000, 1000), "every event exactly once");
        let mut home: HashMap<&str, usize> = HashMap::new();
        for (p, got) in by_partition.iter().enumerate() {
            // In order within a partition.
            let ns: Vec<usize> = got.iter().map(|(n, _)| *n).collect();
            assert!(ns.windows(2).all(|w| w[0] < w[1]), "partition {p} out of order");
            for (_, host) in got {
                assert_eq!(*home.entry(host).or_insert(p), p, "{host} in two partitions");
            }
        }
        let sizes: Vec<usize> = by_partition.iter().map(Vec::len).collect();
        assert!(sizes.iter().filter(|n| **n > 0).count() >= 2, "{sizes:?}");
        println!("nats: 1000 events published in {publish_time:?}, per partition {sizes:?}");

        // Acknowledged means gone: the same durable consumer gets nothing more.
        let src = NatsSourceConfig {
            url: server.url.clone(),
            stream: "LOGWARDEN".into(),
            subject: "logwarden.events".into(),
            partition: 0,
            durable: None,
            batch_max_events: NonZeroUsize::new(100).unwrap(),
            timeout: Duration::from_secs(10),
            ack_wait: Duration::from_secs(30),
            max_silence: None,
        };
        let (tx, mut rx) = mpsc::channel(2);
        let (stop, stopped) = watch::channel(false);
        let reader = tokio::spawn(async move {
            consume(&src, Sym::from("nats"), tx, Arc::new(SourceCounters::default()), stopped).await
        });
        assert!(tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.is_err());
        stop.send_replace(true);
        tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    }

    /// A detector that took messages but crashed before committing them (the batches' `done`
    /// dropped, never fired) has them delivered again after `ack_wait`; what it committed
    /// does not come back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_crashed_detector_did_not_commit_is_delivered_again() {
        let Some(server) = start_server().await else { return };
        let client = async_nats::connect(&server.url).await.unwrap();
        let js = jetstream::new(client);
        ensure_stream(&js, "LOGWARDEN", "logwarden.events", "test").await.unwrap();
        for i in 0..200 {
            let line = format!(r#"{{"@timestamp":"2025-12-10T06:55:46Z","message":"n={i}"}}"#);
            js.publish("logwarden.events.0", line.into()).await.unwrap().await.unwrap();
        }
        let src = NatsSourceConfig {
            url: server.url.clone(),
            stream: "LOGWARDEN".into(),
            subject: "logwarden.events".into(),
            partition: 0,
            durable: None,
            batch_max_events: NonZeroUsize::new(50).unwrap(),
            timeout: Duration::from_secs(10),
            ack_wait: Duration::from_secs(1),
            max_silence: None,
        };
        let message = |r: &RawRecord| {
            let e = Event::from_json(std::str::from_utf8(&r.bytes).unwrap()).unwrap();
            e.message.as_deref().unwrap().strip_prefix("n=").unwrap().parse::<usize>().unwrap()
        };
        // Reads until `want` records came or 3 s passed in silence; commits whole batches
        // while they stay within the first `commit` records and drops the rest uncommitted.
        // Gives the records and how many were committed.
        let run = |want: usize, commit: usize| {
            let src = src.clone();
            async move {
                let (tx, mut rx) = mpsc::channel(4);
                let (stop, stopped) = watch::channel(false);
                let counters = Arc::new(SourceCounters::default());
                let reader = tokio::spawn(async move {
                    consume(&src, Sym::from("nats"), tx, counters, stopped).await
                });
                let mut got = Vec::new();
                let mut committed = 0;
                while got.len() < want {
                    let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await
                    else {
                        break;
                    };
                    let n = b.records.len();
                    got.extend(b.records.iter().map(message));
                    if committed == got.len() - n && got.len() <= commit {
                        b.done.unwrap().send(()).unwrap();
                        committed = got.len();
                    }
                }
                stop.send_replace(true);
                drop(rx);
                tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
                (got, committed)
            }
        };
        // The first run commits about half and "crashes" with the rest taken.
        let (first, committed) = run(200, 100).await;
        assert_eq!(first, (0..200).collect::<Vec<_>>());
        assert!((1..200).contains(&committed), "{committed}");
        // Give the acks a moment to land, then let ack_wait expire for the rest.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // Until 3 s of quiet: at least once, so an uncommitted message may come twice (one
        // redelivered to the first run's pull request before its connection was gone), but
        // every one comes, and none of the committed ones.
        let (second, _) = run(usize::MAX, usize::MAX).await;
        let unique: std::collections::BTreeSet<usize> = second.iter().copied().collect();
        assert_eq!(
            unique.into_iter().collect::<Vec<_>>(),
            (committed..200).collect::<Vec<_>>(),
            "every uncommitted message again, no committed one: {second:?}"
        );
        // All committed now: nothing comes back.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(run(1, 1).await, (Vec::new(), 0));
    }
}
