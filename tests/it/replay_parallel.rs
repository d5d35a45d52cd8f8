//! Parallel syslog replay writes exactly what the one-thread path writes: the same events in
//! the same order, the same ledger, the same dead letters.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use logwarden::alert::Alert;
use logwarden::rule::load::load_dir;
use logwarden::rule::set::RuleSet;

use logwarden::ledger::Ledger;
use logwarden::parse::syslog::SyslogOptions;
use logwarden::replay::{Outputs, ReplayOptions, replay};

use crate::corpus;

/// Events, dead letters, ledgers and alerts of one replay with the default rule pack.
fn run(paths: &[PathBuf], parallel: bool) -> (Vec<u8>, Vec<u8>, Vec<Ledger>, Vec<Alert>) {
    run_with(paths, parallel, true)
}

/// As [`run`]; without `events`, parallel replay runs rules on a detection thread of its own.
fn run_with(
    paths: &[PathBuf],
    parallel: bool,
    write_events: bool,
) -> (Vec<u8>, Vec<u8>, Vec<Ledger>, Vec<Alert>) {
    let rules = load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let opts = ReplayOptions {
        syslog: SyslogOptions { year: Some(2025), ..SyslogOptions::default() },
        max_record_bytes: 512,
        parallel,
        rules: Some(Arc::new(RuleSet::new(rules))),
        explain: true,
        ..ReplayOptions::default()
    };
    let (mut events, mut dead, mut alerts) = (Vec::new(), Vec::new(), Vec::new());
    let ledgers = {
        let mut out = Outputs {
            events: if write_events { Some(&mut events) } else { None },
            dead_letter: Some(&mut dead),
            alerts: Some(&mut alerts),
        };
        replay(paths, &opts, &mut out).unwrap_or_else(|e| panic!("replay failed: {e}")).ledgers
    };
    (events, dead, ledgers, alerts)
}

#[test]
fn parallel_and_sequential_replay_agree_exactly() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Generated traffic (sessions across many pids), loghub's real sshd log (sessions that
    // end in 'Too many authentication failures'), and a file of bad lines between good ones.
    let mut generated = Vec::new();
    logwarden::generate::write_syslog(&mut generated, 30_000, 5).unwrap_or_default();
    let gen_path = dir.path().join("generated.log");
    std::fs::write(&gen_path, &generated).unwrap_or_default();
    let mut bad = Vec::new();
    for i in 0..3000u32 {
        match i % 7 {
            0 => bad.extend_from_slice(b"Dec 10 06:55:47 h sshd[1]: Invalid user \xff from 1.2.3.4\n"),
            1 => bad.extend_from_slice(format!("Dec 10 06:55:48 h app[{i}]: {}\n", "x".repeat(600)).as_bytes()),
            2 => bad.extend_from_slice(b"\x00garbage\n"),
            _ => bad.extend_from_slice(format!("Dec 10 06:55:49 h sshd[{}]: Failed password for u{i} from 10.0.0.{} port 22 ssh2\n", i % 13, i % 250).as_bytes()),
        }
    }
    let bad_path = dir.path().join("bad.log");
    std::fs::write(&bad_path, &bad).unwrap_or_default();
    // A gzip cut in half: complete lines, then the torn one.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&generated[..generated.len() / 3]).unwrap_or_default();
    let gz = gz.finish().unwrap_or_default();
    let cut_path = dir.path().join("cut.log.gz");
    std::fs::write(&cut_path, &gz[..gz.len() / 2]).unwrap_or_default();

    let paths = vec![gen_path, corpus::path("loghub/OpenSSH/OpenSSH_2k.log"), bad_path, cut_path];
    let (seq_events, seq_dead, seq_ledgers, seq_alerts) = run(&paths, false);
    let (par_events, par_dead, par_ledgers, par_alerts) = run(&paths, true);
    assert_eq!(seq_ledgers, par_ledgers);
    assert_eq!(seq_dead, par_dead);
    assert!(seq_events == par_events, "event streams differ");
    assert_eq!(seq_alerts.len(), par_alerts.len());
    assert!(seq_alerts == par_alerts, "alerts differ");
    // Alerts only: the parallel path then detects on its own thread; the same alerts again.
    let (no_events, _, thread_ledgers, thread_alerts) = run_with(&paths, true, false);
    assert!(no_events.is_empty());
    assert_eq!(thread_ledgers, par_ledgers);
    assert!(thread_alerts == seq_alerts, "alerts from the detection thread differ");
    // Brute force in the generated traffic and in loghub's log, sprayed users too.
    assert!(seq_alerts.len() > 100, "{} alerts", seq_alerts.len());
    for rule in ["ssh-bruteforce", "ssh-password-spraying"] {
        assert!(seq_alerts.iter().any(|a| a.rule_id == rule), "no {rule} alert");
    }
    // And the comparison is not vacuous.
    assert_eq!(seq_ledgers[1].events, 2008);
    assert!(seq_ledgers[2].quarantined > 1000);
    assert_eq!(seq_ledgers[3].reasons.get("truncated"), Some(&1));
    assert!(seq_events.len() > 10_000_000);
}
