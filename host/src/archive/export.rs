//! Any wall-clock range of a video as one progressive MP4, planned from the index.
//!
//! The plan starts at the keyframe at or before `start` and uses an edit list so players show
//! `start` first; it ends with the frame on screen at `end`, clipped. Which frame is on screen
//! is a matter of presentation times (B-frames are shown in another order than they are
//! decoded). Across a gap the last frame before it is held for the gap's length, so the file's
//! timeline stays wall time, and the gap is reported. The audio recorded in the range comes
//! along in a second track, cut to the same times.
//!
//! A plan is made from segment rows: each segment is one piece of the file (`mp4::file`), and a
//! row's counts and summary say how much the piece adds to every sample table before its
//! sample index is read. Only the segments at the ends of a range (where the range cuts into
//! them), segments still being recorded and rows without a summary have their indexes read
//! while planning; every other segment's tables are generated from its index when a reader
//! reaches them. So the first byte of a day's MP4 costs a few thousand rows, not two million
//! frames. Media bytes are read, by byte range, from the segment files. Invariants in
//! `docs/archive.md`, "Exports".

use super::db::{self, SegmentRow};
use super::index::{self, Decoded};
use super::pins::Pin;
use super::{Archive, ArchiveError, GAP_TOLERANCE_90K};
use crate::mp4::file::{self, AudioTrack, Chunk, Counts, Edit, Movie, Tables};
use crate::time::{TICKS_PER_SEC, Time90k, rescale};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Segments whose frames may be shown within this of a range's start or end are read while
/// planning (composition offsets and rounding never reach this far).
const EDGE_MARGIN_90K: i64 = 2 * TICKS_PER_SEC;

/// A planned export.
#[derive(Debug)]
pub struct Plan {
    /// What was asked.
    pub requested: (Time90k, Time90k),
    /// What the file shows: the requested range clipped to recorded media.
    pub actual: (Time90k, Time90k),
    /// Unrecorded stretches inside `actual`.
    pub gaps: Vec<(Time90k, Time90k)>,
    /// Frames in the file (including the lead-in from the keyframe before `start`).
    pub frames: u64,
    /// The file's layout.
    pub layout: file::Layout,
    /// One per segment, in file order.
    pieces: Vec<Piece>,
    /// The segments, kept (from retention and eviction) while the plan lives.
    pub pins: Vec<Pin>,
}

/// One segment's share of an export, and what generating its tables needs.
#[derive(Debug)]
struct Piece {
    /// Segment row id (its sample index is read by it).
    id: i64,
    /// Segment file.
    path: PathBuf,
    /// Wall time of the segment's first frame.
    start: i64,
    wall_dur: i64,
    media_start: i64,
    media_dur: i64,
    audio_start: i64,
    /// The sample index, when it was read while planning.
    idx: Option<Arc<[u8]>>,
    /// Video samples taken, `[from, to)` in decode order (None: all).
    video: Option<(usize, usize)>,
    /// Video sample entry (index into the movie's).
    entry: usize,
    /// The audio taken: its entry, its clock, and which samples (None: all).
    audio: Option<PieceAudio>,
    /// What the last frame's duration runs to.
    video_end: VideoEnd,
}

#[derive(Debug)]
struct PieceAudio {
    entry: usize,
    rate: u32,
    samples: Option<(usize, usize)>,
    /// Wall time of the range's first audio sample: audio durations are differences of wall
    /// times measured from it, in the audio clock, so the track's timeline is wall time too.
    base: i64,
    /// Wall time of the range's next audio sample after this piece's (None: the last piece
    /// with audio in its range; its last sample keeps its own duration).
    next: Option<i64>,
}

#[derive(Copy, Clone, Debug)]
enum VideoEnd {
    /// The next piece's first frame, at this wall time: a gap before it is held.
    Next(i64),
    /// The end of the shown range (the last frame of a range lasts until then, at most its
    /// own duration).
    RangeEnd(i64),
}

impl Piece {
    fn wall(&self, media_off: i64) -> i64 {
        self.start + rescale(media_off, self.media_dur, self.wall_dur)
    }

    fn audio_wall(&self, media_off: i64, rate: u32) -> i64 {
        let at90 = rescale(self.audio_start + media_off, i64::from(rate), TICKS_PER_SEC);
        self.start + rescale(at90 - self.media_start, self.media_dur, self.wall_dur)
    }

    /// The piece's samples and chunks, and for each chunk where its bytes lie in the segment
    /// file (offset, length).
    fn tables(&self, d: &Decoded) -> Result<(Tables, Vec<(u64, u64)>), ArchiveError> {
        let corrupt = |what: &str| ArchiveError::Corrupt(format!("{}: {what}", self.path.display()));
        let (from, to) = self.video.unwrap_or((0, d.video.len()));
        let video = d.video.get(from..to).ok_or_else(|| corrupt("its index holds fewer frames than planned"))?;
        let mut t = Tables { video: Vec::with_capacity(video.len()), ..Tables::default() };
        // (fragment, chunk, file offset) of each track, merged into file order below.
        let mut vchunks: Vec<(u32, Chunk, u64)> = Vec::new();
        let mut wall = video.first().map(|s| self.wall(s.media_off)).unwrap_or(self.start);
        for (j, s) in video.iter().enumerate() {
            let next = video.get(j + 1).map(|n| self.wall(n.media_off));
            let dur = match (next, self.video_end) {
                (Some(n), _) => (n - wall).max(1),
                (None, VideoEnd::Next(n)) => (n - wall).max(1),
                (None, VideoEnd::RangeEnd(e)) => {
                    let own = self.wall(s.media_off + i64::from(s.duration)) - wall;
                    (e - wall).clamp(1, own.max(1))
                }
            };
            let duration = u32::try_from(dur).map_err(|_| {
                ArchiveError::BadRange(
                    "a gap longer than 13 hours inside one export; export the parts separately".into(),
                )
            })?;
            t.video.push(file::Sample { duration, size: s.size, key: s.key, cts: s.cts });
            add_to_chunks(&mut vchunks, s.fragment, self.entry, false, s.file_off, s.size);
            wall = next.unwrap_or(wall);
        }
        let mut achunks: Vec<(u32, Chunk, u64)> = Vec::new();
        if let Some(a) = &self.audio {
            let (from, to) = a.samples.unwrap_or((0, d.audio.len()));
            let audio =
                d.audio.get(from..to).ok_or_else(|| corrupt("its index holds fewer audio frames than planned"))?;
            let rate = i64::from(a.rate);
            let at = |w: i64| rescale(w - a.base, TICKS_PER_SEC, rate);
            t.audio.reserve(audio.len());
            for (j, s) in audio.iter().enumerate() {
                let wall = self.audio_wall(s.media_off, a.rate);
                let dur = match (audio.get(j + 1), a.next) {
                    (Some(n), _) => at(self.audio_wall(n.media_off, a.rate)) - at(wall),
                    (None, Some(n)) => at(n) - at(wall),
                    (None, None) => i64::from(s.duration),
                };
                let duration = u32::try_from(dur.max(1)).unwrap_or(u32::MAX);
                t.audio.push(file::AudioSample { duration, size: s.size });
                add_to_chunks(&mut achunks, s.fragment, a.entry, true, s.file_off, s.size);
            }
        }
        // In the order the bytes lie in the segment file: each fragment's video, then its audio.
        let mut sources = Vec::with_capacity(vchunks.len() + achunks.len());
        let mut v = vchunks.into_iter().peekable();
        let mut a = achunks.into_iter().peekable();
        loop {
            let take_audio = match (v.peek(), a.peek()) {
                (Some(x), Some(y)) => y.0 < x.0,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            let Some((_, chunk, off)) = (if take_audio { a.next() } else { v.next() }) else { break };
            t.chunks.push(chunk);
            sources.push((off, chunk.bytes));
        }
        Ok((t, sources))
    }
}

/// Adds a sample to the chunk of its fragment (a new chunk when the fragment changes).
fn add_to_chunks(chunks: &mut Vec<(u32, Chunk, u64)>, fragment: u32, entry: usize, audio: bool, off: u64, size: u32) {
    match chunks.last_mut() {
        Some((f, c, _)) if *f == fragment => {
            c.samples += 1;
            c.bytes += u64::from(size);
        }
        _ => chunks.push((fragment, Chunk { entry, samples: 1, bytes: u64::from(size), audio }, off)),
    }
}

/// A frame of decoded segments, with its wall time.
struct Picked {
    /// Wall time of the frame's decode time.
    wall: i64,
    sample: index::Sample,
    /// Which row (of those read), and which of its frames.
    row: usize,
    at: usize,
}

impl Picked {
    /// Wall time at which the frame is shown.
    fn shown(&self) -> i64 {
        self.wall + i64::from(self.sample.cts)
    }
}

fn own_wall_dur(row: &SegmentRow, s: &index::Sample) -> i64 {
    rescale(s.media_off + i64::from(s.duration), row.media_dur, row.wall_dur)
        - rescale(s.media_off, row.media_dur, row.wall_dur)
}

/// Every frame of the decoded rows, in row order, with wall times.
fn frames_of(rows: &[SegmentRow], decoded: &[Option<Decoded>]) -> Vec<Picked> {
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
fn pick_span(all: &[Picked], start: Time90k, end: Time90k) -> Option<(usize, usize)> {
    let on_screen =
        (0..all.len()).filter(|&i| all[i].shown() <= start.0).max_by_key(|&i| (all[i].shown(), i)).unwrap_or(0);
    let first = all.get(..=on_screen)?.iter().rposition(|p| p.sample.key)?;
    let last = all.iter().rposition(|p| p.shown() < end.0)?;
    (last >= first).then_some((first, last))
}

/// The frames of a range, from the keyframe at or before its start to the last frame shown
/// before its end, with the range's gaps: what a decoder needs to re-encode it frame-exactly.
#[derive(Clone, Debug)]
pub struct FrameList {
    /// Frames in wall-clock order.
    pub frames: Vec<FrameRef>,
    /// Sample entries (`avc1` boxes) the frames refer to.
    pub entries: Vec<Vec<u8>>,
    /// What was asked.
    pub requested: (Time90k, Time90k),
    /// The requested range clipped to recorded media.
    pub actual: (Time90k, Time90k),
    /// Unrecorded stretches inside `actual`.
    pub gaps: Vec<(Time90k, Time90k)>,
    /// The segments, kept (from retention and eviction) while the list lives.
    pub pin: Pin,
}

/// One recorded frame, for callers that decode rather than copy (re-encoding exports).
#[derive(Clone, Debug)]
pub struct FrameRef {
    /// Wall-clock time of the frame.
    pub wall: Time90k,
    /// Its own wall duration (until the next frame of the same run).
    pub wall_dur: i64,
    /// A keyframe (IDR).
    pub key: bool,
    /// Presentation minus decode time (non-zero with B-frames).
    pub cts: i32,
    /// Segment file holding its bytes.
    pub path: PathBuf,
    /// Offset of the sample in that file.
    pub offset: u64,
    /// Sample size.
    pub size: u32,
    /// Index into [`FrameList::entries`] (its sample entry: codec parameters).
    pub entry: usize,
}

/// One range of a plan, laid out.
struct RangePlan {
    pieces: Vec<Piece>,
    counts: Vec<Counts>,
    gaps: Vec<(Time90k, Time90k)>,
    /// Wall time of the range's first frame (its media time 0).
    first_wall: i64,
    shown_start: i64,
    shown_end: i64,
    /// Sum of its video durations.
    media: u64,
    /// Its audio: wall time of its first sample, and the sum of its durations (audio clock).
    audio: Option<(i64, u64)>,
    /// Bounds of its composition offsets.
    cts: (i32, i32),
    pin: Pin,
}

/// Sample entries met while planning, numbered in order of first use.
#[derive(Default)]
struct Entries {
    video: Vec<Vec<u8>>,
    video_of: HashMap<i64, usize>,
    size: Option<(u32, u32)>,
    audio: Vec<Vec<u8>>,
    audio_of: HashMap<i64, usize>,
    /// The audio track's clock: that of the first audio taken (audio at another rate is left
    /// out: one track has one clock).
    audio_rate: Option<u32>,
    /// Clock of each audio entry looked up.
    rate_of: HashMap<i64, u32>,
}

impl Archive {
    fn video_entry(&self, e: &mut Entries, id: i64) -> Result<usize, ArchiveError> {
        if let Some(&i) = e.video_of.get(&id) {
            return Ok(i);
        }
        let s = db::sample_entry(&*self.reader()?, id)?;
        e.size.get_or_insert((s.width, s.height));
        e.video.push(s.data);
        e.video_of.insert(id, e.video.len() - 1);
        Ok(e.video.len() - 1)
    }

    /// The audio entry and clock of `row`'s audio, if it is taken into the track.
    fn audio_entry(&self, e: &mut Entries, row: &SegmentRow) -> Result<Option<(usize, u32)>, ArchiveError> {
        let Some(id) = row.audio_entry_id.filter(|_| row.audio_frames > 0) else { return Ok(None) };
        let rate = match e.rate_of.get(&id) {
            Some(&r) => r,
            None => {
                let r = db::sample_entry(&*self.reader()?, id)?.timescale;
                e.rate_of.insert(id, r);
                r
            }
        };
        if rate == 0 || *e.audio_rate.get_or_insert(rate) != rate {
            return Ok(None);
        }
        if let Some(&i) = e.audio_of.get(&id) {
            return Ok(Some((i, rate)));
        }
        e.audio.push(db::sample_entry(&*self.reader()?, id)?.data);
        e.audio_of.insert(id, e.audio.len() - 1);
        Ok(Some((e.audio.len() - 1, rate)))
    }

    /// Reads and decodes the sample indexes of the rows marked in `want` not decoded yet.
    fn decode_rows(
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
    fn plan_range(
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
            if next - end_k > GAP_TOLERANCE_90K && rows[first_row + k + 1].run_id != rows[i].run_id {
                gaps.push((Time90k(end_k), Time90k(next)));
            }
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

    /// The picture size of the latest recorded segment of `video` (None if nothing recorded).
    pub fn video_size(&self, video: &str) -> Result<Option<(u32, u32)>, ArchiveError> {
        let v = self.video(video)?;
        // The newest row only: a long archive's sample indexes are never read for this.
        let Some(last) = db::last_segments(&*self.reader()?, v.id, 1)?.pop() else { return Ok(None) };
        let e = db::sample_entry(&*self.reader()?, last.sample_entry_id)?;
        Ok(Some((e.width, e.height)))
    }

    /// An archive video's row, refusing File videos (they have no wall-clock ranges).
    fn archive_video(&self, video: &str) -> Result<super::VideoRow, ArchiveError> {
        let v = self.video(video)?;
        if v.kind == super::VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it has no wall-clock time ranges to export (startTime/endTime apply to archive videos \
                         only; download the whole file)",
            });
        }
        Ok(v)
    }

    /// The frames of `[start, end)` of `video` for decoding, without reading video data.
    pub fn frames_for_range(&self, video: &str, start: Time90k, end: Time90k) -> Result<FrameList, ArchiveError> {
        if end <= start {
            return Err(ArchiveError::EndNotAfterStart { start, end });
        }
        let v = self.archive_video(video)?;
        let no_data = || ArchiveError::NoData { video: video.to_owned(), start, end };
        let (rows, pin) = self
            .pins
            .hold(|| self.segments(v.id, Some(start), Some(end)), |rows| rows.iter().map(|s| s.id).collect())?;
        let decoded = rows
            .iter()
            .map(|r| index::decode_all(&r.idx).map(Some).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", r.file))))
            .collect::<Result<Vec<_>, _>>()?;
        let all = frames_of(&rows, &decoded);
        let (first, last) = pick_span(&all, start, end).ok_or_else(no_data)?;
        let picked = &all[first..=last];
        let data_end =
            picked.iter().map(|p| p.shown() + own_wall_dur(&rows[p.row], &p.sample)).max().unwrap_or(i64::MIN);
        if data_end <= start.0 {
            return Err(no_data());
        }
        let mut entries = Entries::default();
        let mut frames = Vec::with_capacity(picked.len());
        let mut gaps = Vec::new();
        for (j, p) in picked.iter().enumerate() {
            let row = &rows[p.row];
            let wall_dur = own_wall_dur(row, &p.sample);
            if let Some(n) = picked.get(j + 1) {
                let end = p.wall + wall_dur;
                if n.wall - end > GAP_TOLERANCE_90K && rows[n.row].run_id != row.run_id {
                    gaps.push((Time90k(end), Time90k(n.wall)));
                }
            }
            frames.push(FrameRef {
                wall: Time90k(p.wall),
                wall_dur,
                key: p.sample.key,
                cts: p.sample.cts,
                path: self.segment_path(&row.file),
                offset: p.sample.file_off,
                size: p.sample.size,
                entry: self.video_entry(&mut entries, row.sample_entry_id)?,
            });
        }
        Ok(FrameList {
            frames,
            entries: entries.video,
            requested: (start, end),
            actual: (Time90k(start.0.max(picked[0].shown())), Time90k(end.0.min(data_end))),
            gaps,
            pin,
        })
    }

    /// Plans an export of `[start, end)` of `video` without reading video data.
    pub fn plan_export(&self, video: &str, start: Time90k, end: Time90k) -> Result<Plan, ArchiveError> {
        self.plan_export_ranges(video, &[(start, end)])
    }

    /// Plans one file of several ranges of `video`, in the given order: each range starts at
    /// the keyframe before its start and has its own edit, so players show exactly the ranges,
    /// back to back. `requested`/`actual` of the plan span the first start to the last end; a
    /// range with nothing recorded is reported as a gap (an error only if none has media).
    /// Audio recorded in the ranges comes along as a second track with the same edits.
    pub fn plan_export_ranges(&self, video: &str, ranges: &[(Time90k, Time90k)]) -> Result<Plan, ArchiveError> {
        let Some(&(first_start, _)) = ranges.first() else {
            return Err(ArchiveError::BadRange("no range to export".into()));
        };
        let last_end = ranges.last().map_or(first_start, |r| r.1);
        let v = self.archive_video(video)?;
        let mut entries = Entries::default();
        let mut movie = Movie::default();
        let mut audio_edits = Vec::new();
        let mut gaps = Vec::new();
        let mut pieces = Vec::new();
        let mut pins = Vec::with_capacity(ranges.len());
        let (mut actual_start, mut actual_end) = (None, None);
        let mut media_at = 0u64; // video media time at which the current range's samples start
        let mut audio_at = 0u64; // the same for audio, in its clock
        let mut shown: Vec<RangeShown> = Vec::new();
        for &(start, end) in ranges {
            // A range with nothing recorded is a gap of the file (several ranges), or the
            // error (one range).
            let r = match self.plan_range(v.id, &v.name, start, end, &mut entries) {
                Ok(r) => r,
                Err(ArchiveError::NoData { .. }) if ranges.len() > 1 => {
                    gaps.push((start, end));
                    continue;
                }
                Err(e) => return Err(e),
            };
            actual_start.get_or_insert(Time90k(r.shown_start));
            actual_end = Some(Time90k(r.shown_end));
            movie.edits.push(Edit {
                media_time: media_at + (r.shown_start - r.first_wall) as u64,
                duration: (r.shown_end - r.shown_start) as u64,
            });
            media_at += r.media;
            let audio = r.audio.map(|(wall, dur)| {
                let range = RangeAudio { wall, media: audio_at, media_end: audio_at + dur };
                audio_at += dur;
                range
            });
            shown.push(RangeShown { start: r.shown_start, end: r.shown_end, audio });
            gaps.extend(r.gaps);
            movie.cts_range = (movie.cts_range.0.min(r.cts.0), movie.cts_range.1.max(r.cts.1));
            movie.pieces.extend(r.counts);
            pieces.extend(r.pieces);
            pins.push(r.pin);
        }
        if pieces.is_empty() {
            return Err(ArchiveError::NoData { video: video.to_owned(), start: first_start, end: last_end });
        }
        if let Some(rate) = entries.audio_rate.filter(|_| audio_at > 0) {
            // The audio edits follow the video's: each range's stretch of its own audio, with
            // silence (an empty edit) where its audio starts late, ends early or is missing, so
            // one range never plays another's audio.
            let rate = i64::from(rate);
            let to_90k = |ticks: u64| rescale(ticks as i64, rate, TICKS_PER_SEC).max(0) as u64;
            let empty = |d: i64| Edit { media_time: file::EMPTY_EDIT, duration: d.max(0) as u64 };
            for RangeShown { start, end, audio: a } in shown {
                let Some(RangeAudio { wall, media, media_end }) = a.filter(|a| a.wall < end) else {
                    audio_edits.push(empty(end - start));
                    continue;
                };
                // Where this range's audio starts in the track, and how much of it there is.
                let (media, from) = if wall <= start {
                    (media + rescale(start - wall, TICKS_PER_SEC, rate) as u64, start)
                } else {
                    audio_edits.push(empty(wall - start));
                    (media, wall)
                };
                let have = to_90k(media_end.saturating_sub(media));
                let shown_audio = have.min((end - from) as u64);
                if shown_audio > 0 {
                    audio_edits.push(Edit { media_time: media, duration: shown_audio });
                }
                let rest = end - from - shown_audio as i64;
                if rest > 0 {
                    audio_edits.push(empty(rest));
                }
            }
            movie.audio = Some(AudioTrack {
                entries: std::mem::take(&mut entries.audio),
                timescale: rate as u32,
                media_dur: audio_at,
                edits: audio_edits,
            });
        }
        let (width, height) = entries.size.unwrap_or((0, 0));
        movie.entries = entries.video;
        (movie.width, movie.height) = (width, height);
        movie.media_dur = media_at;
        let frames = movie.pieces.iter().map(|c| u64::from(c.video)).sum();
        let layout = file::layout(&movie)?;
        Ok(Plan {
            requested: (first_start, last_end),
            actual: (actual_start.unwrap_or(first_start), actual_end.unwrap_or(last_end)),
            gaps,
            frames,
            layout,
            pieces,
            pins,
        })
    }
}

/// What one range of an export shows: its wall-clock stretch, and its audio, if it has any.
struct RangeShown {
    start: i64,
    end: i64,
    audio: Option<RangeAudio>,
}

/// A range's audio in the output's audio track: the wall time of its first frame, and where its
/// frames start and end in the track's media time (audio clock).
struct RangeAudio {
    wall: i64,
    media: u64,
    media_end: u64,
}

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
    /// The pieces generated last, oldest first.
    recent: Vec<Generated>,
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
            let mut open: HashMap<&Path, std::fs::File> = HashMap::new();
            for p in &self.pieces {
                if !open.contains_key(p.path.as_path()) {
                    let s = std::fs::File::open(&p.path).map_err(ArchiveError::io("opening segment", &p.path))?;
                    open.insert(&p.path, s);
                }
            }
            let mut cache = Cache::default();
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
                    src.seek(SeekFrom::Start(offset)).map_err(ArchiveError::io("reading segment", &p.path))?;
                    // File to file: std uses copy_file_range, so the bytes never pass through
                    // user space.
                    let n = std::io::copy(&mut Read::by_ref(src).take(len), &mut f)
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
    file: Option<(PathBuf, std::fs::File)>,
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
                let f = std::fs::File::open(path).map_err(ArchiveError::io("opening segment", path))?;
                self.file = Some((path.clone(), f));
            }
            let Some((_, f)) = self.file.as_ref() else { break };
            let n = (left.min((buf.len() - done) as u64)) as usize;
            std::os::unix::fs::FileExt::read_exact_at(f, &mut buf[done..done + n], offset).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => ArchiveError::Corrupt(format!(
                        "{} is shorter than its index (deleted by retention meanwhile?)",
                        path.display()
                    )),
                    _ => ArchiveError::io("reading segment", path)(e),
                }
            })?;
            done += n;
            pos += n as u64;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::VideoConfig;
    use crate::archive::writer::{AudioEntry, AudioFrame, Frame, SampleEntry, VideoWriter};
    use crate::mp4::parse::{child, children};
    use crate::time::TICKS_PER_SEC;
    use std::sync::Arc;

    const BASE: i64 = 1_700_000_000 * TICKS_PER_SEC;

    /// The audio track's edit list of an export header: (duration 90 kHz, media time).
    fn audio_edits(header: &[u8]) -> Vec<(u64, u64)> {
        let moov = children(header).find(|(t, _)| t == b"moov").map(|(_, b)| b).unwrap();
        let trak = children(moov).filter(|(t, _)| t == b"trak").map(|(_, b)| b).nth(1).unwrap();
        let elst = child(child(trak, b"edts").unwrap(), b"elst").unwrap();
        let n = u32::from_be_bytes(elst[4..8].try_into().unwrap()) as usize;
        (0..n)
            .map(|i| {
                let e = &elst[8 + 20 * i..];
                (u64::from_be_bytes(e[..8].try_into().unwrap()), u64::from_be_bytes(e[8..16].try_into().unwrap()))
            })
            .collect()
    }

    /// An export laid out from rows, most of its segments' tables generated only when read,
    /// agrees frame by frame with the frames the range holds (listed from every index, the
    /// way re-encoding reads them): sizes, keyframes, bytes, durations, across two runs with a
    /// gap, with composition offsets and audio; and any read of it gives the written bytes.
    #[test]
    fn lazy_pieces_agree_with_the_frames_of_the_range() {
        let t = crate::archive::test_dir::tmp("export", "lazy");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let cfg = VideoConfig { segment_length_90k: 2 * TICKS_PER_SEC, ..VideoConfig::default() };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        let mut entry = Vec::new();
        crate::mp4::put_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        for (run, start_s) in [(0u8, 0i64), (1, 30)] {
            w.begin_run().unwrap();
            w.set_sample_entry(SampleEntry { data: entry.clone(), width: 640, height: 360 }).unwrap();
            w.set_audio_entry(Some(AudioEntry { data: b"\0\0\0\x08mp4a".to_vec(), timescale: 48_000 })).unwrap();
            // The second run's audio stops after 2 s: the range's last audio is then a segment
            // in its middle, not read while planning.
            let audio_end = if run == 0 { i64::MAX } else { 2 * 48_000 };
            let mut next_audio = 0i64;
            for n in 0..500i64 {
                let media = n * 3600;
                while next_audio < audio_end && next_audio * 90_000 / 48_000 < media + 3600 {
                    w.push_audio(AudioFrame { media: next_audio, samples: 1024, data: vec![200 + run; 20] }).unwrap();
                    next_audio += 1024;
                }
                let key = n % 25 == 0;
                let data: Vec<u8> = (0..(40 + n % 7 + if key { 100 } else { 0 })).map(|i| (n + i) as u8).collect();
                let received = Time90k(BASE + start_s * TICKS_PER_SEC + media);
                let cts = if n % 3 == 1 { 7200 } else { 0 };
                w.push(Frame { media_90k: media, cts, received, key, data, new_clock: false }).unwrap();
            }
            w.end_run().unwrap();
        }
        let at = |ms: i64| Time90k(BASE + ms * 90);
        let (start, end) = (at(5_300), at(44_700));
        let plan = a.plan_export("cam", start, end).unwrap();
        let lazy = plan.pieces.iter().filter(|p| p.idx.is_none()).count();
        assert!(lazy >= 10, "{lazy} of {} segments generated when read", plan.pieces.len());
        let list = a.frames_for_range("cam", start, end).unwrap();
        assert_eq!((plan.actual, &plan.gaps), (list.actual, &list.gaps));
        assert_eq!(plan.gaps.len(), 1, "the gap between the runs");
        let out = t.0.join("lazy.mp4");
        plan.write_to(&a, &out, false, |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() as u64, plan.layout.total_len());
        let header = &bytes[..plan.layout.header_len() as usize];
        let tracks = crate::mp4::read::tracks(&mut std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
        let video = &tracks[0].samples;
        assert_eq!(video.len(), list.frames.len());
        for (j, (f, s)) in list.frames.iter().zip(video).enumerate() {
            assert_eq!((s.size, s.key, s.cts), (f.size, f.key, i64::from(f.cts)), "frame {j}");
            let mut want = vec![0u8; f.size as usize];
            std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&f.path).unwrap(), &mut want, f.offset)
                .unwrap();
            assert_eq!(&bytes[s.offset as usize..][..f.size as usize], &want[..], "frame {j}'s bytes");
            if let (Some(n), Some(next)) = (list.frames.get(j + 1), video.get(j + 1)) {
                assert_eq!((next.decode - s.decode) as i64, (n.wall.0 - f.wall.0).max(1), "frame {j}'s duration");
            }
        }
        // The audio: both runs' frames (their bytes say which run), in the file's media.
        let audio = &tracks[1].samples;
        assert!(audio.len() > 300, "{} audio frames", audio.len());
        let runs: Vec<u8> = audio.iter().map(|s| bytes[s.offset as usize]).collect();
        assert!(runs.iter().all(|&r| r == 200 || r == 201) && runs.contains(&200) && runs.contains(&201));
        // Any read of the plan gives the same bytes.
        let mut r = PlanReader::new(a.clone(), Arc::new(plan));
        for (pos, len) in
            [(0u64, 7usize), (100, 70_000), (header.len() as u64 - 3, 10), (bytes.len() as u64 - 999, 4096)]
        {
            let mut buf = vec![0u8; len];
            let n = r.read_at(pos, &mut buf).unwrap();
            let want = &bytes[pos as usize..(pos as usize + len).min(bytes.len())];
            assert_eq!(&buf[..n], want, "read of {len} at {pos}");
        }
        let mut whole = Vec::new();
        let mut buf = vec![0u8; 65_537];
        while (whole.len() as u64) < bytes.len() as u64 {
            let n = r.read_at(whole.len() as u64, &mut buf).unwrap();
            assert!(n > 0);
            whole.extend_from_slice(&buf[..n]);
        }
        assert!(whole == bytes, "reading the plan in order gives the written file");
        // Rows without summaries (written before schema 6) are all read while planning: the
        // same file.
        a.conn().execute("UPDATE segment SET video_bytes = NULL", []).unwrap();
        let eager = a.plan_export("cam", start, end).unwrap();
        assert!(eager.pieces.iter().all(|p| p.idx.is_some()));
        let out = t.0.join("eager.mp4");
        eager.write_to(&a, &out, false, |_| {}).unwrap();
        assert!(std::fs::read(&out).unwrap() == bytes, "laid out from rows or from every index: the same bytes");
    }

    /// Two ranges of two runs, the first with audio only in its first 2 of 4 seconds: its
    /// audio edit ends with its audio (then silence), never running into the second range's.
    #[test]
    fn each_range_plays_only_its_own_audio() {
        let t = crate::archive::test_dir::tmp("export", "audio-ranges");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let mut w = VideoWriter::open(a.clone(), "cam", VideoConfig::default()).unwrap();
        let mut entry = Vec::new();
        crate::mp4::put_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        for (run, start_s, audio_s) in [(0, 0, 2), (1, 10, 4)] {
            w.begin_run().unwrap();
            w.set_sample_entry(SampleEntry { data: entry.clone(), width: 640, height: 360 }).unwrap();
            w.set_audio_entry(Some(AudioEntry { data: b"\0\0\0\x08mp4a".to_vec(), timescale: 48_000 })).unwrap();
            let mut next_audio = 0i64;
            for n in 0..100i64 {
                let media = n * 3600;
                while next_audio < audio_s * 48_000 && next_audio * 90_000 / 48_000 < media + 3600 {
                    w.push_audio(AudioFrame { media: next_audio, samples: 1024, data: vec![run; 100] }).unwrap();
                    next_audio += 1024;
                }
                let received = Time90k(BASE + start_s * TICKS_PER_SEC + media);
                let f =
                    Frame { media_90k: media, cts: 0, received, key: n % 25 == 0, data: vec![1; 50], new_clock: false };
                w.push(f).unwrap();
            }
            w.end_run().unwrap();
        }
        let at = |s: i64| Time90k(BASE + s * TICKS_PER_SEC);
        let plan = a.plan_export_ranges("cam", &[(at(0), at(4)), (at(10), at(14))]).unwrap();
        let out = t.0.join("ranges.mp4");
        plan.write_to(&a, &out, false, |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let edits = audio_edits(&bytes[..plan.layout.header_len() as usize]);
        // Range 1: ~2 s of its audio, then ~2 s of silence; range 2: its 4 s, from where its
        // audio begins in the track.
        assert_eq!(edits.len(), 3, "{edits:?}");
        let near = |x: u64, s: f64| (x as f64 / 90_000.0 - s).abs() < 0.05;
        assert!(near(edits[0].0, 2.0) && edits[0].1 == 0, "{edits:?}");
        assert!(near(edits[1].0, 2.0) && edits[1].1 == crate::mp4::file::EMPTY_EDIT, "{edits:?}");
        assert!(near(edits[2].0, 4.0), "{edits:?}");
        let first_range_audio = (2 * 48_000u64).div_ceil(1024) * 1024;
        assert!((edits[2].1 as i64 - first_range_audio as i64).abs() <= 1024, "{edits:?}");
    }
}
