//! CloudTrail files streamed into one [`RawRecord`] per record, in bounded memory.
//!
//! Three shapes are accepted, after an optional UTF-8 byte order mark and whitespace: the S3
//! delivery envelope `{"Records":[...]}`, a bare JSON array of records (Stratus Red Team's
//! detonation logs), and JSON objects one after another (NDJSON or simply concatenated). The
//! shapes may follow one another in one stream, so `cat`-ed or multi-member gzip files work.
//!
//! This is a framer, not a parser: it finds where each record begins and ends by following
//! JSON's structure (strings, escapes, nesting), and leaves checking the record's content to
//! the parser, so one damaged record costs that record, not the rest of the file. Structural
//! damage (a bracket that closes the wrong thing, input ending inside a record) does end the
//! read, with the record index and byte offset.
//!
//! The contract, which the `cloudtrail_stream` fuzz target checks:
//!
//! - Records are handed over in order, numbered 1, 2, ... in `origin.record`;
//!   [`ReadSummary::records`], or [`CloudTrailReadError::records_emitted`] after an error,
//!   is how many were.
//! - A record's bytes are the input's own, at `origin.offset` (in the decompressed stream).
//! - A record is one value by structure: an object, array or string ending at the byte that
//!   closes it, with brackets outside strings matched and every string closed; or, as an
//!   array element, a scalar: the bytes up to whitespace, a `,` or `:`, a bracket or a quote.
//! - Nothing inside a record is checked: separators (a missing `,` or `:`), literals (`tru`),
//!   numbers, escapes and UTF-8 are the parser's to reject, and a record it rejects costs that
//!   record alone (counted as a parse failure), not the rest of the file.
//! - Input that is valid JSON of an accepted shape gives exactly the records a JSON parser
//!   sees: an array's elements; an envelope's `Records` elements (the first `Records` key,
//!   written without escapes, whose value is an array); any other object whole.
//!
//! A first version walked the stream with a serde `SeqAccess` over `serde_json`'s reader-based
//! deserializer; that reads byte by byte through `io::Read` and managed about 70 MB/s, against
//! about 1.3 GB/s for this framer on the same files, so records are now found in a buffer with
//! `memchr` and only the parser runs serde.
//!
//! Memory is bounded: the buffer holds at most the record being read plus one read-ahead chunk,
//! and a record larger than [`MAX_RECORD_BYTES`] is an error rather than an allocation.
//! Decompression is the caller's job (wrap the reader in `flate2::read::MultiGzDecoder`); a
//! truncated gzip member then surfaces here as an I/O error.

use std::io::{self, Read};
use std::ops::ControlFlow;

use bytes::Bytes;
use serde::de::Error as _;

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
        /// Byte offset in the stream of the byte where the structure broke.
        offset: u64,
        /// What is wrong, as a JSON error.
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
    let mut f = Framer {
        input: Window::new(reader, max_record),
        emit,
        source,
        records: 0,
        stack: Vec::new(),
    };
    match f.run() {
        Ok(()) | Err(Stop::Caller) => Ok(ReadSummary { records: f.records }),
        Err(stop) => Err(f.error(stop)),
    }
}

/// Why framing stopped before the end of input.
enum Stop {
    /// `emit` returned `Break`.
    Caller,
    /// The JSON structure broke at this buffer index.
    Broken { at: usize, problem: &'static str },
    /// A top-level value that no shape starts with, at this buffer index.
    NotCloudTrail { at: usize, found: &'static str },
    /// The current record outgrew the cap.
    TooLarge,
    /// The reader failed.
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// A read buffer over the input that keeps bytes from `start` on (the record being framed)
/// and may drop everything before it.
struct Window<R> {
    inner: R,
    /// Always fully initialized; bytes past `filled` are stale. Keeping it initialized means
    /// a refill never zeroes memory before reading into it (that memset was 4% of a read).
    buf: Vec<u8>,
    /// End of the valid bytes in `buf`.
    filled: usize,
    /// First byte still needed; only meaningful while `keep` is set.
    start: usize,
    /// Next byte to look at.
    pos: usize,
    /// Whether bytes from `start` must be kept (a record, or what may turn out to be one).
    keep: bool,
    /// Stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    max_record: u64,
}

impl<R: Read> Window<R> {
    fn new(inner: R, max_record: u64) -> Self {
        Window {
            inner,
            buf: Vec::new(),
            filled: 0,
            start: 0,
            pos: 0,
            keep: false,
            base: 0,
            eof: false,
            max_record,
        }
    }

    /// Stream offset of a buffer index.
    fn offset(&self, at: usize) -> u64 {
        self.base + at as u64
    }

    /// Starts keeping bytes at the current position.
    fn keep_from_here(&mut self) {
        self.start = self.pos;
        self.keep = true;
    }

    /// Ensures `buf[pos]` exists, reading more if needed; false at end of input.
    #[inline]
    fn more(&mut self) -> Result<bool, Stop> {
        if self.pos < self.filled {
            return Ok(true);
        }
        self.refill()
    }

    #[cold]
    fn refill(&mut self) -> Result<bool, Stop> {
        if self.eof {
            return Ok(false);
        }
        let keep_from = if self.keep { self.start } else { self.pos };
        if self.keep && (self.pos - self.start) as u64 > self.max_record {
            return Err(Stop::TooLarge);
        }
        if keep_from > 0 {
            // Moves only the kept part of a record; a record spanning many reads starts at 0
            // after its first refill, so it is never moved twice.
            self.buf.copy_within(keep_from..self.filled, 0);
            self.filled -= keep_from;
            self.base += keep_from as u64;
            self.pos -= keep_from;
            self.start = self.start.saturating_sub(keep_from);
        }
        if self.buf.len() > 16 * CHUNK && self.filled < CHUNK {
            // A huge record has passed: give its memory back.
            self.buf.truncate(2 * CHUNK);
            self.buf.shrink_to_fit();
        }
        let len = self.filled;
        if self.buf.len() < len + CHUNK {
            self.buf.resize(len + CHUNK, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.buf[len..len + CHUNK]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Io(e)),
            }
        };
        self.filled = len + n;
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// The next byte, without consuming it; `None` at end of input.
    #[inline]
    fn peek(&mut self) -> Result<Option<u8>, Stop> {
        Ok(if self.more()? { Some(self.buf[self.pos]) } else { None })
    }

    /// Skips whitespace; returns the next byte, not consumed.
    fn skip_ws(&mut self) -> Result<Option<u8>, Stop> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                other => return Ok(other),
            }
        }
    }

    /// Skips a UTF-8 byte order mark at the start of the stream.
    fn skip_bom(&mut self) -> Result<(), Stop> {
        for (i, want) in [0xEF, 0xBB, 0xBF].into_iter().enumerate() {
            match self.peek()? {
                Some(b) if b == want => self.pos += 1,
                _ if i == 0 => return Ok(()),
                _ => {
                    return Err(Stop::Broken {
                        at: self.pos,
                        problem: "truncated byte order mark",
                    });
                }
            }
        }
        Ok(())
    }

    /// Skips a string; `pos` is on its opening quote and ends just past the closing one.
    fn skip_string(&mut self) -> Result<(), Stop> {
        self.pos += 1;
        loop {
            if !self.more()? {
                return Err(Stop::Broken { at: self.pos, problem: "input ends inside a string" });
            }
            match memchr::memchr2(b'"', b'\\', &self.buf[self.pos..self.filled]) {
                None => self.pos = self.filled,
                Some(i) => {
                    self.pos += i + 1;
                    if self.buf[self.pos - 1] == b'"' {
                        return Ok(());
                    }
                    // A backslash: the next byte is escaped, whatever it is.
                    if !self.more()? {
                        let problem = "input ends inside a string";
                        return Err(Stop::Broken { at: self.pos, problem });
                    }
                    self.pos += 1;
                }
            }
        }
    }

    /// Skips one JSON value starting at `pos` (not whitespace), checking only its structure.
    /// `stack` is scratch space for the open brackets.
    fn skip_value(&mut self, stack: &mut Vec<u8>) -> Result<(), Stop> {
        match self.peek()? {
            None => {
                let problem = "input ends where a value should be";
                return Err(Stop::Broken { at: self.pos, problem });
            }
            Some(b'"' | b'{' | b'[') => {}
            Some(b'}' | b']' | b',' | b':') => {
                return Err(Stop::Broken { at: self.pos, problem: "expected a value" });
            }
            Some(_) => {
                // A scalar (number, true, false, null) ends at whitespace or a delimiter.
                loop {
                    let rest = &self.buf[self.pos..self.filled];
                    match rest.iter().position(|c| SCALAR_END[usize::from(*c)]) {
                        Some(i) => {
                            self.pos += i;
                            return Ok(());
                        }
                        None => self.pos = self.filled,
                    }
                    if !self.more()? {
                        return Ok(());
                    }
                }
            }
        }
        stack.clear();
        loop {
            let Some(b) = self.peek()? else {
                return Err(Stop::Broken { at: self.pos, problem: "input ends inside a record" });
            };
            match b {
                b'"' => self.skip_string()?,
                b'{' => {
                    stack.push(b'}');
                    self.pos += 1;
                }
                b'[' => {
                    stack.push(b']');
                    self.pos += 1;
                }
                b'}' | b']' => {
                    if stack.pop() != Some(b) {
                        let problem = "a bracket closes what it did not open";
                        return Err(Stop::Broken { at: self.pos, problem });
                    }
                    self.pos += 1;
                }
                _ => {
                    // Scalars and separators inside a container: jump to the next byte that
                    // matters (at least this one, which is not structural).
                    let rest = &self.buf[self.pos..self.filled];
                    self.pos +=
                        rest.iter().position(|c| STRUCTURAL[usize::from(*c)]).unwrap_or(rest.len());
                    continue;
                }
            }
            if stack.is_empty() {
                return Ok(());
            }
        }
    }
}

/// Bytes that change the framer's state inside a value.
const STRUCTURAL: [bool; 256] = table(b"\"{}[]");
/// Bytes that end a scalar: whitespace, separators, and the bytes that open or close a string
/// or container. A quote or bracket in a scalar's place is structural damage, and ends the
/// read where it stands; letting it run on inside the scalar, as the first version did, made
/// `{"a":0c"}` one record here while the same object inside an array ended the read (issue
/// 15, found by the `cloudtrail_stream` fuzz target).
const SCALAR_END: [bool; 256] = table(b" \t\r\n,]}:\"{[");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// The read in progress.
struct Framer<R, F> {
    input: Window<R>,
    emit: F,
    source: Sym,
    records: u64,
    stack: Vec<u8>,
}

impl<R: Read, F: FnMut(RawRecord) -> ControlFlow<()>> Framer<R, F> {
    fn run(&mut self) -> Result<(), Stop> {
        self.input.skip_bom()?;
        while let Some(b) = self.input.skip_ws()? {
            match b {
                b'[' => {
                    self.input.pos += 1;
                    self.elements()?;
                }
                b'{' => self.top_object()?,
                other => {
                    return Err(Stop::NotCloudTrail { at: self.input.pos, found: describe(other) });
                }
            }
        }
        Ok(())
    }

    /// Hands `buf[start..pos]` to the caller as the next record.
    fn emit_kept(&mut self) -> Result<(), Stop> {
        let w = &mut self.input;
        w.keep = false;
        if (w.pos - w.start) as u64 > w.max_record {
            return Err(Stop::TooLarge);
        }
        self.records += 1;
        let origin =
            Origin { source: self.source.clone(), record: self.records, offset: w.offset(w.start) };
        let bytes = Bytes::copy_from_slice(&w.buf[w.start..w.pos]);
        match (self.emit)(RawRecord { bytes, origin, received: None }) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(Stop::Caller),
        }
    }

    /// The elements of an array whose `[` was consumed, through its `]`.
    fn elements(&mut self) -> Result<(), Stop> {
        let w = &mut self.input;
        if w.skip_ws()? == Some(b']') {
            w.pos += 1;
            return Ok(());
        }
        loop {
            if self.input.skip_ws()?.is_none() {
                let at = self.input.pos;
                return Err(Stop::Broken { at, problem: "input ends inside an array" });
            }
            self.input.keep_from_here();
            self.input.skip_value(&mut self.stack)?;
            self.emit_kept()?;
            match self.input.skip_ws()? {
                Some(b',') => self.input.pos += 1,
                Some(b']') => {
                    self.input.pos += 1;
                    return Ok(());
                }
                Some(_) => {
                    let at = self.input.pos;
                    return Err(Stop::Broken { at, problem: "expected `,` or `]` after a record" });
                }
                None => {
                    let at = self.input.pos;
                    return Err(Stop::Broken { at, problem: "input ends inside an array" });
                }
            }
        }
    }

    /// A top-level object: the S3 envelope if it has a `Records` array, else a record itself.
    /// Its bytes are kept until that is known.
    fn top_object(&mut self) -> Result<(), Stop> {
        self.input.keep_from_here();
        self.input.pos += 1;
        let mut envelope = false;
        let mut first = true;
        loop {
            let w = &mut self.input;
            match w.skip_ws()? {
                Some(b'}') if first => break,
                Some(b'"') => {}
                Some(_) => return Err(Stop::Broken { at: w.pos, problem: "expected a key" }),
                None => {
                    return Err(Stop::Broken { at: w.pos, problem: "input ends inside an object" });
                }
            }
            first = false;
            // A stream offset, not an index: a refill inside the key moves the buffer.
            let key_at = w.offset(w.pos);
            w.skip_string()?;
            // Only compared before the shape is known, while the bytes are still kept.
            let is_records =
                !envelope && &w.buf[(key_at - w.base) as usize..w.pos] == b"\"Records\"";
            if w.skip_ws()? != Some(b':') {
                return Err(Stop::Broken { at: w.pos, problem: "expected `:` after a key" });
            }
            w.pos += 1;
            let value = w.skip_ws()?;
            if is_records && value == Some(b'[') {
                // An envelope after all: what was kept is not a record.
                envelope = true;
                w.keep = false;
                w.pos += 1;
                self.elements()?;
            } else {
                if value.is_none() {
                    return Err(Stop::Broken { at: w.pos, problem: "input ends inside an object" });
                }
                w.skip_value(&mut self.stack)?;
            }
            let w = &mut self.input;
            match w.skip_ws()? {
                Some(b',') => w.pos += 1,
                Some(b'}') => break,
                Some(_) => return Err(Stop::Broken { at: w.pos, problem: "expected `,` or `}`" }),
                None => {
                    return Err(Stop::Broken { at: w.pos, problem: "input ends inside an object" });
                }
            }
        }
        self.input.pos += 1;
        if envelope { Ok(()) } else { self.emit_kept() }
    }

    fn error(&self, stop: Stop) -> CloudTrailReadError {
        let record = self.records + 1;
        let w = &self.input;
        match stop {
            // Not reached: `read_capped` turns a caller's stop into a summary first.
            Stop::Caller => CloudTrailReadError::Io {
                record,
                offset: w.offset(w.pos),
                source: io::Error::other("stopped by the caller"),
            },
            Stop::Broken { at, problem } => CloudTrailReadError::Json {
                record,
                offset: w.offset(at),
                source: serde_json::Error::custom(problem),
            },
            Stop::NotCloudTrail { at, found } => {
                CloudTrailReadError::NotCloudTrail { record, offset: w.offset(at), found }
            }
            Stop::TooLarge => CloudTrailReadError::RecordTooLarge {
                record,
                offset: w.offset(w.start),
                limit: w.max_record,
            },
            Stop::Io(source) => {
                CloudTrailReadError::Io { record, offset: w.offset(w.filled), source }
            }
        }
    }
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
    fn broken_structure_names_its_record_and_keeps_earlier_ones() {
        let input = br#"[{"a":1},{"b":2},{"c":[1}},{"d":4}]"#;
        let (recs, r) = read_all(input);
        assert_eq!(recs.len(), 2);
        match r {
            Err(e @ CloudTrailReadError::Json { record: 3, offset, .. }) => {
                // The `}` that tries to close the `[`.
                assert_eq!(offset, 24);
                assert_eq!(e.records_emitted(), 2);
                assert_eq!(e.kind(), "invalid_json");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_ending_inside_a_record_is_an_error() {
        let (recs, r) = read_all(b"{\"Records\":[{\"a\":1},{\"b\":\"x\\\"");
        assert_eq!(recs.len(), 1);
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 2, offset: 29, .. })), "{r:?}");
        let (recs, r) = read_all(b"[{}, ");
        assert_eq!(recs.len(), 1);
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 2, .. })), "{r:?}");
    }

    /// Parses `rec` as CloudTrail and returns the error's kind.
    fn parser_rejects(rec: &RawRecord) -> &'static str {
        use crate::parse::Parser;
        let r = crate::parse::cloudtrail::CloudTrailParser::default().parse(rec, &mut Vec::new());
        r.expect_err("the parser must reject it").kind()
    }

    #[test]
    fn issue_15_a_missing_comma_inside_a_record_costs_that_record_only() {
        // The tester's case: the framer hands the record over (its structure is whole), the
        // parser rejects it, and the next record is read.
        let (recs, r) = read_all(br#"[{"a":1 "b":2},{"eventName":"x"}]"#);
        assert_eq!(r.unwrap().records, 2);
        assert_eq!(texts(&recs), [r#"{"a":1 "b":2}"#, r#"{"eventName":"x"}"#]);
        assert_eq!(parser_rejects(&recs[0]), "invalid_json");
        assert_eq!(recs[1].origin.offset, 15);
    }

    #[test]
    fn issue_15_fuzz_inputs_frame_by_structure_and_the_parser_rejects_the_content() {
        // The first crash of the old target: a literal no JSON has.
        let (recs, r) = read_all(br#"[{"eventName":"x","a":!,"b":[2,3]}]"#);
        assert_eq!(r.unwrap().records, 1);
        assert_eq!(parser_rejects(&recs[0]), "invalid_json");
        // Its minimized form: a NUL byte as a scalar element, then the end of input.
        let (recs, r) = read_all(b"[\0");
        assert_eq!(texts(&recs), ["\0"]);
        assert_eq!(parser_rejects(&recs[0]), "invalid_json");
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 2, offset: 2, .. })), "{r:?}");
        // Invalid UTF-8 inside a string: framed, and rejected by the parser.
        let (recs, r) = read_all(b"[{\"a\":\"\xff\"},{}]");
        assert_eq!(r.unwrap().records, 2);
        assert_eq!(parser_rejects(&recs[0]), "invalid_utf8");
    }

    #[test]
    fn issue_15_a_quote_in_a_scalars_place_ends_the_read_wherever_it_stands() {
        // Found by the new target: a top-level object's scalar value ran on through the
        // quote, so this was one record, while inside an array the quote opened a string.
        let input = b"{\"a\":0\x0f\0\0c\"}]\xc7:\"c\"}]\":0\x0f\0\0    \"}]}";
        let (recs, r) = read_all(input);
        assert!(recs.is_empty(), "{:?}", texts(&recs));
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 1, offset: 10, .. })), "{r:?}");
        let (recs, r) = read_all(br#"{"a":0c"}"#);
        assert!(recs.is_empty());
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 1, offset: 7, .. })), "{r:?}");
        // An array element: the scalar before the quote is a record, then the read ends.
        let (recs, r) = read_all(br#"[1"a"]"#);
        assert_eq!(texts(&recs), ["1"]);
        assert!(matches!(r, Err(CloudTrailReadError::Json { record: 2, offset: 2, .. })), "{r:?}");
        let (recs, r) = read_all(br#"[tru{}]"#);
        assert_eq!(texts(&recs), ["tru"]);
        assert!(r.is_err());
    }

    #[test]
    fn damaged_content_is_left_to_the_parser() {
        // Framing follows structure only: `tru` is the parser's problem, and costs one record.
        let (recs, r) = read_all(br#"[{"a":1},{"c":tru},{"d":[4,"]"]}]"#);
        assert_eq!(r.unwrap().records, 3);
        assert_eq!(texts(&recs), [r#"{"a":1}"#, r#"{"c":tru}"#, r#"{"d":[4,"]"]}"#]);
    }

    #[test]
    fn records_split_across_tiny_reads_frame_the_same() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let input: &[u8] =
            b"\xEF\xBB\xBF{\"x\":\"\\\"}\",\"Records\":[{\"a\":\"b\\\\\"} , 12 ]}\n{\"k\":-1.5e3}[7]";
        let (whole, r) = read_all(input);
        assert_eq!(r.unwrap().records, 4);
        let mut split = Vec::new();
        let r = read_records(Trickle(input), Sym::from_static("t"), |rec| {
            split.push(rec);
            ControlFlow::Continue(())
        });
        assert_eq!(r.unwrap().records, 4);
        assert_eq!(texts(&whole), texts(&split));
        assert_eq!(texts(&whole), [r#"{"a":"b\\"}"#, "12", r#"{"k":-1.5e3}"#, "7"]);
        let offsets = |v: &[RawRecord]| v.iter().map(|r| r.origin.offset).collect::<Vec<_>>();
        assert_eq!(offsets(&whole), offsets(&split));
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
                CloudTrailReadError::RecordTooLarge { record: 2, offset: 4, limit: 1000 }
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
