//! `new_value`: the first use of a field value for a group after a learning period (a new
//! country for a user, the first use of an admin API).
//!
//! Per group the state keeps the time of the group's first event and the values seen. Events
//! within `learning` of the group's first event only learn. After that, a value not yet seen
//! fires once (count 1) and is learnt, so the same value never fires twice while remembered.
//!
//! The set is bounded by `max_values` (default 1000): when full, the least recently seen
//! value is forgotten (counted, see [`NewValue::forgotten`]) and would alert again if it came
//! back. Values are kept as 64-bit hashes of their text (16 bytes with their last-seen time),
//! not as text: a user's host names or API names would cost several times that each. The
//! text is only needed in the alert, and the alerting event has it.
//!
//! A group idle for longer than [`FORGET_AFTER`] (or `learning`, when longer) starts over and
//! learns again, exactly as if the table's idle sweep had dropped it (which it may have): the
//! result must not depend on when a sweep ran.
//!
//! Events without the field are counted as skipped and do not touch the group (they neither
//! start its learning period nor keep it alive). An event older than the group's newest by
//! more than `lateness` is counted late and not used.

use std::hash::BuildHasher as _;

use super::snapshot::Formats;
use super::{
    BehaviourError, Detector, EventRef, Fired, GroupState, GroupTable, Limits, Stats, span,
};
use crate::event::{Event, Field, Timestamp};
use crate::rule::duration::Span;
use crate::rule::group::{GroupBy, value_text};
use crate::rule::spec::NewValueSpec;
use crate::snapshot::{Out, PathIds, Paths, SnapshotError};

/// Snapshot headers: groups are [`Group`]s as they are, and the behaviour-specific value is
/// the value hash of [`PROBE`] (see `super::snapshot`).
const SNAPSHOT: Formats = Formats::new("new_value", b'n', 2);
/// Hashed into the snapshot to check that the value hash is the one the snapshot's values
/// were hashed with: a change of hash (a foldhash upgrade) makes every learned value unknown,
/// and restoring them would alert on every value as new.
const PROBE: &str = "logwarden new_value hash probe";

/// Default `max_values`: enough for every host an administrator logs in to, bounded so one
/// high-cardinality field cannot grow a group without limit.
pub const DEFAULT_MAX_VALUES: usize = 1000;
/// A group idle this long (or `learning`, when longer) is forgotten and learns again: 90 days.
pub const FORGET_AFTER: Span = Span(90 * 86_400 * 1_000_000_000);
/// Seed of the value hash. Fixed so that a replay remembers, forgets and alerts identically
/// run after run.
const SEED: u64 = 0x6c6f_6777_6172_6465;

/// A compiled `new_value` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
    /// The field whose values are learned (name as written, resolved field).
    pub field: (String, Field),
    /// How long after a group's first event its values are only learned.
    pub learning: Span,
    /// Most values remembered per group.
    pub max_values: usize,
    /// Lateness and group bounds.
    pub limits: Limits,
}

impl Config {
    /// Compiles a `new_value` block.
    pub fn compile(spec: &NewValueSpec) -> Result<Config, BehaviourError> {
        let max_values = spec.max_values.unwrap_or(DEFAULT_MAX_VALUES);
        if max_values == 0 {
            return Err(BehaviourError::new("max_values", "must be at least 1"));
        }
        if spec.field.trim().is_empty() {
            return Err(BehaviourError::new("field", "must name a field"));
        }
        Ok(Config {
            group_by: GroupBy::new(&spec.group_by),
            field: (spec.field.clone(), Field::parse(&spec.field)),
            learning: span("learning", &spec.learning)?,
            max_values,
            limits: Limits::compile(spec)?,
        })
    }

    /// Idle time after which a group starts over (and may be swept).
    fn forget_after(&self) -> Span {
        self.learning.max(FORGET_AFTER)
    }
}

/// One remembered value. The field order is the snapshot format: changing it needs a new
/// snapshot version.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
struct Seen {
    /// Hash of the value's text. Two values collide with probability 2^-64 per pair, so with
    /// 1000 values a new value is mistaken for a known one (a missed alert) about once in
    /// 10^16 new values. The hash is not keyed by a secret: someone who can choose the value
    /// (a host name they create) and knows a remembered one could in principle search for a
    /// collision, which buys them one silent first use; accepted for a 4x smaller state.
    hash: u64,
    /// When it was last seen: the least recently seen value goes first when the set is full.
    last: Timestamp,
}

/// One group: when it started, and what it has seen. The field order is the snapshot format:
/// changing it needs a new snapshot version.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Group {
    /// The group's first event: learning lasts until `first + learning`.
    first: Timestamp,
    newest: Timestamp,
    /// Unordered. A linear scan over at most `max_values` hashes beats a hash set for the
    /// handful of values most groups have, and takes no per-entry overhead.
    values: Vec<Seen>,
}

impl GroupState for Group {
    fn newest(&self) -> Timestamp {
        self.newest
    }
}

impl super::snapshot::GroupRecord for Group {
    type Out<'a> = &'a Group;
    type In = Group;

    fn out<'a>(&'a self, _: &'a PathIds) -> &'a Group {
        self
    }

    fn from_in(g: Group, _: &Paths) -> Result<Group, SnapshotError> {
        Ok(g)
    }
}

/// The `new_value` state machine.
#[derive(Debug)]
pub struct NewValue {
    config: Config,
    groups: GroupTable<Group>,
    hasher: foldhash::fast::FixedState,
    late: u64,
    ungrouped: u64,
    skipped: u64,
    forgotten: u64,
}

impl NewValue {
    /// A fresh state machine.
    pub fn new(config: Config) -> NewValue {
        let groups = GroupTable::new(config.limits.max_groups);
        NewValue {
            config,
            groups,
            hasher: foldhash::fast::FixedState::with_seed(SEED),
            late: 0,
            ungrouped: 0,
            skipped: 0,
            forgotten: 0,
        }
    }

    /// Values forgotten because their group's set was full. Not part of [`Stats`], which has
    /// no field for it; a forgotten value alerts again if it comes back.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

/// Snapshots (see `super::snapshot`).
impl NewValue {
    /// Reads a full snapshot or, with `changes`, a change set into the state.
    fn load(&mut self, bytes: &[u8], changes: bool) -> Result<(), SnapshotError> {
        let max_values = self.config.max_values;
        // More values than `max_values` would underflow the room computed when one is added.
        let check = |g: &Group| match g.values.len() {
            n if n > max_values => Err(format!("{n} values, and the rule keeps {max_values}")),
            _ => Ok(()),
        };
        let probe = self.hasher.hash_one(PROBE);
        let extra = |p: &u64| {
            if *p == probe {
                return Ok(());
            }
            Err(SnapshotError::invalid(
                SNAPSHOT.full.what,
                "values were hashed by another hash function (an upgrade changed it); \
                 they cannot be recognised",
            ))
        };
        let [late, ungrouped, skipped, forgotten] = super::snapshot::load::<Group, u64>(
            SNAPSHOT,
            &mut self.groups,
            bytes,
            changes,
            check,
            extra,
        )?;
        (self.late, self.ungrouped, self.skipped, self.forgotten) =
            (late, ungrouped, skipped, forgotten);
        Ok(())
    }
}

impl Detector for NewValue {
    fn observe(&mut self, e: &Event, _steps: u64, out: &mut Vec<Fired>) {
        let Some(key) = self.config.group_by.key(e) else {
            self.ungrouped += 1;
            return;
        };
        let Some(value) = e.field(&self.config.field.1).map(value_text) else {
            self.skipped += 1;
            return;
        };
        let hash = self.hasher.hash_one(value.as_str());
        let ts = e.timestamp;
        let c = &self.config;
        let forget_after = c.forget_after();
        let idle = Span(forget_after.nanos().saturating_add(c.limits.lateness.nanos()));
        let fresh = || Group { first: ts, newest: ts, values: Vec::new() };
        let g = self.groups.entry(&key, ts, idle, fresh);
        if ts < c.limits.lateness.before(g.newest) {
            self.late += 1;
            return;
        }
        if ts > forget_after.after(g.newest) {
            *g = fresh();
        }
        g.newest = g.newest.max(ts);
        if let Some(s) = g.values.iter_mut().find(|s| s.hash == hash) {
            s.last = s.last.max(ts);
            return;
        }
        let learning = ts < c.learning.after(g.first);
        let known = g.values.len();
        if known >= c.max_values {
            let oldest = g.values.iter().enumerate().min_by_key(|(_, s)| s.last).map(|(i, _)| i);
            if let Some(i) = oldest {
                g.values.swap_remove(i);
                self.forgotten += 1;
            }
        }
        if g.values.len() == g.values.capacity() {
            // Grow 1, 2, 4... up to `max_values`: most groups have one or two values, and the
            // default first allocation of four would double their state.
            let room = g.values.len().max(1).min(c.max_values - g.values.len());
            g.values.reserve_exact(room);
        }
        g.values.push(Seen { hash, last: ts });
        if learning {
            return;
        }
        out.push(Fired {
            key,
            count: 1,
            first_seen: ts,
            last_seen: ts,
            events: vec![EventRef::of(e)],
            detail: Some(serde_json::json!({
                "field": c.field.0,
                "value": value.as_str(),
                "known_values": known,
            })),
        });
    }

    fn stats(&self) -> Stats {
        self.groups.stats(self.late, self.ungrouped, self.skipped)
    }

    fn snapshot_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, self.forgotten];
        super::snapshot::write(SNAPSHOT, &self.groups, counters, &self.hasher.hash_one(PROBE), out)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, false)
    }

    fn snapshot_changes_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, self.skipped, self.forgotten];
        super::snapshot::write_changes(
            SNAPSHOT,
            &self.groups,
            counters,
            &self.hasher.hash_one(PROBE),
            out,
        )
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

    const DAY: i64 = 86_400;
    const T0: i64 = 1_735_689_600;

    fn config(max_values: usize) -> Config {
        Config::compile(&NewValueSpec {
            group_by: vec!["user.name".into()],
            field: "host.name".into(),
            learning: "1d".into(),
            max_values: Some(max_values),
            lateness: Some("1m".into()),
            max_groups: Some(3),
        })
        .unwrap()
    }

    fn ev(secs: i64, user: &str, host: &str) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(T0 + secs, 0),
            user_name: Some(user.into()),
            host_name: Some(host.into()),
            log_offset: Some(secs as u64),
            ..Event::default()
        }
    }

    fn feed(t: &mut NewValue, events: impl IntoIterator<Item = Event>) -> Vec<Fired> {
        let mut out = Vec::new();
        for e in events {
            t.observe(&e, 0, &mut out);
        }
        out
    }

    #[test]
    fn the_learning_period_is_silent() {
        let mut t = NewValue::new(config(10));
        let events = [ev(0, "a", "web1"), ev(3600, "a", "web2"), ev(DAY - 1, "a", "db1")];
        assert!(feed(&mut t, events).is_empty());
        assert_eq!(t.groups.peek("a").unwrap().values.len(), 3);
    }

    #[test]
    fn a_new_value_after_learning_alerts_once_and_not_twice() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, [ev(0, "a", "web1"), ev(10, "a", "web2")]);
        // Learning ends exactly one day after the first event.
        let fired = feed(&mut t, [ev(DAY, "a", "db1"), ev(DAY + 5, "a", "db1")]);
        assert_eq!(fired.len(), 1);
        let f = &fired[0];
        assert_eq!((f.key.as_str(), f.count), ("a", 1));
        assert_eq!(f.first_seen, Timestamp::from_secs_nanos(T0 + DAY, 0));
        assert_eq!(f.last_seen, f.first_seen);
        assert_eq!(f.events[0].offset, Some(DAY as u64));
        assert_eq!(
            f.detail,
            Some(serde_json::json!({"field": "host.name", "value": "db1", "known_values": 2}))
        );
        assert!(feed(&mut t, [ev(5 * DAY, "a", "db1")]).is_empty());
    }

    #[test]
    fn known_values_never_alert() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, [ev(0, "a", "web1"), ev(10, "a", "web2")]);
        let later: Vec<Event> =
            (1..60).map(|d| ev(d * DAY, "a", if d % 2 == 0 { "web1" } else { "web2" })).collect();
        assert!(feed(&mut t, later).is_empty());
    }

    #[test]
    fn a_full_set_forgets_the_least_recently_seen_value() {
        let mut t = NewValue::new(config(3));
        feed(&mut t, [ev(0, "a", "h1"), ev(1, "a", "h2"), ev(2, "a", "h3"), ev(3, "a", "h1")]);
        assert_eq!(t.forgotten(), 0);
        // h4 is new: it alerts, and h2 (least recently seen) makes room for it.
        let fired = feed(&mut t, [ev(DAY, "a", "h4")]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].detail.as_ref().unwrap()["known_values"], 3);
        assert_eq!(t.forgotten(), 1);
        assert!(feed(&mut t, [ev(DAY + 1, "a", "h1"), ev(DAY + 2, "a", "h4")]).is_empty());
        // h2 was forgotten, so it is new again; h3 goes for it.
        assert_eq!(feed(&mut t, [ev(DAY + 3, "a", "h2")]).len(), 1);
        assert_eq!(feed(&mut t, [ev(DAY + 4, "a", "h3")]).len(), 1);
        assert_eq!(t.forgotten(), 3);
        assert_eq!(t.groups.peek("a").unwrap().values.len(), 3);
    }

    #[test]
    fn a_missing_field_is_counted_and_does_not_start_learning() {
        let mut t = NewValue::new(config(10));
        let mut no_host = ev(0, "a", "x");
        no_host.host_name = None;
        let mut nobody = ev(0, "a", "x");
        nobody.user_name = None;
        feed(&mut t, [no_host, nobody]);
        let s = t.stats();
        assert_eq!((s.skipped, s.ungrouped, s.groups), (1, 1, 0));
        // The group's learning starts with its first usable event.
        assert!(feed(&mut t, [ev(DAY, "a", "web1"), ev(DAY + 10, "a", "web2")]).is_empty());
    }

    #[test]
    fn groups_learn_separately() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, [ev(0, "alice", "web1")]);
        // Bob's learning starts with his own first event, two days in.
        assert!(
            feed(&mut t, [ev(2 * DAY, "bob", "web9"), ev(2 * DAY + 1, "bob", "db1")]).is_empty()
        );
        // web9 is known for bob, not for alice.
        let fired = feed(&mut t, [ev(2 * DAY + 2, "alice", "web9")]);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].key, "alice");
    }

    #[test]
    fn late_events_are_counted_and_a_long_idle_group_learns_again() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, [ev(0, "a", "web1"), ev(DAY, "a", "web1")]);
        assert!(feed(&mut t, [ev(DAY - 61, "a", "evil")]).is_empty());
        assert_eq!(t.stats().late, 1);
        // 91 days later the group starts over: learning again, silent.
        assert!(
            feed(&mut t, [ev(92 * DAY, "a", "new1"), ev(92 * DAY + 1, "a", "new2")]).is_empty()
        );
        assert_eq!(t.groups.peek("a").unwrap().values.len(), 2);
    }

    #[test]
    fn group_limit_evicts_and_counts() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, [ev(0, "a", "h"), ev(1, "b", "h"), ev(2, "c", "h"), ev(3, "d", "h")]);
        let s = t.stats();
        assert_eq!((s.groups, s.evicted), (3, 1));
    }

    #[test]
    fn compile_names_the_wrong_key() {
        let spec = NewValueSpec {
            group_by: vec![],
            field: "host.name".into(),
            learning: "soon".into(),
            max_values: None,
            lateness: None,
            max_groups: None,
        };
        assert_eq!(Config::compile(&spec).unwrap_err().key, "learning");
        let spec = NewValueSpec { learning: "7d".into(), max_values: Some(0), ..spec };
        assert_eq!(Config::compile(&spec).unwrap_err().key, "max_values");
        let spec = NewValueSpec { max_values: None, ..spec };
        assert_eq!(Config::compile(&spec).unwrap().max_values, DEFAULT_MAX_VALUES);
    }

    /// Three users (four arrive: evictions) learning hosts for a day, then new and known
    /// hosts, one user's set overflowing its three values, some events late.
    fn hosts() -> Vec<(Event, u64)> {
        let mut events = Vec::new();
        for i in 0..60i64 {
            let user = ["a", "b", "c", "a", "d"][(i % 5) as usize];
            let t = if i < 20 { i * 3600 } else { DAY + i * 600 - if i % 9 == 0 { 70 } else { 0 } };
            let host = format!("h{}", i * 7 % 6);
            events.push((ev(t, user, &host), 0));
        }
        events
    }

    #[test]
    fn a_restored_snapshot_resumes_exactly() {
        let make = || -> Box<dyn Detector> { Box::new(NewValue::new(config(3))) };
        super::super::snapshot::check::resumes_identically(make, &hosts());
    }

    #[test]
    fn a_base_and_change_sets_resume_exactly() {
        let make = || -> Box<dyn Detector> { Box::new(NewValue::new(config(3))) };
        super::super::snapshot::check::changes_resume_identically_everywhere(make, &hosts());
    }

    #[test]
    fn a_restored_snapshot_keeps_the_forgotten_count() {
        let mut t = NewValue::new(config(3));
        feed(&mut t, hosts().into_iter().map(|(e, _)| e));
        assert!(t.forgotten() > 0);
        let mut bytes = Vec::new();
        t.snapshot(&mut bytes).unwrap();
        let mut back = NewValue::new(config(3));
        back.restore(&bytes).unwrap();
        assert_eq!(back.forgotten(), t.forgotten());
    }

    #[test]
    fn a_snapshot_with_more_values_than_the_rule_keeps_is_refused() {
        let mut t = NewValue::new(config(10));
        feed(&mut t, (0..5).map(|i| ev(i, "a", &format!("h{i}"))));
        let mut bytes = Vec::new();
        t.snapshot(&mut bytes).unwrap();
        let e = NewValue::new(config(3)).restore(&bytes).unwrap_err();
        assert!(e.to_string().contains("5 values, and the rule keeps 3"), "{e}");
    }

    #[test]
    fn values_hashed_by_another_hash_function_are_refused() {
        let mut t = NewValue::new(config(3));
        feed(&mut t, [ev(0, "a", "h")]);
        let mut bytes = Vec::new();
        t.snapshot(&mut bytes).unwrap();
        let mut other = NewValue::new(config(3));
        other.hasher = foldhash::fast::FixedState::with_seed(SEED + 1);
        let e = other.restore(&bytes).unwrap_err();
        assert!(e.to_string().contains("another hash function"), "{e}");
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let make = || -> Box<dyn Detector> { Box::new(NewValue::new(config(3))) };
        super::super::snapshot::check::survives_damage(make, &hosts()[..25]);
    }

    #[test]
    fn state_is_small() {
        // 40 bytes a group plus 16 per remembered value.
        assert_eq!(std::mem::size_of::<Group>(), 40);
        assert_eq!(std::mem::size_of::<Seen>(), 16);
        // A one-value group allocates room for one value, and no set outgrows `max_values`.
        let mut t = NewValue::new(config(3));
        feed(&mut t, [ev(0, "a", "h1")]);
        assert_eq!(t.groups.peek("a").unwrap().values.capacity(), 1);
        feed(&mut t, (1..10).map(|i| ev(i, "a", &format!("h{i}"))));
        assert_eq!(t.groups.peek("a").unwrap().values.capacity(), 3);
    }
}
