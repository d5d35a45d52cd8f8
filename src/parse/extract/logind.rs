//! systemd-logind session lines (`New session 12 of user alice.`, `Removed session 12.`).
//!
//! | action | outcome | category | type |
//! |---|---|---|---|
//! | `session_started` | success | session | start |
//! | `session_logged_out` | success | session | info |
//! | `session_ended` | success | session | end |
//!
//! A logout is followed by `Removed session` once its processes exit, so only the removal is
//! typed `end`; counting both would end every session twice. The session id stays in the
//! message: only `New session` names the user, so joining the three needs per-session state
//! that no rule has asked for yet.

use super::{name, tag};
use crate::event::{Category, Event, EventType, Outcome};

const DATASET: &str = "systemd-logind";

/// Fills `e` from a systemd-logind line; false, `e` untouched, when not recognized.
pub fn extract(msg: &str, e: &mut Event) -> bool {
    if let Some(rest) = msg.strip_prefix("New session ") {
        let Some((id, user)) = super::split_lit(rest, " of user ") else {
            return false;
        };
        // User names may contain dots, so only the one closing the sentence is dropped.
        let user = user.strip_suffix('.').unwrap_or(user);
        let Some(user) = name(user).filter(|_| session_id(id)) else {
            return false;
        };
        tag(e, DATASET, "session_started", Outcome::Success, Category::SESSION, EventType::START);
        e.user_name = Some(user.into());
        true
    } else if let Some(rest) = msg.strip_prefix("Removed session ") {
        if !session_id(rest.strip_suffix('.').unwrap_or(rest)) {
            return false;
        }
        tag(e, DATASET, "session_ended", Outcome::Success, Category::SESSION, EventType::END);
        true
    } else if let Some(rest) = msg.strip_prefix("Session ") {
        match super::split_lit(rest, " logged out.") {
            Some((id, _)) if session_id(id) => {
                tag(
                    e,
                    DATASET,
                    "session_logged_out",
                    Outcome::Success,
                    Category::SESSION,
                    EventType::INFO,
                );
                true
            }
            _ => false,
        }
    } else {
        false
    }
}

/// logind session ids: `12`, or `c1` for sessions not tied to a seat login.
fn session_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(msg: &str) -> Option<Event> {
        let mut e = Event::default();
        extract(msg, &mut e).then_some(e)
    }

    // The corpus has no logind lines; these are what systemd-logind writes (src/login/logind-*.c).

    #[test]
    fn new_session() {
        let e = run("New session 12 of user alice.").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("systemd-logind"));
        assert_eq!(e.action.as_deref(), Some("session_started"));
        assert_eq!(e.outcome, Some(Outcome::Success));
        assert_eq!(e.category, Category::SESSION);
        assert_eq!(e.kind, EventType::START);
        assert_eq!(e.user_name.as_deref(), Some("alice"));
        let e = run("New session c1 of user gdm.").unwrap();
        assert_eq!(e.user_name.as_deref(), Some("gdm"));
        let e = run("New session 3 of user first.last.").unwrap();
        assert_eq!(e.user_name.as_deref(), Some("first.last"));
    }

    #[test]
    fn session_end_and_logout() {
        let e = run("Removed session 12.").unwrap();
        assert_eq!(e.action.as_deref(), Some("session_ended"));
        assert_eq!(e.kind, EventType::END);
        assert_eq!(e.user_name, None);
        let e = run("Session 12 logged out. Waiting for processes to exit.").unwrap();
        assert_eq!(e.action.as_deref(), Some("session_logged_out"));
        assert_eq!(e.kind, EventType::INFO);
        assert_eq!(e.category, Category::SESSION);
    }

    #[test]
    fn unrecognized_lines_leave_the_event_alone() {
        crate::parse::extract::testing::assert_declines(
            extract,
            &[
                "",
                "New seat seat0.",
                "Watching system buttons on /dev/input/event0 (Power Button)",
                "New session  of user alice.",
                "New session 12 of user .",
                "Removed session .",
                "Session 12 is stopping.",
                "Session x y logged out.",
            ],
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_false_leaves_event_alone(msg in "(New session |Removed session |Session )?[a-z0-9 .]{0,30}") {
            let mut e = Event::default();
            if !extract(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
