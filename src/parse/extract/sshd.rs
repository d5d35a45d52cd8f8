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
    fn client_text_after_the_address_cannot_move_it() {
        // A certificate's key ID is the client's text, after `ssh2: `.
        let l = p(
            "Failed publickey for invalid user z from 198.51.100.53 port 5000 ssh2: RSA-CERT ID from 10.66.66.69 port 1 ssh2 (serial 1) CA RSA SHA256:abcdef",
        );
        assert_eq!(
            (l.ip, l.port, l.user, l.action),
            (ip("198.51.100.53"), Some(5000), Some("z"), "ssh_login")
        );
        // fail2ban's injection lines (filter.d test log `sshd`).
        for (msg, want) in [
            (
                "Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 58946 ssh2",
                "127.0.0.1",
            ),
            (
                "Failed password for invalid user test from 10.10.1.2 port 55555 ssh2 from 127.0.0.1 port 58946 ssh2",
                "127.0.0.1",
            ),
            (
                "Failed password for user from 127.0.0.1 port 20000 ssh1: ruser from 1.2.3.4",
                "127.0.0.1",
            ),
            (
                "Connection closed by authenticating user test 127.0.0.1 port 12345 192.0.2.11 port 46039 [preauth]",
                "192.0.2.11",
            ),
            (
                "Bad protocol version identification 'dummy string' from 192.0.2.1' from 69.61.56.115 port 31778",
                "69.61.56.115",
            ),
        ] {
            assert_eq!(p(msg).ip, ip(want), "{msg}");
        }
        // A new user name quoted in the disconnect reason.
        let l = p(
            "Disconnecting invalid user admin 192.0.2.117 port 44004: Change of username or service not allowed: (admin,ssh-connection) -> (x 10.66.66.1 port 1: y,ssh-connection) [preauth]",
        );
        assert_eq!((l.ip, l.user), (ip("192.0.2.117"), Some("admin")));
    }

    #[test]
    fn two_readings_blame_nobody() {
        // User and key ID both chosen so that either address reads as sshd's: neither is
        // believed, both are kept.
        let l = p(
            "Failed publickey for invalid user a from 10.66.66.1 port 1 ssh2: RSA-CERT ID b from 198.51.100.9 port 22 ssh2: RSA-CERT ID c (serial 1) CA RSA SHA256:x",
        );
        assert_eq!(l.ip, None);
        assert_eq!(l.user, None);
        assert_eq!(
            l.candidates.as_deref(),
            Some(
                &[
                    ip("10.66.66.1").unwrap_or(IpAddr::from([0, 0, 0, 0])),
                    ip("198.51.100.9").unwrap_or(IpAddr::from([0, 0, 0, 0]))
                ][..]
            )
        );
        let mut s = Sshd::default();
        let mut e = Event { process_pid: Some(3), ..Event::default() };
        assert!(s.extract("Failed publickey for invalid user a from 10.66.66.1 port 1 ssh2: RSA-CERT ID b from 198.51.100.9 port 22 ssh2: RSA-CERT ID c (serial 1) CA RSA SHA256:x", &mut e));
        assert_eq!(e.source_ip, None);
        assert_eq!(e.related_ip.as_deref().map(<[IpAddr]>::len), Some(2));
    }

    #[test]
    fn a_valid_users_publickey_failures_are_not_guesses() {
        let l = p("Failed publickey for git from 192.0.2.1 port 57904 ssh2: ECDSA 0e:ff:aa");
        assert_eq!(
            (l.action, l.kind, l.ip),
            ("ssh_publickey_rejected", EventType::INFO, ip("192.0.2.1"))
        );
        let l = p(
            "Failed publickey for invalid user graysky from 127.0.0.1 port 37954 ssh2: RSA SHA256:v3dpapGleDaUKf$4V1vKyR9ZyUgjaJAmoCTcb2PLljI",
        );
        assert_eq!((l.action, l.kind), ("ssh_login", EventType::START));
    }

    #[test]
    fn a_failure_waits_for_its_address_on_a_later_line() {
        let mut s = Sshd::default();
        let at = |pid| Event {
            host_name: Some(Sym::from("h")),
            process_pid: Some(pid),
            ..Event::default()
        };
        let mut e = at(8148);
        assert!(
            s.extract("Disconnecting: Too many authentication failures for root [preauth]", &mut e)
        );
        assert_eq!(e.source_ip, None);
        // Another connection's close is not it.
        let mut other = at(7148);
        assert!(s.extract("Connection closed by 61.0.0.2 [preauth]", &mut other));
        assert_eq!(other.action.as_deref(), Some("ssh_preauth_disconnect"));
        let mut e = at(8148);
        assert!(s.extract("Connection closed by 61.0.0.1 [preauth]", &mut e));
        assert_eq!(e.action.as_deref(), Some("ssh_too_many_auth_failures"));
        assert_eq!((e.outcome, e.kind), (Some(Outcome::Failure), EventType::START));
        assert_eq!((e.source_ip, e.user_name.as_deref()), (ip("61.0.0.1"), Some("root")));
        // Told once.
        let mut again = at(8148);
        assert!(s.extract("Connection closed by 61.0.0.1 [preauth]", &mut again));
        assert_eq!(again.action.as_deref(), Some("ssh_preauth_disconnect"));
    }

    /// Fragments an attacker would put in a user name or key ID.
    fn hostile() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop::collection::vec(
            prop::sample::select(vec![
                " from ",
                " port ",
                "1",
                "22",
                "ssh2",
                ":",
                ": ",
                " ",
                "10.66.66.66",
                "::ffff:10.66.66.66",
                "rhost=",
                "[",
                "]",
                "<",
                ">",
                "'",
                "\"",
                "x",
                "é",
                "RSA ",
                "SHA256:x",
                "RSA-CERT ID ",
                " (serial 1) CA RSA SHA256:y",
                "invalid user ",
                "\\",
                "\t",
            ]),
            0..14,
        )
        .prop_map(|v| v.concat())
    }

    proptest::proptest! {
        /// For any user name and key ID, the address is the real one or absent, never the
        /// decoy the client wrote.
        #[test]
        fn no_client_text_blames_the_decoy(user in hostile(), keyid in hostile()) {
            let real = ip("198.51.100.53");
            for msg in [
                format!("Failed password for invalid user {user} from 198.51.100.53 port 5000 ssh2"),
                format!("Failed publickey for invalid user {user} from 198.51.100.53 port 5000 ssh2: RSA-CERT ID {keyid} (serial 1) CA RSA SHA256:abc"),
                format!("Failed publickey for root from 198.51.100.53 port 5000 ssh2: RSA-CERT ID {keyid} (serial 1) CA RSA SHA256:abc"),
                format!("Invalid user {user} from 198.51.100.53 port 5000"),
                format!("Connection closed by invalid user {user} 198.51.100.53 port 5000 [preauth]"),
                format!("maximum authentication attempts exceeded for invalid user {user} from 198.51.100.53 port 5000 ssh2 [preauth]"),
                format!("error: PAM: Authentication failure for illegal user {user} from 198.51.100.53"),
            ] {
                if let Some(l) = parse_line(&msg) {
                    proptest::prop_assert!(l.ip.is_none() || l.ip == real, "{} -> {:?}", msg, l.ip);
                }
            }
        }
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
