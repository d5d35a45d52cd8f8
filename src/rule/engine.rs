//! The stateful half of detection: feeds matched events to each rule's behaviour in order and
//! turns what fires into [`Alert`]s.

use std::sync::Arc;

use crate::alert::{Alert, Explain, fingerprint, render_title};
use crate::event::Event;
use crate::rule::Rule;
use crate::rule::behaviour::{Detector, EventRef, Fired, Services, Stats};
use crate::rule::group::GroupBy;
use crate::rule::set::{Hit, RuleSet};

/// Per-rule counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleStats {
    /// Events that matched the rule's condition.
    pub matches: u64,
    /// Alerts the rule raised.
    pub alerts: u64,
    /// The behaviour's counters (zero for single-event rules).
    pub behaviour: Stats,
}

/// Rule state for one stream of events.
#[derive(Debug)]
pub struct Engine {
    set: Arc<RuleSet>,
    detectors: Vec<Option<Box<dyn Detector>>>,
    counts: Vec<(u64, u64)>,
    explain: bool,
    fired: Vec<Fired>,
}

impl Engine {
    /// Fresh state for every rule of `set`; `explain` adds [`Explain`] to alerts.
    pub fn new(set: Arc<RuleSet>, services: &Services, explain: bool) -> Engine {
        let detectors =
            set.rules().iter().map(|r| r.behaviour.as_ref().map(|b| b.start(services))).collect();
        let counts = vec![(0, 0); set.rules().len()];
        Engine { set, detectors, counts, explain, fired: Vec::new() }
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Matches `e` against the rules and feeds it on.
    pub fn process(&mut self, e: &Event, out: &mut Vec<Alert>) {
        let mut hits = Vec::new();
        self.set.hits(e, &mut hits);
        self.observe(e, &hits, out);
    }

    /// Feeds an event with the hits [`RuleSet::hits`] found for it (perhaps on another thread).
    pub fn observe(&mut self, e: &Event, hits: &[Hit], out: &mut Vec<Alert>) {
        let set = Arc::clone(&self.set);
        for hit in hits {
            let i = hit.rule as usize;
            let Some(rule) = set.rules().get(i) else { continue };
            if let Some(c) = self.counts.get_mut(i) {
                c.0 += 1;
            }
            let before = out.len();
            match self.detectors.get_mut(i).and_then(Option::as_mut) {
                Some(d) => {
                    self.fired.clear();
                    d.observe(e, hit.steps, &mut self.fired);
                    let group_by = rule.behaviour.as_ref().map(|b| b.group_by());
                    for f in self.fired.drain(..) {
                        out.push(make_alert(rule, group_by, f, e, self.explain));
                    }
                }
                None => {
                    let fired = Fired {
                        key: rule.group_by.key_or_dash(e),
                        count: 1,
                        first_seen: e.timestamp,
                        last_seen: e.timestamp,
                        events: vec![EventRef::of(e)],
                        detail: None,
                    };
                    out.push(make_alert(rule, Some(&rule.group_by), fired, e, self.explain));
                }
            }
            if let Some(c) = self.counts.get_mut(i) {
                c.1 += (out.len() - before) as u64;
            }
        }
    }

    /// Counters per rule, in rule order.
    pub fn stats(&self) -> Vec<RuleStats> {
        self.counts
            .iter()
            .zip(&self.detectors)
            .map(|(&(matches, alerts), d)| RuleStats {
                matches,
                alerts,
                behaviour: d.as_ref().map(|d| d.stats()).unwrap_or_default(),
            })
            .collect()
    }
}

fn make_alert(
    rule: &Rule,
    group_by: Option<&GroupBy>,
    f: Fired,
    e: &Event,
    explain: bool,
) -> Alert {
    let group: Vec<(String, String)> = group_by
        .map(|g| g.pairs(&f.key).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();
    let template = rule.alert.title.as_deref().unwrap_or(&rule.title);
    let title = render_title(template, &group, f.count, e);
    Alert {
        rule_id: rule.id.clone(),
        rule_title: rule.title.clone(),
        severity: rule.severity,
        tags: rule.tags.clone(),
        title,
        fingerprint: fingerprint(&rule.id, &group),
        group,
        count: f.count,
        first_seen: f.first_seen,
        last_seen: f.last_seen,
        events: f.events,
        sample: vec![e.clone()],
        detail: f.detail,
        explain: explain.then(|| Explain {
            condition: rule.condition_text.clone(),
            selections: rule.explain(e).unwrap_or_default(),
            behaviour: rule.behaviour.as_ref().map(|b| b.name()),
        }),
    }
}
