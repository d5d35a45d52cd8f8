//! Syslog lines (RFC 3164 and RFC 5424, via `syslog_loose`) into events, with the application
//! extractors filling in who and what.
//!
//! RFC 3164 timestamps carry neither year nor zone. The zone is configured (an IANA name, so
//! daylight saving is right for every line); the year comes from a reference clock, with the
//! rollover rule below, computed once per day of reference time rather than per line.

use chrono::Datelike;
use chrono_tz::Tz;
use syslog_loose::{IncompleteDate, ProcId, Protocol, Variant};

use super::extract::Extractors;
use super::rfc3164::{self, OffsetCache};
use super::{ParseError, Parser, utf8};
use crate::event::{CompactString, Event, Interner, SdElement, Sym, SyslogMeta, Timestamp};
use crate::source::RawRecord;

/// How RFC 3164 timestamps are completed.
#[derive(Clone, Copy, Debug)]
pub struct SyslogOptions {
    /// Zone of timestamps that carry none (RFC 3164). Default UTC.
    pub timezone: Tz,
    /// A fixed year for RFC 3164 timestamps (replaying an old file); else derived from the clock.
    pub year: Option<i32>,
    /// The reference "now" for records with no receive time (offline replay); else the wall clock.
    pub now: Option<Timestamp>,
}

impl Default for SyslogOptions {
    fn default() -> Self {
        SyslogOptions { timezone: Tz::UTC, year: None, now: None }
    }
}

/// `event.dataset` for a syslog line no extractor recognized.
pub const DATASET: Sym = Sym::from_static("syslog");

/// Most events one `message repeated N times` line expands to; the rest of N is counted (see
/// [`Parser::take_capped`]), never made and never dropped unsaid.
///
/// Why 1,000: the largest threshold of the shipped rules is 10, so a thousand copies cross
/// any of them a hundred times over and still cross thresholds of local rules written in the
/// hundreds, while one forged line (whose N an attacker who can write to the log chooses) costs
/// at most a thousand events, each holding a copy of the message: under 64 MiB for a line at
/// the 64 KiB line limit, where 10,000 copies were 640 MiB and 4,294,967,295 were everything.
pub const MAX_REPEAT: usize = 1_000;

/// The year of a yearless timestamp in month `msg_month`, read at (`year`, `month`).
///
/// A log line is never from the future, so a month more than one ahead of now must be last
/// year's: December lines read in January belong to the year before. One month of slack
/// tolerates hosts whose clocks run ahead; a January line read in December is next year's
/// (a host already past midnight on New Year's Eve).
pub fn resolve_year(year: i32, month: u32, msg_month: u32) -> i32 {
    if month == 12 && msg_month == 1 {
        year + 1
    } else if msg_month > month + 1 {
        year - 1
    } else {
        year
    }
}

/// The syslog parser for one stream (extractor state such as sshd sessions is per stream).
pub struct SyslogParser {
    opts: SyslogOptions,
    hosts: Interner,
    apps: Interner,
    extractors: Extractors,
    offsets: OffsetCache,
    /// (day number, year, month) of the last reference time, to skip the calendar math.
    ref_day: Option<(i64, i32, u32)>,
    /// Repeats named beyond [`MAX_REPEAT`] since the last [`Parser::take_capped`].
    capped: u64,
}

impl SyslogParser {
    /// A parser with the given timestamp options.
    pub fn new(opts: SyslogOptions) -> Self {
        SyslogParser {
            opts,
            hosts: Interner::default(),
            apps: Interner::default(),
            extractors: Extractors::default(),
            offsets: OffsetCache::default(),
            ref_day: None,
            capped: 0,
        }
    }

    fn year_month(&mut self, reference: Timestamp) -> (i32, u32) {
        let day = reference.secs().div_euclid(86_400);
        if let Some((d, y, m)) = self.ref_day
            && d == day
        {
            return (y, m);
        }
        // Interpret "now" in the configured zone: a Berlin host reads New Year's Day an hour
        // before UTC does.
        let (y, m) = chrono::DateTime::from_timestamp(reference.secs(), 0)
            .map(|t| t.with_timezone(&self.opts.timezone))
            .map_or((1970, 1), |t| (t.year(), t.month()));
        self.ref_day = Some((day, y, m));
        (y, m)
    }
}

impl Default for SyslogParser {
    fn default() -> Self {
        SyslogParser::new(SyslogOptions::default())
    }
}

impl Parser for SyslogParser {
    fn parse(&mut self, record: &RawRecord, out: &mut Vec<Event>) -> Result<(), ParseError> {
        let text = utf8(record)?;
        let reference = record.received.or(self.opts.now).unwrap_or_else(Timestamp::now);
        let (year, month) = self.year_month(reference);
        let fixed = self.opts.year;
        let year_of = move |m: u32| fixed.unwrap_or_else(|| resolve_year(year, month, m));

        let mut e = Event {
            created: record.received,
            log_offset: Some(record.origin.offset),
            ..Event::default()
        };
        let (mut app, mut text_msg);
        let bare;
        if let Some(h) = rfc3164::parse(text, self.opts.timezone, year_of, &mut self.offsets) {
            e.timestamp = h.timestamp;
            e.host_name = Some(self.hosts.intern(h.host));
            e.process_name = Some(self.apps.intern(h.app));
            e.process_pid = h.pid;
            if let Some((facility, severity)) = h.pri {
                e.syslog = Some(Box::new(SyslogMeta {
                    facility: Some(facility),
                    severity: Some(severity),
                    ..SyslogMeta::default()
                }));
            }
            app = h.app;
            text_msg = h.msg;
        } else {
            let get_year = move |(m, ..): IncompleteDate| year_of(m);
            // `Mmm dd hh:mm:ss [sshd]: msg` (no host, the tag in brackets, as some BSD and
            // embedded syslogds write): syslog_loose would take the tag for structured data
            // and drop it, so it is given the line with a nil host and a plain tag instead.
            bare = bracketed_tag(text);
            let text = bare.as_deref().unwrap_or(text);
            let msg = syslog_loose::parse_message_with_year_exact_tz(
                text,
                get_year,
                Some(self.opts.timezone),
                variant(text),
            )
            .map_err(|_| ParseError::NotSyslog("no RFC 3164 or RFC 5424 header"))?;
            // RFC 5424 allows a nil timestamp: then the time we received it is the best we know.
            e.timestamp = match msg.timestamp {
                None => reference,
                Some(t) => Timestamp::from_chrono(&t)
                    .ok_or_else(|| ParseError::TimestampOutOfRange(t.to_rfc3339()))?,
            };
            e.host_name = msg.hostname.map(|h| self.hosts.intern(h));
            e.process_name = msg.appname.map(|a| self.apps.intern(a));
            e.process_pid = match msg.procid {
                Some(ProcId::PID(p)) => u32::try_from(p).ok(),
                _ => None,
            };
            let version = match msg.protocol {
                Protocol::RFC5424(v) => u8::try_from(v).ok(),
                Protocol::RFC3164 => None,
            };
            if msg.facility.is_some() || version.is_some() || !msg.structured_data.is_empty() {
                e.syslog = Some(Box::new(SyslogMeta {
                    facility: msg.facility.map(|f| f as u8),
                    severity: msg.severity.map(|s| s as u8),
                    version,
                    msgid: msg.msgid.map(CompactString::from),
                    structured_data: canonical_sd(&msg.structured_data),
                }));
            }
            app = msg.appname.unwrap_or("");
            text_msg = msg.msg;
            if let Some((fac, sev)) = msg.appname.and_then(facility_severity) {
                // BusyBox syslogd and some appliances write `host auth.info prog[pid]: msg`:
                // the word syslog_loose took for the program is the priority, in names.
                if let Some((prog, pid, rest)) = split_tag(text_msg) {
                    app = prog;
                    text_msg = rest;
                    e.process_name = Some(self.apps.intern(prog));
                    e.process_pid = pid;
                    let meta = e.syslog.get_or_insert_with(Default::default);
                    meta.facility = meta.facility.or(Some(fac));
                    meta.severity = meta.severity.or(Some(sev));
                }
            }
        }

        let (count, body) = match repeated(text_msg) {
            Some((n, inner)) => {
                let made = n.min(MAX_REPEAT as u64);
                self.capped = self.capped.saturating_add(n - made);
                (made as usize, inner)
            }
            None => (1, text_msg),
        };
        let body = solaris_msgid(body);
        e.message = Some(Box::from(body));
        if !self.extractors.extract(app, body, &mut e) {
            e.dataset = Some(DATASET);
        }
        if count == 1 {
            out.push(e);
        } else {
            out.extend(std::iter::repeat_n(e, count));
        }
        Ok(())
    }

    fn take_capped(&mut self) -> u64 {
        std::mem::take(&mut self.capped)
    }
}

/// Structured data in one canonical shape: a repeated SD-ID (which RFC 5424 forbids but
/// senders write) is merged into its first element, and a repeated parameter name is grouped
/// after its first occurrence, so the JSON form (an object per element, an array for a
/// repeated name) holds every value and reads back identically.
fn canonical_sd(sd: &[syslog_loose::StructuredElement<&str>]) -> Vec<SdElement> {
    let mut out: Vec<SdElement> = Vec::with_capacity(sd.len());
    for el in sd {
        let idx = match out.iter().position(|(id, _)| id == el.id) {
            Some(i) => i,
            None => {
                out.push((CompactString::from(el.id), Vec::new()));
                out.len() - 1
            }
        };
        let params = &mut out[idx].1;
        for (k, v) in el.params() {
            let value: Box<str> = Box::from(v.as_str());
            match params.iter().rposition(|(name, _)| name == *k) {
                Some(last) => params.insert(last + 1, (CompactString::from(*k), value)),
                None => params.push((CompactString::from(*k), value)),
            }
        }
    }
    out
}

/// RFC 5424 starts `<PRI>VERSION ` (`<34>1 `); anything else is RFC 3164. Deciding here saves
/// syslog_loose's `Either` a failed RFC 5424 attempt on every RFC 3164 line.
fn variant(text: &str) -> Variant {
    let b = text.trim_start().as_bytes();
    if b.first() == Some(&b'<')
        && let Some(close) = b.iter().take(5).position(|&c| c == b'>')
    {
        let rest = &b[close + 1..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && rest.get(digits) == Some(&b' ') {
            return Variant::RFC5424;
        }
    }
    Variant::RFC3164
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];

/// `auth.info` as (facility, severity) codes.
fn facility_severity(word: &str) -> Option<(u8, u8)> {
    let (f, s) = word.split_once('.')?;
    let f = FACILITIES.iter().position(|n| *n == f)?;
    let s = match s {
        "warning" => 4,
        "error" => 3,
        "panic" => 0,
        s => SEVERITIES.iter().position(|n| *n == s)?,
    };
    Some((f as u8, s as u8))
}

/// `prog[pid]: rest` or `prog: rest` at the start of a message.
/// `[ID 800047 auth.info] msg` (Solaris syslog's message id and priority): the message.
fn solaris_msgid(msg: &str) -> &str {
    let Some(rest) = msg.strip_prefix("[ID ") else { return msg };
    let Some((inside, after)) = rest.split_once("] ") else { return msg };
    match inside.split_once(' ') {
        Some((id, prio))
            if !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && prio.split_once('.').is_some_and(|(f, l)| !f.is_empty() && !l.is_empty()) =>
        {
            after
        }
        _ => msg,
    }
}

/// `[<PRI>]Mmm dd hh:mm:ss [TAG]: msg` or `... [TAG] msg` rewritten as `... - TAG: msg`,
/// which syslog_loose reads as no host and program TAG; None for any other line.
fn bracketed_tag(line: &str) -> Option<String> {
    let start = if line.starts_with('<') { line.find('>')? + 1 } else { 0 };
    let head = line.get(start..start + 16)?;
    let b = head.as_bytes();
    if b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' || b[15] != b' ' {
        return None;
    }
    let rest = line.get(start + 16..)?.strip_prefix('[')?;
    let (tag, msg) = rest.split_once(']')?;
    if tag.is_empty() || !tag.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)) {
        return None;
    }
    let msg = msg.strip_prefix(':').unwrap_or(msg).strip_prefix(' ')?;
    Some(format!("{}- {tag}: {msg}", &line[..start + 16]))
}

fn split_tag(msg: &str) -> Option<(&str, Option<u32>, &str)> {
    let (tag, rest) = msg.split_once(": ")?;
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    match tag.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((prog, pid)) => Some((prog, pid.parse().ok(), rest)),
        None => Some((tag, None, rest)),
    }
}

/// rsyslog's and syslog-ng's `message repeated N times: [ MSG]`: N copies of MSG, which
/// fail2ban misses (it would count one failure where there were N). N saturates at
/// `u64::MAX`: a count too long for any integer is still a (forged) repeat, capped and counted
/// like any other, not a different kind of line.
fn repeated(msg: &str) -> Option<(u64, &str)> {
    let rest = msg.strip_prefix("message repeated ")?;
    let (n, rest) = rest.split_once(" times: [")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = n.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0')));
    // rsyslog never writes 0 (it folds at least two): such a line is forged or broken, and
    // expanding it to nothing would make a record vanish from the ledger. It stays one event,
    // as written.
    if n == 0 {
        return None;
    }
    let inner = rest.trim_end().strip_suffix(']')?;
    Some((n, inner.trim_start()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Category, Outcome};
    use crate::source::Origin;
    use bytes::Bytes;

    fn record(line: &str) -> RawRecord {
        RawRecord {
            bytes: Bytes::copy_from_slice(line.as_bytes()),
            origin: Origin { source: Sym::from_static("test"), record: 1, offset: 0 },
            received: None,
        }
    }

    /// 2026-11-23T00:00:00Z
    const NOW: Timestamp = Timestamp(1_763_856_000_000_000_000);

    fn parse_with(opts: SyslogOptions, line: &str) -> Result<Vec<Event>, ParseError> {
        let mut p = SyslogParser::new(opts);
        let mut out = Vec::new();
        p.parse(&record(line), &mut out).map(|()| out)
    }

    fn parse(line: &str) -> Vec<Event> {
        parse_with(SyslogOptions { now: Some(NOW), ..SyslogOptions::default() }, line)
            .unwrap_or_default()
    }

    #[test]
    fn rfc3164_sshd_failure_becomes_an_authentication_event() {
        let ev = parse(
            "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        );
        assert_eq!(ev.len(), 1);
        assert_eq!(
            ev[0].to_json(),
            r#"{"@timestamp":"2025-12-10T06:55:48Z","event":{"dataset":"sshd","category":["authentication"],"type":["start"],"action":"ssh_login","outcome":"failure","reason":"password"},"user":{"name":"webmaster"},"source":{"ip":"173.234.31.186","port":38926},"host":{"name":"LabSZ"},"process":{"name":"sshd","pid":24200},"log":{"offset":0},"message":"Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"}"#
        );
    }

    #[test]
    fn rfc5424_keeps_structured_data_and_accepts_nil_timestamp() {
        let ev = parse(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event"#,
        );
        let e = &ev[0];
        assert_eq!(e.timestamp.to_string(), "2003-10-11T22:14:15.003Z");
        let m = e.syslog.as_deref().cloned().unwrap_or_default();
        assert_eq!((m.facility, m.severity, m.version), (Some(20), Some(5), Some(1)));
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert_eq!(m.structured_data[0].0, "exampleSDID@32473");
        assert_eq!(m.structured_data[0].1[1], ("eventSource".into(), "Application".into()));
        assert_eq!(e.dataset.as_deref(), Some("syslog"));

        let nil = parse("<34>1 - host app 99 - - hello");
        assert_eq!(nil[0].timestamp, NOW);
        assert_eq!(nil[0].process_pid, Some(99));
    }

    #[test]
    fn structured_data_round_trips_with_order_repeats_and_odd_names() {
        for line in [
            r#"<165>1 2025-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event"#,
            r#"<13>1 2025-01-01T00:00:00Z h a - - [x@1 a="1" b="x" a="2"][y@1 z="0"][x@1 c="3"] m"#,
            "<13>1 2025-01-01T00:00:00Z h a - - [x\u{1}y a=\"1\"] m",
        ] {
            let ev = parse(line);
            let back = Event::from_json(&ev[0].to_json());
            assert_eq!(back.as_ref().ok(), Some(&ev[0]), "{line} {back:?}");
        }
        let ev =
            parse(r#"<13>1 2025-01-01T00:00:00Z h a - - [x@1 a="1" b="x" a="2"][x@1 c="3"] m"#);
        let sd = ev[0].syslog.as_deref().cloned().unwrap_or_default().structured_data;
        let names: Vec<(&str, &str)> = sd[0].1.iter().map(|(k, v)| (k.as_str(), &**v)).collect();
        assert_eq!(sd.len(), 1);
        assert_eq!(names, [("a", "1"), ("a", "2"), ("b", "x"), ("c", "3")]);
        assert!(ev[0].to_json().contains(r#""x@1":{"a":["1","2"],"b":"x","c":"3"}"#));
    }

    #[test]
    fn timestamps_out_of_range_are_errors() {
        let opts = SyslogOptions { now: Some(NOW), ..SyslogOptions::default() };
        let r = parse_with(opts, "<13>1 0001-01-01T00:00:00Z h a - - - m");
        assert!(matches!(r, Err(ParseError::TimestampOutOfRange(_))), "{r:?}");
        let r = parse_with(SyslogOptions { year: Some(1), ..opts }, "Jan  1 00:00:00 h a: m");
        assert!(r.is_err(), "{r:?}");
    }

    #[test]
    fn rfc3164_uses_the_configured_zone_with_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let opts = SyslogOptions { timezone: berlin, year: Some(2024), now: Some(NOW) };
        let summer = parse_with(opts, "Jul  1 12:00:00 h app: x").unwrap_or_default();
        let winter = parse_with(opts, "Jan  1 12:00:00 h app: x").unwrap_or_default();
        assert_eq!(summer[0].timestamp.to_string(), "2024-07-01T10:00:00Z");
        assert_eq!(winter[0].timestamp.to_string(), "2024-01-01T11:00:00Z");
    }

    #[test]
    fn december_lines_read_in_january_are_last_year() {
        assert_eq!(resolve_year(2027, 1, 12), 2026);
        assert_eq!(resolve_year(2026, 11, 12), 2026);
        assert_eq!(resolve_year(2026, 12, 1), 2027);
        assert_eq!(resolve_year(2026, 6, 6), 2026);
        // Through the parser, with the reference clock on 2027-01-02.
        let jan = Timestamp(1_798_848_000_000_000_000 + 86_400_000_000_000);
        let ev = parse_with(
            SyslogOptions { now: Some(jan), ..SyslogOptions::default() },
            "Dec 31 23:59:59 h app: x",
        )
        .unwrap_or_default();
        assert_eq!(ev[0].timestamp.to_string(), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn message_repeated_expands_to_n_events() {
        let ev = parse(
            "Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
        );
        assert_eq!(ev.len(), 5);
        assert!(
            ev.iter()
                .all(|e| e.outcome == Some(Outcome::Failure)
                    && e.user_name.as_deref() == Some("root"))
        );
        assert_eq!(
            ev[0].message.as_deref(),
            Some("Failed password for root from 5.36.59.76 port 42393 ssh2")
        );
        let forged = parse("Dec 10 07:13:56 h sshd[1]: message repeated 999999999 times: [ x]");
        assert_eq!(forged.len(), MAX_REPEAT);
        let zero = parse("Dec 10 07:13:56 h sshd[1]: message repeated 0 times: [ x]");
        assert_eq!(zero.len(), 1);
        assert_eq!(zero[0].message.as_deref(), Some("message repeated 0 times: [ x]"));
    }

    #[test]
    fn repeats_beyond_the_cap_are_counted_not_made() {
        let opts = SyslogOptions { now: Some(NOW), ..SyslogOptions::default() };
        let mut p = SyslogParser::new(opts);
        let mut out = Vec::new();
        let line = |n: &str| {
            record(&format!("Dec 10 07:13:56 h sshd[1]: message repeated {n} times: [ x]"))
        };
        p.parse(&line("4294967295"), &mut out).unwrap();
        assert_eq!(out.len(), MAX_REPEAT);
        // At the cap exactly: nothing left over.
        p.parse(&line("1000"), &mut out).unwrap();
        assert_eq!(out.len(), 2 * MAX_REPEAT);
        assert_eq!(p.take_capped(), 4_294_967_295 - 1_000);
        assert_eq!(p.take_capped(), 0, "the count is handed over once");
        // A count no integer holds is still a repeat: capped, the rest saturating.
        out.clear();
        p.parse(&line("99999999999999999999999"), &mut out).unwrap();
        assert_eq!(out.len(), MAX_REPEAT);
        assert_eq!(p.take_capped(), u64::MAX - 1_000);
        // Not a count: one event, as written, nothing capped.
        out.clear();
        p.parse(&line("-5"), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(p.take_capped(), 0);
    }

    #[test]
    fn lines_go_to_the_extractor_of_their_program() {
        // Old Linux-PAM names the module in the program: the PAM extractor takes it.
        let ev = parse("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown");
        assert_eq!(ev[0].dataset.as_deref(), Some("pam"));
        assert_eq!(ev[0].action.as_deref(), Some("pam_user_unknown"));
        assert_eq!(ev[0].process_pid, Some(19939));
        let ev = parse("Jun 14 15:16:01 combo kernel: eth0 up");
        assert_eq!(ev[0].dataset.as_deref(), Some("syslog"));
        assert!(ev[0].category == Category::empty() && ev[0].action.is_none());
    }

    #[test]
    fn busybox_priority_names_before_the_tag() {
        let ev =
            parse("Jun 20 02:18:39 vps auth.info sshd[13482]: Invalid user admin from 192.168.2.2");
        let e = &ev[0];
        assert_eq!(e.process_name.as_deref(), Some("sshd"));
        assert_eq!(e.process_pid, Some(13482));
        assert_eq!(e.action.as_deref(), Some("ssh_invalid_user"));
        let m = e.syslog.as_deref().cloned().unwrap_or_default();
        assert_eq!((m.facility, m.severity), (Some(4), Some(6)));
        // A program that merely contains a dot is left alone.
        let ev = parse("Jun 20 02:18:39 vps my.app: hello: world");
        assert_eq!(ev[0].process_name.as_deref(), Some("my.app"));
    }

    #[test]
    fn garbage_and_invalid_utf8_are_errors() {
        let opts = SyslogOptions { now: Some(NOW), ..SyslogOptions::default() };
        assert!(matches!(
            parse_with(opts, "\u{1}\u{2} not a log line"),
            Err(ParseError::NotSyslog(_))
        ));
        let mut p = SyslogParser::new(opts);
        let mut rec = record("");
        rec.bytes = Bytes::from_static(b"Dec 10 06:55:48 h sshd[1]: \xff\xfe");
        assert!(matches!(
            p.parse(&rec, &mut Vec::new()),
            Err(ParseError::InvalidUtf8 { valid_up_to: 27 })
        ));
    }
}
