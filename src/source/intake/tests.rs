//! Tests of the parent module.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};

use super::*;

const LIMIT: Duration = Duration::from_secs(30);

/// The listener limits of an intake configured with nothing but its address.
fn default_limits() -> ServeLimits {
    let cfg: IntakeConfig = serde_json::from_str(r#"{"listen": "127.0.0.1:0"}"#).unwrap();
    cfg.limits(None)
}

/// An intake on 127.0.0.1:0 feeding a channel of `cap` batches.
async fn serve(
    token: Option<&str>,
    cap: usize,
    max_body: usize,
) -> (String, mpsc::Receiver<Batch>, Arc<SourceCounters>, tokio::task::JoinHandle<()>) {
    let budget = default_max_buffered_bytes(max_body);
    serve_with(token, cap, max_body, budget, default_limits()).await
}

/// [`serve`] with a byte budget and listener limits, served as the daemon serves it.
async fn serve_with(
    token: Option<&str>,
    cap: usize,
    max_body: usize,
    budget: usize,
    limits: ServeLimits,
) -> (String, mpsc::Receiver<Batch>, Arc<SourceCounters>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(cap);
    let counters = Arc::new(SourceCounters::default());
    let app = router_with_budget(
        "intake",
        tx,
        token.map(str::to_owned),
        Arc::clone(&counters),
        max_body,
        budget,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let conns = Arc::clone(&counters.conns);
    let server = tokio::spawn(super::super::http_serve::serve(
        "intake".into(),
        listener,
        app,
        limits,
        conns,
        std::future::pending(),
    ));
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
async fn while_the_pipeline_cannot_keep_records_requests_are_503_at_once_and_after() {
    let (tx, mut rx) = mpsc::channel(4);
    let pushback = Arc::new(Pushback::default());
    let app = router_with_pushback(
        "intake",
        tx,
        None,
        Arc::new(SourceCounters::default()),
        DEFAULT_MAX_BODY_BYTES,
        default_max_buffered_bytes(DEFAULT_MAX_BODY_BYTES),
        Some(Arc::clone(&pushback)),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    pushback.set(Some("state database cannot be written for 3s: No space left on device"));
    let resp = reqwest::Client::new().post(&url).body(lines(2)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("No space left on device"), "{body}");
    assert!(rx.try_recv().is_err(), "nothing was handed on");

    // Taken, then the outage begins before the commit: answered 503, not left hanging;
    // the records stay in the pipeline.
    pushback.set(None);
    let request = {
        let url = url.clone();
        tokio::spawn(async move { post(&url, lines(3).into_bytes(), &[]).await })
    };
    let batch = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
    assert_eq!(batch.records.len(), 3);
    pushback.set(Some("state database cannot be written for 1s: No space left on device"));
    let (status, answer) = tokio::time::timeout(LIMIT, request).await.unwrap().unwrap();
    assert_eq!(status, 503, "{answer}");
    drop(batch);

    // Writes work again: accepted.
    pushback.set(None);
    let rx_done = tokio::spawn(async move {
        let mut b = rx.recv().await.unwrap();
        b.done.take().unwrap().send(()).unwrap();
    });
    let (status, answer) = post(&url, lines(1).into_bytes(), &[]).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)), "{answer}");
    rx_done.await.unwrap();
}

#[tokio::test]
async fn plain_and_gzip_ndjson_become_records_in_order() {
    let (url, mut rx, counters, _server) = serve_committing(None, 64, DEFAULT_MAX_BODY_BYTES).await;
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

    let (status, answer) = post(&url, gz(body.as_bytes()), &[("content-encoding", "gzip")]).await;
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
    for auth in
        [None, Some("Bearer wrong!"), Some("Bearer s3cre"), Some("s3cret"), Some("Basic s3cret")]
    {
        let h: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, _) = post(&url, b"x\n".to_vec(), &h).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    assert!(drain(&mut rx).await.is_empty());
    let (status, answer) = post(&url, b"x\n".to_vec(), &[("authorization", "Bearer s3cret")]).await;
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

/// A gzip body of `n` bytes of zeros: about a thousandth of that on the wire.
fn bomb(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; n]).unwrap();
    e.finish().unwrap()
}

#[test]
fn bodies_take_their_memory_from_the_budget_and_give_it_back() {
    let budget = Arc::new(Semaphore::new(3 << 20));
    let mut a = Budgeted::new(2 << 20, Arc::clone(&budget));
    a.write_all(&vec![1u8; 2 << 20]).unwrap();
    assert_eq!(a.out.capacity(), 2 << 20);
    assert_eq!(budget.available_permits(), 1 << 20);
    // A second body gets what is left, and no more.
    let mut b = Budgeted::new(2 << 20, Arc::clone(&budget));
    b.write_all(&vec![2u8; 1 << 19]).unwrap();
    let e = b.write_all(&vec![2u8; 1 << 20]).unwrap_err();
    assert!(matches!(e.get_ref().unwrap().downcast_ref(), Some(Overflow::Busy)), "{e}");
    // Over the body limit is too large, whatever the budget.
    let e = a.write_all(b"x").unwrap_err();
    assert!(matches!(e.get_ref().unwrap().downcast_ref(), Some(Overflow::TooLarge)), "{e}");
    drop(a);
    b.write_all(&vec![2u8; 1 << 20]).unwrap();
    drop(b);
    assert_eq!(budget.available_permits(), 3 << 20);
}

#[tokio::test]
async fn concurrent_gzip_bombs_are_413_or_503_and_the_budget_comes_back() {
    // 1 MiB bodies, a budget of 4: 30 bombs at once, each expanding to 8 MiB.
    let (url, mut rx, counters, _server) =
        serve_with(None, 64, 1 << 20, 4 << 20, default_limits()).await;
    let z = bomb(8 << 20);
    assert!(z.len() < 16 * 1024, "{}", z.len());
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let (url, z) = (url.clone(), z.clone());
        posts.spawn(async move { post(&url, z, &[("content-encoding", "gzip")]).await });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(r) = posts.join_next().await {
        let (status, answer) = r.unwrap();
        assert!(status == 413 || status == 503, "{status} {answer}");
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert!(statuses.contains_key(&413), "{statuses:?}");
    let busy = counters.conns.busy.load(Ordering::Relaxed);
    assert_eq!(busy, statuses.get(&503).copied().unwrap_or(0));
    // Every byte came back: a body of the largest size still passes, and nothing of the
    // bombs reached the pipeline.
    assert!(drain(&mut rx).await.is_empty());
    let fits = lines(20_000).into_bytes();
    assert!(fits.len() < 1 << 20 && fits.len() > 512 << 10);
    let request = tokio::spawn({
        let url = url.clone();
        async move { post(&url, gz(&fits), &[("content-encoding", "gzip")]).await }
    });
    let mut n = 0;
    while n < 20_000 {
        let mut b = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap().unwrap();
        n += b.records.len();
        b.done.take().unwrap().send(()).unwrap();
    }
    let (status, answer) = request.await.unwrap();
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(20_000)));
}

#[tokio::test]
async fn a_body_that_stops_coming_is_408() {
    let limits = ServeLimits {
        max_connections: 8,
        max_connections_per_address: 8,
        max_in_flight: 8,
        idle_timeout: Duration::from_millis(300),
    };
    let (url, mut rx, _c, _server) =
        serve_with(None, 4, DEFAULT_MAX_BODY_BYTES, 4 * DEFAULT_MAX_BODY_BYTES, limits).await;
    let addr = url.trim_start_matches("http://").trim_end_matches("/ingest").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"POST /ingest HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n<13>a\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sent nothing for"), "{answer}");
    assert!(drain(&mut rx).await.is_empty());
}

#[test]
fn tokens_compare_by_content() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}
