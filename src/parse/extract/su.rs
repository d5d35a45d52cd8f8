//! su's switch-user lines, from util-linux (`(to root) alice on pts/0`) and shadow-utils
//! (`Successful su for root by alice`, `+ pts/0 alice:root`).
//!
//! Every form is one action, `su_session`: outcome success or failure, category authentication
//! and session, type start. `user.name` is who ran su, `user.target.name` whom they became.

use super::{name, tag};
use crate::event::{Category, Event, EventType, Outcome};

/// Fills `e` from an su line; false, `e` untouched, when not recognized.
pub fn extract(msg: &str, e: &mut Event) -> bool {
    let parsed = if let Some(rest) = msg.strip_prefix("(to ") {
        to_form(rest).map(|(from, to)| (Outcome::Success, from, to))
    } else if let Some(rest) = msg.strip_prefix("FAILED SU (to ") {
        to_form(rest).map(|(from, to)| (Outcome::Failure, from, to))
    } else if let Some(rest) = msg.strip_prefix("Successful su for ") {
        for_by(rest).map(|(from, to)| (Outcome::Success, from, to))
    } else if let Some(rest) = msg.strip_prefix("FAILED su for ") {
        for_by(rest).map(|(from, to)| (Outcome::Failure, from, to))
    } else if let Some(rest) = msg.strip_prefix("+ ") {
        sulog(rest).map(|(from, to)| (Outcome::Success, from, to))
    } else if let Some(rest) = msg.strip_prefix("- ") {
        sulog(rest).map(|(from, to)| (Outcome::Failure, from, to))
    } else {
        None
    };
    let Some((outcome, from, to)) = parsed else {
        return false;
    };
    tag(
        e,
        "su",
        "su_session",
        outcome,
        Category::AUTHENTICATION | Category::SESSION,
        EventType::START,
    );
    e.user_name = Some(from.into());
    e.user_target_name = Some(to.into());
    true
}

/// `root) alice on pts/0` -> (alice, root).
fn to_form(rest: &str) -> Option<(&str, &str)> {
    let (to, rest) = super::split_lit(rest, ") ")?;
    let (from, _tty) = super::split_lit(rest, " on ")?;
    Some((name(from)?, name(to)?))
}

/// `root by alice` -> (alice, root).
fn for_by(rest: &str) -> Option<(&str, &str)> {
    let (to, from) = super::split_lit(rest, " by ")?;
    Some((name(from.trim_end())?, name(to)?))
}

/// `pts/0 alice:root` -> (alice, root).
fn sulog(rest: &str) -> Option<(&str, &str)> {
    let (_tty, users) = rest.split_once(' ')?;
    let (from, to) = users.trim_end().split_once(':')?;
    Some((name(from)?, name(to)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CompactString;
    use proptest::prelude::*;

    fn run(msg: &str) -> Option<Event> {
        let mut e = Event::default();
        extract(msg, &mut e).then_some(e)
    }

    fn s(v: &Option<CompactString>) -> Option<&str> {
        v.as_deref()
    }

    // The corpus has only su's PAM lines (loghub/Linux/Linux_2k.log, `su(pam_unix)`), which the
    // PAM extractor handles; these follow what util-linux and shadow-utils su write.

    #[test]
    fn every_form() {
        for (line, outcome) in [
            ("(to root) alice on pts/0", Outcome::Success),
            ("FAILED SU (to root) alice on pts/0", Outcome::Failure),
            ("Successful su for root by alice", Outcome::Success),
            ("FAILED su for root by alice", Outcome::Failure),
            ("+ pts/0 alice:root", Outcome::Success),
            ("- pts/0 alice:root", Outcome::Failure),
            ("+ /dev/pts/0 alice:root", Outcome::Success),
            ("(to root) alice on none", Outcome::Success),
        ] {
            let e = run(line).unwrap();
            assert_eq!(e.dataset.as_deref(), Some("su"), "{line}");
            assert_eq!(e.action.as_deref(), Some("su_session"), "{line}");
            assert_eq!(e.outcome, Some(outcome), "{line}");
            assert_eq!(e.category, Category::AUTHENTICATION | Category::SESSION);
            assert_eq!(e.kind, EventType::START);
            assert_eq!(s(&e.user_name), Some("alice"), "{line}");
            assert_eq!(s(&e.user_target_name), Some("root"), "{line}");
        }
    }

    #[test]
    fn unrecognized_lines_leave_the_event_alone() {
        crate::parse::extract::testing::assert_declines(
            extract,
            &[
                "",
                "(to root) alice",
                "(to ) alice on pts/0",
                "FAILED SU (to root)  on pts/0",
                "Successful su for root",
                "+ pts/0 aliceroot",
                "- ",
                "pam_authenticate: Authentication failure",
                "session opened for user news by (uid=0)",
            ],
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_false_leaves_event_alone(msg in "(\\(to |FAILED SU \\(to |Successful su for |FAILED su for |\\+ |- )?.{0,40}") {
            let mut e = Event::default();
            if !extract(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
