//! The outbox delivery loop against in-process fake sinks and a slow HTTP receiver: retries,
//! dead letters, a hanging sink beside a healthy one, several sends in flight, severity order,
//! Slack's pace, restarts (a dropped handle, a stop, a SIGKILLed process) and a state file
//! from before severity order.
// clippy.toml allows unwrap in `#[test]` functions only; the fake sink and the helpers here are
// test code too, where a failure should panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logwarden::route::notification::{Kind, Notification};
use logwarden::rule::Severity;
use logwarden::sink::outbox::{DeliveryStats, Outbox, RetryPolicy, SystemClock, deliver};
use logwarden::sink::{BoxFuture, Sink, SinkError};

fn note(id: &str, sink: &str) -> Notification {
    Notification {
        id: id.to_owned(),
        sink: sink.to_owned(),
        route: "default".to_owned(),
        kind: Kind::New,
        group: Default::default(),
        severity: Severity::High,
        title: format!("alert {id}"),
        alerts: vec![serde_json::json!({"rule": "ssh-brute-force"})],
        suppressed: 0,
        created: "2026-11-23T09:00:00Z".to_owned(),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 5,
        base: Duration::from_millis(5),
        max: Duration::from_millis(20),
        send_timeout: Duration::from_secs(5),
    }
}

/// What a fake sink does with each call.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Fails with `Retriable` this many times, then accepts.
    FailThenAccept(u32),
    /// Always fails with `Permanent`.
    Reject,
    /// Never answers.
    Hang,
    /// Appends the id to a file (synced), after a short pause that leaves room for a kill.
    AppendToFile,
}

struct FakeSink {
    behaviour: Behaviour,
    calls: AtomicU32,
    accepted: Mutex<Vec<String>>,
    file: Option<std::path::PathBuf>,
    concurrency: NonZeroUsize,
    /// Sends running now, and the most seen at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl FakeSink {
    fn new(behaviour: Behaviour) -> Arc<FakeSink> {
        Arc::new(FakeSink::with(behaviour, None, 1))
    }

    fn appending_with(path: &Path, concurrency: usize) -> Arc<FakeSink> {
        Arc::new(FakeSink::with(Behaviour::AppendToFile, Some(path), concurrency))
    }

    fn with(behaviour: Behaviour, file: Option<&Path>, concurrency: usize) -> FakeSink {
        FakeSink {
            behaviour,
            calls: AtomicU32::new(0),
            accepted: Mutex::default(),
            file: file.map(Path::to_path_buf),
            concurrency: NonZeroUsize::new(concurrency).unwrap(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        }
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Sink for FakeSink {
    fn concurrency(&self) -> NonZeroUsize {
        self.concurrency
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let result = self.send_inner(n).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

impl FakeSink {
    async fn send_inner(&self, n: &Notification) -> Result<(), SinkError> {
        {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            match self.behaviour {
                Behaviour::FailThenAccept(k) if call < k => {
                    return Err(SinkError::Retriable(format!("503 on call {call}")));
                }
                Behaviour::FailThenAccept(_) => {}
                Behaviour::Reject => return Err(SinkError::Permanent("400 bad request".into())),
                Behaviour::Hang => std::future::pending::<()>().await,
                Behaviour::AppendToFile => {
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    let path = self.file.as_ref().unwrap();
                    let mut f =
                        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
                    // One write per line, so lines from sends in flight together never mix.
                    f.write_all(format!("{}\n", n.id).as_bytes()).unwrap();
                    f.sync_data().unwrap();
                }
            }
            self.accepted.lock().unwrap().push(n.id.clone());
            Ok(())
        }
    }
}

/// Runs the delivery loop in the background; `stop` ends it and returns its counters.
struct Running {
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<HashMap<String, DeliveryStats>>,
}

impl Running {
    fn start(
        outbox: &Arc<Outbox>,
        sinks: &[(&str, Arc<FakeSink>)],
        policy: RetryPolicy,
    ) -> Running {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let sinks =
            sinks.iter().map(|(name, s)| (name.to_string(), s.clone() as Arc<dyn Sink>)).collect();
        let task = tokio::spawn(deliver(outbox.clone(), sinks, policy, rx, Arc::new(SystemClock)));
        Running { shutdown, task }
    }

    async fn stop(self) -> HashMap<String, DeliveryStats> {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap()
    }
}

async fn wait_until(what: &str, done: impl FnMut() -> bool) {
    wait_until_within(what, Duration::from_secs(20), done).await;
}

async fn wait_until_within(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn temp_outbox() -> (tempfile::TempDir, Arc<Outbox>) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path().join("state.redb")).unwrap());
    (dir, outbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_twice_then_delivered_exactly_once() {
    let (_dir, outbox) = temp_outbox();
    let sink = FakeSink::new(Behaviour::FailThenAccept(2));
    let run = Running::start(&outbox, &[("webhook", sink.clone())], fast_policy());
    outbox.put(&note("n1", "webhook"), now()).unwrap();
    wait_until("delivery", || sink.accepted().len() == 1).await;
    wait_until("the outbox to empty", || outbox.pending_len().unwrap() == 0).await;
    let stats = run.stop().await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 3);
    assert_eq!(sink.accepted(), ["n1"]);
    assert_eq!(stats["webhook"], DeliveryStats { delivered: 1, retried: 2, dead: 0 });
    assert!(outbox.dead_list().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failure_is_dead_and_not_retried() {
    let (_dir, outbox) = temp_outbox();
    let sink = FakeSink::new(Behaviour::Reject);
    outbox.put(&note("n1", "webhook"), now()).unwrap();
    let run = Running::start(&outbox, &[("webhook", sink.clone())], fast_policy());
    wait_until("the dead letter", || outbox.dead_list().unwrap().len() == 1).await;
    // Several backoff periods: a retry would have happened by now.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = run.stop().await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 1);
    assert_eq!(stats["webhook"], DeliveryStats { delivered: 0, retried: 0, dead: 1 });
    assert_eq!(outbox.pending_len().unwrap(), 0);
    assert_eq!(outbox.dead_list().unwrap()[0].last_error, "permanent failure: 400 bad request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_budget_spent_goes_dead() {
    let (_dir, outbox) = temp_outbox();
    let sink = FakeSink::new(Behaviour::FailThenAccept(u32::MAX));
    outbox.put(&note("n1", "webhook"), now()).unwrap();
    let run = Running::start(&outbox, &[("webhook", sink.clone())], fast_policy());
    wait_until("the dead letter", || outbox.dead_list().unwrap().len() == 1).await;
    let stats = run.stop().await;
    assert_eq!(sink.calls.load(Ordering::SeqCst), 5);
    assert_eq!(stats["webhook"], DeliveryStats { delivered: 0, retried: 4, dead: 1 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_sink_does_not_delay_another() {
    let (_dir, outbox) = temp_outbox();
    let slow = FakeSink::new(Behaviour::Hang);
    let fast = FakeSink::new(Behaviour::FailThenAccept(0));
    let policy = RetryPolicy { send_timeout: Duration::from_secs(3), ..fast_policy() };
    let run = Running::start(&outbox, &[("slow", slow.clone()), ("fast", fast.clone())], policy);
    outbox.put(&note("s1", "slow"), now()).unwrap();
    wait_until("the slow sink's call", || slow.calls.load(Ordering::SeqCst) == 1).await;
    let start = Instant::now();
    for i in 0..5 {
        outbox.put(&note(&format!("f{i}"), "fast"), now()).unwrap();
    }
    wait_until("the fast sink's deliveries", || fast.accepted().len() == 5).await;
    let took = start.elapsed();
    assert!(took < Duration::from_secs(1), "fast sink took {took:?} beside a hanging one");
    assert!(slow.accepted().is_empty());
    // Shutdown waits for the attempt in flight, which the send timeout ends as a retriable
    // failure: the hanging notification stays pending.
    let stats = run.stop().await;
    assert_eq!(stats["fast"], DeliveryStats { delivered: 5, retried: 0, dead: 0 });
    assert_eq!(stats["slow"], DeliveryStats { delivered: 0, retried: 1, dead: 0 });
    let left = outbox.pending_list().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].last_error.as_deref(), Some("temporary failure: no answer within 3s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_queued_before_a_crash_are_delivered_once_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let outbox = Outbox::open(&path).unwrap();
        for i in 0..100 {
            outbox.put(&note(&format!("n{i:03}"), "webhook"), now()).unwrap();
        }
        // Dropped without delivering anything: what a kill right after the commits leaves.
    }
    let outbox = Arc::new(Outbox::open(&path).unwrap());
    assert_eq!(outbox.pending_len().unwrap(), 100);
    let sink = FakeSink::new(Behaviour::FailThenAccept(0));
    let run = Running::start(&outbox, &[("webhook", sink.clone())], fast_policy());
    wait_until("100 deliveries", || outbox.pending_len().unwrap() == 0).await;
    let stats = run.stop().await;
    let mut got = sink.accepted();
    got.sort();
    let want: Vec<String> = (0..100).map(|i| format!("n{i:03}")).collect();
    assert_eq!(got, want);
    assert_eq!(stats["webhook"].delivered, 100);
}

/// The environment variable that turns `sigkill_child` into the child process.
const CHILD_DIR: &str = "LOGWARDEN_OUTBOX_CHILD_DIR";
/// The child's sink concurrency.
const CHILD_CONCURRENCY: &str = "LOGWARDEN_OUTBOX_CHILD_CONCURRENCY";

/// A kill -9 in the middle of delivery: the child queues 100 notifications and delivers them
/// slowly to a file; the parent kills it a while in, restarts delivery from the same state
/// file, and checks every notification arrived, with at most the one in flight twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_nothing() {
    let all = sigkill_during_delivery(1).await;
    // One send at a time, so only the one between the receiver's acceptance and the outbox's
    // commit can arrive twice (the idempotency key's case).
    assert!(all.len() <= 101, "{} deliveries for 100 notifications", all.len());
}

/// The same with four sends in flight: nothing lost, and only what was in flight at the kill
/// (at most four) arrives twice, each at most twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_delivery_loses_nothing_and_repeats_only_the_in_flight() {
    let all = sigkill_during_delivery(4).await;
    assert!(all.len() <= 104, "{} deliveries for 100 notifications", all.len());
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &all {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert!(counts.values().all(|&c| c <= 2), "{counts:?}");
}

/// Runs the child with `concurrency`, kills it after 20 deliveries, delivers the rest, checks
/// that all 100 arrived, and returns every delivery in order.
async fn sigkill_during_delivery(concurrency: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("delivered.log");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["outbox::sigkill_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_CONCURRENCY, concurrency.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect()
    };
    let start = Instant::now();
    while lines(&log).len() < 20 {
        assert!(start.elapsed() < Duration::from_secs(30), "the child delivered too little");
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = lines(&log).len();
    assert!(before < 100, "the kill came after everything was delivered");

    let outbox = Arc::new(Outbox::open(dir.path().join("state.redb")).unwrap());
    let sink = FakeSink::appending_with(&log, concurrency);
    let run = Running::start(&outbox, &[("file", sink.clone())], fast_policy());
    wait_until("the rest", || outbox.pending_len().unwrap() == 0).await;
    run.stop().await;
    assert!(sink.max_in_flight.load(Ordering::SeqCst) <= concurrency);

    let all = lines(&log);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &all {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for i in 0..100 {
        assert!(counts.contains_key(format!("n{i:03}").as_str()), "n{i:03} was lost");
    }
    assert_eq!(counts.len(), 100);
    all
}

/// The child of `sigkill_during_delivery_loses_nothing`; does nothing when run on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of sigkill_during_delivery_loses_nothing"]
async fn sigkill_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let dir = std::path::PathBuf::from(dir);
    let outbox = Arc::new(Outbox::open(dir.join("state.redb")).unwrap());
    for i in 0..100 {
        outbox.put(&note(&format!("n{i:03}"), "file"), now()).unwrap();
    }
    let concurrency = std::env::var(CHILD_CONCURRENCY).ok().and_then(|c| c.parse().ok());
    let sink = FakeSink::appending_with(&dir.join("delivered.log"), concurrency.unwrap_or(1));
    let run = Running::start(&outbox, &[("file", sink)], fast_policy());
    // Runs until killed; the parent's timeout bounds it.
    tokio::time::sleep(Duration::from_secs(60)).await;
    run.stop().await;
}

fn now() -> i64 {
    use logwarden::sink::outbox::Clock;
    SystemClock.now_ns()
}

#[test]
fn outbox_list_and_retry_from_the_command_line() {
    use crate::cli::logwarden;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let outbox = Outbox::open(&path).unwrap();
        outbox.put(&note("p1", "slack"), 0).unwrap();
        outbox.put(&note("d1", "webhook"), 0).unwrap();
        outbox.put(&note("d2", "email"), 0).unwrap();
        let policy = fast_policy();
        outbox.failed("p1", 0, &SinkError::Retriable("503".into()), &policy).unwrap();
        outbox.failed("d1", 0, &SinkError::Permanent("400 bad request".into()), &policy).unwrap();
        outbox.failed("d2", 0, &SinkError::Permanent("550 no such user".into()), &policy).unwrap();
    }
    let state = path.to_str().unwrap();
    let list = logwarden(["outbox", "list", "--state", state]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", list.stdout);
    assert!(lines[0].starts_with("pending p1 sink=slack attempts=1 next=1970-01-01T00:00:00Z"));
    assert!(lines[0].ends_with("last_error=temporary failure: 503"), "{}", lines[0]);
    assert_eq!(
        lines[1],
        "dead    d1 sink=webhook attempts=1 dead_at=1970-01-01T00:00:00Z \
         error=permanent failure: 400 bad request"
    );
    assert!(lines[2].starts_with("dead    d2 sink=email"), "{}", lines[2]);

    let one = logwarden(["outbox", "retry", "--state", state, "d1"]);
    assert_eq!((one.code, one.stdout.as_str()), (0, "1 dead letter re-queued\n"));
    let none = logwarden(["outbox", "retry", "--state", state, "nope"]);
    assert_eq!((none.code, none.stdout.as_str()), (1, "0 dead letters re-queued\n"));
    let rest = logwarden(["outbox", "retry", "--state", state]);
    assert_eq!((rest.code, rest.stdout.as_str()), (0, "1 dead letter re-queued\n"));
    let outbox = Outbox::open(&path).unwrap();
    assert!(outbox.dead_list().unwrap().is_empty());
    assert_eq!(outbox.pending_len().unwrap(), 3);
}

/// An HTTP receiver that is slow on purpose: each request waits `delay`, and the first `hold`
/// requests also wait until `hold` of them are in flight together (or `open` is called), so
/// a test sees sends overlap however loaded the machine is. It records the order requests
/// arrived in (by Idempotency-Key) and the most in flight at once.
#[derive(Default)]
struct SlowHook {
    delay: Duration,
    hold: usize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    order: Mutex<Vec<String>>,
    arrived: Mutex<Vec<Instant>>,
    gate: tokio::sync::Notify,
    open: std::sync::atomic::AtomicBool,
    /// Opened by the test only (not when `hold` requests are in flight).
    manual: bool,
}

impl SlowHook {
    async fn start(delay: Duration, hold: usize) -> (Arc<SlowHook>, std::net::SocketAddr) {
        let hook = Arc::new(SlowHook { delay, hold, ..SlowHook::default() });
        let app = axum::Router::new().fallback(handle_slow).with_state(Arc::clone(&hook));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, addr)
    }

    /// Holds the first request until the test calls [`SlowHook::open`].
    async fn start_gated() -> (Arc<SlowHook>, std::net::SocketAddr) {
        let hook = Arc::new(SlowHook { hold: 1, manual: true, ..SlowHook::default() });
        let app = axum::Router::new().fallback(handle_slow).with_state(Arc::clone(&hook));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        (hook, addr)
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    fn order(&self) -> Vec<String> {
        self.order.lock().unwrap().clone()
    }
}

async fn handle_slow(
    axum::extract::State(h): axum::extract::State<Arc<SlowHook>>,
    headers: axum::http::HeaderMap,
) -> &'static str {
    let now = h.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    h.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    let arrival = {
        let mut order = h.order.lock().unwrap();
        order.push(key);
        h.arrived.lock().unwrap().push(Instant::now());
        order.len()
    };
    if !h.manual && now >= h.hold && h.hold > 0 {
        h.open();
    }
    if arrival <= h.hold {
        // Generous: if the sends never overlap, the test's own assertions say so.
        let wait = async {
            loop {
                let notified = h.gate.notified();
                if h.open.load(Ordering::SeqCst) {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(20), wait).await;
    }
    tokio::time::sleep(h.delay).await;
    h.in_flight.fetch_sub(1, Ordering::SeqCst);
    "ok"
}

fn webhook(addr: std::net::SocketAddr, extra: &str) -> Arc<dyn Sink> {
    let yaml = format!("type: webhook\nurl: http://{addr}/\n{extra}");
    let cfg: logwarden::sink::SinkConfig = serde_saphyr::from_str(&yaml).unwrap();
    logwarden::sink::build("hook", &cfg).unwrap()
}

fn start_with(outbox: &Arc<Outbox>, name: &str, sink: Arc<dyn Sink>) -> Running {
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let sinks = HashMap::from([(name.to_owned(), sink)]);
    let task =
        tokio::spawn(deliver(outbox.clone(), sinks, fast_policy(), rx, Arc::new(SystemClock)));
    Running { shutdown, task }
}

fn note_sev(id: &str, sink: &str, severity: Severity) -> Notification {
    Notification { severity, ..note(id, sink) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_gets_exactly_its_concurrency_in_flight() {
    for (concurrency, extra) in [(4, ""), (2, "concurrency: 2\n"), (6, "concurrency: 6\n")] {
        let (_dir, outbox) = temp_outbox();
        let (hook, addr) = SlowHook::start(Duration::from_millis(20), concurrency).await;
        let ns: Vec<Notification> = (0..30).map(|i| note(&format!("n{i:02}"), "hook")).collect();
        outbox.put_all(&ns, now()).unwrap();
        let run = start_with(&outbox, "hook", webhook(addr, extra));
        wait_until("the outbox to empty", || outbox.pending_len().unwrap() == 0).await;
        let stats = run.stop().await;
        assert_eq!(stats["hook"], DeliveryStats { delivered: 30, retried: 0, dead: 0 });
        // The first `concurrency` were held until that many were in flight together: the
        // loop filled every slot, and never one more.
        assert_eq!(hook.max_in_flight.load(Ordering::SeqCst), concurrency, "{extra:?}");
        let mut got = hook.order();
        got.sort();
        let want: Vec<String> = ns.iter().map(|n| n.id.clone()).collect();
        assert_eq!(got, want, "each exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_critical_queued_after_a_thousand_lows_goes_before_the_rest() {
    let (_dir, outbox) = temp_outbox();
    // One at a time, and the first send held until the test lets it go (with a hold of one
    // that opens itself, the second low could be taken before the critical was queued).
    let (hook, addr) = SlowHook::start_gated().await;
    let lows: Vec<Notification> =
        (0..1000).map(|i| note_sev(&format!("low-{i:04}"), "hook", Severity::Low)).collect();
    outbox.put_all(&lows, now()).unwrap();
    let run = start_with(&outbox, "hook", webhook(addr, "concurrency: 1\n"));
    wait_until("the first low in flight", || hook.order().len() == 1).await;
    outbox.put(&note_sev("crit", "hook", Severity::Critical), now()).unwrap();
    hook.open();
    // A commit (one fsync) per delivery, one at a time: about 20 s on this machine's disk.
    let drained = || outbox.pending_len().unwrap() == 0;
    wait_until_within("1001 deliveries", Duration::from_secs(300), drained).await;
    let stats = run.stop().await;
    assert_eq!(stats["hook"].delivered, 1001);
    let order = hook.order();
    let mut want = vec!["low-0000".to_owned(), "crit".to_owned()];
    want.extend((1..1000).map(|i| format!("low-{i:04}")));
    assert_eq!(order, want);
    assert_eq!(hook.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_during_concurrent_delivery_then_restarted_sends_each_id_once() {
    let (_dir, outbox) = temp_outbox();
    let path = outbox.path().to_path_buf();
    let log = path.with_file_name("delivered.log");
    for i in 0..100 {
        outbox.put(&note(&format!("n{i:03}"), "file"), now()).unwrap();
    }
    let first = FakeSink::appending_with(&log, 4);
    let run = Running::start(&outbox, &[("file", first.clone())], fast_policy());
    wait_until("20 deliveries", || first.accepted().len() >= 20).await;
    let stats = run.stop().await;
    // Stopping waited for the sends in flight and recorded them: what the sink took and
    // what is still pending add up exactly.
    let taken = first.accepted().len();
    assert!(taken < 100, "stopped too late to test anything");
    assert_eq!(stats["file"].delivered as usize, taken);
    assert_eq!(outbox.pending_len().unwrap() as usize, 100 - taken);
    assert_eq!(first.max_in_flight.load(Ordering::SeqCst), 4);
    drop(outbox);

    let outbox = Arc::new(Outbox::open(&path).unwrap());
    let second = FakeSink::appending_with(&log, 4);
    let run = Running::start(&outbox, &[("file", second.clone())], fast_policy());
    wait_until("the rest", || outbox.pending_len().unwrap() == 0).await;
    run.stop().await;
    let mut all: Vec<String> =
        std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(all.len(), 100, "a notification was sent twice or lost");
    all.sort();
    let want: Vec<String> = (0..100).map(|i| format!("n{i:03}")).collect();
    assert_eq!(all, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_from_before_severity_order_is_delivered_after_upgrade() {
    // The tables as the previous version wrote them, by hand: records (version 1 JSON) in
    // outbox_pending, indexed by outbox_by_time and outbox_by_sink (sink, next attempt, id).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        const PENDING: redb::TableDefinition<&str, &[u8]> =
            redb::TableDefinition::new("outbox_pending");
        const DEAD: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("outbox_dead");
        const BY_TIME: redb::TableDefinition<(i64, &str), ()> =
            redb::TableDefinition::new("outbox_by_time");
        const BY_SINK: redb::TableDefinition<(&str, i64, &str), ()> =
            redb::TableDefinition::new("outbox_by_sink");
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut pending = txn.open_table(PENDING).unwrap();
            let mut by_time = txn.open_table(BY_TIME).unwrap();
            let mut by_sink = txn.open_table(BY_SINK).unwrap();
            txn.open_table(DEAD).unwrap();
            let old = [
                ("old-low", Severity::Low, 1_000),
                ("old-info", Severity::Info, 2_000),
                ("old-crit", Severity::Critical, 3_000),
                ("old-high", Severity::High, 4_000),
            ];
            for (id, severity, at) in old {
                let n = note_sev(id, "hook", severity);
                let record = serde_json::json!({
                    "version": "1", "notification": n, "attempts": 0, "next_attempt_ns": at,
                    "last_error": null, "dead_at_ns": null, "queued_ns": at,
                });
                pending.insert(id, serde_json::to_vec(&record).unwrap().as_slice()).unwrap();
                by_time.insert((at, id), ()).unwrap();
                by_sink.insert(("hook", at, id), ()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let outbox = Arc::new(Outbox::open(&path).unwrap());
    assert_eq!(outbox.pending_for("hook").unwrap(), 4);
    let sink = FakeSink::new(Behaviour::FailThenAccept(0));
    let run = Running::start(&outbox, &[("hook", sink.clone())], fast_policy());
    wait_until("the old records delivered", || outbox.pending_len().unwrap() == 0).await;
    let stats = run.stop().await;
    assert_eq!(stats["hook"].delivered, 4);
    assert_eq!(sink.accepted(), ["old-crit", "old-high", "old-low", "old-info"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_is_paced_one_message_a_second_by_default() {
    let (hook, addr) = SlowHook::start(Duration::ZERO, 0).await;
    let (_dir, outbox) = temp_outbox();
    let ns: Vec<Notification> = (0..3).map(|i| note(&format!("s{i}"), "slack")).collect();
    outbox.put_all(&ns, now()).unwrap();
    let yaml = format!("type: slack\nwebhook_url: http://{addr}/services/T/B/x\n");
    let cfg: logwarden::sink::SinkConfig = serde_saphyr::from_str(&yaml).unwrap();
    let start = Instant::now();
    let run = start_with(&outbox, "slack", logwarden::sink::build("slack", &cfg).unwrap());
    wait_until("three messages", || outbox.pending_len().unwrap() == 0).await;
    run.stop().await;
    assert_eq!(hook.order(), ["s0", "s1", "s2"]);
    // Turns are a second apart from the first, so the third cannot have come sooner than two
    // seconds after the start (a bound a slow machine cannot break; only a missing pace can).
    let arrived = hook.arrived.lock().unwrap().clone();
    let third = arrived[2].duration_since(start);
    assert!(third >= Duration::from_millis(1990), "third message after {third:?}");
    assert_eq!(hook.max_in_flight.load(Ordering::SeqCst), 1);
}
