//! `logwarden replay` end to end: real files in, exact events and ledgers out, and every kind of
//! bad input counted and located rather than crashing or vanishing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{self, Run};
use crate::corpus;

fn replay(args: &[&str]) -> Run {
    cli::logwarden(std::iter::once("replay").chain(args.iter().copied()))
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap_or_default();
    gz.finish().unwrap_or_default()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or("")
}

#[test]
fn events_are_exact_ecs_json_lines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let log = write(
        dir.path(),
        "auth.log",
        b"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186\n\
          <86>Dec 10 07:01:02 web-1 sudo[99]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id\n",
    );
    let r = replay(&["--events", "--year", "2025", s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let path = s(&log);
    // syslog_loose drops the spaces sudo writes after its tag; the message starts at the user.
    let expected = format!(
        concat!(
            r#"{{"@timestamp":"2025-12-10T06:55:46Z","event":{{"dataset":"sshd","category":["authentication"],"type":["start"],"action":"ssh_invalid_user","outcome":"failure"}},"user":{{"name":"webmaster"}},"source":{{"ip":"173.234.31.186"}},"host":{{"name":"LabSZ"}},"process":{{"name":"sshd","pid":24200}},"log":{{"file":{{"path":"{p}"}},"offset":0}},"message":"Invalid user webmaster from 173.234.31.186"}}"#,
            "\n",
            r#"{{"@timestamp":"2025-12-10T07:01:02Z","event":{{"dataset":"sudo","category":["process"],"type":["start"],"action":"sudo_command","outcome":"success"}},"user":{{"name":"alice","target":{{"name":"root"}}}},"host":{{"name":"web-1"}},"process":{{"name":"sudo","pid":99,"command_line":"/usr/bin/id"}},"log":{{"file":{{"path":"{p}"}},"offset":78,"syslog":{{"facility":{{"code":10}},"severity":{{"code":6}}}}}},"message":"alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"}}"#,
            "\n"
        ),
        p = path
    );
    assert_eq!(r.stdout, expected);
    assert_eq!(
        r.stderr,
        format!("{path} [syslog]: 2 records read, 2 events emitted, 0 quarantined\n")
    );
}

#[test]
fn output_is_deterministic_and_reads_back_as_json_events() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = corpus::path("loghub/OpenSSH/OpenSSH_2k.log");
    let a = replay(&["--events", "--year", "2025", s(&src)]);
    let b = replay(&["--events", "--year", "2025", s(&src)]);
    assert_eq!(a.code, 0);
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stdout.lines().count(), 2008);
    // Feeding the events back in as ECS JSON reproduces them exactly.
    let events = write(dir.path(), "events.jsonl", a.stdout.as_bytes());
    let again = replay(&["--events", "--format", "json", s(&events)]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    let strip_path = |out: &str| -> Vec<serde_json::Value> {
        out.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                if let Some(log) = v.get_mut("log").and_then(|l| l.as_object_mut()) {
                    log.remove("file");
                }
                v
            })
            .collect()
    };
    assert_eq!(strip_path(&again.stdout), strip_path(&a.stdout));
    assert!(again.stderr.contains("[json]: 2008 records read, 2008 events emitted, 0 quarantined"));
}

#[test]
fn bad_syslog_input_is_counted_and_located() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"Dec 10 06:55:46 h sshd[1]: Invalid user a from 1.2.3.4\n");
    bytes.extend_from_slice(b"Dec 10 06:55:47 h sshd[1]: Invalid user \xff\xfe from 1.2.3.4\n");
    bytes.extend_from_slice(b"\x00\x01\x02 binary garbage\n");
    bytes.extend_from_slice(format!("Dec 10 06:55:48 h app: {}\n", "x".repeat(200)).as_bytes());
    bytes.extend_from_slice(b"Dec 10 06:55:49 h sshd[1]: Invalid user b from 1.2.3.5\n");
    let log = write(dir.path(), "bad.log", &bytes);
    let dead = dir.path().join("dead.jsonl");
    let r = replay(&["--events", "--max-line-bytes", "100", "--dead-letter", s(&dead), s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2);
    let p = s(&log);
    assert_eq!(
        r.stderr,
        format!(
            "{p} [syslog]: 5 records read, 2 events emitted, 3 quarantined (invalid_utf8=1, line_too_long=1, not_syslog=1)\n\
             \x20 {p}:2 line (byte 55): invalid UTF-8 at byte 40 of the record\n\
             \x20 {p}:3 line (byte 111): not a syslog message: no RFC 3164 or RFC 5424 header\n\
             \x20 {p}:4 line (byte 130): line of 223 bytes exceeds the limit of 100\n"
        )
    );
    let dead = std::fs::read_to_string(&dead).unwrap_or_default();
    let rows: Vec<serde_json::Value> =
        dead.lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(rows[0]["reason"], "invalid_utf8");
    assert_eq!(rows[1]["raw"], "\u{0}\u{1}\u{2} binary garbage");
    assert_eq!(rows[2]["reason"], "line_too_long");
}

#[test]
fn truncated_gzip_keeps_what_arrived_and_says_where_it_broke() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "Dec 10 06:55:46 h sshd[{i}]: Invalid user u{i} from 10.0.{}.{}\n",
            i / 250,
            i % 250 + 1
        ));
    }
    let gz = gzip(text.as_bytes());
    let log = write(dir.path(), "cut.log.gz", &gz[..gz.len() / 2]);
    let r = replay(&[s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = r.stderr.lines().next().unwrap_or("");
    assert!(
        first.contains("[syslog]: ") && first.ends_with("quarantined (truncated=1)"),
        "{}",
        r.stderr
    );
    let read: u64 = first
        .split("]: ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(read > 100 && read < 2000, "read {read}");
    assert!(r.stderr.contains("input ended"), "{}", r.stderr);
}

#[test]
fn cloudtrail_gzip_envelope_is_detected_and_broken_json_located() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rec = |name: &str| {
        format!(
            r#"{{"eventVersion":"1.08","eventTime":"2023-07-10T11:42:31Z","eventSource":"iam.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.7","userIdentity":{{"type":"IAMUser","userName":"bob"}}}}"#
        )
    };
    let good = format!(r#"{{"Records":[{},{}]}}"#, rec("CreateUser"), rec("CreateAccessKey"));
    let gz = write(dir.path(), "ct.json.gz", &gzip(good.as_bytes()));
    let r = replay(&["--events", s(&gz)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 2);
    assert!(r.stdout.contains(r#""action":"CreateAccessKey""#));
    assert!(r.stderr.contains("[cloudtrail]: 2 records read, 2 events emitted, 0 quarantined"));

    let broken = format!(r#"{{"Records":[{},{},{{"eventName": oops}}]}}"#, rec("A"), rec("B"));
    let bad = write(dir.path(), "broken.json", broken.as_bytes());
    let r = replay(&[s(&bad)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "[cloudtrail]: 3 records read, 2 events emitted, 1 quarantined (invalid_json=1)"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(":3 record (byte "), "{}", r.stderr);
}

#[test]
fn real_cloudtrail_corpora_yield_one_event_per_record() {
    let stratus = corpus::path("stratus-red-team/detonation-logs");
    let invictus = corpus::path("invictus-aws-dataset/CloudTrail");
    for (dir, expected) in [(stratus, 310u64), (invictus, 2900)] {
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path().display().to_string()))
            .filter(|p| p.ends_with(".json"))
            .collect();
        files.sort();
        let args: Vec<&str> = files.iter().map(String::as_str).collect();
        let r = replay(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let (mut read, mut emitted, mut quarantined) = (0u64, 0u64, 0u64);
        for line in r.stderr.lines() {
            let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            assert!(line.contains("[cloudtrail]"), "{line}");
            read += nums[0];
            emitted += nums[1];
            quarantined += nums[2];
        }
        assert_eq!((read, emitted, quarantined), (expected, expected, 0), "{}", dir.display());
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let r = replay(&["/nonexistent/auth.log"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/auth.log: No such file"), "{}", r.stderr);
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);
}

#[test]
fn an_unknown_time_zone_is_rejected() {
    let r = replay(&["--timezone", "Mars/Olympus", "x.log"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("unknown time zone `Mars/Olympus`"), "{}", r.stderr);
}

#[test]
fn the_shipped_examples_replay_with_nothing_quarantined() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = ["examples/auth.log", "examples/cloudtrail.json", "examples/rfc5424.log"];
    let paths: Vec<String> = files.iter().map(|f| root.join(f).display().to_string()).collect();
    let args: Vec<&str> =
        ["--events"].into_iter().chain(paths.iter().map(String::as_str)).collect();
    let r = replay(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 27 + 5 + 3);
    for line in r.stderr.lines() {
        assert!(line.ends_with(" 0 quarantined"), "{line}");
    }
    // The brute force that worked: failures from 203.0.113.7, then deploy's success.
    let success =
        r.stdout.lines().find(|l| l.contains(r#""action":"ssh_login","outcome":"success""#));
    assert!(success.is_some_and(|l| l.contains(r#""user":{"name":"deploy"}"#) && l.contains("203.0.113.7")));
}

/// Regression: with --dead-letter, more bad records than the writer's queue held before the
/// next full batch of events used to deadlock the single-parser path (the parser blocked on
/// the dead-letter queue, the writer waited for events). A hang fails after 60 s.
#[test]
fn many_bad_records_with_a_dead_letter_file_do_not_stall() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!("{{\"@timestamp\": broken {i}\n"));
    }
    text.push_str("{\"@timestamp\":\"2025-01-01T00:00:00Z\",\"message\":\"ok\"}\n");
    let input = write(dir.path(), "bad.jsonl", text.as_bytes());
    let dead = dir.path().join("dead.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_logwarden"))
        .args(["replay", "--format", "json", "--dead-letter", s(&dead), s(&input)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let started = std::time::Instant::now();
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("replay hung with 5000 quarantined records and a dead-letter file");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    let rows = std::fs::read_to_string(&dead).unwrap_or_default().lines().count();
    assert_eq!(rows, 5000);
}

#[test]
fn a_full_disk_is_an_error_that_says_so_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = root.join("rules");
    // Events, then alerts alone (written by the detection thread).
    for args in [vec!["replay", "--events"], vec!["replay", "--rules", s(&rules)]] {
        let Ok(full) = std::fs::File::create("/dev/full") else { return };
        let out = Command::new(env!("CARGO_BIN_EXE_logwarden"))
            .args(&args)
            .arg(root.join("examples/auth.log"))
            .stdout(full)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("logwarden: writing output: "), "{stderr}");
        assert_eq!(stderr.matches("No space left on device").count(), 1, "{stderr}");
    }
}

/// Six failures from one address and a success: the brute-force rule fires on the fifth, and
/// the brute-force-then-success rule on the success.
const BRUTE: &str = "\
Feb 12 14:10:21 web1 sshd[100]: Failed password for root from 198.51.100.7 port 1 ssh2
Feb 12 14:10:22 web1 sshd[100]: Failed password for root from 198.51.100.7 port 1 ssh2
Feb 12 14:10:23 web1 sshd[100]: Failed password for root from 198.51.100.7 port 1 ssh2
Feb 12 14:10:24 web1 sshd[101]: Failed password for root from 198.51.100.7 port 2 ssh2
Feb 12 14:10:25 web1 sshd[101]: Failed password for root from 198.51.100.7 port 2 ssh2
Feb 12 14:10:26 web1 sshd[101]: Failed password for root from 198.51.100.7 port 2 ssh2
Feb 12 14:10:30 web1 sshd[102]: Accepted password for admin from 198.51.100.7 port 3 ssh2
";

/// The same attack read twice: the second firing of each rule is marked as the repeat a
/// router would fold, and standard error counts them.
#[test]
fn repeats_within_the_dedup_window_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, BRUTE).unwrap();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let r = replay(&["--year", "2025", "--rules", rules, s(&log), s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let marks: Vec<(String, bool)> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|a| (a["rule"]["id"].as_str().unwrap_or("").to_owned(), a["repeat"] == true))
        .collect();
    let want: Vec<(String, bool)> = [
        ("ssh-bruteforce", false),
        ("ssh-bruteforce-success", false),
        ("ssh-bruteforce", true),
        ("ssh-bruteforce-success", true),
    ]
    .iter()
    .map(|(id, m)| ((*id).to_owned(), *m))
    .collect();
    assert_eq!(marks, want);
    assert!(
        r.stderr.contains("repeats: 2 alerts repeat an earlier one of the same rule and group within its alert.dedup window"),
        "{}",
        r.stderr
    );
}

#[test]
fn rules_print_alerts_with_explain_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, BRUTE).unwrap();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let r = replay(&["--year", "2025", "--rules", rules, "--explain", s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let alerts: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(alerts.len(), 2, "{}", r.stdout);
    let bf = &alerts[0];
    assert_eq!(bf["rule"]["id"], "ssh-bruteforce");
    assert_eq!(bf["severity"], "high");
    assert_eq!(bf["group"], serde_json::json!({"source.ip": "198.51.100.7"}));
    assert_eq!(bf["count"], 5);
    assert_eq!(bf["first_seen"], "2025-02-12T14:10:21Z");
    assert_eq!(bf["last_seen"], "2025-02-12T14:10:25Z");
    assert_eq!(bf["fingerprint"].as_str().map(str::len), Some(16));
    assert_eq!(bf["events"].as_array().map(Vec::len), Some(5));
    assert_eq!(bf["events"][0]["log.offset"], 0);
    assert_eq!(bf["sample"][0]["event"]["action"], "ssh_login");
    assert_eq!(
        bf["explain"],
        serde_json::json!({"condition": "failed", "selections": ["failed"], "behaviour": "threshold"})
    );
    let ok = &alerts[1];
    assert_eq!(ok["rule"]["id"], "ssh-bruteforce-success");
    assert_eq!(ok["count"], 6, "the last five failures and the success");
    assert_eq!(ok["explain"]["selections"], serde_json::json!(["success"]));
    assert!(r.stderr.contains(" matches, 2 alerts\n"), "{}", r.stderr);
    assert!(r.stderr.contains("ssh-bruteforce: 6 matched, 1 alerted"), "{}", r.stderr);
    // Same input, same alerts: fingerprints and all.
    let again = replay(&["--year", "2025", "--rules", rules, "--explain", s(&log)]);
    assert_eq!(again.stdout, r.stdout);
}

#[test]
fn with_events_each_alert_follows_the_event_that_fired_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, BRUTE).unwrap();
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let r = replay(&["--events", "--year", "2025", "--rules", rules, s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kinds: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| if l.starts_with("{\"rule\":") { "alert" } else { "event" })
        .collect();
    assert_eq!(
        kinds,
        ["event", "event", "event", "event", "event", "alert", "event", "event", "alert"]
    );
}

#[test]
fn a_bad_rule_directory_stops_replay_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yml"),
        "id: x\ntitle: t\nseverity: low\ndetection:\n  s: {a: 1}\n  condition: t\n",
    )
    .unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(&log, BRUTE).unwrap();
    let r = replay(&["--rules", s(dir.path()), s(&log)]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("r.yml:6: rule `x`: condition `t`: unknown selection `t`"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

/// A line whose client text makes two readings of its peer fit: no `source.ip`, both
/// candidates in `related.ip`, and the ledger says so.
#[test]
fn an_ambiguous_peer_is_left_out_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    std::fs::write(
        &log,
        "Mar  4 10:00:00 web1 sshd[4000]: Failed publickey for invalid user a from 10.66.66.1 port 1 ssh2: RSA-CERT ID b from 198.51.100.9 port 22 ssh2: RSA-CERT ID c (serial 1) CA RSA SHA256:x\n\
         Mar  4 10:00:01 web1 sshd[4001]: Failed password for root from 198.51.100.9 port 22 ssh2\n",
    )
    .unwrap();
    let r = replay(&["--events", "--year", "2025", s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let events: Vec<serde_json::Value> =
        r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events[0]["source"], serde_json::Value::Null);
    assert_eq!(events[0]["related"]["ip"], serde_json::json!(["10.66.66.1", "198.51.100.9"]));
    assert_eq!(events[1]["source"]["ip"], "198.51.100.9");
    assert!(
        r.stderr.contains(
            "2 records read, 2 events emitted, 0 quarantined, 1 with an ambiguous peer (source.ip left out)"
        ),
        "{}",
        r.stderr
    );
}

/// Issue 15: `message repeated 4294967295 times` made 10,000 events (2,000 alerts). Now it
/// makes the documented 1,000, and the rest is in the ledger, not silently dropped.
#[test]
fn a_forged_repeat_count_is_capped_and_the_rest_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = write(
        dir.path(),
        "auth.log",
        b"Mar  4 10:00:00 web1 sshd[4000]: message repeated 4294967295 times: [ Failed password for root from 198.51.100.9 port 22 ssh2]\n\
          Mar  4 10:00:01 web1 sshd[4001]: message repeated 3 times: [ Failed password for root from 198.51.100.10 port 22 ssh2]\n",
    );
    let r = replay(&["--events", "--year", "2025", s(&log)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1003);
    assert!(
        r.stderr.contains(
            "2 records read, 1003 events emitted, 0 quarantined, 4294966295 repeats not made \
             (`message repeated` beyond the per-line cap)"
        ),
        "{}",
        r.stderr
    );
}
