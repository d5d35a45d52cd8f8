//! What has been notified: per (application, stage, policy, component, vulnerability), the
//! details last told and whether the violation is open, waived, resolved or withdrawn. An
//! evaluation compares its violations with these records and notifies only what is new, what
//! changed (severity, CVSS, fixed versions, licenses), what went away (resolved, or the
//! advisory withdrawn) and what a waiver stopped covering. The new records are written in the
//! same transaction as the notifications' outbox entries, so a crash between the two cannot
//! notify twice or lose one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::store::StoreError;
use super::violation::{Details, Violation};
use super::waiver::Waiver;
use crate::state::db_error;

/// (application, stage, policy, package, vulnerability id) -> [`Record`] as JSON.
const NOTIFIED: TableDefinition<(&str, &str, &str, &str, &str), &[u8]> =
    TableDefinition::new("scan_notified");
/// The same key -> the document the policy judged last, as JSON text. Apart from the records
/// so that the daily comparison reads a few small fields per violation, not whole documents;
/// only a resolved notice reads it back.
const SUBJECTS: TableDefinition<(&str, &str, &str, &str, &str), &[u8]> =
    TableDefinition::new("scan_notified_subject");

/// A violation's key: application, stage, policy, package (the purl without its version),
/// vulnerability id ("" for a component policy). An upgrade that leaves the package
/// vulnerable is the same violation, not a resolved one and a new one.
pub type Key = (String, String, String, String, String);

/// The key of `v`.
pub fn key_of(v: &Violation) -> Key {
    (v.app.clone(), v.stage.clone(), v.policy.clone(), package_of(&v.purl).to_owned(), v.id.clone())
}

/// A purl without its version (qualifiers and subpath go with it): `pkg:npm/a@1?x=y` ->
/// `pkg:npm/a`. Canonical purls percent-encode `@` elsewhere, so the last one starts it.
pub fn package_of(purl: &str) -> &str {
    let end = purl.find(['?', '#']).unwrap_or(purl.len());
    let head = &purl[..end];
    // Only after the last `/`: an unencoded scope (`pkg:npm/@babel/core`) is not a version.
    let name_at = head.rfind('/').map_or(0, |i| i + 1);
    match head[name_at..].rfind('@') {
        Some(i) => &head[..name_at + i],
        None => head,
    }
}

/// Where a violation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Notified and still present.
    Open,
    /// Present, under a waiver: not notified.
    Waived,
    /// Gone from the application (the component upgraded or removed).
    Resolved,
    /// Gone because its advisory was withdrawn.
    Withdrawn,
}

/// What was last recorded of a violation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Where it stands.
    pub status: Status,
    /// The details last notified (or seen, while waived).
    pub details: Details,
    /// Notifications made about it so far.
    pub revision: u32,
    /// When it was first notified, RFC 3339 (empty while never notified).
    pub first_notified: String,
    /// When it was last notified, RFC 3339.
    pub last_notified: String,
    /// The component's purl, version included, as last judged.
    pub purl: String,
    /// The vulnerability's ids (to tell a withdrawn advisory once the finding is gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

/// Why a violation is notified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Not notified before (or back after it was resolved, or after its waiver ended).
    New,
    /// Notified before; its details changed.
    Updated,
    /// Notified before; it is gone.
    Resolved,
    /// Notified before; its advisory was withdrawn.
    Withdrawn,
}

impl Change {
    /// The word used in titles and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Updated => "updated",
            Change::Resolved => "resolved",
            Change::Withdrawn => "withdrawn",
        }
    }
}

/// One notification to make.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The violation.
    pub key: Key,
    /// Why.
    pub change: Change,
    /// For an update: which details changed.
    pub changed: Vec<&'static str>,
    /// The details before (updates).
    pub previous: Option<Details>,
    /// The record after it (its revision numbers the notification).
    pub record: Record,
    /// The document the policy judged (JSON text).
    pub subject: Arc<str>,
}

/// A current violation as `scan list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Will be notified as new.
    New,
    /// Will be notified as changed.
    Updated,
    /// Notified, unchanged.
    Notified,
    /// Under a waiver.
    Waived,
}

/// What an evaluation would do: notices to send and records to write.
#[derive(Debug, Default)]
pub struct Plan {
    /// Notifications, in violation order, then the resolved ones.
    pub notices: Vec<Notice>,
    /// Records to write with them (waived violations' too), with the judged document when
    /// it is new.
    pub writes: Vec<(Key, Record, Option<Arc<str>>)>,
    /// The current violations and where each stands.
    pub current: Vec<(Violation, Standing)>,
    /// Violations present, notified before, unchanged: not notified again.
    pub quiet: u64,
}

/// The `scan_notified` table.
#[derive(Clone, Debug)]
pub struct Notified {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
}

impl Notified {
    /// The table in `db` (created if missing); `path` names the file in errors.
    pub fn new(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<Notified, StoreError> {
        {
            let err = db_error(&path);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            txn.open_table(NOTIFIED).map_err(|e| err(e.into()))?;
            txn.open_table(SUBJECTS).map_err(|e| err(e.into()))?;
            txn.commit().map_err(|e| err(e.into()))?;
        }
        Ok(Notified { db, path })
    }

    /// Every record of `app` at `stage`.
    pub fn stage(&self, app: &str, stage: &str) -> Result<BTreeMap<Key, Record>, StoreError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let t = txn.open_table(NOTIFIED).map_err(|e| err(e.into()))?;
        let mut out = BTreeMap::new();
        let lo = (app, stage, "", "", "");
        for entry in t.range(lo..).map_err(|e| err(e.into()))? {
            let (k, v) = entry.map_err(|e| err(e.into()))?;
            let (a, s, p, purl, id) = k.value();
            if a != app || s != stage {
                break;
            }
            let r: Record = serde_json::from_slice(v.value()).map_err(|e| StoreError::Decode {
                app: a.to_owned(),
                stage: s.to_owned(),
                detail: format!("notified {p} {purl} {id}: {e}"),
            })?;
            out.insert((a.into(), s.into(), p.into(), purl.into(), id.into()), r);
        }
        Ok(out)
    }

    /// The document last judged for `key`.
    pub fn subject(&self, key: &Key) -> Result<Option<Arc<str>>, StoreError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let t = txn.open_table(SUBJECTS).map_err(|e| err(e.into()))?;
        let (a, s, p, purl, id) = key;
        let got = t
            .get((a.as_str(), s.as_str(), p.as_str(), purl.as_str(), id.as_str()))
            .map_err(|e| err(e.into()))?;
        Ok(got.map(|v| Arc::from(String::from_utf8_lossy(v.value()).as_ref())))
    }

    /// Writes `writes` inside `txn` (the caller commits, with its outbox entries).
    pub fn record(
        txn: &redb::WriteTransaction,
        writes: &[(Key, Record, Option<Arc<str>>)],
    ) -> Result<(), redb::Error> {
        let mut t = txn.open_table(NOTIFIED)?;
        let mut subjects = txn.open_table(SUBJECTS)?;
        for ((a, s, p, purl, id), r, subject) in writes {
            let k = (a.as_str(), s.as_str(), p.as_str(), purl.as_str(), id.as_str());
            // A record is plain data: encoding cannot fail short of memory.
            let bytes = serde_json::to_vec(r).unwrap_or_default();
            t.insert(k, bytes.as_slice())?;
            if let Some(text) = subject {
                subjects.insert(k, text.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Writes `writes` in a transaction of their own.
    pub fn commit(&self, writes: &[(Key, Record, Option<Arc<str>>)]) -> Result<(), StoreError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        Notified::record(&txn, writes).map_err(&err)?;
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(())
    }
}

/// What planning asks of the world beyond the records.
pub struct Lookups<'a> {
    /// Whether a vulnerability known by these ids was withdrawn.
    pub withdrawn: &'a dyn Fn(&[String]) -> bool,
    /// The whole document of a current violation.
    pub document: &'a dyn Fn(&Violation) -> Arc<str>,
    /// The document last judged for a violation that is gone.
    pub subject: &'a dyn Fn(&Key) -> Option<Arc<str>>,
    /// Whether violations that are gone may be resolved (not when the advisory directory
    /// came back empty: emptied or not synced yet, it would resolve everything it gave).
    pub resolve: bool,
}

/// Compares one stage's `current` violations with its `records` and adds to `plan` what to
/// notify and record. Only records of `policies` are judged (a policy left out of this
/// evaluation, as unmonitored ones are on the schedule, keeps its records as they are).
pub fn plan_stage(
    plan: &mut Plan,
    records: &BTreeMap<Key, Record>,
    current: Vec<Violation>,
    policies: &BTreeSet<&str>,
    waivers: &[Waiver],
    look: &Lookups<'_>,
    now: DateTime<Utc>,
) {
    let Lookups { withdrawn, document, subject, resolve } = look;
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut present: BTreeSet<Key> = BTreeSet::new();
    for (key, v) in fold(current) {
        present.insert(key.clone());
        let before = records.get(&key);
        let mut ids = v.aliases.clone();
        ids.push(v.id.clone());
        if !v.id.is_empty() && waivers.iter().any(|w| w.covers(&v.app, &ids, now)) {
            let record = Record {
                status: Status::Waived,
                details: v.details.clone(),
                purl: v.purl.clone(),
                ..before.cloned().unwrap_or_else(|| blank(&v))
            };
            if before != Some(&record) {
                plan.writes.push((key, record, Some(document(&v))));
            }
            plan.current.push((v, Standing::Waived));
            continue;
        }
        let (change, changed, previous) = match before {
            Some(r) if r.status == Status::Open => {
                let changed = v.details.changed_from(&r.details);
                if changed.is_empty() {
                    plan.quiet += 1;
                    plan.current.push((v, Standing::Notified));
                    continue;
                }
                (Change::Updated, changed, Some(r.details.clone()))
            }
            _ => (Change::New, Vec::new(), None),
        };
        let prior = before.cloned().unwrap_or_else(|| blank(&v));
        let record = Record {
            status: Status::Open,
            details: v.details.clone(),
            revision: prior.revision + 1,
            first_notified: if prior.first_notified.is_empty() {
                stamp.clone()
            } else {
                prior.first_notified
            },
            last_notified: stamp.clone(),
            purl: v.purl.clone(),
            aliases: v.aliases.clone(),
        };
        let text = document(&v);
        plan.writes.push((key.clone(), record.clone(), Some(Arc::clone(&text))));
        plan.notices.push(Notice { key, change, changed, previous, record, subject: text });
        let standing = if change == Change::New { Standing::New } else { Standing::Updated };
        plan.current.push((v, standing));
    }
    for (key, r) in records {
        if !*resolve || present.contains(key) || !policies.contains(key.2.as_str()) {
            continue;
        }
        let gone = if withdrawn(&r.aliases) { Status::Withdrawn } else { Status::Resolved };
        match r.status {
            Status::Open => {
                let record = Record {
                    status: gone,
                    revision: r.revision + 1,
                    last_notified: stamp.clone(),
                    ..r.clone()
                };
                let change =
                    if gone == Status::Withdrawn { Change::Withdrawn } else { Change::Resolved };
                plan.writes.push((key.clone(), record.clone(), None));
                plan.notices.push(Notice {
                    key: key.clone(),
                    change,
                    changed: Vec::new(),
                    previous: None,
                    record,
                    subject: subject(key).unwrap_or_else(|| Arc::from("{}")),
                });
            }
            // Gone while waived: nobody was told of it lately, so nobody is told it went.
            Status::Waived => {
                plan.writes.push((key.clone(), Record { status: gone, ..r.clone() }, None));
            }
            Status::Resolved | Status::Withdrawn => {}
        }
    }
}

/// One violation per key, in first-seen order: a package installed at two versions with
/// the same vulnerability is one violation (the first version's), with the worse severity
/// and CVSS and every fixed version, so the two never take turns updating one record.
fn fold(current: Vec<Violation>) -> Vec<(Key, Violation)> {
    let mut out: Vec<(Key, Violation)> = Vec::with_capacity(current.len());
    let mut at: std::collections::HashMap<Key, usize> = std::collections::HashMap::new();
    for v in current {
        let key = key_of(&v);
        match at.get(&key) {
            Some(&i) => {
                let d = &mut out[i].1.details;
                d.severity = d.severity.max(v.details.severity);
                d.cvss = match (d.cvss, v.details.cvss) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                d.fixed.extend(v.details.fixed);
                d.fixed.sort();
                d.fixed.dedup();
                d.licenses.extend(v.details.licenses);
                d.licenses.sort();
                d.licenses.dedup();
            }
            None => {
                at.insert(key.clone(), out.len());
                out.push((key, v));
            }
        }
    }
    out
}

/// A record never notified.
fn blank(v: &Violation) -> Record {
    Record {
        status: Status::Waived,
        details: v.details.clone(),
        revision: 0,
        first_notified: String::new(),
        last_notified: String::new(),
        purl: v.purl.clone(),
        aliases: v.aliases.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn v(policy: &str, purl: &str, id: &str, sev: crate::parse::scan::Severity) -> Violation {
        Violation {
            policy: policy.into(),
            app: "shop".into(),
            stage: "build".into(),
            purl: purl.into(),
            id: id.into(),
            aliases: vec![id.into()],
            details: Details { severity: Some(sev), ..Details::default() },
            at: crate::scan::violation::Judged::Finding(0),
        }
    }

    fn apply(records: &mut BTreeMap<Key, Record>, plan: &Plan) {
        for (k, r, _) in &plan.writes {
            records.insert(k.clone(), r.clone());
        }
    }

    fn changes(plan: &Plan) -> Vec<(Change, &str)> {
        plan.notices.iter().map(|n| (n.change, n.key.4.as_str())).collect()
    }

    #[test]
    fn package_of_drops_the_version_only() {
        assert_eq!(package_of("pkg:npm/a@1.0.0"), "pkg:npm/a");
        assert_eq!(package_of("pkg:npm/%40s/a@1.0.0?x=y#p"), "pkg:npm/%40s/a");
        assert_eq!(package_of("pkg:generic/a"), "pkg:generic/a");
        assert_eq!(package_of("pkg:npm/@babel/core"), "pkg:npm/@babel/core");
        assert_eq!(package_of("pkg:npm/@babel/core@7.0.0"), "pkg:npm/@babel/core");
    }

    #[test]
    fn one_package_at_two_versions_is_one_violation_that_goes_quiet() {
        use crate::parse::scan::Severity::{High, Medium};
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc();
        let policies: BTreeSet<&str> = ["p"].into();
        let doc = |v: &Violation| Arc::from(json!({"component": {"purl": v.purl}}).to_string());
        let look =
            Lookups { withdrawn: &|_| false, document: &doc, subject: &|_| None, resolve: true };
        let two = || {
            let mut old = v("p", "pkg:npm/lodash@3.10.1", "CVE-1", Medium);
            old.details.fixed = vec!["4.17.19".into()];
            let mut new = v("p", "pkg:npm/lodash@4.17.15", "CVE-1", High);
            new.details.fixed = vec!["4.17.19".into(), "3.10.2".into()];
            vec![old, new]
        };
        let mut records = BTreeMap::new();
        let mut plan = Plan::default();
        plan_stage(&mut plan, &records, two(), &policies, &[], &look, now);
        assert_eq!(plan.notices.len(), 1);
        let d = &plan.notices[0].record.details;
        assert_eq!(
            (d.severity, d.fixed.as_slice()),
            (Some(High), &["3.10.2".to_owned(), "4.17.19".to_owned()][..])
        );
        apply(&mut records, &plan);
        for _ in 0..2 {
            let mut plan = Plan::default();
            plan_stage(&mut plan, &records, two(), &policies, &[], &look, now);
            assert!(plan.notices.is_empty(), "{:?}", plan.notices);
            assert_eq!(plan.quiet, 1);
        }
    }

    #[test]
    fn new_changed_gone_withdrawn_and_waived_each_notify_as_they_should() {
        use crate::parse::scan::Severity::{High, Medium};
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc();
        let policies: BTreeSet<&str> = ["p"].into();
        let doc = |v: &Violation| Arc::from(json!({"component": {"purl": v.purl}}).to_string());
        let none =
            Lookups { withdrawn: &|_| false, document: &doc, subject: &|_| None, resolve: true };
        let mut records = BTreeMap::new();
        let cur =
            || vec![v("p", "pkg:npm/a@1", "CVE-1", Medium), v("p", "pkg:npm/b@1", "CVE-2", High)];
        let mut plan = Plan::default();
        plan_stage(&mut plan, &records, cur(), &policies, &[], &none, now);
        assert_eq!(changes(&plan), [(Change::New, "CVE-1"), (Change::New, "CVE-2")]);
        apply(&mut records, &plan);

        // The same, a package upgraded but still vulnerable: quiet.
        let mut plan = Plan::default();
        let mut same = cur();
        same[0].purl = "pkg:npm/a@2".into();
        plan_stage(&mut plan, &records, same, &policies, &[], &none, now);
        assert_eq!((plan.notices.len(), plan.quiet), (0, 2));

        // CVE-1 raised, CVE-2 gone (withdrawn), and a record of a policy not judged now.
        records.insert(
            (
                "shop".into(),
                "build".into(),
                "unmonitored".into(),
                "pkg:npm/c".into(),
                "CVE-3".into(),
            ),
            Record { status: Status::Open, ..records.values().next().unwrap().clone() },
        );
        let mut plan = Plan::default();
        let withdrawn = |ids: &[String]| ids.iter().any(|i| i == "CVE-2");
        plan_stage(
            &mut plan,
            &records,
            vec![v("p", "pkg:npm/a@1", "CVE-1", High)],
            &policies,
            &[],
            &Lookups { withdrawn: &withdrawn, ..none },
            now,
        );
        assert_eq!(changes(&plan), [(Change::Updated, "CVE-1"), (Change::Withdrawn, "CVE-2")]);
        assert_eq!(plan.notices[0].changed, ["severity"]);
        assert_eq!(plan.notices[0].record.revision, 2);
        apply(&mut records, &plan);

        // Waived, then gone while waived: recorded, never notified.
        let waiver = Waiver {
            app: "shop".into(),
            vuln: "CVE-1".into(),
            until: "2026-12-04T00:00:00Z".into(),
            reason: "r".into(),
            by: "b".into(),
            created: "2026-12-03T00:00:00Z".into(),
        };
        let mut plan = Plan::default();
        let cur = vec![v("p", "pkg:npm/a@1", "CVE-1", High)];
        plan_stage(&mut plan, &records, cur, &policies, std::slice::from_ref(&waiver), &none, now);
        assert!(plan.notices.is_empty());
        assert_eq!(plan.current[0].1, Standing::Waived);
        apply(&mut records, &plan);
        let mut plan = Plan::default();
        plan_stage(&mut plan, &records, vec![], &policies, &[waiver], &none, now);
        assert!(plan.notices.is_empty(), "{:?}", plan.notices);
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].1.status, Status::Resolved);
        let untouched = records.keys().filter(|k| k.2 == "unmonitored").count();
        assert_eq!(untouched, 1);
        assert!(plan.writes.iter().all(|(k, _, _)| k.2 != "unmonitored"));
    }

    proptest::proptest! {
        /// Whatever the sequence of evaluations: judging the same violations again right
        /// after notifying them sends nothing, every present violation is then open, and
        /// every one gone that was open is resolved, each told exactly once.
        #[test]
        fn notices_are_sent_once_whatever_the_sequence(
            runs in proptest::collection::vec(
                proptest::collection::vec((0u8..2, 0u8..4, 0u8..2, 0u8..3, 0u8..4, proptest::bool::ANY), 0..8),
                1..6,
            )
        ) {
            use crate::parse::scan::Severity;
            let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().to_utc();
            let policies: BTreeSet<&str> = ["p0", "p1"].into();
            let doc = |v: &Violation| Arc::from(json!({"component": {"purl": v.purl}}).to_string());
            let look = Lookups { withdrawn: &|_| false, document: &doc, subject: &|_| None, resolve: true };
            let sev = [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];
            let mut records = BTreeMap::new();
            for run in runs {
                let current: Vec<Violation> = run
                    .iter()
                    .map(|&(p, pkg, ver, id, s, fixed)| {
                        let mut x = v(
                            &format!("p{p}"),
                            &format!("pkg:npm/a{pkg}@{ver}.0.0"),
                            &format!("CVE-{id}"),
                            sev[usize::from(s)],
                        );
                        if fixed {
                            x.details.fixed = vec!["9.0.0".into()];
                        }
                        x
                    })
                    .collect();
                let keys: BTreeSet<Key> = current.iter().map(key_of).collect();
                let mut plan = Plan::default();
                plan_stage(&mut plan, &records, current.clone(), &policies, &[], &look, now);
                let mut told: Vec<&Key> = plan.notices.iter().map(|n| &n.key).collect();
                told.sort();
                let before = told.len();
                told.dedup();
                proptest::prop_assert_eq!(before, told.len(), "a violation told twice in one run");
                apply(&mut records, &plan);
                for (k, r) in &records {
                    if keys.contains(k) {
                        proptest::prop_assert_eq!(r.status, Status::Open);
                    } else {
                        proptest::prop_assert_eq!(r.status, Status::Resolved);
                    }
                }
                let mut again = Plan::default();
                plan_stage(&mut again, &records, current, &policies, &[], &look, now);
                proptest::prop_assert!(again.notices.is_empty(), "{:?}", again.notices);
                proptest::prop_assert!(again.writes.is_empty());
            }
        }
    }
}
