//! Sinks against real receivers on loopback: an axum HTTP server that records every request
//! and answers as scripted, and aiosmtpd for email.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use hmac::{Hmac, KeyInit, Mac};
use logwarden::route::notification::{Kind, Notification};
use logwarden::rule::Severity;
use logwarden::sink::{self, Sink, SinkConfig, SinkError};
use serde_json::{Value, json};
use sha2::Sha256;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
struct Recorded {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the receiver answers to the next request.
#[derive(Clone, Copy, Debug)]
enum Reply {
    Status(u16),
    /// Sleep this long, then answer 200 (by then the client has given up).
    Hang(Duration),
}

#[derive(Default)]
struct Receiver {
    log: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
}

impl Receiver {
    fn requests(&self) -> Vec<Recorded> {
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
async fn receiver(script: &[Reply]) -> (Arc<Receiver>, SocketAddr) {
    let r = Arc::new(Receiver::default());
    r.script.lock().unwrap().extend(script.iter().copied());
    let app = Router::new().fallback(handle).with_state(Arc::clone(&r));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (r, addr)
}

fn alert(sev: &str, title: &str, fingerprint: &str) -> Value {
    json!({
        "rule": { "id": "ssh-brute-force", "title": "SSH brute force" },
        "severity": sev,
        "title": title,
        "group": { "source.ip": "203.0.113.9", "user.name": "root" },
        "count": 12,
        "first_seen": "2026-11-23T09:00:00Z",
        "last_seen": "2026-11-23T09:05:00Z",
        "fingerprint": fingerprint,
        "events": [{ "@timestamp": "2026-11-23T09:05:00Z", "log.file.path": "/var/log/auth.log" }],
        "sample": [],
    })
}

fn notification(id: &str, alerts: Vec<Value>, suppressed: u64) -> Notification {
    Notification {
        id: id.into(),
        sink: "test".into(),
        route: "security".into(),
        kind: Kind::New,
        group: BTreeMap::from([("source.ip".to_owned(), "203.0.113.9".to_owned())]),
        severity: Severity::High,
        title: "SSH brute force from 203.0.113.9".into(),
        alerts,
        suppressed,
        created: "2026-11-23T09:05:01Z".into(),
    }
}

fn build(name: &str, yaml: &str) -> Arc<dyn Sink> {
    let cfg: SinkConfig = serde_saphyr::from_str(yaml).unwrap();
    sink::build(name, &cfg).unwrap()
}

fn header<'a>(r: &'a Recorded, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn webhook_posts_the_notification_signed_with_its_idempotency_key() {
    let (rx, addr) = receiver(&[]).await;
    let s = build(
        "hook",
        &format!(
            "type: webhook\nurl: http://{addr}/alerts\nheaders:\n  X-Tenant: acme\n  \
             Authorization: Bearer t0k\nsecret: s3cret\ntimeout: 5s\n"
        ),
    );
    let n = notification("ntf-0001", vec![alert("high", "SSH brute force", "00ff")], 0);
    s.send(&n).await.unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, "/alerts");
    assert_eq!(header(r, "content-type"), Some("application/json"));
    assert_eq!(header(r, "idempotency-key"), Some("ntf-0001"));
    assert_eq!(header(r, "x-tenant"), Some("acme"));
    assert_eq!(header(r, "authorization"), Some("Bearer t0k"));
    let want = format!("sha256={}", hmac_hex(b"s3cret", &r.body));
    assert_eq!(header(r, "x-logwarden-signature"), Some(want.as_str()));
    let back: Notification = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(back, n);
    assert_eq!(&r.body[..], &serde_json::to_vec(&n).unwrap()[..]);
}

#[tokio::test]
async fn webhook_without_secret_sends_no_signature() {
    let (rx, addr) = receiver(&[]).await;
    let s = build("hook", &format!("type: webhook\nurl: http://{addr}/\n"));
    s.send(&notification("n2", vec![], 0)).await.unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(header(&reqs[0], "x-logwarden-signature"), None);
    assert_eq!(header(&reqs[0], "idempotency-key"), Some("n2"));
}

#[tokio::test]
async fn webhook_retries_on_500_408_and_429_not_on_400() {
    let script = [
        Reply::Status(500),
        Reply::Status(429),
        Reply::Status(408),
        Reply::Status(503),
        Reply::Status(400),
        Reply::Status(404),
        Reply::Status(200),
        Reply::Status(204),
    ];
    let (rx, addr) = receiver(&script).await;
    let s = build("hook", &format!("type: webhook\nurl: http://{addr}/\nsecret: k\n"));
    let n = notification("same-key", vec![alert("low", "x", "01")], 0);
    let mut got = Vec::new();
    for _ in 0..script.len() {
        got.push(s.send(&n).await);
    }
    let kinds: Vec<&str> = got
        .iter()
        .map(|r| match r {
            Ok(()) => "ok",
            Err(SinkError::Retriable(_)) => "retry",
            Err(SinkError::Permanent(_)) => "permanent",
        })
        .collect();
    assert_eq!(
        kinds,
        ["retry", "retry", "retry", "retry", "permanent", "permanent", "ok", "ok"],
        "{got:?}"
    );
    // Every attempt is the same delivery to the receiver: same key, same signed bytes.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), script.len());
    assert!(reqs.iter().all(|r| header(r, "idempotency-key") == Some("same-key")));
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));
    // The status and the receiver's words reach the operator.
    let Err(SinkError::Permanent(msg)) = &got[4] else { unreachable!() };
    assert!(msg.contains("400") && msg.contains("invalid_payload"), "{msg}");
}

#[tokio::test]
async fn webhook_hang_past_the_timeout_is_retriable() {
    let (rx, addr) = receiver(&[Reply::Hang(Duration::from_secs(5))]).await;
    let s = build("hook", &format!("type: webhook\nurl: http://{addr}/\ntimeout: 300ms\n"));
    let t0 = Instant::now();
    let e = s.send(&notification("slow", vec![], 0)).await.unwrap_err();
    assert!(e.is_retriable(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn webhook_connection_refused_is_retriable() {
    let addr = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let s = build("hook", &format!("type: webhook\nurl: http://{addr}/path/secret-token\n"));
    let e = s.send(&notification("n", vec![], 0)).await.unwrap_err();
    assert!(e.is_retriable(), "{e}");
    // The URL's path may be a credential; errors go to logs.
    assert!(!e.to_string().contains("secret-token"), "{e}");
}

/// Checks a message against Block Kit's shape and Slack's documented limits.
fn assert_block_kit(p: &Value) {
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

#[tokio::test]
async fn slack_sends_a_block_kit_message_coloured_by_severity() {
    let (rx, addr) = receiver(&[]).await;
    let s = build(
        "slack",
        &format!(
            "type: slack\nwebhook_url: http://{addr}/services/T0/B0/xyz\n\
             link: 'https://siem.example/alerts/{{fingerprint}}?rule={{rule.id}}'\n"
        ),
    );
    let long = "é".repeat(5000);
    let alerts = vec![
        alert("critical", &long, "f0"),
        alert("high", "b", "f1"),
        alert("medium", "c", "f2"),
        alert("low", "d", "f3"),
        alert("info", "e", "f4"),
    ];
    let n = notification("slack-1", alerts, 37);
    s.send(&n).await.unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/services/T0/B0/xyz");
    assert_eq!(header(r, "content-type"), Some("application/json"));
    assert_eq!(header(r, "idempotency-key"), Some("slack-1"));
    let p: Value = serde_json::from_slice(&r.body).unwrap();
    assert_block_kit(&p);
    assert_eq!(p["text"], "SSH brute force from 203.0.113.9");
    let atts = p["attachments"].as_array().unwrap();
    let colors: Vec<&str> = atts.iter().map(|a| a["color"].as_str().unwrap()).collect();
    assert_eq!(colors, ["#8B0000", "#E01E5A", "#ECB22E", "#2EB67D", "#439FE0"]);
    let first = atts[0]["blocks"].as_array().unwrap();
    let title = first[0]["text"]["text"].as_str().unwrap();
    assert_eq!(title.chars().count(), 150);
    assert!(title.starts_with("éé") && title.ends_with('…'));
    let fields: Vec<&str> = first[1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Severity*\ncritical",
            "*Rule*\nssh-brute-force: SSH brute force",
            "*Group*\nsource.ip=203.0.113.9, user.name=root",
            "*Count*\n12",
            "*First seen*\n2026-11-23T09:00:00Z",
            "*Last seen*\n2026-11-23T09:05:00Z",
        ]
    );
    assert_eq!(first[2]["type"], "actions");
    assert_eq!(
        first[2]["elements"][0]["url"],
        "https://siem.example/alerts/f0?rule=ssh-brute-force"
    );
    let last = atts[4]["blocks"].as_array().unwrap();
    let ctx = last.last().unwrap();
    assert_eq!(ctx["type"], "context");
    assert_eq!(ctx["elements"][0]["text"], "37 more suppressed");
    // Only the last attachment carries the context line.
    assert!(atts[..4].iter().all(|a| a["blocks"].as_array().unwrap().len() == 3));
}

#[tokio::test]
async fn slack_many_alerts_stay_within_limits() {
    let (rx, addr) = receiver(&[]).await;
    let s = build(
        "slack",
        &format!("type: slack\nwebhook_url: http://{addr}/\nlink: https://x/{{fingerprint}}\n"),
    );
    let alerts = (0..40).map(|i| alert("medium", &"t".repeat(4000), &format!("{i:02}"))).collect();
    let mut n = notification("many", alerts, 0);
    n.title = "x".repeat(5000);
    s.send(&n).await.unwrap();
    let p: Value = serde_json::from_slice(&rx.requests()[0].body).unwrap();
    assert_block_kit(&p);
    assert_eq!(p["attachments"].as_array().unwrap().len(), 10);
    assert_eq!(p["text"].as_str().unwrap().chars().count(), 3000);
}

#[tokio::test]
async fn slack_invalid_payload_is_permanent_and_5xx_retriable() {
    let (_rx, addr) = receiver(&[Reply::Status(400), Reply::Status(500)]).await;
    let s = build("slack", &format!("type: slack\nwebhook_url: http://{addr}/hook\n"));
    let n = notification("p", vec![alert("low", "x", "1")], 0);
    let e = s.send(&n).await.unwrap_err();
    assert!(matches!(&e, SinkError::Permanent(m) if m.contains("invalid_payload")), "{e}");
    assert!(s.send(&n).await.unwrap_err().is_retriable());
    s.send(&n).await.unwrap();
}

#[tokio::test]
async fn file_sink_appends_one_json_line_per_notification() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let s = build("file", &format!("type: file\npath: {}\n", path.display()));
    let a = notification("f1", vec![alert("high", "one", "aa")], 0);
    let mut b = notification("f2", vec![alert("low", "two\nlines", "bb")], 4);
    b.kind = Kind::Summary;
    s.send(&a).await.unwrap();
    s.send(&b).await.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(text.ends_with('\n'));
    let back: Vec<Notification> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(back, [a, b]);
}

#[tokio::test]
async fn file_sink_names_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/alerts.jsonl");
    let cfg: SinkConfig =
        serde_saphyr::from_str(&format!("type: file\npath: {}\n", path.display())).unwrap();
    let e = sink::build("file", &cfg).err().unwrap();
    assert!(!e.is_retriable());
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

/// aiosmtpd on an ephemeral loopback port, delivering into a Maildir; killed on drop.
struct Smtpd {
    child: Child,
    port: u16,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn aiosmtpd_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_smtpd(maildir: &Path) -> Smtpd {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("python3")
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

/// Parses a delivered message with Python's email package (it decodes quoted-printable,
/// base64 and encoded words, which is what a mail client would do).
fn parse_mail(path: &Path) -> Value {
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

#[tokio::test]
async fn email_through_aiosmtpd_has_both_parts_escaped_html_and_a_stable_message_id() {
    if !aiosmtpd_available() {
        eprintln!(
            "SKIPPED email_through_aiosmtpd_has_both_parts_escaped_html_and_a_stable_message_id: `python3 -c 'import aiosmtpd'` failed; install \
             python3-aiosmtpd (apt) or `pip install aiosmtpd` (.ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let smtpd = start_smtpd(&maildir);
    let s = build(
        "mail",
        &format!(
            "type: email\nhost: 127.0.0.1\nport: {}\ntls: none\nfrom: Logwarden \
             <alerts@example.com>\nto: [soc@example.com, oncall@example.com]\ntimeout: 10s\n",
            smtpd.port
        ),
    );
    let n = notification(
        "mail-42",
        vec![
            alert("critical", "<script>alert(1)</script> on web-1", "c0ffee"),
            alert("low", "R&D \"quoted\"", "beef"),
        ],
        3,
    );
    s.send(&n).await.unwrap();
    s.send(&n).await.unwrap();

    let new = maildir.join("new");
    let mut files: Vec<_> = std::fs::read_dir(&new).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let m = parse_mail(&files[0]);
    let again = parse_mail(&files[1]);
    assert_eq!(m["subject"], "[logwarden] SSH brute force from 203.0.113.9");
    assert_eq!(m["from"], "Logwarden <alerts@example.com>");
    assert_eq!(m["to"], "soc@example.com, oncall@example.com");
    assert_eq!(m["message_id"], "<mail-42@logwarden>");
    // A retry carries the same Message-ID, so the receiving side can tell.
    assert_eq!(again["message_id"], m["message_id"]);
    assert_eq!(m["content_type"], "multipart/alternative");
    let plain = m["plain"].as_str().unwrap();
    assert!(plain.contains("<script>alert(1)</script> on web-1"), "{plain}");
    assert!(plain.contains("Fingerprint: c0ffee") && plain.contains("3 more suppressed"));
    let html = m["html"].as_str().unwrap();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; on web-1"), "{html}");
    assert!(html.contains("R&amp;D &quot;quoted&quot;"), "{html}");
    assert!(html.contains("source.ip=203.0.113.9, user.name=root"), "{html}");
}
