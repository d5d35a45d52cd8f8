//! `logwarden check`: rule files validated from the command line, every problem named with its
//! place, and the exit status saying whether any was found.

use std::ffi::OsStr;
use std::path::Path;

use crate::cli::{self, Run};

fn check(dir: &Path) -> Run {
    cli::logwarden([OsStr::new("check"), OsStr::new("--rules"), dir.as_os_str()])
}

/// A temporary directory holding `files` (paths may name subdirectories).
fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

const GOOD: &str = "\
title: CloudTrail logging stopped or deleted
id: ct-stop-logging
level: medium
logsource:
  product: aws
  service: cloudtrail
detection:
  selection_source:
    eventSource: cloudtrail.amazonaws.com
  selection_eventname:
    eventName:
      - StopLogging
      - DeleteTrail
  condition: all of selection_*
falsepositives:
  - A trail retired on purpose
";

#[test]
fn good_rules_pass() {
    let dir = dir_with(&[("ct.yml", GOOD)]);
    let r = check(dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "{}: 1 rule file, 1 rule loaded, 0 cannot fire, 0 lint findings\n",
            dir.path().display()
        )
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn the_shipped_rules_directory_checks_clean() {
    let r = check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with(" lint findings\n"), "{}", r.stdout);
}

#[test]
fn compile_errors_are_all_reported_with_their_place() {
    let bad = "\
id: bad-one
title: bad
severity: high
detection:
  sel:
    eventName|nope: x
  other:
    message|re: '(unclosed'
  condition: sel and missing
";
    let dir = dir_with(&[("ct.yml", GOOD), ("bad.yml", bad)]);
    let r = check(dir.path());
    assert_eq!(r.code, 1);
    let file = dir.path().join("bad.yml").display().to_string();
    assert!(
        r.stderr.contains(&format!("{file}:6:")) && r.stderr.contains("eventName|nope"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("{file}:8:")) && r.stderr.contains("message|re"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("missing"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn unknown_keys_and_duplicate_ids_fail() {
    let unknown = "id: u1\ntitle: t\nlevel: low\nsequnce: 1\ndetection:\n  sel:\n    a: b\n  condition: sel\n";
    let dup = GOOD.to_owned();
    let dir = dir_with(&[("a.yml", GOOD), ("b.yml", &dup), ("c.yml", unknown)]);
    let r = check(dir.path());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("c.yml:4:1") && r.stderr.contains("`sequnce`: did you mean `sequence`?"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("duplicate rule id `ct-stop-logging`"), "{}", r.stderr);
}

#[test]
fn lint_findings_fail_the_check() {
    let unused = "\
id: l1
title: unused selection and a contradiction
severity: low
detection:
  sel:
    event.dataset: sshd
  spare:
    event.outcome: failure
  condition: sel and not sel
";
    let dir = dir_with(&[("lint.yml", unused)]);
    let r = check(dir.path());
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("selection `spare` is not used"), "{}", r.stderr);
    assert!(r.stderr.contains("never true"), "{}", r.stderr);
    assert!(
        r.stdout.contains("1 rule file, 1 rule loaded, 0 cannot fire, 2 lint findings"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_missing_directory_is_an_error() {
    let r = check(Path::new("/nonexistent/rules"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/rules"), "{}", r.stderr);
}

#[test]
fn a_forwarder_config_is_checked_without_rules_and_says_where_events_go() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/forwarder.yml");
    let vars = [
        ("LOGWARDEN_AGGREGATOR_URL", "https://fwd:s3cret@agg.example:9601/ingest"),
        ("LOGWARDEN_INTAKE_TOKEN", "fwd-example-t0ken"),
    ];
    let r = cli::logwarden_env([OsStr::new("check"), OsStr::new("-c"), config.as_os_str()], &vars);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("forward mode: 3 sources -> https://agg.example:9601/ingest; no rules"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("s3cret"), "credentials stay out of the output: {}", r.stdout);
    assert!(!r.stdout.contains("rules loaded"), "{}", r.stdout);
}

#[test]
fn subdirectories_are_read_and_hidden_ones_skipped() {
    let nested = GOOD.replace("id: ct-stop-logging", "id: nested");
    let deeper = GOOD.replace("id: ct-stop-logging", "id: deeper");
    let dir = dir_with(&[
        ("ct.yml", GOOD),
        ("aws/cloudtrail/nested.yml", &nested),
        ("aws/deeper.yaml", &deeper),
        ("aws/notes.txt", "not a rule"),
        (".git/hooks/bad.yml", "id: [unclosed"),
        ("aws/.draft.yml", "id: [unclosed"),
    ]);
    let r = check(dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "{}: 3 rule files, 3 rules loaded, 0 cannot fire, 0 lint findings\n",
            dir.path().display()
        )
    );
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_walked_once() {
    let dir = dir_with(&[("sub/ct.yml", GOOD)]);
    std::os::unix::fs::symlink(dir.path(), dir.path().join("sub/loop"))
        .unwrap_or_else(|e| panic!("{e}"));
    let r = check(dir.path());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(": 1 rule file, 1 rule loaded"), "{}", r.stdout);
}

#[test]
fn a_directory_without_rule_files_is_an_error() {
    let dir = dir_with(&[("README.md", "no rules here"), ("sub/notes.txt", "nor here")]);
    let r = check(dir.path());
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "{0}: no rule files (*.yml, *.yaml) in it or its subdirectories\n{0}: 1 error\n",
            dir.path().display()
        )
    );
    assert_eq!(r.stdout, "");
}

#[test]
fn errors_in_nested_files_are_all_reported_with_their_place() {
    let bad = "id: b\ntitle: t\nlevel: low\ndetection:\n  sel:\n    a|nope: 1\n  condition: sel\n";
    let dir = dir_with(&[("a/one.yml", bad), ("b/c/two.yml", &bad.replace("id: b", "id: c"))]);
    let r = check(dir.path());
    assert_eq!(r.code, 1);
    for file in ["a/one.yml", "b/c/two.yml"] {
        let at = format!("{}:6:5:", dir.path().join(file).display());
        assert!(r.stderr.contains(&at), "{at} missing in {}", r.stderr);
    }
    assert!(r.stderr.ends_with(": 2 errors\n"), "{}", r.stderr);
}
