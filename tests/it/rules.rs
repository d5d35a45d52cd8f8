//! Rule loading end to end: rule files in logwarden and Sigma form, run against real CloudTrail
//! records and hand-built sshd events, and the loader's errors across files.
// Panics are the failure report in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::ops::ControlFlow;
use std::path::Path;

use logwarden::event::{Event, Outcome, Sym};
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::rule::load::{RuleError, lint, load_dir, load_str};
use logwarden::rule::{Rule, Severity};
use logwarden::source::cloudtrail::read_records;

const STRATUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/stratus-red-team/detonation-logs");

/// In the style of SigmaHQ's `aws_cloudtrail_disable_logging.yml`, with Sigma's own keys.
const SIGMA_DISABLE_LOGGING: &str = "\
title: AWS CloudTrail Important Change
id: 4db60cc0-36fb-42b7-9b58-a5b53019fb74
status: test
description: Detects disabling, deleting and updating of a Trail
references:
    - https://docs.aws.amazon.com/awscloudtrail/latest/userguide/best-practices-security.html
author: vitaliy0x1
date: 2020-01-21
modified: 2022-10-09
tags:
    - attack.defense-evasion
    - attack.t1562.001
logsource:
    product: aws
    service: cloudtrail
detection:
    selection_source:
        eventSource: cloudtrail.amazonaws.com
    selection_eventname:
        eventName:
            - StopLogging
            - UpdateTrail
            - DeleteTrail
    condition: all of selection_*
falsepositives:
    - Valid change in a Trail
level: medium
";

/// The logwarden form from DESIGN section 3, without the behaviour this build lacks.
const SSH_FAILURE: &str = "\
id: ssh-failure
title: SSH failure from outside
severity: high
tags: [attack.credential_access, attack.t1110.001]
logsource: {product: linux, service: sshd}
detection:
  failed:
    event.dataset: sshd
    event.outcome: failure
  allowlisted:
    source.ip|cidr: [10.0.0.0/8]
  condition: failed and not allowlisted
alert:
  title: 'SSH failure from {source.ip}'
  dedup: 1h
";

/// Every CloudTrail event in the file, parsed as the pipeline does.
fn cloudtrail_events(path: &Path) -> Vec<Event> {
    let mut parser = CloudTrailParser::default();
    let mut events = Vec::new();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    read_records(fs::File::open(path).unwrap(), Sym::from(name.as_str()), |rec| {
        parser.parse(&rec, &mut events).unwrap();
        ControlFlow::Continue(())
    })
    .unwrap();
    events
}

fn one_rule(text: &str) -> Rule {
    let mut rules = load_str(text, "rule.yml").unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(rules.len(), 1);
    rules.remove(0)
}

#[test]
fn sigma_cloudtrail_rule_loads_with_its_metadata() {
    let rule = one_rule(SIGMA_DISABLE_LOGGING);
    assert_eq!(rule.id, "4db60cc0-36fb-42b7-9b58-a5b53019fb74");
    assert_eq!(rule.severity, Severity::Medium);
    assert_eq!(rule.tags, ["attack.defense-evasion", "attack.t1562.001"]);
    assert_eq!(rule.datasets(), Some(&["cloudtrail"][..]));
    assert_eq!(rule.selection_names(), ["selection_source", "selection_eventname"]);
    assert!(lint(&rule).is_empty(), "{:?}", lint(&rule));
}

#[test]
fn sigma_cloudtrail_rule_matches_stop_and_delete_only() {
    let rule = one_rule(SIGMA_DISABLE_LOGGING);
    // Counted with a script over the JSON: one record in each of these files.
    let hit = |file: &str| {
        let events = cloudtrail_events(&Path::new(STRATUS).join(file));
        assert_eq!(events.len(), 1, "{file}");
        events.iter().filter(|e| rule.matches(e)).count()
    };
    assert_eq!(hit("aws.defense-evasion.cloudtrail-stop.json"), 1);
    assert_eq!(hit("aws.defense-evasion.cloudtrail-delete.json"), 1);
    // PutEventSelectors is cloudtrail.amazonaws.com too, but not one of the listed names.
    assert_eq!(hit("aws.defense-evasion.cloudtrail-event-selectors.json"), 0);

    let stop =
        cloudtrail_events(&Path::new(STRATUS).join("aws.defense-evasion.cloudtrail-stop.json"));
    assert_eq!(
        rule.explain(&stop[0]),
        Some(vec!["selection_source".to_owned(), "selection_eventname".to_owned()])
    );
}

#[test]
fn sigma_cloudtrail_rule_matches_nothing_else_in_the_stratus_corpus() {
    let rule = one_rule(SIGMA_DISABLE_LOGGING);
    let mut files: Vec<_> = fs::read_dir(STRATUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut total = 0;
    let mut hits = Vec::new();
    for path in &files {
        for e in cloudtrail_events(path) {
            total += 1;
            if rule.matches(&e) {
                hits.push(path.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    // 35 files, 310 records, counted independently with a script over the JSON.
    assert_eq!((files.len(), total), (35, 310));
    assert_eq!(
        hits,
        ["aws.defense-evasion.cloudtrail-delete.json", "aws.defense-evasion.cloudtrail-stop.json"]
    );
}

fn sshd(outcome: Outcome, ip: &str) -> Event {
    Event {
        dataset: Some(Sym::from("sshd")),
        outcome: Some(outcome),
        source_ip: Some(ip.parse().unwrap()),
        ..Event::default()
    }
}

#[test]
fn sshd_rule_in_logwarden_form() {
    let rule = one_rule(SSH_FAILURE);
    assert_eq!(rule.severity, Severity::High);
    assert_eq!(rule.alert.dedup.as_deref(), Some("1h"));
    assert_eq!(rule.alert.title.as_deref(), Some("SSH failure from {source.ip}"));

    assert!(rule.matches(&sshd(Outcome::Failure, "203.0.113.7")));
    assert_eq!(rule.explain(&sshd(Outcome::Failure, "203.0.113.7")), Some(vec!["failed".into()]));
    assert!(!rule.matches(&sshd(Outcome::Failure, "10.1.2.3")), "allowlisted");
    assert!(!rule.matches(&sshd(Outcome::Success, "203.0.113.7")), "success");
    assert_eq!(rule.explain(&sshd(Outcome::Success, "203.0.113.7")), None);

    let mut sudo = sshd(Outcome::Failure, "203.0.113.7");
    sudo.dataset = Some(Sym::from("sudo"));
    assert!(!rule.matches(&sudo), "other dataset");
    let mut no_ip = sshd(Outcome::Failure, "203.0.113.7");
    no_ip.source_ip = None;
    assert!(rule.matches(&no_ip), "no address is not an allowlisted address");
}

#[test]
fn a_directory_loads_yml_and_yaml_files_with_several_documents() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("b.yaml"), SIGMA_DISABLE_LOGGING).unwrap();
    fs::write(
        dir.path().join("a.yml"),
        format!(
            "{SSH_FAILURE}---\n{}",
            SSH_FAILURE.replace("id: ssh-failure", "id: ssh-failure-2")
        ),
    )
    .unwrap();
    fs::write(dir.path().join("notes.txt"), "not a rule").unwrap();
    let rules = load_dir(dir.path()).unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["ssh-failure", "ssh-failure-2", "4db60cc0-36fb-42b7-9b58-a5b53019fb74"]);
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yml"), SSH_FAILURE).unwrap();
    fs::write(dir.path().join("b.yml"), format!("# copy\n{SSH_FAILURE}")).unwrap();
    let errors = load_dir(dir.path()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let RuleError::DuplicateId { file, line, id, first } = &errors[0] else {
        panic!("{}", errors[0])
    };
    assert!(file.ends_with("b.yml") && *line == 2 && id == "ssh-failure", "{}", errors[0]);
    assert!(first.ends_with("a.yml:1"), "{first}");
}

#[test]
fn misspelt_top_level_key_names_file_line_column_and_key() {
    let text = SSH_FAILURE.replace("tags:", "severty: [x]\ntags:");
    let errors = load_str(&text, "rules/ssh.yml").unwrap_err();
    assert_eq!(errors.len(), 1);
    let msg = errors[0].to_string();
    assert!(
        msg.starts_with("rules/ssh.yml:4:1: rule `ssh-failure`: unknown field `severty`: did you mean `severity`?"),
        "{msg}"
    );
}

#[test]
fn errors_from_several_files_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let bad_modifier = SSH_FAILURE.replace("source.ip|cidr", "source.ip|cidrr");
    fs::write(dir.path().join("a.yml"), bad_modifier).unwrap();
    let sequence = SIGMA_DISABLE_LOGGING
        .replace("level: medium", "level: medium\nsequence:\n  within: 1m\n  steps: [{condition: nope}, {condition: selection}]");
    fs::write(dir.path().join("b.yml"), sequence).unwrap();
    fs::write(dir.path().join("c.yml"), "id: c\ntitle: [\n").unwrap();
    let errors = load_dir(dir.path()).unwrap_err();
    let kinds: Vec<&str> = errors.iter().map(RuleError::kind).collect();
    assert_eq!(kinds, ["unknown_modifier", "invalid", "yaml"]);
    assert!(errors[0].to_string().contains("a.yml:11:5: rule `ssh-failure`"), "{}", errors[0]);
    let seq = errors[1].to_string();
    assert!(seq.contains("`sequence.steps[0].condition`: `nope`: unknown selection"), "{seq}");
}
