//! The rule loader's tests: Sigma and logwarden forms, positioned errors, directories.
use super::*;

fn errors(text: &str) -> Vec<RuleError> {
    load_str(text, "r.yml").unwrap_err()
}

fn one_error(text: &str) -> RuleError {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0)
}

const GOOD: &str = "\
id: good
title: Good
severity: low
detection:
  sel:
    event.dataset: sshd
  condition: sel
";

#[test]
fn documents_keep_their_file_line_numbers() {
    let second =
        "id: second\ntitle: t\nlevel: low\nthresold: red\ndetection: {s: [x], condition: s}\n";
    let text = format!("{GOOD}---\n{second}");
    let e = one_error(&text);
    assert_eq!(e.kind(), "yaml");
    let RuleError::Yaml { line, column, rule_id, message, .. } = &e else { panic!("{e}") };
    assert_eq!((*line, *column), (12, 1));
    assert_eq!(rule_id.as_deref(), Some("second"));
    assert!(message.contains("`thresold`"), "{message}");
    assert!(
        e.to_string().starts_with(
            "r.yml:12:1: rule `second`: unknown field `thresold`: did you mean `threshold`?"
        ),
        "{e}"
    );
}

#[test]
fn sigma_custom_attributes_load_and_are_ignored() {
    let text = GOOD.replace("severity: low\n", "severity: low\ncolour: red\nowner: {team: x}\n");
    let rules = load_str(&text, "r.yml").unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id, "good");
}

#[test]
fn keyword_all_needs_every_keyword() {
    let text = GOOD.replace(
        "sel:\n    event.dataset: sshd",
        "sel:\n    '|all':\n      - pkexec\n      - 'XAUTHORITY contains'",
    );
    let rule = &load_str(&text, "r.yml").unwrap()[0];
    let e = |m: &str| crate::event::Event { message: Some(m.into()), ..Default::default() };
    assert!(rule.matches(&e("pkexec: The value for XAUTHORITY contains odd text")));
    assert!(!rule.matches(&e("pkexec: ran /bin/true")));
    assert!(!rule.matches(&e("XAUTHORITY contains odd text")));
    assert!(rule.reads_keywords());
    // The program is part of the line a keyword searches.
    let mut pkexec = e("alice: XAUTHORITY contains odd text");
    pkexec.process_name = Some(crate::event::Sym::from("pkexec"));
    assert!(rule.matches(&pkexec));
}

#[test]
fn keyword_lists_take_no_other_modifier_and_stand_alone() {
    let other = GOOD.replace("sel:\n    event.dataset: sshd", "sel:\n    '|re': 'a.b'");
    let e = one_error(&other);
    assert_eq!(e.kind(), "unknown_modifier");
    assert!(
        e.to_string().starts_with("r.yml:6:5: rule `good`: `|re`: unknown modifier `re`"),
        "{e}"
    );
    let mixed = GOOD.replace("event.dataset: sshd", "event.dataset: sshd\n    '|all': [a, b]");
    let e = one_error(&mixed);
    assert_eq!(e.kind(), "detection");
    assert!(e.to_string().contains("must be the only key of its selection"), "{e}");
    let in_list = GOOD.replace("sel:\n    event.dataset: sshd", "sel:\n    - '|all': [a, b]");
    assert!(one_error(&in_list).to_string().contains("must be a selection of its own"));
}

#[test]
fn reach_names_fields_the_logsource_never_carries() {
    let rule = |logsource: &str, detection: &str| {
        let text =
            format!("id: r\ntitle: t\nlevel: low\nlogsource: {logsource}\ndetection:\n{detection}");
        load_str(&text, "r.yml").unwrap().remove(0).reach()
    };
    let sudo = "{product: linux, service: sudo}";
    let user = "  sel:\n    USER: '#-1'\n  condition: sel\n";
    assert_eq!(
        rule(sudo, user),
        crate::rule::Reach { missing: vec!["USER".into()], can_fire: false }
    );
    // Absent is what `null` asks for; a negated impossible selection always holds.
    let null = "  sel:\n    USER: null\n  condition: sel\n";
    assert!(rule(sudo, null).can_fire);
    let negated = "  sel:\n    USER: x\n  condition: not sel\n";
    assert!(rule(sudo, negated).can_fire);
    // Another way through the condition.
    let either = "  a:\n    Image|endswith: /sshd\n  b: [liblzma]\n  condition: a or b\n";
    let r = rule("{product: linux, service: sshd}", either);
    assert_eq!((r.missing.as_slice(), r.can_fire), (&["Image".to_owned()][..], true));
    let both = either.replace("a or b", "a and b");
    assert!(!rule("{product: linux, service: sshd}", &both).can_fire);
    // CloudTrail records carry any key of their own; unknown sources carry anything.
    let ct = "  sel:\n    requestParameters.x: y\n  condition: sel\n";
    assert!(rule("{product: aws, service: cloudtrail}", ct).missing.is_empty());
    assert!(rule("{product: windows, category: process_creation}", user).can_fire);
    assert!(!rule("{product: linux, category: process_creation}", user).can_fire);
}

#[test]
fn empty_documents_are_skipped() {
    let text = format!("# header\n---\n{GOOD}---\n");
    assert_eq!(load_str(&text, "r.yml").unwrap().len(), 1);
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let e = one_error("id: a\ntitle: [t\n");
    assert_eq!(e.kind(), "yaml");
    assert!(e.to_string().starts_with("r.yml:2:"), "{e}");
}

#[test]
fn find_key_sees_list_markers_and_quotes() {
    let doc = "a:\n  - 'x|re': 1\n    \"y\": 2\n";
    assert_eq!(find_key(doc, "x|re", 1), Some((2, 5)));
    assert_eq!(find_key(doc, "y", 1), Some((3, 5)));
    assert_eq!(find_key(doc, "x", 1), None);
    assert_eq!(find_top_key(doc, "a"), Some(1));
}

#[test]
fn dedup_duration_is_parsed_and_a_bad_one_named() {
    let text = format!("{GOOD}alert:\n  title: x\n  dedup: 1h\n");
    let rules = load_str(&text, "r.yml").unwrap();
    assert_eq!(rules[0].dedup, Some(crate::rule::duration::Span::from_secs(3600)));
    let e = one_error(&text.replace("1h", "soon"));
    assert!(e.to_string().contains("`alert.dedup`: bad duration `soon`"), "{e}");
}

#[test]
fn unknown_modifier_names_the_key_and_its_line() {
    let text =
        GOOD.replace("event.dataset: sshd", "event.dataset: sshd\n    user.name|sounds_like: bob");
    let e = one_error(&text);
    assert_eq!(e.kind(), "unknown_modifier");
    let RuleError::Match { line, column, .. } = &e else { panic!("{e}") };
    assert_eq!((*line, *column), (7, 5));
    let msg = e.to_string();
    assert!(msg.contains("user.name|sounds_like") && msg.contains("sounds_like"), "{msg}");
}

#[test]
fn bad_regex_is_reported() {
    let text = GOOD.replace("event.dataset: sshd", "'message|re': 'a(b'");
    let e = one_error(&text);
    assert_eq!(e.kind(), "bad_regex");
    assert!(e.to_string().starts_with("r.yml:6:5: rule `good`:"), "{e}");
}

#[test]
fn unknown_selection_in_condition_gives_the_column() {
    let e = one_error(&GOOD.replace("condition: sel", "condition: sel and not other"));
    let RuleError::Condition { line, source, .. } = &e else { panic!("{e}") };
    assert_eq!(*line, 7);
    assert!(
        matches!(source, ConditionError::UnknownSelection { name, column: 13 } if name == "other"),
        "{source:?}"
    );
    assert!(e.to_string().contains("column 13"), "{e}");
}

#[test]
fn behaviour_errors_name_the_key_and_its_line() {
    let text = format!("{GOOD}threshold:\n  count: 10\n  window: 5 fortnights\n");
    let e = one_error(&text);
    assert_eq!(e.kind(), "invalid");
    let RuleError::Invalid { line, column, rule_id, key, .. } = &e else { panic!("{e}") };
    assert_eq!(
        (*line, *column, rule_id.as_str(), key.as_str()),
        (10, 3, "good", "threshold.window")
    );
    assert!(
        e.to_string().starts_with("r.yml:10:3: rule `good`: `threshold.window`: bad duration"),
        "{e}"
    );
    // A missing key is serde's error, with its position.
    let e = one_error(&format!("{GOOD}threshold:\n  count: 10\n"));
    assert_eq!(e.kind(), "yaml");
    assert!(e.to_string().contains("window"), "{e}");
}

#[test]
fn two_behaviours_in_one_rule_are_refused() {
    let text = format!(
        "{GOOD}threshold:\n  count: 2\n  window: 1m\nnew_value:\n  field: user.name\n  learning: 1d\n"
    );
    let e = load_str(&text, "r.yml").unwrap_err();
    assert!(e.iter().any(|e| e.to_string().contains("at most one behaviour")), "{e:?}");
}

#[test]
fn sequence_steps_compile_against_the_selections() {
    let text = format!(
        "{GOOD}sequence:\n  within: 5m\n  steps:\n    - condition: sel\n      count: 3\n    - condition: sel\n"
    );
    let rules = load_str(&text, "r.yml").unwrap();
    assert_eq!(rules[0].behaviour.as_ref().map(|b| b.name()), Some("sequence"));
    let bad = format!("{text}    - condition: other\n");
    let e = load_str(&bad, "r.yml").unwrap_err();
    assert!(e.iter().any(|e| e.to_string().contains("steps[2].condition")), "{e:?}");
}

#[test]
fn severity_must_be_given_once() {
    assert_eq!(one_error(&GOOD.replace("severity: low\n", "")).kind(), "severity");
    let both = GOOD.replace("severity: low\n", "severity: low\nlevel: high\n");
    assert_eq!(one_error(&both).kind(), "severity");
    let bad = one_error(&GOOD.replace("severity: low", "severity: urgent"));
    assert_eq!(bad.kind(), "yaml");
}

#[test]
fn detection_shapes_are_checked() {
    let nested = GOOD.replace("event.dataset: sshd", "event: {dataset: sshd}");
    let e = one_error(&nested);
    assert!(matches!(&e, RuleError::Detection { key, line: 6, .. } if key == "event"), "{e}");
    let mixed = GOOD.replace("sel:\n    event.dataset: sshd", "sel: [a, {b: 1}]");
    assert_eq!(one_error(&mixed).kind(), "detection");
    let no_condition = GOOD.replace("  condition: sel\n", "");
    assert_eq!(one_error(&no_condition).kind(), "detection");
}

#[test]
fn several_errors_are_reported_together() {
    let text = "\
id: a
title: t
severity: low
detection:
  one:
    x|nope: 1
  two:
    'y|re': '('
  condition: one and three
---
id: b
title: t
travel: {max_speed_kmh: 900}
---
id: c
title: t
";
    let kinds: Vec<&str> = errors(text).iter().map(RuleError::kind).collect();
    assert_eq!(kinds, ["unknown_modifier", "bad_regex", "condition", "yaml", "yaml"]);
}

#[test]
fn duplicate_ids_name_both_places() {
    let text = format!("{GOOD}---\n{GOOD}");
    let e = one_error(&text);
    assert_eq!(e.kind(), "duplicate_id");
    assert!(e.to_string().starts_with("r.yml:9: duplicate rule id `good`"), "{e}");
    assert!(e.to_string().ends_with("first defined at r.yml:1"), "{e}");
}

#[test]
fn condition_list_is_an_or() {
    let text = GOOD.replace(
        "  condition: sel",
        "  other:\n    event.dataset: sudo\n  condition: [sel, other]",
    );
    let rules = load_str(&text, "r.yml").unwrap();
    let rule = &rules[0];
    let e = |d: &str| crate::event::Event { dataset: Some(d.into()), ..Default::default() };
    assert!(rule.matches(&e("sshd")) && rule.matches(&e("sudo")) && !rule.matches(&e("pam")));
    assert_eq!(rule.explain(&e("sudo")), Some(vec!["other".to_owned()]));
    assert_eq!(rule.explain(&e("pam")), None);
}

#[test]
fn lint_flags_unused_selections() {
    let text = GOOD.replace("  condition: sel", "  spare:\n    user.name: bob\n  condition: sel");
    let rules = load_str(&text, "r.yml").unwrap();
    let warnings = lint(&rules[0]);
    assert_eq!(warnings, ["rule `good`: selection `spare` is not used by the condition"]);
    assert!(lint(&load_str(GOOD, "r.yml").unwrap()[0]).is_empty());
}

#[test]
fn lint_flags_constant_conditions() {
    let never = GOOD.replace("condition: sel", "condition: sel and not sel");
    let warnings = lint(&load_str(&never, "r.yml").unwrap()[0]);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("never true"), "{warnings:?}");
    let always = GOOD.replace("condition: sel", "condition: sel or not sel");
    assert!(lint(&load_str(&always, "r.yml").unwrap()[0])[0].contains("always true"));
}
