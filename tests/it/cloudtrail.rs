//! CloudTrail end to end: real files through `read_records` and `CloudTrailParser`.
// The helpers below run only under tests, where a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use logwarden::event::{Category, Event, EventType, FieldValue, Outcome, Sym, Timestamp};
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::source::cloudtrail::{CloudTrailReadError, read_records};
use logwarden::source::{Origin, RawRecord};

const STRATUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/stratus-red-team/detonation-logs");
const INVICTUS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/invictus-aws-dataset/CloudTrail");
const PANTHER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/corpus/panther-analysis/aws_cloudtrail_rule_tests.jsonl"
);

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// Reads and parses one stream, failing the test on any error; returns records and events.
fn read_and_parse(input: impl Read, name: &str) -> (Vec<RawRecord>, Vec<Event>) {
    let mut parser = CloudTrailParser::default();
    let mut records = Vec::new();
    let mut events = Vec::new();
    let summary = read_records(input, Sym::from(name), |rec| {
        let before = events.len();
        if let Err(e) = parser.parse(&rec, &mut events) {
            panic!("{name} record {}: {e}", rec.origin.record);
        }
        assert_eq!(events.len(), before + 1, "{name} record {}", rec.origin.record);
        records.push(rec);
        ControlFlow::Continue(())
    })
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(summary.records, records.len() as u64);
    (records, events)
}

/// Elements counted independently of the code under test.
fn count_elements(path: &Path) -> usize {
    let v: serde_json::Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    match &v {
        serde_json::Value::Array(items) => items.len(),
        other => other["Records"].as_array().unwrap().len(),
    }
}

/// Every record's origin points at its own bytes in the file, numbered from 1.
fn assert_origins(path: &Path, records: &[RawRecord]) {
    let file = fs::read(path).unwrap();
    for (i, rec) in records.iter().enumerate() {
        assert_eq!(rec.origin.record, i as u64 + 1);
        let at = rec.origin.offset as usize;
        assert_eq!(&file[at..at + rec.bytes.len()], &rec.bytes[..], "{path:?} record {}", i + 1);
    }
}

fn check_corpus(dir: &str) -> usize {
    let mut total = 0;
    for path in json_files(dir) {
        let name = path.display().to_string();
        let (records, events) = read_and_parse(fs::File::open(&path).unwrap(), &name);
        assert_eq!(events.len(), count_elements(&path), "{name}");
        assert_origins(&path, &records);
        for e in &events {
            assert_eq!(e.dataset.as_deref(), Some("cloudtrail"));
            assert!(e.get("eventID").is_some(), "{name}: original not reachable");
        }
        total += events.len();
    }
    total
}

#[test]
fn stratus_detonation_logs_all_parse() {
    assert_eq!(json_files(STRATUS).len(), 35);
    assert_eq!(check_corpus(STRATUS), 310);
}

#[test]
fn invictus_envelopes_all_parse() {
    assert_eq!(json_files(INVICTUS).len(), 55);
    assert_eq!(check_corpus(INVICTUS), 2900);
}

fn record(text: &str, received: Option<Timestamp>) -> RawRecord {
    RawRecord {
        bytes: Bytes::copy_from_slice(text.as_bytes()),
        origin: Origin { source: Sym::from_static("panther"), record: 1, offset: 0 },
        received,
    }
}

fn panther_logs() -> Vec<(String, serde_json::Value)> {
    fs::read_to_string(PANTHER)
        .unwrap()
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let name = format!("{} / {}", v["rule_id"].as_str().unwrap(), v["test_name"]);
            (name, v["log"].take())
        })
        .collect()
}

#[test]
fn panther_test_events_parse_one_event_each() {
    let received = Timestamp::from_secs_nanos(1_700_000_000, 0);
    let logs = panther_logs();
    assert_eq!(logs.len(), 464);
    let mut parser = CloudTrailParser::default();
    let (mut parsed, mut needed_received) = (0, 0);
    let mut rejected = Vec::new();
    for (i, (name, log)) in logs.iter().enumerate() {
        // Panther's test events are CloudTrail records with fields left out at will; those
        // without a time get the receive time, as a live source would give them.
        let has_time = log.get("eventTime").is_some() || log.get("eventtime").is_some();
        let rec = record(&log.to_string(), (!has_time).then_some(received));
        let mut out = Vec::new();
        match parser.parse(&rec, &mut out) {
            Ok(()) => {
                assert_eq!(out.len(), 1, "{name}");
                parsed += 1;
                if !has_time {
                    needed_received += 1;
                    assert_eq!(out[0].timestamp, received);
                }
            }
            Err(e) => rejected.push((i, e.kind(), e.to_string())),
        }
    }
    assert_eq!(needed_received, 15);
    // Not records at all (`log: null`, the rule's test uses mocks only), and two times that
    // are placeholders ("redacted", "...") rather than times.
    let not_object = "a CloudTrail record must be a JSON object";
    let bad_time = "CloudTrail record: field `eventTime` is not an RFC 3339 timestamp";
    assert_eq!(
        rejected,
        [
            (44, "not_an_object", not_object.to_owned()),
            (45, "not_an_object", not_object.to_owned()),
            (46, "not_an_object", not_object.to_owned()),
            (330, "bad_cloudtrail_record", bad_time.to_owned()),
            (463, "bad_cloudtrail_record", bad_time.to_owned()),
        ]
    );
    assert_eq!(parsed, 459);
}

fn parse_one(text: &str) -> Event {
    let mut out = Vec::new();
    CloudTrailParser::default().parse(&record(text, None), &mut out).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

fn panther_log(index: usize) -> String {
    panther_logs()[index].1.to_string()
}

#[test]
fn root_console_login_failure_full_ecs_form() {
    // AWS.Console.RootLoginFailed / "Failed Root Login".
    let text = panther_log(89);
    let e = parse_one(&text);
    let expected = format!(
        concat!(
            r#"{{"@timestamp":"2019-01-01T00:00:00Z","event":{{"dataset":"cloudtrail","#,
            r#""provider":"signin.amazonaws.com","category":["authentication"],"type":["start"],"#,
            r#""action":"ConsoleLogin","outcome":"failure","original":{original}}},"#,
            r#""user":{{"name":"root","id":"1111"}},"source":{{"ip":"111.111.111.111"}},"#,
            r#""cloud":{{"provider":"aws","account":{{"id":"123456789012"}},"region":"us-east-1"}},"#,
            r#""log":{{"offset":0}}}}"#
        ),
        original = serde_json::to_string(&text).unwrap()
    );
    assert_eq!(e.to_json(), expected);
    assert_eq!(Event::from_json(&e.to_json()).unwrap(), e);
    assert_eq!(e.get("additionalEventData.MFAUsed"), Some(FieldValue::Str("No")));
    assert_eq!(e.get("userAgent"), Some(FieldValue::Str("Mozilla")));
}

#[test]
fn console_login_failure_takes_reason_from_error_message() {
    // AWS.Unsuccessful.MFA.attempt / "Unsuccessful Login w/ MFA".
    let e = parse_one(&panther_log(57));
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.reason.as_deref(), Some("Failed authentication"));
    assert_eq!(e.user_name.as_deref(), Some("anaya"));
    assert_eq!(e.user_id.as_deref(), Some("AIDACKCEVSQ6C2EXAMPLE"));
    assert_eq!(e.source_ip, "192.0.2.0".parse().ok());
    assert_eq!(e.category, Category::AUTHENTICATION);
    // AWS.Console.LoginWithoutMFA / "No MFA - Login Failed": failure without a message.
    let e = parse_one(&panther_log(79));
    assert_eq!((e.outcome, e.reason), (Some(Outcome::Failure), None));
    assert_eq!(e.user_name.as_deref(), Some("tester"));
}

#[test]
fn root_identity_is_root_whatever_else_it_says() {
    // AWS.Root.Activity / "Root Activity - CreateServiceLinkedRole" (eventSource as given).
    let e = parse_one(&panther_log(327));
    assert_eq!(e.user_name.as_deref(), Some("root"));
    assert_eq!(e.user_id.as_deref(), Some("123456789012"));
    assert_eq!(e.action.as_deref(), Some("CreateServiceLinkedRole"));
    assert_eq!(e.provider.as_deref(), Some("s3.amazonaws.com"));
    assert_eq!((e.category, e.kind), (Category::CONFIGURATION, EventType::CREATION));
    assert_eq!(e.outcome, Some(Outcome::Success));
}

fn nth_record(path: &str, n: usize) -> (RawRecord, Event) {
    let (mut records, mut events) = read_and_parse(fs::File::open(path).unwrap(), path);
    (records.remove(n - 1), events.remove(n - 1))
}

#[test]
fn assumed_role_with_error_code() {
    let path = format!("{STRATUS}/aws.credential-access.ec2-get-password-data.json");
    let (_, e) = nth_record(&path, 1);
    assert_eq!(e.timestamp, Timestamp::parse_rfc3339("2024-07-30T21:31:21Z").unwrap());
    assert_eq!(e.action.as_deref(), Some("GetPasswordData"));
    assert_eq!(e.provider.as_deref(), Some("ec2.amazonaws.com"));
    assert_eq!(e.outcome, Some(Outcome::Failure));
    assert_eq!(e.reason.as_deref(), Some("Client.UnauthorizedOperation"));
    // The session name, not the role.
    assert_eq!(e.user_name.as_deref(), Some("aws-go-sdk-1722375070115152000"));
    assert_eq!(e.user_id.as_deref(), Some("AROAMLQ9F6KHQ07JKA0WY:aws-go-sdk-1722375070115152000"));
    assert_eq!(e.source_ip, "200.249.253.51".parse().ok());
    assert_eq!(e.source_domain, None);
    let cloud = e.cloud.as_deref().unwrap();
    assert_eq!(cloud.account_id.as_deref(), Some("457448411975"));
    assert_eq!(cloud.region.as_deref(), Some("apiso-northsouth-3r"));
    assert!(e.category.is_empty() && e.kind.is_empty());
    assert_eq!(
        e.get("userIdentity.sessionContext.sessionIssuer.userName"),
        Some(FieldValue::Str("stratus-red-team-ec2-get-password-data-role"))
    );
}

#[test]
fn service_source_address_becomes_source_domain() {
    let path = format!(
        "{INVICTUS}/218007301253_CloudTrail_us-east-1_20230710T1200Z_iLj9fb7yyUG9X4Bf.json"
    );
    let (rec, e) = nth_record(&path, 72);
    assert_eq!(rec.origin.record, 72);
    assert_eq!(e.log_offset, Some(rec.origin.offset));
    assert_eq!(e.action.as_deref(), Some("SharedSnapshotVolumeCreated"));
    assert_eq!(e.source_ip, None);
    assert_eq!(e.source_domain.as_deref(), Some("ec2.amazonaws.com"));
    // No name, ARN or principal: an AWS service acting on its own.
    assert_eq!((e.user_name.as_deref(), e.user_id.as_deref()), (None, None));
    let cloud = e.cloud.as_deref().unwrap();
    assert_eq!(cloud.account_id.as_deref(), Some("123837392027"));
    assert_eq!(e.outcome, Some(Outcome::Success));
    assert_eq!(e.get("userIdentity.invokedBy"), Some(FieldValue::Str("ec2.amazonaws.com")));
}

fn invictus_envelope_bytes() -> Vec<u8> {
    let path = json_files(INVICTUS).into_iter().max_by_key(|p| fs::metadata(p).unwrap().len());
    fs::read(path.unwrap()).unwrap()
}

#[test]
fn gzip_envelope_reads_through_multigz() {
    let plain = invictus_envelope_bytes();
    let want = read_and_parse(&plain[..], "plain").1.len();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let (records, events) = read_and_parse(flate2::read::MultiGzDecoder::new(&gz[..]), "gz");
    assert_eq!(events.len(), want);
    // Offsets are in the decompressed stream.
    let last = records.last().unwrap();
    let at = last.origin.offset as usize;
    assert_eq!(&plain[at..at + last.bytes.len()], &last.bytes[..]);
}

#[test]
fn truncated_gzip_is_an_error_after_the_records_before_it() {
    let plain = invictus_envelope_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let cut = &gz[..gz.len() / 2];
    let mut emitted = 0;
    let err = read_records(flate2::read::MultiGzDecoder::new(cut), Sym::from_static("gz"), |_| {
        emitted += 1;
        ControlFlow::Continue(())
    })
    .unwrap_err();
    match &err {
        CloudTrailReadError::Io { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof, "{source}")
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), "io");
    assert!(emitted > 0);
    assert_eq!(err.records_emitted(), emitted);
}

/// Produces `{"Records":[rec,rec,...]}` on demand and counts what it has handed out.
struct Generator {
    record: Vec<u8>,
    remaining: u64,
    pending: Vec<u8>,
    pos: usize,
    produced: Rc<Cell<u64>>,
    closed: bool,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.pending.len() {
            self.pending.clear();
            self.pos = 0;
            if self.remaining > 0 {
                // A few records per refill, so reads are not tiny.
                for _ in 0..self.remaining.min(16) {
                    self.remaining -= 1;
                    self.pending.extend_from_slice(&self.record);
                    self.pending.push(if self.remaining == 0 { b']' } else { b',' });
                }
            } else if !self.closed {
                self.closed = true;
                self.pending.push(b'}');
            } else {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        self.produced.set(self.produced.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn fifty_megabyte_envelope_streams_without_buffering() {
    // Mostly one long string, as CloudTrail records mostly are; few records keep debug fast.
    let padding = ".".repeat(4000);
    let record = format!(
        r#"{{"eventVersion":"1.08","eventTime":"2023-07-10T11:42:31Z","eventName":"GetObject","eventSource":"s3.amazonaws.com","userIdentity":{{"type":"IAMUser","userName":"bob"}},"padding":"{padding}"}}"#
    );
    let record = record.as_bytes();
    let n = (50u64 << 20) / (record.len() as u64 + 1);
    let produced = Rc::new(Cell::new(0));
    let generator = Generator {
        record: record.to_vec(),
        remaining: n,
        pending: b"{\"Records\":[".to_vec(),
        pos: 0,
        produced: Rc::clone(&produced),
        closed: false,
    };
    let mut seen = 0u64;
    let mut max_ahead = 0u64;
    let summary = read_records(generator, Sym::from_static("gen"), |rec| {
        seen += 1;
        assert_eq!(rec.bytes.len(), record.len());
        let end = rec.origin.offset + rec.bytes.len() as u64;
        max_ahead = max_ahead.max(produced.get() - end);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(summary.records, n);
    assert_eq!(seen, n);
    // Never more than one read-ahead buffer beyond the record being emitted.
    assert!(max_ahead <= 128 << 10, "read {max_ahead} bytes ahead");
}

#[test]
fn stopping_early_reads_no_further() {
    let mut first = None;
    let r = read_records(&invictus_envelope_bytes()[..], Sym::from_static("x"), |rec| {
        first = Some(rec);
        ControlFlow::Break(())
    });
    assert_eq!(r.unwrap().records, 1);
    let e = parse_one(std::str::from_utf8(&first.unwrap().bytes).unwrap());
    assert_eq!(e.dataset.as_deref(), Some("cloudtrail"));
}
