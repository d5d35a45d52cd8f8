//! Snapshots: the state detection and routing keep in memory (detector groups, dedup windows,
//! notification groups) as versioned bytes, for the daemon to commit in the same transaction as
//! the file positions they correspond to (DESIGN section 6).
//!
//! Every snapshot starts with a 4-byte header: `L`, `W`, a byte naming what it holds (one per
//! behaviour, the engine, the router) and the format version of that thing. The body after it
//! is [postcard]: compact (varints, no field names) and fast, which matters at a million groups
//! a second. Postcard is not self-describing, so a change to a snapshot's shape must come with
//! a new version and, where old snapshots are worth keeping, a decoder for the old one; a
//! version this build does not know is refused with [`SnapshotError::Version`], never guessed
//! at.
//!
//! Decoding never trusts the bytes: lengths are checked before use, postcard caps what a length
//! prefix can make it allocate up front, and a snapshot that decodes but does not fit the
//! detector or router it is restored into (more groups than the rule allows, an index out of
//! range) is [`SnapshotError::Invalid`]. Restores are all or nothing.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::Sym;

/// Why a snapshot could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not start with the header of this kind of snapshot (another kind's
    /// snapshot, or not a snapshot at all).
    #[error("{what} snapshot: bad header (not a logwarden {what} snapshot)")]
    Header {
        /// What was being restored (`threshold`, `engine`, `router`).
        what: &'static str,
    },
    /// Written in a format version this build does not read (a newer logwarden's, usually).
    #[error("{what} snapshot: format version {found}, this build reads version {supported}")]
    Version {
        /// What was being restored.
        what: &'static str,
        /// The version in the header.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The body does not decode (truncated or damaged).
    #[error("{what} snapshot does not decode: {detail}")]
    Decode {
        /// What was being restored.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The body decodes but does not fit what it is restored into.
    #[error("{what} snapshot is inconsistent: {detail}")]
    Invalid {
        /// What was being restored.
        what: &'static str,
        /// What does not fit.
        detail: String,
    },
    /// The state could not be encoded (a bug: every snapshot type is encodable).
    #[error("{what} snapshot does not encode: {detail}")]
    Encode {
        /// What was being snapshotted.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
    /// One rule's state failed: which rule.
    #[error("rule `{rule}`: {source}")]
    Rule {
        /// The rule's id.
        rule: String,
        /// What failed.
        #[source]
        source: Box<SnapshotError>,
    },
}

impl SnapshotError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SnapshotError::Header { .. } => "header",
            SnapshotError::Version { .. } => "version",
            SnapshotError::Decode { .. } => "decode",
            SnapshotError::Invalid { .. } => "invalid",
            SnapshotError::Encode { .. } => "encode",
            SnapshotError::Rule { source, .. } => source.kind(),
        }
    }

    pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> SnapshotError {
        SnapshotError::Invalid { what, detail: detail.into() }
    }
}

/// Header length: `L`, `W`, kind, version.
const HEADER: usize = 4;

/// What a snapshot holds: its header's kind byte, and its name for errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Format {
    /// The name errors use.
    pub what: &'static str,
    /// The header's kind byte.
    pub tag: u8,
    /// The version this build writes and reads.
    pub version: u8,
}

impl Format {
    /// Appends the header and `body` to `out`.
    pub fn write<T: Serialize + ?Sized>(
        self,
        body: &T,
        out: &mut impl Bytes,
    ) -> Result<(), SnapshotError> {
        self.header(out);
        self.append(body, out)
    }

    /// Appends the header alone (for a body written in pieces).
    pub fn header(self, out: &mut impl Bytes) {
        out.put(&[b'L', b'W', self.tag, self.version]);
    }

    /// Appends one postcard value (part of a body written in pieces).
    pub fn append<T: Serialize + ?Sized>(
        self,
        value: &T,
        out: &mut impl Bytes,
    ) -> Result<(), SnapshotError> {
        postcard::serialize_with_flavor(value, Append(out))
            .map_err(|e| SnapshotError::Encode { what: self.what, detail: e.to_string() })
    }

    /// Checks the header and returns the body.
    pub fn body(self, bytes: &[u8]) -> Result<&[u8], SnapshotError> {
        let Some((head, body)) = bytes.split_first_chunk::<HEADER>() else {
            return Err(SnapshotError::Header { what: self.what });
        };
        if head[..3] != [b'L', b'W', self.tag] {
            return Err(SnapshotError::Header { what: self.what });
        }
        if head[3] != self.version {
            return Err(SnapshotError::Version {
                what: self.what,
                found: head[3],
                supported: self.version,
            });
        }
        Ok(body)
    }

    /// Decodes the whole body as one value: bytes left over are an error (a damaged length
    /// could otherwise end the value early and pass).
    pub fn read<'a, T: Deserialize<'a>>(self, bytes: &'a [u8]) -> Result<T, SnapshotError> {
        let (v, rest) = self.take(self.body(bytes)?)?;
        if !rest.is_empty() {
            return Err(SnapshotError::Decode {
                what: self.what,
                detail: format!("{} bytes after the end", rest.len()),
            });
        }
        Ok(v)
    }

    /// Decodes one value from the front of `bytes` (part of a body read in pieces).
    pub fn take<'a, T: Deserialize<'a>>(
        self,
        bytes: &'a [u8],
    ) -> Result<(T, &'a [u8]), SnapshotError> {
        postcard::take_from_bytes(bytes)
            .map_err(|e| SnapshotError::Decode { what: self.what, detail: e.to_string() })
    }
}

/// Postcard's output straight onto the end of a `Vec`: its own `to_extend` goes through
/// `Extend` a byte at a time, which cost a tenth of a large snapshot.
struct Append<'a, B: Bytes>(&'a mut B);

impl<B: Bytes> postcard::ser_flavors::Flavor for Append<'_, B> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.put(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.put_byte(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Where snapshot bytes are appended: a vector, or an [`Out`].
pub(crate) trait Bytes {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
    /// Appends one byte.
    fn put_byte(&mut self, byte: u8);
}

impl Bytes for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
    fn put_byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// Where an [`Out`] hands the bytes it does not keep: full parts in order, and later changes
/// to bytes already handed over (a length written after what it measures).
pub trait Spill {
    /// Takes the next part.
    fn write(&mut self, part: &[u8]) -> Result<(), String>;
    /// Overwrites the bytes at `at` (counted from the first byte written) with `bytes`.
    fn patch(&mut self, at: usize, bytes: &[u8]) -> Result<(), String>;
}

/// A snapshot being written: in memory, or handed to a [`Spill`] a part at a time as it is
/// made. A whole detector state of a million groups is tens of MB; spilled, it never is in
/// memory at once.
pub struct Out<'a> {
    buf: Vec<u8>,
    spill: Option<(&'a mut dyn Spill, usize)>,
    /// Bytes handed to the spill.
    spilled: usize,
    /// The spill's first error: nothing more is handed to it.
    error: Option<String>,
}

impl Out<'static> {
    /// In memory, after what `buf` holds.
    pub fn memory(buf: Vec<u8>) -> Out<'static> {
        Out { buf, spill: None, spilled: 0, error: None }
    }
}

impl<'a> Out<'a> {
    /// Handed to `spill` in parts of `part` bytes (the last shorter).
    pub fn spilling(spill: &'a mut dyn Spill, part: usize) -> Out<'a> {
        Out { buf: Vec::new(), spill: Some((spill, part.max(1))), spilled: 0, error: None }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.spilled + self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites the bytes at `at` with `bytes` (all written already).
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        let kept = at.max(self.spilled);
        if let Some(tail) = bytes.get(kept - at..) {
            let from = kept - self.spilled;
            if let Some(dst) = self.buf.get_mut(from..from + tail.len()) {
                dst.copy_from_slice(tail);
            }
        }
        if at < self.spilled {
            let head = &bytes[..(self.spilled - at).min(bytes.len())];
            if let (Some((spill, _)), None) = (&mut self.spill, &self.error) {
                self.error = spill.patch(at, head).err();
            }
        }
    }

    /// The bytes, for one in memory; for one spilled, hands over the rest and returns
    /// nothing, or the spill's error.
    pub fn finish(mut self) -> Result<Vec<u8>, SnapshotError> {
        match self.spill.take() {
            None => Ok(self.buf),
            Some((spill, _)) => {
                if self.error.is_none() && !self.buf.is_empty() {
                    self.error = spill.write(&self.buf).err();
                }
                match self.error {
                    None => Ok(Vec::new()),
                    Some(detail) => Err(SnapshotError::Encode { what: "state", detail }),
                }
            }
        }
    }

    /// Hands full parts to the spill.
    fn spill_full_parts(&mut self) {
        let Some((spill, part)) = &mut self.spill else { return };
        let part = *part;
        if self.buf.len() < part {
            return;
        }
        let mut at = 0;
        while self.buf.len() - at >= part {
            if self.error.is_none() {
                self.error = spill.write(&self.buf[at..at + part]).err();
            }
            at += part;
        }
        self.buf.drain(..at);
        self.spilled += at;
    }
}

impl Bytes for Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.spill_full_parts();
    }
    fn put_byte(&mut self, byte: u8) {
        self.buf.push(byte);
        self.spill_full_parts();
    }
}

/// File paths while a snapshot is written: each distinct path once, entries by number. Most
/// kept events of a detector come from a handful of files, and a path costs 20 to 40 bytes
/// where its number costs one; restored entries share one copy of each path again, as the
/// events they came from did.
///
/// Numbers are given out while the entries are written (so the state is walked once, from
/// inside `Serialize` impls, hence the `RefCell`); the table is written after them.
#[derive(Debug, Default)]
pub(crate) struct PathIds {
    ids: RefCell<HashMap<Box<str>, u32, foldhash::fast::FixedState>>,
    /// The text address, length and number of the path numbered last: consecutive entries
    /// nearly always share one `Sym`, and comparing its address costs less than hashing it.
    /// (Only compared while the state it points into is borrowed, so an equal address is the
    /// same text.)
    last: std::cell::Cell<(usize, usize, u32)>,
    /// The path number last given by [`PathIds::id_of`], and what it was numbered here.
    last_path_id: std::cell::Cell<(u32, u32)>,
}

impl PathIds {
    /// 0 for no path, else the path's number (from 1).
    pub fn id(&self, path: Option<&Sym>) -> u32 {
        let Some(p) = path else { return 0 };
        let here = (p.as_str().as_ptr() as usize, p.len());
        let (addr, len, id) = self.last.get();
        if (addr, len) == here && id != 0 {
            return id;
        }
        let id = self.lookup(p.as_str());
        self.last.set((here.0, here.1, id));
        id
    }

    /// [`PathIds::id`] of a kept event's path number: consecutive entries nearly always share
    /// one, so the last is remembered and the table is only asked on a change.
    pub fn id_of(&self, p: crate::rule::behaviour::PathId) -> u32 {
        let (raw, id) = self.last_path_id.get();
        if raw == p.raw() && id != 0 {
            return id;
        }
        let id = self.id(p.sym().as_ref());
        self.last_path_id.set((p.raw(), id));
        id
    }

    fn lookup(&self, p: &str) -> u32 {
        let mut ids = self.ids.borrow_mut();
        if let Some(&id) = ids.get(p) {
            return id;
        }
        // More than 4 billion distinct paths cannot be tracked in memory to begin with.
        let id = u32::try_from(ids.len() + 1).unwrap_or(u32::MAX);
        ids.insert(Box::from(p), id);
        id
    }

    /// The paths in number order (the first is number 1).
    pub fn list(&self) -> Vec<Box<str>> {
        let ids = self.ids.borrow();
        let mut list: Vec<(&Box<str>, &u32)> = ids.iter().collect();
        list.sort_unstable_by_key(|(_, id)| **id);
        list.into_iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Writes the path table of a [`PathIds`] as it is when written: placed after the entries
/// that fill it.
#[derive(Debug)]
pub(crate) struct PathList<'a>(pub &'a PathIds);

impl Serialize for PathList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.list().iter().map(|p| &**p))
    }
}

/// File paths while a snapshot is read: the path of each number.
#[derive(Debug)]
pub(crate) struct Paths {
    syms: Vec<Sym>,
    what: &'static str,
}

impl Paths {
    /// The table as written by [`PathList`].
    pub fn new(what: &'static str, list: Vec<String>) -> Paths {
        Paths { syms: list.into_iter().map(Sym::from).collect(), what }
    }

    /// What is being restored (for errors).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The path numbered `id` (0: none).
    pub fn get(&self, id: u32) -> Result<Option<Sym>, SnapshotError> {
        let Some(i) = id.checked_sub(1) else { return Ok(None) };
        match self.syms.get(i as usize) {
            Some(s) => Ok(Some(s.clone())),
            None => Err(SnapshotError::invalid(self.what, format!("no path numbered {id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const F: Format = Format { what: "test", tag: b't', version: 1 };

    #[test]
    fn header_kind_and_version_are_checked() {
        let mut out = Vec::new();
        F.write(&(1u32, "x"), &mut out).unwrap();
        assert_eq!(&out[..4], b"LWt\x01");
        assert_eq!(F.read::<(u32, &str)>(&out).unwrap(), (1, "x"));
        let other = Format { tag: b'u', ..F };
        assert!(matches!(other.read::<(u32, &str)>(&out), Err(SnapshotError::Header { .. })));
        let newer = Format { version: 2, ..F };
        assert!(matches!(
            newer.read::<(u32, &str)>(&out),
            Err(SnapshotError::Version { found: 1, supported: 2, .. })
        ));
        assert!(matches!(F.read::<(u32, &str)>(&out[..2]), Err(SnapshotError::Header { .. })));
    }

    #[test]
    fn truncated_and_trailing_bytes_are_errors() {
        let mut out = Vec::new();
        F.write(&(1u32, "xyz"), &mut out).unwrap();
        let short = &out[..out.len() - 1];
        assert!(matches!(F.read::<(u32, &str)>(short), Err(SnapshotError::Decode { .. })));
        out.push(0);
        assert!(matches!(F.read::<(u32, &str)>(&out), Err(SnapshotError::Decode { .. })));
    }

    #[test]
    fn paths_are_numbered_once_and_resolve_back() {
        let a = Sym::from("/var/log/auth.log");
        let b = Sym::from("/var/log/secure");
        let ids = PathIds::default();
        assert_eq!((ids.id(Some(&a)), ids.id(None), ids.id(Some(&b))), (1, 0, 2));
        assert_eq!(ids.id(Some(&a.clone())), 1);
        let mut out = Vec::new();
        F.write(&PathList(&ids), &mut out).unwrap();
        let paths = Paths::new("test", F.read(&out).unwrap());
        assert_eq!(paths.get(2).unwrap(), Some(b));
        assert_eq!(paths.get(0).unwrap(), None);
        assert!(matches!(paths.get(3), Err(SnapshotError::Invalid { .. })));
    }
}
