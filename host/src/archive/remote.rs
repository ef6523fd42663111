//! Where each segment's remote copy is, in the index (schema versions 8 and 9; `docs/remote.md`).
//!
//! - A segment has a remote copy once its upload is confirmed (`remote_copy`: the object's
//!   key, size, checksum and when). Until then it is part of the backlog: closed, not copied.
//! - When a segment's row goes (retention, eviction, a deleted video), its remote copy's key
//!   goes to `remote_garbage` in the same transaction (a trigger), so the remote object is
//!   deleted later however the row went, and never forgotten by a crash in between.
//! - The backlog is a table of its own (`remote_backlog`, schema version 9), filled by triggers
//!   as segments close and emptied as copies are confirmed: finding what to upload next reads
//!   the backlog, never every segment the archive holds (millions, for a fleet's host).
//! - The local disk is a cache in front of the remote tier when a video has a cap
//!   (`localMediaCacheMaximumSizeMiB`): the oldest local copies whose remote copy is confirmed
//!   are evicted to stay under it (`local_evicted`, schema version 10: the row is marked in a
//!   transaction, then the file is unlinked; a crash between leaves a file the next eviction
//!   removes). A segment without a confirmed copy is never evicted: beyond the cap the backlog
//!   stays on local disk, under the disk-space rules as before (`docs/remote.md`).
//! - Nothing here talks to the store: the uploader (`crate::remote`) does, and reports back.

use super::{Archive, ArchiveError};
use crate::time::Time90k;
use rusqlite::{OptionalExtension, params};
use std::path::PathBuf;

/// The tables of schema versions 8 (copies, garbage), 9 (the backlog) and 10 (segments whose
/// local copy was evicted: `local_evicted`).
pub(crate) const REMOTE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS remote_copy (
    segment_id INTEGER PRIMARY KEY REFERENCES segment(id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_90k INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS remote_garbage (key TEXT PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS remote_copy_gone AFTER DELETE ON remote_copy
BEGIN
    INSERT OR IGNORE INTO remote_garbage (key) VALUES (old.key);
END;
CREATE TABLE IF NOT EXISTS remote_backlog (
    segment_id INTEGER PRIMARY KEY REFERENCES segment(id) ON DELETE CASCADE,
    start_90k INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS remote_backlog_start ON remote_backlog (start_90k, segment_id);
CREATE VIEW IF NOT EXISTS video_remote AS
    SELECT id, COALESCE(remote_tier, (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'remote_videos_all'), 1)
        AS wanted
    FROM video;
CREATE TRIGGER IF NOT EXISTS remote_backlog_closed AFTER UPDATE OF open ON segment
    WHEN new.open = 0 AND old.open <> 0 AND (SELECT wanted FROM video_remote WHERE id = new.video_id) = 1
BEGIN
    INSERT OR IGNORE INTO remote_backlog (segment_id, start_90k) VALUES (new.id, new.start_90k);
END;
CREATE TRIGGER IF NOT EXISTS remote_backlog_inserted AFTER INSERT ON segment
    WHEN new.open = 0 AND (SELECT wanted FROM video_remote WHERE id = new.video_id) = 1
BEGIN
    INSERT OR IGNORE INTO remote_backlog (segment_id, start_90k) VALUES (new.id, new.start_90k);
END;
CREATE TABLE IF NOT EXISTS local_evicted (
    segment_id INTEGER PRIMARY KEY REFERENCES segment(id) ON DELETE CASCADE,
    evicted_90k INTEGER NOT NULL
);
"#;

/// Fills the backlog of an index made before it (schema 8 and older): every closed segment
/// without a confirmed copy, of the videos that want one.
pub(crate) const REMOTE_BACKFILL: &str = r#"
INSERT OR IGNORE INTO remote_backlog (segment_id, start_90k)
    SELECT s.id, s.start_90k FROM segment s JOIN video_remote w ON w.id = s.video_id
        LEFT JOIN remote_copy r ON r.segment_id = s.id
    WHERE s.open = 0 AND r.segment_id IS NULL AND w.wanted = 1;
"#;

/// Makes the backlog match the videos' choices (all videos, or one) after a choice changed:
/// segments of a video that no longer wants copies leave it (their copies made so far stay,
/// under retention as before); closed segments without a copy of a video that now wants
/// them join it. Call inside the transaction that changed the choice.
pub(crate) fn resync_backlog(c: &rusqlite::Connection, video_id: Option<i64>) -> rusqlite::Result<()> {
    let (only, only_s) = match video_id {
        Some(_) => ("AND w.id = ?1", "AND s.video_id = ?1"),
        None => ("", ""),
    };
    let param: &[&dyn rusqlite::ToSql] = match &video_id {
        Some(id) => &[id],
        None => &[],
    };
    c.execute(
        &format!(
            "DELETE FROM remote_backlog WHERE segment_id IN (
                 SELECT s.id FROM segment s JOIN video_remote w ON w.id = s.video_id
                 WHERE w.wanted <> 1 {only})"
        ),
        param,
    )?;
    c.execute(
        &format!(
            "INSERT OR IGNORE INTO remote_backlog (segment_id, start_90k)
                 SELECT s.id, s.start_90k FROM segment s JOIN video_remote w ON w.id = s.video_id
                     LEFT JOIN remote_copy r ON r.segment_id = s.id
                 WHERE s.open = 0 AND r.segment_id IS NULL AND w.wanted = 1 {only_s}"
        ),
        param,
    )?;
    Ok(())
}

/// A closed segment without a remote copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    /// Its row.
    pub segment_id: i64,
    /// Its video.
    pub video: String,
    /// Its file.
    pub path: PathBuf,
    /// The file's length the index covers (the whole file, once closed).
    pub bytes: u64,
    /// Wall time of its first frame.
    pub start: Time90k,
    /// Wall time just past its last frame.
    pub end: Time90k,
    /// Its run and its sequence number in the run.
    pub run: i64,
    /// Sequence number in the run.
    pub seq: i64,
}

/// What is still to upload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Closed segments without a remote copy.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// End of the oldest of them (how far behind the remote tier is).
    pub oldest_end: Option<Time90k>,
}

/// What an eviction of local copies did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Local copies evicted.
    pub segments: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes still over the cap afterwards: media not yet uploaded (or open), kept.
    pub over: u64,
}

impl Archive {
    /// Sets which videos the host copies to its remote tier by default (`--remote-videos`):
    /// all (`true`), or only those whose own choice says so. Kept in the index, which the
    /// backlog's triggers read; a change makes the backlog match at once.
    pub fn set_remote_videos_all(&self, all: bool) -> Result<(), ArchiveError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let was: Option<String> =
            tx.query_row("SELECT value FROM meta WHERE key = 'remote_videos_all'", [], |r| r.get(0)).optional()?;
        let now = if all { "1" } else { "0" };
        if was.as_deref().unwrap_or("1") != now {
            tx.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('remote_videos_all', ?1)", [now])?;
            resync_backlog(&tx, None)?;
            tracing::info!(all, "the videos copied to the remote tier by default changed");
        }
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` closed segments without a remote copy, oldest first (AVA uploads the
    /// oldest first after an outage), skipping `busy` (being uploaded or waiting to retry).
    pub fn pending_uploads(&self, limit: usize, busy: &[i64]) -> Result<Vec<PendingUpload>, ArchiveError> {
        let conn = self.reader()?;
        let mut st = conn.prepare_cached(
            "SELECT s.id, v.name, s.file, s.bytes, s.start_90k, s.wall_dur_90k, s.run_id, s.seq
             FROM remote_backlog b JOIN segment s ON s.id = b.segment_id JOIN video v ON v.id = s.video_id
             ORDER BY b.start_90k, b.segment_id LIMIT ?1",
        )?;
        let rows = st.query_map([i64::try_from(limit + busy.len()).unwrap_or(i64::MAX)], |r| {
            let (file, start, dur): (String, i64, i64) = (r.get(2)?, r.get(4)?, r.get(5)?);
            Ok(PendingUpload {
                segment_id: r.get(0)?,
                video: r.get(1)?,
                path: self.segment_path(&file),
                bytes: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                start: Time90k(start),
                end: Time90k(start + dur),
                run: r.get(6)?,
                seq: r.get(7)?,
            })
        })?;
        let mut out = Vec::new();
        for p in rows {
            let p = p?;
            if !busy.contains(&p.segment_id) {
                out.push(p);
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Records a confirmed upload. `false`: the segment is gone meanwhile (retention): its
    /// object is now garbage, queued for deletion here.
    pub fn record_upload(&self, segment_id: i64, key: &str, bytes: u64, sha256: &str) -> Result<bool, ArchiveError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists: Option<i64> =
            tx.query_row("SELECT id FROM segment WHERE id = ?1", [segment_id], |r| r.get(0)).optional()?;
        match exists {
            Some(_) => {
                tx.execute(
                    "INSERT OR REPLACE INTO remote_copy (segment_id, key, bytes, sha256, uploaded_90k)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![segment_id, key, i64::try_from(bytes).unwrap_or(i64::MAX), sha256, Time90k::now().0],
                )?;
                tx.execute("DELETE FROM remote_backlog WHERE segment_id = ?1", [segment_id])?;
            }
            None => {
                tx.execute("INSERT OR IGNORE INTO remote_garbage (key) VALUES (?1)", [key])?;
            }
        }
        tx.commit()?;
        Ok(exists.is_some())
    }

    /// Up to `limit` keys of remote objects whose segments are gone.
    pub fn remote_garbage(&self, limit: usize) -> Result<Vec<String>, ArchiveError> {
        let conn = self.reader()?;
        let mut st = conn.prepare_cached("SELECT key FROM remote_garbage LIMIT ?1")?;
        let keys = st.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
        Ok(keys.collect::<Result<_, _>>()?)
    }

    /// Forgets a garbage key whose object is deleted.
    pub fn remote_garbage_done(&self, key: &str) -> Result<(), ArchiveError> {
        self.conn().execute("DELETE FROM remote_garbage WHERE key = ?1", [key])?;
        Ok(())
    }

    /// The remote copy of a segment file (relative name), if confirmed: its key.
    pub fn remote_key(&self, file: &str) -> Result<Option<String>, ArchiveError> {
        let conn = self.reader()?;
        Ok(conn
            .query_row(
                "SELECT r.key FROM remote_copy r JOIN segment s ON s.id = r.segment_id WHERE s.file = ?1",
                [file],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Sets (or clears) `video`'s local cache cap: the sink recording it says it
    /// (`localMediaCacheMaximumSizeMiB`) each time it opens the video. Kept in memory: a
    /// video no pipeline records no longer grows, and the next recording says it again.
    pub fn set_local_cache_cap(&self, video: &str, cap: Option<u64>) {
        let mut caps = self.cache_caps.lock().unwrap_or_else(|p| p.into_inner());
        match cap {
            Some(c) => caps.insert(video.to_owned(), c),
            None => caps.remove(video),
        };
    }

    /// `video`'s local cache cap, if its sink set one.
    pub fn local_cache_cap(&self, video: &str) -> Option<u64> {
        self.cache_caps.lock().unwrap_or_else(|p| p.into_inner()).get(video).copied()
    }

    /// Evicts the oldest local copies of `video`'s segments whose remote copy is confirmed
    /// until its segments on local disk hold at most `cap` bytes. Never a segment without a
    /// confirmed copy, never an open one. Also removes files a crash left after their row was
    /// marked evicted.
    pub fn evict_local_copies(&self, video: &str, cap: u64) -> Result<Eviction, ArchiveError> {
        let v = self.video(video)?;
        // The video's segments still on local disk, oldest first, and files of evicted ones.
        let (local, stale): (Vec<LocalCopy>, Vec<String>) = {
            let conn = self.reader()?;
            let mut st = conn.prepare_cached(
                "SELECT s.id, s.file, s.bytes, s.open, r.segment_id IS NOT NULL, l.segment_id IS NOT NULL
                 FROM segment s LEFT JOIN remote_copy r ON r.segment_id = s.id
                 LEFT JOIN local_evicted l ON l.segment_id = s.id
                 WHERE s.video_id = ?1 ORDER BY s.start_90k, s.run_id, s.seq",
            )?;
            let rows = st.query_map([v.id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    r.get::<_, bool>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })?;
            let (mut local, mut stale) = (Vec::new(), Vec::new());
            for row in rows {
                let (id, file, bytes, open, copied, evicted) = row?;
                if evicted {
                    stale.push(file);
                } else {
                    local.push(LocalCopy { id, file, bytes, evictable: copied && !open });
                }
            }
            (local, stale)
        };
        for file in stale {
            remove_evicted_file(self, &file)?;
        }
        let mut held: u64 = local.iter().map(|l| l.bytes).sum();
        let mut done = Eviction::default();
        for l in local {
            if held <= cap {
                break;
            }
            if !l.evictable {
                continue;
            }
            if !self.evict_local_copy(l.id, &l.file)? {
                continue; // its copy went meanwhile (the segment was deleted)
            }
            held -= l.bytes;
            done.segments += 1;
            done.bytes += l.bytes;
        }
        done.over = held.saturating_sub(cap);
        Ok(done)
    }

    /// Evicts one segment's local copy if its remote copy is confirmed: marks the row, then
    /// unlinks the file. `false`: it has no confirmed copy (left alone).
    pub(crate) fn evict_local_copy(&self, id: i64, rel: &str) -> Result<bool, ArchiveError> {
        let marked = self.conn().execute(
            "INSERT OR IGNORE INTO local_evicted (segment_id, evicted_90k)
             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM remote_copy WHERE segment_id = ?1)",
            params![id, Time90k::now().0],
        )?;
        let evicted = marked > 0 || self.is_evicted(rel)?;
        if evicted {
            remove_evicted_file(self, rel)?;
        }
        Ok(evicted)
    }

    /// Whether segment file `rel` is kept only in the remote tier.
    pub fn is_evicted(&self, rel: &str) -> Result<bool, ArchiveError> {
        Ok(self
            .reader()?
            .query_row(
                "SELECT 1 FROM local_evicted l JOIN segment s ON s.id = l.segment_id WHERE s.file = ?1",
                [rel],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Bytes of `video`'s segments on local disk, and of those only in the remote tier.
    pub fn local_and_remote_bytes(&self, video: &str) -> Result<(u64, u64), ArchiveError> {
        let v = self.video(video)?;
        let (local, remote): (Option<i64>, Option<i64>) = self.reader()?.query_row(
            "SELECT sum(CASE WHEN l.segment_id IS NULL THEN s.bytes END),
                    sum(CASE WHEN l.segment_id IS NULL THEN NULL ELSE s.bytes END)
             FROM segment s LEFT JOIN local_evicted l ON l.segment_id = s.id WHERE s.video_id = ?1",
            [v.id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let n = |b: Option<i64>| b.and_then(|b| u64::try_from(b).ok()).unwrap_or(0);
        Ok((n(local), n(remote)))
    }

    /// What is still to upload.
    pub fn remote_backlog(&self) -> Result<Backlog, ArchiveError> {
        let conn = self.reader()?;
        let (segments, bytes, oldest): (i64, Option<i64>, Option<i64>) = conn.query_row(
            "SELECT count(*), sum(s.bytes), min(s.start_90k + s.wall_dur_90k)
             FROM remote_backlog b JOIN segment s ON s.id = b.segment_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(Backlog {
            segments: u64::try_from(segments).unwrap_or(0),
            bytes: bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(0),
            oldest_end: oldest.map(Time90k),
        })
    }
}

/// A segment on local disk, as eviction sees it.
struct LocalCopy {
    id: i64,
    file: String,
    bytes: u64,
    /// Closed, with a confirmed remote copy.
    evictable: bool,
}

/// Unlinks the local file of a segment marked evicted (absent already: fine).
fn remove_evicted_file(archive: &Archive, rel: &str) -> Result<(), ArchiveError> {
    let path = archive.segment_path(rel);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ArchiveError::io("evicting the local copy of", &path)(e)),
    }
}
