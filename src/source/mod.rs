//! Sources: where raw records come from. A source only frames bytes into [`RawRecord`]s; it
//! never parses them.

pub mod accept;
pub mod cloudtrail;
pub mod cloudtrail_dir;
pub mod conns;
pub mod detect;
pub mod file;
pub mod http_serve;
pub mod intake;
pub mod log_every;
pub mod log_limit;
pub mod pushback;
pub mod stdin;
pub mod syslog;
pub mod tail;
pub mod udp_drops;

use bytes::Bytes;

use crate::event::{Sym, Timestamp};

/// One framed record as it arrived: a syslog line, a CloudTrail record, a JSON line.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The record's bytes, without framing (no trailing newline, no octet count).
    pub bytes: Bytes,
    /// Where it came from.
    pub origin: Origin,
    /// When logwarden received it; `None` on offline replay, so replays are deterministic.
    pub received: Option<Timestamp>,
}

/// Where a record came from, precise enough for an operator to find it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file path, the peer's `ip:port` for network sources, or the input's name.
    pub source: Sym,
    /// 1-based line number for line-framed input, record index for JSON documents.
    pub record: u64,
    /// Byte offset of the record's first byte in the (decompressed) stream.
    pub offset: u64,
}

/// Records from one live source, handed downstream as one unit, with how far they take the
/// source: once the batch has been processed (its events detected on), the daemon commits
/// `checkpoint` to the state database, so a restart resumes after it and never before it.
#[derive(Debug)]
pub struct Batch {
    /// The records, in the order they were read.
    pub records: Vec<RawRecord>,
    /// Where the source stands after these records (file tail only).
    pub checkpoint: Option<Checkpoint>,
    /// Fired once the records are committed downstream (their events detected on, or
    /// buffered by the forwarder): a source that acknowledges upstream (NATS) waits for it,
    /// so a crash before the commit has the records delivered again, not lost.
    pub done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A position in one tailed file, under a key that names the file whatever it is called now
/// (rotation renames files; the key follows the content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The file's identity (see `tail.rs`): stable across renames, new for a new file.
    pub key: String,
    /// The path it was read under when this position was reached (for operators).
    pub path: std::path::PathBuf,
    /// Byte offset of the first byte not yet handed downstream.
    pub offset: u64,
}

/// What a live source counts as it runs; the daemon's `/metrics` reads it. Records handed
/// downstream are `records_in - too_long - malformed - dropped`; the parser accounts for them
/// from there (events out, quarantined).
#[derive(Debug, Default)]
pub struct SourceCounters {
    /// Records framed (or datagrams received), bad ones included.
    pub records_in: std::sync::atomic::AtomicU64,
    /// Bytes read.
    pub bytes_in: std::sync::atomic::AtomicU64,
    /// Records dropped because the pipeline was full (UDP only: the others wait).
    pub dropped: std::sync::atomic::AtomicU64,
    /// Records over the length limit, skipped.
    pub too_long: std::sync::atomic::AtomicU64,
    /// Broken octet counts, skipped up to the next newline.
    pub malformed: std::sync::atomic::AtomicU64,
    /// A listener's connections: accepted, open, refused, closed to make room or for
    /// idleness; accept failures; requests turned away busy.
    pub conns: std::sync::Arc<conns::ConnCounters>,
    /// TLS handshakes that failed or timed out (no client certificate, wrong CA...).
    pub tls_failures: std::sync::atomic::AtomicU64,
    /// The UDP socket's inode, whose kernel drop count `/metrics` reports (0: not UDP).
    pub udp_inode: std::sync::atomic::AtomicU64,
    /// Tailed files rotated while logwarden was stopped whose rotated copy could not be found
    /// beside them: the end they had unread is lost, and this says so.
    pub rotated_lost: std::sync::atomic::AtomicU64,
    /// Whole files that could not be read (CloudTrail directories), by reason.
    pub file_failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl SourceCounters {
    /// Counts a whole file that could not be read, for `reason`.
    pub fn file_failed(&self, reason: &'static str) {
        if let Ok(mut m) = self.file_failures.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }
}

/// One entry of `sources:` in logwarden.yml, by `type`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceConfig {
    /// Syslog datagrams.
    SyslogUdp(syslog::SyslogUdpConfig),
    /// Syslog over TCP.
    SyslogTcp(syslog::SyslogTcpConfig),
    /// Files followed as they are written.
    File(tail::TailConfig),
    /// CloudTrail files delivered under a directory tree.
    CloudtrailDir(cloudtrail_dir::CloudTrailDirConfig),
    /// Standard input.
    Stdin(stdin::StdinConfig),
    /// `POST /ingest` (NDJSON of raw lines or ECS events), what forwarders send to.
    Http(intake::IntakeConfig),
    /// One partition of forwarded events from NATS JetStream (needs the `nats` feature).
    Nats(crate::forward::NatsSourceConfig),
}

impl SourceConfig {
    /// `max_silence` as written, if set.
    pub fn max_silence(&self) -> Option<&str> {
        match self {
            SourceConfig::SyslogUdp(c) => c.max_silence.as_deref(),
            SourceConfig::SyslogTcp(c) => c.max_silence.as_deref(),
            SourceConfig::File(c) => c.max_silence.as_deref(),
            SourceConfig::CloudtrailDir(c) => c.max_silence.as_deref(),
            SourceConfig::Stdin(c) => c.max_silence.as_deref(),
            SourceConfig::Http(c) => c.max_silence.as_deref(),
            SourceConfig::Nats(c) => c.max_silence.as_deref(),
        }
    }
}
