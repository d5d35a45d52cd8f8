//! Alerts: what a rule says when it fires, and its JSON line form.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::event::Field;
use crate::event::{Event, Timestamp};
use crate::rule::Severity;
use crate::rule::behaviour::EventRef;
use crate::rule::group::value_text;

/// One alert.
///
/// Its serde form is exact (every field, for the router's state snapshots), unlike
/// [`Alert::to_json`], the form people and webhooks read: `sample` events travel as their ECS
/// JSON text and `detail` as JSON text, so that formats which are not self-describing (the
/// snapshots' postcard) can carry them. The field order is the snapshot format: a change needs
/// a new router snapshot version.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    #[serde(with = "ecs_events")]
    pub sample: Vec<Event>,
    /// Behaviour-specific facts.
    #[serde(with = "json_text")]
    pub detail: Option<Value>,
    /// With `--explain`: which selections of the condition the firing event matched.
    pub explain: Option<Explain>,
}

/// Why an alert fired.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explain {
    /// The rule's condition as written.
    pub condition: String,
    /// Selections the firing event matched that made the condition true.
    pub selections: Vec<String>,
    /// The behaviour that counted, if any.
    pub behaviour: Option<&'static str>,
}

/// Read back with the behaviour's name as the static name of a known behaviour (derived, it
/// would borrow the name from the input for `'static`).
impl<'de> serde::Deserialize<'de> for Explain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(serde::Deserialize)]
        struct Owned {
            condition: String,
            selections: Vec<String>,
            behaviour: Option<String>,
        }
        let o = Owned::deserialize(d)?;
        let behaviour = o
            .behaviour
            .map(|name| {
                crate::rule::behaviour::NAMES
                    .into_iter()
                    .find(|n| *n == name)
                    .ok_or_else(|| D::Error::custom(format!("unknown behaviour `{name}`")))
            })
            .transpose()?;
        Ok(Explain { condition: o.condition, selections: o.selections, behaviour })
    }
}

/// Events as their ECS JSON text (the writer and [`Event::from_json`] round-trip exactly).
mod ecs_events {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    use crate::event::Event;

    pub fn serialize<S: Serializer>(events: &[Event], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(events.iter().map(Event::to_json))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| Event::from_json(text).map_err(D::Error::custom))
            .collect()
    }
}

/// A JSON value as its text.
mod json_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref().map(Value::to_string).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| serde_json::from_str(&text).map_err(D::Error::custom))
            .transpose()
    }
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
    /// Whether it tells that a scan violation was resolved: routes send it only with
    /// `send_resolved: true`. (A withdrawn advisory is a change of the violation's details,
    /// notified like any other.)
    pub fn is_resolved(&self) -> bool {
        self.detail
            .as_ref()
            .and_then(|d| d.get("change"))
            .and_then(Value::as_str)
            .is_some_and(|c| c == "resolved")
    }

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
    fn serde_form_is_exact() {
        // Everything an alert carries, through the snapshots' encoding and back.
        let e = Event::from_json(
            r#"{"@timestamp":"2025-12-10T06:55:46.5Z","event":{"dataset":"sshd","outcome":"failure","original":"{\"a\":1}"},"user":{"name":"root"},"source":{"ip":"203.0.113.7","geo":{"country_iso_code":"GB","location":{"lat":51.5,"lon":-0.12}}},"log":{"file":{"path":"/var/log/auth.log"},"offset":42},"message":"Failed password"}"#,
        )
        .unwrap();
        let group = g(&[("source.ip", "203.0.113.7")]);
        let a = Alert {
            rule_id: "ssh-bruteforce".into(),
            rule_title: "SSH brute force".into(),
            severity: crate::rule::Severity::High,
            tags: vec!["attack.t1110".into()],
            title: "t".into(),
            fingerprint: fingerprint("ssh-bruteforce", &group),
            group,
            count: 5,
            first_seen: Timestamp(1),
            last_seen: e.timestamp,
            events: vec![EventRef::of(&e)],
            sample: vec![e],
            detail: Some(json!({"distinct": "user.name", "values": ["a", "b"], "x": 1.5})),
            explain: Some(Explain {
                condition: "failed".into(),
                selections: vec!["failed".into()],
                behaviour: Some("threshold"),
            }),
        };
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(postcard::from_bytes::<Alert>(&bytes).unwrap(), a);
        let mut bad = a.clone();
        bad.explain.as_mut().unwrap().behaviour = Some("telepathy");
        let bytes = postcard::to_allocvec(&bad).unwrap();
        assert!(postcard::from_bytes::<Alert>(&bytes).is_err());
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
