//! Reading a file (or any byte stream) once from start to end, framed into records.

use std::io::Read;
use std::ops::ControlFlow;

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{Origin, RawRecord};
use crate::event::Sym;
use crate::ledger::Quarantined;
use crate::parse::frame::{Frame, NewlineFramer};

/// Bytes requested from the reader per read call.
const READ_CHUNK: usize = 256 * 1024;

/// What framing yields: a record to parse, or one already set aside.
#[derive(Debug)]
pub enum Framed {
    /// A record for the parser.
    Record(RawRecord),
    /// A record that could not be framed (too long), already located for the ledger.
    Bad(Quarantined, bytes::Bytes),
}

/// Reads `reader` to its end, framing newline-delimited records of at most `max_record_bytes`,
/// and hands each to `emit` in order. An I/O error (a truncated gzip stream) ends the read,
/// after one [`Framed::Bad`] of kind `truncated` (carrying the torn last line, if any), so a
/// cut-off input is never mistaken for a complete one.
pub fn read_lines<R: Read>(
    mut reader: R,
    source: &Sym,
    max_record_bytes: usize,
    mut emit: impl FnMut(Framed) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut framer = NewlineFramer::new(max_record_bytes);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut line = 0u64;
    // Stream positions: bytes appended to `buf` so far, and where the next record starts.
    // A frame's extent is whatever the decoder consumed, so offsets stay exact across
    // stripped `\r`s and discarded over-long lines.
    let mut appended = 0u64;
    let mut start = 0u64;
    let to_item = |frame: Frame, line: &mut u64, offset: u64| -> Framed {
        *line += 1;
        let origin = Origin { source: source.clone(), record: *line, offset };
        let bad = |kind, detail, head| {
            Framed::Bad(
                Quarantined { unit: "line", number: origin.record, offset, kind, detail },
                head,
            )
        };
        match frame {
            Frame::Record(bytes) => Framed::Record(RawRecord { bytes, origin, received: None }),
            Frame::TooLong { head, len } => bad(
                "line_too_long",
                format!("line of {len} bytes exceeds the limit of {max_record_bytes}"),
                head,
            ),
            Frame::Malformed { head, .. } => bad("malformed_frame", "malformed frame".into(), head),
        }
    };
    loop {
        let filled = buf.len();
        buf.resize(filled + READ_CHUNK, 0);
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                buf.truncate(filled);
                continue;
            }
            Err(e) => {
                buf.truncate(filled);
                // Frame what arrived: complete lines are records, the torn tail is bad.
                while let Ok(Some(frame)) = framer.decode(&mut buf) {
                    let item = to_item(frame, &mut line, start);
                    start = appended - buf.len() as u64;
                    if emit(item).is_break() {
                        return Ok(());
                    }
                }
                // Always say so, even when the cut fell on a line boundary: a truncated gzip
                // must never look like a complete file.
                line += 1;
                let detail = if buf.is_empty() {
                    format!("input ended early, after line {}: {e}", line - 1)
                } else {
                    format!("input ended inside this line: {e}")
                };
                let q = Quarantined {
                    unit: "line",
                    number: line,
                    offset: start,
                    kind: "truncated",
                    detail,
                };
                let _ = emit(Framed::Bad(q, buf.split().freeze()));
                return Err(e);
            }
        };
        buf.truncate(filled + n);
        appended += n as u64;
        let at_eof = n == 0;
        loop {
            let frame = if at_eof { framer.decode_eof(&mut buf) } else { framer.decode(&mut buf) };
            let Ok(Some(frame)) = frame else { break };
            let item = to_item(frame, &mut line, start);
            start = appended - buf.len() as u64;
            if emit(item).is_break() {
                return Ok(());
            }
        }
        if at_eof {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, offset, text) of each record, and (line, reason) of each bad one.
    type Collected = (Vec<(u64, u64, String)>, Vec<(u64, &'static str)>);

    fn collect(input: &[u8], max: usize) -> Collected {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        let src = Sym::from_static("t");
        let _ = read_lines(input, &src, max, |f| {
            match f {
                Framed::Record(r) => good.push((
                    r.origin.record,
                    r.origin.offset,
                    String::from_utf8_lossy(&r.bytes).into_owned(),
                )),
                Framed::Bad(q, _) => bad.push((q.number, q.kind)),
            }
            ControlFlow::Continue(())
        });
        (good, bad)
    }

    #[test]
    fn numbers_lines_and_offsets() {
        let (good, bad) = collect(b"a\nbb\r\n\nccc", 16);
        assert_eq!(
            good,
            vec![(1, 0, "a".into()), (2, 2, "bb".into()), (3, 6, "".into()), (4, 7, "ccc".into())]
        );
        assert!(bad.is_empty());
    }

    #[test]
    fn overlong_lines_are_set_aside_and_counted_in_place() {
        let (good, bad) = collect(b"ok\nwaytoolong\nok2\n", 4);
        assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(good[1].1, 14);
        assert_eq!(bad, vec![(2, "line_too_long")]);
    }

    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "truncated gzip",
                ));
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_counts_the_torn_last_line() {
        let src = Sym::from_static("t");
        let mut seen = Vec::new();
        let r = read_lines(Failing(b"one\ntwo\nthr"), &src, 64, |f| {
            seen.push(match f {
                Framed::Record(r) => format!("ok {}", r.origin.record),
                Framed::Bad(q, head) => {
                    format!("{} {} {}", q.kind, q.number, String::from_utf8_lossy(&head))
                }
            });
            ControlFlow::Continue(())
        });
        assert!(r.is_err());
        assert_eq!(seen, vec!["ok 1", "ok 2", "truncated 3 thr"]);
    }
}
