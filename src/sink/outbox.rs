//! The outbox: notifications persisted before delivery, retried with backoff, dead-lettered when
//! the retry budget is spent, and removed only once a sink accepted them.
//!
//! Tables in one redb file:
//!
//! | table | key | value |
//! |---|---|---|
//! | `outbox_pending` | notification id | record (JSON, tagged `version`) |
//! | `outbox_dead` | notification id | record |
//! | `outbox_by_time` | (next attempt ns, id) | () |
//! | `outbox_by_sink_rank` | (sink, severity rank, next attempt ns, id) | () |
//!
//! The two index tables exist so that finding what is due is a range scan, not a walk over every
//! pending record: `by_sink_rank` for the per-sink delivery tasks, `by_time` for
//! [`Outbox::due`]. Every write touches the record and its index entries in one transaction, so
//! they never disagree. The rank (0 for critical to 4 for info) sits before the time so that a
//! sink's queue is read most severe first, and within a severity earliest due first: a critical
//! alert queued behind a storm of low ones goes out at the next free slot, not after the storm.
//! Files written before the rank existed have `outbox_by_sink` (sink, next attempt ns, id)
//! instead; opening one rebuilds the ranked index from the pending records and drops the old
//! one, in one transaction.
//!
//! The API is synchronous: each call is one short redb transaction (a commit is one fsync). The
//! delivery loop ([`deliver`]) runs them on tokio's blocking pool, because an fsync can take
//! milliseconds on a busy disk, and on a two-core runtime blocking a worker that long would stall
//! the other sinks' tasks, which is what one task per sink is meant to prevent.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::route::notification::Notification;
use crate::rule::Severity;
use crate::sink::{Sink, SinkError};

const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_pending");
const DEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox_dead");
const BY_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("outbox_by_time");
const BY_SINK_RANK: TableDefinition<(&str, u8, i64, &str), ()> =
    TableDefinition::new("outbox_by_sink_rank");
/// The per-sink index of files written before severity ranks; only read to migrate.
const OLD_BY_SINK: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("outbox_by_sink");

/// How many severity ranks `BY_SINK_RANK` has (0 = critical .. 4 = info).
const RANKS: u8 = 5;

/// A severity's place in a sink's queue: the most severe first. Spelled out rather than taken
/// from the enum's order, which runs the other way and is not part of the file format.
fn rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
        Severity::Info => 4,
    }
}

/// Why an outbox operation failed. Every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database could not be opened, read or written.
    #[error("{}: outbox database: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// What redb said.
        source: redb::Error,
    },
    /// The file could not be opened (damaged, empty, in use).
    #[error(transparent)]
    Open(crate::state::StateError),
    /// A stored record does not decode (written by a newer version, or damaged).
    #[error("{}: outbox record {id}: {source}", path.display())]
    Record {
        /// The database file.
        path: PathBuf,
        /// The notification id.
        id: String,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// `failed` was called for an id that is not pending (already delivered or dead).
    #[error("{}: outbox has no pending notification {id}", path.display())]
    NotPending {
        /// The database file.
        path: PathBuf,
        /// The notification id.
        id: String,
    },
}

impl OutboxError {
    /// A fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxError::Db { .. } => "db",
            OutboxError::Open(_) => "open",
            OutboxError::Record { .. } => "record",
            OutboxError::NotPending { .. } => "not_pending",
        }
    }
}

/// Errors inside one operation, before the path is attached at the public boundary.
enum Fail {
    Db(redb::Error),
    Record(String, serde_json::Error),
    NotPending(String),
}

macro_rules! fail_from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Self {
                Fail::Db(e.into())
            }
        }
    )*};
}
fail_from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// How failed deliveries are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delivery attempts in all, the first included; the notification goes dead after this many
    /// retriable failures.
    pub attempts: u32,
    /// Delay ceiling after the first failure; it doubles with each further failure.
    pub base: Duration,
    /// Largest delay ceiling.
    pub max: Duration,
    /// How long one `send` may take before it counts as a retriable failure, so a sink that
    /// hangs still gets its notifications retried and the loop can stop.
    pub send_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 1 s doubling to at most 5 min (about 8 minutes in all before a notification
    /// goes dead), 30 s per send.
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            send_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The delay ceiling after `failures` failed attempts (1 for the first):
    /// `min(max, base * 2^(failures - 1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt after `failures` failed attempts, with equal jitter:
    /// uniform in `[ceiling / 2, ceiling]`.
    ///
    /// Equal rather than full jitter: full jitter can draw a delay near zero and hit a receiver
    /// that just failed again at once; half the ceiling is always waited, and the other half
    /// still spreads out the retries of many notifications that failed together.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(failures).as_nanos()).unwrap_or(u64::MAX);
        let half = ceiling / 2;
        Duration::from_nanos(half + rand::random_range(0..=ceiling - half))
    }
}

/// A notification waiting to be delivered.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    /// The notification.
    pub notification: Notification,
    /// When it was queued (ns since the Unix epoch; 0 if unknown).
    pub queued_ns: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is due (ns since the Unix epoch).
    pub next_attempt_ns: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// A notification that will not be retried unless an operator asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    /// The notification.
    pub notification: Notification,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// When it went dead (ns since the Unix epoch).
    pub dead_at_ns: i64,
}

/// What became of a failed notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// It stays pending and is due again at this time (ns since the Unix epoch).
    Retry {
        /// The next attempt.
        at_ns: i64,
    },
    /// It moved to the dead letters.
    Dead,
}

/// The stored form; a format change is a new variant, so old files stay readable.
#[derive(Serialize, Deserialize)]
#[serde(tag = "version")]
enum Stored {
    #[serde(rename = "1")]
    V1 {
        notification: Notification,
        attempts: u32,
        next_attempt_ns: i64,
        last_error: Option<String>,
        dead_at_ns: Option<i64>,
        /// When it was queued (absent in files written before delivery latency was kept).
        #[serde(default)]
        queued_ns: i64,
    },
}

/// A decoded record, whichever version it was stored as.
struct Record {
    notification: Notification,
    queued_ns: i64,
    attempts: u32,
    next_attempt_ns: i64,
    last_error: Option<String>,
    dead_at_ns: Option<i64>,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let stored = Stored::V1 {
            notification: self.notification.clone(),
            attempts: self.attempts,
            next_attempt_ns: self.next_attempt_ns,
            last_error: self.last_error.clone(),
            dead_at_ns: self.dead_at_ns,
            queued_ns: self.queued_ns,
        };
        // Serializing plain structs, strings and `serde_json::Value`s to a Vec cannot fail:
        // every map key is a string and there is no I/O.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    fn decode(id: &str, bytes: &[u8]) -> Result<Record, Fail> {
        match serde_json::from_slice(bytes) {
            Ok(Stored::V1 {
                notification,
                attempts,
                next_attempt_ns,
                last_error,
                dead_at_ns,
                queued_ns,
            }) => Ok(Record {
                notification,
                queued_ns,
                attempts,
                next_attempt_ns,
                last_error,
                dead_at_ns,
            }),
            Err(e) => Err(Fail::Record(id.to_owned(), e)),
        }
    }

    fn pending(self) -> Pending {
        Pending {
            notification: self.notification,
            queued_ns: self.queued_ns,
            attempts: self.attempts,
            next_attempt_ns: self.next_attempt_ns,
            last_error: self.last_error,
        }
    }
}

/// What [`Outbox::put_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queued {
    /// Newly pending.
    pub added: usize,
    /// Not queued because a dead letter has the id (an earlier run gave up on it).
    pub dead: usize,
}

/// What [`Outbox::poll`] found for one sink.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Poll {
    /// Due notifications, most severe first, then earliest due.
    pub due: Vec<Pending>,
    /// When the first notification neither returned nor skipped is due (it may already be,
    /// when `limit` cut the list short); `None` when there is none.
    pub next_ns: Option<i64>,
}

/// Notifications not yet accepted by their sink, in a redb database file.
pub struct Outbox {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
    /// Bumped by every `put` and `retry_dead`, so idle delivery tasks wake at once instead of
    /// at their next poll.
    wake: tokio::sync::watch::Sender<u64>,
    /// Queued to accepted by its sink, in microseconds, over the process's life.
    latency: std::sync::Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating if needed) the database file at `path`. Fails if another process has it
    /// open: redb locks the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Outbox, OutboxError> {
        let path = path.as_ref().to_path_buf();
        let db = crate::state::StateDb::open(&path).map_err(OutboxError::Open)?;
        Outbox::with_database(db, path)
    }

    /// Uses an already open database (the daemon's one state file); `path` is only for
    /// messages. Creates the outbox tables if they are missing.
    pub fn with_database(
        db: Arc<crate::state::StateDb>,
        path: PathBuf,
    ) -> Result<Outbox, OutboxError> {
        let outbox = Outbox {
            db,
            path,
            wake: tokio::sync::watch::Sender::new(0),
            // 1 us to 1 day at 3 significant digits: constant bounds hdrhistogram accepts.
            latency: std::sync::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 86_400_000_000, 3).ok(),
            ),
        };
        // Creating the tables up front lets read transactions open them without a
        // table-missing case.
        outbox.write(|txn| {
            txn.open_table(PENDING)?;
            txn.open_table(DEAD)?;
            txn.open_table(BY_TIME)?;
            txn.open_table(BY_SINK_RANK)?;
            // A file from before severity ranks (or one an older version wrote to since): its
            // pending records are the truth, so the ranked index is rebuilt from them rather
            // than translated from the old index.
            if txn.delete_table(OLD_BY_SINK)? {
                rebuild_rank_index(txn)?;
            }
            Ok(())
        })?;
        Ok(outbox)
    }

    /// Delivery latency so far (queued to accepted, microseconds), for `/metrics`.
    pub fn delivery_latency(&self) -> Option<hdrhistogram::Histogram<u64>> {
        self.latency.lock().ok().and_then(|h| h.clone())
    }

    fn record_latency(&self, queued_ns: i64, now_ns: i64) {
        if queued_ns <= 0 {
            return;
        }
        if let Ok(mut h) = self.latency.lock()
            && let Some(h) = h.as_mut()
        {
            h.saturating_record(((now_ns - queued_ns).max(0) / 1000).max(1) as u64);
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state database the outbox lives in (its health, for `/healthz` and the metrics).
    pub fn state(&self) -> &Arc<crate::state::StateDb> {
        &self.db
    }

    fn error(&self, f: Fail) -> OutboxError {
        let path = self.path.clone();
        match f {
            Fail::Db(source) => OutboxError::Db { path, source },
            Fail::Record(id, source) => OutboxError::Record { path, id, source },
            Fail::NotPending(id) => OutboxError::NotPending { path, id },
        }
    }

    /// Runs `f` in a write transaction and commits it (durably: redb's default fsyncs).
    fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, Fail>,
    ) -> Result<T, OutboxError> {
        let run = || {
            let txn = self.db.begin_write()?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.error(e))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, Fail>,
    ) -> Result<T, OutboxError> {
        let run = || {
            let txn = self.db.begin_read()?;
            f(&txn)
        };
        run().map_err(|e| self.error(e))
    }

    /// Queues `n`, due at `now_ns`; committed to disk before it returns. Returns false, and
    /// changes nothing, when a notification with this id is already pending or dead, so a
    /// restart that routes the same alert again does not queue it twice. (A delivered id is
    /// forgotten; the router's committed dedup state keeps it from being routed again, and the
    /// receiver's idempotency key covers the rest.)
    pub fn put(&self, n: &Notification, now_ns: i64) -> Result<bool, OutboxError> {
        Ok(self.put_all(std::slice::from_ref(n), now_ns)?.added == 1)
    }

    /// Queues all of `ns` in one transaction (one disk sync for all), as [`Outbox::put`] does
    /// each; says how many were new and how many are dead letters already.
    pub fn put_all(&self, ns: &[Notification], now_ns: i64) -> Result<Queued, OutboxError> {
        if ns.is_empty() {
            return Ok(Queued::default());
        }
        self.put_all_with(ns, now_ns, |_| Ok(()))
    }

    /// [`Outbox::put_all`], with `also` writing into the same transaction: the daemon commits
    /// the notifications, the file positions whose lines raised them and the detector state
    /// at once, so after a crash either all of it happened or none did.
    pub fn put_all_with(
        &self,
        ns: &[Notification],
        now_ns: i64,
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<Queued, OutboxError> {
        let queued = self.write(|txn| {
            also(txn).map_err(Fail::Db)?;
            let mut pending = txn.open_table(PENDING)?;
            let dead = txn.open_table(DEAD)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut by_sink = txn.open_table(BY_SINK_RANK)?;
            let mut queued = Queued::default();
            for n in ns {
                if dead.get(n.id.as_str())?.is_some() {
                    queued.dead += 1;
                    continue;
                }
                if pending.get(n.id.as_str())?.is_some() {
                    continue;
                }
                let record = Record {
                    notification: n.clone(),
                    queued_ns: now_ns,
                    attempts: 0,
                    next_attempt_ns: now_ns,
                    last_error: None,
                    dead_at_ns: None,
                };
                pending.insert(n.id.as_str(), record.encode().as_slice())?;
                by_time.insert((now_ns, n.id.as_str()), ())?;
                by_sink.insert((n.sink.as_str(), rank(n.severity), now_ns, n.id.as_str()), ())?;
                queued.added += 1;
            }
            Ok(queued)
        })?;
        if queued.added > 0 {
            self.wake.send_modify(|g| *g = g.wrapping_add(1));
        }
        Ok(queued)
    }

    /// Up to `limit` pending notifications due at `now_ns`, earliest first, of every sink.
    pub fn due(&self, now_ns: i64, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        self.read(|txn| {
            let index = txn.open_table(BY_TIME)?;
            let pending = txn.open_table(PENDING)?;
            let mut out = Vec::new();
            for entry in index.range((i64::MIN, "")..(now_ns.saturating_add(1), ""))? {
                if out.len() >= limit {
                    break;
                }
                let (key, _) = entry?;
                let (_, id) = key.value();
                if let Some(bytes) = pending.get(id)? {
                    out.push(Record::decode(id, bytes.value())?.pending());
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` pending notifications of `sink` due at `now_ns`: the most severe first,
    /// and within a severity the earliest due first (for a first attempt, the oldest).
    pub fn due_for(
        &self,
        sink: &str,
        now_ns: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, OutboxError> {
        Ok(self.poll(sink, now_ns, limit, &HashSet::new())?.due)
    }

    /// When the earliest pending notification of `sink` is due, if it has any.
    pub fn next_due_for(&self, sink: &str) -> Result<Option<i64>, OutboxError> {
        Ok(self.poll(sink, i64::MAX, 0, &HashSet::new())?.next_ns)
    }

    /// [`Outbox::due_for`] leaving out the ids in `skip` (the delivery loop's attempts in
    /// flight), and when the first notification not returned or skipped is due. One read for
    /// what the loop needs each time a slot frees up.
    pub fn poll(
        &self,
        sink: &str,
        now_ns: i64,
        limit: usize,
        skip: &HashSet<String>,
    ) -> Result<Poll, OutboxError> {
        self.read(|txn| {
            let index = txn.open_table(BY_SINK_RANK)?;
            let pending = txn.open_table(PENDING)?;
            let mut poll = Poll::default();
            for r in 0..RANKS {
                // A rank's entries run in due order, so past the skipped ones, the first entry
                // not taken is that rank's next due time and the scan of the rank ends there.
                for entry in index.range((sink, r, i64::MIN, "")..(sink, r + 1, i64::MIN, ""))? {
                    let (key, _) = entry?;
                    let (_, _, at, id) = key.value();
                    if skip.contains(id) {
                        continue;
                    }
                    if at > now_ns || poll.due.len() >= limit {
                        poll.next_ns = Some(poll.next_ns.map_or(at, |n| n.min(at)));
                        break;
                    }
                    if let Some(bytes) = pending.get(id)? {
                        poll.due.push(Record::decode(id, bytes.value())?.pending());
                    }
                }
            }
            Ok(poll)
        })
    }

    /// Removes a pending notification its sink accepted. Returns false when it was not pending.
    pub fn delivered(&self, id: &str) -> Result<bool, OutboxError> {
        self.write(|txn| {
            let mut pending = txn.open_table(PENDING)?;
            let Some(record) = take(&mut pending, id)? else {
                return Ok(false);
            };
            unindex(txn, &record, id)?;
            Ok(true)
        })
    }

    /// Records a failed attempt: a permanent error, or a retriable one that spends the last of
    /// `policy.attempts`, moves it to the dead letters; otherwise it is due again after the
    /// policy's jittered backoff.
    pub fn failed(
        &self,
        id: &str,
        now_ns: i64,
        err: &SinkError,
        policy: &RetryPolicy,
    ) -> Result<Disposition, OutboxError> {
        self.write(|txn| {
            let mut pending = txn.open_table(PENDING)?;
            let Some(mut record) = take(&mut pending, id)? else {
                return Err(Fail::NotPending(id.to_owned()));
            };
            unindex(txn, &record, id)?;
            record.attempts = record.attempts.saturating_add(1);
            record.last_error = Some(err.to_string());
            if !err.is_retriable() || record.attempts >= policy.attempts {
                record.dead_at_ns = Some(now_ns);
                txn.open_table(DEAD)?.insert(id, record.encode().as_slice())?;
                return Ok(Disposition::Dead);
            }
            let delay = i64::try_from(policy.delay(record.attempts).as_nanos()).unwrap_or(i64::MAX);
            let at_ns = now_ns.saturating_add(delay);
            record.next_attempt_ns = at_ns;
            pending.insert(id, record.encode().as_slice())?;
            reindex(txn, &record, id)?;
            Ok(Disposition::Retry { at_ns })
        })
    }

    /// How many notifications are pending.
    pub fn pending_len(&self) -> Result<u64, OutboxError> {
        self.read(|txn| Ok(txn.open_table(PENDING)?.len()?))
    }

    /// How many notifications are pending for `sink`.
    pub fn pending_for(&self, sink: &str) -> Result<u64, OutboxError> {
        self.read(|txn| {
            let index = txn.open_table(BY_SINK_RANK)?;
            let mut n = 0;
            for entry in index.range((sink, 0, i64::MIN, "")..(sink, RANKS, i64::MIN, ""))? {
                entry?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Waits until no notification of `sinks` is pending (each delivered or dead) or `within`
    /// has passed; returns how many are still pending. The delivery loop must be running.
    pub async fn wait_drained(
        self: &Arc<Self>,
        sinks: &[String],
        within: Duration,
    ) -> Result<u64, OutboxError> {
        let start = tokio::time::Instant::now();
        let mut wake = self.wake.subscribe();
        loop {
            // A read transaction takes microseconds and never waits for a writer, so it runs
            // here rather than on the blocking pool.
            let left = sinks.iter().map(|s| self.pending_for(s)).sum::<Result<u64, _>>()?;
            if left == 0 || start.elapsed() >= within {
                return Ok(left);
            }
            // Deliveries do not bump the wake counter, so poll as well; 50 ms is short next to
            // any network send and long next to the read.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = wake.changed() => {}
            }
        }
    }

    /// Every pending notification, earliest due first.
    pub fn pending_list(&self) -> Result<Vec<Pending>, OutboxError> {
        self.due(i64::MAX, usize::MAX)
    }

    /// Every dead letter, in id order.
    pub fn dead_list(&self) -> Result<Vec<DeadLetter>, OutboxError> {
        self.read(|txn| {
            let dead = txn.open_table(DEAD)?;
            let mut out = Vec::new();
            for entry in dead.iter()? {
                let (id, bytes) = entry?;
                let r = Record::decode(id.value(), bytes.value())?;
                out.push(DeadLetter {
                    notification: r.notification,
                    attempts: r.attempts,
                    last_error: r.last_error.unwrap_or_default(),
                    dead_at_ns: r.dead_at_ns.unwrap_or_default(),
                });
            }
            Ok(out)
        })
    }

    /// Moves dead letters (all, or the one with `id`) back to pending with their attempts reset,
    /// due at once (next attempt 0, so they go ahead of anything queued meanwhile: an operator
    /// asked for them). Returns how many moved.
    pub fn retry_dead(&self, id: Option<&str>) -> Result<usize, OutboxError> {
        let moved = self.write(|txn| {
            let mut dead = txn.open_table(DEAD)?;
            let ids: Vec<String> = match id {
                Some(id) => vec![id.to_owned()],
                None => {
                    let mut ids = Vec::new();
                    for entry in dead.iter()? {
                        ids.push(entry?.0.value().to_owned());
                    }
                    ids
                }
            };
            let mut pending = txn.open_table(PENDING)?;
            let mut moved = 0;
            for id in &ids {
                let Some(mut record) = take(&mut dead, id)? else {
                    continue;
                };
                record.attempts = 0;
                record.next_attempt_ns = 0;
                record.dead_at_ns = None;
                pending.insert(id.as_str(), record.encode().as_slice())?;
                reindex(txn, &record, id)?;
                moved += 1;
            }
            Ok(moved)
        })?;
        if moved > 0 {
            self.wake.send_modify(|g| *g = g.wrapping_add(1));
        }
        Ok(moved)
    }
}

/// Removes `id` from `table` and decodes what was there.
fn take(table: &mut redb::Table<&str, &[u8]>, id: &str) -> Result<Option<Record>, Fail> {
    match table.remove(id)? {
        Some(bytes) => Ok(Some(Record::decode(id, bytes.value())?)),
        None => Ok(None),
    }
}

/// `r`'s key in the per-sink queue.
fn queue_key<'a>(r: &'a Record, id: &'a str) -> (&'a str, u8, i64, &'a str) {
    (r.notification.sink.as_str(), rank(r.notification.severity), r.next_attempt_ns, id)
}

fn unindex(txn: &redb::WriteTransaction, r: &Record, id: &str) -> Result<(), Fail> {
    txn.open_table(BY_TIME)?.remove((r.next_attempt_ns, id))?;
    txn.open_table(BY_SINK_RANK)?.remove(queue_key(r, id))?;
    Ok(())
}

fn reindex(txn: &redb::WriteTransaction, r: &Record, id: &str) -> Result<(), Fail> {
    txn.open_table(BY_TIME)?.insert((r.next_attempt_ns, id), ())?;
    txn.open_table(BY_SINK_RANK)?.insert(queue_key(r, id), ())?;
    Ok(())
}

/// Makes the per-sink queue anew from the pending records (a migration, see the module docs).
fn rebuild_rank_index(txn: &redb::WriteTransaction) -> Result<(), Fail> {
    txn.delete_table(BY_SINK_RANK)?;
    let mut index = txn.open_table(BY_SINK_RANK)?;
    let pending = txn.open_table(PENDING)?;
    for entry in pending.iter()? {
        let (id, bytes) = entry?;
        let r = Record::decode(id.value(), bytes.value())?;
        index.insert(queue_key(&r, id.value()), ())?;
    }
    Ok(())
}

/// The time source of the delivery loop, in ns since the Unix epoch; injected so tests can
/// control it. Any `Fn() -> i64` closure is one.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_ns(&self) -> i64;
}

impl<F: Fn() -> i64 + Send + Sync + 'static> Clock for F {
    fn now_ns(&self) -> i64 {
        self()
    }
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        let since =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
    }
}

/// What the delivery loop did for one sink.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    /// Notifications the sink accepted.
    pub delivered: u64,
    /// Failed attempts that were scheduled again.
    pub retried: u64,
    /// Notifications moved to the dead letters.
    pub dead: u64,
}

/// The longest a sink task sleeps without looking again, in case a notification became due in
/// a way no wake-up announced (a clock jump, another writer).
const MAX_IDLE: Duration = Duration::from_secs(5);

/// How long to wait after the outbox itself failed (disk full, I/O error) before trying again.
const OUTBOX_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// At most one dead-letter line per sink this often; the ones in between are counted into the
/// next line, so a receiver rejecting a storm does not write a line per notification.
const DEAD_LOG_EVERY: Duration = Duration::from_secs(10);

/// Delivers the outbox's notifications until `shutdown` turns true (or its sender is dropped),
/// one task per sink so a slow or failing sink never delays another.
///
/// Each task keeps up to the sink's [`Sink::concurrency`] attempts in flight, never two of the
/// same notification. Whenever a slot is free and the sink's [`Sink::pace`] gives it a turn,
/// it starts the most severe due notification (the earliest due within a severity, see
/// [`Outbox::due_for`]), read afresh each time, so an alert queued behind a storm waits for a
/// free slot, not for the storm. An attempt records `delivered` or `failed` before its slot
/// frees. On shutdown a task starts nothing new and waits for its attempts in flight (each
/// bounded by the send timeout). Notifications for a sink not in `sinks` stay pending.
///
/// Delivery is at least once: a crash between a sink's acceptance and `delivered` sends that
/// notification again after restart (at most the sink's concurrency of them), with the same id
/// for the receiver to drop it.
pub async fn deliver(
    outbox: Arc<Outbox>,
    sinks: HashMap<String, Arc<dyn Sink>>,
    policy: RetryPolicy,
    shutdown: tokio::sync::watch::Receiver<bool>,
    clock: Arc<dyn Clock>,
) -> HashMap<String, DeliveryStats> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, sink) in sinks {
        let task = SinkTask {
            lane: Arc::new(Lane {
                outbox: outbox.clone(),
                name,
                sink,
                policy: policy.clone(),
                clock: clock.clone(),
            }),
            shutdown: shutdown.clone(),
            flying: tokio::task::JoinSet::new(),
            in_flight: HashMap::new(),
            stats: DeliveryStats::default(),
            hold_until: None,
            dead_log: DeadLog::default(),
        };
        tasks.spawn(task.run());
    }
    let mut stats = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, s)) => {
                stats.insert(name, s);
            }
            Err(e) => eprintln!("outbox: a delivery task ended abnormally: {e}"),
        }
    }
    stats
}

/// What a sink's task and its attempts in flight share.
struct Lane {
    outbox: Arc<Outbox>,
    name: String,
    sink: Arc<dyn Sink>,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
}

/// How one attempt ended, once the outbox was told (or failed to be).
enum Outcome {
    Delivered,
    Retried,
    Dead {
        id: String,
        attempts: u32,
        error: SinkError,
    },
    /// The outbox could not record the result; the notification is still pending.
    Unrecorded,
}

/// One sink's delivery task.
struct SinkTask {
    lane: Arc<Lane>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    /// The attempts in flight.
    flying: tokio::task::JoinSet<Outcome>,
    /// Which notification each attempt in flight is sending: they are left out of every read,
    /// so no notification is sent twice at once.
    in_flight: HashMap<tokio::task::Id, String>,
    stats: DeliveryStats,
    /// After the outbox failed to record a result, no new attempt before this: the record is
    /// still pending and would otherwise be sent again at once, over and over.
    hold_until: Option<tokio::time::Instant>,
    dead_log: DeadLog,
}

/// Runs an outbox call on the blocking pool (see the module docs for why).
async fn blocking<T: Send + 'static>(
    outbox: &Arc<Outbox>,
    f: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, String> {
    let shared = outbox.clone();
    match tokio::task::spawn_blocking(move || f(&shared)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        // redb panics on some damaged pages: the same call would panic again for ever. The
        // state database is marked damaged and the daemon stops (DESIGN §6, README).
        Err(e) => {
            let why = format!("an outbox call panicked: {e}");
            outbox.state().mark_corrupt(&why);
            Err(why)
        }
    }
}

impl SinkTask {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.shutdown.has_changed().is_err()
    }

    async fn run(mut self) -> (String, DeliveryStats) {
        let mut wake = self.lane.outbox.wake.subscribe();
        let slots = self.lane.sink.concurrency().get();
        while !self.stopping() {
            // Marking the wake-ups seen before reading means a `put` after the read still
            // wakes the wait below.
            wake.borrow_and_update();
            let pause =
                if self.in_flight.len() < slots { self.fill(slots).await } else { MAX_IDLE };
            let done = tokio::select! {
                Some(done) = self.flying.join_next_with_id(), if !self.flying.is_empty() => {
                    Some(done)
                }
                _ = wake.changed() => None,
                _ = self.shutdown.changed() => None,
                _ = tokio::time::sleep(pause) => None,
            };
            if let Some(done) = done {
                self.settle(done).await;
            }
        }
        while let Some(done) = self.flying.join_next_with_id().await {
            self.settle(done).await;
        }
        self.dead_log.flush(&self.lane.name);
        (self.lane.name.clone(), self.stats)
    }

    /// Starts attempts for the free slots, most urgent first; returns how long to wait before
    /// looking again if nothing else happens.
    async fn fill(&mut self, slots: usize) -> Duration {
        if let Some(until) = self.hold_until {
            let now = tokio::time::Instant::now();
            if now < until {
                return until - now;
            }
            self.hold_until = None;
        }
        let lane = Arc::clone(&self.lane);
        // While the state database cannot be written, a send's result could not be recorded
        // and the notification would go out again after the outage: wait instead.
        if lane.outbox.state().fault().is_some() {
            return OUTBOX_ERROR_PAUSE;
        }
        let now = lane.clock.now_ns();
        let free = slots.saturating_sub(self.in_flight.len());
        let skip: HashSet<String> = self.in_flight.values().cloned().collect();
        let name = lane.name.clone();
        let poll = match blocking(&lane.outbox, move |o| o.poll(&name, now, free, &skip)).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("outbox: sink {}: reading due notifications failed: {e}", lane.name);
                return OUTBOX_ERROR_PAUSE;
            }
        };
        for item in poll.due {
            if let Err(wait) = lane.sink.pace() {
                // Not the sink's turn yet: look again then, for whatever is most urgent by then.
                return wait;
            }
            let id = item.notification.id.clone();
            let handle = self.flying.spawn(attempt(Arc::clone(&lane), item));
            self.in_flight.insert(handle.id(), id);
        }
        match poll.next_ns {
            Some(at) => {
                let wait = at.saturating_sub(lane.clock.now_ns()).max(0);
                Duration::from_nanos(u64::try_from(wait).unwrap_or(0)).min(MAX_IDLE)
            }
            None => MAX_IDLE,
        }
    }

    /// Frees the slot of a finished attempt and counts what it did.
    async fn settle(&mut self, done: Result<(tokio::task::Id, Outcome), tokio::task::JoinError>) {
        let outcome = match done {
            Ok((task, outcome)) => {
                self.in_flight.remove(&task);
                outcome
            }
            Err(e) => {
                let Some(id) = self.in_flight.remove(&e.id()) else { return };
                // The sink panicked: a failed attempt like any other, so the notification backs
                // off instead of being sent again at once.
                let err = SinkError::Retriable(format!("the sink panicked: {e}"));
                failed(&self.lane, id, err, None).await
            }
        };
        match outcome {
            Outcome::Delivered => self.stats.delivered += 1,
            Outcome::Retried => self.stats.retried += 1,
            Outcome::Dead { id, attempts, error } => {
                self.stats.dead += 1;
                self.dead_log.record(&self.lane.name, &id, attempts, &error);
            }
            Outcome::Unrecorded => {
                self.hold_until = Some(tokio::time::Instant::now() + OUTBOX_ERROR_PAUSE);
            }
        }
    }
}

/// Sends one notification and records the result.
async fn attempt(lane: Arc<Lane>, item: Pending) -> Outcome {
    let n = item.notification;
    let sent = match tokio::time::timeout(lane.policy.send_timeout, lane.sink.send(&n)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError::Retriable(format!(
            "no answer within {}",
            humantime::format_duration(lane.policy.send_timeout)
        ))),
    };
    match sent {
        Ok(()) => {
            let id = n.id.clone();
            match blocking(&lane.outbox, move |o| o.delivered(&id)).await {
                Ok(_) => {
                    lane.outbox.record_latency(item.queued_ns, lane.clock.now_ns());
                    Outcome::Delivered
                }
                // The sink has it, the outbox does not know: it will be sent again, and the
                // receiver can drop it by its idempotency key.
                Err(e) => {
                    eprintln!(
                        "outbox: sink {}: notification {} delivered but not recorded: {e}",
                        lane.name, n.id
                    );
                    Outcome::Unrecorded
                }
            }
        }
        Err(err) => failed(&lane, n.id, err, Some(item.attempts)).await,
    }
}

/// Records a failed attempt of notification `id`, which had `before` failed attempts already
/// (unknown when the attempt panicked).
async fn failed(lane: &Arc<Lane>, id: String, err: SinkError, before: Option<u32>) -> Outcome {
    let now = lane.clock.now_ns();
    let policy = lane.policy.clone();
    let error = err.clone();
    let key = id.clone();
    match blocking(&lane.outbox, move |o| o.failed(&key, now, &error, &policy)).await {
        Ok(Disposition::Retry { .. }) => Outcome::Retried,
        Ok(Disposition::Dead) => {
            Outcome::Dead { id, attempts: before.map_or(0, |a| a.saturating_add(1)), error: err }
        }
        Err(e) => {
            eprintln!(
                "outbox: sink {}: notification {id} failed ({err}) and recording it failed: {e}",
                lane.name
            );
            Outcome::Unrecorded
        }
    }
}

/// The dead-letter lines of one sink, at most one per [`DEAD_LOG_EVERY`].
#[derive(Default)]
struct DeadLog {
    /// When the last line was written.
    last: Option<tokio::time::Instant>,
    /// Dead letters since then that got no line of their own.
    quiet: u64,
}

impl DeadLog {
    fn record(&mut self, sink: &str, id: &str, attempts: u32, err: &SinkError) {
        let now = tokio::time::Instant::now();
        if self.last.is_some_and(|t| now.duration_since(t) < DEAD_LOG_EVERY) {
            self.quiet += 1;
            return;
        }
        let tries = match attempts {
            0 => String::new(),
            1 => " after 1 attempt".to_owned(),
            n => format!(" after {n} attempts"),
        };
        let more = match self.quiet {
            0 => String::new(),
            q => format!(" ({q} more went dead since the last line)"),
        };
        eprintln!("outbox: sink {sink}: notification {id} is dead{tries}: {err}{more}");
        self.last = Some(now);
        self.quiet = 0;
    }

    /// Says how many went dead without a line, at the end.
    fn flush(&mut self, sink: &str) {
        if self.quiet > 0 {
            eprintln!(
                "outbox: sink {sink}: {} more notifications went dead (`logwarden outbox list` \
                 shows them)",
                self.quiet
            );
            self.quiet = 0;
        }
    }
}

#[cfg(test)]
mod tests;
