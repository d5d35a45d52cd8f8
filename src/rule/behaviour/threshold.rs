//! `threshold`: at least `count` events, or `count` distinct values of a field, per group within
//! a sliding `window` (a failed-login burst; password spraying as distinct users per source).
//!
//! When a group reaches the count it fires once and starts over, as fail2ban's ban and
//! CrowdSec's bucket overflow do: an ongoing attack fires again each time it fills the window
//! anew, and the router's `dedup` folds those repeats into updates of one alert. The group
//! remembers how far it had got, so events older than that by more than the lateness (a
//! replayed copy of the same burst) are late, not a new burst.

use compact_str::CompactString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::snapshot::Formats;
use super::{
    BehaviourError, Detector, Fired, GroupState, GroupTable, Limits, MAX_REFS, Stats, Tracked,
    Trail, span,
};
use crate::event::Event;
use crate::event::Field;
use crate::rule::duration::Span;
use crate::rule::group::{GroupBy, value_text};
use crate::rule::spec::ThresholdSpec;
use crate::snapshot::{Out, SnapshotError};

/// Snapshot headers: groups are [`Trail`]s of distinct values (see `super::snapshot`).
const SNAPSHOT: Formats = Formats::new("threshold", b't', 2);

/// A compiled `threshold` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
    /// Events (or distinct values) that fire.
    pub count: u32,
    /// Count distinct values of this field (name as written, resolved field).
    pub distinct: Option<(String, Field)>,
    /// The sliding window.
    pub window: Span,
    /// Lateness and group bounds.
    pub limits: Limits,
}

impl Config {
    /// Compiles a `threshold` block.
    pub fn compile(spec: &ThresholdSpec) -> Result<Config, BehaviourError> {
        if spec.count == 0 {
            return Err(BehaviourError::new("count", "must be at least 1"));
        }
        Ok(Config {
            group_by: GroupBy::new(&spec.group_by),
            count: spec.count,
            distinct: spec.distinct.as_ref().map(|d| (d.clone(), Field::parse(d))),
            window: span("window", &spec.window)?,
            limits: Limits::compile(spec)?,
        })
    }
}

/// What a kept event carries: its distinct-counted value, or nothing when counting events.
pub trait Tag:
    Clone + PartialEq + Default + Send + std::fmt::Debug + Serialize + DeserializeOwned + 'static
{
    /// The tag of an event whose distinct-counted field reads `value`.
    fn of(value: CompactString) -> Self;
    /// The value, for the alert's detail.
    fn as_str(&self) -> &str;
}

impl Tag for CompactString {
    fn of(value: CompactString) -> Self {
        value
    }
    fn as_str(&self) -> &str {
        self
    }
}

/// The tag of a counting threshold's events: nothing, so that a million kept events do not
/// each carry an empty 24-byte string. Written as the empty value, so counting and distinct
/// thresholds share one snapshot format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoTag;

impl Tag for NoTag {
    fn of(_: CompactString) -> Self {
        NoTag
    }
    fn as_str(&self) -> &str {
        ""
    }
}

impl Serialize for NoTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("")
    }
}

impl<'de> Deserialize<'de> for NoTag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = CompactString::deserialize(d)?;
        if value.is_empty() {
            Ok(NoTag)
        } else {
            Err(serde::de::Error::custom("a counting threshold's event carries a value"))
        }
    }
}

/// The state machine for `config`: events tagged with their distinct value when it counts
/// distinct values, untagged when it counts events.
pub fn start(config: Config) -> Box<dyn Detector> {
    if config.distinct.is_some() {
        Box::new(Threshold::<CompactString>::new(config))
    } else {
        Box::new(Threshold::<NoTag>::new(config))
    }
}

/// The `threshold` state machine; `T` is what each kept event carries (see [`start`]).
#[derive(Debug)]
pub struct Threshold<T: Tag> {
    config: Config,
    /// A group's events inside the window.
    groups: GroupTable<Trail<T>>,
    late: u64,
    ungrouped: u64,
    skipped: u64,
}

impl<T: Tag> Threshold<T> {
    /// A fresh state machine.
    pub fn new(config: Config) -> Threshold<T> {
        let groups = GroupTable::new(config.limits.max_groups);
        Threshold { config, groups, late: 0, ungrouped: 0, skipped: 0 }
    }
}

/// Snapshots (see `super::snapshot`).
impl<T: Tag> Threshold<T> {
    /// Reads a full snapshot or, with `changes`, a change set into the state.
    fn load(&mut self, bytes: &[u8], changes: bool) -> Result<(), SnapshotError> {
        let check = |_: &Trail<T>| Ok(());
        let extra = |_: &()| Ok(());
        let [late, ungrouped, skipped, _] = super::snapshot::load::<Trail<T>, ()>(
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

impl<T: Tag> Detector for Threshold<T> {
    fn observe(&mut self, e: &Event, _steps: u64, out: &mut Vec<Fired>) {
        let Some(key) = self.config.group_by.key(e) else {
            self.ungrouped += 1;
            return;
        };
        let value = match &self.config.distinct {
            None => T::default(),
            Some((_, f)) => match e.field(f) {
                Some(v) => T::of(value_text(v)),
                None => {
                    self.skipped += 1;
                    return;
                }
            },
        };
        let window = self.config.window;
        let idle = Span(window.nanos().saturating_add(self.config.limits.lateness.nanos()));
        let w = self.groups.entry(&key, e.timestamp, idle, Trail::default);
        let newest = w.newest();
        if e.timestamp < self.config.limits.lateness.before(newest) {
            self.late += 1;
            return;
        }
        let entry = Tracked::new(e, value.clone());
        if self.config.distinct.is_some() {
            // Keep one entry per value, the latest: a value counts while its latest use is in
            // the window.
            if let Some(i) = w.entries.iter().position(|x| x.tag == value) {
                if w.entries[i].ts > e.timestamp {
                    return;
                }
                w.entries.remove(i);
            }
        }
        w.insert(entry);
        w.forget_before(window.before(w.newest()), usize::MAX);
        if w.entries.len() < self.config.count as usize {
            return;
        }
        let fired = Fired {
            key: key.clone(),
            count: w.entries.len() as u64,
            first_seen: w.entries.first().map_or(e.timestamp, |x| x.ts),
            last_seen: w.newest(),
            events: w.refs(),
            detail: self.config.distinct.as_ref().map(|(name, _)| {
                let values: Vec<&str> =
                    w.entries.iter().take(MAX_REFS).map(|x| x.tag.as_str()).collect();
                serde_json::json!({ "distinct": name, "values": values })
            }),
        };
        w.judge();
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
    use crate::event::Outcome;
    use crate::event::Timestamp;

    fn config(count: u32, window: &str, distinct: Option<&str>) -> Config {
        Config::compile(&ThresholdSpec {
            group_by: vec!["source.ip".into()],
            count,
            distinct: distinct.map(str::to_owned),
            window: window.into(),
            lateness: Some("30s".into()),
            max_groups: Some(3),
        })
        .unwrap()
    }

    fn ev(secs: i64, ip: &str, user: &str) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(secs, 0),
            source_ip: ip.parse().ok(),
            user_name: Some(user.into()),
            outcome: Some(Outcome::Failure),
            log_offset: Some(secs as u64),
            ..Event::default()
        }
    }

    fn feed(t: &mut dyn Detector, events: &[Event]) -> Vec<Fired> {
        let mut out = Vec::new();
        for e in events {
            t.observe(e, 0, &mut out);
        }
        out
    }

    #[test]
    fn fires_on_the_count_th_event_inside_the_window_then_starts_over() {
        let mut t = start(config(3, "60s", None));
        let events: Vec<Event> = [0, 10, 20, 30, 40, 50].map(|s| ev(s, "192.0.2.1", "a")).into();
        let fired = feed(&mut *t, &events);
        assert_eq!(fired.len(), 2);
        assert_eq!(fired[0].key, "192.0.2.1");
        assert_eq!(fired[0].count, 3);
        assert_eq!(fired[0].first_seen, Timestamp::from_secs_nanos(0, 0));
        assert_eq!(fired[0].last_seen, Timestamp::from_secs_nanos(20, 0));
        let offsets: Vec<_> = fired[0].events.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [Some(0), Some(10), Some(20)]);
        assert_eq!(fired[1].first_seen, Timestamp::from_secs_nanos(30, 0));
    }

    #[test]
    fn window_edge_is_inclusive_and_one_past_it_is_not() {
        let mut t = start(config(2, "60s", None));
        assert_eq!(feed(&mut *t, &[ev(0, "192.0.2.1", "a"), ev(60, "192.0.2.1", "a")]).len(), 1);
        let mut t = start(config(2, "60s", None));
        assert!(feed(&mut *t, &[ev(0, "192.0.2.1", "a"), ev(61, "192.0.2.1", "a")]).is_empty());
    }

    #[test]
    fn slow_attack_outside_the_window_never_fires() {
        let mut t = start(config(3, "60s", None));
        let events: Vec<Event> = (0..20).map(|i| ev(i * 31, "192.0.2.1", "a")).collect();
        assert!(feed(&mut *t, &events).is_empty());
    }

    #[test]
    fn groups_count_separately() {
        let mut t = start(config(2, "60s", None));
        let fired = feed(&mut *t, &[ev(0, "192.0.2.1", "a"), ev(1, "192.0.2.2", "a")]);
        assert!(fired.is_empty());
        assert_eq!(t.stats().groups, 2);
    }

    #[test]
    fn late_events_within_lateness_count_and_beyond_it_are_set_aside() {
        let mut t = start(config(3, "60s", None));
        // 25 s late: inside the 30 s lateness, inserted in order.
        let fired = feed(
            &mut *t,
            &[ev(50, "192.0.2.1", "a"), ev(25, "192.0.2.1", "a"), ev(55, "192.0.2.1", "a")],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].first_seen, Timestamp::from_secs_nanos(25, 0));
        let mut t = start(config(2, "60s", None));
        let fired = feed(&mut *t, &[ev(50, "192.0.2.1", "a"), ev(10, "192.0.2.1", "a")]);
        assert!(fired.is_empty());
        assert_eq!(t.stats().late, 1);
    }

    #[test]
    fn a_replayed_burst_does_not_fire_twice() {
        let mut t = start(config(2, "60s", None));
        assert_eq!(feed(&mut *t, &[ev(100, "192.0.2.1", "a"), ev(101, "192.0.2.1", "a")]).len(), 1);
        // The same two lines delivered again: more than the 30 s lateness behind.
        assert!(feed(&mut *t, &[ev(60, "192.0.2.1", "a"), ev(61, "192.0.2.1", "a")]).is_empty());
        assert_eq!(t.stats().late, 2);
        // New failures after the burst count as usual.
        assert_eq!(feed(&mut *t, &[ev(110, "192.0.2.1", "a"), ev(111, "192.0.2.1", "a")]).len(), 1);
    }

    #[test]
    fn distinct_counts_values_not_events() {
        let mut t = start(config(3, "60s", Some("user.name")));
        let fired = feed(
            &mut *t,
            &[
                ev(0, "192.0.2.1", "a"),
                ev(1, "192.0.2.1", "a"),
                ev(2, "192.0.2.1", "b"),
                ev(3, "192.0.2.1", "b"),
                ev(4, "192.0.2.1", "c"),
            ],
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 3);
        let detail = fired[0].detail.as_ref().unwrap();
        assert_eq!(detail["values"], serde_json::json!(["a", "b", "c"]));
        assert_eq!(detail["distinct"], "user.name");
    }

    #[test]
    fn distinct_value_leaves_the_window_with_its_latest_use() {
        let mut t = start(config(2, "60s", Some("user.name")));
        assert!(feed(&mut *t, &[ev(0, "192.0.2.1", "a"), ev(61, "192.0.2.1", "b")]).is_empty());
        // `a` again at 62 counts anew.
        assert_eq!(feed(&mut *t, &[ev(62, "192.0.2.1", "a")]).len(), 1);
    }

    #[test]
    fn missing_group_or_distinct_field_is_counted_not_pooled() {
        let mut t = start(config(1, "60s", Some("user.name")));
        let mut no_ip = ev(0, "x", "a");
        no_ip.source_ip = None;
        let mut no_user = ev(0, "192.0.2.1", "a");
        no_user.user_name = None;
        assert!(feed(&mut *t, &[no_ip, no_user]).is_empty());
        assert_eq!(t.stats().ungrouped, 1);
        assert_eq!(t.stats().skipped, 1);
    }

    #[test]
    fn group_limit_evicts_and_counts() {
        let mut t = start(config(2, "60s", None));
        let events: Vec<Event> = (1..=4).map(|i| ev(i, &format!("192.0.2.{i}"), "a")).collect();
        feed(&mut *t, &events);
        assert_eq!(t.stats().groups, 3);
        assert_eq!(t.stats().evicted, 1);
        // The evicted group starts over: one more event from it does not fire.
        assert!(feed(&mut *t, &[ev(5, "192.0.2.1", "a")]).is_empty());
    }

    #[test]
    fn compile_rejects_zero_count_and_bad_window() {
        let mut spec = ThresholdSpec {
            group_by: vec![],
            count: 0,
            distinct: None,
            window: "1m".into(),
            lateness: None,
            max_groups: None,
        };
        assert_eq!(Config::compile(&spec).unwrap_err().key, "count");
        spec.count = 1;
        spec.window = "fortnight-ish".into();
        assert_eq!(Config::compile(&spec).unwrap_err().key, "window");
    }

    fn maker(c: Config) -> impl Fn() -> Box<dyn Detector> {
        move || start(c.clone())
    }

    /// Bursts from four addresses into a table of three groups (evictions), some events late
    /// within the lateness and some beyond it, half of them from a file.
    fn mixed(users: &[&str]) -> Vec<(Event, u64)> {
        let ips = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
        (0..48i64)
            .map(|i| {
                let late = match i % 11 {
                    0 => 20,
                    5 => 45,
                    _ => 0,
                };
                let mut e = ev(
                    i * 4 - late,
                    ips[(i * 7 % 5 % 4) as usize],
                    users[i as usize / 2 % users.len()],
                );
                if i % 2 == 0 {
                    e.log_file_path = Some(crate::event::Sym::from("/var/log/auth.log"));
                }
                (e, 0)
            })
            .collect()
    }

    #[test]
    fn a_restored_snapshot_resumes_exactly() {
        super::super::snapshot::check::resumes_identically(
            maker(config(3, "60s", None)),
            &mixed(&["a"]),
        );
    }

    #[test]
    fn a_base_and_change_sets_resume_exactly() {
        super::super::snapshot::check::changes_resume_identically_everywhere(
            maker(config(3, "60s", None)),
            &mixed(&["a"]),
        );
        let mut wide = config(3, "60s", Some("user.name"));
        wide.limits.max_groups = 50;
        super::super::snapshot::check::changes_resume_identically_everywhere(
            maker(wide),
            &mixed(&["a", "b", "a", "c", "d"]),
        );
    }

    #[test]
    fn a_change_set_is_the_whole_state_when_unmarked_or_mostly_changed() {
        let mut t = start(config(3, "60s", None));
        let events: Vec<Event> = (1..=5).map(|i| ev(i, &format!("192.0.2.{i}"), "a")).collect();
        feed(&mut *t, &events[..3]);
        let mut c = Vec::new();
        t.snapshot_changes(&mut c).unwrap();
        assert_eq!(c[2], b't', "never marked: the whole state");
        t.mark();
        feed(&mut *t, &events[3..4]);
        c.clear();
        t.snapshot_changes(&mut c).unwrap();
        assert_eq!(c[2], b'T', "one group of three changed (and one dropped): a change set");
        feed(&mut *t, &events[4..]);
        c.clear();
        t.snapshot_changes(&mut c).unwrap();
        assert_eq!(c[2], b't', "two of three changed: the whole state");
    }

    #[test]
    fn a_restored_distinct_count_resumes_exactly() {
        super::super::snapshot::check::resumes_identically(
            maker(config(3, "60s", Some("user.name"))),
            &mixed(&["a", "b", "a", "c", "d"]),
        );
    }

    #[test]
    fn a_restored_snapshot_keeps_the_sweep_countdown() {
        // 5000 events over 80 addresses: the sweep after the 4096th drops idle groups, and a
        // restore just before, at or after it must sweep at the same event.
        let mut c = config(3, "60s", None);
        c.limits.max_groups = 100;
        // One address in three is the same, and fires.
        let ip = |i: i64| match i % 3 {
            0 => "192.0.2.200".to_owned(),
            _ => format!("198.51.100.{}", i % 80),
        };
        let events: Vec<(Event, u64)> =
            (0..5000i64).map(|i| (ev(i * 10, &ip(i), "a"), 0)).collect();
        let mut t = start(c.clone());
        feed(&mut *t, &events.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>());
        assert!(t.stats().expired > 0, "the sweep must have run");
        super::super::snapshot::check::resumes_identically_at(
            maker(c),
            &events,
            [4094, 4095, 4096, 4097],
        );
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        super::super::snapshot::check::survives_damage(
            maker(config(3, "60s", Some("user.name"))),
            &mixed(&["a", "b", "c"]),
        );
    }

    #[test]
    fn another_behaviours_snapshot_is_refused() {
        let mut bytes = Vec::new();
        start(config(3, "60s", None)).snapshot(&mut bytes).unwrap();
        bytes[2] = b'k';
        let e = start(config(3, "60s", None)).restore(&bytes).unwrap_err();
        assert!(matches!(e, SnapshotError::Header { what: "threshold" }), "{e}");
    }

    #[test]
    fn more_groups_than_the_rule_keeps_is_refused() {
        let mut wide = config(3, "60s", None);
        wide.limits.max_groups = 10;
        let mut t = start(wide);
        let events: Vec<Event> = (1..=5).map(|i| ev(i, &format!("192.0.2.{i}"), "a")).collect();
        feed(&mut *t, &events);
        let mut bytes = Vec::new();
        t.snapshot(&mut bytes).unwrap();
        let e = start(config(3, "60s", None)).restore(&bytes).unwrap_err();
        assert!(e.to_string().contains("5 groups, and the rule keeps at most 3"), "{e}");
    }

    proptest::proptest! {
        /// Against a plain model: per group, the times since the last firing; drop those
        /// older than the window; fire (and forget them) when `count` remain.
        #[test]
        fn fires_exactly_when_a_plain_model_does(
            steps in proptest::collection::vec((0i64..40, 0u8..3), 1..60),
            count in 1u32..6,
            window in 1i64..100,
        ) {
            let mut t = start(Config::compile(&ThresholdSpec {
                group_by: vec!["source.ip".into()],
                count,
                distinct: None,
                window: format!("{window}s"),
                lateness: Some("0s".into()),
                max_groups: None,
            }).unwrap());
            let mut model: [Vec<i64>; 3] = Default::default();
            let mut now = 0;
            for (dt, g) in steps {
                now += dt;
                let ip = format!("192.0.2.{g}");
                let mut out = Vec::new();
                t.observe(&ev(now, &ip, "u"), 0, &mut out);
                let times = &mut model[usize::from(g)];
                times.push(now);
                times.retain(|&x| x >= now - window);
                let want = if times.len() >= count as usize {
                    let fired = (times[0], times.len() as u64);
                    times.clear();
                    Some(fired)
                } else {
                    None
                };
                let got = out.first().map(|f| (f.first_seen.secs(), f.count));
                proptest::prop_assert_eq!(got, want, "at {} group {}", now, g);
            }
        }
    }

    #[test]
    fn counting_thresholds_keep_the_snapshot_format_of_tagged_ones() {
        // Before counting thresholds kept untagged events, they kept empty strings: a state
        // saved then must restore now, and what is saved now must read as it did.
        let events: Vec<Event> = (0..4).map(|i| ev(i, &format!("192.0.2.{i}"), "a")).collect();
        let mut tagged = Threshold::<CompactString>::new(config(2, "60s", None));
        let mut untagged = start(config(2, "60s", None));
        assert!(feed(&mut tagged, &events).is_empty());
        assert!(feed(&mut *untagged, &events).is_empty());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tagged.snapshot(&mut a).unwrap();
        untagged.snapshot(&mut b).unwrap();
        // Each reads the other's, and writes it back byte for byte.
        let mut again = Threshold::<CompactString>::new(config(2, "60s", None));
        again.restore(&b).unwrap();
        let mut c = Vec::new();
        again.snapshot(&mut c).unwrap();
        assert_eq!(b, c);
        let mut restored = start(config(2, "60s", None));
        restored.restore(&a).unwrap();
        let mut d = Vec::new();
        restored.snapshot(&mut d).unwrap();
        assert_eq!(a, d);
        assert_eq!(restored.stats().groups, 3);
        // The restored groups count on: a second event from 192.0.2.3 fires.
        assert_eq!(feed(&mut *restored, &[ev(5, "192.0.2.3", "b")]).len(), 1);
        // A distinct threshold's values do not pass for an untagged state.
        let mut distinct = Threshold::<CompactString>::new(config(3, "60s", Some("user.name")));
        feed(&mut distinct, &events);
        let mut e = Vec::new();
        distinct.snapshot(&mut e).unwrap();
        assert!(start(config(2, "60s", None)).restore(&e).is_err());
    }

    #[test]
    fn a_state_saved_before_fingerprints_restores_and_counts_on() {
        // Version 1 as it was written: the keys themselves, no seed.
        let v1 = crate::snapshot::Format { version: 1, ..SNAPSHOT.full };
        let v1_changes = crate::snapshot::Format { version: 1, ..SNAPSHOT.changes };
        let at = |s| Timestamp::from_secs_nanos(s, 0);
        let one = |s: i64| (at(-1), vec![(at(s), 0u32, Some(s as u64), "")]);
        let groups = vec![("192.0.2.1", one(1)), ("192.0.2.2", one(2))];
        let table = (0u64, 0u64, 2u32, at(2));
        let paths: Vec<String> = vec![String::new()];
        let mut bytes = Vec::new();
        v1.write(&(&table, [0u64; 4], (), &groups, &paths), &mut bytes).unwrap();
        let mut t = start(config(2, "60s", None));
        t.restore(&bytes).unwrap();
        assert_eq!(t.stats().groups, 2);
        // A version 1 change set after it: 192.0.2.1 dropped, 192.0.2.3 added.
        let mut changes = Vec::new();
        let body = (&table, [0u64; 4], (), vec!["192.0.2.1"], vec![("192.0.2.3", one(3))], &paths);
        v1_changes.write(&body, &mut changes).unwrap();
        t.apply_changes(&changes).unwrap();
        assert_eq!(t.stats().groups, 2);
        // The saved keys are found by the events' own: the second event of 192.0.2.2 and of
        // 192.0.2.3 fires, the first of 192.0.2.1 again does not.
        let fired = feed(
            &mut *t,
            &[ev(4, "192.0.2.1", "a"), ev(5, "192.0.2.2", "a"), ev(6, "192.0.2.3", "a")],
        );
        let keys: Vec<&str> = fired.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["192.0.2.2", "192.0.2.3"]);
        assert_eq!(fired[0].first_seen, at(2));
        // Written back as the current version, which reads the same.
        let mut now = Vec::new();
        t.snapshot(&mut now).unwrap();
        assert_eq!(now[3], 2);
        let mut again = start(config(2, "60s", None));
        again.restore(&now).unwrap();
        assert_eq!(again.stats().groups, t.stats().groups);
    }

    #[test]
    fn a_change_set_of_another_state_is_refused() {
        let mut a = start(config(2, "60s", None));
        let mut b = start(config(2, "60s", None));
        let three = [ev(1, "192.0.2.1", "a"), ev(2, "192.0.2.2", "a"), ev(3, "192.0.2.3", "a")];
        feed(&mut *a, &three);
        feed(&mut *b, &three);
        a.mark();
        feed(&mut *a, &[ev(4, "192.0.2.4", "a")]);
        let mut changes = Vec::new();
        a.snapshot_changes(&mut changes).unwrap();
        assert_eq!(changes[2], b'T', "a change set, not a whole state");
        let err = b.apply_changes(&changes).unwrap_err();
        assert!(err.to_string().contains("another state"), "{err}");
        assert_eq!(b.stats().groups, 3);
    }
}
