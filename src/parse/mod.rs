//! Parsers: raw records in, normalized [`Event`]s out. A record that cannot be parsed becomes a
//! [`ParseError`] that the caller counts and sets aside; it never panics and is never dropped
//! silently.

pub mod auto;
pub mod cloudtrail;
pub mod extract;
pub mod frame;
pub mod json;
pub mod rfc3164;
pub mod scan;
pub mod syslog;

use crate::event::{EcsError, Event};
use crate::source::RawRecord;

/// Which parser a stream of records goes to (`format:` of a file source: `syslog`,
/// `cloudtrail` for one record per line, `json` for ECS events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// RFC 3164 or RFC 5424 syslog lines.
    Syslog,
    /// AWS CloudTrail records.
    CloudTrail,
    /// ECS JSON events, one per line.
    Json,
}

impl Format {
    /// The name used on the command line and in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Syslog => "syslog",
            Format::CloudTrail => "cloudtrail",
            Format::Json => "json",
        }
    }
}

/// A record that could not be turned into events.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8 at byte {valid_up_to} of the record")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A timestamp outside what an event can hold (1677-09-21 to 2262-04-11).
    #[error("timestamp out of range: {0}")]
    TimestampOutOfRange(String),
    /// Nothing in the line looks like a syslog header.
    #[error("not a syslog message: {0}")]
    NotSyslog(&'static str),
    /// Malformed JSON.
    #[error("invalid JSON at line {line} column {column}: {source}")]
    Json {
        /// Line within the record.
        line: usize,
        /// Column within the line.
        column: usize,
        /// The JSON parser's message.
        source: serde_json::Error,
    },
    /// Valid JSON of the wrong kind where a format needs an object (an array, a string, null).
    #[error("a {format} record must be a JSON object")]
    NotAnObject {
        /// The format that expected an object.
        format: &'static str,
    },
    /// Valid JSON that is not a usable CloudTrail record.
    #[error("CloudTrail record: field `{field}` {problem}")]
    CloudTrail {
        /// The record's field name.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Valid JSON nested deeper than a rule could read: its fields would be silently absent,
    /// so the record is set aside instead (no evasion by nesting).
    #[error("{format} record nested deeper than {limit} levels: its fields could not be read")]
    TooDeep {
        /// The format of the record.
        format: &'static str,
        /// The nesting limit of the JSON reader.
        limit: usize,
    },
    /// Valid JSON that is not a usable ECS event.
    #[error("ECS event: {0}")]
    Ecs(#[from] EcsError),
}

impl ParseError {
    /// A short, fixed label for metrics and the ledger.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::InvalidUtf8 { .. } => "invalid_utf8",
            ParseError::NotSyslog(_) => "not_syslog",
            ParseError::TimestampOutOfRange(_) => "timestamp_out_of_range",
            ParseError::Json { .. } => "invalid_json",
            ParseError::NotAnObject { .. } => "not_an_object",
            ParseError::CloudTrail { .. } => "bad_cloudtrail_record",
            ParseError::TooDeep { .. } => "too_deep",
            ParseError::Ecs(e) => e.kind(),
        }
    }

    /// Wraps a serde_json error with its position.
    pub fn json(source: serde_json::Error) -> Self {
        ParseError::Json { line: source.line(), column: source.column(), source }
    }
}

/// Turns raw records of one format into events. Implementations may keep per-stream state (the
/// sshd session table), so one parser serves one stream in order.
pub trait Parser: Send {
    /// Appends the events of one record to `out` (usually one; `message repeated N times`
    /// gives N).
    fn parse(&mut self, record: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError>;

    /// Events that records parsed since the last call named but the parser did not make (a
    /// `message repeated N times` line beyond [`syslog::MAX_REPEAT`]), reset by the call. The
    /// caller adds them to its ledger, so a capped expansion is counted, not silently short.
    fn take_capped(&mut self) -> u64 {
        0
    }
}

/// The record's text, or the UTF-8 error.
pub fn utf8(record: &RawRecord) -> Result<&str, ParseError> {
    std::str::from_utf8(&record.bytes)
        .map_err(|e| ParseError::InvalidUtf8 { valid_up_to: e.valid_up_to() })
}
