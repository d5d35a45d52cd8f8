//! `travel` end to end: `logwarden replay --geoip` on sshd logins placed by a test MaxMind DB.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::{self, Run};

#[path = "geodb.rs"]
mod geodb;

const CROWDSEC_CASE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/crowdsec-hub/sshd-impossible-travel");

/// Successful SSH logins of one user, too far apart for the time between them.
const RULE: &str = "\
id: ssh-impossible-travel
title: SSH logins too far apart for the time between
severity: high
detection:
  login:
    event.dataset: sshd
    event.action: ssh_login
    event.outcome: success
  condition: login
travel:
  group_by: [user.name]
";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

/// Replays `log` with the travel rule and a database placing 1.2.3.0/24 in Brisbane,
/// 9.8.8.0/24 in Ashburn and 198.51.100.0/24 in London; returns the run and its alerts.
fn replay_with_travel(log: &Path) -> (Run, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap_or_else(|e| panic!("{}: {e}", rules.display()));
    write(&rules, "travel.yml", RULE.as_bytes());
    let db = write(
        dir.path(),
        "city.mmdb",
        &geodb::city_db(&[geodb::BRISBANE, geodb::ASHBURN, geodb::LONDON]),
    );
    let run = cli::logwarden([
        "replay".as_ref(),
        "--year".as_ref(),
        "2025".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--geoip".as_ref(),
        db.as_os_str(),
        log.as_os_str(),
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let alerts = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (run, alerts)
}

#[test]
fn crowdsec_sshd_impossible_travel_alerts_once_with_both_sources() {
    let log = Path::new(CROWDSEC_CASE).join("sshd-success-logs.log");
    let (run, alerts) = replay_with_travel(&log);
    assert_eq!(alerts.len(), 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let a = &alerts[0];
    assert_eq!(a["group"], serde_json::json!({"user.name": "vagrant"}));
    assert_eq!(a["count"], 2);
    let d = &a["detail"];
    assert_eq!(d["from"]["ip"], "1.2.3.4");
    assert_eq!(d["from"]["country_iso_code"], "AU");
    assert_eq!(d["from"]["city_name"], "Brisbane");
    assert_eq!(d["to"]["ip"], "9.8.8.8");
    assert_eq!(d["to"]["country_iso_code"], "US");
    assert_eq!(d["elapsed_s"], 3.0);
    let km = d["distance_km"].as_f64().unwrap_or(0.0);
    // Brisbane to Ashburn is about 15,300 km.
    assert!((15_000.0..15_600.0).contains(&km), "{km}");
}

#[test]
fn logins_twelve_hours_apart_do_not_alert() {
    // Ashburn to London (about 5,900 km) in twelve hours is an ordinary flight. (Brisbane to
    // Ashburn in twelve hours would not be: 15,200 km at 1,270 km/h.)
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log = write(
        dir.path(),
        "auth.log",
        b"Sep  6 09:57:21 bullseye sshd[581]: Accepted publickey for vagrant from 9.8.8.8 port 56296 ssh2: RSA SHA256:1M4RzhMyWuFS/86uPY/ce2prh/dVTHW7iD2RhpquOZA\n\
Sep  6 21:57:21 bullseye sshd[812]: Accepted publickey for vagrant from 198.51.100.7 port 56302 ssh2: RSA SHA256:kzfjfps/WFgXAdNgzvHBLuI072Y+f+91rpinXJAAvkM\n",
    );
    let (run, alerts) = replay_with_travel(&log);
    assert!(alerts.is_empty(), "stdout: {}", run.stdout);
    // Both logins were placed and compared, not skipped.
    assert!(run.stderr.contains("2 matched, 0 alerted\n"), "stderr: {}", run.stderr);
}

#[test]
fn an_unreadable_geoip_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap_or_else(|e| panic!("{}: {e}", rules.display()));
    write(&rules, "travel.yml", RULE.as_bytes());
    let bad = write(dir.path(), "bad.mmdb", b"not a database");
    let log = Path::new(CROWDSEC_CASE).join("sshd-success-logs.log");
    let run = cli::logwarden([
        "replay".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        "--geoip".as_ref(),
        bad.as_os_str(),
        log.as_os_str(),
    ]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains(&*bad.to_string_lossy()), "{}", run.stderr);
}

#[test]
fn the_default_pack_alerts_on_the_crowdsec_trip_and_test_takes_a_geoip_database() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let db = write(
        dir.path(),
        "city.mmdb",
        &geodb::city_db(&[geodb::BRISBANE, geodb::ASHBURN, geodb::LONDON]),
    );
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let log = Path::new(CROWDSEC_CASE).join("sshd-success-logs.log");
    let run = cli::logwarden([
        "replay".as_ref(),
        "--year".as_ref(),
        "2025".as_ref(),
        "--rules".as_ref(),
        pack.as_os_str(),
        "--geoip".as_ref(),
        db.as_os_str(),
        log.as_os_str(),
    ]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let alerts: Vec<Value> =
        run.stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
    assert_eq!(alerts.len(), 1, "{}", run.stdout);
    assert_eq!(alerts[0]["rule"]["id"], "ssh-impossible-travel");
    assert_eq!(alerts[0]["detail"]["from"]["ip"], "1.2.3.4");
    assert_eq!(alerts[0]["detail"]["to"]["ip"], "9.8.8.8");

    // A rule whose case gives syslog lines (no location) passes only with the database.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{RULE}alert: {{dedup: 1h}}\ntests:\n  - name: Brisbane then Ashburn in three seconds\n    input:\n      - \"Sep  6 09:57:21 bullseye sshd[581]: Accepted publickey for vagrant from 1.2.3.4 port 56296 ssh2\"\n      - \"Sep  6 09:57:24 bullseye sshd[812]: Accepted publickey for vagrant from 9.8.8.8 port 56302 ssh2\"\n    expect: [{{user.name: vagrant, count: 2}}]\n"
    );
    write(&rules, "travel.yml", text.as_bytes());
    let without = cli::logwarden(["test".as_ref(), rules.as_os_str()]);
    assert_eq!(without.code, 1, "{}", without.stdout);
    let with =
        cli::logwarden(["test".as_ref(), "--geoip".as_ref(), db.as_os_str(), rules.as_os_str()]);
    assert_eq!(with.code, 0, "{}{}", with.stdout, with.stderr);
    assert!(with.stdout.starts_with("ok    ssh-impossible-travel :: Brisbane then Ashburn"));
}
