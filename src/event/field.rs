//! Field access by dotted path: ECS names resolve to typed fields, anything else to the
//! original record. Paths are resolved once ([`Field::parse`]) so rules never re-parse them.

use std::net::IpAddr;

use super::{Category, Event, EventType, Timestamp};

/// A resolved field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `@timestamp`
    Timestamp,
    /// `event.created`
    Created,
    /// `event.dataset`
    Dataset,
    /// `event.provider`
    Provider,
    /// `event.category`
    Category,
    /// `event.type`
    Type,
    /// `event.action`
    Action,
    /// `event.outcome`
    Outcome,
    /// `event.reason`
    Reason,
    /// `user.name`
    UserName,
    /// `user.id`
    UserId,
    /// `user.target.name`
    UserTargetName,
    /// `group.name`
    GroupName,
    /// `source.ip`
    SourceIp,
    /// `source.port`
    SourcePort,
    /// `source.domain`
    SourceDomain,
    /// `source.address`: the peer as an address when known, else its host name (ECS: the
    /// raw address, whatever form it has), so a rule can count per remote host either way.
    SourceAddress,
    /// `service.name`
    ServiceName,
    /// `source.geo.country_iso_code`
    SourceGeoCountry,
    /// `source.geo.city_name`
    SourceGeoCity,
    /// `host.name`
    HostName,
    /// `process.name`
    ProcessName,
    /// `process.pid`
    ProcessPid,
    /// `process.command_line`
    ProcessCommandLine,
    /// `cloud.provider`
    CloudProvider,
    /// `cloud.account.id`
    CloudAccountId,
    /// `cloud.region`
    CloudRegion,
    /// `log.syslog.facility.code`
    SyslogFacility,
    /// `log.syslog.severity.code`
    SyslogSeverity,
    /// `log.syslog.msgid`
    SyslogMsgid,
    /// `log.file.path`
    LogFilePath,
    /// `log.source.address`.
    LogSourceAddress,
    /// `log.offset`
    LogOffset,
    /// `message`
    Message,
    /// `event.original`: the raw original record text.
    OriginalText,
    /// A path in the original record's own field names (`userIdentity.arn`).
    Original(String),
}

impl Field {
    /// Resolves a dotted path; unknown names address the original record.
    pub fn parse(path: &str) -> Field {
        match path {
            "@timestamp" => Field::Timestamp,
            "event.created" => Field::Created,
            "event.dataset" => Field::Dataset,
            "event.provider" => Field::Provider,
            "event.category" => Field::Category,
            "event.type" => Field::Type,
            "event.action" => Field::Action,
            "event.outcome" => Field::Outcome,
            "event.reason" => Field::Reason,
            "user.name" => Field::UserName,
            "user.id" => Field::UserId,
            "user.target.name" => Field::UserTargetName,
            "group.name" => Field::GroupName,
            "source.ip" => Field::SourceIp,
            "source.port" => Field::SourcePort,
            "source.domain" => Field::SourceDomain,
            "source.address" => Field::SourceAddress,
            "service.name" => Field::ServiceName,
            "source.geo.country_iso_code" => Field::SourceGeoCountry,
            "source.geo.city_name" => Field::SourceGeoCity,
            "host.name" => Field::HostName,
            "process.name" => Field::ProcessName,
            "process.pid" => Field::ProcessPid,
            "process.command_line" => Field::ProcessCommandLine,
            "cloud.provider" => Field::CloudProvider,
            "cloud.account.id" => Field::CloudAccountId,
            "cloud.region" => Field::CloudRegion,
            "log.syslog.facility.code" => Field::SyslogFacility,
            "log.syslog.severity.code" => Field::SyslogSeverity,
            "log.syslog.msgid" => Field::SyslogMsgid,
            "log.file.path" => Field::LogFilePath,
            "log.source.address" => Field::LogSourceAddress,
            "log.offset" => Field::LogOffset,
            "message" => Field::Message,
            "event.original" => Field::OriginalText,
            other => Field::Original(other.to_owned()),
        }
    }

    /// The dotted path, as [`Field::parse`] reads it.
    pub fn name(&self) -> &str {
        match self {
            Field::Timestamp => "@timestamp",
            Field::Created => "event.created",
            Field::Dataset => "event.dataset",
            Field::Provider => "event.provider",
            Field::Category => "event.category",
            Field::Type => "event.type",
            Field::Action => "event.action",
            Field::Outcome => "event.outcome",
            Field::Reason => "event.reason",
            Field::UserName => "user.name",
            Field::UserId => "user.id",
            Field::UserTargetName => "user.target.name",
            Field::GroupName => "group.name",
            Field::SourceIp => "source.ip",
            Field::SourcePort => "source.port",
            Field::SourceDomain => "source.domain",
            Field::SourceAddress => "source.address",
            Field::ServiceName => "service.name",
            Field::SourceGeoCountry => "source.geo.country_iso_code",
            Field::SourceGeoCity => "source.geo.city_name",
            Field::HostName => "host.name",
            Field::ProcessName => "process.name",
            Field::ProcessPid => "process.pid",
            Field::ProcessCommandLine => "process.command_line",
            Field::CloudProvider => "cloud.provider",
            Field::CloudAccountId => "cloud.account.id",
            Field::CloudRegion => "cloud.region",
            Field::SyslogFacility => "log.syslog.facility.code",
            Field::SyslogSeverity => "log.syslog.severity.code",
            Field::SyslogMsgid => "log.syslog.msgid",
            Field::LogFilePath => "log.file.path",
            Field::LogSourceAddress => "log.source.address",
            Field::LogOffset => "log.offset",
            Field::Message => "message",
            Field::OriginalText => "event.original",
            Field::Original(path) => path,
        }
    }
}

/// A borrowed field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    /// Text.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An IP address.
    Ip(IpAddr),
    /// An instant.
    Time(Timestamp),
    /// `event.category` members.
    Categories(Category),
    /// `event.type` members.
    Types(EventType),
    /// A non-scalar value of the original record (an object or array).
    Json(&'a serde_json::Value),
}

impl Event {
    /// The value of a resolved field, if present.
    pub fn field(&self, f: &Field) -> Option<FieldValue<'_>> {
        use FieldValue as V;
        fn s(o: Option<&str>) -> Option<FieldValue<'_>> {
            o.map(FieldValue::Str)
        }
        match f {
            Field::Timestamp => Some(V::Time(self.timestamp)),
            Field::Created => self.created.map(V::Time),
            Field::Dataset => s(self.dataset.as_deref()),
            Field::Provider => s(self.provider.as_deref()),
            Field::Category => (!self.category.is_empty()).then_some(V::Categories(self.category)),
            Field::Type => (!self.kind.is_empty()).then_some(V::Types(self.kind)),
            Field::Action => s(self.action.as_deref()),
            Field::Outcome => self.outcome.map(|o| V::Str(o.as_str())),
            Field::Reason => s(self.reason.as_deref()),
            Field::UserName => s(self.user_name.as_deref()),
            Field::UserId => s(self.user_id.as_deref()),
            Field::UserTargetName => s(self.user_target_name.as_deref()),
            Field::GroupName => s(self.group_name.as_deref()),
            Field::SourceIp => self.source_ip.map(V::Ip),
            Field::SourcePort => self.source_port.map(|p| V::Int(i64::from(p))),
            Field::SourceDomain => s(self.source_domain.as_deref()),
            Field::SourceAddress => match self.source_ip {
                Some(ip) => Some(V::Ip(ip)),
                None => s(self.source_domain.as_deref()),
            },
            Field::ServiceName => s(self.service_name.as_deref()),
            Field::SourceGeoCountry => {
                s(self.source_geo.as_ref().and_then(|g| g.country_iso_code.as_deref()))
            }
            Field::SourceGeoCity => {
                s(self.source_geo.as_ref().and_then(|g| g.city_name.as_deref()))
            }
            Field::HostName => s(self.host_name.as_deref()),
            Field::ProcessName => s(self.process_name.as_deref()),
            Field::ProcessPid => self.process_pid.map(|p| V::Int(i64::from(p))),
            Field::ProcessCommandLine => s(self.process_command_line.as_deref()),
            Field::CloudProvider => s(self.cloud.as_ref().and_then(|c| c.provider.as_deref())),
            Field::CloudAccountId => s(self.cloud.as_ref().and_then(|c| c.account_id.as_deref())),
            Field::CloudRegion => s(self.cloud.as_ref().and_then(|c| c.region.as_deref())),
            Field::SyslogFacility => {
                self.syslog.as_ref().and_then(|m| m.facility).map(|v| V::Int(i64::from(v)))
            }
            Field::SyslogSeverity => {
                self.syslog.as_ref().and_then(|m| m.severity).map(|v| V::Int(i64::from(v)))
            }
            Field::SyslogMsgid => s(self.syslog.as_ref().and_then(|m| m.msgid.as_deref())),
            Field::LogFilePath => s(self.log_file_path.as_deref()),
            Field::LogSourceAddress => s(self.log_source_address.as_deref()),
            Field::LogOffset => self.log_offset.map(|o| V::Int(o as i64)),
            Field::Message => s(self.message.as_deref()),
            Field::OriginalText => self.original.as_ref().map(|o| V::Str(o.raw())),
            Field::Original(path) => {
                let v = self.original.as_ref()?.lookup(path)?;
                Some(match v {
                    serde_json::Value::Null => return None,
                    serde_json::Value::Bool(b) => V::Bool(*b),
                    serde_json::Value::Number(n) => match n.as_i64() {
                        Some(i) => V::Int(i),
                        None => V::Float(n.as_f64()?),
                    },
                    serde_json::Value::String(s) => V::Str(s),
                    other => V::Json(other),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Outcome, Sym};

    #[test]
    fn ecs_paths_resolve_to_typed_fields() {
        let e = Event {
            action: Some(Sym::from_static("ssh_login")),
            outcome: Some(Outcome::Failure),
            source_ip: "2001:db8::1".parse().ok(),
            source_port: Some(22),
            category: Category::AUTHENTICATION,
            ..Event::default()
        };
        assert_eq!(e.get("event.action"), Some(FieldValue::Str("ssh_login")));
        assert_eq!(e.get("event.outcome"), Some(FieldValue::Str("failure")));
        assert_eq!(e.get("source.ip"), "2001:db8::1".parse().ok().map(FieldValue::Ip));
        assert_eq!(e.get("source.port"), Some(FieldValue::Int(22)));
        assert_eq!(e.get("event.category"), Some(FieldValue::Categories(Category::AUTHENTICATION)));
        assert_eq!(e.get("event.type"), None);
        assert_eq!(e.get("user.name"), None);
        assert_eq!(Field::parse("userIdentity.arn"), Field::Original("userIdentity.arn".into()));
        for name in ["@timestamp", "source.geo.city_name", "event.original", "userIdentity.arn"] {
            assert_eq!(Field::parse(name).name(), name);
        }
    }
}
