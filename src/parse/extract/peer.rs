//! Finding a line's peer address when client-chosen text stands on both sides of it.
//!
//! Daemons log user names, key IDs, ident replies and disconnect reasons verbatim, so any
//! ` from 1.2.3.4 port 5` in a line may be the client's own text. The extractors therefore
//! read a line by its writer's grammar: every place where the address could stand is a
//! candidate, a candidate whose surroundings break the grammar (text after an address that
//! ends the line, an info part that is not a key, a user name with spaces where the account
//! must exist) is dropped, and only a single survivor is believed. Two survivors mean the
//! line can be read both ways: the address is then left out and the candidates kept
//! ([`Pick::Ambiguous`]), rather than blaming whichever one a search happens to meet first.

use std::net::IpAddr;

use smallvec::SmallVec;

/// An address with an optional port, and the text after them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peer<'a> {
    /// The address.
    pub ip: IpAddr,
    /// The port, when the line gives one.
    pub port: Option<u16>,
    /// The text after the address and port.
    pub rest: &'a str,
}

/// The outcome of reading a line's candidates.
#[derive(Clone, Debug, PartialEq)]
pub enum Pick<T> {
    /// Exactly one reading fits the grammar.
    One(T),
    /// Several readings fit: these are the addresses they would blame. Boxed: rare, and it
    /// keeps the common `One` small as it is moved through the extractors.
    Ambiguous(Box<[IpAddr]>),
    /// None fits.
    None,
}

impl<T> Pick<T> {
    /// Picks among `readings`: one is believed, several are ambiguous.
    pub fn from_readings(mut readings: SmallVec<[T; 2]>, ip: impl Fn(&T) -> IpAddr) -> Self {
        match readings.len() {
            0 => Pick::None,
            1 => readings.pop().map_or(Pick::None, Pick::One),
            _ => {
                let mut ips: SmallVec<[IpAddr; 2]> = SmallVec::new();
                for r in &readings {
                    if !ips.contains(&ip(r)) {
                        ips.push(ip(r));
                    }
                }
                // Two readings that blame the same address are not a doubt about the address.
                if ips.len() == 1 {
                    readings.pop().map_or(Pick::None, Pick::One)
                } else {
                    Pick::Ambiguous(ips.into_vec().into_boxed_slice())
                }
            }
        }
    }
}

/// Parses an address token: strips a trailing `:` (`from 1.2.3.4: 3: ...`), an IPv6 zone
/// (`%eth0`) and brackets, and folds IPv4-mapped IPv6 to IPv4 so one attacker has one key.
pub fn parse_ip(tok: &str) -> Option<IpAddr> {
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
pub fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
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
pub fn peer_at(s: &str) -> Option<Peer<'_>> {
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

/// Every reading of `s` as `TEXT<sep>IP[ port N]REST`: the text before each occurrence of
/// `sep` whose address parses, with the peer. Left to right.
pub fn readings<'a>(s: &'a str, sep: &str) -> SmallVec<[(&'a str, Peer<'a>); 2]> {
    let mut out = SmallVec::new();
    let mut from = 0;
    while let Some((before, _)) = super::split_lit(&s[from..], sep) {
        let at = from + before.len();
        if let Some(p) = peer_at(&s[at + sep.len()..]) {
            out.push((&s[..at], p));
        }
        from = at + 1;
    }
    out
}

/// The one reading of `s` as `TEXT<sep>IP[ port N]REST` whose `REST` satisfies `tail_ok`.
///
/// Streams the candidates rather than collecting them: nearly every line has one, and this
/// runs on every sshd line.
pub fn pick<'a>(
    s: &'a str,
    sep: &str,
    ok: impl Fn(&'a str, &'a str) -> bool,
) -> Pick<(&'a str, Peer<'a>)> {
    let mut first: Option<(&'a str, Peer<'a>)> = None;
    let mut others: SmallVec<[IpAddr; 2]> = SmallVec::new();
    let mut from = 0;
    while let Some((before, _)) = super::split_lit(&s[from..], sep) {
        let at = from + before.len();
        if let Some(p) = peer_at(&s[at + sep.len()..])
            && ok(&s[..at], p.rest)
        {
            match &first {
                None => first = Some((&s[..at], p)),
                Some((_, f)) => {
                    if f.ip != p.ip && !others.contains(&p.ip) {
                        others.push(p.ip);
                    }
                }
            }
        }
        from = at + 1;
    }
    match first {
        None => Pick::None,
        Some(f) if others.is_empty() => Pick::One(f),
        Some((_, f)) => {
            let mut ips = Vec::with_capacity(others.len() + 1);
            ips.push(f.ip);
            ips.extend(others);
            Pick::Ambiguous(ips.into_boxed_slice())
        }
    }
}

/// `user@host` or a host: a host name as a token (no spaces, not empty).
pub fn host_token(s: &str) -> Option<&str> {
    (!s.is_empty() && !s.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()))
        .then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
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
    fn readings_find_every_address_left_to_right() {
        let r = readings("a from 1.1.1.1 port 2 from x from 2.2.2.2", " from ");
        let got: Vec<(&str, IpAddr, Option<u16>)> =
            r.iter().map(|(t, p)| (*t, p.ip, p.port)).collect();
        assert_eq!(
            got,
            vec![
                ("a", ip("1.1.1.1"), Some(2)),
                ("a from 1.1.1.1 port 2 from x", ip("2.2.2.2"), None)
            ]
        );
    }

    #[test]
    fn one_fitting_reading_is_believed_two_are_not() {
        let ends = |_: &str, rest: &str| rest.is_empty();
        assert!(
            matches!(pick("x from 1.1.1.1 from 2.2.2.2", " from ", ends), Pick::One((_, p)) if p.ip == ip("2.2.2.2"))
        );
        let any = |_: &str, _: &str| true;
        assert_eq!(
            pick("x from 1.1.1.1 from 2.2.2.2", " from ", any),
            Pick::Ambiguous(vec![ip("1.1.1.1"), ip("2.2.2.2")].into_boxed_slice())
        );
        assert_eq!(pick("x from nowhere", " from ", any), Pick::None);
        // The same address twice is no doubt about the address.
        assert!(matches!(pick("from 1.1.1.1 from 1.1.1.1", " from ", any), Pick::One(_)));
    }

    #[test]
    fn mapped_and_bracketed_addresses_fold() {
        assert_eq!(parse_ip("::ffff:10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(parse_ip("[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(parse_ip("fe80::1%eth0"), Some(ip("fe80::1")));
        assert_eq!(parse_ip("example.com"), None);
    }
}
