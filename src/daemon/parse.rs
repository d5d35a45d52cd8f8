//! The parse stage: one task per source that turns its record batches into events and finds
//! the rules each event matches. Both are stateless across sources (a parser's state is per
//! stream), so they run on the runtime's threads beside the detection thread, which is left
//! with only the stateful work (behaviours, routing): on two cores, parsing and matching take
//! one and detection the other.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, watch};

use super::detect::{Msg, Parsed};
use super::metrics::Metrics;
use crate::event::{Event, Timestamp};
use crate::parse::Parser;
use crate::rule::set::{Hit, RuleSet};
use crate::source::Batch;

/// One source's parse stage.
pub struct ParseStage {
    /// The source's index (its metrics and its stage in the detection thread).
    pub index: usize,
    /// Its parser.
    pub parser: Box<dyn Parser>,
    /// Which parser that is (metrics label).
    pub format: &'static str,
    /// Events get `log.file.path` from the record's origin.
    pub files: bool,
    /// Events get `log.source.address` from the record's origin.
    pub peers: bool,
    /// The rule set in force (replaced on reload), if rules are loaded.
    pub rules: watch::Receiver<Option<Arc<RuleSet>>>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl ParseStage {
    /// Parses batches from `rx` until it closes, sending them on to the detection thread.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Batch>, tx: mpsc::Sender<Msg>) {
        while let Some(batch) = rx.recv().await {
            let parsed = self.parse(batch);
            if tx.send(Msg::Parsed(self.index, parsed)).await.is_err() {
                return;
            }
        }
    }

    fn parse(&mut self, batch: Batch) -> Parsed {
        let Some(m) = self.metrics.sources.get(self.index) else {
            return Parsed::empty(batch);
        };
        // Network sources count what they frame; file records are counted here.
        if self.files {
            m.counters.records_in.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        }
        m.last_seen_ns.store(Timestamp::now().0, Ordering::Relaxed);
        m.parsed.fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        let mut events: Vec<Event> = Vec::with_capacity(batch.records.len());
        let mut quarantined = 0u64;
        for record in &batch.records {
            let start = events.len();
            if let Err(e) = self.parser.parse(record, &mut events) {
                events.truncate(start);
                quarantined += 1;
                if let Ok(mut f) = self.metrics.parse_failures.lock() {
                    *f.entry((self.format, e.kind())).or_default() += 1;
                }
                if let Ok(mut r) = m.quarantine_reasons.lock() {
                    *r.entry(e.kind()).or_default() += 1;
                }
                continue;
            }
            for e in &mut events[start..] {
                if self.files {
                    e.log_file_path = Some(record.origin.source.clone());
                } else if self.peers {
                    e.log_source_address = Some(record.origin.source.clone());
                }
            }
        }
        m.quarantined.fetch_add(quarantined, Ordering::Relaxed);
        m.events_out.fetch_add(events.len() as u64, Ordering::Relaxed);
        let capped = self.parser.take_capped();
        if capped > 0 {
            m.repeats_capped.fetch_add(capped, Ordering::Relaxed);
        }
        let ambiguous = events.iter().filter(|e| e.related_ip.is_some()).count();
        if ambiguous > 0 {
            m.ambiguous.fetch_add(ambiguous as u64, Ordering::Relaxed);
        }
        let set = self.rules.borrow().clone();
        let mut hits = Vec::new();
        let mut ends = Vec::new();
        if let Some(set) = &set {
            ends.reserve(events.len());
            for e in &events {
                set.hits(e, &mut hits);
                ends.push(hits.len() as u32);
            }
        }
        Parsed { events, hits, ends, set, checkpoint: batch.checkpoint, done: batch.done }
    }
}

impl Parsed {
    fn empty(batch: Batch) -> Parsed {
        Parsed {
            events: Vec::new(),
            hits: Vec::new(),
            ends: Vec::new(),
            set: None,
            checkpoint: batch.checkpoint,
            done: batch.done,
        }
    }

    /// The rules event `k` matched, as found against [`Parsed::set`].
    pub fn hits_of(&self, k: usize) -> &[Hit] {
        let end = self.ends.get(k).copied().unwrap_or(0) as usize;
        let start = if k == 0 { 0 } else { self.ends.get(k - 1).copied().unwrap_or(0) as usize };
        self.hits.get(start..end).unwrap_or(&[])
    }
}
