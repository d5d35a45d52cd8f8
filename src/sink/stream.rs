//! JSON-lines sinks: standard output and an appended file, one line per notification.

use std::io::ErrorKind;
use std::path::PathBuf;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{BoxFuture, Sink, SinkError, config_error};
use crate::route::notification::Notification;

/// `type: stdout` (no other keys).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// At most so many notifications per period (the router enforces it).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
}

/// `type: file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// At most so many notifications per period (the router enforces it).
    #[serde(default)]
    pub rate_limit: Option<super::RateLimitSpec>,
    /// The file to append to; it is created if missing, its directory is not. In
    /// logwarden.yml a relative path is relative to the config file.
    pub path: PathBuf,
}

/// The notification as one JSON line.
fn line(n: &Notification) -> Result<Vec<u8>, SinkError> {
    let mut b = serde_json::to_vec(n).map_err(|e| SinkError::Permanent(e.to_string()))?;
    b.push(b'\n');
    Ok(b)
}

/// Writes each notification as a JSON line on standard output.
#[derive(Debug)]
pub struct StdoutSink {
    name: String,
    /// Serializes writers so two notifications never interleave within a line.
    lock: Mutex<()>,
}

impl StdoutSink {
    /// Nothing to check: standard output is always there.
    pub fn new(name: &str, _cfg: &StdoutConfig) -> Self {
        StdoutSink { name: name.to_owned(), lock: Mutex::new(()) }
    }
}

impl Sink for StdoutSink {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let b = line(n)?;
            let _guard = self.lock.lock().await;
            // tokio's stdout writes on the blocking pool: a reader that stops reading stalls
            // this sink's task alone, never the runtime thread other sinks deliver on.
            let mut out = tokio::io::stdout();
            let written = async {
                out.write_all(&b).await?;
                out.flush().await
            };
            written
                .await
                .map_err(|e| SinkError::Retriable(format!("sink `{}`: stdout: {e}", self.name)))
        })
    }
}

/// Appends each notification as a JSON line to a file.
#[derive(Debug)]
pub struct FileSink {
    name: String,
    path: PathBuf,
    /// Serializes writers so two notifications never interleave within a line.
    lock: Mutex<()>,
}

impl FileSink {
    /// Checks that the file's directory exists (it is not created: a typo in the path should
    /// fail at load, not make a stray directory).
    pub fn new(name: &str, cfg: &FileConfig) -> Result<Self, SinkError> {
        let dir = match cfg.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return Err(config_error(
                name,
                format!(
                    "path `{}`: directory `{}` does not exist",
                    cfg.path.display(),
                    dir.display()
                ),
            ));
        }
        Ok(FileSink { name: name.to_owned(), path: cfg.path.clone(), lock: Mutex::new(()) })
    }

    fn io_error(&self, what: &str, e: &std::io::Error) -> SinkError {
        let msg = format!("sink `{}`: {what} `{}`: {e}", self.name, self.path.display());
        // A missing directory or a permission problem waits for the operator; a full disk or
        // an interrupted write may clear by itself.
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory => {
                SinkError::Permanent(msg)
            }
            _ => SinkError::Retriable(msg),
        }
    }
}

impl Sink for FileSink {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let b = line(n)?;
            let _guard = self.lock.lock().await;
            // Opened per notification, so a file moved away by logrotate is recreated rather
            // than written to after it was renamed.
            let mut f = tokio::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&self.path)
                .await
                .map_err(|e| self.io_error("open", &e))?;
            f.write_all(&b).await.map_err(|e| self.io_error("write", &e))?;
            f.flush().await.map_err(|e| self.io_error("flush", &e))?;
            // `Ok` lets the outbox delete its copy, so the line must be on disk first.
            f.sync_data().await.map_err(|e| self.io_error("sync", &e))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::route::notification::Kind;
    use crate::rule::Severity;

    #[test]
    fn missing_directory_is_named() {
        let cfg =
            FileConfig { path: "/nonexistent-logwarden-dir/alerts.jsonl".into(), rate_limit: None };
        let e = FileSink::new("out", &cfg).expect_err("no dir");
        assert!(!e.is_retriable());
        let s = e.to_string();
        assert!(s.contains("out") && s.contains("/nonexistent-logwarden-dir"), "{s}");
    }

    #[tokio::test]
    async fn stdout_accepts_a_notification() {
        let n = Notification {
            id: "1".into(),
            sink: "s".into(),
            route: "r".into(),
            kind: Kind::Repeat,
            group: BTreeMap::new(),
            severity: Severity::Info,
            title: "t".into(),
            alerts: vec![],
            suppressed: 0,
            created: "2026-11-23T09:05:01Z".into(),
        };
        StdoutSink::new("s", &StdoutConfig { rate_limit: None }).send(&n).await.expect("written");
    }
}
