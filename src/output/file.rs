//! `type: file`: JSON lines appended to a file, rotated by size (`path` -> `path.1` -> ...
//! -> `path.N`, the oldest deleted), following the path when logrotate moves the file away.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{OutputError, OutputStats, write_counted};

/// `max_bytes` when not set: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// `max_files` when not set.
pub const DEFAULT_MAX_FILES: usize = 5;

/// `type: file`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutputConfig {
    /// The file to append to; it is created if missing, its directory is not. In logwarden.yml
    /// a relative path is relative to the config file.
    pub path: PathBuf,
    /// Rotate before a write would take the file past this many bytes (default 100 MiB). A line
    /// is never split: a single line longer than this gets a file of its own.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Rotated files kept, `path.1` (newest) to `path.N`; older ones are deleted (default 5;
    /// 0 keeps none: a full file is deleted).
    #[serde(default)]
    pub max_files: Option<usize>,
    /// Only events matching this detection block (named selections and a `condition`, as in a
    /// rule's `detection:`) are written; the others are counted as filtered out.
    #[serde(default)]
    pub r#where: Option<serde_json::Value>,
    /// Write only these dotted paths, nested by their dots; absent ones are left out. Unset:
    /// the whole ECS event, as `replay --events` writes it.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// (device, inode): what names a file whatever its path.
type FileId = (u64, u64);

/// The open file and what is known about it.
pub(super) struct RotatingFile {
    output: String,
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    file: File,
    /// Bytes in the file: from its metadata at each write-out (another appender, or a
    /// `copytruncate`, changes it), plus what this write-out added.
    size: u64,
    /// The open file's identity, to notice that `path` now names another file.
    id: Option<FileId>,
}

impl RotatingFile {
    /// The path appended to.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Checks the settings and the directory (it is not created: a typo in the path should fail
    /// at load, not make a stray directory), then opens the file for appending.
    pub(super) fn open(output: &str, cfg: &FileOutputConfig) -> Result<Self, OutputError> {
        let config =
            |key, problem: String| OutputError::Config { output: output.to_owned(), key, problem };
        let max_bytes = cfg.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(config("max_bytes", "must be at least 1".into()));
        }
        let dir = match cfg.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            let problem =
                format!("`{}`: directory `{}` does not exist", cfg.path.display(), dir.display());
            return Err(config("path", problem));
        }
        let (file, id, size) = open_append(&cfg.path).map_err(|source| OutputError::Io {
            output: output.to_owned(),
            op: "open",
            path: cfg.path.clone(),
            source,
        })?;
        Ok(RotatingFile {
            output: output.to_owned(),
            path: cfg.path.clone(),
            max_bytes,
            max_files: cfg.max_files.unwrap_or(DEFAULT_MAX_FILES),
            file,
            size,
            id,
        })
    }

    /// Writes `buf` (whole lines), rotating between lines so no file passes `max_bytes` unless
    /// one line alone does. `done` counts the bytes written, also when an error stops it.
    pub(super) fn write_out(
        &mut self,
        buf: &[u8],
        done: &mut usize,
        stats: &mut OutputStats,
    ) -> Result<(), OutputError> {
        self.follow_path(stats)?;
        while *done < buf.len() {
            let rest = &buf[*done..];
            let room = self.max_bytes.saturating_sub(self.size);
            let take = if rest.len() as u64 <= room {
                rest.len()
            } else {
                // `room < rest.len()`, so it fits in usize. Cut after the last whole line that
                // fits.
                match memchr::memrchr(b'\n', &rest[..room as usize]) {
                    Some(i) => i + 1,
                    None if self.size == 0 => {
                        memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1)
                    }
                    None => {
                        self.rotate(stats)?;
                        continue;
                    }
                }
            };
            let before = *done;
            let written = write_counted(&mut self.file, &rest[..take], done, stats);
            self.size += (*done - before) as u64;
            written.map_err(|e| self.io("write", &self.path, e))?;
        }
        Ok(())
    }

    /// Reopens `path` if it no longer names the open file (logrotate renamed or deleted it),
    /// and refreshes the size. One `stat` per write-out.
    fn follow_path(&mut self, stats: &mut OutputStats) -> Result<(), OutputError> {
        match std::fs::metadata(&self.path) {
            Ok(m) if file_id(&m) == self.id => {
                self.size = m.len();
                Ok(())
            }
            Ok(_) => self.reopen().map(|()| stats.reopens += 1),
            Err(e) if e.kind() == ErrorKind::NotFound => self.reopen().map(|()| stats.reopens += 1),
            Err(e) => Err(self.io("stat", &self.path, e)),
        }
    }

    fn reopen(&mut self) -> Result<(), OutputError> {
        let (file, id, size) =
            open_append(&self.path).map_err(|e| self.io("open", &self.path, e))?;
        self.file = file;
        self.id = id;
        self.size = size;
        Ok(())
    }

    /// Shifts `path.i` to `path.i+1` from the oldest down, deleting `path.N` first, then moves
    /// `path` to `path.1` and opens a new `path`. A failure part way leaves every line in some
    /// file; the next write-out finds `path` missing (or still the old file) and carries on.
    fn rotate(&mut self, stats: &mut OutputStats) -> Result<(), OutputError> {
        if self.max_files == 0 {
            self.remove(&self.path)?;
        } else {
            self.remove(&numbered(&self.path, self.max_files))?;
            for i in (1..self.max_files).rev() {
                self.rename(&numbered(&self.path, i), &numbered(&self.path, i + 1))?;
            }
            self.rename(&self.path, &numbered(&self.path, 1))?;
        }
        self.reopen()?;
        stats.rotations += 1;
        Ok(())
    }

    /// Deletes `p`; already gone is fine.
    fn remove(&self, p: &Path) -> Result<(), OutputError> {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.io("rotate", p, e)),
            _ => Ok(()),
        }
    }

    /// Renames `from` to `to` (replacing it); a missing `from` (fewer files so far) is fine.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), OutputError> {
        match std::fs::rename(from, to) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.io("rotate", from, e)),
            _ => Ok(()),
        }
    }

    fn io(&self, op: &'static str, path: &Path, source: std::io::Error) -> OutputError {
        OutputError::Io { output: self.output.clone(), op, path: path.to_owned(), source }
    }
}

/// Opens `path` for appending (creating it), with its identity and current size.
fn open_append(path: &Path) -> std::io::Result<(File, Option<FileId>, u64)> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    let m = file.metadata()?;
    Ok((file, file_id(&m), m.len()))
}

/// `path.n`.
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(unix)]
fn file_id(m: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some((m.dev(), m.ino()))
}

/// Without inode numbers a move cannot be noticed; the output keeps writing to the open file.
#[cfg(not(unix))]
fn file_id(_m: &std::fs::Metadata) -> Option<FileId> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Timestamp};
    use crate::output::tests::{MIX, events, yaml};
    use crate::output::{FLUSH_BYTES, Output, OutputConfig};

    fn file_cfg(path: &Path, extra: &str) -> OutputConfig {
        yaml(&format!("type: file\npath: {}\n{extra}", path.display()))
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    /// Events told apart by their message, all the same length.
    fn numbered_events(n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| Event {
                timestamp: Timestamp::from_secs_nanos(1_765_349_746, 0),
                message: Some(format!("event {i:06}").into()),
                ..Event::default()
            })
            .collect()
    }

    #[test]
    fn full_lines_equal_the_replay_writer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = MIX.join("\n") + "\n";
        // What `replay --events` writes for these lines...
        let mut replayed: Vec<u8> = Vec::new();
        let opts = crate::replay::ReplayOptions {
            syslog: crate::parse::syslog::SyslogOptions { year: Some(2025), ..Default::default() },
            ..Default::default()
        };
        let mut outs =
            crate::replay::Outputs { events: Some(&mut replayed), dead_letter: None, alerts: None };
        crate::replay::replay_bytes("mix.log", text.into_bytes(), &opts, &mut outs)
            .expect("replays");
        let replayed = String::from_utf8(replayed).expect("utf-8");
        assert_eq!(replayed.lines().count(), MIX.len());

        // ...and what the output writes for the same events, byte for byte.
        let path = dir.path().join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        for line in replayed.lines() {
            out.write(&Event::from_json(line).expect("ECS")).expect("buffered");
        }
        out.flush().expect("flushed");
        assert_eq!(read(&path), replayed);

        // Events straight from the parser give `write_json`'s line.
        let path = dir.path().join("direct.jsonl");
        let mut out = Output::build("direct", &file_cfg(&path, "")).expect("builds");
        let evs = events(MIX);
        let mut want = String::new();
        for e in &evs {
            out.write(e).expect("buffered");
            want.push_str(&e.to_json());
            want.push('\n');
        }
        out.flush().expect("flushed");
        assert_eq!(read(&path), want);
    }

    #[test]
    fn where_and_fields_write_only_sshd_failures_projected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ssh.jsonl");
        let cfg = file_cfg(
            &path,
            "where:\n  failed: {event.dataset: sshd, event.outcome: failure}\n  condition: failed\n\
             fields: [user.name, source.ip]\n",
        );
        let mut out = Output::build("ssh-failures", &cfg).expect("builds");
        for e in &events(MIX) {
            out.write(e).expect("buffered");
        }
        out.flush().expect("flushed");
        assert_eq!(
            read(&path),
            "{\"user\":{\"name\":\"root\"},\"source\":{\"ip\":\"203.0.113.7\"}}\n\
             {\"user\":{\"name\":\"admin\"},\"source\":{\"ip\":\"203.0.113.8\"}}\n"
        );
        let s = out.stats();
        assert_eq!((s.written, s.filtered_out, s.dropped), (2, 2, 0));
    }

    #[test]
    fn nothing_reaches_the_file_below_the_threshold_or_before_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        let evs = numbered_events(100);
        for e in &evs {
            out.write(e).expect("buffered");
        }
        assert_eq!(std::fs::metadata(&path).expect("created").len(), 0);
        assert_eq!(out.stats().writes, 0);
        assert_eq!(out.stats().buffered, 100);
        out.flush().expect("flushed");
        assert_eq!(out.stats().writes, 1);
        assert_eq!(read(&path).lines().count(), 100);
        // An empty flush makes no call.
        out.flush().expect("flushed");
        assert_eq!(out.stats().writes, 1);
    }

    #[test]
    fn a_large_batch_is_written_in_few_large_calls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        let evs = numbered_events(20_000);
        let line = evs[0].to_json().len() + 1;
        for e in &evs {
            out.write(e).expect("buffered");
        }
        let s = out.stats();
        // Every call carried at least FLUSH_BYTES, and what is left is below it.
        let total = (line * evs.len()) as u64;
        assert!(s.writes >= 1 && s.writes <= total / FLUSH_BYTES as u64, "{s:?}");
        assert_eq!(s.bytes, s.written * line as u64);
        assert!(s.bytes + FLUSH_BYTES as u64 > total, "{s:?}");
        assert_eq!(read(&path).len() as u64, s.bytes);
        out.flush().expect("flushed");
        let s = out.stats();
        assert_eq!((s.written, s.bytes, s.buffered), (20_000, total, 0));
        assert!(s.writes <= total / FLUSH_BYTES as u64 + 1, "{s:?}");
    }

    /// Reads `path`, `path.1`, ... oldest first; checks every file ends on a line boundary.
    fn all_lines(path: &Path, max_files: usize) -> Vec<String> {
        let mut lines = Vec::new();
        for i in (0..=max_files).rev() {
            let p = if i == 0 { path.to_owned() } else { numbered(path, i) };
            let text = read(&p);
            assert!(text.is_empty() || text.ends_with('\n'), "{} ends mid-line", p.display());
            lines.extend(text.lines().map(str::to_owned));
        }
        lines
    }

    #[test]
    fn rotation_never_splits_a_line_and_loses_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let evs = numbered_events(1000);
        let want: Vec<String> = evs.iter().map(Event::to_json).collect();
        let line = want[0].len() as u64 + 1;
        // Not a multiple of the line length: each file holds 7 lines and some slack.
        let max_bytes = 7 * line + line / 2;
        let cfg = file_cfg(&path, &format!("max_bytes: {max_bytes}\nmax_files: 200\n"));
        let mut out = Output::build("archive", &cfg).expect("builds");
        // Flushes at uneven intervals, as batches arrive.
        for (i, e) in evs.iter().enumerate() {
            out.write(e).expect("buffered");
            if i % 13 == 0 || i % 29 == 0 {
                out.flush().expect("flushed");
            }
        }
        out.flush().expect("flushed");
        for i in 1..=200 {
            let len = std::fs::metadata(numbered(&path, i)).map(|m| m.len()).unwrap_or(0);
            assert!(len <= max_bytes, "{i}: {len}");
        }
        assert!(std::fs::metadata(&path).expect("current").len() <= max_bytes);
        assert_eq!(all_lines(&path, 200), want);
        let s = out.stats();
        assert_eq!(s.written, 1000);
        assert_eq!(s.rotations, 1000_u64.div_ceil(7) - 1);
    }

    #[test]
    fn rotation_deletes_files_beyond_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let evs = numbered_events(100);
        let want: Vec<String> = evs.iter().map(Event::to_json).collect();
        let line = want[0].len() as u64 + 1;
        let cfg = file_cfg(&path, &format!("max_bytes: {}\nmax_files: 3\n", 10 * line));
        let mut out = Output::build("archive", &cfg).expect("builds");
        for e in &evs {
            out.write(e).expect("buffered");
        }
        // One write-out of 100 lines: rotation happens inside it, between lines.
        out.flush().expect("flushed");
        assert!(!numbered(&path, 4).exists());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        // The newest 40 lines survive, in order, 10 per file.
        assert_eq!(all_lines(&path, 3), want[60..]);
        for i in 1..=3 {
            assert_eq!(read(&numbered(&path, i)).lines().count(), 10);
        }
        assert_eq!(out.stats().rotations, 9);
        assert_eq!(out.stats().written, 100);
    }

    #[test]
    fn a_line_longer_than_max_bytes_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let cfg = file_cfg(&path, "max_bytes: 10\nmax_files: 10\n");
        let mut out = Output::build("archive", &cfg).expect("builds");
        let evs = numbered_events(3);
        for e in &evs {
            out.write(e).expect("buffered");
        }
        out.flush().expect("flushed");
        for (i, e) in evs.iter().enumerate() {
            let p = if i == 2 { path.clone() } else { numbered(&path, 2 - i) };
            assert_eq!(read(&p), e.to_json() + "\n");
        }
    }

    #[test]
    fn max_files_zero_keeps_no_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let evs = numbered_events(30);
        let line = evs[0].to_json().len() + 1;
        let cfg = file_cfg(&path, &format!("max_bytes: {}\nmax_files: 0\n", 10 * line));
        let mut out = Output::build("archive", &cfg).expect("builds");
        for e in &evs {
            out.write(e).expect("buffered");
        }
        out.flush().expect("flushed");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        assert_eq!(read(&path).lines().count(), 10);
    }

    #[test]
    fn a_file_moved_away_is_followed_by_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        let evs = numbered_events(3);
        out.write(&evs[0]).expect("buffered");
        out.flush().expect("flushed");

        // logrotate's default: rename, and let the writer create a new file.
        let moved = dir.path().join("events.jsonl-20251210");
        std::fs::rename(&path, &moved).expect("renamed");
        out.write(&evs[1]).expect("buffered");
        out.flush().expect("flushed");
        assert_eq!(read(&moved), evs[0].to_json() + "\n");
        assert_eq!(read(&path), evs[1].to_json() + "\n");
        assert_eq!(out.stats().reopens, 1);

        // Deleted outright: recreated.
        std::fs::remove_file(&path).expect("removed");
        out.write(&evs[2]).expect("buffered");
        out.flush().expect("flushed");
        assert_eq!(read(&path), evs[2].to_json() + "\n");
        assert_eq!(out.stats().reopens, 2);
    }

    #[test]
    fn a_truncated_file_is_measured_again_before_rotating() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let evs = numbered_events(10);
        let line = evs[0].to_json().len() as u64 + 1;
        let cfg = file_cfg(&path, &format!("max_bytes: {}\n", 6 * line));
        let mut out = Output::build("archive", &cfg).expect("builds");
        for e in &evs[..5] {
            out.write(e).expect("buffered");
        }
        out.flush().expect("flushed");
        // logrotate `copytruncate`: same inode, now empty.
        std::fs::File::create(&path).expect("truncated");
        for e in &evs[5..] {
            out.write(e).expect("buffered");
        }
        out.flush().expect("flushed");
        assert_eq!(out.stats().rotations, 0);
        assert_eq!(read(&path).lines().count(), 5);
    }

    #[test]
    fn existing_content_counts_toward_max_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let evs = numbered_events(2);
        let line = evs[0].to_json().len() as u64 + 1;
        std::fs::write(&path, evs[0].to_json() + "\n").expect("seeded");
        let cfg = file_cfg(&path, &format!("max_bytes: {}\n", line + 1));
        let mut out = Output::build("archive", &cfg).expect("builds");
        out.write(&evs[1]).expect("buffered");
        out.flush().expect("flushed");
        assert_eq!(read(&numbered(&path, 1)), evs[0].to_json() + "\n");
        assert_eq!(read(&path), evs[1].to_json() + "\n");
    }

    #[test]
    fn bad_settings_name_the_output() {
        let missing = Path::new("/nonexistent-logwarden-dir/events.jsonl");
        let err = Output::build("archive", &file_cfg(missing, "")).err().expect("no dir");
        let msg = err.to_string();
        assert!(msg.contains("output `archive`") && msg.contains("/nonexistent-logwarden-dir"));
        assert_eq!(err.kind(), "config");

        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = file_cfg(&dir.path().join("e.jsonl"), "max_bytes: 0\n");
        let msg = Output::build("archive", &cfg).err().expect("zero").to_string();
        assert!(msg.contains("output `archive`: `max_bytes`"), "{msg}");

        // A directory where the file should be: the open fails at build.
        let err = Output::build("archive", &file_cfg(dir.path(), "")).err().expect("a dir");
        assert_eq!(err.kind(), "io");
        assert!(err.to_string().contains("cannot open"), "{err}");
    }

    #[test]
    fn a_failing_destination_keeps_lines_until_a_flush_succeeds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("archive");
        std::fs::create_dir(&sub).expect("mkdir");
        let path = sub.join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        let evs = numbered_events(2);
        out.write(&evs[0]).expect("buffered");
        out.flush().expect("flushed");

        // The directory disappears: the reopen fails, the line stays buffered.
        std::fs::remove_dir_all(&sub).expect("removed");
        out.write(&evs[1]).expect("buffered");
        let err = out.flush().expect_err("no directory");
        assert_eq!(err.kind(), "io");
        assert!(!err.is_retriable());
        assert!(err.to_string().starts_with("output `archive`: cannot open"), "{err}");
        let before = out.stats();
        assert_eq!((before.written, before.buffered), (1, 1));

        // While failing, passing the threshold makes no call per event; at the cap, events are
        // dropped and counted.
        let mut offered = 0u64;
        while out.stats().dropped == 0 {
            out.write(&evs[1]).expect("buffered or dropped");
            offered += 1;
            assert!(offered < 10_000_000, "never dropped");
        }
        let s = out.stats();
        assert_eq!((s.writes, s.written), (before.writes, 1));
        assert_eq!(s.buffered + s.dropped, offered + 1);

        // Back again: everything buffered is written.
        std::fs::create_dir(&sub).expect("mkdir");
        out.flush().expect("flushed");
        let s = out.stats();
        assert_eq!((s.written, s.buffered), (1 + offered + 1 - s.dropped, 0));
        assert_eq!(read(&path).lines().count() as u64, s.written - 1);
    }

    #[test]
    fn dropping_the_output_writes_what_is_buffered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.jsonl");
        let mut out = Output::build("archive", &file_cfg(&path, "")).expect("builds");
        out.write(&numbered_events(1)[0]).expect("buffered");
        drop(out);
        assert_eq!(read(&path).lines().count(), 1);
    }
}
