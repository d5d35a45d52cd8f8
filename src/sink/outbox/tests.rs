//! Tests of the parent module.

use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::route::notification::Kind;
use crate::rule::Severity;
use redb::{Database, ReadableDatabase as _};

fn note(id: &str, sink: &str) -> Notification {
    Notification {
        id: id.to_owned(),
        sink: sink.to_owned(),
        route: "default".to_owned(),
        kind: Kind::New,
        group: Default::default(),
        severity: Severity::High,
        title: format!("alert {id}"),
        alerts: vec![serde_json::json!({"rule": "ssh-brute-force", "count": 5})],
        suppressed: 0,
        created: "2026-11-23T09:00:00Z".to_owned(),
    }
}

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
        send_timeout: Duration::from_secs(1),
    }
}

fn open() -> (tempfile::TempDir, Outbox) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path().join("state.redb")).unwrap();
    (dir, outbox)
}

const SEC: i64 = 1_000_000_000;

#[test]
fn put_due_delivered() {
    let (_dir, o) = open();
    assert!(o.put(&note("b", "slack"), 20).unwrap());
    assert!(o.put(&note("a", "slack"), 10).unwrap());
    assert!(o.put(&note("c", "email"), 30).unwrap());
    assert_eq!(o.pending_len().unwrap(), 3);
    let ids = |v: Vec<Pending>| v.into_iter().map(|p| p.notification.id).collect::<Vec<_>>();
    assert_eq!(ids(o.due(25, 10).unwrap()), ["a", "b"]);
    assert_eq!(ids(o.due(100, 10).unwrap()), ["a", "b", "c"]);
    assert_eq!(ids(o.due(100, 1).unwrap()), ["a"]);
    assert_eq!(ids(o.due(5, 10).unwrap()), Vec::<String>::new());
    assert_eq!(ids(o.due_for("slack", 100, 10).unwrap()), ["a", "b"]);
    assert_eq!(ids(o.due_for("email", 100, 10).unwrap()), ["c"]);
    assert_eq!(o.next_due_for("email").unwrap(), Some(30));
    assert_eq!(o.next_due_for("webhook").unwrap(), None);
    let first = &o.due(100, 1).unwrap()[0];
    assert_eq!(first.notification, note("a", "slack"));
    assert_eq!((first.attempts, first.next_attempt_ns, first.last_error.clone()), (0, 10, None));

    assert!(o.delivered("a").unwrap());
    assert!(!o.delivered("a").unwrap());
    assert_eq!(ids(o.due(100, 10).unwrap()), ["b", "c"]);
    assert_eq!(ids(o.due_for("slack", 100, 10).unwrap()), ["b"]);
    assert_eq!(o.pending_len().unwrap(), 2);
}

#[test]
fn put_same_id_twice_queues_once() {
    let (_dir, o) = open();
    assert!(o.put(&note("a", "slack"), 10).unwrap());
    assert!(!o.put(&note("a", "slack"), 50).unwrap());
    assert_eq!(o.pending_len().unwrap(), 1);
    assert_eq!(o.due(100, 10).unwrap()[0].next_attempt_ns, 10);
    // A dead letter with that id also blocks a second copy.
    o.failed("a", 20, &SinkError::Permanent("400".into()), &policy(3)).unwrap();
    assert!(!o.put(&note("a", "slack"), 60).unwrap());
    assert_eq!(o.pending_len().unwrap(), 0);
}

#[test]
fn backoff_doubles_within_equal_jitter_bounds() {
    let (_dir, o) = open();
    let p = policy(20);
    o.put(&note("a", "slack"), 0).unwrap();
    let mut now = 0;
    for failures in 1..=10u32 {
        let d = o.failed("a", now, &SinkError::Retriable("503".into()), &p).unwrap();
        let Disposition::Retry { at_ns } = d else { panic!("{d:?}") };
        // base 1 s doubling: 1, 2, 4, ... 32, then capped at max = 60 s.
        let ceiling = (SEC << (failures - 1)).min(60 * SEC);
        assert_eq!(p.ceiling(failures).as_nanos() as i64, ceiling);
        let delay = at_ns - now;
        assert!(delay >= ceiling / 2 && delay <= ceiling, "{failures}: {delay} vs {ceiling}");
        let item = &o.due(at_ns, 10).unwrap()[0];
        assert_eq!(item.attempts, failures);
        assert_eq!(item.next_attempt_ns, at_ns);
        assert_eq!(item.last_error.as_deref(), Some("temporary failure: 503"));
        assert!(o.due(at_ns - 1, 10).unwrap().is_empty());
        now = at_ns;
    }
    // Huge failure counts saturate instead of overflowing.
    assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(60));
}

#[test]
fn permanent_failure_goes_dead_at_once() {
    let (_dir, o) = open();
    o.put(&note("a", "slack"), 0).unwrap();
    let d = o.failed("a", 5, &SinkError::Permanent("400 bad request".into()), &policy(5));
    assert_eq!(d.unwrap(), Disposition::Dead);
    assert_eq!(o.pending_len().unwrap(), 0);
    assert!(o.due(i64::MAX, 10).unwrap().is_empty());
    let dead = o.dead_list().unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].notification.id, "a");
    assert_eq!(dead[0].attempts, 1);
    assert_eq!(dead[0].last_error, "permanent failure: 400 bad request");
    assert_eq!(dead[0].dead_at_ns, 5);
    assert!(matches!(
        o.failed("a", 6, &SinkError::Permanent("x".into()), &policy(5)),
        Err(OutboxError::NotPending { .. })
    ));
}

#[test]
fn spent_retry_budget_goes_dead() {
    let (_dir, o) = open();
    o.put(&note("a", "slack"), 0).unwrap();
    let e = SinkError::Retriable("timeout".into());
    let p = policy(3);
    assert!(matches!(o.failed("a", 0, &e, &p).unwrap(), Disposition::Retry { .. }));
    assert!(matches!(o.failed("a", 0, &e, &p).unwrap(), Disposition::Retry { .. }));
    assert_eq!(o.failed("a", 0, &e, &p).unwrap(), Disposition::Dead);
    assert_eq!(o.pending_len().unwrap(), 0);
    let dead = o.dead_list().unwrap();
    assert_eq!((dead[0].attempts, dead[0].last_error.as_str()), (3, "temporary failure: timeout"));
}

#[test]
fn retry_dead_requeues_with_attempts_reset() {
    let (_dir, o) = open();
    for id in ["a", "b", "c"] {
        o.put(&note(id, "slack"), 100).unwrap();
        o.failed(id, 100, &SinkError::Permanent("403".into()), &policy(3)).unwrap();
    }
    assert_eq!(o.retry_dead(Some("b")).unwrap(), 1);
    assert_eq!(o.retry_dead(Some("b")).unwrap(), 0);
    assert_eq!(o.retry_dead(Some("nope")).unwrap(), 0);
    let due = o.due(0, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].notification.id.as_str(), due[0].attempts), ("b", 0));
    assert_eq!(due[0].last_error.as_deref(), Some("permanent failure: 403"));
    assert_eq!(o.dead_list().unwrap().len(), 2);
    assert_eq!(o.retry_dead(None).unwrap(), 2);
    assert!(o.dead_list().unwrap().is_empty());
    assert_eq!(o.pending_len().unwrap(), 3);
    assert_eq!(o.due_for("slack", 0, 10).unwrap().len(), 3);
}

#[test]
fn pending_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let o = Outbox::open(&path).unwrap();
        o.put(&note("a", "slack"), 10).unwrap();
        o.put(&note("b", "slack"), 20).unwrap();
        o.put(&note("c", "email"), 30).unwrap();
        o.failed("b", 20, &SinkError::Retriable("503".into()), &policy(5)).unwrap();
        o.failed("c", 30, &SinkError::Permanent("550".into()), &policy(5)).unwrap();
    }
    let o = Outbox::open(&path).unwrap();
    assert_eq!(o.pending_len().unwrap(), 2);
    let all = o.pending_list().unwrap();
    assert_eq!(all[0].notification, note("a", "slack"));
    assert_eq!((all[1].notification.id.as_str(), all[1].attempts), ("b", 1));
    assert_eq!(o.dead_list().unwrap()[0].notification.id, "c");
}

#[test]
fn errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("state.redb");
    let e = Outbox::open(&path).unwrap_err();
    assert_eq!(e.kind(), "open");
    let text = e.to_string();
    assert!(text.contains("missing-dir/state.redb"), "{text}");
    assert!(text.contains("No such file or directory") && !text.contains("damaged"), "{text}");
}

fn note_sev(id: &str, sink: &str, severity: Severity) -> Notification {
    Notification { severity, ..note(id, sink) }
}

fn ids(v: Vec<Pending>) -> Vec<String> {
    v.into_iter().map(|p| p.notification.id).collect()
}

#[test]
fn due_for_is_most_severe_first_then_earliest_due() {
    let (_dir, o) = open();
    o.put(&note_sev("low-1", "hook", Severity::Low), 10).unwrap();
    o.put(&note_sev("info-1", "hook", Severity::Info), 11).unwrap();
    o.put(&note_sev("low-2", "hook", Severity::Low), 12).unwrap();
    o.put(&note_sev("crit-late", "hook", Severity::Critical), 30).unwrap();
    o.put(&note_sev("high-1", "hook", Severity::High), 13).unwrap();
    o.put(&note_sev("crit-1", "hook", Severity::Critical), 14).unwrap();
    o.put(&note_sev("med-1", "hook", Severity::Medium), 15).unwrap();
    o.put(&note_sev("crit-other-sink", "mail", Severity::Critical), 1).unwrap();
    // crit-late is not due at 20 and waits, however severe.
    assert_eq!(
        ids(o.due_for("hook", 20, 10).unwrap()),
        ["crit-1", "high-1", "med-1", "low-1", "low-2", "info-1"]
    );
    assert_eq!(
        ids(o.due_for("hook", 30, 10).unwrap()),
        ["crit-1", "crit-late", "high-1", "med-1", "low-1", "low-2", "info-1"]
    );
    assert_eq!(ids(o.due_for("hook", 30, 3).unwrap()), ["crit-1", "crit-late", "high-1"]);
    assert_eq!(o.next_due_for("hook").unwrap(), Some(10));
    assert_eq!(o.pending_for("hook").unwrap(), 7);
    // A retried critical keeps its rank but waits for its new time.
    o.failed("crit-1", 20, &SinkError::Retriable("503".into()), &policy(5)).unwrap();
    let all = o.due(i64::MAX, 100).unwrap();
    let at = all.iter().find(|p| p.notification.id == "crit-1").unwrap().next_attempt_ns;
    assert!(at > 20);
    assert_eq!(ids(o.due_for("hook", at - 1, 2).unwrap()), ["crit-late", "high-1"]);
    // Both critical and due: the one due earlier first.
    assert_eq!(ids(o.due_for("hook", at, 2).unwrap()), ["crit-late", "crit-1"]);
    assert!(o.delivered("crit-late").unwrap());
    assert_eq!(ids(o.due_for("hook", at - 1, 1).unwrap()), ["high-1"]);
    assert_eq!(o.pending_for("hook").unwrap(), 6);
    assert_eq!(o.pending_for("mail").unwrap(), 1);
}

#[test]
fn a_critical_after_a_thousand_lows_is_next() {
    let (_dir, o) = open();
    let lows: Vec<Notification> =
        (0..1000).map(|i| note_sev(&format!("low-{i:04}"), "hook", Severity::Low)).collect();
    o.put_all(&lows, 100).unwrap();
    o.put(&note_sev("crit", "hook", Severity::Critical), 200).unwrap();
    assert_eq!(ids(o.due_for("hook", 300, 3).unwrap()), ["crit", "low-0000", "low-0001"]);
}

#[test]
fn poll_skips_what_is_in_flight_and_says_what_is_due_next() {
    let (_dir, o) = open();
    o.put(&note_sev("a", "hook", Severity::High), 10).unwrap();
    o.put(&note_sev("b", "hook", Severity::High), 20).unwrap();
    o.put(&note_sev("c", "hook", Severity::Low), 15).unwrap();
    o.put(&note_sev("later", "hook", Severity::Critical), 500).unwrap();
    let skip: HashSet<String> = ["a".to_owned()].into();
    let p = o.poll("hook", 100, 10, &skip).unwrap();
    assert_eq!(ids(p.due), ["b", "c"]);
    assert_eq!(p.next_ns, Some(500));
    // Cut short by the limit: the next one is due already.
    let p = o.poll("hook", 100, 1, &skip).unwrap();
    assert_eq!((ids(p.due), p.next_ns), (vec!["b".to_owned()], Some(15)));
    // Everything due in flight: nothing to send, and the next time is the one not in flight.
    let skip: HashSet<String> = ["a", "b", "c"].map(str::to_owned).into();
    let p = o.poll("hook", 100, 10, &skip).unwrap();
    assert_eq!((p.due.len(), p.next_ns), (0, Some(500)));
    let skip: HashSet<String> = ["a", "b", "c", "later"].map(str::to_owned).into();
    assert_eq!(o.poll("hook", 100, 10, &skip).unwrap(), Poll::default());
    assert_eq!(o.next_due_for("hook").unwrap(), Some(10));
}

/// Writes a state file as the version before severity ranks did: the same records, indexed
/// by `outbox_by_sink` (sink, next attempt ns, id) and `outbox_by_time`.
pub(super) fn write_old_layout(path: &Path, records: &[(Notification, u32, i64)]) {
    const OLD_BY_SINK: TableDefinition<(&str, i64, &str), ()> =
        TableDefinition::new("outbox_by_sink");
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut pending = txn.open_table(PENDING).unwrap();
        let mut by_time = txn.open_table(BY_TIME).unwrap();
        let mut by_sink = txn.open_table(OLD_BY_SINK).unwrap();
        txn.open_table(DEAD).unwrap();
        for (n, attempts, at) in records {
            // The record as version 1 wrote it, spelled out rather than through `Record`, so a
            // change there cannot hide a break here.
            let json = serde_json::json!({
                "version": "1",
                "notification": n,
                "attempts": attempts,
                "next_attempt_ns": at,
                "last_error": if *attempts > 0 { Some("temporary failure: 503") } else { None },
                "dead_at_ns": null,
                "queued_ns": 5,
            });
            pending.insert(n.id.as_str(), serde_json::to_vec(&json).unwrap().as_slice()).unwrap();
            by_time.insert((*at, n.id.as_str()), ()).unwrap();
            by_sink.insert((n.sink.as_str(), *at, n.id.as_str()), ()).unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn a_file_in_the_old_layout_is_migrated_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    write_old_layout(
        &path,
        &[
            (note_sev("low-old", "hook", Severity::Low), 0, 10),
            (note_sev("crit-new", "hook", Severity::Critical), 0, 30),
            (note_sev("high-retried", "hook", Severity::High), 2, 20),
            (note_sev("mail-1", "mail", Severity::Info), 0, 5),
        ],
    );
    let o = Outbox::open(&path).unwrap();
    assert_eq!(o.pending_len().unwrap(), 4);
    assert_eq!(ids(o.due_for("hook", 100, 10).unwrap()), ["crit-new", "high-retried", "low-old"]);
    assert_eq!(ids(o.due_for("hook", 25, 10).unwrap()), ["high-retried", "low-old"]);
    assert_eq!(ids(o.due_for("mail", 100, 10).unwrap()), ["mail-1"]);
    let retried = &o.due_for("hook", 25, 1).unwrap()[0];
    assert_eq!((retried.attempts, retried.queued_ns), (2, 5));
    assert_eq!(retried.last_error.as_deref(), Some("temporary failure: 503"));
    drop(o);
    // The old index is gone.
    let names: Vec<String> = {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        txn.list_tables().unwrap().map(|t| redb::TableHandle::name(&t).to_owned()).collect()
    };
    assert!(names.contains(&"outbox_by_sink_rank".to_owned()), "{names:?}");
    assert!(!names.contains(&"outbox_by_sink".to_owned()), "{names:?}");
    // What the old version queued is delivered and failed like the rest.
    let o = Outbox::open(&path).unwrap();
    assert!(o.delivered("crit-new").unwrap());
    o.failed("low-old", 100, &SinkError::Permanent("400".into()), &policy(5)).unwrap();
    assert_eq!(ids(o.due_for("hook", i64::MAX, 10).unwrap()), ["high-retried"]);
    assert_eq!(o.pending_for("hook").unwrap(), 1);
    drop(o);
    // Opening again changes nothing.
    let o = Outbox::open(&path).unwrap();
    assert_eq!(ids(o.due_for("hook", i64::MAX, 10).unwrap()), ["high-retried"]);
    assert_eq!(o.dead_list().unwrap()[0].notification.id, "low-old");
}
