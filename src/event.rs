//! The normalized event: who, when, what and where, with Elastic Common Schema field names.
//!
//! Every parser produces an [`Event`]; every rule reads one. Typed fields cover what rules use on
//! the hot path; the source's own record (a CloudTrail record, say) stays reachable through
//! [`Event::original`] under its own field names, parsed only when a rule asks for one of them.

mod category;
mod field;
mod ser;
mod sym;
mod time;

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

pub use category::{Category, EventType};
pub use compact_str::CompactString;
pub use field::{Field, FieldValue};
pub use ser::{EcsError, write_json};
pub use sym::{Interner, Sym};
pub use time::Timestamp;

/// ECS `event.outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The action succeeded.
    Success,
    /// The action failed (a rejected password, a denied API call).
    Failure,
    /// The source does not say.
    Unknown,
}

impl Outcome {
    /// The ECS keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }

    /// The outcome named by an ECS keyword.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "unknown" => Some(Outcome::Unknown),
            _ => None,
        }
    }
}

/// One normalized event. Absent fields are `None` and are omitted from the JSON form.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    /// `@timestamp`: when it happened.
    pub timestamp: Timestamp,
    /// `event.created`: when logwarden received it (absent on offline replay).
    pub created: Option<Timestamp>,
    /// `event.dataset`: which parser produced it (`sshd`, `sudo`, `cloudtrail`, `syslog`).
    pub dataset: Option<Sym>,
    /// `event.provider`: the emitting service (CloudTrail `eventSource`).
    pub provider: Option<Sym>,
    /// `event.category`.
    pub category: Category,
    /// `event.type`.
    pub kind: EventType,
    /// `event.action`: what happened (`ssh_login`, `sudo_command`, `ConsoleLogin`).
    pub action: Option<Sym>,
    /// `event.outcome`.
    pub outcome: Option<Outcome>,
    /// `event.reason`: why, in the source's words (an error code, the failed auth method).
    pub reason: Option<CompactString>,
    /// `user.name`: who acted.
    pub user_name: Option<CompactString>,
    /// `user.id`.
    pub user_id: Option<CompactString>,
    /// `user.target.name`: whom the action was done to or as (sudo's target, a new account).
    pub user_target_name: Option<CompactString>,
    /// `group.name`: the group an admin action touched.
    pub group_name: Option<CompactString>,
    /// `source.ip`.
    pub source_ip: Option<IpAddr>,
    /// `source.port`.
    pub source_port: Option<u16>,
    /// `source.domain`: a host or service name where the source is not an address.
    pub source_domain: Option<CompactString>,
    /// `related.ip`: the addresses a line names when its grammar cannot tell which one is the
    /// peer (client-chosen text can carry an address too). Set only when `source.ip` was left
    /// out for that reason, so an operator can see the candidates without any being blamed.
    pub related_ip: Option<Box<[IpAddr]>>,
    /// `service.name`: the service on whose behalf the line was logged (the PAM service, which
    /// is not always the program: `vsftpd`, `dovecot`, `sshd`).
    pub service_name: Option<Sym>,
    /// `source.geo.*`, filled by enrichment.
    pub source_geo: Option<Box<Geo>>,
    /// `host.name`.
    pub host_name: Option<Sym>,
    /// `process.name`.
    pub process_name: Option<Sym>,
    /// `process.pid`.
    pub process_pid: Option<u32>,
    /// `process.command_line`: the command run (sudo's COMMAND).
    pub process_command_line: Option<Box<str>>,
    /// `cloud.*`.
    pub cloud: Option<Box<Cloud>>,
    /// `log.syslog.*`.
    pub syslog: Option<Box<SyslogMeta>>,
    /// `log.file.path`: the file the record came from.
    pub log_file_path: Option<Sym>,
    /// `log.source.address`: the peer a network record came from (`ip:port`), which for a
    /// relay is the relay, not the host the line is about (that is `host.name`).
    pub log_source_address: Option<Sym>,
    /// `log.offset`: byte offset of the record in its file or stream.
    pub log_offset: Option<u64>,
    /// `message`: the human-readable text.
    pub message: Option<Box<str>>,
    /// The source's own structured record, serialized as ECS `event.original`.
    pub original: Option<Original>,
}

/// `source.geo.*`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Geo {
    /// `source.geo.country_iso_code`.
    pub country_iso_code: Option<CompactString>,
    /// `source.geo.city_name`.
    pub city_name: Option<CompactString>,
    /// `source.geo.location` as (lat, lon).
    pub location: Option<(f64, f64)>,
}

/// `cloud.*`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cloud {
    /// `cloud.provider` (`aws`).
    pub provider: Option<Sym>,
    /// `cloud.account.id`.
    pub account_id: Option<CompactString>,
    /// `cloud.region`.
    pub region: Option<Sym>,
}

/// `log.syslog.*`: what the syslog header said.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyslogMeta {
    /// `log.syslog.facility.code`.
    pub facility: Option<u8>,
    /// `log.syslog.severity.code`.
    pub severity: Option<u8>,
    /// `log.syslog.version`: 1 for RFC 5424, absent for RFC 3164.
    pub version: Option<u8>,
    /// `log.syslog.msgid` (RFC 5424).
    pub msgid: Option<CompactString>,
    /// `log.syslog.structured_data` (RFC 5424): SD-ID with its parameters, in order.
    pub structured_data: Vec<SdElement>,
}

/// One RFC 5424 structured-data element: its SD-ID and its (name, value) parameters in order.
pub type SdElement = (CompactString, Vec<(CompactString, Box<str>)>);

/// A structured source record kept as its raw JSON text, parsed on first field access.
///
/// Keeping the text (not a parsed tree) makes the common case, where no rule reads a
/// source-specific field, cost one copy instead of a tree of allocations per record.
#[derive(Clone, Debug)]
pub struct Original(Arc<OriginalInner>);

#[derive(Debug)]
struct OriginalInner {
    text: Box<str>,
    parsed: OnceLock<serde_json::Value>,
}

impl Original {
    /// Wraps a validated raw JSON document.
    pub fn new(raw: Box<serde_json::value::RawValue>) -> Self {
        Original::from_parsed_text(raw.into())
    }

    /// Wraps JSON text that the caller has just parsed successfully. Validating it again
    /// (as building a `RawValue` does) cost a third of the CloudTrail parse; if the text were
    /// not JSON after all, field lookups would miss rather than fail.
    pub fn from_parsed_text(text: Box<str>) -> Self {
        Original(Arc::new(OriginalInner { text, parsed: OnceLock::new() }))
    }

    /// Wraps a document built in memory with its JSON text, so the first field access does
    /// not parse the text back.
    pub fn with_value(text: Box<str>, value: serde_json::Value) -> Self {
        Original(Arc::new(OriginalInner { text, parsed: OnceLock::from(value) }))
    }

    /// The JSON text.
    pub fn raw(&self) -> &str {
        &self.0.text
    }

    /// The parsed document (parsed once, then cached).
    pub fn value(&self) -> &serde_json::Value {
        // The text was parsed (or validated) before it was wrapped, so parsing cannot fail;
        // Null is a safe fallback that makes every lookup miss.
        self.0.parsed.get_or_init(|| serde_json::from_str(&self.0.text).unwrap_or_default())
    }

    /// The value at a dotted path of the source's own field names (`userIdentity.arn`).
    pub fn lookup(&self, path: &str) -> Option<&serde_json::Value> {
        let mut cur = self.value();
        for part in path.split('.') {
            cur = match cur {
                serde_json::Value::Object(map) => map.get(part)?,
                serde_json::Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

impl PartialEq for Original {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}

impl Event {
    /// The value of a field by ECS dotted path, or else by the original record's own path.
    pub fn get(&self, path: &str) -> Option<FieldValue<'_>> {
        self.field(&Field::parse(path))
    }

    /// The ECS JSON form as one line (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut buf = Vec::with_capacity(512);
        write_json(self, &mut buf);
        // write_json emits only UTF-8: every string it copies is a &str.
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Parses the ECS JSON form (the inverse of [`Event::to_json`]).
    pub fn from_json(text: &str) -> Result<Event, EcsError> {
        ser::from_json(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            timestamp: Timestamp::from_secs_nanos(1_765_349_746, 0),
            dataset: Some(Sym::from_static("sshd")),
            category: Category::AUTHENTICATION,
            kind: EventType::START,
            action: Some(Sym::from_static("ssh_login")),
            outcome: Some(Outcome::Failure),
            user_name: Some("root".into()),
            source_ip: "203.0.113.7".parse().ok(),
            source_port: Some(42393),
            host_name: Some(Sym::from("web-1")),
            process_name: Some(Sym::from_static("sshd")),
            process_pid: Some(4211),
            message: Some("Failed password for root from 203.0.113.7 port 42393 ssh2".into()),
            ..Event::default()
        }
    }

    #[test]
    fn serializes_nested_ecs_without_nulls() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"@timestamp":"2025-12-10T06:55:46Z","event":{"dataset":"sshd","category":["authentication"],"type":["start"],"action":"ssh_login","outcome":"failure"},"user":{"name":"root"},"source":{"ip":"203.0.113.7","port":42393},"host":{"name":"web-1"},"process":{"name":"sshd","pid":4211},"message":"Failed password for root from 203.0.113.7 port 42393 ssh2"}"#
        );
        assert!(!json.contains("null"));
    }

    #[test]
    fn json_round_trips() {
        let mut e = sample();
        e.cloud = Some(Box::new(Cloud {
            provider: Some(Sym::from_static("aws")),
            account_id: Some("123456789012".into()),
            region: Some(Sym::from("us-east-1")),
        }));
        e.syslog = Some(Box::new(SyslogMeta {
            facility: Some(4),
            severity: Some(6),
            version: Some(1),
            msgid: Some("ID47".into()),
            structured_data: vec![("exampleSDID@32473".into(), vec![("iut".into(), "3".into())])],
        }));
        e.original = serde_json::value::RawValue::from_string(r#"{"eventName":"X"}"#.into())
            .ok()
            .map(Original::new);
        let back = Event::from_json(&e.to_json());
        assert_eq!(back.as_ref().ok(), Some(&e), "{back:?}");
    }

    #[test]
    fn original_fields_are_reachable_by_their_own_names() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"eventName":"ConsoleLogin","userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"resources":[{"ARN":"a"}]}"#.into(),
        );
        let e = Event { original: raw.ok().map(Original::new), ..Event::default() };
        assert_eq!(e.get("eventName"), Some(FieldValue::Str("ConsoleLogin")));
        assert_eq!(e.get("userIdentity.arn"), Some(FieldValue::Str("arn:aws:iam::1:user/bob")));
        assert_eq!(e.get("resources.0.ARN"), Some(FieldValue::Str("a")));
        assert_eq!(e.get("userIdentity.missing"), None);
    }
}
