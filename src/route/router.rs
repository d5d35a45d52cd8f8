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
//! - **Silences** (matchers + start + end): a silenced alert is recorded with the silence's id.
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

impl Silence {
    /// Whether it silences `a` at `now`.
    pub fn silences(&self, a: &Alert, now: Timestamp) -> bool {
        self.starts <= now && now < self.ends && self.matcher.matches(a)
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

#[derive(Debug)]
struct DedupState {
    until: Timestamp,
    severity: Severity,
    count: u64,
    next_step: u64,
    members: Vec<u64>,
    /// The last alert taken (first seen, last seen, count): the very same alert delivered
    /// again (a replayed file, a restarted reader) adds nothing to the count.
    last: (Timestamp, Timestamp, u64),
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
    /// Dedup windows by end time, so expiry costs per expired window, not per window.
    dedup_ends: BTreeSet<(Timestamp, u64)>,
    groups: BTreeMap<GroupKey, Group>,
    /// Groups by the time they next need attention: `tick` reads only what is due.
    schedule: BTreeSet<(Timestamp, GroupKey)>,
    clock: InjectedClock,
    limiters: BTreeMap<String, Limiter>,
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
        let mut limiters = BTreeMap::new();
        for (sink, limit) in &config.rate_limits {
            let per_cell = (limit.per.nanos().max(1) as u64) / u64::from(limit.count.max(1));
            let Some(quota) = Quota::with_period(std::time::Duration::from_nanos(per_cell.max(1)))
            else {
                continue;
            };
            let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            limiters.insert(
                sink.clone(),
                RateLimiter::direct_with_clock(quota.allow_burst(burst), clock.clone()),
            );
        }
        Router {
            config,
            extra_silences: Vec::new(),
            dedup: HashMap::with_hasher(foldhash::fast::FixedState::default()),
            dedup_ends: BTreeSet::new(),
            groups: BTreeMap::new(),
            schedule: BTreeSet::new(),
            clock,
            limiters,
            held: BTreeMap::new(),
            stats: RouterStats::default(),
            seq: 0,
        }
    }

    /// Adds a silence at run time.
    pub fn add_silence(&mut self, s: Silence) {
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
        let mut routes = Vec::new();
        let mut touched: Vec<GroupKey> = Vec::new();
        for (i, route) in self.config.routes.iter().enumerate() {
            if !route.matcher.matches(&a) {
                continue;
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
                firing: BTreeMap::new(),
                created: now,
                last_sent: None,
                next: None,
            });
            match kind {
                // A newer firing of an alert still waiting replaces it: one notification
                // carries each alert once, at its latest, and stays "new" if it was.
                Some(k) => {
                    match group.pending.iter_mut().find(|(p, _)| p.fingerprint == a.fingerprint) {
                        Some(slot) => {
                            let kind = if slot.1 == Kind::New { Kind::New } else { k };
                            *slot = (Arc::clone(&a), kind);
                        }
                        None => group.pending.push((Arc::clone(&a), k)),
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

    /// New, update, or (`None`) a duplicate within the dedup window.
    fn classify(&mut self, a: &Alert, now: Timestamp) -> Option<Kind> {
        let window = self.config.dedup.get(&a.rule_id).copied().unwrap_or(DEFAULT_DEDUP);
        let fresh = || DedupState {
            until: window.after(now),
            severity: a.severity,
            count: a.count,
            next_step: next_power_of_ten_above(a.count),
            members: members(a).into_iter().take(MAX_MEMBERS).collect(),
            last: (a.first_seen, a.last_seen, a.count),
        };
        match self.dedup.get_mut(&a.fingerprint) {
            Some(s) if now < s.until => {
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
                self.dedup_ends.insert((state.until, a.fingerprint));
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
        while let Some(&(until, fp)) = self.dedup_ends.first() {
            if until > now {
                break;
            }
            self.dedup_ends.pop_first();
            // A window renewed since has a later end of its own in the set.
            if self.dedup.get(&fp).is_some_and(|s| s.until == until) {
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
        let allowed: Vec<bool> = route
            .sinks
            .iter()
            .map(|sink| self.limiters.get(sink).is_none_or(|l| l.check().is_ok()))
            .collect();
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
        let limiters = &self.limiters;
        let ready: Vec<String> = self
            .held
            .iter()
            .filter(|(s, h)| {
                h.count > 0 && (!limited || limiters.get(*s).is_none_or(|l| l.check().is_ok()))
            })
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
mod tests {
    use super::*;
    use crate::route::matcher::SeverityBound;
    use crate::route::matcher::tests::alert;

    const SEC: i64 = 1_000_000_000;

    fn at(s: i64) -> Timestamp {
        Timestamp(1_700_000_000 * SEC + s * SEC)
    }

    fn route(name: &str, sinks: &[&str]) -> Route {
        Route {
            name: name.into(),
            matcher: AlertMatcher::default(),
            sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
            cont: false,
            group_by: vec!["rule.id".into(), "source.ip".into()],
            group_wait: Span(0),
            group_interval: Span::from_secs(300),
            repeat_interval: Span::from_secs(3600),
        }
    }

    fn router(routes: Vec<Route>) -> Router {
        Router::new(RouterConfig { routes, ..RouterConfig::default() })
    }

    #[test]
    fn the_same_alert_twice_notifies_once() {
        let mut r = router(vec![route("all", &["slack"])]);
        let a = alert("ssh-bruteforce", Severity::High, "192.0.2.7", 5);
        let mut out = Vec::new();
        assert_eq!(
            r.ingest(&a, at(0), &mut out),
            Decision::Routed { routes: vec!["all".into()], kind: Kind::New }
        );
        assert_eq!(r.ingest(&a, at(10), &mut out), Decision::Deduplicated);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::New);
        assert_eq!(out[0].sink, "slack");
        assert_eq!(out[0].group["source.ip"], "192.0.2.7");
        assert_eq!(out[0].alerts[0]["rule"]["id"], "ssh-bruteforce");
        assert_eq!(r.stats().deduplicated, 1);
    }

    #[test]
    fn changed_details_notify_once_as_an_update() {
        let mut r = router(vec![route("all", &["slack"])]);
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::Medium, "192.0.2.7", 5), at(0), &mut out);
        // Severity raised: one update (after the group interval).
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 1), at(10), &mut out);
        assert_eq!(out.len(), 1, "updates wait for the group interval");
        r.tick(at(300), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].kind, Kind::Update);
        assert!(out[1].title.starts_with("Update: "), "{}", out[1].title);
        // The same again: nothing.
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 1), at(301), &mut out);
        r.tick(at(700), &mut out);
        assert_eq!(out.iter().filter(|n| n.kind == Kind::Update).count(), 1);
        // The summed count crossing 10 (5 + 1 + 4; the repeated 1 is the same alert): one
        // more update.
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 4), at(701), &mut out);
        r.tick(at(1100), &mut out);
        assert_eq!(out.iter().filter(|n| n.kind == Kind::Update).count(), 2);
    }

    #[test]
    fn a_new_member_of_a_distinct_set_is_an_update() {
        let mut r = router(vec![route("all", &["s"])]);
        let mut a = alert("spray", Severity::High, "192.0.2.7", 5);
        a.detail = Some(serde_json::json!({"distinct": "user.name", "values": ["a", "b"]}));
        let mut out = Vec::new();
        r.ingest(&a, at(0), &mut out);
        assert_eq!(r.ingest(&a, at(1), &mut out), Decision::Deduplicated);
        a.detail = Some(serde_json::json!({"distinct": "user.name", "values": ["a", "c"]}));
        assert_eq!(
            r.ingest(&a, at(2), &mut out),
            Decision::Routed { routes: vec!["all".into()], kind: Kind::Update }
        );
    }

    #[test]
    fn after_the_dedup_window_the_alert_is_new_again() {
        let mut cfg = RouterConfig { routes: vec![route("all", &["s"])], ..Default::default() };
        cfg.dedup.insert("r".into(), Span::from_secs(60));
        let mut r = Router::new(cfg);
        let a = alert("r", Severity::High, "192.0.2.7", 5);
        let mut out = Vec::new();
        r.ingest(&a, at(0), &mut out);
        assert_eq!(r.ingest(&a, at(59), &mut out), Decision::Deduplicated);
        assert_eq!(
            r.ingest(&a, at(60), &mut out),
            Decision::Routed { routes: vec!["all".into()], kind: Kind::New }
        );
    }

    #[test]
    fn a_group_waits_then_sends_its_alerts_together() {
        let mut rt = route("all", &["s"]);
        rt.group_by = vec!["rule.id".into()];
        rt.group_wait = Span::from_secs(30);
        let mut r = router(vec![rt]);
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::Low, "192.0.2.1", 5), at(0), &mut out);
        r.ingest(&alert("r", Severity::High, "192.0.2.2", 5), at(10), &mut out);
        r.tick(at(29), &mut out);
        assert!(out.is_empty());
        r.tick(at(30), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].alerts.len(), 2);
        assert_eq!(out[0].severity, Severity::High);
        assert_eq!(out[0].title, "r from 192.0.2.1 (and 1 more)");
    }

    #[test]
    fn alerts_still_firing_repeat_after_the_repeat_interval() {
        let mut r = router(vec![route("all", &["s"])]);
        let a = alert("r", Severity::High, "192.0.2.7", 5);
        let mut out = Vec::new();
        r.ingest(&a, at(0), &mut out);
        r.ingest(&a, at(100), &mut out);
        r.tick(at(3599), &mut out);
        assert_eq!(out.len(), 1);
        r.tick(at(3600), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].kind, Kind::Repeat);
        assert!(out[1].title.starts_with("Still firing: "));
        // Nothing fired since: no further repeat.
        r.tick(at(8000), &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn silenced_alerts_are_recorded_not_sent_and_the_silence_ends() {
        let mut cfg = RouterConfig { routes: vec![route("all", &["s"])], ..Default::default() };
        cfg.silences.push(Silence {
            id: "maint-1".into(),
            matcher: AlertMatcher {
                labels: [("source.ip".to_owned(), "192.0.2.7".to_owned())].into(),
                ..Default::default()
            },
            starts: at(0),
            ends: at(100),
            created_by: "alice".into(),
            comment: "our scanner".into(),
        });
        let mut r = Router::new(cfg);
        let mut out = Vec::new();
        let a = alert("r", Severity::High, "192.0.2.7", 5);
        assert_eq!(r.ingest(&a, at(5), &mut out), Decision::Silenced("maint-1".into()));
        let other = alert("r", Severity::High, "192.0.2.8", 5);
        assert!(matches!(r.ingest(&other, at(6), &mut out), Decision::Routed { .. }));
        assert_eq!(out.len(), 1);
        assert!(matches!(r.ingest(&a, at(100), &mut out), Decision::Routed { .. }));
        assert_eq!(out.len(), 2);
        assert_eq!(r.stats().silenced, 1);
        // Run-time silences come and go.
        let mut s = r.config.silences[0].clone();
        s.id = "api-1".into();
        s.ends = at(10_000);
        r.add_silence(s);
        let third = alert("r2", Severity::High, "192.0.2.7", 5);
        assert_eq!(r.ingest(&third, at(200), &mut out), Decision::Silenced("api-1".into()));
        assert!(r.remove_silence("api-1"));
    }

    #[test]
    fn first_matching_route_wins_unless_it_continues() {
        let mut high = route("high", &["pager"]);
        high.matcher.severity =
            Some(SeverityBound::parse(">= high").unwrap_or_else(|e| panic!("{e}")));
        let all = route("all", &["slack"]);
        let mut r = router(vec![high.clone(), all.clone()]);
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::Critical, "192.0.2.1", 5), at(0), &mut out);
        r.ingest(&alert("r", Severity::Low, "192.0.2.2", 5), at(0), &mut out);
        let sinks: Vec<&str> = out.iter().map(|n| n.sink.as_str()).collect();
        assert_eq!(sinks, ["pager", "slack"]);
        high.cont = true;
        let mut r = router(vec![high, all]);
        let mut out = Vec::new();
        let d = r.ingest(&alert("r", Severity::Critical, "192.0.2.1", 5), at(0), &mut out);
        assert_eq!(
            d,
            Decision::Routed { routes: vec!["high".into(), "all".into()], kind: Kind::New }
        );
        assert_eq!(out.len(), 2);
        let mut none = router(vec![route("x", &["s"])]);
        none.config.routes[0].matcher.rules = vec!["other".into()];
        assert_eq!(
            none.ingest(&alert("r", Severity::Low, "192.0.2.1", 1), at(0), &mut Vec::new()),
            Decision::Unrouted
        );
    }

    #[test]
    fn an_update_while_the_new_alert_waits_is_sent_once_as_new() {
        let mut r = router(vec![route("all", &["s"])]);
        r.config.routes[0].group_wait = Span::from_secs(30);
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 5), at(0), &mut out);
        let mut second = alert("r", Severity::High, "192.0.2.7", 5);
        second.last_seen = at(10);
        let d = r.ingest(&second, at(10), &mut out);
        assert_eq!(d, Decision::Routed { routes: vec!["all".into()], kind: Kind::Update });
        r.tick(at(31), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::New);
        assert_eq!(out[0].alerts.len(), 1, "the alert once, at its latest");
        assert_eq!(out[0].alerts[0]["last_seen"], "2023-11-14T22:13:30Z");
    }

    #[test]
    fn flush_held_sends_the_summary_a_slow_limit_still_holds() {
        let mut cfg = RouterConfig { routes: vec![route("all", &["mail"])], ..Default::default() };
        cfg.rate_limits
            .insert("mail".into(), RateLimit { count: 1, per: Span::from_secs(3600), burst: 1 });
        let mut r = Router::new(cfg);
        let mut out = Vec::new();
        for i in 0..3u8 {
            r.ingest(&alert("r", Severity::High, &format!("192.0.2.{i}"), 1), at(0), &mut out);
        }
        r.tick(at(60), &mut out);
        assert_eq!(out.len(), 1, "one within the limit, the other two held");
        assert_eq!(r.stats().held_back, 2);
        r.flush_held(at(61), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[1].kind, out[1].suppressed, out[1].alerts.len()), (Kind::Summary, 2, 2));
        r.flush_held(at(62), &mut out);
        assert_eq!(out.len(), 2, "nothing is summarized twice");
    }

    #[test]
    fn a_storm_is_rate_limited_and_the_summary_counts_every_alert() {
        let mut cfg = RouterConfig { routes: vec![route("all", &["slack"])], ..Default::default() };
        cfg.rate_limits
            .insert("slack".into(), RateLimit { count: 10, per: Span::from_secs(60), burst: 5 });
        let mut r = Router::new(cfg);
        let mut out = Vec::new();
        for i in 0..10_000u32 {
            let ip = format!("198.51.{}.{}", i / 250, i % 250);
            // 10,000 distinct alerts within 100 seconds.
            r.ingest(&alert("r", Severity::High, &ip, 5), at(i64::from(i / 100)), &mut out);
        }
        // A minute later the limit allows the summary of what it held back.
        r.tick(at(200), &mut out);
        let sent: u64 =
            out.iter().filter(|n| n.kind != Kind::Summary).map(|n| n.alerts.len() as u64).sum();
        let summarized: u64 =
            out.iter().filter(|n| n.kind == Kind::Summary).map(|n| n.suppressed).sum();
        assert_eq!(sent + summarized, 10_000, "every alert is sent or counted");
        // 5 at once, then one per 6 s over the 100 s storm (about 16), then summaries.
        let messages = out.len();
        assert!(messages <= 5 + 17 + 17, "{messages} notifications");
        assert!(out.iter().any(|n| n.kind == Kind::Summary));
        assert_eq!(r.stats().held_back, summarized);
        let s = out
            .iter()
            .find(|n| n.kind == Kind::Summary)
            .map(|n| n.title.clone())
            .unwrap_or_default();
        assert!(s.ends_with("alerts held back by the rate limit of slack"), "{s}");
    }

    #[test]
    fn notification_ids_differ_between_notifications() {
        let mut r = router(vec![route("all", &["a", "b"])]);
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 5), at(0), &mut out);
        r.ingest(&alert("r", Severity::High, "192.0.2.8", 5), at(0), &mut out);
        let ids: std::collections::BTreeSet<&str> = out.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        assert!(out.iter().all(|n| n.id.len() == 16));
    }
}
