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
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::{Batch, Checkpoint, RawRecord};
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

/// Watches `cfg.path` until `shutdown`; `committed` holds the progress loaded at startup
/// (keys from [`key`]), so finished files are skipped and half-read ones resume.
pub async fn run(
    cfg: CloudTrailDirConfig,
    committed: HashMap<String, u64>,
    tx: mpsc::Sender<Batch>,
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
                Ok(true) => {
                    seen.insert(file, DONE);
                }
                Ok(false) => return,
                Err(e) => eprintln!("cloudtrail source: {}: {e}", file.display()),
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

/// Reads one file's records after the first `skip`, in batches; `Ok(false)` when the daemon
/// is stopping (the pipeline closed).
async fn read_file(
    file: &Path,
    skip: u64,
    tx: &mpsc::Sender<Batch>,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool, String> {
    let path = file.to_path_buf();
    let (btx, mut brx) = mpsc::channel::<(Vec<RawRecord>, u64)>(2);
    let stop = shutdown.clone();
    // The reader is synchronous (gzip, streaming JSON): it runs on the blocking pool and
    // hands batches over a small channel, which blocks it when downstream is full.
    let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let input = crate::source::detect::open(&path, Some(crate::parse::Format::CloudTrail))
            .map_err(|e| e.to_string())?;
        let source = Sym::from(path.display().to_string());
        let mut batch = Vec::with_capacity(BATCH);
        let mut n = 0u64;
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
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        if let Err(e) = r {
            // What came before a broken record is kept; the file is not retried whole.
            eprintln!("cloudtrail source: {}: {e}", path.display());
        }
        let _ = btx.blocking_send((batch, DONE));
        Ok(())
    });
    while let Some((records, offset)) = brx.recv().await {
        let checkpoint = Some(Checkpoint { key: key(file), path: file.to_path_buf(), offset });
        if tx.send(Batch { records, checkpoint, done: None }).await.is_err() {
            return Ok(false);
        }
        if offset == DONE {
            break;
        }
    }
    match reader.await {
        Ok(r) => r.map(|()| !*shutdown.borrow()),
        Err(e) => Err(e.to_string()),
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
        let task = tokio::spawn(run(cfg.clone(), HashMap::new(), tx, shutdown));
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
        tokio::spawn(run(cfg, committed, tx, shutdown));
        let got = drain(&mut rx, 1).await;
        let text = String::from_utf8_lossy(&got[0].records[0].bytes).into_owned();
        assert!(text.contains("\"Three\""), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(rx.try_recv().is_err(), "finished files are not read again");
    }
}
