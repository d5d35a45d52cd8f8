//! A notification: one message to one sink about one or more alerts of a route's group.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rule::Severity;

/// Why a notification is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Alerts the channel has not been told about.
    New,
    /// Alerts it was told about whose details changed (severity raised, count crossed a step,
    /// a new member in a distinct set).
    Update,
    /// Unchanged alerts still firing after the route's `repeat_interval`.
    Repeat,
    /// The count of alerts a sink's rate limit held back ("and 37 more").
    Summary,
}

/// One message for one sink. Serialized as JSON in the outbox and as the webhook body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    /// Idempotency key, stable across retries and restarts: sent as `Idempotency-Key` (webhook,
    /// Slack) and in the Message-ID (email), so a receiver can drop a duplicate delivery.
    pub id: String,
    /// The sink's name in the config.
    pub sink: String,
    /// The route's name (or its index, `routes[2]`, when unnamed).
    pub route: String,
    /// Why it is sent.
    pub kind: Kind,
    /// The route's group: `group_by` field -> value (empty when the route does not group).
    pub group: BTreeMap<String, String>,
    /// The highest severity among the alerts.
    pub severity: Severity,
    /// A one-line summary for subjects and headlines.
    pub title: String,
    /// The alerts, each as its JSON object (the shape `replay --rules` prints).
    pub alerts: Vec<serde_json::Value>,
    /// Alerts of this group the sink's rate limit left out of this message.
    pub suppressed: u64,
    /// When the router made it (RFC 3339, UTC).
    pub created: String,
}
