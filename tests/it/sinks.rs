//! Sinks against real receivers on loopback (`receivers`): an axum HTTP server that records
//! every request and answers as scripted, and aiosmtpd for email.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use hmac::{Hmac, KeyInit, Mac};
use logwarden::route::notification::{Kind, Notification};
use logwarden::rule::Severity;
use logwarden::sink::{self, Sink, SinkConfig, SinkError};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::receivers::{
    AIOSMTPD_MISSING, Reply, aiosmtpd_available, assert_block_kit, delivered_mail, header,
    parse_mail, receiver, start_smtpd,
};

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
    let ts = header(r, "x-logwarden-timestamp").unwrap();
    let signed = [ts.as_bytes(), b".", &r.body].concat();
    let want = format!("sha256={}", hmac_hex(b"s3cret", &signed));
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
    assert_eq!(header(&reqs[0], "x-logwarden-timestamp"), None);
    assert_eq!(header(&reqs[0], "idempotency-key"), Some("n2"));
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The README's check, in Rust: recompute over "{timestamp}.{body}", compare in constant time
/// (`verify_slice`), refuse a timestamp more than 5 minutes off `now`.
fn verify_like_the_readme(secret: &[u8], ts: &str, sig: &str, body: &[u8], now: i64) -> bool {
    let Ok(t) = ts.parse::<i64>() else { return false };
    if !ts.bytes().all(|b| b.is_ascii_digit()) || (now - t).abs() > 300 {
        return false;
    }
    let Some(Ok(want)) = sig.strip_prefix("sha256=").map(hex::decode) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&want).is_ok()
}

/// The fenced Python block after the `verify-webhook` marker in README.md.
fn readme_verify_snippet() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let after = readme.split("<!-- verify-webhook").nth(1).expect("the marker in README.md");
    let code = after.split("```python\n").nth(1).expect("a python block after the marker");
    code.split("\n```").next().unwrap().to_owned()
}

#[tokio::test]
async fn webhook_signature_checked_the_readme_way_accepts_and_refuses_a_replay() {
    let (rx, addr) = receiver(&[]).await;
    let s = build("hook", &format!("type: webhook\nurl: http://{addr}/\nsecret: s3cret\n"));
    s.send(&notification("n-replay", vec![alert("high", "x", "01")], 0)).await.unwrap();
    let now = unix_now();
    let r = &rx.requests()[0];
    let ts = header(r, "x-logwarden-timestamp").unwrap().to_owned();
    let sig = header(r, "x-logwarden-signature").unwrap().to_owned();
    // Sent just now (a minute either way for a slow machine).
    assert!((now - ts.parse::<i64>().unwrap()).abs() <= 60, "{ts} vs {now}");

    let body = &r.body[..];
    let fresh_ts = (ts.parse::<i64>().unwrap() + 400).to_string();
    let mut other_body = body.to_vec();
    other_body[1] = b' ';
    // (secret, timestamp header, body, receiver's clock, accepted?)
    type Case<'a> = (&'a [u8], &'a str, &'a [u8], i64, bool);
    let cases: [Case; 6] = [
        (b"s3cret", &ts, body, now, true),
        // The same request captured and sent again 6 minutes later.
        (b"s3cret", &ts, body, now + 360, false),
        // ... with its timestamp moved forward to look fresh: the signature no longer fits.
        (b"s3cret", &fresh_ts, body, now + 400, false),
        // A body changed in transit, or a sender without the secret.
        (b"s3cret", &ts, &other_body, now, false),
        (b"guess", &ts, body, now, false),
        // A clock 4 minutes behind the sender's is still inside the window.
        (b"s3cret", &ts, body, now - 240, true),
    ];
    for (i, (secret, t, b, at, ok)) in cases.iter().enumerate() {
        assert_eq!(verify_like_the_readme(secret, t, &sig, b, *at), *ok, "case {i}");
    }

    // The README's own Python, on the same request and cases.
    let python = std::process::Command::new("python3").arg("--version").output();
    if python.is_err() {
        assert!(std::env::var_os("CI").is_none(), "python3 is needed to run the README's check");
        eprintln!("SKIPPED the README's Python check: no python3");
        return;
    }
    let hexes = |b: &[u8]| hex::encode(b);
    let mut script = readme_verify_snippet();
    script.push_str("\nimport sys\nfor line in sys.stdin:\n");
    script.push_str("    secret, ts, sig, body, now = line.split()\n");
    script.push_str("    h = {'X-Logwarden-Timestamp': ts, 'X-Logwarden-Signature': sig}\n");
    script.push_str("    print(verify(bytes.fromhex(secret), h, bytes.fromhex(body), int(now)))\n");
    let input: String = cases
        .iter()
        .map(|(secret, t, b, at, _)| format!("{} {t} {sig} {} {at}\n", hexes(secret), hexes(b)))
        .collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let got: Vec<String> =
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect();
    let want: Vec<String> =
        cases.iter().map(|c| if c.4 { "True" } else { "False" }.to_owned()).collect();
    assert_eq!(got, want);
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

#[tokio::test]
async fn email_through_aiosmtpd_has_both_parts_escaped_html_and_a_stable_message_id() {
    if !aiosmtpd_available() {
        eprintln!(
            "SKIPPED email_through_aiosmtpd_has_both_parts_escaped_html_and_a_stable_message_id: \
             {AIOSMTPD_MISSING}"
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

    let files = delivered_mail(&maildir);
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
