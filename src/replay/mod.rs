//! `logwarden replay`: files through the pipeline, offline, with a ledger per file.
//!
//! Syslog is parsed on both cores (`parallel.rs`): lines are dealt to two parsers by process id
//! and merged back in file order. Other formats run in two stages on two threads joined by a
//! bounded channel of event batches: one reads, frames and parses; the other writes. Either
//! way the channel bounds keep memory flat whatever the file size.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

mod parallel;

use crate::alert::{Alert, AlertSink};
use crate::event::{Event, Sym};
use crate::ledger::{Ledger, Quarantined};
use crate::parse::cloudtrail::CloudTrailParser;
use crate::parse::json::JsonParser;
use crate::parse::syslog::{SyslogOptions, SyslogParser};
use crate::parse::{Format, Parser};
use crate::rule::behaviour::Services;
use crate::rule::engine::{Engine, RuleStats};
use crate::rule::set::RuleSet;
use crate::source::RawRecord;
use crate::source::cloudtrail::{CloudTrailReadError, read_records};
use crate::source::detect::{self, DetectError, Input};
use crate::source::file::{Framed, read_lines};

/// Events per batch sent between the stages.
const BATCH: usize = 1024;
/// Batches in flight: with ~1 KiB per event this bounds the queue to a few MiB.
const QUEUE: usize = 4;
/// Bytes of serialized events buffered before one write call.
const WRITE_BUF: usize = 256 * 1024;

/// How `replay` reads its inputs.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Force a format instead of detecting it per file.
    pub format: Option<Format>,
    /// RFC 3164 time zone and year.
    pub syslog: SyslogOptions,
    /// Longest line accepted; longer ones are quarantined.
    pub max_record_bytes: usize,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// Parse syslog on two threads (dealt by process id, merged back in order); false keeps
    /// one parser thread. Output is the same either way.
    pub parallel: bool,
    /// Rules to run over the events; their state spans all files, in the order given.
    pub rules: Option<Arc<RuleSet>>,
    /// Services rules need (geolocation).
    pub services: Services,
    /// Add to each alert which selections matched.
    pub explain: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            format: None,
            syslog: SyslogOptions::default(),
            max_record_bytes: crate::parse::frame::DEFAULT_MAX_RECORD_BYTES,
            progress: false,
            parallel: true,
            rules: None,
            services: Services::default(),
            explain: false,
        }
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// An input could not be opened.
    #[error(transparent)]
    Open(#[from] DetectError),
    /// Writing events or dead letters failed (a closed pipe, a full disk).
    // The cause is not repeated here: main prints the error chain (`{:#}`), which adds it.
    #[error("writing output")]
    Write(#[source] std::io::Error),
    /// The OS refused to start a pipeline thread.
    #[error("cannot start a replay thread")]
    Thread,
}

impl ReplayError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplayError::Open(e) => e.kind(),
            ReplayError::Write(_) => "write",
            ReplayError::Thread => "thread",
        }
    }
}

/// Where replayed events and set-aside records go.
pub struct Outputs<'a> {
    /// One ECS JSON event per line, if wanted.
    pub events: Option<&'a mut (dyn Write + Send)>,
    /// One JSON line per quarantined record (source, position, reason, raw text), if wanted.
    pub dead_letter: Option<&'a mut (dyn Write + Send)>,
    /// Alerts of the rules, if any are loaded. When events go to the same stream, every
    /// alert comes right after the event that fired it.
    pub alerts: Option<&'a mut dyn AlertSink>,
}

/// What a replay found: a ledger per file, and counters per rule.
#[derive(Debug, Default)]
pub struct Report {
    /// One ledger per input, in order.
    pub ledgers: Vec<Ledger>,
    /// `(rule id, counters)` per loaded rule, in rule order.
    pub rules: Vec<(String, RuleStats)>,
}

/// Replays each file in turn.
pub fn replay(
    paths: &[PathBuf],
    opts: &ReplayOptions,
    out: &mut Outputs<'_>,
) -> Result<Report, ReplayError> {
    let mut engine = new_engine(opts);
    let mut ledgers = Vec::with_capacity(paths.len());
    for path in paths {
        let input = detect::open(path, opts.format)?;
        let name = path.display().to_string();
        ledgers.push(replay_input(&name, input, opts, out, engine.as_mut())?);
    }
    Ok(Report { ledgers, rules: rule_stats(engine.as_ref()) })
}

/// Replays bytes held in memory as one input named `name` (rule test cases).
pub fn replay_bytes(
    name: &str,
    bytes: Vec<u8>,
    opts: &ReplayOptions,
    out: &mut Outputs<'_>,
) -> Result<Report, ReplayError> {
    let mut engine = new_engine(opts);
    let format = opts.format.unwrap_or_else(|| detect::sniff(&bytes));
    let size = Some(bytes.len() as u64);
    let input = Input {
        reader: Box::new(std::io::Cursor::new(bytes)),
        format,
        gzip: false,
        consumed: Arc::default(),
        size,
    };
    let ledger = replay_input(name, input, opts, out, engine.as_mut())?;
    Ok(Report { ledgers: vec![ledger], rules: rule_stats(engine.as_ref()) })
}

fn new_engine(opts: &ReplayOptions) -> Option<Engine> {
    opts.rules.as_ref().map(|set| Engine::new(Arc::clone(set), &opts.services, opts.explain))
}

fn rule_stats(engine: Option<&Engine>) -> Vec<(String, RuleStats)> {
    let Some(engine) = engine else { return Vec::new() };
    engine.rules().rules().iter().map(|r| r.id.clone()).zip(engine.stats()).collect()
}

/// Hands alerts to the sink; event bytes still buffered go out first, so on a shared stream
/// an alert follows the event that fired it.
fn deliver(
    alerts: &mut Vec<Alert>,
    buf: &mut Vec<u8>,
    out: &mut Outputs<'_>,
) -> Result<(), ReplayError> {
    if alerts.is_empty() {
        return Ok(());
    }
    if let Some(w) = out.events.as_deref_mut() {
        w.write_all(buf).map_err(ReplayError::Write)?;
        w.flush().map_err(ReplayError::Write)?;
        buf.clear();
    }
    if let Some(sink) = out.alerts.as_deref_mut() {
        for a in alerts.drain(..) {
            sink.alert(a).map_err(ReplayError::Write)?;
        }
    }
    alerts.clear();
    Ok(())
}

fn replay_input(
    name: &str,
    input: Input,
    opts: &ReplayOptions,
    out: &mut Outputs<'_>,
    engine: Option<&mut Engine>,
) -> Result<Ledger, ReplayError> {
    let source = Sym::from(name);
    let format = input.format;
    let progress = progress_bar(opts.progress, input.size, &source);
    if format == Format::Syslog && opts.parallel {
        let ledger = parallel::replay(input, &source, opts, out, engine, &progress);
        if let Some(p) = &progress {
            p.finish_and_clear();
        }
        return ledger;
    }
    let consumed = input.consumed.clone();
    let (tx, rx) = sync_channel::<Batch>(QUEUE);
    // Written batches go back to the parser to be dropped and reused: events hold shared
    // names whose reference counts, and heap blocks whose allocator caches, belong to the
    // parsing thread; dropping them there keeps those cache lines on one core.
    let (recycle_tx, recycle_rx) = sync_channel::<Vec<Event>>(QUEUE);
    std::thread::scope(|scope| {
        let producer = {
            let source = source.clone();
            let syslog = opts.syslog;
            let max = opts.max_record_bytes;
            let channels = Channels { batches: tx, recycled: recycle_rx };
            scope.spawn(move || produce(input, format, source, syslog, max, channels))
        };
        let written = consume(rx, recycle_tx, out, engine, &progress, &consumed);
        // The producer ends when input ends or when the consumer hung up; either way join it.
        let ledger = producer.join().unwrap_or_else(|_| {
            let mut l = Ledger::new(source.to_string(), format.as_str());
            l.quarantine(Quarantined {
                unit: "record",
                number: 0,
                offset: 0,
                kind: "internal_error",
                detail: "the parser thread panicked".into(),
            });
            l
        });
        if let Some(p) = &progress {
            p.finish_and_clear();
        }
        written.map(|()| ledger)
    })
}

fn progress_bar(enabled: bool, size: Option<u64>, source: &Sym) -> Option<indicatif::ProgressBar> {
    // Small files finish before a bar is worth drawing.
    let size = size.filter(|&s| enabled && s > 8 * 1024 * 1024)?;
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(source.to_string());
    Some(bar)
}

/// The writing stage: serializes batches and writes them in large chunks.
fn consume(
    rx: Receiver<Batch>,
    recycle: SyncSender<Vec<Event>>,
    out: &mut Outputs<'_>,
    mut engine: Option<&mut Engine>,
    progress: &Option<indicatif::ProgressBar>,
    consumed: &std::sync::atomic::AtomicU64,
) -> Result<(), ReplayError> {
    let mut buf = Vec::with_capacity(WRITE_BUF + 64 * 1024);
    let mut alerts = Vec::new();
    let write_events = out.events.is_some();
    for Batch { events: batch, dead_letters } in rx {
        if let Some(w) = out.dead_letter.as_deref_mut() {
            w.write_all(&dead_letters).map_err(ReplayError::Write)?;
        }
        for e in &batch {
            if write_events {
                crate::event::write_json(e, &mut buf);
                buf.push(b'\n');
            }
            if let Some(engine) = engine.as_deref_mut() {
                engine.process(e, &mut alerts);
                deliver(&mut alerts, &mut buf, out)?;
            }
            if let Some(w) = out.events.as_deref_mut()
                && buf.len() >= WRITE_BUF
            {
                w.write_all(&buf).map_err(ReplayError::Write)?;
                buf.clear();
            }
        }
        if let Some(p) = progress {
            p.set_position(consumed.load(Ordering::Relaxed));
        }
        // If the parser is not taking them back (it has finished), drop them here.
        let _ = recycle.try_send(batch);
    }
    if let Some(w) = out.events.as_deref_mut() {
        w.write_all(&buf).map_err(ReplayError::Write)?;
        w.flush().map_err(ReplayError::Write)?;
    }
    if let Some(w) = out.dead_letter.as_deref_mut() {
        w.flush().map_err(ReplayError::Write)?;
    }
    if let Some(sink) = out.alerts.as_deref_mut() {
        sink.flush().map_err(ReplayError::Write)?;
    }
    Ok(())
}

/// One dead-letter row: the record's source, position, reason and raw text, as a JSON line.
fn dead_letter_line(source: &Sym, q: &Quarantined, raw: &[u8]) -> Vec<u8> {
    let line = serde_json::json!({
        "source": source.as_str(),
        q.unit: q.number,
        "offset": q.offset,
        "reason": q.kind,
        "detail": q.detail,
        "raw": String::from_utf8_lossy(raw),
    });
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// The parsing stage's state for one input.
struct Producer {
    source: Sym,
    ledger: Ledger,
    batch: Vec<Event>,
    /// Dead-letter rows of this batch, sent with it.
    dead_letters: Vec<u8>,
    tx: SyncSender<Batch>,
    recycled: Receiver<Vec<Event>>,
}

/// What the parsing stage sends the writer: events and the dead-letter rows set aside among
/// them. One channel for both, so the writer never waits on one while the parser is blocked
/// on the other.
struct Batch {
    events: Vec<Event>,
    dead_letters: Vec<u8>,
}

/// Dead-letter bytes that make a batch worth sending even without events.
const DEAD_LETTER_FLUSH: usize = 64 * 1024;

/// The parsing stage's ends of the channels.
struct Channels {
    batches: SyncSender<Batch>,
    recycled: Receiver<Vec<Event>>,
}

impl Producer {
    fn parse(
        &mut self,
        parser: &mut dyn Parser,
        rec: &RawRecord,
        unit: &'static str,
    ) -> ControlFlow<()> {
        self.ledger.records += 1;
        let before = self.batch.len();
        match parser.parse(rec, &mut self.batch) {
            Ok(()) => {
                for e in &mut self.batch[before..] {
                    e.log_file_path = Some(self.source.clone());
                }
                self.ledger.repeats_capped =
                    self.ledger.repeats_capped.saturating_add(parser.take_capped());
            }
            Err(err) => {
                self.batch.truncate(before);
                let q = Quarantined {
                    unit,
                    number: rec.origin.record,
                    offset: rec.origin.offset,
                    kind: err.kind(),
                    detail: err.to_string(),
                };
                self.set_aside(q, &rec.bytes);
            }
        }
        self.maybe_flush()
    }

    fn maybe_flush(&mut self) -> ControlFlow<()> {
        if self.batch.len() >= BATCH || self.dead_letters.len() >= DEAD_LETTER_FLUSH {
            self.flush()
        } else {
            ControlFlow::Continue(())
        }
    }

    fn set_aside(&mut self, q: Quarantined, raw: &[u8]) {
        self.dead_letters.extend_from_slice(&dead_letter_line(&self.source, &q, raw));
        self.ledger.quarantine(q);
    }

    fn flush(&mut self) -> ControlFlow<()> {
        if self.batch.is_empty() && self.dead_letters.is_empty() {
            return ControlFlow::Continue(());
        }
        let next = match self.recycled.try_recv() {
            Ok(mut old) => {
                old.clear();
                old
            }
            Err(_) => Vec::with_capacity(BATCH),
        };
        let batch = std::mem::replace(&mut self.batch, next);
        self.ledger.events += batch.len() as u64;
        self.ledger.ambiguous += batch.iter().filter(|e| e.related_ip.is_some()).count() as u64;
        let dead_letters = std::mem::take(&mut self.dead_letters);
        match self.tx.send(Batch { events: batch, dead_letters }) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    }
}

fn produce(
    input: Input,
    format: Format,
    source: Sym,
    syslog: SyslogOptions,
    max_record_bytes: usize,
    channels: Channels,
) -> Ledger {
    let mut p = Producer {
        ledger: Ledger::new(source.to_string(), format.as_str()),
        source: source.clone(),
        batch: Vec::with_capacity(BATCH),
        dead_letters: Vec::new(),
        tx: channels.batches,
        recycled: channels.recycled,
    };
    match format {
        Format::Syslog | Format::Json => {
            let mut parser: Box<dyn Parser> = match format {
                Format::Json => Box::new(JsonParser),
                _ => Box::new(SyslogParser::new(syslog)),
            };
            let result =
                read_lines(input.reader, &source, max_record_bytes, |framed| match framed {
                    Framed::Record(rec) => p.parse(parser.as_mut(), &rec, "line"),
                    Framed::Bad(q, head) => {
                        p.ledger.records += 1;
                        p.set_aside(q, &head);
                        p.maybe_flush()
                    }
                });
            // The torn last line was already set aside by read_lines; nothing more to count.
            drop(result);
        }
        Format::CloudTrail => {
            let mut parser = CloudTrailParser::default();
            let result = read_records(input.reader, source.clone(), |rec| {
                p.parse(&mut parser, &rec, "record")
            });
            if let Err(err) = result {
                let (number, offset) = cloudtrail_position(&err);
                p.ledger.records += 1;
                let q = Quarantined {
                    unit: "record",
                    number,
                    offset,
                    kind: err.kind(),
                    detail: err.to_string(),
                };
                p.set_aside(q, &[]);
            }
        }
    }
    let _ = p.flush();
    p.ledger
}

fn cloudtrail_position(err: &CloudTrailReadError) -> (u64, u64) {
    match err {
        CloudTrailReadError::Json { record, offset, .. }
        | CloudTrailReadError::Io { record, offset, .. }
        | CloudTrailReadError::NotCloudTrail { record, offset, .. }
        | CloudTrailReadError::RecordTooLarge { record, offset, .. } => (*record, *offset),
    }
}
