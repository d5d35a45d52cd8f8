//! Behaviours: per-rule state machines over the events that match a rule's condition
//! (threshold, sequence, travel, spike, new_value; DESIGN section 3).
//!
//! Every behaviour runs on event time, never the wall clock, so a replay of last month's logs
//! alerts exactly as the live run did. Each keeps its state per group key in a [`GroupTable`]:
//! bounded (the least recently seen group is evicted, and counted, when a rule tracks
//! `max_groups`), and swept of groups idle longer than the behaviour's span. An event older
//! than its group's newest event by more than `lateness` is counted as late and not used:
//! accepting it would reopen windows that have already been judged.

pub mod new_value;
mod path_id;
mod recency;
pub mod sequence;
mod snapshot;
pub mod spike;
pub mod threshold;
pub mod travel;

use std::fmt;
use std::sync::Arc;

use compact_str::CompactString;
use smallvec::SmallVec;

use crate::event::{Event, Sym, Timestamp};
use crate::rule::duration::{self, Span};
use crate::rule::group::GroupBy;
use crate::rule::spec::Bounds;
use crate::snapshot::{Out, SnapshotError};
pub use path_id::PathId;
use recency::{Fingerprints, Recency};

/// Default allowed lateness: syslog relays and CloudTrail delivery reorder within seconds to
/// a minute.
pub const DEFAULT_LATENESS: Span = Span(60_000_000_000);
/// Default most groups per rule: at 80 to 160 bytes a group (`tests/state_size.rs`), 8 to 16 MB
/// for one rule at worst.
pub const DEFAULT_MAX_GROUPS: usize = 100_000;
/// Observations between sweeps of idle groups.
const SWEEP_EVERY: u32 = 4096;

/// Where an event came from: what an alert keeps of the events that made it, instead of the
/// events themselves (a group may hold many; the state must stay small).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventRef {
    /// The event's time.
    pub timestamp: Timestamp,
    /// `log.file.path`.
    pub path: Option<Sym>,
    /// `log.offset`.
    pub offset: Option<u64>,
}

impl EventRef {
    /// The reference of an event.
    pub fn of(e: &Event) -> EventRef {
        EventRef { timestamp: e.timestamp, path: e.log_file_path.clone(), offset: e.log_offset }
    }
}

/// One event a behaviour keeps: its time and where it came from (not the event), with the
/// behaviour's own tag (a distinct value, a step mask). Kept compact, since a behaviour may
/// keep a million: the path by number, the offset without an `Option` around it.
#[derive(Clone, Debug)]
pub struct Tracked<T> {
    /// The event's time.
    pub ts: Timestamp,
    /// `log.offset`, or [`NO_OFFSET`].
    offset: u64,
    /// `log.file.path`, by number.
    path: PathId,
    /// What the behaviour needs to know of the event.
    pub tag: T,
}

/// A kept event without `log.offset` (no file offset reaches `u64::MAX`).
const NO_OFFSET: u64 = u64::MAX;

impl<T> Tracked<T> {
    /// Keeps `e` with `tag`.
    pub fn new(e: &Event, tag: T) -> Tracked<T> {
        let path = PathId::of(e.log_file_path.as_ref());
        Tracked::from_parts(e.timestamp, path, e.log_offset, tag)
    }

    /// An entry from its parts (a restored snapshot, a test).
    pub fn from_parts(ts: Timestamp, path: PathId, offset: Option<u64>, tag: T) -> Tracked<T> {
        Tracked { ts, offset: offset.unwrap_or(NO_OFFSET), path, tag }
    }

    /// `log.offset`, if the event had one.
    pub fn offset(&self) -> Option<u64> {
        (self.offset != NO_OFFSET).then_some(self.offset)
    }

    /// Where the event came from, for the alert.
    pub fn event_ref(&self) -> EventRef {
        EventRef { timestamp: self.ts, path: self.path.sym(), offset: self.offset() }
    }
}

/// A group's kept events, oldest first. Most groups (one address trying once) hold one event,
/// kept inline so that a new group costs no allocation besides its table node.
#[derive(Debug)]
pub struct Trail<T> {
    /// The events, in time order (arrival order among equal times).
    pub entries: SmallVec<[Tracked<T>; 1]>,
    /// The newest time of events already judged (fired and forgotten): lateness is measured
    /// from it, so a replayed or duplicated burst cannot fire a second time.
    judged: Timestamp,
}

impl<T> Default for Trail<T> {
    fn default() -> Self {
        Trail { entries: SmallVec::new(), judged: Timestamp(i64::MIN) }
    }
}

impl<T> Trail<T> {
    /// Adds an event in time order (late events within the allowed lateness land in place);
    /// returns where it landed.
    pub fn insert(&mut self, t: Tracked<T>) -> usize {
        let at = self.entries.partition_point(|x| x.ts <= t.ts);
        self.entries.insert(at, t);
        at
    }

    /// Forgets events older than `start`, and the oldest beyond `max` kept.
    pub fn forget_before(&mut self, start: Timestamp, max: usize) {
        let stale = self.entries.partition_point(|x| x.ts < start);
        let stale = stale.max(self.entries.len().saturating_sub(max));
        self.entries.drain(..stale);
    }

    /// References to the first [`MAX_REFS`] events.
    pub fn refs(&self) -> Vec<EventRef> {
        self.entries.iter().take(MAX_REFS).map(Tracked::event_ref).collect()
    }

    /// Forgets every event after the group fired, remembering how far time had got.
    pub fn judge(&mut self) {
        self.judged = self.newest();
        self.entries.clear();
    }
}

impl<T> GroupState for Trail<T> {
    fn newest(&self) -> Timestamp {
        self.entries.last().map_or(self.judged, |e| e.ts.max(self.judged))
    }
}

/// What a behaviour reports when it fires; the engine makes the alert from it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    /// The group key (see [`GroupBy::key`]).
    pub key: CompactString,
    /// How many events made the alert.
    pub count: u64,
    /// Time of the first of them.
    pub first_seen: Timestamp,
    /// Time of the last of them.
    pub last_seen: Timestamp,
    /// References to the events, oldest first, at most [`MAX_REFS`].
    pub events: Vec<EventRef>,
    /// Behaviour-specific facts (distance and speed, baseline mean, the new value).
    pub detail: Option<serde_json::Value>,
}

/// Most event references an alert carries.
pub const MAX_REFS: usize = 100;

/// Counters every behaviour keeps; `/metrics` and `replay` report them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Groups tracked now.
    pub groups: usize,
    /// Groups evicted because the rule tracked `max_groups`.
    pub evicted: u64,
    /// Groups dropped after being idle longer than the behaviour's span.
    pub expired: u64,
    /// Events older than their group's newest by more than the allowed lateness.
    pub late: u64,
    /// Events missing a `group_by` field.
    pub ungrouped: u64,
    /// Events the behaviour could not use for its own reason (travel: no location).
    pub skipped: u64,
}

/// A behaviour's state machine for one rule.
pub trait Detector: Send + fmt::Debug {
    /// Feeds one event that matched the rule's condition. `steps` has bit `i` set when the
    /// event matches step `i` of a sequence (other behaviours ignore it). Alerts go to `out`.
    fn observe(&mut self, e: &Event, steps: u64, out: &mut Vec<Fired>);
    /// The counters.
    fn stats(&self) -> Stats;
    /// Appends the whole state (every group, in recency order, and the counters) to `out` as
    /// a versioned snapshot (see [`crate::snapshot`]). On error `out` may end in a partial
    /// snapshot, to be discarded.
    fn snapshot_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError>;
    /// [`Detector::snapshot_to`] appended to a vector.
    fn snapshot(&self, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        let mut o = Out::memory(std::mem::take(out));
        let r = self.snapshot_to(&mut o);
        *out = o.finish()?;
        r
    }
    /// Replaces the whole state with a snapshot taken from a detector built from the same rule
    /// text; from then on it behaves exactly as that detector would have. On error the state
    /// is unchanged. Leaves the detector unmarked.
    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError>;
    /// Appends what changed since the last [`Detector::mark`] (the groups touched and dropped
    /// since, and the counters): applied with [`Detector::apply_changes`] to a state taken at
    /// or after that mark, it gives this state. When there was no mark, or most groups
    /// changed, it is a full snapshot (which applies to anything).
    fn snapshot_changes_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError>;
    /// [`Detector::snapshot_changes_to`] appended to a vector.
    fn snapshot_changes(&self, out: &mut Vec<u8>) -> Result<(), SnapshotError> {
        let mut o = Out::memory(std::mem::take(out));
        let r = self.snapshot_changes_to(&mut o);
        *out = o.finish()?;
        r
    }
    /// Applies what [`Detector::snapshot_changes`] wrote (or a full snapshot). On error the
    /// state is unchanged. Leaves the detector unmarked.
    fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError>;
    /// Starts a new change set: call it once what was written before (a snapshot or a change
    /// set) is durable, so that nothing changed in between is left out of the next one.
    fn mark(&mut self);
}

/// Shared services behaviours may need.
#[derive(Clone, Default)]
pub struct Services {
    /// Geolocation for `travel` (and `source.geo` enrichment).
    pub geo: Option<Arc<crate::geo::Geo>>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").field("geo", &self.geo.is_some()).finish()
    }
}

/// A compiled behaviour block.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `threshold`.
    Threshold(threshold::Config),
    /// `sequence`.
    Sequence(sequence::Config),
    /// `travel`.
    Travel(travel::Config),
    /// `spike`.
    Spike(spike::Config),
    /// `new_value`.
    NewValue(new_value::Config),
}

/// Every behaviour's rule-file key, as [`Behaviour::name`] gives it.
pub const NAMES: [&str; 5] = ["threshold", "sequence", "travel", "spike", "new_value"];

impl Behaviour {
    /// The rule-file key.
    pub fn name(&self) -> &'static str {
        match self {
            Behaviour::Threshold(_) => "threshold",
            Behaviour::Sequence(_) => "sequence",
            Behaviour::Travel(_) => "travel",
            Behaviour::Spike(_) => "spike",
            Behaviour::NewValue(_) => "new_value",
        }
    }

    /// The fields that make the group key.
    pub fn group_by(&self) -> &GroupBy {
        match self {
            Behaviour::Threshold(c) => &c.group_by,
            Behaviour::Sequence(c) => &c.group_by,
            Behaviour::Travel(c) => &c.group_by,
            Behaviour::Spike(c) => &c.group_by,
            Behaviour::NewValue(c) => &c.group_by,
        }
    }

    /// A fresh state machine.
    pub fn start(&self, services: &Services) -> Box<dyn Detector> {
        match self {
            Behaviour::Threshold(c) => threshold::start(c.clone()),
            Behaviour::Sequence(c) => Box::new(sequence::Sequence::new(c.clone())),
            Behaviour::Travel(c) => Box::new(travel::Travel::new(c.clone(), services.geo.clone())),
            Behaviour::Spike(c) => Box::new(spike::Spike::new(c.clone())),
            Behaviour::NewValue(c) => Box::new(new_value::NewValue::new(c.clone())),
        }
    }
}

/// A behaviour key that does not compile: which key, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BehaviourError {
    /// The key inside the behaviour block (`window`, `steps[1].condition`).
    pub key: String,
    /// What is wrong.
    pub detail: String,
}

impl BehaviourError {
    /// An error for `key`.
    pub fn new(key: impl Into<String>, detail: impl Into<String>) -> BehaviourError {
        BehaviourError { key: key.into(), detail: detail.into() }
    }
}

/// Parses a duration key, naming the key on error.
pub fn span(key: &str, text: &str) -> Result<Span, BehaviourError> {
    let s = duration::parse(text).map_err(|e| BehaviourError::new(key, e.to_string()))?;
    if s.nanos() <= 0 {
        return Err(BehaviourError::new(key, "must be longer than zero"));
    }
    Ok(s)
}

/// The bounds every behaviour has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Allowed lateness.
    pub lateness: Span,
    /// Most groups tracked.
    pub max_groups: usize,
}

impl Limits {
    /// Compiles `lateness` and `max_groups` of a behaviour block.
    pub fn compile(spec: &dyn Bounds) -> Result<Limits, BehaviourError> {
        let lateness = match spec.lateness() {
            // Zero lateness is legitimate (strictly ordered input), so not `span`.
            Some(t) => {
                duration::parse(t).map_err(|e| BehaviourError::new("lateness", e.to_string()))?
            }
            None => DEFAULT_LATENESS,
        };
        let max_groups = spec.max_groups().unwrap_or(DEFAULT_MAX_GROUPS);
        if max_groups == 0 {
            return Err(BehaviourError::new("max_groups", "must be at least 1"));
        }
        Ok(Limits { lateness, max_groups })
    }
}

/// What the group table needs of a group's state.
pub trait GroupState {
    /// The newest event time the group has taken.
    fn newest(&self) -> Timestamp;
}

/// A group's state and the epoch it was last touched in (see [`GroupTable::mark`]).
struct Slot<V> {
    epoch: u32,
    v: V,
}

/// Per-group state, bounded and swept (see the module docs).
///
/// It also keeps what changed since its last [`GroupTable::mark`], for incremental snapshots:
/// every touched group carries the current epoch, and since touching a group makes it the most
/// recently seen, the groups changed since the mark are exactly a run at the recent end of the
/// table, found without a scan of the rest. Groups dropped since (evicted, swept, removed)
/// are listed by key, from the first mark on, and at most `max` of them: past that the next
/// change set is the whole state.
pub struct GroupTable<V> {
    map: Recency<Slot<V>>,
    /// How group keys become the map's keys.
    fingerprints: Fingerprints,
    max: usize,
    evicted: u64,
    expired: u64,
    since_sweep: u32,
    /// Time of the previous event the table saw. Idle groups are judged by the earlier of it
    /// and the current event's time, never by the newest time ever seen: one event dated
    /// years ahead (a skewed clock, a forged stamp) must not make every live group look idle,
    /// and replaying a newer file before an older one must not wipe the older one's groups.
    previous: Timestamp,
    /// The current epoch (wrapping: after 2^32 marks an old group may count as changed,
    /// which only makes a change set larger).
    epoch: u32,
    /// Keys (fingerprints) dropped since the last mark, while `tracking`.
    dropped: Vec<u64>,
    /// Marked at least once, and `dropped` complete since.
    tracking: bool,
}

impl<V> fmt::Debug for GroupTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupTable")
            .field("groups", &self.map.len())
            .field("max", &self.max)
            .field("evicted", &self.evicted)
            .field("expired", &self.expired)
            .finish()
    }
}

impl<V: GroupState> GroupTable<V> {
    /// A table of at most `max` groups.
    pub fn new(max: usize) -> GroupTable<V> {
        GroupTable {
            map: Recency::new(max.max(1)),
            fingerprints: Fingerprints::random(),
            max: max.max(1),
            evicted: 0,
            expired: 0,
            since_sweep: 0,
            previous: Timestamp(i64::MIN),
            epoch: 1,
            dropped: Vec::new(),
            tracking: false,
        }
    }

    /// Starts a new change set: from now on, changes are counted from here (see the type's
    /// docs). The first mark turns tracking on; a table never marked (a replay) keeps no
    /// list of dropped keys.
    pub fn mark(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.dropped.clear();
        // A storm's list of dropped keys is not kept for ever.
        self.dropped.shrink_to(1024);
        self.tracking = true;
    }

    /// Lists a dropped group's key, while tracking; past `max` of them, stops tracking (the
    /// next change set is the whole state, which is then smaller than the list).
    fn note_dropped(dropped: &mut Vec<u64>, tracking: &mut bool, max: usize, key: u64) {
        if !*tracking {
            return;
        }
        if dropped.len() >= max {
            *tracking = false;
            *dropped = Vec::new();
            return;
        }
        dropped.push(key);
    }

    /// The group's state, created by `make` if absent (evicting the least recently seen
    /// group when full), and marked most recently seen. `now` is the event's time; every
    /// [`SWEEP_EVERY`] calls, groups whose newest event is older than `now - idle` go.
    pub fn entry(
        &mut self,
        key: &str,
        now: Timestamp,
        idle: Span,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let clock = now.min(self.previous);
        self.previous = now;
        self.since_sweep += 1;
        if self.since_sweep >= SWEEP_EVERY {
            self.since_sweep = 0;
            self.sweep(idle.before(clock));
        }
        let key = self.fingerprints.of(key);
        let full = self.map.len() >= self.max;
        if full
            && self.tracking
            && !self.map.contains(key)
            && let Some((lru, _)) = self.map.peek_lru()
        {
            // The cache is about to evict it.
            Self::note_dropped(&mut self.dropped, &mut self.tracking, self.max, lru);
        }
        let mut created = false;
        let epoch = self.epoch;
        let make = || {
            created = true;
            Slot { epoch, v: make() }
        };
        let slot = self.map.get_or_insert_mut(key, make);
        if created && full {
            self.evicted += 1;
        }
        slot.epoch = epoch;
        &mut slot.v
    }

    /// The group's state if tracked, without changing its recency.
    pub fn peek(&self, key: &str) -> Option<&V> {
        self.map.peek(self.fingerprints.of(key)).map(|s| &s.v)
    }

    /// Forgets a group (after it fired, for behaviours that start over).
    pub fn remove(&mut self, key: &str) {
        let key = self.fingerprints.of(key);
        if self.map.pop(key).is_some() {
            Self::note_dropped(&mut self.dropped, &mut self.tracking, self.max, key);
        }
    }

    /// Drops groups whose newest event is older than `horizon`, least recently seen first.
    /// Recency follows arrival, which follows event time up to the allowed lateness, so the
    /// scan stops at the first group still live.
    pub fn sweep(&mut self, horizon: Timestamp) {
        while let Some((_, s)) = self.map.peek_lru() {
            if s.v.newest() >= horizon {
                break;
            }
            if let Some((key, _)) = self.map.pop_lru() {
                Self::note_dropped(&mut self.dropped, &mut self.tracking, self.max, key);
            }
            self.expired += 1;
        }
    }

    /// Groups tracked now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no group is tracked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Stats with this table's counts filled in.
    pub fn stats(&self, late: u64, ungrouped: u64, skipped: u64) -> Stats {
        Stats {
            groups: self.map.len(),
            evicted: self.evicted,
            expired: self.expired,
            late,
            ungrouped,
            skipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct S(Timestamp);
    impl GroupState for S {
        fn newest(&self) -> Timestamp {
            self.0
        }
    }

    #[test]
    fn full_table_evicts_least_recently_seen_and_counts_it() {
        let mut t = GroupTable::new(2);
        let idle = Span::from_secs(3600);
        t.entry("a", Timestamp(1), idle, || S(Timestamp(1)));
        t.entry("b", Timestamp(2), idle, || S(Timestamp(2)));
        t.entry("a", Timestamp(3), idle, || S(Timestamp(3)));
        t.entry("c", Timestamp(4), idle, || S(Timestamp(4)));
        assert!(t.peek("a").is_some());
        assert!(t.peek("b").is_none());
        assert!(t.peek("c").is_some());
        assert_eq!(t.stats(0, 0, 0).evicted, 1);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn sweep_drops_idle_groups_only() {
        let mut t = GroupTable::new(10);
        let idle = Span::from_secs(10);
        for (k, s) in [("a", 1), ("b", 5), ("c", 20)] {
            t.entry(k, Timestamp::from_secs_nanos(s, 0), idle, || {
                S(Timestamp::from_secs_nanos(s, 0))
            });
        }
        t.sweep(Timestamp::from_secs_nanos(5, 0));
        assert!(t.peek("a").is_none());
        assert!(t.peek("b").is_some());
        assert_eq!(t.stats(0, 0, 0).expired, 1);
    }

    #[test]
    fn one_event_dated_years_ahead_does_not_make_live_groups_idle() {
        // Found in review: the sweep judged idleness by the newest time ever seen.
        let mut t = GroupTable::new(10);
        let idle = Span::from_secs(3600);
        let at = |s: i64| Timestamp::from_secs_nanos(s, 0);
        t.entry("b", at(100), idle, || S(at(100)));
        let future = at(100 + 50 * 365 * 86400);
        t.entry("f", future, idle, || S(future));
        t.remove("f");
        for _ in 0..SWEEP_EVERY {
            t.entry("a", at(101), idle, || S(at(101)));
        }
        assert!(t.peek("b").is_some(), "a live group was swept");
        assert_eq!(t.stats(0, 0, 0).expired, 0);
        // Time moving on for real still sweeps it.
        for i in 0..SWEEP_EVERY {
            t.entry("a", at(10_000 + i64::from(i)), idle, || S(at(10_000)));
        }
        assert!(t.peek("b").is_none());
        // b, and a too: this test's state keeps the time it was made with.
        assert_eq!(t.stats(0, 0, 0).expired, 2);
    }

    #[test]
    fn changed_groups_are_the_recent_run_and_dropped_keys_are_bounded() {
        let mut t = GroupTable::new(4);
        let idle = Span::from_secs(3600);
        let at = |s: i64| Timestamp::from_secs_nanos(s, 0);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            t.entry(k, at(i as i64), idle, || S(at(0)));
        }
        t.mark();
        t.entry("a", at(5), idle, || S(at(0)));
        t.remove("b");
        let changed: Vec<u64> =
            t.map.iter().take_while(|(_, s)| s.epoch == t.epoch).map(|(k, _)| k).collect();
        let fp = |k: &str| t.fingerprints.of(k);
        assert_eq!(changed, [fp("a")]);
        assert_eq!(t.dropped, [fp("b")]);
        // Churn beyond the table's size: the list is dropped, and tracking with it.
        for i in 0..4 {
            t.entry("x", at(6 + i), idle, || S(at(0)));
            t.remove("x");
        }
        assert!(!t.tracking && t.dropped.is_empty());
        t.mark();
        assert!(t.tracking);
    }

    #[test]
    fn limits_parse_and_name_the_key() {
        let spec = crate::rule::spec::ThresholdSpec {
            group_by: vec![],
            count: 1,
            distinct: None,
            window: "1m".into(),
            lateness: Some("soon".into()),
            max_groups: None,
        };
        assert_eq!(Limits::compile(&spec).unwrap_err().key, "lateness");
        let spec = crate::rule::spec::ThresholdSpec { lateness: Some("0s".into()), ..spec };
        assert_eq!(Limits::compile(&spec).unwrap().lateness, Span(0));
    }
}
