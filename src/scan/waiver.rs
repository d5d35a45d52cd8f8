//! Waivers: `scan waive --app --vuln --until --reason` keeps one vulnerability of one
//! application quiet until a date, recorded with who set it and why. A waived violation is
//! neither notified nor resolved; once the waiver ends it is notified again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::store::{JsonTable, StoreError, check_name, put_json, rows_json};
use crate::state::db_error;

/// (application, vulnerability id as given) -> the waiver, as JSON.
const WAIVERS: JsonTable = TableDefinition::new("scan_waivers");

/// One waiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Waiver {
    /// The application.
    pub app: String,
    /// The vulnerability id (any of its aliases works).
    pub vuln: String,
    /// When it ends, RFC 3339 UTC (exclusive).
    pub until: String,
    /// Why.
    pub reason: String,
    /// Who set it.
    pub by: String,
    /// When it was set, RFC 3339 UTC.
    pub created: String,
}

impl Waiver {
    /// Whether it waives a vulnerability known by `ids` in `app` at `now`.
    pub fn covers(&self, app: &str, ids: &[String], now: DateTime<Utc>) -> bool {
        self.app == app
            && ids.iter().any(|i| i.eq_ignore_ascii_case(&self.vuln))
            && self.ends().is_some_and(|end| now < end)
    }

    /// When it ends (`None` if the stored text does not read: it then waives nothing).
    pub fn ends(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(&self.until).ok().map(|t| t.to_utc())
    }
}

/// Reads `--until`: a date (`2026-12-31`, the waiver ends as that day starts, UTC) or an
/// RFC 3339 time.
pub fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.to_utc())
        .map_err(|_| format!("`{text}` is not a date (2026-12-31) or an RFC 3339 time"))
}

/// The `scan_waivers` table.
#[derive(Clone, Debug)]
pub struct WaiverStore {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
}

impl WaiverStore {
    /// The table in `db` (created if missing); `path` names the file in errors.
    pub fn new(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<WaiverStore, StoreError> {
        {
            let err = db_error(&path);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(WAIVERS).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        Ok(WaiverStore { db, path })
    }

    /// Stores `w`, replacing a waiver of the same application and vulnerability.
    pub fn put(&self, w: &Waiver) -> Result<(), StoreError> {
        check_name("application", &w.app)?;
        check_name("vulnerability", &w.vuln)?;
        put_json(&self.db, &self.path, WAIVERS, (&w.app, &w.vuln), w)
    }

    /// Every waiver (of `app` only, when given), expired ones included, by application.
    pub fn list(&self, app: Option<&str>) -> Result<Vec<Waiver>, StoreError> {
        rows_json(&self.db, &self.path, WAIVERS, app, "waiver ")
    }
}

/// Opens the waivers in the state database at `path`.
pub fn open(path: &Path) -> Result<WaiverStore, StoreError> {
    WaiverStore::new(crate::state::open(path)?, path.to_path_buf())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_waiver_covers_any_alias_until_its_end() {
        let until = parse_until("2026-12-04").unwrap();
        assert_eq!(until.to_rfc3339(), "2026-12-04T00:00:00+00:00");
        assert!(parse_until("tomorrow").unwrap_err().contains("`tomorrow`"));
        let w = Waiver {
            app: "shop".into(),
            vuln: "ghsa-xxxx".into(),
            until: until.to_rfc3339(),
            reason: "no fix yet".into(),
            by: "alice".into(),
            created: "2026-12-03T10:00:00Z".into(),
        };
        let ids = vec!["CVE-2024-1".to_owned(), "GHSA-xxxx".to_owned()];
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        assert!(w.covers("shop", &ids, t("2026-12-03T23:59:59Z")));
        assert!(!w.covers("shop", &ids, t("2026-12-04T00:00:00Z")), "ended");
        assert!(!w.covers("blog", &ids, t("2026-12-03T10:00:00Z")), "other app");
        assert!(!w.covers("shop", &["CVE-2024-2".into()], t("2026-12-03T10:00:00Z")));

        let dir = tempfile::tempdir().unwrap();
        let s = open(&dir.path().join("s.redb")).unwrap();
        s.put(&w).unwrap();
        s.put(&Waiver { reason: "still no fix".into(), ..w.clone() }).unwrap();
        let all = s.list(None).unwrap();
        assert_eq!(all.len(), 1, "one waiver per app and id");
        assert_eq!(all[0].reason, "still no fix");
        assert!(s.list(Some("blog")).unwrap().is_empty());
    }
}
