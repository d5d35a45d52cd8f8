//! Scan reports of arbitrary bytes: never panics; a report that reads merges to itself (merging
//! is idempotent, so reading a file twice into one scan changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use logwarden::parse::scan::{merge, read};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, report)) = read(std::path::Path::new("fuzz.json"), data) {
        assert_eq!(merge([report.clone()]), report);
        for f in &report.findings {
            assert!(f.aliases.contains(&f.id) || f.id.is_empty());
        }
    }
});
