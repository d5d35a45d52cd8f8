//! HTTP intake: `POST /ingest` with NDJSON (raw log lines or a forwarder's ECS events), one
//! [`RawRecord`] per non-empty line.
//!
//! The answer comes only after every record was committed downstream (its events detected on
//! and checkpointed, or buffered on disk by a forwarder): a full pipeline keeps the request
//! waiting, which slows the client (backpressure), and `200 {"accepted": N}` means a crash from
//! then on cannot lose the N records. A client that gets no answer (timeout, broken connection)
//! or a 503 sends the body again, so records may arrive twice but are never lost.
//!
//! Bodies are read (and gunzipped) piece by piece under the size limit, and all the requests
//! in progress together hold at most `max_buffered_bytes`: a request that would take more is
//! answered 503 (send again) at once, so a flood of small gzip bombs costs a bounded amount of
//! memory instead of 16 MiB each.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::http_serve::{ServeLimits, is_stalled};
use super::pushback::Pushback;
use super::{Batch, Origin, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};

/// Records per batch handed downstream, as the syslog listeners do.
const BATCH_RECORDS: usize = 512;
/// Default cap of a request body, before and after decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Default cap of connections at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default cap of connections at once from one address.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// Default cap of requests in progress at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default deadline for a request head, and for each piece of a body.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Compressed bytes gathered before they are gunzipped in one go off the async threads.
const GUNZIP_STEP: usize = 64 * 1024;
/// The smallest allocation for a body, so that small bodies do not grow a few bytes at a time.
const FIRST_ALLOCATION: usize = 16 * 1024;

/// The default budget of buffered body bytes: four bodies of the largest size.
pub fn default_max_buffered_bytes(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(4)
}

/// `type: http` source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeConfig {
    /// Address to bind (`0.0.0.0:9600`).
    pub listen: String,
    /// Bearer token clients must send (from `${ENV}` or `${file:...}`); none: open.
    #[serde(default)]
    pub token: Option<String>,
    /// Largest request body, compressed and decompressed (default 16 MiB); larger is 413.
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Alert when nothing arrives for this long (`10m`).
    #[serde(default)]
    pub max_silence: Option<String>,
    /// Connections at once (default 1024); at the cap the longest-idle one is closed to make
    /// room for a new one.
    #[serde(default)]
    pub max_connections: Option<NonZeroUsize>,
    /// Connections at once from one address (an IPv6 client: its /64) (default 64); more are
    /// closed at once. Raise it when senders reach logwarden through a NAT or a proxy.
    #[serde(default)]
    pub max_connections_per_address: Option<NonZeroUsize>,
    /// Requests in progress at once (default 64); more are answered 503 with `Retry-After`.
    #[serde(default)]
    pub max_in_flight: Option<NonZeroUsize>,
    /// A request head must arrive whole within this of connecting or of the previous answer
    /// (closing idle keep-alive connections), and a body may not pause longer (default 30s).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// Body bytes (received and decompressed) all requests in progress may hold together
    /// (default four times `max_body_bytes`, and at least twice it); a request that would go
    /// over is answered 503 with `Retry-After`.
    #[serde(default)]
    pub max_buffered_bytes: Option<NonZeroUsize>,
}

impl IntakeConfig {
    /// The listener's limits, `idle_timeout` parsed by the caller (`None`: the default).
    pub fn limits(&self, idle_timeout: Option<Duration>) -> ServeLimits {
        ServeLimits {
            max_connections: self.max_connections.map_or(DEFAULT_MAX_CONNECTIONS, |n| n.get()),
            max_connections_per_address: self
                .max_connections_per_address
                .map_or(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, |n| n.get()),
            max_in_flight: self.max_in_flight.map_or(DEFAULT_MAX_IN_FLIGHT, |n| n.get()),
            idle_timeout: idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
        }
    }

    /// The budget of buffered body bytes: as configured, never below two bodies (one
    /// received, one decompressed) or no request of the largest size could ever pass.
    pub fn max_buffered_bytes(&self) -> usize {
        let body = self.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        self.max_buffered_bytes
            .map_or(default_max_buffered_bytes(body), |n| n.get())
            .max(body.saturating_mul(2))
    }
}

/// What the handler shares.
#[derive(Clone)]
struct Intake {
    name: Sym,
    tx: mpsc::Sender<Batch>,
    token: Option<Arc<str>>,
    counters: Arc<SourceCounters>,
    max_body_bytes: usize,
    /// Body bytes all requests in progress may still take, one permit a byte.
    budget: Arc<Semaphore>,
    /// Why the pipeline cannot take records now (the daemon's state database cannot be
    /// written): requests are then answered 503 at once instead of hanging.
    pushback: Option<Arc<Pushback>>,
}

/// How often a request waiting for its records' commit looks whether the pipeline has since
/// stopped taking records (then it is answered 503 rather than kept waiting for the outage).
const PUSHBACK_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// The intake's router: `POST /ingest`, bodies up to [`DEFAULT_MAX_BODY_BYTES`].
pub fn router(
    name: &str,
    tx: mpsc::Sender<Batch>,
    token: Option<String>,
    counters: Arc<SourceCounters>,
) -> Router {
    router_with_limit(name, tx, token, counters, DEFAULT_MAX_BODY_BYTES)
}

/// [`router`] with another body cap (applied before and after decompression).
pub fn router_with_limit(
    name: &str,
    tx: mpsc::Sender<Batch>,
    token: Option<String>,
    counters: Arc<SourceCounters>,
    max_body_bytes: usize,
) -> Router {
    let budget = default_max_buffered_bytes(max_body_bytes);
    router_with_budget(name, tx, token, counters, max_body_bytes, budget)
}

/// [`router_with_limit`] with a budget of body bytes buffered by all requests together.
pub fn router_with_budget(
    name: &str,
    tx: mpsc::Sender<Batch>,
    token: Option<String>,
    counters: Arc<SourceCounters>,
    max_body_bytes: usize,
    max_buffered_bytes: usize,
) -> Router {
    router_with_pushback(name, tx, token, counters, max_body_bytes, max_buffered_bytes, None)
}

/// [`router_with_budget`] that answers 503 while `pushback` says the pipeline cannot take
/// records.
fn router_with_pushback(
    name: &str,
    tx: mpsc::Sender<Batch>,
    token: Option<String>,
    counters: Arc<SourceCounters>,
    max_body_bytes: usize,
    max_buffered_bytes: usize,
    pushback: Option<Arc<Pushback>>,
) -> Router {
    let budget = Arc::new(Semaphore::new(max_buffered_bytes.min(Semaphore::MAX_PERMITS)));
    let state = Intake {
        name: Sym::from(name),
        tx,
        token: token.map(Arc::from),
        counters,
        max_body_bytes,
        budget,
        pushback,
    };
    Router::new().route("/ingest", post(ingest)).with_state(state)
}

/// Where the intake hands its records, and what it learns back from there.
pub struct Pipeline {
    /// The parse stage's queue.
    pub tx: mpsc::Sender<Batch>,
    /// This source's counters.
    pub counters: Arc<SourceCounters>,
    /// Set while what follows cannot keep records (see [`Pushback`]).
    pub pushback: Arc<Pushback>,
}

/// Serves `cfg` on `listener` within `limits` until `shutdown`; requests in progress are
/// finished first.
pub async fn run(
    name: Sym,
    listener: TcpListener,
    cfg: IntakeConfig,
    limits: ServeLimits,
    pipeline: Pipeline,
    mut shutdown: watch::Receiver<bool>,
) {
    let Pipeline { tx, counters, pushback } = pipeline;
    if cfg.token.is_none() {
        // Allowed on loopback only (`check` refuses other addresses without a token).
        eprintln!(
            "logwarden: source `{name}`: warning: the intake on {} has no `token`: any local \
             process can send it events",
            cfg.listen
        );
    }
    let max = cfg.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let budget = cfg.max_buffered_bytes();
    let conns = Arc::clone(&counters.conns);
    let app =
        router_with_pushback(name.as_str(), tx, cfg.token, counters, max, budget, Some(pushback));
    let stopped = async move {
        // Stop on `true` or when the daemon drops the sender.
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    };
    let label = format!("source `{name}`");
    super::http_serve::serve(label, listener, app, limits, conns, stopped).await;
}

async fn ingest(State(s): State<Intake>, req: Request) -> Response {
    // The token is checked before the body is read: a stranger gets no 16 MiB read for free.
    if let Some(token) = &s.token
        && !bearer_matches(req.headers(), token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(json!({"error": "a bearer token is required"})),
        )
            .into_response();
    }
    if let Some(why) = s.pushback.as_ref().and_then(|p| p.reason()) {
        return held_back(&why);
    }
    let gzip = match req.headers().get(header::CONTENT_ENCODING).map(|v| v.to_str()) {
        None => false,
        Some(Ok(v)) if v.eq_ignore_ascii_case("identity") => false,
        Some(Ok(v)) if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") => true,
        Some(v) => {
            let v = v.unwrap_or("(not text)");
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("Content-Encoding `{v}` is not supported (gzip or none)"),
            );
        }
    };
    let max = s.max_body_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    if declared.and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n > max as u64) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("request body over {max} bytes"));
    }
    // Held until the answer: the body's records point into its buffer.
    let (body, _held) = match read_body(req.into_body(), gzip, max, &s.budget).await {
        Ok(b) => b,
        Err(BodyError::Busy) => {
            s.counters.conns.busy.fetch_add(1, Ordering::Relaxed);
            return super::http_serve::busy().into_response();
        }
        Err(e) => return error(e.status(), &e.to_string()),
    };
    s.counters.bytes_in.fetch_add(body.len() as u64, Ordering::Relaxed);

    let now = Timestamp::now();
    let mut accepted = 0u64;
    let mut commits = Vec::new();
    let mut records = Vec::with_capacity(BATCH_RECORDS);
    let mut offset = 0usize;
    let mut line_no = 0u64;
    while offset < body.len() {
        let end = memchr::memchr(b'\n', &body[offset..]).map_or(body.len(), |i| offset + i);
        line_no += 1;
        let mut line = &body[offset..end];
        while let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            records.push(RawRecord {
                bytes: body.slice(offset..offset + line.len()),
                origin: Origin { source: s.name.clone(), record: line_no, offset: offset as u64 },
                received: Some(now),
            });
        }
        offset = end + 1;
        if records.len() == BATCH_RECORDS {
            let batch = std::mem::replace(&mut records, Vec::with_capacity(BATCH_RECORDS));
            match hand_over(&s, batch, &mut commits).await {
                Ok(n) => accepted += n,
                Err(()) => return stopping(),
            }
        }
    }
    if !records.is_empty() {
        match hand_over(&s, records, &mut commits).await {
            Ok(n) => accepted += n,
            Err(()) => return stopping(),
        }
    }
    // Batches are committed in order, but each is waited for: a batch dropped on the way (a
    // shutdown between stages) must turn the whole answer into "send again".
    for mut commit in commits {
        loop {
            tokio::select! {
                r = &mut commit => match r {
                    Ok(()) => break,
                    Err(_) => return stopping(),
                },
                () = tokio::time::sleep(PUSHBACK_POLL) => {
                    // The records stay in the pipeline and are committed when it can; the
                    // client sends them again, so they may arrive twice, never not at all.
                    if let Some(why) = s.pushback.as_ref().and_then(|p| p.reason()) {
                        return held_back(&why);
                    }
                }
            }
        }
    }
    axum::Json(json!({ "accepted": accepted })).into_response()
}

/// The answer while the pipeline cannot keep records: come back later.
fn held_back(why: &str) -> Response {
    let message = format!("the pipeline cannot keep records now ({why}); send again later");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

/// Sends one batch, waiting for room: this wait is the backpressure. The batch's commit is
/// signalled on a receiver pushed to `commits`.
async fn hand_over(
    s: &Intake,
    records: Vec<RawRecord>,
    commits: &mut Vec<oneshot::Receiver<()>>,
) -> Result<u64, ()> {
    let n = records.len() as u64;
    let (done, committed) = oneshot::channel();
    match s.tx.send(Batch { records, checkpoint: None, done: Some(done) }).await {
        Ok(()) => {
            s.counters.records_in.fetch_add(n, Ordering::Relaxed);
            commits.push(committed);
            Ok(n)
        }
        Err(_) => Err(()),
    }
}

/// The answer when the pipeline went away before the request's records were committed: none
/// of them can be counted on, so the client must send the whole request again later.
fn stopping() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is stopping; send again later")
}

/// Why a request body was not taken.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over `max_body_bytes`, as received or decompressed.
    #[error("{what} body over {max} bytes")]
    TooLarge {
        /// `request` or `decompressed`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Taking it would go over the listener's budget of buffered bytes: send again later.
    #[error("busy: too many bytes buffered for other requests")]
    Busy,
    /// The client stopped sending in the middle of it.
    #[error("{0}")]
    Stalled(String),
    /// Not gzip, or cut short.
    #[error("body is not valid gzip: {0}")]
    Gzip(std::io::Error),
    /// The connection failed while it was read.
    #[error("request body: {0}")]
    Read(String),
    /// The decompressing thread was lost.
    #[error("decompression failed")]
    Lost,
}

impl BodyError {
    /// A metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "too_large",
            BodyError::Busy => "busy",
            BodyError::Stalled(_) => "stalled",
            BodyError::Gzip(_) => "gzip",
            BodyError::Read(_) => "read",
            BodyError::Lost => "lost",
        }
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            BodyError::Gzip(_) | BodyError::Read(_) => StatusCode::BAD_REQUEST,
            BodyError::Lost => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a body's buffer refuses to grow past; carried through the gzip decoder as an
/// `io::Error` and told apart from bad gzip.
#[derive(Debug, thiserror::Error)]
enum Overflow {
    #[error("over the size limit")]
    TooLarge,
    #[error("over the budget")]
    Busy,
}

/// A body's buffer: never longer than `max`, and its capacity taken from the listener's
/// budget before it is allocated, so all bodies together stay within the budget.
struct Budgeted {
    out: Vec<u8>,
    max: usize,
    budget: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Budgeted {
    fn new(max: usize, budget: Arc<Semaphore>) -> Budgeted {
        Budgeted { out: Vec::new(), max, budget, held: None }
    }

    fn grow_to(&mut self, need: usize) -> Result<(), Overflow> {
        if need > self.max {
            return Err(Overflow::TooLarge);
        }
        let have = self.out.capacity();
        if need <= have {
            return Ok(());
        }
        // Doubling keeps the copies few; the limit keeps the last step from overshooting.
        let want = need.max(have.saturating_mul(2)).max(FIRST_ALLOCATION).min(self.max);
        let extra = u32::try_from(want - have).map_err(|_| Overflow::Busy)?;
        let permit =
            Arc::clone(&self.budget).try_acquire_many_owned(extra).map_err(|_| Overflow::Busy)?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.out.reserve_exact(want - self.out.len());
        Ok(())
    }
}

impl Write for Budgeted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.grow_to(self.out.len() + buf.len()).map_err(std::io::Error::other)?;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where a body's bytes go: straight into the buffer, or through a gunzip.
enum Sink {
    Plain(Budgeted),
    Gzip(Box<flate2::write::MultiGzDecoder<Budgeted>>),
}

/// The overflow inside `e`, if the buffer raised it; else `e` is bad gzip.
fn gzip_error(e: std::io::Error, max: usize) -> BodyError {
    match e.get_ref().and_then(|i| i.downcast_ref::<Overflow>()) {
        Some(Overflow::TooLarge) => BodyError::TooLarge { what: "decompressed", max },
        Some(Overflow::Busy) => BodyError::Busy,
        None => BodyError::Gzip(e),
    }
}

/// Feeds `chunks` to the gunzip off the async threads (a 64 KiB bomb still expands to up to
/// `max` bytes, tens of milliseconds of work).
async fn gunzip(
    mut dec: Box<flate2::write::MultiGzDecoder<Budgeted>>,
    chunks: Vec<Bytes>,
    max: usize,
) -> Result<Box<flate2::write::MultiGzDecoder<Budgeted>>, BodyError> {
    let fed = tokio::task::spawn_blocking(move || {
        chunks.iter().try_for_each(|c| dec.write_all(c)).map(|()| dec)
    });
    fed.await.map_err(|_| BodyError::Lost)?.map_err(|e| gzip_error(e, max))
}

/// Reads `body` (gunzipping it when `gzip`) into one buffer of at most `max` bytes, its memory
/// taken from `budget` as it grows; the permit given back is what it holds.
async fn read_body(
    mut body: Body,
    gzip: bool,
    max: usize,
    budget: &Arc<Semaphore>,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyError> {
    let out = Budgeted::new(max, Arc::clone(budget));
    let mut sink = match gzip {
        true => Sink::Gzip(Box::new(flate2::write::MultiGzDecoder::new(out))),
        false => Sink::Plain(out),
    };
    let mut received = 0usize;
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) if is_stalled(&e) => return Err(BodyError::Stalled(e.to_string())),
            Err(e) => return Err(BodyError::Read(e.to_string())),
        };
        // Trailers carry no body bytes.
        let Ok(data) = frame.into_data() else { continue };
        received += data.len();
        if received > max {
            return Err(BodyError::TooLarge { what: "request", max });
        }
        sink = match sink {
            Sink::Plain(mut out) => {
                out.grow_to(received).map_err(|_| BodyError::Busy)?;
                out.out.extend_from_slice(&data);
                Sink::Plain(out)
            }
            Sink::Gzip(dec) => {
                pending_len += data.len();
                pending.push(data);
                if pending_len < GUNZIP_STEP {
                    Sink::Gzip(dec)
                } else {
                    pending_len = 0;
                    Sink::Gzip(gunzip(dec, std::mem::take(&mut pending), max).await?)
                }
            }
        };
    }
    if received == 0 {
        // No bytes is no records, not a truncated gzip stream.
        return Ok((Bytes::new(), None));
    }
    let out = match sink {
        Sink::Plain(out) => out,
        Sink::Gzip(dec) => {
            let dec = gunzip(dec, pending, max).await?;
            let done = tokio::task::spawn_blocking(move || dec.finish());
            done.await.map_err(|_| BodyError::Lost)?.map_err(|e| gzip_error(e, max))?
        }
    };
    Ok((Bytes::from(out.out), out.held))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// Equality whose time does not depend on where the inputs first differ (the length of the
/// token is not a secret worth hiding).
/// Whether `headers` carry `Authorization: Bearer <token>`. The scheme is case-insensitive
/// (RFC 9110 §11.1: `bearer`, `BEARER` are the same scheme) and may be followed by more than
/// one space; the token is compared in constant time.
pub(crate) fn bearer_matches(headers: &axum::http::HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_credentials)
        .is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// The credentials of a `Bearer` authorization value, whatever the scheme's case.
fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim_start_matches(' '))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // black_box keeps the compiler from turning the fold into an early exit.
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

#[cfg(test)]
mod tests;
