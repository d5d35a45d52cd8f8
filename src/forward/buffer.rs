//! The forwarder's on-disk buffer: batches of ECS JSON lines in the state database, in the
//! order they were enqueued, kept until the receiver acknowledged them.
//!
//! One redb table maps a sequence number to one batch (what one `enqueue` call handed over,
//! cut at `batch_max_events` and `batch_max_bytes`). Sequence numbers only grow: the next one is the largest stored
//! plus one, so the order survives a restart. A record is tagged with its format version, so
//! a change of format is a new tag rather than a silent misreading.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};

use super::ForwardError;

/// sequence -> [`VERSION`], event count (u32 LE), then the events' lines, each ending in `\n`.
const BUFFER: TableDefinition<u64, &[u8]> = TableDefinition::new("forward_buffer");
/// Small facts about this buffer (its instance id).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("forward_meta");
/// Format tag of a stored batch.
const VERSION: u8 = 1;
/// Version byte and event count.
const HEADER: usize = 5;

/// A stored batch, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number (the table key).
    pub seq: u64,
    /// How many events (lines) it holds.
    pub events: u32,
    /// The lines, each ending in `\n`.
    pub lines: Bytes,
}

impl Entry {
    /// The lines one by one, without their newlines.
    pub fn lines(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut rest = self.lines.clone();
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let end = memchr::memchr(b'\n', &rest).unwrap_or(rest.len());
            let line = rest.slice(..end);
            rest = rest.slice((end + 1).min(rest.len())..);
            Some(line)
        })
    }
}

/// A batch being built for [`Buffer::append`], already in its stored form.
#[derive(Debug)]
pub struct Pending {
    buf: Vec<u8>,
    events: u32,
}

impl Pending {
    /// An empty batch with room for `bytes` of lines.
    pub fn with_capacity(bytes: usize) -> Pending {
        let mut buf = Vec::with_capacity(HEADER + bytes);
        buf.push(VERSION);
        buf.extend_from_slice(&[0; 4]);
        Pending { buf, events: 0 }
    }

    /// Appends one line (without its newline; it must not contain one).
    pub fn push_line(&mut self, line: &[u8]) {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.events = self.events.saturating_add(1);
    }

    /// How many lines it holds.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Bytes of lines it holds.
    pub fn bytes(&self) -> usize {
        self.buf.len() - HEADER
    }

    fn finish(mut self) -> (u32, Vec<u8>) {
        self.buf[1..HEADER].copy_from_slice(&self.events.to_le_bytes());
        (self.events, self.buf)
    }
}

/// The buffer table in the shared state database, with its size kept in memory (counted once
/// at open, then updated by every append and removal).
#[derive(Debug)]
pub struct Buffer {
    db: Arc<crate::state::StateDb>,
    path: PathBuf,
    /// Next sequence number; only taken inside a write transaction, and redb runs one at a
    /// time, so keys are handed out in commit order.
    next: AtomicU64,
    events: AtomicU64,
    bytes: AtomicU64,
    instance: String,
}

impl Buffer {
    /// Opens the buffer in `db` (creating its tables), recovering the next sequence number and
    /// what is buffered. `path` names the file in errors.
    pub fn open(db: Arc<crate::state::StateDb>, path: PathBuf) -> Result<Buffer, ForwardError> {
        let err = db_error(&path);
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        let (next, events, bytes, instance) = {
            let table = txn.open_table(BUFFER).map_err(|e| err(e.into()))?;
            let next = match table.last().map_err(|e| err(e.into()))? {
                Some((k, _)) => k.value().saturating_add(1),
                None => 0,
            };
            let (mut events, mut bytes) = (0u64, 0u64);
            for item in table.iter().map_err(|e| err(e.into()))? {
                let (k, v) = item.map_err(|e| err(e.into()))?;
                let v = v.value();
                events += u64::from(header(&path, k.value(), v)?);
                bytes += (v.len() - HEADER) as u64;
            }
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let stored = meta
                .get("instance")
                .map_err(|e| err(e.into()))?
                .map(|v| String::from_utf8_lossy(v.value()).into_owned());
            let instance = match stored {
                Some(id) => id,
                None => {
                    // Names this buffer's messages apart from every other agent's (NATS
                    // de-duplicates retried publishes by message id).
                    let id = format!("{:016x}", rand::random::<u64>());
                    meta.insert("instance", id.as_bytes()).map_err(|e| err(e.into()))?;
                    id
                }
            };
            (next, events, bytes, instance)
        };
        txn.commit().map_err(|e| err(e.into()))?;
        drop(err);
        Ok(Buffer {
            db,
            path,
            next: AtomicU64::new(next),
            events: AtomicU64::new(events),
            bytes: AtomicU64::new(bytes),
            instance,
        })
    }

    /// Stores `batches` in one durable transaction, in order; on return they are on disk.
    pub fn append(&self, batches: Vec<Pending>) -> Result<(), ForwardError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let (mut events, mut bytes) = (0u64, 0u64);
        {
            let mut table = txn.open_table(BUFFER).map_err(|e| err(e.into()))?;
            for p in batches {
                if p.events == 0 {
                    continue;
                }
                let (n, buf) = p.finish();
                let seq = self.next.fetch_add(1, Ordering::SeqCst);
                table.insert(seq, buf.as_slice()).map_err(|e| err(e.into()))?;
                events += u64::from(n);
                bytes += (buf.len() - HEADER) as u64;
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        self.events.fetch_add(events, Ordering::SeqCst);
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        Ok(())
    }

    /// The oldest batches, in order, holding at most `max_events` events and `max_bytes` of
    /// lines in all, but always the oldest batch when there is one (a batch is never split).
    pub fn peek(&self, max_events: usize, max_bytes: usize) -> Result<Vec<Entry>, ForwardError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_read().map_err(|e| err(e.into()))?;
        let table = txn.open_table(BUFFER).map_err(|e| err(e.into()))?;
        let mut out: Vec<Entry> = Vec::new();
        let (mut events, mut bytes) = (0usize, 0usize);
        for item in table.iter().map_err(|e| err(e.into()))? {
            let (k, v) = item.map_err(|e| err(e.into()))?;
            let entry = decode(&self.path, k.value(), v.value())?;
            let n = entry.events as usize;
            if !out.is_empty() && (events + n > max_events || bytes + entry.lines.len() > max_bytes)
            {
                break;
            }
            events += n;
            bytes += entry.lines.len();
            out.push(entry);
            if events >= max_events || bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes `entries` (acknowledged by the receiver) in one durable transaction.
    pub fn remove(&self, entries: &[Entry]) -> Result<(), ForwardError> {
        let err = db_error(&self.path);
        let txn = self.db.begin_write().map_err(|e| err(e.into()))?;
        let (mut events, mut bytes) = (0u64, 0u64);
        {
            let mut table = txn.open_table(BUFFER).map_err(|e| err(e.into()))?;
            for e in entries {
                if table.remove(e.seq).map_err(|e| err(e.into()))?.is_some() {
                    events += u64::from(e.events);
                    bytes += e.lines.len() as u64;
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        self.events.fetch_sub(events, Ordering::SeqCst);
        self.bytes.fetch_sub(bytes, Ordering::SeqCst);
        Ok(())
    }

    /// Events buffered.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::SeqCst)
    }

    /// Bytes of lines buffered (redb's own overhead not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }

    /// A random id made when the buffer was first created and kept with it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The event count of a stored batch, after checking its format version.
fn header(path: &Path, seq: u64, v: &[u8]) -> Result<u32, ForwardError> {
    let corrupt = |detail: String| ForwardError::Corrupt { path: path.to_path_buf(), seq, detail };
    match v.first() {
        Some(&VERSION) if v.len() >= HEADER => {
            let mut n = [0u8; 4];
            n.copy_from_slice(&v[1..HEADER]);
            Ok(u32::from_le_bytes(n))
        }
        Some(&VERSION) => Err(corrupt(format!("{} bytes, shorter than its header", v.len()))),
        Some(other) => Err(corrupt(format!("format version {other} is not known to this build"))),
        None => Err(corrupt("empty record".to_owned())),
    }
}

fn decode(path: &Path, seq: u64, v: &[u8]) -> Result<Entry, ForwardError> {
    let events = header(path, seq, v)?;
    Ok(Entry { seq, events, lines: Bytes::copy_from_slice(&v[HEADER..]) })
}

fn db_error(path: &Path) -> impl Fn(redb::Error) -> ForwardError + '_ {
    move |e| ForwardError::Buffer { path: path.to_path_buf(), detail: e.to_string() }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn batch(lines: &[&str]) -> Pending {
        let mut p = Pending::with_capacity(64);
        for l in lines {
            p.push_line(l.as_bytes());
        }
        p
    }

    fn open(path: &Path) -> Buffer {
        Buffer::open(crate::state::open(path).unwrap(), path.to_path_buf()).unwrap()
    }

    #[test]
    fn appends_in_order_peeks_whole_batches_and_removes_what_was_acked() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(&dir.path().join("s.redb"));
        b.append(vec![batch(&["a", "b"]), batch(&["c"])]).unwrap();
        b.append(vec![batch(&["d", "e", "f"]), batch(&[])]).unwrap();
        assert_eq!((b.events(), b.bytes()), (6, 12));
        // Never split a batch, but always hand out the first one.
        let first = b.peek(1, usize::MAX).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].lines().collect::<Vec<_>>(), vec!["a", "b"]);
        let three = b.peek(3, usize::MAX).unwrap();
        assert_eq!(three.iter().map(|e| e.events).sum::<u32>(), 3);
        // The byte cap cuts too: "a\nb\n" is 4 bytes, "c\n" 2 more.
        assert_eq!(b.peek(100, 5).unwrap().len(), 1);
        assert_eq!(b.peek(100, 6).unwrap().len(), 2);
        b.remove(&three).unwrap();
        let rest = b.peek(100, usize::MAX).unwrap();
        let lines: Vec<Bytes> = rest.iter().flat_map(|e| e.lines().collect::<Vec<_>>()).collect();
        assert_eq!(lines, vec!["d", "e", "f"]);
        assert_eq!((b.events(), b.bytes()), (3, 6));
    }

    #[test]
    fn survives_reopening_with_sequence_size_and_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let instance = {
            let b = open(&path);
            b.append(vec![batch(&["one"]), batch(&["two"])]).unwrap();
            b.remove(&b.peek(1, usize::MAX).unwrap()).unwrap();
            b.instance().to_owned()
        };
        let b = open(&path);
        assert_eq!((b.events(), b.bytes(), b.instance()), (1, 4, instance.as_str()));
        b.append(vec![batch(&["three"])]).unwrap();
        let seqs: Vec<u64> = b.peek(10, usize::MAX).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2]);
    }

    #[test]
    fn unknown_format_versions_are_errors_naming_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let db = crate::state::open(&path).unwrap();
        {
            let txn = db.begin_write().unwrap();
            txn.open_table(BUFFER).unwrap().insert(7, [9u8, 0, 0, 0, 0].as_slice()).unwrap();
            txn.commit().unwrap();
        }
        let e = Buffer::open(db, path).err().unwrap();
        assert_eq!(e.kind(), "corrupt");
        assert!(e.to_string().contains("batch 7"), "{e}");
    }
}
