//! Silences set through the API, as the daemon guards and records them.
//!
//! - A silence that matches every alert (no rules, tags or labels, and no severity bound that
//!   leaves one out), or that ends more than [`MAX_SILENCE_DAYS`] days from now, is refused
//!   unless the request says `force`: the first mutes the whole daemon, the second is a muted
//!   rule, which belongs in the rules or routes where a review sees it.
//! - Every silence created or ended becomes an event and an info alert
//!   ([`SILENCE_AUDIT_RULE`]) saying who (the request's `created_by`, or `by` when ending),
//!   from where (the API peer's address), what it matches, until when and why. The alert is
//!   routed like any other, but no silence applies to it (the router skips that rule id), so
//!   a silence cannot hide its own creation.

use std::net::SocketAddr;

use serde_json::json;

use crate::alert::{Alert, fingerprint};
use crate::event::{Category, CompactString, Event, EventType, Outcome, Sym, Timestamp};
use crate::route::matcher::AlertMatcher;
use crate::route::router::{SILENCE_AUDIT_RULE, Silence};
use crate::rule::Severity;
use crate::state::silences::SilenceRecord;

/// The longest silence set without `force`, from now to its end.
pub const MAX_SILENCE_DAYS: i64 = 365;
/// The tag of the daemon's audit alerts.
pub const AUDIT_TAG: &str = "logwarden.audit";

const ALL_SEVERITIES: [Severity; 5] =
    [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

/// Whether `m` matches every alert there can be. Labels are exact values, so any label
/// narrows; a severity bound narrows only if it leaves some severity out (`>= info` does not).
pub fn matches_everything(m: &AlertMatcher) -> bool {
    m.rules.is_empty()
        && m.tags.is_empty()
        && m.labels.is_empty()
        && m.severity.is_none_or(|b| ALL_SEVERITIES.iter().all(|s| b.admits(*s)))
}

/// Refuses, with what to do instead, a silence that mutes everything or lasts too long,
/// unless `force`.
pub fn check(s: &Silence, now: Timestamp, force: bool) -> Result<(), String> {
    if force {
        return Ok(());
    }
    if matches_everything(&s.matcher) {
        return Err("it matches every alert (no rules, tags or labels, and no severity bound \
                    that leaves one out) and would mute the whole daemon: narrow the match, or \
                    send `\"force\": true` (CLI: --force) if that is meant"
            .into());
    }
    let limit = now.0.saturating_add(MAX_SILENCE_DAYS * 86_400 * 1_000_000_000);
    if s.ends.0 > limit {
        return Err(format!(
            "it ends more than {MAX_SILENCE_DAYS} days from now: a silence that long is a \
             muted rule (change the rule or the routes instead), or send `\"force\": true` \
             (CLI: --force)"
        ));
    }
    Ok(())
}

/// What happened to a silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Set (or replaced) through the API.
    Created,
    /// Ended through the API.
    Ended,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Ended => "ended",
        }
    }
}

/// The alert (with its event as the sample) recording that `record` was created or ended
/// at `at` by `by` from `from`.
pub fn audit_alert(
    change: Change,
    record: &SilenceRecord,
    by: &str,
    from: Option<SocketAddr>,
    at: Timestamp,
) -> Alert {
    let verb = change.as_str();
    let mut when = Vec::with_capacity(32);
    at.write_rfc3339(&mut when);
    let when = String::from_utf8_lossy(&when).into_owned();
    let who = if by.is_empty() { "an unnamed client" } else { by };
    let whence = from.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
    let matcher = serde_json::to_value(&record.matcher).unwrap_or_default();
    let matches = if matcher.as_object().is_some_and(|m| m.is_empty()) {
        "every alert".to_owned()
    } else {
        matcher.to_string()
    };
    let title = match change {
        Change::Created => format!(
            "Silence `{}` created by {who} from {whence}: {matches} until {}{}",
            record.id,
            record.ends,
            if record.force { " (forced)" } else { "" }
        ),
        Change::Ended => {
            format!("Silence `{}` ended by {who} from {whence} (it matched {matches})", record.id)
        }
    };
    // The time is part of the group: each change is its own alert, never deduplicated
    // against an earlier change of the same silence.
    let group = vec![
        ("silence.id".to_owned(), record.id.clone()),
        ("silence.change".to_owned(), verb.to_owned()),
        ("silence.at".to_owned(), when),
    ];
    let event = Event {
        timestamp: at,
        created: Some(at),
        dataset: Some(Sym::from("logwarden")),
        category: Category::CONFIGURATION,
        kind: match change {
            Change::Created => EventType::CREATION,
            Change::Ended => EventType::DELETION,
        },
        action: Some(Sym::from(format!("silence-{verb}"))),
        outcome: Some(Outcome::Success),
        user_name: (!by.is_empty()).then(|| CompactString::from(by)),
        source_ip: from.map(|a| a.ip()),
        source_port: from.map(|a| a.port()),
        message: Some(title.clone().into_boxed_str()),
        ..Event::default()
    };
    Alert {
        rule_id: SILENCE_AUDIT_RULE.into(),
        rule_title: "Silence changed".into(),
        severity: Severity::Info,
        tags: vec![AUDIT_TAG.into()],
        title,
        fingerprint: fingerprint(SILENCE_AUDIT_RULE, &group),
        group,
        count: 1,
        first_seen: at,
        last_seen: at,
        events: Vec::new(),
        sample: vec![event],
        detail: Some(json!({
            "action": verb,
            "by": by,
            "from": from.map(|a| a.to_string()),
            "silence": record,
        })),
        explain: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::route::matcher::SeverityBound;
    use crate::route::router::{Decision, Router, RouterConfig};
    use crate::state::silences::MatchRecord;

    const SEC: i64 = 1_000_000_000;

    fn silence(matcher: AlertMatcher, ends: Timestamp) -> Silence {
        Silence {
            id: "s".into(),
            matcher,
            starts: Timestamp(0),
            ends,
            created_by: "ops".into(),
            comment: String::new(),
        }
    }

    fn severity(b: &str) -> AlertMatcher {
        AlertMatcher { severity: Some(SeverityBound::parse(b).unwrap()), ..Default::default() }
    }

    #[test]
    fn only_matchers_that_leave_no_alert_out_match_everything() {
        assert!(matches_everything(&AlertMatcher::default()));
        assert!(matches_everything(&severity(">= info")));
        assert!(matches_everything(&severity("<= critical")));
        assert!(!matches_everything(&severity("> info")));
        assert!(!matches_everything(&severity("= critical")));
        let label = AlertMatcher {
            labels: [("user.name".to_owned(), "mallory".to_owned())].into(),
            ..Default::default()
        };
        assert!(!matches_everything(&label));
        let rule = AlertMatcher { rules: vec!["ssh-bruteforce".into()], ..Default::default() };
        assert!(!matches_everything(&rule));
        let tag = AlertMatcher { tags: vec!["attack.t1110".into()], ..Default::default() };
        assert!(!matches_everything(&tag));
    }

    #[test]
    fn a_mute_all_or_a_year_long_silence_needs_force() {
        let now = Timestamp(1_000 * SEC);
        let day = 86_400 * SEC;
        let soon = Timestamp(now.0 + day);
        let e = check(&silence(AlertMatcher::default(), soon), now, false).unwrap_err();
        assert!(e.contains("matches every alert") && e.contains("force"), "{e}");
        assert_eq!(check(&silence(AlertMatcher::default(), soon), now, true), Ok(()));
        let narrow = severity("< high");
        let year = Timestamp(now.0 + MAX_SILENCE_DAYS * day);
        assert_eq!(check(&silence(narrow.clone(), year), now, false), Ok(()));
        let longer = Timestamp(year.0 + SEC);
        let e = check(&silence(narrow.clone(), longer), now, false).unwrap_err();
        assert!(e.contains("more than 365 days"), "{e}");
        assert_eq!(check(&silence(narrow, longer), now, true), Ok(()));
    }

    fn record(matcher: MatchRecord) -> SilenceRecord {
        SilenceRecord {
            id: "maint".into(),
            matcher,
            starts: None,
            ends: "2099-01-01T00:00:00Z".into(),
            created_by: "alice".into(),
            comment: "upgrade".into(),
            force: true,
        }
    }

    #[test]
    fn the_audit_alert_says_who_from_where_what_and_until_when() {
        let from: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let at = Timestamp(1_700_000_000 * SEC);
        let a =
            audit_alert(Change::Created, &record(MatchRecord::default()), "alice", Some(from), at);
        assert_eq!(a.rule_id, SILENCE_AUDIT_RULE);
        assert_eq!(a.severity, Severity::Info);
        assert_eq!(
            a.title,
            "Silence `maint` created by alice from 127.0.0.1:40000: every alert until \
             2099-01-01T00:00:00Z (forced)"
        );
        let d = a.detail.as_ref().unwrap();
        assert_eq!(d["action"], "created");
        assert_eq!(d["by"], "alice");
        assert_eq!(d["from"], "127.0.0.1:40000");
        assert_eq!(d["silence"]["comment"], "upgrade");
        assert_eq!(d["silence"]["force"], true);
        let e = &a.sample[0];
        assert_eq!(e.user_name.as_deref(), Some("alice"));
        assert_eq!(e.source_ip, Some(from.ip()));
        assert_eq!(e.action.as_ref().map(|s| s.as_str()), Some("silence-created"));
        assert!(!a.is_resolved());
        let m = MatchRecord {
            labels: [("user.name".into(), "bob".into())].into(),
            ..Default::default()
        };
        let ended = audit_alert(Change::Ended, &record(m), "", None, at);
        assert_eq!(
            ended.title,
            "Silence `maint` ended by an unnamed client from an unknown address (it matched \
             {\"labels\":{\"user.name\":\"bob\"}})"
        );
        assert_ne!(ended.fingerprint, a.fingerprint);
    }

    #[test]
    fn no_silence_mutes_the_record_of_a_silence() {
        let mut r = Router::new(RouterConfig::default());
        let s = silence(AlertMatcher::default(), Timestamp(i64::MAX));
        r.add_silence(s);
        let at = Timestamp(10 * SEC);
        let mut out = Vec::new();
        let rec = record(MatchRecord::default());
        let audit = audit_alert(Change::Created, &rec, "alice", None, at);
        assert_eq!(r.ingest(&audit, at, &mut out), Decision::Unrouted);
        // Anything else is silenced by it.
        let mut other = audit.clone();
        other.rule_id = "ssh-bruteforce".into();
        assert_eq!(r.ingest(&other, at, &mut out), Decision::Silenced("s".into()));
        // Two changes a second apart are two alerts, not a repeat.
        let later = audit_alert(Change::Created, &rec, "alice", None, Timestamp(at.0 + SEC));
        assert_ne!(later.fingerprint, audit.fingerprint);
    }
}
