//! Matching alerts by their fields: routes and silences name alert fields (`rule.id`,
//! `severity`, a group field such as `source.ip`, or any field of the firing event).

use std::collections::BTreeMap;

use compact_str::CompactString;

use crate::alert::Alert;
use crate::event::Field;
use crate::rule::Severity;
use crate::rule::group::value_text;

/// The text of an alert field: the alert's own (`rule.id`, `rule.title`, `severity`, `title`,
/// `fingerprint`), then its group, then the firing event's field of that name.
pub fn alert_field(a: &Alert, name: &str) -> Option<String> {
    alert_field_ref(a, name).map(|t| match t {
        FieldText::Borrowed(s) => s.to_owned(),
        FieldText::Owned(s) => s.to_string(),
    })
}

/// An alert field's text, borrowed from the alert where it is stored as text.
#[derive(Debug)]
pub enum FieldText<'a> {
    /// Stored as text in the alert.
    Borrowed(&'a str),
    /// Rendered (a number, an address, the fingerprint).
    Owned(CompactString),
}

impl FieldText<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            FieldText::Borrowed(s) => s,
            FieldText::Owned(s) => s,
        }
    }
}

/// [`alert_field`] without copying what the alert holds as text.
pub fn alert_field_ref<'a>(a: &'a Alert, name: &str) -> Option<FieldText<'a>> {
    match name {
        "rule.id" => return Some(FieldText::Borrowed(&a.rule_id)),
        "rule.title" => return Some(FieldText::Borrowed(&a.rule_title)),
        "severity" => return Some(FieldText::Borrowed(a.severity.as_str())),
        "title" => return Some(FieldText::Borrowed(&a.title)),
        "fingerprint" => {
            return Some(FieldText::Owned(compact_str::format_compact!("{:016x}", a.fingerprint)));
        }
        _ => {}
    }
    if let Some((_, v)) = a.group.iter().find(|(k, _)| k == name) {
        return Some(FieldText::Borrowed(v));
    }
    let e = a.sample.first()?;
    e.field(&Field::parse(name)).map(|v| FieldText::Owned(value_text(v)))
}

/// A severity bound: `>= high`, `> low`, `<= medium`, `< critical`, `= info` or a bare name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeverityBound {
    op: Op,
    severity: Severity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl SeverityBound {
    /// Parses `>= high` (spaces optional).
    pub fn parse(text: &str) -> Result<SeverityBound, String> {
        let t = text.trim();
        let (op, rest) =
            [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)]
                .iter()
                .find_map(|(p, op)| t.strip_prefix(p).map(|r| (*op, r)))
                .unwrap_or((Op::Eq, t));
        let severity = match rest.trim() {
            "info" | "informational" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            other => {
                return Err(format!(
                    "unknown severity `{other}` (info, low, medium, high, critical, with an optional >=, >, <=, < or =)"
                ));
            }
        };
        Ok(SeverityBound { op, severity })
    }

    /// Whether `s` is within the bound.
    pub fn admits(self, s: Severity) -> bool {
        match self.op {
            Op::Ge => s >= self.severity,
            Op::Gt => s > self.severity,
            Op::Le => s <= self.severity,
            Op::Lt => s < self.severity,
            Op::Eq => s == self.severity,
        }
    }
}

/// What a route or silence requires of an alert; every given part must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertMatcher {
    /// Severity bound.
    pub severity: Option<SeverityBound>,
    /// Rule ids, any of (exact).
    pub rules: Vec<String>,
    /// Tags, any of.
    pub tags: Vec<String>,
    /// Field -> value, all of (exact text).
    pub labels: BTreeMap<String, String>,
}

impl AlertMatcher {
    /// Whether the alert satisfies every part.
    pub fn matches(&self, a: &Alert) -> bool {
        self.severity.is_none_or(|b| b.admits(a.severity))
            && (self.rules.is_empty() || self.rules.contains(&a.rule_id))
            && (self.tags.is_empty() || self.tags.iter().any(|t| a.tags.contains(t)))
            && self
                .labels
                .iter()
                .all(|(k, v)| alert_field_ref(a, k).is_some_and(|t| t.as_str() == v))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Event, Timestamp};

    /// An alert for router tests.
    pub(crate) fn alert(rule: &str, severity: Severity, ip: &str, count: u64) -> Alert {
        let group = vec![("source.ip".to_owned(), ip.to_owned())];
        Alert {
            rule_id: rule.to_owned(),
            rule_title: format!("{rule} title"),
            severity,
            tags: vec!["attack.t1110".into()],
            title: format!("{rule} from {ip}"),
            fingerprint: crate::alert::fingerprint(rule, &group),
            group,
            count,
            first_seen: Timestamp(0),
            last_seen: Timestamp(0),
            events: Vec::new(),
            sample: vec![Event { host_name: Some("web1".into()), ..Event::default() }],
            detail: None,
            explain: None,
        }
    }

    #[test]
    fn severity_bounds_parse_and_compare() {
        let b = SeverityBound::parse(">= high").unwrap();
        assert!(b.admits(Severity::High) && b.admits(Severity::Critical));
        assert!(!b.admits(Severity::Medium));
        assert!(SeverityBound::parse("<medium").unwrap().admits(Severity::Low));
        assert!(SeverityBound::parse("critical").unwrap().admits(Severity::Critical));
        assert!(!SeverityBound::parse("= low").unwrap().admits(Severity::Info));
        assert!(SeverityBound::parse(">= urgent").unwrap_err().contains("unknown severity"));
    }

    #[test]
    fn matcher_reads_alert_group_and_event_fields() {
        let a = alert("ssh-bruteforce", Severity::High, "192.0.2.7", 5);
        assert_eq!(alert_field(&a, "rule.id").as_deref(), Some("ssh-bruteforce"));
        assert_eq!(alert_field(&a, "source.ip").as_deref(), Some("192.0.2.7"));
        assert_eq!(alert_field(&a, "host.name").as_deref(), Some("web1"));
        assert_eq!(alert_field(&a, "user.name"), None);
        let m = AlertMatcher {
            severity: Some(SeverityBound::parse(">= medium").unwrap()),
            rules: vec!["ssh-bruteforce".into()],
            tags: vec!["attack.t1110".into(), "other".into()],
            labels: [("host.name".to_owned(), "web1".to_owned())].into(),
        };
        assert!(m.matches(&a));
        let other_host = AlertMatcher {
            labels: [("host.name".to_owned(), "db1".to_owned())].into(),
            ..AlertMatcher::default()
        };
        assert!(!other_host.matches(&a));
        assert!(AlertMatcher::default().matches(&a));
    }
}
