//! Issue 15, through the binary: what logwarden could not read is counted and said, never
//! lost silently. A tailed file rotated while the daemon was stopped (renamed, compressed, or
//! moved out of reach), a line over the length limit, failed TLS handshakes, damaged
//! CloudTrail files and a forged `message repeated` count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::daemon::{Daemon, events_out, eventually, free_port, get, metric};
use crate::receivers::receiver;

/// The archive's messages and how often each was written.
fn archived(dir: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap_or_default();
    let mut seen = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        *seen.entry(v["message"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    seen
}

/// Lines `range` of the test's auth log: cron filler, and every 100th an sshd failure from
/// 203.0.113.50 (a brute force spread over the lines written while the daemon is down).
fn auth_lines(range: std::ops::Range<u32>) -> String {
    let mut out = String::new();
    for i in range {
        if i % 100 == 50 {
            out.push_str(&format!(
                "Dec  7 10:00:00 web1 sshd[4242]: Failed password for root from 203.0.113.50 port {} ssh2\n",
                10_000 + i
            ));
        } else {
            out.push_str(&format!("Dec  7 10:00:00 web1 cron[1]: line {i}\n"));
        }
    }
    out
}

fn message(i: u32) -> String {
    let line = auth_lines(i..i + 1);
    let line = line.trim_end();
    line[line.find(": ").unwrap() + 2..].to_owned()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// How logrotate left the file while the daemon was down.
#[derive(Clone, Copy)]
enum Rotation {
    /// `auth.log` -> `auth.log.1`.
    Renamed,
    /// `auth.log` -> `auth.log.1.gz` (compress, no delaycompress).
    Compressed,
    /// Moved out of the directory (`olddir`): not found, so counted and said.
    Away,
}

/// Runs the daemon on auth.log, stops it (SIGTERM), appends 1,000 lines, rotates, writes 200
/// lines to a new auth.log, starts it again; returns the archive, the second run's stderr,
/// its metrics page and the notifications per address.
async fn rotate_while_stopped(how: Rotation) -> (HashMap<String, usize>, String, String, usize) {
    let (rx, hook) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, auth_lines(0..100)).unwrap();
    let api = free_port();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let config = dir.path().join("logwarden.yml");
    let write_config = |read_from: &str| {
        std::fs::write(
            &config,
            format!(
                "state: state.redb
rules: {rules}
sources:
  auth: {{type: file, paths: [auth.log], read_from: {read_from}, poll_interval: 20ms}}
outputs:
  archive: {{type: file, path: events.jsonl, fields: [message]}}
api: {{listen: \"127.0.0.1:{api}\"}}
sinks:
  hook: {{type: webhook, url: \"http://{hook}/hook\"}}
routes:
  - sinks: [hook]
    match: {{rules: [ssh-bruteforce]}}
    group_by: [source.ip]
    group_wait: 0s
",
                rules = rules.display()
            ),
        )
        .unwrap()
    };
    write_config("beginning");
    let base = format!("http://127.0.0.1:{api}");
    let mut first = Daemon::start(&config, dir.path());
    eventually("the first 100", &first, async || events_out(&base, "auth").await == Some(100))
        .await;
    // One failure so far: nothing notified in this run.
    assert!(rx.requests().is_empty());
    assert!(first.terminate(Duration::from_secs(15)).success(), "{}", first.stderr());

    append(&log, &auth_lines(100..1100));
    match how {
        Rotation::Renamed => std::fs::rename(&log, dir.path().join("auth.log.1")).unwrap(),
        Rotation::Compressed => {
            let gz = std::fs::File::create(dir.path().join("auth.log.1.gz")).unwrap();
            let mut e = flate2::write::GzEncoder::new(gz, flate2::Compression::default());
            e.write_all(&std::fs::read(&log).unwrap()).unwrap();
            e.finish().unwrap();
            std::fs::remove_file(&log).unwrap();
        }
        Rotation::Away => {
            std::fs::create_dir(dir.path().join("old")).unwrap();
            std::fs::rename(&log, dir.path().join("old/auth.log.1")).unwrap();
        }
    }
    append(&log, &auth_lines(1100..1300));

    // Started again as the shipped example is configured: `paths` names only the live file
    // and `read_from` is `end`.
    write_config("end");
    let mut second = Daemon::start(&config, dir.path());
    let last = message(1299);
    eventually("the new file's last line", &second, async || {
        archived(dir.path()).contains_key(&last)
    })
    .await;
    // Brute-force lines come in the rotated part: once archived, its alert has been decided
    // and queued; wait for the delivery (or its absence, for the lost case, below).
    let page = get(&format!("{base}/metrics"), None).await.1;
    if !matches!(how, Rotation::Away) {
        eventually("the brute force notification", &second, async || !rx.requests().is_empty())
            .await;
    }
    // Every event has been detected on (the last line is archived, after detection): what
    // the router queued is final. Wait until all of it is delivered.
    eventually("the outbox delivered", &second, async || {
        let page = get(&format!("{base}/metrics"), None).await.1;
        let queued = metric(&page, "logwarden_outbox_queued_total").unwrap_or(u64::MAX);
        metric(&page, "logwarden_outbox_pending") == Some(0) && queued == rx.requests().len() as u64
    })
    .await;
    let stderr = second.stderr();
    assert!(second.terminate(Duration::from_secs(15)).success(), "{stderr}");
    let notified = rx
        .requests()
        .iter()
        .filter(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            body["group"]["source.ip"] == "203.0.113.50"
        })
        .count();
    (archived(dir.path()), stderr, page, notified)
}

fn assert_each_once(seen: &HashMap<String, usize>, lines: impl Iterator<Item = u32>) {
    let mut wrong = Vec::new();
    for i in lines {
        let m = message(i);
        // The brute-force message repeats with a new port each time: unique too.
        if seen.get(&m) != Some(&1) {
            wrong.push((i, seen.get(&m).copied().unwrap_or(0)));
        }
    }
    assert!(wrong.is_empty(), "lines not archived exactly once (line, times): {wrong:?}");
}

#[tokio::test]
async fn a_log_renamed_while_stopped_is_read_to_its_end_then_the_new_one_whole() {
    let (seen, stderr, page, notified) = rotate_while_stopped(Rotation::Renamed).await;
    assert_each_once(&seen, 0..1300);
    assert_eq!(seen.len(), 1300, "nothing else archived");
    assert!(
        stderr.contains("was rotated while logwarden was stopped: reading the rest of it"),
        "{stderr}"
    );
    assert_eq!(metric(&page, "logwarden_tail_rotated_lost_total{source=\"auth\"}"), Some(0));
    assert_eq!(notified, 1, "the brute force alerts once");
}

#[tokio::test]
async fn a_log_rotated_and_compressed_while_stopped_is_read_from_the_gzip() {
    let (seen, stderr, page, notified) = rotate_while_stopped(Rotation::Compressed).await;
    assert_each_once(&seen, 0..1300);
    assert_eq!(seen.len(), 1300);
    assert!(stderr.contains("was rotated and compressed while logwarden was stopped"), "{stderr}");
    assert_eq!(metric(&page, "logwarden_tail_rotated_lost_total{source=\"auth\"}"), Some(0));
    assert_eq!(notified, 1, "the brute force alerts once");
}

#[tokio::test]
async fn a_log_rotated_out_of_reach_while_stopped_is_said_once_and_counted() {
    let (seen, stderr, page, _) = rotate_while_stopped(Rotation::Away).await;
    // What was read before the stop, and the whole new file: the rest is lost, and said.
    assert_each_once(&seen, (0..100).chain(1100..1300));
    assert_eq!(seen.len(), 300);
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("is not beside it")).collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("auth.log was rotated while logwarden was stopped"), "{}", said[0]);
    assert!(said[0].contains("the new auth.log is read from its start"), "{}", said[0]);
    assert_eq!(metric(&page, "logwarden_tail_rotated_lost_total{source=\"auth\"}"), Some(1));
}

#[tokio::test]
async fn an_overlong_tailed_line_is_set_aside_counted_and_the_position_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let sshd = |n: u32| {
        format!(
            "Dec  7 10:00:0{n} web1 sshd[1]: Failed password for root from 192.0.2.{n} port 1 ssh2\n"
        )
    };
    std::fs::write(&log, format!("{}{}\n{}", sshd(1), "x".repeat(100 * 1024), sshd(2))).unwrap();
    let api = free_port();
    let config = dir.path().join("logwarden.yml");
    std::fs::write(
        &config,
        format!(
            "state: state.redb
sources:
  auth: {{type: file, paths: [auth.log], read_from: beginning, poll_interval: 20ms}}
outputs:
  archive: {{type: file, path: events.jsonl, fields: [message]}}
api: {{listen: \"127.0.0.1:{api}\"}}
"
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{api}");
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("both sshd lines", &daemon, async || events_out(&base, "auth").await == Some(2))
        .await;
    let page = get(&format!("{base}/metrics"), None).await.1;
    let m = |s: &str| metric(&page, s);
    assert_eq!(m("logwarden_source_records_in_total{source=\"auth\"}"), Some(3));
    assert_eq!(m("logwarden_source_quarantined_total{source=\"auth\"}"), Some(1));
    assert_eq!(
        m("logwarden_source_quarantined_by_reason_total{source=\"auth\",reason=\"line_too_long\"}"),
        Some(1)
    );
    let stderr = daemon.stderr();
    let at = sshd(1).len();
    assert!(
        stderr.contains(&format!(
            "auth.log: the line at byte {at} is 102400 bytes, over max_line_bytes (65536): set aside (line_too_long)"
        )),
        "{stderr}"
    );
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());

    // Restarted: it goes on after the last line, reading nothing again.
    append(&log, &sshd(3));
    let mut daemon = Daemon::start(&config, dir.path());
    let third = sshd(3);
    let third = third[third.find(": ").unwrap() + 2..].trim_end().to_owned();
    eventually("the line after the restart", &daemon, async || {
        archived(dir.path()).contains_key(&third)
    })
    .await;
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{}", daemon.stderr());
    let seen = archived(dir.path());
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
}

#[tokio::test]
async fn tls_failures_damaged_cloudtrail_files_and_forged_repeats_are_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::email_tls::pki(dir.path());
    let trails = dir.path().join("trails");
    std::fs::create_dir(&trails).unwrap();
    std::fs::write(trails.join("string.json"), "\"not a trail\"").unwrap();
    std::fs::write(trails.join("cut.json.gz"), [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xab]).unwrap();
    std::fs::write(
        dir.path().join("auth.log"),
        "Dec  7 10:00:00 web1 sshd[1]: message repeated 4294967295 times: [ Failed password for root from 192.0.2.9 port 1 ssh2]\n",
    )
    .unwrap();
    let (api, tls) = (free_port(), free_port());
    let config = dir.path().join("logwarden.yml");
    std::fs::write(
        &config,
        format!(
            "state: state.redb
sources:
  tls: {{type: syslog_tcp, listen: \"127.0.0.1:{tls}\", tls: {{cert: {cert}, key: {key}}}}}
  trails: {{type: cloudtrail_dir, path: trails, poll_interval: 20ms}}
  auth: {{type: file, paths: [auth.log], read_from: beginning, poll_interval: 20ms}}
api: {{listen: \"127.0.0.1:{api}\"}}
",
            cert = pki.cert.display(),
            key = pki.key.display(),
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{api}");
    let mut daemon = Daemon::start(&config, dir.path());
    eventually("the metrics page", &daemon, async || events_out(&base, "auth").await.is_some())
        .await;
    // Five clients that speak plain syslog to the TLS port.
    for _ in 0..5 {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", tls)).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        c.write_all(b"<13>Dec  7 10:00:00 h app: plain\n").await.unwrap();
        let mut b = [0u8; 64];
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read(&mut b)).await;
    }
    let series = [
        ("logwarden_source_tls_failures_total{source=\"tls\"}", 5),
        ("logwarden_source_file_failures_total{source=\"trails\",reason=\"bad_gzip\"}", 1),
        ("logwarden_source_file_failures_total{source=\"trails\",reason=\"not_cloudtrail\"}", 1),
        ("logwarden_source_events_out_total{source=\"auth\"}", 1000),
        ("logwarden_source_repeats_capped_total{source=\"auth\"}", 4_294_966_295),
    ];
    eventually("every count", &daemon, async || {
        let page = get(&format!("{base}/metrics"), None).await.1;
        series.iter().all(|(s, n)| metric(&page, s) == Some(*n))
    })
    .await;
    let stderr = daemon.stderr();
    assert!(daemon.terminate(Duration::from_secs(15)).success(), "{stderr}");
    // Five failures, one line; two damaged files, one line (each said at most once a minute).
    assert_eq!(stderr.matches(": TLS from 127.0.0.1:").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("source `trails`: CloudTrail file").count(), 1, "{stderr}");
}
