//! Generic webhook: the notification as a JSON POST, with custom headers and an optional
//! HMAC-SHA256 signature over the exact body.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Url};
use serde::Deserialize;
use sha2::Sha256;

use super::{BoxFuture, Sink, SinkError, config_error, http, parse_timeout};
use crate::route::notification::Notification;

/// The header that carries the notification id, so a receiver can drop a retried duplicate.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header that carries `sha256=<hex HMAC-SHA256(secret, body)>` when a secret is set.
pub const SIGNATURE: &str = "x-logwarden-signature";

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
    /// When set, each request is signed: `X-Logwarden-Signature: sha256=<hex HMAC-SHA256>` of
    /// the body under this key, so the receiver can tell it came from us.
    #[serde(default)]
    pub secret: Option<String>,
    /// How long one request may take, connect included (`"10s"`, the default).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// A built webhook sink.
#[derive(Debug)]
pub struct WebhookSink {
    url: Url,
    headers: HeaderMap,
    secret: Option<Vec<u8>>,
    client: Client,
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
            // These three are ours: letting config replace them would silently break the body
            // type, deduplication or the signature.
            if key == CONTENT_TYPE || key.as_str() == IDEMPOTENCY_KEY || key.as_str() == SIGNATURE {
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
        })
    }

    /// The headers for one body: the fixed ones, the idempotency key and the signature.
    fn headers_for(&self, n: &Notification, body: &[u8]) -> Result<HeaderMap, SinkError> {
        let mut h = self.headers.clone();
        h.insert(HeaderName::from_static(IDEMPOTENCY_KEY), idempotency_value(n)?);
        if let Some(secret) = &self.secret {
            let sig = format!("sha256={}", sign(secret, body));
            // Hex digits are always a valid header value.
            let v = HeaderValue::from_str(&sig).map_err(|e| SinkError::Permanent(e.to_string()))?;
            h.insert(HeaderName::from_static(SIGNATURE), v);
        }
        Ok(h)
    }
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
            // Sign the very bytes that go on the wire.
            let headers = self.headers_for(n, &body)?;
            http::post(&self.client, &self.url, headers, body).await
        })
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
        }
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
        let mut c = cfg("http://127.0.0.1/");
        c.headers.insert("Idempotency-Key".into(), "x".into());
        assert!(WebhookSink::new("w", &c).is_err());
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
