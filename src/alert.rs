//! Alerts: what a rule says when it fires, and its JSON line form.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::event::Field;
use crate::event::{Event, Timestamp};
use crate::rule::Severity;
use crate::rule::behaviour::EventRef;
use crate::rule::group::value_text;

/// One alert.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule's id.
    pub rule_id: String,
    /// The rule's title.
    pub rule_title: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The rendered title (the rule's `alert.title` template, or its title).
    pub title: String,
    /// The group: `(dotted field, value)` in `group_by` order.
    pub group: Vec<(String, String)>,
    /// Events that made the alert.
    pub count: u64,
    /// Time of the first of them.
    pub first_seen: Timestamp,
    /// Time of the last of them.
    pub last_seen: Timestamp,
    /// Stable hash of the rule id and the group: the same group of the same rule always has
    /// the same fingerprint, which is what deduplication keys on.
    pub fingerprint: u64,
    /// Where the events that made the alert came from (bounded).
    pub events: Vec<EventRef>,
    /// The event that fired the alert, in full.
    pub sample: Vec<Event>,
    /// Behaviour-specific facts.
    pub detail: Option<Value>,
    /// With `--explain`: which selections of the condition the firing event matched.
    pub explain: Option<Explain>,
}

/// Why an alert fired.
#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    /// The rule's condition as written.
    pub condition: String,
    /// Selections the firing event matched that made the condition true.
    pub selections: Vec<String>,
    /// The behaviour that counted, if any.
    pub behaviour: Option<&'static str>,
}

/// FNV-1a 64 over the rule id and the group: stable across runs, builds and machines (unlike
/// the standard hasher), and cheap.
pub fn fingerprint(rule_id: &str, group: &[(String, String)]) -> u64 {
    let mut h = Fnv::new();
    h.feed(rule_id.as_bytes());
    for (k, v) in group {
        // Separators keep ("ab","c") and ("a","bc") apart.
        h.feed(&[0x1e]);
        h.feed(k.as_bytes());
        h.feed(&[0x1f]);
        h.feed(v.as_bytes());
    }
    h.finish()
}

/// FNV-1a, 64 bit: stable across runs, builds and hosts, unlike the std hashers' seeds.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    /// The offset basis.
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in `bytes`.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

/// Renders `{field}` and `{count}` placeholders: a group field's value first, else the
/// firing event's field, else `-`. `{{` and `}}` are literal braces.
pub fn render_title(template: &str, group: &[(String, String)], count: u64, e: &Event) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
            continue;
        }
        let Some(end) = tail.find('}') else {
            out.push_str(tail);
            return out;
        };
        let name = tail[1..end].trim();
        if name == "count" {
            let _ = write!(out, "{count}");
        } else if let Some((_, v)) = group.iter().find(|(k, _)| k == name) {
            out.push_str(v);
        } else {
            match e.field(&Field::parse(name)) {
                Some(v) => out.push_str(&value_text(v)),
                None => out.push('-'),
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

fn time(t: Timestamp) -> String {
    let mut b = Vec::with_capacity(32);
    t.write_rfc3339(&mut b);
    String::from_utf8_lossy(&b).into_owned()
}

impl Alert {
    /// The fingerprint as 16 hex digits.
    pub fn fingerprint_hex(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    /// The alert as a JSON object (the `replay --rules` line and the body webhooks get).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("rule".into(), json!({ "id": self.rule_id, "title": self.rule_title }));
        m.insert("severity".into(), json!(self.severity.as_str()));
        m.insert("title".into(), json!(self.title));
        let group: Map<String, Value> =
            self.group.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        m.insert("group".into(), Value::Object(group));
        m.insert("count".into(), json!(self.count));
        m.insert("first_seen".into(), json!(time(self.first_seen)));
        m.insert("last_seen".into(), json!(time(self.last_seen)));
        m.insert("fingerprint".into(), json!(self.fingerprint_hex()));
        if !self.tags.is_empty() {
            m.insert("tags".into(), json!(self.tags));
        }
        if let Some(d) = &self.detail {
            m.insert("detail".into(), d.clone());
        }
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|r| {
                let mut o = Map::new();
                o.insert("@timestamp".into(), json!(time(r.timestamp)));
                if let Some(p) = &r.path {
                    o.insert("log.file.path".into(), json!(p.as_str()));
                }
                if let Some(off) = r.offset {
                    o.insert("log.offset".into(), json!(off));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("events".into(), Value::Array(events));
        let sample: Vec<Value> =
            self.sample.iter().filter_map(|e| serde_json::from_str(&e.to_json()).ok()).collect();
        m.insert("sample".into(), Value::Array(sample));
        if let Some(x) = &self.explain {
            m.insert(
                "explain".into(),
                json!({
                    "condition": x.condition,
                    "selections": x.selections,
                    "behaviour": x.behaviour,
                }),
            );
        }
        Value::Object(m)
    }

    /// Appends the alert as one JSON line.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        // Writing a Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.to_json());
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn fingerprint_is_stable_and_separates_fields() {
        // FNV-1a 64 of "r" (computed independently); a change breaks dedup across upgrades.
        assert_eq!(fingerprint("r", &[]), 0xaf63_ef4c_8602_0cd5);
        let a = fingerprint("r", &g(&[("a", "bc")]));
        let b = fingerprint("r", &g(&[("ab", "c")]));
        assert_ne!(a, b);
        assert_ne!(fingerprint("r1", &g(&[("a", "b")])), fingerprint("r2", &g(&[("a", "b")])));
        assert_eq!(a, fingerprint("r", &g(&[("a", "bc")])));
    }

    #[test]
    fn title_renders_group_event_count_and_braces() {
        let e = Event { user_name: Some("root".into()), ..Event::default() };
        let group = g(&[("source.ip", "192.0.2.7")]);
        let t = render_title(
            "{source.ip}: {count} failures for {user.name} on {host.name} {{x}}",
            &group,
            12,
            &e,
        );
        assert_eq!(t, "192.0.2.7: 12 failures for root on - {x}");
        assert_eq!(render_title("open {brace", &group, 1, &e), "open {brace");
    }
}

/// Where alerts go as they fire.
pub trait AlertSink: Send {
    /// Takes one alert.
    fn alert(&mut self, a: Alert) -> std::io::Result<()>;

    /// Flushes anything buffered.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects alerts in memory (rule tests, library users).
impl AlertSink for Vec<Alert> {
    fn alert(&mut self, a: Alert) -> std::io::Result<()> {
        self.push(a);
        Ok(())
    }
}

/// Writes each alert as one JSON line, in one write call, so alert lines never interleave
/// with other output mid-line.
#[derive(Debug)]
pub struct JsonLines<W>(pub W);

impl<W: std::io::Write + Send> AlertSink for JsonLines<W> {
    fn alert(&mut self, a: Alert) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        a.write_line(&mut line);
        self.0.write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
