//! Serving a plan's bytes: its header generated piece by piece as it is read, its media from the
//! segment files; by byte range (HTTP) or whole into a file.

use super::super::db;
use super::super::index;
use super::super::{Archive, ArchiveError, SegmentReader};
use super::Plan;
use super::piece::Piece;
use crate::mp4::file::{self, Tables};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A generated piece: its tables, and each chunk's (offset, length) in its segment file.
struct Generated {
    piece: usize,
    tables: Tables,
    sources: Vec<(u64, u64)>,
}

/// Tables of a plan's pieces as readers ask for them: indexes are read ahead in batches in
/// piece order (a reader of the header walks every piece once per table), and the last pieces
/// generated are kept.
#[derive(Default)]
struct Cache {
    /// Indexes read ahead, by piece.
    blobs: HashMap<usize, Arc<[u8]>>,
    /// Every index was read at the start (`Cache::all`): nothing is read or dropped later.
    all: bool,
    /// The pieces generated last, oldest first.
    recent: Vec<Generated>,
}

impl Cache {
    /// A cache holding every index the plan did not read while planning, read now: for a
    /// writer that must not depend on the index later (another process's retention may delete
    /// the rows meanwhile; the segment files are held open for the same reason).
    fn all(plan: &Plan, archive: &Archive) -> Result<Cache, ArchiveError> {
        let lazy: Vec<usize> = (0..plan.pieces.len()).filter(|&k| plan.pieces[k].idx.is_none()).collect();
        let ids: Vec<i64> = lazy.iter().map(|&k| plan.pieces[k].id).collect();
        let read: HashMap<i64, Arc<[u8]>> = db::segment_indexes(&*archive.reader()?, &ids)?
            .into_iter()
            .map(|(id, b)| (id, Arc::from(b.as_slice())))
            .collect();
        let mut blobs = HashMap::with_capacity(lazy.len());
        for k in lazy {
            let id = plan.pieces[k].id;
            let b = read.get(&id).cloned().ok_or_else(|| {
                ArchiveError::Corrupt(format!(
                    "{}: its sample index is gone from the index",
                    plan.pieces[k].path.display()
                ))
            })?;
            blobs.insert(k, b);
        }
        Ok(Cache { blobs, all: true, recent: Vec::new() })
    }
}

/// Pieces generated and kept by a reader (the header is read one table at a time, and media
/// reads follow one piece at a time).
const RECENT_PIECES: usize = 2;

/// A plan's pieces' tables, from the archive's index (`file::Pieces`).
struct Generator<'a> {
    plan: &'a Plan,
    archive: &'a Archive,
    cache: &'a mut Cache,
}

impl Generator<'_> {
    /// Generates piece `piece` (unless kept); returns its place in `cache.recent`.
    fn generate(&mut self, piece: usize) -> Result<usize, ArchiveError> {
        if let Some(i) = self.cache.recent.iter().position(|r| r.piece == piece) {
            return Ok(i);
        }
        let p = self.plan.pieces.get(piece).ok_or_else(|| ArchiveError::Internal(format!("no piece {piece}")))?;
        let blob = match &p.idx {
            Some(b) => b.clone(),
            None => self.blob(piece)?,
        };
        let d = index::decode_all(&blob).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", p.path.display())))?;
        let (tables, sources) = p.tables(&d)?;
        if self.cache.recent.len() >= RECENT_PIECES {
            self.cache.recent.remove(0);
        }
        self.cache.recent.push(Generated { piece, tables, sources });
        Ok(self.cache.recent.len() - 1)
    }

    fn blob(&mut self, piece: usize) -> Result<Arc<[u8]>, ArchiveError> {
        if let Some(b) = self.cache.blobs.get(&piece) {
            return Ok(b.clone());
        }
        if self.cache.all {
            return Err(ArchiveError::Internal(format!("piece {piece}'s index was not read")));
        }
        // This piece and the next ones whose indexes were not read while planning.
        let pieces = &self.plan.pieces;
        let ahead: Vec<usize> =
            (piece..pieces.len()).filter(|&k| pieces[k].idx.is_none()).take(db::INDEX_BATCH).collect();
        let ids: Vec<i64> = ahead.iter().map(|&k| pieces[k].id).collect();
        let read: HashMap<i64, Vec<u8>> = db::segment_indexes(&*self.archive.reader()?, &ids)?.into_iter().collect();
        self.cache.blobs.clear();
        for k in ahead {
            if let Some(b) = read.get(&pieces[k].id) {
                self.cache.blobs.insert(k, Arc::from(b.as_slice()));
            }
        }
        self.cache.blobs.get(&piece).cloned().ok_or_else(|| {
            ArchiveError::Corrupt(format!("{}: its sample index is gone from the index", pieces[piece].path.display()))
        })
    }
}

impl file::Pieces for Generator<'_> {
    type Error = ArchiveError;
    fn tables(&mut self, piece: usize) -> Result<&Tables, ArchiveError> {
        let i = self.generate(piece)?;
        Ok(&self.cache.recent[i].tables)
    }
}

/// Bytes a reader's cache may hold beyond the plan (indexes read ahead, kept pieces).
const READER_CACHE_BYTES: usize = db::INDEX_BATCH * 8 * 1024 + RECENT_PIECES * 64 * 1024;

impl Plan {
    /// Bytes of memory the plan and a reader of it hold, for budgets.
    pub fn heap_bytes(&self) -> usize {
        self.layout.heap_bytes()
            + self
                .pieces
                .iter()
                .map(|p| {
                    std::mem::size_of::<Piece>() + p.path.as_os_str().len() + p.idx.as_ref().map_or(0, |b| b.len())
                })
                .sum::<usize>()
            + READER_CACHE_BYTES
    }

    /// Feeds what identifies the file's bytes to `h`: its layout and, for each piece, the
    /// segment and which of its samples. A segment deleted by retention changes it, so a
    /// resumed download (If-Range, If-Match) never splices bytes of two different files.
    pub fn hash_identity(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        self.layout.hash_shape(h);
        for p in &self.pieces {
            (p.id, &p.path, p.video, p.audio.as_ref().map(|a| (a.entry, a.samples))).hash(h);
        }
    }

    /// Writes the file to `out` atomically (temporary name, then rename: no partial file ever
    /// has the final name), calling `progress` with the bytes written so far. With `sync` the
    /// file is fsynced before the rename, so it also survives a power loss right after; that
    /// waits for the disk, which dominates the time of a large export.
    pub fn write_to(
        &self,
        archive: &Archive,
        out: &Path,
        sync: bool,
        mut progress: impl FnMut(u64),
    ) -> Result<(), ArchiveError> {
        let tmp = out.with_file_name(format!(
            ".{}.partial",
            out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into())
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(ArchiveError::io("creating", &tmp))?;
            // Every segment opened before the first byte is copied: an open file stays readable
            // after it is unlinked, so retention running meanwhile (in the host, another
            // process, where this plan's pins do not reach) cannot cut the export short.
            // (A segment kept only in the remote tier is read from it as the copy reaches it.)
            let mut open: HashMap<&Path, SegmentReader> = HashMap::new();
            for p in &self.pieces {
                if !open.contains_key(p.path.as_path()) {
                    open.insert(&p.path, archive.open_segment_path(&p.path)?);
                }
            }
            // The indexes too, for the same reason: read now, not as the header is written.
            let mut cache = Cache::all(self, archive)?;
            let mut scratch = file::Scratch::default();
            let mut buf = vec![0u8; 1 << 20];
            let mut done = 0u64;
            while done < self.layout.header_len() {
                let mut g = Generator { plan: self, archive, cache: &mut cache };
                let n = self.layout.read_header(done, &mut buf, &mut g, &mut scratch)?;
                if n == 0 {
                    return Err(ArchiveError::Internal("export header ended early".into()));
                }
                f.write_all(&buf[..n]).map_err(ArchiveError::io("writing", &tmp))?;
                done += n as u64;
                progress(done);
            }
            drop(buf);
            for (k, p) in self.pieces.iter().enumerate() {
                let i = Generator { plan: self, archive, cache: &mut cache }.generate(k)?;
                let Some(src) = open.get_mut(p.path.as_path()) else { continue };
                for &(offset, len) in &cache.recent[i].sources {
                    // File to file: std uses copy_file_range, so the bytes never pass through
                    // user space.
                    let n = match src.as_file() {
                        Some(local) => local
                            .seek(SeekFrom::Start(offset))
                            .and_then(|_| std::io::copy(&mut Read::by_ref(local).take(len), &mut f)),
                        None => src
                            .seek(SeekFrom::Start(offset))
                            .and_then(|_| std::io::copy(&mut Read::by_ref(src).take(len), &mut f)),
                    }
                    .map_err(ArchiveError::io("copying from segment", &p.path))?;
                    if n != len {
                        return Err(ArchiveError::Corrupt(format!(
                            "{} is shorter than its index (deleted by retention meanwhile?)",
                            p.path.display()
                        )));
                    }
                    done += n;
                }
                progress(done);
            }
            if done != self.layout.total_len() {
                return Err(ArchiveError::Internal(format!(
                    "export wrote {done} bytes of the {} planned",
                    self.layout.total_len()
                )));
            }
            if sync {
                f.sync_all().map_err(ArchiveError::io("syncing", &tmp))?;
            }
            std::fs::rename(&tmp, out).map_err(ArchiveError::io("renaming to", out))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Reads any byte range of a planned export without writing it anywhere: what an HTTP server
/// needs to answer `Range` requests. Tables are generated and segment files opened as the
/// reads reach them.
pub struct PlanReader {
    plan: Arc<Plan>,
    archive: Arc<Archive>,
    cache: Cache,
    scratch: file::Scratch,
    /// The segment file read last: pieces come in file order, so one open file at a time is
    /// enough and a long export never holds thousands of descriptors.
    file: Option<(PathBuf, SegmentReader)>,
}

impl PlanReader {
    /// A reader of `plan`'s bytes.
    pub fn new(archive: Arc<Archive>, plan: Arc<Plan>) -> Self {
        PlanReader { plan, archive, cache: Cache::default(), scratch: file::Scratch::default(), file: None }
    }

    /// Fills `buf` with the file's bytes from `pos` (fewer at the end of the file); returns how
    /// many. A segment shorter than its index (deleted by retention meanwhile) is an error.
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let (plan, archive) = (&*self.plan, &*self.archive);
        let layout = &plan.layout;
        let mut done = 0usize;
        let mut pos = pos;
        while done < buf.len() && pos < layout.total_len() {
            if pos < layout.header_len() {
                let mut g = Generator { plan, archive, cache: &mut self.cache };
                let n = layout.read_header(pos, &mut buf[done..], &mut g, &mut self.scratch)?;
                if n == 0 {
                    break;
                }
                done += n;
                pos += n as u64;
                continue;
            }
            let Some(piece) = layout.piece_at(pos) else { break };
            let Some((piece_start, _)) = layout.piece_media(piece) else { break };
            let i = Generator { plan, archive, cache: &mut self.cache }.generate(piece)?;
            // The chunk holding `pos`.
            let mut within = pos - piece_start;
            let mut found = None;
            for &(offset, len) in &self.cache.recent[i].sources {
                if within < len {
                    found = Some((offset + within, len - within));
                    break;
                }
                within -= len;
            }
            let Some((offset, left)) = found else {
                return Err(ArchiveError::Internal(format!("no chunk at byte {pos} of the export")));
            };
            let path = &plan.pieces[piece].path;
            if self.file.as_ref().is_none_or(|(p, _)| p != path) {
                let f = archive.open_segment_path(path)?;
                self.file = Some((path.clone(), f));
            }
            let Some((_, f)) = self.file.as_ref() else { break };
            let n = (left.min((buf.len() - done) as u64)) as usize;
            f.read_exact_at(&mut buf[done..done + n], offset).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ArchiveError::Corrupt(format!(
                    "{} is shorter than its index (deleted by retention meanwhile?)",
                    path.display()
                )),
                _ => ArchiveError::io("reading segment", path)(e),
            })?;
            done += n;
            pos += n as u64;
        }
        Ok(done)
    }
}
