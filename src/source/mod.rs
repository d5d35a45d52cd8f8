//! Sources: where raw records come from. A source only frames bytes into [`RawRecord`]s; it
//! never parses them.

pub mod cloudtrail;
pub mod detect;
pub mod file;

use bytes::Bytes;

use crate::event::{Sym, Timestamp};

/// One framed record as it arrived: a syslog line, a CloudTrail record, a JSON line.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The record's bytes, without framing (no trailing newline, no octet count).
    pub bytes: Bytes,
    /// Where it came from.
    pub origin: Origin,
    /// When logwarden received it; `None` on offline replay, so replays are deterministic.
    pub received: Option<Timestamp>,
}

/// Where a record came from, precise enough for an operator to find it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The file path or listener name.
    pub source: Sym,
    /// 1-based line number for line-framed input, record index for JSON documents.
    pub record: u64,
    /// Byte offset of the record's first byte in the (decompressed) stream.
    pub offset: u64,
}
