//! CloudTrail log files as an S3 sync delivers them: new `*.json.gz` (and `*.json`) files
//! appearing anywhere under a directory tree, each read once.
//!
//! A file's progress is a [`Checkpoint`] keyed `cloudtrail:PATH` whose offset counts the
//! records handed downstream; the last batch of a file carries [`DONE`]. The daemon commits
//! these after the records are processed, so a file is read once across restarts, and a
//! file interrupted halfway resumes after its last processed record.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::cloudtrail::CloudTrailReadError;
use super::log_limit::{LogLimit, held_back};
use super::{Batch, Checkpoint, RawRecord, SourceCounters};
use crate::event::{Sym, Timestamp};

/// The offset that marks a file read to its end.
pub const DONE: u64 = u64::MAX;
/// Records per batch.
const BATCH: usize = 512;

/// `type: cloudtrail_dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudTrailDirConfig {
    /// The directory an `aws s3 sync` (or any delivery) writes into; searched recursively.
    pub path: PathBuf,
    /// How often to look for new files (default 30s).
    #[serde(default)]
    pub poll_interval: Option<String>,
    /// Alert when no record arrives for this long.
    #[serde(default)]
    pub max_silence: Option<String>,
}

/// The checkpoint key of a CloudTrail file.
pub fn key(path: &Path) -> String {
    format!("cloudtrail:{}", path.display())
}

/// Why a whole CloudTrail file could not be read. Records before a failure mid-file were
/// handed on; the file is not read again.
#[derive(Debug, thiserror::Error)]
pub enum CloudTrailFileError {
    /// The file could not be opened or its first bytes read (permissions, gone).
    #[error("cannot be read: {source}")]
    Unreadable {
        /// What the OS said.
        source: std::io::Error,
    },
    /// The stream broke partway: bad gzip, JSON that breaks, a top level that is not
    /// CloudTrail.
    #[error("{source}")]
    Read {
        /// Whether the file is gzip (an I/O error in the stream is then the gzip's).
        gzip: bool,
        /// Where and how it broke.
        source: CloudTrailReadError,
    },
    /// The blocking task that reads files ended abnormally.
    #[error("the reading task ended abnormally: {0}")]
    Task(String),
}

impl CloudTrailFileError {
    /// A short, fixed label for metrics (`reason`).
    pub fn kind(&self) -> &'static str {
        match self {
            CloudTrailFileError::Unreadable { .. } => "unreadable",
            CloudTrailFileError::Read { gzip: true, source: CloudTrailReadError::Io { .. } } => {
                "bad_gzip"
            }
            CloudTrailFileError::Read { source: CloudTrailReadError::Io { .. }, .. } => {
                "unreadable"
            }
            CloudTrailFileError::Read { source, .. } => source.kind(),
            CloudTrailFileError::Task(_) => "internal_error",
        }
    }
}

/// File failures are said at most once a minute per source; each is counted in
/// `logwarden_source_file_failures_total{reason}`.
const FAILURE_LOG_SECS: u64 = 60;

/// The source's name, counters and log limit: how it says that a file failed.
struct Failures {
    name: String,
    counters: Arc<SourceCounters>,
    log: LogLimit,
    /// Files that could not be opened, with why: retried at every poll, but counted and said
    /// again only when the reason changes, not once per poll.
    unopened: HashMap<PathBuf, &'static str>,
}

impl Failures {
    fn failed(&self, file: &Path, e: &CloudTrailFileError) {
        self.counters.file_failed(e.kind());
        if let Some(held) = self.log.allow() {
            eprintln!(
                "logwarden: source `{}`: CloudTrail file {}: {e} ({}){}",
                self.name,
                file.display(),
                e.kind(),
                held_back(held)
            );
        }
    }
}

/// Watches `cfg.path` until `shutdown`; `committed` holds the progress loaded at startup
/// (keys from [`key`]), so finished files are skipped and half-read ones resume. Files that
/// fail are counted in `counters` by reason, and said on standard error at most once a
/// minute.
pub async fn run(
    name: String,
    cfg: CloudTrailDirConfig,
    committed: HashMap<String, u64>,
    tx: mpsc::Sender<Batch>,
    counters: Arc<SourceCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = cfg
        .poll_interval
        .as_deref()
        .and_then(|s| crate::rule::duration::parse(s).ok())
        .map_or(Duration::from_secs(30), |s| Duration::from_nanos(s.nanos().max(1) as u64));
    // Progress of this run: files handed downstream in full are not read again even before
    // their checkpoint is committed.
    let mut seen: HashMap<PathBuf, u64> = HashMap::new();
    let mut failures =
        Failures { name, counters, log: LogLimit::new(FAILURE_LOG_SECS), unopened: HashMap::new() };
    loop {
        let mut files = Vec::new();
        walk(&cfg.path, &mut files);
        files.sort();
        for file in files {
            if *shutdown.borrow() {
                return;
            }
            let k = key(&file);
            let done = seen.get(&file).or(committed.get(&k)).copied().unwrap_or(0);
            if done == DONE {
                continue;
            }
            match read_file(&file, done, &tx, &shutdown).await {
                FileRead::Done(damage) => {
                    failures.unopened.remove(&file);
                    if let Some(e) = damage {
                        failures.failed(&file, &e);
                    }
                    seen.insert(file, DONE);
                }
                FileRead::Stopping => return,
                FileRead::Failed(e) => {
                    if failures.unopened.insert(file.clone(), e.kind()) != Some(e.kind()) {
                        failures.failed(&file, &e);
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Every `*.json.gz` and `*.json` file under `dir`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, out),
            Ok(t) if t.is_file() => {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // S3 sync writes a temporary name first; only finished names are read.
                if name.ends_with(".json.gz") || name.ends_with(".json") {
                    out.push(path);
                }
            }
            _ => {}
        }
    }
}

/// How reading one file ended.
enum FileRead {
    /// Read to its end, or to where it broke (the damage, counted once: the file is done).
    Done(Option<CloudTrailFileError>),
    /// The daemon is stopping (the pipeline closed).
    Stopping,
    /// Not read at all (it could not be opened): tried again at the next poll.
    Failed(CloudTrailFileError),
}

/// Reads one file's records after the first `skip`, in batches.
async fn read_file(
    file: &Path,
    skip: u64,
    tx: &mpsc::Sender<Batch>,
    shutdown: &watch::Receiver<bool>,
) -> FileRead {
    let path = file.to_path_buf();
    let (btx, mut brx) = mpsc::channel::<(Vec<RawRecord>, u64)>(2);
    let stop = shutdown.clone();
    // The reader is synchronous (gzip, streaming JSON): it runs on the blocking pool and
    // hands batches over a small channel, which blocks it when downstream is full. It returns
    // the error that kept it from the file (`Err`) or the damage that ended it early.
    type Read = Result<Option<CloudTrailFileError>, CloudTrailFileError>;
    let reader = tokio::task::spawn_blocking(move || -> Read {
        let input = match crate::source::detect::open(&path, Some(crate::parse::Format::CloudTrail))
        {
            Ok(input) => input,
            Err(crate::source::detect::DetectError::Io { source, .. }) => {
                return Err(CloudTrailFileError::Unreadable { source });
            }
        };
        let gzip = input.gzip;
        let source = Sym::from(path.display().to_string());
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0u64;
        let mut stopped = false;
        let now = Timestamp::now();
        let r = crate::source::cloudtrail::read_records(input.reader, source, |mut rec| {
            n += 1;
            if n <= skip {
                return ControlFlow::Continue(());
            }
            rec.received = Some(now);
            batch.push(rec);
            if batch.len() >= BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if *stop.borrow() || btx.blocking_send((full, n)).is_err() {
                    stopped = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if stopped {
            // Stopping mid-file: the position stays at the last batch handed on. Marking the
            // file done here would skip the rest of it after the restart.
            return Ok(None);
        }
        // What came before a broken record is kept; the file is not retried whole.
        let damage = r.err().map(|source| CloudTrailFileError::Read { gzip, source });
        let _ = btx.blocking_send((batch, DONE));
        Ok(damage)
    });
    while let Some((records, offset)) = brx.recv().await {
        let checkpoint = Some(Checkpoint { key: key(file), path: file.to_path_buf(), offset });
        if tx.send(Batch { records, checkpoint, done: None }).await.is_err() {
            return FileRead::Stopping;
        }
        if offset == DONE {
            break;
        }
    }
    match reader.await {
        Ok(Ok(_)) if *shutdown.borrow() => FileRead::Stopping,
        Ok(Ok(damage)) => FileRead::Done(damage),
        Ok(Err(e)) => FileRead::Failed(e),
        Err(e) => FileRead::Failed(CloudTrailFileError::Task(e.to_string())),
    }
}

/// Every file under the source's directory now, marked read to its end: what `logwarden state
/// reset` writes so that a new state database does not read them (and alert on them) again.
pub fn positions_at_end(cfg: &CloudTrailDirConfig) -> Vec<Checkpoint> {
    let mut files = Vec::new();
    walk(&cfg.path, &mut files);
    files.sort();
    files.into_iter().map(|f| Checkpoint { key: key(&f), path: f, offset: DONE }).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::io::Write;

    use super::*;

    fn gz(path: &Path, names: &[&str]) {
        let records: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    r#"{{"eventVersion":"1.08","eventTime":"2026-11-22T09:00:00Z","eventSource":"iam.amazonaws.com","eventName":"{n}","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userIdentity":{{"type":"IAMUser","userName":"alice"}}}}"#
                )
            })
            .collect();
        let body = format!("{{\"Records\":[{}]}}", records.join(","));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut e =
            flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), Default::default());
        e.write_all(body.as_bytes()).unwrap();
        e.finish().unwrap();
    }

    async fn drain(rx: &mut mpsc::Receiver<Batch>, want: usize) -> Vec<Batch> {
        let mut out = Vec::new();
        let mut n = 0;
        while n < want {
            let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
            n += b.records.len();
            out.push(b);
        }
        out
    }

    #[tokio::test]
    async fn new_files_anywhere_under_the_tree_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/22");
        gz(&root.join("a.json.gz"), &["CreateUser", "AttachUserPolicy"]);
        let cfg = CloudTrailDirConfig {
            path: dir.path().to_path_buf(),
            poll_interval: Some("20ms".into()),
            max_silence: None,
        };
        let (tx, mut rx) = mpsc::channel(8);
        let (stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        let task =
            tokio::spawn(run("ct".into(), cfg.clone(), HashMap::new(), tx, counters, shutdown));
        let got = drain(&mut rx, 2).await;
        assert_eq!(got.last().unwrap().checkpoint.as_ref().unwrap().offset, DONE);
        // A file delivered later, in another day's folder, is picked up; the first is not
        // read again.
        gz(&dir.path().join("AWSLogs/x/2026/11/23/b.json.gz"), &["StopLogging"]);
        let got = drain(&mut rx, 1).await;
        let text = String::from_utf8_lossy(&got[0].records[0].bytes).into_owned();
        assert!(text.contains("StopLogging"), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "nothing read twice");
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();

        // Restarted with what was committed: a finished file is skipped, a half-read one
        // resumes after its last processed record.
        let mut committed = HashMap::new();
        committed.insert(key(&root.join("a.json.gz")), DONE);
        committed.insert(key(&dir.path().join("AWSLogs/x/2026/11/23/b.json.gz")), DONE);
        gz(&root.join("c.json.gz"), &["One", "Two", "Three"]);
        committed.insert(key(&root.join("c.json.gz")), 2);
        let (tx, mut rx) = mpsc::channel(8);
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(run("ct".into(), cfg, committed, tx, Default::default(), shutdown));
        let got = drain(&mut rx, 1).await;
        let text = String::from_utf8_lossy(&got[0].records[0].bytes).into_owned();
        assert!(text.contains("\"Three\""), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "finished files are not read again");
    }

    fn failures(c: &SourceCounters) -> Vec<(&'static str, u64)> {
        c.file_failures.lock().unwrap().iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[tokio::test]
    async fn damaged_files_are_counted_by_reason_once_and_the_rest_read() {
        let dir = tempfile::tempdir().unwrap();
        gz(&dir.path().join("a-good.json.gz"), &["CreateUser"]);
        // A gzip cut in half: the records in its first half are kept, the rest is bad_gzip.
        gz(&dir.path().join("b-cut.json.gz"), &["One", "Two", "Three"]);
        let whole = std::fs::read(dir.path().join("b-cut.json.gz")).unwrap();
        std::fs::write(dir.path().join("b-cut.json.gz"), &whole[..whole.len() / 2]).unwrap();
        std::fs::write(dir.path().join("c-string.json"), "\"not a trail\"").unwrap();
        std::fs::write(dir.path().join("d-broken.json"), "{\"Records\":[{\"a\":1}}").unwrap();
        let cfg = CloudTrailDirConfig {
            path: dir.path().to_path_buf(),
            poll_interval: Some("20ms".into()),
            max_silence: None,
        };
        let (tx, mut rx) = mpsc::channel(8);
        let (stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        let task = tokio::spawn(run(
            "ct".into(),
            cfg,
            HashMap::new(),
            tx,
            Arc::clone(&counters),
            shutdown,
        ));
        // Every file ends with a DONE batch, the damaged ones too: four of them.
        let mut done = 0;
        let mut records = 0;
        while done < 4 {
            let b = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
            records += b.records.len();
            done += usize::from(b.checkpoint.unwrap().offset == DONE);
        }
        // Polls go on; nothing is read or counted again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rx.try_recv().is_err());
        // The good file's record and the broken one's first, which closed before the damage
        // (half of this small gzip holds no whole record).
        assert_eq!(records, 2);
        assert_eq!(
            failures(&counters),
            [("bad_gzip", 1), ("invalid_json", 1), ("not_cloudtrail", 1)]
        );
        stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_unreadable_file_is_counted_once_and_read_once_it_can_be() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } == 0 {
            eprintln!("SKIPPED: root reads a mode 000 file");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("locked.json.gz");
        gz(&file, &["CreateUser"]);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).unwrap();
        let cfg = CloudTrailDirConfig {
            path: dir.path().to_path_buf(),
            poll_interval: Some("20ms".into()),
            max_silence: None,
        };
        let (tx, mut rx) = mpsc::channel(8);
        let (_stop, shutdown) = watch::channel(false);
        let counters = Arc::new(SourceCounters::default());
        tokio::spawn(run("ct".into(), cfg, HashMap::new(), tx, Arc::clone(&counters), shutdown));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(failures(&counters), [("unreadable", 1)], "once, not once per poll");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let got = drain(&mut rx, 1).await;
        assert_eq!(got[0].records.len(), 1);
    }

    #[tokio::test]
    async fn stopping_mid_file_does_not_mark_it_done() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..10 * BATCH).map(|i| format!("E{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        gz(&dir.path().join("big.json.gz"), &names);
        let cfg = CloudTrailDirConfig {
            path: dir.path().to_path_buf(),
            poll_interval: Some("1h".into()),
            max_silence: None,
        };
        let (tx, mut rx) = mpsc::channel(1);
        let (stop, shutdown) = watch::channel(false);
        let task =
            tokio::spawn(run("ct".into(), cfg, HashMap::new(), tx, Default::default(), shutdown));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(first.checkpoint.unwrap().offset, BATCH as u64);
        stop.send_replace(true);
        let mut last = 0;
        while let Ok(Some(b)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            last = b.checkpoint.unwrap().offset;
        }
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
        assert!(last < (10 * BATCH) as u64, "stopped at {last}, not marked done");
    }
}
