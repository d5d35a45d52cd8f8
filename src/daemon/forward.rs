//! Forward mode (`logwarden forward`, `mode: forward`): the sidecar. In place of detection,
//! each parsed batch is appended to the forwarder's on-disk buffer (durable before anything
//! else happens to it), and only then is the source's position committed: an aggregator
//! outage fills the buffer, a crash re-sends at most the batch in flight, nothing is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::detect::{Control, Msg};
use crate::forward::Forwarder;
use crate::output::Output;
use crate::source::Checkpoint;
use crate::state::checkpoint::Checkpoints;

/// The forwarding thread's state.
pub struct ForwardLoop {
    /// Where batches go.
    pub forwarder: Arc<Forwarder>,
    /// Where source positions are committed.
    pub checkpoints: Checkpoints,
    /// Event outputs (an agent may archive locally too).
    pub outputs: Vec<Output>,
    /// Whether the last commit of positions failed (its error was said).
    pub failing: bool,
}

impl ForwardLoop {
    /// Runs until every sender of `rx` is gone. (Never an error: a buffer that cannot be
    /// written holds the sources back until it can.)
    pub fn run(mut self, mut rx: mpsc::Receiver<Msg>) -> Result<(), String> {
        let mut positions: HashMap<String, Checkpoint> = HashMap::new();
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Parsed(_, mut parsed) => {
                    // Never dropped: a buffer that cannot be written (a full disk) is retried
                    // until it can, which holds the sources back.
                    // The state database says when writes fail and when they work again; the
                    // first error of an outage is said here too, the rest counted there.
                    let mut said = false;
                    while let Err(e) = self.forwarder.enqueue(&parsed.events) {
                        if !said {
                            eprintln!("logwarden: forward: cannot buffer events, retrying: {e}");
                            said = true;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    for out in &mut self.outputs {
                        for e in &parsed.events {
                            if let Err(err) = out.write(e) {
                                eprintln!("logwarden: {err}");
                                break;
                            }
                        }
                    }
                    if let Some(c) = parsed.checkpoint.take() {
                        positions.insert(c.key.clone(), c);
                        self.commit(&mut positions);
                    }
                    // Buffered durably: an acknowledging source may let go of them.
                    if let Some(done) = parsed.done.take() {
                        let _ = done.send(());
                    }
                }
                Msg::Tick => {
                    for out in &mut self.outputs {
                        if let Err(e) = out.flush() {
                            eprintln!("logwarden: {e}");
                        }
                    }
                    self.commit(&mut positions);
                }
                Msg::Control(c) => refuse(c),
            }
        }
        for out in &mut self.outputs {
            if let Err(e) = out.flush() {
                eprintln!("logwarden: {e}");
            }
        }
        self.commit(&mut positions);
        Ok(())
    }

    fn commit(&mut self, positions: &mut HashMap<String, Checkpoint>) {
        if positions.is_empty() {
            return;
        }
        match self.checkpoints.commit(positions.values()) {
            Ok(()) => {
                positions.clear();
                self.failing = false;
            }
            // Kept and tried again next second; said once per outage (the state database
            // says when writes work again).
            Err(e) if !self.failing => {
                eprintln!("logwarden: checkpoints: {e}");
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}

/// A forwarder has no rules, routes or silences: the API's requests for them are refused.
fn refuse(c: Control) {
    match c {
        Control::Reload(done) => {
            let _ = done.send(Err("forward mode: no rules or routes to reload".into()));
        }
        // Dropping the answer makes the API say it cannot serve the request.
        Control::AddSilence(..) | Control::RemoveSilence { .. } => {}
    }
}
