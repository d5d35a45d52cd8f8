//! The snapshot form every behaviour shares: its group table (groups in recency order, with the
//! table's own counters and sweep clock) and its counters, around each behaviour's own group
//! record (see [`crate::snapshot`] for the header and the encoding).
//!
//! A full snapshot's body, version 2, as one postcard tuple:
//! 1. the table: evicted, expired, observations since the last sweep, previous event time,
//!    and the seed of its keys' fingerprints (see `recency::Fingerprints`);
//! 2. the counters `[late, ungrouped, skipped, behaviour-specific]`;
//! 3. a behaviour-specific value (`()` for most);
//! 4. the groups, least recently seen first, each `(key's fingerprint, record)`;
//! 5. the file paths the records number (see [`PathIds`]).
//!
//! A change set (header kind: the full snapshot's, upper case) is the same with, before the
//! groups, the fingerprints of the groups dropped since the table's last mark, and as groups
//! only those touched since, least recently seen first. Applied to any state taken at or after that mark
//! (a full snapshot, or one with earlier change sets applied), it gives the state it was taken
//! from: the dropped keys go, the touched groups are put in order (each becoming the most
//! recently seen, as touching it did), and untouched groups keep their order behind them.
//! When there is no mark, or too much changed, the change set is a full snapshot instead.
//!
//! Everything that decides future behaviour is kept: recency (which group is evicted next and
//! where the sweep stops), the sweep's countdown and clock, and each group's whole state, so
//! a restored detector alerts exactly as the one it was taken from would have.
//!
//! Version 1 (before fingerprints) had no seed and the keys themselves; it is still read, its
//! keys fingerprinted as they are loaded.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::recency::Fingerprints;
use super::{GroupState, GroupTable, PathId, SWEEP_EVERY, Slot, Tracked, Trail};
use crate::event::Timestamp;
use crate::snapshot::{Bytes, Format, PathIds, PathList, Paths, SnapshotError};

/// A group state that can be written to and read from a snapshot.
pub(super) trait GroupRecord: GroupState + Sized {
    /// The form written: borrowed from the state, so a snapshot copies nothing first.
    type Out<'a>: Serialize
    where
        Self: 'a;
    /// The form read.
    type In: DeserializeOwned;
    /// The record of this group; file paths are numbered by `paths`.
    fn out<'a>(&'a self, paths: &'a PathIds) -> Self::Out<'a>;
    /// The group from its record.
    fn from_in(r: Self::In, paths: &Paths) -> Result<Self, SnapshotError>;
}

/// A behaviour's two snapshot headers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Formats {
    /// The whole state.
    pub full: Format,
    /// What changed since a mark.
    pub changes: Format,
}

impl Formats {
    /// The headers of behaviour `what`: kind byte `tag` for full snapshots, its upper case for
    /// change sets.
    pub const fn new(what: &'static str, tag: u8, version: u8) -> Formats {
        Formats {
            full: Format { what, tag, version },
            changes: Format { what, tag: tag.to_ascii_uppercase(), version },
        }
    }
}

/// The table's own counters and sweep state, and its fingerprints' seed.
#[derive(Serialize, Deserialize)]
struct Table {
    evicted: u64,
    expired: u64,
    since_sweep: u32,
    previous: Timestamp,
    seed: [u64; 2],
}

impl Table {
    fn of<V>(t: &GroupTable<V>) -> Table {
        Table {
            evicted: t.evicted,
            expired: t.expired,
            since_sweep: t.since_sweep,
            previous: t.previous,
            seed: t.fingerprints.seed(),
        }
    }
}

/// [`Table`] as version 1 wrote it.
#[derive(Deserialize)]
struct TableV1 {
    evicted: u64,
    expired: u64,
    since_sweep: u32,
    previous: Timestamp,
}

/// Every group, least recently seen first (restored by inserting in this order).
struct AllGroups<'a, V> {
    table: &'a GroupTable<V>,
    paths: &'a PathIds,
}

impl<V: GroupRecord> Serialize for AllGroups<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let groups = self.table.map.iter().rev();
        s.collect_seq(groups.map(|(k, slot)| (k, slot.v.out(self.paths))))
    }
}

/// Some groups, in the order given.
struct SomeGroups<'a, V> {
    groups: &'a [(u64, &'a Slot<V>)],
    paths: &'a PathIds,
}

impl<V: GroupRecord> Serialize for SomeGroups<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let groups = self.groups.iter();
        s.collect_seq(groups.map(|(k, slot)| (*k, slot.v.out(self.paths))))
    }
}

/// Appends a detector's full snapshot: its table, its counters and `extra`.
pub(super) fn write<V: GroupRecord, E: Serialize>(
    formats: Formats,
    table: &GroupTable<V>,
    counters: [u64; 4],
    extra: &E,
    out: &mut impl Bytes,
) -> Result<(), SnapshotError> {
    let paths = PathIds::default();
    // The path table goes last: the groups number the paths as they are written.
    let groups = AllGroups { table, paths: &paths };
    let body = (Table::of(table), counters, extra, groups, PathList(&paths));
    formats.full.write(&body, out)
}

/// Appends what changed since the table's last mark (see the module docs); a full snapshot
/// when it was never marked, when its list of dropped keys overflowed, or when more than half
/// the groups changed (a full snapshot is then about as small, and quicker to restore).
pub(super) fn write_changes<V: GroupRecord, E: Serialize>(
    formats: Formats,
    table: &GroupTable<V>,
    counters: [u64; 4],
    extra: &E,
    out: &mut impl Bytes,
) -> Result<(), SnapshotError> {
    if !table.tracking {
        return write(formats, table, counters, extra, out);
    }
    // The touched groups are the most recently seen ones (see `GroupTable`).
    let mut changed: Vec<(u64, &Slot<V>)> =
        table.map.iter().take_while(|(_, slot)| slot.epoch == table.epoch).collect();
    if changed.len() > table.map.len() / 2 {
        return write(formats, table, counters, extra, out);
    }
    changed.reverse();
    let paths = PathIds::default();
    let groups = SomeGroups { groups: &changed, paths: &paths };
    let body = (Table::of(table), counters, extra, &table.dropped, groups, PathList(&paths));
    formats.changes.write(&body, out)
}

type Full<I, E> = (Table, [u64; 4], E, Vec<(u64, I)>, Vec<String>);
type Changes<I, E> = (Table, [u64; 4], E, Vec<u64>, Vec<(u64, I)>, Vec<String>);
type FullV1<'a, I, E> = (TableV1, [u64; 4], E, Vec<(&'a str, I)>, Vec<String>);
type ChangesV1<'a, I, E> = (TableV1, [u64; 4], E, Vec<&'a str>, Vec<(&'a str, I)>, Vec<String>);

/// Decodes a snapshot or change set of the current version, or of version 1 with its keys
/// fingerprinted by `fingerprints` (whose seed it then carries).
fn decode<'a, I: DeserializeOwned, E: Deserialize<'a>>(
    formats: Formats,
    bytes: &'a [u8],
    is_changes: bool,
    fingerprints: Fingerprints,
) -> Result<Changes<I, E>, SnapshotError> {
    if bytes.get(3) != Some(&1) {
        return if is_changes {
            formats.changes.read(bytes)
        } else {
            let (meta, counters, e, groups, paths): Full<I, E> = formats.full.read(bytes)?;
            Ok((meta, counters, e, Vec::new(), groups, paths))
        };
    }
    let v1 = |f: crate::snapshot::Format| crate::snapshot::Format { version: 1, ..f };
    let (meta, counters, e, dropped, groups, paths): ChangesV1<'a, I, E> = if is_changes {
        v1(formats.changes).read(bytes)?
    } else {
        let (meta, counters, e, groups, paths): FullV1<'a, I, E> = v1(formats.full).read(bytes)?;
        (meta, counters, e, Vec::new(), groups, paths)
    };
    let meta = Table {
        evicted: meta.evicted,
        expired: meta.expired,
        since_sweep: meta.since_sweep,
        previous: meta.previous,
        seed: fingerprints.seed(),
    };
    let dropped = dropped.into_iter().map(|k| fingerprints.of(k)).collect();
    let groups = groups.into_iter().map(|(k, r)| (fingerprints.of(k), r)).collect();
    Ok((meta, counters, e, dropped, groups, paths))
}

/// Reads a full snapshot into `table` (replacing it) or, with `changes`, a change set too
/// (applied to it). `check` refuses a group the behaviour cannot take (one that breaks an
/// invariant its code relies on); `extra` refuses a behaviour-specific value. All or
/// nothing: on error `table` is unchanged. Either way the table is left unmarked.
pub(super) fn load<'a, V: GroupRecord, E: Deserialize<'a>>(
    formats: Formats,
    table: &mut GroupTable<V>,
    bytes: &'a [u8],
    changes: bool,
    check: impl Fn(&V) -> Result<(), String>,
    extra: impl Fn(&E) -> Result<(), SnapshotError>,
) -> Result<[u64; 4], SnapshotError> {
    let what = formats.full.what;
    let is_changes = changes && bytes.get(2) == Some(&formats.changes.tag);
    // A change set applies to the state it was taken from, fingerprinted alike; a version 1
    // full snapshot starts a new seed.
    let fingerprints = if is_changes { table.fingerprints } else { Fingerprints::random() };
    let (meta, counters, e, dropped, groups, paths): Changes<V::In, E> =
        decode(formats, bytes, is_changes, fingerprints)?;
    extra(&e)?;
    if meta.since_sweep > SWEEP_EVERY {
        return Err(SnapshotError::invalid(what, "sweep countdown out of range"));
    }
    if is_changes && meta.seed != table.fingerprints.seed() {
        return Err(SnapshotError::invalid(what, "a change set of another state"));
    }
    let paths = Paths::new(what, paths);
    let too_many = |n: usize, max: usize| {
        SnapshotError::invalid(what, format!("{n} groups, and the rule keeps at most {max}"))
    };
    let twice = |key: u64| SnapshotError::invalid(what, format!("group {key:016x} twice"));
    let group = |key: u64, record| {
        let v = V::from_in(record, &paths)?;
        check(&v).map_err(|e| SnapshotError::invalid(what, format!("group {key:016x}: {e}")))?;
        Ok::<V, SnapshotError>(v)
    };
    if is_changes {
        // Everything checked before the table changes.
        let mut keys = HashSet::with_capacity(groups.len());
        let mut records = Vec::with_capacity(groups.len());
        for (key, record) in groups {
            if !keys.insert(key) {
                return Err(twice(key));
            }
            records.push((key, group(key, record)?));
        }
        let dropped: HashSet<u64> = dropped.into_iter().collect();
        let kept = table.len() - dropped.iter().filter(|&&k| table.map.contains(k)).count();
        let new = records.iter().filter(|(k, _)| dropped.contains(k) || !table.map.contains(*k));
        let size = kept + new.count();
        if size > table.max {
            return Err(too_many(size, table.max));
        }
        for key in dropped {
            table.map.pop(key);
        }
        for (key, v) in records {
            // Epoch 0: restored, not changed since the (next) mark.
            table.map.put(key, Slot { epoch: 0, v });
        }
    } else {
        // Built aside and swapped in, so a failure leaves the table as it was.
        if groups.len() > table.max {
            return Err(too_many(groups.len(), table.max));
        }
        let mut fresh = GroupTable::new(table.max);
        fresh.fingerprints = Fingerprints::with_seed(meta.seed);
        for (key, record) in groups {
            let v = group(key, record)?;
            if fresh.map.put(key, Slot { epoch: 0, v }).is_some() {
                return Err(twice(key));
            }
        }
        *table = fresh;
    }
    table.evicted = meta.evicted;
    table.expired = meta.expired;
    table.since_sweep = meta.since_sweep;
    table.previous = meta.previous;
    table.tracking = false;
    table.dropped = Vec::new();
    Ok(counters)
}

/// A kept event as written: time, path number, offset, tag.
type EntryIn<T> = (Timestamp, u32, Option<u64>, T);

/// A trail as written: the judged time, then the entries.
pub(super) struct TrailOut<'a, T> {
    trail: &'a Trail<T>,
    paths: &'a PathIds,
}

impl<T: Serialize> Serialize for TrailOut<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let paths = self.paths;
        let entries = Entries { entries: &self.trail.entries, paths };
        (self.trail.judged, entries).serialize(s)
    }
}

struct Entries<'a, T> {
    entries: &'a [Tracked<T>],
    paths: &'a PathIds,
}

impl<T: Serialize> Serialize for Entries<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.entries.iter().map(|e| (e.ts, self.paths.id_of(e.path), e.offset(), &e.tag)),
        )
    }
}

impl<T: Serialize + DeserializeOwned> GroupRecord for Trail<T> {
    type Out<'a>
        = TrailOut<'a, T>
    where
        T: 'a;
    type In = (Timestamp, Vec<EntryIn<T>>);

    fn out<'a>(&'a self, paths: &'a PathIds) -> TrailOut<'a, T> {
        TrailOut { trail: self, paths }
    }

    fn from_in((judged, entries): Self::In, paths: &Paths) -> Result<Self, SnapshotError> {
        let mut trail = Trail { entries: Default::default(), judged };
        trail.entries.reserve_exact(entries.len());
        for (ts, path, offset, tag) in entries {
            // Entries are in time order: `insert` and the window arithmetic rely on it.
            if trail.entries.last().is_some_and(|l| l.ts > ts) {
                return Err(SnapshotError::invalid(paths.what(), "kept events out of time order"));
            }
            let path = PathId::of(paths.get(path)?.as_ref());
            trail.entries.push(Tracked::from_parts(ts, path, offset, tag));
        }
        Ok(trail)
    }
}

/// Checks for the behaviours' tests.
#[cfg(test)]
pub(super) mod check {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::{Detector, Fired};
    use crate::event::Event;

    /// Feeds `events` (each with its step mask) to a detector from `make`, and again with a
    /// snapshot taken after each prefix and restored into a fresh detector from `make`, which
    /// takes the rest: every run must fire exactly what the uninterrupted one does, end with
    /// the same counters, and a restored detector must snapshot to the very bytes it was
    /// restored from (same groups, same recency order, same counters).
    pub fn resumes_identically(make: impl Fn() -> Box<dyn Detector>, events: &[(Event, u64)]) {
        resumes_identically_at(make, events, 0..=events.len());
    }

    /// [`resumes_identically`] with a snapshot after the given prefixes only.
    pub fn resumes_identically_at(
        make: impl Fn() -> Box<dyn Detector>,
        events: &[(Event, u64)],
        cuts: impl IntoIterator<Item = usize>,
    ) {
        let mut whole = make();
        let mut want = Vec::new();
        for (e, steps) in events {
            whole.observe(e, *steps, &mut want);
        }
        assert!(!want.is_empty(), "the events must fire something to compare");
        for cut in cuts {
            let mut first = make();
            let mut got: Vec<Fired> = Vec::new();
            for (e, steps) in &events[..cut] {
                first.observe(e, *steps, &mut got);
            }
            let mut bytes = Vec::new();
            first.snapshot(&mut bytes).unwrap();
            let mut second = make();
            second.restore(&bytes).unwrap();
            let mut again = Vec::new();
            second.snapshot(&mut again).unwrap();
            assert_eq!(again, bytes, "restored state differs, cut at {cut}");
            assert_eq!(second.stats(), first.stats(), "cut at {cut}");
            for (e, steps) in &events[cut..] {
                second.observe(e, *steps, &mut got);
            }
            assert_eq!(got, want, "cut at {cut}");
            assert_eq!(second.stats(), whole.stats(), "cut at {cut}");
        }
    }

    /// Feeds `events` to a detector from `make` that writes a full snapshot after `base`
    /// events and marks, then a change set and a mark after every `every` events more, one of
    /// them (the second) lost before its mark as a failed write would be. A fresh detector that
    /// restores the base and applies the change sets written after marks must end in the very
    /// state of the first (byte for byte), and fire as it does from there. Returns whether any
    /// change set was smaller than a full snapshot (so that path was taken).
    pub fn changes_resume_identically(
        make: &impl Fn() -> Box<dyn Detector>,
        events: &[(Event, u64)],
        base: usize,
        every: usize,
    ) -> bool {
        let mut first = make();
        let mut fired = Vec::new();
        for (e, steps) in &events[..base] {
            first.observe(e, *steps, &mut fired);
        }
        let mut base_bytes = Vec::new();
        first.snapshot(&mut base_bytes).unwrap();
        first.mark();
        let mut changes = Vec::new();
        let mut any_partial = false;
        let mut at = base;
        while at < events.len() {
            let to = (at + every).min(events.len());
            for (e, steps) in &events[at..to] {
                first.observe(e, *steps, &mut fired);
            }
            let mut c = Vec::new();
            first.snapshot_changes(&mut c).unwrap();
            any_partial |= c[2].is_ascii_uppercase();
            // The second change set is "lost": no mark, and not applied; the next covers it.
            if changes.len() != 1 || to == events.len() {
                first.mark();
                changes.push(c);
            } else {
                changes.push(Vec::new());
            }
            at = to;
        }
        let mut second = make();
        second.restore(&base_bytes).unwrap();
        for c in changes.iter().filter(|c| !c.is_empty()) {
            second.apply_changes(c).unwrap();
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        first.snapshot(&mut a).unwrap();
        second.snapshot(&mut b).unwrap();
        assert_eq!(a, b, "base after {base}, change sets every {every}");
        assert_eq!(first.stats(), second.stats());
        // And from there on both fire alike: the whole list once more, later.
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        for (e, steps) in events {
            first.observe(e, *steps, &mut fa);
            second.observe(e, *steps, &mut fb);
        }
        assert_eq!(fa, fb);
        any_partial
    }

    /// [`changes_resume_identically`] for every base and a few spacings; some change set must
    /// have been a partial one.
    pub fn changes_resume_identically_everywhere(
        make: impl Fn() -> Box<dyn Detector>,
        events: &[(Event, u64)],
    ) {
        let mut partial = false;
        for base in 0..events.len() {
            for every in [1, 3, 7] {
                partial |= changes_resume_identically(&make, events, base, every);
            }
        }
        assert!(partial, "no change set was smaller than a full snapshot");
    }

    /// Damaged snapshots: every truncation and many single-byte changes of a real snapshot,
    /// restored into a fresh detector, are an error or a state the detector can go on from;
    /// never a panic, and on error the detector is left as it was.
    pub fn survives_damage(make: impl Fn() -> Box<dyn Detector>, events: &[(Event, u64)]) {
        let mut d = make();
        let mut sink = Vec::new();
        for (e, steps) in events {
            d.observe(e, *steps, &mut sink);
        }
        let mut bytes = Vec::new();
        d.snapshot(&mut bytes).unwrap();
        let try_one = |damaged: &[u8]| {
            let mut r = make();
            let mut fresh = Vec::new();
            r.snapshot(&mut fresh).unwrap();
            match r.restore(damaged) {
                Ok(()) => {
                    // Whatever it took must be usable.
                    for (e, steps) in events {
                        r.observe(e, *steps, &mut Vec::new());
                    }
                }
                Err(_) => {
                    let mut now = Vec::new();
                    r.snapshot(&mut now).unwrap();
                    assert_eq!(now, fresh, "a failed restore changed the state");
                }
            }
        };
        each_damaged(&bytes, try_one);
        proptest::proptest!(|(junk in proptest::collection::vec(proptest::num::u8::ANY, 0..256))| {
            try_one(&junk);
            let mut headed = bytes[..4].to_vec();
            headed.extend_from_slice(&junk);
            try_one(&headed);
        });

        // Change sets: half the events, a base, the rest, a change set; damaged change sets
        // applied to the restored base are errors that leave it as it was, or usable states.
        let half = events.len() / 2;
        let mut d = make();
        for (e, steps) in &events[..half] {
            d.observe(e, *steps, &mut sink);
        }
        let mut base = Vec::new();
        d.snapshot(&mut base).unwrap();
        d.mark();
        for (e, steps) in &events[half..] {
            d.observe(e, *steps, &mut sink);
        }
        let mut changes = Vec::new();
        d.snapshot_changes(&mut changes).unwrap();
        let try_changes = |damaged: &[u8]| {
            let mut r = make();
            r.restore(&base).unwrap();
            match r.apply_changes(damaged) {
                Ok(()) => {
                    for (e, steps) in events {
                        r.observe(e, *steps, &mut Vec::new());
                    }
                }
                Err(_) => {
                    let mut now = Vec::new();
                    r.snapshot(&mut now).unwrap();
                    assert_eq!(now, base, "a failed apply changed the state");
                }
            }
        };
        each_damaged(&changes, try_changes);
    }

    /// Calls `f` with every truncation of `bytes` and every copy with one byte flipped (three
    /// ways).
    fn each_damaged(bytes: &[u8], f: impl Fn(&[u8])) {
        for len in 0..bytes.len() {
            f(&bytes[..len]);
        }
        for i in 0..bytes.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut damaged = bytes.to_vec();
                damaged[i] ^= x;
                f(&damaged);
            }
        }
    }
}
