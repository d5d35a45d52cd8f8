//! The default rule pack (`rules/`): it loads, lints clean, every rule has a case that must
//! alert and one that must not, and every case passes. `logwarden test` runs the same cases.

use std::path::Path;

use logwarden::rule::behaviour::Services;
use logwarden::rule::load::{lint, load_dir};

use crate::cli::logwarden;

fn pack() -> Vec<logwarden::rule::Rule> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    load_dir(&dir).unwrap_or_else(|errors| {
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("the default pack does not load:\n{}", text.join("\n"))
    })
}

#[test]
fn every_rule_loads_lints_clean_and_has_positive_and_negative_cases() {
    let rules = pack();
    assert!(rules.len() >= 20, "{} rules", rules.len());
    for rule in &rules {
        assert_eq!(lint(rule), Vec::<String>::new(), "{}", rule.id);
        let alerting = rule.tests.iter().filter(|c| !c.expect.is_empty()).count();
        let quiet = rule.tests.iter().filter(|c| c.expect.is_empty()).count();
        assert!(
            alerting >= 1 && quiet >= 1,
            "{}: {alerting} alerting, {quiet} quiet cases",
            rule.id
        );
        assert!(rule.alert.dedup.is_some(), "{}: no dedup window", rule.id);
    }
}

#[test]
fn every_case_of_the_pack_passes() {
    let rules = pack();
    let results = logwarden::rule::test::run(&rules, &Services::default());
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(|d| format!("{} :: {}\n{d}", r.rule, r.name)))
        .collect();
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
    assert!(results.len() >= 2 * rules.len());
}

#[test]
fn logwarden_test_reports_each_case_and_fails_on_a_wrong_expectation() {
    let r = logwarden(["test", concat!(env!("CARGO_MANIFEST_DIR"), "/rules")]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ok    ssh-bruteforce :: five invalid users in a minute alert once"));
    assert!(r.stdout.contains(" 0 failed; 0 rules without tests"), "{}", r.stdout);

    // The same rule with a wrong count and a quiet case that expects an alert.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/ssh-refused-connect.yml"),
    )
    .unwrap()
    .replace("count: 1 }", "count: 2 }")
    .replace("expect: []", "expect: [{source.ip: 192.0.2.1}]");
    std::fs::write(dir.path().join("r.yml"), text).unwrap();
    let r = logwarden([Path::new("test"), dir.path()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let want = "\
FAIL  ssh-refused-connect :: a refused connection alerts
        alert 0: count: expected 2, got 1
FAIL  ssh-refused-connect :: an ordinary connection does not
      expected 1 alert(s), got 0
      - alert 0: {\"source.ip\":\"192.0.2.1\"}
";
    assert!(r.stdout.starts_with(want), "{}", r.stdout);
    assert!(r.stdout.contains("2 cases, 0 passed, 2 failed"), "{}", r.stdout);
}
