//! The serde shape of one rule document, in logwarden form or Sigma form, before compilation.
//!
//! Sigma's metadata keys are accepted so that SigmaHQ rules load unchanged; the detection block
//! is kept as JSON (key order preserved) and compiled by [`crate::rule::load`], which can then
//! say which selection key is wrong instead of serde's generic "data did not match".

use serde::Deserialize;

use crate::rule::Severity;

/// Top-level keys of behaviours (DESIGN section 3) that this build does not run yet. The loader
/// looks for them before deserializing, so such a rule is rejected as unsupported rather than
/// with `deny_unknown_fields`' generic "unknown field".
pub const BEHAVIOUR_KEYS: [&str; 5] = ["threshold", "sequence", "travel", "spike", "new_value"];

/// One rule document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable rule id, unique across all rule files.
    pub id: String,
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
    /// Sigma metadata: known false positives.
    #[serde(default)]
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
    /// Which logs the rule reads; maps to an `event.dataset` prefilter.
    #[serde(default)]
    pub logsource: Option<LogSourceSpec>,
    /// Named selections and the `condition`, compiled by the loader.
    pub detection: serde_json::Map<String, serde_json::Value>,
    /// How an alert from this rule is presented and deduplicated.
    #[serde(default)]
    pub alert: Option<AlertSpec>,
    /// The rule's own test cases, kept opaque until the rule test runner exists.
    #[serde(default)]
    pub tests: Vec<serde_json::Value>,
}

/// Sigma `logsource`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Suppression window as written (`1h`); parsed when routing is built.
    #[serde(default)]
    pub dedup: Option<String>,
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
logsource: {product: aws, service: cloudtrail, category: c, definition: d}
detection:
  sel: {a: 1}
  condition: sel
alert: {title: 'T {user.name}', dedup: 1h}
tests: [{name: n}]
";
        let spec: RuleSpec = serde_saphyr::from_str(text).unwrap();
        assert_eq!(spec.level, Some(Severity::Info));
        assert_eq!(spec.date.as_deref(), Some("2021/08/09"));
        assert_eq!(spec.modified.as_deref(), Some("2022-10-09"));
        assert_eq!(spec.alert.unwrap().dedup.as_deref(), Some("1h"));
        assert_eq!(spec.tests.len(), 1);
        let keys: Vec<&str> = spec.detection.keys().map(String::as_str).collect();
        assert_eq!(keys, ["sel", "condition"]);
    }
}
