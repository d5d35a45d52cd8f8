//! sudo's per-command log line: `alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id`.
//!
//! | action | outcome | category | type |
//! |---|---|---|---|
//! | `sudo_command` | success | process | start |
//! | `sudo_auth_failure` | failure | authentication | start |
//! | `sudo_not_in_sudoers` | failure | authentication | info |
//! | `sudo_command_not_allowed` | failure | authentication | info |
//! | `sudo_password_required` | failure | authentication | info |
//! | `sudo_failure` (any other reason) | failure | authentication | info |
//!
//! A refusal is logged as the same line with a reason before the fields (`alice : user NOT in
//! sudoers ; TTY=...`); the reason goes to `event.reason` verbatim. Refusals are typed `info`
//! because ECS allows only start/end/info with `authentication` and a policy refusal is not a
//! credential check; rules tell them apart by action. `user.name` is the invoking user,
//! `user.target.name` the `USER=` run-as user, `process.command_line` everything after
//! `COMMAND=`, which may itself contain ` ; `.

use super::{name, tag};
use crate::event::{Category, Event, EventType, Outcome};

const DATASET: &str = "sudo";

/// Fills `e` from a sudo log line; false, `e` untouched, when not recognized.
pub fn extract(msg: &str, e: &mut Event) -> bool {
    // sudo indents the line with spaces under some syslog daemons; the user name follows.
    let Some((user, rest)) = super::split_lit(msg.trim_start_matches(' '), " : ") else {
        return false;
    };
    let Some(user) = name(user) else {
        return false;
    };
    let (reason, fields) = if rest.starts_with("TTY=") {
        (None, rest)
    } else {
        match super::split_lit(rest, " ; ") {
            Some((reason, fields)) if fields.starts_with("TTY=") => (Some(reason), fields),
            _ => return false,
        }
    };
    let mut target = None;
    let mut command = None;
    let mut remaining = fields;
    loop {
        if let Some(cmd) = remaining.strip_prefix("COMMAND=") {
            command = Some(cmd);
            break;
        }
        let (field, next) = match super::split_lit(remaining, " ; ") {
            Some((field, next)) => (field, Some(next)),
            None => (remaining, None),
        };
        if let Some(run_as) = field.strip_prefix("USER=") {
            target = name(run_as);
        }
        match next {
            Some(next) => remaining = next,
            None => break,
        }
    }
    let (action, category, kind) = match reason {
        None => ("sudo_command", Category::PROCESS, EventType::START),
        Some(r) if r.ends_with("incorrect password attempts") => {
            ("sudo_auth_failure", Category::AUTHENTICATION, EventType::START)
        }
        Some(r) if r.ends_with("incorrect password attempt") => {
            ("sudo_auth_failure", Category::AUTHENTICATION, EventType::START)
        }
        Some("user NOT in sudoers") => {
            ("sudo_not_in_sudoers", Category::AUTHENTICATION, EventType::INFO)
        }
        Some("command not allowed") | Some("user NOT authorized on host") => {
            ("sudo_command_not_allowed", Category::AUTHENTICATION, EventType::INFO)
        }
        Some("a password is required") => {
            ("sudo_password_required", Category::AUTHENTICATION, EventType::INFO)
        }
        Some(_) => ("sudo_failure", Category::AUTHENTICATION, EventType::INFO),
    };
    let outcome = if reason.is_none() { Outcome::Success } else { Outcome::Failure };
    tag(e, DATASET, action, outcome, category, kind);
    e.reason = reason.map(Into::into);
    e.user_name = Some(user.into());
    e.user_target_name = target.map(Into::into);
    e.process_command_line = command.map(Into::into);
    true
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

    // The corpus has no sudo lines; these follow sudo's documented log format (sudoers(5),
    // "Log format") as written by sudo 1.8 and 1.9.

    #[test]
    fn command_run() {
        let e = run("  alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u")
            .unwrap();
        assert_eq!(e.dataset.as_deref(), Some("sudo"));
        assert_eq!(e.action.as_deref(), Some("sudo_command"));
        assert_eq!(e.outcome, Some(Outcome::Success));
        assert_eq!(e.category, Category::PROCESS);
        assert_eq!(e.kind, EventType::START);
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), Some("root"));
        assert_eq!(e.process_command_line.as_deref(), Some("/usr/bin/id -u"));
        assert_eq!(e.reason, None);
    }

    #[test]
    fn command_keeps_semicolons() {
        let e = run("alice : TTY=unknown ; PWD=/ ; USER=root ; COMMAND=/bin/sh -c echo a ; echo b")
            .unwrap();
        assert_eq!(e.process_command_line.as_deref(), Some("/bin/sh -c echo a ; echo b"));
        assert_eq!(s(&e.user_target_name), Some("root"));
    }

    #[test]
    fn sudo_1_9_env_and_group() {
        let e = run("alice : TTY=pts/1 ; PWD=/srv ; USER=postgres ; GROUP=postgres ; ENV=PGDATA=/srv/pg LANG=C ; COMMAND=/usr/bin/psql")
            .unwrap();
        assert_eq!(s(&e.user_target_name), Some("postgres"));
        assert_eq!(e.process_command_line.as_deref(), Some("/usr/bin/psql"));
        let e = run("alice : TTY=pts/1 ; PWD=/srv ; USER=root ; TSID=000001 ; COMMAND=/bin/bash")
            .unwrap();
        assert_eq!(e.process_command_line.as_deref(), Some("/bin/bash"));
    }

    #[test]
    fn incorrect_password_attempts() {
        let e = run("alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash").unwrap();
        assert_eq!(e.action.as_deref(), Some("sudo_auth_failure"));
        assert_eq!(e.outcome, Some(Outcome::Failure));
        assert_eq!(e.category, Category::AUTHENTICATION);
        assert_eq!(e.kind, EventType::START);
        assert_eq!(s(&e.reason), Some("3 incorrect password attempts"));
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), Some("root"));
        assert_eq!(e.process_command_line.as_deref(), Some("/bin/bash"));
        let e = run("    alice : 1 incorrect password attempt ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt update").unwrap();
        assert_eq!(e.action.as_deref(), Some("sudo_auth_failure"));
        assert_eq!(s(&e.reason), Some("1 incorrect password attempt"));
    }

    #[test]
    fn refusals() {
        for (line, action, reason) in [
            (
                "alice : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/cat /etc/shadow",
                "sudo_not_in_sudoers",
                "user NOT in sudoers",
            ),
            (
                "alice : command not allowed ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/bash",
                "sudo_command_not_allowed",
                "command not allowed",
            ),
            (
                "alice : a password is required ; TTY=unknown ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id",
                "sudo_password_required",
                "a password is required",
            ),
            (
                "alice : unable to resolve host ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id",
                "sudo_failure",
                "unable to resolve host",
            ),
        ] {
            let e = run(line).unwrap();
            assert_eq!(e.action.as_deref(), Some(action), "{line}");
            assert_eq!(e.outcome, Some(Outcome::Failure));
            assert_eq!(e.category, Category::AUTHENTICATION);
            assert_eq!(e.kind, EventType::INFO);
            assert_eq!(s(&e.reason), Some(reason));
            assert_eq!(s(&e.user_name), Some("alice"));
            assert_eq!(s(&e.user_target_name), Some("root"));
        }
    }

    #[test]
    fn unrecognized_lines_leave_the_event_alone() {
        crate::parse::extract::testing::assert_declines(
            extract,
            &[
                "",
                " : TTY=pts/0 ; USER=root ; COMMAND=/bin/id",
                "alice : (command continued) --verbose",
                "alice : something ; PWD=/ ; USER=root",
                "alice bob : TTY=pts/0 ; COMMAND=/bin/id",
                "pam_unix(sudo:session): session closed for user root",
                "unable to resolve host web-1: Name or service not known",
            ],
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_false_leaves_event_alone(msg in "( *[a-z]{0,3} : )?([A-Z]{0,3}=?[a-z/ ]{0,5}( ; )?){0,4}.{0,20}") {
            let mut e = Event::default();
            if !extract(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
