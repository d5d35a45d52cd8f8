//! `replay -c CONFIG`: alerts go through the configured router into the outbox while the
//! files are read, and the configured sinks deliver them from a background runtime; at the
//! end, replay waits (up to `--wait`) for the outbox to empty and says what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::route::dispatch::Dispatcher;
use crate::route::router::{Router, RouterStats};
use crate::rule::Rule;
use crate::sink::Sink;
use crate::sink::outbox::{DeliveryStats, Outbox, SystemClock, deliver};

/// The delivery side of a replay: the runtime its sink tasks run on and how to stop them.
pub struct Delivery {
    runtime: tokio::runtime::Runtime,
    outbox: Arc<Outbox>,
    sinks: Vec<String>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<HashMap<String, DeliveryStats>>,
}

/// What routing and delivery did, for the closing lines on stderr.
#[derive(Debug)]
pub struct Summary {
    /// The router's counters.
    pub routing: RouterStats,
    /// Notifications written to the outbox.
    pub queued: u64,
    /// Notifications not written because an earlier run left them as dead letters.
    pub already_dead: u64,
    /// Per sink, by name.
    pub delivery: Vec<(String, DeliveryStats)>,
    /// Still pending when `--wait` ran out.
    pub left: u64,
    /// The state file holding what is left and the dead letters.
    pub state: std::path::PathBuf,
}

impl Summary {
    /// Whether every notification was delivered.
    pub fn complete(&self) -> bool {
        self.left == 0 && self.already_dead == 0 && self.delivery.iter().all(|(_, s)| s.dead == 0)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.routing;
        write!(
            f,
            "routing: {} alerts, {} deduplicated, {} silenced, {} unrouted, {} held back by rate \
             limits; {} notifications queued",
            r.alerts, r.deduplicated, r.silenced, r.unrouted, r.held_back, self.queued
        )?;
        for (sink, s) in &self.delivery {
            write!(
                f,
                "\n  sink {sink}: {} delivered, {} retried, {} dead",
                s.delivered, s.retried, s.dead
            )?;
        }
        if self.already_dead > 0 {
            write!(
                f,
                "\n  {} already dead letters from an earlier run, not sent again: \
                 `logwarden outbox retry --state {}` re-queues them",
                self.already_dead,
                self.state.display()
            )?;
        }
        if self.left > 0 {
            write!(
                f,
                "\n  {} still pending in {}: the next replay or the daemon delivers them \
                 (`logwarden outbox list --state {}`)",
                self.left,
                self.state.display(),
                self.state.display()
            )?;
        }
        if self.delivery.iter().any(|(_, s)| s.dead > 0) {
            write!(
                f,
                "\n  dead letters stay in {}: `logwarden outbox list|retry --state {}`",
                self.state.display(),
                self.state.display()
            )?;
        }
        Ok(())
    }
}

/// Opens the outbox, builds the sinks and starts delivering; returns the dispatcher that
/// routes alerts into the outbox (printing each alert to `tee` as well).
pub fn start(
    config: &Config,
    rules: &[Rule],
    tee: Option<Box<dyn std::io::Write + Send>>,
) -> anyhow::Result<(Dispatcher, Delivery)> {
    start_with(config, rules, tee, Arc::new(Outbox::open(&config.state)?))
}

/// [`start`] on an outbox already open (its database shared with other tables).
pub fn start_with(
    config: &Config,
    rules: &[Rule],
    tee: Option<Box<dyn std::io::Write + Send>>,
    outbox: Arc<Outbox>,
) -> anyhow::Result<(Dispatcher, Delivery)> {
    let mut router_config = config.router.clone();
    for r in rules {
        if let Some(d) = r.dedup {
            router_config.dedup.insert(r.id.clone(), d);
        }
    }
    let mut sinks: HashMap<String, Arc<dyn Sink>> = HashMap::new();
    for (name, cfg) in &config.spec.sinks {
        sinks.insert(name.clone(), crate::sink::build(name, &cfg.value)?);
    }
    let names: Vec<String> = config.spec.sinks.keys().cloned().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("deliver")
        .enable_all()
        .build()?;
    let (shutdown, stop) = tokio::sync::watch::channel(false);
    let task = runtime.spawn(deliver(
        outbox.clone(),
        sinks,
        config.retry.clone(),
        stop,
        Arc::new(SystemClock),
    ));
    let dispatcher =
        Dispatcher::new(Router::new(router_config), outbox.clone(), Arc::new(SystemClock), tee);
    Ok((dispatcher, Delivery { runtime, outbox, sinks: names, shutdown, task }))
}

impl Delivery {
    /// Sends the router's remaining groups, waits up to `wait` for the outbox to empty, stops
    /// the sink tasks after their attempt in flight, and sums up.
    pub fn finish(self, mut dispatcher: Dispatcher, wait: Duration) -> anyhow::Result<Summary> {
        // At the last alert's time: every group's pending alerts go now (no later tick would
        // send them), and no firing alert is repeated early.
        let end = dispatcher.now();
        dispatcher.finish(end)?;
        self.runtime.block_on(self.outbox.wait_drained(&self.sinks, wait))?;
        self.shutdown.send_replace(true);
        let stats = self.runtime.block_on(self.task)?;
        // Counted after the tasks stopped: an attempt in flight at the deadline may still
        // have been delivered (or died) since.
        let left = self.sinks.iter().map(|s| self.outbox.pending_for(s)).sum::<Result<u64, _>>()?;
        let mut delivery: Vec<(String, DeliveryStats)> = stats.into_iter().collect();
        delivery.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Summary {
            routing: dispatcher.router().stats().clone(),
            queued: dispatcher.queued(),
            already_dead: dispatcher.already_dead(),
            delivery,
            left,
            state: self.outbox.path().to_path_buf(),
        })
    }
}
