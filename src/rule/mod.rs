//! Detection rules: Sigma-style selections and conditions, compiled once at load, then
//! evaluated per event.

pub mod behaviour;
pub mod condition;
pub mod duration;
pub mod engine;
pub mod group;
pub mod load;
pub mod logsource;
pub mod matcher;
pub mod set;
pub mod spec;
pub mod test;

use serde::Deserialize;

use crate::event::Event;
use behaviour::Behaviour;
use condition::Condition;
use duration::Span;
use group::GroupBy;
use matcher::{FieldMatcher, KeywordMatcher};

/// How urgent a rule's alerts are, least to most.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth recording, not worth waking anyone (Sigma `informational`).
    #[serde(alias = "informational")]
    Info,
    /// Look when convenient.
    Low,
    /// Look today.
    Medium,
    /// Look now.
    High,
    /// Look now and escalate.
    Critical,
}

impl Severity {
    /// The rule-file keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// What a rule document is matched against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// Events (the log pipeline).
    #[default]
    Rule,
    /// Scan findings and components (`crate::scan::policy`); never events.
    Policy,
}

/// One compiled named selection.
#[derive(Debug, Clone)]
pub enum Selection {
    /// A map: every field predicate must hold.
    Fields(Vec<FieldMatcher>),
    /// A list of maps: any one map (all of its predicates) must hold.
    AnyOf(Vec<Vec<FieldMatcher>>),
    /// A list of scalars: any keyword anywhere in the event.
    Keywords(KeywordMatcher),
}

impl Selection {
    /// Whether the event satisfies this selection.
    pub fn matches(&self, e: &Event) -> bool {
        match self {
            Selection::Fields(all) => all.iter().all(|m| m.matches(e)),
            Selection::AnyOf(maps) => maps.iter().any(|all| all.iter().all(|m| m.matches(e))),
            Selection::Keywords(k) => k.matches(e),
        }
    }
}

/// Whether a rule can fire given the fields its logsource's events carry ([`Rule::reach`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reach {
    /// Fields the rule names that no event of its logsource carries, in rule order.
    pub missing: Vec<String>,
    /// Whether some event of its logsource can still match.
    pub can_fire: bool,
}

impl Reach {
    /// Most undecided selections tried in every combination.
    pub const MAX_FREE: usize = 12;
}

/// A compiled detection rule: a condition over named selections, and at most one behaviour.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, unique across the rule set.
    pub id: String,
    /// One-line title.
    pub title: String,
    /// How urgent a hit is.
    pub severity: Severity,
    /// Tags as written.
    pub tags: Vec<String>,
    /// Event rule or scan policy.
    pub kind: RuleKind,
    /// Policies: applied by scheduled re-evaluation too (always true for event rules).
    pub monitor: bool,
    /// The `alert` block as written (title template, dedup window string).
    pub alert: spec::AlertSpec,
    /// The `alert.dedup` window, parsed.
    pub dedup: Option<Span>,
    /// Group fields of single-event rules (`alert.group_by`).
    pub group_by: GroupBy,
    /// The behaviour, if the rule has one.
    pub behaviour: Option<Behaviour>,
    /// The condition as written (for `explain`).
    pub condition_text: String,
    /// The rule's own `tests:` cases.
    pub tests: Vec<test::TestCase>,
    /// Where the rule was loaded from (`file:line` of its `id`).
    pub origin: String,
    /// The file the rule was loaded from (test inputs are relative to its directory).
    pub file: std::path::PathBuf,
    names: Vec<String>,
    selections: Vec<Selection>,
    condition: Condition,
    /// The events the rule's `logsource` names.
    source: logsource::LogSource,
    /// A hash of the rule's text as written: equal digests mean an unchanged rule.
    pub digest: u64,
}

impl Rule {
    /// Whether the event triggers the rule: the dataset prefilter first (a cheap compare that
    /// skips most events), then the condition, which evaluates selections only as needed.
    pub fn matches(&self, e: &Event) -> bool {
        self.dataset_allows(e) && self.condition.eval(&mut |i| self.selection_matches(i, e))
    }

    /// `Some(steps)` when the event matches: `steps` is the sequence step mask (0 for other
    /// behaviours), `None` when it does not match.
    pub fn hit(&self, e: &Event) -> Option<u64> {
        if !self.matches(e) {
            return None;
        }
        Some(match &self.behaviour {
            Some(Behaviour::Sequence(seq)) => seq.step_mask(&mut |i| self.selection_matches(i, e)),
            _ => 0,
        })
    }

    /// A copy of the rule without the `event.dataset` and `event.action` equalities that an
    /// index lookup by `dataset_keys` / `action_keys` already proves: an event found under key
    /// `k` has that field equal to `k`, so a predicate accepting every key is true for it.
    /// Only for events found through that index.
    pub fn without_implied(
        &self,
        dataset_keys: Option<&[String]>,
        action_keys: Option<&[String]>,
    ) -> Rule {
        let implied = |m: &FieldMatcher| {
            let keys = match m.field() {
                crate::event::Field::Dataset => dataset_keys,
                crate::event::Field::Action => action_keys,
                _ => None,
            };
            match (keys, m.exact_texts()) {
                (Some(keys), Some(values)) => keys.iter().all(|k| values.contains(k)),
                _ => false,
            }
        };
        let mut fast = self.clone();
        for sel in &mut fast.selections {
            match sel {
                Selection::Fields(all) => all.retain(|m| !implied(m)),
                Selection::AnyOf(maps) => {
                    for all in maps {
                        all.retain(|m| !implied(m));
                    }
                }
                Selection::Keywords(_) => {}
            }
        }
        fast
    }

    /// Names of the selections that made the rule match, or `None` when it does not match.
    pub fn explain(&self, e: &Event) -> Option<Vec<String>> {
        if !self.dataset_allows(e) {
            return None;
        }
        let hits = self.condition.explain(&mut |i| self.selection_matches(i, e))?;
        Some(hits.into_iter().filter_map(|i| self.names.get(i).cloned()).collect())
    }

    /// Whether a selection matches keywords anywhere in the event.
    pub fn reads_keywords(&self) -> bool {
        self.selections.iter().any(|s| matches!(s, Selection::Keywords(_)))
    }

    /// Every field a selection names (keyword selections name none).
    pub fn fields(&self) -> Vec<&crate::event::Field> {
        let mut out = Vec::new();
        for sel in &self.selections {
            match sel {
                Selection::Fields(all) => out.extend(all.iter().map(FieldMatcher::field)),
                Selection::AnyOf(maps) => {
                    out.extend(maps.iter().flatten().map(FieldMatcher::field));
                }
                Selection::Keywords(_) => {}
            }
        }
        out
    }

    /// The fields the rule names that no event of its logsource carries, and whether the
    /// rule can match at all without them. A predicate on such a field always sees the field
    /// absent, so it is constant (false, or true for `null` and `exists: false`); the rule can
    /// fire if some truth of the other selections makes the condition true. With more than
    /// [`Reach::MAX_FREE`] undecided selections the answer is taken as yes, unproven.
    pub fn reach(&self) -> Reach {
        let absent = Event::default();
        let mut missing: Vec<String> = Vec::new();
        // Per selection: Some(constant) when its truth no longer depends on the event.
        let mut constant = |all: &[FieldMatcher]| -> Option<bool> {
            let mut undecided = false;
            let mut value = true;
            for m in all {
                if self.source.carries(m.field()) {
                    undecided = true;
                    continue;
                }
                let name = m.field().name().to_owned();
                if !missing.contains(&name) {
                    missing.push(name);
                }
                value &= m.matches(&absent);
            }
            if !value {
                Some(false)
            } else if undecided {
                None
            } else {
                Some(true)
            }
        };
        let fixed: Vec<Option<bool>> = self
            .selections
            .iter()
            .map(|sel| match sel {
                Selection::Fields(all) => constant(all),
                Selection::AnyOf(maps) => {
                    let per_map: Vec<Option<bool>> = maps.iter().map(|m| constant(m)).collect();
                    if per_map.contains(&Some(true)) {
                        Some(true)
                    } else if per_map.iter().all(|v| *v == Some(false)) {
                        Some(false)
                    } else {
                        None
                    }
                }
                Selection::Keywords(_) => None,
            })
            .collect();
        let free: Vec<usize> = (0..fixed.len()).filter(|&i| fixed[i].is_none()).collect();
        let can_fire = missing.is_empty()
            || free.len() > Reach::MAX_FREE
            || (0u32..1 << free.len()).any(|bits| {
                self.condition.eval(&mut |i| match fixed.get(i).copied().flatten() {
                    Some(v) => v,
                    None => free.iter().position(|&f| f == i).is_some_and(|k| bits >> k & 1 == 1),
                })
            });
        Reach { missing, can_fire }
    }

    /// Selection names in rule order.
    pub fn selection_names(&self) -> &[String] {
        &self.names
    }

    /// The values (lowercased) `field` must take for the rule to match, read from plain
    /// equalities in selections the condition cannot do without (one selection it requires,
    /// or a set of which it requires one); `None` when no such bound exists. The rule set
    /// indexes rules by `event.dataset` and `event.action` this way.
    pub fn required_values(&self, field: &crate::event::Field) -> Option<Vec<String>> {
        let from_map = |all: &[FieldMatcher]| {
            all.iter().find(|m| m.field() == field).and_then(FieldMatcher::exact_texts)
        };
        let per_selection: Vec<Option<Vec<String>>> = self
            .selections
            .iter()
            .map(|sel| match sel {
                Selection::Fields(all) => from_map(all),
                Selection::AnyOf(maps) => {
                    maps.iter().map(|m| from_map(m)).collect::<Option<Vec<_>>>().map(|v| v.concat())
                }
                Selection::Keywords(_) => None,
            })
            .collect();
        let tidy = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        // One required selection is the tightest bound; else the union over every selection
        // that has one, if the condition needs at least one of them.
        for (i, values) in per_selection.iter().enumerate() {
            if let Some(v) = values
                && self.condition.requires(i)
            {
                return Some(tidy(v.clone()));
            }
        }
        let bounded: Vec<usize> =
            (0..per_selection.len()).filter(|&i| per_selection[i].is_some()).collect();
        if !self.condition.requires_any(&bounded) {
            return None;
        }
        Some(tidy(bounded.iter().filter_map(|&i| per_selection[i].clone()).flatten().collect()))
    }

    /// The dataset prefilter, `None` when the rule reads every dataset.
    pub fn datasets(&self) -> Option<&[&'static str]> {
        self.source.datasets()
    }

    /// The compiled `logsource`.
    pub fn logsource(&self) -> &logsource::LogSource {
        &self.source
    }

    /// The compiled condition.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    fn dataset_allows(&self, e: &Event) -> bool {
        self.source.allows(e)
    }

    fn selection_matches(&self, i: usize, e: &Event) -> bool {
        // The condition only holds indices of `names`, which has one entry per selection.
        self.selections.get(i).is_some_and(|s| s.matches(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Info < Severity::Low);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
        assert_eq!(Severity::Critical.as_str(), "critical");
    }
}
