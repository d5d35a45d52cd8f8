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
//! Where from: `rhost=` is read by the grammar pam_unix writes (`... ruser=R rhost=H[
//! user=U]`), where R and U can both be client text (a PAM application sets the remote user
//! from what the client sent; `user=` is whatever name was tried). A reading is kept only when
//! H is one token followed by the end or by `user=`; two readings that name different hosts
//! leave `source.ip` out and keep both in `related.ip`. `service.name` is the PAM service.
//!
//! sshd logs every attempt itself (`Failed password ...`), after the PAM module has logged
//! the first; with today's Linux-PAM (`pam_unix(sshd:auth)`) that PAM line is typed `info`, so
//! rules that count `authentication`/`start` failures count the attempt once, by sshd's line.
//! The old form (`sshd(pam_unix)`, `(pam_unix)`, Linux-PAM before 0.99.2) stays `start`: logs
//! of that age usually hold only the PAM line (loghub's Linux_2k.log does).
//!
//! `PAM 5 more authentication failures` stays one event with `event.reason` `5 more`: sshd
//! already logged each of those attempts (`Failed password ...`), so the summary is typed `info`
//! to keep rules that count `authentication`/`start` failures from counting them twice.

use smallvec::SmallVec;

use super::peer::parse_ip;
use super::{name, tag};
use crate::event::{Category, CompactString, Event, EventType, Outcome, Sym};

const DATASET: &str = "pam";

/// Whether `msg` looks like a PAM line (the dispatcher offers these here first): a `pam_`
/// module prefix, or sshd's `PAM <count> more ...`.
pub fn is_pam(msg: &str) -> bool {
    msg.starts_with("pam_")
        || msg.starts_with("(pam_")
        || msg.strip_prefix("PAM ").is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// Fills `e` from a PAM line logged by program `app` with its module prefix
/// (`pam_unix(sshd:auth): ...`, `pam_unix: ...`, the old `(pam_unix) ...`) or from sshd's
/// `PAM N more authentication failures; ...`; false, `e` untouched, when not recognized.
pub fn extract(app: &str, msg: &str, e: &mut Event) -> bool {
    if let Some(rest) = msg.strip_prefix("PAM ") {
        let service = super::program(app);
        return repeated(service, rest, e) && with_service(e, Some(service), false);
    }
    if let Some(rest) = msg.strip_prefix("(pam_") {
        // Linux-PAM before 0.99.2: `(pam_unix) authentication failure; ...`.
        let Some((module, body)) = rest.split_once(") ") else { return false };
        if module.contains(' ') {
            return false;
        }
        let service = super::program(app);
        return extract_service_body(Some(service), body, e)
            && with_service(e, Some(service), false);
    }
    let Some(rest) = msg.strip_prefix("pam_") else {
        return false;
    };
    let (service, body) = match super::split_lit(rest, "): ") {
        // `unix(sshd:auth`: a module name, then the service and management group in parens.
        Some((header, body)) => {
            let Some((module, inner)) = header.split_once('(') else { return false };
            if module.contains(' ') || inner.contains(' ') {
                return false;
            }
            // `pam_unix(auth)` names only the management group.
            (inner.split_once(':').map(|(svc, _)| svc), body)
        }
        // `pam_unix: authentication failure; ...`: no service named.
        None => match rest.split_once(": ") {
            Some((module, body)) if !module.contains([' ', '(']) => (None, body),
            _ => return false,
        },
    };
    let service = service.filter(|s| !s.is_empty());
    if !extract_service_body(service, body, e) {
        return false;
    }
    with_service(e, service, true)
}

/// Sets `service.name`, and types sshd's own PAM failure as context (see the module doc).
fn with_service(e: &mut Event, service: Option<&str>, current_format: bool) -> bool {
    if let Some(svc) = service {
        e.service_name = Some(Sym::from(svc));
        if current_format
            && svc == "sshd"
            && e.action.as_deref() == Some("pam_auth_failure")
            && e.kind == EventType::START
        {
            e.kind = EventType::INFO;
        }
    }
    true
}

/// Fills `e` from the text after the module prefix (`session opened for user ...`), as old
/// Linux-PAM logged it under a program name like `su(pam_unix)`; false, `e` untouched, when not
/// recognized.
pub fn extract_body(body: &str, e: &mut Event) -> bool {
    extract_service_body(None, body, e)
}

/// [`extract_body`] for a line of PAM service `service`, when the line names it.
pub fn extract_service_body(service: Option<&str>, body: &str, e: &mut Event) -> bool {
    if let Some(kv) = body.strip_prefix("authentication failure; ") {
        auth_failure(service, kv, e, "pam_auth_failure", EventType::START, None);
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
fn repeated(service: &str, rest: &str, e: &mut Event) -> bool {
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
    auth_failure(Some(service), kv, e, "pam_auth_failure_repeated", EventType::INFO, Some(reason));
    true
}

/// One reading of the failure tail: the remote user, the remote host and the user.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Reading<'a> {
    ruser: &'a str,
    rhost: &'a str,
    user: &'a str,
}

/// Every reading of `ruser=R rhost=H[ user=U]` in `kv` that pam_unix could have written:
/// H one token, followed by the end or by ` user=`. R and U may hold anything.
fn readings(kv: &str) -> SmallVec<[Reading<'_>; 2]> {
    let mut out = SmallVec::new();
    let Some((_, after)) = super::split_lit(kv, "ruser=") else {
        // Some writers leave `ruser` out: then `rhost=` is the first field that can be read.
        if let Some((_, rest)) = super::split_lit(kv, "rhost=") {
            out.extend(reading("", rest));
        }
        return out;
    };
    let mut from = 0;
    while let Some((before, rest)) = super::split_lit(&after[from..], " rhost=") {
        let at = from + before.len();
        out.extend(reading(&after[..at], rest));
        from = at + 1;
    }
    out
}

fn reading<'a>(ruser: &'a str, rest: &'a str) -> Option<Reading<'a>> {
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let (rhost, tail) = rest.split_at(end);
    let tail = tail.trim_start();
    let user = match tail.strip_prefix("user=") {
        Some(u) => u.trim_end(),
        None if tail.is_empty() => "",
        None => return None,
    };
    Some(Reading { ruser, rhost, user })
}

/// Whether a reading fits what the service is known to set as the remote user: sshd never
/// sets one (`ruser=` is always empty in its lines), and the local programs set a local
/// account's name, which has no spaces. Other services may pass on what the client sent.
fn plausible(service: Option<&str>, r: &Reading<'_>) -> bool {
    match service {
        Some("sshd" | "sshd-session" | "sshd-auth") => r.ruser.is_empty(),
        Some("sudo" | "sudo-i" | "su" | "su-l" | "login" | "cron" | "crond" | "passwd") => {
            r.ruser.is_empty() || name(r.ruser).is_some()
        }
        _ => true,
    }
}

/// The `logname= uid=0 euid=0 tty=ssh ruser= rhost=1.2.3.4  user=root` tail of a failure.
/// Cannot fail: every key is optional, and the text before it already identified the line.
fn auth_failure<'a>(
    service: Option<&str>,
    kv: &'a str,
    e: &mut Event,
    action: &'static str,
    kind: EventType,
    reason: Option<CompactString>,
) {
    tag(e, DATASET, action, Outcome::Failure, Category::AUTHENTICATION, kind);
    e.reason = reason;
    let mut all = readings(kv);
    // Keep the readings the service makes plausible, unless that would keep none (a
    // service that does set what is not expected of it is still read).
    if all.iter().any(|r| plausible(service, r)) {
        all.retain(|r| plausible(service, r));
    }
    let mut hosts: SmallVec<[&str; 2]> = SmallVec::new();
    for r in &all {
        if !hosts.contains(&r.rhost) {
            hosts.push(r.rhost);
        }
    }
    let Some(r) = all.first().filter(|_| hosts.len() == 1) else {
        // Read two ways with two different hosts: blame neither (the module doc).
        let ips: Vec<_> = hosts.iter().filter_map(|h| parse_ip(h)).collect();
        if !ips.is_empty() {
            e.related_ip = Some(ips.into_boxed_slice());
        }
        return;
    };
    // The names as logged, spaces and all: what the client tried is evidence, and a split
    // at a space would report a name nobody typed.
    let given = |v: &'a str| -> Option<&'a str> { Some(v.trim()).filter(|v| !v.is_empty()) };
    match (given(r.ruser), given(r.user)) {
        (Some(actor), Some(target)) if actor != target => {
            e.user_name = Some(actor.into());
            e.user_target_name = Some(target.into());
        }
        (_, Some(user)) | (Some(user), None) => e.user_name = Some(user.into()),
        (None, None) => {}
    }
    if !r.rhost.is_empty() {
        match parse_ip(r.rhost) {
            Some(ip) => e.source_ip = Some(ip),
            None => e.source_domain = Some(r.rhost.into()),
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
        extract("sshd", msg, &mut e).then_some(e)
    }

    fn s(v: &Option<CompactString>) -> Option<&str> {
        v.as_deref()
    }

    fn ips(v: &[&str]) -> Option<Box<[std::net::IpAddr]>> {
        Some(v.iter().filter_map(|s| s.parse().ok()).collect())
    }

    #[test]
    fn a_client_chosen_user_cannot_move_rhost() {
        // The decoy: `user=` comes after `rhost=` and is the client's.
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.51  user=y rhost=10.66.66.67").unwrap();
        assert_eq!(e.source_ip, "198.51.100.51".parse().ok());
        assert_eq!(s(&e.user_name), Some("y rhost=10.66.66.67"));
        assert_eq!(e.related_ip, None);
        // A remote user with a decoy before the real rhost: the decoy is not followed by the
        // end or by `user=`, so it cannot be the rhost.
        let mut e = Event::default();
        assert!(extract(
            "vsftpd",
            "pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=test rhost=192.0.2.151 rhost=192.0.2.1",
            &mut e
        ));
        assert_eq!(e.source_ip, "192.0.2.1".parse().ok());
        assert_eq!(e.service_name.as_deref(), Some("vsftpd"));
        assert_eq!(e.kind, EventType::START);
        // Both client texts at once, for a service that may pass the client's remote user on:
        // two readings, two hosts, nobody blamed.
        let mut e = Event::default();
        assert!(extract(
            "daemon",
            "pam_unix(auth): authentication failure; logname= uid=0 euid=0 tty=xxx ruser= rhost=192.0.2.2 user=test rhost=192.0.2.152",
            &mut e
        ));
        assert_eq!((e.source_ip, e.user_name.as_deref()), (None, None));
        assert_eq!(e.related_ip, ips(&["192.0.2.2", "192.0.2.152"]));
        assert_eq!(e.outcome, Some(Outcome::Failure));
    }

    #[test]
    fn every_pam_header_form_names_its_service() {
        for (app, msg, service, host) in [
            (
                "vsftpd",
                "pam_unix(vsftpd:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=an8767 rhost=www.google.com",
                Some("vsftpd"),
                "www.google.com",
            ),
            (
                "vsftpd",
                "pam_unix: authentication failure; logname= uid=0 euid=0 tty=ftp ruser=an8767 rhost=www.google.com",
                None,
                "www.google.com",
            ),
            (
                "pure-ftpd",
                "(pam_unix) authentication failure; logname= uid=0 euid=0 tty=pure-ftpd ruser=sample-user rhost=192.168.1.1 ",
                Some("pure-ftpd"),
                "192.168.1.1",
            ),
            (
                "dovecot",
                "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=bob rhost=203.0.113.4  user=bob",
                Some("dovecot"),
                "203.0.113.4",
            ),
        ] {
            let mut e = Event::default();
            assert!(extract(app, msg, &mut e), "{msg}");
            assert_eq!(e.service_name.as_deref(), service, "{msg}");
            assert_eq!(e.kind, EventType::START, "{msg}");
            let got = e.source_ip.map(|i| i.to_string()).or(e.source_domain.map(|d| d.to_string()));
            assert_eq!(got.as_deref(), Some(host), "{msg}");
        }
    }

    proptest! {
        /// Whatever the client puts in `user=` (spaces, `rhost=`, brackets, quotes), the
        /// host is the real one, never the decoy.
        #[test]
        fn no_user_name_moves_the_host(user in "[ a-z0-9=.<>'\"\\[\\]:]{0,40}") {
            let msg = format!("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user={user} rhost=10.66.66.66");
            let mut e = Event::default();
            prop_assert!(extract("sshd", &msg, &mut e));
            prop_assert_eq!(e.source_ip, "198.51.100.7".parse().ok());
        }
    }

    #[test]
    fn auth_failure_with_ip_and_user() {
        // loghub/OpenSSH/OpenSSH_2k.log
        let e = run("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=173.234.31.186  user=root").unwrap();
        assert_eq!(e.dataset.as_deref(), Some("pam"));
        assert_eq!(e.action.as_deref(), Some("pam_auth_failure"));
        assert_eq!(e.outcome, Some(Outcome::Failure));
        assert_eq!(e.category, Category::AUTHENTICATION);
        // sshd logs the attempt itself: its PAM line is context, not a second count.
        assert_eq!(e.kind, EventType::INFO);
        assert_eq!(e.service_name.as_deref(), Some("sshd"));
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
            |m, e| extract("sshd", m, e),
            &[
                "",
                "pam_unix",
                "pam_unix(sshd:auth)",
                "pam_unix(sshd:auth): conversation failed",
                "pam_unix(sudo:auth): auth could not identify password for [alice]",
                "pam_systemd(sshd:session): Failed to release session: Interrupted system call",
                "pam_unix(sshd:session): session opened for user  by (uid=0)",
                "pam_nope(x: authentication failure; user=root",
                "pam nope: authentication failure; user=root",
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
            if !extract("sshd", &msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
            let mut e = Event::default();
            if !extract_body(&msg, &mut e) {
                prop_assert_eq!(e, Event::default());
            }
        }
    }
}
