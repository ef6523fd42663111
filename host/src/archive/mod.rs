//! The storage engine: segment files on local disk plus a SQLite index.
//!
//! Knows nothing of HTTP, pipelines or plugins. Its invariants (time rules, file formats, write
//! order, fsync policy, recovery) are written down in `docs/archive.md`; keep the two in step.

pub mod catalog;
pub mod check;
mod db;
mod dirlock;
pub mod export;
mod files;
pub mod index;
pub mod inferences;
mod live;
mod pins;
pub mod playback;
pub mod ranges;
mod recover;
pub mod remote;
mod source;
mod space;
pub mod synth;
pub mod writer;

pub use db::{FileMeta, FileVideo, SegmentRow, VideoConfig, VideoKind, VideoRow, VideoUpdate};
pub use dirlock::DataLock;
pub use pins::Pin;
pub use recover::Loss;
pub use source::{RemoteRead, RemoteReadFailed, SegmentReader};
pub use space::Notice;

use crate::time::{Duration90k, Time90k};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Runs that meet within this much wall time are continuous, not separated by a gap: less than
/// half a frame at up to 25 fps, it is the jitter of the wall-time estimate of two sessions
/// (see docs/archive.md, "Time"), not missing media.
pub const GAP_TOLERANCE_90K: i64 = 20 * 90;

/// Errors of the archive, each naming what went wrong for a one-line report.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Disk I/O failed (full, unwritable, vanished).
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error("archive index: {0}")]
    Db(#[from] rusqlite::Error),
    /// No archive at the data directory (read-only commands do not create one).
    #[error("no archive at {} (record something into it first)", .0.display())]
    NoArchive(PathBuf),
    /// The data directory was written by a newer or foreign program.
    #[error("archive at {} has schema version {found}, this openva reads {expected}", path.display())]
    Schema {
        /// Data directory.
        path: PathBuf,
        /// Version found.
        found: String,
        /// Version supported.
        expected: u32,
    },
    /// The named video does not exist.
    #[error("unknown video '{0}'")]
    UnknownVideo(String),
    /// The video has no segment file of that name (never had, or retention deleted it).
    #[error("video '{video}' has no segment file '{file}'")]
    UnknownSegment {
        /// Video name.
        video: String,
        /// The file name asked for.
        file: String,
    },
    /// A video name that is not allowed (it becomes a directory name).
    #[error("invalid video name '{0}': use {rule}", rule = crate::limits::VIDEO_NAME_RULE)]
    BadVideoName(String),
    /// Another process writes the data directory (see `dirlock`).
    #[error("data directory {} is in use by {holder}: one process writes a data directory at a time", dir.display())]
    DirInUse {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, e.g. `openva serve (pid 1234)`.
        holder: String,
    },
    /// Another process is recording this video (or registering or deleting it).
    #[error("video '{0}' is being written by another process")]
    Locked(String),
    /// A new video's name is taken (by a video of either kind).
    #[error("a video named '{0}' already exists")]
    VideoExists(String),
    /// The operation applies to archive videos only, and this is a File video.
    #[error("video '{video}' is a File video (one finished MP4): {reason}")]
    FileVideo {
        /// Video name.
        video: String,
        /// What cannot be done, and why.
        reason: &'static str,
    },
    /// A range request that cannot be satisfied (for reasons other than those below).
    #[error("{0}")]
    BadRange(String),
    /// A segment kept only in the remote tier cannot be read from it now.
    #[error("remote tier: {0}")]
    Remote(String),
    /// A range whose end comes before its start. (The archive names no query parameters:
    /// `api/error.rs` words these for the API.)
    #[error("end {end} is before start {start}")]
    EndBeforeStart {
        /// The range's start.
        start: Time90k,
        /// Its end.
        end: Time90k,
    },
    /// A range whose end is not after its start.
    #[error("end {end} is not after start {start}")]
    EndNotAfterStart {
        /// The range's start.
        start: Time90k,
        /// Its end.
        end: Time90k,
    },
    /// A range with an end but no start.
    #[error("end {end} needs a start")]
    EndWithoutStart {
        /// The range's end.
        end: Time90k,
    },
    /// A range longer than what asks for it allows.
    #[error("the range from {start} to {end} is longer than {limit}, the limit of {of}")]
    SpanTooLong {
        /// The range's start.
        start: Time90k,
        /// Its end.
        end: Time90k,
        /// The limit, in words ("24 hours").
        limit: &'static str,
        /// Whose limit it is ("a manifest", "precision day").
        of: &'static str,
    },
    /// A failure that is not the caller's doing (a broken invariant, an encoder that produced
    /// nothing): a server error, never a 400.
    #[error("internal error: {0}")]
    Internal(String),
    /// A video setting (title, retention, size cap, segment length) outside its rule.
    #[error("{0}")]
    BadSetting(String),
    /// The range holds no recorded media.
    #[error("no recorded media for video '{video}' between {start} and {end}")]
    NoData {
        /// Video name.
        video: String,
        /// Requested start.
        start: Time90k,
        /// Requested end.
        end: Time90k,
    },
    /// No picture was recorded at the time asked (or, without one, none at all yet).
    #[error("{}", match at {
        Some(t) => format!("video '{video}' has no recorded picture at {t}"),
        None => format!("video '{video}' has no recorded picture yet"),
    })]
    NoPicture {
        /// Video name.
        video: String,
        /// The time asked for.
        at: Option<Time90k>,
    },
    /// The index contradicts itself or the files; `openva check --repair` rebuilds it.
    #[error("archive is inconsistent: {0} (run `openva check --repair`)")]
    Corrupt(String),
    /// An MP4 could not be laid out.
    #[error("mp4: {0}")]
    Mp4(#[from] crate::mp4::file::FileError),
}

impl ArchiveError {
    /// Whether the error means the disk (or the index's disk) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            ArchiveError::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            ArchiveError::Db(rusqlite::Error::SqliteFailure(e, _)) => e.code == rusqlite::ErrorCode::DiskFull,
            _ => false,
        }
    }

    pub(crate) fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| ArchiveError::Io { what, path, source }
    }

    /// Recording into a File video: it is one finished file, not a growing archive.
    pub(crate) fn not_appendable(video: &str) -> Self {
        ArchiveError::FileVideo {
            video: video.to_owned(),
            reason: "it cannot be recorded into (a File video is not appendable; record into another name)",
        }
    }
}

/// Read connections per archive: queries beyond this many at once wait for one.
const READERS: usize = 4;

/// A read connection of the archive (see [`Archive::reader`]).
pub(crate) struct Reader<'a>(MutexGuard<'a, Option<Connection>>);

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        // `Archive::reader` only hands out a guard it has filled.
        self.0.as_ref().expect("a reader's connection is opened before it is handed out")
    }
}

/// Name of the space reserve in the data directory.
const RESERVE_FILE: &str = ".reserve";
/// Size of the space reserve: room for the last fragment and the index commit.
const RESERVE_BYTES: usize = 1 << 20;

/// An open archive: the data directory and its index. Cheap to share behind an `Arc`.
pub struct Archive {
    root: PathBuf,
    /// The writer's connection: every change goes through it.
    db: Mutex<Connection>,
    /// The index file the writer's connection has open (a repair builds a new one beside it).
    db_path: PathBuf,
    /// Read connections to it, opened on first use (see [`Archive::reader`]).
    readers: [Mutex<Option<Connection>>; READERS],
    /// Where a reader waits when every read connection is busy.
    next_reader: std::sync::atomic::AtomicUsize,
    /// This instance's staging directory for File videos, made on first use (see `files`).
    staging: Mutex<Option<files::Staging>>,
    /// Sequence numbers of sliding HLS windows, carried from one reload to the next.
    numbering: Mutex<playback::Numbering>,
    /// Open segments' rows as of their latest fragment, ahead of the index (see `live`).
    live: live::LiveTails,
    /// The data directory's lock, held by writers (`open_or_create`).
    _lock: Option<DataLock>,
    /// Segments being read, kept from retention and eviction (see `pins`).
    pins: pins::Pins,
    /// One disk-space eviction at a time, and what the current low-space episode has told
    /// (see `space`).
    space: Mutex<space::Episode>,
    /// One retention pass at a time (a writer's segment close, an update's immediate pass).
    retention: Mutex<()>,
    /// Who hears the archive's notices (see `space`).
    listener: Mutex<Option<space::Listener>>,
    /// Reads segments kept only in the remote tier (see `source`), once the host installs it.
    remote_reader: std::sync::OnceLock<std::sync::Arc<dyn source::RemoteRead>>,
    /// Local cache caps of videos in front of the remote tier, as their sinks set them (see
    /// `remote`).
    cache_caps: Mutex<std::collections::HashMap<String, u64>>,
}

impl Archive {
    fn with_conn(root: &Path, conn: Connection, lock: Option<DataLock>) -> Self {
        Archive {
            _lock: lock,
            pins: pins::Pins::default(),
            space: Mutex::new(space::Episode::default()),
            retention: Mutex::new(()),
            listener: Mutex::new(None),
            root: root.to_path_buf(),
            db_path: conn.path().map_or_else(|| root.join(db::DB_FILE), PathBuf::from),
            db: Mutex::new(conn),
            readers: Default::default(),
            next_reader: Default::default(),
            staging: Mutex::new(None),
            numbering: Mutex::new(playback::Numbering::default()),
            live: live::LiveTails::default(),
            remote_reader: std::sync::OnceLock::new(),
            cache_caps: Mutex::default(),
        }
    }

    /// Opens the archive at `root` for writing, creating the directory and index if needed:
    /// takes the data directory's lock (another process writing it is refused, see
    /// `dirlock`) and removes what a crash left of File videos being staged, registered or
    /// deleted.
    pub fn open_or_create(root: &Path) -> Result<Self, ArchiveError> {
        std::fs::create_dir_all(root.join("videos")).map_err(ArchiveError::io("creating", root))?;
        let lock = DataLock::acquire(root)?;
        let conn = db::open(&root.join(db::DB_FILE), true)?;
        let archive = Archive::with_conn(root, conn, Some(lock));
        files::remove_leftovers(&archive);
        Ok(archive)
    }

    /// Opens an existing archive; a missing one is an error rather than an empty new one.
    /// Changes nothing on disk (read-only commands and `check` use it).
    pub fn open_existing(root: &Path) -> Result<Self, ArchiveError> {
        if !root.join(db::DB_FILE).is_file() {
            return Err(ArchiveError::NoArchive(root.to_path_buf()));
        }
        let conn = db::open(&root.join(db::DB_FILE), false)?;
        Ok(Archive::with_conn(root, conn, None))
    }

    /// Makes sure the reserve file exists: space set aside so that a writer that hits a full
    /// disk can still close its segment and commit its index (see `release_reserve`).
    pub(crate) fn ensure_reserve(&self) -> Result<(), ArchiveError> {
        let p = self.root.join(RESERVE_FILE);
        if std::fs::metadata(&p).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
            return Ok(());
        }
        // Real zeros, not a sparse file: the point is to hold allocated blocks.
        std::fs::write(&p, vec![0u8; RESERVE_BYTES]).map_err(|e| {
            let _ = std::fs::remove_file(&p);
            ArchiveError::io("creating space reserve", &p)(e)
        })
    }

    /// Frees the reserve after a disk-full error, so the failing writer can finish cleanly (or
    /// an eviction commit its deletion). Returns whether there was one to free.
    pub(crate) fn release_reserve(&self) -> bool {
        let freed = std::fs::remove_file(self.root.join(RESERVE_FILE)).is_ok();
        if freed {
            tracing::warn!("disk full: released the space reserve (it pays for closing the archive cleanly)");
        }
        freed
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock means a panic elsewhere mid-transaction; SQLite rolled it back, so the
        // connection itself is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection for queries, apart from the writer's: in WAL mode it reads the last commit
    /// while the writer goes on, so no query — however long — delays a recording's commit
    /// (`docs/archive.md`, "Readers beside the writer"). It sees what the writer committed, not
    /// what a transaction in progress holds; the open segments' newest fragments are overlaid
    /// from `live` as before. A free connection is taken if there is one, else the caller
    /// waits its turn on one of them.
    pub(crate) fn reader(&self) -> Result<Reader<'_>, ArchiveError> {
        use std::sync::atomic::Ordering;
        let mut guard = self.readers.iter().find_map(|m| m.try_lock().ok()).unwrap_or_else(|| {
            let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
            self.readers[turn].lock().unwrap_or_else(|p| p.into_inner())
        });
        if guard.is_none() {
            *guard = Some(db::open_reader(&self.db_path)?);
        }
        Ok(Reader(guard))
    }

    /// Directory holding a video's segment files.
    pub fn video_dir(&self, name: &str) -> PathBuf {
        self.root.join("videos").join(name)
    }

    /// Absolute path of a segment file given its name relative to the data directory.
    pub fn segment_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Looks up a video by name.
    pub fn video(&self, name: &str) -> Result<VideoRow, ArchiveError> {
        db::video_by_name(&*self.reader()?, name)?.ok_or_else(|| ArchiveError::UnknownVideo(name.to_owned()))
    }

    /// All videos, by name.
    pub fn videos(&self) -> Result<Vec<VideoRow>, ArchiveError> {
        Ok(db::videos(&*self.reader()?)?)
    }

    /// Sets a video's title and description if it has none yet (AVA's creation properties).
    pub fn set_video_info(
        &self,
        name: &str,
        title: Option<&str>,
        description: Option<&str>,
    ) -> Result<(), ArchiveError> {
        Ok(db::set_video_info(&self.conn(), name, title, description)?)
    }

    /// Updates a video (AVA's video `PATCH`): its title and description, and an archive's
    /// recording settings (retention period, byte cap, segment length). This is the explicit
    /// act AVA's rule requires, since a pipeline naming an existing video never changes them. A
    /// writer recording the video applies a new segment length from its next segment; a new
    /// retention period or byte cap is applied to the closed segments at once (a user who
    /// lowers the cap because the disk is filling must not wait a segment for it). A change is
    /// logged; returns the video as it is now, with whether anything changed.
    pub fn update_video(&self, name: &str, update: &VideoUpdate) -> Result<(VideoRow, bool), ArchiveError> {
        validate_video_name(name)?;
        if let Some(s) = update.segment_length
            && !VideoConfig::segment_length_ok(s)
        {
            return Err(ArchiveError::BadSetting(format!(
                "segment length {} must be {}",
                s.to_iso_secs(),
                VideoConfig::SEGMENT_LENGTH_RULE
            )));
        }
        if update.retention.flatten().is_some_and(|r| r <= Duration90k::ZERO) {
            return Err(ArchiveError::BadSetting("a retention period must be positive".into()));
        }
        if update.max_bytes.flatten().is_some_and(|b| b <= 0) {
            return Err(ArchiveError::BadSetting("a size cap must be positive".into()));
        }
        for (what, value, max) in [("title", &update.title, 256), ("description", &update.description, 2048)] {
            if value.as_ref().and_then(Option::as_ref).is_some_and(|t| t.chars().count() > max) {
                return Err(ArchiveError::BadSetting(format!("a video's {what} is at most {max} characters")));
            }
        }
        let (v, changed) = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let done = db::update_video(&tx, name, update)?;
            tx.commit()?;
            done
        };
        if changed {
            tracing::info!(video = name, config = ?v.config, remote_tier = ?v.remote_tier, title = ?v.title, "video updated");
            if update.retention.is_some() || update.max_bytes.is_some() {
                recover::apply_retention(self, &v, Time90k::now())?;
            }
        }
        Ok((v, changed))
    }

    /// Totals of a video's recorded media (for the video resource's `hasData` and sizes). The
    /// end includes fragments written but not yet committed; the byte count is the index's.
    pub fn video_stats(&self, video_id: i64) -> Result<VideoStats, ArchiveError> {
        let mut stats = db::video_stats(&*self.reader()?, video_id)?;
        for row in self.live.of_video(video_id) {
            if row.frames > 0 {
                stats.last = Some(stats.last.map_or(row.end(), |l| l.max(row.end())));
            }
        }
        Ok(stats)
    }

    /// Segments of a video that overlap `[start, end)`, oldest first (all if unbounded). Open
    /// segments include every fragment written so far, committed to the index or not.
    pub fn segments(
        &self,
        video_id: i64,
        start: Option<Time90k>,
        end: Option<Time90k>,
    ) -> Result<Vec<SegmentRow>, ArchiveError> {
        self.segments_of(video_id, start, end, true)
    }

    /// [`Archive::segments`], with `idx` left empty in the rows read from the index (rows of
    /// segments being recorded in this process carry theirs).
    pub(crate) fn segments_of(
        &self,
        video_id: i64,
        start: Option<Time90k>,
        end: Option<Time90k>,
        with_index: bool,
    ) -> Result<Vec<SegmentRow>, ArchiveError> {
        let mut rows = db::segments_starting(&*self.reader()?, video_id, start, end, with_index)?;
        self.live.overlay(&mut rows);
        Ok(db::overlapping(rows, start))
    }

    /// A receiver that changes whenever a recorder in this process writes a fragment or closes
    /// a segment of any video: what blocking playlist reloads wait on (then they compare
    /// [`Archive::recording_generation`] of their video).
    pub fn recorded_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.live.subscribe()
    }

    /// A receiver that moves when a segment being recorded is closed (or deleted): what the
    /// uploader waits for, rather than every fragment of every camera.
    pub fn closed_segments(&self) -> tokio::sync::watch::Receiver<u64> {
        self.live.subscribe_closed()
    }

    /// A counter of the changes to the video's recording in this process (fragments written,
    /// segments closed): equal values mean nothing new was recorded in between.
    pub fn recording_generation(&self, video_id: i64) -> u64 {
        self.live.generation(video_id)
    }
}

/// Totals of one video's recorded media.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VideoStats {
    /// Segment files.
    pub segments: i64,
    /// Bytes in them.
    pub bytes: i64,
    /// Wall time of the first recorded frame.
    pub first: Option<Time90k>,
    /// Wall time just past the last recorded frame.
    pub last: Option<Time90k>,
}

/// Checks a video name: it becomes a directory name, so only a safe alphabet is allowed.
pub fn validate_video_name(name: &str) -> Result<(), ArchiveError> {
    if crate::limits::video_name_ok(name) { Ok(()) } else { Err(ArchiveError::BadVideoName(name.to_owned())) }
}

/// Takes the exclusive lock of a video (its directory's `.lock` file, `flock`, creating the
/// directory if needed): one writer per video, across processes. Held until the returned file
/// is dropped.
///
/// Deleting a video, and cleaning up after a crash, remove the lock file and the directory
/// while holding the lock; so a lock is only ours once the path still names the file we
/// locked. Otherwise the directory is made again and the lock retaken.
pub(crate) fn lock_video(dir: &Path, name: &str) -> Result<std::fs::File, ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(".lock");
    let mut attempts = 0;
    loop {
        attempts += 1;
        std::fs::create_dir_all(dir).map_err(ArchiveError::io("creating", dir))?;
        let lock = match std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 10 => continue,
            Err(e) => return Err(ArchiveError::io("opening", &path)(e)),
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(ArchiveError::Locked(name.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => return Err(ArchiveError::io("locking", &path)(e)),
        }
        let held = lock.metadata().map_err(ArchiveError::io("locking", &path))?;
        match std::fs::metadata(&path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok(lock),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("locking", &path)(e)),
        }
        if attempts >= 10 {
            return Err(ArchiveError::Locked(name.to_owned()));
        }
    }
}

/// fsyncs a directory so that a file created or removed in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(ArchiveError::io("syncing directory", dir))
}

/// Test helpers shared by the archive's unit tests.
#[cfg(test)]
pub(crate) mod test_dir {
    use std::path::PathBuf;

    /// A fresh directory under the system temp dir, removed when dropped.
    pub(crate) struct Tmp(pub(crate) PathBuf);

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// `openva-<module>-<name>-<pid>`, emptied first.
    pub(crate) fn tmp(module: &str, name: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("openva-{module}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Tmp(p)
    }
}
