//! Syslog over the network: UDP datagrams and TCP streams, framed into [`RawRecord`]s.
//!
//! TCP applies backpressure: a connection reads its next bytes only once the batch it framed
//! has been taken downstream, so a full pipeline fills the kernel's buffers and slows the
//! sender, and nothing is dropped. UDP cannot push back: a datagram that finds the pipeline
//! full is dropped and counted, never hidden.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Decoder;

use super::{Batch, Origin, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};
use crate::parse::frame::{DEFAULT_MAX_RECORD_BYTES, Frame, NewlineFramer, OctetCountingFramer};

/// Failed TLS handshakes are said at most once a minute, across every TLS listener.
static TLS_FAILURE_LOG: super::log_limit::LogLimit = super::log_limit::LogLimit::new(60);
/// Records per batch: enough to amortize the channel, few enough to keep latency low.
const BATCH_RECORDS: usize = 512;
/// Bytes asked of a TCP stream per read.
const READ_CHUNK: usize = 64 * 1024;

/// `type: syslog_udp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogUdpConfig {
    /// Address to bind (`127.0.0.1:514`, `[::]:5514`).
    pub listen: String,
    /// Longest datagram kept whole; longer ones are counted as too long (default 64 KiB).
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    /// The socket's kernel receive buffer (default 8 MiB, capped by net.core.rmem_max).
    #[serde(default)]
    pub receive_buffer_bytes: Option<usize>,
    /// Alert when nothing arrives for this long (`10m`).
    #[serde(default)]
    pub max_silence: Option<String>,
}

/// `type: syslog_tcp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTcpConfig {
    /// Address to bind.
    pub listen: String,
    /// Connections served at once; more are accepted and closed at once, and counted
    /// (default 1024).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Longest record (default 64 KiB); longer ones are counted and skipped.
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    /// A connection silent this long is closed (default 10m).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// `auto` (default: octet counting when the first byte is a digit, else newlines),
    /// `newline` or `octet_counting`.
    #[serde(default)]
    pub framing: Framing,
    /// Alert when nothing arrives for this long (`10m`).
    #[serde(default)]
    pub max_silence: Option<String>,
    /// Serve TLS (RFC 5425) instead of plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `tls:` of a `syslog_tcp` source. Paths in logwarden.yml are relative to the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs (PEM).
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// Why a TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} `{path}`: {detail}")]
    Pem {
        /// `cert`, `key` or `client_ca`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the combination (a key that does not match the certificate...).
    #[error("TLS: {0}")]
    Rustls(String),
}

/// The acceptor for `cfg`: TLS 1.2 and 1.3 on aws-lc-rs (the one crypto provider of the
/// project), client certificates required when `client_ca` is set.
pub fn tls_acceptor(cfg: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pem = |what, path: &PathBuf, e: &dyn std::fmt::Display| TlsError::Pem {
        what,
        path: path.clone(),
        detail: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| pem("cert", &cfg.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem("cert", &cfg.cert, &e))?;
    if certs.is_empty() {
        return Err(pem("cert", &cfg.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| pem("key", &cfg.key, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &cfg.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| pem("client_ca", ca, &e))? {
                roots
                    .add(c.map_err(|e| pem("client_ca", ca, &e))?)
                    .map_err(|e| pem("client_ca", ca, &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config =
        builder.with_single_cert(certs, key).map_err(|e| TlsError::Rustls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How a TCP stream is cut into records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Decided per connection by its first byte (RFC 6587: a count starts with a digit, a
    /// syslog message with `<`).
    #[default]
    Auto,
    /// One record per line.
    Newline,
    /// `LEN SP MSG`.
    OctetCounting,
}

/// One of the two framers, chosen per connection.
enum Framer {
    Newline(NewlineFramer),
    Octet(OctetCountingFramer),
}

impl Framer {
    fn pick(framing: Framing, first: u8, max: usize) -> Framer {
        match framing {
            Framing::Newline => Framer::Newline(NewlineFramer::new(max)),
            Framing::OctetCounting => Framer::Octet(OctetCountingFramer::new(max)),
            Framing::Auto if first.is_ascii_digit() => Framer::Octet(OctetCountingFramer::new(max)),
            Framing::Auto => Framer::Newline(NewlineFramer::new(max)),
        }
    }

    fn next(&mut self, buf: &mut BytesMut, eof: bool) -> Option<Frame> {
        // The framers never fail (their contract): an `Err` cannot come back.
        let r = match (self, eof) {
            (Framer::Newline(f), false) => f.decode(buf),
            (Framer::Newline(f), true) => f.decode_eof(buf),
            (Framer::Octet(f), false) => f.decode(buf),
            (Framer::Octet(f), true) => f.decode_eof(buf),
        };
        r.ok().flatten()
    }
}

/// A record received now from `peer`: a network record's origin is the address it came
/// from (the listener is known by the source it arrives through).
fn record(peer: &Sym, seq: &mut u64, bytes: bytes::Bytes, now: Timestamp) -> RawRecord {
    *seq += 1;
    RawRecord {
        bytes,
        origin: Origin { source: peer.clone(), record: *seq, offset: 0 },
        received: Some(now),
    }
}

/// Shared address strings of recent UDP peers: most datagrams come from a few senders, so a
/// peer's text is made once, not per datagram. Bounded: cleared when it grows past a limit.
#[derive(Default)]
struct Peers(std::collections::HashMap<SocketAddr, Sym>);

impl Peers {
    fn get(&mut self, a: SocketAddr) -> Sym {
        if self.0.len() >= 4096 {
            self.0.clear();
        }
        self.0.entry(a).or_insert_with(|| Sym::from(a.to_string())).clone()
    }
}

/// How long a UDP batch waits for room downstream before it is dropped. Bursts shorter than
/// this cost nothing; the kernel's receive buffer (8 MiB by default here) holds what arrives
/// meanwhile, and what it cannot hold it counts (`logwarden_source_kernel_dropped_total`).
const UDP_QUEUE_WAIT: Duration = Duration::from_millis(100);

/// Receives datagrams on `socket` until `shutdown`, one record each (a trailing newline or
/// NUL dropped), sending them in batches; a batch that finds `tx` full for [`UDP_QUEUE_WAIT`]
/// is dropped and counted.
pub async fn run_udp(
    name: Sym,
    socket: UdpSocket,
    max_line_bytes: Option<usize>,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max = max_line_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES);
    // Room for the largest datagram, so a long one is measured rather than cut silently.
    let mut buf = vec![0u8; 65_536];
    let mut seq = 0u64;
    let mut peers = Peers::default();
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let mut records = Vec::new();
        let mut take = |d: &[u8],
                        peer: SocketAddr,
                        counters: &SourceCounters,
                        records: &mut Vec<RawRecord>| {
            counters.bytes_in.fetch_add(d.len() as u64, Ordering::Relaxed);
            let mut d = d;
            while let [rest @ .., b'\n' | b'\0' | b'\r'] = d {
                d = rest;
            }
            if d.len() > max {
                counters.records_in.fetch_add(1, Ordering::Relaxed);
                counters.too_long.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let peer = peers.get(peer);
            let bytes = bytes::Bytes::copy_from_slice(d);
            records.push(record(&peer, &mut seq, bytes, Timestamp::now()));
        };
        match first {
            Ok((n, peer)) => take(&buf[..n], peer, &counters, &mut records),
            Err(e) => {
                // ICMP errors surface here on some systems; the socket stays usable.
                eprintln!("source `{name}`: udp receive: {e}");
                continue;
            }
        }
        // Whatever else is already waiting goes in the same batch.
        while records.len() < BATCH_RECORDS {
            match socket.try_recv_from(&mut buf) {
                Ok((n, peer)) => take(&buf[..n], peer, &counters, &mut records),
                Err(_) => break,
            }
        }
        let n = records.len() as u64;
        counters.records_in.fetch_add(n, Ordering::Relaxed);
        // A full pipeline is waited for a moment, while the kernel's receive buffer holds
        // what arrives; a longer stall drops the batch (counted) so that reading goes on.
        let batch = Batch { records, checkpoint: None, done: None };
        match tokio::time::timeout(UDP_QUEUE_WAIT, tx.send(batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                counters.dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Serves TCP connections on `listener` until `shutdown`; each connection frames its stream
/// and sends batches, waiting while `tx` is full.
pub async fn run_tcp(
    name: Sym,
    listener: TcpListener,
    cfg: TcpOptions,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            r = listener.accept() => r,
            // Reap finished connections so the set does not grow with every one ever served.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                eprintln!("source `{name}`: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        counters.connections.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            name: name.clone(),
            peer,
            cfg: cfg.clone(),
            tx: tx.clone(),
            counters: Arc::clone(&counters),
        };
        let shutdown = shutdown.clone();
        conns.spawn(async move {
            match conn.cfg.tls.clone() {
                None => conn.serve(stream, shutdown).await,
                Some(acceptor) => {
                    // A handshake that never finishes must not hold a connection slot.
                    let hs = tokio::time::timeout(conn.cfg.idle_timeout, acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(tls)) => conn.serve(tls, shutdown).await,
                        Ok(Err(e)) => {
                            conn.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                            // Any client can fail a handshake at will: counted each time
                            // (logwarden_source_tls_failures_total), said once a minute.
                            if let Some(held) = TLS_FAILURE_LOG.allow() {
                                eprintln!(
                                    "logwarden: source `{}`: TLS from {}: {e}{}",
                                    conn.name,
                                    conn.peer,
                                    super::log_limit::held_back(held)
                                );
                            }
                        }
                        Err(_) => {
                            conn.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    // Connections stop at the same signal, each after sending what it framed.
    while conns.join_next().await.is_some() {}
}

/// What a TCP listener's connections need from its config.
#[derive(Clone)]
pub struct TcpOptions {
    /// Connections at once.
    pub max_connections: usize,
    /// Longest record.
    pub max_line_bytes: usize,
    /// Idle connections are closed after this.
    pub idle_timeout: Duration,
    /// How streams are framed.
    pub framing: Framing,
    /// TLS, when configured.
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for TcpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpOptions")
            .field("max_connections", &self.max_connections)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("idle_timeout", &self.idle_timeout)
            .field("framing", &self.framing)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

struct Connection {
    name: Sym,
    peer: SocketAddr,
    cfg: TcpOptions,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
}

impl Connection {
    async fn serve<S: AsyncRead + Unpin>(self, mut stream: S, mut shutdown: watch::Receiver<bool>) {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut framer: Option<Framer> = None;
        let mut seq = 0u64;
        let peer = Sym::from(self.peer.to_string());
        loop {
            buf.reserve(READ_CHUNK);
            let read = tokio::select! {
                _ = shutdown.changed() => break,
                r = tokio::time::timeout(self.cfg.idle_timeout, stream.read_buf(&mut buf)) => r,
            };
            let eof = match read {
                Ok(Ok(0)) => true,
                Ok(Ok(n)) => {
                    self.counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    false
                }
                Ok(Err(e)) => {
                    eprintln!("source `{}`: connection from {}: {e}", self.name, self.peer);
                    true
                }
                Err(_) => {
                    self.counters.idle_closed.fetch_add(1, Ordering::Relaxed);
                    true
                }
            };
            let Some(&first) = buf.first() else {
                if eof {
                    break;
                }
                continue;
            };
            let f = framer.get_or_insert_with(|| {
                Framer::pick(self.cfg.framing, first, self.cfg.max_line_bytes)
            });
            let mut records = Vec::new();
            // One clock read per read call: the records of one read arrived together.
            let now = Timestamp::now();
            while let Some(frame) = f.next(&mut buf, eof) {
                self.counters.records_in.fetch_add(1, Ordering::Relaxed);
                match frame {
                    Frame::Record(b) => records.push(record(&peer, &mut seq, b, now)),
                    Frame::TooLong { .. } => {
                        self.counters.too_long.fetch_add(1, Ordering::Relaxed);
                    }
                    Frame::Malformed { .. } => {
                        self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if records.len() >= BATCH_RECORDS {
                    let full = std::mem::take(&mut records);
                    if self
                        .tx
                        .send(Batch { records: full, checkpoint: None, done: None })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if !records.is_empty()
                && self.tx.send(Batch { records, checkpoint: None, done: None }).await.is_err()
            {
                return;
            }
            if eof {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    use super::*;

    fn opts(framing: Framing) -> TcpOptions {
        TcpOptions {
            max_connections: 2,
            max_line_bytes: 100,
            idle_timeout: Duration::from_secs(5),
            framing,
            tls: None,
        }
    }

    async fn collect(rx: &mut mpsc::Receiver<Batch>, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < n {
            let b = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("records in time")
                .expect("open");
            got.extend(b.records.iter().map(|r| String::from_utf8_lossy(&r.bytes).into_owned()));
        }
        got
    }

    #[tokio::test]
    async fn tcp_detects_newline_and_octet_counting_per_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        let task = tokio::spawn(run_tcp(
            Sym::from("tcp"),
            listener,
            opts(Framing::Auto),
            tx,
            Arc::clone(&counters),
            shutdown,
        ));
        let mut a = TcpStream::connect(addr).await.unwrap();
        a.write_all(b"<13>one\n<13>two\n<13>thr").await.unwrap();
        a.flush().await.unwrap();
        assert_eq!(collect(&mut rx, 2).await, ["<13>one", "<13>two"]);
        a.write_all(b"ee\n").await.unwrap();
        assert_eq!(collect(&mut rx, 1).await, ["<13>three"]);
        let mut b = TcpStream::connect(addr).await.unwrap();
        b.write_all(b"9 <13>a b c9 <13>d\ne f").await.unwrap();
        assert_eq!(collect(&mut rx, 2).await, ["<13>a b c", "<13>d\ne f"]);
        // A line over the limit is counted, and the stream goes on.
        let long = format!("<13>{}\n<13>after\n", "x".repeat(200));
        a.write_all(long.as_bytes()).await.unwrap();
        assert_eq!(collect(&mut rx, 1).await, ["<13>after"]);
        assert_eq!(counters.too_long.load(Ordering::Relaxed), 1);
        // The last line without its newline still counts when the peer closes.
        b.write_all(b"5 <13>z").await.unwrap();
        a.write_all(b"<13>tail").await.unwrap();
        drop(a);
        let mut last = collect(&mut rx, 2).await;
        last.sort();
        assert_eq!(last, ["<13>tail", "<13>z"]);
        assert_eq!(counters.records_in.load(Ordering::Relaxed), 9);
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    /// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
    fn pki(dir: &std::path::Path) -> (PathBuf, TlsConfig, String, String) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(rcgen::DnType::CommonName, "logwarden test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut server = CertificateParams::new(["127.0.0.1".to_owned()]).unwrap();
        server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let mut client = CertificateParams::new(["relay.example".to_owned()]).unwrap();
        client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).unwrap();
        let cfg = TlsConfig {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            client_ca: Some(ca_path.clone()),
        };
        (ca_path, cfg, client_cert.pem(), client_key.serialize_pem())
    }

    async fn tls_client(
        addr: SocketAddr,
        ca: &std::path::Path,
        identity: Option<(&str, &str)>,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let cfg = match identity {
            Some((cert, key)) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => b.with_no_client_auth(),
        };
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
    }

    #[tokio::test]
    async fn tls_with_a_client_certificate_delivers_and_without_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cfg, cert, key) = pki(dir.path());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        let mut o = opts(Framing::Auto);
        o.tls = Some(tls_acceptor(&cfg).unwrap());
        tokio::spawn(run_tcp(Sym::from("tls"), listener, o, tx, Arc::clone(&counters), shutdown));
        let mut c = tls_client(addr, &ca, Some((&cert, &key))).await.unwrap();
        c.write_all(b"13 <13>over tls!<13>second\n").await.unwrap();
        c.flush().await.unwrap();
        // RFC 5425 is octet counted; the first byte picked it, for this connection.
        assert_eq!(collect(&mut rx, 1).await, ["<13>over tls!"]);
        c.shutdown().await.unwrap();
        // Without a client certificate the handshake (or the first read) fails, and is counted.
        if let Ok(mut anon) = tls_client(addr, &ca, None).await {
            let _ = anon.write_all(b"<13>sneaky\n").await;
            let _ = anon.flush().await;
            let mut b = [0u8; 1];
            let _ = tokio::time::timeout(Duration::from_secs(5), anon.read(&mut b)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while counters.tls_failures.load(Ordering::Relaxed) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the failure is counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(rx.try_recv().is_err(), "nothing from the anonymous client");
        // A key that does not exist is an error naming the file.
        let bad = TlsConfig { key: dir.path().join("nope.pem"), ..cfg };
        let e = tls_acceptor(&bad).err().expect("missing key").to_string();
        assert!(e.starts_with("key `") && e.contains("nope.pem"), "{e}");
    }

    #[tokio::test]
    async fn tcp_over_max_connections_is_refused_and_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        tokio::spawn(run_tcp(
            Sym::from("tcp"),
            listener,
            opts(Framing::Newline),
            tx,
            Arc::clone(&counters),
            shutdown,
        ));
        let mut held = Vec::new();
        for i in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("<13>c{i}\n").as_bytes()).await.unwrap();
            held.push(s);
        }
        assert_eq!(collect(&mut rx, 2).await.len(), 2);
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await.unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "the third connection is closed");
        assert_eq!(counters.rejected.load(Ordering::Relaxed), 1);
    }

    /// A UDP source on 127.0.0.1 feeding a channel of one batch: its address, the channel,
    /// its counters, and what keeps it running.
    async fn udp_source_with_room_for_one_batch()
    -> (SocketAddr, mpsc::Receiver<Batch>, Arc<SourceCounters>, watch::Sender<bool>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(1);
        let (stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        tokio::spawn(run_udp(Sym::from("udp"), socket, None, tx, Arc::clone(&counters), shutdown));
        (addr, rx, counters, stop)
    }

    #[tokio::test]
    async fn a_short_stall_downstream_loses_no_datagram() {
        // Room for one batch, and a reader that takes one every 20 ms (a fifth of
        // UDP_QUEUE_WAIT): the source waits, the kernel buffer holds the rest.
        let (addr, mut rx, counters, _stop) = udp_source_with_room_for_one_batch().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 300 {
                let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await
                else {
                    break;
                };
                got.extend(b.records.into_iter().map(|r| r.bytes));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            got
        });
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..300 {
            client.send_to(format!("<13>m{i}").as_bytes(), addr).await.unwrap();
            if i % 30 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let got = reader.await.unwrap();
        let want: Vec<String> = (0..300).map(|i| format!("<13>m{i}")).collect();
        let got: Vec<String> =
            got.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        assert_eq!(got, want);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn udp_drops_are_counted_when_the_pipeline_is_full() {
        // Room for one batch, and nobody reading: the rest must be dropped, and counted.
        let (addr, mut rx, counters, _stop) = udp_source_with_room_for_one_batch().await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for i in 0..200 {
            client.send_to(format!("<13>m{i}\n").as_bytes(), addr).await.unwrap();
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while counters.records_in.load(Ordering::Relaxed) < 200
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The last batch waits UDP_QUEUE_WAIT for room before it is dropped.
        tokio::time::sleep(UDP_QUEUE_WAIT * 3).await;
        let got: u64 = {
            let mut n = 0;
            while let Ok(b) = rx.try_recv() {
                assert_eq!(b.records[0].bytes.first(), Some(&b'<'), "newline dropped");
                n += b.records.len() as u64;
            }
            n
        };
        let (received, dropped) =
            (counters.records_in.load(Ordering::Relaxed), counters.dropped.load(Ordering::Relaxed));
        assert_eq!(received, 200, "loopback delivers every datagram");
        assert!(dropped > 0, "some must be dropped");
        assert_eq!(got + dropped, received, "every datagram is delivered or counted");
    }
}
