//! PAM module lines (`pam_unix(sshd:auth): authentication failure; ...`), whatever program logged them.
//!
//! | action | outcome | category | type |
//! |---|---|---|---|
//! | `pam_auth_failure` | failure | authentication | start |
//! | `pam_auth_failure_repeated` | failure | authentication | info |
//! | `pam_user_unknown` | failure | authentication | info |
//! | `pam_session_opened` | success | session | start |
//! | `pam_session_closed` | success | session | end |
//! | `pam_password_changed` | success | iam | user, change |
//!
//! Who is who: `user.name` is whoever acted. On an authentication failure that is `ruser=` when
//! it is set and differs from `user=` (alice failing to `su` to root: user alice, target root),
//! else `user=`. On `session opened for user root by alice(uid=1000)` it is alice with target
//! root; with `by (uid=0)` nobody else is named, so the session's user is the actor.
//!
//! `PAM 5 more authentication failures` stays one event with `event.reason` `5 more`: sshd
//! already logged each of those attempts (`Failed password ...`), so the summary is typed `info`
//! to keep rules that count `authentication`/`start` failures from counting them twice.

use std::net::IpAddr;

use super::{name, tag};
use crate::event::{Category, CompactString, Event, EventType, Outcome};

const DATASET: &str = "pam";

/// Whether `msg` looks like a PAM line (the dispatcher offers these here first): a `pam_`
/// module prefix, or sshd's `PAM <count> more ...`.
pub fn is_pam(msg: &str) -> bool {
    msg.starts_with("pam_")
        || msg.strip_prefix("PAM ").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// Fills `e` from a PAM line with its module prefix (`pam_unix(sshd:auth): ...`) or from sshd's
/// `PAM N more authentication failures; ...`; false, `e` untouched, when not recognized.
pub fn extract(msg: &str, e: &mut Event) -> bool {
    if let Some(rest) = msg.strip_prefix("PAM ") {
        return repeated(rest, e);
    }
    let Some(rest) = msg.strip_prefix("pam_") else {
        return false;
    };
    let Some((header, body)) = super::split_lit(rest, "): ") else {
        return false;
    };
    // `unix(sshd:auth`: a module name, then the service and management group in parens.
    if header.contains(' ') || !header.contains('(') {
        return false;
    }
    extract_body(body, e)
}

/// Fills `e` from the text after the module prefix (`session opened for user ...`), as old
/// Linux-PAM logged it under a program name like `su(pam_unix)`; false, `e` untouched, when not
/// recognized.
pub fn extract_body(body: &str, e: &mut Event) -> bool {
    if let Some(kv) = body.strip_prefix("authentication failure; ") {
        auth_failure(kv, e, "pam_auth_failure", EventType::START, None);
        true
    } else if body == "check pass; user unknown" {
        tag(
            e,
            DATASET,
            "pam_user_unknown",
            Outcome::Failure,
            Category::AUTHENTICATION,
            EventType::INFO,
        );
        e.reason = Some(CompactString::const_new("user unknown"));
        true
    } else if let Some(rest) = body.strip_prefix("session opened for user ") {
        session_opened(rest, e)
    } else if let Some(rest) = body.strip_prefix("session closed for user ") {
        let Some(user) = name(before_paren(rest.trim_end())) else {
            return false;
        };
        tag(e, DATASET, "pam_session_closed", Outcome::Success, Category::SESSION, EventType::END);
        e.user_name = Some(user.into());
        true
    } else if let Some(rest) = body.strip_prefix("password changed for ") {
        let Some(user) = name(rest.trim_end()) else {
            return false;
        };
        tag(
            e,
            DATASET,
            "pam_password_changed",
            Outcome::Success,
            Category::IAM,
            EventType::USER | EventType::CHANGE,
        );
        e.user_target_name = Some(user.into());
        true
    } else {
        false
    }
}

/// `5 more authentication failures; logname= ...` (after `PAM `).
fn repeated(rest: &str, e: &mut Event) -> bool {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let (count, tail) = rest.split_at(digits);
    let Some(tail) = tail.strip_prefix(" more authentication failure") else {
        return false;
    };
    // "failure" for one, "failures" for more.
    let tail = tail.strip_prefix('s').unwrap_or(tail);
    let Some(kv) = tail.strip_prefix("; ") else {
        return false;
    };
    let mut reason = CompactString::const_new("");
    reason.push_str(count);
    reason.push_str(" more");
    auth_failure(kv, e, "pam_auth_failure_repeated", EventType::INFO, Some(reason));
    true
}

/// The `logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root` tail of a failure.
/// Cannot fail: every key is optional, and the text before it already identified the line.
fn auth_failure(
    kv: &str,
    e: &mut Event,
    action: &'static str,
    kind: EventType,
    reason: Option<CompactString>,
) {
    let (mut user, mut ruser, mut rhost) = ("", "", "");
    // Values never contain spaces in what pam_unix writes; a missing `=` or an empty value (as
    // in `ruser= rhost=`) just leaves the field unset.
    for pair in kv.split(' ') {
        match pair.split_once('=') {
            Some(("user", v)) => user = v,
            Some(("ruser", v)) => ruser = v,
            Some(("rhost", v)) => rhost = v,
            _ => {}
        }
    }
    tag(e, DATASET, action, Outcome::Failure, Category::AUTHENTICATION, kind);
    e.reason = reason;
    match (name(ruser), name(user)) {
        (Some(actor), Some(target)) if actor != target => {
            e.user_name = Some(actor.into());
            e.user_target_name = Some(target.into());
        }
        (_, Some(user)) | (Some(user), None) => e.user_name = Some(user.into()),
        (None, None) => {}
    }
    if !rhost.is_empty() {
        match rhost.parse::<IpAddr>() {
            Ok(ip) => e.source_ip = Some(ip),
            Err(_) => e.source_domain = Some(rhost.into()),
        }
    }
}

/// `root by alice(uid=1000)`, `fztu by (uid=0)`, `root(uid=0) by (uid=0)` (newer Linux-PAM).
fn session_opened(rest: &str, e: &mut Event) -> bool {
    let rest = rest.trim_end();
    let (user, by) = match super::split_lit(rest, " by ") {
        Some((user, by)) => (user, Some(by)),
        None => (rest, None),
    };
    let Some(user) = name(before_paren(user)) else {
        return false;
    };
    // login(1) names its own placeholder `LOGIN` here before the user is known; it is nobody.
    let actor = by.map(before_paren).and_then(name).filter(|a| *a != "LOGIN" && *a != user);
    tag(e, DATASET, "pam_session_opened", Outcome::Success, Category::SESSION, EventType::START);
    match actor {
        Some(actor) => {
            e.user_name = Some(actor.into());
            e.user_target_name = Some(user.into());
        }
        None => e.user_name = Some(user.into()),
    }
    true
}

/// The name before a `(uid=N)` suffix.
fn before_paren(s: &str) -> &str {
    s.split_once('(').map_or(s, |(n, _)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(msg: &str) -> Option<Event> {
        let mut e = Event::default();
        extract(msg, &mut e).then_some(e)
    }

    fn s(v: &Option<CompactString>) -> Option<&str> {
        v.as_deref()
    }

    #[test]
    fn auth_failure_with_ip_and_user() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("pam"));
        assert_eq!(e.action.as_deref(), Some("pam_auth_failure"));
        assert_eq!(e.outcome, Some(Outcome::Failure));
        assert_eq!(e.category, Category::AUTHENTICATION);
        assert_eq!(e.kind, EventType::START);
        assert_eq!(s(&e.user_name), Some("root"));
        assert_eq!(s(&e.user_target_name), None);
        assert_eq!(e.source_ip, "173.234.31.186".parse().ok());
        assert_eq!(s(&e.source_domain), None);
        assert_eq!(s(&e.reason), None);
    }

    #[test]
    fn auth_failure_with_hostname_rhost() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root").unwrap();
        assert_eq!(e.source_ip, None);
        assert_eq!(s(&e.source_domain), Some("5.36.59.76.dynamic-dsl-ip.omantel.net.om"));
        assert_eq!(s(&e.user_name), Some("root"));
    }

    #[test]
    fn auth_failure_without_user() {
        // loghub/OpenSSH/OpenSSH_2k.log (trailing space is in the original)
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.188.10.180 ").unwrap();
        assert_eq!(e.user_name, None);
        assert_eq!(e.source_ip, "5.188.10.180".parse().ok());
        // crowdsec-hub/sshd-logs: single space before user=
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.33.63.160 user=workshop").unwrap();
        assert_eq!(s(&e.user_name), Some("workshop"));
    }

    #[test]
    fn sudo_auth_failure_same_ruser_is_the_actor() {
        let e = run("pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice").unwrap();
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), None);
        assert_eq!(e.source_ip, None);
        assert_eq!(e.source_domain, None);
    }

    #[test]
    fn su_auth_failure_ruser_acts_on_user() {
        let e = run("pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=pts/0 ruser=alice rhost=  user=root").unwrap();
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), Some("root"));
    }

    #[test]
    fn other_modules_are_recognized() {
        let e = run("pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=2001:db8::1 user=bob").unwrap();
        assert_eq!(e.source_ip, "2001:db8::1".parse().ok());
        assert_eq!(s(&e.user_name), Some("bob"));
    }

    #[test]
    fn repeated_failures_stay_one_event() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.36.59.76.dynamic-dsl-ip.omantel.net.om  user=root").unwrap();
        assert_eq!(e.action.as_deref(), Some("pam_auth_failure_repeated"));
        assert_eq!(e.outcome, Some(Outcome::Failure));
        assert_eq!(e.category, Category::AUTHENTICATION);
        assert_eq!(e.kind, EventType::INFO);
        assert_eq!(s(&e.reason), Some("5 more"));
        assert_eq!(s(&e.user_name), Some("root"));
        assert_eq!(s(&e.source_domain), Some("5.36.59.76.dynamic-dsl-ip.omantel.net.om"));
        // loghub/OpenSSH/OpenSSH_2k.log: singular form
        let e = run("PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=5.188.10.180 ").unwrap();
        assert_eq!(s(&e.reason), Some("1 more"));
        assert_eq!(e.source_ip, "5.188.10.180".parse().ok());
    }

    #[test]
    fn check_pass_user_unknown() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:auth): check pass; user unknown").unwrap();
        assert_eq!(e.action.as_deref(), Some("pam_user_unknown"));
        assert_eq!(e.outcome, Some(Outcome::Failure));
        assert_eq!(e.kind, EventType::INFO);
        assert_eq!(s(&e.reason), Some("user unknown"));
    }

    #[test]
    fn session_opened_by_uid_only() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:session): session opened for user fztu by (uid=0)").unwrap();
        assert_eq!(e.action.as_deref(), Some("pam_session_opened"));
        assert_eq!(e.outcome, Some(Outcome::Success));
        assert_eq!(e.category, Category::SESSION);
        assert_eq!(e.kind, EventType::START);
        assert_eq!(s(&e.user_name), Some("fztu"));
        assert_eq!(e.user_target_name, None);
    }

    #[test]
    fn session_opened_by_another_user() {
        let e =
            run("pam_unix(su:session): session opened for user root by alice(uid=1000)").unwrap();
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), Some("root"));
        // Newer Linux-PAM adds the uid after the session user too.
        let e =
            run("pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)")
                .unwrap();
        assert_eq!(s(&e.user_name), Some("alice"));
        assert_eq!(s(&e.user_target_name), Some("root"));
        let e =
            run("pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)").unwrap();
        assert_eq!(s(&e.user_name), Some("root"));
        assert_eq!(e.user_target_name, None);
    }

    #[test]
    fn session_closed() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:session): session closed for user fztu").unwrap();
        assert_eq!(e.action.as_deref(), Some("pam_session_closed"));
        assert_eq!(e.kind, EventType::END);
        assert_eq!(e.category, Category::SESSION);
        assert_eq!(s(&e.user_name), Some("fztu"));
        let e = run("pam_unix(cron:session): session closed for user root").unwrap();
        assert_eq!(s(&e.user_name), Some("root"));
    }

    #[test]
    fn old_linux_pam_body_without_prefix() {
        // loghub/Linux/Linux_2k.log, program `su(pam_unix)`, `login(pam_unix)`, `sshd(pam_unix)`
        let mut e = Event::default();
        assert!(extract_body("session opened for user cyrus by (uid=0)", &mut e));
        assert_eq!(s(&e.user_name), Some("cyrus"));
        let mut e = Event::default();
        assert!(extract_body("session opened for user root by LOGIN(uid=0)", &mut e));
        assert_eq!(s(&e.user_name), Some("root"));
        assert_eq!(e.user_target_name, None);
        let mut e = Event::default();
        assert!(extract_body(
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=n219076184117.netvigator.com  user=root",
            &mut e
        ));
        assert_eq!(s(&e.source_domain), Some("n219076184117.netvigator.com"));
        assert_eq!(s(&e.user_name), Some("root"));
        let mut e = Event::default();
        assert!(extract_body(
            "authentication failure; logname= uid=0 euid=0 tty=:0 ruser= rhost= ",
            &mut e
        ));
        assert_eq!(e.user_name, None);
        assert_eq!(e.source_ip, None);
        assert_eq!(e.source_domain, None);
    }

    #[test]
    fn password_changed() {
        let e = run("pam_unix(passwd:chauthtok): password changed for bob").unwrap();
        assert_eq!(e.action.as_deref(), Some("pam_password_changed"));
        assert_eq!(e.category, Category::IAM);
        assert_eq!(e.kind, EventType::USER | EventType::CHANGE);
        assert_eq!(s(&e.user_target_name), Some("bob"));
        assert_eq!(e.user_name, None);
    }

    #[test]
    fn unrecognized_lines_leave_the_event_alone() {
        crate::parse::extract::testing::assert_declines(
            extract,
            &[
                "",
                "pam_unix",
                "pam_unix(sshd:auth)",
                "pam_unix(sshd:auth): conversation failed",
                "pam_unix(sudo:auth): auth could not identify password for [alice]",
                "pam_systemd(sshd:session): Failed to release session: Interrupted system call",
                "pam_unix(sshd:session): session opened for user  by (uid=0)",
                "pam_nope: authentication failure; user=root",
                "PAM more authentication failures; rhost=1.2.3.4",
                "PAM 5 more authentication failures",
                "PAM adding faulty module: /lib/security/pam_x.so",
                "Accepted password for root from 1.2.3.4 port 22 ssh2",
            ],
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_false_leaves_event_alone(msg in "(pam_unix\\(sshd:auth\\): |PAM [0-9] more )?.{0,80}") {
            let mut e = Event::default();
            if !extract(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
            let mut e = Event::default();
            if !extract_body(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
