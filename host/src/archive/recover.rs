//! Crash recovery, deletion and retention: the procedures that keep files and index agreeing.
//!
//! - A segment row is inserted before its file is created, and the row's index only ever
//!   covers bytes already written; so after a crash an open row's file holds at least what the
//!   row says, plus perhaps complete fragments written after the last index update, plus perhaps
//!   one torn fragment. Recovery adopts the complete ones and truncates the torn tail.
//! - Deletion moves the file name to `garbage` in the same transaction that drops the row, then
//!   unlinks; a crash in between leaves a garbage row that the next open finishes.

use super::db::{self, SegmentRow, VideoRow};
use super::index::{AudioEntry, IndexBuilder, VideoEntry};
use super::{Archive, ArchiveError, sync_dir};
use crate::mp4::parse::{SegmentScan, scan_segment};
use crate::time::Time90k;
use rusqlite::{OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;

/// Media the index promised and the files did not hold when a writer opened the video: what a
/// power loss (or a disk losing data) took. Recovery trusts the files, shortens or drops the
/// rows, and reports each loss so it is logged and published, never a refusal to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Loss {
    /// The segment file, relative to the data directory.
    pub file: String,
    /// Seconds of media the index had and the file did not.
    pub seconds: f64,
    /// What was found.
    pub reason: String,
}

impl Loss {
    fn new(file: &str, ticks: i64, reason: impl Into<String>) -> Self {
        let loss = Loss {
            file: file.to_owned(),
            seconds: ticks.max(0) as f64 / crate::time::TICKS_PER_SEC as f64,
            reason: reason.into(),
        };
        tracing::warn!(file, seconds = loss.seconds, reason = %loss.reason, "recovery: recorded media lost");
        loss
    }
}

/// Finishes deletions, recovers open segments, checks closed ones against their files and
/// adopts orphan files of one video; returns what was lost. Call with the video's lock held.
pub(crate) fn recover_video(archive: &Archive, video: &VideoRow) -> Result<Vec<Loss>, ArchiveError> {
    collect_garbage(archive, Some(&video.name))?;
    let mut losses = Vec::new();
    let briefs = db::segment_briefs(&archive.conn(), Some(video.id))?;
    for b in briefs.iter().filter(|b| b.local) {
        // A closed segment's file was made durable before its row was closed, so it holds at
        // least what the row says, unless the disk lost it. (One evicted to the remote tier
        // has no file by design: it is not checked here.)
        let path = archive.segment_path(&b.file);
        let short = match std::fs::metadata(&path) {
            Ok(m) => m.len() < b.bytes as u64,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(ArchiveError::io("reading", &path)(e)),
        };
        if b.open || short {
            let row = db::segment_by_id(&archive.conn(), b.id)?;
            if let Some(row) = row {
                losses.extend(recover_segment(archive, row)?);
            }
        }
    }
    // Files in the video's directory that no row knows: a crash between creating the file and
    // committing its row cannot happen (row first), but a copied-in or restored file can.
    let known: HashSet<String> =
        db::segment_briefs(&archive.conn(), Some(video.id))?.into_iter().map(|s| s.file).collect();
    let dir = archive.video_dir(&video.name);
    for rel in segment_files(archive, &dir)? {
        if !known.contains(&rel) {
            tracing::warn!(file = %rel, "segment file has no index row; adopting it");
            adopt_file(archive, video, &rel)?;
        }
    }
    Ok(losses)
}

/// Segment files (relative names) in a video directory.
pub(crate) fn segment_files(archive: &Archive, dir: &Path) -> Result<Vec<String>, ArchiveError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ArchiveError::io("listing", dir)(e)),
    };
    for ent in rd {
        let ent = ent.map_err(ArchiveError::io("listing", dir))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        // A File video's MP4 lives in its directory too; it is not a segment.
        if name.ends_with(".mp4") && !name.starts_with('.') && name != super::files::FILE_NAME {
            let full = ent.path();
            if let Ok(rel) = full.strip_prefix(archive.root()) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a segment file's scan, or None if it is missing or not a segment at all.
pub(crate) fn scan_file(path: &Path) -> Result<Option<SegmentScan>, ArchiveError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ArchiveError::io("opening segment", path)(e)),
    };
    match scan_segment(&mut f) {
        Ok(s) => Ok(Some(s)),
        Err(crate::mp4::parse::ParseError::Io(e)) => Err(ArchiveError::io("reading segment", path)(e)),
        Err(e) => {
            tracing::warn!(file = %path.display(), "{e}");
            Ok(None)
        }
    }
}

/// Builds the index of a scanned file from its fragments.
pub(crate) fn index_from_scan(scan: &SegmentScan) -> IndexBuilder {
    let mut b = IndexBuilder::new();
    for f in &scan.fragments {
        let v: Vec<VideoEntry> = f
            .samples
            .iter()
            .map(|s| VideoEntry { duration: s.duration, cts: s.cts, size: s.size, key: s.key })
            .collect();
        let a: Vec<AudioEntry> = f.audio.iter().map(|s| AudioEntry { duration: s.duration, size: s.size }).collect();
        b.push_fragment(f.data_start, &v, &a);
    }
    b
}

/// Where a scanned file's audio starts (run-relative, audio clock): the `tfdt` of the first
/// fragment holding audio.
pub(crate) fn audio_start_from_scan(scan: &SegmentScan) -> i64 {
    scan.fragments.iter().find_map(|f| f.audio_base).and_then(|b| i64::try_from(b).ok()).unwrap_or(0)
}

/// Recovers a segment from its file: adopts complete fragments written after the last index
/// update, truncates a torn tail, and when the file holds less than the row says (a power loss
/// took page-cache data the row had already been committed for) shortens the row to the file
/// and reports the loss. Returns the loss, if any.
fn recover_segment(archive: &Archive, mut row: SegmentRow) -> Result<Option<Loss>, ArchiveError> {
    let path = archive.segment_path(&row.file);
    let Some(scan) = scan_file(&path)? else {
        let loss =
            (row.frames > 0).then(|| Loss::new(&row.file, row.media_dur, "the segment file is missing or unreadable"));
        delete_segment(archive, row.id, &row.file)?;
        return Ok(loss);
    };
    let index = index_from_scan(&scan);
    if index.samples() == 0 {
        let loss = (row.frames > 0).then(|| Loss::new(&row.file, row.media_dur, "the segment file holds no frame"));
        delete_segment(archive, row.id, &row.file)?;
        return Ok(loss);
    }
    let loss = ((index.samples() as i64) < row.frames).then(|| {
        Loss::new(
            &row.file,
            row.media_dur - index.media_dur(),
            format!("the file holds {} of the {} frames its row listed", index.samples(), row.frames),
        )
    });
    if scan.valid_len < scan.file_len {
        tracing::warn!(file = %row.file, torn = scan.file_len - scan.valid_len, "truncating torn fragment");
    }
    make_durable(&path, scan.valid_len)?;
    let recovered = (index.samples() as i64 - row.frames).max(0);
    row.idx = index.blob().to_vec();
    row.frames = index.samples() as i64;
    row.key_frames = index.key_samples() as i64;
    row.media_dur = index.media_dur();
    row.audio_start = audio_start_from_scan(&scan);
    row.audio_frames = index.audio_samples() as i64;
    row.audio_dur = index.audio_dur();
    row.summary = Some(index.summary());
    row.wall_dur = row.media_dur;
    row.bytes = scan.valid_len as i64;
    row.open = false;
    db::update_segment(&archive.conn(), &row)?;
    tracing::info!(file = %row.file, frames = row.frames, recovered, "recovered segment");
    Ok(loss)
}

/// Cuts a segment file back to `valid_len` (its complete fragments) if it is longer, and syncs
/// it: its row is about to list everything up to there, and after a `kill -9` part of that may
/// still be only in the page cache. A row must never list data a power loss can take.
fn make_durable(path: &Path, valid_len: u64) -> Result<(), ArchiveError> {
    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(ArchiveError::io("opening segment", path))?;
    if f.metadata().map_err(ArchiveError::io("reading", path))?.len() > valid_len {
        f.set_len(valid_len).map_err(ArchiveError::io("truncating segment", path))?;
    }
    f.sync_data().map_err(ArchiveError::io("syncing segment", path))
}

/// Parses the `ovmd` metadata of a scan: (video, run, seq, start, media start).
pub(crate) fn scan_meta(scan: &SegmentScan) -> Option<(String, i64, i64, Time90k, i64)> {
    let v: serde_json::Value = serde_json::from_slice(scan.meta.as_ref()?).ok()?;
    if v.get("format")?.as_str()? != "openva-segment" {
        return None;
    }
    Some((
        v.get("video")?.as_str()?.to_owned(),
        v.get("run")?.as_i64()?,
        v.get("seq")?.as_i64()?,
        Time90k(v.get("start90k")?.as_i64()?),
        v.get("mediaStart90k")?.as_i64()?,
    ))
}

/// Inserts the row of a segment file found without one (rebuild, orphan adoption).
pub(crate) fn adopt_file(archive: &Archive, video: &VideoRow, rel: &str) -> Result<Option<SegmentRow>, ArchiveError> {
    let path = archive.segment_path(rel);
    let Some(scan) = scan_file(&path)? else {
        return Ok(None);
    };
    let Some((name, run_id, seq, start, media_start)) = scan_meta(&scan) else {
        tracing::warn!(file = %rel, "segment has no openva metadata; left alone");
        return Ok(None);
    };
    if name != video.name {
        tracing::warn!(file = %rel, "segment belongs to video '{name}'; left alone");
        return Ok(None);
    }
    let index = index_from_scan(&scan);
    if index.samples() == 0 {
        return Ok(None);
    }
    make_durable(&path, scan.valid_len)?;
    let conn = archive.conn();
    // Run ids are never reused (`db::new_run`), so a run of another video means the file is
    // not what its metadata says: left alone rather than mixed into that video's run.
    if db::run_video(&conn, run_id)?.is_some_and(|v| v != video.id) {
        tracing::warn!(file = %rel, run_id, "segment names a run of another video; left alone");
        return Ok(None);
    }
    let (w, h) = scan.dims;
    let entry = db::sample_entry_id(&conn, &scan.sample_entry, w, h, None)?;
    let audio_entry = match &scan.audio {
        Some(a) => Some(db::sample_entry_id(&conn, &a.sample_entry, 0, 0, Some(a.timescale))?),
        None => None,
    };
    conn.execute(
        "INSERT OR IGNORE INTO run (id, video_id, started_90k) VALUES (?1, ?2, ?3)",
        params![run_id, video.id, start.0],
    )?;
    let mut row = SegmentRow {
        id: 0,
        video_id: video.id,
        run_id,
        seq,
        file: rel.to_owned(),
        open: false,
        sample_entry_id: entry,
        start,
        wall_dur: index.media_dur(),
        media_start,
        media_dur: index.media_dur(),
        frames: index.samples() as i64,
        key_frames: index.key_samples() as i64,
        init_len: scan.init_len as i64,
        bytes: scan.valid_len as i64,
        idx: index.blob().to_vec(),
        audio_entry_id: audio_entry,
        audio_start: audio_start_from_scan(&scan),
        audio_frames: index.audio_samples() as i64,
        audio_dur: index.audio_dur(),
        summary: Some(index.summary()),
    };
    row.id = db::insert_segment(&conn, &row)?;
    Ok(Some(row))
}

/// Deletes a segment: row to garbage in one durable transaction, then unlink, then forget the
/// garbage. Durable first, so that a power loss can never bring back a row whose file is gone.
pub(crate) fn delete_segment(archive: &Archive, id: i64, file: &str) -> Result<(), ArchiveError> {
    db::with_full_sync(&mut archive.conn(), |conn| {
        let tx = conn.transaction()?;
        let span: Option<(i64, i64)> = tx
            .query_row("SELECT video_id, start_90k + wall_dur_90k FROM segment WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        tx.execute("DELETE FROM segment WHERE id = ?1", [id])?;
        tx.execute("INSERT OR IGNORE INTO garbage (file) VALUES (?1)", [file])?;
        // The video's recorded inferences go no further back than its media.
        if let Some((video, end)) = span {
            let oldest: Option<i64> =
                tx.query_row("SELECT MIN(start_90k) FROM segment WHERE video_id = ?1", [video], |r| r.get(0))?;
            super::inferences::trim(&tx, video, oldest.unwrap_or(end))?;
        }
        tx.commit()?;
        Ok(())
    })?;
    unlink_garbage(archive, file)
}

fn unlink_garbage(archive: &Archive, rel: &str) -> Result<(), ArchiveError> {
    let path = archive.segment_path(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ArchiveError::io("deleting segment", &path)(e)),
    }
    archive.conn().execute("DELETE FROM garbage WHERE file = ?1", [rel])?;
    Ok(())
}

impl Archive {
    /// Recovers every video a crash left with an open segment, for a host starting before any
    /// writer opens a video: the segment is closed (trimmed to what its file holds), so it
    /// plays as recorded media and joins the remote backlog even if its video never records
    /// again (a writer would otherwise recover it only when recording resumes). Videos in use
    /// (locked) are left to their writer. Returns each video's losses, for the caller to
    /// publish. A video that cannot be recovered now (its directory unusable) is logged and
    /// left to its writer, which retries with events: one broken video never stops a host.
    pub fn recover_interrupted(&self) -> Result<Vec<(String, Vec<Loss>)>, ArchiveError> {
        let ids: Vec<i64> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT DISTINCT video_id FROM segment WHERE open <> 0")?;
            stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?
        };
        let videos = db::videos(&self.conn())?;
        let mut out = Vec::new();
        for v in videos.into_iter().filter(|v| ids.contains(&v.id)) {
            let lock = match super::lock_video(&self.video_dir(&v.name), &v.name) {
                Ok(l) => l,
                Err(ArchiveError::Locked(_)) => continue,
                Err(e) => {
                    tracing::warn!(video = v.name, "cannot recover the segment a crash left open now: {e}");
                    continue;
                }
            };
            match recover_video(self, &v) {
                Ok(losses) => {
                    tracing::info!(video = v.name, "recovered the segment a crash left open");
                    out.push((v.name, losses));
                }
                Err(e) => tracing::warn!(video = v.name, "cannot recover the segment a crash left open now: {e}"),
            }
            drop(lock);
        }
        Ok(out)
    }
}

/// Finishes deletions a crash interrupted (for one video, or all).
pub(crate) fn collect_garbage(archive: &Archive, video: Option<&str>) -> Result<(), ArchiveError> {
    let files: Vec<String> = {
        let conn = archive.conn();
        let mut st = conn.prepare("SELECT file FROM garbage")?;
        st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
    for f in files {
        if video.is_none_or(|v| f.starts_with(&format!("videos/{v}/"))) {
            unlink_garbage(archive, &f)?;
        }
    }
    Ok(())
}

/// Deletes the oldest closed segments of a video while they are older than its retention
/// period or while the video holds more bytes than its limit.
///
/// A segment's age is its end's distance from `now` on the wall clock, except for segments
/// recorded since this machine booted: their true age comes from the boot clock, which no
/// clock setting moves. So a wall clock that steps forward (NTP after a boot without a
/// real-time clock) never makes fresh video look old and deleted (`docs/archive.md`, "Clock
/// steps").
pub(crate) fn apply_retention(archive: &Archive, video: &VideoRow, now: Time90k) -> Result<u64, ArchiveError> {
    let _one = archive.retention.lock().unwrap_or_else(|p| p.into_inner());
    // The settings as they are now (an update may have changed them since the writer opened).
    let current = db::video_by_name(&archive.conn(), &video.name)?;
    let cfg = current.as_ref().map_or(&video.config, |v| &v.config);
    if cfg.retention.is_none() && cfg.max_bytes.is_none() {
        return Ok(0);
    }
    let segs = db::segment_briefs(&archive.conn(), Some(video.id))?;
    let mut total: i64 = segs.iter().map(|s| s.bytes).sum();
    let boot = crate::time::boot_clock();
    let mut runs: std::collections::HashMap<i64, Option<(String, i64)>> = std::collections::HashMap::new();
    let mut deleted = 0;
    for s in segs.iter().filter(|s| !s.open) {
        let too_old = match cfg.retention {
            Some(r) if s.end() < now - r => {
                let run = match runs.get(&s.run_id) {
                    Some(b) => b.clone(),
                    None => {
                        let b = db::run_boot(&archive.conn(), s.run_id)?;
                        runs.insert(s.run_id, b.clone());
                        b
                    }
                };
                match (run, boot) {
                    // Recorded in this boot: wall end − offset is its end on the boot clock.
                    (Some((id, offset)), Some((this, up))) if id == this => up - (s.end().0 - offset) > r.0,
                    _ => true,
                }
            }
            _ => false,
        };
        let too_big = cfg.max_bytes.is_some_and(|m| total > m);
        if !(too_old || too_big) {
            // Not the end: after a clock stepped back, a segment dated earlier may be newer
            // than one after it, so every segment is judged by its own age.
            continue;
        }
        // A segment being read (an export, a download, a job) is kept until the reader is done;
        // the next pass deletes it. It counts as deleted for the cap meanwhile: a reader may
        // hold the video over its cap for a while, but never costs newer recordings.
        if archive.pins.unless_pinned(s.id, || delete_segment(archive, s.id, &s.file))? {
            tracing::info!(file = %s.file, too_old, too_big, "retention: deleted segment");
            deleted += 1;
        } else {
            tracing::info!(file = %s.file, "retention: kept a segment being read until the reader is done");
        }
        total -= s.bytes;
    }
    Ok(deleted)
}
