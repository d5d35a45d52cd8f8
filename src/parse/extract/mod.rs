//! Application extractors: given a syslog message's program and text, fill in who/what/where.
//!
//! Dispatch is by program name first (a string compare, not a regex), then each extractor checks
//! literal prefixes before it splits fields by hand, so an unrecognized line costs a few byte
//! comparisons. A line no extractor recognizes still becomes an event, just without an action.
//!
//! Every extractor has the same contract: it returns false and leaves the event untouched when it
//! does not recognize the line, so a caller may try another one.

pub mod account;
pub mod logind;
pub mod pam;
pub mod su;
pub mod sudo;

use crate::event::{Category, Event, EventType, Outcome, Sym};

/// The extractors for one stream, with the per-stream state some of them need.
#[derive(Default)]
pub struct Extractors {}

impl Extractors {
    /// Fills the application fields of `e` from `msg`, written by program `app`; false when no
    /// extractor recognized the line.
    pub fn extract(&mut self, app: &str, msg: &str, e: &mut Event) -> bool {
        // PAM modules log through whichever program loaded them (sshd, sudo, su, cron), so their
        // lines are recognized by text before the program name is looked at.
        if pam::is_pam(msg) {
            return pam::extract(msg, e);
        }
        // Old Linux-PAM put the module in the program name instead: `su(pam_unix)[945]: session
        // opened for user news by (uid=0)`.
        let (prog, module) = match app.split_once('(') {
            Some((prog, module)) => (prog, Some(module)),
            None => (app, None),
        };
        if module.is_some_and(|m| m.starts_with("pam_")) {
            return pam::extract_body(msg, e);
        }
        match prog {
            "sudo" => sudo::extract(msg, e),
            "su" => su::extract(msg, e),
            "systemd-logind" => logind::extract(msg, e),
            // The sshd extractor joins here: `"sshd" => self.sshd.extract(msg, e)`.
            _ if account::is_account_program(prog) => account::extract(prog, msg, e),
            _ => false,
        }
    }
}

/// Sets the classification every extractor writes once it has recognized a line.
fn tag(
    e: &mut Event,
    dataset: &'static str,
    action: &'static str,
    outcome: Outcome,
    category: Category,
    kind: EventType,
) {
    e.dataset = Some(Sym::from_static(dataset));
    e.action = Some(Sym::from_static(action));
    e.outcome = Some(outcome);
    e.category = category;
    e.kind = kind;
}

/// A user or group name as logged: non-empty and without whitespace, else None.
fn name(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace())).then_some(s)
}
