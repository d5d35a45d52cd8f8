//! The `spike` and `new_value` behaviours end to end: rule files in a directory, syslog lines
//! written here, `logwarden replay --rules`, and the exact alerts on standard output.
// Panics are the failure report in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::cli::{self, Run};

const SUDO_SPIKE: &str = "\
id: sudo-spike
title: Sudo burst far above the user's normal
severity: medium
logsource: {product: linux, service: sudo}
detection:
  sudo:
    event.dataset: sudo
    event.action: sudo_command
  condition: sudo
spike:
  group_by: [user.name]
  window: 1h
  baseline: 1d
  factor: 3
";

const SSH_NEW_HOST: &str = "\
id: ssh-new-host
title: First SSH login of a user to a host
severity: low
logsource: {product: linux, service: sshd}
detection:
  login:
    event.dataset: sshd
    event.action: ssh_login
    event.outcome: success
  condition: login
new_value:
  group_by: [user.name]
  field: host.name
  learning: 1d
";

/// Minutes since 2025-01-05T00:00:00Z.
type Minute = u32;

/// An RFC 3164 timestamp for `m` minutes after 2025-01-05 00:00 (January only).
fn stamp(m: Minute) -> String {
    let (day, rest) = (5 + m / 1440, m % 1440);
    format!("Jan {day:>2} {:02}:{:02}:00", rest / 60, rest % 60)
}

fn sudo(m: Minute, user: &str) -> (Minute, String) {
    let line = format!(
        "{} web1 sudo:    {user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/id",
        stamp(m)
    );
    (m, line)
}

fn ssh(m: Minute, user: &str, host: &str) -> (Minute, String) {
    let line = format!(
        "{} {host} sshd[123]: Accepted password for {user} from 198.51.100.4 port 5000 ssh2",
        stamp(m)
    );
    (m, line)
}

/// Runs the two rules over the lines (sorted by time, as a log file is).
fn replay(mut lines: Vec<(Minute, String)>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    fs::create_dir(&rules).unwrap();
    fs::write(rules.join("sudo-spike.yml"), SUDO_SPIKE).unwrap();
    fs::write(rules.join("ssh-new-host.yml"), SSH_NEW_HOST).unwrap();
    lines.sort_by_key(|(m, _)| *m);
    let text: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    let log = dir.path().join("auth.log");
    fs::write(&log, text).unwrap();
    let args = [Path::new("replay"), Path::new("--year"), Path::new("2025")];
    let run = cli::logwarden(args.iter().copied().chain([
        Path::new("--rules"),
        rules.as_path(),
        log.as_path(),
    ]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    run
}

/// The parts of each alert line a reader acts on.
fn alerts(run: &Run) -> Vec<Value> {
    run.stdout
        .lines()
        .map(|l| {
            let a: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            json!({
                "rule": a["rule"]["id"],
                "group": a["group"],
                "count": a["count"],
                "first_seen": a["first_seen"],
                "last_seen": a["last_seen"],
                "detail": a["detail"],
            })
        })
        .collect()
}

#[test]
fn sudo_burst_above_a_users_own_day_alerts_once_and_a_newcomers_burst_does_not() {
    let mut lines = Vec::new();
    // alice: two sudo commands an hour for a day (the baseline), then ten in one hour.
    for h in 0..24 {
        lines.push(sudo(h * 60 + 5, "alice"));
        lines.push(sudo(h * 60 + 35, "alice"));
    }
    for i in 0..10 {
        lines.push(sudo(24 * 60 + i, "alice"));
    }
    // bob: the same ten in his first hour; he has no baseline yet.
    for i in 0..10 {
        lines.push(sudo(24 * 60 + 30 + i, "bob"));
    }
    // carol: two a day for the day, then four in an hour: eight times her normal, under 5.
    lines.push(sudo(60, "carol"));
    lines.push(sudo(13 * 60, "carol"));
    for i in 0..4 {
        lines.push(sudo(24 * 60 + 40 + i, "carol"));
    }
    let run = replay(lines);
    assert_eq!(
        alerts(&run),
        [json!({
            "rule": "sudo-spike",
            "group": {"user.name": "alice"},
            // The mean is 2: the seventh command is the first above 3 x 2.
            "count": 7,
            "first_seen": "2025-01-06T00:00:00Z",
            "last_seen": "2025-01-06T00:06:00Z",
            "detail": {
                "window_start": "2025-01-06T00:00:00Z",
                "baseline_mean": 2.0,
                "baseline_stddev": 0.0,
                "factor": 3.0,
            },
        })]
    );
    assert!(run.stderr.contains("sudo-spike: 74 matched, 1 alerted"), "{}", run.stderr);
}

#[test]
fn first_ssh_login_to_a_host_after_learning_alerts_once() {
    let lines = vec![
        // alice learns web1 and web2 on her first day.
        ssh(9 * 60, "alice", "web1"),
        ssh(15 * 60, "alice", "web2"),
        // A day and more later: db1 is new (once), web1 is not.
        ssh(34 * 60, "alice", "db1"),
        ssh(35 * 60, "alice", "db1"),
        ssh(36 * 60, "alice", "web1"),
        // bob's first day is his own learning period, whatever alice did.
        ssh(34 * 60 + 30, "bob", "db1"),
        ssh(35 * 60 + 30, "bob", "web2"),
    ];
    let run = replay(lines);
    assert_eq!(
        alerts(&run),
        [json!({
            "rule": "ssh-new-host",
            "group": {"user.name": "alice"},
            "count": 1,
            "first_seen": "2025-01-06T10:00:00Z",
            "last_seen": "2025-01-06T10:00:00Z",
            "detail": {"field": "host.name", "value": "db1", "known_values": 2},
        })]
    );
    assert!(run.stderr.contains("ssh-new-host: 7 matched, 1 alerted"), "{}", run.stderr);
}
