//! The serde shape of one rule document, in logwarden form or Sigma form, before compilation.
//!
//! Every top-level key of the Sigma rule specification (2.0.0) is accepted so that SigmaHQ rules
//! load unchanged; the detection block is kept as JSON (key order preserved) and compiled by
//! [`crate::rule::load`], which can then say which selection key is wrong instead of serde's
//! generic "data did not match".
//!
//! Other top-level keys are Sigma "arbitrary custom fields", which the specification allows and
//! which are ignored here, with one exception: a key that looks like a misspelt rule key
//! ([`near_miss`]) is refused, because taking `thresold:` as a custom field would silently run
//! the rule without its behaviour.

use serde::Deserialize;

use crate::rule::Severity;

/// One rule document. Unknown keys are ignored by serde; the loader refuses the near misses
/// (see the module docs).
#[derive(Debug, Clone, Deserialize)]
pub struct RuleSpec {
    /// Stable rule id, unique across all rule files.
    pub id: String,
    /// `rule` (the default: matched against events) or `policy` (matched against scan
    /// findings, DESIGN §5).
    #[serde(default)]
    pub kind: crate::rule::RuleKind,
    /// Policies only: whether scheduled re-evaluation applies it (default true); a policy
    /// with `monitor: false` judges only newly ingested scans.
    #[serde(default)]
    pub monitor: Option<bool>,
    /// One-line human title.
    pub title: String,
    /// logwarden's severity key; exactly one of `severity` and `level` must be given.
    #[serde(default)]
    pub severity: Option<Severity>,
    /// Sigma's name for the severity (`informational` is accepted for `info`).
    #[serde(default)]
    pub level: Option<Severity>,
    /// Longer description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags such as `attack.t1110.001`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Sigma metadata: who wrote the rule.
    #[serde(default)]
    pub author: Option<String>,
    /// Sigma metadata: links.
    #[serde(default)]
    pub references: Vec<String>,
    /// Sigma metadata: known false positives. The specification says a list; a single string
    /// (written by some SigmaHQ rules) is taken as a list of one, since it is only metadata.
    #[serde(default, deserialize_with = "one_or_many")]
    pub falsepositives: Vec<String>,
    /// Sigma metadata: `stable`, `test`, `experimental`...
    #[serde(default)]
    pub status: Option<String>,
    /// Sigma metadata: creation date, kept as written.
    #[serde(default)]
    pub date: Option<String>,
    /// Sigma metadata: last change date, kept as written.
    #[serde(default)]
    pub modified: Option<String>,
    /// Sigma metadata: licence of the rule text.
    #[serde(default)]
    pub license: Option<String>,
    /// Sigma metadata: related rules, kept opaque.
    #[serde(default)]
    pub related: Option<serde_json::Value>,
    /// Sigma metadata: fields worth showing with a hit.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Sigma: a unique human-readable name, used by correlation rules in place of the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Sigma: the taxonomy the field names follow (`sigma` by default); kept as written.
    #[serde(default)]
    pub taxonomy: Option<String>,
    /// Sigma: the kinds of machines the rule is meant for (`server`).
    #[serde(default)]
    pub scope: Vec<String>,
    /// SigmaHQ: how to simulate the activity (Atomic Red Team tests), kept opaque.
    #[serde(default)]
    pub simulation: Option<serde_json::Value>,
    /// SigmaHQ: where the rule's regression test data lives in the SigmaHQ repository.
    #[serde(default)]
    pub regression_tests_path: Option<String>,
    /// Which logs the rule reads; maps to an `event.dataset` prefilter.
    #[serde(default)]
    pub logsource: Option<LogSourceSpec>,
    /// Named selections and the `condition`, compiled by the loader.
    pub detection: serde_json::Map<String, serde_json::Value>,
    /// How an alert from this rule is presented and deduplicated.
    #[serde(default)]
    pub alert: Option<AlertSpec>,
    /// Count (or distinct count) per group in a sliding window.
    #[serde(default)]
    pub threshold: Option<ThresholdSpec>,
    /// Ordered steps per group within a span.
    #[serde(default)]
    pub sequence: Option<SequenceSpec>,
    /// Impossible travel between successful logins of one user.
    #[serde(default)]
    pub travel: Option<TravelSpec>,
    /// A group's count far above its own baseline.
    #[serde(default)]
    pub spike: Option<SpikeSpec>,
    /// A value never seen for the group during the learning period.
    #[serde(default)]
    pub new_value: Option<NewValueSpec>,
    /// The rule's own test cases, run by `logwarden test`.
    #[serde(default)]
    pub tests: Vec<crate::rule::test::TestCase>,
}

impl RuleSpec {
    /// Every top-level key this struct reads.
    pub const KEYS: &'static [&'static str] = &[
        "id",
        "kind",
        "monitor",
        "title",
        "severity",
        "level",
        "description",
        "tags",
        "author",
        "references",
        "falsepositives",
        "status",
        "date",
        "modified",
        "license",
        "related",
        "fields",
        "name",
        "taxonomy",
        "scope",
        "simulation",
        "regression_tests_path",
        "logsource",
        "detection",
        "alert",
        "threshold",
        "sequence",
        "travel",
        "spike",
        "new_value",
        "tests",
    ];

    /// Keys whose misspelling changes what the rule does (a behaviour, tests, the severity or
    /// what the rule reads), not just its metadata: a custom key too close to one of these is
    /// taken for a typo.
    const GUARDED: &'static [&'static str] = &[
        "id",
        "kind",
        "monitor",
        "title",
        "severity",
        "level",
        "logsource",
        "detection",
        "alert",
        "threshold",
        "sequence",
        "travel",
        "spike",
        "new_value",
        "tests",
    ];
}

/// The rule key `key` is probably a misspelling of, if it is not a key itself: equal once
/// lowercased with `-` read as `_`, or within edit distance 2 (1 for keys of five characters or
/// fewer, where two edits reach too many ordinary words).
pub fn near_miss(key: &str) -> Option<&'static str> {
    if RuleSpec::KEYS.contains(&key) {
        return None;
    }
    let norm = key.to_lowercase().replace('-', "_");
    RuleSpec::GUARDED.iter().copied().find(|known| {
        let limit = match known.len() {
            0..=3 => 0,
            4..=5 => 1,
            _ => 2,
        };
        norm == *known || edit_distance(&norm, known) <= limit
    })
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Keys every behaviour accepts: how long a late event is still taken, and how many groups
/// are tracked before the least recently seen is evicted.
pub trait Bounds {
    /// `lateness` as written.
    fn lateness(&self) -> Option<&str>;
    /// `max_groups` as written.
    fn max_groups(&self) -> Option<usize>;
}

macro_rules! bounds {
    ($t:ty) => {
        impl Bounds for $t {
            fn lateness(&self) -> Option<&str> {
                self.lateness.as_deref()
            }
            fn max_groups(&self) -> Option<usize> {
                self.max_groups
            }
        }
    };
}

/// `threshold`: at least `count` events (or `count` distinct values of `distinct`) per group
/// within `window`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSpec {
    /// Fields whose values make the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// How many events (or distinct values) fire the rule.
    pub count: u32,
    /// Count distinct values of this field instead of events.
    #[serde(default)]
    pub distinct: Option<String>,
    /// The sliding window (`10m`).
    pub window: String,
    /// How far behind the group's newest event an event may be and still count.
    #[serde(default)]
    pub lateness: Option<String>,
    /// Most groups tracked at once.
    #[serde(default)]
    pub max_groups: Option<usize>,
}
bounds!(ThresholdSpec);

/// `sequence`: steps in order per group, all within `within`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// Fields whose values make the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The longest time from the first step's first event to the last step's event.
    pub within: String,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// How far behind the group's newest event an event may be and still count.
    #[serde(default)]
    pub lateness: Option<String>,
    /// Most groups tracked at once.
    #[serde(default)]
    pub max_groups: Option<usize>,
}
bounds!(SequenceSpec);

/// One step of a sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// A condition over the rule's selections (`failed`, `success and not allowlisted`).
    pub condition: String,
    /// How many events of this step (default 1).
    #[serde(default)]
    pub count: Option<u32>,
}

/// `travel`: consecutive successful logins of one user too far apart for the time between.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelSpec {
    /// Fields whose values make the group key (default `[user.name]`).
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Fastest plausible speed (default 900 km/h).
    #[serde(default)]
    pub max_speed_kmh: Option<f64>,
    /// Shortest distance worth an alert (default 500 km).
    #[serde(default)]
    pub min_distance_km: Option<f64>,
    /// Source networks never considered (VPN egress, offices).
    #[serde(default)]
    pub ignore_cidrs: Vec<String>,
    /// How far behind the group's newest event an event may be and still count.
    #[serde(default)]
    pub lateness: Option<String>,
    /// Most groups tracked at once.
    #[serde(default)]
    pub max_groups: Option<usize>,
}
bounds!(TravelSpec);

/// `spike`: the current window's count against the group's own EWMA baseline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpikeSpec {
    /// Fields whose values make the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The counting window (`1h`).
    pub window: String,
    /// The period the baseline averages over (`7d`).
    pub baseline: String,
    /// Alert when the count exceeds `factor` times the baseline mean.
    #[serde(default)]
    pub factor: Option<f64>,
    /// Alert when the count is more than `z` deviations above the baseline mean.
    #[serde(default)]
    pub z: Option<f64>,
    /// Never alert below this count.
    #[serde(default)]
    pub min_count: Option<u32>,
    /// How far behind the group's newest event an event may be and still count.
    #[serde(default)]
    pub lateness: Option<String>,
    /// Most groups tracked at once.
    #[serde(default)]
    pub max_groups: Option<usize>,
}
bounds!(SpikeSpec);

/// `new_value`: a value of `field` never seen for the group during `learning`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewValueSpec {
    /// Fields whose values make the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The field whose values are learned.
    pub field: String,
    /// How long values are learned (quietly) before new ones alert, from the group's first
    /// event.
    pub learning: String,
    /// Most values remembered per group.
    #[serde(default)]
    pub max_values: Option<usize>,
    /// How far behind the group's newest event an event may be and still count.
    #[serde(default)]
    pub lateness: Option<String>,
    /// Most groups tracked at once.
    #[serde(default)]
    pub max_groups: Option<usize>,
}
bounds!(NewValueSpec);

/// A string or a list of strings, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Sigma `logsource`. The specification allows "an arbitrary number of optional elements"
/// beside these four; they are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogSourceSpec {
    /// `aws`, `linux`, `windows`...
    #[serde(default)]
    pub product: Option<String>,
    /// `cloudtrail`, `sshd`, `auth`, `sudo`...
    #[serde(default)]
    pub service: Option<String>,
    /// `process_creation`, `firewall`...
    #[serde(default)]
    pub category: Option<String>,
    /// Free text on how the logs must be collected.
    #[serde(default)]
    pub definition: Option<String>,
}

/// The `alert` block.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Title template with `{field}` placeholders.
    #[serde(default)]
    pub title: Option<String>,
    /// Suppression window as written (`1h`), checked at load, applied by the router.
    #[serde(default)]
    pub dedup: Option<String>,
    /// For rules without a behaviour: the fields that make an alert's group (and so its
    /// fingerprint). Without it every hit of the rule shares one fingerprint.
    #[serde(default)]
    pub group_by: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sigma_metadata_key_deserializes() {
        let text = "\
id: x
title: t
level: informational
description: d
tags: [a.b]
author: me
references: [https://example.com]
falsepositives: [admins]
status: test
date: 2021/08/09
modified: 2022-10-09
license: DRL-1.1
related:
  - id: y
    type: derived
fields: [eventName]
name: x_rule
taxonomy: sigma
scope: [server]
simulation:
  - type: atomic-red-team
    name: n
    technique: T1059.003
    atomic_guid: 00000000-0000-4000-8000-000000000000
regression_tests_path: regression_data/rules/x/info.yml
logsource: {product: aws, service: cloudtrail, category: c, definition: d, custom: e}
detection:
  sel: {a: 1}
  condition: sel
alert: {title: 'T {user.name}', dedup: 1h}
tests: [{name: n, input: [x], expect: []}]
";
        let spec: RuleSpec = serde_saphyr::from_str(text).unwrap();
        let one: RuleSpec =
            serde_saphyr::from_str(&text.replace("[admins]", "admins on Fridays")).unwrap();
        assert_eq!(one.falsepositives, ["admins on Fridays"]);
        assert_eq!(spec.falsepositives, ["admins"]);
        assert_eq!(spec.level, Some(Severity::Info));
        assert_eq!(spec.date.as_deref(), Some("2021/08/09"));
        assert_eq!(spec.modified.as_deref(), Some("2022-10-09"));
        assert_eq!(spec.alert.unwrap().dedup.as_deref(), Some("1h"));
        assert_eq!(spec.tests.len(), 1);
        assert_eq!(spec.scope, ["server"]);
        assert_eq!(spec.name.as_deref(), Some("x_rule"));
        assert_eq!(
            spec.simulation.as_ref().and_then(|s| s[0]["technique"].as_str()),
            Some("T1059.003")
        );
        let keys: Vec<&str> = spec.detection.keys().map(String::as_str).collect();
        assert_eq!(keys, ["sel", "condition"]);
    }

    #[test]
    fn near_misses_of_rule_keys_are_caught_and_custom_keys_are_not() {
        assert_eq!(near_miss("thresold"), Some("threshold"));
        assert_eq!(near_miss("Threshold"), Some("threshold"));
        assert_eq!(near_miss("new-value"), Some("new_value"));
        assert_eq!(near_miss("logsources"), Some("logsource"));
        assert_eq!(near_miss("test"), Some("tests"));
        assert_eq!(near_miss("ID"), Some("id"));
        // Sigma custom attributes, and every key the struct reads.
        for key in ["colour", "label", "owner", "rule_metadata", "ip", "severity_note"] {
            assert_eq!(near_miss(key), None, "{key}");
        }
        for key in RuleSpec::KEYS {
            assert_eq!(near_miss(key), None, "{key}");
        }
    }
}
