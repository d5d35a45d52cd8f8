//! Routing end to end: `logwarden replay --rules DIR -c CONFIG FILE...` run as a user runs it,
//! with configs written into a tempdir and their sinks pointed at real receivers on loopback
//! (`receivers`). Each test states exactly what the receivers get and what the closing summary
//! on stderr says.
//!
//! The binary is another process, so the receivers run on the test's own tokio runtime while
//! the binary runs on its blocking pool ([`run`]).

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use logwarden::route::notification::{Kind, Notification};
use serde_json::Value;

use crate::cli::{self, Run};
use crate::receivers::{
    AIOSMTPD_MISSING, Recorded, Reply, aiosmtpd_available, assert_block_kit, delivered_mail,
    header, parse_mail, receiver, start_smtpd,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default rule pack.
fn pack() -> PathBuf {
    root().join("rules")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `logwarden ARGS...` with `vars` (and no other `LOGWARDEN_*`) on the blocking pool, so
/// the receivers on this runtime answer while it runs.
async fn run(args: &[&str], vars: &[(&str, String)]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let vars: Vec<(String, String)> =
        vars.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let run = tokio::task::spawn_blocking(move || {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cli::logwarden_env(&args, &vars)
    });
    // A failure inside (the deadline) fails the test with its own message.
    run.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// `replay --year 2026 --rules RULES -c CONFIG --wait 30s INPUTS...`: the year pins the
/// RFC 3164 lines' dates, and with them the router's clock; 30 s is far more than any test
/// here needs (and `cli::logwarden_env`'s deadline stops a run that ignores it).
async fn replay(rules: &Path, config: &Path, inputs: &[&Path]) -> Run {
    let mut args = vec!["replay", "--year", "2026", "--rules", s(rules), "-c", s(config)];
    args.extend(["--wait", "30s"]);
    args.extend(inputs.iter().map(|p| s(p)));
    run(&args, &[]).await
}

/// The closing summary of a replay with `-c`: from `routing:` to the end of stderr.
fn summary(stderr: &str) -> &str {
    let at = stderr.find("routing: ").unwrap_or_else(|| panic!("no routing summary:\n{stderr}"));
    stderr[at..].trim_end()
}

/// The alerts replay printed, one JSON object per stdout line.
fn alerts(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A webhook body, read as the Notification it must be (unknown fields are an error).
fn notification(r: &Recorded) -> Notification {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)))
}

fn key(r: &Recorded) -> &str {
    header(r, "idempotency-key").expect("Idempotency-Key")
}

/// A config with one webhook sink `hook` (plus `sink_extra` keys) taking every alert as soon as
/// it comes (`group_wait: 0s`), and quick retries. `tail` adds top-level sections.
fn hook_config(addr: SocketAddr, sink_extra: &str, tail: &str) -> String {
    format!(
        "state: state.redb
sinks:
  hook:
    type: webhook
    url: http://{addr}/hook
{sink_extra}routes:
  - name: all
    sinks: [hook]
    group_wait: 0s
    group_interval: 10s
delivery: {{base: 50ms, max: 200ms}}
{tail}"
    )
}

/// `sudo-not-in-sudoers` (single event, grouped by host and user, dedup 1h) fires once per line.
fn sudo_refused(time: &str, user: &str) -> String {
    format!(
        "Nov 22 {time} web1 sudo[100]:    {user} : user NOT in sudoers ; TTY=pts/1 ; \
         PWD=/home/{user} ; USER=root ; COMMAND=/bin/cat /etc/shadow\n"
    )
}

#[tokio::test]
async fn the_same_alert_twice_is_one_notification() {
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    let log = write(
        dir.path(),
        "auth.log",
        &(sudo_refused("10:00:06", "bob") + &sudo_refused("10:05:06", "bob")),
    );
    let r = replay(&pack(), &config, &[&log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let printed = alerts(&r.stdout);
    assert_eq!(printed.len(), 2, "{}", r.stdout);
    assert_eq!(printed[0]["fingerprint"], printed[1]["fingerprint"]);
    assert_eq!(
        summary(&r.stderr),
        "routing: 2 alerts, 1 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         1 notifications queued\n  sink hook: 1 delivered, 0 retried, 0 dead"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/hook");
    let n = notification(&reqs[0]);
    assert_eq!(key(&reqs[0]), n.id);
    assert_eq!((n.kind, n.route.as_str(), n.sink.as_str()), (Kind::New, "all", "hook"));
    assert_eq!(n.alerts.len(), 1);
    assert_eq!(n.alerts[0]["fingerprint"], printed[0]["fingerprint"]);
    assert_eq!(n.alerts[0]["last_seen"], "2026-11-22T10:00:06Z");
}

#[tokio::test]
async fn a_closed_stdout_stops_the_printing_not_the_routing() {
    // `replay -c | head -0`: the reader goes away before the first alert line; every alert
    // still reaches its channel and the run still says so.
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    let log: String = ["ann", "bob", "cid"]
        .iter()
        .enumerate()
        .map(|(i, u)| sudo_refused(&format!("10:0{i}:06"), u))
        .collect();
    let log = write(dir.path(), "auth.log", &log);
    let (config, log) = (s(&config).to_owned(), s(&log).to_owned());
    let (code, stderr) = tokio::task::spawn_blocking(move || {
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_logwarden"))
            .args(["replay", "--year", "2026", "--rules", s(&pack()), "-c", &config])
            .args(["--wait", "30s", &log])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        summary(&stderr),
        "routing: 3 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         3 notifications queued\n  sink hook: 3 delivered, 0 retried, 0 dead"
    );
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test]
async fn a_count_crossing_ten_is_one_update_and_no_more() {
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    // 15 failures from one address 10 s apart: ssh-bruteforce (5 in 10 min, then starts over)
    // fires at the 5th, 10th and 15th. Summed counts 5, 10, 15: the second crosses 10 (an
    // update), the third crosses nothing (deduplicated; the next step is 100).
    let log: String = (0..15)
        .map(|i| {
            format!(
                "Nov 22 09:{:02}:{:02} web1 sshd[200]: Failed password for root from \
                 198.51.100.7 port 4000 ssh2\n",
                i * 10 / 60,
                i * 10 % 60
            )
        })
        .collect();
    let log = write(dir.path(), "auth.log", &log);
    let r = replay(&pack(), &config, &[&log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let printed = alerts(&r.stdout);
    let rules: Vec<&str> = printed.iter().map(|a| a["rule"]["id"].as_str().unwrap()).collect();
    assert_eq!(rules, ["ssh-bruteforce"; 3], "{}", r.stdout);
    assert_eq!(
        summary(&r.stderr),
        "routing: 3 alerts, 1 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         2 notifications queued\n  sink hook: 2 delivered, 0 retried, 0 dead"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let ns: Vec<Notification> = reqs.iter().map(notification).collect();
    assert_eq!(ns.iter().map(|n| n.kind).collect::<Vec<_>>(), [Kind::New, Kind::Update]);
    assert_ne!(key(&reqs[0]), key(&reqs[1]));
    assert!(
        ns[1].title.starts_with("Update: SSH brute force from 198.51.100.7"),
        "{}",
        ns[1].title
    );
    let last_seen: Vec<&Value> = ns.iter().map(|n| &n.alerts[0]["last_seen"]).collect();
    assert_eq!(last_seen, ["2026-11-22T09:00:40Z", "2026-11-22T09:01:30Z"]);
    assert!(ns.iter().all(|n| n.alerts.len() == 1 && n.alerts[0]["count"] == 5));
}

/// Issue 14: the same file replayed twice in one run. The first pass's later lines move the
/// router's clock hours past the brute force's dedup window (1h); the second pass shows the
/// brute force again with the same event times, which is the same burst: deduplicated, not a
/// second `new` under a second idempotency key.
#[tokio::test]
async fn issue_14_a_burst_replayed_after_the_clock_moved_on_is_not_new_again() {
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    let mut log: String = (0..5)
        .map(|i| {
            format!(
                "Nov 22 09:00:{:02} web1 sshd[200]: Failed password for root from \
                 198.51.100.7 port 4000 ssh2\n",
                i * 10
            )
        })
        .collect();
    log += &sudo_refused("11:30:06", "bob");
    let log = write(dir.path(), "auth.log", &log);
    let r = replay(&pack(), &config, &[&log, &log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let decisions: Vec<(String, String)> = alerts(&r.stdout)
        .iter()
        .map(|a| {
            let id = a["rule"]["id"].as_str().unwrap().to_owned();
            (id, a["routing"]["decision"].as_str().unwrap().to_owned())
        })
        .collect();
    let want = [
        ("ssh-bruteforce", "new"),
        ("sudo-not-in-sudoers", "new"),
        ("ssh-bruteforce", "deduplicated"),
        ("sudo-not-in-sudoers", "deduplicated"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(decisions, want, "{}", r.stdout);
    let reqs = rx.requests();
    let ns: Vec<Notification> = reqs.iter().map(notification).collect();
    let got: Vec<(Kind, &str)> =
        ns.iter().map(|n| (n.kind, n.alerts[0]["rule"]["id"].as_str().unwrap())).collect();
    assert_eq!(got, [(Kind::New, "ssh-bruteforce"), (Kind::New, "sudo-not-in-sudoers")]);
}

#[tokio::test]
async fn a_receiver_down_three_times_gets_one_delivery_under_one_key() {
    let down = [Reply::Status(500), Reply::Status(500), Reply::Status(500)];
    let (rx, addr) = receiver(&down).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    let log = write(dir.path(), "auth.log", &sudo_refused("10:00:06", "bob"));
    let r = replay(&pack(), &config, &[&log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        summary(&r.stderr),
        "routing: 1 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         1 notifications queued\n  sink hook: 1 delivered, 3 retried, 0 dead"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 4);
    let n = notification(&reqs[0]);
    assert!(reqs.iter().all(|r| key(r) == n.id), "one key for every attempt");
    assert!(reqs.iter().all(|r| r.body == reqs[0].body), "the same bytes every attempt");
}

// Also holds a past deadlock: replay kept the stderr lock while the outbox drained, and the
// sink task's log line of the dead letter blocked the delivery runtime for good.
#[tokio::test]
async fn a_400_is_a_dead_letter_that_outbox_retry_and_the_next_replay_deliver() {
    let (rx, addr) = receiver(&[Reply::Status(400)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", ""));
    let state = dir.path().join("state.redb");
    let log = write(dir.path(), "auth.log", &sudo_refused("10:00:06", "bob"));
    let r = replay(&pack(), &config, &[&log]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let st = state.display();
    assert_eq!(
        summary(&r.stderr),
        format!(
            "routing: 1 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate \
             limits; 1 notifications queued\n  sink hook: 0 delivered, 0 retried, 1 dead\n  \
             dead letters stay in {st}: `logwarden outbox list|retry --state {st}`"
        )
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let id = key(&reqs[0]).to_owned();

    let list = run(&["outbox", "list", "--state", s(&state)], &[]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", list.stdout);
    assert!(lines[0].starts_with(&format!("dead    {id} sink=hook attempts=1 dead_at=")));
    assert!(
        lines[0].ends_with(&format!(
            " error=permanent failure: http://{addr} answered 400 Bad Request: invalid_payload"
        )),
        "{}",
        lines[0]
    );

    // The same input again routes to the same ids: the dead letter is not sent behind the
    // user's back, and the run says so and fails.
    let again = replay(&pack(), &config, &[&log]).await;
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(
        summary(&again.stderr),
        format!(
            "routing: 1 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate \
             limits; 0 notifications queued\n  sink hook: 0 delivered, 0 retried, 0 dead\n  \
             1 already dead letters from an earlier run, not sent again: `logwarden outbox \
             retry --state {st}` re-queues them"
        )
    );
    assert_eq!(rx.requests().len(), 1);

    let retry = run(&["outbox", "retry", "--state", s(&state)], &[]).await;
    assert_eq!((retry.code, retry.stdout.as_str()), (0, "1 dead letter re-queued\n"));

    // An input that raises nothing: the replay only delivers what the outbox holds.
    let empty = write(dir.path(), "empty.log", "");
    let r = replay(&pack(), &config, &[&empty]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        summary(&r.stderr),
        "routing: 0 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         0 notifications queued\n  sink hook: 1 delivered, 0 retried, 0 dead"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(key(&reqs[1]), id);
    assert_eq!(reqs[1].body, reqs[0].body);
    let list = run(&["outbox", "list", "--state", s(&state)], &[]).await;
    assert_eq!((list.code, list.stdout.as_str()), (0, ""), "{}", list.stderr);
}

#[tokio::test]
async fn a_hang_past_the_sink_timeout_is_retried_and_delivered_once() {
    let hang = Duration::from_secs(10);
    let (rx, addr) = receiver(&[Reply::Hang(hang)]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "    timeout: 300ms\n", ""));
    let log = write(dir.path(), "auth.log", &sudo_refused("10:00:06", "bob"));
    let t0 = Instant::now();
    let r = replay(&pack(), &config, &[&log]).await;
    let took = t0.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        summary(&r.stderr),
        "routing: 1 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate limits; \
         1 notifications queued\n  sink hook: 1 delivered, 1 retried, 0 dead"
    );
    // Given up on after the timeout, not answered late: the run ends long before the hang.
    assert!(took < hang - Duration::from_secs(2), "{took:?}");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(key(&reqs[0]), key(&reqs[1]));
    assert_eq!(key(&reqs[0]), notification(&reqs[0]).id);
}

#[tokio::test]
async fn a_silenced_alert_is_printed_and_counted_but_not_sent() {
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let silences = "silences:
  - id: bob-pentest
    match: {labels: {user.name: bob}}
    starts: 2026-11-22T00:00:00Z
    ends: 2026-11-23T00:00:00Z
    comment: bob's sanctioned test
";
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, "", silences));
    let log = write(
        dir.path(),
        "auth.log",
        &(sudo_refused("10:00:06", "bob") + &sudo_refused("10:00:07", "carol")),
    );
    let r = replay(&pack(), &config, &[&log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let users: Vec<String> =
        alerts(&r.stdout).iter().map(|a| a["group"]["user.name"].to_string()).collect();
    assert_eq!(users, ["\"bob\"", "\"carol\""], "both alerts are still printed");
    assert_eq!(
        summary(&r.stderr),
        "routing: 2 alerts, 0 deduplicated, 1 silenced, 0 unrouted, 0 held back by rate limits; \
         1 notifications queued\n  sink hook: 1 delivered, 0 retried, 0 dead"
    );
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1, "only carol's");
    let n = notification(&reqs[0]);
    assert_eq!(n.alerts.len(), 1);
    assert_eq!(n.alerts[0]["group"]["user.name"], "carol");
}

/// A single-event rule, one alert per failed login, grouped (and so fingerprinted) by address.
const STORM_RULE: &str = "id: storm-failed-login
title: Failed SSH login
severity: high
detection:
  failed:
    event.dataset: sshd
    event.action: ssh_login
    event.outcome: failure
  condition: failed
alert:
  title: \"Failed SSH login from {source.ip}\"
  group_by: [source.ip]
";

#[tokio::test]
async fn a_storm_of_ten_thousand_alerts_is_rate_limited_and_every_alert_accounted_for() {
    const ALERTS: u64 = 10_000;
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    write(&rules, "storm.yml", STORM_RULE);
    let limit = "    rate_limit: {count: 10, per: 1m, burst: 5}\n";
    let config = write(dir.path(), "logwarden.yml", &hook_config(addr, limit, ""));
    // 10,000 distinct addresses, 1,000 a second over 10 s of event time.
    let log: String = (0..ALERTS)
        .map(|i| {
            format!(
                "Nov 22 09:00:{:02} web1 sshd[300]: Failed password for root from 10.{}.{}.{} \
                 port 2222 ssh2\n",
                i / 1000,
                i / 62_500,
                i / 250 % 250,
                i % 250 + 1
            )
        })
        .collect();
    let log = write(dir.path(), "storm.log", &log);
    let r = replay(&rules, &config, &[&log]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count() as u64, ALERTS);

    let reqs = rx.requests();
    let ns: Vec<Notification> = reqs.iter().map(notification).collect();
    // The bound. The limit is a GCRA of one cell per 6 s (10 a minute) with a burst of 5, on
    // the router's clock (event time), and every notification but the very last summary takes
    // a cell. Within the storm's 9 s it grants at most 5 + floor(9 s / 6 s) = 6 (the first five
    // alerts, then a summary of what it held so far, or an alert). After the storm the router
    // sends one summary of all it still holds: at the final tick (10 s on) if the limit allows,
    // else past it from flush_held; never both, as each takes everything held. So <= 7.
    assert!(reqs.len() <= 7, "{} requests", reqs.len());
    let sent: u64 =
        ns.iter().filter(|n| n.kind != Kind::Summary).map(|n| n.alerts.len() as u64).sum();
    let summarized: u64 = ns.iter().filter(|n| n.kind == Kind::Summary).map(|n| n.suppressed).sum();
    assert_eq!(sent + summarized, ALERTS, "every alert sent or counted: {sent} + {summarized}");
    assert!(ns.iter().filter(|n| n.kind != Kind::Summary).all(|n| n.suppressed == 0));
    let summaries: Vec<&Notification> = ns.iter().filter(|n| n.kind == Kind::Summary).collect();
    assert!(!summaries.is_empty());
    for n in &summaries {
        assert_eq!(n.title, format!("{} alerts held back by the rate limit of hook", n.suppressed));
        assert!(n.alerts.len() <= 10, "examples only");
    }
    let ids: std::collections::BTreeSet<&str> = reqs.iter().map(key).collect();
    assert_eq!(ids.len(), reqs.len(), "one key per notification");
    assert_eq!(
        summary(&r.stderr),
        format!(
            "routing: {ALERTS} alerts, 0 deduplicated, 0 silenced, 0 unrouted, {summarized} held \
             back by rate limits; {n} notifications queued\n  sink hook: {n} delivered, 0 \
             retried, 0 dead",
            n = reqs.len()
        )
    );
}

/// What one webhook notification is about: route, the rule of each alert, and the source
/// address it is grouped by (the triage route groups by rule only).
type About = (String, Vec<String>, Option<String>);

fn about(route: &str, rules: &[&str], ip: Option<&str>) -> About {
    (route.to_owned(), rules.iter().map(|r| (*r).to_owned()).collect(), ip.map(str::to_owned))
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_shipped_example_config_routes_the_sample_logs_to_every_channel() {
    let (rx, addr) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.redb");
    let maildir = dir.path().join("Maildir");
    let smtpd = aiosmtpd_available().then(|| start_smtpd(&maildir));
    if smtpd.is_none() {
        eprintln!(
            "SKIPPED the mail part of the_shipped_example_config_routes_the_sample_logs_to_every_\
             channel: {AIOSMTPD_MISSING}"
        );
    }
    let smtp_port = smtpd.as_ref().map_or_else(closed_port, |d| d.port);
    let vars = [
        ("LOGWARDEN_WEBHOOK_URL", format!("http://{addr}/soc-webhook")),
        ("LOGWARDEN_WEBHOOK_SECRET", "s3cret".to_owned()),
        ("LOGWARDEN_SLACK_URL", format!("http://{addr}/services/T000/B000/XXXX")),
        ("LOGWARDEN_SMTP_HOST", "127.0.0.1".to_owned()),
        ("LOGWARDEN_SMTP_PORT", smtp_port.to_string()),
        ("LOGWARDEN_SMTP_TLS", "none".to_owned()),
        ("LOGWARDEN_STATE", s(&state).to_owned()),
    ];
    let examples = root().join("examples");
    let pack = pack();
    let config = examples.join("logwarden.yml");
    let (auth, trail) = (examples.join("auth.log"), examples.join("cloudtrail.json"));
    // Without a mail server the mail stays pending: wait only as long as the others need
    // (Slack's five go a second apart, its default pace).
    let wait = if smtpd.is_some() { "30s" } else { "8s" };
    let args = ["replay", "--year", "2026", "--rules", s(&pack), "-c", s(&config)];
    let args: Vec<&str> = args.into_iter().chain(["--wait", wait, s(&auth), s(&trail)]).collect();
    let r = run(&args, &vars).await;

    // The README's ten alerts, each printed.
    assert_eq!(alerts(&r.stdout).len(), 10, "{}", r.stdout);
    // What the routes make of them (group_wait is on event time, so the groups go as later
    // alerts move the clock on, and the rest at the final tick):
    // - page (>= critical, mail, continue): the brute force's success, at once.
    // - soc-urgent (>= high, Slack and webhook, per rule and source.ip): the brute force, the
    //   success, sudo, the privileged group change and StopLogging: 5 each. The brute force's
    //   two threshold firings share a fingerprint (the second sums the count to 10: an update)
    //   and both wait out group_wait in the group, so one notification carries that alert once,
    //   at its latest (count 5 of the second firing), still as new.
    // - soc-triage (the rest, webhook, per rule): the group change, the new user, the console
    //   login without MFA, the access key: 4.
    // No silence or rate limit applies: 1 + 5 + 5 + 4 = 15.
    let lines: Vec<&str> = summary(&r.stderr).lines().collect();
    assert_eq!(
        lines[0],
        "routing: 10 alerts, 0 deduplicated, 0 silenced, 0 unrouted, 0 held back by rate \
         limits; 15 notifications queued",
        "{}",
        r.stderr
    );
    assert_eq!(lines[2], "  sink soc-slack: 5 delivered, 0 retried, 0 dead");
    assert_eq!(lines[3], "  sink soc-webhook: 9 delivered, 0 retried, 0 dead");
    if smtpd.is_some() {
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(lines.len(), 4, "{}", r.stderr);
        assert_eq!(lines[1], "  sink oncall-mail: 1 delivered, 0 retried, 0 dead");
    } else {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(lines[1].starts_with("  sink oncall-mail: 0 delivered, "), "{}", lines[1]);
        assert!(lines[4].starts_with("  1 still pending in "), "{}", r.stderr);
    }

    let reqs = rx.requests();
    let (slack, hook): (Vec<&Recorded>, Vec<&Recorded>) =
        reqs.iter().partition(|r| r.path == "/services/T000/B000/XXXX");
    assert!(hook.iter().all(|r| r.path == "/soc-webhook"));
    assert_eq!((slack.len(), hook.len()), (5, 9));

    let mut got: Vec<About> = hook
        .iter()
        .map(|r| {
            let n = notification(r);
            assert_eq!(key(r), n.id);
            let ts: i64 = header(r, "x-logwarden-timestamp").unwrap().parse().unwrap();
            let sig = logwarden::sink::webhook::signature(b"s3cret", ts, &r.body);
            assert_eq!(header(r, "x-logwarden-signature"), Some(format!("sha256={sig}").as_str()));
            assert_eq!((n.sink.as_str(), n.kind, n.suppressed), ("soc-webhook", Kind::New, 0));
            assert_eq!(n.group["rule.id"], n.alerts[0]["rule"]["id"]);
            assert_eq!(n.alerts.len(), 1, "{}", n.title);
            let rules: Vec<&str> =
                n.alerts.iter().map(|a| a["rule"]["id"].as_str().unwrap()).collect();
            about(&n.route, &rules, n.group.get("source.ip").map(String::as_str))
        })
        .collect();
    got.sort();
    let ip = Some("203.0.113.7");
    let want = [
        about("soc-triage", &["aws-access-key-created"], None),
        about("soc-triage", &["aws-console-login-without-mfa"], None),
        about("soc-triage", &["local-group-change"], None),
        about("soc-triage", &["local-user-created"], None),
        about("soc-urgent", &["aws-cloudtrail-tampering"], Some("192.0.2.44")),
        about("soc-urgent", &["local-privileged-group-change"], Some("-")),
        about("soc-urgent", &["ssh-bruteforce"], ip),
        about("soc-urgent", &["ssh-bruteforce-success"], ip),
        about("soc-urgent", &["sudo-not-in-sudoers"], Some("-")),
    ];
    assert_eq!(got, want);

    // Slack: the soc-urgent five, as Block Kit, one attachment per alert with its rule, colour
    // and a button to the example's default link.
    let mut got: Vec<Vec<(String, String)>> = slack
        .iter()
        .map(|r| {
            assert_eq!(header(r, "content-type"), Some("application/json"));
            let p: Value = serde_json::from_slice(&r.body).unwrap();
            assert_block_kit(&p);
            let atts = p["attachments"].as_array().unwrap();
            atts.iter()
                .map(|a| {
                    let blocks = a["blocks"].as_array().unwrap();
                    let rule = blocks[1]["fields"][1]["text"].as_str().unwrap();
                    let rule = rule.strip_prefix("*Rule*\n").unwrap().split(':').next().unwrap();
                    let url = blocks[2]["elements"][0]["url"].as_str().unwrap();
                    assert!(url.starts_with("https://siem.example.com/alerts/"), "{url}");
                    assert_eq!(url.len(), "https://siem.example.com/alerts/".len() + 16, "{url}");
                    (rule.to_owned(), a["color"].as_str().unwrap().to_owned())
                })
                .collect()
        })
        .collect();
    got.sort();
    let high = |rule: &str| (rule.to_owned(), "#E01E5A".to_owned());
    let want = vec![
        vec![high("aws-cloudtrail-tampering")],
        vec![high("local-privileged-group-change")],
        vec![high("ssh-bruteforce")],
        vec![("ssh-bruteforce-success".to_owned(), "#8B0000".to_owned())],
        vec![high("sudo-not-in-sudoers")],
    ];
    assert_eq!(got, want);
    let keys: std::collections::BTreeSet<&str> = reqs.iter().map(key).collect();
    assert_eq!(keys.len(), 14, "one key per notification, none shared between sinks");

    if smtpd.is_some() {
        let files = delivered_mail(&maildir);
        assert_eq!(files.len(), 1, "{files:?}");
        let m = parse_mail(&files[0]);
        assert_eq!(
            m["subject"],
            "[logwarden] SSH login as deploy from 203.0.113.7 after 6 events of brute force"
        );
        assert_eq!(m["from"], "logwarden <logwarden@example.com>");
        assert_eq!(m["to"], "soc@example.com");
        let id = m["message_id"].as_str().unwrap();
        let local = id.strip_prefix('<').and_then(|i| i.strip_suffix("@logwarden>")).unwrap();
        assert!(local.len() == 16 && local.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(!keys.contains(local), "the mail's notification is its own");
        let plain = m["plain"].as_str().unwrap();
        assert!(plain.contains("ssh-bruteforce-success"), "{plain}");
    }
}

#[test]
fn check_passes_the_example_config_with_its_variables_and_names_a_missing_one() {
    let config = root().join("examples/logwarden.yml");
    let c = config.display();
    let mut vars = vec![
        ("LOGWARDEN_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("LOGWARDEN_SLACK_URL", "https://hooks.slack.com/services/T0/B0/x"),
        ("LOGWARDEN_SMTP_HOST", "smtp.example.com"),
    ];
    let r = cli::logwarden_env(["check", "-c", s(&config)], &vars);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    // `rules: ../rules` is beside the config.
    let rules = root().join("examples").join("../rules");
    assert_eq!(
        r.stdout,
        format!(
            "{c}: 3 sinks, 3 routes, 1 silence\n{}: 32 rule files, 32 rules loaded, 0 cannot fire, 0 lint findings\n",
            rules.display()
        )
    );

    vars.retain(|(k, _)| *k != "LOGWARDEN_WEBHOOK_URL");
    let r = cli::logwarden_env(["check", "-c", s(&config)], &vars);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(
        r.stderr,
        format!("{c}:18: environment variable `LOGWARDEN_WEBHOOK_URL` is not set\n{c}: 1 error\n")
    );
}
