//! The router: deduplication, silences, ordered routes, grouping, repeats and per-sink rate
//! limits, turning alerts into notifications (DESIGN section 4).
//!
//! Pure and clock-injected: `ingest` and `tick` take the time, so tests run on a fake clock and
//! the daemon on the wall clock. Nothing here sends; the notifications go to the outbox.
//!
//! - **Dedup**, per fingerprint (rule id + group), within the rule's `dedup` window from the
//!   first notification: a repeat of the same alert is recorded, not sent; one whose details
//!   changed (severity raised, the summed count crossing the next power of ten, a new member
//!   of a distinct set) is sent again as an update. After the window the next one is new.
//!   The window is measured on the alerts' own event times, not on the router's clock: a
//!   replay (or a reader that restarted behind) moves the clock past a burst and then shows
//!   the same burst again, which must stay one notification (issue 14).
//! - **Silences** (matchers + start + end): a silenced alert is recorded with the silence's id.
//!   The daemon's record of a silence set or ended ([`SILENCE_AUDIT_RULE`]) is never silenced.
//! - **Routes**, in order; the first that matches takes the alert unless it says `continue`.
//! - **Grouping**: a route's alerts with the same `group_by` values wait `group_wait` and go
//!   as one notification; later ones wait until `group_interval` after the last; alerts still
//!   firing (deduplicated repeats) are re-sent after `repeat_interval`.
//! - **Rate limits** per sink (governor): what a limit holds back is counted and summarized in
//!   one "held back" notification as soon as the limit allows, never dropped silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::alert::{Alert, fingerprint};
use crate::event::Timestamp;
use crate::route::matcher::{AlertMatcher, alert_field, alert_field_ref};
use crate::route::notification::{Kind, Notification};
use crate::rule::Severity;
use crate::rule::duration::Span;

mod snapshot;

pub use snapshot::RouterRestoreReport;

/// Dedup window for rules that set none.
pub const DEFAULT_DEDUP: Span = Span(3_600_000_000_000);
/// Example alerts a rate-limit summary carries.
const SUMMARY_EXAMPLES: usize = 10;
/// Members of a distinct set remembered per fingerprint (to spot a new one).
const MAX_MEMBERS: usize = 256;

/// A compiled route.
#[derive(Clone, Debug)]
pub struct Route {
    /// Name for notifications and logs.
    pub name: String,
    /// What alerts it takes.
    pub matcher: AlertMatcher,
    /// Sink names, in order.
    pub sinks: Vec<String>,
    /// Keep trying later routes after this one matched.
    pub cont: bool,
    /// Send alerts that tell something went away ([`Alert::is_resolved`]); without it the
    /// route takes them and sends nothing.
    pub send_resolved: bool,
    /// Alert fields whose values make a notification group.
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    pub group_wait: Span,
    /// Least time between notifications of one group about new alerts.
    pub group_interval: Span,
    /// How long before alerts still firing are sent again.
    pub repeat_interval: Span,
}

/// A silence: matching alerts between `starts` and `ends` are recorded, not sent.
#[derive(Clone, Debug)]
pub struct Silence {
    /// Stable id (for the API and the record).
    pub id: String,
    /// What it silences.
    pub matcher: AlertMatcher,
    /// From (inclusive).
    pub starts: Timestamp,
    /// Until (exclusive).
    pub ends: Timestamp,
    /// Who set it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// The rule id of the daemon's own record that a silence was set or ended. No silence applies
/// to it: otherwise a silence matching everything would hide its own creation, and muting
/// the alerts could itself go unseen.
pub const SILENCE_AUDIT_RULE: &str = "logwarden.silence";

impl Silence {
    /// Whether it silences `a` at `now` (never a [`SILENCE_AUDIT_RULE`] alert).
    pub fn silences(&self, a: &Alert, now: Timestamp) -> bool {
        self.starts <= now
            && now < self.ends
            && a.rule_id != SILENCE_AUDIT_RULE
            && self.matcher.matches(a)
    }
}

/// A sink's rate limit: `count` notifications per `per`, with bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Notifications per period.
    pub count: u32,
    /// The period.
    pub per: Span,
    /// Most notifications at once (default `count`).
    pub burst: u32,
}

/// Everything the router needs.
#[derive(Clone, Debug, Default)]
pub struct RouterConfig {
    /// Routes in order.
    pub routes: Vec<Route>,
    /// Silences from the config (the API adds more).
    pub silences: Vec<Silence>,
    /// Per-sink limits.
    pub rate_limits: BTreeMap<String, RateLimit>,
    /// Rule id -> dedup window (rules without one get [`DEFAULT_DEDUP`]).
    pub dedup: HashMap<String, Span>,
}

/// What the router did with one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Taken by these routes, as new or as an update.
    Routed {
        /// Route names.
        routes: Vec<String>,
        /// New or update.
        kind: Kind,
    },
    /// The same alert within its dedup window, unchanged.
    Deduplicated,
    /// Silenced by the silence with this id.
    Silenced(String),
    /// No route took it.
    Unrouted,
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Alerts ingested.
    pub alerts: u64,
    /// Alerts deduplicated.
    pub deduplicated: u64,
    /// Alerts silenced.
    pub silenced: u64,
    /// Alerts no route took.
    pub unrouted: u64,
    /// Notifications made (summaries included).
    pub notifications: u64,
    /// Alerts held back by rate limits (all of them summarized).
    pub held_back: u64,
}

/// The field order is the router snapshot format: changing it needs a new snapshot version.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct DedupState {
    /// The window's end in event time: the rule's `dedup` after the last event of the alert
    /// that opened it (so the window's start is `until` less one window). Snapshots written
    /// before issue 14 hold the router's clock here, which live is the same time give or take
    /// the pipeline's delay.
    until: Timestamp,
    severity: Severity,
    count: u64,
    next_step: u64,
    members: Vec<u64>,
    /// The last alert taken (first seen, last seen, count): the very same alert delivered
    /// again (a replayed file, a restarted reader) adds nothing to the count.
    last: (Timestamp, Timestamp, u64),
    /// When to forget the window, on the router's clock: its entry in `Router::dedup_ends`.
    /// Not in the snapshot (a restore derives it from `until`), so the format is unchanged.
    #[serde(skip)]
    forget_at: Timestamp,
}

/// A group: its route's index and a hash of its `group_by` values (the values themselves
/// are kept in the group, for the notification).
type GroupKey = (usize, u64);

#[derive(Debug)]
struct Group {
    route: usize,
    key: Vec<(String, String)>,
    /// New and updated alerts not yet sent, with their kind.
    pending: Vec<(Arc<Alert>, Kind)>,
    /// Where each fingerprint sits in `pending`: a newer firing replaces its slot in O(1),
    /// so a wide group in a storm is not quadratic.
    pending_at: HashMap<u64, usize, foldhash::fast::FixedState>,
    /// Deduplicated repeats since the last notification, latest per fingerprint.
    firing: BTreeMap<u64, Arc<Alert>>,
    created: Timestamp,
    last_sent: Option<Timestamp>,
    /// When `tick` should look at it next (its entry in `Router::schedule`).
    next: Option<Timestamp>,
}

impl Group {
    /// When the group next needs attention: a send (wait, interval, repeat) or, idle, its end.
    fn next_check(&self, route: &Route) -> Timestamp {
        if !self.pending.is_empty() {
            match self.last_sent {
                None => route.group_wait.after(self.created),
                Some(t) => route.group_interval.after(t),
            }
        } else {
            // Firing alerts repeat then; an idle group is forgotten then. A group made for a
            // repeat of an alert sent through another group counts from its creation.
            route.repeat_interval.after(self.last_sent.unwrap_or(self.created))
        }
    }
}

/// The router's clock as governor reads it: nanoseconds since the epoch, set by the caller.
#[derive(Clone, Debug, Default)]
struct InjectedClock(Arc<AtomicU64>);

impl Clock for InjectedClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.load(Ordering::Relaxed))
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, InjectedClock, NoOpMiddleware<Nanos>>;

#[derive(Debug, Default)]
struct Held {
    count: u64,
    examples: Vec<serde_json::Value>,
}

/// The router's state.
pub struct Router {
    config: RouterConfig,
    /// Silences added at run time (API), beside the configured ones.
    extra_silences: Vec<Silence>,
    dedup: HashMap<u64, DedupState, foldhash::fast::FixedState>,
    /// Dedup windows by the router-clock time they are forgotten, so expiry costs per
    /// expired window, not per window.
    dedup_ends: BTreeSet<(Timestamp, u64)>,
    /// How long a window is kept on the router's clock past both its end and its opening: the
    /// longest `dedup` window of the config. The window itself is judged on event times; this
    /// only bounds memory, and lets an alert whose events lag the clock by up to that much
    /// (a replayed file read again, a backlog) still find the window it belongs to.
    dedup_grace: Span,
    groups: BTreeMap<GroupKey, Group>,
    /// Groups by the time they next need attention: `tick` reads only what is due.
    schedule: BTreeSet<(Timestamp, GroupKey)>,
    clock: InjectedClock,
    limiters: BTreeMap<String, Limiter>,
    /// Each rate-limited sink's limiter state, kept beside it: governor's GCRA state is one
    /// "theoretical arrival time" (nanoseconds on the router's clock), which it does not
    /// expose. A restored or rebuilt limiter is brought to it by one check at `tat - interval`.
    tats: BTreeMap<String, i64>,
    held: BTreeMap<String, Held>,
    stats: RouterStats,
    seq: u64,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("routes", &self.config.routes.len())
            .field("groups", &self.groups.len())
            .field("stats", &self.stats)
            .finish()
    }
}

/// The hash of a route's group: [`fingerprint`] of the route name and the `group_by` pairs,
/// fed straight from the alert's fields (a missing one counts as `-`).
fn group_hash(route: &str, group_by: &[String], a: &Alert) -> u64 {
    let mut h = crate::alert::Fnv::new();
    h.feed(route.as_bytes());
    for f in group_by {
        h.feed(&[0x1e]);
        h.feed(f.as_bytes());
        h.feed(&[0x1f]);
        match alert_field_ref(a, f) {
            Some(v) => h.feed(v.as_str().as_bytes()),
            None => h.feed(b"-"),
        }
    }
    h.finish()
}

fn next_power_of_ten_above(n: u64) -> u64 {
    let mut step = 10u64;
    while step <= n {
        step = step.saturating_mul(10);
        if step == u64::MAX {
            break;
        }
    }
    step
}

fn members(a: &Alert) -> Vec<u64> {
    let Some(values) = a.detail.as_ref().and_then(|d| d.get("values")).and_then(|v| v.as_array())
    else {
        return Vec::new();
    };
    values.iter().filter_map(|v| v.as_str()).map(|s| fingerprint(s, &[])).collect()
}

impl Router {
    /// A router with no state yet.
    pub fn new(config: RouterConfig) -> Router {
        let clock = InjectedClock::default();
        let limiters = limiters(&config, &clock);
        Router {
            dedup_grace: dedup_grace(&config),
            config,
            extra_silences: Vec::new(),
            dedup: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            dedup_ends: BTreeSet::new(),
            groups: BTreeMap::new(),
            schedule: BTreeSet::new(),
            clock,
            limiters,
            tats: BTreeMap::new(),
            held: BTreeMap::new(),
            stats: RouterStats::default(),
            seq: 0,
        }
    }

    /// Takes a new config (a reload): what waits in groups is sent first under the routes it
    /// was grouped by, the held-back summaries too; dedup windows and run-time silences are
    /// kept, so a reload neither repeats nor unmutes anything.
    pub fn reconfigure(
        &mut self,
        config: RouterConfig,
        now: Timestamp,
        out: &mut Vec<Notification>,
    ) {
        self.flush_pending(now, out);
        self.flush_held(now, out);
        self.groups.clear();
        self.schedule.clear();
        self.limiters = limiters(&config, &self.clock);
        self.dedup_grace = dedup_grace(&config);
        self.config = config;
        self.restore_limiters();
    }

    /// Brings fresh limiters to the state the old ones had (see `tats`), so a restart or a
    /// reload does not give every sink a new burst. Sinks no longer limited are forgotten.
    fn restore_limiters(&mut self) {
        let limiters = &self.limiters;
        self.tats.retain(|sink, _| limiters.contains_key(sink));
        let now = self.clock.0.load(Ordering::Relaxed);
        for (sink, &tat) in &self.tats {
            let (Some(l), Some(limit)) =
                (self.limiters.get(sink), self.config.rate_limits.get(sink))
            else {
                continue;
            };
            // A fresh limiter's check at `t` leaves its state at `t + interval`.
            let at = tat.saturating_sub(interval_nanos(limit) as i64);
            self.clock.0.store(u64::try_from(at).unwrap_or(0), Ordering::Relaxed);
            let _ = l.check();
        }
        self.clock.0.store(now, Ordering::Relaxed);
    }

    /// The run-time silences.
    pub fn extra_silences(&self) -> &[Silence] {
        &self.extra_silences
    }

    /// The configured silences.
    pub fn config_silences(&self) -> &[Silence] {
        &self.config.silences
    }
}

/// Asks `sink`'s limit (if it has one) to let one notification through at `now`, and
/// follows the limiter's state in `tats` as governor's GCRA moves it: a notification let
/// through at `now` moves it to `max(state, now) + interval`; one held back leaves it.
fn admit(
    limiters: &BTreeMap<String, Limiter>,
    tats: &mut BTreeMap<String, i64>,
    limits: &BTreeMap<String, RateLimit>,
    sink: &str,
    now: Timestamp,
) -> bool {
    let Some(l) = limiters.get(sink) else { return true };
    if l.check().is_err() {
        return false;
    }
    let interval = limits.get(sink).map_or(1, interval_nanos) as i64;
    let tat = match tats.get_mut(sink) {
        Some(t) => t,
        None => tats.entry(sink.to_owned()).or_insert(i64::MIN),
    };
    *tat = (*tat).max(now.0).saturating_add(interval);
    true
}

/// Nanoseconds between two notifications at a limit's steady rate.
fn interval_nanos(limit: &RateLimit) -> u64 {
    ((limit.per.nanos().max(1) as u64) / u64::from(limit.count.max(1))).max(1)
}

/// The longest dedup window of `config` (see `Router::dedup_grace`).
fn dedup_grace(config: &RouterConfig) -> Span {
    config.dedup.values().copied().chain([DEFAULT_DEDUP]).max().unwrap_or(DEFAULT_DEDUP)
}

/// One governor limiter per rate-limited sink, on the router's clock.
fn limiters(config: &RouterConfig, clock: &InjectedClock) -> BTreeMap<String, Limiter> {
    // Made at clock 0, so that governor (which counts from its limiter's creation) counts
    // from the epoch as `tats` do, whenever the limiters are made.
    let now = clock.0.swap(0, Ordering::Relaxed);
    let mut limiters = BTreeMap::new();
    for (sink, limit) in &config.rate_limits {
        let Some(quota) =
            Quota::with_period(std::time::Duration::from_nanos(interval_nanos(limit)))
        else {
            continue;
        };
        let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
        limiters.insert(
            sink.clone(),
            RateLimiter::direct_with_clock(quota.allow_burst(burst), clock.clone()),
        );
    }
    clock.0.store(now, Ordering::Relaxed);
    limiters
}

impl Router {
    /// Adds a silence at run time (replacing one with the same id).
    pub fn add_silence(&mut self, s: Silence) {
        self.extra_silences.retain(|o| o.id != s.id);
        self.extra_silences.push(s);
    }

    /// Removes a run-time silence; whether it existed.
    pub fn remove_silence(&mut self, id: &str) -> bool {
        let before = self.extra_silences.len();
        self.extra_silences.retain(|s| s.id != id);
        before != self.extra_silences.len()
    }

    /// The counters.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    fn set_clock(&self, now: Timestamp) {
        self.clock.0.store(u64::try_from(now.0).unwrap_or(0), Ordering::Relaxed);
    }

    /// Takes one alert at `now`; notifications that are due go to `out`. Copies the alert
    /// once; [`Router::ingest_shared`] takes one already shared.
    pub fn ingest(&mut self, a: &Alert, now: Timestamp, out: &mut Vec<Notification>) -> Decision {
        self.ingest_shared(Arc::new(a.clone()), now, out)
    }

    /// Takes one alert at `now` without copying it: every group it joins holds the same one.
    pub fn ingest_shared(
        &mut self,
        a: Arc<Alert>,
        now: Timestamp,
        out: &mut Vec<Notification>,
    ) -> Decision {
        self.stats.alerts += 1;
        if let Some(s) =
            self.config.silences.iter().chain(&self.extra_silences).find(|s| s.silences(&a, now))
        {
            self.stats.silenced += 1;
            return Decision::Silenced(s.id.clone());
        }
        let kind = self.classify(&a, now);
        let resolved = a.is_resolved();
        let mut routes = Vec::new();
        let mut touched: Vec<GroupKey> = Vec::new();
        for (i, route) in self.config.routes.iter().enumerate() {
            if !route.matcher.matches(&a) {
                continue;
            }
            if resolved && !route.send_resolved {
                // Taken and dropped: a later catch-all route must not get what this team's
                // route chose not to send.
                if route.cont {
                    continue;
                }
                break;
            }
            routes.push(route.name.clone());
            // The group's hash is fed from borrowed values; the owned key is only built for a
            // group seen for the first time.
            let gkey = (i, group_hash(&route.name, &route.group_by, &a));
            touched.push(gkey);
            let group = self.groups.entry(gkey).or_insert_with(|| Group {
                route: i,
                key: route
                    .group_by
                    .iter()
                    .map(|f| {
                        let v = alert_field(&a, f).unwrap_or_else(|| "-".to_owned());
                        (f.clone(), v)
                    })
                    .collect(),
                pending: Vec::new(),
                pending_at: HashMap::default(),
                firing: BTreeMap::new(),
                created: now,
                last_sent: None,
                next: None,
            });
            match kind {
                // A newer firing of an alert still waiting replaces it: one notification
                // carries each alert once, at its latest, and stays "new" if it was.
                Some(k) => {
                    match group.pending_at.get(&a.fingerprint).map(|&at| &mut group.pending[at]) {
                        Some(slot) => {
                            let kind = if slot.1 == Kind::New { Kind::New } else { k };
                            *slot = (Arc::clone(&a), kind);
                        }
                        None => {
                            group.pending_at.insert(a.fingerprint, group.pending.len());
                            group.pending.push((Arc::clone(&a), k));
                        }
                    }
                }
                None => {
                    group.firing.insert(a.fingerprint, Arc::clone(&a));
                }
            }
            if !route.cont {
                break;
            }
        }
        let decision = match (routes.is_empty(), kind) {
            (true, _) => {
                self.stats.unrouted += 1;
                Decision::Unrouted
            }
            (false, None) => {
                self.stats.deduplicated += 1;
                Decision::Deduplicated
            }
            (false, Some(kind)) => Decision::Routed { routes, kind },
        };
        // Only the groups this alert joined can have become due; the rest wait for `tick`,
        // so a storm costs per alert, not per alert times groups.
        self.set_clock(now);
        for key in touched {
            self.flush_if_due(&key, now, out);
        }
        self.summarize(now, out);
        decision
    }

    /// New, update, or (`None`) a duplicate within the dedup window, judged on event times:
    /// an alert belongs to a window when its first event is before the window's end and its
    /// last event is less than one window before the window's start (an older burst read
    /// late is news of its own, not a repeat of a later one).
    fn classify(&mut self, a: &Alert, now: Timestamp) -> Option<Kind> {
        let window = self.config.dedup.get(&a.rule_id).copied().unwrap_or(DEFAULT_DEDUP);
        let until = window.after(a.last_seen);
        let fresh = || DedupState {
            until,
            forget_at: self.dedup_grace.after(until.max(now)),
            severity: a.severity,
            count: a.count,
            next_step: next_power_of_ten_above(a.count),
            members: members(a).into_iter().take(MAX_MEMBERS).collect(),
            last: (a.first_seen, a.last_seen, a.count),
        };
        match self.dedup.get_mut(&a.fingerprint) {
            // `last + 2 windows > until` is `last + window > start`, without a subtraction.
            Some(s)
                if a.first_seen < s.until && window.after(window.after(a.last_seen)) > s.until =>
            {
                let mut changed = false;
                if a.severity > s.severity {
                    s.severity = a.severity;
                    changed = true;
                }
                let this = (a.first_seen, a.last_seen, a.count);
                if this != s.last {
                    s.last = this;
                    s.count = s.count.saturating_add(a.count);
                }
                if s.count >= s.next_step {
                    s.next_step = next_power_of_ten_above(s.count);
                    changed = true;
                }
                for m in members(a) {
                    if !s.members.contains(&m) {
                        if s.members.len() < MAX_MEMBERS {
                            s.members.push(m);
                        }
                        changed = true;
                    }
                }
                changed.then_some(Kind::Update)
            }
            _ => {
                let state = fresh();
                self.dedup_ends.insert((state.forget_at, a.fingerprint));
                self.dedup.insert(a.fingerprint, state);
                Some(Kind::New)
            }
        }
    }

    /// Sends what is due at `now`: groups past their wait or interval, repeats, and rate-limit
    /// summaries; forgets expired dedup windows and idle groups. Call it periodically (the
    /// daemon: every second; replay: at the end).
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Notification>) {
        self.set_clock(now);
        while let Some(&(forget_at, fp)) = self.dedup_ends.first() {
            if forget_at > now {
                break;
            }
            self.dedup_ends.pop_first();
            // A window renewed since has an entry of its own in the set.
            if self.dedup.get(&fp).is_some_and(|s| s.forget_at == forget_at) {
                self.dedup.remove(&fp);
            }
        }
        // Everything due now, taken out first: each is looked at once per tick even if it
        // reschedules itself at or before `now`.
        let mut due = Vec::new();
        while self.schedule.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, key)) = self.schedule.pop_first() {
                due.push(key);
            }
        }
        for key in due {
            if let Some(g) = self.groups.get_mut(&key) {
                g.next = None;
            }
            self.flush_if_due(&key, now, out);
            // A group with nothing pending or firing, idle past its repeat interval, is done.
            let done = self.groups.get(&key).is_some_and(|g| {
                let since = g.last_sent.unwrap_or(g.created);
                g.pending.is_empty()
                    && g.firing.is_empty()
                    && now >= self.config.routes[g.route].repeat_interval.after(since)
            });
            if done {
                self.groups.remove(&key);
            } else {
                self.reschedule(&key);
            }
        }
        self.summarize(now, out);
    }

    /// Sends one group's notification if it is due: pending alerts past the group's wait (or
    /// interval since the last), or alerts still firing past the repeat interval.
    fn flush_if_due(&mut self, key: &GroupKey, now: Timestamp, out: &mut Vec<Notification>) {
        let Some(g) = self.groups.get_mut(key) else { return };
        let route = &self.config.routes[g.route];
        let flush = if !g.pending.is_empty() {
            let due = match g.last_sent {
                None => route.group_wait.after(g.created),
                Some(t) => route.group_interval.after(t),
            };
            (now >= due).then(|| {
                let any_new = g.pending.iter().any(|(_, k)| *k == Kind::New);
                let kind = if any_new { Kind::New } else { Kind::Update };
                let alerts: Vec<Arc<Alert>> = g.pending.drain(..).map(|(a, _)| a).collect();
                g.pending_at.clear();
                g.firing.clear();
                (kind, alerts)
            })
        } else if !g.firing.is_empty()
            && now >= route.repeat_interval.after(g.last_sent.unwrap_or(g.created))
        {
            Some((Kind::Repeat, std::mem::take(&mut g.firing).into_values().collect()))
        } else {
            None
        };
        if let Some((kind, alerts)) = flush {
            g.last_sent = Some(now);
            self.flush(key, kind, &alerts, now, out);
        }
        self.reschedule(key);
    }

    /// Puts the group in the schedule at its next check time (moving it if it was there).
    fn reschedule(&mut self, key: &GroupKey) {
        let Some(g) = self.groups.get_mut(key) else { return };
        let next = g.next_check(&self.config.routes[g.route]);
        if g.next == Some(next) {
            return;
        }
        if let Some(old) = g.next.replace(next) {
            self.schedule.remove(&(old, *key));
        }
        self.schedule.insert((next, *key));
    }

    fn flush(
        &mut self,
        key: &GroupKey,
        kind: Kind,
        alerts: &[Arc<Alert>],
        now: Timestamp,
        out: &mut Vec<Notification>,
    ) {
        let Some(g) = self.groups.get(key) else { return };
        let route = &self.config.routes[g.route];
        // Which sinks take it now; the rest hold it back. Decided first so that in a storm,
        // when every sink is over its limit, no alert is rendered as JSON only to be counted.
        let (limiters, tats, limits) = (&self.limiters, &mut self.tats, &self.config.rate_limits);
        let allowed: Vec<bool> =
            route.sinks.iter().map(|sink| admit(limiters, tats, limits, sink, now)).collect();
        let mut jsons: Option<Vec<serde_json::Value>> = None;
        let mut render = || alerts.iter().map(|a| a.to_json()).collect::<Vec<_>>();
        for (sink, _) in route.sinks.iter().zip(&allowed).filter(|(_, ok)| !**ok) {
            let held = self.held.entry(sink.clone()).or_default();
            held.count += alerts.len() as u64;
            self.stats.held_back += alerts.len() as u64;
            let room = SUMMARY_EXAMPLES.saturating_sub(held.examples.len());
            if room > 0 {
                let js = jsons.get_or_insert_with(&mut render);
                held.examples.extend(js.iter().take(room).cloned());
            }
        }
        let takers = allowed.iter().filter(|ok| **ok).count();
        if takers == 0 {
            return;
        }
        let group: BTreeMap<String, String> = g.key.iter().cloned().collect();
        let severity = alerts.iter().map(|a| a.severity).max().unwrap_or(Severity::Info);
        let title = title(kind, alerts);
        let mut jsons = jsons.unwrap_or_else(render);
        let mut left = takers;
        for (sink, _) in route.sinks.iter().zip(&allowed).filter(|(_, ok)| **ok) {
            left -= 1;
            self.seq += 1;
            // The last taker gets the rendered alerts themselves, the others copies.
            let alerts = if left == 0 { std::mem::take(&mut jsons) } else { jsons.clone() };
            out.push(Notification {
                id: notification_id(&route.name, sink, &format!("{:016x}", key.1), now, self.seq),
                sink: sink.clone(),
                route: route.name.clone(),
                kind,
                group: group.clone(),
                severity,
                title: title.clone(),
                alerts,
                suppressed: 0,
                created: rfc3339(now),
            });
            self.stats.notifications += 1;
        }
    }

    /// Sends every group's pending alerts now, whatever is left of their wait, and nothing
    /// else: the end of a replay, where no later tick will come. Alerts still firing get no
    /// "still firing" repeat from this, however short their route's repeat interval.
    pub fn flush_pending(&mut self, now: Timestamp, out: &mut Vec<Notification>) {
        self.set_clock(now);
        let keys: Vec<GroupKey> =
            self.groups.iter().filter(|(_, g)| !g.pending.is_empty()).map(|(k, _)| *k).collect();
        for key in keys {
            let Some(g) = self.groups.get_mut(&key) else { continue };
            let any_new = g.pending.iter().any(|(_, k)| *k == Kind::New);
            let kind = if any_new { Kind::New } else { Kind::Update };
            let alerts: Vec<Arc<Alert>> = g.pending.drain(..).map(|(a, _)| a).collect();
            g.pending_at.clear();
            g.firing.clear();
            g.last_sent = Some(now);
            self.flush(&key, kind, &alerts, now, out);
            self.reschedule(&key);
        }
        self.summarize(now, out);
    }

    /// The last word before the router stops (end of a replay, shutdown): the summaries of
    /// what rate limits still hold, sent past the limit, since there is no later turn to wait
    /// for and a count kept only in memory would be lost.
    pub fn flush_held(&mut self, now: Timestamp, out: &mut Vec<Notification>) {
        self.set_clock(now);
        self.summaries(now, out, false);
    }

    /// One summary per sink whose limit held alerts back, as soon as the limit allows.
    fn summarize(&mut self, now: Timestamp, out: &mut Vec<Notification>) {
        self.summaries(now, out, true);
    }

    fn summaries(&mut self, now: Timestamp, out: &mut Vec<Notification>, limited: bool) {
        if self.held.is_empty() {
            return;
        }
        // Called per alert during a storm: the sinks are only copied once one is ready.
        let (limiters, tats, limits) = (&self.limiters, &mut self.tats, &self.config.rate_limits);
        let ready: Vec<String> = self
            .held
            .iter()
            .filter(|(s, h)| h.count > 0 && (!limited || admit(limiters, tats, limits, s, now)))
            .map(|(s, _)| s.clone())
            .collect();
        for sink in ready {
            let Some(held) = self.held.remove(&sink) else { continue };
            self.seq += 1;
            let severity = held
                .examples
                .iter()
                .filter_map(|j| serde_json::from_value::<Severity>(j.get("severity")?.clone()).ok())
                .max()
                .unwrap_or(Severity::Info);
            out.push(Notification {
                id: notification_id("rate-limit", &sink, "", now, self.seq),
                sink: sink.clone(),
                route: "rate-limit".into(),
                kind: Kind::Summary,
                group: BTreeMap::new(),
                severity,
                title: format!("{} alerts held back by the rate limit of {sink}", held.count),
                alerts: held.examples,
                suppressed: held.count,
                created: rfc3339(now),
            });
            self.stats.notifications += 1;
        }
    }
}

fn title(kind: Kind, alerts: &[Arc<Alert>]) -> String {
    let first = alerts.first().map(|a| a.title.as_str()).unwrap_or_default();
    let base = if alerts.len() > 1 {
        format!("{first} (and {} more)", alerts.len() - 1)
    } else {
        first.to_owned()
    };
    match kind {
        Kind::New | Kind::Summary => base,
        Kind::Update => format!("Update: {base}"),
        Kind::Repeat => format!("Still firing: {base}"),
    }
}

fn rfc3339(t: Timestamp) -> String {
    let mut b = Vec::with_capacity(32);
    t.write_rfc3339(&mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// Unique per notification (route, sink, group, time, sequence), so a receiver can tell a
/// retry of one notification (same id) from a new one.
fn notification_id(route: &str, sink: &str, group: &str, now: Timestamp, seq: u64) -> String {
    let key = [
        ("sink".to_owned(), sink.to_owned()),
        ("group".to_owned(), group.to_owned()),
        ("at".to_owned(), now.0.to_string()),
        ("seq".to_owned(), seq.to_string()),
    ];
    format!("{:016x}", fingerprint(route, &key))
}

#[cfg(test)]
mod tests;
