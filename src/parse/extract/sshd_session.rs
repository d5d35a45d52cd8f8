//! What sshd told us earlier about a connection, keyed by host and pid, so that lines which omit
//! the peer (`Disconnecting: Too many authentication failures for root [preauth]`) can still be
//! attributed to an address, as fail2ban does.

use std::net::IpAddr;

use std::hash::BuildHasher;

use compact_str::CompactString;
use foldhash::HashMap;
use foldhash::fast::RandomState;

use crate::event::Sym;

/// The peer and user of one sshd connection process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SshSession {
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The client's port.
    pub port: Option<u16>,
    /// The user the client tried to log in as.
    pub user: Option<CompactString>,
    /// A failure logged before any line of the connection named the peer (`Disconnecting:
    /// Too many authentication failures`, `User root not allowed because account is
    /// locked`): its action, for the first later line that names the peer to carry.
    pub pending: Option<&'static str>,
    /// The user of the last PAM authentication failure on the connection.
    pub pam_user: Option<CompactString>,
}

/// Sessions remembered at most: one per concurrent sshd child is plenty; under a flood the
/// oldest half is forgotten rather than memory growing.
const SESSION_CAP: usize = 16 * 1024;

/// A bounded pid-keyed table of sessions, in two generations: when the current one fills, it
/// becomes the previous one and the old previous one is dropped, so eviction is O(1) amortized
/// and a session seen recently is always kept.
///
/// Keyed by a seeded 64-bit hash of the host name, not the shared name itself: cloning the
/// name touches a reference count that the writer thread also touches as it drops events,
/// and that cache line bouncing between cores made this table the hottest code in replay.
/// Two hosts would share a session only if their hashes collided and their pids matched at the
/// same time.
#[derive(Default)]
pub struct SessionTable {
    current: HashMap<(u64, u32), SshSession>,
    previous: HashMap<(u64, u32), SshSession>,
    hosts: RandomState,
}

impl SessionTable {
    /// The session of `pid` on `host`, if one was seen.
    pub fn get(&self, host: &Sym, pid: u32) -> Option<&SshSession> {
        let key = self.key(host, pid);
        self.current.get(&key).or_else(|| self.previous.get(&key))
    }

    /// Records what a line said about the session: set fields overwrite, unset ones are kept.
    pub fn update(
        &mut self,
        host: &Sym,
        pid: u32,
        ip: Option<IpAddr>,
        port: Option<u16>,
        user: Option<&str>,
    ) {
        let s = self.entry(host, pid);
        if ip.is_some() {
            s.ip = ip;
        }
        if port.is_some() {
            s.port = port;
        }
        if let Some(u) = user
            && s.user.as_deref() != Some(u)
        {
            s.user = Some(u.into());
        }
    }

    /// The session of `pid` on `host`, made empty if none was seen.
    pub fn entry(&mut self, host: &Sym, pid: u32) -> &mut SshSession {
        let key = self.key(host, pid);
        if self.current.len() >= SESSION_CAP / 2 && !self.current.contains_key(&key) {
            // Swap and clear rather than replace: both maps keep their capacity, so a busy
            // host does not pay for regrowing and rehashing every generation.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
        }
        match self.current.entry(key) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let old =
                    if self.previous.is_empty() { None } else { self.previous.remove(v.key()) };
                v.insert(old.unwrap_or_default())
            }
        }
    }

    /// Forgets a session whose connection ended; pids are reused.
    pub fn end(&mut self, host: &Sym, pid: u32) {
        let key = self.key(host, pid);
        if self.current.remove(&key).is_none() && !self.previous.is_empty() {
            self.previous.remove(&key);
        }
    }

    fn key(&self, host: &Sym, pid: u32) -> (u64, u32) {
        (self.hosts.hash_one(host.as_str()), pid)
    }

    /// How many sessions are remembered.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_merges_what_lines_say() {
        let mut t = SessionTable::default();
        let h = Sym::from("h");
        t.update(&h, 7, "1.2.3.4".parse().ok(), None, None);
        t.update(&h, 7, None, Some(22), Some("root"));
        let s = t.get(&h, 7).cloned().unwrap_or_default();
        assert_eq!(s.ip, "1.2.3.4".parse().ok());
        assert_eq!(s.port, Some(22));
        assert_eq!(s.user.as_deref(), Some("root"));
        assert!(t.get(&Sym::from("other"), 7).is_none());
        t.end(&h, 7);
        assert!(t.get(&h, 7).is_none());
    }

    #[test]
    fn stays_bounded_and_keeps_recent_sessions() {
        let mut t = SessionTable::default();
        let h = Sym::from("h");
        for pid in 0..(SESSION_CAP as u32 * 4) {
            t.update(&h, pid, None, Some(1), None);
        }
        assert!(t.len() <= SESSION_CAP);
        assert!(t.get(&h, SESSION_CAP as u32 * 4 - 1).is_some());
    }
}
