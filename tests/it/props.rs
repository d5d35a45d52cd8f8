//! Property tests over every parser: arbitrary bytes and damaged real records never panic, and
//! what parses survives the ECS JSON round trip. (The fuzz targets in `fuzz/` run the same
//! properties for longer; these keep them in `cargo test`.)

use std::ops::ControlFlow;

use bytes::Bytes;
use proptest::prelude::*;

use logwarden::event::{Event, Sym, Timestamp};
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::parse::extract::sshd::parse_line;
use logwarden::parse::json::JsonParser;
use logwarden::parse::syslog::{SyslogOptions, SyslogParser};
use logwarden::source::cloudtrail::read_records;
use logwarden::source::{Origin, RawRecord};

use crate::corpus;

fn record(bytes: &[u8]) -> RawRecord {
    RawRecord {
        bytes: Bytes::copy_from_slice(bytes),
        origin: Origin { source: Sym::from_static("prop"), record: 1, offset: 0 },
        received: Some(Timestamp(1_700_000_000_000_000_000)),
    }
}

fn syslog() -> SyslogParser {
    SyslogParser::new(SyslogOptions {
        year: Some(2025),
        now: Some(Timestamp(0)),
        ..SyslogOptions::default()
    })
}

/// Parses with `p`; every event it yields must read back from its JSON form unchanged.
fn parses_and_round_trips(p: &mut dyn Parser, bytes: &[u8]) -> Result<usize, TestCaseError> {
    let mut out = Vec::new();
    if p.parse(&record(bytes), &mut out).is_ok() {
        for e in &out {
            let json = e.to_json();
            let back = Event::from_json(&json);
            prop_assert_eq!(back.as_ref().ok(), Some(e), "JSON was {}", json);
        }
    }
    Ok(out.len())
}

fn real_syslog_lines() -> Vec<String> {
    let text = corpus::read("loghub/OpenSSH/OpenSSH_2k.log")
        + "\n"
        + &corpus::read("loghub/Linux/Linux_2k.log");
    text.lines().step_by(37).map(str::to_owned).collect()
}

#[test]
fn real_syslog_lines_cut_anywhere_never_panic_and_round_trip() {
    let mut p = syslog();
    for line in real_syslog_lines() {
        for cut in (0..=line.len()).filter(|&c| line.is_char_boundary(c)) {
            if let Err(e) = parses_and_round_trips(&mut p, &line.as_bytes()[..cut]) {
                panic!("{line:?} cut at {cut}: {e}");
            }
        }
    }
}

proptest! {
    #[test]
    fn syslog_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parses_and_round_trips(&mut syslog(), &bytes)?;
    }

    #[test]
    fn syslog_never_panics_on_lines_with_inserted_noise(idx in 0usize..1000, at in 0usize..200, noise in "\\PC{0,12}") {
        let lines = real_syslog_lines();
        let line = &lines[idx % lines.len()];
        let mut at = at.min(line.len());
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        let damaged = format!("{}{}{}", &line[..at], noise, &line[at..]);
        parses_and_round_trips(&mut syslog(), damaged.as_bytes())?;
    }

    #[test]
    fn sshd_line_parser_never_panics(msg in "\\PC{0,120}", prefix in prop::sample::select(vec!["", "Failed password for ", "Invalid user ", "Connection closed by ", "Received disconnect from ", "Disconnecting ", "error: maximum authentication attempts exceeded for ", "User ", "refused connect from ", "PAM: "])) {
        let _ = parse_line(&format!("{prefix}{msg}"));
    }

    #[test]
    fn cloudtrail_record_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        parses_and_round_trips(&mut CloudTrailParser::default(), &bytes)?;
    }

    #[test]
    fn cloudtrail_reader_never_panics_and_counts_what_it_emits(bytes in proptest::collection::vec(prop_oneof![Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b','), Just(b':'), Just(b'\\'), any::<u8>()], 0..200)) {
        let mut emitted = 0u64;
        let result = read_records(&bytes[..], Sym::from_static("prop"), |_| {
            emitted += 1;
            ControlFlow::Continue(())
        });
        match result {
            Ok(summary) => prop_assert_eq!(summary.records, emitted),
            Err(e) => prop_assert_eq!(e.records_emitted(), emitted),
        }
    }

    #[test]
    fn json_event_parser_never_panics(text in "\\PC{0,200}") {
        parses_and_round_trips(&mut JsonParser, text.as_bytes())?;
    }
}

#[test]
fn damaged_real_cloudtrail_records_never_panic() {
    let file =
        corpus::read("stratus-red-team/detonation-logs/aws.defense-evasion.cloudtrail-stop.json");
    let mut records = Vec::new();
    let _ = read_records(file.as_bytes(), Sym::from_static("stratus"), |r| {
        records.push(r.bytes);
        ControlFlow::Continue(())
    });
    assert!(!records.is_empty());
    let mut p = CloudTrailParser::default();
    for rec in &records {
        for cut in (0..=rec.len()).step_by(7) {
            let _ = p.parse(&record(&rec[..cut]), &mut Vec::new());
        }
    }
}
