//! The email sink over TLS with AUTH against a real SMTP server: aiosmtpd
//! (tests/data/smtpd_tls.py) with a certificate from a CA made for the test, over STARTTLS and
//! implicit TLS.

// Helpers outside #[test] fns are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logwarden::route::notification::{Kind, Notification};
use logwarden::rule::Severity;
use logwarden::sink::{self, Sink, SinkConfig, SinkError};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

const USER: &str = "logwarden";
const PASSWORD: &str = "s3cret pass";

/// Prints the skip line and says whether to skip: only when aiosmtpd cannot be imported
/// (and never under CI, where that fails the test).
fn skip(test: &str) -> bool {
    let ok = crate::receivers::aiosmtpd_available();
    if !ok {
        eprintln!("SKIPPED {test}: {}", crate::receivers::AIOSMTPD_MISSING);
    }
    !ok
}

/// The Python with aiosmtpd (see [`crate::receivers::smtpd_python`]).
fn python() -> &'static str {
    crate::receivers::smtpd_python().unwrap_or("python3")
}

/// A CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM files in `dir`.
pub(crate) struct Pki {
    pub(crate) ca: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

pub(crate) fn pki(dir: &Path) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name.push(rcgen::DnType::CommonName, "logwarden test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf =
        CertificateParams::new(["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();

    let p = Pki { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
    std::fs::write(&p.ca, ca_cert.pem()).unwrap();
    std::fs::write(&p.cert, leaf_cert.pem()).unwrap();
    std::fs::write(&p.key, leaf_key.serialize_pem()).unwrap();
    p
}

#[derive(Clone, Copy)]
enum Mode {
    Starttls,
    Implicit,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Starttls => "starttls",
            Mode::Implicit => "implicit",
        }
    }
}

/// tests/data/smtpd_tls.py on an ephemeral loopback port; killed on drop. Its stderr goes to a
/// file that failed assertions print.
struct Smtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
    stderr: PathBuf,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Smtpd {
    fn start(dir: &Path, pki: &Pki, mode: Mode) -> Smtpd {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/smtpd_tls.py");
        let maildir = dir.join(format!("Maildir-{}", mode.arg()));
        let stderr = dir.join(format!("smtpd-{}.log", mode.arg()));
        let mut child = Command::new(python())
            .arg(script)
            .args(["--mode", mode.arg(), "--user", USER, "--password", PASSWORD])
            .arg("--cert")
            .arg(&pki.cert)
            .arg("--key")
            .arg(&pki.key)
            .arg("--maildir")
            .arg(&maildir)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        // The script prints `PORT <n>` once it listens; a line read blocks until then, and EOF
        // means it died. The rest of its stdout is never written, so the pipe cannot fill.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let mut d = Smtpd { child, port: 0, maildir, stderr };
        d.port = match line.trim().strip_prefix("PORT ") {
            Some(p) => p.parse().unwrap(),
            None => panic!("smtpd_tls.py did not start: {line:?}\n{}", d.log()),
        };
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The delivered messages, in file-name order.
    fn messages(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    }
}

/// The sink's YAML for `smtpd`, with `extra` lines (credentials, ca_file) added.
fn sink(smtpd: &Smtpd, mode: Mode, extra: &str) -> Arc<dyn Sink> {
    let yaml = format!(
        "type: email\nhost: 127.0.0.1\nport: {}\ntls: {}\nfrom: Logwarden \
         <alerts@example.com>\nto: [soc@example.com]\ntimeout: 10s\n{extra}",
        smtpd.port,
        mode.arg()
    );
    let cfg: SinkConfig = serde_saphyr::from_str(&yaml).unwrap();
    sink::build("mail", &cfg).unwrap()
}

fn credentials(password: &str, ca: Option<&Path>) -> String {
    let mut s = format!("username: {USER}\npassword: \"{password}\"\n");
    if let Some(ca) = ca {
        s.push_str(&format!("ca_file: {}\n", ca.display()));
    }
    s
}

fn notification(id: &str) -> Notification {
    Notification {
        id: id.into(),
        sink: "mail".into(),
        route: "security".into(),
        kind: Kind::New,
        group: BTreeMap::from([("source.ip".to_owned(), "203.0.113.9".to_owned())]),
        severity: Severity::High,
        title: "SSH brute force from 203.0.113.9".into(),
        alerts: vec![json!({
            "rule": { "id": "ssh-brute-force", "title": "SSH brute force" },
            "severity": "high",
            "title": "<b>12 failures</b> for root",
            "group": { "source.ip": "203.0.113.9" },
            "count": 12,
            "fingerprint": "c0ffee",
        })],
        suppressed: 0,
        created: "2026-11-23T09:05:01Z".into(),
    }
}

/// Parses a delivered message with Python's email package, which decodes what a mail client
/// would (quoted-printable, base64, encoded words).
fn parse_mail(path: &Path) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
print(json.dumps({
    "subject": str(m["subject"]), "message_id": str(m["message-id"]),
    "content_type": m.get_content_type(),
    "parts": [p.get_content_type() for p in m.iter_parts()],
    "plain": m.get_body(("plain",)).get_content(),
    "html": m.get_body(("html",)).get_content(),
    "tls": str(m["x-test-tls"]), "auth": str(m["x-test-auth"]),
}))
"#;
    let out = Command::new(python()).args(["-c", SCRIPT]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Sends one notification through `mode` with the right password and the CA, and checks the
/// one message that arrives.
async fn delivers(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let smtpd = Smtpd::start(dir.path(), &pki, mode);
    let s = sink(&smtpd, mode, &credentials(PASSWORD, Some(&pki.ca)));
    let id = format!("tls-{}-1", mode.arg());
    if let Err(e) = s.send(&notification(&id)).await {
        panic!("{e}\nsmtpd:\n{}", smtpd.log());
    }
    let files = smtpd.messages();
    assert_eq!(files.len(), 1, "{files:?}");
    let m = parse_mail(&files[0]);
    assert_eq!(m["subject"], "[logwarden] SSH brute force from 203.0.113.9");
    assert_eq!(m["message_id"], format!("<{id}@logwarden>"));
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["parts"], json!(["text/plain", "text/html"]));
    let plain = m["plain"].as_str().unwrap();
    assert!(plain.contains("* <b>12 failures</b> for root"), "{plain}");
    assert!(plain.contains("Fingerprint: c0ffee"), "{plain}");
    let html = m["html"].as_str().unwrap();
    assert!(html.contains("<h3>&lt;b&gt;12 failures&lt;/b&gt; for root</h3>"), "{html}");
    // The server stamped how the message came: over TLS, by the user who authenticated.
    assert!(m["tls"].as_str().unwrap().starts_with("TLSv1."), "{m}");
    assert_eq!(m["auth"], USER);
}

#[tokio::test]
async fn starttls_with_auth_and_a_private_ca_delivers() {
    if skip("starttls_with_auth_and_a_private_ca_delivers") {
        return;
    }
    delivers(Mode::Starttls).await;
}

#[tokio::test]
async fn implicit_tls_with_auth_and_a_private_ca_delivers() {
    if skip("implicit_tls_with_auth_and_a_private_ca_delivers") {
        return;
    }
    delivers(Mode::Implicit).await;
}

#[tokio::test]
async fn wrong_password_is_a_permanent_535() {
    if skip("wrong_password_is_a_permanent_535") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    for mode in [Mode::Starttls, Mode::Implicit] {
        let smtpd = Smtpd::start(dir.path(), &pki, mode);
        let s = sink(&smtpd, mode, &credentials("not the password", Some(&pki.ca)));
        let e = s.send(&notification("bad-pass")).await.unwrap_err();
        // 535 5.7.8: the server rejected these credentials, and will reject them again.
        assert!(matches!(&e, SinkError::Permanent(m) if m.contains("535")), "{e}");
        assert_eq!(e.to_string().matches("credentials invalid").count(), 1, "{e}");
        assert!(!e.to_string().contains("not the password"), "{e}");
        assert_eq!(smtpd.messages(), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn no_credentials_against_a_server_requiring_auth_is_permanent() {
    if skip("no_credentials_against_a_server_requiring_auth_is_permanent") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let smtpd = Smtpd::start(dir.path(), &pki, Mode::Starttls);
    // An empty username is "no AUTH" (`${LOGWARDEN_SMTP_USERNAME:-}`): the server answers the
    // envelope with 530 5.7.0 Authentication required.
    let s = sink(
        &smtpd,
        Mode::Starttls,
        &format!("username: \"\"\npassword: \"\"\nca_file: {}\n", pki.ca.display()),
    );
    let e = s.send(&notification("no-auth")).await.unwrap_err();
    assert!(matches!(&e, SinkError::Permanent(m) if m.contains("530")), "{e}");
    assert_eq!(smtpd.messages(), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn untrusted_certificate_fails_and_is_retried() {
    if skip("untrusted_certificate_fails_and_is_retried") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    for mode in [Mode::Starttls, Mode::Implicit] {
        let smtpd = Smtpd::start(dir.path(), &pki, mode);
        // No ca_file: only the built-in roots, which did not sign the server's certificate.
        let s = sink(&smtpd, mode, &credentials(PASSWORD, None));
        let t0 = Instant::now();
        let e = s.send(&notification("untrusted")).await.unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        // Retriable, as every other connection failure is (the HTTP sinks treat a bad
        // certificate the same way). From the client a handshake failure cannot be told
        // apart from its transient causes: an expired certificate the relay renews, a load
        // balancer briefly in front of the wrong backend, a clock still settling after boot,
        // an interception on the path. Retrying costs a few handshakes over the outbox's
        // backoff; a permanent verdict would dead-letter the alert at once, even when the
        // relay fixes itself minutes later. A real misconfiguration still ends dead after the
        // retries, with this message as its last error, and `outbox retry` brings it back
        // once `ca_file` is set.
        assert!(e.is_retriable(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("certificate") && msg.contains("UnknownIssuer"), "{msg}");
        assert_eq!(msg.matches("UnknownIssuer").count(), 1, "{msg}");
        // Neither the password nor the message went anywhere.
        assert_eq!(smtpd.messages(), Vec::<PathBuf>::new());
    }
}
