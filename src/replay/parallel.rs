//! Syslog replay on both cores: a reader deals lines to two parsers by process id, each parses
//! and writes its share, and the main thread puts the results back in file order.
//!
//! Dealing by pid keeps the one piece of cross-line state exact: the sshd session table is
//! keyed by (host, pid), and every line of one process carries the same `[pid]`, so each
//! session lives wholly in one parser. Lines without a pid in the RFC 3164 tag (and every
//! RFC 5424 line, whose pid is a header field this scan does not look for) go to parser 0.
//! The output is byte for byte what the one-thread path writes (tested).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use bytes::Bytes;

use std::sync::Arc;

use super::{Outputs, ReplayError, ReplayOptions, dead_letter_line, deliver};
use crate::event::{Event, Sym, write_json};
use crate::ledger::{Ledger, Quarantined};
use crate::parse::Parser;
use crate::parse::syslog::SyslogParser;
use crate::rule::engine::Engine;
use crate::rule::set::{Hit, RuleSet};
use crate::source::RawRecord;
use crate::source::detect::Input;
use crate::source::file::{Framed, read_lines};

/// Lines per chunk dealt out together.
const CHUNK: usize = 2048;
/// Events a chunk may expand to before it is sent (see [`expansion`]).
const CHUNK_EVENTS: usize = 4 * CHUNK;

/// How many events a line can become: N for syslog's `message repeated N times: [...]`
/// (capped as the parser caps it), else one. An upper bound is all the chunking needs.
fn expansion(line: &[u8]) -> usize {
    const MARK: &[u8] = b"message repeated ";
    let Some(at) = memchr::memmem::find(line, MARK) else { return 1 };
    let digits = &line[at + MARK.len()..];
    let n = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0usize, |n, d| n.saturating_mul(10).saturating_add(usize::from(d - b'0')));
    n.clamp(1, crate::parse::syslog::MAX_REPEAT)
}

/// Chunks in flight per channel.
const QUEUE: usize = 4;
/// Parsers.
const WORKERS: usize = 2;

/// Where each line of a chunk went, in file order.
enum Route {
    /// Parsed by this worker; its result is that worker's next one.
    Worker(u8),
    /// Set aside while framing (too long, torn by a read error).
    Bad(Quarantined, Bytes),
}

/// One worker's result for one line.
enum Outcome {
    /// Parsed: how many events, how many bytes of JSON they wrote, and how many of them
    /// matched a rule (those are in [`Results::matched`]); `capped`: repeats named beyond the
    /// parser's cap.
    Parsed { events: u32, json: u32, matched: u32, ambiguous: u32, capped: u64 },
    /// Quarantined by the parser.
    Failed(Quarantined, Bytes),
}

/// One worker's results for its share of a chunk.
struct Results {
    outcomes: Vec<Outcome>,
    json: Vec<u8>,
    /// Events that matched a rule, with how many of `hits` are theirs.
    matched: Vec<(Event, u32)>,
    /// The rules they matched, in event order.
    hits: Vec<Hit>,
}

/// The worker a line goes to: by the pid in an RFC 3164 tag (`prog[pid]:`), else 0.
fn worker_for(line: &[u8]) -> usize {
    if line.starts_with(b"<") && line.iter().take(6).any(|&b| b == b'>') {
        // `<PRI>1 ` is RFC 5424: its pid is not bracketed; keep those lines together.
        let after = line.iter().position(|&b| b == b'>').map_or(line, |i| &line[i + 1..]);
        if after.first().is_some_and(u8::is_ascii_digit) {
            return 0;
        }
    }
    let Some(open) = memchr::memchr(b'[', line) else { return 0 };
    let digits = line[open + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || line.get(open + 1 + digits..open + 3 + digits) != Some(b"]:") {
        return 0;
    }
    let pid = line[open + 1..open + 1 + digits]
        .iter()
        .fold(0usize, |n, d| n.wrapping_mul(10).wrapping_add(usize::from(d - b'0')));
    pid % WORKERS
}

/// Replays one syslog input on [`WORKERS`] parsers; returns its ledger.
pub(super) fn replay(
    input: Input,
    source: &Sym,
    opts: &ReplayOptions,
    out: &mut Outputs<'_>,
    engine: Option<&mut Engine>,
    progress: &Option<indicatif::ProgressBar>,
) -> Result<Ledger, ReplayError> {
    let (syslog, max_record_bytes) = (opts.syslog, opts.max_record_bytes);
    // Workers match only when something will observe the hits.
    let rules = engine.as_ref().and(opts.rules.clone());
    let write_events = out.events.is_some();
    let consumed = input.consumed.clone();
    let (route_tx, route_rx) = sync_channel::<Vec<Route>>(QUEUE);
    let mut work_txs = Vec::with_capacity(WORKERS);
    let mut result_rxs = Vec::with_capacity(WORKERS);
    let mut recycle_txs = Vec::with_capacity(WORKERS);
    std::thread::scope(|scope| {
        for w in 0..WORKERS {
            let (work_tx, work_rx) = sync_channel::<Vec<RawRecord>>(QUEUE);
            let (result_tx, result_rx) = sync_channel::<Results>(QUEUE);
            // JSON buffers go back to their worker: a fresh ~1 MB buffer per chunk is an mmap,
            // a run of zero-filled page faults and an munmap each time.
            let (recycle_tx, recycle_rx) = sync_channel::<Spent>(QUEUE);
            work_txs.push(work_tx);
            result_rxs.push(result_rx);
            recycle_txs.push(recycle_tx);
            // Each worker has its own copy of the path: one shared name cloned onto every
            // event by two threads would bounce its reference count between the cores.
            let path = Sym::from(source.as_str());
            let ends = WorkerEnds { input: work_rx, output: result_tx, recycled: recycle_rx };
            let rules = rules.clone();
            let parser = SyslogParser::new(syslog);
            // Named threads make profiles and stack dumps readable; if naming fails the OS
            // refused a thread, which `spawn` would have hit too.
            let spawned = std::thread::Builder::new()
                .name(format!("parse-{w}"))
                .spawn_scoped(scope, move || work(ends, parser, path, write_events, rules));
            if spawned.is_err() {
                return Err(ReplayError::Thread);
            }
        }
        let reader_source = source.clone();
        let spawned =
            std::thread::Builder::new().name("read".into()).spawn_scoped(scope, move || {
                deal(input, &reader_source, max_record_bytes, route_tx, work_txs)
            });
        if spawned.is_err() {
            return Err(ReplayError::Thread);
        }
        let ends = MergeEnds { routes: route_rx, results: &result_rxs, recycle: &recycle_txs };
        // Without an event stream, alerts need no place among events: rule state then runs on
        // a thread of its own, beside the merger, instead of after it on the merger's thread.
        let detect = match engine {
            Some(engine) if !write_events => {
                let (tx, rx) = sync_channel::<Matched>(QUEUE);
                let sink = out.alerts.take();
                let handle = std::thread::Builder::new()
                    .name("detect".into())
                    .spawn_scoped(scope, move || detect(rx, engine, sink));
                match handle {
                    Ok(h) => Detect::Thread(tx, h),
                    Err(_) => return Err(ReplayError::Thread),
                }
            }
            Some(engine) => Detect::Inline(engine),
            None => Detect::Off,
        };
        let (merged, sink) = match detect {
            Detect::Thread(tx, handle) => {
                let merged = merge(ends, source, out, Detect::Thread(tx, ()), progress, &consumed);
                // The merger dropped its sender: the detector drains what is queued and ends.
                let (sink, detected) = handle.join().unwrap_or((None, Err(ReplayError::Thread)));
                (merged.and_then(|ledger| detected.map(|()| ledger)), sink)
            }
            Detect::Inline(engine) => {
                (merge(ends, source, out, Detect::Inline(engine), progress, &consumed), None)
            }
            Detect::Off => (merge(ends, source, out, Detect::Off, progress, &consumed), None),
        };
        if sink.is_some() {
            out.alerts = sink;
        }
        // Hanging up on the workers (dropping the receivers) lets every thread finish even
        // when merging stopped early on a write error.
        drop(result_rxs);
        merged
    })
}

/// The reader: frames lines and deals them out, a chunk at a time.
fn deal(
    input: Input,
    source: &Sym,
    max_record_bytes: usize,
    routes: SyncSender<Vec<Route>>,
    workers: Vec<SyncSender<Vec<RawRecord>>>,
) {
    let mut route = Vec::with_capacity(CHUNK);
    let mut shares: Vec<Vec<RawRecord>> = (0..WORKERS).map(|_| Vec::with_capacity(CHUNK)).collect();
    // The route goes first: the merger then waits only on results of lines already dealt.
    let send = |route: &mut Vec<Route>, shares: &mut Vec<Vec<RawRecord>>| -> ControlFlow<()> {
        if routes.send(std::mem::replace(route, Vec::with_capacity(CHUNK))).is_err() {
            return ControlFlow::Break(());
        }
        for (w, share) in shares.iter_mut().enumerate() {
            if workers[w].send(std::mem::replace(share, Vec::with_capacity(CHUNK))).is_err() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    };
    // Events the chunk will expand to: a `message repeated N times` line is N events, so a
    // chunk is cut by events as well as by lines, or a few forged lines would make one chunk
    // of millions of events.
    let mut events = 0;
    let _ = read_lines(input.reader, source, max_record_bytes, |framed| {
        match framed {
            Framed::Record(rec) => {
                let w = worker_for(&rec.bytes);
                events += expansion(&rec.bytes);
                route.push(Route::Worker(w as u8));
                shares[w].push(rec);
            }
            Framed::Bad(q, head) => route.push(Route::Bad(q, head)),
        }
        if route.len() >= CHUNK || events >= CHUNK_EVENTS {
            events = 0;
            send(&mut route, &mut shares)
        } else {
            ControlFlow::Continue(())
        }
    });
    if !route.is_empty() {
        let _ = send(&mut route, &mut shares);
    }
}

/// A worker's ends of its channels.
struct WorkerEnds {
    input: Receiver<Vec<RawRecord>>,
    output: SyncSender<Results>,
    recycled: Receiver<Spent>,
}

/// What the merger hands back to a worker once a chunk is written: the JSON buffer to reuse,
/// and the matched events to drop there. Their strings were allocated on the worker; freeing
/// them on the same thread keeps the allocator from locking another thread's arena per event.
struct Spent {
    json: Vec<u8>,
    matched: Vec<(Event, u32)>,
}

/// A parser: parses its share of each chunk and writes the events' JSON.
fn work(
    ends: WorkerEnds,
    mut parser: SyslogParser,
    path: Sym,
    write_events: bool,
    rules: Option<Arc<RuleSet>>,
) {
    let WorkerEnds { input, output, recycled } = ends;
    let mut events: Vec<Event> = Vec::new();
    // Sized from the last chunk, so a new JSON buffer is not regrown (and recopied) per chunk.
    let mut json_hint = 0;
    for share in input {
        let (json, matched) = match recycled.try_recv() {
            Ok(Spent { mut json, mut matched }) => {
                json.clear();
                matched.clear();
                (json, matched)
            }
            Err(_) => (Vec::with_capacity(json_hint + json_hint / 8), Vec::new()),
        };
        let mut results =
            Results { outcomes: Vec::with_capacity(share.len()), json, matched, hits: Vec::new() };
        for rec in &share {
            events.clear();
            match parser.parse(rec, &mut events) {
                Ok(()) => {
                    let before = results.json.len();
                    for e in &mut events {
                        e.log_file_path = Some(path.clone());
                        if write_events {
                            write_json(e, &mut results.json);
                            results.json.push(b'\n');
                        }
                    }
                    let json = u32::try_from(results.json.len() - before).unwrap_or(u32::MAX);
                    let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
                    let ambiguous = events.iter().filter(|e| e.related_ip.is_some()).count() as u32;
                    let mut matched = 0;
                    if let Some(rules) = &rules {
                        for e in events.drain(..) {
                            let before = results.hits.len();
                            rules.hits(&e, &mut results.hits);
                            let hits = results.hits.len() - before;
                            if hits > 0 {
                                results.matched.push((e, hits as u32));
                                matched += 1;
                            }
                        }
                    }
                    let capped = parser.take_capped();
                    results.outcomes.push(Outcome::Parsed {
                        events: n,
                        json,
                        matched,
                        ambiguous,
                        capped,
                    });
                }
                Err(err) => {
                    let q = Quarantined {
                        unit: "line",
                        number: rec.origin.record,
                        offset: rec.origin.offset,
                        kind: err.kind(),
                        detail: err.to_string(),
                    };
                    results.outcomes.push(Outcome::Failed(q, rec.bytes.clone()));
                }
            }
        }
        json_hint = results.json.len();
        if output.send(results).is_err() {
            return;
        }
    }
}

/// The main thread: walks each chunk's route and takes every line's result from the worker
/// that parsed it, so output and ledger come out in file order.
/// Where the merger sends matched events.
enum Detect<'e, H> {
    /// No rules loaded.
    Off,
    /// Observed on the merger's thread, between the events it writes.
    Inline(&'e mut Engine),
    /// Sent in batches to the detection thread.
    Thread(SyncSender<Matched>, H),
}

/// Matched events on their way to the detection thread, with their hits.
#[derive(Default)]
struct Matched {
    events: Vec<Event>,
    /// How many of `hits` each event has.
    counts: Vec<u32>,
    hits: Vec<Hit>,
}

/// Matched events per batch to the detection thread.
const MATCHED_BATCH: usize = 1024;

/// The detection thread: feeds batches to the engine in order and hands alerts to the sink.
/// Returns the sink so the caller can have it back, and the first write error.
fn detect<'s>(
    rx: Receiver<Matched>,
    engine: &mut Engine,
    mut sink: Option<&'s mut dyn crate::alert::AlertSink>,
) -> (Option<&'s mut dyn crate::alert::AlertSink>, Result<(), ReplayError>) {
    let mut alerts = Vec::new();
    let mut result = Ok(());
    for batch in rx {
        let mut at = 0;
        for (e, &n) in batch.events.iter().zip(&batch.counts) {
            let hits = &batch.hits[at..at + n as usize];
            at += n as usize;
            engine.observe(e, hits, &mut alerts);
            if let Some(s) = sink.as_deref_mut() {
                for a in alerts.drain(..) {
                    if let Err(err) = s.alert(a)
                        && result.is_ok()
                    {
                        result = Err(ReplayError::Write(err));
                    }
                }
            }
            alerts.clear();
        }
        if result.is_err() {
            // Stop taking batches: the merger sees the hang-up and stops too.
            break;
        }
    }
    if let Some(s) = sink.as_deref_mut()
        && let Err(err) = s.flush()
        && result.is_ok()
    {
        result = Err(ReplayError::Write(err));
    }
    (sink, result)
}

/// The merging thread's ends of the channels.
struct MergeEnds<'a> {
    routes: Receiver<Vec<Route>>,
    results: &'a [Receiver<Results>],
    recycle: &'a [SyncSender<Spent>],
}

/// One worker's results for the chunk being merged, with read positions.
struct Share {
    outcomes: std::vec::IntoIter<Outcome>,
    json: Vec<u8>,
    at: usize,
    matched: Vec<(Event, u32)>,
    matched_at: usize,
    hits: Vec<Hit>,
    hit_at: usize,
}

fn merge(
    ends: MergeEnds<'_>,
    source: &Sym,
    out: &mut Outputs<'_>,
    mut detect: Detect<'_, ()>,
    progress: &Option<indicatif::ProgressBar>,
    consumed: &AtomicU64,
) -> Result<Ledger, ReplayError> {
    let mut batch = Matched::default();
    let MergeEnds { routes, results, recycle } = ends;
    let mut ledger = Ledger::new(source.to_string(), "syslog");
    let mut buf = Vec::with_capacity(super::WRITE_BUF + 64 * 1024);
    let mut alerts = Vec::new();
    let local_path = Sym::from(source.as_str());
    let set_aside = |ledger: &mut Ledger, q: Quarantined, raw: &[u8], out: &mut Outputs<'_>| {
        if let Some(w) = out.dead_letter.as_deref_mut() {
            w.write_all(&dead_letter_line(source, &q, raw)).map_err(ReplayError::Write)?;
        }
        ledger.quarantine(q);
        Ok::<(), ReplayError>(())
    };
    for route in routes {
        let mut shares: Vec<Share> = Vec::with_capacity(WORKERS);
        for rx in results {
            // A worker that stopped sending has died; the rest of its lines are lost, which the
            // ledger must say rather than hide.
            let r = rx.recv().unwrap_or(Results {
                outcomes: Vec::new(),
                json: Vec::new(),
                matched: Vec::new(),
                hits: Vec::new(),
            });
            shares.push(Share {
                outcomes: r.outcomes.into_iter(),
                json: r.json,
                at: 0,
                matched: r.matched,
                matched_at: 0,
                hits: r.hits,
                hit_at: 0,
            });
        }
        for step in route {
            ledger.records += 1;
            let (w, q, raw) = match step {
                Route::Bad(q, head) => (None, Some(q), head),
                Route::Worker(w) => (Some(usize::from(w)), None, Bytes::new()),
            };
            if let Some(q) = q {
                set_aside(&mut ledger, q, &raw, out)?;
                continue;
            }
            let Some(w) = w else { continue };
            let share = &mut shares[w];
            match share.outcomes.next() {
                Some(Outcome::Parsed { events, json: len, matched, ambiguous, capped }) => {
                    ledger.events += u64::from(events);
                    ledger.ambiguous += u64::from(ambiguous);
                    ledger.repeats_capped = ledger.repeats_capped.saturating_add(capped);
                    let end = share.at + len as usize;
                    buf.extend_from_slice(&share.json[share.at..end]);
                    share.at = end;
                    let end = share.matched_at + matched as usize;
                    for (e, n) in share.matched.get_mut(share.matched_at..end).into_iter().flatten()
                    {
                        let hits = &share.hits[share.hit_at..share.hit_at + *n as usize];
                        share.hit_at += *n as usize;
                        // The worker's path name is cloned by that worker for every event;
                        // behaviour state keeps this thread's own copy, so the two threads do
                        // not bounce one reference count between cores.
                        if e.log_file_path.is_some() {
                            e.log_file_path = Some(local_path.clone());
                        }
                        match &mut detect {
                            Detect::Off => {}
                            Detect::Inline(engine) => engine.observe(e, hits, &mut alerts),
                            Detect::Thread(..) => {
                                batch.events.push(std::mem::take(e));
                                batch.counts.push(*n);
                                batch.hits.extend_from_slice(hits);
                            }
                        }
                    }
                    share.matched_at = end;
                    let stopped = match &detect {
                        Detect::Thread(tx, ()) if batch.events.len() >= MATCHED_BATCH => {
                            tx.send(std::mem::take(&mut batch)).is_err()
                        }
                        _ => false,
                    };
                    if stopped {
                        // The detection thread stopped on a write error, which it reports;
                        // the rest of the file is still read for the ledger.
                        detect = Detect::Off;
                    }
                    deliver(&mut alerts, &mut buf, out)?;
                }
                Some(Outcome::Failed(q, raw)) => set_aside(&mut ledger, q, &raw, out)?,
                None => {
                    let q = Quarantined {
                        unit: "line",
                        number: 0,
                        offset: 0,
                        kind: "internal_error",
                        detail: "a parser thread stopped early".into(),
                    };
                    set_aside(&mut ledger, q, &[], out)?;
                }
            }
        }
        for (share, back) in shares.into_iter().zip(recycle) {
            // A full queue means the worker has buffers enough; these are dropped here.
            let _ = back.try_send(Spent { json: share.json, matched: share.matched });
        }
        if let Some(w) = out.events.as_deref_mut()
            && buf.len() >= super::WRITE_BUF
        {
            w.write_all(&buf).map_err(ReplayError::Write)?;
            buf.clear();
        }
        if let Some(p) = progress {
            p.set_position(consumed.load(Ordering::Relaxed));
        }
    }
    if let Detect::Thread(tx, ()) = &detect
        && !batch.events.is_empty()
    {
        // A hang-up means the detection thread stopped on an error it reports itself.
        let _ = tx.send(batch);
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
    Ok(ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_lines_count_as_the_events_they_become() {
        assert_eq!(expansion(b"Dec 10 06:55:46 h sshd[1]: Failed password for root"), 1);
        let line = b"Dec 10 06:55:46 h sshd[1]: message repeated 5 times: [ Failed password]";
        assert_eq!(expansion(line), 5);
        let forged = b"h sshd[1]: message repeated 99999999999999999999999 times: [ x]";
        assert_eq!(expansion(forged), crate::parse::syslog::MAX_REPEAT);
        assert_eq!(expansion(b"h sshd[1]: message repeated 0 times: [ x]"), 1);
    }

    #[test]
    fn lines_are_dealt_by_pid() {
        assert_eq!(worker_for(b"Dec 10 06:55:46 h sshd[24200]: x"), 0);
        assert_eq!(worker_for(b"Dec 10 06:55:46 h sshd[24201]: x"), 1);
        assert_eq!(worker_for(b"<38>Dec 10 06:55:46 h sshd[7]: x"), 1);
        assert_eq!(worker_for(b"Dec 10 06:55:46 h kernel: [  7.1] x"), 0);
        assert_eq!(worker_for(b"Dec 10 06:55:46 h CRON: x[3]: y"), 1);
        assert_eq!(worker_for(b"<38>1 2025-01-01T00:00:00Z h sshd 7 - [x@1 a=\"1\"] m"), 0);
        assert_eq!(worker_for(b""), 0);
    }
}
