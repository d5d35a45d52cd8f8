//! Application extractors: given a syslog message's program and text, fill in who/what/where.
//!
//! Dispatch is by program name first (a string compare, not a regex), then each extractor checks
//! literal prefixes before it splits fields by hand, so an unrecognized line costs a few byte
//! comparisons. A line no extractor recognizes still becomes an event, just without an action.

pub mod sshd;
pub mod sshd_session;

use crate::event::Event;

/// The extractors for one stream, with the per-stream state some of them need.
#[derive(Default)]
pub struct Extractors {
    sshd: sshd::Sshd,
}

impl Extractors {
    /// Fills the application fields of `e` from `msg`, written by program `app`; false when no
    /// extractor recognized the line.
    pub fn extract(&mut self, app: &str, msg: &str, e: &mut Event) -> bool {
        match program(app) {
            // OpenSSH 9.8 moved per-connection logging to sshd-session (and 10.0 to sshd-auth).
            "sshd" | "sshd-session" | "sshd-auth" => self.sshd.extract(msg, e),
            _ => false,
        }
    }
}

/// The program name without a `(module)` suffix (`sshd(pam_unix)` -> `sshd`).
fn program(app: &str) -> &str {
    app.split_once('(').map_or(app, |(p, _)| p)
}
