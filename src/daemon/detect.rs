//! The detection stage: one thread that feeds parsed events to the rules' behaviours and
//! routes alerts into the outbox. One thread keeps rule state single-owner and in event
//! order per source; parsing and matching (`parse.rs`), the sources and the sinks run on
//! the async runtime around it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::metrics::Metrics;
use crate::alert::{Alert, fingerprint};
use crate::event::{Event, Timestamp};
use crate::output::Output;
use crate::route::dispatch::{Dispatcher, decision_json};
use crate::route::router::Silence;
use crate::rule::Severity;
use crate::rule::behaviour::Services;
use crate::rule::duration::Span;
use crate::rule::engine::Engine;
use crate::rule::set::{Hit, RuleSet};
use crate::source::Checkpoint;
use crate::source::pushback::Pushback;
use crate::state::StateDb;
use crate::state::checkpoint::Checkpoints;
use crate::state::db::Fault;
use std::collections::HashMap;

/// Longest an acknowledging source waits for a commit while events keep coming.
const WAITING_COMMIT: Duration = Duration::from_millis(100);
/// First and longest pause between two attempts to commit while the state database cannot be
/// written (a full disk): the thread waits, holding what it has, and the bounded queue in front
/// of it holds the sources back.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long a stopping daemon goes on trying to save what it holds.
const RETRY_AT_STOP: Duration = Duration::from_secs(30);
/// The exit status when the state database is found damaged while running (sysexits'
/// EX_DATAERR): a service manager restarts the daemon, whose start then says what to do.
pub const EXIT_STATE_DAMAGED: i32 = 65;
/// Detector state written in one commit past which the freed heap is returned to the system
/// (a few ms each time; a commit of this size comes at most every second or so).
const GIVE_BACK_AFTER: usize = 1 << 20;

/// What reaches the detection thread.
#[derive(Debug)]
pub enum Msg {
    /// Events of source number `.0`, parsed and matched.
    Parsed(usize, Parsed),
    /// Once a second: the router's due groups, silent sources, published counters.
    Tick,
    /// From the API or a signal.
    Control(Control),
}

/// What the API and SIGHUP ask of the detection thread, each with where to answer.
#[derive(Debug)]
pub enum Control {
    /// Add (or replace) a run-time silence, then route the alert that records it
    /// ([`super::silence::audit_alert`]); answers once that alert is queued.
    AddSilence(Silence, Box<Alert>, oneshot::Sender<()>),
    /// Remove a run-time silence; answers whether it was in force. The alert that records it
    /// is routed when the silence was in force or `stored` (removed from the state database).
    RemoveSilence {
        /// The silence.
        id: String,
        /// The record of its end.
        audit: Box<Alert>,
        /// Whether the API removed it from the state database.
        stored: bool,
        /// Where to answer.
        done: oneshot::Sender<bool>,
    },
    /// Reload rules and routes from disk; answers what changed, or why nothing did.
    Reload(oneshot::Sender<Result<String, String>>),
}

/// Where a reload reads from.
pub struct ReloadFrom {
    /// The config file.
    pub config: std::path::PathBuf,
    /// `--rules`, which overrides the config's `rules:`.
    pub rules: Option<std::path::PathBuf>,
    /// Geolocation for `travel` rules.
    pub services: Services,
}

/// A batch's events with the rules each matched.
#[derive(Debug)]
pub struct Parsed {
    /// The events, in record order.
    pub events: Vec<Event>,
    /// The hits of every event, one after the other.
    pub hits: Vec<Hit>,
    /// Where each event's hits end in `hits`.
    pub ends: Vec<u32>,
    /// The rule set the hits index into: if a reload replaced it meanwhile, the detection
    /// thread matches the events again against the new one.
    pub set: Option<Arc<RuleSet>>,
    /// Where the source stands after these events.
    pub checkpoint: Option<Checkpoint>,
    /// Fired once these events are committed (see [`crate::source::Batch::done`]).
    pub done: Option<oneshot::Sender<()>>,
}

/// One source as the detection stage sees it.
pub struct Stage {
    /// Alert after this long without a record.
    pub max_silence: Option<Span>,
    /// Whether the current silence has been alerted on already.
    pub silent: bool,
}

/// The detection thread's state.
pub struct Detect {
    /// Per source, in config order (the index in [`Msg::Batch`]).
    pub stages: Vec<Stage>,
    /// Rule state.
    pub engine: Option<Engine>,
    /// Router and outbox.
    pub dispatcher: Dispatcher,
    /// Shared counters.
    pub metrics: Arc<Metrics>,
    /// Where SIGHUP and `/api/reload` read rules and routes from.
    pub reload: Option<ReloadFrom>,
    /// File positions processed but not yet committed, by file key.
    pub positions: HashMap<String, Checkpoint>,
    /// Where they are committed.
    pub checkpoints: Option<Checkpoints>,
    /// Publishes the rule set in force to the parse stages (a reload replaces it).
    pub rules: watch::Sender<Option<Arc<RuleSet>>>,
    /// Event outputs, written here, in the order positions are committed: what an output
    /// holds at a commit is exactly the events before the committed positions.
    pub outputs: Vec<Output>,
    /// The detector state's base and change sets so far (see [`Detect::snapshots`]).
    pub state_log: StateLog,
    /// Sources waiting for the next commit (see [`crate::source::Batch::done`]).
    pub waiting: Vec<oneshot::Sender<()>>,
    /// The state database (its faults decide between waiting and stopping).
    pub state: Arc<StateDb>,
    /// Set while the state database cannot be written, for the sources that can tell their
    /// clients (the HTTP intake answers 503).
    pub pushback: Arc<Pushback>,
    /// Becomes true when the daemon is stopping: a commit that keeps failing is then given up
    /// after [`RETRY_AT_STOP`] instead of waited for.
    pub stopping: watch::Receiver<bool>,
}

/// How the detector state is stored: a full base, then a change set per commit (only the
/// groups touched since the last), re-based when the change sets add up to the base's size.
/// A full snapshot of a million groups takes about 0.3 s; a change set of the groups a
/// second touches, a few ms.
#[derive(Debug, Default)]
pub struct StateLog {
    /// Whether a base for the current engine is committed.
    pub based: bool,
    /// Bytes of the committed base.
    pub base_bytes: usize,
    /// Bytes of the change sets committed since.
    pub change_bytes: usize,
    /// Sequence number of the next change set.
    pub next: u64,
}

impl Detect {
    /// Runs until every sender of `rx` is gone, then sends the router's pending groups (so a
    /// shutdown loses no alert held for grouping) and returns; an error when what it held could
    /// not be saved before it stopped.
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), String> {
        let mut alerts = Vec::new();
        let mut committed = Instant::now();
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Parsed(i, parsed) => {
                    self.batch(i, parsed, &mut alerts);
                    // An acknowledging source (HTTP intake, NATS) holds its sender until the
                    // commit: waiting for the 1 s tick would cap a forwarder, which sends one
                    // request at a time, at one request a second. Commit once the queue is
                    // drained, or every WAITING_COMMIT under a steady stream.
                    if !self.waiting.is_empty()
                        && (rx.is_empty() || committed.elapsed() >= WAITING_COMMIT)
                    {
                        self.commit();
                        committed = Instant::now();
                    }
                }
                Msg::Tick => self.tick(),
                Msg::Control(c) => {
                    self.control(c);
                    // A reload may have sent what waited in groups.
                    if self.dispatcher.has_uncommitted() {
                        self.commit();
                    }
                }
            }
        }
        let now = Timestamp::now();
        if let Err(e) = self.dispatcher.tick(now).and_then(|()| self.dispatcher.finish(now)) {
            eprintln!("logwarden: outbox: {e}");
        }
        self.commit();
        self.publish();
        if self.dispatcher.has_uncommitted() || !self.positions.is_empty() {
            return Err(format!(
                "stopped with {} notifications and {} file positions not saved: the state \
                 database {} could not be written; the lines after the last saved positions are \
                 read again on the next start",
                self.dispatcher.uncommitted(),
                self.positions.len(),
                self.state.path().display()
            ));
        }
        Ok(())
    }

    /// Commits (see [`Detect::try_commit`]); while the state database cannot be written, waits
    /// and tries again, holding everything, so that no alert of the outage is lost and the
    /// queue in front of this thread holds the sources back. A damaged database cannot come
    /// back: the daemon stops with [`EXIT_STATE_DAMAGED`].
    fn commit(&mut self) {
        let mut pause = RETRY_FIRST;
        let mut give_up = None;
        loop {
            let Err(e) = self.try_commit() else {
                if self.pushback.reason().is_some() {
                    self.pushback.set(None);
                }
                return;
            };
            let fault = self.state.fault();
            if let Some(Fault::Corrupt { reason }) = &fault {
                eprintln!(
                    "logwarden: stopping: the state database {} is damaged ({reason}); run \
                     `logwarden state check`, then `logwarden state reset` if it cannot be used",
                    self.state.path().display()
                );
                std::process::exit(EXIT_STATE_DAMAGED);
            }
            let reason = fault.map_or_else(|| e.to_string(), |f| f.describe());
            self.pushback.set(Some(&reason));
            self.metrics.commit_failures.fetch_add(1, Ordering::Relaxed);
            if *self.stopping.borrow() {
                let at = *give_up.get_or_insert_with(|| Instant::now() + RETRY_AT_STOP);
                if Instant::now() >= at {
                    return;
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// One transaction for everything the processed lines led to: the notifications the
    /// router made, the file positions after those lines, each file output's length, and
    /// the detector and router state (DESIGN §6). After a crash the daemon restarts from
    /// exactly that point: the lines after it are read again, from the same state, so no
    /// alert is missed and none is queued twice.
    fn try_commit(&mut self) -> Result<(), crate::sink::outbox::OutboxError> {
        // Outputs first: a position is committed only once the events before it are written.
        let mut written = true;
        for out in &mut self.outputs {
            if let Err(e) = out.flush() {
                eprintln!("logwarden: {e}");
                written = false;
            }
        }
        if self.checkpoints.is_none() {
            self.dispatcher.commit_with(|_| Ok(()))?;
            for done in self.waiting.drain(..) {
                let _ = done.send(());
            }
            return Ok(());
        }
        // An output that could not be written holds the positions back (its events will be
        // read and written again), never the notifications.
        let positions: Vec<Checkpoint> = if written {
            let lengths = self.outputs.iter().filter_map(output_length);
            self.positions.values().cloned().chain(lengths).collect()
        } else {
            Vec::new()
        };
        let (snapshots, rebase) = self.snapshots();
        let views: Vec<(&str, &[u8])> =
            snapshots.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect();
        let clear = rebase.then_some(ENGINE_CHANGES);
        // A new base is written as it is made, inside the transaction: at a million groups it
        // is tens of MB, which would otherwise be held whole while it is stored.
        let base = self.engine.as_ref().filter(|_| rebase);
        let mut base_bytes = 0;
        let r = self.dispatcher.commit_with(|txn| {
            Checkpoints::write_in(txn, &positions, &views, clear)?;
            if let Some(engine) = base {
                base_bytes = Checkpoints::stream_in(txn, ENGINE_SNAPSHOT, |spill, part| {
                    engine.snapshot_spilling(spill, part).map_err(|e| e.to_string())
                })?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                if written {
                    self.positions.clear();
                    for done in self.waiting.drain(..) {
                        let _ = done.send(());
                    }
                }
                // Durable: the next change set counts from here.
                if let Some(engine) = &mut self.engine {
                    engine.mark();
                }
                let engine_bytes: usize = snapshots
                    .iter()
                    .filter(|(n, _)| n.starts_with(ENGINE_SNAPSHOT))
                    .map(|(_, b)| b.len())
                    .sum::<usize>()
                    + base_bytes;
                if rebase {
                    self.state_log.based = true;
                    self.state_log.base_bytes = engine_bytes;
                    self.state_log.change_bytes = 0;
                } else {
                    self.state_log.change_bytes += engine_bytes;
                }
                if engine_bytes >= GIVE_BACK_AFTER {
                    // Writing a large state leaves its buffers and the database's pages freed
                    // in the heap; hand them back rather than keep them until the next one.
                    super::give_back_free_memory();
                }
            }
            // Kept for the next try: a later commit supersedes it, and an unmarked change set
            // is covered by the next one.
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The state to commit with the positions, by name: the rules' behaviour state and the
    /// router's (dedup windows, groups waiting, held-back counts).
    /// Also says whether the engine's state is due a new base (its change sets then go),
    /// which the commit streams itself.
    fn snapshots(&mut self) -> (Vec<(String, Vec<u8>)>, bool) {
        let mut out = Vec::with_capacity(2);
        let log = &mut self.state_log;
        let rebase = !log.based || log.change_bytes >= log.base_bytes.max(1 << 20);
        // A new base is streamed by the commit itself.
        if let Some(engine) = self.engine.as_ref().filter(|_| !rebase) {
            log.next += 1;
            match engine.snapshot_changes() {
                Ok(b) => out.push((format!("{ENGINE_CHANGES}{:020}", log.next), b)),
                // Committed without it, the older state stays: a restart may then miss what
                // only the newer state knew, which this line says.
                Err(e) => eprintln!("logwarden: detector state not saved: {e}"),
            }
        }
        match self.dispatcher.router().snapshot() {
            Ok(b) => out.push((ROUTER_SNAPSHOT.to_owned(), b)),
            Err(e) => eprintln!("logwarden: router state not saved: {e}"),
        }
        (out, rebase)
    }

    fn batch(&mut self, i: usize, mut batch: Parsed, alerts: &mut Vec<Alert>) {
        if let Some(done) = batch.done.take() {
            self.waiting.push(done);
        }
        let batch = &batch;
        self.detect(i, batch, alerts);
        for out in &mut self.outputs {
            for e in &batch.events {
                if let Err(err) = out.write(e) {
                    // The output keeps what it could not write and retries at its next flush.
                    eprintln!("logwarden: {err}");
                    break;
                }
            }
        }
        if let Some(c) = &batch.checkpoint {
            self.positions.insert(c.key.clone(), c.clone());
        }
        // A batch that made notifications commits them at once, with its position and the
        // state after it; others wait for the tick (an alert held in a group is raised
        // again from the re-read lines if a crash comes first).
        if self.dispatcher.has_uncommitted() {
            self.commit();
        }
    }

    fn detect(&mut self, i: usize, batch: &Parsed, alerts: &mut Vec<Alert>) {
        if let Some(stage) = self.stages.get_mut(i) {
            stage.silent = false;
        }
        let Some(engine) = self.engine.as_mut() else { return };
        // Hits found against the set in force are used as they are; a batch matched before a
        // reload is matched again here.
        let current = batch.set.as_ref().is_some_and(|s| Arc::ptr_eq(s, engine.set()));
        let mut again = Vec::new();
        for (k, e) in batch.events.iter().enumerate() {
            if current {
                engine.observe(e, batch.hits_of(k), alerts);
            } else {
                again.clear();
                engine.set().hits(e, &mut again);
                engine.observe(e, &again, alerts);
            }
            if alerts.is_empty() {
                continue;
            }
            for a in alerts.drain(..) {
                self.metrics.alerts.fetch_add(1, Ordering::Relaxed);
                let received = e.created.unwrap_or_else(Timestamp::now);
                let a = Arc::new(a);
                match self.dispatcher.route(Arc::clone(&a)) {
                    Ok(d) => self.metrics.remember(&a, &decision_json(&d)),
                    // The outbox is the one place an alert can be lost: say so loudly.
                    Err(err) => eprintln!("logwarden: outbox: cannot queue an alert: {err}"),
                }
                let us = (Timestamp::now().0 - received.0).max(0) / 1000;
                self.metrics.detection_latency(us as u64);
            }
        }
    }

    fn tick(&mut self) {
        let now = Timestamp::now();
        for (i, stage) in self.stages.iter_mut().enumerate() {
            let (Some(limit), Some(m)) = (stage.max_silence, self.metrics.sources.get(i)) else {
                continue;
            };
            let last = Timestamp(m.last_seen_ns.load(Ordering::Relaxed));
            if stage.silent || now < limit.after(last) {
                continue;
            }
            stage.silent = true;
            self.metrics.silent_alerts.fetch_add(1, Ordering::Relaxed);
            self.metrics.alerts.fetch_add(1, Ordering::Relaxed);
            let a = Arc::new(silent_alert(&m.name, last, now, limit));
            match self.dispatcher.route(Arc::clone(&a)) {
                Ok(d) => self.metrics.remember(&a, &decision_json(&d)),
                Err(e) => eprintln!("logwarden: outbox: cannot queue an alert: {e}"),
            }
        }
        if let Err(e) = self.dispatcher.tick(now) {
            eprintln!("logwarden: outbox: {e}");
        }
        // Every second: outputs are flushed even when no file position moved.
        self.commit();
        self.publish();
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::AddSilence(s, audit, done) => {
                self.dispatcher.router_mut().add_silence(s);
                self.audit(*audit);
                let _ = done.send(());
            }
            Control::RemoveSilence { id, audit, stored, done } => {
                let live = self.dispatcher.router_mut().remove_silence(&id);
                if live || stored {
                    self.audit(*audit);
                }
                let _ = done.send(live);
            }
            Control::Reload(done) => {
                let r = self.reload();
                match &r {
                    Ok(what) => eprintln!("logwarden: {what}"),
                    Err(why) => {
                        eprintln!("logwarden: reload rejected, the old rules run on:\n{why}")
                    }
                }
                let _ = done.send(r);
            }
        }
    }

    /// Records a silence change: its event goes to the outputs and its alert through the
    /// router (which applies no silence to it), committed before the API answers, so a
    /// silence is never in force unrecorded.
    fn audit(&mut self, a: Alert) {
        for out in &mut self.outputs {
            for e in &a.sample {
                if let Err(err) = out.write(e) {
                    eprintln!("logwarden: {err}");
                    break;
                }
            }
        }
        self.metrics.alerts.fetch_add(1, Ordering::Relaxed);
        let a = Arc::new(a);
        match self.dispatcher.route(Arc::clone(&a)) {
            Ok(d) => self.metrics.remember(&a, &decision_json(&d)),
            Err(e) => eprintln!("logwarden: outbox: cannot queue an alert: {e}"),
        }
        self.commit();
    }

    /// Loads rules and routes anew; any error leaves the running ones untouched.
    fn reload(&mut self) -> Result<String, String> {
        let Some(from) = &self.reload else { return Err("nothing to reload from".into()) };
        let lines = |es: Vec<String>| es.join("\n");
        let config = crate::config::load(&from.config)
            .map_err(|es| lines(es.iter().map(ToString::to_string).collect()))?;
        let rules = match from.rules.clone().or_else(|| config.spec.rules.clone()) {
            Some(dir) => crate::rule::load::load_dir(&dir)
                .map_err(|es| lines(es.iter().map(ToString::to_string).collect()))?,
            None => Vec::new(),
        };
        let mut router = config.router.clone();
        for r in &rules {
            if let Some(d) = r.dedup {
                router.dedup.insert(r.id.clone(), d);
            }
        }
        let n_rules = rules.len();
        let mut engine = Engine::new(Arc::new(RuleSet::new(rules)), &from.services, false);
        let kept = self.engine.take().map_or(0, |old| engine.carry_over(old));
        self.rules.send_replace(Some(Arc::clone(engine.set())));
        self.engine = Some(engine);
        // A new engine: its state is committed whole next time.
        self.state_log.based = false;
        let routes = router.routes.len();
        self.dispatcher.reconfigure(router, Timestamp::now()).map_err(|e| e.to_string())?;
        self.publish();
        Ok(format!(
            "reloaded: {n_rules} rules ({kept} unchanged kept their state), {routes} routes; \
             sources and sinks change on restart"
        ))
    }

    fn publish(&self) {
        if let Some(engine) = &self.engine {
            let ids = engine.rules().rules().iter().map(|r| r.id.clone());
            if let Ok(mut r) = self.metrics.rules.lock() {
                *r = ids.zip(engine.stats()).collect();
            }
        }
        if let Ok(mut r) = self.metrics.router.lock() {
            *r = self.dispatcher.router().stats().clone();
        }
        self.metrics.queued.store(self.dispatcher.queued(), Ordering::Relaxed);
    }
}

/// The snapshot name of the rules' behaviour state.
pub const ENGINE_SNAPSHOT: &str = "engine";
/// The name prefix of the detector state's change sets (numbered after it, in order).
pub const ENGINE_CHANGES: &str = "engine-changes.";
/// The snapshot name of the router's state.
pub const ROUTER_SNAPSHOT: &str = "router";

/// The checkpoint key under which a file output's committed length is kept.
pub fn output_key(name: &str) -> String {
    format!("output:{name}")
}

fn output_length(out: &Output) -> Option<Checkpoint> {
    let path = out.path()?;
    let len = std::fs::metadata(path).ok()?.len();
    Some(Checkpoint { key: output_key(out.name()), path: path.to_path_buf(), offset: len })
}

/// Cuts a file output back to the length committed with the file positions, so events
/// written after the last commit (and read again after a crash) are not archived twice.
pub fn cut_to_committed(path: &std::path::Path, committed: u64) -> std::io::Result<bool> {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if len <= committed {
        return Ok(false);
    }
    std::fs::OpenOptions::new().write(true).open(path)?.set_len(committed)?;
    Ok(true)
}

/// The id of the daemon's own rule for a source that went quiet.
pub const SILENT_SOURCE_RULE: &str = "logwarden-source-silent";

/// A host that stops logging is an incident too: an alert naming the source and how long it
/// has been quiet.
fn silent_alert(source: &str, last: Timestamp, now: Timestamp, limit: Span) -> Alert {
    let group = vec![("source".to_owned(), source.to_owned())];
    let quiet = humantime::format_duration(std::time::Duration::from_secs(
        ((now.0 - last.0).max(0) / 1_000_000_000) as u64,
    ));
    Alert {
        rule_id: SILENT_SOURCE_RULE.into(),
        rule_title: "Log source silent".into(),
        severity: Severity::High,
        tags: vec!["logwarden.source_health".into()],
        title: format!("Source `{source}` has sent nothing for {quiet}"),
        fingerprint: fingerprint(SILENT_SOURCE_RULE, &group),
        group,
        count: 1,
        first_seen: last,
        last_seen: now,
        events: Vec::new(),
        sample: Vec::new(),
        detail: Some(serde_json::json!({
            "source": source,
            "silent_for_seconds": (now.0 - last.0).max(0) / 1_000_000_000,
            "max_silence_seconds": limit.nanos() / 1_000_000_000,
        })),
        explain: None,
    }
}
