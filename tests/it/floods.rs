//! Hostile clients against `logwarden run` (issue 15, item 4): thousands of idle connections
//! on every listener, one address hogging a listener, gzip bombs on the intake, and a
//! process out of file descriptors. Real sockets against the real binary; memory is read
//! from the daemon's `/proc/PID/status`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Generous: the machine is shared and slow; these bound a wait, they assert no speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Raises this process's open-file limit so it can hold thousands of client sockets (as
/// root, past the hard limit too).
fn raise_own_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        let max = lim.rlim_max.max(want);
        let raised = libc::rlimit { rlim_cur: max, rlim_max: max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let soft = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    assert!(lim.rlim_cur >= want, "need {want} open files, have {}", lim.rlim_cur);
}

/// The daemon, killed on drop.
struct Daemon {
    child: Child,
    stderr: PathBuf,
}

impl Daemon {
    /// `logwarden run -c config`, its open-file limit set to `nofile` (soft and hard) when
    /// given.
    fn start(config: &Path, dir: &Path, nofile: Option<u64>) -> Daemon {
        let stderr = dir.join("daemon.stderr");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_logwarden"));
        cmd.args(["run", "-c"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("daemon.stdout")).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec, setrlimit only (async-signal-safe).
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Daemon { child: cmd.spawn().unwrap(), stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The peak resident memory (`VmHWM`) of the daemon, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Descriptors the daemon has open now.
    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).unwrap().count()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API's token in these configs (`/api/alerts` needs one).
const API_TOKEN: &str = "fl00d-t0k";

/// Polls `f` until it holds, failing with `what` and the daemon's log after [`PATIENCE`].
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, daemon: &Daemon, mut f: F) {
    let deadline = Instant::now() + PATIENCE;
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: timed out\n{}", daemon.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request on a fresh connection: (status, body), or (0, error) when it failed.
async fn get(url: &str) -> (u16, String) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    match client.get(url).bearer_auth(API_TOKEN).timeout(Duration::from_secs(10)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

async fn post(url: &str, body: Vec<u8>, gzip: bool) -> (u16, String) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let mut req = client.post(url).body(body).timeout(PATIENCE);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    match req.send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The value of one sample of a Prometheus page.
fn metric(page: &str, series: &str) -> Option<u64> {
    page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A TCP connection to `to` from `from` (every 127.0.0.0/8 address is this host, so one
/// test can be many clients).
async fn connect_from(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(format!("{from}:0").parse().unwrap())?;
    tokio::time::timeout(PATIENCE, s.connect(to)).await.map_err(std::io::Error::other)?
}

/// `n` idle connections to `to`, spread over `addresses` source addresses 127.0.`net`.1 up.
async fn idle_flood(to: SocketAddr, net: u8, addresses: usize, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let from = format!("127.0.{net}.{}", 1 + i % addresses);
        held.push(connect_from(&from, to).await.unwrap());
    }
    held
}

/// Whether the daemon closes `s` (EOF or reset) before [`PATIENCE`] runs out.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Five sshd failures from 203.0.113.7, stamped now: the rule pack's ssh-bruteforce.
fn brute_force() -> Vec<u8> {
    let now = chrono::Utc::now().format("%b %e %H:%M:%S");
    (0..5)
        .map(|i| {
            format!(
                "<38>{now} web-1 sshd[4242]: Failed password for root from 203.0.113.7 port {} ssh2\n",
                40000 + i
            )
        })
        .collect::<String>()
        .into_bytes()
}

fn rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// Ports for a syslog TCP listener, an HTTP intake and the API.
struct Ports {
    tcp: u16,
    intake: u16,
    api: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports { tcp: free_port(), intake: free_port(), api: free_port() }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn metrics(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.api)
    }
}

/// A config with the three listeners; `tcp`, `intake` and `api` are more entries (`, key:
/// value`) of each one's flow map.
fn write_config(dir: &Path, p: &Ports, tcp: &str, intake: &str, api: &str) -> PathBuf {
    let config = dir.join("logwarden.yml");
    std::fs::write(
        &config,
        format!(
            "state: state.redb
rules: {rules}
sources:
  tcp: {{type: syslog_tcp, listen: \"127.0.0.1:{tcp_port}\"{tcp}}}
  intake: {{type: http, listen: \"127.0.0.1:{intake_port}\"{intake}}}
api: {{listen: \"127.0.0.1:{api_port}\", token: {API_TOKEN}{api}}}
sinks:
  out: {{type: stdout}}
routes:
  - sinks: [out]
    group_wait: 0s
",
            rules = rules().display(),
            tcp_port = p.tcp,
            intake_port = p.intake,
            api_port = p.api,
        ),
    )
    .unwrap();
    config
}

async fn healthy(daemon: &Daemon, p: &Ports) {
    let url = format!("http://127.0.0.1:{}/healthz", p.api);
    eventually("healthz", daemon, async || get(&url).await.0 == 200).await;
}

#[tokio::test]
async fn two_thousand_idle_connections_on_every_listener_lock_no_sender_out() {
    raise_own_fd_limit(8192);
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    // The shipped example's syslog cap (512); the other listeners' default caps, with an
    // idle timeout long enough that the flood is still there when it is counted.
    let long = ", idle_timeout: 10m";
    let config = write_config(dir.path(), &p, ", max_connections: 512", long, long);
    let daemon = Daemon::start(&config, dir.path(), None);
    healthy(&daemon, &p).await;

    // 2,000 idle connections on each listener from 40 addresses (50 each: under the
    // per-address cap), far past each listener's max_connections.
    let mut held = Vec::new();
    for (net, port) in [(1, p.tcp), (2, p.intake), (3, p.api)] {
        held.extend(idle_flood(Ports::addr(port), net, 40, 2000).await);
    }
    let page = async || get(&p.metrics()).await.1;
    eventually("every flood connection taken in", &daemon, async || {
        let page = page().await;
        let accepted = |s: &str| metric(&page, s).unwrap_or(0);
        accepted("logwarden_source_connections_total{source=\"tcp\"}") >= 2000
            && accepted("logwarden_source_connections_total{source=\"intake\"}") >= 2000
            && accepted("logwarden_api_connections_total") >= 2000
    })
    .await;

    // A real sender's brute force over TCP still gets in, is read and alerts.
    let mut sender = connect_from("127.0.0.1", Ports::addr(p.tcp)).await.unwrap();
    sender.write_all(&brute_force()).await.unwrap();
    sender.flush().await.unwrap();
    let alerts = format!("http://127.0.0.1:{}/api/alerts?rule=ssh-bruteforce", p.api);
    eventually("the brute force alerts", &daemon, async || {
        let (status, body) = get(&alerts).await;
        status == 200 && body.contains("203.0.113.7")
    })
    .await;
    // /healthz answers, and the intake takes a forwarder's request.
    let healthz = format!("http://127.0.0.1:{}/healthz", p.api);
    assert_eq!(get(&healthz).await, (200, "ok\n".to_owned()));
    let ingest = format!("http://127.0.0.1:{}/ingest", p.intake);
    let (status, answer) =
        post(&ingest, b"<13>Dec 10 06:55:46 web-1 app[1]: hello\n".to_vec(), false).await;
    assert_eq!((status, answer.as_str()), (200, "{\"accepted\":1}"), "{}", daemon.stderr());

    // Each listener stayed within its cap by closing its longest-idle connections.
    let page = page().await;
    let m = |s: &str| metric(&page, s).unwrap_or_else(|| panic!("{s} missing:\n{page}"));
    assert_eq!(m("logwarden_source_connections_total{source=\"tcp\"}"), 2001);
    assert_eq!(m("logwarden_source_connections_open{source=\"tcp\"}"), 512);
    assert_eq!(m("logwarden_source_connections_evicted_total{source=\"tcp\"}"), 2001 - 512);
    assert_eq!(m("logwarden_source_connections_rejected_total{source=\"tcp\"}"), 0);
    // 1,024 less the forwarder's request, if its connection is already seen closed.
    let open = m("logwarden_source_connections_open{source=\"intake\"}");
    assert!(open == 1024 || open == 1023, "{page}");
    assert_eq!(m("logwarden_source_connections_evicted_total{source=\"intake\"}"), 2001 - 1024);
    assert!(m("logwarden_api_connections_open") <= 256, "{page}");
    assert!(m("logwarden_api_connections_evicted_total") >= 2000 - 256, "{page}");
    assert_eq!(m("logwarden_source_records_in_total{source=\"tcp\"}"), 5);
    // The daemon holds about its caps in descriptors, not one per connection ever made.
    assert!(daemon.open_fds() < 512 + 1024 + 256 + 200, "{}", daemon.open_fds());
    // The flood's connections were closed by the daemon, the oldest first.
    let first = held.first_mut().unwrap();
    assert!(closed_by_peer(first).await, "the oldest idle syslog connection was closed");
}

#[tokio::test]
async fn idle_connections_are_closed_after_idle_timeout_on_every_listener() {
    raise_own_fd_limit(1024);
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let t = ", idle_timeout: 1s";
    let config = write_config(dir.path(), &p, t, t, t);
    let daemon = Daemon::start(&config, dir.path(), None);
    healthy(&daemon, &p).await;
    let mut held = Vec::new();
    for (net, port) in [(4, p.tcp), (5, p.intake), (6, p.api)] {
        held.extend(idle_flood(Ports::addr(port), net, 5, 20).await);
    }
    // One that trickles a request head and never finishes it: closed all the same.
    let mut slow = connect_from("127.0.7.1", Ports::addr(p.api)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ").await.unwrap();
    held.push(slow);
    for (i, s) in held.iter_mut().enumerate() {
        assert!(closed_by_peer(s).await, "connection {i} was not closed\n{}", daemon.stderr());
    }
    let page = get(&p.metrics()).await.1;
    let m = |s: &str| metric(&page, s).unwrap_or_else(|| panic!("{s} missing:\n{page}"));
    assert_eq!(m("logwarden_source_idle_closed_total{source=\"tcp\"}"), 20);
    assert_eq!(m("logwarden_source_idle_closed_total{source=\"intake\"}"), 20);
    // The API's own earlier connections (health checks) may have idled out too.
    assert!(m("logwarden_api_idle_closed_total") >= 21, "{page}");
    assert_eq!(m("logwarden_source_connections_open{source=\"tcp\"}"), 0);
    assert_eq!(m("logwarden_source_connections_open{source=\"intake\"}"), 0);
}

#[tokio::test]
async fn one_address_gets_its_share_and_no_more() {
    raise_own_fd_limit(1024);
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    let per_address = ", max_connections_per_address: 10";
    let config = write_config(dir.path(), &p, per_address, ", idle_timeout: 10m", "");
    let daemon = Daemon::start(&config, dir.path(), None);
    healthy(&daemon, &p).await;
    // 100 from one address to the syslog listener (cap 10) and to the intake (default 64).
    let mut tcp = idle_flood(Ports::addr(p.tcp), 8, 1, 100).await;
    let mut intake = idle_flood(Ports::addr(p.intake), 9, 1, 100).await;
    let page = async || get(&p.metrics()).await.1;
    eventually("refusals counted", &daemon, async || {
        let page = page().await;
        metric(&page, "logwarden_source_connections_rejected_per_address_total{source=\"tcp\"}")
            == Some(90)
            && metric(
                &page,
                "logwarden_source_connections_rejected_per_address_total{source=\"intake\"}",
            ) == Some(36)
    })
    .await;
    // The refused ones are the last to come, closed at once; the first ones are served.
    for s in tcp[10..].iter_mut().chain(&mut intake[64..]) {
        assert!(closed_by_peer(s).await);
    }
    tcp[0].write_all(&brute_force()).await.unwrap();
    let alerts = format!("http://127.0.0.1:{}/api/alerts?rule=ssh-bruteforce", p.api);
    eventually("the first connection is served", &daemon, async || {
        get(&alerts).await.1.contains("203.0.113.7")
    })
    .await;
    let page = page().await;
    let m = |s: &str| metric(&page, s).unwrap_or_else(|| panic!("{s} missing:\n{page}"));
    assert_eq!(m("logwarden_source_connections_open{source=\"tcp\"}"), 10);
    assert_eq!(m("logwarden_source_connections_open{source=\"intake\"}"), 64);
    assert_eq!(m("logwarden_source_connections_evicted_total{source=\"tcp\"}"), 0);
    // Another address is not held back by the first one's flood.
    let mut other = connect_from("127.0.0.1", Ports::addr(p.tcp)).await.unwrap();
    other.write_all(b"<13>Dec 10 06:55:46 web-1 app[1]: other\n").await.unwrap();
    eventually("another address is read", &daemon, async || {
        metric(&page_now(&p).await, "logwarden_source_records_in_total{source=\"tcp\"}") == Some(6)
    })
    .await;
}

async fn page_now(p: &Ports) -> String {
    get(&p.metrics()).await.1
}

/// A gzip body of `n` zero bytes: about a thousandth of that on the wire.
fn bomb(n: usize) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..n / chunk.len() {
        e.write_all(&chunk).unwrap();
    }
    e.finish().unwrap()
}

#[tokio::test]
async fn sixty_concurrent_gzip_bombs_keep_the_daemon_under_200_mb() {
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    // The defaults: 16 MiB bodies, 64 MiB buffered at most, 64 requests in flight.
    let config = write_config(dir.path(), &p, "", "", "");
    let daemon = Daemon::start(&config, dir.path(), None);
    healthy(&daemon, &p).await;
    let before = daemon.peak_rss_kib();
    // What the tester sent: about 62 KB each, unauthenticated, expanding past 16 MiB.
    let z = bomb(60 << 20);
    assert!(z.len() < 64 * 1024, "{}", z.len());
    let ingest = format!("http://127.0.0.1:{}/ingest", p.intake);
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..60 {
        let (url, z) = (ingest.clone(), z.clone());
        posts.spawn(async move { post(&url, z, true).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(r) = posts.join_next().await {
        let (status, answer) = r.unwrap();
        assert!(status == 413 || status == 503, "{status} {answer}\n{}", daemon.stderr());
        *statuses.entry(status).or_default() += 1;
    }
    let peak = daemon.peak_rss_kib();
    eprintln!("60 gzip bombs: {statuses:?}; peak RSS {before} KiB before, {peak} KiB after");
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
    // Nothing of them was taken, and the intake still takes a real request.
    let (status, answer) =
        post(&ingest, b"<13>Dec 10 06:55:46 web-1 app[1]: hi\n".to_vec(), false).await;
    assert_eq!((status, answer.as_str()), (200, "{\"accepted\":1}"));
    let page = page_now(&p).await;
    assert_eq!(metric(&page, "logwarden_source_records_in_total{source=\"intake\"}"), Some(1));
    assert_eq!(
        metric(&page, "logwarden_source_requests_busy_total{source=\"intake\"}"),
        Some(statuses.get(&503).copied().unwrap_or(0) as u64),
        "{page}"
    );
}

#[tokio::test]
async fn out_of_descriptors_the_syslog_listener_backs_off_logs_rarely_and_recovers() {
    raise_own_fd_limit(1024);
    let dir = tempfile::tempdir().unwrap();
    let p = Ports::new();
    // Caps far above the descriptors the process has: accept itself fails.
    let caps = ", max_connections: 5000, max_connections_per_address: 5000";
    let config = write_config(dir.path(), &p, caps, "", "");
    let probe = Daemon::start(&config, dir.path(), None);
    healthy(&probe, &p).await;
    let at_rest = probe.open_fds() as u64;
    drop(probe);
    // Room for 30 connections past what the daemon needs at rest.
    let limit = at_rest + 30;
    let daemon = Daemon::start(&config, dir.path(), Some(limit));
    healthy(&daemon, &p).await;
    let started = Instant::now();
    // 100: past the descriptors, within the listen backlog (128) that holds the rest.
    let mut flood = idle_flood(Ports::addr(p.tcp), 10, 20, 100).await;
    // Wait past several backoff steps while accept keeps failing.
    eventually("accept is failing", &daemon, async || {
        daemon.stderr().contains("accept: Too many open files")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flooded_for = started.elapsed();
    drop(flood.drain(..));
    // Descriptors come back as the daemon sees the flood's connections close; the backlog
    // drains (each is at EOF), and a real sender and /healthz get in.
    let mut sender = connect_from("127.0.0.1", Ports::addr(p.tcp)).await.unwrap();
    sender.write_all(&brute_force()).await.unwrap();
    let alerts = format!("http://127.0.0.1:{}/api/alerts?rule=ssh-bruteforce", p.api);
    eventually("the sender is read after the flood", &daemon, async || {
        get(&alerts).await.1.contains("203.0.113.7")
    })
    .await;
    let page = page_now(&p).await;
    let errors = metric(&page, "logwarden_source_accept_errors_total{source=\"tcp\"}").unwrap();
    let said = daemon.stderr();
    let lines = said.lines().filter(|l| l.contains("accept:")).count() as u64;
    eprintln!("{errors} accept errors over {flooded_for:?}, {lines} log lines:\n{said}");
    assert!(errors >= 3, "{page}");
    // At most one line per 10 s interval, per listener that failed (the API may have too).
    let intervals = flooded_for.as_secs() / 10 + 2;
    assert!(lines <= 2 * intervals, "{lines} lines for {errors} errors:\n{said}");
    assert!(lines < errors, "one line per error:\n{said}");
}
