//! Sinks: where notifications go (Slack, email, webhook, stdout, file), and the outbox that
//! holds them until a sink has accepted them.

pub mod email;
pub mod http;
pub mod pace;
pub mod slack;
pub mod stream;
pub mod webhook;

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::route::notification::Notification;

pub mod outbox;

/// A boxed future, so sinks of different kinds can sit behind one trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a sink did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again (connection refused, timeout, 5xx, 408, 429, SMTP 4xx).
    #[error("temporary failure: {0}")]
    Retriable(String),
    /// Trying again will not help (4xx other than 408/429, SMTP 5xx, a malformed message).
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SinkError {
    /// Whether a retry may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, SinkError::Retriable(_))
    }
}

/// A delivery channel.
pub trait Sink: Send + Sync {
    /// Delivers one notification; `Ok` only once the receiver accepted it (2xx, SMTP 250).
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>>;

    /// How many sends the outbox may have in flight to this sink at once (never two of one
    /// notification). One unless the sink says otherwise: one at a time keeps a receiver's
    /// order and is all a file or a terminal can use.
    fn concurrency(&self) -> NonZeroUsize {
        NonZeroUsize::MIN
    }

    /// Takes the sink's turn to send: `Ok` to start a send now, or how long until the next
    /// turn. The outbox asks before each send; a sink that paces itself (Slack) answers from
    /// its [`pace::Pacer`], every other sink always has a turn.
    fn pace(&self) -> Result<(), Duration> {
        Ok(())
    }
}

/// The most sends one sink may have in flight: each is a connection and a blocking-pool
/// task at the end, and no receiver this talks to wants more.
pub const MAX_CONCURRENCY: usize = 64;

/// Checks a sink's `concurrency`, `default` when absent.
pub(crate) fn concurrency(
    name: &str,
    configured: Option<NonZeroUsize>,
    default: NonZeroUsize,
) -> Result<NonZeroUsize, SinkError> {
    match configured {
        Some(c) if c.get() > MAX_CONCURRENCY => Err(config_error(
            name,
            format!("concurrency {c} is above the most allowed, {MAX_CONCURRENCY}"),
        )),
        Some(c) => Ok(c),
        None => Ok(default),
    }
}

/// One entry of the config's `sinks:` map, chosen by its `type` key.
///
/// Each variant's struct keeps `deny_unknown_fields`: serde removes the `type` tag before it
/// hands the remaining keys to the variant, so a stray key inside a variant is still an error
/// (the test `unknown_key_inside_a_variant_is_rejected` holds that). Only `flatten` defeats
/// `deny_unknown_fields`, and nothing here uses it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// An HTTP endpoint that receives the notification as JSON.
    Webhook(webhook::Config),
    /// A Slack incoming webhook, sent a Block Kit message.
    Slack(slack::Config),
    /// Mail over SMTP.
    Email(email::Config),
    /// One JSON line per notification on standard output.
    Stdout(stream::StdoutConfig),
    /// One JSON line per notification appended to a file.
    File(stream::FileConfig),
}

/// A sink's `rate_limit`: at most `count` notifications per `per`, `burst` at once. The router
/// applies it (overflow is summarized there); the sink itself never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Notifications per `per`.
    pub count: u32,
    /// The period (`1m`).
    pub per: String,
    /// Most at once (default `count`).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl SinkConfig {
    /// The sink's `rate_limit`, if it has one.
    pub fn rate_limit(&self) -> Option<&RateLimitSpec> {
        match self {
            SinkConfig::Webhook(c) => c.rate_limit.as_ref(),
            SinkConfig::Slack(c) => c.rate_limit.as_ref(),
            SinkConfig::Email(c) => c.rate_limit.as_ref(),
            SinkConfig::Stdout(c) => c.rate_limit.as_ref(),
            SinkConfig::File(c) => c.rate_limit.as_ref(),
        }
    }
}

/// Builds the sink named `name` from its config. Bad config (an unparseable URL, duration or
/// address) is a `Permanent` error naming the sink.
pub fn build(name: &str, cfg: &SinkConfig) -> Result<Arc<dyn Sink>, SinkError> {
    Ok(match cfg {
        SinkConfig::Webhook(c) => Arc::new(webhook::WebhookSink::new(name, c)?),
        SinkConfig::Slack(c) => Arc::new(slack::SlackSink::new(name, c)?),
        SinkConfig::Email(c) => Arc::new(email::EmailSink::new(name, c)?),
        SinkConfig::Stdout(c) => Arc::new(stream::StdoutSink::new(name, c)),
        SinkConfig::File(c) => Arc::new(stream::FileSink::new(name, c)?),
    })
}

/// The timeout every network sink defaults to: long enough for a slow receiver, short enough
/// that a hung one does not hold its outbox lane for minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses a sink's `timeout` (`"10s"`, `"500ms"`), [`DEFAULT_TIMEOUT`] when absent.
pub fn parse_timeout(name: &str, timeout: Option<&str>) -> Result<Duration, SinkError> {
    let Some(t) = timeout else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match humantime::parse_duration(t) {
        // A zero timeout would fail every send; say so at load rather than at the first alert.
        Ok(d) if d.is_zero() => Err(config_error(name, format!("timeout `{t}` must be above 0"))),
        Ok(d) => Ok(d),
        Err(e) => Err(config_error(name, format!("timeout `{t}`: {e}"))),
    }
}

/// A config problem of the sink `name`: permanent, since retrying will not fix the file.
pub(crate) fn config_error(name: &str, msg: impl std::fmt::Display) -> SinkError {
    SinkError::Permanent(format!("sink `{name}`: {msg}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_inside_a_variant_is_rejected() {
        // Reads "unknown field `bogus`, expected one of url, headers, secret, timeout".
        let r = serde_saphyr::from_str::<SinkConfig>("type: webhook\nurl: http://x\nbogus: 1\n");
        let e = r.expect_err("bogus must be rejected").to_string();
        assert!(e.contains("bogus"), "{e}");
        for (yaml, key) in [
            ("type: slack\nwebhook_url: http://x\nchannel: c\n", "channel"),
            ("type: email\nhost: h\nfrom: a@b\nto: [c@d]\nport2: 1\n", "port2"),
            ("type: stdout\npath: x\n", "path"),
            ("type: file\npath: x\nrotate: true\n", "rotate"),
        ] {
            let e = serde_saphyr::from_str::<SinkConfig>(yaml).expect_err(yaml).to_string();
            assert!(e.contains(key), "{yaml}: {e}");
        }
    }

    #[test]
    fn every_kind_parses() {
        let w = serde_saphyr::from_str::<SinkConfig>(
            "type: webhook\nurl: http://x/\nheaders: {A: b}\nsecret: s\ntimeout: 3s\n",
        )
        .expect("webhook");
        assert!(matches!(w, SinkConfig::Webhook(ref c) if c.headers["A"] == "b"));
        let s = serde_saphyr::from_str::<SinkConfig>("type: stdout\n").expect("stdout");
        assert!(matches!(s, SinkConfig::Stdout(_)));
        let f = serde_saphyr::from_str::<SinkConfig>("type: file\npath: /tmp/x\n").expect("file");
        assert!(matches!(f, SinkConfig::File(_)));
        let e = serde_saphyr::from_str::<SinkConfig>("type: pager\n").expect_err("unknown type");
        assert!(e.to_string().contains("pager"), "{e}");
    }

    #[test]
    fn bad_config_is_permanent_and_names_the_sink() {
        let cfg = serde_saphyr::from_str::<SinkConfig>("type: webhook\nurl: 'not a url'\n")
            .expect("parses");
        let e = build("ops-hook", &cfg).err().expect("bad url");
        assert!(!e.is_retriable());
        assert!(e.to_string().contains("ops-hook"), "{e}");
        let cfg =
            serde_saphyr::from_str::<SinkConfig>("type: webhook\nurl: http://x/\ntimeout: soon\n")
                .expect("parses");
        let e = build("ops-hook", &cfg).err().expect("bad timeout");
        assert!(e.to_string().contains("ops-hook") && e.to_string().contains("soon"), "{e}");
        assert_eq!(parse_timeout("x", None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(parse_timeout("x", Some("250ms")), Ok(Duration::from_millis(250)));
        assert!(parse_timeout("x", Some("0s")).is_err());
    }
}
