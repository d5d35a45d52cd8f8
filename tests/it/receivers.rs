//! Real receivers on loopback for the sink and routing tests: an axum HTTP server that records
//! every request and answers as scripted, aiosmtpd delivering into a Maildir, and a check of
//! Slack's Block Kit shape.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::Value;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// Every header.
    pub headers: HeaderMap,
    /// The body as received.
    pub body: Bytes,
}

/// What the receiver answers to the next request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// This status (200 with Slack's "ok", 400 with its "invalid_payload").
    Status(u16),
    /// Sleep this long, then answer 200 (by then the client has given up).
    Hang(Duration),
}

/// An HTTP receiver's record and script.
#[derive(Default)]
pub struct Receiver {
    log: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

impl Receiver {
    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn handle(
    State(r): State<Arc<Receiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    r.log.lock().unwrap().push(Recorded { method, path: uri.path().to_owned(), headers, body });
    let reply = r.script.lock().unwrap().pop_front().unwrap_or(Reply::Status(200));
    match reply {
        // Slack's own answers: "ok", or an error code in the body.
        Reply::Status(200) => (StatusCode::OK, "ok"),
        Reply::Status(400) => (StatusCode::BAD_REQUEST, "invalid_payload"),
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), "scripted failure"),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "too late")
        }
    }
}

/// Starts a receiver on an ephemeral loopback port that answers `script` in order, then 200.
/// It runs on the calling test's tokio runtime, for as long as that runtime does.
pub async fn receiver(script: &[Reply]) -> (Arc<Receiver>, SocketAddr) {
    let r = Arc::new(Receiver::default());
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = Router::new().fallback(handle).with_state(Arc::clone(&r));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, addr)
}

/// A header of a recorded request, as text.
pub fn header<'a>(r: &'a Recorded, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Checks a message against Block Kit's shape and Slack's documented limits.
pub fn assert_block_kit(p: &Value) {
    let text = p["text"].as_str().expect("text fallback");
    assert!(!text.is_empty() && text.chars().count() <= 3000);
    let atts = p["attachments"].as_array().expect("attachments");
    assert!(!atts.is_empty());
    let mut total_blocks = 0;
    for a in atts {
        let color = a["color"].as_str().expect("color");
        assert!(color.len() == 7 && color.starts_with('#'), "{color}");
        let blocks = a["blocks"].as_array().expect("blocks");
        total_blocks += blocks.len();
        for b in blocks {
            match b["type"].as_str().expect("block type") {
                "header" => {
                    assert_eq!(b["text"]["type"], "plain_text");
                    let t = b["text"]["text"].as_str().unwrap();
                    assert!(!t.is_empty() && t.chars().count() <= 150, "{t}");
                }
                "section" => {
                    let fields = b["fields"].as_array().expect("fields");
                    assert!(!fields.is_empty() && fields.len() <= 10);
                    for f in fields {
                        assert_eq!(f["type"], "mrkdwn");
                        let t = f["text"].as_str().unwrap();
                        assert!(!t.is_empty() && t.chars().count() <= 2000);
                    }
                }
                "context" => {
                    let els = b["elements"].as_array().expect("elements");
                    assert!(!els.is_empty() && els.len() <= 10);
                    for e in els {
                        assert_eq!(e["type"], "mrkdwn");
                        assert!(e["text"].as_str().unwrap().chars().count() <= 3000);
                    }
                }
                "actions" => {
                    let els = b["elements"].as_array().expect("elements");
                    assert!(!els.is_empty() && els.len() <= 25);
                    for e in els {
                        assert_eq!(e["type"], "button");
                        assert_eq!(e["text"]["type"], "plain_text");
                        assert!(e["text"]["text"].as_str().unwrap().chars().count() <= 75);
                        assert!(e["url"].as_str().unwrap().chars().count() <= 3000);
                    }
                }
                other => panic!("unexpected block type {other}"),
            }
        }
    }
    assert!(total_blocks <= 50, "{total_blocks} blocks");
}

/// aiosmtpd on an ephemeral loopback port, delivering into a Maildir; killed on drop.
pub struct Smtpd {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python that has aiosmtpd: the one on PATH, or Debian's (python3-aiosmtpd installs
/// there, and a pyenv or venv python3 may come first on PATH).
pub fn smtpd_python() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Whether `python3 -m aiosmtpd` can run here. Under CI (`CI` set) it must: a mail test
/// that skips there would pass without testing anything.
pub fn aiosmtpd_available() -> bool {
    let found = smtpd_python().is_some();
    assert!(found || std::env::var_os("CI").is_none(), "{AIOSMTPD_MISSING}");
    found
}

/// What to print when a test skips its mail part for want of aiosmtpd.
pub const AIOSMTPD_MISSING: &str = "`python3 -c 'import aiosmtpd'` failed; install \
     python3-aiosmtpd (apt) or `pip install aiosmtpd` (.ci/run does)";

/// Starts aiosmtpd delivering into `maildir` and waits until it listens.
pub fn start_smtpd(maildir: &Path) -> Smtpd {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(smtpd_python().unwrap_or("python3"))
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut d = Smtpd { child, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(d.child.try_wait().unwrap().is_none(), "aiosmtpd exited early");
        assert!(Instant::now() < deadline, "aiosmtpd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    d.port = port;
    d
}

/// The messages delivered into `maildir`, sorted by file name.
pub fn delivered_mail(maildir: &Path) -> Vec<std::path::PathBuf> {
    let new = maildir.join("new");
    let mut files: Vec<_> = std::fs::read_dir(&new).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Parses a delivered message with Python's email package (it decodes quoted-printable,
/// base64 and encoded words, which is what a mail client would do).
pub fn parse_mail(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
print(json.dumps({
    "subject": str(m["subject"]), "from": str(m["from"]), "to": str(m["to"]),
    "message_id": str(m["message-id"]), "content_type": m.get_content_type(),
    "plain": m.get_body(("plain",)).get_content(),
    "html": m.get_body(("html",)).get_content(),
}))
"#;
    let out = Command::new("python3").args(["-c", SCRIPT]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}
