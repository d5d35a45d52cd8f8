//! The group tables' map: keys to values in recency order, bounded, evicting the least
//! recently used. The part of `lru::LruCache` the tables use, laid out for a million groups:
//! the entries live in one vector linked by `u32` indices (no allocation per entry, 8 bytes of
//! links instead of 16 plus the allocator's header), and the hash index holds `u32`s (4 bytes
//! a bucket instead of 16). At a million groups this is about 45 MB less than `LruCache`.
//!
//! Removing an entry moves the last one into its place (the vector stays dense, so iteration
//! and snapshots never skip holes); the moved entry's links and index are updated.

use compact_str::CompactString;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// No entry.
const NIL: u32 = u32::MAX;

struct Entry<V> {
    key: CompactString,
    /// Toward the most recently used.
    prev: u32,
    /// Toward the least recently used.
    next: u32,
    value: V,
}

/// A bounded map in recency order.
pub(super) struct Recency<V> {
    entries: Vec<Entry<V>>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
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
            hasher: foldhash::fast::RandomState::default(),
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

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &str) -> Option<u32> {
        let h = self.hash(key);
        self.index.find(h, |&i| self.entries[i as usize].key == key).copied()
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.find(key).is_some()
    }

    /// The value, without changing recency.
    pub(super) fn peek(&self, key: &str) -> Option<&V> {
        self.find(key).map(|i| &self.entries[i as usize].value)
    }

    /// The least recently used entry, without changing recency.
    pub(super) fn peek_lru(&self) -> Option<(&CompactString, &V)> {
        let e = self.entries.get(self.tail as usize)?;
        Some((&e.key, &e.value))
    }

    /// The value under `key`, made by `make` if absent (evicting the least recently used
    /// entry when full), and made the most recently used.
    pub(super) fn get_or_insert_mut(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(key) {
            Some(i) => {
                self.make_recent(i);
                i
            }
            None => {
                if self.entries.len() >= self.cap {
                    self.pop_lru();
                }
                self.push_front(CompactString::from(key), make())
            }
        };
        &mut self.entries[i as usize].value
    }

    /// Sets `key` to `value`, made the most recently used; the old value if there was one.
    /// When full and `key` is new, the least recently used entry goes first.
    pub(super) fn put(&mut self, key: &str, value: V) -> Option<V> {
        if let Some(i) = self.find(key) {
            self.make_recent(i);
            return Some(std::mem::replace(&mut self.entries[i as usize].value, value));
        }
        if self.entries.len() >= self.cap {
            self.pop_lru();
        }
        self.push_front(CompactString::from(key), value);
        None
    }

    /// Removes `key`.
    pub(super) fn pop(&mut self, key: &str) -> Option<V> {
        let i = self.find(key)?;
        Some(self.remove_at(i).1)
    }

    /// Removes the least recently used entry.
    pub(super) fn pop_lru(&mut self) -> Option<(CompactString, V)> {
        if self.tail == NIL {
            return None;
        }
        Some(self.remove_at(self.tail))
    }

    /// Entries from the most recently used to the least (reversible).
    pub(super) fn iter(&self) -> Iter<'_, V> {
        Iter { map: self, front: self.head, back: self.tail, left: self.entries.len() }
    }

    fn push_front(&mut self, key: CompactString, value: V) -> u32 {
        let i = self.entries.len() as u32;
        let h = self.hash(&key);
        self.entries.push(Entry { key, prev: NIL, next: self.head, value });
        if self.head != NIL {
            self.entries[self.head as usize].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(h, i, |&j| hasher.hash_one(entries[j as usize].key.as_str()));
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
    fn remove_at(&mut self, i: u32) -> (CompactString, V) {
        self.unlink(i);
        let h = self.hash(&self.entries[i as usize].key);
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
            let h = self.hash(&self.entries[i as usize].key);
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
    type Item = (&'a CompactString, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let e = &self.map.entries[self.front as usize];
        self.front = e.next;
        self.left -= 1;
        Some((&e.key, &e.value))
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
        Some((&e.key, &e.value))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn keys<V>(m: &Recency<V>) -> Vec<String> {
        m.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn recency_eviction_and_removal() {
        let mut m = Recency::new(3);
        for k in ["a", "b", "c"] {
            *m.get_or_insert_mut(k, || 0) += 1;
        }
        assert_eq!(keys(&m), ["c", "b", "a"]);
        *m.get_or_insert_mut("a", || 0) += 1;
        assert_eq!(keys(&m), ["a", "c", "b"]);
        m.get_or_insert_mut("d", || 0);
        assert_eq!(keys(&m), ["d", "a", "c"], "b was least recent");
        assert_eq!(m.peek("a"), Some(&2));
        assert_eq!(m.pop("a"), Some(2));
        assert_eq!(keys(&m), ["d", "c"]);
        assert_eq!(m.iter().rev().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["c", "d"]);
        assert_eq!(m.put("c", 7), Some(1));
        assert_eq!(keys(&m), ["c", "d"]);
        assert_eq!(m.pop_lru().map(|(k, v)| (k.to_string(), v)), Some(("d".into(), 0)));
        assert_eq!(m.pop_lru().map(|(k, v)| (k.to_string(), v)), Some(("c".into(), 7)));
        assert!(m.is_empty() && m.pop_lru().is_none() && m.peek_lru().is_none());
    }

    /// One operation of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        Touch(u8),
        Put(u8, u32),
        Pop(u8),
        PopLru,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..24).prop_map(Op::Touch),
            (0u8..24, any::<u32>()).prop_map(|(k, v)| Op::Put(k, v)),
            (0u8..24).prop_map(Op::Pop),
            Just(Op::PopLru),
        ]
    }

    proptest! {
        /// Against `lru::LruCache`, which the group tables used before: same answers, same
        /// order, forwards and backwards, after any sequence of operations.
        #[test]
        fn behaves_as_lru_cache(cap in 1usize..12, ops in proptest::collection::vec(op(), 0..300)) {
            let mut ours: Recency<u32> = Recency::new(cap);
            let mut theirs: lru::LruCache<String, u32> =
                lru::LruCache::new(std::num::NonZeroUsize::new(cap).unwrap());
            for op in ops {
                match op {
                    Op::Touch(k) => {
                        let k = k.to_string();
                        *ours.get_or_insert_mut(&k, || 1) += 1;
                        *theirs.get_or_insert_mut(k, || 1) += 1;
                    }
                    Op::Put(k, v) => {
                        let k = k.to_string();
                        prop_assert_eq!(ours.put(&k, v), theirs.put(k, v));
                    }
                    Op::Pop(k) => {
                        let k = k.to_string();
                        prop_assert_eq!(ours.pop(&k), theirs.pop(&k));
                    }
                    Op::PopLru => {
                        let a = ours.pop_lru().map(|(k, v)| (k.to_string(), v));
                        prop_assert_eq!(a, theirs.pop_lru());
                    }
                }
                let a: Vec<(String, u32)> = ours.iter().map(|(k, v)| (k.to_string(), *v)).collect();
                let b: Vec<(String, u32)> = theirs.iter().map(|(k, v)| (k.clone(), *v)).collect();
                prop_assert_eq!(&a, &b);
                let ar: Vec<String> = ours.iter().rev().map(|(k, _)| k.to_string()).collect();
                let br: Vec<String> = theirs.iter().rev().map(|(k, _)| k.clone()).collect();
                prop_assert_eq!(ar, br);
                prop_assert_eq!(ours.len(), theirs.len());
                for k in 0u8..24 {
                    let k = k.to_string();
                    prop_assert_eq!(ours.peek(&k), theirs.peek(&k));
                    prop_assert_eq!(ours.contains(&k), theirs.contains(&k));
                }
                prop_assert_eq!(
                    ours.peek_lru().map(|(k, v)| (k.to_string(), *v)),
                    theirs.peek_lru().map(|(k, v)| (k.clone(), *v))
                );
            }
        }
    }
}
