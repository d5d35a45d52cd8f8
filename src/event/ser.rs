//! The nested ECS JSON form of an event: written by hand on the hot path (one buffer, no
//! intermediate tree), read back through `serde_json::Value` for ingest and tests.

use std::io::Write;

use serde_json::{Map, Value};

use super::{
    Category, Cloud, CompactString, Event, EventType, Geo, Original, Outcome, Sym, SyslogMeta,
    Timestamp,
};

/// Why an ECS JSON document could not be read back into an [`Event`].
#[derive(Debug, thiserror::Error)]
pub enum EcsError {
    /// Not JSON at all.
    #[error("invalid JSON at line {line} column {column}: {source}")]
    Json {
        /// Line in the document.
        line: usize,
        /// Column in the line.
        column: usize,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// JSON, but not an object.
    #[error("an ECS event must be a JSON object")]
    NotAnObject,
    /// A field with the wrong type or an impossible value.
    #[error("field `{field}`: {problem}")]
    Field {
        /// The dotted ECS path.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl EcsError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EcsError::Json { .. } => "invalid_json",
            EcsError::NotAnObject => "not_an_object",
            EcsError::Field { .. } => "bad_field",
        }
    }
}

/// Writes a JSON object, tracking whether a comma is due.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A key from input (an RFC 5424 SD-ID or parameter name), which may need escaping; the
    /// fixed ECS names go through `key`, which copies them as they are.
    fn key_escaped(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push(b':');
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.key(k);
            write_str(self.out, v);
        }
    }

    fn num(&mut self, k: &str, v: Option<u64>) {
        if let Some(v) = v {
            self.key(k);
            let mut b = itoa::Buffer::new();
            self.out.extend_from_slice(b.format(v).as_bytes());
        }
    }

    fn names(&mut self, k: &str, names: impl Iterator<Item = &'static str>) {
        let mut names = names.peekable();
        if names.peek().is_none() {
            return;
        }
        self.key(k);
        self.out.push(b'[');
        for (i, n) in names.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, n);
        }
        self.out.push(b']');
    }

    /// Starts a nested object under `k`; the caller closes it with `end`.
    fn child(&mut self, k: &str) -> Obj<'_> {
        self.key(k);
        Obj::open(self.out)
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json does (short forms for
/// `\b \f \n \r \t`, `\u00XX` for other control characters, nothing else), but copying
/// runs of plain bytes at once: going through serde's serializer was a fifth of replay's cost.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    // Skip plain text eight bytes at a time; only words holding a byte that may need escaping
    // are looked at byte by byte (the check may flag a word that needs nothing; never the
    // reverse).
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[i..i + 8]);
        if may_need_escape(u64::from_le_bytes(word)) {
            break;
        }
        i += 8;
    }
    for (i, &b) in bytes.iter().enumerate().skip(i) {
        if !NEEDS_ESCAPE[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The bytes JSON strings must escape: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Whether a word of eight bytes holds a control byte, `"` or `\` (bit tricks from "Bit
/// Twiddling Hacks": a byte below n, a byte equal to c). May say yes when the answer is no;
/// never says no wrongly.
fn may_need_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space
        | zero_byte(w ^ (ONES * u64::from(b'"')))
        | zero_byte(w ^ (ONES * u64::from(b'\\'))))
        != 0
}

/// Appends an address as a JSON string; IPv4 by hand (fmt cost as much as the rest of the
/// source object).
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            out.push(b'"');
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*o).as_bytes());
            }
            out.push(b'"');
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "\"{v6}\"");
        }
    }
}

/// Appends the ECS JSON form of `e` to `out` (one line, no trailing newline).
pub fn write_json(e: &Event, out: &mut Vec<u8>) {
    let mut o = Obj::open(out);
    o.key("@timestamp");
    o.out.push(b'"');
    e.timestamp.write_rfc3339(o.out);
    o.out.push(b'"');

    let has_event = e.created.is_some()
        || e.dataset.is_some()
        || e.provider.is_some()
        || !e.category.is_empty()
        || !e.kind.is_empty()
        || e.action.is_some()
        || e.outcome.is_some()
        || e.reason.is_some()
        || e.original.is_some();
    if has_event {
        let mut ev = o.child("event");
        if let Some(c) = e.created {
            ev.key("created");
            ev.out.push(b'"');
            c.write_rfc3339(ev.out);
            ev.out.push(b'"');
        }
        ev.str("dataset", e.dataset.as_deref());
        ev.str("provider", e.provider.as_deref());
        ev.names("category", e.category.names());
        ev.names("type", e.kind.names());
        ev.str("action", e.action.as_deref());
        ev.str("outcome", e.outcome.map(Outcome::as_str));
        ev.str("reason", e.reason.as_deref());
        ev.str("original", e.original.as_ref().map(Original::raw));
        ev.end();
    }

    if e.user_name.is_some() || e.user_id.is_some() || e.user_target_name.is_some() {
        let mut u = o.child("user");
        u.str("name", e.user_name.as_deref());
        u.str("id", e.user_id.as_deref());
        if let Some(t) = &e.user_target_name {
            let mut target = u.child("target");
            target.str("name", Some(t));
            target.end();
        }
        u.end();
    }
    if let Some(g) = &e.group_name {
        let mut grp = o.child("group");
        grp.str("name", Some(g));
        grp.end();
    }

    if e.source_ip.is_some()
        || e.source_port.is_some()
        || e.source_domain.is_some()
        || e.source_geo.is_some()
    {
        let mut s = o.child("source");
        if let Some(ip) = e.source_ip {
            s.key("ip");
            write_ip(s.out, ip);
        }
        s.num("port", e.source_port.map(u64::from));
        s.str("domain", e.source_domain.as_deref());
        if let Some(geo) = &e.source_geo {
            let mut g = s.child("geo");
            g.str("country_iso_code", geo.country_iso_code.as_deref());
            g.str("city_name", geo.city_name.as_deref());
            if let Some((lat, lon)) = geo.location {
                g.key("location");
                let _ = write!(g.out, "{{\"lat\":{lat},\"lon\":{lon}}}");
            }
            g.end();
        }
        s.end();
    }

    if let Some(ips) = &e.related_ip {
        let mut r = o.child("related");
        r.key("ip");
        r.out.push(b'[');
        for (i, ip) in ips.iter().enumerate() {
            if i > 0 {
                r.out.push(b',');
            }
            write_ip(r.out, *ip);
        }
        r.out.push(b']');
        r.end();
    }

    if let Some(svc) = &e.service_name {
        let mut sv = o.child("service");
        sv.str("name", Some(svc));
        sv.end();
    }

    if let Some(h) = &e.host_name {
        let mut host = o.child("host");
        host.str("name", Some(h));
        host.end();
    }

    if e.process_name.is_some() || e.process_pid.is_some() || e.process_command_line.is_some() {
        let mut p = o.child("process");
        p.str("name", e.process_name.as_deref());
        p.num("pid", e.process_pid.map(u64::from));
        p.str("command_line", e.process_command_line.as_deref());
        p.end();
    }

    if let Some(c) = &e.cloud {
        let mut cl = o.child("cloud");
        cl.str("provider", c.provider.as_deref());
        if let Some(id) = &c.account_id {
            let mut acct = cl.child("account");
            acct.str("id", Some(id));
            acct.end();
        }
        cl.str("region", c.region.as_deref());
        cl.end();
    }

    if e.syslog.is_some()
        || e.log_file_path.is_some()
        || e.log_offset.is_some()
        || e.log_source_address.is_some()
    {
        let mut log = o.child("log");
        if let Some(path) = &e.log_file_path {
            let mut file = log.child("file");
            file.str("path", Some(path));
            file.end();
        }
        if let Some(peer) = &e.log_source_address {
            let mut source = log.child("source");
            source.str("address", Some(peer));
            source.end();
        }
        log.num("offset", e.log_offset);
        if let Some(m) = &e.syslog {
            let mut sl = log.child("syslog");
            if let Some(f) = m.facility {
                let mut fac = sl.child("facility");
                fac.num("code", Some(u64::from(f)));
                fac.end();
            }
            if let Some(s) = m.severity {
                let mut sev = sl.child("severity");
                sev.num("code", Some(u64::from(s)));
                sev.end();
            }
            sl.num("version", m.version.map(u64::from));
            sl.str("msgid", m.msgid.as_deref());
            if !m.structured_data.is_empty() {
                let mut sd = sl.child("structured_data");
                for (id, params) in &m.structured_data {
                    sd.key_escaped(id);
                    let mut el = Obj::open(sd.out);
                    // RFC 5424 lets a name repeat; the parser groups repeats together, and they
                    // are written as one array so no value is lost to a duplicate JSON key.
                    let mut i = 0;
                    while i < params.len() {
                        let name = &params[i].0;
                        let run = params[i..].iter().take_while(|(k, _)| k == name).count();
                        el.key_escaped(name);
                        if run == 1 {
                            write_str(el.out, &params[i].1);
                        } else {
                            el.out.push(b'[');
                            for (j, (_, v)) in params[i..i + run].iter().enumerate() {
                                if j > 0 {
                                    el.out.push(b',');
                                }
                                write_str(el.out, v);
                            }
                            el.out.push(b']');
                        }
                        i += run;
                    }
                    el.end();
                }
                sd.end();
            }
            sl.end();
        }
        log.end();
    }

    o.str("message", e.message.as_deref());
    o.end();
}

/// Parses the ECS JSON form. Unknown fields are ignored: ECS documents from other shippers carry
/// many we do not model.
pub(super) fn from_json(text: &str) -> Result<Event, EcsError> {
    let v: Value = serde_json::from_str(text).map_err(|source| EcsError::Json {
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let root = v.as_object().ok_or(EcsError::NotAnObject)?;
    from_map(root)
}

fn at<'a>(m: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut cur = m;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        // ECS allows both nested objects and dotted keys: try the dotted remainder first.
        let v = cur.get(p)?;
        if parts.peek().is_none() {
            return Some(v);
        }
        cur = v.as_object()?;
    }
    None
}

fn text<'a>(m: &'a Map<String, Value>, path: &'static str) -> Result<Option<&'a str>, EcsError> {
    match at(m, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(EcsError::Field { field: path, problem: "expected a string" }),
    }
}

fn int<T: TryFrom<u64>>(m: &Map<String, Value>, path: &'static str) -> Result<Option<T>, EcsError> {
    match at(m, path) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().and_then(|n| T::try_from(n).ok()).map(Some).ok_or(EcsError::Field {
            field: path,
            problem: "expected an unsigned integer in range",
        }),
    }
}

fn time(m: &Map<String, Value>, path: &'static str) -> Result<Option<Timestamp>, EcsError> {
    text(m, path)?
        .map(|s| {
            Timestamp::parse_rfc3339(s)
                .ok_or(EcsError::Field { field: path, problem: "expected an RFC 3339 timestamp" })
        })
        .transpose()
}

fn names<T>(
    m: &Map<String, Value>,
    path: &'static str,
    empty: T,
    parse: fn(&str) -> Option<T>,
    join: fn(T, T) -> T,
) -> Result<T, EcsError> {
    let bad = EcsError::Field { field: path, problem: "expected ECS keywords" };
    match at(m, path) {
        None | Some(Value::Null) => Ok(empty),
        Some(Value::String(s)) => parse(s).ok_or(bad),
        Some(Value::Array(items)) => items.iter().try_fold(empty, |acc, it| {
            it.as_str()
                .and_then(parse)
                .map(|v| join(acc, v))
                .ok_or(EcsError::Field { field: path, problem: "expected ECS keywords" })
        }),
        Some(_) => Err(bad),
    }
}

/// `related.ip`: a list of addresses.
fn related_ips(m: &Map<String, Value>) -> Result<Option<Box<[std::net::IpAddr]>>, EcsError> {
    let bad =
        || EcsError::Field { field: "related.ip", problem: "expected a list of IP addresses" };
    match at(m, "related.ip") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(v.into_boxed_slice())),
        Some(_) => Err(bad()),
    }
}

fn cs(s: Option<&str>) -> Option<CompactString> {
    s.map(CompactString::from)
}

fn from_map(m: &Map<String, Value>) -> Result<Event, EcsError> {
    let timestamp = time(m, "@timestamp")?
        .ok_or(EcsError::Field { field: "@timestamp", problem: "missing" })?;
    let outcome = text(m, "event.outcome")?
        .map(|s| {
            Outcome::from_name(s).ok_or(EcsError::Field {
                field: "event.outcome",
                problem: "not success|failure|unknown",
            })
        })
        .transpose()?;
    let source_ip = text(m, "source.ip")?
        .map(|s| {
            s.parse()
                .map_err(|_| EcsError::Field { field: "source.ip", problem: "not an IP address" })
        })
        .transpose()?;
    let original = text(m, "event.original")?
        .map(|s| {
            serde_json::value::RawValue::from_string(s.to_owned())
                .map(Original::new)
                .map_err(|_| EcsError::Field { field: "event.original", problem: "not JSON" })
        })
        .transpose()?;

    let geo = match at(m, "source.geo") {
        Some(Value::Object(g)) => Some(Box::new(Geo {
            country_iso_code: cs(text(g, "country_iso_code").ok().flatten()),
            city_name: cs(text(g, "city_name").ok().flatten()),
            location: at(g, "location")
                .and_then(|l| Some((l.get("lat")?.as_f64()?, l.get("lon")?.as_f64()?))),
        })),
        _ => None,
    };

    let cloud = if at(m, "cloud").is_some() {
        Some(Box::new(Cloud {
            provider: text(m, "cloud.provider")?.map(Sym::from),
            account_id: cs(text(m, "cloud.account.id")?),
            region: text(m, "cloud.region")?.map(Sym::from),
        }))
    } else {
        None
    };

    let syslog = match at(m, "log.syslog") {
        Some(Value::Object(sl)) => {
            let mut meta = SyslogMeta {
                facility: int(m, "log.syslog.facility.code")?,
                severity: int(m, "log.syslog.severity.code")?,
                version: int(m, "log.syslog.version")?,
                msgid: cs(text(m, "log.syslog.msgid")?),
                structured_data: Vec::new(),
            };
            if let Some(Value::Object(sd)) = sl.get("structured_data") {
                for (id, params) in sd {
                    let mut list = Vec::new();
                    for (k, v) in params.as_object().into_iter().flatten() {
                        let values: Vec<&Value> = match v {
                            Value::Array(items) => items.iter().collect(),
                            other => vec![other],
                        };
                        for v in values {
                            let v = v.as_str().ok_or(EcsError::Field {
                                field: "log.syslog.structured_data",
                                problem: "parameter values must be strings",
                            })?;
                            list.push((CompactString::from(k.as_str()), Box::from(v)));
                        }
                    }
                    let params = list;
                    meta.structured_data.push((CompactString::from(id.as_str()), params));
                }
            }
            Some(Box::new(meta))
        }
        _ => None,
    };

    Ok(Event {
        timestamp,
        created: time(m, "event.created")?,
        dataset: text(m, "event.dataset")?.map(Sym::from),
        provider: text(m, "event.provider")?.map(Sym::from),
        category: names(
            m,
            "event.category",
            Category::empty(),
            Category::from_name,
            Category::with,
        )?,
        kind: names(m, "event.type", EventType::empty(), EventType::from_name, EventType::with)?,
        action: text(m, "event.action")?.map(Sym::from),
        outcome,
        reason: cs(text(m, "event.reason")?),
        user_name: cs(text(m, "user.name")?),
        user_id: cs(text(m, "user.id")?),
        user_target_name: cs(text(m, "user.target.name")?),
        group_name: cs(text(m, "group.name")?),
        source_ip,
        source_port: int(m, "source.port")?,
        source_domain: cs(text(m, "source.domain")?),
        related_ip: related_ips(m)?,
        service_name: text(m, "service.name")?.map(Sym::from),
        source_geo: geo,
        host_name: text(m, "host.name")?.map(Sym::from),
        process_name: text(m, "process.name")?.map(Sym::from),
        process_pid: int(m, "process.pid")?,
        process_command_line: text(m, "process.command_line")?.map(Box::from),
        cloud,
        syslog,
        log_file_path: text(m, "log.file.path")?.map(Sym::from),
        log_source_address: text(m, "log.source.address")?.map(Sym::from),
        log_offset: int(m, "log.offset")?,
        message: text(m, "message")?.map(Box::from),
        original,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_ips_and_the_service_round_trip() {
        let e = Event {
            related_ip: Some(
                ["10.66.66.1", "2001:db8::9"].iter().filter_map(|s| s.parse().ok()).collect(),
            ),
            service_name: Some(Sym::from("vsftpd")),
            ..Event::default()
        };
        let mut out = Vec::new();
        write_json(&e, &mut out);
        let text = String::from_utf8(out).unwrap_or_default();
        assert!(
            text.contains(
                r#""related":{"ip":["10.66.66.1","2001:db8::9"]},"service":{"name":"vsftpd"}"#
            ),
            "{text}"
        );
        assert_eq!(from_json(&text).ok(), Some(e));
        let bad = r#"{"@timestamp":"2024-01-01T00:00:00Z","related":{"ip":["nope"]}}"#;
        assert!(matches!(from_json(bad), Err(EcsError::Field { field: "related.ip", .. })));
    }

    #[test]
    fn rejects_what_is_not_an_event() {
        assert!(matches!(from_json("[1]"), Err(EcsError::NotAnObject)));
        assert!(matches!(from_json("{\"@timestamp\":"), Err(EcsError::Json { .. })));
        assert!(matches!(from_json("{}"), Err(EcsError::Field { field: "@timestamp", .. })));
        let bad_ip = r#"{"@timestamp":"2024-01-01T00:00:00Z","source":{"ip":"nope"}}"#;
        assert!(matches!(from_json(bad_ip), Err(EcsError::Field { field: "source.ip", .. })));
        let bad_port = r#"{"@timestamp":"2024-01-01T00:00:00Z","source":{"port":70000}}"#;
        assert!(matches!(from_json(bad_port), Err(EcsError::Field { field: "source.port", .. })));
    }

    proptest::proptest! {
        #[test]
        fn strings_are_escaped_exactly_as_serde_json_does(s in "\\PC*|[\\x00-\\x7f]*") {
            let mut ours = Vec::new();
            write_str(&mut ours, &s);
            proptest::prop_assert_eq!(String::from_utf8(ours).unwrap_or_default(), serde_json::to_string(&s).unwrap_or_default());
        }

        #[test]
        fn addresses_are_written_as_display_does(a in proptest::prelude::any::<[u8; 4]>(), b in proptest::prelude::any::<[u16; 8]>()) {
            for ip in [std::net::IpAddr::from(a), std::net::IpAddr::from(b)] {
                let mut ours = Vec::new();
                write_ip(&mut ours, ip);
                proptest::prop_assert_eq!(String::from_utf8(ours).unwrap_or_default(), format!("\"{ip}\""));
            }
        }
    }

    #[test]
    fn escapes_control_and_quote_characters() {
        let e = Event { message: Some("a\"b\\c\nd\u{1}".into()), ..Event::default() };
        let mut out = Vec::new();
        write_json(&e, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(v["message"], "a\"b\\c\nd\u{1}");
    }
}
