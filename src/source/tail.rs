//! Live file tail: follows the files matched by globs as they grow, rotate and get truncated,
//! and hands their complete lines downstream in checkpointed batches.
//!
//! It polls rather than using inotify: a poll is portable, survives the watched directory being
//! replaced, and costs one `fstat` and one small `pread` per file per interval.
//!
//! # File identity
//!
//! A checkpoint key names a file's content, not its name, because rotation renames files:
//! `"{dev}:{inode}:{n}:{hash}"`, where `hash` is the first 8 bytes (hex) of the SHA-256 of the
//! file's first `n` bytes, `n = min(256, length)` taken once, when the file is first seen with
//! any bytes in it. The length is part of the key so a short file keeps its key while it grows
//! (its first line still being written does not change who it is), and a restart can recompute
//! the same hash over the same `n` bytes. The device and inode alone are not enough: once a
//! file is deleted its inode is reused, and the new file must be read from 0, not from the old
//! file's offset. A file that is truncated (copytruncate) starts a new content and so takes a
//! new key when its first bytes arrive; an empty file has no key until then, which is harmless
//! since a file with no lines has no checkpoint to give.
//!
//! # Rotation
//!
//! Every open file keeps its handle. When its path leads elsewhere (renamed away, or deleted),
//! the handle is still read to its end, for as long as a writer that has not reopened yet keeps
//! appending, and closed once nothing has arrived for four poll intervals. A new file under the
//! old name is a new identity, read from offset 0.
//!
//! Rotation while logwarden is stopped leaves no handle to read on: at startup, a path whose
//! file is not the one last checkpointed under it has that file looked for beside it under a
//! rotated name (`rotated.rs`), and what of it was unread is read first, then the new file
//! under the path from its start (whatever `read_from` says: all of it is new). A file that
//! cannot be found is said once and counted (`logwarden_tail_rotated_lost_total`).
//!
//! # Over-long lines
//!
//! A line over `max_line_bytes` is set aside: counted per source by reason (`line_too_long`,
//! in the source's quarantine ledger), said on standard error at most once a minute with its
//! file and byte offset, and the tail goes on at the next line, its position past it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Display;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Decoder;

use super::log_limit::{LogLimit, held_back};
use super::{Batch, Checkpoint, Origin, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};
use crate::parse::frame::{DEFAULT_MAX_RECORD_BYTES, Frame, NewlineFramer};
use crate::rule::duration::{self, DurationError};

/// How often files are looked at when the config does not say.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Most bytes hashed into a file's identity: enough to tell two log files apart by their first
/// timestamps and lines, little enough to re-check every poll.
const FINGERPRINT_BYTES: usize = 256;
/// A batch is bounded in records and bytes so one busy file cannot hold the pipeline (or other
/// files) for long, and so memory per source stays bounded whatever the backlog.
const MAX_BATCH_RECORDS: usize = 1024;
/// See [`MAX_BATCH_RECORDS`].
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Bytes asked of the file per read call.
const READ_CHUNK: usize = 64 * 1024;
/// A file whose path no longer leads to it is closed after this many poll intervals without new
/// bytes: a writer that has not reopened its log yet may still be appending to it.
const CLOSE_AFTER_IDLE_POLLS: u32 = 4;
/// Over-long lines are said at most this often (seconds); every one is counted.
const TOO_LONG_LOG_SECS: u64 = 60;

mod rotated;

/// `type: file` in logwarden.yml's `sources:`: files to follow as they are written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// Glob patterns of the files to follow (`/var/log/auth.log`, `/var/log/app/*.log`),
    /// expanded again at every poll so that files appearing later are picked up.
    pub paths: Vec<String>,
    /// Globs of matched files to skip (`*.gz`), tried against the whole path and against the
    /// file name.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in a file found at startup that has no checkpoint. Files that appear
    /// later are always read from their beginning, since all of their content is new.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// How often to look for new files and new bytes (`250ms`, `1s`); default 250ms.
    #[serde(default)]
    pub poll_interval: Option<String>,
    /// Longest line kept, in bytes; longer lines are counted and skipped. Default 64 KiB.
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    /// What the lines are: `syslog` (default), `cloudtrail` (one record per line) or `json`
    /// (ECS events, as the forwarder and `replay --events` write them).
    #[serde(default)]
    pub format: Option<crate::parse::Format>,
    /// Alert when no line arrives for this long (`10m`).
    #[serde(default)]
    pub max_silence: Option<String>,
}

/// Where to start reading a file present at startup that has no checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Read its existing lines too (backfill).
    Beginning,
    /// Skip the complete lines it already holds: only what is written from now on.
    #[default]
    End,
}

/// Why a file source could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A glob in `paths` or `exclude` does not parse.
    #[error("source {name}: bad glob `{pattern}` in {field}: {error}")]
    Glob {
        /// The source's name.
        name: String,
        /// `paths` or `exclude`.
        field: &'static str,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        error: glob::PatternError,
    },
    /// `poll_interval` is not a duration, or is zero.
    #[error("source {name}: poll_interval: {error}")]
    PollInterval {
        /// The source's name.
        name: String,
        /// What is wrong with it.
        error: DurationError,
    },
    /// `max_line_bytes` is zero, so no line could ever be read.
    #[error("source {name}: max_line_bytes must be at least 1")]
    MaxLineBytes {
        /// The source's name.
        name: String,
    },
    /// `paths` is empty, so the source would never read anything.
    #[error("source {name}: paths is empty; name at least one file or glob")]
    NoPaths {
        /// The source's name.
        name: String,
    },
}

impl TailError {
    /// A short stable name for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            TailError::Glob { .. } => "bad_glob",
            TailError::PollInterval { .. } => "bad_poll_interval",
            TailError::MaxLineBytes { .. } => "bad_max_line_bytes",
            TailError::NoPaths { .. } => "no_paths",
        }
    }
}

/// What a tail counted over its run.
#[derive(Debug, Default, Clone)]
pub struct TailStats {
    /// Lines handed downstream.
    pub lines: u64,
    /// Bytes of the files consumed: every complete line with its newline, over-long ones too.
    pub bytes: u64,
    /// Lines longer than `max_line_bytes`, skipped.
    pub too_long: u64,
    /// Open files whose path stopped leading to them while they still existed (renamed).
    pub rotations: u64,
    /// Files that shrank or whose first bytes changed under us (copytruncate), and checkpoints
    /// beyond the end of their file; each was read again from offset 0.
    pub truncations: u64,
    /// Files opened.
    pub files_opened: u64,
    /// Files rotated while logwarden was stopped, found beside their path and read from their
    /// checkpoint on.
    pub rotated_found: u64,
    /// Files rotated while logwarden was stopped that could not be found (said and counted).
    pub rotated_lost: u64,
}

/// The live file-tail source: built from a [`TailConfig`], then [`Tail::run`].
pub struct Tail {
    core: Core,
    poll_interval: Duration,
}

impl Tail {
    /// Validates `cfg` and prepares the tail. `name` names the source in messages;
    /// `committed` maps checkpoint keys to the offsets the state database holds for them, so
    /// files seen again resume exactly there (keys that are not this module's are ignored).
    pub fn new(
        name: &str,
        cfg: &TailConfig,
        committed: HashMap<String, u64>,
    ) -> Result<Tail, TailError> {
        if cfg.paths.is_empty() {
            return Err(TailError::NoPaths { name: name.to_owned() });
        }
        let compile = |field: &'static str, pattern: &String| {
            glob::Pattern::new(pattern).map_err(|error| TailError::Glob {
                name: name.to_owned(),
                field,
                pattern: pattern.clone(),
                error,
            })
        };
        for pattern in &cfg.paths {
            compile("paths", pattern)?;
        }
        let exclude =
            cfg.exclude.iter().map(|p| compile("exclude", p)).collect::<Result<Vec<_>, _>>()?;
        let poll_interval = match &cfg.poll_interval {
            None => DEFAULT_POLL_INTERVAL,
            Some(text) => {
                let bad = |error| TailError::PollInterval { name: name.to_owned(), error };
                let span = duration::parse(text).map_err(bad)?;
                let nanos = u64::try_from(span.nanos()).unwrap_or(0);
                if nanos == 0 {
                    return Err(bad(DurationError {
                        text: text.clone(),
                        reason: "must be more than zero".into(),
                    }));
                }
                Duration::from_nanos(nanos)
            }
        };
        let max_line = cfg.max_line_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES);
        if max_line == 0 {
            return Err(TailError::MaxLineBytes { name: name.to_owned() });
        }
        let mut known: HashMap<FileId, Vec<Known>> = HashMap::new();
        for (key, offset) in committed {
            if let Some((id, fingerprint)) = parse_key(&key) {
                known.entry(id).or_default().push(Known { fingerprint, offset, path: None });
            }
        }
        let core = Core {
            aside: SetAside {
                name: name.to_owned(),
                max_line,
                counters: Arc::new(SourceCounters::default()),
                log: LogLimit::new(TOO_LONG_LOG_SECS),
            },
            heads: HashMap::new(),
            replaced: HashSet::new(),
            held: HashMap::new(),
            rescues: Vec::new(),
            warnings: Warnings { name: name.to_owned(), seen: HashMap::new() },
            paths: cfg.paths.clone(),
            exclude,
            read_from: cfg.read_from,
            max_line,
            close_after: poll_interval.saturating_mul(CLOSE_AFTER_IDLE_POLLS),
            files: Vec::new(),
            known,
            started: false,
            round: None,
            stats: TailStats::default(),
        };
        Ok(Tail { core, poll_interval })
    }

    /// Counts into `counters` (the daemon's `/metrics` reads them): lines set aside as too
    /// long, and rotated files lost while stopped.
    pub fn with_counters(mut self, counters: Arc<SourceCounters>) -> Tail {
        self.core.aside.counters = counters;
        self
    }

    /// What the state database remembers beyond offsets: the path each checkpoint was reached
    /// under (by key), and the key last committed under each path. With them, a file rotated
    /// while logwarden was stopped is looked for beside its path at startup.
    pub fn with_history(
        mut self,
        paths: &HashMap<String, PathBuf>,
        heads: &HashMap<PathBuf, String>,
    ) -> Tail {
        for (id, ks) in &mut self.core.known {
            for k in ks {
                k.path = paths.get(&key(*id, &k.fingerprint)).cloned();
            }
        }
        self.core.heads = heads.clone();
        self
    }

    /// Follows the files until `shutdown` becomes true (or its sender is dropped), sending
    /// batches into `tx`; a full channel holds the tail back, nothing is dropped or queued
    /// aside. Returns early if the receiver is gone. Stops within a poll interval of
    /// `shutdown`; a batch still waiting for room in the channel then is abandoned, which
    /// loses nothing, since its checkpoint was never committed and a restart reads it again.
    pub async fn run(
        self,
        tx: mpsc::Sender<Batch>,
        mut shutdown: watch::Receiver<bool>,
    ) -> TailStats {
        let Tail { mut core, poll_interval } = self;
        let mut stats = TailStats::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            // File I/O blocks; keep it off the async workers. The core moves in and out so it
            // needs no lock.
            let stepped = tokio::task::spawn_blocking(move || {
                let step = core.step(Instant::now());
                (core, step)
            })
            .await;
            let step = match stepped {
                Ok((c, step)) => {
                    core = c;
                    stats = core.stats.clone();
                    step
                }
                Err(e) => {
                    eprintln!("tail: the file-reading task ended abnormally: {e}");
                    return stats;
                }
            };
            match step {
                Step::Batch(batch) => {
                    tokio::select! {
                        sent = tx.send(batch) => if sent.is_err() { break },
                        _ = stopped(&mut shutdown) => break,
                    }
                }
                // More bytes are waiting: go round again without sleeping.
                Step::Busy => {}
                Step::Idle => {
                    tokio::select! {
                        _ = tokio::time::sleep(poll_interval) => {}
                        _ = stopped(&mut shutdown) => break,
                    }
                }
            }
        }
        stats
    }
}

/// Resolves once shutdown is asked for, or when nobody is left to ask for it.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// A file as the kernel knows it, whatever it is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// The hash of a file's first `len` bytes (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    hash: String,
}

impl Fingerprint {
    fn of(head: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(head);
        Fingerprint { len: head.len() as u64, hash: hex::encode(&digest[..8]) }
    }

    /// The fingerprint of the file's first `min(len, FINGERPRINT_BYTES)` bytes, or of fewer if
    /// the file is shorter now (which then never equals a fingerprint taken over `len`).
    fn read(file: &File, len: u64) -> std::io::Result<Fingerprint> {
        let want = len.min(FINGERPRINT_BYTES as u64) as usize;
        let mut head = vec![0; want];
        let mut got = 0;
        while got < want {
            match file.read_at(&mut head[got..], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Fingerprint::of(&head[..got]))
    }
}

fn key(id: FileId, fingerprint: &Fingerprint) -> String {
    format!("{}:{}:{}:{}", id.dev, id.ino, fingerprint.len, fingerprint.hash)
}

fn parse_key(key: &str) -> Option<(FileId, Fingerprint)> {
    let mut parts = key.splitn(4, ':');
    let dev = parts.next()?.parse().ok()?;
    let ino = parts.next()?.parse().ok()?;
    let len = parts.next()?.parse().ok()?;
    let hash = parts.next()?;
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((FileId { dev, ino }, Fingerprint { len, hash: hash.to_ascii_lowercase() }))
}

/// A checkpoint not yet claimed by an open file.
#[derive(Clone, Debug)]
struct Known {
    fingerprint: Fingerprint,
    offset: u64,
    /// The path it was reached under, when the state database says.
    path: Option<PathBuf>,
}

/// One open file and how far it has been read.
struct Watched {
    id: FileId,
    /// The path it was last found under, and the same as a symbol for origins.
    path: PathBuf,
    source: Sym,
    file: File,
    /// `None` until the file has bytes (and again after a truncation).
    fingerprint: Option<Fingerprint>,
    /// Next byte to read from the file.
    pos: u64,
    /// Just after the last complete line: the checkpoint. `pos - committed` bytes are in `buf`
    /// or were discarded by the framer as part of an over-long line.
    committed: u64,
    /// Lines framed since reading began (or since the last truncation).
    line: u64,
    framer: NewlineFramer,
    buf: BytesMut,
    /// Hard links left, as of the last poll: 0 once deleted.
    nlink: u64,
    /// When its path was first found not to lead to it any more.
    gone_since: Option<Instant>,
    /// When bytes last arrived (or when it was opened).
    last_data: Instant,
    /// The path whose new file waits until this one (its predecessor, rotated while logwarden
    /// was stopped) has been read to its end.
    holds: Option<PathBuf>,
}

impl Watched {
    fn set_path(&mut self, path: PathBuf) {
        self.source = Sym::from(path.to_string_lossy().as_ref());
        self.path = path;
    }

    /// Starts over from offset 0 as a new content: whatever was buffered belonged to the old.
    fn restart(&mut self, max_line: usize) {
        self.pos = 0;
        self.committed = 0;
        self.line = 0;
        self.buf.clear();
        self.framer = NewlineFramer::new(max_line);
        self.fingerprint = None;
    }
}

/// I/O trouble is reported once per file and message, not at every poll, since the file is
/// retried at every poll.
struct Warnings {
    name: String,
    seen: HashMap<PathBuf, String>,
}

impl Warnings {
    fn warn(&mut self, path: &Path, what: &str, error: &dyn Display) {
        let message = format!("{what}: {error}");
        if self.seen.get(path) != Some(&message) {
            eprintln!("tail: source {}: {}: {message}", self.name, path.display());
            self.seen.insert(path.to_owned(), message);
        }
    }

    fn clear(&mut self, path: &Path) {
        if !self.seen.is_empty() {
            self.seen.remove(path);
        }
    }
}

/// What one step of the core produced.
enum Step {
    /// Lines (or only a checkpoint, past over-long lines) from one file.
    Batch(Batch),
    /// A round ended with bytes still unread: go again now.
    Busy,
    /// A round ended with every file read to its end: wait a poll interval.
    Idle,
}

/// The files the globs match now, in the order found, each with the paths it is found under.
#[derive(Default)]
struct Found {
    files: Vec<(FileId, Vec<PathBuf>)>,
    index: HashMap<FileId, usize>,
}

impl Found {
    fn add(&mut self, id: FileId, path: PathBuf) {
        match self.index.get(&id) {
            Some(&i) => {
                let paths = &mut self.files[i].1;
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
            None => {
                self.index.insert(id, self.files.len());
                self.files.push((id, vec![path]));
            }
        }
    }
}

/// Where the current round stands.
struct Round {
    next: usize,
    busy: bool,
    /// Whether the round has read from the compressed rotated files yet.
    rescued: bool,
}

/// Lines over the limit: set aside, counted, and said at most once a minute.
struct SetAside {
    name: String,
    max_line: usize,
    counters: Arc<SourceCounters>,
    log: LogLimit,
}

impl SetAside {
    fn too_long(&self, path: &Path, offset: u64, len: usize, stats: &mut TailStats) {
        stats.too_long += 1;
        // A record read and set aside: in records_in as every source counts it, so that
        // records in = events out + quarantined holds for files too.
        self.counters.records_in.fetch_add(1, Ordering::Relaxed);
        self.counters.too_long.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.log.allow() {
            eprintln!(
                "logwarden: source `{}`: {}: the line at byte {offset} is {len} bytes, over \
                 max_line_bytes ({}): set aside (line_too_long), read on from the next line{}",
                self.name,
                path.display(),
                self.max_line,
                held_back(held)
            );
        }
    }
}

/// A batch being filled.
struct Fill {
    records: Vec<RawRecord>,
    bytes: usize,
    received: Option<Timestamp>,
}

impl Fill {
    fn new(received: Option<Timestamp>) -> Fill {
        Fill { records: Vec::new(), bytes: 0, received }
    }

    fn full(&self) -> bool {
        self.records.len() >= MAX_BATCH_RECORDS || self.bytes >= MAX_BATCH_BYTES
    }
}

/// One stream's framing state, borrowed for [`frame`].
struct Cursor<'a> {
    framer: &'a mut NewlineFramer,
    /// Bytes read and not yet framed; they end at stream offset `end`.
    buf: &'a mut BytesMut,
    end: u64,
    /// Just after the last line framed: the checkpoint.
    committed: &'a mut u64,
    /// Lines framed.
    line: &'a mut u64,
    /// The stream has ended: an unterminated last line is a line.
    eof: bool,
}

/// Frames the complete lines buffered for one stream into `fill`, until it is full
/// (`Ok(true)`) or no complete line is left (`Ok(false)`). An over-long line is set aside and
/// the position moves past it all the same. `source` names the records, `path` the file in
/// messages.
fn frame(
    c: Cursor<'_>,
    (source, path): (&Sym, &Path),
    fill: &mut Fill,
    aside: &SetAside,
    stats: &mut TailStats,
) -> std::io::Result<bool> {
    loop {
        if fill.full() {
            return Ok(true);
        }
        let decoded = if c.eof { c.framer.decode_eof(c.buf) } else { c.framer.decode(c.buf) };
        let Some(frame) = decoded? else { return Ok(false) };
        let start = *c.committed;
        *c.committed = c.end - c.buf.len() as u64;
        *c.line += 1;
        stats.bytes += *c.committed - start;
        match frame {
            Frame::Record(bytes) => {
                stats.lines += 1;
                fill.bytes += bytes.len();
                let origin = Origin { source: source.clone(), record: *c.line, offset: start };
                fill.records.push(RawRecord { bytes, origin, received: fill.received });
            }
            Frame::TooLong { len, .. } | Frame::Malformed { len, .. } => {
                aside.too_long(path, start, len, stats)
            }
        }
    }
}

/// The synchronous state machine behind [`Tail::run`]: no async, the clock passed in, so it can
/// be driven directly in tests.
struct Core {
    aside: SetAside,
    /// The key last committed under each path (see [`Tail::with_history`]).
    heads: HashMap<PathBuf, String>,
    /// Paths whose file replaced one rotated while logwarden was stopped: read from 0.
    replaced: HashSet<PathBuf>,
    /// Paths whose new file waits for its rotated predecessors (how many) to be read.
    held: HashMap<PathBuf, usize>,
    /// Rotated predecessors found compressed, read before the files that replaced them.
    rescues: Vec<rotated::Rescue>,
    warnings: Warnings,
    paths: Vec<String>,
    exclude: Vec<glob::Pattern>,
    read_from: ReadFrom,
    max_line: usize,
    close_after: Duration,
    files: Vec<Watched>,
    /// Committed checkpoints waiting for their file to be found, by device and inode.
    known: HashMap<FileId, Vec<Known>>,
    /// Whether the first scan has happened: only files found by it obey `read_from`.
    started: bool,
    round: Option<Round>,
    stats: TailStats,
}

impl Core {
    /// A round is: scan (globs, truncation, closing), then at most one batch from each file in
    /// turn. Each call returns the next batch of the round, or how the round ended.
    fn step(&mut self, now: Instant) -> Step {
        let mut round = match self.round.take() {
            Some(round) => round,
            None => {
                self.scan(now);
                Round { next: 0, busy: false, rescued: false }
            }
        };
        if !round.rescued {
            round.rescued = true;
            let (batch, more) = self.read_rescue();
            round.busy |= more;
            if let Some(batch) = batch {
                self.round = Some(round);
                return Step::Batch(batch);
            }
        }
        while round.next < self.files.len() {
            let i = round.next;
            round.next += 1;
            let (batch, more) = self.read(i, now);
            round.busy |= more;
            if let Some(batch) = batch {
                self.round = Some(round);
                return Step::Batch(batch);
            }
        }
        if round.busy { Step::Busy } else { Step::Idle }
    }

    /// Finds the files the globs match now, by identity, each with the paths it is found under.
    fn discover(&mut self) -> Found {
        let mut found = Found::default();
        for pattern in &self.paths {
            // Validated in `Tail::new`; a failure here cannot happen but costs nothing to report.
            let entries = match glob::glob(pattern) {
                Ok(entries) => entries,
                Err(e) => {
                    self.warnings.warn(Path::new(pattern), "bad glob", &e);
                    continue;
                }
            };
            for entry in entries {
                let path = match entry {
                    Ok(path) => path,
                    Err(e) => {
                        self.warnings.warn(e.path(), "listing failed", e.error());
                        continue;
                    }
                };
                let name = path.file_name().map(Path::new);
                if self
                    .exclude
                    .iter()
                    .any(|x| x.matches_path(&path) || name.is_some_and(|n| x.matches_path(n)))
                {
                    continue;
                }
                let meta = match std::fs::metadata(&path) {
                    Ok(meta) => meta,
                    // Deleted between the listing and now: nothing to say.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.warnings.warn(&path, "stat failed", &e);
                        continue;
                    }
                };
                if !meta.is_file() {
                    continue;
                }
                found.add(FileId::of(&meta), path);
            }
        }
        found
    }

    fn scan(&mut self, now: Instant) {
        let found = self.discover();
        let mut claimed = vec![false; found.files.len()];
        for w in &mut self.files {
            let Some(&i) = found.index.get(&w.id) else {
                if w.gone_since.is_none() {
                    w.gone_since = Some(now);
                    // A deleted file is not a rotation; a renamed one (still linked) is.
                    if w.file.metadata().is_ok_and(|m| m.nlink() > 0) {
                        self.stats.rotations += 1;
                    }
                }
                continue;
            };
            claimed[i] = true;
            w.gone_since = None;
            let paths = &found.files[i].1;
            // Renamed to another name that still matches (auth.log -> auth.log.1 under
            // auth.log*); a file under two matching names keeps the one it has.
            if !paths.contains(&w.path) {
                w.set_path(paths[0].clone());
                self.stats.rotations += 1;
            }
        }
        for i in 0..self.files.len() {
            self.check_truncation(i);
        }
        self.close_quiet(now);
        let startup = !self.started;
        if startup {
            self.rescue_rotated(&found, now);
        }
        for (i, (_, paths)) in found.files.into_iter().enumerate() {
            if claimed[i] || paths.iter().any(|p| self.held.contains_key(p)) {
                continue;
            }
            let path = &paths[0];
            match self.open(path, startup, now) {
                Ok(()) => self.warnings.clear(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.warnings.warn(path, "open failed", &e),
            }
        }
        self.started = true;
    }

    /// copytruncate: the file shrank below what we read, or its first bytes are no longer the
    /// ones it was fingerprinted by (truncated, then rewritten past our offset between two
    /// polls). Either way the content is new: read it from 0. Whatever was written between
    /// our last read and the truncation is lost; that is inherent to copytruncate (the copy,
    /// which holds those lines, is usually not one of the files we follow, and if it is, it is
    /// a new file read from 0).
    fn check_truncation(&mut self, i: usize) {
        let w = &mut self.files[i];
        let meta = match w.file.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                self.warnings.warn(&w.path, "stat failed", &e);
                return;
            }
        };
        w.nlink = meta.nlink();
        let size = meta.len();
        let rewritten = match &w.fingerprint {
            _ if size < w.pos => true,
            Some(fp) if size < fp.len => true,
            Some(fp) => match Fingerprint::read(&w.file, fp.len) {
                Ok(now) => now != *fp,
                Err(e) => {
                    self.warnings.warn(&w.path, "read failed", &e);
                    false
                }
            },
            None => false,
        };
        if rewritten {
            self.stats.truncations += 1;
            w.restart(self.max_line);
        }
    }

    /// Closes files whose path leads elsewhere once they have been quiet long enough.
    fn close_quiet(&mut self, now: Instant) {
        let close_after = self.close_after;
        let quiet = |w: &Watched| {
            w.gone_since.is_some_and(|gone| {
                now.saturating_duration_since(gone.max(w.last_data)) >= close_after
            })
        };
        let mut i = 0;
        while i < self.files.len() {
            if !quiet(&self.files[i]) {
                i += 1;
                continue;
            }
            let w = self.files.swap_remove(i);
            if !w.buf.is_empty() {
                eprintln!(
                    "tail: source {}: {}: closing with an unterminated last line of {} bytes, not \
                     handed on",
                    self.warnings.name,
                    w.path.display(),
                    w.buf.len()
                );
            }
            // Renamed out of the globs but still there: if it comes back (renamed back, or a
            // glob listing failed for a while), resume it rather than read it again.
            if w.nlink > 0
                && let Some(fingerprint) = w.fingerprint
            {
                self.known.entry(w.id).or_default().push(Known {
                    fingerprint,
                    offset: w.committed,
                    path: Some(w.path.clone()),
                });
            }
        }
    }

    /// Opens a newly found file and decides where to start in it.
    fn open(&mut self, path: &Path, startup: bool, now: Instant) -> std::io::Result<()> {
        let file = File::open(path)?;
        // Identify the handle, not the path: the path may have been replaced since the listing.
        let meta = file.metadata()?;
        let id = FileId::of(&meta);
        if !meta.is_file() || self.files.iter().any(|w| w.id == id) {
            return Ok(());
        }
        let len = meta.len();
        let mut fingerprint = None;
        let mut start = None;
        let mut truncated = false;
        let candidates = self.known.get(&id).map(Vec::as_slice).unwrap_or_default();
        if !candidates.is_empty() {
            // We knew another content under this inode, so this one was created since: none
            // of it has been read, whatever `read_from` says.
            start = Some(0);
        }
        for k in candidates {
            if len < k.fingerprint.len {
                // Shorter than the bytes it was fingerprinted by: truncated while we were away
                // (or a new file on a reused inode); either way, all of it is unread.
                truncated = true;
                continue;
            }
            if Fingerprint::read(&file, k.fingerprint.len)? != k.fingerprint {
                continue;
            }
            // Its first bytes are the ones we knew, but it ends before our offset: truncated
            // and rewritten while we were away.
            truncated = k.offset > len;
            start = Some(if truncated { 0 } else { k.offset });
            fingerprint = Some(k.fingerprint.clone());
            break;
        }
        if fingerprint.is_none() && len > 0 {
            fingerprint = Some(Fingerprint::read(&file, len)?);
        }
        let start = match start {
            Some(offset) => offset,
            None if startup && self.read_from == ReadFrom::End && !self.replaced.contains(path) => {
                self.end_of_lines(&file, len)?
            }
            None => 0,
        };
        // Claimed only now that nothing can fail before the file is pushed: a failed open is
        // retried at the next poll and must find its checkpoint still there. Checkpoints for
        // this inode that did not match belong to content it no longer holds.
        self.known.remove(&id);
        if truncated {
            self.stats.truncations += 1;
        }
        let source = Sym::from(path.to_string_lossy().as_ref());
        self.files.push(Watched {
            id,
            path: path.to_owned(),
            source,
            file,
            fingerprint,
            pos: start,
            committed: start,
            line: 0,
            framer: NewlineFramer::new(self.max_line),
            buf: BytesMut::new(),
            nlink: meta.nlink(),
            gone_since: None,
            last_data: now,
            holds: None,
        });
        self.stats.files_opened += 1;
        Ok(())
    }

    /// `read_from: end`: just after the last newline, so a line being written at startup is
    /// read whole when it is finished, not as a fragment. If the tail of the file holds no
    /// newline within a line's length, that line is over-long anyway: start at the end.
    fn end_of_lines(&self, file: &File, len: u64) -> std::io::Result<u64> {
        let window = len.min(self.max_line as u64 + 1).min(MAX_BATCH_BYTES as u64);
        let mut tail = vec![0; window as usize];
        let mut got = 0;
        while got < tail.len() {
            match file.read_at(&mut tail[got..], len - window + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(match memchr::memrchr(b'\n', &tail[..got]) {
            Some(i) => len - window + i as u64 + 1,
            None if window == len => 0,
            None => len,
        })
    }

    /// Reads file `i` up to one batch's worth. Returns the batch, if the checkpoint moved, and
    /// whether bytes are left for another round.
    fn read(&mut self, i: usize, now: Instant) -> (Option<Batch>, bool) {
        let Core { files, stats, warnings, aside, held, .. } = self;
        let w = &mut files[i];
        let before = w.committed;
        let mut fill = Fill::new(Some(Timestamp::now()));
        let mut read = 0;
        let more = loop {
            let cursor = Cursor {
                framer: &mut w.framer,
                buf: &mut w.buf,
                end: w.pos,
                committed: &mut w.committed,
                line: &mut w.line,
                eof: false,
            };
            match frame(cursor, (&w.source, &w.path), &mut fill, aside, stats) {
                Ok(true) => break true,
                Ok(false) => {}
                // NewlineFramer never fails (see its contract); if it ever did, stop this
                // file's read here rather than lose track of offsets.
                Err(e) => {
                    warnings.warn(&w.path, "framing failed", &e);
                    break false;
                }
            }
            if read >= MAX_BATCH_BYTES {
                break true;
            }
            let filled = w.buf.len();
            w.buf.resize(filled + READ_CHUNK, 0);
            let at = w.pos;
            match w.file.read_at(&mut w.buf[filled..], at) {
                Ok(0) => {
                    w.buf.truncate(filled);
                    warnings.clear(&w.path);
                    // A predecessor rotated while we were stopped, read to its end: the file
                    // that replaced it may be opened now.
                    if let Some(path) = w.holds.take() {
                        release(held, &path);
                        break true;
                    }
                    break false;
                }
                Ok(n) => {
                    w.buf.truncate(filled + n);
                    if w.fingerprint.is_none() {
                        // Only ever unset at offset 0 (empty when opened, or truncated), so
                        // these are the file's first bytes.
                        let head = &w.buf[filled..filled + n.min(FINGERPRINT_BYTES)];
                        w.fingerprint = Some(Fingerprint::of(if at == 0 { head } else { &[] }));
                    }
                    w.pos += n as u64;
                    w.last_data = now;
                    read += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => w.buf.truncate(filled),
                Err(e) => {
                    w.buf.truncate(filled);
                    warnings.warn(&w.path, "read failed", &e);
                    break false;
                }
            }
        };
        if w.committed == before {
            return (None, more);
        }
        let fingerprint = w.fingerprint.get_or_insert_with(|| Fingerprint::of(&[]));
        let checkpoint =
            Checkpoint { key: key(w.id, fingerprint), path: w.path.clone(), offset: w.committed };
        (Some(Batch { records: fill.records, checkpoint: Some(checkpoint), done: None }), more)
    }

    /// Up to one batch from the first compressed rotated file still to read; whether more is
    /// left.
    fn read_rescue(&mut self) -> (Option<Batch>, bool) {
        let Some(r) = self.rescues.first_mut() else { return (None, false) };
        let (batch, done) = match r.read(&self.aside, &mut self.stats) {
            Ok(read) => read,
            Err(e) => {
                // Damaged past the checkpoint: its end cannot be read, which is the loss the
                // rotated-lost count is for.
                eprintln!(
                    "logwarden: source `{}`: {}: rotated copy of {} unreadable past byte {}: {e}; \
                     the rest of it is lost",
                    self.aside.name,
                    r.copy.display(),
                    r.followed.display(),
                    r.committed()
                );
                self.stats.rotated_lost += 1;
                self.aside.counters.rotated_lost.fetch_add(1, Ordering::Relaxed);
                (None, true)
            }
        };
        if done {
            let r = self.rescues.remove(0);
            release(&mut self.held, &r.followed);
        }
        // Done or not, go round again: the rest of it, or the file that waited for it.
        (batch, true)
    }

    /// At startup: each path this source follows whose file is not the one last checkpointed
    /// under it was rotated while logwarden was stopped. Its checkpointed files are looked for
    /// beside it under rotated names and read from their offsets, before the new file under
    /// the path, which is read from its start; the file it held last, not found, is said once
    /// and counted.
    fn rescue_rotated(&mut self, found: &Found, now: Instant) {
        let mut by_path: BTreeMap<PathBuf, Vec<(FileId, Known)>> = BTreeMap::new();
        for (id, ks) in &self.known {
            for k in ks {
                if let Some(p) = &k.path
                    && self.follows(p)
                {
                    by_path.entry(p.clone()).or_default().push((*id, k.clone()));
                }
            }
        }
        for (path, candidates) in by_path {
            let live = found.files.iter().find(|(_, ps)| ps.contains(&path)).map(|(id, _)| *id);
            if live.is_some_and(|id| self.is_known(id, &path)) {
                // The file under the path is one we were reading: nothing rotated (older
                // checkpoints of the path are files read before it).
                continue;
            }
            let head = self.heads.get(&path).and_then(|k| parse_key(k));
            let head_is_candidate = head.as_ref().is_some_and(|h| {
                candidates.iter().any(|(id, k)| (*id, &k.fingerprint) == (h.0, &h.1))
            });
            let siblings = rotated::siblings(&path);
            let (mut any_found, mut head_found) = (false, false);
            let mut lost_at = None;
            for (id, k) in candidates {
                let is_head = head.as_ref().is_some_and(|h| h.0 == id && h.1 == k.fingerprint);
                // Renamed to a name the globs match: resumed as any found file is.
                let elsewhere = live != Some(id)
                    && found.index.get(&id).is_some_and(|&i| {
                        found.files[i].1.iter().any(|p| same_content(p, &k.fingerprint))
                    });
                // Decompressing every old copy to look for every old checkpoint would cost a
                // read of the whole archive at each such start: only the file the path held
                // last (or, without that record, every one) is looked for compressed.
                let copy = if elsewhere {
                    None
                } else {
                    rotated::find(&siblings, id, &k.fingerprint, is_head || !head_is_candidate)
                };
                let found_it = elsewhere || copy.is_some();
                any_found |= found_it;
                head_found |= found_it && is_head;
                if is_head && !found_it {
                    lost_at = Some(k.offset);
                }
                if let Some(copy) = copy {
                    self.follow_rotated(copy, id, &k, &path, now);
                    // Followed from here on (one found elsewhere keeps its checkpoint: it is
                    // opened, and resumed, as any found file is).
                    if let Some(ks) = self.known.get_mut(&id) {
                        ks.retain(|other| other.fingerprint != k.fingerprint);
                    }
                }
            }
            if live.is_none() {
                continue;
            }
            self.replaced.insert(path.clone());
            let lost = if head_is_candidate { !head_found } else { !any_found };
            if lost {
                self.stats.rotated_lost += 1;
                self.aside.counters.rotated_lost.fetch_add(1, Ordering::Relaxed);
                let at = lost_at.map_or(String::new(), |o| format!(" after byte {o}"));
                eprintln!(
                    "logwarden: source `{}`: {} was rotated while logwarden was stopped, and \
                     the file it held is not beside it under a rotated name ({}.1, {}-DATE, \
                     either .gz): whatever was written to it{at} since is lost; the new {} is \
                     read from its start",
                    self.aside.name,
                    path.display(),
                    file_name(&path),
                    file_name(&path),
                    file_name(&path),
                );
            }
        }
    }

    /// Starts reading the rotated `copy` of the file checkpointed as (`id`, `k`) under `path`.
    fn follow_rotated(
        &mut self,
        copy: rotated::Copy,
        id: FileId,
        k: &Known,
        path: &Path,
        now: Instant,
    ) {
        let started = match copy {
            rotated::Copy::Plain(file, at) => {
                let len = file.metadata().map_or(0, |m| m.len());
                if k.offset > len {
                    // Shorter than what we read of it: not a copy to resume after all.
                    return;
                }
                let meta_id = file.metadata().map(|m| FileId::of(&m)).unwrap_or(id);
                eprintln!(
                    "logwarden: source `{}`: {} was rotated while logwarden was stopped: \
                     reading the rest of it from {} (byte {} on)",
                    self.aside.name,
                    path.display(),
                    at.display(),
                    k.offset
                );
                let nlink = file.metadata().map_or(1, |m| m.nlink());
                self.files.push(Watched {
                    id: meta_id,
                    // Its lines and checkpoints keep the name it was followed under, as a
                    // file renamed away while running does, so a restart midway finds it.
                    path: path.to_owned(),
                    source: Sym::from(path.to_string_lossy().as_ref()),
                    file,
                    fingerprint: Some(k.fingerprint.clone()),
                    pos: k.offset,
                    committed: k.offset,
                    line: 0,
                    framer: NewlineFramer::new(self.max_line),
                    buf: BytesMut::new(),
                    nlink,
                    gone_since: None,
                    last_data: now,
                    holds: Some(path.to_owned()),
                });
                self.stats.files_opened += 1;
                true
            }
            rotated::Copy::Gzip(at) => {
                let rescue = rotated::Rescue::open(
                    &at,
                    key(id, &k.fingerprint),
                    path,
                    k.offset,
                    self.max_line,
                );
                match rescue {
                    Ok(Some(r)) => {
                        eprintln!(
                            "logwarden: source `{}`: {} was rotated and compressed while \
                             logwarden was stopped: reading the rest of it from {} (byte {} \
                             on, decompressed)",
                            self.aside.name,
                            path.display(),
                            at.display(),
                            k.offset
                        );
                        self.rescues.push(r);
                        true
                    }
                    // Read to its end before we stopped.
                    Ok(None) => false,
                    Err(e) => {
                        self.warnings.warn(&at, "reading the rotated copy failed", &e);
                        false
                    }
                }
            }
        };
        if started {
            self.stats.rotated_found += 1;
            *self.held.entry(path.to_owned()).or_default() += 1;
        }
    }

    /// Whether `path` is one this source follows: matched by a glob, not excluded.
    fn follows(&self, path: &Path) -> bool {
        let name = path.file_name().map(Path::new);
        self.paths.iter().any(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches_path(path)))
            && !self
                .exclude
                .iter()
                .any(|x| x.matches_path(path) || name.is_some_and(|n| x.matches_path(n)))
    }

    /// Whether the file at `path` (identity `id`) is one a checkpoint knows, by its first
    /// bytes.
    fn is_known(&self, id: FileId, path: &Path) -> bool {
        let Some(ks) = self.known.get(&id) else { return false };
        ks.iter().any(|k| same_content(path, &k.fingerprint))
    }
}

/// Whether the file at `path` starts with the bytes `fp` was taken of.
fn same_content(path: &Path, fp: &Fingerprint) -> bool {
    File::open(path).is_ok_and(|f| Fingerprint::read(&f, fp.len).is_ok_and(|now| now == *fp))
}

/// One predecessor of `path` read: the path's new file may be opened once none is left.
fn release(held: &mut HashMap<PathBuf, usize>, path: &Path) {
    if let Some(n) = held.get_mut(path) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            held.remove(path);
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// A checkpoint at the end of every file `cfg` matches now, as `logwarden state reset` writes
/// them so that a new state database does not read the files' history again (and alert on
/// it). Keys are the ones [`Tail`] looks its files up by.
pub fn positions_at_end(name: &str, cfg: &TailConfig) -> Result<Vec<Checkpoint>, TailError> {
    let mut core = Tail::new(name, cfg, HashMap::new())?.core;
    let mut out = Vec::new();
    for (_, paths) in core.discover().files {
        let Some(path) = paths.into_iter().next() else { continue };
        // A file that went away or cannot be read now is left to the tail, which says so.
        let Ok(file) = File::open(&path) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let len = meta.len();
        let Ok(fingerprint) = Fingerprint::read(&file, len) else { continue };
        out.push(Checkpoint { key: key(FileId::of(&meta), &fingerprint), path, offset: len });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
