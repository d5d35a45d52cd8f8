//! The scan store, in the state database: per application and build stage, the last scan
//! (when, from which files, and what it found: findings, components, VEX statements). An
//! ingest replaces the stage's last scan whole, in one transaction: a report that does not
//! read stores nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::parse::scan::{Report, ScanError, ScanFormat};
use crate::state::{StateError, db_error};

/// (application, stage) -> the stage's last scan, as JSON (see [`Scan`]).
const SCANS: JsonTable = TableDefinition::new("scans");

/// Why the scan store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A report did not read; nothing was stored.
    #[error(transparent)]
    Report(#[from] ScanError),
    /// A report could not be opened.
    #[error("{file}: {source}", file = file.display())]
    Io {
        /// The report.
        file: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The state database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A stored scan does not decode (written by a newer version, or damaged).
    #[error("state database: scan of `{app}` stage `{stage}` does not decode: {detail}")]
    Decode {
        /// The application.
        app: String,
        /// The stage.
        stage: String,
        /// Why.
        detail: String,
    },
    /// An application or stage name that cannot be stored.
    #[error("{what} must be 1 to 200 printable characters, got `{value}`")]
    Name {
        /// `application` or `stage`.
        what: &'static str,
        /// The name given.
        value: String,
    },
}

/// One application stage's last scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scan {
    /// The application.
    pub app: String,
    /// The build stage (`build`, `release`, ...).
    pub stage: String,
    /// When it was ingested, RFC 3339.
    pub scanned_at: String,
    /// The report files, as given.
    pub files: Vec<String>,
    /// Their formats, in the same order.
    pub formats: Vec<ScanFormat>,
    /// What they found, merged.
    pub report: Report,
}

/// The `scans` table.
#[derive(Clone, Debug)]
pub struct ScanStore {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
}

impl ScanStore {
    /// The store in `db` (creating its table); `path` names the file in errors.
    pub fn new(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<ScanStore, StoreError> {
        {
            let err = db_error(&path);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(SCANS).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        Ok(ScanStore { db, path })
    }

    /// Opens the state database at `path` and the store in it.
    pub fn open(path: &Path) -> Result<ScanStore, StoreError> {
        ScanStore::new(crate::state::open(path)?, path.to_path_buf())
    }

    /// Reads `files` (every one, before anything is stored) and stores them, merged, as the
    /// last scan of `app` at `stage`, replacing the one before.
    pub fn ingest(
        &self,
        app: &str,
        stage: &str,
        files: &[PathBuf],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Scan, StoreError> {
        let scan = ScanStore::read(app, stage, files, now)?;
        self.put(&scan)?;
        Ok(scan)
    }

    /// Reads `files` into the scan of `app` at `stage` they make, storing nothing (see
    /// [`ScanStore::put_in`] to store it with other writes).
    pub fn read(
        app: &str,
        stage: &str,
        files: &[PathBuf],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Scan, StoreError> {
        check_name("application", app)?;
        check_name("stage", stage)?;
        let mut reports = Vec::with_capacity(files.len());
        let mut formats = Vec::with_capacity(files.len());
        for file in files {
            let bytes = std::fs::read(file)
                .map_err(|source| StoreError::Io { file: file.clone(), source })?;
            let (format, report) = crate::parse::scan::read(file, &bytes)?;
            formats.push(format);
            reports.push(report);
        }
        let scan = Scan {
            app: app.to_owned(),
            stage: stage.to_owned(),
            scanned_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            files: files.iter().map(|f| f.display().to_string()).collect(),
            formats,
            report: crate::parse::scan::merge(reports),
        };
        Ok(scan)
    }

    /// Stores `scan` as its stage's last inside `txn` (the caller commits).
    pub fn put_in(txn: &redb::WriteTransaction, scan: &Scan) -> Result<(), redb::Error> {
        // A scan is plain data: encoding cannot fail short of memory.
        let bytes = serde_json::to_vec(scan).unwrap_or_default();
        let mut t = txn.open_table(SCANS)?;
        t.insert((scan.app.as_str(), scan.stage.as_str()), bytes.as_slice())?;
        Ok(())
    }

    /// Stores `scan` as its stage's last.
    pub fn put(&self, scan: &Scan) -> Result<(), StoreError> {
        put_json(&self.db, &self.path, SCANS, (&scan.app, &scan.stage), scan)
    }

    /// Every stored scan, by application then stage; of `app` only when given.
    pub fn list(&self, app: Option<&str>) -> Result<Vec<Scan>, StoreError> {
        rows_json(&self.db, &self.path, SCANS, app, "")
    }
}

/// A table keyed by (application, second part) holding JSON rows: scans, waivers.
pub(super) type JsonTable = TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;

/// Writes `value` as JSON under `key` of `table`, in a transaction of its own.
pub(super) fn put_json<T: Serialize>(
    db: &crate::state::StateDb,
    path: &Path,
    table: JsonTable,
    key: (&str, &str),
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Decode {
        app: key.0.to_owned(),
        stage: key.1.to_owned(),
        detail: e.to_string(),
    })?;
    let err = db_error(path);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    {
        let mut t = txn.open_table(table).map_err(|e| err(e.into()))?;
        t.insert(key, bytes.as_slice()).map_err(|e| err(e.into()))?;
    }
    txn.commit().map_err(|e| err(e.into()))?;
    Ok(())
}

/// Every row of `table` (of application `app` only, when given), decoded, in key order;
/// `what` prefixes the second key part in errors (`waiver CVE-...`).
pub(super) fn rows_json<T: serde::de::DeserializeOwned>(
    db: &crate::state::StateDb,
    path: &Path,
    table: JsonTable,
    app: Option<&str>,
    what: &str,
) -> Result<Vec<T>, StoreError> {
    let err = db_error(path);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let t = txn.open_table(table).map_err(|e| err(e.into()))?;
    let mut out = Vec::new();
    for entry in t.iter().map_err(|e| err(e.into()))? {
        let (k, v) = entry.map_err(|e| err(e.into()))?;
        let (a, second) = k.value();
        if app.is_some_and(|want| want != a) {
            continue;
        }
        let row = serde_json::from_slice(v.value()).map_err(|e| StoreError::Decode {
            app: a.to_owned(),
            stage: format!("{what}{second}"),
            detail: e.to_string(),
        })?;
        out.push(row);
    }
    Ok(out)
}

/// Names are keys and column values: no control characters, a sane length.
pub fn check_name(what: &'static str, value: &str) -> Result<(), StoreError> {
    let ok = !value.is_empty() && value.len() <= 200 && !value.chars().any(char::is_control);
    if ok { Ok(()) } else { Err(StoreError::Name { what, value: value.to_owned() }) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn corpus(rel: &str) -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/scanners")).join(rel)
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc()
    }

    #[test]
    fn an_ingest_replaces_the_stage_and_keeps_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let s = ScanStore::open(&dir.path().join("s.redb")).unwrap();
        let grype = corpus("grype/TestJsonImgsPresenter.golden.json");
        let scan = s.ingest("shop", "build", std::slice::from_ref(&grype), now()).unwrap();
        assert_eq!(scan.report.findings.len(), 2);
        assert_eq!(scan.formats, [ScanFormat::Grype]);
        s.ingest("shop", "release", std::slice::from_ref(&grype), now()).unwrap();
        s.ingest("blog", "build", std::slice::from_ref(&grype), now()).unwrap();
        let all = s.list(None).unwrap();
        let keys: Vec<_> = all.iter().map(|s| (s.app.as_str(), s.stage.as_str())).collect();
        assert_eq!(keys, [("blog", "build"), ("shop", "build"), ("shop", "release")]);
        assert_eq!(s.list(Some("shop")).unwrap().len(), 2);
        assert_eq!(all[1], scan, "read back as stored");
        assert_eq!(all[1].scanned_at, "2026-12-03T10:00:00Z");
    }

    #[test]
    fn a_bad_report_among_good_ones_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, br#"{"matches": [{"vulnerability": {"id": 5}}], "descriptor": {}}"#)
            .unwrap();
        let s = ScanStore::open(&dir.path().join("s.redb")).unwrap();
        let good = corpus("grype/TestJsonImgsPresenter.golden.json");
        let err = s.ingest("shop", "build", &[good, bad.clone()], now()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: matches[0].vulnerability.id: ", bad.display())),
            "{text}"
        );
        assert!(s.list(None).unwrap().is_empty());
        let missing =
            s.ingest("shop", "build", &[dir.path().join("nope.json")], now()).unwrap_err();
        assert!(matches!(missing, StoreError::Io { .. }), "{missing}");
        assert!(matches!(s.ingest("", "build", &[], now()), Err(StoreError::Name { .. })));
    }

    #[test]
    fn a_row_that_does_not_decode_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let s = ScanStore::open(&path).unwrap();
        put_json(&s.db, &path, SCANS, ("shop", "build"), &serde_json::json!({"x": 1})).unwrap();
        let err = s.list(None).unwrap_err().to_string();
        assert!(
            err.starts_with("state database: scan of `shop` stage `build` does not decode: "),
            "{err}"
        );
        assert!(s.list(Some("blog")).unwrap().is_empty(), "other applications still read");
    }
}
