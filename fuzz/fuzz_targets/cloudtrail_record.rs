//! CloudTrail record parsing of arbitrary bytes: never panics, and an accepted record's event
//! (original record included) round-trips as ECS JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden_fuzz::{assert_round_trip, record};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    match CloudTrailParser::default().parse(&record(data), &mut out) {
        Ok(()) => {
            assert_eq!(out.len(), 1, "one record, one event");
            assert_round_trip(&out[0]);
        }
        Err(e) => {
            let _ = e.kind();
        }
    }
});
