//! Reading a segment's bytes wherever they are (`docs/remote.md`, "Reading").
//!
//! - A segment's file is on local disk until its local copy is evicted, which happens only
//!   after its remote copy is confirmed (`remote::evict_local_copies`). From then on its bytes
//!   are read from the remote tier, by byte ranges, through a [`RemoteRead`] the host installs
//!   (`Archive::set_remote_reader`). Readers open a segment with [`Archive::open_segment`] and
//!   never care which it is.
//! - The local file is tried first: eviction marks the row before it unlinks the file, so a
//!   reader that finds no file finds the mark, and a reader that opened the file before it
//!   was unlinked keeps reading it (an unlinked file stays readable while open).

use super::{Archive, ArchiveError};
use rusqlite::OptionalExtension;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

/// Why bytes of a remote-only segment could not be read: carried inside the `io::Error` a
/// [`RemoteRead`] returns, so that whoever answers a request can tell a store's failure (a
/// 502) from this host's own (`api/error.rs`).
#[derive(Debug, thiserror::Error)]
#[error("the remote tier cannot give {key} bytes {start}..{end}: {reason}")]
pub struct RemoteReadFailed {
    /// The object.
    pub key: String,
    /// First byte asked for.
    pub start: u64,
    /// Past the last.
    pub end: u64,
    /// What the store said, briefly (no response body, no URL query).
    pub reason: String,
}

impl RemoteReadFailed {
    /// The failure inside `e`, if it is one.
    pub fn in_io(e: &std::io::Error) -> Option<&RemoteReadFailed> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<RemoteReadFailed>())
    }
}

/// Reads byte ranges of remote objects (the remote tier's client, with its read cache).
pub trait RemoteRead: Send + Sync {
    /// Fills `buf` with the bytes of object `key` (of `size` bytes) from `offset`. Blocking:
    /// call it from a thread that may block (never a reactor thread's task).
    fn read_at(&self, key: &str, size: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

enum Inner {
    Local(std::fs::File),
    Remote { reader: Arc<dyn RemoteRead>, key: String },
}

/// A segment opened for reading: its local file, or its remote copy.
pub struct SegmentReader {
    inner: Inner,
    len: u64,
    pos: u64,
    /// What error messages name: the local path, or the object's key.
    name: PathBuf,
}

impl SegmentReader {
    /// A local file (also for callers that found the file themselves).
    pub fn local(file: std::fs::File, path: PathBuf) -> std::io::Result<SegmentReader> {
        let len = file.metadata()?.len();
        Ok(SegmentReader { inner: Inner::Local(file), len, pos: 0, name: path })
    }

    /// Bytes in the segment.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether its bytes come from the remote tier.
    pub fn is_remote(&self) -> bool {
        matches!(self.inner, Inner::Remote { .. })
    }

    /// The local file, when it is one: for copies that stay in the kernel (`copy_file_range`).
    pub fn as_file(&mut self) -> Option<&mut std::fs::File> {
        match &mut self.inner {
            Inner::Local(f) => Some(f),
            Inner::Remote { .. } => None,
        }
    }

    /// The local path or the remote key, for messages.
    pub fn name(&self) -> &std::path::Path {
        &self.name
    }

    /// Fills `buf` from byte `offset` (an error if the segment ends first).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match &self.inner {
            Inner::Local(f) => std::os::unix::fs::FileExt::read_exact_at(f, buf, offset),
            Inner::Remote { reader, key } => {
                if offset.saturating_add(buf.len() as u64) > self.len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{key}: {} bytes at {offset} run past its end ({})", buf.len(), self.len),
                    ));
                }
                reader.read_at(key, self.len, offset, buf)
            }
        }
    }
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(self.pos) as usize);
        if n == 0 {
            return Ok(0);
        }
        match &mut self.inner {
            Inner::Local(f) => {
                let n = std::os::unix::fs::FileExt::read_at(f, &mut buf[..n], self.pos)?;
                self.pos += n as u64;
                Ok(n)
            }
            Inner::Remote { .. } => {
                self.read_exact_at(&mut buf[..n], self.pos)?;
                self.pos += n as u64;
                Ok(n)
            }
        }
    }
}

impl Seek for SegmentReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let at = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match at {
            Some(n) => {
                self.pos = n;
                Ok(n)
            }
            None => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")),
        }
    }
}

impl Archive {
    /// Installs the remote tier's reader: segments whose local copy was evicted are read
    /// through it. Without one, they cannot be read (the host always installs one when it has
    /// a remote tier; eviction happens only then).
    pub fn set_remote_reader(&self, reader: Arc<dyn RemoteRead>) {
        let _ = self.remote_reader.set(reader);
    }

    /// [`Archive::open_segment`] of a segment file given by its absolute path.
    pub fn open_segment_path(&self, path: &std::path::Path) -> Result<SegmentReader, ArchiveError> {
        let rel = path.strip_prefix(&self.root).ok().and_then(|p| p.to_str()).ok_or_else(|| {
            ArchiveError::Internal(format!("{} is not a segment file of this archive", path.display()))
        })?;
        self.open_segment(rel)
    }

    /// Opens segment file `rel` (relative to the data directory) for reading, local or remote.
    pub fn open_segment(&self, rel: &str) -> Result<SegmentReader, ArchiveError> {
        let path = self.segment_path(rel);
        match std::fs::File::open(&path) {
            Ok(f) => return SegmentReader::local(f, path.clone()).map_err(ArchiveError::io("opening segment", &path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("opening segment", &path)(e)),
        }
        let remote: Option<(String, i64)> = self
            .reader()?
            .query_row(
                "SELECT r.key, r.bytes FROM local_evicted l JOIN remote_copy r ON r.segment_id = l.segment_id
                 JOIN segment s ON s.id = l.segment_id WHERE s.file = ?1",
                [rel],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((key, bytes)) = remote else {
            // Neither here nor evicted: deleted meanwhile (retention), as before.
            return Err(ArchiveError::io("opening segment", &path)(std::io::Error::from(std::io::ErrorKind::NotFound)));
        };
        let Some(reader) = self.remote_reader.get() else {
            return Err(ArchiveError::Remote(format!(
                "{rel} is kept only in the remote tier, and this process has no remote tier configured"
            )));
        };
        Ok(SegmentReader {
            inner: Inner::Remote { reader: reader.clone(), key: key.clone() },
            len: u64::try_from(bytes).unwrap_or(0),
            pos: 0,
            name: PathBuf::from(key),
        })
    }
}
