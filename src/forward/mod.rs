//! Forwarding (sidecar mode, DESIGN §1 and §7): normalized events are made durable in an
//! on-disk buffer, then sent in order to an aggregator's HTTP intake or to NATS JetStream, and
//! deleted from the buffer only once the receiver acknowledged them.
//!
//! ```yaml
//! forward:
//!   http: {url: "http://agg:9600/ingest", token: "${AGG_TOKEN}", timeout: 10s, compression: gzip}
//!   # or: nats: {url: "nats://127.0.0.1:4222", stream: LOGWARDEN, subject: logwarden.events,
//!   #            partitions: 4, partition_by: [host.name]}
//!   batch_max_events: 1000
//!   batch_max_bytes: 4MiB        # of ECS lines in one request (the intake takes 16 MiB)
//!   batch_max_wait: 1s
//!   buffer_max_bytes: 256MiB     # or a plain number of bytes
//!   where:                       # optional: forward only what matches (rule detection syntax)
//!     failed: {event.dataset: sshd, event.outcome: failure}
//!     condition: failed
//!   fields: ["@timestamp", host.name, user.name, source.ip]   # optional: only these
//! ```
//!
//! Delivery is at least once. A batch is deleted after the receiver's acknowledgement (an HTTP
//! 2xx, every JetStream publish ack), so a crash or an outage loses nothing; a batch whose
//! acknowledgement was lost (the receiver took it, then the connection broke) is sent again.
//! JetStream drops those repeats itself (each message carries an id made of the buffer's
//! instance id and its place in the buffer); the HTTP intake does not.
//!
//! Backpressure instead of loss: when the buffer holds `buffer_max_bytes`, `enqueue` waits
//! until the sender has freed room, so the sources slow down (TCP, files) as they do when the
//! detection pipeline is full.

pub mod buffer;
pub mod http;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(test)]
mod tests;

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};
use tokio::sync::{Notify, watch};

use self::buffer::{Buffer, Entry, Pending};
use crate::event::{Event, write_json};
use crate::output::{Projection, Where};
use crate::sink::outbox::RetryPolicy;

/// How long `run` keeps sending what is buffered after shutdown was asked for; what is left
/// stays in the buffer for the next start.
const DRAIN: Duration = Duration::from_secs(5);
/// Longest sleep of an `enqueue` waiting for room: short enough to notice room quickly, long
/// enough not to spin.
const FULL_POLL_MAX: Duration = Duration::from_millis(50);
/// Typical length of one ECS line, to size buffers up front.
const LINE_BYTES: usize = 512;

/// `forward:` in logwarden.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Send to an aggregator's HTTP intake (`POST /ingest`).
    #[serde(default)]
    pub http: Option<HttpConfig>,
    /// Publish to NATS JetStream (needs a build with the `nats` feature).
    #[serde(default)]
    pub nats: Option<NatsConfig>,
    /// Most events in one request or publish round (default 1000).
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: NonZeroUsize,
    /// Most bytes of ECS lines in one request or publish round, below the receiver's body
    /// limit (default 4MiB; the intake takes up to 16 MiB). One event larger than this still
    /// goes, alone.
    #[serde(default = "default_batch_max_bytes", deserialize_with = "byte_size")]
    pub batch_max_bytes: u64,
    /// How long fewer than `batch_max_events` events wait for company before they are sent
    /// anyway (default 1s).
    #[serde(default = "default_batch_max_wait", deserialize_with = "duration")]
    pub batch_max_wait: Duration,
    /// Size of the on-disk buffer at which `enqueue` waits for the sender (default 256MiB;
    /// `64MiB`, `1GB` or a number of bytes).
    #[serde(default = "default_buffer_max_bytes", deserialize_with = "byte_size")]
    pub buffer_max_bytes: u64,
    /// First delay after a failed send; it doubles with each further failure (default 500ms).
    #[serde(default = "default_retry_initial", deserialize_with = "duration")]
    pub retry_initial: Duration,
    /// Longest delay between attempts, and the delay after a refusal (a 4xx other than 408 and
    /// 429) that will not go away by itself (default 30s).
    #[serde(default = "default_retry_max", deserialize_with = "duration")]
    pub retry_max: Duration,
    /// Forward only the events this detection block matches (as an output's `where:`).
    #[serde(default, rename = "where")]
    pub r#where: Option<serde_json::Value>,
    /// Forward only these fields of each event (as an output's `fields:`); must include
    /// `nats.partition_by`, which the sender reads from the forwarded event.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// `forward.http`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The aggregator's intake (`http://agg:9600/ingest`).
    pub url: String,
    /// Bearer token the intake requires (from `${ENV}` or `${file:...}`).
    #[serde(default)]
    pub token: Option<String>,
    /// How long one request may take, connecting included (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// `gzip` or `none` (default).
    #[serde(default)]
    pub compression: Compression,
}

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As is.
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// `forward.nats`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL (`nats://127.0.0.1:4222`).
    pub url: String,
    /// JetStream stream, created when missing with subjects `{subject}.>` (default
    /// `LOGWARDEN`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subject prefix; events go to `{subject}.{partition}` (default `logwarden.events`).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Number of partitions (default 1).
    #[serde(default = "default_partitions")]
    pub partitions: NonZeroU32,
    /// Fields whose values choose the partition, so that all events of one key reach the
    /// same detector (`[host.name]`, `[source.ip]`); required with more than one partition.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// How long connecting, or waiting for a publish acknowledgement, may take (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

/// `type: nats` source: one partition of the forwarded events, read by a detector
/// (`nats::consume`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// Server URL (`nats://127.0.0.1:4222`).
    pub url: String,
    /// JetStream stream (default `LOGWARDEN`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subject prefix, as the forwarders have it (default `logwarden.events`).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// The partition this detector reads (`{subject}.{partition}`).
    pub partition: u32,
    /// Durable consumer name; the server remembers what it acknowledged (default
    /// `logwarden-{partition}`).
    #[serde(default)]
    pub durable: Option<String>,
    /// Most records in one batch handed downstream (default 512).
    #[serde(default = "default_source_batch")]
    pub batch_max_events: NonZeroUsize,
    /// How long connecting or a server request may take (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How long the server waits for an acknowledgement before it delivers a message again
    /// (default 30s): after a detector crashed, what it had not committed comes back this long
    /// after it was first delivered. A batch waiting for room downstream is kept alive with
    /// "in progress" at a third of it. Set when the durable consumer is created; the server
    /// keeps an existing consumer's.
    #[serde(default = "default_ack_wait", deserialize_with = "duration")]
    pub ack_wait: Duration,
    /// Alert when nothing arrives for this long (`10m`).
    #[serde(default)]
    pub max_silence: Option<String>,
}

fn default_batch_max_events() -> NonZeroUsize {
    NonZeroUsize::new(1000).unwrap_or(NonZeroUsize::MIN)
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_source_batch() -> NonZeroUsize {
    NonZeroUsize::new(512).unwrap_or(NonZeroUsize::MIN)
}
fn default_batch_max_bytes() -> u64 {
    4 << 20
}
fn default_batch_max_wait() -> Duration {
    Duration::from_secs(1)
}
fn default_buffer_max_bytes() -> u64 {
    256 << 20
}
fn default_retry_initial() -> Duration {
    Duration::from_millis(500)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(30)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_stream() -> String {
    "LOGWARDEN".to_owned()
}
fn default_subject() -> String {
    "logwarden.events".to_owned()
}
fn default_partitions() -> NonZeroU32 {
    NonZeroU32::MIN
}

impl ForwardConfig {
    /// Checks what serde cannot (exactly one destination, sane limits, NATS names); no I/O.
    pub fn validate(&self) -> Result<(), ForwardError> {
        let bad = |m: String| Err(ForwardError::Config(m));
        match (&self.http, &self.nats) {
            (None, None) => return bad("set `http` or `nats`".into()),
            (Some(_), Some(_)) => return bad("set `http` or `nats`, not both".into()),
            (Some(h), None) => {
                http::parse_url(&h.url)?;
                if h.timeout.is_zero() {
                    return bad("`http.timeout` must be above 0".into());
                }
            }
            (None, Some(n)) => {
                if cfg!(not(feature = "nats")) {
                    return bad("`nats` needs a logwarden built with the `nats` feature".into());
                }
                check_nats_names(&n.stream, &n.subject)?;
                if n.partitions.get() > 1 && n.partition_by.is_empty() {
                    return bad(format!(
                        "`nats.partitions` is {} but `nats.partition_by` is empty: name the \
                         fields that keep one key's events together",
                        n.partitions
                    ));
                }
                if n.timeout.is_zero() {
                    return bad("`nats.timeout` must be above 0".into());
                }
            }
        }
        if self.buffer_max_bytes == 0 || self.batch_max_bytes == 0 {
            return bad("`buffer_max_bytes` and `batch_max_bytes` must be above 0".into());
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return bad("`retry_initial` must be above 0 and at most `retry_max`".into());
        }
        if let (Some(fields), Some(n)) = (&self.fields, &self.nats)
            && let Some(missing) = n.partition_by.iter().find(|f| !fields.contains(f))
        {
            return bad(format!(
                "`fields` leaves out `{missing}`, which `nats.partition_by` reads from the \
                 forwarded event: add it"
            ));
        }
        self.selection().map(|_| ())
    }

    /// Where events go, for people: the intake URL or the NATS stream, without credentials.
    pub fn describe(&self) -> String {
        match (&self.http, &self.nats) {
            (Some(h), _) => match h.url.split_once('@') {
                // `http://user:pw@host/...`: keep the scheme and what follows the credentials.
                Some((before, after)) => {
                    let scheme = before.split_once("://").map_or("", |(s, _)| s);
                    format!("{scheme}://{after}")
                }
                None => h.url.clone(),
            },
            (None, Some(n)) => {
                let server = n.url.rsplit_once('@').map_or(n.url.as_str(), |(_, s)| s);
                let server = server.rsplit_once("://").map_or(server, |(_, s)| s);
                format!("NATS stream `{}` at {server}, {} partitions", n.stream, n.partitions)
            }
            (None, None) => "nowhere".to_owned(),
        }
    }

    /// The compiled `where:` and `fields:`.
    fn selection(&self) -> Result<(Option<Where>, Option<Projection>), ForwardError> {
        let err = |e: crate::output::OutputError| ForwardError::Config(e.to_string());
        let filter = self.r#where.as_ref().map(|w| Where::compile("forward", w)).transpose();
        let fields = self.fields.as_deref().map(|f| Projection::compile("forward", f)).transpose();
        Ok((filter.map_err(err)?, fields.map_err(err)?))
    }
}

impl NatsSourceConfig {
    /// Checks the stream and subject names; no I/O.
    pub fn validate(&self) -> Result<(), ForwardError> {
        if self.ack_wait < Duration::from_secs(1) {
            return Err(ForwardError::Config("nats source: `ack_wait` must be at least 1s".into()));
        }
        check_nats_names(&self.stream, &self.subject)
    }

    /// The durable consumer's name.
    pub fn durable_name(&self) -> String {
        self.durable.clone().unwrap_or_else(|| format!("logwarden-{}", self.partition))
    }
}

/// JetStream refuses these in stream names, and a wildcard or empty token in the subject
/// prefix would make `{subject}.{partition}` match other partitions.
fn check_nats_names(stream: &str, subject: &str) -> Result<(), ForwardError> {
    let bad = |m: String| Err(ForwardError::Config(m));
    if stream.is_empty() || stream.contains(['.', ' ', '*', '>', '/', '\\']) {
        return bad(format!(
            "stream name `{stream}` must be non-empty, without . * > / \\ or spaces"
        ));
    }
    if subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">" || t.contains(' ')) {
        return bad(format!("subject `{subject}` must be dot-separated tokens without wildcards"));
    }
    Ok(())
}

/// Why forwarding failed. `run` retries whatever it can; only `new` and `enqueue` return
/// these to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The `forward:` section does not make sense.
    #[error("forward: {0}")]
    Config(String),
    /// The buffer could not be read or written (redb: open, transaction, storage, commit).
    #[error("forward buffer {}: {detail}", path.display())]
    Buffer {
        /// The state database file.
        path: PathBuf,
        /// redb's message.
        detail: String,
    },
    /// A stored batch does not decode (written by a newer version, or damaged).
    #[error("forward buffer {}: batch {seq} does not decode: {detail}", path.display())]
    Corrupt {
        /// The state database file.
        path: PathBuf,
        /// The batch's sequence number.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// The receiver could not be reached or did not answer in time.
    #[error("forward to {target}: {detail}")]
    Unreachable {
        /// Where to (`http://agg:9600`, `nats://...`), without secrets.
        target: String,
        /// The transport's message.
        detail: String,
    },
    /// The HTTP receiver answered with an error status.
    #[error("forward to {target}: answered {status}: {body}")]
    Status {
        /// Where to, without secrets.
        target: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// NATS refused: the stream could not be created, a publish was not acknowledged.
    #[error("forward to {target}: {detail}")]
    Nats {
        /// The server, without credentials.
        target: String,
        /// What the server or client said.
        detail: String,
    },
}

impl ForwardError {
    /// A short, fixed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ForwardError::Config(_) => "config",
            ForwardError::Buffer { .. } => "buffer",
            ForwardError::Corrupt { .. } => "corrupt",
            ForwardError::Unreachable { .. } => "unreachable",
            ForwardError::Status { .. } => "status",
            ForwardError::Nats { .. } => "nats",
        }
    }

    /// Whether trying again soon may help. The rest (a refusal such as 401 or 400, a batch
    /// that does not decode) needs an operator; `run` still retries them, at the slowest
    /// pace, since dropping events is never its call.
    pub fn is_retriable(&self) -> bool {
        match self {
            ForwardError::Config(_) | ForwardError::Corrupt { .. } => false,
            ForwardError::Buffer { .. }
            | ForwardError::Unreachable { .. }
            | ForwardError::Nats { .. } => true,
            ForwardError::Status { status, .. } => {
                *status == 408 || *status == 429 || (500..600).contains(status)
            }
        }
    }
}

/// What the forwarder has done so far, for `/metrics` and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardStats {
    /// Events in the buffer, not yet acknowledged.
    pub buffered_events: u64,
    /// Bytes of ECS lines in the buffer.
    pub buffered_bytes: u64,
    /// Events acknowledged by the receiver (and deleted from the buffer).
    pub sent_events: u64,
    /// Batches acknowledged.
    pub sent_batches: u64,
    /// Failed send attempts, each followed by a retry.
    pub retries: u64,
    /// Of those, refusals that will not pass by themselves (a 4xx other than 408/429).
    pub rejected: u64,
    /// `enqueue` calls that had to wait for room in the buffer.
    pub full_waits: u64,
    /// Events the `where:` filter kept back (never buffered nor sent).
    pub filtered_out: u64,
    /// The latest failure, while it lasts (cleared by the next success).
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Counters {
    sent_events: AtomicU64,
    sent_batches: AtomicU64,
    retries: AtomicU64,
    rejected: AtomicU64,
    full_waits: AtomicU64,
    filtered_out: AtomicU64,
}

/// Where batches go.
enum Transport {
    Http(http::HttpSender),
    #[cfg(feature = "nats")]
    Nats(Box<nats::NatsSender>),
}

impl Transport {
    async fn send(&self, entries: &[Entry]) -> Result<(), ForwardError> {
        match self {
            Transport::Http(h) => h.send(entries).await,
            #[cfg(feature = "nats")]
            Transport::Nats(n) => n.send(entries).await,
        }
    }

    fn target(&self) -> &str {
        match self {
            Transport::Http(h) => h.target(),
            #[cfg(feature = "nats")]
            Transport::Nats(n) => n.target(),
        }
    }
}

/// The forwarder: [`Forwarder::enqueue`] makes events durable; [`Forwarder::run`] sends them.
pub struct Forwarder {
    buffer: Buffer,
    transport: Transport,
    batch_max_events: usize,
    batch_max_bytes: usize,
    batch_max_wait: Duration,
    buffer_max_bytes: u64,
    retry: RetryPolicy,
    /// Rung by `enqueue` so that `run` need not poll.
    wake: Notify,
    /// Set when `run` has returned: `enqueue` then stores without waiting for room, since no
    /// one would make any (what the sources still hand over at shutdown is kept, not lost).
    stopped: AtomicBool,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    /// `where:`: events it does not match are not forwarded.
    filter: Option<Where>,
    /// `fields:`: what of an event is forwarded.
    fields: Option<Projection>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("target", &self.transport.target())
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A forwarder for `cfg` whose buffer lives in `db` (the daemon's state database, at
    /// `db_path`); what a previous run left in the buffer is sent first.
    pub fn new(
        cfg: &ForwardConfig,
        db: Arc<crate::state::StateDb>,
        db_path: PathBuf,
    ) -> Result<Forwarder, ForwardError> {
        cfg.validate()?;
        let (filter, fields) = cfg.selection()?;
        let buffer = Buffer::open(db, db_path)?;
        let transport = match (&cfg.http, &cfg.nats) {
            (Some(h), _) => Transport::Http(http::HttpSender::new(h)?),
            #[cfg(feature = "nats")]
            (None, Some(n)) => {
                Transport::Nats(Box::new(nats::NatsSender::new(n, buffer.instance())))
            }
            // `validate` refused this already.
            _ => return Err(ForwardError::Config("no destination".into())),
        };
        Ok(Forwarder {
            buffer,
            transport,
            batch_max_events: cfg.batch_max_events.get(),
            batch_max_bytes: usize::try_from(cfg.batch_max_bytes).unwrap_or(usize::MAX),
            batch_max_wait: cfg.batch_max_wait,
            buffer_max_bytes: cfg.buffer_max_bytes,
            retry: RetryPolicy {
                attempts: u32::MAX,
                base: cfg.retry_initial,
                max: cfg.retry_max,
                send_timeout: Duration::ZERO,
            },
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            counters: Counters::default(),
            last_error: Mutex::new(None),
            filter,
            fields,
        })
    }

    /// Appends `events` to the buffer as ECS JSON lines, in one durable transaction: when it
    /// returns they survive a crash, so this is the acknowledgement a source may commit on.
    ///
    /// Blocks (short sleeps, not a busy loop) while the buffer holds `buffer_max_bytes` or
    /// more, until `run` has sent some: call it from a thread of its own or
    /// `spawn_blocking`, never from an async task.
    pub fn enqueue(&self, events: &[Event]) -> Result<(), ForwardError> {
        if events.is_empty() {
            return Ok(());
        }
        self.wait_for_room();
        let capacity = |left: usize| left.min(self.batch_max_events) * LINE_BYTES;
        let mut batches = Vec::new();
        let mut p = Pending::with_capacity(capacity(events.len()));
        let mut line = Vec::with_capacity(LINE_BYTES);
        for (i, e) in events.iter().enumerate() {
            if let Some(w) = &self.filter
                && !w.matches(e)
            {
                self.counters.filtered_out.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            line.clear();
            match &self.fields {
                Some(p) => p.write(e, &mut line),
                None => write_json(e, &mut line),
            }
            // Cut where `run` would, so that a stored batch is always sent whole and within
            // the limits (one event over `batch_max_bytes` alone excepted).
            let full = p.events() as usize >= self.batch_max_events
                || (p.events() > 0 && p.bytes() + line.len() + 1 > self.batch_max_bytes);
            if full {
                let next = Pending::with_capacity(capacity(events.len() - i));
                batches.push(std::mem::replace(&mut p, next));
            }
            p.push_line(&line);
        }
        if p.events() > 0 {
            batches.push(p);
        }
        if batches.is_empty() {
            return Ok(());
        }
        self.buffer.append(batches)?;
        self.wake.notify_one();
        Ok(())
    }

    fn wait_for_room(&self) {
        let mut pause = Duration::from_millis(1);
        let mut counted = false;
        while self.buffer.bytes() >= self.buffer_max_bytes && !self.stopped.load(Ordering::SeqCst) {
            if !counted {
                self.counters.full_waits.fetch_add(1, Ordering::Relaxed);
                counted = true;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(FULL_POLL_MAX);
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ForwardStats {
        let c = &self.counters;
        ForwardStats {
            buffered_events: self.buffer.events(),
            buffered_bytes: self.buffer.bytes(),
            sent_events: c.sent_events.load(Ordering::Relaxed),
            sent_batches: c.sent_batches.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            full_waits: c.full_waits.load(Ordering::Relaxed),
            filtered_out: c.filtered_out.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|g| g.clone()),
        }
    }

    /// Sends what is buffered until `shutdown` turns true (or its sender is dropped), then
    /// keeps sending for at most 5 s while the receiver accepts; what is left stays buffered.
    ///
    /// A batch is up to `batch_max_events` events (and `batch_max_bytes`), taken in order
    /// once that many are buffered or the oldest has waited `batch_max_wait`. It is deleted only after the
    /// receiver acknowledged it; failures are retried forever with exponential backoff and
    /// jitter (`retry_initial` doubling to `retry_max`), refusals at `retry_max` and logged
    /// each time. A send in progress is not interrupted by shutdown (the transports bound it
    /// with their timeout), so a batch is not cut off halfway.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> ForwardStats {
        let mut stop = false;
        let mut failures = 0u32;
        // When the buffer was first seen holding less than a full batch.
        let mut since: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        loop {
            stop = stop || *shutdown.borrow();
            if stop && drain_until.is_none() {
                drain_until = Some(Instant::now() + DRAIN);
            }
            if drain_until.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let buffered = self.buffer.events();
            if buffered == 0 {
                since = None;
                if stop {
                    break;
                }
                self.idle(&mut shutdown, &mut stop, None).await;
                continue;
            }
            let full = buffered >= self.batch_max_events as u64
                || self.buffer.bytes() >= self.batch_max_bytes as u64;
            if !stop && !full {
                let deadline = *since.get_or_insert_with(Instant::now) + self.batch_max_wait;
                if Instant::now() < deadline {
                    self.idle(&mut shutdown, &mut stop, Some(deadline)).await;
                    continue;
                }
            }
            let outcome = match self
                .blocking(|f| f.buffer.peek(f.batch_max_events, f.batch_max_bytes))
                .await
            {
                Ok(entries) if entries.is_empty() => continue,
                Ok(entries) => match self.transport.send(&entries).await {
                    Ok(()) => {
                        self.blocking(move |f| f.buffer.remove(&entries).map(|()| entries)).await
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(entries) => {
                    let events: u64 = entries.iter().map(|e| u64::from(e.events)).sum();
                    self.counters.sent_events.fetch_add(events, Ordering::Relaxed);
                    self.counters.sent_batches.fetch_add(1, Ordering::Relaxed);
                    if failures > 0 {
                        eprintln!(
                            "logwarden: forward: {} accepts again after {failures} failed \
                             attempts",
                            self.transport.target()
                        );
                        if let Ok(mut g) = self.last_error.lock() {
                            *g = None;
                        }
                    }
                    failures = 0;
                    since = None;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    let retriable = e.is_retriable();
                    if !retriable {
                        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    // A refusal needs an operator: say so every time. Transient failures
                    // are reported at the first and then at every doubling, so a long
                    // outage does not flood the log.
                    if !retriable {
                        eprintln!(
                            "logwarden: forward: ERROR: {e}; {} events kept in the buffer, \
                             retrying every {:?} until this is fixed",
                            self.buffer.events(),
                            self.retry.max
                        );
                    } else if failures.is_power_of_two() {
                        eprintln!(
                            "logwarden: forward: {e} (attempt {failures}); {} events kept in \
                             the buffer, retrying",
                            self.buffer.events()
                        );
                    }
                    if let Ok(mut g) = self.last_error.lock() {
                        *g = Some(e.to_string());
                    }
                    if stop {
                        break;
                    }
                    let delay = if retriable { self.retry.delay(failures) } else { self.retry.max };
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        r = shutdown.changed() => stop = stop || r.is_err(),
                    }
                }
            }
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.stats()
    }

    /// Waits for new events, `until`, or shutdown; at most a second, as a safety net.
    async fn idle(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        stop: &mut bool,
        until: Option<Instant>,
    ) {
        let until = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep_until(until.into()) => {}
            r = shutdown.changed() => *stop = *stop || r.is_err(),
        }
    }

    /// Runs a buffer operation off the async threads (redb reads and fsyncs block).
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Forwarder) -> Result<T, ForwardError> + Send + 'static,
    ) -> Result<T, ForwardError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&this)).await.unwrap_or_else(|e| {
            Err(ForwardError::Buffer {
                path: self.buffer.path().to_path_buf(),
                detail: format!("buffer task failed: {e}"),
            })
        })
    }
}

/// Reads `10s`, `500ms`, `1m30s`; a bare number is refused (seconds or minutes?).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let t = text.trim();
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom(format!(
            "duration `{text}` needs a unit (10s, 500ms, 1m)"
        )));
    }
    humantime::parse_duration(t)
        .map_err(|e| serde::de::Error::custom(format!("duration `{text}`: {e}")))
}

/// Reads a byte count: a number, or a number with a unit (`KB`, `MB`, `GB` are powers of 1000,
/// `KiB`, `MiB`, `GiB` of 1024; case does not matter).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a size such as 256MiB, 1GB or a number of bytes")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("size {v} is negative")))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
    }
    d.deserialize_any(Visitor)
}

/// `256MiB` -> 268435456.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("size `{text}` must start with a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => {
            return Err(format!(
                "size `{text}`: unknown unit `{u}` (B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    n.checked_mul(mult).ok_or_else(|| format!("size `{text}` is too large"))
}
