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
        // A policy's notices are deduplicated by the scan monitor, not by a window.
        if rule.kind == logwarden::rule::RuleKind::Rule {
            assert!(rule.alert.dedup.is_some(), "{}: no dedup window", rule.id);
        }
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

/// Every event of the corpora this repository reads, parsed.
fn corpus_events() -> Vec<logwarden::event::Event> {
    use logwarden::parse::Parser;
    use logwarden::parse::cloudtrail::CloudTrailParser;
    use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
    use logwarden::source::{Origin, RawRecord};

    let mut events = Vec::new();
    let mut syslog =
        SyslogParser::new(SyslogOptions { year: Some(2025), ..SyslogOptions::default() });
    let mut text = crate::corpus::read("loghub/OpenSSH/OpenSSH_2k.log");
    let mut generated = Vec::new();
    logwarden::generate::write_syslog(&mut generated, 20_000, 3).unwrap_or_else(|e| panic!("{e}"));
    text.push_str(&String::from_utf8_lossy(&generated));
    for dir in std::fs::read_dir(crate::corpus::path("crowdsec-hub"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        for f in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            if f.path().extension().is_some_and(|x| x == "log") {
                text.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
                text.push('\n');
            }
        }
    }
    let source = logwarden::event::Sym::from("corpus");
    for (i, line) in text.lines().enumerate() {
        let rec = RawRecord {
            bytes: bytes::Bytes::copy_from_slice(line.as_bytes()),
            origin: Origin { source: source.clone(), record: i as u64, offset: 0 },
            received: None,
        };
        let _ = syslog.parse(&rec, &mut events);
    }
    let mut ct = CloudTrailParser::default();
    for dir in ["stratus-red-team/detonation-logs", "invictus-aws-dataset/CloudTrail"] {
        let mut stack = vec![crate::corpus::path(dir)];
        while let Some(d) = stack.pop() {
            for f in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{e}")).flatten() {
                let p = f.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let input =
                        logwarden::source::detect::open(&p, None).unwrap_or_else(|e| panic!("{e}"));
                    let _ = logwarden::source::cloudtrail::read_records(
                        input.reader,
                        source.clone(),
                        |rec| {
                            let _ = ct.parse(&rec, &mut events);
                            std::ops::ControlFlow::Continue(())
                        },
                    );
                }
            }
        }
    }
    events
}

#[test]
fn the_index_finds_exactly_what_trying_every_rule_finds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut rules = pack();
    rules.extend(load_dir(&root.join("tests/data/sigma-cloudtrail")).unwrap());
    // Policies judge scan findings, never events: the set leaves them out.
    rules.retain(|r| r.kind == logwarden::rule::RuleKind::Rule);
    let set = logwarden::rule::set::RuleSet::new(rules.clone());
    let events = corpus_events();
    assert!(events.len() > 25_000, "{}", events.len());
    let mut hits = Vec::new();
    let mut total = 0;
    for e in &events {
        hits.clear();
        set.hits(e, &mut hits);
        let got: Vec<(u32, u64)> = hits.iter().map(|h| (h.rule, h.steps)).collect();
        let want: Vec<(u32, u64)> =
            rules.iter().enumerate().filter_map(|(i, r)| r.hit(e).map(|s| (i as u32, s))).collect();
        assert_eq!(got, want, "{}", e.to_json());
        total += got.len();
    }
    // Not vacuous: the corpora set off thousands of rule matches.
    assert!(total > 10_000, "{total} matches");
}

/// loghub's Linux_2k.log holds sshd brute forces logged only through PAM (`sshd(pam_unix)`):
/// every remote host with 5 failures within 10 minutes alerts, and no other, checked against
/// a count made here from the raw lines.
#[test]
fn linux_2k_pam_brute_forces_alert_for_every_host_over_the_threshold() {
    use std::collections::{BTreeMap, BTreeSet};
    let path = crate::corpus::path("loghub/Linux/Linux_2k.log");
    let text = crate::corpus::read("loghub/Linux/Linux_2k.log");
    let month = |m: &str| {
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            .iter()
            .position(|x| *x == m)
    };
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut failures = 0;
    for line in text.lines() {
        if !line.contains("sshd(pam_unix)") || !line.contains("authentication failure;") {
            continue;
        }
        failures += 1;
        let Some(host) = line.split("rhost=").nth(1).and_then(|r| r.split_whitespace().next())
        else {
            continue;
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        let (mo, day) = (month(f[0]).unwrap_or(0) as i64, f[1].parse::<i64>().unwrap_or(0));
        let hms: Vec<i64> = f[2].split(':').filter_map(|x| x.parse().ok()).collect();
        let t = ((mo * 31 + day) * 24 + hms[0]) * 3600 + hms[1] * 60 + hms[2];
        times.entry(host.to_owned()).or_default().push(t);
    }
    assert_eq!(failures, 489, "the corpus file changed");
    let expected: BTreeSet<String> = times
        .iter()
        .filter(|(_, ts)| ts.windows(5).any(|w| w[4] - w[0] <= 600))
        .map(|(h, _)| h.clone())
        .collect();
    assert_eq!(times.len(), 47, "remote hosts in the corpus");
    assert_eq!(expected.len(), 39, "hosts at 5 or more in 10 minutes");

    let run = crate::cli::logwarden([
        "replay",
        "--rules",
        concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        path.to_str().unwrap_or_default(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let alerted: BTreeSet<String> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a["rule"]["id"] == "pam-bruteforce")
        .filter_map(|a| a["group"]["source.address"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(alerted, expected);
}
