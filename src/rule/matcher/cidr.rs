//! IPv4 and IPv6 network prefixes for the `cidr` modifier, checked by hand on the address bits.

use std::net::IpAddr;

/// An IPv4 or IPv6 network; IPv4-mapped IPv6 blocks and addresses are treated as IPv4.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Cidr {
    V4 { net: u32, mask: u32 },
    V6 { net: u128, mask: u128 },
}

impl Cidr {
    /// `address/prefix`, or a bare address as a single-host block.
    pub(super) fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u32>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        match addr {
            IpAddr::V4(a) => Some(Cidr::v4(u32::from(a), prefix.unwrap_or(32))?),
            IpAddr::V6(a) => {
                let prefix = prefix.unwrap_or(128);
                match a.to_ipv4_mapped() {
                    Some(v4) if (96..=128).contains(&prefix) => {
                        Cidr::v4(u32::from(v4), prefix - 96)
                    }
                    _ => {
                        if prefix > 128 {
                            return None;
                        }
                        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                        Some(Cidr::V6 { net: u128::from(a) & mask, mask })
                    }
                }
            }
        }
    }

    pub(super) fn v4(addr: u32, prefix: u32) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        Some(Cidr::V4 { net: addr & mask, mask })
    }

    pub(super) fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self, ip) {
            (Cidr::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == net,
            (Cidr::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == net,
            _ => false,
        }
    }
}
