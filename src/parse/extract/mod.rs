//! Application extractors: given a syslog message's program and text, fill in who/what/where.
//!
//! Dispatch is by program name first (a string compare, not a regex), then each extractor checks
//! literal prefixes before it splits fields by hand, so an unrecognized line costs a few byte
//! comparisons. A line no extractor recognizes still becomes an event, just without an action.
//!
//! Every extractor has the same contract: it returns false and leaves the event untouched when it
//! does not recognize the line, so a caller may try another one.

pub mod account;
pub mod dropbear;
pub mod logind;
pub mod pam;
pub mod peer;
pub mod sshd;
pub mod sshd_session;
pub mod su;
pub mod sudo;

use crate::event::{Category, Event, EventType, Outcome, Sym};

/// The extractors for one stream, with the per-stream state some of them need.
#[derive(Default)]
pub struct Extractors {
    sshd: sshd::Sshd,
}

impl Extractors {
    /// Fills the application fields of `e` from `msg`, written by program `app`; false when no
    /// extractor recognized the line.
    pub fn extract(&mut self, app: &str, msg: &str, e: &mut Event) -> bool {
        // PAM modules log through whichever program loaded them (sshd, sudo, su, cron), so their
        // lines are recognized by text before the program name is looked at. One PAM does not
        // know falls through, in case the program's own extractor does.
        if pam::is_pam(msg) && pam::extract(app, msg, e) {
            if e.service_name.as_deref() == Some("sshd")
                && e.action.as_deref() == Some("pam_auth_failure")
                && let Some(pid) = e.process_pid
            {
                let user = e.user_name.as_deref().or(e.user_target_name.as_deref());
                if self.sshd.pam_failure(e.host_name.as_ref(), pid, user) {
                    e.kind = EventType::START;
                }
            }
            return true;
        }
        // Old Linux-PAM put the module in the program name instead: `su(pam_unix)[945]: session
        // opened for user news by (uid=0)`.
        if module(app).is_some_and(|m| m.starts_with("pam_"))
            && pam::extract_service_body(Some(program(app)), msg, e)
        {
            e.service_name = Some(Sym::from(program(app)));
            return true;
        }
        match program(app) {
            "sudo" => sudo::extract(msg, e),
            "su" => su::extract(msg, e),
            "systemd-logind" => logind::extract(msg, e),
            "dropbear" => dropbear::extract(msg, e),
            // OpenSSH 9.8 moved per-connection logging to sshd-session (and 10.0 to sshd-auth).
            "sshd" | "sshd-session" | "sshd-auth" => self.sshd.extract(msg, e),
            prog if account::is_account_program(prog) => account::extract(prog, msg, e),
            _ => false,
        }
    }
}

/// Helpers the extractors' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use crate::event::Event;

    /// Asserts that `extract` recognizes none of `msgs` and leaves the event untouched (the
    /// contract every extractor keeps, so the dispatcher may try another).
    pub(crate) fn assert_declines(extract: fn(&str, &mut Event) -> bool, msgs: &[&str]) {
        for msg in msgs {
            let mut e = Event::default();
            assert!(!extract(msg, &mut e), "recognized: {msg}");
            assert_eq!(e, Event::default(), "changed the event: {msg}");
        }
    }
}

/// The program name without a `(module)` suffix (`sshd(pam_unix)` -> `sshd`).
pub(crate) fn program(app: &str) -> &str {
    app.split_once('(').map_or(app, |(p, _)| p)
}

/// The `(module)` suffix of a program name, without its parentheses.
fn module(app: &str) -> Option<&str> {
    let (_, m) = app.split_once('(')?;
    Some(m.strip_suffix(')').unwrap_or(m))
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

/// `str::split_once` for a literal: memchr to its first byte, then a compare. `str`'s
/// version builds a two-way searcher per call, which on these short lines cost more than the
/// split (a tenth of the parse in profiles).
pub(crate) fn split_lit<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let (hay, p) = (s.as_bytes(), pat.as_bytes());
    let (&first, tail) = p.split_first()?;
    let mut from = 0;
    while let Some(i) = memchr::memchr(first, &hay[from..]) {
        let at = from + i;
        if hay[at + 1..].starts_with(tail) {
            return Some((s.get(..at)?, s.get(at + p.len()..)?));
        }
        from = at + 1;
    }
    None
}

/// `str::rsplit_once` for a literal, searching from the end (see [`split_lit`]).
pub(crate) fn rsplit_lit<'a>(s: &'a str, pat: &str) -> Option<(&'a str, &'a str)> {
    let (hay, p) = (s.as_bytes(), pat.as_bytes());
    let (&first, tail) = p.split_first()?;
    let mut end = hay.len();
    while let Some(at) = memchr::memrchr(first, &hay[..end]) {
        if hay[at + 1..].starts_with(tail) {
            return Some((s.get(..at)?, s.get(at + p.len()..)?));
        }
        end = at;
    }
    None
}

/// A user or group name as logged: non-empty and without whitespace, else None.
fn name(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace())).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (program, message) pairs: verbatim from the corpus where it has the format (file noted),
    /// else in the format the program writes.
    const LINES: &[(&str, &str)] = &[
        // loghub/OpenSSH/OpenSSH_2k.log
        (
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root",
        ),
        (
            "sshd",
            "PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root",
        ),
        ("sshd", "pam_unix(sshd:session): session opened for user fztu by (uid=0)"),
        ("sshd", "pam_unix(sshd:auth): check pass; user unknown"),
        // loghub/Linux/Linux_2k.log
        ("su(pam_unix)", "session opened for user cyrus by (uid=0)"),
        ("su(pam_unix)", "session closed for user cyrus"),
        ("login(pam_unix)", "session opened for user root by LOGIN(uid=0)"),
        (
            "sshd(pam_unix)",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=n219076184117.netvigator.com  user=root",
        ),
        // crowdsec-hub/sshd-logs/sshd-logs.log
        (
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.33.63.160 user=workshop",
        ),
        ("sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"),
        ("passwd", "pam_unix(passwd:chauthtok): password changed for bob"),
        ("sudo", "  alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u"),
        (
            "sudo",
            "alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
        ),
        ("su", "FAILED SU (to root) alice on pts/0"),
        ("su", "+ pts/0 alice:root"),
        ("systemd-logind", "New session 12 of user alice."),
        ("systemd-logind", "Session 12 logged out. Waiting for processes to exit."),
        (
            "useradd",
            "new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0",
        ),
        ("usermod", "change user 'bob' shell from '/bin/sh' to '/bin/bash'"),
        ("gpasswd", "user bob added by root to group sudo"),
        ("passwd", "password for 'bob' changed by 'root'"),
    ];

    fn run(app: &str, msg: &str) -> Option<Event> {
        let mut e = Event::default();
        Extractors::default().extract(app, msg, &mut e).then_some(e)
    }

    #[test]
    fn every_sample_line_is_recognized() {
        for (app, msg) in LINES {
            assert!(run(app, msg).is_some(), "{app}: {msg}");
        }
    }

    #[test]
    fn pam_lines_win_over_the_program() {
        let e = run("sudo", "pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("pam"));
        // A PAM line PAM does not know is still offered to the program's extractor.
        assert!(run("su", "pam_unix(su:auth): conversation failed").is_none());
        assert!(run("sshd", "PAM service(sshd) ignoring max retries; 6 > 3").is_none());
    }

    #[test]
    fn module_suffix_on_the_program_name_means_pam() {
        let e = run("su(pam_unix)", "session opened for user news by (uid=0)").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("pam"));
        assert_eq!(e.action.as_deref(), Some("pam_session_opened"));
        assert_eq!(e.user_name.as_deref(), Some("news"));
        // A non-PAM suffix only names the program.
        let e = run("su(other)", "(to root) alice on pts/0").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("su"));
    }

    #[test]
    fn dispatches_by_program() {
        for (app, msg, dataset) in [
            ("sudo", "alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id", "sudo"),
            ("su", "Successful su for root by alice", "su"),
            ("systemd-logind", "Removed session 12.", "systemd-logind"),
            ("groupadd", "new group: name=devs, GID=1002", "groupadd"),
            ("chage", "changed password expiry for bob", "chage"),
        ] {
            assert_eq!(run(app, msg).unwrap().dataset.as_deref(), Some(dataset), "{msg}");
        }
        // Right text, wrong program.
        assert!(run("cron", "alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id").is_none());
        assert!(run("sshd", "New session 12 of user alice.").is_none());
        assert!(run("", "").is_none());
    }

    proptest! {
        #[test]
        fn truncated_sample_lines_never_panic_or_half_fill(idx in 0..LINES.len(), cut in 0usize..200) {
            let (app, msg) = LINES[idx];
            let mut cut = cut.min(msg.len());
            while !msg.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut x = Extractors::default();
            for text in [&msg[..cut], &msg[cut..]] {
                let mut e = Event::default();
                if !x.extract(app, text, &mut e) {
                    prop_assert_eq!(&e, &Event::default());
                }
            }
        }

        #[test]
        fn mutated_sample_lines_never_panic_or_half_fill(idx in 0..LINES.len(), at in 0usize..200, insert in ".{0,3}") {
            let (app, msg) = LINES[idx];
            let mut at = at.min(msg.len());
            while !msg.is_char_boundary(at) {
                at -= 1;
            }
            let mutated = format!("{}{}{}", &msg[..at], insert, &msg[at..]);
            let mut e = Event::default();
            if !Extractors::default().extract(app, &mutated, &mut e) {
                prop_assert_eq!(&e, &Event::default());
            }
        }

        #[test]
        fn arbitrary_input_never_panics(app in ".{0,16}", msg in ".{0,120}") {
            let mut e = Event::default();
            if !Extractors::default().extract(&app, &msg, &mut e) {
                prop_assert_eq!(&e, &Event::default());
            }
        }
    }

    proptest! {
        #[test]
        fn literal_splits_agree_with_str(s in "[ab :()]{0,24}", pat in prop::sample::select(vec![" : ", "): ", " by ", "a", "ab a", " "])) {
            prop_assert_eq!(split_lit(&s, pat), s.split_once(pat));
            prop_assert_eq!(rsplit_lit(&s, pat), s.rsplit_once(pat));
        }
    }

    #[test]
    fn literal_splits_handle_multibyte_text() {
        assert_eq!(split_lit("é by ü by x", " by "), Some(("é", "ü by x")));
        assert_eq!(rsplit_lit("é by ü by x", " by "), Some(("é by ü", "x")));
        assert_eq!(split_lit("", " by "), None);
    }

    #[test]
    fn every_cut_of_every_sample_line() {
        // Exhaustive companion to the truncation proptest: each prefix at every char boundary.
        let mut x = Extractors::default();
        for (app, msg) in LINES {
            for (cut, _) in msg.char_indices() {
                let mut e = Event::default();
                if !x.extract(app, &msg[..cut], &mut e) {
                    assert_eq!(e, Event::default(), "{app}: {}", &msg[..cut]);
                }
            }
        }
    }
}
