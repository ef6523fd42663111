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
//!
//! Here: the plan and its public API; [`range`] lays out one range from rows, [`piece`]
//! generates one segment's tables, [`read`] serves a plan's bytes (HTTP ranges, files).

mod piece;
mod range;
mod read;

pub use read::PlanReader;

use super::db::{self, SegmentRow};
use super::index;
use super::pins::Pin;
use super::{Archive, ArchiveError};
use crate::mp4::file::{self, AudioTrack, Edit, Movie};
use crate::time::{TICKS_PER_SEC, Time90k, rescale};
use piece::Piece;
use range::{frames_of, gap_between, own_wall_dur, pick_span};
use std::collections::HashMap;
use std::path::PathBuf;

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
                gaps.extend(gap_between(p.wall + wall_dur, n.wall, rows[n.row].run_id == row.run_id));
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
        let cfg = VideoConfig { segment_length: crate::time::Duration90k::from_secs(2), ..VideoConfig::default() };
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
