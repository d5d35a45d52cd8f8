//! Standard input as a source: `some-program | logwarden run -c ...`, one record per line.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::Decoder;

use super::{Batch, Origin, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};
use crate::parse::frame::{DEFAULT_MAX_RECORD_BYTES, Frame, NewlineFramer};

/// `type: stdin`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// What the lines are: `syslog` (default), `cloudtrail`, `json`.
    #[serde(default)]
    pub format: Option<crate::parse::Format>,
    /// Longest line (default 64 KiB).
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    /// Alert when no line arrives for this long.
    #[serde(default)]
    pub max_silence: Option<String>,
}

/// Reads `input` line by line until its end or `shutdown`, sending batches (waiting while
/// `tx` is full, which stops reading and so slows the writer on the other end of the pipe).
pub async fn run<R: AsyncRead + Unpin>(
    name: Sym,
    mut input: R,
    max_line_bytes: Option<usize>,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut framer = NewlineFramer::new(max_line_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES));
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let (mut line, mut offset) = (0u64, 0u64);
    loop {
        buf.reserve(64 * 1024);
        let n = tokio::select! {
            _ = shutdown.changed() => return,
            r = input.read_buf(&mut buf) => r.unwrap_or(0),
        };
        counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        let eof = n == 0;
        let mut records = Vec::new();
        loop {
            let len_before = buf.len();
            let frame = if eof { framer.decode_eof(&mut buf) } else { framer.decode(&mut buf) };
            let Ok(Some(frame)) = frame else { break };
            let taken = len_before - buf.len();
            line += 1;
            counters.records_in.fetch_add(1, Ordering::Relaxed);
            match frame {
                Frame::Record(bytes) => records.push(RawRecord {
                    bytes,
                    origin: Origin { source: name.clone(), record: line, offset },
                    received: Some(Timestamp::now()),
                }),
                Frame::TooLong { .. } => {
                    counters.too_long.fetch_add(1, Ordering::Relaxed);
                }
                Frame::Malformed { .. } => {
                    counters.malformed.fetch_add(1, Ordering::Relaxed);
                }
            }
            offset += taken as u64;
        }
        if !records.is_empty()
            && tx.send(Batch { records, checkpoint: None, done: None }).await.is_err()
        {
            return;
        }
        if eof {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn lines_are_framed_batched_and_the_last_one_kept_at_eof() {
        let input: &[u8] = b"<13>one\n<13>two\r\n<13>three";
        let (tx, mut rx) = mpsc::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let c = Arc::new(SourceCounters::default());
        run(Sym::from("stdin"), input, None, tx, Arc::clone(&c), shutdown).await;
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.extend(b.records.into_iter().map(|r| (r.origin.record, r.origin.offset, r.bytes)));
        }
        let want: Vec<(u64, u64, bytes::Bytes)> =
            vec![(1, 0, "<13>one".into()), (2, 8, "<13>two".into()), (3, 17, "<13>three".into())];
        assert_eq!(got, want);
        assert_eq!(c.records_in.load(Ordering::Relaxed), 3);
    }
}
