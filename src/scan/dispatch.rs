//! Notifying an evaluation: its notices become alerts (one per owner) that go through the
//! router into the outbox, and the monitor's records are written in the same transaction as
//! the outbox entries, so a violation is recorded as notified exactly when its notification
//! is queued.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::app::Applications;
use super::monitor::{Notified, Plan};
use super::notice::alerts;
use crate::event::Timestamp;
use crate::route::dispatch::Dispatcher;
use crate::rule::Rule;
use crate::sink::outbox::OutboxError;

/// Why notices could not be queued (nothing of the plan is recorded then).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The outbox (and so the records beside it) could not be written.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A notice names a policy that is not loaded.
    #[error("scan notice of policy `{0}`, which is not loaded")]
    UnknownPolicy(String),
}

/// Routes `plan`'s notices with `dispatcher` (deferred: it holds what it makes until the
/// commit) and commits them with the plan's records; returns the alerts routed.
pub fn notify(
    plan: &Plan,
    policies: &[Rule],
    apps: &Applications,
    dispatcher: &mut Dispatcher,
    now: DateTime<Utc>,
) -> Result<usize, NotifyError> {
    notify_with(plan, policies, apps, dispatcher, now, |_| Ok(()))
}

/// [`notify`], writing what `also` writes in the same transaction (a new scan, stored only
/// together with the notices judging it made).
pub fn notify_with(
    plan: &Plan,
    policies: &[Rule],
    apps: &Applications,
    dispatcher: &mut Dispatcher,
    now: DateTime<Utc>,
    also: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
) -> Result<usize, NotifyError> {
    let at = Timestamp::from_chrono(&now).unwrap_or_else(Timestamp::now);
    let mut routed = 0;
    for n in &plan.notices {
        // A record is judged only by a loaded policy; if it were not here, committing the
        // record without its notice would lose the notice.
        let Some(policy) = policies.iter().find(|p| p.id == n.key.2) else {
            return Err(NotifyError::UnknownPolicy(n.key.2.clone()));
        };
        let owners = apps.get(&n.key.0).owners;
        for a in alerts(n, policy, &owners, at) {
            dispatcher.route(Arc::new(a))?;
            routed += 1;
        }
    }
    // Scan notices do not wait for company: each evaluation's go out together, now.
    dispatcher.finish(at)?;
    dispatcher.commit_with(|txn| {
        Notified::record(txn, &plan.writes)?;
        also(txn)
    })?;
    Ok(routed)
}
