//! The live tail: what recorders have written to their open segment files but not yet
//! committed to the index.
//!
//! A recorder commits an open segment's index row only every few seconds (each commit is a
//! SQLite transaction per camera; see `INDEX_UPDATE_INTERVAL` in `writer.rs`), but live
//! viewers want every fragment the moment it is on disk. So after each fragment the writer
//! publishes its up-to-date row here, in memory, and every read of segment rows in this
//! process (`Archive::segments`, the segment route, stats, the latest picture) sees the newer
//! of the two. Published rows describe fragments already written at explicit offsets that are
//! never rewritten, exactly like a committed row, so everything that holds for committed
//! fragments (every byte range named is final) holds for them too; and recovery adopts every
//! complete fragment after a crash, so nothing served from the tail is ever taken back.
//!
//! Other processes on the same data directory (the CLI) see only the committed index.

use super::SegmentRow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// The newest rows of open segments, by segment id; a change counter per video; and a
/// channel that moves on every change so that waiting readers (blocking playlist reloads)
/// wake up and check their video's counter.
pub(crate) struct LiveTails {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// Moves when a segment is closed or deleted (not at every fragment): for the uploader.
    closed: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    rows: HashMap<i64, Arc<SegmentRow>>,
    /// Video id → number of changes so far.
    generations: HashMap<i64, u64>,
}

impl State {
    fn bump(&mut self, video_id: i64) {
        let g = self.generations.entry(video_id).or_default();
        *g = g.wrapping_add(1);
    }
}

impl Default for LiveTails {
    fn default() -> Self {
        LiveTails { state: Mutex::new(State::default()), changed: watch::channel(0).0, closed: watch::channel(0).0 }
    }
}

impl LiveTails {
    fn state(&self) -> MutexGuard<'_, State> {
        // Only whole-value inserts and removes happen under the lock: a poisoned map is intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Makes `row` (an open segment, after a fragment was written) what readers see.
    pub(crate) fn publish(&self, row: &SegmentRow) {
        let mut st = self.state();
        st.rows.insert(row.id, Arc::new(row.clone()));
        st.bump(row.video_id);
        drop(st);
        self.notify();
    }

    /// Forgets a segment: it was closed (its final row is committed) or deleted.
    pub(crate) fn retire(&self, segment_id: i64) {
        let mut st = self.state();
        if let Some(r) = st.rows.remove(&segment_id) {
            st.bump(r.video_id);
            drop(st);
            self.notify();
            self.closed.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Forgets every segment of a video (a writer opening it: any row left by an earlier writer
    /// in this process is stale, and recovery rebuilds the index from the files).
    pub(crate) fn retire_video(&self, video_id: i64) {
        let mut st = self.state();
        st.rows.retain(|_, r| r.video_id != video_id);
        st.bump(video_id);
    }

    /// How many times the video's recording changed in this process: when it moved, the
    /// video has new fragments (or a segment was closed).
    pub(crate) fn generation(&self, video_id: i64) -> u64 {
        self.state().generations.get(&video_id).copied().unwrap_or(0)
    }

    /// Replaces rows read from the index by their published versions where those are newer.
    pub(crate) fn overlay(&self, rows: &mut [SegmentRow]) {
        let st = self.state();
        let live = &st.rows;
        if live.is_empty() {
            return;
        }
        for r in rows.iter_mut() {
            if let Some(l) = live.get(&r.id)
                && l.bytes > r.bytes
            {
                *r = SegmentRow::clone(l);
            }
        }
    }

    /// Lays the published durations over spans (id, start, wall duration) read from the index.
    pub(crate) fn overlay_spans(&self, spans: &mut [(i64, crate::time::Time90k, i64)]) {
        let st = self.state();
        for s in spans.iter_mut() {
            if let Some(l) = st.rows.get(&s.0)
                && l.wall_dur > s.2
            {
                s.2 = l.wall_dur;
            }
        }
    }

    /// The published rows of one video.
    pub(crate) fn of_video(&self, video_id: i64) -> Vec<Arc<SegmentRow>> {
        self.state().rows.values().filter(|r| r.video_id == video_id).cloned().collect()
    }

    /// A receiver that sees a change whenever a fragment is published or a segment retired.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A receiver that sees a change whenever a published segment is retired (closed or
    /// deleted): a fraction of the changes, for whoever cares only about closed segments.
    pub(crate) fn subscribe_closed(&self) -> watch::Receiver<u64> {
        self.closed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Time90k;

    fn row(id: i64, bytes: i64) -> SegmentRow {
        SegmentRow {
            id,
            video_id: 7,
            run_id: 1,
            seq: 0,
            file: format!("videos/cam/{id}.mp4"),
            open: true,
            sample_entry_id: 1,
            start: Time90k(0),
            wall_dur: bytes,
            media_start: 0,
            media_dur: bytes,
            frames: bytes / 10,
            key_frames: 1,
            init_len: 100,
            bytes,
            idx: Vec::new(),
            audio_entry_id: None,
            audio_start: 0,
            audio_frames: 0,
            audio_dur: 0,
            summary: None,
        }
    }

    #[test]
    fn newer_published_rows_win_and_retired_ones_are_gone() {
        let t = LiveTails::default();
        let mut rx = t.subscribe();
        t.publish(&row(1, 500));
        assert!(rx.has_changed().unwrap());
        assert_eq!((t.generation(7), t.generation(8)), (1, 0));
        rx.mark_unchanged();
        let mut rows = vec![row(1, 300), row(2, 300)];
        t.overlay(&mut rows);
        assert_eq!((rows[0].bytes, rows[1].bytes), (500, 300));
        // An index row that has caught up (or passed) the published one is kept.
        let mut rows = vec![row(1, 800)];
        t.overlay(&mut rows);
        assert_eq!(rows[0].bytes, 800);
        assert_eq!(t.of_video(7).len(), 1);
        t.retire(1);
        assert!(rx.has_changed().unwrap());
        assert!(t.of_video(7).is_empty());
        t.publish(&row(3, 10));
        t.retire_video(7);
        assert!(t.of_video(7).is_empty());
    }
}
