//! The bucket's description of the index (`docs/remote.md`, "A bucket that describes itself").
//!
//! Beside the segment objects, a recorder keeps in the remote tier, per video:
//! - `video.json` ([`VideoManifest`]): the video's name, settings, title and description;
//! - one manifest per hour of recording ([`HourManifest`]): every segment starting in that
//!   hour (UTC) whose remote copy is confirmed, with what its index row holds (times, frame
//!   counts, codec configuration, the sample index) and its object's key, size and SHA-256.
//!
//! So an index is rebuilt from the bucket alone by reading one small object per video-hour,
//! never a segment (`openva check --from-remote`, read-only gateways). This module converts
//! between index rows and that form; `crate::remote::catalog` moves it to and from the store.
//!
//! Invariants:
//! - **An hour's manifest is derived data, rewritten whole.** Any change to the copies of an
//!   hour (an upload confirmed, a segment deleted or re-dated) marks the hour due in
//!   `remote_manifest_due` in the same transaction (triggers), so a crash never leaves a
//!   manifest stale for good. The uploader rewrites due hours, and forgets a mark only up to
//!   the change it wrote.
//! - **Imported rows are remote-only.** A segment imported from a manifest has its remote copy
//!   recorded and is marked evicted (no local file ever), so every reader reads it from the
//!   store, and nothing imported is ever queued for upload or deletion: an importing index
//!   never changes the bucket it reads.

use super::db::{self, SegmentRow, VideoConfig};
use super::index;
use super::{Archive, ArchiveError};
use crate::time::{Duration90k, TICKS_PER_SEC, Time90k};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

/// Ticks in an hour: manifests cover `[h * HOUR_90K, (h + 1) * HOUR_90K)`.
pub const HOUR_90K: i64 = 3600 * TICKS_PER_SEC;

/// Tables of schema version 11: hours whose manifests are due, the runs and videos imported
/// from a bucket, and the manifests seen there.
pub(crate) const CATALOG_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS remote_manifest_due (
    id INTEGER PRIMARY KEY,
    video TEXT NOT NULL,
    hour INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS remote_manifest_copied AFTER INSERT ON remote_copy
BEGIN
    INSERT INTO remote_manifest_due (video, hour)
        SELECT v.name, s.start_90k / 324000000 FROM segment s JOIN video v ON v.id = s.video_id
        WHERE s.id = new.segment_id;
END;
CREATE TRIGGER IF NOT EXISTS remote_manifest_segment_gone BEFORE DELETE ON segment
    WHEN EXISTS (SELECT 1 FROM remote_copy WHERE segment_id = old.id)
BEGIN
    INSERT INTO remote_manifest_due (video, hour)
        SELECT v.name, old.start_90k / 324000000 FROM video v WHERE v.id = old.video_id;
END;
CREATE TRIGGER IF NOT EXISTS remote_manifest_segment_moved AFTER UPDATE OF start_90k, wall_dur_90k ON segment
    WHEN EXISTS (SELECT 1 FROM remote_copy WHERE segment_id = new.id)
BEGIN
    INSERT INTO remote_manifest_due (video, hour)
        SELECT v.name, old.start_90k / 324000000 FROM video v WHERE v.id = new.video_id;
    INSERT INTO remote_manifest_due (video, hour)
        SELECT v.name, new.start_90k / 324000000 FROM video v WHERE v.id = new.video_id
        AND new.start_90k / 324000000 <> old.start_90k / 324000000;
END;
CREATE TABLE IF NOT EXISTS remote_video (
    video_id INTEGER PRIMARY KEY REFERENCES video(id) ON DELETE CASCADE,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_run (
    video_id INTEGER NOT NULL,
    remote_run INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (video_id, remote_run)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS remote_manifest_seen (
    key TEXT PRIMARY KEY,
    video TEXT NOT NULL,
    hour INTEGER NOT NULL,
    etag TEXT NOT NULL
);
"#;

/// Marks every hour with confirmed copies due (an index from before manifests existed: its
/// recorder writes them once).
pub(crate) const CATALOG_BACKFILL: &str = r#"
INSERT INTO remote_manifest_due (video, hour)
    SELECT DISTINCT v.name, s.start_90k / 324000000
    FROM remote_copy r JOIN segment s ON s.id = r.segment_id JOIN video v ON v.id = s.video_id;
"#;

/// What the `format` fields say.
pub const HOUR_FORMAT: &str = "openva-hour";
/// See [`HOUR_FORMAT`].
pub const VIDEO_FORMAT: &str = "openva-video";
/// The version of both forms this host writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A video's `video.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoManifest {
    /// [`VIDEO_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The video's name.
    pub name: String,
    /// When it was created.
    pub created_90k: i64,
    /// Its segment length.
    pub segment_length_90k: i64,
    /// Its retention period, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_90k: Option<i64>,
    /// Its size cap, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<i64>,
    /// AVA's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// AVA's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One hour of one video: `hours/YYYY/MM/DD/HH.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourManifest {
    /// [`HOUR_FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The video.
    pub video: String,
    /// The hour: `start_90k / HOUR_90K` of its segments.
    pub hour: i64,
    /// Its segments with confirmed copies, oldest first.
    pub segments: Vec<ManifestSegment>,
}

/// A codec configuration (a sample entry box), base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    /// The box, base64.
    pub data: String,
    /// Display width (0 for audio).
    pub width: u32,
    /// Display height (0 for audio).
    pub height: u32,
    /// The track's clock when not 90 kHz (audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timescale: Option<u32>,
}

/// A segment's audio track.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestAudio {
    /// Its sample entry.
    pub entry: ManifestEntry,
    /// Run-relative time of its first sample, audio clock.
    pub start: i64,
    /// Frames.
    pub frames: i64,
    /// Duration, audio clock.
    pub dur: i64,
}

/// A segment as a manifest lists it: its object, and its index row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestSegment {
    /// The object's key in the bucket (with the recorder's prefix).
    pub key: String,
    /// The object's size.
    pub bytes: i64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// The recorder's run id.
    pub run: i64,
    /// Sequence number in the run.
    pub seq: i64,
    /// Wall time of the first frame.
    pub start_90k: i64,
    /// Wall duration.
    pub wall_dur_90k: i64,
    /// Run-relative media time of the first frame.
    pub media_start_90k: i64,
    /// Media duration.
    pub media_dur_90k: i64,
    /// Frames.
    pub frames: i64,
    /// Key frames.
    pub key_frames: i64,
    /// Bytes of the init segment.
    pub init_len: i64,
    /// The video track's sample entry.
    pub video_entry: ManifestEntry,
    /// The audio track, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<ManifestAudio>,
    /// The sample index blob (`archive::index`), base64.
    pub index: String,
}

/// An hour whose manifest is due: rewrite it, then [`Archive::manifest_written`] with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueHour {
    /// The video.
    pub video: String,
    /// The hour.
    pub hour: i64,
    /// The last change marked (marks up to it are forgotten once written).
    pub upto: i64,
}

/// What an import changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// Segments added.
    pub added: u64,
    /// Segments whose times changed.
    pub updated: u64,
    /// Segments removed (gone from the bucket).
    pub removed: u64,
}

fn bad(what: String) -> ArchiveError {
    ArchiveError::Remote(what)
}

fn entry_of(e: &db::StoredEntry, audio: bool) -> ManifestEntry {
    ManifestEntry {
        data: B64.encode(&e.data),
        width: e.width,
        height: e.height,
        timescale: audio.then_some(e.timescale),
    }
}

impl Archive {
    /// This host's id as a writer of a remote prefix (made once, kept in the index).
    pub fn host_id(&self) -> Result<String, ArchiveError> {
        let conn = self.conn();
        let id: Option<String> =
            conn.query_row("SELECT value FROM meta WHERE key = 'host_id'", [], |r| r.get(0)).optional()?;
        if let Some(id) = id {
            return Ok(id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        conn.execute("INSERT INTO meta (key, value) VALUES ('host_id', ?1)", [&id])?;
        Ok(id)
    }

    /// Takes `id` as this host's writer id: a host rebuilt from its bucket goes on writing its
    /// prefix as the host that wrote it.
    pub fn set_host_id(&self, id: &str) -> Result<(), ArchiveError> {
        self.conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('host_id', ?1)", [id])?;
        Ok(())
    }

    /// Whether this index is a read-only gateway's (`serve --read-only`): it lists other
    /// hosts' objects, so it may never upload or delete in a bucket.
    pub fn is_gateway(&self) -> Result<bool, ArchiveError> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'gateway'", [], |r| r.get::<_, String>(0))
            .optional()?
            .is_some())
    }

    /// Marks this index as a read-only gateway's.
    pub fn set_gateway(&self, source: &str) -> Result<(), ArchiveError> {
        self.conn().execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('gateway', ?1)", [source])?;
        Ok(())
    }

    /// Up to `limit` hours whose manifests are due, oldest change first.
    pub fn manifests_due(&self, limit: usize) -> Result<Vec<DueHour>, ArchiveError> {
        let conn = self.reader()?;
        let mut st = conn.prepare_cached(
            "SELECT video, hour, MAX(id) FROM remote_manifest_due GROUP BY video, hour ORDER BY MIN(id) LIMIT ?1",
        )?;
        Ok(st
            .query_map([limit as i64], |r| Ok(DueHour { video: r.get(0)?, hour: r.get(1)?, upto: r.get(2)? }))?
            .collect::<Result<_, _>>()?)
    }

    /// Forgets the marks of `due` up to the change it covered (later marks stay due).
    pub fn manifest_written(&self, due: &DueHour) -> Result<(), ArchiveError> {
        self.conn().execute(
            "DELETE FROM remote_manifest_due WHERE video = ?1 AND hour = ?2 AND id <= ?3",
            params![due.video, due.hour, due.upto],
        )?;
        Ok(())
    }

    /// `video.json` of `video`, or `None` when there is no such video (any more).
    pub fn video_manifest(&self, video: &str) -> Result<Option<VideoManifest>, ArchiveError> {
        let v = match self.video(video) {
            Ok(v) => v,
            Err(ArchiveError::UnknownVideo(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(VideoManifest {
            format: VIDEO_FORMAT.into(),
            version: FORMAT_VERSION,
            name: v.name,
            created_90k: v.created.0,
            segment_length_90k: v.config.segment_length.0,
            retention_90k: v.config.retention.map(|d| d.0),
            max_bytes: v.config.max_bytes,
            title: v.title,
            description: v.description,
        }))
    }

    /// The manifest of `video`'s `hour`: its segments with confirmed remote copies (none when
    /// the video is gone).
    pub fn hour_manifest(&self, video: &str, hour: i64) -> Result<HourManifest, ArchiveError> {
        let conn = self.reader()?;
        let mut m = HourManifest {
            format: HOUR_FORMAT.into(),
            version: FORMAT_VERSION,
            video: video.to_owned(),
            hour,
            segments: Vec::new(),
        };
        let Some(vid) =
            conn.query_row("SELECT id FROM video WHERE name = ?1", [video], |r| r.get::<_, i64>(0)).optional()?
        else {
            return Ok(m);
        };
        let (lo, hi) = (hour * HOUR_90K, (hour + 1) * HOUR_90K);
        let rows = db::segments_starting(&conn, vid, Some(Time90k(lo)), Some(Time90k(hi)), true)?;
        let mut copy = conn.prepare_cached("SELECT key, bytes, sha256 FROM remote_copy WHERE segment_id = ?1")?;
        for row in rows.into_iter().filter(|r| r.start.0 >= lo && !r.open) {
            let Some((key, bytes, sha256)) = copy
                .query_row([row.id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)))
                .optional()?
            else {
                continue;
            };
            let video_entry = entry_of(&db::sample_entry(&conn, row.sample_entry_id)?, false);
            let audio = match row.audio_entry_id {
                Some(id) => Some(ManifestAudio {
                    entry: entry_of(&db::sample_entry(&conn, id)?, true),
                    start: row.audio_start,
                    frames: row.audio_frames,
                    dur: row.audio_dur,
                }),
                None => None,
            };
            m.segments.push(ManifestSegment {
                key,
                bytes,
                sha256,
                run: row.run_id,
                seq: row.seq,
                start_90k: row.start.0,
                wall_dur_90k: row.wall_dur,
                media_start_90k: row.media_start,
                media_dur_90k: row.media_dur,
                frames: row.frames,
                key_frames: row.key_frames,
                init_len: row.init_len,
                video_entry,
                audio,
                index: B64.encode(&row.idx),
            });
        }
        Ok(m)
    }

    /// Creates (or updates the settings of) a video described by a bucket's `video.json`,
    /// remembering that it came from `source` (a recorder's prefix).
    pub fn import_video(&self, m: &VideoManifest, source: &str) -> Result<(), ArchiveError> {
        super::validate_video_name(&m.name)?;
        if m.format != VIDEO_FORMAT || m.version != FORMAT_VERSION {
            return Err(bad(format!(
                "video.json of '{}': format {} version {} is not ours",
                m.name, m.format, m.version
            )));
        }
        let cfg = VideoConfig {
            segment_length: Duration90k(m.segment_length_90k.max(TICKS_PER_SEC)),
            retention: m.retention_90k.map(Duration90k),
            max_bytes: m.max_bytes,
        };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (v, _) = db::create_video(&tx, &m.name, &cfg)?;
        if v.kind != db::VideoKind::Archive {
            return Err(bad(format!("'{}' is a File video here; the bucket's archive video is left out", m.name)));
        }
        let theirs: Option<String> =
            tx.query_row("SELECT source FROM remote_video WHERE video_id = ?1", [v.id], |r| r.get(0)).optional()?;
        match theirs {
            Some(s) if s != source => {
                return Err(bad(format!("video '{}' is imported from {s} already; {source} has one too", m.name)));
            }
            Some(_) => {}
            None => {
                let local: i64 = tx.query_row(
                    "SELECT count(*) FROM segment s LEFT JOIN local_evicted l ON l.segment_id = s.id
                     WHERE s.video_id = ?1 AND l.segment_id IS NULL",
                    [v.id],
                    |r| r.get(0),
                )?;
                if local > 0 {
                    return Err(bad(format!("video '{}' is recorded here; the bucket's is left out", m.name)));
                }
                tx.execute("INSERT INTO remote_video (video_id, source) VALUES (?1, ?2)", params![v.id, source])?;
            }
        }
        tx.execute(
            "UPDATE video SET created_90k = ?2, segment_length_90k = ?3, retention_90k = ?4, max_bytes = ?5,
                 title = ?6, description = ?7 WHERE id = ?1",
            params![v.id, m.created_90k, cfg.segment_length.0, m.retention_90k, m.max_bytes, m.title, m.description],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Names of the videos imported from a bucket, with their sources.
    pub fn imported_videos(&self) -> Result<Vec<(String, String)>, ArchiveError> {
        let conn = self.reader()?;
        let mut st = conn.prepare("SELECT v.name, r.source FROM remote_video r JOIN video v ON v.id = r.video_id")?;
        Ok(st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?)
    }

    /// Makes `video`'s segments starting in `hour` what the bucket's manifest lists: adds
    /// those missing (remote-only), updates those whose times changed, removes the others.
    /// The bucket is never asked to change: the copies and deletions recorded here are not
    /// queued for upload or deletion. `hour_manifest` of `None` is an hour gone from the bucket.
    pub fn import_hour(&self, video: &str, hour: i64, segments: &[ManifestSegment]) -> Result<Imported, ArchiveError> {
        let (lo, hi) = (hour * HOUR_90K, (hour + 1) * HOUR_90K);
        let mut done = Imported::default();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let v = db::video_by_name(&tx, video)?.ok_or_else(|| ArchiveError::UnknownVideo(video.to_owned()))?;
        let mut wanted = std::collections::HashSet::new();
        for s in segments {
            if s.start_90k.div_euclid(HOUR_90K) != hour {
                return Err(bad(format!("{}: starts outside the hour its manifest covers", s.key)));
            }
            // Named as its object (START90K-RUN-SEQ.mp4: never a local file's RUN-SEQ.mp4), so
            // HLS playlists and `segments/NAME` reach it as any segment.
            let name = s.key.rsplit('/').next().unwrap_or_default();
            let stem = name.strip_suffix(".mp4").unwrap_or_default();
            let numbers = stem.split('-').filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).count();
            if numbers != 3 || stem.split('-').count() != 3 {
                return Err(bad(format!("{}: not a segment object's key", s.key)));
            }
            let file = format!("videos/{video}/{name}");
            wanted.insert(file.clone());
            let existing: Option<(i64, i64, i64)> = tx
                .query_row("SELECT id, start_90k, wall_dur_90k FROM segment WHERE file = ?1", [&file], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?;
            if let Some((id, start, wall)) = existing {
                if (start, wall) != (s.start_90k, s.wall_dur_90k) {
                    tx.execute(
                        "UPDATE segment SET start_90k = ?2, wall_dur_90k = ?3 WHERE id = ?1",
                        params![id, s.start_90k, s.wall_dur_90k],
                    )?;
                    done.updated += 1;
                }
                continue;
            }
            let row = segment_row(&tx, v.id, s, file)?;
            let id = db::insert_segment(&tx, &row)?;
            tx.execute(
                "INSERT INTO remote_copy (segment_id, key, bytes, sha256, uploaded_90k) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, s.key, s.bytes, s.sha256, Time90k::now().0],
            )?;
            tx.execute("INSERT INTO local_evicted (segment_id, evicted_90k) VALUES (?1, ?2)", params![id, 0])?;
            done.added += 1;
        }
        let gone: Vec<(i64, String)> = {
            let mut st = tx.prepare(
                "SELECT s.id, s.file FROM segment s JOIN local_evicted l ON l.segment_id = s.id
                 WHERE s.video_id = ?1 AND s.start_90k >= ?2 AND s.start_90k < ?3",
            )?;
            st.query_map(params![v.id, lo, hi], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
        };
        for (id, file) in gone {
            if !wanted.contains(&file) {
                forget_segment(&tx, id)?;
                done.removed += 1;
            }
        }
        // Imported copies are the bucket's, not this index's to upload or describe.
        tx.execute(
            "DELETE FROM remote_backlog WHERE segment_id IN (SELECT id FROM segment WHERE video_id = ?1)",
            [v.id],
        )?;
        tx.execute("DELETE FROM remote_manifest_due WHERE video = ?1", [video])?;
        tx.commit()?;
        drop(conn);
        if done != Imported::default() {
            self.live.retire_video(v.id);
        }
        Ok(done)
    }

    /// Forgets an imported video gone from its bucket (rows only: it has no local files, and
    /// the bucket is not asked to delete anything).
    pub fn forget_imported_video(&self, video: &str) -> Result<u64, ArchiveError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(v) = db::video_by_name(&tx, video)? else { return Ok(0) };
        let ids: Vec<i64> = {
            let mut st = tx.prepare("SELECT id FROM segment WHERE video_id = ?1")?;
            st.query_map([v.id], |r| r.get(0))?.collect::<Result<_, _>>()?
        };
        for id in &ids {
            forget_segment(&tx, *id)?;
        }
        tx.execute("DELETE FROM run WHERE video_id = ?1", [v.id])?;
        tx.execute("DELETE FROM remote_run WHERE video_id = ?1", [v.id])?;
        tx.execute("DELETE FROM video WHERE id = ?1", [v.id])?;
        tx.execute("DELETE FROM remote_manifest_due WHERE video = ?1", [video])?;
        tx.execute("DELETE FROM remote_manifest_seen WHERE video = ?1", [video])?;
        tx.commit()?;
        drop(conn);
        self.live.retire_video(v.id);
        Ok(ids.len() as u64)
    }

    /// The manifests seen in the bucket: key → (video, hour, etag).
    pub fn manifests_seen(&self) -> Result<std::collections::HashMap<String, (String, i64, String)>, ArchiveError> {
        let conn = self.reader()?;
        let mut st = conn.prepare("SELECT key, video, hour, etag FROM remote_manifest_seen")?;
        Ok(st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?.collect::<Result<_, _>>()?)
    }

    /// Remembers a manifest as read (or, with `etag` of `None`, as gone).
    pub fn set_manifest_seen(&self, key: &str, video: &str, hour: i64, etag: Option<&str>) -> Result<(), ArchiveError> {
        let conn = self.conn();
        match etag {
            Some(e) => conn.execute(
                "INSERT OR REPLACE INTO remote_manifest_seen (key, video, hour, etag) VALUES (?1, ?2, ?3, ?4)",
                params![key, video, hour, e],
            )?,
            None => conn.execute("DELETE FROM remote_manifest_seen WHERE key = ?1", [key])?,
        };
        Ok(())
    }
}

/// Drops an imported segment's row without asking the bucket to delete its object (the
/// trigger that queues a deleted copy's key is undone for this key alone).
fn forget_segment(tx: &rusqlite::Transaction<'_>, id: i64) -> Result<(), ArchiveError> {
    let key: Option<String> =
        tx.query_row("SELECT key FROM remote_copy WHERE segment_id = ?1", [id], |r| r.get(0)).optional()?;
    tx.execute("DELETE FROM segment WHERE id = ?1", [id])?;
    if let Some(k) = key {
        tx.execute("DELETE FROM remote_garbage WHERE key = ?1", [k])?;
    }
    Ok(())
}

/// The index row of a manifest's segment, its run mapped to a local one.
fn segment_row(
    tx: &rusqlite::Transaction<'_>,
    video_id: i64,
    s: &ManifestSegment,
    file: String,
) -> Result<SegmentRow, ArchiveError> {
    let decode = |what: &str, b: &str| B64.decode(b).map_err(|e| bad(format!("{}: {what}: {e}", s.key)));
    let idx = decode("index", &s.index)?;
    let all = index::decode_all(&idx).map_err(|e| bad(format!("{}: index: {e}", s.key)))?;
    if all.video.len() as i64 != s.frames
        || all.video.iter().map(|f| i64::from(f.duration)).sum::<i64>() != s.media_dur_90k
    {
        return Err(bad(format!("{}: frame counts or durations disagree with its index", s.key)));
    }
    if s.bytes <= s.init_len || s.wall_dur_90k < 0 {
        return Err(bad(format!("{}: sizes or times out of range", s.key)));
    }
    let ve = &s.video_entry;
    let entry = db::sample_entry_id(tx, &decode("videoEntry", &ve.data)?, ve.width, ve.height, None)?;
    let audio_entry = match &s.audio {
        Some(a) => Some(db::sample_entry_id(tx, &decode("audio entry", &a.entry.data)?, 0, 0, a.entry.timescale)?),
        None => None,
    };
    let run: Option<i64> = tx
        .query_row(
            "SELECT run_id FROM remote_run WHERE video_id = ?1 AND remote_run = ?2",
            params![video_id, s.run],
            |r| r.get(0),
        )
        .optional()?;
    let run_id = match run {
        Some(r) => r,
        None => {
            let id = db::insert_run(tx, video_id, Time90k(s.start_90k), None)?;
            tx.execute(
                "INSERT INTO remote_run (video_id, remote_run, run_id) VALUES (?1, ?2, ?3)",
                params![video_id, s.run, id],
            )?;
            id
        }
    };
    Ok(SegmentRow {
        id: 0,
        video_id,
        run_id,
        seq: s.seq,
        file,
        open: false,
        sample_entry_id: entry,
        start: Time90k(s.start_90k),
        wall_dur: s.wall_dur_90k,
        media_start: s.media_start_90k,
        media_dur: s.media_dur_90k,
        frames: s.frames,
        key_frames: s.key_frames,
        init_len: s.init_len,
        bytes: s.bytes,
        summary: Some(index::Summary::of(&all)),
        idx,
        audio_entry_id: audio_entry,
        audio_start: s.audio.as_ref().map_or(0, |a| a.start),
        audio_frames: s.audio.as_ref().map_or(0, |a| a.frames),
        audio_dur: s.audio.as_ref().map_or(0, |a| a.dur),
    })
}
