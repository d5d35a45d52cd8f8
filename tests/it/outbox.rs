//! The outbox delivery loop against in-process fake sinks: retries, dead letters, a hanging
//! sink beside a healthy one, and restarts (a dropped handle, and a SIGKILLed process).
// clippy.toml allows unwrap in `#[test]` functions only; the fake sink and the helpers here are
// test code too, where a failure should panic.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
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
}

impl FakeSink {
    fn new(behaviour: Behaviour) -> Arc<FakeSink> {
        Arc::new(FakeSink {
            behaviour,
            calls: AtomicU32::new(0),
            accepted: Mutex::default(),
            file: None,
        })
    }

    fn appending(path: &Path) -> Arc<FakeSink> {
        Arc::new(FakeSink {
            behaviour: Behaviour::AppendToFile,
            calls: AtomicU32::new(0),
            accepted: Mutex::default(),
            file: Some(path.to_path_buf()),
        })
    }

    fn accepted(&self) -> Vec<String> {
        self.accepted.lock().unwrap().clone()
    }
}

impl Sink for FakeSink {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
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
                    writeln!(f, "{}", n.id).unwrap();
                    f.sync_data().unwrap();
                }
            }
            self.accepted.lock().unwrap().push(n.id.clone());
            Ok(())
        })
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

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
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

/// A kill -9 in the middle of delivery: the child queues 100 notifications and delivers them
/// slowly to a file; the parent kills it a while in, restarts delivery from the same state
/// file, and checks every notification arrived, with at most the one in flight twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("delivered.log");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["outbox::sigkill_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
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
    let sink = FakeSink::appending(&log);
    let run = Running::start(&outbox, &[("file", sink)], fast_policy());
    wait_until("the rest", || outbox.pending_len().unwrap() == 0).await;
    run.stop().await;

    let all = lines(&log);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &all {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for i in 0..100 {
        assert!(counts.contains_key(format!("n{i:03}").as_str()), "n{i:03} was lost");
    }
    // One sink sends one notification at a time, so only the one between the receiver's
    // acceptance and the outbox's commit can arrive twice (the idempotency key's case).
    assert!(all.len() <= 101, "{} deliveries for 100 notifications", all.len());
    assert_eq!(counts.len(), 100);
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
    let sink = FakeSink::appending(&dir.join("delivered.log"));
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
