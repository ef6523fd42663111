//! One range of an export laid out from segment rows: which segments it cuts into (read up
//! front), which frames it takes, and each piece's counts, gaps and times.

use super::super::db::{self, SegmentRow};
use super::super::index::{self, Decoded};
use super::super::pins::Pin;
use super::super::{Archive, ArchiveError, GAP_TOLERANCE_90K};
use super::Entries;
use super::piece::{Piece, PieceAudio, VideoEnd};
use crate::mp4::file::Counts;
use crate::time::{TICKS_PER_SEC, Time90k, rescale};
use std::collections::HashMap;
use std::sync::Arc;

/// Segments whose frames may be shown within this of a range's start or end are read while
/// planning (composition offsets and rounding never reach this far).
const EDGE_MARGIN_90K: i64 = 2 * TICKS_PER_SEC;

/// One range of a plan, laid out.
pub(super) struct RangePlan {
    pub(super) pieces: Vec<Piece>,
    pub(super) counts: Vec<Counts>,
    pub(super) gaps: Vec<(Time90k, Time90k)>,
    /// Wall time of the range's first frame (its media time 0).
    pub(super) first_wall: i64,
    pub(super) shown_start: i64,
    pub(super) shown_end: i64,
    /// Sum of its video durations.
    pub(super) media: u64,
    /// Its audio: wall time of its first sample, and the sum of its durations (audio clock).
    pub(super) audio: Option<(i64, u64)>,
    /// Bounds of its composition offsets.
    pub(super) cts: (i32, i32),
    pub(super) pin: Pin,
}

/// A frame of decoded segments, with its wall time.
pub(super) struct Picked {
    /// Wall time of the frame's decode time.
    pub(super) wall: i64,
    pub(super) sample: index::Sample,
    /// Which row (of those read), and which of its frames.
    pub(super) row: usize,
    pub(super) at: usize,
}

impl Picked {
    /// Wall time at which the frame is shown.
    pub(super) fn shown(&self) -> i64 {
        self.wall + i64::from(self.sample.cts)
    }
}

/// The gap between a frame ending at `end` and the next, at `next`, of another run (or none):
/// a stretch longer than the tolerance between two recording runs.
pub(super) fn gap_between(end: i64, next: i64, same_run: bool) -> Option<(Time90k, Time90k)> {
    (next - end > GAP_TOLERANCE_90K && !same_run).then_some((Time90k(end), Time90k(next)))
}

pub(super) fn own_wall_dur(row: &SegmentRow, s: &index::Sample) -> i64 {
    rescale(s.media_off + i64::from(s.duration), row.media_dur, row.wall_dur)
        - rescale(s.media_off, row.media_dur, row.wall_dur)
}

/// Every frame of the decoded rows, in row order, with wall times.
pub(super) fn frames_of(rows: &[SegmentRow], decoded: &[Option<Decoded>]) -> Vec<Picked> {
    let n = decoded.iter().flatten().map(|d| d.video.len()).sum();
    let mut all = Vec::with_capacity(n);
    for (row, (r, d)) in rows.iter().zip(decoded).enumerate() {
        let Some(d) = d else { continue };
        for (at, s) in d.video.iter().enumerate() {
            all.push(Picked { wall: r.start.0 + rescale(s.media_off, r.media_dur, r.wall_dur), sample: *s, row, at });
        }
    }
    all
}

/// Which of `all` a range `[start, end)` takes: from the keyframe at or before the frame on
/// screen at `start` (shown last at or before it, or the first), backed up in decode order, to
/// the last frame in decode order shown before `end` (frames decoded before it but shown
/// after `end` come along and are hidden by the edit list).
pub(super) fn pick_span(all: &[Picked], start: Time90k, end: Time90k) -> Option<(usize, usize)> {
    let on_screen =
        (0..all.len()).filter(|&i| all[i].shown() <= start.0).max_by_key(|&i| (all[i].shown(), i)).unwrap_or(0);
    let first = all.get(..=on_screen)?.iter().rposition(|p| p.sample.key)?;
    let last = all.iter().rposition(|p| p.shown() < end.0)?;
    (last >= first).then_some((first, last))
}

impl Archive {
    /// Reads and decodes the sample indexes of the rows marked in `want` not decoded yet.
    pub(super) fn decode_rows(
        &self,
        rows: &mut [SegmentRow],
        want: &[bool],
        decoded: &mut [Option<Decoded>],
    ) -> Result<(), ArchiveError> {
        let missing: Vec<i64> = (0..rows.len())
            .filter(|&i| want[i] && decoded[i].is_none() && rows[i].idx.is_empty())
            .map(|i| rows[i].id)
            .collect();
        let mut blobs: HashMap<i64, Vec<u8>> = db::segment_indexes(&*self.reader()?, &missing)?.into_iter().collect();
        for (i, row) in rows.iter_mut().enumerate() {
            if !want[i] || decoded[i].is_some() {
                continue;
            }
            if row.idx.is_empty() {
                row.idx = blobs
                    .remove(&row.id)
                    .ok_or_else(|| ArchiveError::Corrupt(format!("{}: its sample index is missing", row.file)))?;
            }
            decoded[i] =
                Some(index::decode_all(&row.idx).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", row.file)))?);
        }
        Ok(())
    }

    /// Lays out one range of `video`: its pieces, their counts, its gaps and times.
    pub(super) fn plan_range(
        &self,
        video_id: i64,
        video: &str,
        start: Time90k,
        end: Time90k,
        entries: &mut Entries,
    ) -> Result<RangePlan, ArchiveError> {
        if end <= start {
            return Err(ArchiveError::EndNotAfterStart { start, end });
        }
        let no_data = || ArchiveError::NoData { video: video.to_owned(), start, end };
        // Read and pinned at once: retention and eviction keep them until the export ends.
        let (mut rows, pin) = self.pins.hold(
            || self.segments_of(video_id, Some(start), Some(end), false),
            |rows| rows.iter().map(|s| s.id).collect(),
        )?;
        if rows.is_empty() {
            return Err(no_data());
        }
        let n = rows.len();
        // Read up front: the ends, rows near the range's ends, rows being recorded (their
        // index still grows) and rows without a summary (written before schema 6).
        let mut want: Vec<bool> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (lo, hi) = r.summary.map_or((0, 0), |m| (m.cts_min.min(0), m.cts_max.max(0)));
                i == 0
                    || i == n - 1
                    || r.summary.is_none()
                    || r.open
                    || !r.idx.is_empty()
                    || r.start.0 + i64::from(lo) - EDGE_MARGIN_90K <= start.0
                    || r.end().0 + i64::from(hi) + EDGE_MARGIN_90K >= end.0
            })
            .collect();
        let mut decoded: Vec<Option<Decoded>> = (0..n).map(|_| None).collect();
        let (all, first, last) = loop {
            self.decode_rows(&mut rows, &want, &mut decoded)?;
            let all = frames_of(&rows, &decoded);
            let (first, last) = pick_span(&all, start, end).ok_or_else(no_data)?;
            let (first_row, last_row) = (all[first].row, all[last].row);
            // A row not read must lie inside the picked stretch (then all its frames are
            // taken); otherwise read more and pick again.
            let mut more = false;
            for (i, w) in want.iter_mut().enumerate() {
                if !*w && (i < first_row || i > last_row) {
                    *w = true;
                    more = true;
                }
            }
            if !more {
                break (all, first, last);
            }
        };
        let (first_row, last_row) = (all[first].row, all[last].row);
        // Where the picked frames of each read row begin and end (indexes into `all`).
        let mut span: Vec<Option<(usize, usize)>> = vec![None; n];
        for (j, p) in all.iter().enumerate().take(last + 1).skip(first) {
            span[p.row].get_or_insert((j, j)).1 = j;
        }
        let mut data_end = all[first..=last]
            .iter()
            .map(|p| p.shown() + own_wall_dur(&rows[p.row], &p.sample))
            .max()
            .unwrap_or(i64::MIN);
        for i in (first_row..=last_row).filter(|&i| decoded[i].is_none()) {
            data_end = data_end.max(rows[i].end().0);
        }
        if data_end <= start.0 {
            return Err(no_data());
        }
        let shown_start = start.0.max(all[first].shown());
        let shown_end = end.0.min(data_end);
        // Each piece's first frame and first audio sample (wall times), to end the one before.
        let first_wall = |i: usize| span[i].map_or(rows[i].start.0, |(from, _)| all[from].wall);
        let firsts: Vec<i64> = (first_row..=last_row).map(first_wall).collect();
        let mut pieces = Vec::with_capacity(last_row + 1 - first_row);
        for i in first_row..=last_row {
            let r = &rows[i];
            let video = match (&decoded[i], span[i]) {
                (Some(_), Some((from, to))) => Some((all[from].at, all[to].at + 1)),
                // A read row without picked frames (inside the stretch: impossible unless the
                // index is empty) adds nothing.
                (Some(_), None) => Some((0, 0)),
                (None, _) => None,
            };
            let audio = self.audio_entry(entries, r)?.map(|(entry, rate)| PieceAudio {
                entry,
                rate,
                samples: None,
                base: 0,
                next: None,
            });
            pieces.push(Piece {
                id: r.id,
                path: self.segment_path(&r.file),
                start: r.start.0,
                wall_dur: r.wall_dur,
                media_start: r.media_start,
                media_dur: r.media_dur,
                audio_start: r.audio_start,
                idx: decoded[i].as_ref().map(|_| Arc::from(r.idx.as_slice())),
                video,
                entry: self.video_entry(entries, r.sample_entry_id)?,
                audio,
                video_end: VideoEnd::RangeEnd(shown_end),
            });
        }
        // Video: each piece runs to the next one's first frame; gaps between runs are held.
        let mut gaps = Vec::new();
        for k in 0..pieces.len().saturating_sub(1) {
            let (i, next) = (first_row + k, firsts[k + 1]);
            pieces[k].video_end = VideoEnd::Next(next);
            if decoded[i].is_none() && next - rows[i].start.0 > i64::from(u32::MAX) {
                return Err(ArchiveError::BadRange(
                    "a gap longer than 13 hours inside one export; export the parts separately".into(),
                ));
            }
            let end_k =
                span[i].map_or(rows[i].end().0, |(_, to)| all[to].wall + own_wall_dur(&rows[i], &all[to].sample));
            gaps.extend(gap_between(end_k, next, rows[first_row + k + 1].run_id == rows[i].run_id));
        }
        // Audio: the samples of read pieces within the shown range; each piece runs to the
        // next one's first sample, on a clock measured from the range's first.
        // Per piece: the wall time of its first audio sample taken, and of the end of its
        // audio when it is taken to the end (where the range's last audio runs to).
        let mut audio_firsts: Vec<Option<i64>> = Vec::with_capacity(pieces.len());
        let mut audio_ends: Vec<Option<i64>> = Vec::with_capacity(pieces.len());
        for (k, p) in pieces.iter_mut().enumerate() {
            let Some(rate) = p.audio.as_ref().map(|a| a.rate) else {
                audio_firsts.push(None);
                audio_ends.push(None);
                continue;
            };
            let (first, end, samples) = match &decoded[first_row + k] {
                Some(d) => {
                    let dur90 = |s: &index::AudioSample| rescale(i64::from(s.duration), i64::from(rate), TICKS_PER_SEC);
                    let inside = |s: &index::AudioSample| {
                        let wall = p.audio_wall(s.media_off, rate);
                        wall + dur90(s) > shown_start && wall < shown_end
                    };
                    match (d.audio.iter().position(inside), d.audio.iter().rposition(inside)) {
                        (Some(from), Some(to)) => {
                            let last = &d.audio[to];
                            let end = (to + 1 == d.audio.len())
                                .then(|| p.audio_wall(last.media_off + i64::from(last.duration), rate));
                            (Some(p.audio_wall(d.audio[from].media_off, rate)), end, Some((from, to + 1)))
                        }
                        _ => (None, None, None),
                    }
                }
                None => (Some(p.audio_wall(0, rate)), Some(p.audio_wall(rows[first_row + k].audio_dur, rate)), None),
            };
            match (first, p.audio.as_mut()) {
                (Some(_), Some(a)) => a.samples = samples,
                _ => p.audio = None,
            }
            audio_firsts.push(first);
            audio_ends.push(end);
        }
        let audio_base = audio_firsts.iter().flatten().next().copied();
        let mut next_audio = None;
        for ((p, first), own_end) in pieces.iter_mut().zip(&audio_firsts).zip(&audio_ends).rev() {
            // Each piece's audio runs to the next one's first sample; the range's last to the
            // end of its own (the end of its last sample, through the wall-time mapping).
            if let (Some(a), Some(first), Some(base)) = (p.audio.as_mut(), first, audio_base) {
                a.base = base;
                a.next = next_audio.or(*own_end);
                next_audio = Some(*first);
            }
        }
        // Counts: read pieces from their tables; the others from their rows.
        let mut counts = Vec::with_capacity(pieces.len());
        let (mut media, mut audio_media) = (0u64, 0u64);
        let mut cts = (0i32, 0i32);
        let mut widen = |lo: i32, hi: i32| cts = (cts.0.min(lo), cts.1.max(hi));
        for (k, p) in pieces.iter().enumerate() {
            let i = first_row + k;
            match &decoded[i] {
                Some(d) => {
                    let (t, _) = p.tables(d)?;
                    media += t.video.iter().map(|s| u64::from(s.duration)).sum::<u64>();
                    audio_media += t.audio.iter().map(|s| u64::from(s.duration)).sum::<u64>();
                    for s in &t.video {
                        widen(s.cts, s.cts);
                    }
                    counts.push(t.counts());
                }
                None => {
                    let (r, m) = (&rows[i], rows[i].summary.unwrap_or_default());
                    widen(m.cts_min, m.cts_max);
                    let next = firsts.get(k + 1).copied().unwrap_or(r.end().0);
                    media += (next - firsts[k]).max(1) as u64;
                    let mut c = Counts {
                        video: r.frames as u32,
                        keys: r.key_frames as u32,
                        video_chunks: m.video_chunks,
                        bytes: m.video_bytes,
                        ..Counts::default()
                    };
                    if let (Some(a), Some(first)) = (&p.audio, audio_firsts[k]) {
                        let at = |w: i64| rescale(w - a.base, TICKS_PER_SEC, i64::from(a.rate));
                        // Telescoped: the piece runs from its first sample to the next piece's
                        // (or its own end), as its generated durations will.
                        audio_media += (at(a.next.unwrap_or(first)) - at(first)).max(1) as u64;
                        c.audio = r.audio_frames as u32;
                        c.audio_chunks = m.audio_chunks;
                        c.bytes += m.audio_bytes;
                    }
                    counts.push(c);
                }
            }
        }
        Ok(RangePlan {
            pieces,
            counts,
            gaps,
            first_wall: firsts[0],
            shown_start,
            shown_end,
            media,
            audio: audio_base.map(|b| (b, audio_media)),
            cts,
            pin,
        })
    }
}
