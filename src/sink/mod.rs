//! Sinks: where notifications go (Slack, email, webhook, stdout, file), and the outbox that
//! holds them until a sink has accepted them.

use std::future::Future;
use std::pin::Pin;

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
}
