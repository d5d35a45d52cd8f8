//! Syslog parsing of one arbitrary record: never panics, bounded output, and every event it
//! makes survives the ECS JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::event::Timestamp;
use logwarden::parse::syslog::{MAX_REPEAT, SyslogOptions, SyslogParser};
use logwarden::parse::{ParseError, Parser};
use logwarden_fuzz::{assert_round_trip, record};

fuzz_target!(|data: &[u8]| {
    // A fixed year and clock, so a crash reproduces on any day.
    let opts = SyslogOptions { year: Some(2025), now: Some(Timestamp(0)), ..Default::default() };
    let mut parser = SyslogParser::new(opts);
    let mut out = Vec::new();
    let result = parser.parse(&record(data), &mut out);

    if std::str::from_utf8(data).is_err() {
        assert!(matches!(result, Err(ParseError::InvalidUtf8 { .. })), "{result:?}");
        return;
    }
    if let Err(e) = &result {
        let _ = e.kind();
        return;
    }
    // One event, or N copies for `message repeated N times`, capped.
    assert!((1..=MAX_REPEAT).contains(&out.len()), "{} events", out.len());
    // The copies are clones of one event, so checking the ends checks them all.
    assert_round_trip(&out[0]);
    if out.len() > 1 {
        assert_eq!(out[0], out[out.len() - 1], "repeated copies differ");
    }
});
