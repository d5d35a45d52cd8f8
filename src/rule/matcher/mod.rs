//! Compiled Sigma field predicates (`field|modifier: values`) and keyword searches, built once.
//!
//! A rule's selection maps keys such as `process.command_line|contains|all` to one value or a
//! list. [`FieldMatcher::compile`] resolves the field path, checks the modifiers and turns every
//! value into a ready predicate (wildcards become prefix/suffix/contains/equality tests, or a
//! regex built here), so [`FieldMatcher::matches`] neither allocates nor compiles per event.

use std::fmt;
use std::net::IpAddr;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::event::{Event, Field, FieldValue};

mod cidr;
mod keyword;
mod text;

use cidr::Cidr;
pub use keyword::KeywordMatcher;
use text::Text;

/// A scalar from the rule YAML.
#[derive(Clone, Debug, PartialEq)]
pub enum RuleValue {
    /// A string (may hold Sigma wildcards).
    Str(String),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`: matches an absent field.
    Null,
}

impl RuleValue {
    /// The value as text for the string modifiers; `null` has none.
    fn text(&self) -> Option<String> {
        match self {
            RuleValue::Str(s) => Some(s.clone()),
            RuleValue::Int(i) => Some(i.to_string()),
            RuleValue::Float(f) => Some(f.to_string()),
            RuleValue::Bool(b) => Some(b.to_string()),
            RuleValue::Null => None,
        }
    }
}

impl fmt::Display for RuleValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleValue::Str(s) => f.write_str(s),
            RuleValue::Int(i) => write!(f, "{i}"),
            RuleValue::Float(x) => write!(f, "{x}"),
            RuleValue::Bool(b) => write!(f, "{b}"),
            RuleValue::Null => f.write_str("null"),
        }
    }
}

/// Why a selection key or its values could not be compiled. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    /// A modifier this engine does not implement (`base64`, `windash`, a typo).
    #[error("`{key}`: unknown modifier `{modifier}`")]
    UnknownModifier {
        /// The whole selection key.
        key: String,
        /// The modifier as written.
        modifier: String,
    },
    /// A `re` value (or a wildcard translated to a regex) did not compile.
    #[error("`{key}`: invalid regular expression")]
    BadRegex {
        /// The whole selection key.
        key: String,
        /// What the regex parser said.
        #[source]
        source: regex::Error,
    },
    /// A `cidr` value that is not `address/prefix`.
    #[error("`{key}`: `{value}` is not a CIDR block")]
    BadCidr {
        /// The whole selection key.
        key: String,
        /// The offending value.
        value: String,
    },
    /// A `gt`/`gte`/`lt`/`lte` value that is not a finite number.
    #[error("`{key}`: `{value}` is not a number")]
    BadNumber {
        /// The whole selection key.
        key: String,
        /// The offending value.
        value: String,
    },
    /// Modifiers or values that make no sense together (`contains|re`, `exists: maybe`).
    #[error("`{key}`: {detail}")]
    Conflicting {
        /// The whole selection key.
        key: String,
        /// What conflicts.
        detail: String,
    },
}

impl MatchError {
    /// A stable label for metrics and lint output.
    pub fn kind(&self) -> &'static str {
        match self {
            MatchError::UnknownModifier { .. } => "unknown_modifier",
            MatchError::BadRegex { .. } => "bad_regex",
            MatchError::BadCidr { .. } => "bad_cidr",
            MatchError::BadNumber { .. } => "bad_number",
            MatchError::Conflicting { .. } => "conflicting",
        }
    }
}

/// A compiled `field|modifier...: values` predicate.
#[derive(Clone, Debug)]
pub struct FieldMatcher {
    field: Field,
    /// The original-record path split once, for fields that are not ECS.
    path: Box<[Segment]>,
    test: Test,
}

#[derive(Clone, Debug)]
struct Segment {
    name: Box<str>,
    index: Option<usize>,
}

#[derive(Clone, Debug)]
enum Test {
    Exists(bool),
    Preds {
        preds: Box<[Pred]>,
        all: bool,
    },
    /// Sigma `fieldref`: equal to the value of any of these other fields.
    FieldRef(Box<[FieldRef]>),
}

/// Another field of the same event, named by a `fieldref` value.
#[derive(Clone, Debug)]
struct FieldRef {
    field: Field,
    path: Box<[Segment]>,
}

/// The main modifier; at most one per key.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Eq,
    Contains,
    StartsWith,
    EndsWith,
    Re,
    Cidr,
    Exists,
    FieldRef,
    Cmp(CmpOp),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn apply(self, field: f64, value: f64) -> bool {
        match self {
            CmpOp::Gt => field > value,
            CmpOp::Gte => field >= value,
            CmpOp::Lt => field < value,
            CmpOp::Lte => field <= value,
        }
    }
}

/// One compiled value.
#[derive(Clone, Debug)]
enum Pred {
    Text(Text),
    Regex(Regex),
    /// Numeric equality; integers keep their exact value so large ids compare exactly.
    Num {
        int: Option<i64>,
        float: f64,
    },
    Bool(bool),
    /// Matches only when the field is absent; the caller checks that.
    Null,
    Cidr(Cidr),
    Cmp(CmpOp, f64),
}

impl FieldMatcher {
    /// Compiles `key` (`field|modifier|...`) with its values (a YAML scalar is one value, a list
    /// is OR, or AND with `|all`).
    pub fn compile(key: &str, values: &[RuleValue]) -> Result<FieldMatcher, MatchError> {
        let conflict = |detail: &str| MatchError::Conflicting {
            key: key.to_owned(),
            detail: detail.to_owned(),
        };
        let (name, mods) = match key.split_once('|') {
            Some((name, mods)) => (name, Some(mods)),
            None => (key, None),
        };
        if name.is_empty() {
            return Err(conflict("empty field name"));
        }
        let mut kind = Kind::Eq;
        let mut all = false;
        let (mut re_i, mut re_m, mut re_s) = (false, false, false);
        for m in mods.into_iter().flat_map(|m| m.split('|')) {
            let next = match m {
                "contains" => Kind::Contains,
                "startswith" => Kind::StartsWith,
                "endswith" => Kind::EndsWith,
                "re" => Kind::Re,
                "cidr" => Kind::Cidr,
                "exists" => Kind::Exists,
                "fieldref" => Kind::FieldRef,
                "gt" => Kind::Cmp(CmpOp::Gt),
                "gte" => Kind::Cmp(CmpOp::Gte),
                "lt" => Kind::Cmp(CmpOp::Lt),
                "lte" => Kind::Cmp(CmpOp::Lte),
                "all" => {
                    all = true;
                    continue;
                }
                "i" => {
                    re_i = true;
                    continue;
                }
                "m" => {
                    re_m = true;
                    continue;
                }
                "s" => {
                    re_s = true;
                    continue;
                }
                other => {
                    return Err(MatchError::UnknownModifier {
                        key: key.to_owned(),
                        modifier: other.to_owned(),
                    });
                }
            };
            if kind != Kind::Eq {
                return Err(conflict(&format!("`{m}` cannot combine with another modifier")));
            }
            kind = next;
        }
        if (re_i || re_m || re_s) && kind != Kind::Re {
            return Err(conflict("`i`, `m` and `s` apply only to `re`"));
        }
        if values.is_empty() {
            return Err(conflict("no values"));
        }
        let (field, path) = resolve(name);
        if kind == Kind::Exists {
            if all || values.len() != 1 {
                return Err(conflict("`exists` takes exactly one value"));
            }
            let want = match &values[0] {
                RuleValue::Bool(b) => *b,
                RuleValue::Str(s) if s.eq_ignore_ascii_case("true") => true,
                RuleValue::Str(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(conflict("`exists` takes true or false")),
            };
            return Ok(FieldMatcher { field, path, test: Test::Exists(want) });
        }
        if kind == Kind::FieldRef {
            // `all` would ask one value to equal several fields at once; Sigma gives it no
            // meaning, so it is refused rather than guessed.
            if all {
                return Err(conflict("`fieldref` cannot combine with `all`"));
            }
            let refs = values
                .iter()
                .map(|v| match v {
                    RuleValue::Str(s) if !s.is_empty() => {
                        let (field, path) = resolve(s);
                        Ok(FieldRef { field, path })
                    }
                    _ => Err(conflict("`fieldref` values must be field names")),
                })
                .collect::<Result<Box<[FieldRef]>, MatchError>>()?;
            return Ok(FieldMatcher { field, path, test: Test::FieldRef(refs) });
        }
        let preds = values
            .iter()
            .map(|v| compile_value(key, kind, (re_i, re_m, re_s), v))
            .collect::<Result<Box<[Pred]>, MatchError>>()?;
        Ok(FieldMatcher { field, path, test: Test::Preds { preds, all } })
    }

    /// Whether the event satisfies this predicate.
    pub fn matches(&self, e: &Event) -> bool {
        match &self.test {
            Test::Exists(want) => self.visit(e, &mut |_| true).is_some() == *want,
            Test::Preds { preds, all: false } => {
                match self.visit(e, &mut |v| preds.iter().any(|p| p.test(v))) {
                    Some(hit) => hit,
                    None => preds.iter().any(|p| matches!(p, Pred::Null)),
                }
            }
            Test::Preds { preds, all: true } => preds.iter().all(|p| match p {
                Pred::Null => self.visit(e, &mut |_| true).is_none(),
                p => self.visit(e, &mut |v| p.test(v)) == Some(true),
            }),
            // Compared as text, ignoring ASCII case like plain Sigma equality; an absent field
            // on either side never matches (absent is not equal to absent).
            Test::FieldRef(refs) => refs.iter().any(|r| {
                self.visit(e, &mut |a| {
                    with_text(a, |sa| {
                        visit(&r.field, &r.path, e, &mut |b| {
                            with_text(b, |sb| sa.eq_ignore_ascii_case(sb))
                        }) == Some(true)
                    })
                }) == Some(true)
            }),
        }
    }

    /// The resolved field this predicate reads.
    pub fn field(&self) -> &Field {
        &self.field
    }

    /// The values, lowercased, when this predicate is a plain case-insensitive equality on
    /// text (no wildcard, no modifier, not `|all`): the rule set indexes rules by them.
    pub fn exact_texts(&self) -> Option<Vec<String>> {
        let Test::Preds { preds, all: false } = &self.test else { return None };
        preds
            .iter()
            .map(|p| match p {
                Pred::Text(Text::Equals(b)) => String::from_utf8(b.to_vec()).ok(),
                _ => None,
            })
            .collect()
    }

    /// Calls `f` on each value of the field (several for arrays in the original record) until
    /// it returns true. `None` means the field is absent (or only nulls).
    fn visit(&self, e: &Event, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> Option<bool> {
        visit(&self.field, &self.path, e, f)
    }
}

/// Resolves a field name once: an ECS field, or an original-record path split at the dots.
fn resolve(name: &str) -> (Field, Box<[Segment]>) {
    let field = Field::parse(name);
    let path = match &field {
        Field::Original(p) => {
            p.split('.').map(|s| Segment { name: s.into(), index: s.parse().ok() }).collect()
        }
        _ => Box::default(),
    };
    (field, path)
}

/// Calls `f` on each value of `field` in `e` until it returns true; `None` when absent. See
/// [`FieldMatcher::visit`].
fn visit(
    field: &Field,
    path: &[Segment],
    e: &Event,
    f: &mut dyn FnMut(FieldValue<'_>) -> bool,
) -> Option<bool> {
    match field {
        Field::Original(_) => {
            let root = e.original.as_ref()?.value();
            let mut seen = false;
            let hit = walk(root, path, f, &mut seen);
            seen.then_some(hit)
        }
        field => e.field(field).map(f),
    }
}

/// Walks an original-record path; a name applied to an array applies to each element, as
/// Sigma's CloudTrail rules expect (`resources.ARN` over `resources: [{ARN}, ...]`).
fn walk(
    node: &Value,
    path: &[Segment],
    f: &mut dyn FnMut(FieldValue<'_>) -> bool,
    seen: &mut bool,
) -> bool {
    match path.split_first() {
        None => match node {
            Value::Null => false,
            Value::Array(items) => items.iter().any(|it| walk(it, &[], f, seen)),
            Value::Bool(b) => {
                *seen = true;
                f(FieldValue::Bool(*b))
            }
            Value::Number(n) => {
                *seen = true;
                match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => f(FieldValue::Int(i)),
                    (None, Some(x)) => f(FieldValue::Float(x)),
                    (None, None) => false,
                }
            }
            Value::String(s) => {
                *seen = true;
                f(FieldValue::Str(s))
            }
            Value::Object(_) => {
                *seen = true;
                f(FieldValue::Json(node))
            }
        },
        Some((seg, rest)) => match node {
            Value::Object(map) => map.get(&*seg.name).is_some_and(|c| walk(c, rest, f, seen)),
            Value::Array(items) => match seg.index {
                Some(i) => items.get(i).is_some_and(|c| walk(c, rest, f, seen)),
                None => items.iter().any(|c| walk(c, path, f, seen)),
            },
            _ => false,
        },
    }
}

fn compile_value(
    key: &str,
    kind: Kind,
    (re_i, re_m, re_s): (bool, bool, bool),
    v: &RuleValue,
) -> Result<Pred, MatchError> {
    let bad_regex = |source| MatchError::BadRegex { key: key.to_owned(), source };
    let text = || {
        v.text().ok_or_else(|| MatchError::Conflicting {
            key: key.to_owned(),
            detail: "`null` only works without modifiers".to_owned(),
        })
    };
    Ok(match kind {
        Kind::Eq => match v {
            RuleValue::Str(s) => Pred::Text(Text::compile(s, false, false).map_err(bad_regex)?),
            RuleValue::Int(i) => Pred::Num { int: Some(*i), float: *i as f64 },
            RuleValue::Float(x) => Pred::Num { int: None, float: *x },
            RuleValue::Bool(b) => Pred::Bool(*b),
            RuleValue::Null => Pred::Null,
        },
        Kind::Contains => Pred::Text(Text::compile(&text()?, true, true).map_err(bad_regex)?),
        Kind::StartsWith => Pred::Text(Text::compile(&text()?, false, true).map_err(bad_regex)?),
        Kind::EndsWith => Pred::Text(Text::compile(&text()?, true, false).map_err(bad_regex)?),
        Kind::Re => Pred::Regex(
            RegexBuilder::new(&text()?)
                .case_insensitive(re_i)
                .multi_line(re_m)
                .dot_matches_new_line(re_s)
                .build()
                .map_err(bad_regex)?,
        ),
        Kind::Cidr => {
            let cidr = match v {
                RuleValue::Str(s) => Cidr::parse(s),
                _ => None,
            };
            Pred::Cidr(
                cidr.ok_or_else(|| MatchError::BadCidr {
                    key: key.to_owned(),
                    value: v.to_string(),
                })?,
            )
        }
        Kind::Cmp(op) => {
            let n = match v {
                RuleValue::Int(i) => Some(*i as f64),
                RuleValue::Float(x) => Some(*x),
                RuleValue::Str(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(n) if n.is_finite() => Pred::Cmp(op, n),
                _ => {
                    return Err(MatchError::BadNumber {
                        key: key.to_owned(),
                        value: v.to_string(),
                    });
                }
            }
        }
        // Handled before values are compiled.
        Kind::Exists | Kind::FieldRef => Pred::Null,
    })
}

impl Pred {
    fn test(&self, v: FieldValue<'_>) -> bool {
        match self {
            Pred::Text(t) => with_text(v, |s| t.matches(s)),
            Pred::Regex(r) => with_text(v, |s| r.is_match(s)),
            Pred::Num { int, float } => match v {
                FieldValue::Int(x) => match int {
                    Some(i) => x == *i,
                    None => x as f64 == *float,
                },
                FieldValue::Float(x) => x == *float,
                FieldValue::Str(s) => {
                    let s = s.trim();
                    match (int, s.parse::<i64>()) {
                        (Some(i), Ok(x)) => x == *i,
                        _ => s.parse::<f64>().is_ok_and(|x| x == *float),
                    }
                }
                _ => false,
            },
            Pred::Bool(b) => match v {
                FieldValue::Bool(x) => x == *b,
                FieldValue::Str(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Pred::Null => false,
            Pred::Cidr(c) => match v {
                FieldValue::Ip(ip) => c.contains(ip),
                FieldValue::Str(s) => s.trim().parse::<IpAddr>().is_ok_and(|ip| c.contains(ip)),
                _ => false,
            },
            Pred::Cmp(op, n) => number(v).is_some_and(|x| op.apply(x, *n)),
        }
    }
}

/// A field value as a finite number, for `gt`/`gte`/`lt`/`lte`.
fn number(v: FieldValue<'_>) -> Option<f64> {
    let x = match v {
        FieldValue::Int(i) => i as f64,
        FieldValue::Float(x) => x,
        FieldValue::Str(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    x.is_finite().then_some(x)
}

/// Runs `f` on the text form of a value, formatted on the stack; set-valued fields match when
/// any member name does; objects have no text form.
fn with_text(v: FieldValue<'_>, f: impl Fn(&str) -> bool) -> bool {
    let mut buf = StackBuf::default();
    let formatted = match v {
        FieldValue::Str(s) => return f(s),
        FieldValue::Bool(b) => return f(if b { "true" } else { "false" }),
        FieldValue::Categories(c) => return c.names().any(f),
        FieldValue::Types(t) => return t.names().any(f),
        FieldValue::Json(_) => return false,
        FieldValue::Int(i) => fmt::Write::write_fmt(&mut buf, format_args!("{i}")),
        FieldValue::Float(x) => fmt::Write::write_fmt(&mut buf, format_args!("{x}")),
        FieldValue::Ip(ip) => fmt::Write::write_fmt(&mut buf, format_args!("{ip}")),
        FieldValue::Time(t) => fmt::Write::write_fmt(&mut buf, format_args!("{t}")),
    };
    formatted.is_ok() && f(buf.as_str())
}

/// A fixed buffer for formatting numbers, addresses and timestamps without allocating.
struct StackBuf {
    buf: [u8; 64],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        StackBuf { buf: [0; 64], len: 0 }
    }
}

impl StackBuf {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::text::contains_ascii_ci;
    use super::*;
    use crate::event::{Category, EventType, Original, Outcome, Sym, Timestamp};
    use proptest::prelude::*;

    fn s(v: &str) -> RuleValue {
        RuleValue::Str(v.to_owned())
    }

    fn ecs() -> Event {
        Event {
            dataset: Some(Sym::from_static("sshd")),
            category: Category::AUTHENTICATION | Category::IAM,
            kind: EventType::START,
            outcome: Some(Outcome::Failure),
            user_name: Some("Root".into()),
            user_id: Some("Ünïcødé-User".into()),
            source_ip: "203.0.113.7".parse().ok(),
            source_port: Some(42393),
            process_pid: Some(4211),
            process_command_line: Some(r"C:\Windows\System32\cmd.exe /c whoami *".into()),
            message: Some("Failed password for root from 203.0.113.7 port 42393 ssh2".into()),
            ..Event::default()
        }
    }

    fn cloudtrail() -> Event {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"eventName":"ConsoleLogin","sourceIPAddress":"198.51.100.4","v6":"2001:db8::1",
            "userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123:user/bob"},
            "resources":[{"ARN":"arn:aws:s3:::bucket-a"},{"ARN":"arn:aws:s3:::secret-b"}],
            "tags":["prod","pci"],"ports":[22,443],"errorCode":null,"readOnly":false,
            "count":3,"ratio":0.75,"size":"1024","additionalEventData":{"MFAUsed":"No"}}"#
                .into(),
        );
        Event { original: raw.ok().map(Original::new), ..Event::default() }
    }

    fn m(key: &str, values: &[RuleValue], e: &Event) -> bool {
        FieldMatcher::compile(key, values).unwrap().matches(e)
    }

    fn err(key: &str, values: &[RuleValue]) -> MatchError {
        FieldMatcher::compile(key, values).unwrap_err()
    }

    #[test]
    fn plain_equality_ignores_case() {
        let e = ecs();
        assert!(m("user.name", &[s("root")], &e));
        assert!(m("user.name", &[s("ROOT")], &e));
        assert!(!m("user.name", &[s("roo")], &e));
        assert!(m("event.outcome", &[s("Failure")], &e));
        assert!(!m("host.name", &[s("x")], &e));
        assert!(m("user.id", &[s("üNÏCØDÉ-user")], &e));
        assert!(!m("user.id", &[s("ünïcødé")], &e));
    }

    #[test]
    fn wildcards_and_escapes() {
        let e = ecs();
        assert!(m("user.name", &[s("*")], &e));
        assert!(!m("host.name", &[s("*")], &e));
        assert!(m("user.name", &[s("r*")], &e));
        assert!(m("user.name", &[s("*OT")], &e));
        assert!(m("user.name", &[s("*o*")], &e));
        assert!(m("user.name", &[s("r??t")], &e));
        assert!(!m("user.name", &[s("r?t")], &e));
        assert!(m("user.name", &[s("R*o*T")], &e));
        assert!(m("user.name", &[s("**")], &e));
        assert!(m("user.id", &[s("?nïcødé-*")], &e));
        assert!(m("user.id", &[s("*CØDÉ*")], &e));
        // `\*` is a literal star; a backslash before anything else is itself.
        let cmd = r"C:\Windows\System32\cmd.exe /c whoami \*";
        assert!(m("process.command_line", &[s(cmd)], &e));
        assert!(!m("process.command_line", &[s(r"C:\Windows\System32\cmd.exe /c whoami \?")], &e));
        assert!(m("process.command_line", &[s(r"c:\windows\\*")], &e));
        assert!(!m("process.command_line", &[s(r"c:\windows\*")], &e));
        let lit = Event { user_name: Some(r"a\b?".into()), ..Event::default() };
        assert!(m("user.name", &[s(r"a\\b\?")], &lit));
        assert!(!m(
            "user.name",
            &[s(r"a\\b\?")],
            &Event { user_name: Some(r"a\bx".into()), ..Event::default() }
        ));
        assert!(m(
            "user.name",
            &[s(r"a\b?")],
            &Event { user_name: Some(r"a\bx".into()), ..Event::default() }
        ));
        let empty = Event { user_name: Some("".into()), ..Event::default() };
        assert!(m("user.name", &[s("")], &empty));
        assert!(!m("user.name", &[s("")], &e));
        assert!(m("user.name", &[s("*")], &empty));
    }

    #[test]
    fn contains_startswith_endswith() {
        let e = ecs();
        assert!(m("message|contains", &[s("PASSWORD for")], &e));
        assert!(!m("message|contains", &[s("passwd")], &e));
        assert!(m("message|contains", &[s("password*203")], &e));
        assert!(m("message|contains", &[s("p?ssword")], &e));
        assert!(m("message|startswith", &[s("failed")], &e));
        assert!(!m("message|startswith", &[s("password")], &e));
        assert!(m("message|endswith", &[s("SSH2")], &e));
        assert!(m("message|endswith", &[s("ssh?")], &e));
        assert!(!m("message|endswith", &[s("ssh")], &e));
        assert!(m("message|contains", &[s("")], &e));
        assert!(m("source.port|contains", &[RuleValue::Int(239)], &e));
        assert!(m("source.ip|startswith", &[s("203.0.")], &e));
        assert!(m("user.id|contains", &[s("CØD")], &e));
    }

    #[test]
    fn lists_are_or_unless_all() {
        let e = ecs();
        assert!(m("message|contains", &[s("nope"), s("root")], &e));
        assert!(!m("message|contains", &[s("nope"), s("nada")], &e));
        assert!(m("message|contains|all", &[s("failed"), s("root"), s("ssh2")], &e));
        assert!(!m("message|contains|all", &[s("failed"), s("nope")], &e));
    }

    #[test]
    fn exists_true_and_false() {
        let e = ecs();
        let ct = cloudtrail();
        assert!(m("user.name|exists", &[RuleValue::Bool(true)], &e));
        assert!(!m("user.name|exists", &[RuleValue::Bool(false)], &e));
        assert!(m("host.name|exists", &[RuleValue::Bool(false)], &e));
        assert!(m("additionalEventData|exists", &[s("true")], &ct));
        assert!(m("resources.ARN|exists", &[RuleValue::Bool(true)], &ct));
        assert!(m("errorCode|exists", &[RuleValue::Bool(false)], &ct));
        assert!(m("nothing.here|exists", &[RuleValue::Bool(false)], &ct));
        assert!(!m("nothing.here|exists", &[RuleValue::Bool(true)], &e));
    }

    #[test]
    fn cidr_v4_v6_and_mapped() {
        let e = ecs();
        assert!(m("source.ip|cidr", &[s("203.0.113.0/24")], &e));
        assert!(!m("source.ip|cidr", &[s("10.0.0.0/8")], &e));
        assert!(m("source.ip|cidr", &[s("10.0.0.0/8"), s("203.0.0.0/16")], &e));
        assert!(m("source.ip|cidr", &[s("0.0.0.0/0")], &e));
        assert!(m("source.ip|cidr", &[s("203.0.113.7")], &e));
        assert!(m("source.ip|cidr", &[s("::ffff:203.0.113.0/120")], &e));
        assert!(!m("source.ip|cidr", &[s("2001:db8::/32")], &e));
        let mapped = Event { source_ip: "::ffff:10.1.2.3".parse().ok(), ..Event::default() };
        assert!(m("source.ip|cidr", &[s("10.0.0.0/8")], &mapped));
        let ct = cloudtrail();
        assert!(m("sourceIPAddress|cidr", &[s("198.51.100.0/24")], &ct));
        assert!(m("v6|cidr", &[s("2001:db8::/32")], &ct));
        assert!(!m("v6|cidr", &[s("2001:db9::/32")], &ct));
        assert!(!m("v6|cidr", &[s("::/0"), s("0.0.0.0/0")], &Event::default()));
        assert!(!m("eventName|cidr", &[s("0.0.0.0/0")], &ct));
    }

    #[test]
    fn regexes_and_flags() {
        let e = ecs();
        assert!(m("message|re", &[s(r"port \d+ ssh2$")], &e));
        assert!(!m("message|re", &[s("^failed")], &e));
        assert!(m("message|re", &[s("(?i)^failed")], &e));
        assert!(m("message|re|i", &[s("^failed")], &e));
        let two = Event { message: Some("a\nb".into()), ..Event::default() };
        assert!(!m("message|re", &[s("^b")], &two));
        assert!(m("message|re|m", &[s("^b")], &two));
        assert!(!m("message|re", &[s("a.b")], &two));
        assert!(m("message|re|s", &[s("a.b")], &two));
        assert!(m("source.port|re", &[s(r"^\d{5}$")], &e));
        assert!(m("resources.ARN|re", &[s("secret")], &cloudtrail()));
    }

    #[test]
    fn numeric_comparisons() {
        let e = ecs();
        let ct = cloudtrail();
        assert!(m("source.port|gt", &[RuleValue::Int(1024)], &e));
        assert!(!m("source.port|lt", &[RuleValue::Int(1024)], &e));
        assert!(m("source.port|gte", &[RuleValue::Int(42393)], &e));
        assert!(!m("source.port|gt", &[RuleValue::Int(42393)], &e));
        assert!(m("source.port|lte", &[s("42393")], &e));
        assert!(m("ratio|lt", &[RuleValue::Float(0.8)], &ct));
        assert!(!m("ratio|gte", &[RuleValue::Float(0.8)], &ct));
        assert!(m("size|gte", &[RuleValue::Int(1024)], &ct));
        assert!(m("ports|gt", &[RuleValue::Int(100)], &ct));
        assert!(!m("ports|gt", &[RuleValue::Int(1000)], &ct));
        assert!(!m("eventName|gt", &[RuleValue::Int(0)], &ct));
        assert!(!m("missing|lt", &[RuleValue::Int(0)], &ct));
    }

    #[test]
    fn numbers_booleans_and_null_without_modifiers() {
        let e = ecs();
        let ct = cloudtrail();
        assert!(m("process.pid", &[RuleValue::Int(4211)], &e));
        assert!(m("process.pid", &[s("4211")], &e));
        assert!(m("process.pid", &[RuleValue::Float(4211.0)], &e));
        assert!(!m("process.pid", &[RuleValue::Int(4212)], &e));
        assert!(m("count", &[RuleValue::Int(3)], &ct));
        assert!(m("size", &[RuleValue::Int(1024)], &ct));
        assert!(m("ratio", &[RuleValue::Float(0.75)], &ct));
        assert!(m("ratio", &[s("0.75")], &ct));
        assert!(m("readOnly", &[RuleValue::Bool(false)], &ct));
        assert!(m("readOnly", &[s("FALSE")], &ct));
        assert!(!m("readOnly", &[RuleValue::Bool(true)], &ct));
        assert!(m("errorCode", &[RuleValue::Null], &ct));
        assert!(m("missing", &[RuleValue::Null], &ct));
        assert!(!m("eventName", &[RuleValue::Null], &ct));
        assert!(m("eventName", &[RuleValue::Null, s("consolelogin")], &ct));
        assert!(m("host.name", &[RuleValue::Null], &e));
    }

    #[test]
    fn non_text_values_compare_by_their_text_form() {
        let e = Event { timestamp: Timestamp::from_secs_nanos(1_765_349_746, 0), ..ecs() };
        assert!(m("@timestamp|startswith", &[s("2025-12-10T06:55")], &e));
        assert!(m("source.ip", &[s("203.0.113.*")], &e));
        assert!(m("source.port", &[s("42393")], &e));
        assert!(m("ratio|startswith", &[s("0.7")], &cloudtrail()));
        assert!(m("readOnly|contains", &[s("als")], &cloudtrail()));
    }

    #[test]
    fn categories_and_types_match_any_member() {
        let e = ecs();
        assert!(m("event.category", &[s("authentication")], &e));
        assert!(m("event.category", &[s("IAM")], &e));
        assert!(!m("event.category", &[s("network")], &e));
        assert!(m("event.category|all", &[s("iam"), s("authentication")], &e));
        assert!(m("event.type", &[s("start")], &e));
        assert!(m("event.category|startswith", &[s("auth")], &e));
    }

    #[test]
    fn original_record_fields_and_arrays() {
        let ct = cloudtrail();
        assert!(m("eventName", &[s("consolelogin")], &ct));
        assert!(m("userIdentity.arn|endswith", &[s(":user/bob")], &ct));
        assert!(m("resources.ARN", &[s("arn:aws:s3:::secret-b")], &ct));
        assert!(m("resources.ARN|contains", &[s("bucket")], &ct));
        assert!(m("resources.0.ARN|contains", &[s("bucket")], &ct));
        assert!(!m("resources.0.ARN|contains", &[s("secret")], &ct));
        assert!(m("resources.ARN|contains|all", &[s("bucket"), s("secret")], &ct));
        assert!(!m("resources.ARN", &[s("nope")], &ct));
        assert!(m("tags", &[s("PCI")], &ct));
        assert!(!m("tags", &[s("dev")], &ct));
        assert!(m("ports", &[RuleValue::Int(443)], &ct));
        // Objects only answer `exists`.
        assert!(!m("additionalEventData", &[s("*")], &ct));
        assert!(m("additionalEventData.MFAUsed", &[s("no")], &ct));
        assert!(!m("eventName", &[s("*")], &ecs()));
    }

    #[test]
    fn fieldref_compares_with_another_field() {
        let raw = serde_json::value::RawValue::from_string(
            r#"{"userIdentity":{"arn":"arn:aws:iam::1:user/Bob","userName":"bob"},
            "requestParameters":{"userName":"bob"},"target":"ARN:AWS:IAM::1:USER/BOB",
            "other":"alice","n":3,"m":"3","list":["x","bob"]}"#
                .into(),
        );
        let e = Event { original: raw.ok().map(Original::new), ..Event::default() };
        // Equal to the other field's value, ignoring ASCII case as plain equality does.
        assert!(m("userIdentity.userName|fieldref", &[s("requestParameters.userName")], &e));
        assert!(m("userIdentity.arn|fieldref", &[s("target")], &e));
        assert!(!m("userIdentity.arn|fieldref", &[s("requestParameters.userName")], &e));
        // A list of fields is OR; numbers compare by their text form; arrays by any element.
        assert!(m("other|fieldref", &[s("target"), s("other")], &e));
        assert!(m("n|fieldref", &[s("m")], &e));
        assert!(m("list|fieldref", &[s("requestParameters.userName")], &e));
        // Absent on either side is not a match, so `not` a fieldref filter keeps the event.
        assert!(!m("missing|fieldref", &[s("missing2")], &e));
        assert!(!m("other|fieldref", &[s("missing")], &e));
        assert_eq!(err("a|fieldref|all", &[s("b")]).kind(), "conflicting");
        assert_eq!(err("a|fieldref", &[RuleValue::Int(1)]).kind(), "conflicting");
        assert_eq!(err("a|fieldref|contains", &[s("b")]).kind(), "conflicting");
    }

    #[test]
    fn errors_name_their_key() {
        for modifier in ["base64", "base64offset", "windash", "utf16le", "wide", "expand", ""] {
            let key = format!("a|{modifier}");
            match err(&key, &[s("x")]) {
                MatchError::UnknownModifier { key: k, modifier: got } => {
                    assert_eq!((k.as_str(), got.as_str()), (key.as_str(), modifier));
                }
                other => panic!("{other:?}"),
            }
        }
        let e = err("a|re", &[s("(")]);
        assert!(matches!(&e, MatchError::BadRegex { key, .. } if key == "a|re"), "{e:?}");
        assert_eq!(e.kind(), "bad_regex");
        for bad in ["10.0.0.0/33", "x/8", "::/129", "10.0.0.0/"] {
            let e = err("ip|cidr", &[s(bad)]);
            assert!(
                matches!(&e, MatchError::BadCidr { key, value } if key == "ip|cidr" && value == bad)
            );
        }
        assert_eq!(err("ip|cidr", &[RuleValue::Int(1)]).kind(), "bad_cidr");
        let e = err("n|gt", &[s("ten")]);
        assert!(
            matches!(&e, MatchError::BadNumber { key, value } if key == "n|gt" && value == "ten")
        );
        assert_eq!(err("n|lte", &[s("NaN")]).kind(), "bad_number");
        assert_eq!(err("n|gte", &[RuleValue::Bool(true)]).kind(), "bad_number");
        for (key, values) in [
            ("a|contains|re", vec![s("x")]),
            ("a|i", vec![s("x")]),
            ("a|exists", vec![s("maybe")]),
            ("a|exists|all", vec![RuleValue::Bool(true)]),
            ("a|exists", vec![RuleValue::Bool(true), RuleValue::Bool(false)]),
            ("a|contains", vec![RuleValue::Null]),
            ("a", vec![]),
            ("|contains", vec![s("x")]),
        ] {
            let e = err(key, &values);
            assert!(matches!(&e, MatchError::Conflicting { key: k, .. } if k == key), "{e:?}");
            assert_eq!(e.kind(), "conflicting");
        }
        assert_eq!(err("a|nope", &[s("x")]).kind(), "unknown_modifier");
        assert!(err("a|nope", &[s("x")]).to_string().contains("a|nope"));
    }

    #[test]
    fn field_is_resolved_once() {
        let f = FieldMatcher::compile("source.ip|cidr", &[s("10.0.0.0/8")]).unwrap();
        assert_eq!(f.field(), &Field::SourceIp);
        let f = FieldMatcher::compile("userIdentity.arn", &[s("x")]).unwrap();
        assert_eq!(f.field(), &Field::Original("userIdentity.arn".into()));
    }

    #[test]
    fn keywords_search_message_then_original() {
        let k = KeywordMatcher::compile(&[s("PASSWORD"), s("sudo")]).unwrap();
        assert!(k.matches(&ecs()));
        assert!(!k.matches(&cloudtrail()));
        let k = KeywordMatcher::compile(&[s("console*bob")]).unwrap();
        assert!(!k.matches(&ecs()));
        assert!(k.matches(&cloudtrail()));
        assert!(!k.matches(&Event::default()));
        let k = KeywordMatcher::compile(&[s("port ?????")]).unwrap();
        assert!(k.matches(&ecs()));
        assert_eq!(KeywordMatcher::compile(&[]).unwrap_err().kind(), "conflicting");
        assert_eq!(KeywordMatcher::compile(&[RuleValue::Null]).unwrap_err().kind(), "conflicting");
    }

    #[test]
    fn ascii_contains_finds_every_position() {
        assert!(contains_ascii_ci(b"xxAbC", b"abc"));
        assert!(contains_ascii_ci(b"aab", b"ab"));
        assert!(!contains_ascii_ci(b"ab", b"abc"));
        assert!(contains_ascii_ci(b"", b""));
        assert!(!contains_ascii_ci(b"", b"a"));
    }

    /// The reference: a Sigma wildcard translated naively to an anchored regex.
    /// `contains` wraps the parsed pattern, so a trailing `\\` stays a literal backslash.
    fn reference(pattern: &str, text: &str, contains: bool) -> bool {
        let mut re = String::from(if contains { "(?is)^.*" } else { "(?is)^" });
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                    re.push_str(&regex::escape(&chars.next().unwrap().to_string()));
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push_str(if contains { ".*$" } else { "$" });
        Regex::new(&re).unwrap().is_match(text)
    }

    proptest! {
        #[test]
        fn wildcard_agrees_with_reference(
            pattern in "[aAbé*?\\\\]{0,8}",
            text in "[aAbBéÉ*?\\\\]{0,10}",
        ) {
            let e = Event { user_name: Some(text.as_str().into()), ..Event::default() };
            let got = m("user.name", &[RuleValue::Str(pattern.clone())], &e);
            prop_assert_eq!(got, reference(&pattern, &text, false));
            let got = m("user.name|contains", &[RuleValue::Str(pattern.clone())], &e);
            prop_assert_eq!(got, reference(&pattern, &text, true));
        }

        #[test]
        fn compile_never_panics(key in "\\PC{0,20}", value in "\\PC{0,12}") {
            let _ = FieldMatcher::compile(&key, &[RuleValue::Str(value.clone())]);
            let _ = FieldMatcher::compile(&key, &[RuleValue::Int(1), RuleValue::Null]);
            let _ = KeywordMatcher::compile(&[RuleValue::Str(value)]);
        }

        #[test]
        fn compile_never_panics_on_modifier_keys(
            key in "[a.]{1,3}(\\|(contains|startswith|endswith|re|cidr|all|exists|gt|lte|i|m|s|x)){0,3}",
            value in "[0-9a./:*?\\\\(]{0,10}",
        ) {
            if let Ok(f) = FieldMatcher::compile(&key, &[RuleValue::Str(value)]) {
                let _ = f.matches(&ecs());
                let _ = f.matches(&cloudtrail());
            }
        }
    }
}
