//! The group tables' map: group keys' fingerprints (see [`Fingerprints`]) to values in
//! recency order, bounded, evicting the least recently used. The part of `lru::LruCache` the
//! tables use, laid out for a million groups: the entries live in one vector linked by `u32`
//! indices (no allocation per entry, 8 bytes of links instead of 16 plus the allocator's
//! header), the hash index holds `u32`s (4 bytes a bucket instead of 16), and a key is its
//! 8-byte fingerprint instead of a 24-byte string. At a million groups this is about 60 MB
//! less than `LruCache<CompactString, _>`.
//!
//! Removing an entry moves the last one into its place (the vector stays dense, so iteration
//! and snapshots never skip holes); the moved entry's links and index are updated.

use hashbrown::HashTable;
use std::hash::Hasher;

/// No entry.
const NIL: u32 = u32::MAX;

/// Group keys to 64-bit fingerprints: SipHash-1-3 under a secret seed. A table keeps a
/// group by its key's fingerprint only, so two keys with one fingerprint would share a group;
/// among a million keys that happens with odds of about 3 in 100 million, and since the seed
/// is random per state (and kept with it), a sender cannot choose keys that collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fingerprints {
    seed: [u64; 2],
}

impl Fingerprints {
    /// A fresh random seed.
    pub(super) fn random() -> Fingerprints {
        Fingerprints { seed: [rand::random(), rand::random()] }
    }

    /// The fingerprints of a seed kept in a snapshot.
    pub(super) fn with_seed(seed: [u64; 2]) -> Fingerprints {
        Fingerprints { seed }
    }

    /// The seed, for a snapshot.
    pub(super) fn seed(&self) -> [u64; 2] {
        self.seed
    }

    /// The fingerprint of `key`. The bytes alone are hashed (not `Hash for str`, whose form
    /// may change): fingerprints are stored.
    pub(super) fn of(&self, key: &str) -> u64 {
        let mut h = siphasher::sip::SipHasher13::new_with_keys(self.seed[0], self.seed[1]);
        h.write(key.as_bytes());
        h.finish()
    }
}

struct Entry<V> {
    key: u64,
    /// Toward the most recently used.
    prev: u32,
    /// Toward the least recently used.
    next: u32,
    value: V,
}

/// A bounded map in recency order, keyed by fingerprints (which are their own hash).
pub(super) struct Recency<V> {
    entries: Vec<Entry<V>>,
    index: HashTable<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    cap: usize,
}

impl<V> Recency<V> {
    /// An empty map holding at most `cap` entries (at least one). Nothing is allocated up
    /// front: a rule allowed a million groups that sees ten costs ten.
    pub(super) fn new(cap: usize) -> Recency<V> {
        Recency {
            entries: Vec::new(),
            index: HashTable::new(),
            head: NIL,
            tail: NIL,
            // Indices are u32 with one value reserved.
            cap: cap.clamp(1, (NIL - 1) as usize),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: u64) -> Option<u32> {
        self.index.find(key, |&i| self.entries[i as usize].key == key).copied()
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.find(key).is_some()
    }

    /// The value, without changing recency.
    pub(super) fn peek(&self, key: u64) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i as usize].value)
    }

    /// The least recently used entry, without changing recency.
    pub(super) fn peek_lru(&self) -> Option<(u64, &V)> {
        let e = self.entries.get(self.tail as usize)?;
        Some((e.key, &e.value))
    }

    /// The value under `key`, made by `make` if absent (evicting the least recently used
    /// entry when full), and made the most recently used.
    pub(super) fn get_or_insert_mut(&mut self, key: u64, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Some(i) => {
                self.make_recent(i);
                i
            }
            None => {
                if self.entries.len() >= self.cap {
                    self.pop_lru();
                }
                self.push_front(key, make())
            }
        };
        &mut self.entries[i as usize].value
    }

    /// Sets `key` to `value`, made the most recently used; the old value if there was one.
    /// When full and `key` is new, the least recently used entry goes first.
    pub(super) fn put(&mut self, key: u64, value: V) -> Option<V> {
        if let Some(i) = self.find(key) {
            self.make_recent(i);
            return Some(std::mem::replace(&mut self.entries[i as usize].value, value));
        }
        if self.entries.len() >= self.cap {
            self.pop_lru();
        }
        self.push_front(key, value);
        None
    }

    /// Removes `key`.
    pub(super) fn pop(&mut self, key: u64) -> Option<V> {
        let i = self.find(key)?;
        Some(self.remove_at(i).1)
    }

    /// Removes the least recently used entry.
    pub(super) fn pop_lru(&mut self) -> Option<(u64, V)> {
        if self.tail == NIL {
            return None;
        }
        Some(self.remove_at(self.tail))
    }

    /// Entries from the most recently used to the least (reversible).
    pub(super) fn iter(&self) -> Iter<'_, V> {
        Iter { map: self, front: self.head, back: self.tail, left: self.entries.len() }
    }

    fn push_front(&mut self, key: u64, value: V) -> u32 {
        let i = self.entries.len() as u32;
        if self.entries.len() == self.entries.capacity() {
            // Doubling, but never past the bound: a table allowed a million groups that
            // holds a million would otherwise reserve 1,048,576.
            let more = self.entries.len().max(4).min(self.cap - self.entries.len());
            self.entries.reserve_exact(more.max(1));
        }
        self.entries.push(Entry { key, prev: NIL, next: self.head, value });
        if self.head != NIL {
            self.entries[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
        let entries = &self.entries;
        self.index.insert_unique(key, i, |&j| entries[j as usize].key);
        i
    }

    /// Takes entry `i` out of the recency list (its links left stale).
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = &self.entries[i as usize];
            (e.prev, e.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.entries[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.entries[n as usize].prev = prev,
        }
    }

    fn make_recent(&mut self, i: u32) {
        if self.head == i {
            return;
        }
        self.unlink(i);
        let old = self.head;
        {
            let e = &mut self.entries[i as usize];
            e.prev = NIL;
            e.next = old;
        }
        if old != NIL {
            self.entries[old as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// Removes entry `i`, moving the last entry into its place.
    fn remove_at(&mut self, i: u32) -> (u64, V) {
        self.unlink(i);
        let h = self.entries[i as usize].key;
        if let Ok(slot) = self.index.find_entry(h, |&j| j == i) {
            slot.remove();
        }
        let last = (self.entries.len() - 1) as u32;
        let gone = self.entries.swap_remove(i as usize);
        if i != last {
            // The entry that was last is now at `i`: point its neighbours and its index there.
            let (prev, next) = {
                let e = &self.entries[i as usize];
                (e.prev, e.next)
            };
            match prev {
                NIL => self.head = i,
                p => self.entries[p as usize].next = i,
            }
            match next {
                NIL => self.tail = i,
                n => self.entries[n as usize].prev = i,
            }
            let h = self.entries[i as usize].key;
            if let Some(slot) = self.index.find_mut(h, |&j| j == last) {
                *slot = i;
            }
        }
        (gone.key, gone.value)
    }
}

/// Entries in recency order; see [`Recency::iter`].
pub(super) struct Iter<'a, V> {
    map: &'a Recency<V>,
    front: u32,
    back: u32,
    left: usize,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (u64, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let e = &self.map.entries[self.front as usize];
        self.front = e.next;
        self.left -= 1;
        Some((e.key, &e.value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let e = &self.map.entries[self.back as usize];
        self.back = e.prev;
        self.left -= 1;
        Some((e.key, &e.value))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn keys<V>(m: &Recency<V>) -> Vec<u64> {
        m.iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn recency_eviction_and_removal() {
        let mut m = Recency::new(3);
        for k in [1, 2, 3] {
            *m.get_or_insert_mut(k, || 0) += 1;
        }
        assert_eq!(keys(&m), [3, 2, 1]);
        *m.get_or_insert_mut(1, || 0) += 1;
        assert_eq!(keys(&m), [1, 3, 2]);
        m.get_or_insert_mut(4, || 0);
        assert_eq!(keys(&m), [4, 1, 3], "2 was least recent");
        assert_eq!(m.peek(1), Some(&2));
        assert_eq!(m.pop(1), Some(2));
        assert_eq!(keys(&m), [4, 3]);
        assert_eq!(m.iter().rev().map(|(k, _)| k).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(m.put(3, 7), Some(1));
        assert_eq!(keys(&m), [3, 4]);
        assert_eq!(m.pop_lru(), Some((4, 0)));
        assert_eq!(m.pop_lru(), Some((3, 7)));
        assert!(m.is_empty() && m.pop_lru().is_none() && m.peek_lru().is_none());
    }

    #[test]
    fn a_full_table_holds_exactly_its_bound() {
        let mut m = Recency::new(1000);
        for k in 0..5000u64 {
            m.put(k, ());
        }
        assert_eq!((m.len(), m.entries.capacity()), (1000, 1000));
    }

    #[test]
    fn fingerprints_depend_on_the_key_and_the_seed_and_nothing_else() {
        let a = Fingerprints::with_seed([1, 2]);
        assert_eq!(a.of("10.0.0.1"), Fingerprints::with_seed([1, 2]).of("10.0.0.1"));
        assert_ne!(a.of("10.0.0.1"), a.of("10.0.0.2"));
        assert_ne!(a.of("10.0.0.1"), Fingerprints::with_seed([1, 3]).of("10.0.0.1"));
        // Stored in snapshots: the value for a seed must never change.
        assert_eq!(Fingerprints::with_seed([0, 0]).of(""), 0xd1fba762150c532c);
        assert_ne!(Fingerprints::random().seed(), Fingerprints::random().seed());
    }

    /// One operation of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        Touch(u64),
        Put(u64, u32),
        Pop(u64),
        PopLru,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..24).prop_map(Op::Touch),
            (0u64..24, any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u64..24).prop_map(Op::Pop),
            Just(Op::PopLru),
        ]
    }

    proptest! {
        /// Against `lru::LruCache`, which the group tables used before: same answers, same
        /// order, forwards and backwards, after any sequence of operations.
        #[test]
        fn behaves_as_lru_cache(cap in 1usize..12, ops in proptest::collection::vec(op(), 0..300)) {
            let mut ours: Recency<u32> = Recency::new(cap);
            let mut theirs: lru::LruCache<u64, u32> =
                lru::LruCache::new(std::num::NonZeroUsize::new(cap).unwrap());
            for op in ops {
                match op {
                    Op::Touch(k) => {
                        *ours.get_or_insert_mut(k, || 1) += 1;
                        *theirs.get_or_insert_mut(k, || 1) += 1;
                    }
                    Op::Put(k, v) => prop_assert_eq!(ours.put(k, v), theirs.put(k, v)),
                    Op::Pop(k) => prop_assert_eq!(ours.pop(k), theirs.pop(&k)),
                    Op::PopLru => prop_assert_eq!(ours.pop_lru(), theirs.pop_lru()),
                }
                let a: Vec<(u64, u32)> = ours.iter().map(|(k, v)| (k, *v)).collect();
                let b: Vec<(u64, u32)> = theirs.iter().map(|(k, v)| (*k, *v)).collect();
                prop_assert_eq!(&a, &b);
                let ar: Vec<u64> = ours.iter().rev().map(|(k, _)| k).collect();
                let br: Vec<u64> = theirs.iter().rev().map(|(k, _)| *k).collect();
                prop_assert_eq!(ar, br);
                prop_assert_eq!(ours.len(), theirs.len());
                for k in 0u64..24 {
                    prop_assert_eq!(ours.peek(k), theirs.peek(&k));
                    prop_assert_eq!(ours.contains(k), theirs.contains(&k));
                }
                prop_assert_eq!(ours.peek_lru().map(|(k, v)| (k, *v)), theirs.peek_lru().map(|(k, v)| (*k, *v)));
            }
        }
    }
}
