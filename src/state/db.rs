//! The handle every store shares on the one state file, and what it does about faults.
//!
//! redb poisons a `Database` after one failed write: every later transaction fails with
//! "Previous I/O error occurred. Please close and re-open the database", also once the disk
//! has room again. A full disk would then stop every commit until a restart. [`StateDb`] does
//! what redb asks: when a write transaction meets that error, the file is closed and opened
//! again (redb repairs it to the last commit), at most once per backoff step, so the caller's
//! retry loop is what paces the attempts and the process never needs a restart.
//!
//! It also keeps the outcome of the last write ([`StateDb::fault`]): `/healthz`, the metrics
//! and the sources' push-back read it, and the transitions (failing, working again) are the only
//! log lines, so a full disk is said once, not once per commit.
//!
//! Opening checks the file before anything uses it ([`StateDb::open`]): an empty file, one
//! redb cannot read, one that fails its integrity check and one written by a newer format are
//! errors naming the file and the commands that deal with them. redb would take an empty file
//! for a new database, and a tailed-file daemon starting over in silence re-reads and re-alerts
//! everything; redb panics on some damaged pages, and a panic at start is a backtrace where an
//! operator needs a sentence.

use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use redb::{
    CommitError, Database, ReadTransaction, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TransactionError, WriteTransaction,
};

use super::StateError;

/// The page cache: the daemon rewrites its state snapshots every second and redb's default
/// cache would grow with them; reads here are few and small.
const CACHE_BYTES: usize = 4 << 20;

/// The file's own header, beside redb's: which layout of logwarden's tables it holds.
const META: TableDefinition<&str, u64> = TableDefinition::new("logwarden_meta");
/// The key of the layout version in [`META`].
const FORMAT_KEY: &str = "format";
/// The layout this build writes and reads. Files from before the header was written have no
/// [`META`] table; they are this layout and get the header on first open.
pub const FORMAT: u64 = 1;

/// First and longest wait between two reopen attempts.
const REOPEN_FIRST: Duration = Duration::from_millis(100);
const REOPEN_MAX: Duration = Duration::from_secs(5);

/// What the operator is told to run when the file cannot be used.
const ADVICE: &str = "run `logwarden state check` for details, or `logwarden state reset` to move \
                      the file aside and start over (tailed files then start at their end)";

/// Why writes to the state file fail now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Writes fail (a full disk, an I/O error); they are retried and the file reopened.
    Io {
        /// What the system said, e.g. "No space left on device (os error 28)".
        reason: String,
        /// When the first failure of this outage happened.
        since: SystemTime,
    },
    /// redb found damage while running: retrying cannot help.
    Corrupt {
        /// What redb said.
        reason: String,
    },
}

impl Fault {
    /// One line for `/healthz` and logs.
    pub fn describe(&self) -> String {
        match self {
            Fault::Io { reason, since } => {
                let secs = since.elapsed().map(|d| d.as_secs()).unwrap_or(0);
                format!("state database cannot be written for {secs}s: {reason}")
            }
            Fault::Corrupt { reason } => format!("state database is damaged: {reason}"),
        }
    }
}

/// The reopen schedule, under one lock so that only one thread reopens.
struct Reopen {
    /// Bumped by every successful reopen: a thread that saw the old database fail does not
    /// reopen the new one again.
    generation: u64,
    next_attempt: Instant,
    backoff: Duration,
}

/// How the database is (re)opened: the file at the path, or (in tests) a storage backend that
/// fails on demand.
type Opener = Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The shared handle on the state file (see the module docs).
pub struct StateDb {
    path: PathBuf,
    opener: Opener,
    db: RwLock<(u64, Option<Arc<Database>>)>,
    reopen: Mutex<Reopen>,
    fault: Mutex<Option<Fault>>,
    write_errors: AtomicU64,
    reopens: AtomicU64,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb").field("path", &self.path).finish_non_exhaustive()
    }
}

/// How [`StateDb::open`] found the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// There was no file: a new, empty state.
    Created,
    /// An existing file, intact.
    Existing,
    /// An existing file that failed redb's integrity check and was repaired to its last
    /// consistent commit (what was written after it is gone, as after a crash).
    Repaired,
}

impl StateDb {
    /// Opens the state file at `path`, creating it when there is none, after the checks in the
    /// module docs. redb locks the file, so a second process on it fails here.
    pub fn open(path: &Path) -> Result<Arc<StateDb>, StateError> {
        StateDb::open_checked(path).map(|(db, _)| db)
    }

    /// [`StateDb::open`], also saying whether the file was new, intact or repaired.
    pub fn open_checked(path: &Path) -> Result<(Arc<StateDb>, Opened), StateError> {
        let existed = match std::fs::metadata(path) {
            Ok(m) if m.len() == 0 => {
                return Err(StateError::Empty { path: path.to_path_buf(), advice: ADVICE });
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(damaged(path, format!("cannot read it: {e}"))),
        };
        let mut db = guarded(|| open_database(path))
            .map_err(|panic| damaged(path, format!("redb cannot open it: {panic}")))?
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StateError::Db {
                    path: path.to_path_buf(),
                    detail: "it is open in another process (is a daemon running on it?)".into(),
                },
                // The file system's answer (no such directory, no permission, no space) is not
                // damage to the file: said as it is.
                redb::DatabaseError::Storage(StorageError::Io(e))
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    StateError::Db { path: path.to_path_buf(), detail: e.to_string() }
                }
                e => damaged(path, e.to_string()),
            })?;
        let mut opened = if existed { Opened::Existing } else { Opened::Created };
        if existed {
            match guarded(|| db.check_integrity()) {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => opened = Opened::Repaired,
                Ok(Err(e)) => return Err(damaged(path, format!("integrity check: {e}"))),
                Err(panic) => return Err(damaged(path, format!("integrity check: {panic}"))),
            }
        }
        guarded(|| stamp_format(&db)).map_err(|panic| damaged(path, panic))?.map_err(
            |e| match e {
                Stamp::Newer(found) => StateError::Newer { path: path.to_path_buf(), found },
                Stamp::Db(e) => damaged(path, e.to_string()),
            },
        )?;
        let file = path.to_path_buf();
        let opener: Opener = Box::new(move || open_database(&file));
        Ok((Arc::new(StateDb::new(path.to_path_buf(), opener, db)), opened))
    }

    /// A handle on a database `opener` opens, again after each failed write; `label` names it
    /// in messages. No file checks: for tests that inject faults through a redb storage
    /// backend, and for callers that checked the storage themselves.
    pub fn with_opener(
        label: PathBuf,
        opener: impl Fn() -> Result<Database, redb::DatabaseError> + Send + Sync + 'static,
    ) -> Result<Arc<StateDb>, StateError> {
        let fail = |detail: String| StateError::Db { path: label.clone(), detail };
        let db = opener().map_err(|e| fail(e.to_string()))?;
        stamp_format(&db).map_err(|e| match e {
            Stamp::Newer(found) => StateError::Newer { path: label.clone(), found },
            Stamp::Db(e) => fail(e.to_string()),
        })?;
        Ok(Arc::new(StateDb::new(label.clone(), Box::new(opener), db)))
    }

    fn new(path: PathBuf, opener: Opener, db: Database) -> StateDb {
        StateDb {
            path,
            opener,
            db: RwLock::new((0, Some(Arc::new(db)))),
            reopen: Mutex::new(Reopen {
                generation: 0,
                next_attempt: Instant::now(),
                backoff: REOPEN_FIRST,
            }),
            fault: Mutex::new(None),
            write_errors: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why writes fail now, if they do.
    pub fn fault(&self) -> Option<Fault> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    /// Failed write transactions (begin or commit) over the process's life.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Times the file was closed and opened again after a failed write.
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    fn current(&self) -> Result<(u64, Arc<Database>), StorageError> {
        let guard = self.db.read().map_err(|_| StorageError::PreviousIo)?;
        match &guard.1 {
            Some(db) => Ok((guard.0, Arc::clone(db))),
            None => Err(StorageError::PreviousIo),
        }
    }

    /// Starts a write transaction. When the database is poisoned by an earlier I/O error it is
    /// reopened first (if the backoff allows; otherwise the error is returned at once).
    pub fn begin_write(&self) -> Result<StateTxn<'_>, TransactionError> {
        let attempt = match self.current() {
            Ok((generation, db)) => match db.begin_write() {
                Ok(txn) => return Ok(StateTxn { txn, db: self }),
                Err(TransactionError::Storage(StorageError::PreviousIo)) => generation,
                Err(e) => {
                    self.failed(&e.to_string(), false);
                    return Err(e);
                }
            },
            Err(_) => self.generation(),
        };
        self.reopen_after(attempt).map_err(TransactionError::Storage)?;
        match self.current().map_err(TransactionError::Storage)?.1.begin_write() {
            Ok(txn) => Ok(StateTxn { txn, db: self }),
            Err(e) => {
                self.failed(&e.to_string(), false);
                Err(e)
            }
        }
    }

    /// Starts a read transaction (reopening as [`StateDb::begin_write`] does).
    pub fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        match self.current() {
            Ok((_, db)) => db.begin_read(),
            Err(_) => {
                self.reopen_after(self.generation()).map_err(TransactionError::Storage)?;
                self.current().map_err(TransactionError::Storage)?.1.begin_read()
            }
        }
    }

    /// Writes a consistent copy of the file to `dest` while the database stays in use: a write
    /// transaction is held (so no commit moves the file) while the bytes are copied, then the
    /// copy is opened and checked. Returns the copy's size.
    pub fn backup_to(&self, dest: &Path) -> Result<u64, StateError> {
        let fail = |detail: String| StateError::Db { path: dest.to_path_buf(), detail };
        let part = dest.with_extension("partial");
        let copied = {
            let _hold = self.begin_write().map_err(|e| fail(format!("cannot hold writes: {e}")))?;
            copy_synced(&self.path, &part).map_err(|e| fail(format!("copying: {e}")))?
        };
        match StateDb::open_checked(&part) {
            Ok((_, Opened::Existing)) => {}
            Ok((_, how)) => {
                let _ = std::fs::remove_file(&part);
                return Err(fail(format!("the copy did not check out ({how:?})")));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(fail(format!("the copy did not check out: {e}")));
            }
        }
        std::fs::rename(&part, dest).map_err(|e| fail(format!("renaming the copy: {e}")))?;
        Ok(copied)
    }

    fn generation(&self) -> u64 {
        self.reopen.lock().map(|r| r.generation).unwrap_or(0)
    }

    /// Closes and reopens the file if nobody did since `generation` failed and the backoff
    /// allows it now.
    fn reopen_after(&self, generation: u64) -> Result<(), StorageError> {
        let mut schedule = self.reopen.lock().map_err(|_| StorageError::PreviousIo)?;
        if schedule.generation != generation {
            return Ok(());
        }
        let now = Instant::now();
        if now < schedule.next_attempt {
            return Err(StorageError::PreviousIo);
        }
        // The old handle goes first: redb's lock on the file is released only when the last
        // reference to the old database is gone (a transaction in another thread may still
        // hold one; then this attempt fails and the next one succeeds).
        if let Ok(mut slot) = self.db.write() {
            slot.1 = None;
        }
        match guarded(|| (self.opener)()) {
            Ok(Ok(db)) => {
                if let Ok(mut slot) = self.db.write() {
                    *slot = (generation + 1, Some(Arc::new(db)));
                }
                schedule.generation = generation + 1;
                schedule.backoff = REOPEN_FIRST;
                schedule.next_attempt = now;
                self.reopens.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(e)) => {
                schedule.next_attempt = now + schedule.backoff;
                schedule.backoff = (schedule.backoff * 2).min(REOPEN_MAX);
                self.failed(&format!("reopening after a failed write: {e}"), false);
                Err(StorageError::PreviousIo)
            }
            Err(panic) => {
                self.failed(&format!("reopening after a failed write: {panic}"), true);
                Err(StorageError::Corrupted(panic))
            }
        }
    }

    /// Records a failed write; says so once per outage.
    fn failed(&self, reason: &str, corrupt: bool) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let Ok(mut fault) = self.fault.lock() else { return };
        let was = fault.take();
        let next = match (&was, corrupt) {
            (Some(f @ Fault::Corrupt { .. }), _) => f.clone(),
            (_, true) => Fault::Corrupt { reason: reason.to_owned() },
            // Keep the first, most telling reason (the disk is full) and when it began, rather
            // than the "previous I/O error" that follows it.
            (Some(f @ Fault::Io { .. }), false) => f.clone(),
            (None, false) => Fault::Io { reason: reason.to_owned(), since: SystemTime::now() },
        };
        match (&was, &next) {
            (None, Fault::Io { .. }) => eprintln!(
                "logwarden: state database {}: {}; holding alerts, notifications and file \
                 positions in memory and retrying, /healthz answers 503 until it works again",
                self.path.display(),
                next.describe()
            ),
            (None | Some(Fault::Io { .. }), Fault::Corrupt { .. }) => eprintln!(
                "logwarden: state database {}: {}; {ADVICE}",
                self.path.display(),
                next.describe()
            ),
            _ => {}
        }
        *fault = Some(next);
    }

    /// Marks the file damaged (a store met a panic or a corrupt record while running): the
    /// daemon stops with an error rather than retrying what cannot work.
    pub fn mark_corrupt(&self, reason: &str) {
        self.failed(reason, true);
    }

    /// Records a successful commit: an outage, if there was one, is over.
    fn committed(&self) {
        let Ok(mut fault) = self.fault.lock() else { return };
        if let Some(Fault::Io { since, .. }) = fault.as_ref() {
            let secs = since.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
            eprintln!(
                "logwarden: state database {}: writes work again after {secs:.1}s ({} failed \
                 writes so far)",
                self.path.display(),
                self.write_errors()
            );
            *fault = None;
        }
    }

    /// Commit outcome classification, shared with [`StateTxn::commit`].
    fn commit_failed(&self, e: &CommitError) {
        let corrupt = matches!(e, CommitError::Storage(StorageError::Corrupted(_)));
        self.failed(&e.to_string(), corrupt);
    }
}

/// A write transaction on a [`StateDb`]: a redb transaction whose commit outcome is recorded.
pub struct StateTxn<'a> {
    txn: WriteTransaction,
    db: &'a StateDb,
}

impl StateTxn<'_> {
    /// Commits durably (redb's default fsyncs), recording the outcome in the handle.
    pub fn commit(self) -> Result<(), CommitError> {
        match self.txn.commit() {
            Ok(()) => {
                self.db.committed();
                Ok(())
            }
            Err(e) => {
                self.db.commit_failed(&e);
                Err(e)
            }
        }
    }
}

impl Deref for StateTxn<'_> {
    type Target = WriteTransaction;
    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

impl DerefMut for StateTxn<'_> {
    fn deref_mut(&mut self) -> &mut WriteTransaction {
        &mut self.txn
    }
}

/// Copies `from` to `to` and syncs the copy to disk.
fn copy_synced(from: &Path, to: &Path) -> std::io::Result<u64> {
    let n = std::fs::copy(from, to)?;
    std::fs::File::open(to)?.sync_all()?;
    Ok(n)
}

fn open_database(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

fn damaged(path: &Path, detail: String) -> StateError {
    StateError::Damaged { path: path.to_path_buf(), detail, advice: ADVICE }
}

enum Stamp {
    Newer(u64),
    Db(redb::Error),
}

impl<E: Into<redb::Error>> From<E> for Stamp {
    fn from(e: E) -> Self {
        Stamp::Db(e.into())
    }
}

/// Writes the format header when it is missing; refuses a file from a newer layout.
fn stamp_format(db: &Database) -> Result<(), Stamp> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get(FORMAT_KEY)?.map(|v| v.value());
        match found {
            Some(v) if v > FORMAT => return Err(Stamp::Newer(v)),
            Some(_) => {}
            None => {
                meta.insert(FORMAT_KEY, FORMAT)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

thread_local! {
    /// Set while [`guarded`] runs on this thread: its panics are expected and reported as
    /// errors, so the panic hook does not print them.
    static GUARDED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside [`guarded`] (for a process panic hook to stay quiet).
pub fn guarded_now() -> bool {
    GUARDED.with(|g| g.get())
}

/// Runs `f`, turning a panic (redb panics on some damaged pages) into its message, without the
/// panic hook printing it: the caller reports it as an error that names the file.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !guarded_now() {
                previous(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "redb panicked".to_owned())
    })
}

#[cfg(test)]
#[path = "db/tests.rs"]
mod tests;
