//! Running the `logwarden` binary from tests, as a user would.

use std::ffi::OsStr;
use std::process::Command;

/// What one run of the binary did.
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `logwarden ARGS...` to completion.
pub fn logwarden<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_logwarden"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run logwarden: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
