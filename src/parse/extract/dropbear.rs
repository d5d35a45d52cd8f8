//! Dropbear SSH server lines (embedded systems, routers): logins, failures, unknown users.
//!
//! Dropbear quotes the user name (`'root'`) and ends the line with the peer as `IP:PORT`
//! (`::ffff:1.2.3.4:5` for a mapped address). The user is the client's text and may hold a
//! decoy `from 6.6.6.6:1`, so the peer is the last ` from ` whose rest is one `IP:PORT`
//! running to the end of the line. Actions are sshd's, so the SSH rules count both servers.
//!
//! | line | action | outcome |
//! |---|---|---|
//! | `Bad password attempt for 'U' from IP:P` | `ssh_login` | failure |
//! | `Login attempt for nonexistent user['U'] from IP:P` | `ssh_invalid_user` | failure |
//! | `Exit before auth (user 'U', N fails): Max auth tries reached - user 'U' from IP:P` | `ssh_max_auth_attempts` | failure |
//! | `Password auth succeeded for 'U' from IP:P`, `Pubkey auth succeeded for 'U' with key K from IP:P` | `ssh_login` | success |
//! | `Child connection from IP:P` | `ssh_connection` | unknown |

use std::net::IpAddr;

use super::peer::parse_ip;
use super::tag;
use crate::event::{Category, Event, EventType, Outcome};

const DATASET: &str = "dropbear";

/// Fills `e` from one dropbear message; false, `e` untouched, when not recognized.
pub fn extract(msg: &str, e: &mut Event) -> bool {
    let msg = msg.trim_end();
    let (action, outcome, category, kind, rest) = if let Some(r) = msg
        .strip_prefix("Bad password attempt for ")
        .or_else(|| msg.strip_prefix("bad password attempt for "))
    {
        ("ssh_login", Outcome::Failure, Category::AUTHENTICATION, EventType::START, r)
    } else if let Some(r) = msg
        .strip_prefix("Login attempt for nonexistent user")
        .or_else(|| msg.strip_prefix("login attempt for nonexistent user"))
    {
        ("ssh_invalid_user", Outcome::Failure, Category::AUTHENTICATION, EventType::START, r)
    } else if let Some(r) = msg.strip_prefix("Exit before auth ") {
        if !r.contains("Max auth tries reached") {
            return false;
        }
        let r = r.split_once("Max auth tries reached - user ").map_or(r, |(_, u)| u);
        ("ssh_max_auth_attempts", Outcome::Failure, Category::AUTHENTICATION, EventType::START, r)
    } else if let Some(r) = msg
        .strip_prefix("Password auth succeeded for ")
        .or_else(|| msg.strip_prefix("Pubkey auth succeeded for "))
    {
        ("ssh_login", Outcome::Success, Category::AUTHENTICATION, EventType::START, r)
    } else if let Some(r) = msg.strip_prefix("Child connection from ") {
        let Some((ip, port)) = ip_port(r) else { return false };
        tag(e, DATASET, "ssh_connection", Outcome::Unknown, Category::NETWORK, EventType::START);
        e.source_ip = Some(ip);
        e.source_port = port;
        return true;
    } else {
        return false;
    };
    let Some((head, (ip, port))) = last_peer(rest) else { return false };
    tag(e, DATASET, action, outcome, category, kind);
    e.source_ip = Some(ip);
    e.source_port = port;
    e.user_name = quoted_user(head).map(Into::into);
    if outcome == Outcome::Success {
        e.reason = Some(if msg.starts_with("Pubkey") { "publickey" } else { "password" }.into());
    }
    true
}

/// The text before the last ` from IP:PORT` that ends `s`, and the peer.
fn last_peer(s: &str) -> Option<(&str, (IpAddr, Option<u16>))> {
    let (head, peer) =
        s.rsplit_once(" from ").or_else(|| s.strip_prefix("from ").map(|p| ("", p)))?;
    Some((head, ip_port(peer)?))
}

/// `IP:PORT` (the port after the last colon) or a bare address, and nothing else.
fn ip_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.strip_prefix('<').and_then(|t| t.strip_suffix('>')).unwrap_or(s);
    if s.contains(char::is_whitespace) {
        return None;
    }
    if let Some((ip, port)) = s.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
        && let Some(ip) = parse_ip(ip)
    {
        return Some((ip, Some(port)));
    }
    parse_ip(s).map(|ip| (ip, None))
}

/// `'root'` (with anything after it, such as ` with key ...`): the name between the quotes.
fn quoted_user(head: &str) -> Option<&str> {
    let inner = head.trim().strip_prefix('\'')?;
    let end = inner.rfind('\'')?;
    let user = &inner[..end];
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(msg: &str) -> Option<Event> {
        let mut e = Event::default();
        extract(msg, &mut e).then_some(e)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn failures_in_dropbears_documented_forms() {
        for (msg, action, addr, port, user) in [
            (
                "bad password attempt for 'root' from 198.51.100.87:5543",
                "ssh_login",
                "198.51.100.87",
                Some(5543),
                Some("root"),
            ),
            (
                "Bad password attempt for 'root' from 1.2.3.4:60588",
                "ssh_login",
                "1.2.3.4",
                Some(60588),
                Some("root"),
            ),
            (
                "login attempt for nonexistent user from ::ffff:198.51.100.215:60495",
                "ssh_invalid_user",
                "198.51.100.215",
                Some(60495),
                None,
            ),
            (
                "Login attempt for nonexistent user 'bob' from 1.2.3.4:60794",
                "ssh_invalid_user",
                "1.2.3.4",
                Some(60794),
                Some("bob"),
            ),
            (
                "Exit before auth (user 'root', 10 fails): Max auth tries reached - user 'root' from 1.2.3.4:60588",
                "ssh_max_auth_attempts",
                "1.2.3.4",
                Some(60588),
                Some("root"),
            ),
            (
                "Login attempt for nonexistent user from 2001:db8::5:22",
                "ssh_invalid_user",
                "2001:db8::5",
                Some(22),
                None,
            ),
        ] {
            let e = run(msg).unwrap_or_else(|| panic!("not recognized: {msg}"));
            assert_eq!(e.dataset.as_deref(), Some("dropbear"), "{msg}");
            assert_eq!(e.action.as_deref(), Some(action), "{msg}");
            assert_eq!(e.outcome, Some(Outcome::Failure), "{msg}");
            assert_eq!((e.source_ip, e.source_port), (ip(addr), port), "{msg}");
            assert_eq!(e.user_name.as_deref(), user, "{msg}");
        }
    }

    #[test]
    fn successes_and_connections() {
        let e = run("Password auth succeeded for 'admin' from 192.0.2.9:40000").unwrap();
        assert_eq!((e.outcome, e.user_name.as_deref()), (Some(Outcome::Success), Some("admin")));
        assert_eq!(e.reason.as_deref(), Some("password"));
        let e = run("Pubkey auth succeeded for 'root' with key md5 aa:bb from 192.0.2.9:40001")
            .unwrap();
        assert_eq!(
            (e.user_name.as_deref(), e.reason.as_deref()),
            (Some("root"), Some("publickey"))
        );
        let e = run("Child connection from 192.0.2.9:40002").unwrap();
        assert_eq!((e.action.as_deref(), e.source_port), (Some("ssh_connection"), Some(40002)));
    }

    #[test]
    fn a_user_name_cannot_move_the_address() {
        let e = run("Bad password attempt for 'x' from 6.6.6.6:1' from 198.51.100.2:2222").unwrap();
        assert_eq!(e.source_ip, ip("198.51.100.2"));
        assert_eq!(e.user_name.as_deref(), Some("x' from 6.6.6.6:1"));
        // A decoy after the real address would have to end the line, and then it is the line's.
        assert!(run("Bad password attempt for 'x' from 198.51.100.2:2222 trailing").is_none());
    }

    #[test]
    fn other_lines_are_declined() {
        super::super::testing::assert_declines(
            extract,
            &[
                "",
                "Exit before auth: Disconnect received",
                "Bad password attempt for 'root' from nowhere",
                "Running in background",
            ],
        );
    }
}
