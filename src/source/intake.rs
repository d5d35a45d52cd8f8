//! HTTP intake: `POST /ingest` with NDJSON (raw log lines or a forwarder's ECS events), one
//! [`RawRecord`] per non-empty line.
//!
//! The answer comes only after every record was committed downstream (its events detected on
//! and checkpointed, or buffered on disk by a forwarder): a full pipeline keeps the request
//! waiting, which slows the client (backpressure), and `200 {"accepted": N}` means a crash from
//! then on cannot lose the N records. A client that gets no answer (timeout, broken connection)
//! or a 503 sends the body again, so records may arrive twice but are never lost.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use super::{Batch, Origin, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};

/// Records per batch handed downstream, as the syslog listeners do.
const BATCH_RECORDS: usize = 512;
/// Default cap of a request body, before and after decompression.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

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
}

/// What the handler shares.
#[derive(Clone)]
struct Intake {
    name: Sym,
    tx: mpsc::Sender<Batch>,
    token: Option<Arc<str>>,
    counters: Arc<SourceCounters>,
    max_body_bytes: usize,
}

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
    let state =
        Intake { name: Sym::from(name), tx, token: token.map(Arc::from), counters, max_body_bytes };
    Router::new()
        .route("/ingest", post(ingest))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves `cfg` on `listener` until `shutdown`; requests in progress are finished first.
pub async fn run(
    name: Sym,
    listener: TcpListener,
    cfg: IntakeConfig,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    if cfg.token.is_none() {
        // Allowed on loopback only (`check` refuses other addresses without a token).
        eprintln!(
            "logwarden: source `{name}`: warning: the intake on {} has no `token`: any local \
             process can send it events",
            cfg.listen
        );
    }
    let max = cfg.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let app = router_with_limit(name.as_str(), tx, cfg.token, counters, max);
    let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
        // Stop on `true` or when the daemon drops the sender.
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    });
    if let Err(e) = serve.await {
        eprintln!("logwarden: source `{name}`: http intake: {e}");
    }
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
    // Reads up to the cap set by `DefaultBodyLimit`; past it, a 413 rejection.
    let body = match Bytes::from_request(req, &s).await {
        Ok(b) => b,
        Err(r) => return error(r.status(), &format!("request body: {}", r.body_text())),
    };
    let body = if gzip {
        let max = s.max_body_bytes;
        match tokio::task::spawn_blocking(move || gunzip(&body, max)).await {
            Ok(Ok(b)) => b,
            Ok(Err(Gunzip::TooLarge)) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("decompressed body over {max} bytes"),
                );
            }
            Ok(Err(Gunzip::Bad(e))) => {
                return error(StatusCode::BAD_REQUEST, &format!("body is not valid gzip: {e}"));
            }
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "decompression failed"),
        }
    } else {
        body
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
    for commit in commits {
        if commit.await.is_err() {
            return stopping();
        }
    }
    axum::Json(json!({ "accepted": accepted })).into_response()
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

enum Gunzip {
    TooLarge,
    Bad(std::io::Error),
}

/// Decompresses `body` (concatenated gzip members too), refusing more than `max` bytes.
fn gunzip(body: &[u8], max: usize) -> Result<Bytes, Gunzip> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(Gunzip::Bad)?;
    if out.len() > max {
        return Err(Gunzip::TooLarge);
    }
    Ok(Bytes::from(out))
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
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::time::{Duration, Instant};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// An intake on 127.0.0.1:0 feeding a channel of `cap` batches.
    async fn serve(
        token: Option<&str>,
        cap: usize,
        max_body: usize,
    ) -> (String, mpsc::Receiver<Batch>, Arc<SourceCounters>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(cap);
        let counters = Arc::new(SourceCounters::default());
        let app = router_with_limit(
            "intake",
            tx,
            token.map(str::to_owned),
            Arc::clone(&counters),
            max_body,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, rx, counters, server)
    }

    /// [`serve`] with a pipeline that commits every batch as soon as it takes it, and hands
    /// the batches on to the test.
    async fn serve_committing(
        token: Option<&str>,
        cap: usize,
        max_body: usize,
    ) -> (String, mpsc::Receiver<Batch>, Arc<SourceCounters>, tokio::task::JoinHandle<()>) {
        let (url, mut rx, counters, server) = serve(token, cap, max_body).await;
        let (tx, out) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Some(mut b) = rx.recv().await {
                if let Some(done) = b.done.take() {
                    let _ = done.send(());
                }
                if tx.send(b).await.is_err() {
                    break;
                }
            }
        });
        (url, out, counters, server)
    }

    fn lines(n: usize) -> String {
        (1..=n).map(|i| format!("<13>Dec 10 06:55:46 web-1 app[1]: line {i}\n")).collect()
    }

    fn gz(s: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(s).unwrap();
        e.finish().unwrap()
    }

    async fn drain(rx: &mut mpsc::Receiver<Batch>) -> Vec<RawRecord> {
        let mut out = Vec::new();
        while let Ok(b) = rx.try_recv() {
            out.extend(b.records);
        }
        out
    }

    async fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = tokio::time::timeout(LIMIT, req.send()).await.unwrap().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn plain_and_gzip_ndjson_become_records_in_order() {
        let (url, mut rx, counters, _server) =
            serve_committing(None, 64, DEFAULT_MAX_BODY_BYTES).await;
        let body = format!("{}\r\n\n   \n{{\"@timestamp\":\"2025-12-10T06:55:46Z\"}}", lines(1000));
        let (status, answer) = post(&url, body.clone().into_bytes(), &[]).await;
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1001)));
        let got = drain(&mut rx).await;
        assert_eq!(got.len(), 1001);
        assert_eq!(&got[0].bytes[..], b"<13>Dec 10 06:55:46 web-1 app[1]: line 1");
        assert_eq!(&got[999].bytes[..], b"<13>Dec 10 06:55:46 web-1 app[1]: line 1000");
        // Line numbers count the blank lines, so an operator can find a record in the body.
        assert_eq!((got[999].origin.record, got[1000].origin.record), (1000, 1004));
        assert_eq!(got[1000].bytes.first(), Some(&b'{'));
        assert!(got.iter().all(|r| r.received.is_some() && r.origin.source.as_str() == "intake"));

        let (status, answer) =
            post(&url, gz(body.as_bytes()), &[("content-encoding", "gzip")]).await;
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1001)));
        let again = drain(&mut rx).await;
        let text = |v: &[RawRecord]| v.iter().map(|r| r.bytes.clone()).collect::<Vec<_>>();
        assert_eq!(text(&again), text(&got));
        assert_eq!(counters.records_in.load(Ordering::Relaxed), 2002);
    }

    #[tokio::test]
    async fn a_token_is_required_when_set() {
        let (url, mut rx, _c, _server) =
            serve_committing(Some("s3cret"), 4, DEFAULT_MAX_BODY_BYTES).await;
        for auth in [
            None,
            Some("Bearer wrong!"),
            Some("Bearer s3cre"),
            Some("s3cret"),
            Some("Basic s3cret"),
        ] {
            let h: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
            let (status, _) = post(&url, b"x\n".to_vec(), &h).await;
            assert_eq!(status, 401, "{auth:?}");
        }
        assert!(drain(&mut rx).await.is_empty());
        let (status, answer) =
            post(&url, b"x\n".to_vec(), &[("authorization", "Bearer s3cret")]).await;
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)));
        // The scheme is case-insensitive (RFC 9110 11.1), as curl and some clients send it.
        for auth in ["bearer s3cret", "BEARER  s3cret"] {
            let (status, _) = post(&url, b"x\n".to_vec(), &[("authorization", auth)]).await;
            assert_eq!(status, 200, "{auth}");
        }
    }

    #[tokio::test]
    async fn oversize_bodies_are_413_and_bad_gzip_is_400() {
        let (url, mut rx, _c, _server) = serve(None, 4, 64 * 1024).await;
        let big = lines(2000).into_bytes();
        assert!(big.len() > 64 * 1024);
        let (status, _) = post(&url, big.clone(), &[]).await;
        assert_eq!(status, 413);
        // Small on the wire, too large once decompressed.
        let z = gz(&big);
        assert!(z.len() < 64 * 1024);
        let (status, answer) = post(&url, z, &[("content-encoding", "gzip")]).await;
        assert_eq!(status, 413, "{answer}");
        let (status, answer) =
            post(&url, b"not gzip at all".to_vec(), &[("content-encoding", "gzip")]).await;
        assert_eq!(status, 400);
        assert!(answer["error"].as_str().unwrap().contains("gzip"), "{answer}");
        let (status, _) = post(&url, b"x\n".to_vec(), &[("content-encoding", "br")]).await;
        assert_eq!(status, 415);
        assert!(drain(&mut rx).await.is_empty());
    }

    #[tokio::test]
    async fn a_slow_pipeline_holds_the_answer_and_loses_nothing() {
        // One batch of room and a reader that takes and commits a batch every 50 ms: the
        // answer cannot come before the reader has committed every batch.
        let (url, mut rx, _c, _server) = serve(None, 1, DEFAULT_MAX_BODY_BYTES).await;
        let n = BATCH_RECORDS * 8;
        let reader = tokio::spawn(async move {
            let mut got: Vec<(Instant, Vec<RawRecord>)> = Vec::new();
            let mut total = 0;
            while total < n {
                let mut b = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
                total += b.records.len();
                b.done.take().unwrap().send(()).unwrap();
                got.push((Instant::now(), b.records));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            got
        });
        let started = Instant::now();
        let (status, answer) = post(&url, lines(n).into_bytes(), &[]).await;
        let answered = Instant::now();
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(n as u64)));
        let got = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
        assert_eq!(got.len(), 8);
        let taken_before = got.iter().filter(|(t, _)| *t <= answered).count();
        assert_eq!(taken_before, 8, "answered after {taken_before} of 8 batches were committed");
        assert!(answered - started >= Duration::from_millis(300), "{:?}", answered - started);
        let numbers: Vec<u64> =
            got.iter().flat_map(|(_, r)| r.iter().map(|r| r.origin.record)).collect();
        assert_eq!(numbers, (1..=n as u64).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_answer_waits_for_the_commit_and_an_uncommitted_batch_is_503() {
        let (url, mut rx, _c, _server) = serve(None, 16, DEFAULT_MAX_BODY_BYTES).await;
        let n = BATCH_RECORDS + 1;
        let request = tokio::spawn({
            let url = url.clone();
            async move { post(&url, lines(n).into_bytes(), &[]).await }
        });
        let mut first = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        let mut second = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        assert_eq!((first.records.len(), second.records.len()), (BATCH_RECORDS, 1));
        // Both batches are in the pipeline; only one is committed: no answer yet.
        first.done.take().unwrap().send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!request.is_finished(), "answered before every batch was committed");
        second.done.take().unwrap().send(()).unwrap();
        let (status, answer) = tokio::time::timeout(LIMIT, request).await.unwrap().unwrap();
        assert_eq!((status, answer["accepted"].as_u64()), (200, Some(n as u64)));

        // A batch lost on the way (the pipeline stopped before committing it): the client is
        // told to send again, not that its records were accepted.
        let request = tokio::spawn(async move { post(&url, lines(3).into_bytes(), &[]).await });
        let lost = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        drop(lost);
        let (status, answer) = tokio::time::timeout(LIMIT, request).await.unwrap().unwrap();
        assert_eq!(status, 503, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("send again"), "{answer}");
    }

    #[test]
    fn tokens_compare_by_content() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
