//! The SQLite index: schema, and the few queries the engine needs. WAL mode so readers
//! (export, ranges) never block the recorder.

use super::ArchiveError;
use super::index::Summary;
use crate::time::{Duration90k, Time90k};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

pub(crate) const DB_FILE: &str = "index.db";
pub(crate) const SCHEMA_VERSION: u32 = 12;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS video (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_90k INTEGER NOT NULL,
    segment_length_90k INTEGER NOT NULL,
    retention_90k INTEGER,
    max_bytes INTEGER,
    title TEXT,
    description TEXT,
    kind TEXT NOT NULL DEFAULT 'Archive' CHECK (kind IN ('Archive', 'File')),
    remote_tier INTEGER
);
CREATE TABLE IF NOT EXISTS sample_entry (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL UNIQUE,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    timescale INTEGER
);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES video(id),
    started_90k INTEGER NOT NULL,
    boot_id TEXT,
    mono_offset_90k INTEGER
);
CREATE TABLE IF NOT EXISTS segment (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES video(id),
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    file TEXT NOT NULL UNIQUE,
    open INTEGER NOT NULL,
    sample_entry_id INTEGER NOT NULL REFERENCES sample_entry(id),
    start_90k INTEGER NOT NULL,
    wall_dur_90k INTEGER NOT NULL,
    media_start_90k INTEGER NOT NULL,
    media_dur_90k INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    key_frames INTEGER NOT NULL,
    init_len INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    audio_entry_id INTEGER REFERENCES sample_entry(id),
    audio_start INTEGER NOT NULL DEFAULT 0,
    audio_frames INTEGER NOT NULL DEFAULT 0,
    audio_dur INTEGER NOT NULL DEFAULT 0,
    video_bytes INTEGER,
    video_chunks INTEGER,
    audio_bytes INTEGER,
    audio_chunks INTEGER,
    cts_min INTEGER,
    cts_max INTEGER,
    UNIQUE (run_id, seq)
);
CREATE INDEX IF NOT EXISTS segment_span
    ON segment (video_id, start_90k, run_id, seq, wall_dur_90k, bytes, open);
-- Sample indexes apart from the segment rows (see SEGMENT_INDEX_SCHEMA).
CREATE TABLE IF NOT EXISTS segment_index (
    segment_id INTEGER PRIMARY KEY REFERENCES segment(id) ON DELETE CASCADE,
    idx BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS garbage (file TEXT PRIMARY KEY);
"#;

/// Inferences recorded with a video (schema version 7; see `inferences`): a row per frame with
/// results, and a per-minute tally for timelines. They go with their video.
const INFERENCE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS inference (
    video_id INTEGER NOT NULL REFERENCES video(id) ON DELETE CASCADE,
    time_90k INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inference_time ON inference (video_id, time_90k);
CREATE TABLE IF NOT EXISTS inference_minute (
    video_id INTEGER NOT NULL REFERENCES video(id) ON DELETE CASCADE,
    minute INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (video_id, minute)
) WITHOUT ROWID;
"#;

/// The facts of a File video's MP4 (schema version 3). A separate table keeps the archive
/// videos' rows as they were; the media facts are nullable because `check --repair` can
/// re-register a file whose old row is lost without knowing them.
const FILE_VIDEO_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS file_video (
    video_id INTEGER PRIMARY KEY REFERENCES video(id),
    file TEXT NOT NULL UNIQUE,
    bytes INTEGER NOT NULL,
    duration_90k INTEGER,
    width INTEGER,
    height INTEGER,
    frames INTEGER
);
"#;

/// AVA's video `type`: what a video's media is, and so which operations apply to it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum VideoKind {
    /// A wall-clock-indexed recording that grows while a pipeline records into it.
    Archive,
    /// One finished MP4 (batch output), downloaded whole or by byte ranges; never appended to.
    File,
}

impl VideoKind {
    /// AVA's spelling, which is also how the index stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoKind::Archive => "Archive",
            VideoKind::File => "File",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "Archive" => Some(VideoKind::Archive),
            "File" => Some(VideoKind::File),
            _ => None,
        }
    }
}

/// What is known of a finished MP4 when it is registered.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// Presentation duration, 90 kHz ticks.
    pub duration_90k: i64,
    /// Display width.
    pub width: u32,
    /// Display height.
    pub height: u32,
    /// Number of video frames.
    pub frames: u64,
}

/// Where a File video's MP4 is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileVideo {
    /// The MP4's path relative to the data directory (`videos/<name>/content.mp4`).
    pub file: String,
    /// Its length: the file never changes once registered, so a different length is damage.
    pub bytes: u64,
    /// Media facts given at registration; `None` when the row was rebuilt by `check --repair`.
    pub meta: Option<FileMeta>,
}

/// A video (AVA's resource): a named archive that grows while it is recorded, or one finished
/// MP4 (see [`VideoKind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoRow {
    /// Row id.
    pub id: i64,
    /// Unique name; also the directory name.
    pub name: String,
    /// Recording settings.
    pub config: VideoConfig,
    /// AVA's `title`, set when the video is created.
    pub title: Option<String>,
    /// AVA's `description`, set when the video is created.
    pub description: Option<String>,
    /// When the video was created.
    pub created: Time90k,
    /// Archive or File.
    pub kind: VideoKind,
    /// The MP4 of a File video (`None` for archives).
    pub file: Option<FileVideo>,
    /// Whether its closed segments are copied to the host's remote tier: `None` follows the
    /// host (`--remote-videos`; `docs/remote.md`).
    pub remote_tier: Option<bool>,
}

/// Recording settings of a video, as AVA's video sink and archival properties give them
/// (unused by File videos, which store zeros).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoConfig {
    /// Target segment length (rotation happens at the first keyframe after it).
    pub segment_length: Duration90k,
    /// Delete segments older than this.
    pub retention: Option<Duration90k>,
    /// Delete oldest segments while the video holds more bytes than this.
    pub max_bytes: Option<i64>,
}

impl VideoConfig {
    /// AVA's rule for a segment length: 30 seconds to 5 minutes in steps of 30 seconds.
    pub const SEGMENT_LENGTH_RULE: &'static str =
        "30 seconds to 5 minutes in steps of 30 seconds (PT30S, PT1M, … PT5M)";

    /// Whether `d` obeys [`Self::SEGMENT_LENGTH_RULE`].
    pub fn segment_length_ok(d: Duration90k) -> bool {
        const STEP: i64 = 30 * crate::time::TICKS_PER_SEC;
        (STEP..=10 * STEP).contains(&d.0) && d.0 % STEP == 0
    }

    /// AVA's rule for a retention period given through its interfaces (topologies, the video
    /// resource): whole days from 1 day to 10 years. `openva record --retention` is freer.
    pub const RETENTION_RULE: &'static str = "1 day to 10 years (P1D to P3650D)";

    /// Bytes of a size cap written as a positive whole number of MiB (how topologies and the
    /// video resource give it), or `None` if `text` is not one.
    pub fn bytes_of_mib(text: &str) -> Option<u64> {
        text.trim().parse::<u64>().ok().filter(|m| *m > 0).and_then(|m| m.checked_mul(1024 * 1024))
    }

    /// Whether `d` obeys [`Self::RETENTION_RULE`].
    pub fn retention_ok(d: Duration90k) -> bool {
        (Duration90k::from_days(1)..=Duration90k::from_days(3650)).contains(&d)
    }
}

/// One segment file as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentRow {
    /// Row id.
    pub id: i64,
    /// Owning video.
    pub video_id: i64,
    /// Run (RTSP session) the segment belongs to.
    pub run_id: i64,
    /// Sequence number within the run, from 0.
    pub seq: i64,
    /// File name relative to the data directory.
    pub file: String,
    /// Still being written (or left open by a crash, until recovery).
    pub open: bool,
    /// Codec configuration.
    pub sample_entry_id: i64,
    /// Wall time of the first frame.
    pub start: Time90k,
    /// Wall duration (media duration slewed toward the local clock, see docs/archive.md).
    pub wall_dur: i64,
    /// Run-relative media time of the first frame.
    pub media_start: i64,
    /// Sum of frame durations.
    pub media_dur: i64,
    /// Number of frames.
    pub frames: i64,
    /// Number of keyframes.
    pub key_frames: i64,
    /// Bytes of the init segment at the start of the file.
    pub init_len: i64,
    /// File length covered by the index.
    pub bytes: i64,
    /// The sample index blob (see `archive::index`).
    pub idx: Vec<u8>,
    /// The audio track's sample entry, if the segment records audio.
    pub audio_entry_id: Option<i64>,
    /// Run-relative time of the segment's first audio sample, in the audio clock.
    pub audio_start: i64,
    /// Number of audio frames.
    pub audio_frames: i64,
    /// Sum of audio frame durations, in the audio clock.
    pub audio_dur: i64,
    /// Its sample tables' and media's sizes (None in rows written before schema 6).
    pub summary: Option<Summary>,
}

impl SegmentRow {
    /// Wall time just past the last frame.
    pub fn end(&self) -> Time90k {
        Time90k(self.start.0 + self.wall_dur)
    }
}

pub(crate) fn open(path: &Path, create: bool) -> Result<Connection, ArchiveError> {
    let root = path.parent().unwrap_or(Path::new("."));
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL in WAL mode: a commit survives a process crash; after power loss the last
    // commits may be lost but the database stays consistent, and recovery rescans open
    // segments from their files (docs/archive.md).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .optional()
        .or_else(|e| match e {
            rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => Ok(None),
            e => Err(e),
        })?;
    match version {
        Some(v) if v == SCHEMA_VERSION.to_string() => {}
        // Older versions are migrated in place, step by step, in one transaction.
        Some(v) if ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"].contains(&v.as_str()) => migrate(&conn)?,
        Some(v) => {
            return Err(ArchiveError::Schema { path: root.to_path_buf(), found: v, expected: SCHEMA_VERSION });
        }
        None if !create => return Err(ArchiveError::NoArchive(root.to_path_buf())),
        None => {
            conn.execute_batch(SCHEMA)?;
            conn.execute_batch(FILE_VIDEO_SCHEMA)?;
            conn.execute_batch(INFERENCE_SCHEMA)?;
            conn.execute_batch(super::remote::REMOTE_SCHEMA)?;
            conn.execute_batch(super::catalog::CATALOG_SCHEMA)?;
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
                [SCHEMA_VERSION.to_string()],
            )?;
        }
    }
    Ok(conn)
}

/// A connection that only reads, for queries beside the writer (`Archive::reader`). The index
/// exists and is migrated: the writer's connection opened it first.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, ArchiveError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

/// Brings a version 1 to 11 index to the current schema. IMMEDIATE takes the write lock first,
/// and the version is read again under it: of two processes opening an old archive at once,
/// the second finds it migrated.
fn migrate(conn: &Connection) -> Result<(), ArchiveError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let migrated = (|| {
        let v: String = conn.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))?;
        if v == "1" {
            // Version 1 lacked the video's title and description (AVA's creation properties).
            conn.execute_batch(
                "ALTER TABLE video ADD COLUMN title TEXT;
                 ALTER TABLE video ADD COLUMN description TEXT;",
            )?;
        }
        if v == "1" || v == "2" {
            // Version 3 adds File videos: every existing video is an archive.
            conn.execute_batch(
                "ALTER TABLE video ADD COLUMN kind TEXT NOT NULL DEFAULT 'Archive'
                     CHECK (kind IN ('Archive', 'File'));",
            )?;
            conn.execute_batch(FILE_VIDEO_SCHEMA)?;
        }
        if v == "1" || v == "2" || v == "3" {
            // Version 4 adds an audio track to segments (its sample entry, with the audio clock
            // as timescale, and where the segment's audio starts), and to runs what dates them
            // against the monotonic clock of the boot that recorded them.
            conn.execute_batch(
                "ALTER TABLE sample_entry ADD COLUMN timescale INTEGER;
                 ALTER TABLE segment ADD COLUMN audio_entry_id INTEGER REFERENCES sample_entry(id);
                 ALTER TABLE segment ADD COLUMN audio_start INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE segment ADD COLUMN audio_frames INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE segment ADD COLUMN audio_dur INTEGER NOT NULL DEFAULT 0;
                 ALTER TABLE run ADD COLUMN boot_id TEXT;
                 ALTER TABLE run ADD COLUMN mono_offset_90k INTEGER;",
            )?;
        }
        if ["1", "2", "3", "4"].contains(&v.as_str()) {
            // Version 5 keeps the sample indexes (about 3 bytes a frame, 2–4 KiB a segment) in a
            // table of their own. Inline, they made every segment row about a page, so a query
            // of where a month of one camera lies read hundreds of MB (issue 15); apart, the
            // rows are ~100 bytes and such queries read a few MB. A large archive migrates in
            // about the time it takes to copy its index once.
            conn.execute_batch(
                "CREATE TABLE segment_index (
                     segment_id INTEGER PRIMARY KEY REFERENCES segment(id) ON DELETE CASCADE,
                     idx BLOB NOT NULL);
                 INSERT INTO segment_index (segment_id, idx) SELECT id, idx FROM segment;
                 ALTER TABLE segment DROP COLUMN idx;
                 DROP INDEX IF EXISTS segment_cover;
                 CREATE INDEX segment_span ON segment (video_id, start_90k, run_id, seq, wall_dur_90k, bytes, open);",
            )?;
        }
        if ["1", "2", "3", "4", "5"].contains(&v.as_str()) {
            // Version 6 keeps each segment's table and media sizes (`index::Summary`) in its
            // row, so an export is laid out from rows alone (issue 15). Rows written before
            // have none (NULL): their exports read those indexes up front, as before.
            conn.execute_batch(
                "ALTER TABLE segment ADD COLUMN video_bytes INTEGER;
                 ALTER TABLE segment ADD COLUMN video_chunks INTEGER;
                 ALTER TABLE segment ADD COLUMN audio_bytes INTEGER;
                 ALTER TABLE segment ADD COLUMN audio_chunks INTEGER;
                 ALTER TABLE segment ADD COLUMN cts_min INTEGER;
                 ALTER TABLE segment ADD COLUMN cts_max INTEGER;",
            )?;
        }
        // Version 7 records inferences with videos (`inferences`): new tables only.
        conn.execute_batch(INFERENCE_SCHEMA)?;
        // Version 12 lets each video choose its remote tier (`video.remote_tier`), which the
        // backlog's triggers consult: the column first, then the triggers made again.
        conn.execute_batch(
            "ALTER TABLE video ADD COLUMN remote_tier INTEGER;
             DROP TRIGGER IF EXISTS remote_backlog_closed;
             DROP TRIGGER IF EXISTS remote_backlog_inserted;",
        )?;
        // Version 8 records segments' remote copies (`remote`), version 9 the backlog of
        // segments to copy, version 10 the segments whose local copy was evicted: new tables,
        // and the backlog filled from the segments already closed.
        conn.execute_batch(super::remote::REMOTE_SCHEMA)?;
        conn.execute_batch(super::remote::REMOTE_BACKFILL)?;
        // Version 11 keeps the bucket's manifests (`catalog`): new tables, and every hour with
        // confirmed copies due, so a recorder from before writes its manifests once.
        conn.execute_batch(super::catalog::CATALOG_SCHEMA)?;
        conn.execute_batch(super::catalog::CATALOG_BACKFILL)?;
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'schema_version'", [SCHEMA_VERSION.to_string()])?;
        Ok::<_, rusqlite::Error>(())
    })();
    match migrated {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e.into())
        }
    }
}

const VIDEO_COLS: &str = "v.id, v.name, v.segment_length_90k, v.retention_90k, v.max_bytes, v.title, v.description,
    v.created_90k, v.kind, f.file, f.bytes, f.duration_90k, f.width, f.height, f.frames, v.remote_tier
    FROM video v LEFT JOIN file_video f ON f.video_id = v.id";

/// A count stored as SQLite's signed integer.
fn unsigned(col: usize, v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Integer, e.into()))
}

fn video_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VideoRow> {
    let kind: String = r.get(8)?;
    let kind = VideoKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, format!("video kind '{kind}'").into())
    })?;
    let file = match r.get::<_, Option<String>>(9)? {
        Some(file) => {
            let meta = match (r.get(11)?, r.get(12)?, r.get(13)?, r.get::<_, Option<i64>>(14)?) {
                (Some(duration_90k), Some(width), Some(height), Some(frames)) => {
                    Some(FileMeta { duration_90k, width, height, frames: unsigned(14, frames)? })
                }
                _ => None,
            };
            Some(FileVideo { file, bytes: unsigned(10, r.get(10)?)?, meta })
        }
        None => None,
    };
    Ok(VideoRow {
        id: r.get(0)?,
        name: r.get(1)?,
        config: VideoConfig {
            segment_length: Duration90k(r.get(2)?),
            retention: r.get::<_, Option<i64>>(3)?.map(Duration90k),
            max_bytes: r.get(4)?,
        },
        title: r.get(5)?,
        description: r.get(6)?,
        created: Time90k(r.get(7)?),
        kind,
        file,
        remote_tier: r.get::<_, Option<i64>>(15)?.map(|t| t != 0),
    })
}

pub(crate) fn video_by_name(c: &Connection, name: &str) -> rusqlite::Result<Option<VideoRow>> {
    c.query_row(&format!("SELECT {VIDEO_COLS} WHERE v.name = ?1"), [name], video_from_row).optional()
}

pub(crate) fn videos(c: &Connection) -> rusqlite::Result<Vec<VideoRow>> {
    let mut st = c.prepare(&format!("SELECT {VIDEO_COLS} ORDER BY v.name"))?;
    st.query_map([], video_from_row)?.collect()
}

/// Creates the (archive) video with `cfg` if there is none of that name, and returns it with
/// whether it was created. An existing video keeps its settings (AVA's rule: video creation
/// properties apply when the video is created; changing them is an explicit update,
/// [`update_video`]). A File video of that name is left as it is and refused: it is
/// not appendable.
pub(crate) fn create_video(c: &Connection, name: &str, cfg: &VideoConfig) -> Result<(VideoRow, bool), ArchiveError> {
    let created = c.execute(
        "INSERT INTO video (name, created_90k, segment_length_90k, retention_90k, max_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO NOTHING",
        params![name, Time90k::now().0, cfg.segment_length.0, cfg.retention.map(|d| d.0), cfg.max_bytes],
    )? == 1;
    let v = video_by_name(c, name)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
    if v.kind == VideoKind::File {
        return Err(ArchiveError::not_appendable(name));
    }
    Ok((v, created))
}

/// An explicit change of a video (AVA's video update): `None` fields stay as they are,
/// `Some(None)` removes a value (a title, a limit). Title and description apply to every video;
/// the recording settings only to archives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VideoUpdate {
    /// New title, or none.
    pub title: Option<Option<String>>,
    /// New description, or none.
    pub description: Option<Option<String>>,
    /// New segment length.
    pub segment_length: Option<Duration90k>,
    /// New retention period, or none.
    pub retention: Option<Option<Duration90k>>,
    /// New byte cap, or none.
    pub max_bytes: Option<Option<i64>>,
    /// Whether to copy to the remote tier, or the host's choice (`None`).
    pub remote_tier: Option<Option<bool>>,
}

impl VideoUpdate {
    /// Whether the update touches a recording setting (which File videos do not have).
    pub fn changes_recording(&self) -> bool {
        self.segment_length.is_some()
            || self.retention.is_some()
            || self.max_bytes.is_some()
            || self.remote_tier.is_some()
    }
}

/// Applies `update` to the video `name` in one statement and returns the video as it is now,
/// with whether anything changed.
pub(crate) fn update_video(c: &Connection, name: &str, update: &VideoUpdate) -> Result<(VideoRow, bool), ArchiveError> {
    let v = video_by_name(c, name)?.ok_or_else(|| ArchiveError::UnknownVideo(name.to_owned()))?;
    if v.kind == VideoKind::File && update.changes_recording() {
        return Err(ArchiveError::FileVideo {
            video: v.name,
            reason: "it has no recording settings (retention, size cap, segment length and remote tier are an \
                     archive's)",
        });
    }
    let cfg = VideoConfig {
        segment_length: update.segment_length.unwrap_or(v.config.segment_length),
        retention: update.retention.unwrap_or(v.config.retention),
        max_bytes: update.max_bytes.unwrap_or(v.config.max_bytes),
    };
    let title = update.title.clone().unwrap_or_else(|| v.title.clone());
    let description = update.description.clone().unwrap_or_else(|| v.description.clone());
    let remote_tier = update.remote_tier.unwrap_or(v.remote_tier);
    if cfg == v.config && title == v.title && description == v.description && remote_tier == v.remote_tier {
        return Ok((v, false));
    }
    c.execute(
        "UPDATE video SET segment_length_90k = ?2, retention_90k = ?3, max_bytes = ?4, title = ?5, description = ?6,
             remote_tier = ?7
         WHERE id = ?1",
        params![v.id, cfg.segment_length.0, cfg.retention.map(|d| d.0), cfg.max_bytes, title, description, remote_tier],
    )?;
    if remote_tier != v.remote_tier {
        super::remote::resync_backlog(c, Some(v.id))?;
    }
    Ok((video_by_name(c, name)?.ok_or_else(|| ArchiveError::UnknownVideo(name.to_owned()))?, true))
}

/// Inserts a File video: its `video` row and its `file_video` row. Call inside a transaction,
/// so that both appear together. Returns the video's id.
pub(crate) fn insert_file_video(
    c: &Connection,
    name: &str,
    created: Time90k,
    title: Option<&str>,
    description: Option<&str>,
    file: &FileVideo,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO video (name, created_90k, segment_length_90k, title, description, kind)
         VALUES (?1, ?2, 0, ?3, ?4, 'File')",
        params![name, created.0, title, description],
    )?;
    let id = c.last_insert_rowid();
    let m = file.meta;
    c.execute(
        "INSERT INTO file_video (video_id, file, bytes, duration_90k, width, height, frames)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            file.file,
            i64::try_from(file.bytes).unwrap_or(i64::MAX),
            m.map(|m| m.duration_90k),
            m.map(|m| m.width),
            m.map(|m| m.height),
            m.map(|m| i64::try_from(m.frames).unwrap_or(i64::MAX)),
        ],
    )?;
    Ok(id)
}

/// Sets title and description where they are not set yet: AVA applies a sink's creation
/// properties only when the video is created, so a later pipeline cannot rename it.
pub(crate) fn set_video_info(
    c: &Connection,
    name: &str,
    title: Option<&str>,
    description: Option<&str>,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE video SET title = COALESCE(title, ?2), description = COALESCE(description, ?3) WHERE name = ?1",
        params![name, title, description],
    )?;
    Ok(())
}

/// Totals of a video's recorded media, without loading sample indexes.
pub(crate) fn video_stats(c: &Connection, video_id: i64) -> rusqlite::Result<super::VideoStats> {
    c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(start_90k), MAX(start_90k + wall_dur_90k)
         FROM segment WHERE video_id = ?1",
        [video_id],
        |r| {
            Ok(super::VideoStats {
                segments: r.get(0)?,
                bytes: r.get(1)?,
                first: r.get::<_, Option<i64>>(2)?.map(Time90k),
                last: r.get::<_, Option<i64>>(3)?.map(Time90k),
            })
        },
    )
}

/// A track's codec configuration as stored: the sample entry box and what the index needs
/// without parsing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// The complete sample entry box (`avc1`, `hvc1`, `mp4a`, `fLaC`…).
    pub data: Vec<u8>,
    /// Display width (0 for audio).
    pub width: u32,
    /// Display height (0 for audio).
    pub height: u32,
    /// The track's clock: 90 kHz for video, the sample rate for audio.
    pub timescale: u32,
}

/// Finds or inserts a sample entry, returning its id. `timescale` is `None` for video (90 kHz).
pub(crate) fn sample_entry_id(
    c: &Connection,
    data: &[u8],
    width: u32,
    height: u32,
    timescale: Option<u32>,
) -> rusqlite::Result<i64> {
    if let Some(id) = c.query_row("SELECT id FROM sample_entry WHERE data = ?1", [data], |r| r.get(0)).optional()? {
        return Ok(id);
    }
    c.execute(
        "INSERT INTO sample_entry (data, width, height, timescale) VALUES (?1, ?2, ?3, ?4)",
        params![data, width, height, timescale],
    )?;
    Ok(c.last_insert_rowid())
}

/// A sample entry by id.
pub(crate) fn sample_entry(c: &Connection, id: i64) -> rusqlite::Result<StoredEntry> {
    c.query_row("SELECT data, width, height, timescale FROM sample_entry WHERE id = ?1", [id], |r| {
        Ok(StoredEntry {
            data: r.get(0)?,
            width: r.get(1)?,
            height: r.get(2)?,
            timescale: r.get::<_, Option<u32>>(3)?.unwrap_or(crate::mp4::TIMESCALE),
        })
    })
}

/// A segment row's columns with its sample index, to select `FROM {SEGMENT_FROM}`.
const SEGMENT_COLS: &str = "id, video_id, run_id, seq, file, open, sample_entry_id, start_90k, wall_dur_90k,
    media_start_90k, media_dur_90k, frames, key_frames, init_len, bytes, idx, audio_entry_id, audio_start,
    audio_frames, audio_dur, video_bytes, video_chunks, audio_bytes, audio_chunks, cts_min, cts_max";
/// The same columns without the sample index (an empty blob in its place), `FROM segment`.
const SEGMENT_COLS_NO_INDEX: &str = "id, video_id, run_id, seq, file, open, sample_entry_id, start_90k, wall_dur_90k,
    media_start_90k, media_dur_90k, frames, key_frames, init_len, bytes, X'', audio_entry_id, audio_start,
    audio_frames, audio_dur, video_bytes, video_chunks, audio_bytes, audio_chunks, cts_min, cts_max";
/// Segment rows joined to their sample indexes (column names are unique across the two).
const SEGMENT_FROM: &str = "segment JOIN segment_index ON segment_id = id";

fn segment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SegmentRow> {
    Ok(SegmentRow {
        id: r.get(0)?,
        video_id: r.get(1)?,
        run_id: r.get(2)?,
        seq: r.get(3)?,
        file: r.get(4)?,
        open: r.get::<_, i64>(5)? != 0,
        sample_entry_id: r.get(6)?,
        start: Time90k(r.get(7)?),
        wall_dur: r.get(8)?,
        media_start: r.get(9)?,
        media_dur: r.get(10)?,
        frames: r.get(11)?,
        key_frames: r.get(12)?,
        init_len: r.get(13)?,
        bytes: r.get(14)?,
        idx: r.get(15)?,
        audio_entry_id: r.get(16)?,
        audio_start: r.get(17)?,
        audio_frames: r.get(18)?,
        audio_dur: r.get(19)?,
        summary: match (r.get(20)?, r.get(21)?, r.get(22)?, r.get(23)?, r.get(24)?, r.get(25)?) {
            (
                Some(video_bytes),
                Some(video_chunks),
                Some(audio_bytes),
                Some(audio_chunks),
                Some(cts_min),
                Some(cts_max),
            ) => Some(Summary {
                video_bytes: unsigned(20, video_bytes)?,
                video_chunks,
                audio_bytes: unsigned(22, audio_bytes)?,
                audio_chunks,
                cts_min,
                cts_max,
            }),
            _ => None,
        },
    })
}

/// Longest a segment may be (AVA's maximum segment length is 5 min; slack for late keyframes).
/// Lets range queries use the (video, start) index instead of scanning every older segment.
pub(crate) const MAX_SEGMENT_WALL_90K: i64 = 15 * 60 * crate::time::TICKS_PER_SEC;

/// Segments of a video that may overlap `[start, end)`: those starting in `[start - longest
/// segment, end)`, oldest first. [`overlapping`] then drops those ending before `start` (after
/// the live tail is laid over them, since an open segment's end moves).
/// Without `with_index`, the rows' `idx` are empty (read them with [`segment_index`]).
pub(crate) fn segments_starting(
    c: &Connection,
    video_id: i64,
    start: Option<Time90k>,
    end: Option<Time90k>,
    with_index: bool,
) -> rusqlite::Result<Vec<SegmentRow>> {
    let lo = start.map_or(i64::MIN, |t| t.0.saturating_sub(MAX_SEGMENT_WALL_90K));
    let hi = end.map_or(i64::MAX, |t| t.0);
    let (cols, from) = if with_index { (SEGMENT_COLS, SEGMENT_FROM) } else { (SEGMENT_COLS_NO_INDEX, "segment") };
    let mut st = c.prepare_cached(&format!(
        "SELECT {cols} FROM {from} WHERE video_id = ?1 AND start_90k >= ?2 AND start_90k < ?3
         ORDER BY start_90k, run_id, seq"
    ))?;
    st.query_map(params![video_id, lo, hi], segment_from_row)?.collect()
}

/// The sample indexes of segments `ids` (those that exist), in no particular order.
pub(crate) fn segment_indexes(c: &Connection, ids: &[i64]) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let mut out = Vec::with_capacity(ids.len());
    // Bound parameters in batches: one statement per batch rather than per segment.
    for batch in ids.chunks(INDEX_BATCH) {
        let mut st = c.prepare_cached(INDEX_BATCH_SQL.get_or_init(|| {
            let marks = vec!["?"; INDEX_BATCH].join(",");
            format!("SELECT segment_id, idx FROM segment_index WHERE segment_id IN ({marks})")
        }))?;
        let mut params: Vec<i64> = batch.to_vec();
        params.resize(INDEX_BATCH, i64::MIN);
        let rows = st.query_map(rusqlite::params_from_iter(params), |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

/// Segments per query of [`segment_indexes`].
pub(crate) const INDEX_BATCH: usize = 64;
static INDEX_BATCH_SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Where the segments of a video that may overlap `[start, end)` lie — id, start, wall
/// duration, oldest first: [`segments_starting`] without the sample indexes, which is all
/// `availableMedia` needs (31 days of one camera are 90 000 rows; their indexes hundreds of
/// MB).
pub(crate) fn segment_spans(
    c: &Connection,
    video_id: i64,
    start: Option<Time90k>,
    end: Option<Time90k>,
) -> rusqlite::Result<Vec<(i64, Time90k, i64)>> {
    let lo = start.map_or(i64::MIN, |t| t.0.saturating_sub(MAX_SEGMENT_WALL_90K));
    let hi = end.map_or(i64::MAX, |t| t.0);
    let mut st = c.prepare_cached(
        "SELECT id, start_90k, wall_dur_90k FROM segment WHERE video_id = ?1 AND start_90k >= ?2 AND start_90k < ?3
         ORDER BY start_90k, run_id, seq",
    )?;
    st.query_map(params![video_id, lo, hi], |r| Ok((r.get(0)?, Time90k(r.get(1)?), r.get(2)?)))?.collect()
}

/// Where the segments of [`segment_spans`]'s query are kept: local only, both, remote only.
pub(crate) fn segment_locations(
    c: &Connection,
    video_id: i64,
    start: Option<Time90k>,
    end: Option<Time90k>,
) -> rusqlite::Result<std::collections::HashMap<i64, super::ranges::Location>> {
    use super::ranges::Location;
    let lo = start.map_or(i64::MIN, |t| t.0.saturating_sub(MAX_SEGMENT_WALL_90K));
    let hi = end.map_or(i64::MAX, |t| t.0);
    let mut st = c.prepare_cached(
        "SELECT s.id, l.segment_id IS NOT NULL, r.segment_id IS NOT NULL FROM segment s
         LEFT JOIN local_evicted l ON l.segment_id = s.id LEFT JOIN remote_copy r ON r.segment_id = s.id
         WHERE s.video_id = ?1 AND s.start_90k >= ?2 AND s.start_90k < ?3",
    )?;
    st.query_map(params![video_id, lo, hi], |r| {
        let place = match (r.get::<_, bool>(1)?, r.get::<_, bool>(2)?) {
            (true, _) => Location::Remote,
            (false, true) => Location::Both,
            (false, false) => Location::Local,
        };
        Ok((r.get(0)?, place))
    })?
    .collect()
}

/// The rows that reach past `start` (an empty open segment starting at or after it counts).
pub(crate) fn overlapping(rows: Vec<SegmentRow>, start: Option<Time90k>) -> Vec<SegmentRow> {
    match start {
        Some(s) => rows.into_iter().filter(|r| r.end() > s || (r.wall_dur == 0 && r.start >= s)).collect(),
        None => rows,
    }
}

/// The segment of `video_id` stored as `file` (relative to the data directory), if any: only
/// files the index lists for that video are ever served by name.
pub(crate) fn segment_by_file(c: &Connection, video_id: i64, file: &str) -> rusqlite::Result<Option<SegmentRow>> {
    c.query_row(
        &format!("SELECT {SEGMENT_COLS} FROM {SEGMENT_FROM} WHERE video_id = ?1 AND file = ?2"),
        params![video_id, file],
        segment_from_row,
    )
    .optional()
}

/// The newest `limit` segments of a video, newest first (the latest picture, without loading
/// every sample index of a long archive).
pub(crate) fn last_segments(c: &Connection, video_id: i64, limit: u32) -> rusqlite::Result<Vec<SegmentRow>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {SEGMENT_COLS} FROM {SEGMENT_FROM} WHERE video_id = ?1 ORDER BY start_90k DESC, run_id DESC, seq DESC
         LIMIT ?2"
    ))?;
    st.query_map(params![video_id, limit], segment_from_row)?.collect()
}

pub(crate) fn all_segments(c: &Connection) -> rusqlite::Result<Vec<SegmentRow>> {
    let mut st =
        c.prepare(&format!("SELECT {SEGMENT_COLS} FROM {SEGMENT_FROM} ORDER BY video_id, start_90k, run_id, seq"))?;
    st.query_map([], segment_from_row)?.collect()
}

/// A segment's place and size without its sample index: what retention, eviction and recovery
/// walk over (a week of 30 s segments is 20 000 rows; their indexes would be tens of MB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentBrief {
    pub id: i64,
    pub video_id: i64,
    pub run_id: i64,
    pub file: String,
    pub start: Time90k,
    pub wall_dur: i64,
    pub bytes: i64,
    pub open: bool,
    /// Its file is on local disk (not evicted to the remote tier).
    pub local: bool,
    /// Its remote copy is confirmed.
    pub copied: bool,
}

impl SegmentBrief {
    pub fn end(&self) -> Time90k {
        Time90k(self.start.0 + self.wall_dur)
    }
}

/// Every segment of one video (or of all, `None`), oldest first.
pub(crate) fn segment_briefs(c: &Connection, video_id: Option<i64>) -> rusqlite::Result<Vec<SegmentBrief>> {
    let mut st = c.prepare_cached(
        "SELECT s.id, s.video_id, s.run_id, s.file, s.start_90k, s.wall_dur_90k, s.bytes, s.open,
                l.segment_id IS NULL, r.segment_id IS NOT NULL
         FROM segment s LEFT JOIN local_evicted l ON l.segment_id = s.id
         LEFT JOIN remote_copy r ON r.segment_id = s.id
         WHERE ?1 IS NULL OR s.video_id = ?1 ORDER BY s.start_90k, s.run_id, s.seq",
    )?;
    st.query_map([video_id], |r| {
        Ok(SegmentBrief {
            id: r.get(0)?,
            video_id: r.get(1)?,
            run_id: r.get(2)?,
            file: r.get(3)?,
            start: Time90k(r.get(4)?),
            wall_dur: r.get(5)?,
            bytes: r.get(6)?,
            open: r.get(7)?,
            local: r.get(8)?,
            copied: r.get(9)?,
        })
    })?
    .collect()
}

/// One segment by id, with its index.
pub(crate) fn segment_by_id(c: &Connection, id: i64) -> rusqlite::Result<Option<SegmentRow>> {
    c.query_row(&format!("SELECT {SEGMENT_COLS} FROM {SEGMENT_FROM} WHERE id = ?1"), [id], segment_from_row).optional()
}

/// Runs `f` inside a savepoint: all of its statements take effect or none (nested in a
/// caller's transaction, or standing alone).
fn atomically<T>(c: &Connection, f: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    c.execute_batch("SAVEPOINT segment_write")?;
    match f() {
        Ok(v) => {
            c.execute_batch("RELEASE segment_write")?;
            Ok(v)
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK TO segment_write; RELEASE segment_write");
            Err(e)
        }
    }
}

/// Inserts a segment row and its sample index; returns the row's id.
pub(crate) fn insert_segment(c: &Connection, s: &SegmentRow) -> rusqlite::Result<i64> {
    atomically(c, || {
        let id = insert_segment_row(c, s)?;
        c.prepare_cached("INSERT INTO segment_index (segment_id, idx) VALUES (?1, ?2)")?.execute(params![id, s.idx])?;
        Ok(id)
    })
}

fn insert_segment_row(c: &Connection, s: &SegmentRow) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO segment (video_id, run_id, seq, file, open, sample_entry_id, start_90k, wall_dur_90k,
             media_start_90k, media_dur_90k, frames, key_frames, init_len, bytes, audio_entry_id, audio_start,
             audio_frames, audio_dur)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?
    .execute(params![
        s.video_id,
        s.run_id,
        s.seq,
        s.file,
        s.open as i64,
        s.sample_entry_id,
        s.start.0,
        s.wall_dur,
        s.media_start,
        s.media_dur,
        s.frames,
        s.key_frames,
        s.init_len,
        s.bytes,
        s.audio_entry_id,
        s.audio_start,
        s.audio_frames,
        s.audio_dur
    ])?;
    let id = c.last_insert_rowid();
    put_summary(c, id, s.summary)?;
    Ok(id)
}

/// Writes a segment's summary (NULLs for none).
fn put_summary(c: &Connection, id: i64, m: Option<Summary>) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE segment SET video_bytes = ?2, video_chunks = ?3, audio_bytes = ?4, audio_chunks = ?5, cts_min = ?6,
             cts_max = ?7
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        m.map(|m| m.video_bytes as i64),
        m.map(|m| m.video_chunks),
        m.map(|m| m.audio_bytes as i64),
        m.map(|m| m.audio_chunks),
        m.map(|m| m.cts_min),
        m.map(|m| m.cts_max)
    ])?;
    Ok(())
}

/// Writes back everything that changes while a segment grows or closes.
pub(crate) fn update_segment(c: &Connection, s: &SegmentRow) -> rusqlite::Result<()> {
    atomically(c, || {
        c.prepare_cached(
            "UPDATE segment SET open = ?2, start_90k = ?3, wall_dur_90k = ?4, media_dur_90k = ?5, frames = ?6,
                 key_frames = ?7, bytes = ?8, audio_start = ?9, audio_frames = ?10, audio_dur = ?11
             WHERE id = ?1",
        )?
        .execute(params![
            s.id,
            s.open as i64,
            s.start.0,
            s.wall_dur,
            s.media_dur,
            s.frames,
            s.key_frames,
            s.bytes,
            s.audio_start,
            s.audio_frames,
            s.audio_dur
        ])?;
        put_summary(c, s.id, s.summary)?;
        c.prepare_cached("UPDATE segment_index SET idx = ?2 WHERE segment_id = ?1")?.execute(params![s.id, s.idx])?;
        Ok(())
    })
}

/// Runs `f` with `synchronous=FULL`, so that every commit it makes is on disk when it returns
/// (the index otherwise commits with `NORMAL`, which a power loss may undo). For the commits
/// that must never be undone: a run's id (written into segment files), deletions (followed by
/// unlinking the files), registrations.
pub(crate) fn with_full_sync<T>(
    c: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, ArchiveError>,
) -> Result<T, ArchiveError> {
    c.pragma_update(None, "synchronous", "FULL")?;
    let result = f(c);
    let restored = c.pragma_update(None, "synchronous", "NORMAL");
    let value = result?;
    restored?;
    Ok(value)
}

/// Inserts a run started at `started`; `boot` is the machine's boot id and the wall clock minus
/// its boot clock at the start (what dates the run's segments truly on that boot).
///
/// Run ids are never reused: segment files carry them, and an orphan file found after a crash
/// is adopted into the run its metadata names. So the id comes from a counter in `meta` that
/// only grows (deleting a video's runs does not lower it), and the commit is durable before any
/// file names it.
pub(crate) fn new_run(
    c: &mut Connection,
    video_id: i64,
    started: Time90k,
    boot: Option<(&str, i64)>,
) -> Result<i64, ArchiveError> {
    with_full_sync(c, |c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id = insert_run(&tx, video_id, started, boot)?;
        tx.commit()?;
        Ok(id)
    })
}

/// Inserts a run with the next id of the counter (see [`new_run`]), in the caller's transaction.
pub(crate) fn insert_run(
    tx: &Connection,
    video_id: i64,
    started: Time90k,
    boot: Option<(&str, i64)>,
) -> rusqlite::Result<i64> {
    let last: i64 = tx.query_row(
        "SELECT MAX(COALESCE((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_run_id'), 0),
                    COALESCE((SELECT MAX(id) FROM run), 0))",
        [],
        |r| r.get(0),
    )?;
    let id = last + 1;
    tx.execute(
        "INSERT INTO run (id, video_id, started_90k, boot_id, mono_offset_90k) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, video_id, started.0, boot.map(|b| b.0), boot.map(|b| b.1)],
    )?;
    tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_run_id', ?1)", [id.to_string()])?;
    Ok(id)
}

/// The video a run belongs to, if the run is known.
pub(crate) fn run_video(c: &Connection, run_id: i64) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT video_id FROM run WHERE id = ?1", [run_id], |r| r.get(0)).optional()
}

/// A run's boot id and wall-minus-boot-clock offset, if it was recorded with them.
pub(crate) fn run_boot(c: &Connection, run_id: i64) -> rusqlite::Result<Option<(String, i64)>> {
    Ok(c.query_row("SELECT boot_id, mono_offset_90k FROM run WHERE id = ?1", [run_id], |r| {
        Ok(r.get::<_, Option<String>>(0)?.zip(r.get::<_, Option<i64>>(1)?))
    })
    .optional()?
    .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema as version 2 wrote it, frozen: migrations are tested against what old
    /// archives hold, not against today's `SCHEMA`.
    const V2_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS video (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_90k INTEGER NOT NULL,
    segment_length_90k INTEGER NOT NULL,
    retention_90k INTEGER,
    max_bytes INTEGER,
    title TEXT,
    description TEXT
);
CREATE TABLE IF NOT EXISTS sample_entry (
    id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE, width INTEGER NOT NULL, height INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL REFERENCES video(id), started_90k INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS segment (
    id INTEGER PRIMARY KEY, video_id INTEGER NOT NULL REFERENCES video(id), run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL, file TEXT NOT NULL UNIQUE, open INTEGER NOT NULL,
    sample_entry_id INTEGER NOT NULL REFERENCES sample_entry(id), start_90k INTEGER NOT NULL,
    wall_dur_90k INTEGER NOT NULL, media_start_90k INTEGER NOT NULL, media_dur_90k INTEGER NOT NULL,
    frames INTEGER NOT NULL, key_frames INTEGER NOT NULL, init_len INTEGER NOT NULL, bytes INTEGER NOT NULL,
    idx BLOB NOT NULL, UNIQUE (run_id, seq));
CREATE INDEX IF NOT EXISTS segment_cover
    ON segment (video_id, start_90k, wall_dur_90k, run_id, bytes, open);
CREATE TABLE IF NOT EXISTS garbage (file TEXT PRIMARY KEY);
"#;

    fn fresh_db(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("openva-migrate-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("tmp");
        let path = dir.join(DB_FILE);
        (dir, path)
    }

    fn version(c: &Connection) -> String {
        c.query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0)).expect("version")
    }

    /// A File video can be stored in a migrated index, next to the old archive.
    fn add_file_row(c: &Connection) {
        let f = FileVideo {
            file: "videos/f/content.mp4".into(),
            bytes: 10,
            meta: Some(FileMeta { duration_90k: 90_000, width: 320, height: 240, frames: 25 }),
        };
        insert_file_video(c, "f", Time90k(5), Some("F"), None, &f).expect("file video");
        let v = video_by_name(c, "f").expect("q").expect("v");
        assert_eq!((v.kind, v.file.as_ref()), (VideoKind::File, Some(&f)));
        assert_eq!(v.title.as_deref(), Some("F"));
        // An archive writer may not take it over.
        assert!(matches!(create_video(c, "f", &VideoConfig::default()), Err(ArchiveError::FileVideo { .. })));
        let retention = VideoUpdate { retention: Some(Some(Duration90k(1))), ..Default::default() };
        assert!(matches!(update_video(c, "f", &retention), Err(ArchiveError::FileVideo { .. })));
        // Its title may change.
        let titled = VideoUpdate { title: Some(Some("G".into())), ..Default::default() };
        assert_eq!(update_video(c, "f", &titled).expect("title").0.title.as_deref(), Some("G"));
        assert!(!update_video(c, "f", &titled).expect("again").1, "nothing changed");
    }

    /// An archive written by schema version 1 (no title/description, no kinds) opens, is
    /// migrated in place through version 2 to 3, and keeps its videos as archives.
    #[test]
    fn version_1_archive_is_migrated() {
        let (dir, path) = fresh_db("v1");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch(
                "CREATE TABLE video (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_90k INTEGER NOT NULL,
                     segment_length_90k INTEGER NOT NULL, retention_90k INTEGER, max_bytes INTEGER);
                 INSERT INTO video (name, created_90k, segment_length_90k) VALUES ('old', 1, 2700000);",
            )
            .expect("v1 video table");
            c.execute_batch(V2_SCHEMA).expect("rest of v1");
            c.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')", []).expect("version");
        }
        let c = open(&path, false).expect("migrates");
        let v = video_by_name(&c, "old").expect("query").expect("kept");
        assert_eq!(v.title, None);
        assert_eq!((v.kind, v.file), (VideoKind::Archive, None));
        set_video_info(&c, "old", Some("T"), None).expect("set");
        assert_eq!(video_by_name(&c, "old").expect("q").expect("v").title.as_deref(), Some("T"));
        add_file_row(&c);
        drop(c);
        // Opening again finds the current version and does nothing.
        let c = open(&path, false).expect("reopens");
        assert_eq!(version(&c), SCHEMA_VERSION.to_string());
        assert_eq!(videos(&c).expect("videos").len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A version 2 archive gains video kinds: its videos are archives, with settings, title and
    /// segments untouched, and File videos can be added.
    #[test]
    fn version_2_archive_is_migrated() {
        let (dir, path) = fresh_db("v2");
        {
            let c = Connection::open(&path).expect("open");
            c.execute_batch(V2_SCHEMA).expect("v2");
            c.execute_batch(
                "INSERT INTO meta (key, value) VALUES ('schema_version', '2');
                 INSERT INTO video (name, created_90k, segment_length_90k, retention_90k, title)
                     VALUES ('cam', 7, 2700000, 100, 'Cam');
                 INSERT INTO sample_entry (data, width, height) VALUES (x'0000000861766331', 640, 360);
                 INSERT INTO run (video_id, started_90k) VALUES (1, 7);
                 INSERT INTO segment (video_id, run_id, seq, file, open, sample_entry_id, start_90k, wall_dur_90k,
                     media_start_90k, media_dur_90k, frames, key_frames, init_len, bytes, idx)
                     VALUES (1, 1, 0, 'videos/cam/00000001-000000.mp4', 0, 1, 7, 3600, 0, 3600, 1, 1, 700, 900,
                         x'01bc05c1709003');",
            )
            .expect("v2 rows");
        }
        let c = open(&path, false).expect("migrates");
        assert_eq!(version(&c), SCHEMA_VERSION.to_string());
        // Its closed segment waits to be copied to a remote tier (version 9's backlog).
        let backlog: i64 = c.query_row("SELECT count(*) FROM remote_backlog", [], |r| r.get(0)).expect("backlog");
        assert_eq!(backlog, 1);
        // Its segments are video-only, their version 1 sample index still reads.
        let segs = segments_starting(&c, 1, None, None, true).expect("segments");
        assert_eq!((segs.len(), segs[0].audio_entry_id, segs[0].audio_frames), (1, None, 0));
        let samples = crate::archive::index::decode(&segs[0].idx).expect("v1 index");
        // Its sample indexes live apart from the rows now (schema 5), and go with their row.
        let inline: i64 = c
            .query_row("SELECT COUNT(*) FROM pragma_table_info('segment') WHERE name = 'idx'", [], |r| r.get(0))
            .expect("columns");
        assert_eq!(inline, 0, "the segment rows still hold their sample indexes");
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT COUNT(*) FROM segment_index", [], |r| r.get(0)).expect("count")
        };
        assert_eq!(count(&c), 1);
        assert_eq!((samples.len(), samples[0].file_off, samples[0].cts), (1, 700, 0));
        assert_eq!(sample_entry(&c, 1).expect("entry").timescale, crate::mp4::TIMESCALE);
        let v = video_by_name(&c, "cam").expect("query").expect("kept");
        assert_eq!((v.kind, v.file.as_ref()), (VideoKind::Archive, None));
        assert_eq!(
            (v.title.as_deref(), v.config.retention, v.created),
            (Some("Cam"), Some(Duration90k(100)), Time90k(7))
        );
        // Recording into it still works (the upsert keeps it an archive).
        let (again, created) = create_video(&c, "cam", &VideoConfig::default()).expect("create");
        assert_eq!((again.id, again.kind, created), (v.id, VideoKind::Archive, false));
        // An existing video keeps its settings when a writer names it with others.
        assert_eq!(again.config.retention, Some(Duration90k(100)));
        let changed = VideoUpdate { retention: Some(None), max_bytes: Some(Some(5)), ..Default::default() };
        let (now, changed) = update_video(&c, "cam", &changed).expect("update");
        assert!(changed);
        assert_eq!(
            (now.config.retention, now.config.max_bytes, now.config.segment_length),
            (None, Some(5), Duration90k(2_700_000))
        );
        assert_eq!(now.title.as_deref(), Some("Cam"));
        c.execute("DELETE FROM segment WHERE id = ?1", [segs[0].id]).expect("delete");
        assert_eq!(count(&c), 0, "a deleted segment's sample index stays behind");
        add_file_row(&c);
        drop(c);
        assert_eq!(version(&open(&path, false).expect("reopens")), SCHEMA_VERSION.to_string());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
