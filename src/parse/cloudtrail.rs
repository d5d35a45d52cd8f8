//! CloudTrail records to events: time, identity, source address, outcome and ECS categories.
//!
//! Only the handful of fields that become ECS fields are deserialized (borrowed from the record
//! text, unknown fields skipped); the whole record is kept as [`Event::original`], so rules can
//! still ask for `userAgent` or `requestParameters.bucketName` by CloudTrail's own names.
//!
//! Beside CloudTrail's camelCase keys, the all-lowercase spelling (`eventname`, `useridentity`)
//! is accepted for the mapped fields: that is how records come back out of case-folding stores
//! (Athena, Snowflake; Panther's own test events use it).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};

use super::{ParseError, Parser, utf8};
use crate::event::{
    Category, Cloud, CompactString, Event, EventType, Interner, Original, Outcome, Sym, Timestamp,
};
use crate::source::RawRecord;

/// `event.dataset` of every CloudTrail event.
const DATASET: Sym = Sym::from_static("cloudtrail");
/// `cloud.provider` of every CloudTrail event.
const PROVIDER_AWS: Sym = Sym::from_static("aws");

/// Parses one CloudTrail record (a JSON object) per [`RawRecord`] into one [`Event`].
#[derive(Default)]
pub struct CloudTrailParser {
    // Action, service and region repeat across records; interning them makes each a shared
    // pointer instead of an allocation per event.
    actions: Interner,
    providers: Interner,
    regions: Interner,
}

impl Parser for CloudTrailParser {
    fn parse(&mut self, record: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError> {
        let text = utf8(record)?;
        if text.trim_start().as_bytes().first() != Some(&b'{') {
            // Valid JSON of the wrong kind deserves a clearer word than a type error.
            return Err(match serde_json::from_str::<IgnoredAny>(text) {
                Ok(_) => ParseError::NotAnObject { format: "CloudTrail" },
                Err(e) => ParseError::json(e),
            });
        }
        let rec: Record<'_> = serde_json::from_str(text).map_err(ParseError::json)?;
        let event = self.map(&rec, record)?;
        // serde_json just parsed the whole text (trailing bytes included), so it is JSON; this
        // is the one copy of the record.
        // Kept without the JSON whitespace around it, as the document's own text: read back
        // from ECS JSON (`event.original`) it is the same document (found by fuzzing).
        let text = text.trim_matches([' ', '\t', '\n', '\r']);
        out.push(Event { original: Some(original(text)?), ..event });
        Ok(())
    }
}

/// serde_json's nesting limit when it builds a document's tree (what rules reading the
/// record's own fields use). The typed parse above skips what it does not map without that
/// limit, so a deeper record would parse and then answer every lookup with nothing.
const JSON_DEPTH_LIMIT: usize = 128;

/// The record's original, or [`ParseError::TooDeep`] when its tree cannot be built. Counting
/// `{` and `[` bytes (strings included) bounds the depth from above, so the common record costs
/// one vectorized count; only one with that many brackets is parsed into its tree here, which is
/// then kept for the rules rather than parsed again.
fn original(text: &str) -> Result<Original, ParseError> {
    // A plain byte count: the compiler vectorizes it, where finding each bracket in turn
    // (memchr2_iter) cost a tenth of the parse in the bench.
    let brackets = text.as_bytes().iter().filter(|&&b| b == b'{' || b == b'[').count();
    if brackets < JSON_DEPTH_LIMIT {
        return Ok(Original::from_parsed_text(text.into()));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => Ok(Original::with_value(text.into(), v)),
        // The typed parse just read this text as JSON: the only way left to fail is depth.
        Err(_) => Err(ParseError::TooDeep { format: "CloudTrail", limit: JSON_DEPTH_LIMIT }),
    }
}

impl CloudTrailParser {
    /// The ECS fields of one record (everything but the original).
    fn map(&mut self, rec: &Record<'_>, raw: &RawRecord) -> Result<Event, ParseError> {
        let name = match &rec.event_name {
            Text::Str(s) if !s.is_empty() => s.as_ref(),
            Text::Absent | Text::Str(_) => return Err(bad("eventName", "missing")),
            Text::Other => return Err(bad("eventName", "is not a string")),
        };
        let timestamp = match &rec.event_time {
            Text::Str(s) => parse_event_time(s)
                .ok_or_else(|| bad("eventTime", "is not an RFC 3339 timestamp"))?,
            Text::Absent => raw.received.ok_or_else(|| bad("eventTime", "missing"))?,
            Text::Other => return Err(bad("eventTime", "is not a string")),
        };
        let source = rec.event_source.str();
        let identity = rec.user_identity.0.as_ref();
        let (category, kind) = classify(source.unwrap_or(""), name);

        let error_code = rec.error_code.str();
        let console_failure = name == "ConsoleLogin"
            && rec.response_elements.0.as_ref().and_then(|r| r.console_login.str())
                == Some("Failure");
        let (outcome, reason) = if let Some(code) = error_code {
            (Outcome::Failure, Some(code))
        } else if console_failure {
            (Outcome::Failure, rec.error_message.str())
        } else {
            (Outcome::Success, None)
        };

        let (source_ip, source_domain) = match rec.source_ip.str() {
            Some(s) => match s.parse::<IpAddr>() {
                Ok(ip) => (Some(ip), None),
                Err(_) => (None, Some(CompactString::from(s))),
            },
            None => (None, None),
        };

        let account = rec.recipient_account_id.str().or(identity.and_then(|i| i.account_id.str()));
        let region = rec.aws_region.str();
        let cloud = Cloud {
            provider: Some(PROVIDER_AWS),
            account_id: account.map(CompactString::from),
            region: region.map(|r| self.regions.intern(r)),
        };

        Ok(Event {
            timestamp,
            created: raw.received,
            dataset: Some(DATASET),
            provider: source.map(|s| self.providers.intern(s)),
            category,
            kind,
            action: Some(self.actions.intern(name)),
            outcome: Some(outcome),
            reason: reason.map(CompactString::from),
            user_name: identity.and_then(Identity::user_name).map(CompactString::from),
            user_id: identity.and_then(|i| i.principal_id.str()).map(CompactString::from),
            source_ip,
            source_domain,
            cloud: Some(Box::new(cloud)),
            log_offset: Some(raw.origin.offset),
            ..Event::default()
        })
    }
}

fn bad(field: &'static str, problem: &'static str) -> ParseError {
    ParseError::CloudTrail { field, problem }
}

/// The fields of a record that map to ECS; everything else is skipped unread.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default, rename = "eventTime", alias = "eventtime")]
    event_time: Text<'a>,
    #[serde(borrow, default, rename = "eventName", alias = "eventname")]
    event_name: Text<'a>,
    #[serde(borrow, default, rename = "eventSource", alias = "eventsource")]
    event_source: Text<'a>,
    #[serde(borrow, default, rename = "awsRegion", alias = "awsregion")]
    aws_region: Text<'a>,
    #[serde(borrow, default, rename = "recipientAccountId", alias = "recipientaccountid")]
    recipient_account_id: Text<'a>,
    #[serde(borrow, default, rename = "errorCode", alias = "errorcode")]
    error_code: Text<'a>,
    #[serde(borrow, default, rename = "errorMessage", alias = "errormessage")]
    error_message: Text<'a>,
    #[serde(borrow, default, rename = "sourceIPAddress", alias = "sourceipaddress")]
    source_ip: Text<'a>,
    #[serde(borrow, default, rename = "userIdentity", alias = "useridentity")]
    user_identity: Obj<Identity<'a>>,
    #[serde(borrow, default, rename = "responseElements", alias = "responseelements")]
    response_elements: Obj<ResponseElements<'a>>,
}

/// `userIdentity`: who made the call.
#[derive(Deserialize)]
struct Identity<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Text<'a>,
    #[serde(borrow, default, rename = "userName", alias = "username")]
    user_name: Text<'a>,
    #[serde(borrow, default)]
    arn: Text<'a>,
    #[serde(borrow, default, rename = "principalId", alias = "principalid")]
    principal_id: Text<'a>,
    #[serde(borrow, default, rename = "accountId", alias = "accountid")]
    account_id: Text<'a>,
}

impl Identity<'_> {
    /// `user.name`: the root user as `root`; else the IAM user name; else the ARN's last path
    /// part (for an assumed role that is the session name, usually the human or the tool
    /// behind it); else the principal id.
    fn user_name(&self) -> Option<&str> {
        if self.kind.str() == Some("Root") {
            return Some("root");
        }
        self.user_name
            .str()
            .or_else(|| self.arn.str().and_then(arn_name))
            .or(self.principal_id.str())
    }
}

/// The last `/`-separated part of an ARN's resource (`arn:aws:sts::1:assumed-role/R/alice` ->
/// `alice`, `arn:aws:iam::1:root` -> `root`); `None` for a string that is not an ARN.
fn arn_name(arn: &str) -> Option<&str> {
    // arn:partition:service:region:account:resource; the resource may itself contain ':'.
    let resource = arn.strip_prefix("arn:")?.splitn(5, ':').nth(4)?;
    resource.rsplit('/').next().filter(|s| !s.is_empty())
}

/// `responseElements`: only the console sign-in verdict is read.
#[derive(Deserialize)]
struct ResponseElements<'a> {
    #[serde(borrow, default, rename = "ConsoleLogin", alias = "consolelogin")]
    console_login: Text<'a>,
}

/// A field expected to hold a string. Other JSON types are kept apart rather than failing the
/// whole record, since a field we merely map (a region, an error code) being odd is no reason
/// to lose the event.
#[derive(Default)]
enum Text<'a> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// A string, borrowed unless it had escapes.
    Str(Cow<'a, str>),
    /// Any other JSON value.
    Other,
}

impl Text<'_> {
    /// The string, if it is a non-empty one.
    fn str(&self) -> Option<&str> {
        match self {
            Text::Str(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text<'a>, E> {
                Ok(Text::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Text<'a>, E> {
                Ok(Text::Absent)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Text<'a>, E> {
                Ok(Text::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Text<'a>, E> {
                Ok(Text::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Text<'a>, E> {
                Ok(Text::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Text<'a>, E> {
                Ok(Text::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Text<'a>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Text<'a>, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A field expected to hold an object; anything else (`null`, a string) reads as absent, for
/// the same reason as [`Text`].
struct Obj<T>(Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(a)).map(|t| Obj(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Obj<T>, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(None))
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// What an API verb does to the thing it names.
#[derive(Clone, Copy)]
enum Verb {
    Create,
    Delete,
    Change,
}

/// Verb prefixes of AWS API names (`CreateUser`, `StopLogging`). A prefix counts only when an
/// upper-case letter or the end follows, so `Setup...` is not `Set`.
const VERBS: &[(&str, Verb)] = &[
    ("Create", Verb::Create),
    ("Add", Verb::Create),
    ("Attach", Verb::Create),
    ("Run", Verb::Create),
    ("Register", Verb::Create),
    ("Import", Verb::Create),
    ("Allocate", Verb::Create),
    ("Delete", Verb::Delete),
    ("Remove", Verb::Delete),
    ("Detach", Verb::Delete),
    ("Deregister", Verb::Delete),
    ("Terminate", Verb::Delete),
    ("Release", Verb::Delete),
    ("Put", Verb::Change),
    ("Update", Verb::Change),
    ("Change", Verb::Change),
    ("Set", Verb::Change),
    ("Modify", Verb::Change),
    ("Stop", Verb::Change),
    ("Start", Verb::Change),
    ("Authorize", Verb::Change),
    ("Revoke", Verb::Change),
    ("Enable", Verb::Change),
    ("Disable", Verb::Change),
    ("Associate", Verb::Change),
    ("Disassociate", Verb::Change),
    ("Replace", Verb::Change),
    ("Reset", Verb::Change),
    ("Restore", Verb::Change),
    ("Tag", Verb::Change),
    ("Untag", Verb::Change),
    ("Upload", Verb::Change),
    ("Deactivate", Verb::Change),
    ("Leave", Verb::Change),
];

/// The verb an API name starts with.
fn verb(name: &str) -> Option<Verb> {
    VERBS.iter().find_map(|&(prefix, v)| {
        let rest = name.strip_prefix(prefix)?;
        rest.chars().next().is_none_or(|c| c.is_ascii_uppercase()).then_some(v)
    })
}

/// STS calls that hand out credentials: ECS counts them as authentication.
const STS_AUTH: &[&str] = &[
    "AssumeRole",
    "AssumeRoleWithSAML",
    "AssumeRoleWithWebIdentity",
    "GetSessionToken",
    "GetFederationToken",
];

/// ECS `event.category` and `event.type` for a call, decided in this order:
/// 1. sign-in (`ConsoleLogin`, anything from `signin.amazonaws.com`) and the credential-issuing
///    STS calls ([`STS_AUTH`]): `authentication` / `start`;
/// 2. `iam.amazonaws.com`: `iam`, typed by [`VERBS`] (`creation`, `deletion`, `change`; `info`
///    for the rest, reads such as `ListUsers`), plus `user` / `group` when the API name says
///    `User` / `Group`;
/// 3. anything else with a verb in [`VERBS`]: `configuration` with that verb's type;
/// 4. otherwise (reads such as `Describe*`, `Get*`, `List*`): no category.
fn classify(source: &str, name: &str) -> (Category, EventType) {
    if name == "ConsoleLogin"
        || source == "signin.amazonaws.com"
        || (source == "sts.amazonaws.com" && STS_AUTH.contains(&name))
    {
        return (Category::AUTHENTICATION, EventType::START);
    }
    let verb_type = |v: Verb| match v {
        Verb::Create => EventType::CREATION,
        Verb::Delete => EventType::DELETION,
        Verb::Change => EventType::CHANGE,
    };
    if source == "iam.amazonaws.com" {
        let mut kind = verb(name).map_or(EventType::INFO, verb_type);
        if name.contains("User") {
            kind = kind | EventType::USER;
        }
        if name.contains("Group") {
            kind = kind | EventType::GROUP;
        }
        return (Category::IAM, kind);
    }
    match verb(name) {
        Some(v) => (Category::CONFIGURATION, verb_type(v)),
        None => (Category::empty(), EventType::empty()),
    }
}

/// Parses CloudTrail's `eventTime`: RFC 3339 (`2023-07-10T11:42:31Z`, any fraction, `Z` or an
/// offset), and also a space for the `T` with no zone, read as UTC, which is how records look
/// after a round trip through Panther or a SQL store. Hand-written because it runs once per
/// record and CloudTrail's shape is fixed.
pub fn parse_event_time(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to]
            .iter()
            .try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; like chrono, count it as the next second's start.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if let Some((&b'.', frac)) = rest.split_first() {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        for (i, &c) in frac[..digits].iter().enumerate() {
            if i < 9 {
                nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
            }
        }
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        [] if b[10] == b' ' => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digit = |c: u8| c.is_ascii_digit().then(|| i64::from(c - b'0'));
            let (h, m) = (digit(*h1)? * 10 + digit(*h2)?, digit(*m1)? * 10 + digit(*m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Timestamp::checked_from_secs_nanos(secs, nanos)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::FieldValue;
    use crate::source::Origin;
    use bytes::Bytes;

    fn raw(text: &str) -> RawRecord {
        RawRecord {
            bytes: Bytes::copy_from_slice(text.as_bytes()),
            origin: Origin { source: Sym::from_static("test"), record: 1, offset: 0 },
            received: None,
        }
    }

    fn parse(text: &str) -> Result<Event, ParseError> {
        let mut out = Vec::new();
        CloudTrailParser::default().parse(&raw(text), &mut out)?;
        assert_eq!(out.len(), 1);
        Ok(out.remove(0))
    }

    /// A rule reading the record's own fields must not be evaded by nesting: a record its
    /// tree cannot hold is set aside, one that fits is read whole.
    #[test]
    fn records_nested_too_deep_are_set_aside_not_emitted_blind() {
        let nested = |levels: usize| {
            format!(
                "{{\"eventName\":\"ConsoleLogin\",\"eventTime\":\"2024-01-01T00:00:00Z\",\"userIdentity\":{{\"type\":\"Root\"}},\"x\":{}{}}}",
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        let e = parse(&nested(120)).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(e.get("userIdentity.type"), Some(crate::event::FieldValue::Str("Root")));
        let e = parse(&nested(200));
        assert!(matches!(e, Err(ParseError::TooDeep { limit: 128, .. })), "{e:?}");
        assert_eq!(e.err().map(|x| x.kind()), Some("too_deep"));
    }

    /// Found by the `cloudtrail_record` fuzz target: whitespace around the record made the
    /// original text differ from what ECS JSON reads back.
    #[test]
    fn whitespace_around_a_record_is_not_part_of_the_original() {
        let e =
            parse(" \t\n{\"eventName\":\"GetUser\",\"eventTime\":\"2024-01-01T00:00:00Z\"}\r\n")
                .unwrap_or_else(|err| panic!("{err}"));
        let original = e.original.as_ref().map(|o| o.raw().to_owned());
        assert_eq!(
            original.as_deref(),
            Some("{\"eventName\":\"GetUser\",\"eventTime\":\"2024-01-01T00:00:00Z\"}")
        );
        let mut json = Vec::new();
        crate::event::write_json(&e, &mut json);
        let back = Event::from_json(std::str::from_utf8(&json).unwrap_or_default());
        assert_eq!(back.ok(), Some(e));
    }

    #[test]
    fn event_time_agrees_with_chrono() {
        for secs in (-2_000_000_000i64..4_000_000_000).step_by(86_399 * 13 + 7) {
            let t = chrono::DateTime::from_timestamp(secs, 123_456_000).unwrap();
            for fmt in ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.6f%:z", "%Y-%m-%dT%H:%M:%S%.3fZ"]
            {
                let s = t.format(fmt).to_string();
                let want = Timestamp::parse_rfc3339(&s);
                assert_eq!(parse_event_time(&s), want, "{s}");
                assert!(want.is_some());
            }
        }
        let want = Timestamp::parse_rfc3339("2023-07-10T13:42:31.5+02:00");
        assert_eq!(parse_event_time("2023-07-10T13:42:31.5+02:00"), want);
        assert_eq!(parse_event_time("2023-07-10T08:12:31.5-03:30"), want);
    }

    #[test]
    fn event_time_accepts_panther_form_and_rejects_junk() {
        assert_eq!(
            parse_event_time("2025-01-21 17:49:47.000000000"),
            parse_event_time("2025-01-21T17:49:47Z")
        );
        assert_eq!(
            parse_event_time("2022-11-21 18:06:52"),
            parse_event_time("2022-11-21T18:06:52Z")
        );
        for junk in [
            "redacted",
            "...",
            "2023-07-10T11:42:31",
            "2023-02-29T00:00:00Z",
            "2023-07-10T24:00:00Z",
            "2023-07-10T11:42:31.Z",
            "2023-07-10T11:42:31+0200",
            "2023-07-10T11:42:31Zjunk",
            "2023-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_event_time(junk), None, "{junk}");
        }
    }

    #[test]
    fn verbs_need_a_word_boundary() {
        assert!(matches!(verb("CreateUser"), Some(Verb::Create)));
        assert!(matches!(verb("StopLogging"), Some(Verb::Change)));
        assert!(matches!(verb("Tag"), Some(Verb::Change)));
        assert!(verb("DescribeInstances").is_none());
        assert!(verb("Setup").is_none());
        assert!(verb("Putty").is_none());
    }

    #[test]
    fn categories_follow_the_table() {
        let c = |s, n| classify(s, n);
        let auth = (Category::AUTHENTICATION, EventType::START);
        assert_eq!(c("signin.amazonaws.com", "ConsoleLogin"), auth);
        assert_eq!(c("signin.amazonaws.com", "CheckMfa"), auth);
        assert_eq!(c("sts.amazonaws.com", "AssumeRoleWithSAML"), auth);
        assert_eq!(c("sts.amazonaws.com", "GetSessionToken"), auth);
        assert_eq!(
            c("sts.amazonaws.com", "GetCallerIdentity"),
            (Category::empty(), EventType::empty())
        );
        assert_eq!(
            c("iam.amazonaws.com", "CreateUser"),
            (Category::IAM, EventType::CREATION | EventType::USER)
        );
        assert_eq!(
            c("iam.amazonaws.com", "AddUserToGroup"),
            (Category::IAM, EventType::CREATION | EventType::USER | EventType::GROUP)
        );
        assert_eq!(
            c("iam.amazonaws.com", "DetachRolePolicy"),
            (Category::IAM, EventType::DELETION)
        );
        assert_eq!(
            c("iam.amazonaws.com", "DeleteGroup"),
            (Category::IAM, EventType::DELETION | EventType::GROUP)
        );
        assert_eq!(
            c("iam.amazonaws.com", "UpdateLoginProfile"),
            (Category::IAM, EventType::CHANGE)
        );
        assert_eq!(
            c("iam.amazonaws.com", "ListUsers"),
            (Category::IAM, EventType::INFO | EventType::USER)
        );
        assert_eq!(
            c("cloudtrail.amazonaws.com", "StopLogging"),
            (Category::CONFIGURATION, EventType::CHANGE)
        );
        assert_eq!(
            c("ec2.amazonaws.com", "AuthorizeSecurityGroupIngress"),
            (Category::CONFIGURATION, EventType::CHANGE)
        );
        assert_eq!(
            c("s3.amazonaws.com", "DeleteBucket"),
            (Category::CONFIGURATION, EventType::DELETION)
        );
        assert_eq!(
            c("ec2.amazonaws.com", "DescribeInstances"),
            (Category::empty(), EventType::empty())
        );
    }

    #[test]
    fn arn_names() {
        assert_eq!(arn_name("arn:aws:sts::1:assumed-role/Role/session"), Some("session"));
        assert_eq!(arn_name("arn:aws:iam::1:user/path/bob"), Some("bob"));
        assert_eq!(arn_name("arn:aws:iam::1:root"), Some("root"));
        assert_eq!(arn_name("arn:aws:test_arn"), None);
        assert_eq!(arn_name("AIDAEXAMPLE"), None);
    }

    #[test]
    fn identity_falls_back_from_user_name_to_arn_to_principal() {
        let name = |ui: &str| {
            parse(&format!(
                r#"{{"eventName":"X","eventTime":"2024-01-01T00:00:00Z","userIdentity":{ui}}}"#
            ))
            .unwrap()
            .user_name
        };
        assert_eq!(
            name(r#"{"type":"IAMUser","userName":"bob","arn":"arn:aws:iam::1:user/x"}"#).as_deref(),
            Some("bob")
        );
        assert_eq!(
            name(r#"{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/R/s"}"#).as_deref(),
            Some("s")
        );
        assert_eq!(
            name(r#"{"type":"AWSAccount","principalId":"AIDA:x"}"#).as_deref(),
            Some("AIDA:x")
        );
        assert_eq!(
            name(r#"{"type":"Root","arn":"arn:aws:iam::1:root","userName":"acme"}"#).as_deref(),
            Some("root")
        );
        assert_eq!(name(r#"{"type":"AWSService","invokedBy":"ec2.amazonaws.com"}"#), None);
        assert_eq!(name(r#""weird""#), None);
    }

    #[test]
    fn not_an_object_and_missing_name_are_rejected() {
        assert!(matches!(parse("[1,2]"), Err(ParseError::NotAnObject { .. })));
        assert!(matches!(parse(" null"), Err(ParseError::NotAnObject { .. })));
        assert!(matches!(parse("nope"), Err(ParseError::Json { .. })));
        assert!(matches!(parse(r#"{"eventName":"X""#), Err(ParseError::Json { .. })));
        let e = parse(r#"{"eventTime":"2024-01-01T00:00:00Z"}"#).unwrap_err();
        assert!(
            matches!(e, ParseError::CloudTrail { field: "eventName", problem: "missing" }),
            "{e}"
        );
        assert_eq!(e.kind(), "bad_cloudtrail_record");
        let e = parse(r#"{"eventName":7,"eventTime":"2024-01-01T00:00:00Z"}"#).unwrap_err();
        assert!(matches!(e, ParseError::CloudTrail { field: "eventName", .. }), "{e}");
    }

    #[test]
    fn event_time_missing_uses_received_else_errors() {
        let e = parse(r#"{"eventName":"X"}"#).unwrap_err();
        assert!(
            matches!(e, ParseError::CloudTrail { field: "eventTime", problem: "missing" }),
            "{e}"
        );
        let e = parse(r#"{"eventName":"X","eventTime":"yesterday"}"#).unwrap_err();
        assert!(matches!(e, ParseError::CloudTrail { field: "eventTime", .. }), "{e}");
        let mut rec = raw(r#"{"eventName":"X"}"#);
        rec.received = Some(Timestamp(42));
        let mut out = Vec::new();
        CloudTrailParser::default().parse(&rec, &mut out).unwrap();
        assert_eq!(out[0].timestamp, Timestamp(42));
        assert_eq!(out[0].created, Some(Timestamp(42)));
    }

    #[test]
    fn odd_types_in_mapped_fields_do_not_lose_the_event() {
        let e = parse(
            r#"{"eventName":"X","eventTime":"2024-01-01T00:00:00Z","awsRegion":5,"userIdentity":null,
               "responseElements":"x","sourceIPAddress":{"a":[1]},"errorCode":"","recipientAccountId":"1\u00322"}"#,
        )
        .unwrap();
        assert_eq!(e.cloud.as_ref().and_then(|c| c.region.clone()), None);
        assert_eq!(e.cloud.as_ref().and_then(|c| c.account_id.clone()).as_deref(), Some("122"));
        assert_eq!(e.outcome, Some(Outcome::Success));
        assert_eq!(e.source_ip, None);
        assert_eq!(e.get("awsRegion"), Some(FieldValue::Int(5)));
    }

    #[test]
    fn lowercase_keys_map_too() {
        let e = parse(r#"{"eventname":"CreateIPSet","eventsource":"guardduty.amazonaws.com","eventtime":"2022-07-17 04:50:23","awsregion":"us-east-1"}"#)
            .unwrap();
        assert_eq!(e.action.as_deref(), Some("CreateIPSet"));
        assert_eq!(e.timestamp, parse_event_time("2022-07-17T04:50:23Z").unwrap());
        assert_eq!(e.category, Category::CONFIGURATION);
    }
}
