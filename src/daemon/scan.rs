//! The daemon's scan thread (`scan:` in the config): reports dropped into the watched
//! directory are ingested and judged at once, and on the schedule every monitored
//! application's stored inventory is re-evaluated against the advisory directory as it is
//! then. Notices go through a router of the config's routes into the shared outbox, where the
//! daemon's sink tasks deliver them.
//!
//! The watched directory: `DIR/APP/STAGE/FILE` (or `DIR/APP/FILE` for stage `build`). The
//! files of one (application, stage) found in one look are one scan. A file is taken once it
//! has not changed for a second (write elsewhere and rename in to be safe; names starting
//! with `.` are skipped). Ingested files move to `DIR/.ingested/APP/STAGE/`; a report that
//! does not read moves, with its scan's other files, to `DIR/.failed/APP/STAGE/` beside a
//! `.error` file saying why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

use crate::route::dispatch::Dispatcher;
use crate::rule::Rule;
use crate::scan::advisory::Advisories;
use crate::scan::app::Applications;
use crate::scan::evaluate::{Inputs, Scope, plan};
use crate::scan::monitor::Notified;
use crate::scan::schedule::Schedule;
use crate::scan::store::{Scan, ScanStore, StoreError};
use crate::scan::waiver::WaiverStore;

/// How long a report must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_secs(1);

/// What the scan thread works with.
pub struct ScanLoop {
    /// The scan store.
    pub store: ScanStore,
    /// What was notified.
    pub notified: Notified,
    /// Waivers.
    pub waivers: WaiverStore,
    /// The `kind: policy` documents.
    pub policies: Vec<Rule>,
    /// The configured applications.
    pub apps: Applications,
    /// The watched directory.
    pub watch: Option<PathBuf>,
    /// How often it is looked at.
    pub poll: Duration,
    /// The OSV directory.
    pub advisories: Option<PathBuf>,
    /// When to re-evaluate.
    pub schedule: Option<Schedule>,
    /// A deferred dispatcher on the daemon's outbox.
    pub dispatcher: Dispatcher,
    /// Makes a fresh one: after a failed commit the old one still holds the notices that
    /// were not recorded, and the next evaluation makes them again.
    pub new_dispatcher: Box<dyn Fn() -> Dispatcher + Send>,
    /// Set at shutdown (a queued evaluation then returns at once).
    pub stopping: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Where the counts go.
    pub metrics: std::sync::Arc<super::metrics::Metrics>,
}

/// What the scan thread is told.
#[derive(Debug)]
pub enum ScanCmd {
    /// Re-evaluate now, as the schedule would, and say what it did.
    Evaluate(tokio::sync::oneshot::Sender<Result<String, String>>),
    /// Finish and return.
    Stop,
}

/// What one look at the watched directory found: (application, stage) -> files.
type Arrivals = BTreeMap<(String, String), Vec<PathBuf>>;

impl ScanLoop {
    /// Runs until `stop` says so (or its sender goes).
    pub fn run(mut self, commands: Receiver<ScanCmd>) {
        let mut next_run = self.schedule.as_ref().and_then(|s| s.next_after(Utc::now()));
        if let (Some(s), Some(t)) = (&self.schedule, next_run) {
            eprintln!("logwarden: scan: re-evaluation `{s}`, next at {}", t.to_rfc3339());
        }
        let mut next_poll = std::time::Instant::now();
        loop {
            let now = Utc::now();
            if self.watch.is_some() && std::time::Instant::now() >= next_poll {
                self.look(now);
                next_poll = std::time::Instant::now() + self.poll;
            }
            if let Some(due) = next_run
                && now >= due
            {
                if let Err(e) = self.reevaluate(now) {
                    eprintln!("logwarden: scan: scheduled re-evaluation: {e}");
                }
                next_run = self.schedule.as_ref().and_then(|s| s.next_after(Utc::now()));
            }
            let until_run = next_run
                .map(|t| (t - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            let until_poll = if self.watch.is_some() {
                next_poll.saturating_duration_since(std::time::Instant::now())
            } else {
                Duration::from_secs(3600)
            };
            let command = commands.recv_timeout(until_run.min(until_poll));
            if self.stopping.load(Relaxed) {
                return;
            }
            match command {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(ScanCmd::Evaluate(reply)) => {
                    let _ = reply.send(self.reevaluate(Utc::now()));
                }
                Ok(ScanCmd::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Ingests what arrived and notifies the new scans' violations. A report moves aside only
    /// once its scan was judged and its notices queued: after a crash, or a failed
    /// evaluation, it is still there and is read again at the next look.
    fn look(&mut self, now: DateTime<Utc>) {
        let Some(dir) = self.watch.clone() else { return };
        for ((app, stage), files) in arrivals(&dir, SystemTime::now()) {
            match ScanStore::read(&app, &stage, &files, now) {
                Ok(scan) => {
                    eprintln!(
                        "logwarden: scan: {app} {stage}: {} findings in {} components from {} reports",
                        scan.report.findings.len(),
                        scan.report.components.len(),
                        files.len()
                    );
                    // Judged with the advisories the schedule uses: without them, every
                    // violation only an advisory gives would read as resolved.
                    let db = match self.load_advisories() {
                        Ok(db) => db,
                        Err(e) => {
                            eprintln!("logwarden: scan: {app} {stage}: not judged yet: {e}");
                            self.metrics.scan.evaluation_failures.fetch_add(1, Relaxed);
                            continue;
                        }
                    };
                    let scope = Scope::Stage { app: &app, stage: &stage };
                    if self.judge(scope, db.as_ref(), now, Some(&scan)).is_ok() {
                        self.metrics.scan.reports_ingested.fetch_add(files.len() as u64, Relaxed);
                        set_aside(&dir, ".ingested", &app, &stage, &files, None);
                    }
                }
                // A report that does not read will not read next time either.
                Err(e @ StoreError::Report(_)) => {
                    self.metrics.scan.reports_failed.fetch_add(files.len() as u64, Relaxed);
                    eprintln!("logwarden: scan: {app} {stage}: not ingested: {e}");
                    set_aside(&dir, ".failed", &app, &stage, &files, Some(&e.to_string()));
                }
                // A file gone or unreadable for now, a database error: tried again next look.
                Err(e) => eprintln!("logwarden: scan: {app} {stage}: not ingested yet: {e}"),
            }
        }
    }

    fn load_advisories(&self) -> Result<Option<Advisories>, String> {
        self.advisories
            .as_deref()
            .map(Advisories::load)
            .transpose()
            .map_err(|e| format!("advisories: {e}"))
    }

    /// The scheduled run: monitored applications against the advisories as they are now.
    fn reevaluate(&mut self, now: DateTime<Utc>) -> Result<String, String> {
        let db = self.load_advisories()?;
        self.judge(Scope::Monitored, db.as_ref(), now, None)
    }

    /// Judges the stored scans in `scope`, or `fresh`, a scan just read, which is stored in
    /// the transaction that queues its notices (a failure stores neither).
    fn judge(
        &mut self,
        scope: Scope<'_>,
        db: Option<&Advisories>,
        now: DateTime<Utc>,
        fresh: Option<&Scan>,
    ) -> Result<String, String> {
        let result = (|| -> anyhow::Result<(usize, u64, usize)> {
            let scans = match fresh {
                Some(scan) => vec![scan.clone()],
                None => self.store.list(None)?,
            };
            let waivers = self.waivers.list(None)?;
            let inputs = Inputs {
                policies: &self.policies,
                apps: &self.apps,
                advisories: db,
                waivers: &waivers,
            };
            let p = plan(&scans, &self.notified, inputs, scope, now)?;
            let routed = crate::scan::dispatch::notify_with(
                &p,
                &self.policies,
                &self.apps,
                &mut self.dispatcher,
                now,
                |txn| fresh.map_or(Ok(()), |scan| ScanStore::put_in(txn, scan)),
            )?;
            Ok((p.notices.len(), p.quiet, routed))
        })();
        self.metrics.scan.evaluations.fetch_add(1, Relaxed);
        match &result {
            Ok((notices, ..)) => {
                self.metrics.scan.notices.fetch_add(*notices as u64, Relaxed);
            }
            Err(_) => {
                self.metrics.scan.evaluation_failures.fetch_add(1, Relaxed);
                self.dispatcher = (self.new_dispatcher)();
            }
        }
        let said = match result {
            Ok((notices, quiet, routed)) => {
                Ok(format!("{notices} notices ({routed} alerts routed), {quiet} already notified"))
            }
            Err(e) => Err(e.to_string()),
        };
        match &said {
            Ok(s) => eprintln!("logwarden: scan: {scope:?}: {s}"),
            Err(e) => eprintln!("logwarden: scan: {scope:?}: {e}"),
        }
        said
    }
}

/// The reports in `dir` settled by `now`, by application and stage. A stage waits until
/// every file in it has settled, so reports written together are one scan. Symbolic links
/// are skipped (moving a file behind one would reach outside the directory); a directory
/// that cannot be read is reported and the others are still looked at.
fn arrivals(dir: &Path, now: SystemTime) -> Arrivals {
    let mut out = Arrivals::new();
    let mut unsettled: Vec<(String, String)> = Vec::new();
    let entries = |d: &Path| -> Vec<(PathBuf, std::fs::FileType)> {
        match std::fs::read_dir(d) {
            Ok(rd) => rd
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
                .filter(|(_, t)| !t.is_symlink())
                .collect(),
            Err(e) => {
                eprintln!("logwarden: scan: watch {}: {e}", d.display());
                Vec::new()
            }
        }
    };
    // A time in the future (a clock set differently) counts as settled: it would never
    // age otherwise.
    let settled = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).map_or(true, |age| age >= SETTLE))
    };
    let name =
        |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut take = |key: (String, String), file: PathBuf| {
        if settled(&file) {
            out.entry(key).or_default().push(file);
        } else {
            unsettled.push(key);
        }
    };
    for (app, t) in entries(dir) {
        if !t.is_dir() {
            continue;
        }
        for (p, t) in entries(&app) {
            if t.is_file() {
                take((name(&app), "build".into()), p);
            } else if t.is_dir() {
                for (f, t) in entries(&p) {
                    if t.is_file() {
                        take((name(&app), name(&p)), f);
                    }
                }
            }
        }
    }
    for key in unsettled {
        out.remove(&key);
    }
    for files in out.values_mut() {
        files.sort();
    }
    out
}

/// Moves `files` under `dir/into/app/stage/`, with `error` beside them when given.
fn set_aside(
    dir: &Path,
    into: &str,
    app: &str,
    stage: &str,
    files: &[PathBuf],
    error: Option<&str>,
) {
    let to = dir.join(into).join(app).join(stage);
    if let Err(e) = std::fs::create_dir_all(&to) {
        eprintln!("logwarden: scan: cannot create {}: {e}", to.display());
        return;
    }
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    for f in files {
        let Some(name) = f.file_name() else { continue };
        let target = to.join(format!("{stamp}-{}", name.to_string_lossy()));
        if let Err(e) = std::fs::rename(f, &target) {
            // Left in place, it would be read again at every look: say so loudly.
            eprintln!("logwarden: scan: cannot move {} to {}: {e}", f.display(), target.display());
            continue;
        }
        if let Some(why) = error {
            let _ = std::fs::write(target.with_extension("error"), format!("{why}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn arrivals_group_by_app_and_stage_and_wait_for_settled_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("shop/release")).unwrap();
        std::fs::create_dir_all(d.join(".ingested/shop/build")).unwrap();
        std::fs::write(d.join("shop/trivy.json"), "{}").unwrap();
        std::fs::write(d.join("shop/release/a.json"), "{}").unwrap();
        std::fs::write(d.join("shop/release/b.sarif"), "{}").unwrap();
        std::fs::write(d.join("shop/release/.partial"), "{}").unwrap();
        std::fs::write(d.join(".ingested/shop/build/old.json"), "{}").unwrap();
        std::fs::write(d.join("stray.json"), "{}").unwrap();
        std::os::unix::fs::symlink(d.join("shop"), d.join("linked")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(5);
        let got = arrivals(d, later);
        let keys: Vec<(&str, &str, usize)> =
            got.iter().map(|((a, s), f)| (a.as_str(), s.as_str(), f.len())).collect();
        assert_eq!(keys, [("shop", "build", 1), ("shop", "release", 2)]);
        assert!(arrivals(d, SystemTime::now()).is_empty(), "written just now");
        // One file still being written holds back its whole stage.
        let f = std::fs::File::options().append(true).open(d.join("shop/release/a.json")).unwrap();
        f.set_modified(later).unwrap();
        let held = arrivals(d, later);
        assert_eq!(
            held.keys().map(|(a, s)| (a.as_str(), s.as_str())).collect::<Vec<_>>(),
            [("shop", "build")]
        );
        set_aside(
            d,
            ".failed",
            "shop",
            "release",
            &got[&("shop".into(), "release".into())],
            Some("bad"),
        );
        let failed: Vec<String> = std::fs::read_dir(d.join(".failed/shop/release"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(failed.len(), 4, "{failed:?}");
        assert!(failed.iter().any(|n| n.ends_with("-a.error")), "{failed:?}");
        assert!(!d.join("shop/release/a.json").exists());
    }
}
