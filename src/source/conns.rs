//! The connections a listener holds: a cap on all of them and on each client's, and room made
//! at the cap by closing the connection idle the longest rather than refusing the newcomer.
//!
//! Refusing at the cap lets idle connections lock real senders out for as long as they stay
//! open; closing the longest-idle one instead costs an attacker its oldest connection for
//! every new one it opens, and a real sender gets in at once. A per-client cap keeps one
//! address from taking the whole table. Connections busy with a request (or pushing a batch
//! downstream) are never chosen: their work would be lost.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

/// What a listener counts about its connections; `/metrics` reads it.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections open now (a gauge).
    pub open: AtomicU64,
    /// Connections refused at `max_connections` with none idle to close.
    pub rejected: AtomicU64,
    /// Connections refused over `max_connections_per_address`.
    pub rejected_per_address: AtomicU64,
    /// Idle connections closed to make room for a new one at `max_connections`.
    pub evicted: AtomicU64,
    /// Connections closed after `idle_timeout` without a byte (or a request head, on HTTP).
    pub idle_closed: AtomicU64,
    /// `accept` calls that failed (out of file descriptors and the like).
    pub accept_errors: AtomicU64,
    /// Connections ended by an error (reset by the peer, a failed TLS handshake, a
    /// malformed HTTP request).
    pub errors: AtomicU64,
    /// Requests answered 503 because the listener was busy (HTTP only).
    pub busy: AtomicU64,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every slot is taken by a connection busy with work.
    #[error("every connection is busy")]
    Full,
    /// The client holds its share already.
    #[error("too many connections from this address")]
    PerAddress,
}

impl Refused {
    /// A metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Refused::Full => "full",
            Refused::PerAddress => "per_address",
        }
    }
}

/// Who a connection counts against: its IPv4 address, or its IPv6 /64 (one host owns a whole
/// /64 and can use any address in it, so counting by full address would not bound it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Client(IpAddr);

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Client(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                Client(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
            }
        }
    }
}

/// One connection's liveness, shared between its task (which updates it) and the table
/// (which reads it to choose whom to close).
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last sign of life.
    last_ms: AtomicU64,
    /// Units of work in progress (a request, a batch being handed on).
    busy: AtomicU32,
    evict: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let a = Activity {
            epoch,
            last_ms: AtomicU64::new(0),
            busy: AtomicU32::new(0),
            evict: Notify::new(),
        };
        a.touch();
        a
    }

    /// Records a sign of life (bytes read, a request answered).
    pub fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Marks the connection busy until the guard is dropped: it is not closed to make room
    /// meanwhile.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(Arc::clone(self))
    }

    /// Resolves once the table has closed this connection's slot to make room: the connection
    /// should stop reading and close. A notice given before this is awaited is kept.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    fn idle_since(&self) -> Option<u64> {
        (self.busy.load(Ordering::Relaxed) == 0).then(|| self.last_ms.load(Ordering::Relaxed))
    }
}

/// See [`Activity::busy`].
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connections of one listener.
#[derive(Debug)]
pub struct ConnTable {
    max: usize,
    per_address: usize,
    counters: Arc<ConnCounters>,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    conns: HashMap<u64, (Client, Arc<Activity>)>,
    per_client: HashMap<Client, usize>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Arc<Activity>> {
        let (client, activity) = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&client);
            }
        }
        Some(activity)
    }
}

/// A connection's place in the table, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    table: Arc<ConnTable>,
    id: u64,
    /// What the connection reports and what tells it to close.
    pub activity: Arc<Activity>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted slot was given back when it was chosen.
        if self.table.lock().remove(self.id).is_some() {
            self.table.counters.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl ConnTable {
    /// A table of at most `max` connections, `per_address` from one client (both at least 1).
    pub fn new(max: usize, per_address: usize, counters: Arc<ConnCounters>) -> Arc<ConnTable> {
        Arc::new(ConnTable {
            max: max.max(1),
            per_address: per_address.max(1),
            counters,
            epoch: Instant::now(),
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table's invariants hold between statements, so a panic elsewhere while it was
        // held leaves nothing half-done.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection from `ip`, closing the longest-idle one when the table is full;
    /// refused (and counted) over the client's cap, or when every connection is busy.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let client = Client::of(ip);
        let mut inner = self.lock();
        if inner.per_client.get(&client).copied().unwrap_or(0) >= self.per_address {
            self.counters.rejected_per_address.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PerAddress);
        }
        if inner.conns.len() >= self.max {
            // A linear scan, at the cap only: a few microseconds for a thousand connections.
            let victim = inner
                .conns
                .iter()
                .filter_map(|(id, (_, a))| Some((a.idle_since()?, *id)))
                .min()
                .map(|(_, id)| id);
            let Some(activity) = victim.and_then(|id| inner.remove(id)) else {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::Full);
            };
            activity.evict.notify_one();
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            self.counters.open.fetch_sub(1, Ordering::Relaxed);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new(self.epoch));
        inner.conns.insert(id, (client, Arc::clone(&activity)));
        *inner.per_client.entry(client).or_insert(0) += 1;
        drop(inner);
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        Ok(Slot { table: Arc::clone(self), id, activity })
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table(max: usize, per: usize) -> (Arc<ConnTable>, Arc<ConnCounters>) {
        let c = Arc::new(ConnCounters::default());
        (ConnTable::new(max, per, Arc::clone(&c)), c)
    }

    fn n(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    /// Sets a slot's last sign of life `ms` after the table's epoch (no clock in the test).
    fn at(slot: &Slot, ms: u64) {
        slot.activity.last_ms.store(ms, Ordering::Relaxed);
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_is_closed_for_the_newcomer() {
        let (t, c) = table(3, 10);
        let a = t.admit(ip("192.0.2.1")).unwrap();
        let b = t.admit(ip("192.0.2.2")).unwrap();
        let d = t.admit(ip("192.0.2.3")).unwrap();
        at(&a, 50);
        at(&b, 10);
        at(&d, 30);
        let e = t.admit(ip("192.0.2.4")).unwrap();
        // `b` was told to close, and its notice waits for it even though nobody listened yet.
        tokio::time::timeout(Duration::from_secs(5), b.activity.evicted()).await.unwrap();
        assert_eq!((t.len(), n(&c.evicted), n(&c.open), n(&c.accepted)), (3, 1, 3, 4));
        // Dropping the evicted slot later does not count it twice.
        drop(b);
        assert_eq!((t.len(), n(&c.open)), (3, 3));
        at(&e, 60);
        // Next in line: `d` (30), then `a` (50).
        let _f = t.admit(ip("192.0.2.5")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), d.activity.evicted()).await.unwrap();
        drop((a, e));
        assert_eq!((t.len(), n(&c.open)), (1, 1));
    }

    #[test]
    fn busy_connections_are_never_closed_and_a_full_busy_table_refuses() {
        let (t, c) = table(2, 10);
        let a = t.admit(ip("192.0.2.1")).unwrap();
        let b = t.admit(ip("192.0.2.2")).unwrap();
        let busy_a = a.activity.busy();
        let busy_b = b.activity.busy();
        at(&a, 0);
        assert_eq!(t.admit(ip("192.0.2.3")).unwrap_err(), Refused::Full);
        assert_eq!((n(&c.rejected), n(&c.evicted)), (1, 0));
        drop(busy_b);
        // `b` is idle again (and more recently active than `a`, which is busy): `b` goes.
        let _c3 = t.admit(ip("192.0.2.3")).unwrap();
        assert_eq!((n(&c.rejected), n(&c.evicted), t.len()), (1, 1, 2));
        drop(busy_a);
    }

    #[test]
    fn each_client_has_its_cap_and_an_ipv6_client_is_its_64() {
        let (t, c) = table(100, 2);
        let held: Vec<Slot> =
            ["192.0.2.1", "192.0.2.1"].iter().map(|a| t.admit(ip(a)).unwrap()).collect();
        assert_eq!(t.admit(ip("192.0.2.1")).unwrap_err(), Refused::PerAddress);
        // The same address seen through a dual-stack socket is the same client.
        assert_eq!(t.admit(ip("::ffff:192.0.2.1")).unwrap_err(), Refused::PerAddress);
        let _other = t.admit(ip("192.0.2.2")).unwrap();
        let _v6: Vec<Slot> = ["2001:db8:1:2::1", "2001:db8:1:2::ffff"]
            .iter()
            .map(|a| t.admit(ip(a)).unwrap())
            .collect();
        assert_eq!(t.admit(ip("2001:db8:1:2:abcd::9")).unwrap_err(), Refused::PerAddress);
        let _next64 = t.admit(ip("2001:db8:1:3::1")).unwrap();
        assert_eq!(n(&c.rejected_per_address), 3);
        // A closed connection gives its client's share back.
        drop(held);
        let _again = t.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(n(&c.open), 5);
    }
}
