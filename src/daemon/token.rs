//! The API token a daemon makes for itself when `api.token` is not configured: a random
//! secret in the state directory, readable by its owner only, kept across restarts, and read
//! by the `logwarden silence` CLI as CrowdSec's `cscli` reads its local API credentials.
//!
//! Mutating the daemon (silences, reloads, evaluations) always needs a token; this file is how
//! an operator on the host gets one without anything to configure, while other local users,
//! who cannot read the state directory, cannot.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The token file's name, beside the state database.
pub const TOKEN_FILE: &str = "api.token";
/// Random bytes in a token (written as hex: 64 characters).
const TOKEN_BYTES: usize = 32;

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// It exists but cannot be read.
    #[error("api token {path}: cannot read it")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// It could not be created.
    #[error("api token {path}: cannot create it")]
    Create {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// It holds no usable token (empty, or not printable ASCII: a header cannot carry it).
    #[error("api token {path}: {detail}; delete the file and restart the daemon to make a new one")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Other users may read it: anyone who can could mute every alert.
    #[error(
        "api token {path}: mode {mode:04o} lets other users read it; `chmod 600 {path}` (or \
         delete it for a new token)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl TokenError {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenError::Read { .. } => "read",
            TokenError::Create { .. } => "create",
            TokenError::Malformed { .. } => "malformed",
            TokenError::Exposed { .. } => "exposed",
        }
    }
}

/// The token file for the state database `state`: beside it.
pub fn path_for(state: &Path) -> PathBuf {
    let dir = state.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(TOKEN_FILE)
}

/// The daemon's own token, and whether it was made just now.
#[derive(Debug, Clone)]
pub struct StateToken {
    /// The secret.
    pub token: String,
    /// Where it is.
    pub path: PathBuf,
    /// Made at this start (else read from an earlier one).
    pub created: bool,
}

/// Reads the token beside `state`, or makes one (mode 0600) when there is none. Refuses a
/// file other users can read.
pub fn load_or_create(state: &Path) -> Result<StateToken, TokenError> {
    let path = path_for(state);
    match read(&path) {
        Ok(token) => return Ok(StateToken { token, path, created: false }),
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = hex::encode(rand::random::<[u8; TOKEN_BYTES]>());
    // Written whole under a temporary name, then linked into place: a crash never leaves a
    // half-written token, and of two starts racing, one token wins and both use it.
    let tmp = path.with_file_name(format!(".{TOKEN_FILE}.{}.tmp", std::process::id()));
    let create = |source| TokenError::Create { path: path.clone(), source };
    let written = (|| {
        let mut f =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(create(e));
    }
    let linked = match std::fs::hard_link(&tmp, &path) {
        // A file system without hard links: a rename, atomic too, though a start racing
        // this one could then replace the token the other just handed out.
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => std::fs::rename(&tmp, &path),
        other => other,
    };
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent()
                && let Ok(d) = std::fs::File::open(dir)
            {
                // The link is durable before the token is handed out.
                let _ = d.sync_all();
            }
            Ok(StateToken { token, path, created: true })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path).map(|token| StateToken { token, path, created: false })
        }
        Err(e) => Err(create(e)),
    }
}

/// Reads a token file (the trailing newline dropped), refusing one other users can read.
pub fn read(path: &Path) -> Result<String, TokenError> {
    let read_error = |source| TokenError::Read { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Exposed { path: path.to_path_buf(), mode });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    let token = text.trim_end_matches(['\n', '\r']);
    let malformed = |detail: &str| TokenError::Malformed {
        path: path.to_path_buf(),
        detail: detail.to_owned(),
    };
    if token.is_empty() {
        return Err(malformed("it is empty"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("it holds characters other than printable ASCII"));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_token_is_made_once_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.redb");
        let first = load_or_create(&state).unwrap();
        assert!(first.created);
        assert_eq!(first.path, dir.path().join("api.token"));
        assert_eq!(first.token.len(), 64);
        assert!(first.token.bytes().all(|b| b.is_ascii_hexdigit()), "{}", first.token);
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = load_or_create(&state).unwrap();
        assert!(!again.created);
        assert_eq!(again.token, first.token);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["api.token"]);
        // Another state directory, another token.
        let other = tempfile::tempdir().unwrap();
        let third = load_or_create(&other.path().join("s.redb")).unwrap();
        assert_ne!(third.token, first.token);
    }

    #[test]
    fn a_token_others_can_read_or_an_empty_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.redb");
        let made = load_or_create(&state).unwrap();
        std::fs::set_permissions(&made.path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_or_create(&state).unwrap_err();
        assert_eq!(e.kind(), "exposed");
        assert!(e.to_string().contains("mode 0644"), "{e}");
        std::fs::set_permissions(&made.path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&made.path, "\n").unwrap();
        let e = load_or_create(&state).unwrap_err();
        assert_eq!(e.kind(), "malformed");
        assert!(e.to_string().contains("it is empty"), "{e}");
        std::fs::write(&made.path, "own-secret\n").unwrap();
        assert_eq!(load_or_create(&state).unwrap().token, "own-secret");
    }

    #[test]
    fn a_bare_state_file_name_keeps_its_token_in_the_working_directory() {
        assert_eq!(path_for(Path::new("state.redb")), Path::new("./api.token"));
        assert_eq!(path_for(Path::new("/var/lib/lw/s.redb")), Path::new("/var/lib/lw/api.token"));
    }
}
