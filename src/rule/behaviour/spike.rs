//! `spike`: a group's count in the current window far above its own baseline (a user's burst
//! of sudo commands or IAM changes, judged against that user's normal, not everyone's).
//!
//! Time is cut into tumbling windows of `window` aligned to the Unix epoch, so every group and
//! every replay agrees on where a window starts. Per group the state keeps the current window's
//! index and count, and an exponentially weighted mean and variance of the counts of the
//! group's past windows (empty windows included, as zeros).
//!
//! The weight of a window is `alpha = window / baseline`, so the baseline averages over about
//! `baseline`. Until a group has `1 / alpha` windows the weight is `1 / (windows + 1)` instead:
//! the plain mean and population variance of the windows so far. Starting the average at zero
//! with weight `alpha` would leave it far below the group's real level for most of a baseline
//! period, and every group's first busy hour would look like a spike.
//!
//! A group alerts in its current window when all of these hold:
//! - the window's count is at least `min_count` (default 5);
//! - the baseline is established: it has seen at least `max(baseline / window / 4, 3)` windows
//!   (42 for a 1h window over a 7d baseline);
//! - `count > factor * mean` (when `factor` is given) or
//!   `(count - mean) / max(stddev, 1) > z` (when `z` is given). The floor of 1 on the deviation
//!   keeps a perfectly regular group (deviation 0) from alerting on one extra event.
//!
//! It fires at most once per group per window. The state keeps no event references (they
//! would cost about 50 bytes each for every group with a busy window): an alert carries the
//! window's count, its first event's time, and the reference of the event that fired it.
//!
//! A group idle for longer than `baseline` starts over, exactly as if the table's idle sweep
//! had dropped it (which it may have): the result must not depend on when a sweep ran. Its
//! old baseline would have decayed to a third of its level anyway, and a returning user is
//! better relearnt than judged against near zero.
//!
//! Lateness: an event older than the group's newest by more than `lateness` is counted late
//! and not used. So is an event within `lateness` that falls in a window already closed into
//! the baseline: the baseline cannot be reopened, and the window has been judged.

use super::snapshot::Formats;
use super::{
    BehaviourError, Detector, EventRef, Fired, GroupState, GroupTable, Limits, Stats, span,
};
use crate::event::{Event, Timestamp};
use crate::rule::duration::Span;
use crate::rule::group::GroupBy;
use crate::rule::spec::SpikeSpec;
use crate::snapshot::{Out, PathIds, Paths, SnapshotError};

/// Snapshot headers: groups are [`Group`]s as they are (see `super::snapshot`).
const SNAPSHOT: Formats = Formats::new("spike", b'k', 2);

/// Default `min_count`: below five events in a window nothing is a burst worth a page.
pub const DEFAULT_MIN_COUNT: u32 = 5;
/// Fewest windows a baseline must have seen before the group may alert.
const MIN_WARMUP_WINDOWS: u64 = 3;

/// A compiled `spike` block.
#[derive(Clone, Debug)]
pub struct Config {
    /// The group key fields.
    pub group_by: GroupBy,
    /// The tumbling window, aligned to the Unix epoch.
    pub window: Span,
    /// The period the baseline averages over; longer than `window`.
    pub baseline: Span,
    /// Alert when the count exceeds `factor` times the baseline mean.
    pub factor: Option<f64>,
    /// Alert when the count is more than `z` deviations above the baseline mean.
    pub z: Option<f64>,
    /// Never alert below this count.
    pub min_count: u32,
    /// Lateness and group bounds.
    pub limits: Limits,
}

impl Config {
    /// Compiles a `spike` block: `window < baseline`, and at least one of `factor` and `z`.
    pub fn compile(spec: &SpikeSpec) -> Result<Config, BehaviourError> {
        let window = span("window", &spec.window)?;
        let baseline = span("baseline", &spec.baseline)?;
        if window >= baseline {
            return Err(BehaviourError::new(
                "baseline",
                format!("must be longer than `window` ({})", spec.window),
            ));
        }
        if spec.factor.is_none() && spec.z.is_none() {
            return Err(BehaviourError::new(
                "factor",
                "give `factor`, `z` or both: a spike needs a measure of \"far above\"",
            ));
        }
        for (key, v) in [("factor", spec.factor), ("z", spec.z)] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(BehaviourError::new(key, "must be a number above zero"));
            }
        }
        let min_count = spec.min_count.unwrap_or(DEFAULT_MIN_COUNT);
        if min_count == 0 {
            return Err(BehaviourError::new("min_count", "must be at least 1"));
        }
        Ok(Config {
            group_by: GroupBy::new(&spec.group_by),
            window,
            baseline,
            factor: spec.factor,
            z: spec.z,
            min_count,
            limits: Limits::compile(spec)?,
        })
    }

    /// Windows in one baseline period, rounded up: `1 / alpha`.
    fn windows_per_baseline(&self) -> u64 {
        let w = self.window.nanos().max(1);
        (self.baseline.nanos() / w + i64::from(self.baseline.nanos() % w != 0)).max(1) as u64
    }

    /// Windows a baseline must have seen before the group may alert.
    fn warmup(&self) -> u64 {
        (self.windows_per_baseline() / 4).max(MIN_WARMUP_WINDOWS)
    }
}

/// The weighted mean and variance of a group's past window counts. The field order is the
/// snapshot format: changing it needs a new snapshot version.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Baseline {
    mean: f64,
    var: f64,
    /// Windows folded in so far (saturating).
    seen: u32,
}

impl Baseline {
    /// Folds in one window's count. With `alpha = 1 / (seen + 1)` this is Welford's running
    /// mean and population variance; with a fixed `alpha`, West's weighted update.
    fn push(&mut self, x: f64, per_baseline: u64) {
        let alpha = 1.0 / (u64::from(self.seen) + 1).min(per_baseline) as f64;
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
        self.seen = self.seen.saturating_add(1);
    }

    /// Folds in `k` empty windows in constant time (a group idle for a month costs what a
    /// group idle for an hour does).
    fn push_zeros(&mut self, k: u64, per_baseline: u64) {
        if k == 0 {
            return;
        }
        // While the group has fewer windows than a baseline period the weights are equal:
        // merge k zeros into the plain mean and variance (Chan et al.'s pairwise merge).
        let n = u64::from(self.seen);
        let equal = k.min(per_baseline.saturating_sub(n));
        if equal > 0 {
            let (nf, kf) = (n as f64, equal as f64);
            let total = nf + kf;
            let m2 = self.var * nf + self.mean * self.mean * nf * kf / total;
            self.mean = self.mean * nf / total;
            self.var = m2 / total;
        }
        // Then the fixed weight: after j zeros the mean is m b^j (b = 1 - alpha), and
        // v_{j+1} = b (v_j + alpha m_j^2) sums to b^k (v + m^2 (1 - b^k)).
        let rest = k - equal;
        if rest > 0 {
            let b = 1.0 - 1.0 / per_baseline as f64;
            let bk = b.powi(i32::try_from(rest).unwrap_or(i32::MAX));
            self.var = bk * (self.var + self.mean * self.mean * (1.0 - bk));
            self.mean *= bk;
        }
        self.seen = self.seen.saturating_add(u32::try_from(k).unwrap_or(u32::MAX));
    }
}

/// One group: its current window and its baseline. About 56 bytes. The field order is the
/// snapshot format: changing it needs a new snapshot version.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Group {
    /// Index of the current window (event time / window, floored).
    window: i64,
    /// Time of the current window's first event.
    first_seen: Timestamp,
    /// The newest event time taken.
    newest: Timestamp,
    baseline: Baseline,
    /// Events in the current window.
    count: u32,
    /// Whether the current window has alerted.
    fired: bool,
}

impl Group {
    fn new(window: i64, ts: Timestamp) -> Group {
        Group {
            window,
            first_seen: ts,
            newest: ts,
            baseline: Baseline::default(),
            count: 0,
            fired: false,
        }
    }
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

/// The `spike` state machine.
#[derive(Debug)]
pub struct Spike {
    config: Config,
    groups: GroupTable<Group>,
    late: u64,
    ungrouped: u64,
}

impl Spike {
    /// A fresh state machine.
    pub fn new(config: Config) -> Spike {
        let groups = GroupTable::new(config.limits.max_groups);
        Spike { config, groups, late: 0, ungrouped: 0 }
    }
}

/// Snapshots (see `super::snapshot`).
impl Spike {
    /// Reads a full snapshot or, with `changes`, a change set into the state.
    fn load(&mut self, bytes: &[u8], changes: bool) -> Result<(), SnapshotError> {
        let check = |_: &Group| Ok(());
        let extra = |_: &()| Ok(());
        let [late, ungrouped, _, _] = super::snapshot::load::<Group, ()>(
            SNAPSHOT,
            &mut self.groups,
            bytes,
            changes,
            check,
            extra,
        )?;
        (self.late, self.ungrouped) = (late, ungrouped);
        Ok(())
    }
}

impl Detector for Spike {
    fn observe(&mut self, e: &Event, _steps: u64, out: &mut Vec<Fired>) {
        let Some(key) = self.config.group_by.key(e) else {
            self.ungrouped += 1;
            return;
        };
        let c = &self.config;
        let ts = e.timestamp;
        let index = ts.0.div_euclid(c.window.nanos());
        let per_baseline = c.windows_per_baseline();
        // Anything the sweep drops has been idle longer than `baseline`, so for input ordered
        // within `lateness` it would start over below anyway: sweeping changes memory, not
        // alerts.
        let idle = Span(
            c.baseline
                .nanos()
                .saturating_add(c.window.nanos())
                .saturating_add(c.limits.lateness.nanos()),
        );
        let g = self.groups.entry(&key, ts, idle, || Group::new(index, ts));
        if ts < c.limits.lateness.before(g.newest) {
            self.late += 1;
            return;
        }
        if ts > c.baseline.after(g.newest) {
            *g = Group::new(index, ts);
        }
        if index < g.window {
            // Within lateness, but its window is already in the baseline.
            self.late += 1;
            return;
        }
        if index > g.window {
            if g.count > 0 {
                g.baseline.push(f64::from(g.count), per_baseline);
            }
            let empty = index.saturating_sub(g.window).saturating_sub(1) as u64;
            g.baseline.push_zeros(empty, per_baseline);
            g.window = index;
            g.count = 0;
            g.fired = false;
            g.first_seen = ts;
        }
        g.count = g.count.saturating_add(1);
        g.first_seen = g.first_seen.min(ts);
        g.newest = g.newest.max(ts);
        if g.fired || g.count < c.min_count || u64::from(g.baseline.seen) < c.warmup() {
            return;
        }
        let count = f64::from(g.count);
        let mean = g.baseline.mean;
        let stddev = g.baseline.var.max(0.0).sqrt();
        let by_factor = c.factor.filter(|&f| count > f * mean);
        let by_z = c.z.filter(|&z| (count - mean) / stddev.max(1.0) > z);
        if by_factor.is_none() && by_z.is_none() {
            return;
        }
        g.fired = true;
        let window_start = Timestamp(g.window.saturating_mul(c.window.nanos()));
        let mut detail = serde_json::Map::new();
        detail.insert("window_start".into(), serde_json::json!(window_start.to_string()));
        detail.insert("baseline_mean".into(), serde_json::json!(round3(mean)));
        detail.insert("baseline_stddev".into(), serde_json::json!(round3(stddev)));
        // Only the measures that triggered: the reader learns which test the window failed.
        if let Some(f) = by_factor {
            detail.insert("factor".into(), serde_json::json!(f));
        }
        if let Some(z) = by_z {
            detail.insert("z".into(), serde_json::json!(z));
        }
        out.push(Fired {
            key,
            count: u64::from(g.count),
            first_seen: g.first_seen,
            last_seen: ts,
            events: vec![EventRef::of(e)],
            detail: Some(serde_json::Value::Object(detail)),
        });
    }

    fn stats(&self) -> Stats {
        self.groups.stats(self.late, self.ungrouped, 0)
    }

    fn snapshot_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, 0, 0];
        super::snapshot::write(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, false)
    }

    fn snapshot_changes_to(&self, out: &mut Out<'_>) -> Result<(), SnapshotError> {
        let counters = [self.late, self.ungrouped, 0, 0];
        super::snapshot::write_changes(SNAPSHOT, &self.groups, counters, &(), out)
    }

    fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        self.load(bytes, true)
    }

    fn mark(&mut self) {
        self.groups.mark();
    }
}

/// Three decimals: alerts are read by people, and `1.9999999999` is noise to them.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-01-04T14:00:00Z: on an hour boundary, so `T0 + h * HOUR` starts window `h`.
    const T0: i64 = 1_735_999_200;
    const HOUR: i64 = 3600;

    fn spec() -> SpikeSpec {
        SpikeSpec {
            group_by: vec!["user.name".into()],
            window: "1h".into(),
            baseline: "7d".into(),
            factor: Some(3.0),
            z: None,
            min_count: None,
            lateness: Some("5m".into()),
            max_groups: Some(3),
        }
    }

    fn ev(secs: i64, user: &str) -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(secs, 0),
            user_name: Some(user.into()),
            log_offset: Some(secs as u64),
            ..Event::default()
        }
    }

    fn feed(t: &mut Spike, events: impl IntoIterator<Item = Event>) -> Vec<Fired> {
        let mut out = Vec::new();
        for e in events {
            t.observe(&e, 0, &mut out);
        }
        out
    }

    /// `per_hour` events in each hour `from..to`, spread over the hour.
    fn steady(user: &str, from: i64, to: i64, per_hour: i64) -> Vec<Event> {
        let step = HOUR / per_hour;
        (from..to)
            .flat_map(|h| (0..per_hour).map(move |i| T0 + h * HOUR + i * step + 7))
            .map(|s| ev(s, user))
            .collect()
    }

    /// `n` events a minute apart from the start of hour `h`.
    fn burst(user: &str, h: i64, n: i64) -> Vec<Event> {
        (0..n).map(|i| ev(T0 + h * HOUR + i * 60, user)).collect()
    }

    #[test]
    fn steady_week_then_a_burst_alerts_once_in_that_window() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        assert!(feed(&mut t, steady("alice", 0, 168, 2)).is_empty());
        let fired = feed(&mut t, burst("alice", 168, 20));
        assert_eq!(fired.len(), 1, "{fired:?}");
        let f = &fired[0];
        assert_eq!(f.key, "alice");
        // Mean 2, so the 7th event is the first above 3 x 2.
        assert_eq!(f.count, 7);
        assert_eq!(f.first_seen, Timestamp::from_secs_nanos(T0 + 168 * HOUR, 0));
        assert_eq!(f.last_seen, Timestamp::from_secs_nanos(T0 + 168 * HOUR + 6 * 60, 0));
        assert_eq!(f.events.len(), 1);
        assert_eq!(f.events[0].offset, Some((T0 + 168 * HOUR + 6 * 60) as u64));
        assert_eq!(
            f.detail,
            Some(serde_json::json!({
                "window_start": "2025-01-11T14:00:00Z",
                "baseline_mean": 2.0,
                "baseline_stddev": 0.0,
                "factor": 3.0,
            }))
        );
        // Back to normal: nothing more.
        assert!(feed(&mut t, steady("alice", 169, 180, 2)).is_empty());
    }

    #[test]
    fn the_same_burst_before_the_baseline_is_established_does_not_alert() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        assert_eq!(Config::compile(&spec()).unwrap().warmup(), 42);
        assert!(feed(&mut t, burst("alice", 0, 20)).is_empty());
        assert!(feed(&mut t, steady("alice", 1, 41, 2)).is_empty());
        // 41 windows in the baseline: one short.
        assert!(feed(&mut t, burst("alice", 41, 20)).is_empty());
        assert_eq!(t.groups.peek("alice").unwrap().baseline.seen, 41);
    }

    #[test]
    fn a_burst_below_min_count_does_not_alert() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        // One event every other hour: mean 0.5, so 4 is eight times the mean, but under 5.
        let sparse: Vec<Event> = (0..168).step_by(2).map(|h| ev(T0 + h * HOUR + 9, "a")).collect();
        assert!(feed(&mut t, sparse).is_empty());
        assert!(feed(&mut t, burst("a", 168, 4)).is_empty());
        let fired = feed(&mut t, burst("a", 169, 5));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 5);
    }

    #[test]
    fn z_alone_measures_deviations_above_the_mean() {
        let mut s = spec();
        s.factor = None;
        s.z = Some(3.0);
        let mut t = Spike::new(Config::compile(&s).unwrap());
        // 1, 3, 1, 3...: mean 2, deviation 1; more than 3 deviations above is 6 or more.
        let noisy: Vec<Event> =
            (0..168).flat_map(|h| steady("a", h, h + 1, 1 + 2 * (h % 2))).collect();
        assert!(feed(&mut t, noisy).is_empty());
        let fired = feed(&mut t, burst("a", 168, 10));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].count, 6);
        let d = fired[0].detail.as_ref().unwrap();
        assert_eq!(d["z"], 3.0);
        assert!(d.get("factor").is_none());
        assert!((d["baseline_stddev"].as_f64().unwrap() - 1.0).abs() < 0.01, "{d}");
    }

    #[test]
    fn an_event_exactly_at_the_next_window_start_goes_to_the_next_window() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        let mut last_ns = ev(0, "a");
        last_ns.timestamp = Timestamp(Timestamp::from_secs_nanos(T0 + HOUR, 0).0 - 1);
        feed(&mut t, [ev(T0, "a"), last_ns]);
        let g = t.groups.peek("a").unwrap();
        assert_eq!((g.window, g.count, g.baseline.seen), (T0 / HOUR, 2, 0));
        feed(&mut t, [ev(T0 + HOUR, "a")]);
        let g = t.groups.peek("a").unwrap();
        assert_eq!((g.window, g.count, g.baseline.seen), (T0 / HOUR + 1, 1, 1));
        assert_eq!(g.first_seen, Timestamp::from_secs_nanos(T0 + HOUR, 0));
        assert_eq!(g.baseline.mean, 2.0);
    }

    #[test]
    fn a_30_day_gap_starts_the_group_over_and_normal_activity_does_not_alert() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        assert!(feed(&mut t, steady("a", 0, 168, 6)).is_empty());
        let back = 168 + 30 * 24;
        let start = std::time::Instant::now();
        assert!(feed(&mut t, steady("a", back, back + 48, 6)).is_empty());
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        let g = t.groups.peek("a").unwrap();
        assert_eq!(g.baseline.seen, 47);
        assert!((g.baseline.mean - 6.0).abs() < 1e-9);
        // Even a century of silence costs one step.
        let far = T0 + 100 * 365 * 24 * HOUR;
        assert!(feed(&mut t, [ev(far, "a")]).is_empty());
        assert_eq!(t.groups.peek("a").unwrap().baseline.seen, 0);
    }

    #[test]
    fn a_gap_inside_the_baseline_folds_empty_windows_in_constant_time() {
        // The closed forms agree with folding the zeros one by one, across the switch from
        // equal weights to `alpha` (168 windows per 7d baseline).
        for (before, zeros) in [(1, 5), (10, 150), (100, 500), (200, 3), (200, 10_000)] {
            let mut fast = Baseline::default();
            for i in 0..before {
                fast.push(f64::from(i % 5 + 1), 168);
            }
            let mut slow = fast;
            fast.push_zeros(zeros, 168);
            for _ in 0..zeros {
                slow.push(0.0, 168);
            }
            assert_eq!(fast.seen, slow.seen);
            assert!((fast.mean - slow.mean).abs() < 1e-9, "{before} {zeros}: {fast:?} {slow:?}");
            assert!((fast.var - slow.var).abs() < 1e-9, "{before} {zeros}: {fast:?} {slow:?}");
        }
        // Three idle days after a week of 6 an hour: the mean has decayed, no alert on 6.
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        feed(&mut t, steady("a", 0, 168, 6));
        assert!(feed(&mut t, steady("a", 168 + 72, 168 + 80, 6)).is_empty());
        let g = t.groups.peek("a").unwrap();
        assert_eq!(g.baseline.seen, 168 + 72 + 7);
        assert!(g.baseline.mean < 6.0 && g.baseline.mean > 3.0, "{g:?}");
    }

    #[test]
    fn late_events_and_closed_windows_are_counted_late() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        feed(&mut t, [ev(T0 + HOUR + 10, "a")]);
        // Within the 5m lateness but in the closed window before: late.
        feed(&mut t, [ev(T0 + HOUR - 10, "a")]);
        // Beyond lateness: late.
        feed(&mut t, [ev(T0 + HOUR + 10 - 301, "a")]);
        assert_eq!(t.stats().late, 2);
        // Within lateness and in the current window: counted.
        feed(&mut t, [ev(T0 + HOUR + 400, "a"), ev(T0 + HOUR + 120, "a")]);
        let g = t.groups.peek("a").unwrap();
        assert_eq!(g.count, 3);
        assert_eq!(g.first_seen, Timestamp::from_secs_nanos(T0 + HOUR + 10, 0));
        assert_eq!(t.stats().late, 2);
    }

    #[test]
    fn group_limit_evicts_and_counts_and_ungrouped_are_counted() {
        let mut t = Spike::new(Config::compile(&spec()).unwrap());
        let mut nobody = ev(T0, "x");
        nobody.user_name = None;
        feed(&mut t, [ev(T0, "a"), ev(T0, "b"), ev(T0, "c"), ev(T0 + 1, "d"), nobody]);
        let s = t.stats();
        assert_eq!((s.groups, s.evicted, s.ungrouped), (3, 1, 1));
        assert!(t.groups.peek("a").is_none());
    }

    #[test]
    fn compile_names_the_wrong_key() {
        let mut s = spec();
        s.factor = None;
        assert_eq!(Config::compile(&s).unwrap_err().key, "factor");
        let mut s = spec();
        s.baseline = "1h".into();
        assert_eq!(Config::compile(&s).unwrap_err().key, "baseline");
        let mut s = spec();
        s.min_count = Some(0);
        assert_eq!(Config::compile(&s).unwrap_err().key, "min_count");
        let mut s = spec();
        s.z = Some(f64::NAN);
        assert_eq!(Config::compile(&s).unwrap_err().key, "z");
        let mut s = spec();
        s.window = "often".into();
        assert_eq!(Config::compile(&s).unwrap_err().key, "window");
    }

    /// A week of two events an hour for alice and bob, then bursts, with carol and dave
    /// arriving to evict (the table keeps three), and a few events late.
    fn week_and_bursts() -> Vec<(Event, u64)> {
        let mut events = steady("alice", 0, 168, 2);
        events.extend(steady("bob", 100, 168, 1));
        events.sort_by_key(|e| e.timestamp);
        events.extend(burst("alice", 168, 12));
        events.extend(burst("bob", 169, 9));
        events.push(ev(T0 + 169 * HOUR + 30, "carol"));
        events.push(ev(T0 + 169 * HOUR - 100, "alice"));
        events.extend(burst("alice", 170, 8));
        events.push(ev(T0 + 170 * HOUR + 50, "dave"));
        events.extend(burst("bob", 171, 10));
        events.into_iter().map(|e| (e, 0)).collect()
    }

    #[test]
    fn a_restored_snapshot_resumes_exactly() {
        let events = week_and_bursts();
        let make =
            || -> Box<dyn Detector> { Box::new(Spike::new(Config::compile(&spec()).unwrap())) };
        // Every cut in the bursts, a few in the baseline week.
        let n = events.len();
        let cuts = [0, 1, 2, 100, 336, 400].into_iter().chain(n - 45..=n);
        super::super::snapshot::check::resumes_identically_at(make, &events, cuts);
    }

    #[test]
    fn a_base_and_change_sets_resume_exactly() {
        let events = week_and_bursts();
        let make =
            || -> Box<dyn Detector> { Box::new(Spike::new(Config::compile(&spec()).unwrap())) };
        let n = events.len();
        let mut partial = false;
        for base in [0, 100, 336, n - 45, n - 20, n - 1] {
            for every in [1, 5, 40] {
                partial |= super::super::snapshot::check::changes_resume_identically(
                    &make, &events, base, every,
                );
            }
        }
        assert!(partial);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_panic() {
        let events = week_and_bursts();
        let make =
            || -> Box<dyn Detector> { Box::new(Spike::new(Config::compile(&spec()).unwrap())) };
        super::super::snapshot::check::survives_damage(make, &events[events.len() - 40..]);
    }

    #[test]
    fn group_state_is_small() {
        // 56 bytes of state; with the 24-byte inline key, the LRU's two links, its map slot
        // and allocator overhead about 150 bytes a group at 1M groups.
        assert!(std::mem::size_of::<Group>() <= 56, "{}", std::mem::size_of::<Group>());
    }
}
