//! ECS JSON events, one per line (what `replay --events` and the forwarder write).

use super::{ParseError, Parser, utf8};
use crate::event::Event;
use crate::source::RawRecord;

/// Parses ECS JSON lines back into events.
#[derive(Default)]
pub struct JsonParser;

impl Parser for JsonParser {
    fn parse(&mut self, record: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError> {
        let text = utf8(record)?;
        let mut e = Event::from_json(text)?;
        if e.created.is_none() {
            e.created = record.received;
        }
        out.push(e);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Sym;
    use crate::source::Origin;

    fn rec(s: &str) -> RawRecord {
        RawRecord {
            bytes: bytes::Bytes::copy_from_slice(s.as_bytes()),
            origin: Origin { source: Sym::from_static("t"), record: 1, offset: 0 },
            received: None,
        }
    }

    #[test]
    fn reads_back_what_replay_writes() {
        let line = r#"{"@timestamp":"2025-12-10T06:55:48Z","event":{"dataset":"sshd","action":"ssh_login","outcome":"failure"},"source":{"ip":"1.2.3.4"}}"#;
        let mut out = Vec::new();
        assert!(JsonParser.parse(&rec(line), &mut out).is_ok());
        assert_eq!(out[0].to_json(), line);
    }

    #[test]
    fn broken_json_is_an_error_with_a_kind() {
        let err = JsonParser.parse(&rec("{\"@timestamp\": 3"), &mut Vec::new()).err();
        assert_eq!(err.map(|e| e.kind()), Some("invalid_json"));
    }
}
