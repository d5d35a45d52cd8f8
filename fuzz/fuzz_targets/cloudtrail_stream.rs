//! CloudTrail stream reading of arbitrary bytes: never panics, records are numbered in order,
//! counts agree with what was emitted, each record is JSON found at its stated offset, and the
//! record parser never panics on what the reader hands it.
#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use logwarden::event::Sym;
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::source::cloudtrail::read_records;

fuzz_target!(|data: &[u8]| {
    let mut parser = CloudTrailParser::default();
    let mut emitted = 0u64;
    let result = read_records(data, Sym::from_static("fuzz"), |rec| {
        emitted += 1;
        assert_eq!(rec.origin.record, emitted, "records numbered out of order");
        // Not asserted for non-UTF-8 bytes: a top-level object is handed over as the bytes the
        // JSON reader consumed, and serde_json does not check UTF-8 inside strings it skips, so
        // such a record reaches the parser (which rejects it as invalid UTF-8) while the same
        // record inside an array ends the read with a JSON error. See the README.
        assert!(
            std::str::from_utf8(&rec.bytes).is_err()
                || serde_json::from_slice::<serde_json::Value>(&rec.bytes).is_ok(),
            "record is not JSON: {:?}",
            String::from_utf8_lossy(&rec.bytes)
        );
        // Objects are checked against their offset; a scalar array element is not, since a
        // scalar's end is only known once the byte after it has been read (see the README).
        if rec.bytes.first() == Some(&b'{') {
            let at = usize::try_from(rec.origin.offset).unwrap_or(usize::MAX);
            assert_eq!(
                data.get(at..at.saturating_add(rec.bytes.len())),
                Some(&rec.bytes[..]),
                "record {} is not at its offset {at}",
                rec.origin.record
            );
        }
        let _ = parser.parse(&rec, &mut Vec::new());
        ControlFlow::Continue(())
    });
    match result {
        Ok(summary) => assert_eq!(summary.records, emitted, "summary miscounts"),
        Err(e) => {
            let _ = e.kind();
            assert_eq!(e.records_emitted(), emitted, "error miscounts: {e}");
        }
    }
});
