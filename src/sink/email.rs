//! Email over SMTP (lettre): a text and an HTML part listing the alerts, and a Message-ID
//! derived from the notification id so a retried delivery is recognizable.

use std::fmt::Write as _;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, Message, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{SUBMISSION_PORT, SUBMISSIONS_PORT};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde::Deserialize;
use serde_json::Value;

use super::{BoxFuture, Sink, SinkError, config_error, parse_timeout};
use crate::route::notification::Notification;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connect, then STARTTLS, which the server must offer (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465 by default).
    Implicit,
    /// No encryption at all (port 25 by default): only for a relay on localhost or a test.
    None,
}

/// `type: email`.
///
/// Keys: `host`, `port`, `tls`, `ca_file`, `username`, `password`, `from`, `to`,
/// `subject_prefix`, `timeout`, `rate_limit`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// At most so many notifications per period (the router enforces it).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    /// The port; the default follows `tls` (587, 465 or 25).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (the default), `implicit` or `none`.
    #[serde(default)]
    pub tls: TlsMode,
    /// A PEM file of extra root certificates to trust besides the built-in (Mozilla) roots, for
    /// a relay whose certificate a private CA signed. Read when the sink is built; a missing
    /// file, or one without a certificate, is a config error. Needs `tls: starttls` or
    /// `implicit`. In logwarden.yml a relative path is relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; set together with `password`.
    #[serde(default)]
    pub username: Option<String>,
    /// SMTP AUTH password; set together with `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// The sender, `alerts@example.com` or `Logwarden <alerts@example.com>`.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// Put before each subject (`"[logwarden]"` by default).
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// How long the SMTP conversation may stall (`"10s"`, the default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// SMTP conversations at once (default 2: each is its own connection, and relays limit
    /// connections per client).
    #[serde(default)]
    pub concurrency: Option<NonZeroUsize>,
}

/// Conversations at once by default.
pub const DEFAULT_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(2) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// A built email sink.
pub struct EmailSink {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    concurrency: NonZeroUsize,
}

impl EmailSink {
    /// Checks addresses, credentials and timeout, reads `ca_file`, and prepares the transport
    /// (it connects on the first send).
    pub fn new(name: &str, cfg: &Config) -> Result<Self, SinkError> {
        let timeout = parse_timeout(name, cfg.timeout.as_deref())?;
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| config_error(name, format!("from `{}`: {e}", cfg.from)))?;
        if cfg.to.is_empty() {
            return Err(config_error(name, "`to` lists no recipient"));
        }
        let to = cfg
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| config_error(name, format!("to `{t}`: {e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        // What `relay` and `starttls_relay` do, with the extra roots added: the same ports, the
        // same verification (the host name must be in the certificate), TLS required.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host);
        let builder = match cfg.tls {
            TlsMode::Starttls => {
                let params = tls_parameters(name, &cfg.host, cfg.ca_file.as_deref())?;
                builder.port(SUBMISSION_PORT).tls(Tls::Required(params))
            }
            TlsMode::Implicit => {
                let params = tls_parameters(name, &cfg.host, cfg.ca_file.as_deref())?;
                builder.port(SUBMISSIONS_PORT).tls(Tls::Wrapper(params))
            }
            TlsMode::None if cfg.ca_file.is_some() => {
                return Err(config_error(name, "`ca_file` needs `tls: starttls` or `implicit`"));
            }
            // Port 25, no TLS.
            TlsMode::None => builder,
        };
        let mut builder = builder.timeout(Some(timeout));
        if let Some(p) = cfg.port {
            builder = builder.port(p);
        }
        // Empty counts as unset, so `${LOGWARDEN_SMTP_USERNAME:-}` turns AUTH off.
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        match (set(&cfg.username), set(&cfg.password)) {
            (Some(u), Some(p)) => builder = builder.credentials(Credentials::new(u, p)),
            (None, None) => {}
            _ => return Err(config_error(name, "set both `username` and `password`, or neither")),
        }
        Ok(EmailSink {
            transport: builder.build(),
            from,
            to,
            subject_prefix: cfg.subject_prefix.clone().unwrap_or_else(|| "[logwarden]".into()),
            concurrency: super::concurrency(name, cfg.concurrency, DEFAULT_CONCURRENCY)?,
        })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Result<Message, SinkError> {
        let title = header_text(&n.title);
        let subject = if self.subject_prefix.is_empty() {
            title
        } else {
            format!("{} {title}", header_text(&self.subject_prefix))
        };
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id(&n.id)))
            .date_now();
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.multipart(MultiPart::alternative_plain_html(text_body(n), html_body(n)))
            .map_err(|e| SinkError::Permanent(format!("building the message: {e}")))
    }
}

impl Sink for EmailSink {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let m = self.message(n)?;
            match self.transport.send(m).await {
                Ok(_) => Ok(()),
                Err(e) => Err(classify(&e)),
            }
        })
    }

    fn concurrency(&self) -> NonZeroUsize {
        self.concurrency
    }
}

/// The TLS settings for `host`: the built-in roots, plus every certificate in `ca_file`.
fn tls_parameters(
    name: &str,
    host: &str,
    ca_file: Option<&Path>,
) -> Result<TlsParameters, SinkError> {
    let mut b = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let err = |e: &dyn std::fmt::Display| {
            config_error(name, format!("ca_file `{}`: {e}", path.display()))
        };
        let pem = std::fs::read(path).map_err(|e| err(&e))?;
        // lettre's `Certificate::from_pem` takes a file without a CERTIFICATE section as an
        // empty list and would leave the relay untrusted without a word: split it here.
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(&e))?;
        if certs.is_empty() {
            return Err(err(&"no PEM CERTIFICATE section"));
        }
        for der in certs {
            b = b.add_root_certificate(Certificate::from_der(der.to_vec()).map_err(|e| err(&e))?);
        }
        // `build` parses each certificate into a trust anchor, so a corrupt one fails here.
        return b.build().map_err(|e| err(&e));
    }
    b.build().map_err(|e| config_error(name, format!("host `{host}`: {e}")))
}

/// SMTP 5xx and our own client errors will fail again; 4xx, a dropped connection, TLS trouble
/// or a timeout may not.
fn classify(e: &lettre::transport::smtp::Error) -> SinkError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        // lettre's errors (and io::Error) print their source already; add only what is not
        // there yet, or a 535 reads "...credentials invalid: ...credentials invalid".
        let text = s.to_string();
        if !msg.contains(&text) {
            let _ = write!(msg, ": {text}");
        }
        src = s.source();
    }
    if e.is_permanent() || e.is_client() {
        SinkError::Permanent(msg)
    } else {
        SinkError::Retriable(msg)
    }
}

/// Text for a header from log data, on one line: every control character (CR and LF above
/// all, but also tab, NUL, DEL and the C1 set) becomes a space. lettre would RFC 2047-encode a
/// line break rather than let it start a header, but the decoded subject would still break
/// lines in a mail client's list; non-ASCII is left for lettre to encode.
pub fn header_text(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// `<{id}@logwarden>`, with any character a msg-id cannot hold replaced, so the same
/// notification always gets the same Message-ID.
pub fn message_id(id: &str) -> String {
    let local: String =
        id.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
    format!("<{local}@logwarden>")
}

/// The facts of one alert, in display order.
fn rows(a: &Value) -> Vec<(&'static str, String)> {
    let s = |ptr: &str| match a.pointer(ptr) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let group = a
        .get("group")
        .and_then(Value::as_object)
        .map(|g| {
            g.iter()
                .map(|(k, v)| {
                    format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    vec![
        ("Severity", s("/severity")),
        ("Rule", format!("{} ({})", s("/rule/id"), s("/rule/title"))),
        ("Group", group),
        ("Count", s("/count")),
        ("First seen", s("/first_seen")),
        ("Last seen", s("/last_seen")),
        ("Fingerprint", s("/fingerprint")),
    ]
}

fn alert_title(a: &Value) -> String {
    a.get("title").and_then(Value::as_str).unwrap_or("(untitled)").to_owned()
}

/// The text/plain part.
pub fn text_body(n: &Notification) -> String {
    let mut out = format!("{}\n\n", n.title);
    for a in &n.alerts {
        let _ = writeln!(out, "* {}", alert_title(a));
        for (k, v) in rows(a) {
            let _ = writeln!(out, "  {k}: {v}");
        }
        out.push('\n');
    }
    if n.suppressed > 0 {
        let _ = writeln!(out, "{} more suppressed by the rate limit.", n.suppressed);
    }
    let _ = writeln!(out, "-- \nlogwarden, route {}, notification {}", n.route, n.id);
    out
}

/// The text/html part; every value from an alert is escaped, since log data is attacker
/// controlled.
pub fn html_body(n: &Notification) -> String {
    let mut out = String::from("<!DOCTYPE html>\n<html><body>\n");
    let _ = writeln!(out, "<h2>{}</h2>", escape_html(&n.title));
    for a in &n.alerts {
        let _ = writeln!(out, "<h3>{}</h3>\n<table>", escape_html(&alert_title(a)));
        for (k, v) in rows(a) {
            let _ =
                writeln!(out, "<tr><th align=\"left\">{k}</th><td>{}</td></tr>", escape_html(&v));
        }
        out.push_str("</table>\n");
    }
    if n.suppressed > 0 {
        let _ = writeln!(out, "<p>{} more suppressed by the rate limit.</p>", n.suppressed);
    }
    let _ = writeln!(
        out,
        "<p><small>logwarden, route {}, notification {}</small></p>\n</body></html>",
        escape_html(&n.route),
        escape_html(&n.id)
    );
    out
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;
    use crate::route::notification::Kind;
    use crate::rule::Severity;

    fn cfg(port: u16) -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: TlsMode::None,
            ca_file: None,
            username: None,
            password: None,
            from: "alerts@example.com".into(),
            to: vec!["soc@example.com".into()],
            subject_prefix: None,
            timeout: Some("5s".into()),
            rate_limit: None,
            concurrency: None,
        }
    }

    fn notification() -> Notification {
        Notification {
            id: "n 1".into(),
            sink: "mail".into(),
            route: "r".into(),
            kind: Kind::New,
            group: BTreeMap::new(),
            severity: Severity::High,
            title: "t".into(),
            alerts: vec![json!({ "title": "<b>x</b>", "rule": { "id": "r" } })],
            suppressed: 2,
            created: "2026-11-23T09:05:01Z".into(),
        }
    }

    /// A fake SMTP server that answers RCPT TO with `rcpt_reply`.
    async fn fake_smtp(rcpt_reply: &'static str) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.expect("accept");
            let (r, mut w) = s.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"220 fake ESMTP\r\n").await.expect("greet");
            while let Ok(Some(line)) = lines.next_line().await {
                let up = line.to_ascii_uppercase();
                let reply = if up.starts_with("EHLO") {
                    "250 fake\r\n"
                } else if up.starts_with("RCPT") {
                    rcpt_reply
                } else if up.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n").await;
                    break;
                } else {
                    "250 ok\r\n"
                };
                if w.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        port
    }

    #[tokio::test]
    async fn smtp_5xx_is_permanent_and_4xx_retriable() {
        let sink =
            EmailSink::new("mail", &cfg(fake_smtp("550 no such user\r\n").await)).expect("config");
        let e = sink.send(&notification()).await.expect_err("550");
        assert!(!e.is_retriable(), "{e}");
        // The server's words reach the operator, once.
        assert_eq!(e.to_string().matches("no such user").count(), 1, "{e}");
        let sink =
            EmailSink::new("mail", &cfg(fake_smtp("451 try later\r\n").await)).expect("config");
        let e = sink.send(&notification()).await.expect_err("451");
        assert!(e.is_retriable(), "{e}");
    }

    #[tokio::test]
    async fn connection_refused_is_retriable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            l.local_addr().expect("addr").port()
        };
        let sink = EmailSink::new("mail", &cfg(port)).expect("config");
        let e = sink.send(&notification()).await.expect_err("refused");
        assert!(e.is_retriable(), "{e}");
    }

    #[test]
    fn config_is_checked() {
        let mut c = cfg(25);
        c.to.clear();
        assert!(EmailSink::new("mail", &c).is_err());
        let mut c = cfg(25);
        c.from = "not an address".into();
        let e = EmailSink::new("mail", &c).err().expect("bad from");
        assert!(e.to_string().contains("`mail`"), "{e}");
        let mut c = cfg(25);
        c.username = Some("u".into());
        assert!(EmailSink::new("mail", &c).is_err());
        let mut c = cfg(465);
        c.tls = TlsMode::Starttls;
        assert!(EmailSink::new("mail", &c).is_ok());
        c.tls = TlsMode::Implicit;
        assert!(EmailSink::new("mail", &c).is_ok());
    }

    #[test]
    fn a_bad_ca_file_is_a_config_error_naming_sink_and_file() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("no-such-ca.pem");
        let no_cert = dir.path().join("key-only.pem");
        std::fs::write(&no_cert, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .expect("write");
        let corrupt = dir.path().join("corrupt.pem");
        std::fs::write(&corrupt, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
            .expect("write");
        for (tls, path) in [
            (TlsMode::Starttls, &missing),
            (TlsMode::Implicit, &missing),
            (TlsMode::Starttls, &no_cert),
            (TlsMode::Implicit, &corrupt),
        ] {
            let mut c = cfg(465);
            c.tls = tls;
            c.ca_file = Some(path.clone());
            let e = EmailSink::new("mail", &c).err().expect("bad ca_file");
            assert!(!e.is_retriable(), "{e}");
            let msg = e.to_string();
            assert!(msg.contains("`mail`") && msg.contains(&path.display().to_string()), "{msg}");
        }
        // Trusting a CA for a connection that never does TLS is a mistake worth a word.
        let mut c = cfg(25);
        c.ca_file = Some(missing);
        let e = EmailSink::new("mail", &c).err().expect("ca_file with tls: none");
        assert!(e.to_string().contains("ca_file"), "{e}");
    }

    #[test]
    fn a_ca_file_is_read_at_build() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("ca.pem");
        let ca = rcgen::generate_simple_self_signed(["ca.example".to_owned()]).expect("cert");
        std::fs::write(&path, ca.cert.pem()).expect("write");
        let mut c = cfg(587);
        c.tls = TlsMode::Starttls;
        c.ca_file = Some(path);
        assert!(EmailSink::new("mail", &c).is_ok());
    }

    /// The header section of a rendered message: (name, unfolded value) in order.
    fn headers(m: &Message) -> Vec<(String, String)> {
        let bytes = m.formatted();
        let text = String::from_utf8(bytes).expect("a message is ASCII");
        let (head, _) = text.split_once("\r\n\r\n").expect("a blank line ends the headers");
        let mut out: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            assert!(!line.contains(['\r', '\n']), "a bare CR or LF in {line:?}");
            match (line.starts_with([' ', '\t']), out.last_mut()) {
                (true, Some(last)) => last.1.push_str(line),
                _ => {
                    let (k, v) = line.split_once(':').expect("name: value");
                    out.push((k.to_owned(), v.trim_start().to_owned()));
                }
            }
        }
        out
    }

    const HEADERS: [&str; 7] =
        ["From", "Subject", "Message-ID", "Date", "To", "MIME-Version", "Content-Type"];

    #[test]
    fn issue_14_a_title_cannot_add_a_header() {
        let sink = EmailSink::new("mail", &cfg(25)).expect("config");
        let mut n = notification();
        n.title = "x\r\nBcc: victim@example.net\r\n\r\n<b>body</b>\nX-Evil: 1\u{7f}\té".into();
        let m = sink.message(&n).expect("message");
        let h = headers(&m);
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, HEADERS);
        // The subject is one line; the non-ASCII tail is RFC 2047-encoded.
        let subject = &h[1].1;
        assert!(
            subject.starts_with("[logwarden] x  Bcc: victim@example.net    <b>body</b> "),
            "{subject}"
        );
        assert!(subject.contains("=?utf-8?"), "{subject}");
        assert_eq!(header_text("a\r\nb\u{0}\u{85}c"), "a  b  c",);
    }

    proptest::proptest! {
        #[test]
        fn no_alert_text_reaches_the_header_section(
            title in "(\\PC|[\r\n\t\u{0}\u{7f}\u{85}:]|Bcc: x@evil|\r\n\r\n){0,40}",
            rule_title in "(\\PC|[\r\n:])*",
            user in "(\\PC|[\r\n:])*",
        ) {
            let sink = EmailSink::new("mail", &cfg(25)).expect("config");
            let mut n = notification();
            n.title = title;
            n.alerts = vec![json!({
                "title": n.title,
                "rule": { "id": "r", "title": rule_title },
                "group": { "user.name": user },
            })];
            let m = sink.message(&n).expect("message");
            let h = headers(&m);
            let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
            proptest::prop_assert_eq!(names, HEADERS);
        }
    }

    #[test]
    fn bodies_escape_and_message_id_is_stable() {
        let n = notification();
        assert_eq!(message_id(&n.id), "<n-1@logwarden>");
        let html = html_body(&n);
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;") && !html.contains("<b>x"), "{html}");
        assert!(text_body(&n).contains("<b>x</b>"));
        assert!(text_body(&n).contains("2 more suppressed"));
        assert_eq!(escape_html("a&'\""), "a&amp;&#39;&quot;");
    }
}
