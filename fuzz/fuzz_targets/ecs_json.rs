//! ECS JSON lines: never panic, and an event that parses survives being written and read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::parse::Parser;
use logwarden::parse::json::JsonParser;
use logwarden_fuzz::{assert_round_trip, record};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    if JsonParser.parse(&record(data), &mut out).is_ok() {
        assert_eq!(out.len(), 1, "one line, one event");
        assert_round_trip(&out[0]);
    }
});
