//! The default pack against CrowdSec hub's own scenario tests (`../shared/corpus/crowdsec-hub`):
//! for each hub test log, the addresses logwarden alerts on must be the sources the hub's
//! `scenario.assert` expects, or the difference is listed and explained here.

use std::collections::BTreeSet;

use crate::cli::logwarden;
use crate::corpus;

/// `(rule id, alerted address)` pairs of the default pack on one hub log.
fn alerts(folder: &str, log: &str) -> BTreeSet<(String, String)> {
    let path = corpus::path(&format!("crowdsec-hub/{folder}/{log}"));
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
    let path = path.to_string_lossy().into_owned();
    // The hub logs carry no year; 2025 has every date they use.
    let r = logwarden(["replay", "--year", "2025", "--rules", rules, path.as_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let group = &v["group"];
            let ip = group
                .get("source.ip")
                .or_else(|| group.get("sourceIPAddress"))
                .and_then(|x| x.as_str())
                .unwrap_or_default();
            (v["rule"]["id"].as_str().unwrap_or_default().to_owned(), ip.to_owned())
        })
        .collect()
}

/// The sources a hub `scenario.assert` names (`"X" in results[N].Overflow.GetSources()`).
fn expected_sources(folder: &str) -> BTreeSet<String> {
    let text = corpus::read(&format!("crowdsec-hub/{folder}/scenario.assert"));
    text.lines()
        .filter(|l| l.ends_with(".Overflow.GetSources()"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(r, ip)| ((*r).to_owned(), (*ip).to_owned())).collect()
}

fn sources(found: &BTreeSet<(String, String)>) -> BTreeSet<String> {
    found.iter().map(|(_, ip)| ip.clone()).collect()
}

#[test]
fn ssh_bf_fast_burst_and_user_enumeration() {
    // The hub expects two overflows (ssh-bf and ssh-bf_user-enum) for one address; the pack's
    // brute-force and spraying rules are the same pair.
    let found = alerts("ssh-bf", "ssh-bf.log");
    assert_eq!(sources(&found), expected_sources("ssh-bf"));
    assert_eq!(
        found,
        pairs(&[("ssh-bruteforce", "35.188.49.176"), ("ssh-password-spraying", "35.188.49.176")])
    );
}

#[test]
fn ssh_slow_bf() {
    // 22 failures, one every 30 s: CrowdSec's slow bucket (capacity 10, leak 60s) overflows;
    // fail2ban's 5 in 10 minutes, which ssh-bruteforce uses, does too.
    let found = alerts("ssh-slow-bf", "ssh-slow-bf.log");
    assert_eq!(sources(&found), expected_sources("ssh-slow-bf"));
    assert_eq!(found, pairs(&[("ssh-bruteforce", "103.100.210.198")]));
}

#[test]
fn ssh_time_based_bf_is_a_known_difference() {
    // CrowdSec's ssh-time-based-bf flags 10.0.0.101: four invalid users twenty minutes apart,
    // judged by the regularity of the gaps. The pack has no regularity detector, and four
    // failures in an hour are below every count threshold it uses (fail2ban's 5 in 10 minutes
    // among them), so nothing alerts. Stated, not hidden: this test fails if that changes.
    assert_eq!(expected_sources("ssh-time-based-bf"), BTreeSet::from(["10.0.0.101".to_owned()]));
    assert_eq!(alerts("ssh-time-based-bf", "ssh-time-based-bf.log"), BTreeSet::new());
}

#[test]
fn sshd_invalid_bf_preauth_disconnects() {
    let found = alerts("sshd-invalid-bf", "sshd-invalid-bf.log");
    assert_eq!(sources(&found), expected_sources("sshd-invalid-bf"));
    assert_eq!(found, pairs(&[("ssh-preauth-abort-burst", "179.43.183.98")]));
}

#[test]
fn sshd_banner_exchange() {
    let found = alerts("sshd_banner_exchange", "sshd_banner_exchange.log");
    assert_eq!(sources(&found), expected_sources("sshd_banner_exchange"));
    assert_eq!(found, pairs(&[("ssh-negotiation-burst", "59.91.122.57")]));
}

#[test]
fn sshd_bad_keyexchange_bf() {
    let found = alerts("sshd-bad-keyexchange-bf", "sshd-bad-keyexchange-bf.log");
    assert_eq!(sources(&found), expected_sources("sshd-bad-keyexchange-bf"));
    assert!(found.iter().all(|(rule, _)| rule == "ssh-negotiation-burst"), "{found:?}");
}

#[test]
fn ssh_timeout_cve_2024_6387() {
    let found = alerts("ssh-timeout", "ssh-timeout.log");
    assert_eq!(sources(&found), expected_sources("ssh-timeout"));
    assert!(found.iter().all(|(rule, _)| rule == "ssh-regresshion"), "{found:?}");
}

#[test]
fn sshd_refused_conn() {
    let found = alerts("sshd-refused-conn", "sshd-refused-conn.log");
    assert_eq!(sources(&found), expected_sources("sshd-refused-conn"));
    assert_eq!(found, pairs(&[("ssh-refused-connect", "192.168.1.1")]));
}

#[test]
fn aws_console_brute_force() {
    let found = alerts("aws-bf", "aws-bf.log");
    assert_eq!(sources(&found), expected_sources("aws-bf"));
    assert_eq!(found, pairs(&[("aws-console-login-failures", "1.2.3.4")]));
}

#[test]
fn hub_logs_without_an_attack_raise_nothing() {
    // The hub's parser-only and false-positive logs: no scenario overflows there.
    for (folder, log) in [
        ("sshd-logs-fp", "sshd-logs.log"),
        ("sshd-success-logs", "sshd-success-logs.log"),
        ("aws-cloudtrail", "aws-cloudtrail.log"),
    ] {
        assert_eq!(alerts(folder, log), BTreeSet::new(), "{folder}");
    }
}

#[test]
fn aws_scenarios_the_pack_does_not_have() {
    // aws-nwo-login: CrowdSec alerts on a console login outside working hours (03:02 UTC, with
    // MFA). Working hours are a site policy the pack does not assume; the login used MFA, so
    // aws-console-login-without-mfa rightly stays quiet.
    assert_eq!(alerts("aws-nwo-login", "aws-nwo-login.log"), BTreeSet::new());
    // aws-cloudtrail-postexploit: CrowdSec alerts on AccessDenied enumeration followed by
    // GetCallerIdentity (three denied calls, two of them from the alerted principal). The
    // pack has no enumeration rule yet.
    assert_eq!(
        alerts("aws-cloudtrail-postexploit", "aws-cloudtrail-postexploit.log"),
        BTreeSet::new()
    );
}
