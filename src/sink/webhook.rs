//! Generic webhook: the notification as a JSON POST, with custom headers and an optional
//! HMAC-SHA256 signature over the send time and the exact body.
//!
//! The signature covers `"{timestamp}.{body}"`, with the timestamp (Unix seconds at the send)
//! in its own header, as Slack and Stripe sign theirs: a receiver that checks the signature
//! and refuses a timestamp more than a few minutes off its clock cannot be fed a captured
//! request again later. Each retry is signed afresh with its own time.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};
use serde::Deserialize;
use sha2::Sha256;

use super::{BoxFuture, Sink, SinkError, config_error, http, parse_timeout};
use crate::route::notification::Notification;

/// The header that carries the notification id, so a receiver can drop a retried duplicate.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header that carries `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` when a
/// secret is set.
pub const SIGNATURE: &str = "x-logwarden-signature";
/// The header that carries the send time the signature covers, in Unix seconds.
pub const TIMESTAMP: &str = "x-logwarden-timestamp";
/// Requests in flight at once by default: enough that one slow answer does not hold up the
/// rest, few enough for any receiver.
pub const DEFAULT_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(4) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// `type: webhook`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// At most so many notifications per period (the router enforces it).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
    /// Where to POST (`http` or `https`).
    pub url: String,
    /// Extra headers sent with every request (an `Authorization`, a tenant id).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// When set, each request is signed: `X-Logwarden-Timestamp: <unix seconds>` and
    /// `X-Logwarden-Signature: sha256=<hex HMAC-SHA256>` of `"{timestamp}.{body}"` under this
    /// key, so the receiver can tell it came from us, and recently.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long one request may take, connect included (`"10s"`, the default).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Requests in flight at once (default 4, at most 64).
    #[serde(default)]
    pub concurrency: Option<NonZeroUsize>,
}

/// A built webhook sink.
#[derive(Debug)]
pub struct WebhookSink {
    url: Url,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    client: Client,
    concurrency: NonZeroUsize,
}

impl WebhookSink {
    /// Checks the config (URL, header names and values, timeout) and makes the client.
    pub fn new(name: &str, cfg: &Config) -> Result<Self, SinkError> {
        let url = http::parse_url(name, "url", &cfg.url)?;
        let timeout = parse_timeout(name, cfg.timeout.as_deref())?;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let key = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| config_error(name, format!("header name `{k}`: {e}")))?;
            // These are ours: letting config replace them would silently break the body type,
            // deduplication or the signature.
            if key == CONTENT_TYPE
                || [IDEMPOTENCY_KEY, SIGNATURE, TIMESTAMP].contains(&key.as_str())
            {
                return Err(config_error(name, format!("header `{k}` is set by logwarden")));
            }
            let val = HeaderValue::from_str(v)
                .map_err(|e| config_error(name, format!("header `{k}` value: {e}")))?;
            headers.insert(key, val);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(WebhookSink {
            url,
            headers,
            // Empty means unset, so `${LOGWARDEN_WEBHOOK_SECRET:-}` turns signing off.
            secret: cfg.secret.as_ref().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()),
            client: http::client(name, timeout)?,
            concurrency: super::concurrency(name, cfg.concurrency, DEFAULT_CONCURRENCY)?,
        })
    }

    /// The headers for one body sent at `now_secs` (Unix seconds): the fixed ones, the
    /// idempotency key, and the timestamp and signature.
    fn headers_for(
        &self,
        n: &Notification,
        body: &[u8],
        now_secs: i64,
    ) -> Result<HeaderMap, SinkError> {
        let mut h = self.headers.clone();
        h.insert(HeaderName::from_static(IDEMPOTENCY_KEY), idempotency_value(n)?);
        if let Some(secret) = &self.secret {
            let sig = format!("sha256={}", signature(secret, now_secs, body));
            // Digits and hex digits are always valid header values.
            let bad = |e: reqwest::header::InvalidHeaderValue| SinkError::Permanent(e.to_string());
            h.insert(HeaderName::from_static(TIMESTAMP), HeaderValue::from(now_secs));
            h.insert(HeaderName::from_static(SIGNATURE), HeaderValue::from_str(&sig).map_err(bad)?);
        }
        Ok(h)
    }
}

/// Hex HMAC-SHA256 under `secret` of `"{timestamp}.{body}"`: what `X-Logwarden-Signature`
/// carries after `sha256=`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(body.len() + 21);
    signed.extend_from_slice(itoa::Buffer::new().format(timestamp).as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    sign(secret, &signed)
}

fn unix_now_secs() -> i64 {
    let since =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// The notification id as a header value; an id that cannot be one is a malformed message.
pub(crate) fn idempotency_value(n: &Notification) -> Result<HeaderValue, SinkError> {
    HeaderValue::from_str(&n.id)
        .map_err(|e| SinkError::Permanent(format!("notification id `{}`: {e}", n.id)))
}

/// Hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length, so this never fails; the fallback only satisfies types.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

impl Sink for WebhookSink {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_vec(n).map_err(|e| SinkError::Permanent(e.to_string()))?;
            // Sign the very bytes that go on the wire, at the time they go.
            let headers = self.headers_for(n, &body, unix_now_secs())?;
            http::post(&self.client, &self.url, headers, body).await
        })
    }

    fn concurrency(&self) -> NonZeroUsize {
        self.concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> Config {
        Config {
            url: url.into(),
            headers: BTreeMap::new(),
            secret: None,
            timeout: None,
            rate_limit: None,
            concurrency: None,
        }
    }

    fn note() -> Notification {
        Notification {
            id: "n-1".into(),
            sink: "w".into(),
            route: "r".into(),
            kind: crate::route::notification::Kind::New,
            group: BTreeMap::new(),
            severity: crate::rule::Severity::High,
            title: "t".into(),
            alerts: vec![],
            suppressed: 0,
            created: "2026-11-23T09:05:01Z".into(),
        }
    }

    #[test]
    fn signature_covers_the_timestamp_then_the_body() {
        // The same key and message as RFC 4231 case 2, cut as "{timestamp}.{body}" would be.
        assert_eq!(signature(b"Jefe", 1_700_000_000, b"body"), sign(b"Jefe", b"1700000000.body"));
        let mut c = cfg("http://127.0.0.1/");
        c.secret = Some("Jefe".into());
        let w = WebhookSink::new("w", &c).unwrap();
        let h = w.headers_for(&note(), b"{}", 1_700_000_123).unwrap();
        assert_eq!(h[TIMESTAMP], "1700000123");
        let want = format!("sha256={}", sign(b"Jefe", b"1700000123.{}"));
        assert_eq!(h[SIGNATURE].to_str().unwrap(), want);
        assert_eq!(h[IDEMPOTENCY_KEY], "n-1");
        // A different second is a different signature: a replayed body cannot borrow it.
        let later = w.headers_for(&note(), b"{}", 1_700_000_124).unwrap();
        assert_ne!(later[SIGNATURE], h[SIGNATURE]);
        // Without a secret there is neither header.
        let plain = WebhookSink::new("w", &cfg("http://127.0.0.1/")).unwrap();
        let h = plain.headers_for(&note(), b"{}", 1).unwrap();
        assert!(h.get(TIMESTAMP).is_none() && h.get(SIGNATURE).is_none());
    }

    #[test]
    fn four_in_flight_by_default_and_configurable() {
        let w = WebhookSink::new("w", &cfg("http://127.0.0.1/")).unwrap();
        assert_eq!(w.concurrency().get(), 4);
        let mut c = cfg("http://127.0.0.1/");
        c.concurrency = NonZeroUsize::new(16);
        assert_eq!(WebhookSink::new("w", &c).unwrap().concurrency().get(), 16);
        c.concurrency = NonZeroUsize::new(65);
        let e = WebhookSink::new("w", &c).unwrap_err();
        assert!(e.to_string().contains("concurrency 65"), "{e}");
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn reserved_and_invalid_headers_are_rejected() {
        for reserved in ["Idempotency-Key", "X-Logwarden-Signature", "X-Logwarden-Timestamp"] {
            let mut c = cfg("http://127.0.0.1/");
            c.headers.insert(reserved.into(), "x".into());
            assert!(WebhookSink::new("w", &c).is_err(), "{reserved}");
        }
        let mut c = cfg("http://127.0.0.1/");
        c.headers.insert("bad header".into(), "x".into());
        let e = WebhookSink::new("w", &c).expect_err("space in name");
        assert!(e.to_string().contains("`w`"), "{e}");
        let mut c = cfg("http://127.0.0.1/");
        c.headers.insert("X-Tenant".into(), "a\nb".into());
        assert!(WebhookSink::new("w", &c).is_err());
        let mut c = cfg("http://127.0.0.1/");
        c.headers.insert("X-Tenant".into(), "acme".into());
        assert!(WebhookSink::new("w", &c).is_ok());
    }
}
