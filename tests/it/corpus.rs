//! Access to the shared third-party corpus (`../shared/corpus` beside the repository).

use std::path::PathBuf;

/// The path of a corpus file.
pub fn path(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")).join(rel)
}

/// A corpus file's text.
pub fn read(rel: &str) -> String {
    let p = path(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
