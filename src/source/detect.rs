//! Opening an input and telling its format from its first bytes: gzip magic, then a JSON
//! object, a JSON array, or syslog text.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;

use crate::parse::Format;

/// How much of the (decompressed) input is examined to decide its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Why an input could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The file could not be opened or its first bytes read.
    // The cause is not repeated here: main prints the error chain (`{:#}`), which adds it.
    #[error("{path}")]
    Io {
        /// The input path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl DetectError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DetectError::Io { .. } => "io",
        }
    }
}

/// An opened input, positioned at its start, with its format.
pub struct Input {
    /// The decompressed bytes.
    pub reader: Box<dyn BufRead + Send>,
    /// The detected (or forced) format.
    pub format: Format,
    /// Whether the file was gzip-compressed.
    pub gzip: bool,
    /// Compressed bytes consumed so far, for progress reporting.
    pub consumed: Arc<AtomicU64>,
    /// The file's size on disk, if known.
    pub size: Option<u64>,
}

/// Counts bytes read from the underlying file (before decompression).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path` (`-` is standard input), decompressing gzip, and detects the format unless
/// `forced` names one.
pub fn open(path: &Path, forced: Option<Format>) -> Result<Input, DetectError> {
    let io = |source| DetectError::Io { path: path.display().to_string(), source };
    let consumed = Arc::new(AtomicU64::new(0));
    let (raw, size): (Box<dyn Read + Send>, Option<u64>) = if path == Path::new("-") {
        (Box::new(std::io::stdin()), None)
    } else {
        let f = File::open(path).map_err(io)?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(f), size)
    };
    let counted = Counting { inner: raw, count: consumed.clone() };
    let mut outer = BufReader::with_capacity(256 * 1024, counted);
    let gzip = outer.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(outer)))
    } else {
        Box::new(outer)
    };
    let format = match forced {
        Some(f) => f,
        // A truncated gzip header fails here; leave that error to the reader, which reports
        // it with the ledger, and guess syslog meanwhile.
        None => reader.fill_buf().map(sniff).unwrap_or(Format::Syslog),
    };
    Ok(Input { reader, format, gzip, consumed, size })
}

/// The format of a stream whose first bytes are `head`.
pub fn sniff(head: &[u8]) -> Format {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    let body = &head[start..];
    match body.first() {
        Some(b'[') => Format::CloudTrail,
        Some(b'{') => {
            // The S3 delivery envelope, or records one per line: both name CloudTrail's own
            // keys early. Anything else that is JSON is taken as ECS events.
            let first_line = body.split(|&b| b == b'\n').next().unwrap_or(body);
            let find = |needle: &[u8]| memchr::memmem::find(first_line, needle).is_some();
            if find(b"\"Records\"") || (find(b"\"eventName\"") && find(b"\"eventSource\"")) {
                Format::CloudTrail
            } else {
                Format::Json
            }
        }
        _ => Format::Syslog,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sniffs_each_format() {
        assert_eq!(sniff(b"  {\"Records\":[{\"eventVersion\":\"1.08\"}]}"), Format::CloudTrail);
        assert_eq!(sniff(b"\xEF\xBB\xBF[\n {\"eventName\":\"x\"}]"), Format::CloudTrail);
        assert_eq!(
            sniff(b"{\"eventSource\":\"iam.amazonaws.com\",\"eventName\":\"CreateUser\"}\n"),
            Format::CloudTrail
        );
        assert_eq!(
            sniff(b"{\"@timestamp\":\"2024-01-01T00:00:00Z\",\"message\":\"eventName\"}\n"),
            Format::Json
        );
        assert_eq!(sniff(b"Dec 10 06:55:46 LabSZ sshd[24200]: x"), Format::Syslog);
        assert_eq!(sniff(b"<34>1 2003-10-11T22:14:15.003Z h a - - - x"), Format::Syslog);
        assert_eq!(sniff(b""), Format::Syslog);
    }

    #[test]
    fn opens_gzip_transparently() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ct.json.gz");
        let mut gz =
            flate2::write::GzEncoder::new(File::create(&path)?, flate2::Compression::fast());
        gz.write_all(b"{\"Records\":[]}")?;
        gz.finish()?;
        let mut input = open(&path, None)?;
        assert!(input.gzip);
        assert_eq!(input.format, Format::CloudTrail);
        let mut text = String::new();
        input.reader.read_to_string(&mut text)?;
        assert_eq!(text, "{\"Records\":[]}");
        Ok(())
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = open(Path::new("/nonexistent/x.log"), None).err();
        assert_eq!(err.as_ref().map(ToString::to_string).as_deref(), Some("/nonexistent/x.log"));
        let cause = err.as_ref().and_then(std::error::Error::source).map(ToString::to_string);
        assert!(cause.is_some_and(|c| c.contains("No such file")));
    }
}
