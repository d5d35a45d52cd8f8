//! Rotation while logwarden was stopped: the file a checkpoint names is looked for beside the
//! path it was read under, under a rotated name (`auth.log.1`, `auth.log-20261207`, either
//! gzip-compressed), by its inode or, when it was copied or compressed, by the fingerprint of
//! its first bytes, as Vector and Filebeat find rotated files. A compressed copy is read here,
//! from the checkpointed offset in its decompressed bytes; a plain one is followed like any
//! open file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use flate2::read::MultiGzDecoder;

use super::{Cursor, FileId, Fill, Fingerprint, READ_CHUNK, SetAside, TailStats, frame};
use crate::event::{Sym, Timestamp};
use crate::parse::frame::NewlineFramer;
use crate::source::{Batch, Checkpoint};

/// The files beside `path` whose name is its own (less any rotation suffix) followed by `.`
/// or `-`: every name logrotate, savelog and newsyslog give a rotated copy. In name order, so
/// the search is deterministic.
pub(super) fn siblings(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let stem = stem(name);
    let Ok(entries) =
        std::fs::read_dir(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
    else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.len() > stem.len()
                    && n.starts_with(stem)
                    && matches!(n.as_bytes()[stem.len()], b'.' | b'-')
                    && p != path
            })
        })
        .collect();
    out.sort();
    out
}

/// A file name without rotation suffixes: `auth.log.2.gz` and `auth.log-20261207` are
/// `auth.log`'s.
fn stem(name: &str) -> &str {
    let mut stem = name;
    loop {
        let before = stem;
        stem = stem.strip_suffix(".gz").unwrap_or(stem);
        if let Some((head, tail)) = stem.rsplit_once(['.', '-'])
            && !head.is_empty()
            && !tail.is_empty()
            && tail.bytes().all(|b| b.is_ascii_digit())
        {
            stem = head;
        }
        if stem == before {
            return stem;
        }
    }
}

/// Where a checkpointed file's copy was found.
pub(super) enum Copy {
    /// Renamed or copied, uncompressed: followed as an open file.
    Plain(File, PathBuf),
    /// Compressed: read through a decompressor.
    Gzip(PathBuf),
}

/// The copy, among `siblings`, of the file with identity `id` and first bytes `fp`: the same
/// inode with the same first bytes, else a plain file with the same first bytes, else (when
/// `gzip`) a gzip file whose decompressed first bytes are the same. Siblings that cannot be
/// read are passed over.
pub(super) fn find(siblings: &[PathBuf], id: FileId, fp: &Fingerprint, gzip: bool) -> Option<Copy> {
    let metas: Vec<(&PathBuf, std::fs::Metadata)> =
        siblings.iter().filter_map(|p| std::fs::metadata(p).ok().map(|m| (p, m))).collect();
    let same = |file: &File| Fingerprint::read(file, fp.len).is_ok_and(|now| now == *fp);
    for (path, meta) in &metas {
        if FileId::of(meta) == id
            && let Ok(file) = File::open(path)
            && same(&file)
        {
            return Some(Copy::Plain(file, (*path).clone()));
        }
    }
    for (path, meta) in &metas {
        if meta.len() < fp.len || meta.nlink() == 0 {
            continue;
        }
        let Ok(file) = File::open(path) else { continue };
        if is_gzip(&file) {
            if gzip && gz_head(path, fp.len).is_ok_and(|head| Fingerprint::of(&head) == *fp) {
                return Some(Copy::Gzip((*path).clone()));
            }
        } else if same(&file) {
            return Some(Copy::Plain(file, (*path).clone()));
        }
    }
    None
}

fn is_gzip(file: &File) -> bool {
    let mut magic = [0u8; 2];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut magic, 0).is_ok() && magic == [0x1f, 0x8b]
}

/// The first `n` decompressed bytes of a gzip file (fewer if it is shorter).
fn gz_head(path: &Path, n: u64) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n as usize);
    MultiGzDecoder::new(BufReader::new(File::open(path)?)).take(n).read_to_end(&mut head)?;
    Ok(head)
}

/// The unread end of a rotated file found compressed, read from its checkpointed offset.
pub(super) struct Rescue {
    /// The original file's checkpoint key, kept so a restart mid-way resumes it.
    key: String,
    /// The path the original was followed under (its checkpoints keep it).
    pub(super) followed: PathBuf,
    source: Sym,
    /// The compressed copy, for messages.
    pub(super) copy: PathBuf,
    reader: Box<dyn Read + Send>,
    framer: NewlineFramer,
    buf: BytesMut,
    /// Decompressed bytes read so far, from the start of the file.
    pos: u64,
    committed: u64,
    line: u64,
    eof: bool,
}

impl Rescue {
    /// Opens `copy` and skips the `offset` bytes already read; `None` when the copy ends
    /// before it (nothing left to read).
    pub(super) fn open(
        copy: &Path,
        key: String,
        followed: &Path,
        offset: u64,
        max_line: usize,
    ) -> io::Result<Option<Rescue>> {
        let mut reader: Box<dyn Read + Send> =
            Box::new(MultiGzDecoder::new(BufReader::new(File::open(copy)?)));
        let skipped = io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        if skipped < offset {
            return Ok(None);
        }
        Ok(Some(Rescue {
            key,
            followed: followed.to_owned(),
            source: Sym::from(followed.to_string_lossy().as_ref()),
            copy: copy.to_owned(),
            reader,
            framer: NewlineFramer::new(max_line),
            buf: BytesMut::new(),
            pos: offset,
            committed: offset,
            line: 0,
            eof: false,
        }))
    }

    /// Just after the last line read from it.
    pub(super) fn committed(&self) -> u64 {
        self.committed
    }

    /// Up to one batch of its lines; `Err` when the copy cannot be read further (a damaged
    /// gzip), `Ok((_, true))` once it has been read to its end.
    pub(super) fn read(
        &mut self,
        aside: &SetAside,
        stats: &mut TailStats,
    ) -> io::Result<(Option<Batch>, bool)> {
        let before = self.committed;
        let mut fill = Fill::new(Some(Timestamp::now()));
        let mut read = 0;
        loop {
            let cursor = Cursor {
                framer: &mut self.framer,
                buf: &mut self.buf,
                end: self.pos,
                committed: &mut self.committed,
                line: &mut self.line,
                eof: self.eof,
            };
            let framed = frame(cursor, (&self.source, &self.copy), &mut fill, aside, stats)?;
            if framed || self.eof || read >= super::MAX_BATCH_BYTES {
                break;
            }
            let filled = self.buf.len();
            self.buf.resize(filled + READ_CHUNK, 0);
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.buf.truncate(filled);
                    self.eof = true;
                }
                Ok(n) => {
                    self.buf.truncate(filled + n);
                    self.pos += n as u64;
                    read += n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.buf.truncate(filled),
                Err(e) => return Err(e),
            }
        }
        let done = self.eof && self.buf.is_empty();
        if self.committed == before {
            return Ok((None, done));
        }
        let checkpoint = Checkpoint {
            key: self.key.clone(),
            path: self.followed.clone(),
            offset: self.committed,
        };
        Ok((Some(Batch { records: fill.records, checkpoint: Some(checkpoint), done: None }), done))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn rotated_names_share_the_stem() {
        for (name, want) in [
            ("auth.log", "auth.log"),
            ("auth.log.1", "auth.log"),
            ("auth.log.2.gz", "auth.log"),
            ("auth.log-20261207", "auth.log"),
            ("auth.log-20261207.gz", "auth.log"),
            ("messages", "messages"),
            ("app-2.log", "app-2.log"),
            ("1", "1"),
        ] {
            assert_eq!(stem(name), want, "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        for n in ["auth.log", "auth.log.1", "auth.log-20261207.gz", "auth.logx", "kern.log"] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let names: Vec<String> = siblings(&dir.path().join("auth.log"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["auth.log-20261207.gz", "auth.log.1"]);
    }
}
