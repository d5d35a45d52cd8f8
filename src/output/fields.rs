//! `fields:` projection: a chosen set of dotted paths written as one nested JSON object per
//! event (`user.name` and `source.ip` give `{"user":{"name":"root"},"source":{"ip":"..."}}`).
//!
//! The paths are resolved ([`Field::parse`]) and arranged into a tree once, at build time, with
//! each key's JSON text rendered then; per event only the values are looked up and written.

use std::io::Write;

use crate::event::{Event, Field, FieldValue};

use super::OutputError;

/// The compiled `fields:` list.
#[derive(Debug)]
pub(crate) struct Projection {
    root: Vec<Node>,
}

/// One key of the output object.
#[derive(Debug)]
struct Node {
    /// The path segment, for building the tree.
    name: String,
    /// `"name":`, escaped once here.
    key: Box<[u8]>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Leaf(Field),
    Branch(Vec<Node>),
}

impl Projection {
    /// Arranges `paths` into a tree in the order given. Fails on an empty list, an empty
    /// segment, a duplicate, or a path that is also the parent of another (`user` and
    /// `user.name` cannot both be keys of one object).
    pub(crate) fn compile(output: &str, paths: &[String]) -> Result<Projection, OutputError> {
        let err = |problem: String| OutputError::Fields { output: output.to_owned(), problem };
        if paths.is_empty() {
            return Err(err(
                "an empty list would write `{}` for every event; leave `fields` out to write \
                 the whole event"
                    .into(),
            ));
        }
        let mut root = Vec::new();
        for path in paths {
            let segments: Vec<&str> = path.split('.').collect();
            if segments.iter().any(|s| s.is_empty()) {
                return Err(err(format!("`{path}`: empty path segment")));
            }
            insert(&mut root, &segments, Field::parse(path)).map_err(|c| {
                err(match c {
                    Conflict::Twice => format!("`{path}` is listed twice"),
                    Conflict::ParentListed(n) => format!(
                        "`{path}` and `{}` are both listed: one key cannot hold a value and an \
                         object",
                        segments[..n].join(".")
                    ),
                    Conflict::IsParent => format!(
                        "`{path}` and a field under it are both listed: one key cannot hold a \
                         value and an object"
                    ),
                })
            })?;
        }
        Ok(Projection { root })
    }

    /// Appends the event's projection (no trailing newline). Absent fields are left out, and so
    /// is an object all of whose fields are absent: a line is `{}` only when nothing was there.
    pub(crate) fn write(&self, e: &Event, out: &mut Vec<u8>) {
        out.push(b'{');
        write_members(&self.root, e, out);
        out.push(b'}');
    }
}

/// Why a path does not fit the tree built so far.
enum Conflict {
    Twice,
    /// The first `n` segments are already listed as a field.
    ParentListed(usize),
    IsParent,
}

fn insert(level: &mut Vec<Node>, segments: &[&str], field: Field) -> Result<(), Conflict> {
    insert_at(level, segments, 0, field)
}

fn insert_at(
    level: &mut Vec<Node>,
    segments: &[&str],
    depth: usize,
    field: Field,
) -> Result<(), Conflict> {
    // In bounds: `split` yields at least one segment, and the recursion goes one deeper only
    // while segments remain.
    let (first, last) = (segments[depth], depth + 1 == segments.len());
    match level.iter_mut().find(|n| n.name == first) {
        None => {
            let kind = if last {
                Kind::Leaf(field)
            } else {
                let mut children = Vec::new();
                insert_at(&mut children, segments, depth + 1, field)?;
                Kind::Branch(children)
            };
            level.push(Node { name: first.to_owned(), key: render_key(first), kind });
            Ok(())
        }
        Some(node) => match (&mut node.kind, last) {
            (Kind::Branch(children), false) => insert_at(children, segments, depth + 1, field),
            (Kind::Leaf(_), true) => Err(Conflict::Twice),
            (Kind::Leaf(_), false) => Err(Conflict::ParentListed(depth + 1)),
            (Kind::Branch(_), true) => Err(Conflict::IsParent),
        },
    }
}

fn render_key(name: &str) -> Box<[u8]> {
    let mut key = Vec::with_capacity(name.len() + 3);
    write_json_str(&mut key, name);
    key.push(b':');
    key.into_boxed_slice()
}

/// Writes the present members of one object (without braces); returns whether it wrote any.
fn write_members(nodes: &[Node], e: &Event, out: &mut Vec<u8>) -> bool {
    let mut any = false;
    for node in nodes {
        let mark = out.len();
        if any {
            out.push(b',');
        }
        out.extend_from_slice(&node.key);
        let wrote = match &node.kind {
            Kind::Leaf(f) => match e.field(f) {
                Some(v) => {
                    write_value(v, out);
                    true
                }
                None => false,
            },
            Kind::Branch(children) => {
                out.push(b'{');
                let wrote = write_members(children, e, out);
                out.push(b'}');
                wrote
            }
        };
        if wrote {
            any = true;
        } else {
            out.truncate(mark);
        }
    }
    any
}

/// Writes a value as the full ECS line does: strings and addresses quoted, times in RFC 3339,
/// category and type as arrays of keywords, source-record objects as they were.
fn write_value(v: FieldValue<'_>, out: &mut Vec<u8>) {
    match v {
        FieldValue::Str(s) => write_json_str(out, s),
        FieldValue::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes()),
        // serde_json writes NaN and infinities as `null`, keeping the line valid JSON.
        FieldValue::Float(f) => write_serde(out, &f),
        FieldValue::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        FieldValue::Ip(ip) => write_ip(out, ip),
        FieldValue::Time(t) => {
            out.push(b'"');
            t.write_rfc3339(out);
            out.push(b'"');
        }
        FieldValue::Categories(c) => write_names(out, c.names()),
        FieldValue::Types(t) => write_names(out, t.names()),
        FieldValue::Json(v) => write_serde(out, v),
    }
}

/// An address as a JSON string; IPv4 by hand, as the ECS writer does, because going through
/// `fmt` cost a sixth of a projected sshd line.
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    out.push(b'"');
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*o).as_bytes());
            }
        }
        // Writing to a Vec cannot fail.
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.push(b'"');
}

fn write_names(out: &mut Vec<u8>, names: impl Iterator<Item = &'static str>) {
    out.push(b'[');
    for (i, n) in names.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, n);
    }
    out.push(b']');
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    write_serde(out, s);
}

/// Serializes through serde_json, which escapes exactly as the ECS writer does. Serializing a
/// string, number or `Value` into a `Vec` cannot fail (`Value` map keys are always strings).
fn write_serde<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    let _ = serde_json::to_writer(out, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::tests::{MIX, events};

    fn project(paths: &[&str], e: &Event) -> String {
        let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        let p = Projection::compile("o", &paths).expect("compiles");
        let mut out = Vec::new();
        p.write(e, &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn projection_nests_by_dots_in_list_order() {
        let evs = events(MIX);
        let failed = &evs[0];
        assert_eq!(
            project(&["user.name", "source.ip"], failed),
            r#"{"user":{"name":"root"},"source":{"ip":"203.0.113.7"}}"#
        );
        assert_eq!(
            project(&["source.ip", "source.port", "event.outcome", "user.name"], failed),
            r#"{"source":{"ip":"203.0.113.7","port":4000},"event":{"outcome":"failure"},"user":{"name":"root"}}"#
        );
    }

    #[test]
    fn absent_fields_and_emptied_objects_are_left_out() {
        let evs = events(MIX);
        // No command line, no target user: neither `process` nor `user.target` may appear,
        // and no comma may be left behind.
        assert_eq!(
            project(
                &[
                    "process.command_line",
                    "user.name",
                    "user.target.name",
                    "source.ip",
                    "cloud.region"
                ],
                &evs[0]
            ),
            r#"{"user":{"name":"root"},"source":{"ip":"203.0.113.7"}}"#
        );
        // The cron line has no user or address at all.
        assert_eq!(project(&["user.name", "source.ip"], &evs[1]), "{}");
    }

    #[test]
    fn every_value_kind_is_valid_json() {
        let evs = events(MIX);
        let line = project(
            &["@timestamp", "event.category", "event.type", "process.pid", "host.name", "message"],
            &evs[0],
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(v["@timestamp"], "2025-12-10T06:55:46Z");
        assert_eq!(v["event"]["category"], serde_json::json!(["authentication"]));
        assert_eq!(v["process"]["pid"], 42);
        assert_eq!(v["host"]["name"], "web-1");
        assert!(v["message"].as_str().is_some_and(|m| m.starts_with("Failed password")));
    }

    #[test]
    fn source_record_paths_and_odd_keys_are_written() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/bob","type":"IAMUser"},"n":1.5,"ok":true,"tags":["a"],"we\"ird":"x"}"#.into(),
        )
        .expect("json");
        let e = Event { original: Some(crate::event::Original::new(raw)), ..Event::default() };
        assert_eq!(
            project(&["userIdentity.arn", "n", "ok", "tags", "we\"ird", "missing.path"], &e),
            r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/bob"},"n":1.5,"ok":true,"tags":["a"],"we\"ird":"x"}"#
        );
    }

    #[test]
    fn addresses_are_written_as_display_does() {
        for ip in ["203.0.113.7", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::ffff:1.2.3.4"] {
            let ip: std::net::IpAddr = ip.parse().expect("address");
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).expect("utf-8"), format!("\"{ip}\""));
        }
    }

    #[test]
    fn contradictory_lists_are_rejected() {
        for (paths, needle) in [
            (&["user", "user.name"][..], "`user.name` and `user` are both listed"),
            (&["user.name", "user"][..], "`user` and a field under it"),
            (&["user.name", "user.name.first"][..], "`user.name.first` and `user.name` are"),
            (&["user.name", "user.name"][..], "`user.name` is listed twice"),
            (&["user..name"][..], "empty path segment"),
            (&[""][..], "empty path segment"),
            (&[][..], "empty list"),
        ] {
            let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
            let err = Projection::compile("archive", &paths).expect_err("rejected");
            let msg = err.to_string();
            assert!(msg.starts_with("output `archive`: `fields`: "), "{msg}");
            assert!(msg.contains(needle), "{paths:?}: {msg}");
        }
    }
}
