//! Account administration lines from shadow-utils (useradd, usermod, userdel, groupadd,
//! groupdel, groupmod, gpasswd, passwd, chpasswd, chage).
//!
//! All are outcome success and category iam; `event.dataset` is the program name.
//!
//! | action | type | fields |
//! |---|---|---|
//! | `user_created` | user, creation | user.target.name |
//! | `user_deleted` | user, deletion | user.target.name |
//! | `user_changed` | user, change | user.target.name (shell, home, name ... changed) |
//! | `user_locked` / `user_unlocked` | user, change | user.target.name |
//! | `password_changed` | user, change | user.target.name, user.name when logged (passwd) |
//! | `password_expiry_changed` | user, change | user.target.name (chage) |
//! | `group_created` | group, creation | group.name |
//! | `group_deleted` | group, deletion | group.name |
//! | `group_changed` | group, change | group.name (groupmod) |
//! | `user_added_to_group` | group, change | user.target.name, group.name, user.name (gpasswd) |
//! | `user_removed_from_group` | group, change | user.target.name, group.name, user.name (gpasswd) |
//!
//! shadow-utils writes some changes once per file (`/etc/group`, then `/etc/gshadow`); each line
//! becomes its own event, as in the log.

use super::{name, tag};
use crate::event::{Category, Event, EventType, Outcome};

/// Whether `prog` is one of the account tools this module reads.
pub fn is_account_program(prog: &str) -> bool {
    dataset(prog).is_some()
}

/// The program name as a static dataset, for the programs this module reads.
fn dataset(prog: &str) -> Option<&'static str> {
    Some(match prog {
        "useradd" => "useradd",
        "usermod" => "usermod",
        "userdel" => "userdel",
        "groupadd" => "groupadd",
        "groupdel" => "groupdel",
        "groupmod" => "groupmod",
        "gpasswd" => "gpasswd",
        "passwd" => "passwd",
        "chpasswd" => "chpasswd",
        "chage" => "chage",
        _ => return None,
    })
}

/// What one line said, before any of it is written to the event.
struct Change<'a> {
    action: &'static str,
    kind: EventType,
    actor: Option<&'a str>,
    target: Option<&'a str>,
    group: Option<&'a str>,
}

const USER_CHANGE: EventType = EventType::USER.with(EventType::CHANGE);
const GROUP_CHANGE: EventType = EventType::GROUP.with(EventType::CHANGE);

/// Fills `e` from an account tool's line, written by program `app`; false, `e` untouched, when
/// not recognized.
pub fn extract(app: &str, msg: &str, e: &mut Event) -> bool {
    let Some(dataset) = dataset(app) else {
        return false;
    };
    let Some(c) = parse(msg) else {
        return false;
    };
    tag(e, dataset, c.action, Outcome::Success, Category::IAM, c.kind);
    e.user_name = c.actor.map(Into::into);
    e.user_target_name = c.target.map(Into::into);
    e.group_name = c.group.map(Into::into);
    true
}

fn parse(msg: &str) -> Option<Change<'_>> {
    let user = |action, kind, target| Change { action, kind, actor: None, target, group: None };
    let group = |action, kind, group| Change { action, kind, actor: None, target: None, group };
    let membership =
        |action, actor, target, group| Change { action, kind: GROUP_CHANGE, actor, target, group };

    if let Some(rest) = msg.strip_prefix("new user: ") {
        let target = field(rest, "name=")?;
        Some(user("user_created", EventType::USER | EventType::CREATION, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("new group: ") {
        Some(group(
            "group_created",
            EventType::GROUP | EventType::CREATION,
            Some(field(rest, "name=")?),
        ))
    } else if let Some(rest) = msg.strip_prefix("group added to ") {
        let (_file, rest) = rest.split_once(": ")?;
        Some(group(
            "group_created",
            EventType::GROUP | EventType::CREATION,
            Some(field(rest, "name=")?),
        ))
    } else if let Some(rest) = msg.strip_prefix("add ") {
        // `add 'bob' to group 'sudo'`, `add 'bob' to shadow group 'sudo'`
        let (target, g) = user_and_group(rest, " to ")?;
        Some(membership("user_added_to_group", None, Some(target), Some(g)))
    } else if let Some(rest) = msg.strip_prefix("delete user ") {
        let (target, _) = quoted(rest)?;
        Some(user("user_deleted", EventType::USER | EventType::DELETION, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("delete ") {
        // `delete 'bob' from group 'sudo'`, `delete 'bob' from shadow group 'sudo'`
        let (target, g) = user_and_group(rest, " from ")?;
        Some(membership("user_removed_from_group", None, Some(target), Some(g)))
    } else if let Some(rest) = msg.strip_prefix("removed ") {
        // `removed group 'bob' owned by 'bob'`, `removed shadow group 'bob' owned by 'bob'`
        let rest = rest.strip_prefix("shadow ").unwrap_or(rest);
        let (g, _) = quoted(rest.strip_prefix("group ")?)?;
        Some(group("group_deleted", EventType::GROUP | EventType::DELETION, Some(g)))
    } else if let Some(rest) = msg.strip_prefix("group ") {
        if let Some(rest) = rest.strip_prefix("changed in ") {
            // groupmod: `group changed in /etc/group (group devs/1002, new name: developers)`
            let (_, rest) = rest.split_once("(group ")?;
            let (g, _) = rest.split_once('/')?;
            return Some(group("group_changed", GROUP_CHANGE, Some(name(g)?)));
        }
        // groupdel: `group 'devs' removed`, `group 'devs' removed from /etc/group`
        let (g, rest) = quoted(rest)?;
        rest.starts_with(" removed").then_some(())?;
        Some(group("group_deleted", EventType::GROUP | EventType::DELETION, Some(g)))
    } else if let Some(rest) = msg.strip_prefix("change user name ") {
        let (target, _) = quoted(rest)?;
        Some(user("user_changed", USER_CHANGE, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("change user ") {
        let (target, rest) = quoted(rest)?;
        let action = if rest == " password" { "password_changed" } else { "user_changed" };
        Some(user(action, USER_CHANGE, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("lock user ") {
        let (target, _) = quoted(rest)?;
        Some(user("user_locked", USER_CHANGE, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("unlock user ") {
        let (target, _) = quoted(rest)?;
        Some(user("user_unlocked", USER_CHANGE, Some(target)))
    } else if let Some(rest) = msg.strip_prefix("user ") {
        // gpasswd: `user bob added by root to group sudo`, `user bob removed by root from group sudo`
        let (target, rest) = rest.split_once(' ')?;
        let (action, rest, sep) = if let Some(rest) = rest.strip_prefix("added by ") {
            ("user_added_to_group", rest, " to group ")
        } else {
            ("user_removed_from_group", rest.strip_prefix("removed by ")?, " from group ")
        };
        let (actor, g) = rest.split_once(sep)?;
        Some(membership(action, Some(name(actor)?), Some(name(target)?), Some(name(g.trim_end())?)))
    } else if let Some(rest) = msg.strip_prefix("password for ") {
        // passwd: `password for 'bob' changed by 'root'`
        let (target, rest) = quoted(rest)?;
        let (actor, _) = quoted(rest.strip_prefix(" changed by ")?)?;
        Some(Change {
            action: "password_changed",
            kind: USER_CHANGE,
            actor: Some(actor),
            target: Some(target),
            group: None,
        })
    } else if let Some(rest) = msg.strip_prefix("changed password expiry for ") {
        Some(user("password_expiry_changed", USER_CHANGE, Some(name(rest.trim_end())?)))
    } else {
        None
    }
}

/// The value of `key` in a `name=bob, UID=1001, ...` list.
fn field<'a>(list: &'a str, key: &str) -> Option<&'a str> {
    list.split(", ").find_map(|kv| kv.strip_prefix(key)).and_then(name)
}

/// `'bob' rest` -> (`bob`, ` rest`).
/// `'user' <preposition> [shadow ]group 'group'`: the user and the group.
fn user_and_group<'a>(s: &'a str, preposition: &str) -> Option<(&'a str, &'a str)> {
    let (user, rest) = quoted(s)?;
    let rest = rest.strip_prefix(preposition)?;
    let rest = rest.strip_prefix("shadow ").unwrap_or(rest);
    let (group, _) = quoted(rest.strip_prefix("group ")?)?;
    Some((user, group))
}

fn quoted(s: &str) -> Option<(&str, &str)> {
    let (inner, rest) = s.strip_prefix('\'')?.split_once('\'')?;
    Some((name(inner)?, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::CompactString;
    use proptest::prelude::*;

    fn run(app: &str, msg: &str) -> Option<Event> {
        let mut e = Event::default();
        extract(app, msg, &mut e).then_some(e)
    }

    fn s(v: &Option<CompactString>) -> Option<&str> {
        v.as_deref()
    }

    // The corpus has no shadow-utils lines; these are the formats shadow-utils 4.x writes
    // (src/useradd.c, usermod.c, userdel.c, groupadd.c, groupdel.c, groupmod.c, gpasswd.c,
    // passwd.c, chage.c).

    /// (program, line, action, type, user.name, user.target.name, group.name)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        EventType,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    );

    const CASES: &[Case] = &[
        (
            "useradd",
            "new user: name=bob, UID=1001, GID=1001, home=/home/bob, shell=/bin/bash, from=/dev/pts/0",
            "user_created",
            EventType::USER.with(EventType::CREATION),
            None,
            Some("bob"),
            None,
        ),
        (
            "useradd",
            "new group: name=bob, GID=1001",
            "group_created",
            EventType::GROUP.with(EventType::CREATION),
            None,
            None,
            Some("bob"),
        ),
        (
            "groupadd",
            "group added to /etc/group: name=devs, GID=1002",
            "group_created",
            EventType::GROUP.with(EventType::CREATION),
            None,
            None,
            Some("devs"),
        ),
        (
            "groupadd",
            "group added to /etc/gshadow: name=devs",
            "group_created",
            EventType::GROUP.with(EventType::CREATION),
            None,
            None,
            Some("devs"),
        ),
        (
            "groupadd",
            "new group: name=devs, GID=1002",
            "group_created",
            EventType::GROUP.with(EventType::CREATION),
            None,
            None,
            Some("devs"),
        ),
        (
            "useradd",
            "add 'bob' to group 'sudo'",
            "user_added_to_group",
            GROUP_CHANGE,
            None,
            Some("bob"),
            Some("sudo"),
        ),
        (
            "usermod",
            "add 'bob' to shadow group 'sudo'",
            "user_added_to_group",
            GROUP_CHANGE,
            None,
            Some("bob"),
            Some("sudo"),
        ),
        (
            "usermod",
            "delete 'bob' from group 'docker'",
            "user_removed_from_group",
            GROUP_CHANGE,
            None,
            Some("bob"),
            Some("docker"),
        ),
        (
            "userdel",
            "delete user 'bob'",
            "user_deleted",
            EventType::USER.with(EventType::DELETION),
            None,
            Some("bob"),
            None,
        ),
        (
            "userdel",
            "removed group 'bob' owned by 'bob'",
            "group_deleted",
            EventType::GROUP.with(EventType::DELETION),
            None,
            None,
            Some("bob"),
        ),
        (
            "userdel",
            "removed shadow group 'bob' owned by 'bob'",
            "group_deleted",
            EventType::GROUP.with(EventType::DELETION),
            None,
            None,
            Some("bob"),
        ),
        (
            "groupdel",
            "group 'devs' removed",
            "group_deleted",
            EventType::GROUP.with(EventType::DELETION),
            None,
            None,
            Some("devs"),
        ),
        (
            "groupdel",
            "group 'devs' removed from /etc/group",
            "group_deleted",
            EventType::GROUP.with(EventType::DELETION),
            None,
            None,
            Some("devs"),
        ),
        (
            "groupmod",
            "group changed in /etc/group (group devs/1002, new name: developers)",
            "group_changed",
            GROUP_CHANGE,
            None,
            None,
            Some("devs"),
        ),
        (
            "usermod",
            "change user 'bob' password",
            "password_changed",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
        (
            "usermod",
            "lock user 'bob' password",
            "user_locked",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
        (
            "usermod",
            "unlock user 'bob' password",
            "user_unlocked",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
        (
            "usermod",
            "change user 'bob' shell from '/bin/sh' to '/bin/bash'",
            "user_changed",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
        (
            "usermod",
            "change user name 'bob' to 'rob'",
            "user_changed",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
        (
            "gpasswd",
            "user bob added by root to group sudo",
            "user_added_to_group",
            GROUP_CHANGE,
            Some("root"),
            Some("bob"),
            Some("sudo"),
        ),
        (
            "gpasswd",
            "user bob removed by root from group sudo",
            "user_removed_from_group",
            GROUP_CHANGE,
            Some("root"),
            Some("bob"),
            Some("sudo"),
        ),
        (
            "passwd",
            "password for 'bob' changed by 'root'",
            "password_changed",
            USER_CHANGE,
            Some("root"),
            Some("bob"),
            None,
        ),
        (
            "chage",
            "changed password expiry for bob",
            "password_expiry_changed",
            USER_CHANGE,
            None,
            Some("bob"),
            None,
        ),
    ];

    #[test]
    fn every_format() {
        for &(app, line, action, kind, actor, target, group) in CASES {
            let e = run(app, line).unwrap_or_else(|| panic!("not recognized: {line}"));
            assert_eq!(e.dataset.as_deref(), Some(app), "{line}");
            assert_eq!(e.action.as_deref(), Some(action), "{line}");
            assert_eq!(e.outcome, Some(Outcome::Success), "{line}");
            assert_eq!(e.category, Category::IAM, "{line}");
            assert_eq!(e.kind, kind, "{line}");
            assert_eq!(s(&e.user_name), actor, "{line}");
            assert_eq!(s(&e.user_target_name), target, "{line}");
            assert_eq!(s(&e.group_name), group, "{line}");
        }
    }

    #[test]
    fn unrecognized_lines_leave_the_event_alone() {
        for (app, msg) in [
            ("useradd", ""),
            ("sshd", "new user: name=bob, UID=1001"),
            ("useradd", "new user: UID=1001"),
            ("useradd", "new user: name=, UID=1001"),
            ("usermod", "add 'bob' to 'sudo'"),
            ("usermod", "add 'bob to group 'sudo'"),
            ("userdel", "delete user bob"),
            ("groupdel", "group 'devs' kept"),
            ("gpasswd", "user bob added by root"),
            ("gpasswd", "user bob moved by root to group sudo"),
            ("passwd", "password for 'bob' changed"),
            ("useradd", "failed adding user 'bob', data deleted"),
            ("chpasswd", "pam_unix(chpasswd:chauthtok): password changed for bob"),
        ] {
            let mut e = Event::default();
            assert!(!extract(app, msg, &mut e), "{msg}");
            assert_eq!(e, Event::default(), "{msg}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_false_leaves_event_alone(msg in "(new user: |new group: |group |add |delete |removed |change user |user |password for |changed password expiry for )?('?[a-z]{0,4}'? ?){0,6}.{0,20}") {
            let mut e = Event::default();
            if !extract("usermod", &msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
