//! File checkpoints: how far each tailed file has been read *and processed*. The daemon
//! commits a position only after the events before it went through detection and their
//! alerts into the outbox, so a restart resumes there: no line is lost, none is read twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{StateError, db_error};
use crate::source::Checkpoint;

/// key -> (offset, path the file had when the offset was reached).
const CHECKPOINTS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("checkpoints");
/// name -> the state that consumed the lines up to the committed positions.
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");

/// The `checkpoints` table.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    db: Arc<Database>,
    path: PathBuf,
}

impl Checkpoints {
    /// The store in `db` (creating its table).
    pub fn new(db: Arc<Database>, path: PathBuf) -> Result<Checkpoints, StateError> {
        let s = Checkpoints { db, path };
        {
            let err = db_error(&s.path);
            let txn = s.db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(CHECKPOINTS).map_err(|e| err(e.into()))?;
            txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
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
        for c in positions {
            let path = c.path.to_string_lossy();
            t.insert(c.key.as_str(), (c.offset, path.as_ref()))?;
        }
        let mut s = txn.open_table(SNAPSHOTS)?;
        if let Some(prefix) = clear {
            let stale: Vec<String> = s
                .range(prefix..)?
                .map_while(|e| e.ok().map(|(k, _)| k.value().to_owned()))
                .take_while(|k| k.starts_with(prefix))
                .collect();
            for k in stale {
                s.remove(k.as_str())?;
            }
        }
        for (name, bytes) in snapshots {
            s.insert(*name, *bytes)?;
        }
        Ok(())
    }

    /// Stored snapshots whose name starts with `prefix`, in name order.
    pub fn snapshots_with_prefix(&self, prefix: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for e in table.range(prefix..).map_err(|e| err(e.into()))? {
            let (k, v) = e.map_err(|e| err(e.into()))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push(v.value().to_vec());
        }
        Ok(out)
    }

    /// A stored snapshot by name.
    pub fn snapshot(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        let v = table.get(name).map_err(|e| err(e.into()))?;
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
            for c in positions {
                let path = c.path.to_string_lossy();
                t.insert(c.key.as_str(), (c.offset, path.as_ref())).map_err(|e| err(e.into()))?;
            }
        }
        txn.commit().map_err(|e| err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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
}
