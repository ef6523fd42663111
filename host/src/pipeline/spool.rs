//! A progressive MP4 (`ftyp`, `moov`, `mdat`) written from compressed video samples, for
//! re-encoding exports and the file sink's clips: samples spool to a file beside the output,
//! then the header is written and the spool copied after it (the header needs every sample's
//! size, and a long clip does not fit in memory).
//!
//! Both files are created fresh (any old entry of that name removed first, then created with
//! `O_EXCL`), so a symlink planted at either name is never followed.

use crate::mp4::file::{self, Chunk, Edit, Movie, Sample, Tables};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Samples per chunk of the output file (one `co64` entry each).
const CHUNK_SAMPLES: usize = 30;

/// Why an MP4 could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The samples cannot make a valid file (a sample entry without parameter sets…).
    #[error("{0}")]
    Malformed(String),
    /// Nothing was written before `finish`.
    #[error("no frame could be written")]
    Empty,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_owned(), source }
}

/// Creates `path` as a new file: whatever had that name (a stale file, a planted symlink) is
/// removed first, and the create refuses to follow a link made in between.
pub(crate) fn create_fresh(path: &Path) -> std::io::Result<std::fs::File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

/// An MP4 being written.
pub struct Mp4Spool {
    spool_path: PathBuf,
    spool: BufWriter<std::fs::File>,
    entry: Option<Vec<u8>>,
    width: u32,
    height: u32,
    samples: Vec<Sample>,
    /// Start time of the last sample while its duration is not known yet.
    open: Option<i64>,
    bytes: u64,
}

impl Mp4Spool {
    /// Starts a spool for the output `out` (the spool is `out` + `.spool`).
    pub fn new(out: &Path) -> Result<Self, SpoolError> {
        let spool_path = out.with_extension("spool");
        let f = create_fresh(&spool_path).map_err(io(&spool_path))?;
        Ok(Mp4Spool {
            spool_path,
            spool: BufWriter::with_capacity(1 << 20, f),
            entry: None,
            width: 0,
            height: 0,
            samples: Vec::new(),
            open: None,
            bytes: 0,
        })
    }

    /// The sample entry of the track (the first one set stays: an MP4 track here has one).
    pub fn set_entry(&mut self, entry: Vec<u8>, width: u32, height: u32) {
        if self.entry.is_none() {
            self.entry = Some(entry);
            (self.width, self.height) = (width, height);
        }
    }

    /// Whether the track's sample entry is set.
    pub fn has_entry(&self) -> bool {
        self.entry.is_some()
    }

    /// Appends one sample decoded at `at` (90 kHz, any origin that only grows within a range)
    /// and shown `cts` later; the previous sample's duration becomes the difference. Samples
    /// before the sample entry is set are skipped.
    pub fn push(&mut self, data: &[u8], key: bool, cts: i32, at: i64) -> Result<(), SpoolError> {
        if self.entry.is_none() || data.is_empty() {
            return Ok(());
        }
        let size = u32::try_from(data.len()).map_err(|_| SpoolError::Malformed("a sample above 4 GiB".into()))?;
        self.close_open(at);
        self.spool.write_all(data).map_err(io(&self.spool_path))?;
        self.samples.push(Sample { duration: 0, size, key, cts });
        self.bytes += u64::from(size);
        self.open = Some(at);
        Ok(())
    }

    fn close_open(&mut self, at: i64) {
        if let (Some(start), Some(last)) = (self.open.take(), self.samples.last_mut()) {
            last.duration = u32::try_from((at - start).max(1)).unwrap_or(u32::MAX);
        }
    }

    /// Ends the current range at `end`: the last sample lasts until then. The next push starts
    /// a new range (its times may restart anywhere).
    pub fn end_range(&mut self, end: i64) {
        self.close_open(end);
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.samples.len() as u64
    }

    /// Media bytes written so far (the file is this plus its header).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Writes the MP4 to `out` (header, then the spooled samples), fsyncs it and removes the
    /// spool. Returns the file size and shown duration.
    pub fn finish(mut self, out: &Path) -> Result<(u64, i64, u32, u32), SpoolError> {
        self.spool.flush().map_err(io(&self.spool_path))?;
        let Some(entry) = self.entry.take() else {
            return Err(SpoolError::Empty);
        };
        if self.samples.is_empty() {
            return Err(SpoolError::Empty);
        }
        let mut chunks = Vec::new();
        for c in self.samples.chunks(CHUNK_SAMPLES) {
            chunks.push(Chunk {
                entry: 0,
                samples: c.len() as u32,
                bytes: c.iter().map(|s| u64::from(s.size)).sum(),
                audio: false,
            });
        }
        let duration: u64 = self.samples.iter().map(|s| u64::from(s.duration)).sum();
        let cts = self.samples.iter().map(|s| s.cts);
        let cts_range = (cts.clone().min().unwrap_or(0), cts.max().unwrap_or(0));
        let mut tables = Tables { video: std::mem::take(&mut self.samples), audio: Vec::new(), chunks };
        let movie = Movie {
            entries: vec![entry],
            width: self.width,
            height: self.height,
            media_dur: duration,
            cts_range,
            edits: vec![Edit { media_time: 0, duration }],
            audio: None,
            pieces: vec![tables.counts()],
        };
        let malformed = |e: file::FileError| SpoolError::Malformed(e.to_string());
        let layout = file::layout(&movie).map_err(malformed)?;
        let header = layout.header_bytes(&mut tables).map_err(malformed)?;
        let result = (|| {
            let mut f = create_fresh(out).map_err(io(out))?;
            f.write_all(&header).map_err(io(out))?;
            let mut spool = std::fs::File::open(&self.spool_path).map_err(io(&self.spool_path))?;
            let n = std::io::copy(&mut spool, &mut f).map_err(io(out))?;
            if n != self.bytes {
                return Err(SpoolError::Io {
                    path: self.spool_path.clone(),
                    source: std::io::Error::other(format!("spool holds {n} bytes, {} written", self.bytes)),
                });
            }
            f.sync_all().map_err(io(out))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(out);
        }
        result.map(|()| (layout.total_len(), duration as i64, self.width, self.height))
    }
}

impl Drop for Mp4Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.spool_path);
    }
}
