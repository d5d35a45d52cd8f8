//! `sequence`: ordered steps per group within a span, each step a condition over the rule's
//! selections with a count (five failures, then a success from the same address: the brute
//! force that worked).
//!
//! The group keeps the step-matching events of the last `within` (bounded). When an event
//! arrives that matches the last step, the steps are matched backwards from the newest event,
//! each step taking the latest events it can that come before the ones the next step took:
//! taking the latest keeps the sequence as short as possible, so if any assignment fits in
//! `within`, this one does. A complete sequence fires once and the group starts over.

use super::snapshot::Formats;
use super::{
    BehaviourError, Detector, Fired, GroupState, GroupTable, Limits, MAX_REFS, Stats, Tracked,
    Trail, span,
};
use crate::event::Event;
use crate::rule::condition::Condition;
use crate::rule::duration::Span;
use crate::rule::group::GroupBy;
use crate::rule::spec::SequenceSpec;
use crate::snapshot::{Out, SnapshotError};
use compact_str::CompactString;

/// Snapshot headers: groups are [`Trail`]s of step masks (see `super::snapshot`).
const SNAPSHOT: Formats = Formats::new("sequence", b'q', 2);

/// Most steps a sequence may have (step membership is a bit mask).
pub const MAX_STEPS: usize = 16;
/// Most events a group keeps: more than any sensible sequence needs, few enough to bound memory.
const MAX_ENTRIES: usize = 1024;

/// A compiled step.
#[derive(Clone, Debug)]
pub struct Step {
    /// The condition as written.
    pub text: String,
    /// Compiled against the rule's selections.
    pub condition: Condition,
    /// Events needed.
    pub count: u32,
}

/// A compiled `sequence` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
    /// Longest time from the first used event to the last.
    pub within: Span,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Lateness and group bounds.
    pub limits: Limits,
}

impl Config {
    /// Compiles a `sequence` block; step conditions are parsed against `selections`.
    pub fn compile(spec: &SequenceSpec, selections: &[&str]) -> Result<Config, BehaviourError> {
        if spec.steps.len() < 2 {
            return Err(BehaviourError::new("steps", "a sequence needs at least two steps"));
        }
        if spec.steps.len() > MAX_STEPS {
            return Err(BehaviourError::new("steps", format!("at most {MAX_STEPS} steps")));
        }
        let mut steps = Vec::with_capacity(spec.steps.len());
        for (i, s) in spec.steps.iter().enumerate() {
            let condition = Condition::parse(&s.condition, selections).map_err(|e| {
                BehaviourError::new(
                    format!("steps[{i}].condition"),
                    format!("`{}`: {e}", s.condition),
                )
            })?;
            let count = s.count.unwrap_or(1);
            if count == 0 || count as usize > MAX_ENTRIES / 2 {
                return Err(BehaviourError::new(
                    format!("steps[{i}].count"),
                    format!("must be between 1 and {}", MAX_ENTRIES / 2),
                ));
            }
            steps.push(Step { text: s.condition.clone(), condition, count });
        }
        Ok(Config {
            group_by: GroupBy::new(&spec.group_by),
            within: span("within", &spec.within)?,
            steps,
            limits: Limits::compile(spec)?,
        })
    }

    /// The step mask of an event: bit `i` set when step `i`'s condition holds, given which
    /// selections match.
    pub fn step_mask(&self, matched: &mut dyn FnMut(usize) -> bool) -> u64 {
        let mut mask = 0;
        for (i, s) in self.steps.iter().enumerate() {
            if s.condition.eval(matched) {
                mask |= 1 << i;
            }
        }
        mask
    }
}

/// A group's step events of the last `within`, each tagged with the steps it matches (at
/// most [`MAX_STEPS`], so 16 bits).
type Pending = Trail<u16>;

/// The `sequence` state machine.
#[derive(Debug)]
pub struct Sequence {
    config: Config,
    groups: GroupTable<Pending>,
    late: u64,
    ungrouped: u64,
    skipped: u64,
}

impl Sequence {
    /// A fresh state machine.
    pub fn new(config: Config) -> Sequence {
        let groups = GroupTable::new(config.limits.max_groups);
        Sequence { config, groups, late: 0, ungrouped: 0, skipped: 0 }
    }
}

/// Indices of entries that complete the steps, matched backwards (see the module docs), in
/// time order; `None` when the steps cannot all be met.
fn complete(entries: &[Tracked<u16>], steps: &[Step]) -> Option<Vec<usize>> {
    let mut used = Vec::new();
    let mut end = entries.len();
    for (k, step) in steps.iter().enumerate().rev() {
        let mut need = step.count;
        let mut i = end;
        while need > 0 {
            i = i.checked_sub(1)?;
            if entries[i].tag & (1 << k) != 0 {
                used.push(i);
                need -= 1;
            }
        }
        // The last step's events must include the newest: firing on an older completion
        // would report a sequence that was complete before and was not seen then.
        if k == steps.len() - 1 && used.first() != Some(&(entries.len() - 1)) {
            return None;
        }
        end = i;
    }
    used.reverse();
    Some(used)
}

/// Snapshots (see `super::snapshot`).
impl Sequence {
    /// Reads a full snapshot or, with `changes`, a change set into the state.
    fn load(&mut self, bytes: &[u8], changes: bool) -> Result<(), SnapshotError> {
        let check = |_: &Pending| Ok(());
        let extra = |_: &()| Ok(());
        let [late, ungrouped, skipped, _] = super::snapshot::load::<Pending, ()>(
            SNAPSHOT,
            &mut self.groups,
            bytes,
            changes,
            check,
            extra,
        )?;
        (self.late, self.ungrouped, self.skipped) = (late, ungrouped, skipped);
        Ok(())
    }
}

impl Detector for Sequence {
    fn observe(&mut self, e: &Event, steps: u64, out: &mut Vec<Fired>) {
        if steps == 0 {
            self.skipped += 1;
            return;
        }
        let Some(key) = self.config.group_by.key(e) else {
            self.ungrouped += 1;
            return;
        };
        let within = self.config.within;
        let idle = Span(within.nanos().saturating_add(self.config.limits.lateness.nanos()));
        let p = self.groups.entry(&key, e.timestamp, idle, Pending::default);
        if e.timestamp < self.config.limits.lateness.before(p.newest()) {
            self.late += 1;
            return;
        }
        // Only the low MAX_STEPS bits can be set: compile refuses more steps.
        let tracked = Tracked::new(e, (steps & 0xffff) as u16);
        let before = p.entries.len();
        let at = p.insert(tracked);
        p.forget_before(within.before(p.newest()), MAX_ENTRIES);
        // Entries before the new one were forgotten from the front only; where it now sits.
        let at = at.saturating_sub(before + 1 - p.entries.len());
        // The new event can complete a sequence ending at itself or, when it arrived late, at a
        // last-step event already kept after it.
        let last = 1u16 << (self.config.steps.len() - 1);
        let done = (at..p.entries.len()).filter(|&j| p.entries[j].tag & last != 0).find_map(|j| {
            let used = complete(&p.entries[..=j], &self.config.steps)?;
            let first = p.entries[*used.first()?].ts;
            (first >= within.before(p.entries[j].ts)).then_some((used, j))
        });
        let Some((used, j)) = done else { return };
        let fired = Fired {
            key: CompactString::from(key.as_str()),
            count: used.len() as u64,
            first_seen: used.first().map_or(e.timestamp, |&i| p.entries[i].ts),
            last_seen: p.entries[j].ts,
            events: used.iter().take(MAX_REFS).map(|&i| p.entries[i].event_ref()).collect(),
            detail: None,
        };
        p.judge();
        out.push(fired);
    }

    fn stats(&self) -> Stats {
        self.groups.stats(self.late, self.ungrouped, self.skipped)
    }

    fn snapshot_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, 0];
        super::snapshot::write(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, false)
    }

    fn snapshot_changes_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, 0];
        super::snapshot::write_changes(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, true)
    }

    fn mark(&mut self) {
        self.groups.mark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::rule::spec::StepSpec;

    const FAIL: u64 = 1;
    const OK: u64 = 2;

    fn config(fails: u32, within: &str) -> Config {
        Config::compile(
            &SequenceSpec {
                group_by: vec!["source.ip".into()],
                within: within.into(),
                steps: vec![
                    StepSpec { condition: "failed".into(), count: Some(fails) },
                    StepSpec { condition: "success".into(), count: None },
                ],
                lateness: Some("10s".into()),
                max_groups: None,
            },
            &["failed", "success"],
        )
        .unwrap()
    }

    fn ev(secs: i64, ip: &str) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(secs, 0),
            source_ip: ip.parse().ok(),
            log_offset: Some(secs as u64),
            ..Event::default()
        }
    }

    fn feed(s: &mut Sequence, events: &[(i64, u64)]) -> Vec<Fired> {
        let mut out = Vec::new();
        for &(t, mask) in events {
            s.observe(&ev(t, "192.0.2.9"), mask, &mut out);
        }
        out
    }

    #[test]
    fn failures_then_success_fires_once_with_all_the_events() {
        let mut s = Sequence::new(config(3, "10m"));
        let fired = feed(&mut s, &[(0, FAIL), (5, FAIL), (9, FAIL), (12, OK), (13, OK)]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 4);
        assert_eq!(fired[0].first_seen, Timestamp::from_secs_nanos(0, 0));
        assert_eq!(fired[0].last_seen, Timestamp::from_secs_nanos(12, 0));
        let offsets: Vec<_> = fired[0].events.iter().map(|r| r.offset.unwrap()).collect();
        assert_eq!(offsets, [0, 5, 9, 12]);
    }

    #[test]
    fn too_few_failures_or_success_first_does_not_fire() {
        let mut s = Sequence::new(config(3, "10m"));
        assert!(feed(&mut s, &[(0, FAIL), (1, FAIL), (2, OK)]).is_empty());
        let mut s = Sequence::new(config(2, "10m"));
        assert!(feed(&mut s, &[(0, OK), (1, FAIL), (2, FAIL)]).is_empty());
    }

    #[test]
    fn steps_must_fit_within_the_span() {
        let mut s = Sequence::new(config(2, "60s"));
        assert!(feed(&mut s, &[(0, FAIL), (30, FAIL), (61, OK)]).is_empty());
        let mut s = Sequence::new(config(2, "60s"));
        assert_eq!(feed(&mut s, &[(0, FAIL), (30, FAIL), (60, OK)]).len(), 1);
    }

    #[test]
    fn latest_failures_are_used_so_a_long_run_still_fits() {
        let mut s = Sequence::new(config(3, "60s"));
        let mut events: Vec<(i64, u64)> = (0..10).map(|i| (i * 20, FAIL)).collect();
        events.push((190, OK));
        let fired = feed(&mut s, &events);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].first_seen, Timestamp::from_secs_nanos(140, 0));
    }

    #[test]
    fn an_event_matching_both_steps_is_used_once() {
        let mut s = Sequence::new(config(1, "60s"));
        assert!(feed(&mut s, &[(0, FAIL | OK)]).is_empty());
        assert_eq!(feed(&mut s, &[(1, OK)]).len(), 1);
    }

    #[test]
    fn a_late_success_still_completes_the_sequence() {
        // Found in review: the success at 5 arrives after the failure at 10.
        let mut s = Sequence::new(config(3, "10m"));
        let fired = feed(&mut s, &[(0, FAIL), (1, FAIL), (2, FAIL), (10, FAIL), (5, OK)]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].last_seen, Timestamp::from_secs_nanos(5, 0));
        let offsets: Vec<_> = fired[0].events.iter().map(|r| r.offset.unwrap()).collect();
        assert_eq!(offsets, [0, 1, 2, 5]);
    }

    #[test]
    fn a_late_failure_can_complete_a_success_already_kept() {
        let mut s = Sequence::new(config(2, "10m"));
        assert!(feed(&mut s, &[(0, FAIL), (8, OK)]).is_empty());
        let fired = feed(&mut s, &[(4, FAIL)]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].last_seen, Timestamp::from_secs_nanos(8, 0));
    }

    #[test]
    fn a_replayed_sequence_does_not_fire_twice() {
        let mut s = Sequence::new(config(2, "10m"));
        let burst = [(100, FAIL), (101, FAIL), (102, OK)];
        assert_eq!(feed(&mut s, &burst).len(), 1);
        // The same lines again (a duplicated delivery): older than the fired sequence by more
        // than the 10 s lateness.
        let again = [(30, FAIL), (31, FAIL), (32, OK)];
        assert!(feed(&mut s, &again).is_empty());
        assert_eq!(s.stats().late, 3);
    }

    #[test]
    fn late_and_stepless_events_are_counted() {
        let mut s = Sequence::new(config(1, "10m"));
        feed(&mut s, &[(100, FAIL), (50, FAIL), (101, 0)]);
        assert_eq!(s.stats().late, 1);
        assert_eq!(s.stats().skipped, 1);
    }

    #[test]
    fn compile_names_the_bad_step() {
        let spec = SequenceSpec {
            group_by: vec![],
            within: "1m".into(),
            steps: vec![
                StepSpec { condition: "failed".into(), count: None },
                StepSpec { condition: "nope".into(), count: None },
            ],
            lateness: None,
            max_groups: None,
        };
        let e = Config::compile(&spec, &["failed"]).unwrap_err();
        assert_eq!(e.key, "steps[1].condition");
        assert!(e.detail.contains("unknown selection `nope`"), "{}", e.detail);
        let one = SequenceSpec { steps: spec.steps[..1].to_vec(), ..spec };
        assert_eq!(Config::compile(&one, &["failed"]).unwrap_err().key, "steps");
    }

    /// Failures and successes from three addresses, some late, a few stepless, two of the
    /// addresses completing the sequence more than once.
    fn mixed() -> Vec<(Event, u64)> {
        (0..45i64)
            .map(|i| {
                let ip = ["192.0.2.9", "192.0.2.10", "203.0.113.5"][(i % 3) as usize];
                let t = i * 3 - if i % 8 == 0 { 7 } else { 0 };
                let mask = match i % 10 {
                    9 => OK,
                    6 => FAIL | OK,
                    4 => 0,
                    _ => FAIL,
                };
                let mut e = ev(t, ip);
                if i % 3 == 0 {
                    e.log_file_path = Some(crate::event::Sym::from("/var/log/secure"));
                }
                (e, mask)
            })
            .collect()
    }

    #[test]
    fn a_restored_snapshot_resumes_exactly() {
        let make = || -> Box<dyn Detector> { Box::new(Sequence::new(config(3, "60s"))) };
        super::super::snapshot::check::resumes_identically(make, &mixed());
    }

    #[test]
    fn a_base_and_change_sets_resume_exactly() {
        let make = || -> Box<dyn Detector> { Box::new(Sequence::new(config(3, "60s"))) };
        super::super::snapshot::check::changes_resume_identically_everywhere(make, &mixed());
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let make = || -> Box<dyn Detector> { Box::new(Sequence::new(config(2, "60s"))) };
        super::super::snapshot::check::survives_damage(make, &mixed()[..20]);
    }

    /// Whether some choice of entries completes the steps in order, the last step using the
    /// newest entry: tried exhaustively, for checking the backward greedy match.
    fn brute_force(entries: &[Tracked<u16>], counts: &[u32]) -> bool {
        fn fill(
            entries: &[Tracked<u16>],
            counts: &[u32],
            step: usize,
            end: usize,
            need: u32,
        ) -> bool {
            if need == 0 {
                return step == 0 || fill(entries, counts, step - 1, end, counts[step - 1]);
            }
            // Choose the latest entry this step uses among those before `end`, then recurse.
            (0..end).rev().any(|i| {
                entries[i].tag & (1 << step) != 0 && fill(entries, counts, step, i, need - 1)
            })
        }
        let Some(last) = entries.len().checked_sub(1) else { return false };
        let k = counts.len() - 1;
        entries[last].tag & (1 << k) != 0 && fill(entries, counts, k, last, counts[k] - 1)
    }

    proptest::proptest! {
        #[test]
        fn backward_greedy_completes_exactly_when_some_assignment_does(
            masks in proptest::collection::vec(1u16..8, 1..12),
            counts in proptest::collection::vec(1u32..4, 2..4),
        ) {
            let entries: Vec<Tracked<u16>> = masks
                .iter()
                .enumerate()
                .map(|(i, &tag)| Tracked::from_parts(Timestamp(i as i64), crate::rule::behaviour::PathId::NONE, None, tag))
                .collect();
            let steps: Vec<Step> = counts
                .iter()
                .map(|&count| Step {
                    text: String::new(),
                    condition: Condition::parse("a", &["a"]).unwrap(),
                    count,
                })
                .collect();
            let greedy = complete(&entries, &steps);
            proptest::prop_assert_eq!(greedy.is_some(), brute_force(&entries, &counts));
            if let Some(used) = greedy {
                // In time order, one entry per use, the newest among them, each matching
                // its step, counts as asked.
                proptest::prop_assert!(used.windows(2).all(|w| w[0] < w[1]));
                proptest::prop_assert_eq!(used.last().copied(), Some(entries.len() - 1));
                proptest::prop_assert_eq!(used.len() as u32, counts.iter().sum::<u32>());
                let mut at = 0;
                for (k, &c) in counts.iter().enumerate() {
                    for &i in &used[at..at + c as usize] {
                        proptest::prop_assert!(entries[i].tag & (1 << k) != 0);
                    }
                    at += c as usize;
                }
            }
        }
    }
}
