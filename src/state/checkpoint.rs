//! File checkpoints: how far each tailed file has been read *and processed*. The daemon
//! commits a position only after the events before it went through detection and their
//! alerts into the outbox, so a restart resumes there: no line is lost, none is read twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};

use super::{StateError, db_error};
use crate::snapshot::Spill;
use crate::source::Checkpoint;

/// key -> (offset, path the file had when the offset was reached).
const CHECKPOINTS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("checkpoints");
/// path -> the key last committed under it: of the files a path has held, the one it held
/// last, which is the one a rotation while logwarden was stopped can have left unread (the
/// checkpoints of the files before it stay in `checkpoints`, read to their end).
const HEADS: TableDefinition<&str, &str> = TableDefinition::new("checkpoint_heads");
/// (name, part) -> the state that consumed the lines up to the committed positions, in
/// parts: redb keeps a value whole in one page, and a whole state of a million groups is tens
/// of MB, so writing it as one value made redb hold it (rounded up to a power of two) beside
/// the caller's copy, and replacing it read the old one back in: four times the state at once.
const SNAPSHOT_PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("snapshot_parts");
/// Bytes in one part: within a 256 KiB page with the key and the page's header.
const PART: usize = 255 << 10;
/// name -> a whole snapshot, as versions before [`SNAPSHOT_PARTS`] wrote them: read while no
/// newer state is written, emptied by the first write.
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// The `checkpoints` table.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
}

impl Checkpoints {
    /// The store in `db` (creating its table).
    pub fn new(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<Checkpoints, StateError> {
        let s = Checkpoints { db, path };
        {
            let err = db_error(&s.path);
            let txn = s.db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(CHECKPOINTS).map_err(|e| err(e.into()))?;
            txn.open_table(HEADS).map_err(|e| err(e.into()))?;
            txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
            txn.open_table(SNAPSHOT_PARTS).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        Ok(s)
    }

    /// Every committed position, by file key.
    pub fn all(&self) -> Result<HashMap<String, u64>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(CHECKPOINTS).map_err(|e| err(e.into()))?;
        let mut out = HashMap::new();
        for entry in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = entry.map_err(|e| err(e.into()))?;
            out.insert(k.value().to_owned(), v.value().0);
        }
        Ok(out)
    }

    /// The path each committed position was reached under, by file key; and, by path, the
    /// key committed under it last (see [`HEADS`]; empty for a state file older than it).
    #[allow(clippy::type_complexity)]
    pub fn history(
        &self,
    ) -> Result<(HashMap<String, PathBuf>, HashMap<PathBuf, String>), StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(CHECKPOINTS).map_err(|e| err(e.into()))?;
        let mut paths = HashMap::new();
        for entry in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = entry.map_err(|e| err(e.into()))?;
            paths.insert(k.value().to_owned(), PathBuf::from(v.value().1));
        }
        let mut heads = HashMap::new();
        // A state file written before the table existed has none, which a read transaction
        // cannot create: no heads, and the tail falls back to every checkpoint of a path.
        if let Ok(table) = txn.open_table(HEADS) {
            for entry in table.iter().map_err(|e| err(e.into()))? {
                let (k, v) = entry.map_err(|e| err(e.into()))?;
                heads.insert(PathBuf::from(k.value()), v.value().to_owned());
            }
        }
        Ok((paths, heads))
    }

    /// Writes `positions` and `snapshots` (name -> bytes: the detector and router state that
    /// consumed the lines up to those positions) into `txn`, which the caller commits.
    /// Snapshots whose name starts with `clear` are removed first (the change sets a new base
    /// replaces).
    pub fn write_in<'a>(
        txn: &redb::WriteTransaction,
        positions: impl IntoIterator<Item = &'a Checkpoint>,
        snapshots: &[(&str, &[u8])],
        clear: Option<&str>,
    ) -> Result<(), redb::Error> {
        let mut t = txn.open_table(CHECKPOINTS)?;
        let mut heads = txn.open_table(HEADS)?;
        for c in positions {
            let path = c.path.to_string_lossy();
            t.insert(c.key.as_str(), (c.offset, path.as_ref()))?;
            heads.insert(path.as_ref(), c.key.as_str())?;
        }
        let mut legacy = txn.open_table(SNAPSHOTS)?;
        let mut parts = txn.open_table(SNAPSHOT_PARTS)?;
        if let Some(prefix) = clear {
            remove_names(&mut legacy, &mut parts, |n| n.starts_with(prefix), (prefix, 0))?;
        }
        for (name, bytes) in snapshots {
            remove_names(&mut legacy, &mut parts, |n| n == *name, (name, 0))?;
            // An empty snapshot still has its one (empty) part: stored, not absent.
            for (i, part) in
                bytes.chunks(PART).chain(bytes.is_empty().then_some(&[][..])).enumerate()
            {
                parts.insert((*name, i as u32), part)?;
            }
        }
        Ok(())
    }

    /// Writes the snapshot `name` into `txn` as `make` produces it, a part at a time (255 KiB
    /// each): `make` hands its bytes to the [`Spill`] it is given, in parts of the size
    /// it is given, and returns its length. Replaces what was stored under `name`.
    pub fn stream_in(
        txn: &redb::WriteTransaction,
        name: &str,
        make: impl FnOnce(&mut dyn Spill, usize) -> Result<usize, String>,
    ) -> Result<usize, redb::Error> {
        let mut legacy = txn.open_table(SNAPSHOTS)?;
        let mut parts = txn.open_table(SNAPSHOT_PARTS)?;
        remove_names(&mut legacy, &mut parts, |n| n == name, (name, 0))?;
        let mut w = PartWriter { parts, name, next: 0, error: None };
        let made = make(&mut w, PART);
        if let Some(e) = w.error {
            return Err(e);
        }
        if w.next == 0 {
            // Nothing written: stored empty, not absent.
            w.parts.insert((name, 0), &[][..])?;
        }
        made.map_err(|e| redb::Error::Io(std::io::Error::other(e)))
    }

    /// Stored snapshots whose name starts with `prefix`, in name order.
    pub fn snapshots_with_prefix(&self, prefix: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let legacy = txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        // Older than any in parts: the first write after an upgrade removes them all.
        for e in legacy.range(prefix..).map_err(|e| err(e.into()))? {
            let (k, v) = e.map_err(|e| err(e.into()))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(v.value().to_vec());
        }
        let parts = txn.open_table(SNAPSHOT_PARTS).map_err(|e| err(e.into()))?;
        let mut name: Option<String> = None;
        for e in parts.range((prefix, 0)..).map_err(|e| err(e.into()))? {
            let (k, v) = e.map_err(|e| err(e.into()))?;
            let (n, _) = k.value();
            if !n.starts_with(prefix) {
                break;
            }
            match (&name, out.last_mut()) {
                (Some(current), Some(bytes)) if current == n => bytes.extend_from_slice(v.value()),
                _ => {
                    name = Some(n.to_owned());
                    out.push(v.value().to_vec());
                }
            }
        }
        Ok(out)
    }

    /// A stored snapshot by name.
    pub fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let parts = txn.open_table(SNAPSHOT_PARTS).map_err(|e| err(e.into()))?;
        let mut out: Option<Vec<u8>> = None;
        for e in parts.range((name, 0)..=(name, u32::MAX)).map_err(|e| err(e.into()))? {
            let (_, v) = e.map_err(|e| err(e.into()))?;
            out.get_or_insert_with(Vec::new).extend_from_slice(v.value());
        }
        if out.is_some() {
            return Ok(out);
        }
        let legacy = txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        let v = legacy.get(name).map_err(|e| err(e.into()))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Commits `positions` in one durable transaction.
    pub fn commit<'a>(
        &self,
        positions: impl IntoIterator<Item = &'a Checkpoint>,
    ) -> Result<(), StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut t = txn.open_table(CHECKPOINTS).map_err(|e| err(e.into()))?;
            let mut heads = txn.open_table(HEADS).map_err(|e| err(e.into()))?;
            for c in positions {
                let path = c.path.to_string_lossy();
                t.insert(c.key.as_str(), (c.offset, path.as_ref())).map_err(|e| err(e.into()))?;
                heads.insert(path.as_ref(), c.key.as_str()).map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))
    }
}

/// Parts of one snapshot as [`Checkpoints::stream_in`] writes them.
struct PartWriter<'t, 'n> {
    parts: redb::Table<'t, (&'static str, u32), &'static [u8]>,
    name: &'n str,
    next: u32,
    /// The first storage error, kept typed for the caller.
    error: Option<redb::Error>,
}

impl PartWriter<'_, '_> {
    fn fail(&mut self, e: impl Into<redb::Error>) -> String {
        let e = e.into();
        let text = e.to_string();
        self.error.get_or_insert(e);
        text
    }
}

impl Spill for PartWriter<'_, '_> {
    fn write(&mut self, part: &[u8]) -> Result<(), String> {
        let key = (self.name, self.next);
        let r = self.parts.insert(key, part).map(drop);
        r.map_err(|e| self.fail(e))?;
        self.next += 1;
        Ok(())
    }

    fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<(), String> {
        // Every part read and patched first: a patch past the end changes nothing.
        let mut patched = Vec::new();
        let mut done = 0;
        while done < bytes.len() {
            let pos = at + done;
            let (i, off) = ((pos / PART) as u32, pos % PART);
            let got = self.parts.get((self.name, i)).map(|g| g.map(|v| v.value().to_vec()));
            let mut part = got.map_err(|e| self.fail(e))?.unwrap_or_default();
            let n = part.len().saturating_sub(off).min(bytes.len() - done);
            if n == 0 {
                return Err(format!("byte {pos} of `{}` is not written", self.name));
            }
            part[off..off + n].copy_from_slice(&bytes[done..done + n]);
            patched.push((i, part));
            done += n;
        }
        for (i, part) in patched {
            let r = self.parts.insert((self.name, i), part.as_slice()).map(drop);
            r.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }
}

/// Removes the snapshots whose name passes `pick`, from both tables; their parts are found
/// from `from` on, in name order.
fn remove_names(
    legacy: &mut redb::Table<&str, &[u8]>,
    parts: &mut redb::Table<(&str, u32), &[u8]>,
    pick: impl Fn(&str) -> bool,
    from: (&str, u32),
) -> Result<(), redb::Error> {
    let stale: Vec<String> = legacy
        .range(from.0..)?
        .map_while(|e| e.ok().map(|(k, _)| k.value().to_owned()))
        .take_while(|k| pick(k))
        .collect();
    for k in stale {
        legacy.remove(k.as_str())?;
    }
    let stale: Vec<(String, u32)> = parts
        .range(from..)?
        .map_while(|e| e.ok().map(|(k, _)| (k.value().0.to_owned(), k.value().1)))
        .take_while(|(n, _)| pick(n))
        .collect();
    for (n, i) in stale {
        parts.remove((n.as_str(), i))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::path::Path;

    use super::*;

    #[test]
    fn committed_positions_survive_reopening_and_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let c =
            |key: &str, offset| Checkpoint { key: key.into(), path: "/var/log/x".into(), offset };
        {
            let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
            s.commit(&[c("a", 10), c("b", 5)]).unwrap();
            s.commit(&[c("a", 20)]).unwrap();
        }
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        let all = s.all().unwrap();
        assert_eq!((all["a"], all["b"], all.len()), (20, 5, 2));
    }

    #[test]
    fn each_path_remembers_the_key_committed_under_it_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let c = |key: &str, at: &str| Checkpoint { key: key.into(), path: at.into(), offset: 1 };
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        // auth.log rotated while running: the old file's last lines and the new file's first
        // ones committed in turn, the new one last.
        s.commit(&[c("old", "/var/log/auth.log")]).unwrap();
        s.commit(&[c("new", "/var/log/auth.log"), c("x", "/var/log/x")]).unwrap();
        let txn = s.db.begin_write().unwrap();
        Checkpoints::write_in(&txn, &[c("x2", "/var/log/x")], &[], None).unwrap();
        txn.commit().unwrap();
        let (paths, heads) = s.history().unwrap();
        assert_eq!(paths["old"], Path::new("/var/log/auth.log"));
        assert_eq!(paths.len(), 4);
        assert_eq!(heads[Path::new("/var/log/auth.log")], "new");
        assert_eq!(heads[Path::new("/var/log/x")], "x2");
    }

    fn write(s: &Checkpoints, snapshots: &[(&str, &[u8])], clear: Option<&str>) {
        let txn = s.db.begin_write().unwrap();
        Checkpoints::write_in(&txn, &[], snapshots, clear).unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn snapshots_larger_than_a_part_round_trip_and_a_smaller_one_replaces_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        let big: Vec<u8> = (0..PART * 3 + 17).map(|i| (i * 7 % 251) as u8).collect();
        write(&s, &[("engine", &big), ("router", b"r1")], None);
        assert_eq!(s.snapshot("engine").unwrap().unwrap(), big);
        assert_eq!(s.snapshot("router").unwrap().unwrap(), b"r1");
        write(&s, &[("engine", b"small")], None);
        assert_eq!(s.snapshot("engine").unwrap().unwrap(), b"small");
        write(&s, &[("engine", b"")], None);
        assert_eq!(s.snapshot("engine").unwrap(), Some(Vec::new()));
        assert_eq!(s.snapshot("absent").unwrap(), None);
        assert_eq!(s.snapshot("router").unwrap().unwrap(), b"r1");
    }

    #[test]
    fn change_sets_come_back_in_name_order_and_a_new_base_clears_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        let big = vec![9u8; PART + 1];
        write(&s, &[("engine", b"base"), ("engine-changes.2", b"two")], None);
        write(&s, &[("engine-changes.1", &big), ("engine-changes.3", b"three")], None);
        let changes = s.snapshots_with_prefix("engine-changes.").unwrap();
        assert_eq!(changes, [big.clone(), b"two".to_vec(), b"three".to_vec()]);
        write(&s, &[("engine", b"base2")], Some("engine-changes."));
        assert!(s.snapshots_with_prefix("engine-changes.").unwrap().is_empty());
        assert_eq!(s.snapshot("engine").unwrap().unwrap(), b"base2");
    }

    #[test]
    fn snapshots_stored_whole_by_an_older_version_are_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        {
            let txn = s.db.begin_write().unwrap();
            let mut t = txn.open_table(SNAPSHOTS).unwrap();
            t.insert("engine", &b"old base"[..]).unwrap();
            t.insert("engine-changes.1", &b"old change"[..]).unwrap();
            drop(t);
            txn.commit().unwrap();
        }
        assert_eq!(s.snapshot("engine").unwrap().unwrap(), b"old base");
        assert_eq!(s.snapshots_with_prefix("engine-changes.").unwrap(), [b"old change".to_vec()]);
        write(&s, &[("engine", b"new base")], Some("engine-changes."));
        assert_eq!(s.snapshot("engine").unwrap().unwrap(), b"new base");
        assert!(s.snapshots_with_prefix("engine-changes.").unwrap().is_empty());
        let txn = s.db.begin_read().unwrap();
        assert!(
            redb::ReadableTableMetadata::is_empty(&txn.open_table(SNAPSHOTS).unwrap()).unwrap()
        );
    }

    #[test]
    fn a_streamed_snapshot_is_stored_in_parts_with_its_patches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = Checkpoints::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        write(&s, &[("engine", &vec![1u8; PART * 4])], None);
        let mut want: Vec<u8> = (0..PART * 2 + 100).map(|i| (i % 253) as u8).collect();
        let txn = s.db.begin_write().unwrap();
        let len = Checkpoints::stream_in(&txn, "engine", |spill, part| {
            for chunk in want.chunks(part) {
                spill.write(chunk)?;
            }
            // Across the first boundary, and in the last part.
            spill.patch(PART - 3, &[9; 6])?;
            spill.patch(PART * 2 + 50, &[7; 2])?;
            assert!(spill.patch(PART * 2 + 99, &[0; 2]).is_err(), "past the end");
            Ok(want.len())
        })
        .unwrap();
        txn.commit().unwrap();
        want[PART - 3..PART + 3].fill(9);
        want[PART * 2 + 50..PART * 2 + 52].fill(7);
        assert_eq!(len, want.len());
        let got = s.snapshot("engine").unwrap().unwrap();
        assert!(got == want, "old parts gone, patches in");
        let txn = s.db.begin_write().unwrap();
        let err = Checkpoints::stream_in(&txn, "engine", |_, _| Err("cannot encode".into()));
        assert!(err.unwrap_err().to_string().contains("cannot encode"));
    }
}
