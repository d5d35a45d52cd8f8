//! Serving an axum router on a TCP listener with the limits a hostile network needs: a cap on
//! connections and on each client's ([`ConnTable`]: the longest-idle connection makes room
//! at the cap), a deadline for each request head (which also closes keep-alive connections
//! left idle), a deadline for each piece of a request body, and a cap on requests in flight,
//! past which a request is answered `503` with `Retry-After` at once rather than queued.
//!
//! The HTTP intake (a source) and the daemon's API both serve through here, so they get the
//! same protection. HTTP/1.1 only: one request in flight per connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::accept::AcceptBackoff;
use super::conns::{ConnCounters, ConnTable, Slot};

/// What bounds one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections at once; at the cap the longest-idle one is closed for a newcomer.
    pub max_connections: usize,
    /// Connections at once from one client (an IPv4 address or an IPv6 /64).
    pub max_connections_per_address: usize,
    /// Requests being handled at once; more are answered 503 with `Retry-After`.
    pub max_in_flight: usize,
    /// A request head must arrive whole within this of the connection opening or of the
    /// previous answer (so it also closes idle keep-alive connections), and a request body
    /// that sends nothing for this long fails.
    pub idle_timeout: Duration,
}

/// Seconds a client told "busy" is asked to wait before sending again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The body of a request whose sender went quiet for longer than the listener's
/// `idle_timeout`: what reading such a body fails with.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub struct BodyStalled(pub Duration);

/// A request body that fails with [`BodyStalled`] when no frame arrives for the timeout, so
/// a client cannot hold a request (and its in-flight slot) open by sending nothing.
#[derive(Debug)]
pub struct IdleBody<B> {
    inner: B,
    timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> IdleBody<B> {
    /// `inner`, failing after `timeout` without a frame.
    pub fn new(inner: B, timeout: Duration) -> IdleBody<B> {
        IdleBody { inner, timeout, timer: None }
    }
}

impl<B> http_body::Body for IdleBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e` (as a body read reports it) is a [`BodyStalled`], however it was wrapped.
pub fn is_stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<BodyStalled>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The answer to a request over `max_in_flight` (or another bound of the listener).
pub fn busy() -> Response<Body> {
    let mut r = Response::new(Body::from(
        "{\"error\":\"busy: too many requests in progress; send again shortly\"}",
    ));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECS));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests in progress finish, closes idle connections, and returns once
/// every connection is closed. `name` prefixes the (rare, rate-limited) log lines.
pub async fn serve(
    name: String,
    listener: TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    counters: Arc<ConnCounters>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let per_address = limits.max_connections_per_address;
    let table = ConnTable::new(limits.max_connections, per_address, Arc::clone(&counters));
    let shared = Arc::new(Shared {
        app,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
        idle_timeout: limits.idle_timeout,
        counters: Arc::clone(&counters),
    });
    let (close_all, closing) = watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set does not grow with every one ever served.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                counters.accept_errors.fetch_add(1, Ordering::Relaxed);
                let retry = backoff.failed(&e, Instant::now());
                if let Some(line) = retry.log {
                    eprintln!("logwarden: {name}: {line}");
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(retry.wait) => continue,
                }
            }
        };
        // Refused (and counted by the table): closed at once, before a byte is read.
        let Ok(slot) = table.admit(peer.ip()) else { continue };
        conns.spawn(serve_connection(Arc::clone(&shared), stream, peer, slot, closing.clone()));
    }
    drop(listener);
    close_all.send_replace(true);
    while conns.join_next().await.is_some() {}
}

/// What every connection of one listener shares.
struct Shared {
    app: axum::Router,
    in_flight: Arc<Semaphore>,
    idle_timeout: Duration,
    counters: Arc<ConnCounters>,
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    slot: Slot,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Arc::clone(&slot.activity);
    let service = {
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let shared = Arc::clone(&shared);
            let activity = Arc::clone(&activity);
            async move {
                let Ok(permit) = Arc::clone(&shared.in_flight).try_acquire_owned() else {
                    shared.counters.busy.fetch_add(1, Ordering::Relaxed);
                    return Ok::<_, Infallible>(busy());
                };
                let working = activity.busy();
                let mut req = req.map(|b| Body::new(IdleBody::new(b, shared.idle_timeout)));
                // Who asked, as axum's `into_make_service_with_connect_info` records it: the
                // API's audit of silences says where they came from.
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                // The router's error type is Infallible.
                let Ok(response) = shared.app.clone().oneshot(req).await;
                drop((working, permit));
                Ok(response)
            }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(shared.idle_timeout).keep_alive(true);
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut told = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                // Counted, not logged: a flood of resets would be a flood of lines.
                match r {
                    Ok(()) => {}
                    Err(e) if e.is_timeout() => {
                        shared.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                break;
            }
            // Evicted to make room, or the listener stopping: an idle connection closes at
            // once, one with a request in progress after answering it.
            () = activity.evicted(), if !told => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = closing.changed(), if !told => {
                told = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// A router whose `/slow` waits for a permit of `gate` before answering, and `/echo`
    /// returns its body.
    fn app(gate: Arc<Semaphore>) -> axum::Router {
        use axum::routing::{get, post};
        axum::Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/slow",
                get(move || {
                    let gate = Arc::clone(&gate);
                    async move {
                        gate.acquire().await.unwrap().forget();
                        "done\n"
                    }
                }),
            )
            .route("/echo", post(|body: Bytes| async move { body }))
    }

    async fn start(
        limits: ServeLimits,
    ) -> (SocketAddr, Arc<ConnCounters>, Arc<Semaphore>, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(ConnCounters::default());
        let gate = Arc::new(Semaphore::new(0));
        let (stop, mut stopped) = watch::channel(false);
        let app = app(Arc::clone(&gate));
        let until_stopped = async move {
            let _ = stopped.changed().await;
        };
        tokio::spawn(serve(
            "test".into(),
            listener,
            app,
            limits,
            Arc::clone(&counters),
            until_stopped,
        ));
        (addr, counters, gate, stop)
    }

    fn limits() -> ServeLimits {
        ServeLimits {
            max_connections: 8,
            max_connections_per_address: 8,
            max_in_flight: 2,
            idle_timeout: Duration::from_secs(30),
        }
    }

    /// Connects from `from` (any 127.0.0.0/8 address is this host).
    async fn connect(addr: SocketAddr, from: &str) -> TcpStream {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{from}:0").parse().unwrap()).unwrap();
        s.connect(addr).await.unwrap()
    }

    /// Sends one request on `s` and reads the answer's status line and body.
    async fn request(s: &mut TcpStream, head: &str) -> (u16, String) {
        s.write_all(head.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(LIMIT, s.read(&mut buf)).await.unwrap().unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((headers, body)) = text.split_once("\r\n\r\n") {
                let len = headers
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ")?.parse().ok()
                    })
                    .unwrap_or(0usize);
                if body.len() >= len {
                    let status = headers[9..12].parse().unwrap();
                    return (status, body.to_owned());
                }
            }
            assert!(n > 0, "closed before the answer: {text}");
        }
    }

    /// Whether the peer closes `s` (EOF or reset) within the test's limit.
    async fn closed(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return true,
                Ok(Ok(_)) => {}
                Err(_) => return false,
            }
        }
    }

    async fn until(what: &str, f: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "{what}: timed out");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    const GET_HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    const GET_SLOW: &str = "GET /slow HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn requests_over_max_in_flight_are_503_with_retry_after_at_once() {
        let (addr, counters, gate, _stop) = start(limits()).await;
        let mut a = connect(addr, "127.0.0.1").await;
        let mut b = connect(addr, "127.0.0.1").await;
        a.write_all(GET_SLOW.as_bytes()).await.unwrap();
        b.write_all(GET_SLOW.as_bytes()).await.unwrap();
        // Both slow requests hold a slot (in-flight is counted by the busy connections).
        until("two requests in flight", || counters.accepted.load(Ordering::Relaxed) == 2).await;
        let mut c = connect(addr, "127.0.0.1").await;
        let mut status = 0;
        // The two may not have reached the router yet: ask until the third is turned away.
        for _ in 0..100 {
            let (s, body) = request(&mut c, GET_HEALTHZ).await;
            status = s;
            if s == 503 {
                assert!(body.contains("busy"), "{body}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status, 503);
        assert!(counters.busy.load(Ordering::Relaxed) >= 1);
        gate.add_permits(2);
        // Room again once the slow ones are answered.
        let (s, _) = request(&mut a, "").await;
        assert_eq!(s, 200);
        let (s, _) = request(&mut b, "").await;
        assert_eq!(s, 200);
        assert_eq!(request(&mut c, GET_HEALTHZ).await, (200, "ok\n".to_owned()));
    }

    #[tokio::test]
    async fn idle_and_slow_header_connections_are_closed_after_the_idle_timeout() {
        let (addr, counters, _gate, _stop) =
            start(ServeLimits { idle_timeout: Duration::from_millis(300), ..limits() }).await;
        // Silent from the start; a head trickled and never finished; a keep-alive left idle.
        let mut silent = connect(addr, "127.0.0.1").await;
        let mut slow = connect(addr, "127.0.0.1").await;
        slow.write_all(b"GET /healthz HTTP/1.1\r\nhost:").await.unwrap();
        let mut kept = connect(addr, "127.0.0.1").await;
        assert_eq!(request(&mut kept, GET_HEALTHZ).await.0, 200);
        assert!(closed(&mut silent).await);
        assert!(closed(&mut slow).await);
        assert!(closed(&mut kept).await);
        until("counted", || counters.idle_closed.load(Ordering::Relaxed) == 3).await;
        until("slots given back", || counters.open.load(Ordering::Relaxed) == 0).await;
    }

    #[tokio::test]
    async fn a_stalled_body_fails_and_frees_its_request_slot() {
        let (addr, counters, _gate, _stop) = start(ServeLimits {
            idle_timeout: Duration::from_millis(300),
            max_in_flight: 1,
            ..limits()
        })
        .await;
        let mut s = connect(addr, "127.0.0.1").await;
        s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
            .await
            .unwrap();
        // The body never finishes: the request fails rather than holding the only slot.
        let (status, _) = request(&mut s, "").await;
        assert_eq!(status, 400);
        let mut t = connect(addr, "127.0.0.1").await;
        assert_eq!(request(&mut t, GET_HEALTHZ).await.0, 200);
        assert_eq!(counters.busy.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_full_listener_closes_its_longest_idle_connection_for_a_newcomer() {
        let (addr, counters, _gate, _stop) =
            start(ServeLimits { max_connections: 4, max_connections_per_address: 2, ..limits() })
                .await;
        let mut held = Vec::new();
        for from in ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"] {
            held.push(connect(addr, from).await);
            let n = held.len() as u64;
            until("accepted", || counters.accepted.load(Ordering::Relaxed) == n).await;
        }
        // A third from one address is over its cap: closed at once, nobody evicted.
        let mut over = connect(addr, "127.0.0.2").await;
        assert!(closed(&mut over).await);
        assert_eq!(counters.rejected_per_address.load(Ordering::Relaxed), 1);
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 0);
        // A newcomer at the cap gets in; the oldest idle connection is the one closed.
        let mut fresh = connect(addr, "127.0.0.4").await;
        assert_eq!(request(&mut fresh, GET_HEALTHZ).await.0, 200);
        assert!(closed(&mut held[0]).await);
        assert_eq!(counters.evicted.load(Ordering::Relaxed), 1);
        assert_eq!(counters.rejected.load(Ordering::Relaxed), 0);
        for other in &mut held[1..] {
            other.write_all(GET_HEALTHZ.as_bytes()).await.unwrap();
            assert_eq!(request(other, "").await.0, 200);
        }
    }

    #[test]
    fn a_stall_is_found_through_wrapping_errors() {
        let e = axum::Error::new(BodyStalled(Duration::from_secs(1)));
        assert!(is_stalled(&e));
        assert!(!is_stalled(&std::io::Error::other("x")));
    }
}
