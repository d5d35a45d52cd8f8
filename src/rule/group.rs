//! Group keys: the values of a rule's `group_by` fields for one event, as one compact string.

use std::fmt::Write as _;

use compact_str::CompactString;

use crate::event::Event;
use crate::event::{Field, FieldValue};

/// Separates the values of a multi-field key. A unit separator never occurs in the values
/// logwarden extracts (user names, addresses, hosts); one that does is replaced by a space, so
/// two different groups can never print the same key.
const SEP: char = '\u{1f}';

/// The `group_by` fields of a rule, resolved once at load.
#[derive(Clone, Debug, Default)]
pub struct GroupBy {
    names: Vec<String>,
    fields: Vec<Field>,
}

impl GroupBy {
    /// Resolves dotted field names.
    pub fn new(names: &[String]) -> GroupBy {
        GroupBy { names: names.to_vec(), fields: names.iter().map(|n| Field::parse(n)).collect() }
    }

    /// The field names as written.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether there are no fields (every event is in one group).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The event's key, or `None` when a group field is absent: an event that cannot be told
    /// apart from others must not be pooled with them (a failure with no source address is
    /// not a failure from "no address").
    pub fn key(&self, e: &Event) -> Option<CompactString> {
        let mut key = CompactString::default();
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                key.push(SEP);
            }
            push_value(&mut key, e.field(f)?);
        }
        Some(key)
    }

    /// The event's key with `-` for each absent field: for rules without a behaviour, whose
    /// alert must still say which of its fields were present (and not share one fingerprint
    /// with every other event that lacks one field).
    pub fn key_or_dash(&self, e: &Event) -> CompactString {
        let mut key = CompactString::default();
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                key.push(SEP);
            }
            match e.field(f) {
                Some(v) => push_value(&mut key, v),
                None => key.push('-'),
            }
        }
        key
    }

    /// `(field name, value)` pairs of a key made by [`GroupBy::key`].
    pub fn pairs<'a>(&'a self, key: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        let values: Box<dyn Iterator<Item = &str>> = if self.names.is_empty() {
            Box::new(std::iter::empty())
        } else {
            Box::new(key.split(SEP))
        };
        self.names.iter().map(String::as_str).zip(values)
    }
}

/// Appends a field value's text form (the form alerts show and titles render).
pub fn push_value(out: &mut CompactString, v: FieldValue<'_>) {
    match v {
        FieldValue::Str(s) => {
            if s.contains(SEP) {
                out.push_str(&s.replace(SEP, " "));
            } else {
                out.push_str(s);
            }
        }
        FieldValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        FieldValue::Float(f) => {
            let _ = write!(out, "{f}");
        }
        FieldValue::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        FieldValue::Ip(std::net::IpAddr::V4(ip)) => push_ipv4(out, ip),
        FieldValue::Ip(ip) => {
            let _ = write!(out, "{ip}");
        }
        FieldValue::Time(t) => {
            let _ = write!(out, "{t}");
        }
        FieldValue::Categories(c) => {
            for (i, n) in c.names().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(n);
            }
        }
        FieldValue::Types(t) => {
            for (i, n) in t.names().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(n);
            }
        }
        FieldValue::Json(j) => {
            let _ = write!(out, "{j}");
        }
    }
}

/// Dotted-quad text of an IPv4 address, without the formatting machinery: group keys are built
/// per event, and most are addresses.
fn push_ipv4(out: &mut CompactString, ip: std::net::Ipv4Addr) {
    let mut buf = [0u8; 15];
    let mut n = 0;
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            buf[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            buf[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        buf[n] = b'0' + octet % 10;
        n += 1;
    }
    // Only ASCII digits and dots were written, so this is valid UTF-8.
    if let Ok(text) = std::str::from_utf8(&buf[..n]) {
        out.push_str(text);
    }
}

/// A field value's text form as a fresh string.
pub fn value_text(v: FieldValue<'_>) -> CompactString {
    let mut s = CompactString::default();
    push_value(&mut s, v);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;

    fn event() -> Event {
        Event {
            user_name: Some("root".into()),
            source_ip: Some("203.0.113.7".parse().unwrap()),
            outcome: Some(Outcome::Failure),
            ..Event::default()
        }
    }

    #[test]
    fn key_joins_values_and_pairs_split_them() {
        let g = GroupBy::new(&["source.ip".into(), "user.name".into()]);
        let key = g.key(&event()).unwrap();
        let pairs: Vec<_> = g.pairs(&key).collect();
        assert_eq!(pairs, [("source.ip", "203.0.113.7"), ("user.name", "root")]);
    }

    #[test]
    fn ipv4_text_agrees_with_std() {
        for ip in
            ["0.0.0.0", "1.2.3.4", "10.0.0.255", "100.64.9.10", "255.255.255.255", "99.100.101.9"]
        {
            let addr: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(value_text(FieldValue::Ip(addr)), ip);
        }
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(value_text(FieldValue::Ip(v6)), "2001:db8::1");
    }

    #[test]
    fn absent_field_means_no_group() {
        let g = GroupBy::new(&["source.ip".into(), "host.name".into()]);
        assert_eq!(g.key(&event()), None);
    }

    #[test]
    fn key_or_dash_keeps_the_fields_that_are_there() {
        let g = GroupBy::new(&["host.name".into(), "user.name".into()]);
        let key = g.key_or_dash(&event());
        let pairs: Vec<_> = g.pairs(&key).collect();
        assert_eq!(pairs, [("host.name", "-"), ("user.name", "root")]);
    }

    #[test]
    fn empty_group_by_is_one_group() {
        let g = GroupBy::new(&[]);
        assert_eq!(g.key(&event()).as_deref(), Some(""));
        assert_eq!(g.pairs("").count(), 0);
    }

    #[test]
    fn separator_in_a_value_cannot_forge_a_second_field() {
        let g = GroupBy::new(&["user.name".into(), "event.outcome".into()]);
        let mut e = event();
        e.user_name = Some("a\u{1f}b".into());
        let key = g.key(&e).unwrap();
        let pairs: Vec<_> = g.pairs(&key).collect();
        assert_eq!(pairs, [("user.name", "a b"), ("event.outcome", "failure")]);
    }
}
