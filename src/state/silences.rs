//! Silences set through the API, kept so that a restart does not unmute what an operator
//! muted (config silences live in the config and are not stored here).

use std::path::PathBuf;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{StateError, db_error};

const SILENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("silences");

/// A silence as the API takes and shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRecord {
    /// Stable id (generated when the API caller gives none).
    #[serde(default)]
    pub id: String,
    /// What it silences: `severity`, `rules`, `tags`, `labels` as in logwarden.yml.
    #[serde(rename = "match")]
    pub matcher: MatchRecord,
    /// RFC 3339 start (default: now).
    #[serde(default)]
    pub starts: Option<String>,
    /// RFC 3339 end (required).
    pub ends: String,
    /// Who set it.
    #[serde(default)]
    pub created_by: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// Set anyway though it matches every alert or lasts over the API's limit; kept with the
    /// silence so that a listing shows it was forced.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// The matcher part of a [`SilenceRecord`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchRecord {
    /// `>= high`, `critical`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Rule ids, any of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Tags, any of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Alert field -> value, all of.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The `silences` table.
#[derive(Clone, Debug)]
pub struct SilenceStore {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
}

impl SilenceStore {
    /// The store in `db` (creating its table).
    pub fn new(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<SilenceStore, StateError> {
        let s = SilenceStore { db, path };
        {
            let err = db_error(&s.path);
            let txn = s.db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(SILENCES).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        Ok(s)
    }

    /// Every stored silence, by id.
    pub fn all(&self) -> Result<Vec<SilenceRecord>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(SILENCES).map_err(|e| err(e.into()))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = entry.map_err(|e| err(e.into()))?;
            let r = serde_json::from_slice(v.value()).map_err(|e| StateError::Decode {
                path: self.path.clone(),
                table: "silences",
                key: k.value().to_owned(),
                detail: e.to_string(),
            })?;
            out.push(r);
        }
        Ok(out)
    }

    /// Stores (or replaces) `r`, durably before returning.
    pub fn put(&self, r: &SilenceRecord) -> Result<(), StateError> {
        let err = db_error(&self.path);
        let bytes = serde_json::to_vec(r).map_err(|e| StateError::Decode {
            path: self.path.clone(),
            table: "silences",
            key: r.id.clone(),
            detail: e.to_string(),
        })?;
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut t = txn.open_table(SILENCES).map_err(|e| err(e.into()))?;
            t.insert(r.id.as_str(), bytes.as_slice()).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))
    }

    /// Removes the silence `id`; what it was (for the record of who ended what), `None` when
    /// it was not there. A record that no longer decodes is removed all the same and
    /// returned as its id alone.
    pub fn remove(&self, id: &str) -> Result<Option<SilenceRecord>, StateError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let was = {
            let mut t = txn.open_table(SILENCES).map_err(|e| err(e.into()))?;
            let old = t.remove(id).map_err(|e| err(e.into()))?;
            old.map(|v| {
                serde_json::from_slice(v.value()).unwrap_or_else(|_| SilenceRecord {
                    id: id.to_owned(),
                    matcher: MatchRecord::default(),
                    starts: None,
                    ends: String::new(),
                    created_by: String::new(),
                    comment: String::new(),
                    force: false,
                })
            })
        };
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(was)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn silences_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let r = SilenceRecord {
            id: "maint".into(),
            matcher: MatchRecord { rules: vec!["ssh-bruteforce".into()], ..Default::default() },
            starts: None,
            ends: "2030-01-01T00:00:00Z".into(),
            created_by: "ops".into(),
            comment: "window".into(),
            force: false,
        };
        {
            let s = SilenceStore::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
            s.put(&r).unwrap();
        }
        let s = SilenceStore::new(super::super::open(&path).unwrap(), path.clone()).unwrap();
        assert_eq!(s.all().unwrap(), std::slice::from_ref(&r));
        assert_eq!(s.remove("maint").unwrap(), Some(r));
        assert_eq!(s.remove("maint").unwrap(), None);
        assert!(s.all().unwrap().is_empty());
    }
}
