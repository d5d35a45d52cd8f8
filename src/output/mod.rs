//! Event outputs: every normalized event, optionally filtered (`where:`) and cut down to some
//! fields (`fields:`), appended as a JSON line to a size-rotated file or to standard output.
//!
//! An output serializes into an in-memory buffer and hands the buffer to its destination in
//! one write call when it passes [`FLUSH_BYTES`] and whenever the daemon calls
//! [`Output::flush`] (once per batch and at shutdown). A write call per event would cost a
//! system call per line, the difference between keeping up with rsyslog and not.
//!
//! ```yaml
//! outputs:
//!   archive:
//!     type: file
//!     path: /var/log/logwarden/events.jsonl
//!     max_bytes: 104857600   # rotate before the file would pass 100 MiB
//!     max_files: 5           # events.jsonl.1 (newest) .. events.jsonl.5
//!   ssh-failures:
//!     type: stdout
//!     where:
//!       failed: {event.dataset: sshd, event.outcome: failure}
//!       condition: failed
//!     fields: [user.name, source.ip]
//! ```

pub(crate) mod fields;
mod file;
pub(crate) mod filter;
mod stdout;

use std::io::Write;

use serde::Deserialize;

use crate::event::Event;
pub(crate) use fields::Projection;
use file::RotatingFile;
pub(crate) use filter::Where;
use stdout::StdoutTarget;

pub use file::{DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, FileOutputConfig};
pub use stdout::StdoutOutputConfig;

/// Buffered bytes that trigger a write-out without waiting for [`Output::flush`]: large enough
/// that the system call is noise next to serialization, small enough to stay in cache.
pub const FLUSH_BYTES: usize = 256 * 1024;

/// Most bytes an output holds while its destination keeps failing (a full disk, a closed
/// pipe); past it, new events are dropped and counted in [`OutputStats::dropped`] rather than
/// growing memory without bound.
pub const MAX_BUFFERED_BYTES: usize = 64 * FLUSH_BYTES;

/// One entry of the config's `outputs:` map, chosen by its `type` key.
///
/// Each variant's struct keeps `deny_unknown_fields`: serde removes the `type` tag before it
/// hands the remaining keys to the variant, so a stray key inside a variant is still an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputConfig {
    /// JSON lines appended to a file, rotated by size.
    File(FileOutputConfig),
    /// JSON lines on standard output.
    Stdout(StdoutOutputConfig),
}

impl OutputConfig {
    /// The `where:` detection block, if any.
    pub fn r#where(&self) -> Option<&serde_json::Value> {
        match self {
            OutputConfig::File(c) => c.r#where.as_ref(),
            OutputConfig::Stdout(c) => c.r#where.as_ref(),
        }
    }

    /// The `fields:` list, if any.
    pub fn fields(&self) -> Option<&[String]> {
        match self {
            OutputConfig::File(c) => c.fields.as_deref(),
            OutputConfig::Stdout(c) => c.fields.as_deref(),
        }
    }
}

/// Why an output could not be built or could not write.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// `where:` is not a detection block that compiles (an unknown selection in the condition,
    /// a bad modifier, no `condition`).
    #[error("output `{output}`: `where`: {problem}")]
    Where {
        /// The output's name.
        output: String,
        /// Every problem the rule compiler found, without positions (they would point into a
        /// document the user never wrote).
        problem: String,
    },
    /// `fields:` cannot be turned into one JSON object (a path both a value and a parent of
    /// another, a duplicate, an empty segment).
    #[error("output `{output}`: `fields`: {problem}")]
    Fields {
        /// The output's name.
        output: String,
        /// What is wrong.
        problem: String,
    },
    /// A setting out of range, or a file whose directory does not exist.
    #[error("output `{output}`: `{key}`: {problem}")]
    Config {
        /// The output's name.
        output: String,
        /// The config key at fault.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The OS refused an open, write, rename or stat. Buffered lines are kept for the next
    /// flush.
    // The cause is not repeated in the message: the daemon prints the chain (`{:#}`).
    #[error("output `{output}`: cannot {op} `{}`", path.display())]
    Io {
        /// The output's name.
        output: String,
        /// What was being done (`open`, `write`, `rotate`, `stat`).
        op: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl OutputError {
    /// A stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            OutputError::Where { .. } => "where",
            OutputError::Fields { .. } => "fields",
            OutputError::Config { .. } => "config",
            OutputError::Io { .. } => "io",
        }
    }

    /// Whether a later flush may succeed without an operator (a full disk may drain, a
    /// signal interrupt passes); a missing directory or a permission problem will not.
    pub fn is_retriable(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            OutputError::Io { source, .. } => !matches!(
                source.kind(),
                K::NotFound | K::PermissionDenied | K::IsADirectory | K::ReadOnlyFilesystem
            ),
            _ => false,
        }
    }
}

/// What an output has done since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputStats {
    /// Events whose line reached the destination.
    pub written: u64,
    /// Events `where:` did not match.
    pub filtered_out: u64,
    /// Events dropped because the destination kept failing and the buffer was full.
    pub dropped: u64,
    /// Events serialized but still in the buffer.
    pub buffered: u64,
    /// Bytes handed to the destination.
    pub bytes: u64,
    /// Write calls made to the destination: one per write-out, plus one per rotation inside
    /// it (and per short write, which regular files do not make).
    pub writes: u64,
    /// Size rotations (`path` renamed to `path.1`).
    pub rotations: u64,
    /// Reopens after the file was moved away or deleted from outside (logrotate).
    pub reopens: u64,
}

/// A built output: compiled filter and projection, buffer, destination.
pub struct Output {
    name: String,
    filter: Option<Where>,
    fields: Option<Projection>,
    target: Target,
    buf: Vec<u8>,
    /// Events whose lines are in `buf`.
    pending: u64,
    /// The last write-out failed: wait for the next [`Output::flush`] before trying again, so
    /// a dead destination costs one failed call per batch, not one per event.
    failing: bool,
    stats: OutputStats,
}

/// Where the buffer goes.
enum Target {
    File(RotatingFile),
    Stdout(StdoutTarget),
}

impl Output {
    /// Compiles `where:` and `fields:`, checks the settings and, for a file, that its directory
    /// exists, then opens the file for appending (so a permission problem shows at start).
    pub fn build(name: &str, cfg: &OutputConfig) -> Result<Output, OutputError> {
        let filter = cfg.r#where().map(|w| Where::compile(name, w)).transpose()?;
        let fields = cfg.fields().map(|f| Projection::compile(name, f)).transpose()?;
        let target = match cfg {
            OutputConfig::File(c) => Target::File(RotatingFile::open(name, c)?),
            OutputConfig::Stdout(_) => Target::Stdout(StdoutTarget::new(name)),
        };
        Ok(Output {
            name: name.to_owned(),
            filter,
            fields,
            target,
            buf: Vec::with_capacity(FLUSH_BYTES + 64 * 1024),
            pending: 0,
            failing: false,
            stats: OutputStats::default(),
        })
    }

    /// The output's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file a file output appends to.
    pub fn path(&self) -> Option<&std::path::Path> {
        match &self.target {
            Target::File(f) => Some(f.path()),
            Target::Stdout(_) => None,
        }
    }

    /// Appends the event's line to the buffer if `where:` matches it, and writes the buffer
    /// out once it passes [`FLUSH_BYTES`]. An error is the write-out's; the line stays
    /// buffered. While the destination is failing and the buffer is full
    /// ([`MAX_BUFFERED_BYTES`]), the event is dropped and counted, and `Ok` is returned: the
    /// failure itself was reported by the write-out.
    pub fn write(&mut self, e: &Event) -> Result<(), OutputError> {
        if let Some(w) = &self.filter
            && !w.matches(e)
        {
            self.stats.filtered_out += 1;
            return Ok(());
        }
        if self.buf.len() >= MAX_BUFFERED_BYTES {
            self.stats.dropped += 1;
            return Ok(());
        }
        match &self.fields {
            Some(p) => p.write(e, &mut self.buf),
            None => crate::event::write_json(e, &mut self.buf),
        }
        self.buf.push(b'\n');
        self.pending += 1;
        if self.buf.len() >= FLUSH_BYTES && !self.failing {
            return self.write_out();
        }
        Ok(())
    }

    /// Writes the buffer out (for a file: after reopening it if logrotate moved it away). Lines
    /// reach the OS, not necessarily the disk: this is an archive, not a durability point, and
    /// an fsync per batch would cap throughput at the disk's flush rate.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        self.write_out()
    }

    /// Counters so far.
    pub fn stats(&self) -> OutputStats {
        OutputStats { buffered: self.pending, ..self.stats }
    }

    fn write_out(&mut self) -> Result<(), OutputError> {
        let mut done = 0;
        let result = if self.buf.is_empty() {
            Ok(())
        } else {
            match &mut self.target {
                Target::File(f) => f.write_out(&self.buf, &mut done, &mut self.stats),
                Target::Stdout(s) => s.write_out(&self.buf, &mut done, &mut self.stats),
            }
        };
        if done == self.buf.len() {
            self.stats.written += self.pending;
            self.pending = 0;
            self.buf.clear();
            // A long outage may have grown the buffer to its cap; give the memory back.
            if self.buf.capacity() > 4 * FLUSH_BYTES {
                self.buf.shrink_to(FLUSH_BYTES + 64 * 1024);
            }
        } else if done > 0 {
            // Only on a failed write: count the whole lines that made it, keep the rest.
            let lines = memchr::memchr_iter(b'\n', &self.buf[..done]).count() as u64;
            self.stats.written += lines;
            self.pending -= lines;
            self.buf.drain(..done);
        }
        self.failing = result.is_err();
        result
    }
}

impl Drop for Output {
    /// Writes out what is left, as `BufWriter` does; errors cannot be reported here, so the
    /// daemon flushes explicitly at shutdown and this only catches an early return.
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

/// Writes `chunk` with as many write calls as it takes, advancing `done` by each call's
/// count so that a failure leaves the caller knowing exactly what reached `w`.
fn write_counted(
    w: &mut impl Write,
    chunk: &[u8],
    done: &mut usize,
    stats: &mut OutputStats,
) -> std::io::Result<()> {
    let mut off = 0;
    while off < chunk.len() {
        match w.write(&chunk[off..]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                off += n;
                *done += n;
                stats.bytes += n as u64;
                stats.writes += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::Timestamp;
    use crate::parse::Parser;
    use crate::parse::syslog::{SyslogOptions, SyslogParser};
    use crate::source::{Origin, RawRecord};

    /// Events from syslog lines, through the real parser.
    pub(crate) fn events(lines: &[&str]) -> Vec<Event> {
        let mut parser = SyslogParser::new(SyslogOptions {
            year: Some(2025),
            now: Some(Timestamp(0)),
            ..SyslogOptions::default()
        });
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let rec = RawRecord {
                bytes: bytes::Bytes::copy_from_slice(line.as_bytes()),
                origin: Origin {
                    source: crate::event::Sym::from_static("test"),
                    record: i as u64 + 1,
                    offset: 0,
                },
                received: None,
            };
            parser.parse(&rec, &mut out).expect("parses");
        }
        out
    }

    /// A mix of sshd failures, an sshd success and cron.
    pub(crate) const MIX: &[&str] = &[
        "<38>Dec 10 06:55:46 web-1 sshd[42]: Failed password for root from 203.0.113.7 port 4000 ssh2",
        "<78>Dec 10 06:56:01 web-1 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)",
        "<38>Dec 10 06:56:02 web-1 sshd[43]: Accepted password for alice from 198.51.100.4 port 5000 ssh2",
        "<38>Dec 10 06:56:03 web-1 sshd[44]: Failed password for invalid user admin from 203.0.113.8 port 4001 ssh2",
    ];

    pub(crate) fn yaml(text: &str) -> OutputConfig {
        serde_saphyr::from_str(text).expect("config parses")
    }

    fn stdout_cfg(text: &str) -> OutputConfig {
        yaml(&format!("type: stdout\n{text}"))
    }

    #[test]
    fn an_output_can_move_to_the_daemon_thread() {
        fn send<T: Send + 'static>() {}
        send::<Output>();
    }

    #[test]
    fn config_shapes_parse_and_unknown_keys_are_rejected() {
        let cfg = yaml(
            "type: file\npath: /tmp/x.jsonl\nmax_bytes: 1000\nmax_files: 2\n\
             where:\n  failed: {event.dataset: sshd, event.outcome: failure}\n  condition: failed\n\
             fields: [user.name, source.ip]\n",
        );
        let OutputConfig::File(f) = &cfg else { panic!("file expected: {cfg:?}") };
        assert_eq!(f.max_bytes, Some(1000));
        assert_eq!(f.max_files, Some(2));
        assert_eq!(cfg.fields(), Some(&["user.name".to_owned(), "source.ip".to_owned()][..]));
        let w = cfg.r#where().expect("where");
        assert_eq!(w["failed"]["event.outcome"], "failure");
        assert_eq!(w["condition"], "failed");

        assert!(matches!(yaml("type: stdout\n"), OutputConfig::Stdout(_)));
        for bad in
            ["type: stdout\npath: x\n", "type: file\npath: x\nmax_lines: 3\n", "type: kafka\n"]
        {
            let r: Result<OutputConfig, _> = serde_saphyr::from_str(bad);
            assert!(r.is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn bad_where_is_an_error_naming_the_output() {
        let cases = [
            ("where:\n  failed: {event.dataset: sshd}\n  condition: failed and nope\n", "nope"),
            (
                "where:\n  failed: {event.dataset|sounds_like: sshd}\n  condition: failed\n",
                "sounds_like",
            ),
            ("where:\n  failed: {event.dataset: sshd}\n", "condition"),
            ("where: [a, b]\n", "map"),
            ("where:\n  failed: {source.ip|cidr: not-a-net}\n  condition: failed\n", "CIDR"),
        ];
        for (text, needle) in cases {
            let err = Output::build("ssh-failures", &stdout_cfg(text)).err().expect(text);
            let msg = err.to_string();
            assert!(matches!(err, OutputError::Where { .. }), "{msg}");
            assert!(msg.starts_with("output `ssh-failures`: `where`: "), "{msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
            // Positions would point into a document the user never wrote.
            assert!(!msg.contains("line"), "{msg}");
            assert!(!err.is_retriable());
            assert_eq!(err.kind(), "where");
        }
    }

    #[test]
    fn stdout_writes_the_buffer_in_one_call_per_flush() {
        let cfg = stdout_cfg(
            "where:\n  failed: {event.dataset: sshd, event.outcome: failure}\n  condition: failed\nfields: [user.name]\n",
        );
        let mut out = Output::build("console", &cfg).expect("builds");
        for e in &events(MIX) {
            out.write(e).expect("buffered");
        }
        assert_eq!(out.stats().writes, 0);
        out.flush().expect("flushed");
        let s = out.stats();
        assert_eq!((s.written, s.filtered_out, s.buffered, s.writes), (2, 2, 0, 1));
        assert_eq!(
            s.bytes,
            (r#"{"user":{"name":"root"}}"#.len() + r#"{"user":{"name":"admin"}}"#.len() + 2) as u64
        );
    }
}
