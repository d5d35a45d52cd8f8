//! A loaded rule set, indexed by dataset so an event meets only the rules that can match it.
//! Matching is pure (no state), so it may run on any thread; the stateful part is
//! [`crate::rule::engine::Engine`].

use std::collections::HashMap;

use crate::event::Event;
use crate::rule::Rule;

/// A rule an event matched: its index in the set, and for sequences which steps it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`RuleSet::rules`].
    pub rule: u32,
    /// Bit `i` set when sequence step `i` holds; 0 for other rules.
    pub steps: u64,
}

/// Compiled rules and the index over them.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// `event.dataset` -> rules whose logsource limits them to that dataset.
    by_dataset: HashMap<String, Vec<u32>>,
    /// Rules that read every event.
    unfiltered: Vec<u32>,
}

impl RuleSet {
    /// Indexes `rules` (in load order, which fixes the order of alerts for one event).
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut by_dataset: HashMap<String, Vec<u32>> = HashMap::new();
        let mut unfiltered = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match r.datasets() {
                Some(list) => {
                    for d in list {
                        by_dataset.entry((*d).to_owned()).or_default().push(i);
                    }
                }
                None => unfiltered.push(i),
            }
        }
        RuleSet { rules, by_dataset, unfiltered }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether the set holds no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends the rules `e` matches to `out`, in rule order.
    pub fn hits(&self, e: &Event, out: &mut Vec<Hit>) {
        let start = out.len();
        let indexed = e.dataset.as_deref().and_then(|d| self.by_dataset.get(d));
        for &i in indexed.into_iter().flatten().chain(&self.unfiltered) {
            if let Some(steps) = self.rules.get(i as usize).and_then(|r| r.hit(e)) {
                out.push(Hit { rule: i, steps });
            }
        }
        if indexed.is_some() && !self.unfiltered.is_empty() {
            out[start..].sort_unstable_by_key(|h| h.rule);
        }
    }
}
