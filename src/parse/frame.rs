//! Framing: newline-delimited and RFC 6587 octet-counted records, as tokio-util codecs.
//!
//! Both decoders obey one contract: every record in the input produces exactly one [`Frame`],
//! in order, whatever the read boundaries; a record over the size limit or a broken octet count
//! produces a [`Frame`] that says so (with the first bytes kept for the dead-letter file) and
//! decoding carries on with the next record. Nothing is skipped without a frame to count it, and
//! the decoder never returns an error for bad input, because a `FramedRead` ends its stream at
//! the first error, and one bad line must not end a connection or a file.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// One framed unit of input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete record, without its delimiter.
    Record(Bytes),
    /// A record longer than the limit: its first `limit` bytes and its full length.
    TooLong {
        /// The first bytes of the record.
        head: Bytes,
        /// The record's full length in bytes.
        len: usize,
    },
    /// Bytes where an octet count was expected (skipped up to the next newline).
    Malformed {
        /// The skipped bytes, up to the limit.
        head: Bytes,
        /// How many bytes were skipped.
        len: usize,
    },
}

/// Default largest record: rsyslog's default `maxMessageSize` is 8 KiB; allow more since
/// CloudTrail-as-syslog and JSON lines run longer.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// Newline-delimited records with a maximum length; strips a trailing `\r`.
#[derive(Clone, Debug)]
pub struct NewlineFramer {
    max: usize,
    /// Where to resume the newline search, so a long partial line is not rescanned per read.
    scanned: usize,
    /// Set while discarding the rest of an over-long line: its head and length so far.
    discarding: Option<(Bytes, usize)>,
}

impl NewlineFramer {
    /// A framer that reports records longer than `max` bytes as [`Frame::TooLong`].
    pub fn new(max: usize) -> Self {
        NewlineFramer { max: max.max(1), scanned: 0, discarding: None }
    }
}

impl Default for NewlineFramer {
    fn default() -> Self {
        NewlineFramer::new(DEFAULT_MAX_RECORD_BYTES)
    }
}

fn trim_cr(mut line: BytesMut) -> Bytes {
    if line.last() == Some(&b'\r') {
        line.truncate(line.len() - 1);
    }
    line.freeze()
}

impl Decoder for NewlineFramer {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        loop {
            let newline = memchr::memchr(b'\n', &buf[self.scanned..]).map(|i| i + self.scanned);
            if let Some((head, len)) = self.discarding.take() {
                match newline {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.scanned = 0;
                        return Ok(Some(Frame::TooLong { head, len: len + i }));
                    }
                    None => {
                        let n = buf.len();
                        buf.advance(n);
                        self.scanned = 0;
                        self.discarding = Some((head, len + n));
                        return Ok(None);
                    }
                }
            }
            match newline {
                Some(i) if i <= self.max => {
                    let line = buf.split_to(i + 1);
                    self.scanned = 0;
                    let mut line = line;
                    line.truncate(i);
                    return Ok(Some(Frame::Record(trim_cr(line))));
                }
                Some(_) | None if buf.len() > self.max => {
                    // Over the limit, newline or not: keep the head, discard the rest.
                    let head = buf.split_to(self.max).freeze();
                    self.scanned = 0;
                    self.discarding = Some((head, self.max));
                    continue;
                }
                _ => {
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if let Some((head, len)) = self.discarding.take() {
            let n = buf.len();
            buf.advance(n);
            return Ok(Some(Frame::TooLong { head, len: len + n }));
        }
        self.scanned = 0;
        if buf.is_empty() {
            return Ok(None);
        }
        // The last line of a file often lacks its newline (loghub's do): it is still a record.
        let n = buf.len();
        Ok(Some(Frame::Record(trim_cr(buf.split_to(n)))))
    }
}

/// RFC 6587 octet counting: `LEN SP MSG`, as rsyslog and syslog-ng send over TCP with
/// `framing octet-counted`. Tolerates newlines between frames (some senders add them).
#[derive(Clone, Debug)]
pub struct OctetCountingFramer {
    max: usize,
    state: OctetState,
}

#[derive(Clone, Debug)]
enum OctetState {
    /// Expecting the length digits.
    Header,
    /// Reading a record of this many bytes.
    Body(usize),
    /// Discarding the remainder of an over-long record.
    Skipping { head: Bytes, len: usize, remaining: usize },
    /// Discarding garbage up to the next newline.
    Resync { head: Bytes, len: usize },
}

/// A length header longer than this many digits is garbage (10 digits > 4 GB).
const MAX_LEN_DIGITS: usize = 10;

impl OctetCountingFramer {
    /// A framer that reports records longer than `max` bytes as [`Frame::TooLong`].
    pub fn new(max: usize) -> Self {
        OctetCountingFramer { max: max.max(1), state: OctetState::Header }
    }
}

impl Default for OctetCountingFramer {
    fn default() -> Self {
        OctetCountingFramer::new(DEFAULT_MAX_RECORD_BYTES)
    }
}

impl Decoder for OctetCountingFramer {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        loop {
            match std::mem::replace(&mut self.state, OctetState::Header) {
                OctetState::Header => {
                    // Separators some senders put between frames.
                    let skip = buf.iter().take_while(|b| matches!(b, b'\n' | b'\r')).count();
                    buf.advance(skip);
                    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
                    if digits == buf.len() && digits <= MAX_LEN_DIGITS {
                        return Ok(None); // need more bytes to see the end of the count
                    }
                    if digits == 0
                        || digits > MAX_LEN_DIGITS
                        || buf[digits] != b' '
                        || buf[0] == b'0'
                    {
                        self.state = OctetState::Resync { head: Bytes::new(), len: 0 };
                        continue;
                    }
                    // All digits, at most 10 of them, so this parse cannot overflow u64.
                    let len = buf[..digits].iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
                    buf.advance(digits + 1);
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    if len > self.max {
                        self.state =
                            OctetState::Skipping { head: Bytes::new(), len, remaining: len };
                    } else {
                        self.state = OctetState::Body(len);
                    }
                }
                OctetState::Body(len) => {
                    if buf.len() < len {
                        buf.reserve(len - buf.len());
                        self.state = OctetState::Body(len);
                        return Ok(None);
                    }
                    let record = buf.split_to(len).freeze();
                    return Ok(Some(Frame::Record(record)));
                }
                OctetState::Skipping { mut head, len, remaining } => {
                    if head.len() < self.max {
                        let want = (self.max - head.len()).min(buf.len()).min(remaining);
                        let mut h = BytesMut::from(&head[..]);
                        h.extend_from_slice(&buf[..want]);
                        head = h.freeze();
                    }
                    let n = remaining.min(buf.len());
                    buf.advance(n);
                    if n == remaining {
                        return Ok(Some(Frame::TooLong { head, len }));
                    }
                    self.state = OctetState::Skipping { head, len, remaining: remaining - n };
                    return Ok(None);
                }
                OctetState::Resync { mut head, len } => {
                    let newline = memchr::memchr(b'\n', buf);
                    let n = newline.unwrap_or(buf.len());
                    if head.len() < self.max {
                        let want = (self.max - head.len()).min(n);
                        let mut h = BytesMut::from(&head[..]);
                        h.extend_from_slice(&buf[..want]);
                        head = h.freeze();
                    }
                    match newline {
                        Some(i) => {
                            buf.advance(i + 1);
                            return Ok(Some(Frame::Malformed { head, len: len + i }));
                        }
                        None => {
                            buf.advance(n);
                            self.state = OctetState::Resync { head, len: len + n };
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match std::mem::replace(&mut self.state, OctetState::Header) {
            OctetState::Header if buf.is_empty() => Ok(None),
            OctetState::Header => {
                // A dangling count with no body.
                let head = buf.split().freeze();
                let len = head.len();
                Ok(Some(Frame::Malformed { head, len }))
            }
            OctetState::Body(_) => {
                // The peer closed mid-record: surface what arrived rather than lose it silently.
                let head = buf.split().freeze();
                let len = head.len();
                Ok(Some(Frame::Malformed { head, len }))
            }
            // Cut off by EOF: say how many bytes actually arrived, like a truncated body.
            OctetState::Skipping { head, len, remaining } => {
                Ok(Some(Frame::Malformed { head, len: len - remaining }))
            }
            OctetState::Resync { head, len } => Ok(Some(Frame::Malformed { head, len })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs a decoder over `input` delivered in the given chunks, then EOF.
    fn run<D: Decoder<Item = Frame, Error = std::io::Error>>(
        mut d: D,
        chunks: &[&[u8]],
    ) -> Vec<Frame> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // The contract is that decoding never errors, so an Err fails the test.
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(f) = d.decode(&mut buf).unwrap_or_else(|e| panic!("decode: {e}")) {
                out.push(f);
            }
        }
        while let Some(f) = d.decode_eof(&mut buf).unwrap_or_else(|e| panic!("decode_eof: {e}")) {
            out.push(f);
        }
        out
    }

    /// Feeds `input` cut at every offset (two pieces), and byte by byte, and in one piece, and
    /// demands identical frames every time.
    fn split_invariant<D: Decoder<Item = Frame, Error = std::io::Error> + Clone>(
        d: D,
        input: &[u8],
    ) -> Vec<Frame> {
        let whole = run(d.clone(), &[input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(run(d.clone(), &[a, b]), whole, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(d, &bytes), whole, "byte by byte");
        whole
    }

    fn rec(s: &str) -> Frame {
        Frame::Record(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn newline_frames_split_at_every_offset() {
        let frames = split_invariant(NewlineFramer::new(16), b"one\r\ntwo\n\nthree-no-newline");
        assert_eq!(frames, vec![rec("one"), rec("two"), rec(""), rec("three-no-newline")]);
    }

    #[test]
    fn newline_recovers_after_an_overlong_line() {
        let input = b"short\nthis line is far too long for the limit\nnext\n";
        let frames = split_invariant(NewlineFramer::new(8), input);
        assert_eq!(
            frames,
            vec![
                rec("short"),
                Frame::TooLong { head: Bytes::from_static(b"this lin"), len: 39 },
                rec("next"),
            ]
        );
    }

    #[test]
    fn newline_overlong_last_line_without_newline_is_reported() {
        let frames = split_invariant(NewlineFramer::new(4), b"ok\n0123456789");
        assert_eq!(
            frames,
            vec![rec("ok"), Frame::TooLong { head: Bytes::from_static(b"0123"), len: 10 }]
        );
    }

    #[test]
    fn newline_line_of_exactly_the_limit_is_a_record() {
        let frames = split_invariant(NewlineFramer::new(4), b"abcd\nabcde\n");
        assert_eq!(
            frames,
            vec![rec("abcd"), Frame::TooLong { head: Bytes::from_static(b"abcd"), len: 5 }]
        );
    }

    #[test]
    fn octet_frames_split_at_every_offset() {
        let input = b"5 hello11 hello\nworld\n3 abc";
        let frames = split_invariant(OctetCountingFramer::new(64), input);
        assert_eq!(frames, vec![rec("hello"), rec("hello\nworld"), rec("abc")]);
    }

    #[test]
    fn octet_oversized_record_is_skipped_by_its_count() {
        let input = b"12 0123456789ab2 ok";
        let frames = split_invariant(OctetCountingFramer::new(4), input);
        assert_eq!(
            frames,
            vec![Frame::TooLong { head: Bytes::from_static(b"0123"), len: 12 }, rec("ok")]
        );
    }

    #[test]
    fn octet_garbage_resyncs_at_next_newline() {
        let input = b"<13>not counted\n4 good";
        let frames = split_invariant(OctetCountingFramer::new(64), input);
        assert_eq!(
            frames,
            vec![
                Frame::Malformed { head: Bytes::from_static(b"<13>not counted"), len: 15 },
                rec("good")
            ]
        );
    }

    #[test]
    fn octet_truncated_body_at_eof_is_reported() {
        let frames = split_invariant(OctetCountingFramer::new(64), b"3 abc10 short");
        assert_eq!(
            frames,
            vec![rec("abc"), Frame::Malformed { head: Bytes::from_static(b"short"), len: 5 }]
        );
    }

    fn input_len(frames: &[Frame]) -> usize {
        frames
            .iter()
            .map(|f| match f {
                Frame::Record(b) => b.len(),
                Frame::TooLong { len, .. } | Frame::Malformed { len, .. } => *len,
            })
            .sum()
    }

    proptest! {
        #[test]
        fn newline_never_panics_and_is_split_invariant(input in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..200, max in 1usize..40) {
            let cut = cut.min(input.len());
            let whole = run(NewlineFramer::new(max), &[&input]);
            let (a, b) = input.split_at(cut);
            prop_assert_eq!(run(NewlineFramer::new(max), &[a, b]), whole.clone());
            // One frame per line: the count of newlines, plus a final unterminated line.
            let lines = input.iter().filter(|&&b| b == b'\n').count() + usize::from(input.last().is_some_and(|&b| b != b'\n'));
            prop_assert_eq!(whole.len(), lines);
        }

        #[test]
        fn octet_never_panics_and_is_split_invariant(input in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\n'), b'0'..=b'9', any::<u8>()], 0..200), cut in 0usize..200, max in 1usize..40) {
            let cut = cut.min(input.len());
            let whole = run(OctetCountingFramer::new(max), &[&input]);
            let (a, b) = input.split_at(cut);
            prop_assert_eq!(run(OctetCountingFramer::new(max), &[a, b]), whole.clone());
            prop_assert!(input_len(&whole) <= input.len());
        }
    }
}
