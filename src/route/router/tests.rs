//! Tests of the parent module.

use super::*;
use crate::route::matcher::SeverityBound;

/// The matcher tests' alert, its events at [`at`]`(0)`: the dedup window runs on event times,
/// and an alert from 1970 would be forgotten at the first tick of a clock in 2023.
fn alert(rule: &str, severity: Severity, ip: &str, count: u64) -> Alert {
    seen(crate::route::matcher::tests::alert(rule, severity, ip, count), 0, 0)
}

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
        send_resolved: false,
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
fn the_final_flush_sends_pending_alerts_and_no_early_repeat() {
    // Repeats faster than it groups: the old final tick (at the longest group interval
    // past the last alert) sent a "still firing" repeat nobody had waited for.
    let mut rt = route("all", &["s"]);
    rt.group_wait = Span::from_secs(30);
    rt.repeat_interval = Span::from_secs(60);
    let mut r = router(vec![rt]);
    let mut out = Vec::new();
    let a = alert("r", Severity::High, "192.0.2.7", 5);
    r.ingest(&a, at(0), &mut out);
    r.tick(at(30), &mut out);
    assert_eq!(out.len(), 1);
    // Still firing, then a second source, both within the wait of their groups.
    r.ingest(&a, at(40), &mut out);
    r.ingest(&alert("r", Severity::High, "192.0.2.8", 5), at(41), &mut out);
    assert_eq!(out.len(), 1);
    r.flush_pending(at(41), &mut out);
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[1].kind, Kind::New);
    assert_eq!(out[1].group["source.ip"], "192.0.2.8");
}

#[test]
fn a_storm_into_one_wide_group_keeps_one_slot_per_fingerprint() {
    let mut rt = route("all", &["s"]);
    rt.group_by = vec!["rule.id".into()];
    rt.group_wait = Span::from_secs(30);
    let mut r = router(vec![rt]);
    let mut out = Vec::new();
    for round in 0..3 {
        for ip in 0..2000u32 {
            let src = format!("198.51.{}.{}", ip / 256, ip % 256);
            let sev = if round == 2 { Severity::Critical } else { Severity::High };
            r.ingest(&alert("r", sev, &src, 1), at(round), &mut out);
        }
    }
    r.tick(at(30), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].alerts.len(), 2000, "each alert once, at its latest");
    assert_eq!(out[0].kind, Kind::New);
    assert!(out[0].alerts.iter().all(|a| a["severity"] == "critical"));
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

/// An alert whose events span `first..=last` (seconds after [`at`]'s origin).
fn seen(mut a: Alert, first: i64, last: i64) -> Alert {
    a.first_seen = at(first);
    a.last_seen = at(last);
    a
}

#[test]
fn after_the_dedup_window_the_alert_is_new_again() {
    // The window runs on the alerts' event times (issue 14): a burst starting 60 s after the
    // first one's last event is past a 60 s window, whatever the router's clock says.
    let mut cfg = RouterConfig { routes: vec![route("all", &["s"])], ..Default::default() };
    cfg.dedup.insert("r".into(), Span::from_secs(60));
    let mut r = Router::new(cfg);
    let a = alert("r", Severity::High, "192.0.2.7", 5);
    let mut out = Vec::new();
    r.ingest(&a, at(0), &mut out);
    let later = alert("r", Severity::High, "192.0.2.7", 1);
    assert_eq!(r.ingest(&seen(later, 50, 59), at(59), &mut out), Decision::Deduplicated);
    assert_eq!(
        r.ingest(&seen(a, 60, 60), at(60), &mut out),
        Decision::Routed { routes: vec!["all".into()], kind: Kind::New }
    );
}

#[test]
fn issue_14_the_same_burst_seen_again_after_the_clock_moved_on_is_not_new() {
    // A replay of the same file twice: the clock has moved far past the first burst's window
    // (later lines of the first pass) when the burst comes round again.
    let mut cfg = RouterConfig { routes: vec![route("all", &["s"])], ..Default::default() };
    cfg.dedup.insert("r".into(), Span::from_secs(600));
    let mut r = Router::new(cfg);
    let mut out = Vec::new();
    let burst =
        |first, last, count| seen(alert("r", Severity::High, "192.0.2.7", count), first, last);
    let new = Decision::Routed { routes: vec!["all".into()], kind: Kind::New };
    assert_eq!(r.ingest(&burst(0, 10, 5), at(10), &mut out), new);
    assert_eq!(
        r.ingest(&burst(20, 25, 5), at(25), &mut out),
        Decision::Routed { routes: vec!["all".into()], kind: Kind::Update }
    );
    // The rest of the first pass: the clock goes 15 minutes past the window's end.
    r.tick(at(1500), &mut out);
    // The second pass: the same two firings, the same times, on the later clock.
    assert_eq!(r.ingest(&burst(0, 10, 5), at(1500), &mut out), Decision::Deduplicated);
    assert_eq!(r.ingest(&burst(20, 25, 5), at(1500), &mut out), Decision::Deduplicated);
    r.flush_pending(at(1500), &mut out);
    let kinds: Vec<Kind> = out.iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [Kind::New, Kind::Update]);
    // A burst of its own an hour of event time later is new, and so is one an hour earlier.
    assert_eq!(r.ingest(&burst(3600, 3610, 5), at(3610), &mut out), new);
    assert_eq!(r.ingest(&burst(-3600, -3590, 5), at(3610), &mut out), new);
    // The window is forgotten once the clock is one longest window (the default hour) past
    // its end, not before.
    let mut r =
        Router::new(RouterConfig { routes: vec![route("all", &["s"])], ..Default::default() });
    r.ingest(&burst(0, 10, 5), at(10), &mut out);
    r.tick(at(10 + 2 * 3600 - 1), &mut out);
    assert_eq!(r.ingest(&burst(0, 10, 5), at(2 * 3600), &mut out), Decision::Deduplicated);
    r.tick(at(10 + 2 * 3600), &mut out);
    assert_eq!(r.ingest(&burst(0, 10, 5), at(2 * 3600 + 10), &mut out), new);
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
    high.matcher.severity = Some(SeverityBound::parse(">= high").unwrap_or_else(|e| panic!("{e}")));
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
    assert_eq!(d, Decision::Routed { routes: vec!["high".into(), "all".into()], kind: Kind::New });
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
    let s =
        out.iter().find(|n| n.kind == Kind::Summary).map(|n| n.title.clone()).unwrap_or_default();
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

#[test]
fn resolved_notices_go_only_where_the_taking_route_sends_them() {
    let resolved = |ip: &str| {
        let mut a = alert("scan-policy", Severity::High, ip, 1);
        a.detail = Some(serde_json::json!({"change": "resolved"}));
        a
    };
    // The team's route takes the alert and drops it: the catch-all after it gets nothing.
    let mut quiet = route("team", &["team-slack"]);
    quiet.matcher.labels = [("source.ip".to_owned(), "192.0.2.7".to_owned())].into();
    let mut r = router(vec![quiet.clone(), route("all", &["soc"])]);
    let mut out = Vec::new();
    assert_eq!(r.ingest(&resolved("192.0.2.7"), at(0), &mut out), Decision::Unrouted);
    assert!(out.is_empty(), "{out:?}");
    // Another team's resolved notice reaches the catch-all route only when it sends them.
    assert_eq!(r.ingest(&resolved("192.0.2.8"), at(1), &mut out), Decision::Unrouted);
    let mut all = route("all", &["soc"]);
    all.send_resolved = true;
    let mut r = router(vec![quiet.clone(), all]);
    r.ingest(&resolved("192.0.2.8"), at(1), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sink, "soc");
    // With `send_resolved` the team's route sends it, and a firing alert is unaffected.
    quiet.send_resolved = true;
    let mut r = router(vec![quiet]);
    let mut out = Vec::new();
    r.ingest(&resolved("192.0.2.7"), at(0), &mut out);
    r.ingest(&alert("other", Severity::High, "192.0.2.7", 1), at(0), &mut out);
    assert_eq!(
        out.iter().map(|n| n.sink.as_str()).collect::<Vec<_>>(),
        ["team-slack", "team-slack"]
    );
}
