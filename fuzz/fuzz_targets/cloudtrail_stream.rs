//! CloudTrail stream reading of arbitrary bytes against the framer's contract (the module docs
//! of `logwarden::source::cloudtrail`): never panics; records are numbered 1, 2, ... and the
//! counts agree; every record is the input's own bytes at its offset and one value by
//! structure; valid JSON of an accepted shape gives exactly serde_json's records; and the
//! record parser, which owns the content checks, accepts only records that are JSON.
#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use logwarden::event::Sym;
use logwarden::parse::Parser;
use logwarden::parse::cloudtrail::CloudTrailParser;
use logwarden::source::cloudtrail::read_records;
use logwarden_fuzz::{is_one_value_by_structure, json_records};

fuzz_target!(|data: &[u8]| {
    let mut parser = CloudTrailParser::default();
    let mut texts = Vec::new();
    let result = read_records(data, Sym::from_static("fuzz"), |rec| {
        assert_eq!(rec.origin.record, texts.len() as u64 + 1, "records numbered out of order");
        let at = usize::try_from(rec.origin.offset).unwrap_or(usize::MAX);
        assert_eq!(
            data.get(at..at.saturating_add(rec.bytes.len())),
            Some(&rec.bytes[..]),
            "record {} is not at its offset {at}",
            rec.origin.record
        );
        // Structure is the framer's promise; content (a missing comma, `tru`, bad UTF-8) is
        // not, and a record damaged inside is the parser's to reject.
        assert!(
            is_one_value_by_structure(&rec.bytes),
            "record {} is not one value by structure: {:?}",
            rec.origin.record,
            String::from_utf8_lossy(&rec.bytes)
        );
        if parser.parse(&rec, &mut Vec::new()).is_ok() {
            assert!(
                serde_json::from_slice::<serde::de::IgnoredAny>(&rec.bytes).is_ok(),
                "the parser accepted a record that is not JSON: {:?}",
                String::from_utf8_lossy(&rec.bytes)
            );
        }
        texts.push(String::from_utf8_lossy(&rec.bytes).into_owned());
        ControlFlow::Continue(())
    });
    let emitted = texts.len() as u64;
    match &result {
        Ok(summary) => assert_eq!(summary.records, emitted, "summary miscounts"),
        Err(e) => {
            let _ = e.kind();
            assert_eq!(e.records_emitted(), emitted, "error miscounts: {e}");
        }
    }
    // Where serde_json can say what the records are, the framer finds exactly those.
    if let Some(want) = json_records(data) {
        assert!(result.is_ok(), "valid input failed: {result:?}");
        assert_eq!(texts, want, "records differ from serde_json's");
    }
});
