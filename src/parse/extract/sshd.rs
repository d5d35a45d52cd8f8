//! OpenSSH server lines: logins, failures, invalid users, pre-auth disconnects and the rest of
//! what fail2ban, sshguard and CrowdSec watch in `sshd` logs.
//!
//! Peers are parsed from the right end of the line: a user name is attacker-controlled, so
//! `Failed password for invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 9 ssh2` must
//! blame 5.6.7.8, not the address spoofed inside the name.

use std::net::IpAddr;

use super::sshd_session::SessionTable;
use crate::event::{Category, Event, EventType, Outcome, Sym};

/// What one sshd line says, before session state fills in what it omits.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SshLine<'a> {
    /// `event.action`.
    pub action: &'static str,
    /// `event.outcome`.
    pub outcome: Option<Outcome>,
    /// `event.category`.
    pub category: Category,
    /// `event.type`.
    pub kind: EventType,
    /// The user named in the line.
    pub user: Option<&'a str>,
    /// The peer address.
    pub ip: Option<IpAddr>,
    /// The peer port.
    pub port: Option<u16>,
    /// A host name for the peer (reverse mapping, tcp wrappers).
    pub domain: Option<&'a str>,
    /// The method (`password`) or the disconnect reason.
    pub reason: Option<&'a str>,
    /// The line ends the connection, so its session is forgotten afterwards.
    pub ends_session: bool,
    /// The line lacks the peer and it should come from the session table.
    pub needs_session: bool,
}

const AUTH: Category = Category::AUTHENTICATION;
const NET: Category = Category::NETWORK;

impl<'a> SshLine<'a> {
    fn new(action: &'static str, outcome: Outcome, category: Category, kind: EventType) -> Self {
        SshLine { action, outcome: Some(outcome), category, kind, ..SshLine::default() }
    }

    fn auth_failure(action: &'static str) -> Self {
        SshLine::new(action, Outcome::Failure, AUTH, EventType::START)
    }

    fn peer(mut self, p: Peer<'a>) -> Self {
        self.ip = Some(p.ip);
        self.port = p.port;
        self
    }

    fn user(mut self, u: &'a str) -> Self {
        self.user = (!u.is_empty()).then_some(u);
        self
    }

    fn reason(mut self, r: &'a str) -> Self {
        let r = r.trim();
        self.reason = (!r.is_empty()).then_some(r);
        self
    }
}

/// An address with an optional port, and the text after them.
#[derive(Clone, Copy, Debug)]
struct Peer<'a> {
    ip: IpAddr,
    port: Option<u16>,
    rest: &'a str,
}

/// Parses an address token: strips a trailing `:` (`from 1.2.3.4: 3: ...`), an IPv6 zone
/// (`%eth0`) and folds IPv4-mapped IPv6 to IPv4 so one attacker has one key.
fn parse_ip(tok: &str) -> Option<IpAddr> {
    let tok = tok.strip_suffix(':').unwrap_or(tok);
    let tok = match memchr::memchr(b'%', tok.as_bytes()) {
        Some(i) => &tok[..i],
        None => tok,
    };
    let tok = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(tok);
    if !tok.bytes().next().is_some_and(|b| b.is_ascii_hexdigit() || b == b':') {
        return None;
    }
    if let Some(v4) = parse_ipv4(tok.as_bytes()) {
        return Some(IpAddr::V4(v4));
    }
    tok.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Dotted-quad IPv4 by hand: std's `IpAddr` parser tries several grammars and cost ~500
/// instructions a call in profiles. Same acceptance as std (no leading zeros, each octet
/// <= 255); anything else returns None and goes to std.
fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v: u32 = 0;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if n < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == b.len()).then_some(std::net::Ipv4Addr::from(octets))
}

/// `IP[ port N]rest` at the start of `s`.
fn peer_at(s: &str) -> Option<Peer<'_>> {
    let end = memchr::memchr(b' ', s.as_bytes()).unwrap_or(s.len());
    let ip = parse_ip(&s[..end])?;
    let mut rest = &s[end..];
    let mut port = None;
    if let Some(after) = rest.strip_prefix(" port ") {
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        port = after[..digits].parse().ok();
        if port.is_some() {
            rest = &after[digits..];
        }
    }
    Some(Peer { ip, port, rest })
}

/// The rightmost ` from IP[ port N]` in `s`: the text before it and the peer.
fn rfind_from(s: &str) -> Option<(&str, Peer<'_>)> {
    let mut end = s.len();
    while let Some((before, _)) = super::rsplit_lit(&s[..end], " from ") {
        // The peer is parsed from the full text: it may run on past `end`.
        let i = before.len();
        if let Some(p) = peer_at(&s[i + 6..]) {
            return Some((before, p));
        }
        end = i;
    }
    None
}

/// `USER IP port N...`: the user (which may contain spaces) and the peer, found from the right.
fn user_then_peer(s: &str) -> Option<(&str, Peer<'_>)> {
    let mut end = s.len();
    while let Some(i) = super::rsplit_lit(&s[..end], " port ").map(|(b, _)| b.len()) {
        if let Some((user, ip)) = s[..i].rsplit_once(' ')
            && let Some(p) = peer_at(&s[i - ip.len()..])
        {
            return Some((user, p));
        }
        end = i;
    }
    None
}

fn strip_preauth(s: &str) -> (&str, bool) {
    let t = s.trim_end();
    match t.strip_suffix("[preauth]") {
        Some(r) => (r.trim_end(), true),
        None => (t, false),
    }
}

/// Parses one sshd message (the text after `sshd[pid]: `). Pure: no state, no allocation.
pub fn parse_line(msg: &str) -> Option<SshLine<'_>> {
    let msg = msg.trim_start();
    let body = msg.strip_prefix("error: ").or_else(|| msg.strip_prefix("fatal: ")).unwrap_or(msg);
    let (body, preauth) = strip_preauth(body);
    let first = *body.as_bytes().first()?;
    match first {
        b'A' | b'F' => {
            let (outcome, rest) = if let Some(r) = body.strip_prefix("Accepted ") {
                (Outcome::Success, r)
            } else if let Some(r) = body.strip_prefix("Failed ") {
                (Outcome::Failure, r)
            } else {
                return None;
            };
            let (method, rest) = super::split_lit(rest, " for ")?;
            let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
            let (user, peer) = rfind_from(rest)?;
            Some(
                SshLine::new("ssh_login", outcome, AUTH, EventType::START)
                    .peer(peer)
                    .user(user)
                    .reason(method),
            )
        }
        b'I' => {
            let rest = body
                .strip_prefix("Invalid user ")
                .or_else(|| body.strip_prefix("Illegal user "))?;
            let (user, peer) = rfind_from(rest)?;
            Some(SshLine::auth_failure("ssh_invalid_user").peer(peer).user(user))
        }
        b'U' => {
            if let Some(rest) = body.strip_prefix("User ") {
                let (head, why) = super::rsplit_lit(rest, " not allowed because ")?;
                let line = SshLine::auth_failure("ssh_user_not_allowed").reason(why);
                return Some(match rfind_from(head) {
                    Some((user, peer)) => line.peer(peer).user(user),
                    None => SshLine { needs_session: true, ..line.user(head) },
                });
            }
            let rest = body.strip_prefix("Unable to negotiate with ")?;
            let p = peer_at(rest)?;
            let why = p.rest.strip_prefix(':').unwrap_or(p.rest);
            Some(
                SshLine::new("ssh_negotiation_failed", Outcome::Failure, NET, EventType::PROTOCOL)
                    .peer(p)
                    .reason(why),
            )
        }
        b'R' => {
            if let Some(rest) = body.strip_prefix("ROOT LOGIN REFUSED FROM ") {
                let p = peer_at(rest)?;
                return Some(SshLine::auth_failure("ssh_root_login_refused").peer(p).user("root"));
            }
            let rest = body.strip_prefix("Received disconnect from ")?;
            let p = peer_at(rest)?;
            let text = p.rest.trim_start_matches(':').trim_start();
            let (code, why) = text.split_once(':').unwrap_or(("", text));
            if code.trim() == "3" && why.contains("Auth fail") {
                return Some(SshLine {
                    needs_session: true,
                    ends_session: true,
                    ..SshLine::auth_failure("ssh_auth_fail_disconnect").peer(p).reason(why)
                });
            }
            Some(disconnect(preauth, Outcome::Unknown).peer(p).reason(why))
        }
        b'm' => {
            let rest = body.strip_prefix("maximum authentication attempts exceeded for ")?;
            let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
            let (user, p) = rfind_from(rest)?;
            Some(SshLine::auth_failure("ssh_max_auth_attempts").peer(p).user(user))
        }
        b'D' => {
            if let Some(rest) = body.strip_prefix("Disconnecting: Too many authentication failures")
            {
                let user = rest.trim().strip_prefix("for ").unwrap_or("").trim();
                return Some(SshLine {
                    needs_session: true,
                    ends_session: true,
                    ..SshLine::auth_failure("ssh_too_many_auth_failures").user(user)
                });
            }
            if let Some(rest) = body.strip_prefix("Disconnecting ") {
                // OpenSSH >= 7.5: `Disconnecting authenticating user U IP port P: REASON`.
                let rest = rest
                    .strip_prefix("authenticating user ")
                    .or_else(|| rest.strip_prefix("invalid user "))
                    .or_else(|| rest.strip_prefix("user "))?;
                let (user, p) = user_then_peer(rest)?;
                let why = p.rest.strip_prefix(':').unwrap_or(p.rest);
                let action = if why.contains("Too many authentication failures") {
                    "ssh_too_many_auth_failures"
                } else {
                    "ssh_auth_disconnect"
                };
                return Some(SshLine {
                    ends_session: true,
                    ..SshLine::auth_failure(action).peer(p).user(user).reason(why)
                });
            }
            if let Some(rest) = body.strip_prefix("Disconnected from ") {
                return closed(rest, preauth);
            }
            let rest = body.strip_prefix("Did not receive identification string from ")?;
            let p = peer_at(rest)?;
            Some(
                SshLine::new(
                    "ssh_no_identification",
                    Outcome::Failure,
                    NET,
                    EventType::CONNECTION | EventType::ERROR,
                )
                .peer(p),
            )
        }
        b'C' => {
            if let Some(rest) = body
                .strip_prefix("Connection closed by ")
                .or_else(|| body.strip_prefix("Connection reset by "))
            {
                return closed(rest, preauth);
            }
            if let Some(rest) = body.strip_prefix("Connection from ") {
                let p = peer_at(rest)?;
                return Some(
                    SshLine::new(
                        "ssh_connection",
                        Outcome::Unknown,
                        NET,
                        EventType::CONNECTION | EventType::START,
                    )
                    .peer(p),
                );
            }
            let rest = body.strip_prefix("Close session: user ")?;
            let (user, p) = rfind_from(rest)?;
            Some(SshLine {
                ends_session: true,
                ..disconnect(false, Outcome::Unknown).peer(p).user(user)
            })
        }
        b'B' | b'b' => {
            if let Some(rest) = body.strip_prefix("Bad protocol version identification") {
                let (_, p) = rfind_from(rest)?;
                return Some(
                    SshLine::new("ssh_bad_protocol", Outcome::Failure, NET, EventType::PROTOCOL)
                        .peer(p),
                );
            }
            // OpenSSH writes this message in lower case (hence the `b` arm).
            let rest = body.strip_prefix("banner exchange: Connection from ")?;
            let p = peer_at(rest)?;
            let why = p.rest.strip_prefix(':').unwrap_or(p.rest);
            Some(
                SshLine::new(
                    "ssh_banner_exchange_failed",
                    Outcome::Failure,
                    NET,
                    EventType::PROTOCOL,
                )
                .peer(p)
                .reason(why),
            )
        }
        b'T' => {
            let rest = body.strip_prefix("Timeout before authentication for ")?;
            let p = peer_at(rest)?;
            Some(
                SshLine::new(
                    "ssh_timeout",
                    Outcome::Failure,
                    NET,
                    EventType::CONNECTION | EventType::END,
                )
                .peer(p),
            )
        }
        b'r' => {
            if let Some(rest) = body.strip_prefix("reverse mapping checking getaddrinfo for ") {
                let (host, rest) = super::split_lit(rest, " [")?;
                let (ip, _) = rest.split_once(']')?;
                let ip = parse_ip(ip)?;
                return Some(SshLine {
                    ip: Some(ip),
                    domain: Some(host),
                    ..SshLine::new(
                        "ssh_reverse_mapping_failed",
                        Outcome::Unknown,
                        NET,
                        EventType::INFO,
                    )
                });
            }
            // tcp wrappers: `refused connect from HOST (IP)`.
            let rest = body.strip_prefix("refused connect from ")?;
            let (host, ip) = super::rsplit_lit(rest, " (")?;
            let ip = parse_ip(ip.strip_suffix(')')?)?;
            Some(SshLine {
                ip: Some(ip),
                domain: (host != ip.to_string()).then_some(host),
                ..SshLine::new("ssh_refused_connect", Outcome::Failure, NET, EventType::DENIED)
            })
        }
        b'P' => {
            // `PAM: authentication failure for [illegal user] U from IP`
            let rest = body.strip_prefix("PAM: ")?;
            let (why, rest) = super::split_lit(rest, " for ")?;
            let rest = rest.strip_prefix("illegal user ").unwrap_or(rest);
            let (user, p) = rfind_from(rest)?;
            Some(SshLine::auth_failure("ssh_pam_auth_failure").peer(p).user(user).reason(why))
        }
        b's' | b'k' => {
            let rest = body
                .strip_prefix("ssh_dispatch_run_fatal: ")
                .or_else(|| body.strip_prefix("kex_exchange_identification: "))?;
            let line =
                SshLine::new("ssh_protocol_error", Outcome::Failure, NET, EventType::PROTOCOL);
            Some(match rest.strip_prefix("Connection from ").and_then(peer_at) {
                Some(p) => line.reason(p.rest.strip_prefix(':').unwrap_or(p.rest)).peer(p),
                None => SshLine { needs_session: true, ..line.reason(rest) },
            })
        }
        _ => None,
    }
}

/// A connection ending: before authentication it is a probe or an abandoned attempt.
fn disconnect(preauth: bool, outcome: Outcome) -> SshLine<'static> {
    if preauth {
        SshLine {
            ends_session: true,
            ..SshLine::new(
                "ssh_preauth_disconnect",
                outcome,
                NET,
                EventType::CONNECTION | EventType::END,
            )
        }
    } else {
        SshLine {
            ends_session: true,
            ..SshLine::new("ssh_disconnect", outcome, Category::SESSION, EventType::END)
        }
    }
}

/// `Connection closed by` / `Connection reset by` / `Disconnected from`, with or without
/// `(authenticating|invalid) user U`.
fn closed(rest: &str, preauth: bool) -> Option<SshLine<'_>> {
    for (prefix, failed) in
        [("authenticating user ", true), ("invalid user ", true), ("user ", false)]
    {
        if let Some(r) = rest.strip_prefix(prefix) {
            let (user, p) = user_then_peer(r)?;
            // A client that gave up mid-authentication is a failed attempt (fail2ban's
            // aggressive mode counts it); a plain close by a logged-in user is not.
            let outcome = if failed && preauth { Outcome::Failure } else { Outcome::Unknown };
            let mut line = disconnect(preauth, outcome).peer(p).user(user);
            if outcome == Outcome::Failure {
                line.category = AUTH | NET;
            }
            return Some(line);
        }
    }
    let p = peer_at(rest)?;
    Some(disconnect(preauth, Outcome::Unknown).peer(p))
}

/// The sshd extractor with its session table.
#[derive(Default)]
pub struct Sshd {
    sessions: SessionTable,
}

/// `event.dataset` for sshd events.
pub const DATASET: Sym = Sym::from_static("sshd");

impl Sshd {
    /// Fills `e` from one sshd message; false when the line is not one we model.
    pub fn extract(&mut self, msg: &str, e: &mut Event) -> bool {
        let Some(line) = parse_line(msg) else {
            return false;
        };
        let mut ip = line.ip;
        let mut port = line.port;
        let mut user = line.user;
        let key = e.host_name.clone().unwrap_or(DATASET);
        let mut session_user = None;
        if let Some(pid) = e.process_pid {
            if line.needs_session
                && let Some(s) = self.sessions.get(&key, pid)
            {
                if ip.is_none() {
                    ip = s.ip;
                    port = s.port;
                }
                if user.is_none() {
                    session_user = s.user.clone();
                }
            }
            if line.ends_session {
                self.sessions.end(&key, pid);
            } else if ip.is_some() || user.is_some() {
                self.sessions.update(&key, pid, ip, port, user);
            }
        }
        e.dataset = Some(DATASET);
        e.action = Some(Sym::from_static(line.action));
        e.outcome = line.outcome;
        e.category = line.category;
        e.kind = line.kind;
        e.source_ip = ip;
        e.source_port = port;
        e.source_domain = line.domain.map(Into::into);
        e.reason = line.reason.map(Into::into);
        e.user_name = match session_user {
            Some(u) => Some(u),
            None => user.take().map(Into::into),
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(msg: &str) -> SshLine<'_> {
        parse_line(msg).unwrap_or_else(|| panic!("not parsed: {msg}"))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn failed_and_accepted_logins() {
        let l = p("Failed password for invalid user  0101 from 5.188.10.180 port 36279 ssh2");
        assert_eq!(
            (l.action, l.outcome, l.user, l.ip, l.port),
            ("ssh_login", Some(Outcome::Failure), Some(" 0101"), ip("5.188.10.180"), Some(36279))
        );
        assert_eq!(l.reason, Some("password"));
        let l = p(
            "Accepted publickey for vagrant from 192.168.121.1 port 56296 ssh2: RSA SHA256:1M4RzhMyWuFS/86uPY/ce2prh/dVTHW7iD2RhpquOZA",
        );
        assert_eq!(
            (l.outcome, l.user, l.reason),
            (Some(Outcome::Success), Some("vagrant"), Some("publickey"))
        );
        let l = p("Failed keyboard-interactive/pam for root from 2001:db8::1%eth0 port 22 ssh2");
        assert_eq!(
            (l.user, l.ip, l.reason),
            (Some("root"), ip("2001:db8::1"), Some("keyboard-interactive/pam"))
        );
    }

    #[test]
    fn banner_exchange_failure_in_openssh_lower_case() {
        let l = p("banner exchange: Connection from 59.91.122.57 port 34388: invalid format");
        assert_eq!(
            (l.action, l.outcome, l.ip, l.port, l.reason),
            (
                "ssh_banner_exchange_failed",
                Some(Outcome::Failure),
                ip("59.91.122.57"),
                Some(34388),
                Some("invalid format")
            )
        );
    }

    #[test]
    fn a_user_name_cannot_spoof_the_peer() {
        let l = p(
            "Failed password for invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 9999 ssh2",
        );
        assert_eq!(
            (l.ip, l.port, l.user),
            (ip("5.6.7.8"), Some(9999), Some("x from 1.2.3.4 port 22"))
        );
        let l = p("Invalid user evil from 1.1.1.1 from 9.9.9.9 port 2");
        assert_eq!((l.ip, l.user), (ip("9.9.9.9"), Some("evil from 1.1.1.1")));
    }

    #[test]
    fn hand_parsed_ipv4_agrees_with_std() {
        for tok in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.4x",
            "1234.1.1.1",
            "",
        ] {
            assert_eq!(parse_ipv4(tok.as_bytes()), tok.parse().ok(), "{tok}");
        }
    }

    proptest::proptest! {
        #[test]
        fn hand_parsed_ipv4_agrees_with_std_on_anything(tok in "[0-9.]{0,16}") {
            proptest::prop_assert_eq!(parse_ipv4(tok.as_bytes()), tok.parse().ok());
        }
    }

    #[test]
    fn ipv4_mapped_addresses_fold_to_ipv4() {
        let l = p("Invalid user a from ::ffff:10.0.0.1 port 3");
        assert_eq!(l.ip, ip("10.0.0.1"));
    }

    #[test]
    fn preauth_closes_by_authenticating_users_are_failures() {
        let l = p("Connection closed by authenticating user root 1.2.3.4 port 51234 [preauth]");
        assert_eq!(
            (l.action, l.outcome, l.user, l.ip),
            ("ssh_preauth_disconnect", Some(Outcome::Failure), Some("root"), ip("1.2.3.4"))
        );
        let l = p("Connection closed by 66.240.236.119 [preauth]");
        assert_eq!(
            (l.action, l.outcome, l.ip),
            ("ssh_preauth_disconnect", Some(Outcome::Unknown), ip("66.240.236.119"))
        );
        let l = p("Received disconnect from 1.2.3.4 port 60058:11: disconnected by user");
        assert_eq!(
            (l.action, l.reason, l.port),
            ("ssh_disconnect", Some("disconnected by user"), Some(60058))
        );
        let l = p("Disconnected from user fztu 119.137.62.142 port 5000");
        assert_eq!(
            (l.action, l.outcome, l.user),
            ("ssh_disconnect", Some(Outcome::Unknown), Some("fztu"))
        );
    }

    #[test]
    fn session_fills_peer_for_too_many_failures() {
        let mut s = Sshd::default();
        let mut base = Event {
            host_name: Some(Sym::from("LabSZ")),
            process_pid: Some(24227),
            ..Event::default()
        };
        let mut e = base.clone();
        assert!(s.extract("Failed password for root from 5.36.59.76 port 42393 ssh2", &mut e));
        assert!(s.extract(
            "Disconnecting: Too many authentication failures for root [preauth]",
            &mut base
        ));
        assert_eq!(base.action.as_deref(), Some("ssh_too_many_auth_failures"));
        assert_eq!(base.source_ip, ip("5.36.59.76"));
        assert_eq!(base.user_name.as_deref(), Some("root"));
        // The connection ended: a later line of a reused pid must not inherit it.
        let mut later = Event {
            host_name: Some(Sym::from("LabSZ")),
            process_pid: Some(24227),
            ..Event::default()
        };
        assert!(s.extract("Disconnecting: Too many authentication failures [preauth]", &mut later));
        assert_eq!(later.source_ip, None);
    }

    #[test]
    fn session_fills_user_for_auth_fail_disconnect() {
        let mut s = Sshd::default();
        let base =
            Event { host_name: Some(Sym::from("h")), process_pid: Some(1), ..Event::default() };
        let mut e = base.clone();
        s.extract(
            "Failed password for invalid user support from 195.154.37.122 port 56539 ssh2",
            &mut e,
        );
        let mut e = base.clone();
        assert!(s.extract("error: Received disconnect from 195.154.37.122: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]", &mut e));
        assert_eq!(e.action.as_deref(), Some("ssh_auth_fail_disconnect"));
        assert_eq!(e.user_name.as_deref(), Some("support"));
        assert_eq!(e.source_ip, ip("195.154.37.122"));
    }

    #[test]
    fn unrelated_lines_are_not_recognized() {
        for msg in [
            "",
            "pam_unix(sshd:auth): check pass; user unknown",
            "input_userauth_request: invalid user admin [preauth]",
            "Server listening on 0.0.0.0 port 22.",
            "Failed to start session",
            "Accepted",
            "Received disconnect from nowhere",
        ] {
            assert_eq!(parse_line(msg), None, "{msg}");
        }
    }
}
