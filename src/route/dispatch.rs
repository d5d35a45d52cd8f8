//! From alerts to the outbox: the router's decisions made durable. Every notification the
//! router makes is written to the outbox before anything else happens to it, so what the
//! router decided survives a crash and a dead endpoint.

use std::sync::Arc;

use crate::alert::{Alert, AlertSink};
use crate::event::Timestamp;
use crate::route::notification::Notification;
use crate::route::router::{Decision, Router};
use crate::sink::outbox::{Clock, Outbox, OutboxError};

/// Routes alerts on their own time (the newest `last_seen` so far) and queues what the router
/// sends in the outbox, due at once by `wall`. Writes each alert to `tee` too, as its JSON
/// line with what the router did under `routing` (what `replay -c` prints).
pub struct Dispatcher {
    router: Router,
    outbox: Arc<Outbox>,
    wall: Arc<dyn Clock>,
    tee: Option<Box<dyn std::io::Write + Send>>,
    now: Timestamp,
    out: Vec<Notification>,
    queued: u64,
    already_dead: u64,
    /// Hold notifications until [`Dispatcher::commit_with`] (the daemon) rather than write
    /// each decision's at once (replay).
    deferred: bool,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("router", &self.router)
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher writing to `outbox`.
    pub fn new(
        router: Router,
        outbox: Arc<Outbox>,
        wall: Arc<dyn Clock>,
        tee: Option<Box<dyn std::io::Write + Send>>,
    ) -> Dispatcher {
        Dispatcher {
            router,
            outbox,
            wall,
            tee,
            now: Timestamp(i64::MIN),
            out: Vec::new(),
            queued: 0,
            already_dead: 0,
            deferred: false,
        }
    }

    /// The daemon's dispatcher: holds notifications until [`Dispatcher::commit_with`], which
    /// writes them with the caller's own records in one transaction, and routes on the wall
    /// clock (replay routes on the alerts' own time).
    pub fn deferred(mut self) -> Dispatcher {
        self.deferred = true;
        self
    }

    /// Whether notifications wait for a commit.
    pub fn has_uncommitted(&self) -> bool {
        !self.out.is_empty()
    }

    /// How many notifications are held for the next commit.
    pub fn uncommitted(&self) -> usize {
        self.out.len()
    }

    /// Writes the held notifications and whatever `also` writes in one transaction (also
    /// when there are no notifications).
    pub fn commit_with(
        &mut self,
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), OutboxError> {
        let q = self.outbox.put_all_with(&self.out, self.wall.now_ns(), also)?;
        self.queued += q.added as u64;
        self.already_dead += q.dead as u64;
        self.out.clear();
        Ok(())
    }

    /// The router (its stats).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The router, to add or remove run-time silences.
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// Swaps in a new router config (a reload) and queues what that sends (see
    /// [`Router::reconfigure`]).
    pub fn reconfigure(
        &mut self,
        config: crate::route::router::RouterConfig,
        now: Timestamp,
    ) -> Result<(), OutboxError> {
        self.now = self.now.max(now);
        self.router.reconfigure(config, self.now, &mut self.out);
        self.persist()
    }

    /// Notifications written to the outbox so far (ids already there not counted).
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Notifications not queued because they are dead letters already (the same input
    /// routed again after an earlier run gave up on them).
    pub fn already_dead(&self) -> u64 {
        self.already_dead
    }

    /// The router's clock: the newest alert time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Sends what is due at `now` (the clock never goes back) and queues it.
    pub fn tick(&mut self, now: Timestamp) -> Result<(), OutboxError> {
        self.now = self.now.max(now);
        self.router.tick(self.now, &mut self.out);
        self.persist()
    }

    /// Sends everything still held at `now`: due groups, every group's pending alerts (see
    /// [`Router::flush_pending`]), then the rate limits' summaries past their limit (see
    /// [`Router::flush_held`]). For the end of a run.
    pub fn finish(&mut self, now: Timestamp) -> Result<(), OutboxError> {
        self.now = self.now.max(now);
        self.router.tick(self.now, &mut self.out);
        self.router.flush_pending(self.now, &mut self.out);
        self.router.flush_held(self.now, &mut self.out);
        self.persist()
    }

    /// Routes one alert and queues what that makes due.
    pub fn route(&mut self, a: Arc<Alert>) -> Result<Decision, OutboxError> {
        self.now = self.now.max(a.last_seen);
        if self.deferred {
            // Live, the router runs on the wall clock: a silence set a moment ago through
            // the API applies to the next alert, whatever the time its events carry.
            self.now = self.now.max(crate::event::Timestamp(self.wall.now_ns()));
        }
        // What came due between the previous alert and this one goes first, as the daemon's
        // ticks would have sent it.
        self.router.tick(self.now, &mut self.out);
        let decision = self.router.ingest_shared(a, self.now, &mut self.out);
        self.persist()?;
        Ok(decision)
    }

    fn persist(&mut self) -> Result<(), OutboxError> {
        if self.out.is_empty() || self.deferred {
            return Ok(());
        }
        let q = self.outbox.put_all(&self.out, self.wall.now_ns())?;
        self.queued += q.added as u64;
        self.already_dead += q.dead as u64;
        self.out.clear();
        Ok(())
    }
}

impl AlertSink for Dispatcher {
    fn alert(&mut self, a: Alert) -> std::io::Result<()> {
        let a = Arc::new(a);
        let decision = self.route(Arc::clone(&a)).map_err(std::io::Error::other)?;
        if let Some(t) = &mut self.tee {
            let mut json = a.to_json();
            json["routing"] = decision_json(&decision);
            let mut line = serde_json::to_vec(&json).map_err(std::io::Error::other)?;
            line.push(b'\n');
            match t.write_all(&line) {
                // `replay -c | head`: the reader has seen enough, but the alerts still go to
                // their channels, so routing carries on without printing.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => self.tee = None,
                r => r?,
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.tee {
            Some(t) => match t.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    self.tee = None;
                    Ok(())
                }
                r => r,
            },
            None => Ok(()),
        }
    }
}

/// What the router did, as the `routing` object of an alert line: `{"decision": "new",
/// "routes": [...]}`, `update`, `deduplicated`, `unrouted`, or `{"decision": "silenced",
/// "silence": ID}`.
pub fn decision_json(d: &Decision) -> serde_json::Value {
    use serde_json::json;
    match d {
        Decision::Routed { routes, kind } => json!({ "decision": kind, "routes": routes }),
        Decision::Deduplicated => json!({ "decision": "deduplicated" }),
        Decision::Silenced(id) => json!({ "decision": "silenced", "silence": id }),
        Decision::Unrouted => json!({ "decision": "unrouted" }),
    }
}
