//! Slack incoming webhook: one Block Kit attachment per alert, coloured by severity, one
//! message at a time and paced (by default one a second, what Slack's incoming webhooks take
//! per channel).

use std::num::NonZeroUsize;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pace::Pacer;
use super::webhook::{IDEMPOTENCY_KEY, idempotency_value};
use super::{BoxFuture, Sink, SinkError, config_error, http, parse_timeout};
use crate::route::notification::Notification;
use crate::rule::Severity;

/// Alerts shown per message; the rest are counted in a context line. Three blocks each keeps
/// a message well inside Slack's 50 blocks.
pub const MAX_ALERTS: usize = 10;
/// Slack's limit on a header block's text.
pub const HEADER_MAX: usize = 150;
/// Slack's limit on one section field's text.
pub const FIELD_MAX: usize = 2000;
/// Slack's limit on a text object in a section or context, and what we keep of `text`.
pub const TEXT_MAX: usize = 3000;
/// Slack's limit on a button's URL.
pub const URL_MAX: usize = 3000;
/// The default `send_interval`: Slack's incoming webhooks take about one message a second per
/// channel, with short bursts tolerated, and answer 429 to more.
pub const DEFAULT_SEND_INTERVAL: Duration = Duration::from_secs(1);

/// `type: slack`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// At most so many notifications per period (the router enforces it).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
    /// The incoming webhook URL Slack gave (it is the credential: keep it in `${ENV}`).
    pub webhook_url: String,
    /// A link template for a button on each alert; `{fingerprint}` and `{rule.id}` are
    /// replaced (URL-encoded), e.g. `https://siem.example/alerts/{fingerprint}`.
    #[serde(default)]
    pub link: Option<String>,
    /// How long one request may take, connect included (`"10s"`, the default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// The shortest time between the starts of two messages (`"1s"`, the default, Slack's
    /// one message a second per channel); `"0s"` turns pacing off. A backlog waits in the
    /// outbox and goes most severe first; nothing is dropped.
    #[serde(default)]
    pub send_interval: Option<String>,
    /// Messages in flight at once (default 1: Slack's pace leaves nothing to gain from more).
    #[serde(default)]
    pub concurrency: Option<NonZeroUsize>,
}

/// A built Slack sink.
#[derive(Debug)]
pub struct SlackSink {
    url: Url,
    link: Option<String>,
    client: Client,
    pacer: Option<Pacer>,
    concurrency: NonZeroUsize,
}

impl SlackSink {
    /// Checks the URL, the link template (it must make a URL), the timeout, the send interval
    /// and the concurrency.
    pub fn new(name: &str, cfg: &Config) -> Result<Self, SinkError> {
        let url = http::parse_url(name, "webhook_url", &cfg.webhook_url)?;
        if let Some(t) = &cfg.link {
            http::parse_url(name, "link", &render_link(t, "0", "rule"))?;
        }
        let timeout = parse_timeout(name, cfg.timeout.as_deref())?;
        let interval = match cfg.send_interval.as_deref() {
            None => DEFAULT_SEND_INTERVAL,
            Some(t) => humantime::parse_duration(t)
                .map_err(|e| config_error(name, format!("send_interval `{t}`: {e}")))?,
        };
        Ok(SlackSink {
            url,
            link: cfg.link.clone(),
            client: http::client(name, timeout)?,
            pacer: Pacer::new(interval),
            concurrency: super::concurrency(name, cfg.concurrency, NonZeroUsize::MIN)?,
        })
    }

    /// The pause between two messages' starts; `None` when pacing is off.
    pub fn send_interval(&self) -> Option<Duration> {
        self.pacer.as_ref().map(Pacer::interval)
    }
}

impl Sink for SlackSink {
    fn concurrency(&self) -> NonZeroUsize {
        self.concurrency
    }

    fn pace(&self) -> Result<(), Duration> {
        self.pacer.as_ref().map_or(Ok(()), Pacer::turn)
    }

    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(&payload(n, self.link.as_deref()))
                .map_err(|e| SinkError::Permanent(e.to_string()))?;
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(HeaderName::from_static(IDEMPOTENCY_KEY), idempotency_value(n)?);
            http::post(&self.client, &self.url, h, body).await
        })
    }
}

/// The attachment colour for a severity (Slack's own palette for high to low).
pub fn color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#8B0000",
        Severity::High => "#E01E5A",
        Severity::Medium => "#ECB22E",
        Severity::Low => "#2EB67D",
        Severity::Info => "#439FE0",
    }
}

/// The message body for `n`.
pub fn payload(n: &Notification, link: Option<&str>) -> Value {
    let mut attachments: Vec<Value> =
        n.alerts.iter().take(MAX_ALERTS).map(|a| attachment(n, a, link)).collect();
    if attachments.is_empty() {
        // A summary ("and 37 more") may carry no alert of its own: still say something.
        attachments.push(json!({
            "color": color(n.severity),
            "blocks": [header(&n.title)],
        }));
    }
    let mut notes = Vec::new();
    let hidden = n.alerts.len().saturating_sub(MAX_ALERTS);
    if hidden > 0 {
        notes.push(json!({ "type": "mrkdwn", "text": format!("{hidden} more not shown") }));
    }
    if n.suppressed > 0 {
        let t = format!("{} more suppressed", n.suppressed);
        notes.push(json!({ "type": "mrkdwn", "text": t }));
    }
    if !notes.is_empty()
        && let Some(Value::Array(blocks)) = attachments.last_mut().and_then(|a| a.get_mut("blocks"))
    {
        blocks.push(json!({ "type": "context", "elements": notes }));
    }
    // Slack reads the top-level `text` as mrkdwn too: a title made of log data could
    // otherwise ping `<!channel>` or show a disguised `<url|label>` link.
    json!({
        "text": truncate_escaped(&escape(&fallback(&n.title)), TEXT_MAX),
        "attachments": attachments,
    })
}

fn attachment(n: &Notification, a: &Value, link: Option<&str>) -> Value {
    let s = |ptr: &str| a.pointer(ptr).and_then(Value::as_str).unwrap_or("");
    let severity = a
        .get("severity")
        .and_then(|v| serde_json::from_value::<Severity>(v.clone()).ok())
        .unwrap_or(n.severity);
    let title = [s("/title"), s("/rule/title"), n.title.as_str()]
        .into_iter()
        .find(|t| !t.is_empty())
        .unwrap_or("");
    let group = match a.get("group").and_then(Value::as_object) {
        Some(g) if !g.is_empty() => g
            .iter()
            .map(|(k, v)| {
                format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    let count = a.get("count").map_or_else(String::new, |c| c.to_string());
    let rule = match (s("/rule/id"), s("/rule/title")) {
        (id, "") => id.to_owned(),
        (id, t) => format!("{id}: {t}"),
    };
    let fields: Vec<Value> = [
        ("Severity", severity.as_str()),
        ("Rule", rule.as_str()),
        ("Group", group.as_str()),
        ("Count", count.as_str()),
        ("First seen", s("/first_seen")),
        ("Last seen", s("/last_seen")),
    ]
    .into_iter()
    .map(|(label, v)| field(label, v))
    .collect();
    let mut blocks = vec![header(title), json!({ "type": "section", "fields": fields })];
    if let Some(t) = link {
        let url = render_link(t, s("/fingerprint"), s("/rule/id"));
        // An over-long URL would make Slack reject the whole message; drop the button instead.
        if url.chars().count() <= URL_MAX {
            blocks.push(json!({
                "type": "actions",
                "elements": [{
                    "type": "button",
                    "text": { "type": "plain_text", "text": "Open" },
                    "url": url,
                }],
            }));
        }
    }
    json!({ "color": color(severity), "blocks": blocks })
}

/// A header block. Slack does not parse plain_text for mentions or links, but it does decode
/// the three entities in it, so escaping shows the title as written and keeps a raw `<!here>`
/// out of every text object, whatever Slack does with it tomorrow.
fn header(title: &str) -> Value {
    json!({
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": truncate_escaped(&escape(&fallback(title)), HEADER_MAX),
        },
    })
}

fn field(label: &str, value: &str) -> Value {
    let text = format!("*{label}*\n{}", escape(&fallback(value)));
    json!({ "type": "mrkdwn", "text": truncate_escaped(&text, FIELD_MAX) })
}

/// Slack rejects empty text objects.
fn fallback(s: &str) -> String {
    if s.trim().is_empty() { "-".to_owned() } else { s.to_owned() }
}

/// Slack's mrkdwn control characters, escaped as its docs ask.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// At most `max` characters (Slack counts characters, not bytes), cut on a char boundary, with
/// an ellipsis when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// [`truncate`] for escaped text: never leaves half an `&amp;` at the cut (every `&` in
/// escaped text starts an entity, so a `&` with no `;` after it was cut).
fn truncate_escaped(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    out
}

/// Fills `{fingerprint}` and `{rule.id}` in a link template, URL-encoding the values.
pub fn render_link(template: &str, fingerprint: &str, rule_id: &str) -> String {
    template.replace("{fingerprint}", &encode(fingerprint)).replace("{rule.id}", &encode(rule_id))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::route::notification::Kind;

    fn alert(sev: &str, title: &str) -> Value {
        json!({
            "rule": { "id": "ssh-brute", "title": "SSH brute force" },
            "severity": sev,
            "title": title,
            "group": { "source.ip": "203.0.113.9" },
            "count": 12,
            "first_seen": "2026-11-23T09:00:00Z",
            "last_seen": "2026-11-23T09:05:00Z",
            "fingerprint": "00ff00ff00ff00ff",
            "events": [],
            "sample": [],
        })
    }

    fn notification(alerts: Vec<Value>, suppressed: u64) -> Notification {
        Notification {
            id: "n-1".into(),
            sink: "slack".into(),
            route: "r".into(),
            kind: Kind::New,
            group: BTreeMap::new(),
            severity: Severity::High,
            title: "Alerts".into(),
            alerts,
            suppressed,
            created: "2026-11-23T09:05:01Z".into(),
        }
    }

    #[test]
    fn truncation_is_char_safe() {
        let s = "é".repeat(200);
        let t = truncate(&s, HEADER_MAX);
        assert_eq!(t.chars().count(), HEADER_MAX);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short", 10), "short");
        let t = truncate_escaped(&format!("{}&amp;", "a".repeat(8)), 10);
        assert_eq!(t, "aaaaaaaa…");
    }

    #[test]
    fn more_than_ten_alerts_are_counted_not_shown() {
        let alerts = (0..12).map(|i| alert("low", &format!("a{i}"))).collect();
        let p = payload(&notification(alerts, 3), None);
        let atts = p["attachments"].as_array().expect("attachments");
        assert_eq!(atts.len(), MAX_ALERTS);
        let last = atts[9]["blocks"].as_array().expect("blocks");
        let ctx = last.last().expect("context");
        assert_eq!(ctx["type"], "context");
        assert_eq!(ctx["elements"][0]["text"], "2 more not shown");
        assert_eq!(ctx["elements"][1]["text"], "3 more suppressed");
    }

    #[test]
    fn summary_without_alerts_still_has_a_header() {
        let p = payload(&notification(vec![], 37), None);
        let blocks = p["attachments"][0]["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["text"]["text"], "Alerts");
        assert_eq!(blocks[1]["elements"][0]["text"], "37 more suppressed");
        assert_eq!(p["attachments"][0]["color"], "#E01E5A");
    }

    #[test]
    fn mrkdwn_is_escaped_and_links_encoded() {
        let mut a = alert("info", "t");
        a["group"] = json!({ "user.name": "<!channel> & co" });
        a["rule"]["id"] = json!("a b/c");
        let p = payload(&notification(vec![a], 0), Some("https://x/r/{rule.id}/{fingerprint}"));
        let blocks = &p["attachments"][0]["blocks"];
        assert_eq!(blocks[1]["fields"][2]["text"], "*Group*\nuser.name=&lt;!channel&gt; &amp; co");
        assert_eq!(blocks[2]["elements"][0]["url"], "https://x/r/a%20b%2Fc/00ff00ff00ff00ff");
    }

    #[test]
    fn issue_14_titles_and_headers_are_escaped_too() {
        let evil = "<!channel>&<https://evil.example|reset>";
        let mut a = alert("high", evil);
        a["group"] = json!({ "user.name": evil });
        let mut n = notification(vec![a], 0);
        n.title = evil.into();
        let p = payload(&n, None);
        let inert = "&lt;!channel&gt;&amp;&lt;https://evil.example|reset&gt;";
        assert_eq!(p["text"], inert);
        assert_eq!(p["attachments"][0]["blocks"][0]["text"]["text"], inert);
        assert_eq!(
            p["attachments"][0]["blocks"][1]["fields"][2]["text"],
            format!("*Group*\nuser.name={inert}")
        );
        // The alert-less summary's header as well.
        let mut n = notification(vec![], 3);
        n.title = "<!here> & <@U123>".into();
        let p = payload(&n, None);
        assert_eq!(
            p["attachments"][0]["blocks"][0]["text"]["text"],
            "&lt;!here&gt; &amp; &lt;@U123&gt;"
        );
        // An entity at the header's cut is dropped whole, not halved.
        let title = format!("{}&", "a".repeat(HEADER_MAX - 3));
        let h = header(&title);
        assert_eq!(h["text"]["text"], format!("{}…", "a".repeat(HEADER_MAX - 3)));
    }

    /// Pieces of hostile log data: Slack's mention and link syntax, entities, line breaks and
    /// control characters, and multi-byte text for the truncation.
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            prop::sample::select(vec![
                "<!channel>",
                "<!here>",
                "<!everyone>",
                "<@U123>",
                "<!subteam^S1|ops>",
                "<https://evil.example|reset>",
                "<#C123>",
                "&",
                "&amp;",
                "&lt;",
                "&gt",
                ";",
                "<",
                ">",
                "|",
                "\r\n",
                "\n",
                "*",
                "`",
                "é",
                "…",
                "\u{0}",
                "\u{7f}",
            ])
            .prop_map(str::to_owned),
            any::<char>().prop_map(String::from),
            "[a-z ]{1,8}",
        ];
        prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    /// Every string under a `text` key, anywhere in `v`.
    fn texts<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match x {
                        Value::String(t) if k == "text" => out.push(t),
                        _ => texts(x, out),
                    }
                }
            }
            Value::Array(xs) => xs.iter().for_each(|x| texts(x, out)),
            _ => {}
        }
    }

    proptest! {
        #[test]
        fn no_text_object_carries_slack_syntax_from_the_data(
            title in hostile(), rule_title in hostile(), user in hostile(), value in hostile(),
            rule_id in hostile(), fp in hostile(), alerts in 0usize..3,
        ) {
            let mut a = alert("critical", &title);
            a["rule"] = json!({ "id": rule_id, "title": rule_title });
            a["group"] = json!({ "user.name": user, &value: value });
            a["fingerprint"] = json!(fp);
            let mut n = notification(vec![a; alerts], 2);
            n.title = title;
            let p = payload(&n, Some("https://siem.example/a/{fingerprint}?r={rule.id}"));
            let mut all = Vec::new();
            texts(&p, &mut all);
            prop_assert!(all.len() >= 3);
            for t in all {
                prop_assert!(!t.contains('<') && !t.contains('>'), "{t:?}");
                for (i, _) in t.match_indices('&') {
                    let rest = &t[i..];
                    prop_assert!(
                        ["&amp;", "&lt;", "&gt;"].iter().any(|e| rest.starts_with(e)),
                        "{t:?}"
                    );
                }
                prop_assert!(t.chars().count() <= TEXT_MAX);
            }
            let text = p["text"].as_str().unwrap_or_default();
            prop_assert!(text.chars().count() <= TEXT_MAX);
            for att in p["attachments"].as_array().into_iter().flatten() {
                let blocks = att["blocks"].as_array().cloned().unwrap_or_default();
                let head = blocks[0]["text"]["text"].as_str().unwrap_or_default();
                prop_assert!(head.chars().count() <= HEADER_MAX);
                // The button's URL is the template with only unreserved characters and
                // %XX escapes put in: nothing from the data can end or extend it.
                for b in blocks.iter().filter(|b| b["type"] == "actions") {
                    let url = b["elements"][0]["url"].as_str().unwrap_or_default();
                    let rest = url.strip_prefix("https://siem.example/a/").unwrap_or("!");
                    prop_assert!(
                        rest.bytes().all(|c| c.is_ascii_alphanumeric()
                            || b"-_.~%?=r".contains(&c)),
                        "{url}"
                    );
                    prop_assert_eq!(rest.matches("?r=").count(), 1, "{}", url);
                }
            }
        }
    }

    fn config(yaml: &str) -> Config {
        serde_saphyr::from_str(&format!("webhook_url: https://hooks.slack.com/services/x\n{yaml}"))
            .unwrap()
    }

    #[test]
    fn link_template_must_make_a_url() {
        assert!(SlackSink::new("s", &config("link: '{fingerprint}'\n")).is_err());
    }

    #[test]
    fn paced_one_a_second_one_at_a_time_by_default() {
        let s = SlackSink::new("s", &config("")).unwrap();
        assert_eq!(s.send_interval(), Some(Duration::from_secs(1)));
        assert_eq!(s.concurrency().get(), 1);
        // The first turn is free; the next is about a second away (the real clock ran a
        // little between the two calls).
        assert_eq!(s.pace(), Ok(()));
        let wait = s.pace().expect_err("a second turn at once");
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO, "{wait:?}");
    }

    #[test]
    fn pacing_is_configurable_and_can_be_turned_off() {
        let s = SlackSink::new("s", &config("send_interval: 250ms\nconcurrency: 2\n")).unwrap();
        assert_eq!(s.send_interval(), Some(Duration::from_millis(250)));
        assert_eq!(s.concurrency().get(), 2);
        let off = SlackSink::new("s", &config("send_interval: 0s\n")).unwrap();
        assert_eq!(off.send_interval(), None);
        for _ in 0..100 {
            assert_eq!(off.pace(), Ok(()));
        }
        let e = SlackSink::new("s", &config("send_interval: soon\n")).unwrap_err();
        assert!(e.to_string().contains("send_interval `soon`"), "{e}");
        let e = SlackSink::new("s", &config("concurrency: 65\n")).unwrap_err();
        assert!(e.to_string().contains("concurrency 65"), "{e}");
        assert!(serde_saphyr::from_str::<Config>("webhook_url: x\nconcurrency: 0\n").is_err());
    }
}
