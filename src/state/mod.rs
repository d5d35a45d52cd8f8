//! The state database (DESIGN §6): one redb file holding the outbox, file checkpoints and
//! the silences set through the API. Each store here owns its tables; they share the file.

pub mod checkpoint;
pub mod silences;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::Database;

/// Why the state database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// redb failed (open, transaction, table, commit, storage).
    #[error("state database {path}: {detail}")]
    Db {
        /// The file.
        path: PathBuf,
        /// redb's message.
        detail: String,
    },
    /// A stored record does not decode (written by a newer version, or damaged).
    #[error("state database {path}: {table} record `{key}` does not decode: {detail}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The table.
        table: &'static str,
        /// The record's key.
        key: String,
        /// Why.
        detail: String,
    },
}

/// The state database's page cache.
const CACHE_BYTES: usize = 4 << 20;

/// Opens (creating if needed) the state database at `path`; redb locks it, so a second
/// daemon on the same file fails here rather than corrupting it.
pub fn open(path: &Path) -> Result<Arc<Database>, StateError> {
    // redb caches pages up to a large default; the daemon rewrites its state snapshots every
    // second, and the cache would grow with them. Reads here are few and small.
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map(Arc::new)
        .map_err(|e| StateError::Db { path: path.to_path_buf(), detail: e.to_string() })
}

/// Maps any redb error to [`StateError::Db`] for `path`.
pub(crate) fn db_error(path: &Path) -> impl Fn(redb::Error) -> StateError + '_ {
    move |e| StateError::Db { path: path.to_path_buf(), detail: e.to_string() }
}
