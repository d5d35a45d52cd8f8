//! CloudTrail files streamed into one [`RawRecord`] per record, in bounded memory.
//!
//! Three shapes are accepted, after an optional UTF-8 byte order mark and whitespace: the S3
//! delivery envelope `{"Records":[...]}`, a bare JSON array of records (Stratus Red Team's
//! detonation logs), and JSON objects one after another (NDJSON or simply concatenated). The
//! shapes may follow one another in one stream, so `cat`-ed or multi-member gzip files work.
//!
//! Nothing here holds more than one record at a time: array elements are handed out one by one
//! from a serde `SeqAccess`, and a record larger than [`MAX_RECORD_BYTES`] is an error rather
//! than an allocation. Decompression is the caller's job (wrap the reader in
//! `flate2::read::MultiGzDecoder`); a truncated gzip member then surfaces here as an I/O error.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::ops::ControlFlow;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess};
use serde_json::value::RawValue;

use super::{Origin, RawRecord};
use crate::event::Sym;

/// The largest single record accepted. CloudTrail's own records are far smaller (tens of KB at
/// most); the cap exists so that a corrupt or hostile file cannot make one "record" swallow
/// all memory.
pub const MAX_RECORD_BYTES: u64 = 32 << 20;

/// Bytes read from the underlying reader at a time.
const CHUNK: usize = 64 << 10;

/// What a completed read produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Records handed to `emit`.
    pub records: u64,
}

/// Why a CloudTrail stream could not be read to its end. Records before the failure were
/// already emitted; [`CloudTrailReadError::records_emitted`] says how many.
#[derive(Debug, thiserror::Error)]
pub enum CloudTrailReadError {
    /// The JSON broke while reading record `record`.
    #[error("invalid JSON in record {record} at byte offset {offset}: {source}")]
    Json {
        /// 1-based index of the record being read.
        record: u64,
        /// Byte offset in the stream where the parser stopped.
        offset: u64,
        /// The JSON parser's message.
        source: serde_json::Error,
    },
    /// The underlying reader failed (a truncated gzip member shows up here as unexpected EOF).
    #[error("read failed in record {record} at byte offset {offset}: {source}")]
    Io {
        /// 1-based index of the record being read.
        record: u64,
        /// Bytes successfully read before the failure.
        offset: u64,
        /// The reader's error.
        source: io::Error,
    },
    /// A top-level value that is not an envelope, an array or an object.
    #[error(
        "not CloudTrail: {found} at byte offset {offset} (expected {{\"Records\":[...]}}, a JSON \
         array of records, or JSON objects)"
    )]
    NotCloudTrail {
        /// 1-based index of the record that would have come next.
        record: u64,
        /// Byte offset of the offending value.
        offset: u64,
        /// What was found instead.
        found: &'static str,
    },
    /// One record is larger than [`MAX_RECORD_BYTES`].
    #[error("record {record} at byte offset {offset} is larger than {limit} bytes")]
    RecordTooLarge {
        /// 1-based index of the record.
        record: u64,
        /// Byte offset where the record began.
        offset: u64,
        /// The cap.
        limit: u64,
    },
}

impl CloudTrailReadError {
    /// A short, fixed label for metrics and the ledger.
    pub fn kind(&self) -> &'static str {
        match self {
            CloudTrailReadError::Json { .. } => "invalid_json",
            CloudTrailReadError::Io { .. } => "io",
            CloudTrailReadError::NotCloudTrail { .. } => "not_cloudtrail",
            CloudTrailReadError::RecordTooLarge { .. } => "record_too_large",
        }
    }

    /// How many records were emitted before the failure.
    pub fn records_emitted(&self) -> u64 {
        let record = match self {
            CloudTrailReadError::Json { record, .. }
            | CloudTrailReadError::Io { record, .. }
            | CloudTrailReadError::NotCloudTrail { record, .. }
            | CloudTrailReadError::RecordTooLarge { record, .. } => *record,
        };
        record.saturating_sub(1)
    }
}

/// Streams the records of a CloudTrail file (see the module docs for the accepted shapes),
/// calling `emit` once per record in order. `emit` returning `Break` stops the read early; the
/// summary then counts the records emitted so far, the stopping one included.
pub fn read_records<R: Read>(
    reader: R,
    source: Sym,
    emit: impl FnMut(RawRecord) -> ControlFlow<()>,
) -> Result<ReadSummary, CloudTrailReadError> {
    read_capped(reader, source, emit, MAX_RECORD_BYTES)
}

/// [`read_records`] with the record size cap as a parameter, so tests need not build 32 MiB.
fn read_capped<R: Read>(
    reader: R,
    source: Sym,
    emit: impl FnMut(RawRecord) -> ControlFlow<()>,
    max_record: u64,
) -> Result<ReadSummary, CloudTrailReadError> {
    let meter = Meter { max_record, ..Meter::default() };
    let mut input = MeteredReader::new(reader, &meter);
    let mut run = Run { meter: &meter, emit, source, records: 0, stopped: false };
    input.skip_bom().map_err(|e| run.io_error(e))?;
    loop {
        let first = match input.peek_significant() {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(e) => return Err(run.io_error(e)),
        };
        let result = match first {
            b'[' => serde_json::Deserializer::from_reader(&mut input)
                .deserialize_seq(RecordsVisitor { run: &mut run }),
            b'{' => {
                meter.start_record(true);
                let shape = serde_json::Deserializer::from_reader(&mut input)
                    .deserialize_map(TopObjectVisitor { run: &mut run });
                match shape {
                    Ok(Shape::Record) => {
                        let start = meter.record_start.get();
                        let bytes = meter.take_tap();
                        meter.end_record();
                        run.emit(bytes, start);
                        Ok(())
                    }
                    Ok(Shape::Envelope) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            other => {
                return Err(CloudTrailReadError::NotCloudTrail {
                    record: run.records + 1,
                    offset: meter.consumed.get(),
                    found: describe(other),
                });
            }
        };
        if run.stopped {
            break;
        }
        result.map_err(|e| run.json_error(e))?;
    }
    Ok(ReadSummary { records: run.records })
}

/// Names the JSON value that starts with `b`, for [`CloudTrailReadError::NotCloudTrail`].
fn describe(b: u8) -> &'static str {
    match b {
        b'"' => "a string",
        b'-' | b'0'..=b'9' => "a number",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a byte that starts no JSON value",
    }
}

/// Byte accounting shared by the reader (which counts) and the visitors (which ask where they
/// are). Cells, because serde_json owns the reader while the visitors run.
struct Meter {
    /// Bytes handed to the JSON parser so far.
    consumed: Cell<u64>,
    /// Whether consumed bytes are also copied to `tap`.
    tapping: Cell<bool>,
    /// The current top-level object's bytes, while it may still turn out to be a record.
    tap: RefCell<Vec<u8>>,
    /// Offset where the record being read began.
    record_start: Cell<u64>,
    /// `consumed` may not pass this while a record is being read.
    limit: Cell<u64>,
    /// Set when the limit tripped, so the resulting I/O error can be told apart.
    over_limit: Cell<bool>,
    /// The record size cap.
    max_record: u64,
    /// Where the first JSON error arose. serde_json reads on after a visitor fails (to close the
    /// array or object), so `consumed` at the time the error surfaces is past the damage.
    failed_at: Cell<Option<u64>>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            consumed: Cell::new(0),
            tapping: Cell::new(false),
            tap: RefCell::new(Vec::new()),
            record_start: Cell::new(0),
            limit: Cell::new(u64::MAX),
            over_limit: Cell::new(false),
            max_record: MAX_RECORD_BYTES,
            failed_at: Cell::new(None),
        }
    }
}

impl Meter {
    /// A record starts at the current offset; `tap` says whether to keep its bytes.
    fn start_record(&self, tap: bool) {
        let at = self.consumed.get();
        self.record_start.set(at);
        self.limit.set(at.saturating_add(self.max_record));
        self.tapping.set(tap);
        if tap {
            self.tap.borrow_mut().clear();
        }
    }

    /// The record is complete (or turned out to be an envelope): stop limiting and tapping.
    fn end_record(&self) {
        self.limit.set(u64::MAX);
        self.tapping.set(false);
    }

    fn take_tap(&self) -> Vec<u8> {
        std::mem::take(&mut *self.tap.borrow_mut())
    }

    /// Notes where a visitor first saw an error, and passes the error on.
    fn failed<T, E>(&self, r: Result<T, E>) -> Result<T, E> {
        if r.is_err() && self.failed_at.get().is_none() {
            self.failed_at.set(Some(self.consumed.get()));
        }
        r
    }
}

/// A buffered reader that counts the bytes it hands out. The buffer sits inside the counter
/// (not on top of it) because serde_json reads one byte at a time, and the count must be of
/// bytes the parser consumed, not bytes read ahead.
struct MeteredReader<'m, R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    meter: &'m Meter,
}

impl<'m, R: Read> MeteredReader<'m, R> {
    fn new(inner: R, meter: &'m Meter) -> Self {
        MeteredReader { inner, buf: vec![0; CHUNK].into_boxed_slice(), pos: 0, filled: 0, meter }
    }

    /// Refills the buffer if it is empty; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.filled {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pos = 0;
                    self.filled = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Marks `n` buffered bytes as consumed.
    fn consume(&mut self, n: usize) -> io::Result<()> {
        let m = self.meter;
        let now = m.consumed.get() + n as u64;
        if now > m.limit.get() {
            m.over_limit.set(true);
            return Err(io::Error::new(io::ErrorKind::InvalidData, "record too large"));
        }
        if m.tapping.get() {
            m.tap.borrow_mut().extend_from_slice(&self.buf[self.pos..self.pos + n]);
        }
        m.consumed.set(now);
        self.pos += n;
        Ok(())
    }

    /// Skips a UTF-8 byte order mark at the start of the stream.
    fn skip_bom(&mut self) -> io::Result<()> {
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        for (i, want) in BOM.iter().enumerate() {
            if !self.fill()? || self.buf[self.pos] != *want {
                if i == 0 {
                    return Ok(());
                }
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated byte order mark",
                ));
            }
            self.consume(1)?;
        }
        Ok(())
    }

    /// Skips whitespace and returns the next byte without consuming it; `None` at end of input.
    fn peek_significant(&mut self) -> io::Result<Option<u8>> {
        loop {
            if !self.fill()? {
                return Ok(None);
            }
            match self.buf[self.pos] {
                b' ' | b'\t' | b'\n' | b'\r' => self.consume(1)?,
                b => return Ok(Some(b)),
            }
        }
    }
}

impl<R: Read> Read for MeteredReader<'_, R> {
    #[inline]
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.consume(n)?;
        Ok(n)
    }
}

/// The read in progress: where records go and how many went.
struct Run<'m, F> {
    meter: &'m Meter,
    emit: F,
    source: Sym,
    records: u64,
    stopped: bool,
}

impl<F: FnMut(RawRecord) -> ControlFlow<()>> Run<'_, F> {
    /// Hands one record to the caller; false if the caller asked to stop.
    fn emit(&mut self, bytes: impl Into<Bytes>, offset: u64) -> bool {
        self.records += 1;
        let origin = Origin { source: self.source.clone(), record: self.records, offset };
        let record = RawRecord { bytes: bytes.into(), origin, received: None };
        if (self.emit)(record).is_break() {
            self.stopped = true;
        }
        !self.stopped
    }

    fn io_error(&self, source: io::Error) -> CloudTrailReadError {
        let record = self.records + 1;
        if self.meter.over_limit.get() {
            let (offset, limit) = (self.meter.record_start.get(), self.meter.max_record);
            return CloudTrailReadError::RecordTooLarge { record, offset, limit };
        }
        CloudTrailReadError::Io { record, offset: self.meter.consumed.get(), source }
    }

    fn json_error(&self, source: serde_json::Error) -> CloudTrailReadError {
        if source.is_io() {
            return self.io_error(source.into());
        }
        let offset = self.meter.failed_at.get().unwrap_or(self.meter.consumed.get());
        CloudTrailReadError::Json { record: self.records + 1, offset, source }
    }
}

/// The error a visitor returns to unwind serde when the caller asked to stop; `Run::stopped`
/// tells it apart from a real error.
fn stop<E: de::Error>() -> E {
    E::custom("stopped by the caller")
}

/// Reads an array of records, emitting each element as it completes.
struct RecordsVisitor<'r, 'm, F> {
    run: &'r mut Run<'m, F>,
}

impl<'de, F: FnMut(RawRecord) -> ControlFlow<()>> de::Visitor<'de> for RecordsVisitor<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of CloudTrail records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let meter = self.run.meter;
        loop {
            // The limit is armed from here, so it also counts the separator; a few bytes of
            // slack on a 32 MiB cap.
            meter.start_record(false);
            let Some(raw) = meter.failed(seq.next_element::<Box<RawValue>>())? else {
                meter.end_record();
                return Ok(());
            };
            meter.end_record();
            // An element ends at its last byte (serde_json reads no further after `}`), so it
            // began exactly its length ago.
            let start = meter.consumed.get() - raw.get().len() as u64;
            let text: Box<str> = raw.into();
            if !self.run.emit(text.into_boxed_bytes(), start) {
                return Err(stop());
            }
        }
    }
}

/// A top-level object: the S3 envelope, or else a record in its own right.
enum Shape {
    Envelope,
    Record,
}

struct TopObjectVisitor<'r, 'm, F> {
    run: &'r mut Run<'m, F>,
}

impl<'de, F: FnMut(RawRecord) -> ControlFlow<()>> de::Visitor<'de> for TopObjectVisitor<'_, '_, F> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudTrail envelope or record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut shape = Shape::Record;
        let meter = self.run.meter;
        while let Some(key) = meter.failed(map.next_key::<TopKey>())? {
            match key {
                TopKey::Records if matches!(shape, Shape::Record) => {
                    // An envelope after all: its bytes so far are not a record.
                    self.run.meter.end_record();
                    self.run.meter.take_tap();
                    shape = Shape::Envelope;
                    meter.failed(map.next_value_seed(RecordsSeed { run: &mut *self.run }))?;
                    if self.run.stopped {
                        return Err(stop());
                    }
                }
                _ => {
                    meter.failed(map.next_value::<IgnoredAny>())?;
                }
            }
        }
        Ok(shape)
    }
}

/// Routes the envelope's `Records` value to [`RecordsVisitor`].
struct RecordsSeed<'r, 'm, F> {
    run: &'r mut Run<'m, F>,
}

impl<'de, F: FnMut(RawRecord) -> ControlFlow<()>> DeserializeSeed<'de> for RecordsSeed<'_, '_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(RecordsVisitor { run: self.run })
    }
}

/// A top-level key, told apart without allocating.
enum TopKey {
    Records,
    Other,
}

impl<'de> de::Deserialize<'de> for TopKey {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl de::Visitor<'_> for KeyVisitor {
            type Value = TopKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopKey, E> {
                Ok(if v == "Records" { TopKey::Records } else { TopKey::Other })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Vec<RawRecord>, Result<ReadSummary, CloudTrailReadError>) {
        let mut out = Vec::new();
        let r = read_records(input, Sym::from_static("t"), |rec| {
            out.push(rec);
            ControlFlow::Continue(())
        });
        (out, r)
    }

    fn texts(records: &[RawRecord]) -> Vec<&str> {
        records.iter().map(|r| std::str::from_utf8(&r.bytes).unwrap()).collect()
    }

    #[test]
    fn envelope_records_stream_with_offsets() {
        let input = br#"{"Records": [{"a":1}, {"b":[2]} ]}"#;
        let (recs, r) = read_all(input);
        assert_eq!(r.unwrap().records, 2);
        assert_eq!(texts(&recs), [r#"{"a":1}"#, r#"{"b":[2]}"#]);
        for rec in &recs {
            let at = rec.origin.offset as usize;
            assert_eq!(&input[at..at + rec.bytes.len()], &rec.bytes[..]);
        }
        assert_eq!(recs[1].origin.record, 2);
    }

    #[test]
    fn records_key_may_follow_other_keys() {
        let (recs, r) = read_all(br#"{"x":{"Records":[9]},"Records":[{"a":1}],"y":[1,2]}"#);
        assert_eq!(r.unwrap().records, 1);
        assert_eq!(texts(&recs), [r#"{"a":1}"#]);
    }

    #[test]
    fn empty_envelope_and_empty_input_give_no_records() {
        assert_eq!(read_all(br#"{"Records":[]}"#).1.unwrap().records, 0);
        assert_eq!(read_all(b"").1.unwrap().records, 0);
        assert_eq!(read_all(b" \n\t").1.unwrap().records, 0);
    }

    #[test]
    fn bom_and_whitespace_are_skipped_but_counted() {
        let (recs, r) = read_all(b"\xEF\xBB\xBF \n[ {\"a\":1} ]\n");
        assert_eq!(r.unwrap().records, 1);
        assert_eq!(recs[0].origin.offset, 7);
    }

    #[test]
    fn concatenated_objects_are_records() {
        let input = b"{\"a\":1}\n{\"b\":2}{\"c\":\"}\"}\r\n";
        let (recs, r) = read_all(input);
        assert_eq!(r.unwrap().records, 3);
        assert_eq!(texts(&recs), ["{\"a\":1}", "{\"b\":2}", "{\"c\":\"}\"}"]);
        assert_eq!(recs.iter().map(|r| r.origin.offset).collect::<Vec<_>>(), [0, 8, 15]);
    }

    #[test]
    fn top_level_scalar_is_not_cloudtrail() {
        let (_, r) = read_all(br#"  "hello""#);
        let err = r.unwrap_err();
        assert!(
            matches!(err, CloudTrailReadError::NotCloudTrail { offset: 2, found: "a string", .. }),
            "{err:?}"
        );
        assert_eq!(err.kind(), "not_cloudtrail");
    }

    #[test]
    fn broken_element_names_its_record_and_keeps_earlier_ones() {
        let input = br#"[{"a":1},{"b":2},{"c":tru},{"d":4}]"#;
        let (recs, r) = read_all(input);
        assert_eq!(recs.len(), 2);
        match r {
            Err(e @ CloudTrailReadError::Json { record: 3, offset, .. }) => {
                // `tru}`: the parser gives up on reading the `}`.
                assert_eq!(offset, 26);
                assert_eq!(e.records_emitted(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn break_stops_the_read() {
        let mut seen = 0;
        let r = read_records(&b"[{},{},{}]"[..], Sym::from_static("t"), |_| {
            seen += 1;
            if seen == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        assert_eq!(r.unwrap().records, 2);
        let r = read_records(&b"{\"Records\":[{},{},{}]}{}"[..], Sym::from_static("t"), |_| {
            ControlFlow::Break(())
        });
        assert_eq!(r.unwrap().records, 1);
    }

    #[test]
    fn oversized_record_is_an_error_not_an_allocation() {
        let input = format!("[{{}},{{\"a\":\"{}\"}}]", "x".repeat(2000));
        let mut n = 0;
        let r = read_capped(
            input.as_bytes(),
            Sym::from_static("t"),
            |_| {
                n += 1;
                ControlFlow::Continue(())
            },
            1000,
        );
        assert_eq!(n, 1);
        let err = r.unwrap_err();
        assert!(
            matches!(
                err,
                CloudTrailReadError::RecordTooLarge { record: 2, offset: 3, limit: 1000 }
            ),
            "{err:?}"
        );
        // The same for a top-level object that is a record, and none for an envelope.
        let ndjson = format!("{{}}\n{{\"a\":\"{}\"}}", "x".repeat(2000));
        let r = read_capped(
            ndjson.as_bytes(),
            Sym::from_static("t"),
            |_| ControlFlow::Continue(()),
            1000,
        );
        assert!(matches!(r, Err(CloudTrailReadError::RecordTooLarge { record: 2, .. })), "{r:?}");
        let envelope = format!("{{\"Records\":[{}]}}", "{},".repeat(600) + "{}");
        let r = read_capped(
            envelope.as_bytes(),
            Sym::from_static("t"),
            |_| ControlFlow::Continue(()),
            1000,
        );
        assert_eq!(r.unwrap().records, 601);
    }
}
