//! Records of either kind the HTTP intake takes: a forwarder's ECS JSON events (they start
//! with `{`) or raw syslog lines (anything else).

use super::json::JsonParser;
use super::syslog::{SyslogOptions, SyslogParser};
use super::{ParseError, Parser};
use crate::event::Event;
use crate::source::RawRecord;

/// Parses a record starting with `{` (after leading whitespace) as an ECS JSON event and
/// anything else as syslog. A syslog line never starts with `{` (RFC 5424 and RFC 3164 start
/// with `<PRI>` or a timestamp), so the first byte decides without a trial parse.
#[derive(Default)]
pub struct AutoParser {
    json: JsonParser,
    syslog: SyslogParser,
}

impl AutoParser {
    /// A parser reading syslog with `opts`.
    pub fn new(opts: SyslogOptions) -> Self {
        AutoParser { json: JsonParser, syslog: SyslogParser::new(opts) }
    }
}

impl Parser for AutoParser {
    fn parse(&mut self, record: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError> {
        match record.bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => self.json.parse(record, out),
            _ => self.syslog.parse(record, out),
        }
    }

    fn take_capped(&mut self) -> u64 {
        self.syslog.take_capped()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::event::{Sym, Timestamp};
    use crate::source::Origin;

    fn rec(s: &str) -> RawRecord {
        RawRecord {
            bytes: bytes::Bytes::copy_from_slice(s.as_bytes()),
            origin: Origin { source: Sym::from_static("t"), record: 1, offset: 0 },
            received: Some(Timestamp::from_secs_nanos(1_765_349_800, 0)),
        }
    }

    #[test]
    fn ecs_json_and_syslog_each_go_to_their_parser() {
        let mut p = AutoParser::new(SyslogOptions::default());
        let mut out = Vec::new();
        let json = r#"{"@timestamp":"2025-12-10T06:55:48Z","event":{"created":"2025-12-10T06:55:49Z","dataset":"sshd","action":"ssh_login","outcome":"failure"},"source":{"ip":"1.2.3.4"}}"#;
        p.parse(&rec(json), &mut out).unwrap();
        p.parse(&rec(&format!("  {json}")), &mut out).unwrap();
        let line = "<38>Dec 10 06:55:46 web-1 sshd[4211]: Failed password for root from \
                    203.0.113.7 port 42393 ssh2";
        p.parse(&rec(line), &mut out).unwrap();
        assert_eq!(out.len(), 3);
        // The forwarded event comes back as it was written, its own receive time kept.
        assert_eq!(out[0].to_json(), json);
        assert_eq!(out[1], out[0]);
        assert_eq!(out[2].dataset.as_ref().map(Sym::as_str), Some("sshd"));
        assert_eq!(out[2].user_name.as_deref(), Some("root"));
    }

    #[test]
    fn broken_json_is_a_json_error_not_a_syslog_one() {
        let err = AutoParser::default().parse(&rec("{\"@timestamp\": 3"), &mut Vec::new());
        assert_eq!(err.err().map(|e| e.kind()), Some("invalid_json"));
        let err = AutoParser::default().parse(&rec(""), &mut Vec::new());
        assert_eq!(err.err().map(|e| e.kind()), Some("not_syslog"));
    }
}
