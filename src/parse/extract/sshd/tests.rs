//! The sshd extractor's tests: each shape, the injections of client text, the session
//! table's attribution, and property tests that no client text blames a decoy.
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
    let at =
        |pid| Event { host_name: Some(Sym::from("h")), process_pid: Some(pid), ..Event::default() };
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
    let l =
        p("Failed password for invalid user x from 1.2.3.4 port 22 from 5.6.7.8 port 9999 ssh2");
    assert_eq!((l.ip, l.port, l.user), (ip("5.6.7.8"), Some(9999), Some("x from 1.2.3.4 port 22")));
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
    let mut base =
        Event { host_name: Some(Sym::from("LabSZ")), process_pid: Some(24227), ..Event::default() };
    let mut e = base.clone();
    assert!(s.extract("Failed password for root from 5.36.59.76 port 42393 ssh2", &mut e));
    assert!(
        s.extract("Disconnecting: Too many authentication failures for root [preauth]", &mut base)
    );
    assert_eq!(base.action.as_deref(), Some("ssh_too_many_auth_failures"));
    assert_eq!(base.source_ip, ip("5.36.59.76"));
    assert_eq!(base.user_name.as_deref(), Some("root"));
    // The connection ended: a later line of a reused pid must not inherit it.
    let mut later =
        Event { host_name: Some(Sym::from("LabSZ")), process_pid: Some(24227), ..Event::default() };
    assert!(s.extract("Disconnecting: Too many authentication failures [preauth]", &mut later));
    assert_eq!(later.source_ip, None);
}

#[test]
fn session_fills_user_for_auth_fail_disconnect() {
    let mut s = Sshd::default();
    let base = Event { host_name: Some(Sym::from("h")), process_pid: Some(1), ..Event::default() };
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
