//! A loaded rule set, indexed by dataset so an event meets only the rules that can match it.
//! Matching is pure (no state), so it may run on any thread; the stateful part is
//! [`crate::rule::engine::Engine`].

use std::borrow::Cow;

use foldhash::HashMap;
use foldhash::HashMapExt;

use crate::event::{Event, Field};
use crate::rule::Rule;

/// A rule an event matched: its index in the set, and for sequences which steps it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`RuleSet::rules`].
    pub rule: u32,
    /// Bit `i` set when sequence step `i` holds; 0 for other rules.
    pub steps: u64,
}

/// Rules that share an index key, split by the action they require.
#[derive(Debug, Default)]
struct Bucket {
    /// Lowercased `event.action` -> rules that require it.
    by_action: HashMap<String, Vec<u32>>,
    /// Rules that do not pin the action.
    any_action: Vec<u32>,
}

impl Bucket {
    fn add(&mut self, rule: u32, actions: Option<&[String]>) {
        match actions {
            Some(list) => {
                for a in list {
                    self.by_action.entry(a.clone()).or_default().push(rule);
                }
            }
            None => self.any_action.push(rule),
        }
    }

    /// The candidate lists for an event whose lowercased action is `action`.
    fn lists<'a>(&'a self, action: Option<&str>) -> [&'a [u32]; 2] {
        let pinned = action.and_then(|a| self.by_action.get(a)).map_or(&[][..], Vec::as_slice);
        [pinned, &self.any_action]
    }
}

/// Compiled rules and the index over them: by `event.dataset`, then by `event.action`, each
/// taken from the rule's logsource or from an equality its condition cannot do without. An
/// event meets only the rules whose keys it carries, plus the rules that pin neither.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// The rules as the index runs them: without the predicates the lookup proved.
    fast: Vec<Rule>,
    /// Lowercased `event.dataset` -> rules that require it.
    by_dataset: HashMap<String, Bucket>,
    /// Rules that read every dataset.
    unfiltered: Bucket,
}

/// Lowercases ASCII (Sigma equality ignores case; index keys are lowercase): in place in
/// `buf` for the usual short values, in a new string for longer ones.
fn lower<'a>(s: &'a str, buf: &'a mut [u8; 64]) -> Cow<'a, str> {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Borrowed(s);
    }
    let Some(out) = buf.get_mut(..s.len()) else { return Cow::Owned(s.to_ascii_lowercase()) };
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    // Lowercasing ASCII letters keeps UTF-8 valid; the fallback is never taken.
    match std::str::from_utf8(out) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(s.to_ascii_lowercase()),
    }
}

impl RuleSet {
    /// Indexes `rules` (in load order, which fixes the order of alerts for one event).
    /// Scan policies among them are left out: they judge findings, never events.
    pub fn new(mut rules: Vec<Rule>) -> RuleSet {
        rules.retain(|r| r.kind == crate::rule::RuleKind::Rule);
        let mut by_dataset: HashMap<String, Bucket> = HashMap::new();
        let mut unfiltered = Bucket::default();
        let mut fast = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            // A CloudTrail rule's `eventName` is the event's action: the parser sets one from
            // the other, so a rule that requires an eventName can be keyed by it (SigmaHQ's
            // rules name record fields, not ECS ones).
            let cloudtrail_only = r.datasets() == Some(&["cloudtrail"][..]);
            let actions = r.required_values(&Field::Action).or_else(|| {
                cloudtrail_only
                    .then(|| r.required_values(&Field::Original("eventName".into())))
                    .flatten()
            });
            let datasets = r.required_values(&Field::Dataset).or_else(|| {
                r.datasets().map(|d| d.iter().map(|x| x.to_ascii_lowercase()).collect())
            });
            fast.push(r.without_implied(datasets.as_deref(), actions.as_deref()));
            match datasets {
                Some(list) => {
                    for d in list {
                        by_dataset.entry(d).or_default().add(i, actions.as_deref());
                    }
                }
                None => unfiltered.add(i, actions.as_deref()),
            }
        }
        RuleSet { rules, fast, by_dataset, unfiltered }
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
        let mut dbuf = [0u8; 64];
        let mut abuf = [0u8; 64];
        let dataset = e.dataset.as_deref().map(|d| lower(d, &mut dbuf));
        let action = e.action.as_deref().map(|a| lower(a, &mut abuf));
        let action = action.as_deref();
        let indexed = dataset.as_deref().and_then(|d| self.by_dataset.get(d));
        let mut lists = 0;
        for bucket in indexed.into_iter().chain(std::iter::once(&self.unfiltered)) {
            for list in bucket.lists(action) {
                lists += usize::from(!list.is_empty());
                for &i in list {
                    if let Some(steps) = self.fast.get(i as usize).and_then(|r| r.hit(e)) {
                        out.push(Hit { rule: i, steps });
                    }
                }
            }
        }
        if lists > 1 {
            // A rule sits in one list per key it requires, and an event has one dataset and
            // one action, so a rule is met at most once; only the order needs fixing.
            out[start..].sort_unstable_by_key(|h| h.rule);
        }
    }

    /// How many rules an event with this dataset and action is tried against (for tests and
    /// benches of the index).
    pub fn candidates(&self, dataset: Option<&str>, action: Option<&str>) -> usize {
        let indexed = dataset.and_then(|d| self.by_dataset.get(&d.to_ascii_lowercase()));
        let action = action.map(str::to_ascii_lowercase);
        indexed
            .into_iter()
            .chain(std::iter::once(&self.unfiltered))
            .flat_map(|b| b.lists(action.as_deref()))
            .map(<[u32]>::len)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::load::load_str;

    const RULES: &str = "\
id: a
title: a
severity: low
detection:
  sel: {event.dataset: sshd, event.action: [ssh_login, ssh_invalid_user]}
  condition: sel
---
id: b
title: b
severity: low
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {event.action: ConsoleLogin}
  condition: sel
---
id: c
title: c
severity: low
detection:
  sel: {event.dataset: sshd}
  other: {event.action: ssh_login}
  condition: sel or other
---
id: e
title: e
severity: low
detection:
  one: {event.dataset: sshd, event.action: ssh_timeout}
  two: {event.dataset: sshd, event.action: ssh_protocol_error}
  condition: one or two
---
id: d
title: d
severity: low
detection:
  kw: [hello]
  condition: kw
";

    fn event(dataset: &str, action: &str) -> Event {
        Event {
            dataset: Some(dataset.into()),
            action: Some(action.into()),
            message: Some("hello".into()),
            ..Event::default()
        }
    }

    #[test]
    fn index_narrows_candidates_by_dataset_and_action() {
        let set = RuleSet::new(load_str(RULES, "r.yml").unwrap());
        // a (sshd, ssh_login), c (`sel or other` pins nothing, since `other` names no
        // dataset) and d (keywords pin nothing).
        assert_eq!(set.candidates(Some("sshd"), Some("ssh_login")), 3);
        // e: `one or two` needs one of them: keyed by sshd and by either action.
        assert_eq!(set.candidates(Some("sshd"), Some("ssh_timeout")), 3);
        assert_eq!(set.candidates(Some("syslog"), Some("ssh_timeout")), 2);
        // b is keyed on cloudtrail + consolelogin, in any case.
        assert_eq!(set.candidates(Some("cloudtrail"), Some("CONSOLELOGIN")), 3);
        assert_eq!(set.candidates(Some("cloudtrail"), Some("StopLogging")), 2);
    }

    #[test]
    fn long_mixed_case_actions_are_found() {
        // Found in review: values over the 64-byte buffer were treated as absent.
        let long = format!("Put{}Policy", "Very".repeat(20));
        let text = format!(
            "id: l\ntitle: l\nseverity: low\ndetection:\n  sel: {{event.action: {long}}}\n  condition: sel\n"
        );
        let set = RuleSet::new(load_str(&text, "r.yml").unwrap());
        let mut hits = Vec::new();
        set.hits(&event("cloudtrail", &long), &mut hits);
        assert_eq!(hits.len(), 1);
    }

    #[test]
    fn hits_come_in_rule_order_and_agree_with_unindexed_matching() {
        let rules = load_str(RULES, "r.yml").unwrap();
        let set = RuleSet::new(rules.clone());
        for (d, a) in [("sshd", "ssh_login"), ("cloudtrail", "ConsoleLogin"), ("x", "y")] {
            let e = event(d, a);
            let mut hits = Vec::new();
            set.hits(&e, &mut hits);
            let got: Vec<u32> = hits.iter().map(|h| h.rule).collect();
            let want: Vec<u32> =
                (0..rules.len() as u32).filter(|&i| rules[i as usize].matches(&e)).collect();
            assert_eq!(got, want, "{d} {a}");
        }
    }
}
