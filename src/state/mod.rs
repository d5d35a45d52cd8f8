//! The state database (DESIGN §6): one redb file holding the outbox, file checkpoints and
//! the silences set through the API. Each store here owns its tables; they share the file
//! through one [`StateDb`] handle, which survives I/O errors and checks the file on open.

pub mod checkpoint;
pub mod db;
pub mod silences;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use db::StateDb;

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
    /// The file exists and is empty: truncated, or lost its content. redb would take it for a
    /// new database, and starting over in silence re-reads tailed files and alerts again.
    #[error("state database {path} is empty (0 bytes): it was truncated; {advice}")]
    Empty {
        /// The file.
        path: PathBuf,
        /// What to run.
        advice: &'static str,
    },
    /// The file cannot be opened or fails its integrity check.
    #[error("state database {path} is damaged: {detail}; {advice}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What redb said.
        detail: String,
        /// What to run.
        advice: &'static str,
    },
    /// The file was written by a newer logwarden, whose layout this one does not know.
    #[error(
        "state database {path} has layout version {found}, newer than this logwarden's {}; \
         run the newer version or move the file aside",
        db::FORMAT
    )]
    Newer {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
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

/// Opens (creating if needed) the state database at `path`, checked as [`StateDb::open`]
/// says; redb locks it, so a second daemon on the same file fails here rather than corrupting
/// it.
pub fn open(path: &Path) -> Result<Arc<StateDb>, StateError> {
    StateDb::open(path)
}

/// Maps any redb error to [`StateError::Db`] for `path`.
pub(crate) fn db_error(path: &Path) -> impl Fn(redb::Error) -> StateError + '_ {
    move |e| StateError::Db { path: path.to_path_buf(), detail: e.to_string() }
}
