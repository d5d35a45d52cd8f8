//! OpenSSH server lines: logins, failures, invalid users, pre-auth disconnects and the rest of
//! what fail2ban, sshguard and CrowdSec watch in `sshd` logs.
//!
//! Peers are parsed from the right end of the line: a user name is attacker-controlled, so
//! `Failed password for invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 9 ssh2` must
//! blame 5.6.7.8, not the address spoofed inside the name.

use std::net::IpAddr;

use super::peer::{self, Peer, Pick, parse_ip, peer_at};
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
    /// The addresses the line could name when its grammar cannot tell which is the peer
    /// (then `ip` is None).
    pub candidates: Option<Box<[IpAddr]>>,
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

    /// Takes the peer and user of the one reading that fits, or keeps the candidates.
    fn picked(self, p: Pick<(&'a str, Peer<'a>)>) -> Option<Self> {
        match p {
            Pick::One((user, peer)) => Some(self.peer(peer).user(user)),
            Pick::Ambiguous(ips) => Some(SshLine { candidates: Some(ips), ..self }),
            Pick::None => None,
        }
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
            auth_result(outcome, rest)
        }
        b'I' => {
            let rest = body
                .strip_prefix("Invalid user ")
                .or_else(|| body.strip_prefix("Illegal user "))?;
            // Nothing follows the address: only the reading that ends the line fits.
            SshLine::auth_failure("ssh_invalid_user").picked(peer::pick(
                rest,
                " from ",
                |_, tail| tail.is_empty(),
            ))
        }
        b'U' => {
            if let Some(rest) = body.strip_prefix("User ") {
                // `User U from HOST not allowed because R`: sshd names an existing account
                // here (an unknown one is `Invalid user`), so U has no spaces and the first
                // ` from ` is the real one; HOST is an address or, with UseDNS, a name.
                let (head, why) = super::rsplit_lit(rest, " not allowed because ")?;
                let line = SshLine::auth_failure("ssh_user_not_allowed").reason(why);
                return Some(match head.split_once(' ') {
                    Some((user, host)) => {
                        let host = peer::host_token(host.strip_prefix("from ")?)?;
                        match parse_ip(host) {
                            Some(ip) => SshLine { ip: Some(ip), ..line.user(user) },
                            None => SshLine { domain: Some(host), ..line.user(user) },
                        }
                    }
                    None => SshLine { needs_session: true, ..line.user(head) },
                });
            }
            if let Some(rest) = body.strip_prefix("Unable to negotiate a ") {
                // `fatal: Unable to negotiate a key exchange method`: the peer is on an
                // earlier line of the connection.
                return Some(SshLine {
                    needs_session: true,
                    ..SshLine::new(
                        "ssh_negotiation_failed",
                        Outcome::Failure,
                        NET,
                        EventType::PROTOCOL,
                    )
                    .reason(rest)
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
            if let Some(rest) = body.strip_prefix("Read from socket failed: ") {
                // `fatal: Read from socket failed: Connection reset by peer [preauth]`: the
                // client dropped the connection mid-handshake (fail2ban's ddos mode).
                return Some(SshLine {
                    needs_session: true,
                    ends_session: true,
                    ..SshLine::new(
                        "ssh_connection_reset",
                        Outcome::Failure,
                        NET,
                        EventType::CONNECTION | EventType::END,
                    )
                    .reason(rest)
                });
            }
            if let Some(rest) = body.strip_prefix("ROOT LOGIN REFUSED FROM ") {
                let p = peer_at(rest)?;
                return Some(SshLine::auth_failure("ssh_root_login_refused").peer(p).user("root"));
            }
            let rest = body.strip_prefix("Received disconnect from ")?;
            let p = peer_at(rest)?;
            let text = p.rest.trim_start_matches(':').trim_start();
            let (code, why) = text.split_once(':').unwrap_or(("", text));
            if code.trim() == "14" && why.contains("authentication methods available") {
                // The client offered no method the server allows: a scanner or a bot with
                // the wrong credentials type (fail2ban's extra mode).
                return Some(SshLine {
                    ends_session: true,
                    ..SshLine::new(
                        "ssh_no_auth_methods",
                        Outcome::Failure,
                        AUTH | NET,
                        EventType::PROTOCOL,
                    )
                    .peer(p)
                    .reason(why)
                });
            }
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
            SshLine::auth_failure("ssh_max_auth_attempts").picked(peer::pick(
                rest,
                " from ",
                |_, tail| proto(tail).is_some_and(str::is_empty),
            ))
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
                // The reason can quote user names (`Change of username or service not allowed:
                // (admin,ssh-connection) -> (NEW,ssh-connection)`, NEW the client's), so the
                // address is the one whose reason reads as sshd writes it.
                // Readings with a reason sshd is known to write win over any other.
                let fits = |strict: bool| {
                    move |user: &str, tail: &str| {
                        tail.strip_prefix(": ")
                            .is_some_and(|why| disconnect_reason_fits(user, why, strict))
                    }
                };
                let pick = match peer::pick(rest, " ", fits(true)) {
                    Pick::None => peer::pick(rest, " ", fits(false)),
                    p => p,
                };
                let why = match &pick {
                    Pick::One((_, p)) => p.rest.strip_prefix(": ").unwrap_or(p.rest),
                    _ => "",
                };
                let action = if why.contains("Too many authentication failures") {
                    "ssh_too_many_auth_failures"
                } else {
                    "ssh_auth_disconnect"
                };
                let line = SshLine::auth_failure(action).reason(why).picked(pick)?;
                return Some(SshLine { ends_session: true, ..line });
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
            let line = disconnect(false, Outcome::Unknown).picked(peer::pick(
                rest,
                " from ",
                |_, tail| {
                    tail.strip_prefix(" id ").is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                },
            ))?;
            Some(SshLine { ends_session: true, ..line })
        }
        b'S' => {
            // Some vendor sshds log each protocol stage as `SSH: Server;Ltype: Version;Remote:
            // IP-PORT;...`: the stage and the peer, for the lines after it.
            let rest = body.strip_prefix("SSH: Server;Ltype: ")?;
            let (stage, rest) = rest.split_once(';')?;
            let remote = rest.strip_prefix("Remote: ")?;
            let remote = remote.split_once(';').map_or(remote, |(r, _)| r);
            let (addr, port) = remote.rsplit_once('-')?;
            Some(SshLine {
                ip: Some(parse_ip(addr)?),
                port: port.parse().ok(),
                ..SshLine::new("ssh_protocol_stage", Outcome::Unknown, NET, EventType::INFO)
                    .reason(stage)
            })
        }
        b'B' | b'b' => {
            if let Some(rest) = body.strip_prefix("Bad protocol version identification") {
                // The quoted identification is the client's: the address ends the line.
                let line =
                    SshLine::new("ssh_bad_protocol", Outcome::Failure, NET, EventType::PROTOCOL)
                        .picked(peer::pick(rest, " from ", |_, tail| tail.is_empty()))?;
                return Some(SshLine { user: None, ..line });
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
            // `PAM: Authentication failure for [illegal user] U from HOST[ via LOCAL]` (the
            // `via` address is the server's own, on macOS). U is the client's, HOST is not
            // followed by client text: the last ` from ` is the real one.
            let rest = body.strip_prefix("PAM: ")?;
            let (why, rest) = super::split_lit(rest, " for ")?;
            let rest = rest.strip_prefix("illegal user ").unwrap_or(rest);
            let (user, host) = super::rsplit_lit(rest, " from ")?;
            let host = super::rsplit_lit(host, " via ").map_or(host, |(h, _)| h);
            let host = peer::host_token(host.trim_end())?;
            let line = SshLine::auth_failure("ssh_pam_auth_failure").user(user).reason(why);
            Some(match parse_ip(host) {
                Some(ip) => SshLine { ip: Some(ip), ..line },
                None => SshLine { domain: Some(host), ..line },
            })
        }
        b'n' => {
            // `fatal: no matching mac found: client ... server ...` (OpenSSH < 7.2).
            let rest = body.strip_prefix("no matching ")?;
            Some(SshLine {
                needs_session: true,
                ..SshLine::new("ssh_negotiation_failed", Outcome::Failure, NET, EventType::PROTOCOL)
                    .reason(rest)
            })
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

/// `METHOD for [invalid user ]USER from IP[ port N][ sshN][: INFO]`, after `Failed ` or
/// `Accepted `, read by OpenSSH's grammar (`auth_log()`): the user is verbatim client text
/// for an invalid user, and INFO can carry a certificate's key ID, which is the client's too.
fn auth_result(outcome: Outcome, rest: &str) -> Option<SshLine<'_>> {
    let (method, rest) = super::split_lit(rest, " for ")?;
    let (invalid, rest) = match rest.strip_prefix("invalid user ") {
        Some(r) => (true, r),
        // Solaris writes a placeholder for an unknown account.
        None => match rest.strip_prefix("<invalid username>") {
            Some(r) => (true, r),
            None => (false, rest),
        },
    };
    // A user that exists has no spaces in its name, so for it only the first ` from ` can be
    // the real one; for an invalid user the address is the one whose tail fits.
    let pick = peer::pick(rest, " from ", |user, tail| {
        (invalid || super::name(user).is_some()) && auth_tail_fits(tail)
    });
    // A tail sshd might write that this grammar does not know: blame nobody, keep them all.
    let pick = match pick {
        Pick::None => {
            Pick::from_readings(peer::readings(rest, " from "), |(_, p): &(&str, Peer)| p.ip)
        }
        p => p,
    };
    let line = if outcome == Outcome::Failure && method == "publickey" && !invalid {
        // An existing user's client offering its keys one by one fails on each key it does
        // not have authorized: normal, not a guess (fail2ban ignores these too). It still
        // counts when the connection ends in too many failures.
        SshLine::new("ssh_publickey_rejected", outcome, AUTH, EventType::INFO)
    } else {
        SshLine::new("ssh_login", outcome, AUTH, EventType::START)
    };
    let mut line = line.reason(method).picked(pick)?;
    if line.user == Some("") || (invalid && rest.starts_with(" from ") && line.user.is_none()) {
        line.user = None;
    }
    Some(line)
}

/// ` sshN` after the peer, if present: the text after it.
fn proto(tail: &str) -> Option<&str> {
    match tail.strip_prefix(" ssh") {
        Some(r) => Some(r.trim_start_matches(|c: char| c.is_ascii_digit())),
        None => Some(tail),
    }
}

/// What may follow the peer of a `Failed`/`Accepted` line: nothing, or `: ` and an info part
/// sshd writes (a key, a certificate, a host-based key with its client user and host, or the
/// old `ruser` of rhosts authentication).
fn auth_tail_fits(tail: &str) -> bool {
    let Some(t) = proto(tail) else { return false };
    t.is_empty() || t.strip_prefix(": ").is_some_and(info_fits)
}

fn info_fits(info: &str) -> bool {
    if info.starts_with("ruser ") {
        return true;
    }
    let key_type = |t: &str| {
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_@.".contains(&b))
    };
    let token = |t: &str| !t.is_empty() && !t.bytes().any(|b| b.is_ascii_whitespace());
    let Some((kind, rest)) = info.split_once(' ') else { return false };
    if !key_type(kind) {
        return false;
    }
    if let Some(cert) = rest.strip_prefix("ID ") {
        // `ID KEYID (serial N) CA TYPE FP`: KEYID is anything; the end is fixed.
        let Some((head, ca)) = super::rsplit_lit(cert, ") CA ") else { return false };
        let Some((ca_type, fp)) = ca.split_once(' ') else { return false };
        let serial = super::rsplit_lit(head, " (serial ")
            .or_else(|| head.strip_prefix("(serial ").map(|s| ("", s)))
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        return serial && key_type(ca_type) && token(fp);
    }
    match rest.split_once(", client user \"") {
        None => token(rest),
        Some((fp, more)) => token(fp) && more.contains("\", client host \"") && more.ends_with('"'),
    }
}

/// Whether `why` reads as the reason sshd gives when it disconnects `user`: `strict`, one of
/// the reasons sshd is known to write; else any.
fn disconnect_reason_fits(user: &str, why: &str, strict: bool) -> bool {
    match why.strip_prefix("Change of username or service not allowed: (") {
        // sshd names the user it had first: that is the user of this reading.
        Some(rest) => rest.strip_prefix(user).is_some_and(|r| r.starts_with(',')),
        None if strict => why == "Too many authentication failures",
        None => !why.is_empty(),
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
            // A client that gave up mid-authentication is a failed attempt (fail2ban's
            // aggressive mode counts it); a plain close by a logged-in user is not.
            let outcome = if failed && preauth { Outcome::Failure } else { Outcome::Unknown };
            // The user is the client's and may hold addresses; the peer ends the line.
            let mut line = disconnect(preauth, outcome)
                .picked(peer::pick(r, " ", |_, tail| tail.is_empty()))?;
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
        let (mut action, mut outcome, mut category, mut kind) =
            (line.action, line.outcome, line.category, line.kind);
        let mut ip = line.ip;
        let mut port = line.port;
        let mut user = line.user;
        let key = e.host_name.clone().unwrap_or(DATASET);
        let mut session_user = None;
        let counted = outcome == Some(Outcome::Failure)
            && kind.contains(EventType::START)
            && category.contains(AUTH);
        if let Some(pid) = e.process_pid {
            let mut pending = None;
            if let Some(s) = self.sessions.get(&key, pid) {
                if line.needs_session {
                    if ip.is_none() {
                        ip = s.ip;
                        port = s.port;
                    }
                    if user.is_none() {
                        session_user = s.user.clone();
                    }
                }
                pending = s.pending;
            }
            let mut wait = None;
            if counted && ip.is_none() && line.candidates.is_none() {
                // A failure without a peer yet: the first later line that names one carries
                // it (fail2ban's multi-line attribution), so it is counted once it is known.
                wait = Some(action);
            } else if let Some(failed) = pending
                && line.ip.is_some()
                && !counted
            {
                (action, outcome, category, kind) =
                    (failed, Some(Outcome::Failure), AUTH, EventType::START);
                if user.is_none() {
                    session_user = self.sessions.get(&key, pid).and_then(|s| s.user.clone());
                }
                self.sessions.entry(&key, pid).pending = None;
            }
            if let Some(failed) = wait {
                self.sessions.update(&key, pid, None, None, user);
                self.sessions.entry(&key, pid).pending = Some(failed);
            } else if line.ends_session {
                self.sessions.end(&key, pid);
            } else if ip.is_some() || user.is_some() {
                self.sessions.update(&key, pid, ip, port, user);
            }
        }
        e.dataset = Some(DATASET);
        e.action = Some(Sym::from_static(action));
        e.outcome = outcome;
        e.category = category;
        e.kind = kind;
        e.source_ip = ip;
        e.source_port = port;
        e.source_domain = line.domain.map(Into::into);
        e.reason = line.reason.map(Into::into);
        e.related_ip = line.candidates;
        e.user_name = match session_user {
            Some(u) => Some(u),
            None => user.take().map(Into::into),
        };
        true
    }
}

impl Sshd {
    /// Notes a PAM authentication failure that sshd's PAM stack logged for connection `pid`;
    /// true when an earlier one on the same connection was for another user. sshd refuses a
    /// change of user within a connection, so PAM failing for two users on one connection is
    /// a client cycling through accounts (fail2ban's multi-user case, gh-2070), and counts
    /// even though sshd's own lines would not show it.
    pub fn pam_failure(&mut self, host: Option<&Sym>, pid: u32, user: Option<&str>) -> bool {
        let key = host.cloned().unwrap_or(DATASET);
        let s = self.sessions.entry(&key, pid);
        let switched = match (&s.pam_user, user) {
            (Some(before), Some(now)) => before.as_str() != now,
            _ => false,
        };
        if let Some(u) = user {
            s.pam_user = Some(u.into());
        }
        switched
    }
}

#[cfg(test)]
mod tests;
