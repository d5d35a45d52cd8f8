//! The router's state as a snapshot: dedup windows, notification groups with their pending and
//! firing alerts, held-back counts, counters and the notification sequence (see
//! [`crate::snapshot`] for the header and the encoding).
//!
//! Not in it, by design:
//! - the config (routes, silences, rate limits, dedup windows per rule): a snapshot is restored
//!   into a router built from the config of the day. Groups are matched to routes by name, and
//!   dropped (and reported) when their route is gone; the schedule is rebuilt from the groups
//!   under the current routes' timings. Run-time silences have their own table.
//!
//! The rate limiters are rebuilt from the config, but their state is kept (governor does not
//! expose it; the router follows it beside each limiter) and put back into the new ones, so a
//! restart does not hand every sink a new burst. What the limiters held back is
//! kept too (the counts and examples of the summary still to send).
//!
//! Body, version 2, one postcard value: the distinct alerts the groups hold (each once, however
//! many groups share it), the dedup windows, the groups (route index and name, group hash and
//! values, pending alerts by number with their kind, firing alerts by fingerprint and number,
//! created, last sent), the held-back summaries per sink (count, examples as JSON text), the
//! counters, the sequence number (which keeps notification ids unique across a restart), and
//! per rate-limited sink its limiter's state. Version 1 (without those) is still read: its
//! limiters start full, as they did then.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DedupState, Group, GroupKey, Held, Router, RouterStats};
use crate::alert::Alert;
use crate::event::Timestamp;
use crate::route::notification::Kind;
use crate::snapshot::{Format, SnapshotError};

/// Snapshot header of the router.
const SNAPSHOT: Format = Format { what: "router", tag: b'r', version: 2 };
/// The version before the limiters' admission times were kept.
const SNAPSHOT_V1: Format = Format { version: 1, ..SNAPSHOT };

/// The snapshot body as written, borrowed from the router; [`BodyIn`] reads it back, field
/// for field.
#[derive(Serialize)]
struct BodyOut<'a> {
    alerts: Vec<&'a Alert>,
    dedup: Vec<(u64, &'a DedupState)>,
    groups: Vec<GroupRecord<&'a str>>,
    /// Sink, count, examples as JSON text.
    held: Vec<(&'a str, u64, Vec<String>)>,
    stats: [u64; 6],
    seq: u64,
    /// Sink, its limiter's state (see `Router::tats`).
    tats: Vec<(&'a str, i64)>,
}

/// The snapshot body as read.
#[derive(Deserialize)]
struct BodyIn {
    alerts: Vec<Alert>,
    dedup: Vec<(u64, DedupState)>,
    groups: Vec<GroupRecord<String>>,
    held: Vec<(String, u64, Vec<String>)>,
    stats: [u64; 6],
    seq: u64,
    tats: Vec<(String, i64)>,
}

/// A version 1 body: a version 2 one without `tats`.
#[derive(Deserialize)]
struct BodyInV1 {
    alerts: Vec<Alert>,
    dedup: Vec<(u64, DedupState)>,
    groups: Vec<GroupRecord<String>>,
    held: Vec<(String, u64, Vec<String>)>,
    stats: [u64; 6],
    seq: u64,
}

impl From<BodyInV1> for BodyIn {
    fn from(b: BodyInV1) -> BodyIn {
        let BodyInV1 { alerts, dedup, groups, held, stats, seq } = b;
        BodyIn { alerts, dedup, groups, held, stats, seq, tats: Vec::new() }
    }
}

/// A notification group; `S` a string (borrowed when written).
#[derive(Serialize, Deserialize)]
struct GroupRecord<S> {
    route: u64,
    route_name: S,
    hash: u64,
    key: Vec<(S, S)>,
    /// Alert number, kind.
    pending: Vec<(u32, Kind)>,
    /// Fingerprint, alert number.
    firing: Vec<(u64, u32)>,
    created: Timestamp,
    last_sent: Option<Timestamp>,
}

/// The distinct alerts of a snapshot, numbered in the order first met.
#[derive(Default)]
struct AlertNumbers<'a> {
    numbers: HashMap<*const Alert, u32>,
    alerts: Vec<&'a Alert>,
}

impl<'a> AlertNumbers<'a> {
    fn of(&mut self, a: &'a Arc<Alert>) -> u32 {
        let alerts = &mut self.alerts;
        *self.numbers.entry(Arc::as_ptr(a)).or_insert_with(|| {
            alerts.push(a);
            // The router holds far fewer than 4 billion alerts.
            u32::try_from(alerts.len() - 1).unwrap_or(u32::MAX)
        })
    }
}

/// What [`Router::restore`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterRestoreReport {
    /// Dedup windows restored.
    pub dedup: usize,
    /// Notification groups restored.
    pub groups: usize,
    /// Groups dropped because their route is no longer configured: route name -> groups.
    pub dropped_groups: BTreeMap<String, usize>,
    /// Held-back summaries dropped because no route names their sink any more: sink -> the
    /// count of alerts they summarized.
    pub dropped_held: BTreeMap<String, u64>,
}

impl fmt::Display for RouterRestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} dedup windows and {} notification groups restored", self.dedup, self.groups)?;
        for (route, n) in &self.dropped_groups {
            write!(f, "; {n} groups of route `{route}`, no longer configured, dropped")?;
        }
        for (sink, n) in &self.dropped_held {
            write!(
                f,
                "; summary of {n} held-back alerts for sink `{sink}`, no longer routed to, dropped"
            )?;
        }
        Ok(())
    }
}

impl Router {
    /// The routing state as a versioned snapshot (see the module docs for what it holds and
    /// what it leaves to the config).
    pub fn snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        // Each distinct alert once: groups of `continue` routes, and a group's pending and
        // firing maps, share them.
        let mut numbers = AlertNumbers::default();
        let mut groups = Vec::with_capacity(self.groups.len());
        for (&(_, hash), g) in &self.groups {
            let route_name = self.config.routes.get(g.route).map_or("", |r| r.name.as_str());
            groups.push(GroupRecord {
                route: g.route as u64,
                route_name,
                hash,
                key: g.key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
                pending: g.pending.iter().map(|(a, k)| (numbers.of(a), *k)).collect(),
                firing: g.firing.iter().map(|(&fp, a)| (fp, numbers.of(a))).collect(),
                created: g.created,
                last_sent: g.last_sent,
            });
        }
        // Sorted, so that equal states make equal snapshots.
        let mut dedup: Vec<(u64, &DedupState)> = self.dedup.iter().map(|(k, v)| (*k, v)).collect();
        dedup.sort_unstable_by_key(|(fp, _)| *fp);
        let held = self
            .held
            .iter()
            .map(|(sink, h)| {
                (sink.as_str(), h.count, h.examples.iter().map(|v| v.to_string()).collect())
            })
            .collect();
        let s = &self.stats;
        let body = BodyOut {
            alerts: numbers.alerts,
            dedup,
            groups,
            held,
            stats: [s.alerts, s.deduplicated, s.silenced, s.unrouted, s.notifications, s.held_back],
            seq: self.seq,
            tats: self.tats.iter().map(|(sink, tat)| (sink.as_str(), *tat)).collect(),
        };
        let mut out = Vec::new();
        SNAPSHOT.write(&body, &mut out)?;
        Ok(out)
    }

    /// Replaces the routing state with a snapshot's. The router keeps its config (routes,
    /// silences, limits): groups whose route is gone, and held-back summaries for sinks no
    /// route names, are dropped and reported. All or nothing: on error the router is
    /// unchanged.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<RouterRestoreReport, SnapshotError> {
        let what = SNAPSHOT.what;
        let body: BodyIn = match SNAPSHOT.read(bytes) {
            Err(SnapshotError::Version { found: 1, .. }) => {
                SNAPSHOT_V1.read::<BodyInV1>(bytes)?.into()
            }
            r => r?,
        };
        let alerts: Vec<Arc<Alert>> = body.alerts.into_iter().map(Arc::new).collect();
        let alert = |i: u32| {
            alerts
                .get(i as usize)
                .cloned()
                .ok_or_else(|| SnapshotError::invalid(what, format!("no alert numbered {i}")))
        };
        let mut report = RouterRestoreReport::default();

        let mut dedup = HashMap::with_capacity_and_hasher(body.dedup.len(), Default::default());
        let mut dedup_ends = BTreeSet::new();
        for (fp, mut state) in body.dedup {
            // The clock the window was opened at is not kept: its end stands in for it.
            state.forget_at = self.dedup_grace.after(state.until);
            dedup_ends.insert((state.forget_at, fp));
            if dedup.insert(fp, state).is_some() {
                return Err(SnapshotError::invalid(what, format!("dedup window {fp:016x} twice")));
            }
        }

        let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
        for g in body.groups {
            let Some(route) = self.route_index(g.route, &g.route_name) else {
                *report.dropped_groups.entry(g.route_name).or_default() += 1;
                continue;
            };
            let mut pending = Vec::with_capacity(g.pending.len());
            let mut pending_at = HashMap::default();
            for (i, kind) in g.pending {
                let a = alert(i)?;
                if pending_at.insert(a.fingerprint, pending.len()).is_some() {
                    return Err(SnapshotError::invalid(what, "an alert pending twice in a group"));
                }
                pending.push((a, kind));
            }
            let firing = g
                .firing
                .into_iter()
                .map(|(fp, i)| Ok((fp, alert(i)?)))
                .collect::<Result<BTreeMap<_, _>, SnapshotError>>()?;
            let group = Group {
                route,
                key: g.key,
                pending,
                pending_at,
                firing,
                created: g.created,
                last_sent: g.last_sent,
                next: None,
            };
            if groups.insert((route, g.hash), group).is_some() {
                return Err(SnapshotError::invalid(what, "a notification group twice"));
            }
        }

        let routed: BTreeSet<&str> =
            self.config.routes.iter().flat_map(|r| r.sinks.iter().map(String::as_str)).collect();
        let mut held = BTreeMap::new();
        for (sink, count, examples) in body.held {
            if !routed.contains(sink.as_str()) {
                *report.dropped_held.entry(sink).or_default() += count;
                continue;
            }
            let examples = examples
                .iter()
                .map(|text| serde_json::from_str(text))
                .collect::<Result<Vec<serde_json::Value>, _>>()
                .map_err(|e| SnapshotError::Decode { what, detail: e.to_string() })?;
            held.insert(sink, Held { count, examples });
        }

        let [alerts_in, deduplicated, silenced, unrouted, notifications, held_back] = body.stats;
        report.dedup = dedup.len();
        report.groups = groups.len();
        self.dedup = dedup;
        self.dedup_ends = dedup_ends;
        self.groups = groups;
        self.held = held;
        self.stats = RouterStats {
            alerts: alerts_in,
            deduplicated,
            silenced,
            unrouted,
            notifications,
            held_back,
        };
        self.seq = body.seq;
        self.tats = body.tats.into_iter().collect();
        self.restore_limiters();
        // The schedule follows from the groups and today's route timings (equal to the saved
        // one when the routes are unchanged).
        self.schedule.clear();
        let keys: Vec<GroupKey> = self.groups.keys().copied().collect();
        for key in keys {
            self.reschedule(&key);
        }
        Ok(report)
    }

    /// The configured route a group saved under route number `i` named `name` belongs to now:
    /// the same number if it still has that name, else the first route of that name.
    fn route_index(&self, i: u64, name: &str) -> Option<usize> {
        let routes = &self.config.routes;
        let same =
            usize::try_from(i).ok().filter(|&i| routes.get(i).is_some_and(|r| r.name == name));
        same.or_else(|| routes.iter().position(|r| r.name == name))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{Decision, RateLimit, Route, RouterConfig};
    use super::*;
    use crate::route::matcher::tests::alert;
    use crate::route::matcher::{AlertMatcher, SeverityBound};
    use crate::route::notification::Notification;
    use crate::rule::Severity;
    use crate::rule::duration::Span;

    const SEC: i64 = 1_000_000_000;

    fn at(s: i64) -> Timestamp {
        Timestamp(1_700_000_000 * SEC + s * SEC)
    }

    fn route(name: &str, sinks: &[&str], group_by: &[&str], wait: i64) -> Route {
        Route {
            name: name.into(),
            matcher: AlertMatcher::default(),
            sinks: sinks.iter().map(|s| (*s).to_owned()).collect(),
            cont: false,
            send_resolved: false,
            group_by: group_by.iter().map(|s| (*s).to_owned()).collect(),
            group_wait: Span::from_secs(wait),
            group_interval: Span::from_secs(120),
            repeat_interval: Span::from_secs(600),
        }
    }

    /// A pager route for high alerts that lets them on to a catch-all route with two sinks.
    fn config() -> RouterConfig {
        let mut pager = route("pager", &["pager"], &["rule.id", "source.ip"], 30);
        pager.matcher.severity = Some(SeverityBound::parse(">= high").unwrap());
        pager.cont = true;
        let all = route("all", &["slack", "mail"], &["rule.id"], 60);
        let mut c = RouterConfig { routes: vec![pager, all], ..RouterConfig::default() };
        c.dedup.insert("r".into(), Span::from_secs(200));
        c
    }

    fn roundtrip(r: &Router, config: RouterConfig) -> (Router, RouterRestoreReport) {
        let bytes = r.snapshot().unwrap();
        let mut back = Router::new(config);
        let report = back.restore(&bytes).unwrap();
        assert_eq!(back.snapshot().unwrap(), bytes, "restored state differs");
        (back, report)
    }

    enum Step {
        Ingest(Box<Alert>, Timestamp),
        Tick(Timestamp),
    }

    /// Forty alerts of two rules from four addresses over ten minutes (new ones, repeats,
    /// severity raises, counts crossing ten, new distinct members, windows expiring), with a
    /// tick after every third.
    fn storm() -> Vec<Step> {
        let mut steps = Vec::new();
        for i in 0..40i64 {
            let rule = if i % 5 == 4 { "r2" } else { "r" };
            let severity =
                [Severity::Medium, Severity::High, Severity::Critical][(i % 7 % 3) as usize];
            let ip = format!("192.0.2.{}", i % 4);
            let mut a = alert(rule, severity, &ip, (i % 6) as u64 + 1);
            a.last_seen = at(i * 15 - i % 3);
            if i % 4 == 1 {
                let values = vec![format!("u{}", i % 9), "root".to_owned()];
                a.detail = Some(serde_json::json!({"distinct": "user.name", "values": values}));
            }
            steps.push(Step::Ingest(Box::new(a), at(i * 15)));
            if i % 3 == 2 {
                steps.push(Step::Tick(at(i * 15 + 7)));
            }
        }
        steps.push(Step::Tick(at(40 * 15 + 3600)));
        steps
    }

    fn play(
        r: &mut Router,
        steps: &[Step],
        decisions: &mut Vec<Decision>,
        out: &mut Vec<Notification>,
    ) {
        for s in steps {
            match s {
                Step::Ingest(a, now) => decisions.push(r.ingest(a, *now, out)),
                Step::Tick(now) => r.tick(*now, out),
            }
        }
    }

    #[test]
    fn a_restored_router_notifies_as_if_never_stopped() {
        let steps = storm();
        let (mut want_d, mut want_n) = (Vec::new(), Vec::new());
        play(&mut Router::new(config()), &steps, &mut want_d, &mut want_n);
        assert!(want_d.contains(&Decision::Deduplicated));
        let kinds: Vec<Kind> = want_n.iter().map(|n| n.kind).collect();
        assert!(kinds.contains(&Kind::Update) && kinds.contains(&Kind::Repeat), "{kinds:?}");
        for cut in 0..=steps.len() {
            let (mut got_d, mut got_n) = (Vec::new(), Vec::new());
            let mut first = Router::new(config());
            play(&mut first, &steps[..cut], &mut got_d, &mut got_n);
            let (mut second, report) = roundtrip(&first, config());
            assert!(report.dropped_groups.is_empty() && report.dropped_held.is_empty());
            assert_eq!(second.stats(), first.stats());
            play(&mut second, &steps[cut..], &mut got_d, &mut got_n);
            assert_eq!(got_d, want_d, "cut at {cut}");
            assert_eq!(got_n, want_n, "cut at {cut}");
        }
    }

    #[test]
    fn the_same_alert_after_a_restore_is_deduplicated_not_new() {
        let mut r = Router::new(config());
        let a = alert("r", Severity::Medium, "192.0.2.7", 5);
        let mut out = Vec::new();
        assert!(matches!(r.ingest(&a, at(0), &mut out), Decision::Routed { kind: Kind::New, .. }));
        r.tick(at(60), &mut out);
        assert_eq!(out.len(), 2, "slack and mail");
        let (mut back, report) = roundtrip(&r, config());
        assert_eq!((report.dedup, report.groups), (1, 1));
        assert_eq!(back.ingest(&a, at(100), &mut out), Decision::Deduplicated);
        back.tick(at(150), &mut out);
        assert_eq!(out.len(), 2, "nothing sent again");
        // Past the 200 s window it is new again, as it would have been without the restart.
        assert!(matches!(
            back.ingest(&a, at(200), &mut out),
            Decision::Routed { kind: Kind::New, .. }
        ));
    }

    #[test]
    fn a_pending_group_is_sent_once_at_its_group_wait() {
        let mut r = Router::new(config());
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::Low, "192.0.2.7", 5), at(0), &mut out);
        r.ingest(&alert("r", Severity::Low, "192.0.2.8", 5), at(10), &mut out);
        assert!(out.is_empty(), "the catch-all route waits 60 s");
        let (mut back, _) = roundtrip(&r, config());
        back.tick(at(59), &mut out);
        assert!(out.is_empty());
        back.tick(at(60), &mut out);
        assert_eq!(out.len(), 2, "one notification to each of the two sinks");
        assert!(out.iter().all(|n| n.kind == Kind::New && n.alerts.len() == 2));
        for s in [61, 120, 600, 5000] {
            back.tick(at(s), &mut out);
        }
        assert_eq!(out.len(), 2, "sent once");
        // The very notifications the router would have sent had it run on, ids included.
        let mut direct = Vec::new();
        r.tick(at(60), &mut direct);
        assert_eq!(direct, out);
    }

    #[test]
    fn groups_of_a_removed_route_are_dropped_and_reported() {
        let mut r = Router::new(config());
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::High, "192.0.2.7", 5), at(0), &mut out);
        let mut c = config();
        c.routes.remove(0);
        let bytes = r.snapshot().unwrap();
        let mut back = Router::new(c);
        let report = back.restore(&bytes).unwrap();
        assert_eq!(report.dropped_groups, BTreeMap::from([("pager".to_owned(), 1)]));
        assert_eq!(report.groups, 1);
        assert!(report.to_string().contains("1 groups of route `pager`"), "{report}");
        back.tick(at(60), &mut out);
        assert_eq!(out.iter().map(|n| n.sink.as_str()).collect::<Vec<_>>(), ["slack", "mail"]);
    }

    #[test]
    fn groups_follow_their_route_by_name_when_routes_move() {
        let mut r = Router::new(config());
        let mut out = Vec::new();
        r.ingest(&alert("r", Severity::Low, "192.0.2.7", 5), at(0), &mut out);
        let mut c = config();
        c.routes.reverse();
        let bytes = r.snapshot().unwrap();
        let mut back = Router::new(c);
        assert_eq!(back.restore(&bytes).unwrap().groups, 1);
        back.tick(at(60), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|n| n.route == "all"));
    }

    #[test]
    fn a_restart_does_not_give_a_rate_limited_sink_a_new_burst() {
        // The storm through sinks with limits: whatever the cut, the restored router lets
        // through and holds back exactly what one never stopped does.
        let mut c = config();
        c.rate_limits
            .insert("slack".into(), RateLimit { count: 2, per: Span::from_secs(600), burst: 2 });
        c.rate_limits
            .insert("pager".into(), RateLimit { count: 1, per: Span::from_secs(300), burst: 1 });
        let steps = storm();
        let (mut want_d, mut want_n) = (Vec::new(), Vec::new());
        let mut never_stopped = Router::new(c.clone());
        play(&mut never_stopped, &steps, &mut want_d, &mut want_n);
        assert!(never_stopped.stats().held_back > 0, "the limits must hold some back");
        for cut in 0..=steps.len() {
            let (mut got_d, mut got_n) = (Vec::new(), Vec::new());
            let mut first = Router::new(c.clone());
            play(&mut first, &steps[..cut], &mut got_d, &mut got_n);
            let (mut second, _) = roundtrip(&first, c.clone());
            play(&mut second, &steps[cut..], &mut got_d, &mut got_n);
            assert_eq!(got_n, want_n, "cut at {cut}");
            assert_eq!(second.stats(), never_stopped.stats(), "cut at {cut}");
        }
    }

    #[test]
    fn a_reload_keeps_a_limits_state() {
        let mut c = config();
        c.rate_limits
            .insert("mail".into(), RateLimit { count: 1, per: Span::from_secs(3600), burst: 1 });
        let mut r = Router::new(c.clone());
        let mut out = Vec::new();
        let mails = |out: &[Notification]| {
            out.iter().filter(|n| n.sink == "mail" && n.kind != Kind::Summary).count()
        };
        r.ingest(&alert("r2", Severity::Low, "192.0.2.1", 1), at(0), &mut out);
        r.tick(at(60), &mut out);
        assert_eq!(mails(&out), 1);
        r.reconfigure(c, at(100), &mut out);
        r.ingest(&alert("r2", Severity::Low, "192.0.2.2", 1), at(200), &mut out);
        r.tick(at(300), &mut out);
        assert_eq!(mails(&out), 1, "a reload gave mail a new burst");
        assert_eq!(r.stats().held_back, 1);
    }

    #[test]
    fn a_version_1_snapshot_is_still_read() {
        let mut bytes = Vec::new();
        let body = (
            Vec::<Alert>::new(),
            Vec::<(u64, DedupState)>::new(),
            Vec::<GroupRecord<String>>::new(),
            Vec::<(String, u64, Vec<String>)>::new(),
            [3u64, 1, 0, 0, 2, 0],
            41u64,
        );
        SNAPSHOT_V1.write(&body, &mut bytes).unwrap();
        let mut r = Router::new(config());
        r.restore(&bytes).unwrap();
        assert_eq!((r.stats().alerts, r.stats().notifications, r.seq), (3, 2, 41));
        // And a version from the future is refused, not guessed at.
        bytes[3] = 9;
        assert!(matches!(
            Router::new(config()).restore(&bytes),
            Err(SnapshotError::Version { found: 9, .. })
        ));
    }

    #[test]
    fn held_back_counts_survive_and_sinks_no_longer_routed_are_reported() {
        let mut c = config();
        c.rate_limits
            .insert("mail".into(), RateLimit { count: 1, per: Span::from_secs(3600), burst: 1 });
        let mut r = Router::new(c.clone());
        let mut out = Vec::new();
        for i in 0..3 {
            r.ingest(&alert("r2", Severity::Low, &format!("192.0.2.{i}"), 1), at(0), &mut out);
            r.tick(at(60 + i * 120), &mut out);
        }
        assert_eq!(r.stats().held_back, 2);
        let (mut back, _) = roundtrip(&r, c.clone());
        back.flush_held(at(400), &mut out);
        let summary = out.last().unwrap();
        assert_eq!(
            (summary.kind, summary.sink.as_str(), summary.suppressed),
            (Kind::Summary, "mail", 2)
        );
        assert_eq!(summary.alerts.len(), 2);
        // Mail taken out of every route: the summary has nowhere to go.
        c.routes[1].sinks = vec!["slack".into()];
        let bytes = r.snapshot().unwrap();
        let report = Router::new(c).restore(&bytes).unwrap();
        assert_eq!(report.dropped_held, BTreeMap::from([("mail".to_owned(), 2)]));
    }

    #[test]
    fn a_damaged_router_snapshot_is_an_error_and_changes_nothing() {
        let steps = storm();
        let mut r = Router::new(config());
        play(&mut r, &steps[..12], &mut Vec::new(), &mut Vec::new());
        let bytes = r.snapshot().unwrap();
        let fresh = Router::new(config()).snapshot().unwrap();
        let try_one = |damaged: &[u8]| {
            let mut back = Router::new(config());
            match back.restore(damaged) {
                Ok(_) => play(&mut back, &steps[12..], &mut Vec::new(), &mut Vec::new()),
                Err(_) => {
                    assert_eq!(
                        back.snapshot().unwrap(),
                        fresh,
                        "a failed restore changed the state"
                    );
                }
            }
        };
        for len in 0..bytes.len() {
            try_one(&bytes[..len]);
        }
        // Every byte of the bookkeeping, a sample of the alerts' bytes.
        for i in (0..bytes.len()).filter(|i| i % 7 == 0 || *i < 64 || bytes.len() - i < 400) {
            for x in [0x01, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= x;
                try_one(&damaged);
            }
        }
        proptest::proptest!(|(junk in proptest::collection::vec(proptest::num::u8::ANY, 0..300))| {
            try_one(&junk);
            let mut headed = bytes[..4].to_vec();
            headed.extend_from_slice(&junk);
            try_one(&headed);
        });
    }
}
