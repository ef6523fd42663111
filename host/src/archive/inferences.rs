//! Inferences recorded with a video: what a VideoSink's metadata inputs (an extension, the
//! object tracker, the line counter) said about its frames, kept beside the video's segments
//! so that playback can draw them over the picture and on the timeline (AVA recorded them with
//! the video and played them back as `emsg` boxes; our player asks for them by time range).
//!
//! Rows live in the index (`inference`, one per frame with results, keyed by video and frame
//! time) with a per-minute tally (`inference_minute`) that a timeline of days reads without
//! touching the rows. They are metadata, not media: they are written in batches (at most a
//! second late), never on the recording path, and a lost batch (a crash, a full disk) loses
//! boxes, never video. Retention keeps them no older than the video's oldest segment (see
//! `recover::delete_segment`). Invariants: `docs/archive.md`, "Inferences".

use super::{Archive, ArchiveError};
use crate::time::{TICKS_PER_SEC, Time90k};
use rusqlite::params;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One minute in 90 kHz ticks: the tally's bucket.
pub const MINUTE_90K: i64 = 60 * TICKS_PER_SEC;
/// Rows one batch holds at most.
const PENDING_ROWS: usize = 4096;
/// A frame's inferences larger than this (an extension's base64 `other` blob, say) are not
/// stored: boxes are what playback needs.
pub const MAX_ROW_BYTES: usize = 64 << 10;
/// How long a row waits for its batch at most (while rows keep coming).
const BATCH_AGE: Duration = Duration::from_secs(1);
/// Rows one query returns at most; the caller pages on from the last one's time.
pub const PAGE_ROWS: usize = 5000;

/// A video's inferences being recorded: rows batched into the index.
pub struct InferenceLog {
    archive: Arc<Archive>,
    video: String,
    /// The video's id, looked up at the first batch (the writer may create the video late).
    video_id: Option<i64>,
    pending: Vec<(i64, String)>,
    since: Instant,
    /// Rows not stored (too large, failed batches), for the log.
    dropped: u64,
    /// Whether the last batch failed (so a failure is logged once per episode).
    failing: bool,
}

impl InferenceLog {
    /// A log for the video named `video` (which need not exist yet).
    pub fn new(archive: Arc<Archive>, video: &str) -> Self {
        InferenceLog {
            archive,
            video: video.to_owned(),
            video_id: None,
            pending: Vec::new(),
            since: Instant::now(),
            dropped: 0,
            failing: false,
        }
    }

    /// Records a frame's inferences (AVA's `inferences` array, as JSON text) at its time; the
    /// batch is written when it is a second old or full.
    pub fn push(&mut self, time: Time90k, inferences: String) {
        if inferences.len() > MAX_ROW_BYTES {
            self.dropped += 1;
            return;
        }
        if self.pending.is_empty() {
            self.since = Instant::now();
        }
        // Never more than PENDING_ROWS: a full batch is written (or dropped) at once.
        self.pending.push((time.0, inferences));
        if self.since.elapsed() >= BATCH_AGE || self.pending.len() >= PENDING_ROWS {
            self.flush();
        }
    }

    /// Writes the pending rows if they have waited long enough: called as frames go by, so
    /// the last rows of a scene are written even when no new ones come.
    pub fn tick(&mut self) {
        if !self.pending.is_empty() && self.since.elapsed() >= BATCH_AGE {
            self.flush();
        }
    }

    /// Rows not stored so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes the pending rows in one transaction. A failure drops them (logged once until a
    /// batch succeeds again): the video's recording goes on either way.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let rows = std::mem::take(&mut self.pending);
        match self.write(&rows) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(video = %self.video, "recording inferences again");
                }
                self.failing = false;
            }
            Err(e) => {
                self.dropped += rows.len() as u64;
                if !self.failing {
                    tracing::warn!(video = %self.video, "inferences not recorded: {e}");
                }
                self.failing = true;
            }
        }
    }

    fn write(&mut self, rows: &[(i64, String)]) -> Result<(), ArchiveError> {
        let id = match self.video_id {
            Some(id) => id,
            None => {
                let id = self.archive.video(&self.video)?.id;
                self.video_id = Some(id);
                id
            }
        };
        let mut conn = self.archive.conn();
        let tx = conn.transaction()?;
        {
            let mut row = tx.prepare_cached("INSERT INTO inference (video_id, time_90k, body) VALUES (?1, ?2, ?3)")?;
            let mut tally = tx.prepare_cached(
                "INSERT INTO inference_minute (video_id, minute, count) VALUES (?1, ?2, 1)
                 ON CONFLICT (video_id, minute) DO UPDATE SET count = count + 1",
            )?;
            for (t, body) in rows {
                row.execute(params![id, t, body])?;
                tally.execute(params![id, t.div_euclid(MINUTE_90K)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl Drop for InferenceLog {
    fn drop(&mut self) {
        self.flush();
        if self.dropped > 0 {
            tracing::warn!(video = %self.video, rows = self.dropped, "inferences not recorded in this run");
        }
    }
}

/// One frame's stored inferences.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredInference {
    /// The frame's time.
    pub time: Time90k,
    /// AVA's `inferences` array, as JSON text.
    pub body: String,
}

/// A page of stored inferences.
#[derive(Clone, Debug, PartialEq)]
pub struct InferencePage {
    /// The rows, oldest first.
    pub rows: Vec<StoredInference>,
    /// Where the rest of the range starts, when there is more.
    pub next: Option<Time90k>,
}

/// Minutes with inferences: `[start, end)` spans of consecutive minutes and the rows in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    /// Start of the first minute.
    pub start: Time90k,
    /// End of the last minute.
    pub end: Time90k,
    /// Frames with inferences in it.
    pub count: i64,
}

impl Archive {
    /// The stored inferences of `video` in `[start, end)`, oldest first, a page at a time: at
    /// most [`PAGE_ROWS`], and where the rest starts when there is more. A page never splits
    /// the rows of one frame time (several metadata inputs store one each), so asking again
    /// from that time misses none and repeats none.
    pub fn inferences(&self, video: &str, start: Time90k, end: Time90k) -> Result<InferencePage, ArchiveError> {
        if end <= start {
            return Err(ArchiveError::EndNotAfterStart { start, end });
        }
        let id = self.video(video)?.id;
        let conn = self.reader()?;
        let mut st = conn.prepare_cached(
            "SELECT time_90k, body FROM inference WHERE video_id = ?1 AND time_90k >= ?2 AND time_90k < ?3
             ORDER BY time_90k, rowid LIMIT ?4",
        )?;
        // One row more than a page tells whether there is more.
        let rows = st.query_map(params![id, start.0, end.0, PAGE_ROWS as i64 + 1], |r| {
            Ok(StoredInference { time: Time90k(r.get(0)?), body: r.get(1)? })
        })?;
        let mut rows: Vec<StoredInference> = rows.collect::<Result<_, _>>()?;
        if rows.len() <= PAGE_ROWS {
            return Ok(InferencePage { rows, next: None });
        }
        let next = rows[PAGE_ROWS].time;
        rows.truncate(PAGE_ROWS);
        let whole = rows.iter().position(|r| r.time == next).filter(|&k| k > 0);
        let next = match whole {
            // The last frame time goes whole to the next page.
            Some(k) => {
                rows.truncate(k);
                next
            }
            // A page of one frame time (never, in practice): the rest of it is skipped.
            None if rows.first().is_some_and(|r| r.time == next) => Time90k(next.0 + 1),
            None => next,
        };
        Ok(InferencePage { rows, next: Some(next) })
    }

    /// Where `video` has inferences in `[start, end)`, by whole minutes (from the tally, so a
    /// month costs as little as an hour).
    pub fn inference_activity(&self, video: &str, start: Time90k, end: Time90k) -> Result<Vec<Activity>, ArchiveError> {
        if end <= start {
            return Err(ArchiveError::EndNotAfterStart { start, end });
        }
        let id = self.video(video)?.id;
        let conn = self.reader()?;
        let mut st = conn.prepare_cached(
            "SELECT minute, count FROM inference_minute WHERE video_id = ?1 AND minute >= ?2 AND minute < ?3
             ORDER BY minute",
        )?;
        let first = start.0.div_euclid(MINUTE_90K);
        let last = (end.0 - 1).div_euclid(MINUTE_90K) + 1;
        let rows = st.query_map(params![id, first, last], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out: Vec<Activity> = Vec::new();
        for row in rows {
            let (m, count) = row?;
            let (s, e) = (Time90k(m * MINUTE_90K), Time90k((m + 1) * MINUTE_90K));
            match out.last_mut() {
                Some(a) if a.end == s => {
                    a.end = e;
                    a.count += count;
                }
                _ => out.push(Activity { start: s, end: e, count }),
            }
        }
        Ok(out)
    }
}

/// Forgets a video's inferences older than `before` (its oldest segment's start, or the end
/// of its last deleted one when none is left): what retention and eviction leave of them.
pub(crate) fn trim(conn: &rusqlite::Connection, video_id: i64, before: i64) -> rusqlite::Result<()> {
    conn.execute("DELETE FROM inference WHERE video_id = ?1 AND time_90k < ?2", params![video_id, before])?;
    conn.execute(
        "DELETE FROM inference_minute WHERE video_id = ?1 AND minute < ?2",
        params![video_id, before.div_euclid(MINUTE_90K)],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::VideoConfig;
    use crate::time::Duration90k;

    fn archive(tag: &str) -> (Arc<Archive>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("openva-inferences-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Arc::new(Archive::open_or_create(&dir).expect("archive"));
        (a, dir)
    }

    fn config() -> VideoConfig {
        VideoConfig { segment_length: Duration90k::from_secs(30), retention: None, max_bytes: None }
    }

    #[test]
    fn rows_are_batched_paged_and_tallied_by_minute() {
        let (a, dir) = archive("batch");
        crate::archive::db::create_video(&a.conn(), "cam", &config()).expect("video");
        let t0 = 1_000 * MINUTE_90K;
        {
            let mut log = InferenceLog::new(a.clone(), "cam");
            // Two minutes apart, then one more in the first minute.
            for (dt, tag) in [(0, "a"), (TICKS_PER_SEC, "b"), (2 * MINUTE_90K, "c")] {
                log.push(Time90k(t0 + dt), format!(r#"[{{"type":"entity","tag":"{tag}"}}]"#));
            }
            // A row past the size cap is dropped, counted.
            log.push(Time90k(t0 + 5), "x".repeat(MAX_ROW_BYTES + 1));
            assert_eq!(log.dropped(), 1);
        }
        let all = a.inferences("cam", Time90k(t0), Time90k(t0 + 3 * MINUTE_90K)).expect("query").rows;
        assert_eq!(all.iter().map(|r| r.time.0 - t0).collect::<Vec<_>>(), vec![0, TICKS_PER_SEC, 2 * MINUTE_90K]);
        assert!(all[1].body.contains("\"b\""));
        let first = a.inferences("cam", Time90k(t0 + 1), Time90k(t0 + MINUTE_90K)).expect("query").rows;
        assert_eq!(first.len(), 1);
        let act = a.inference_activity("cam", Time90k(t0 - MINUTE_90K), Time90k(t0 + 10 * MINUTE_90K)).expect("act");
        assert_eq!(
            act,
            vec![
                Activity { start: Time90k(t0), end: Time90k(t0 + MINUTE_90K), count: 2 },
                Activity { start: Time90k(t0 + 2 * MINUTE_90K), end: Time90k(t0 + 3 * MINUTE_90K), count: 1 },
            ]
        );
        assert!(matches!(a.inferences("nope", Time90k(t0), Time90k(t0 + 1)), Err(ArchiveError::UnknownVideo(_))));
        assert!(matches!(a.inferences("cam", Time90k(t0), Time90k(t0)), Err(ArchiveError::EndNotAfterStart { .. })));
        trim(&a.conn(), a.video("cam").expect("v").id, t0 + MINUTE_90K).expect("trim");
        assert_eq!(a.inferences("cam", Time90k(0), Time90k(i64::MAX)).expect("query").rows.len(), 1);
        assert_eq!(a.inference_activity("cam", Time90k(0), Time90k(i64::MAX / 2)).expect("act").len(), 1);
        // Deleting the video deletes its inferences with it.
        a.delete_video("cam").expect("delete");
        let n: i64 = a.conn().query_row("SELECT count(*) FROM inference", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 0);
        drop(a);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn pages_never_split_a_frame_time() {
        let (a, dir) = archive("pages");
        crate::archive::db::create_video(&a.conn(), "cam", &config()).expect("video");
        {
            // Two metadata inputs: two rows per frame time, a page and a half of them.
            let mut log = InferenceLog::new(a.clone(), "cam");
            for i in 0..(PAGE_ROWS as i64 * 3 / 4) {
                log.push(Time90k(1000 + i), format!("[{i}]"));
                log.push(Time90k(1000 + i), format!("[{i}]"));
            }
        }
        let (mut from, mut seen, mut pages) = (Time90k(0), Vec::new(), 0);
        loop {
            let page = a.inferences("cam", from, Time90k(i64::MAX / 2)).expect("page");
            assert!(page.rows.len() <= PAGE_ROWS);
            seen.extend(page.rows.iter().map(|r| r.time.0));
            pages += 1;
            match page.next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(pages, 2);
        assert_eq!(seen.len(), PAGE_ROWS * 3 / 2, "every row once");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        drop(a);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn deleting_segments_keeps_inferences_no_older_than_the_media() {
        let (a, dir) = archive("trim");
        let (v, _) = crate::archive::db::create_video(&a.conn(), "cam", &config()).expect("video");
        let seg = 30 * TICKS_PER_SEC;
        let t0 = 500 * MINUTE_90K;
        {
            let c = a.conn();
            c.execute("INSERT INTO sample_entry (id, data, width, height) VALUES (1, x'00', 640, 360)", []).expect("e");
            c.execute("INSERT INTO run (id, video_id, started_90k) VALUES (1, ?1, ?2)", params![v.id, t0]).expect("r");
            for i in 0..3i64 {
                c.execute(
                    "INSERT INTO segment (id, video_id, run_id, seq, file, open, sample_entry_id, start_90k,
                         wall_dur_90k, media_start_90k, media_dur_90k, frames, key_frames, init_len, bytes)
                     VALUES (?1, ?2, 1, ?1, ?3, 0, 1, ?4, ?5, 0, ?5, 1, 1, 0, 0)",
                    params![i + 1, v.id, format!("videos/cam/{i}.mp4"), t0 + i * seg, seg],
                )
                .expect("segment");
            }
        }
        {
            let mut log = InferenceLog::new(a.clone(), "cam");
            for i in 0..9i64 {
                log.push(Time90k(t0 + i * seg / 3), "[{}]".into());
            }
        }
        let left = |a: &Archive| a.inferences("cam", Time90k(0), Time90k(i64::MAX)).expect("q").rows.len();
        assert_eq!(left(&a), 9);
        // The oldest segment goes: its three rows go with it.
        crate::archive::recover::delete_segment(&a, 1, "videos/cam/0.mp4").expect("delete");
        assert_eq!(left(&a), 6);
        crate::archive::recover::delete_segment(&a, 2, "videos/cam/1.mp4").expect("delete");
        crate::archive::recover::delete_segment(&a, 3, "videos/cam/2.mp4").expect("delete");
        // None left: nothing older than the last one's end stays.
        assert_eq!(left(&a), 0);
        drop(a);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rows_for_a_video_not_yet_made_are_dropped_not_fatal() {
        let (a, dir) = archive("missing");
        let mut log = InferenceLog::new(a.clone(), "later");
        log.push(Time90k(1), "[]".into());
        log.flush();
        assert_eq!(log.dropped(), 1);
        crate::archive::db::create_video(&a.conn(), "later", &config()).expect("video");
        log.push(Time90k(2), "[]".into());
        log.flush();
        assert_eq!(log.dropped(), 1);
        assert_eq!(a.inferences("later", Time90k(0), Time90k(10)).expect("q").rows.len(), 1);
        drop((log, a));
        let _ = std::fs::remove_dir_all(dir);
    }
}
