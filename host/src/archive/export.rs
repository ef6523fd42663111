//! Any wall-clock range of a video as one progressive MP4, planned from the index alone.
//!
//! The plan starts at the keyframe at or before `start` and uses an edit list so players show
//! `start` first; it ends with the frame on screen at `end`, clipped. Which frame is on screen
//! is a matter of presentation times (B-frames are shown in another order than they are
//! decoded). Across a gap the last frame before it is held for the gap's length, so the file's
//! timeline stays wall time, and the gap is reported. The audio recorded in the range comes
//! along in a second track, cut to the same times. Only after planning are media bytes read, by
//! byte range, from the segment files.

use super::db;
use super::index;
use super::pins::Pin;
use super::{Archive, ArchiveError, GAP_TOLERANCE_90K};
use crate::mp4::file::{self, AudioTrack, Chunk, Edit, Movie};
use crate::time::{Time90k, rescale};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes to copy from a segment file into the output, in output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Segment file.
    pub path: PathBuf,
    /// Offset in it.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// A planned export.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What was asked.
    pub requested: (Time90k, Time90k),
    /// What the file shows: the requested range clipped to recorded media.
    pub actual: (Time90k, Time90k),
    /// Unrecorded stretches inside `actual`.
    pub gaps: Vec<(Time90k, Time90k)>,
    /// Frames in the file (including the lead-in from the keyframe before `start`).
    pub frames: u64,
    /// The file header and total size.
    pub layout: file::Layout,
    /// Where the `mdat` payload comes from.
    pub sources: Vec<Source>,
    /// The segments, kept (from retention and eviction) while the plan lives.
    pub pins: Vec<Pin>,
}

struct Picked {
    /// Wall time of the frame's decode time.
    wall: i64,
    sample: index::Sample,
    seg: usize,
}

impl Picked {
    /// Wall time at which the frame is shown.
    fn shown(&self) -> i64 {
        self.wall + i64::from(self.sample.cts)
    }
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

/// The frames an export covers, chosen from the index.
struct Picking {
    segs: Vec<db::SegmentRow>,
    /// Each segment's audio samples (empty without audio).
    audio: Vec<Vec<index::AudioSample>>,
    /// Each segment's audio clock (samples per second), if it has audio.
    audio_rates: Vec<Option<u32>>,
    picked: Vec<Picked>,
    shown_start: i64,
    shown_end: i64,
    /// The segments, kept while the export lives.
    pin: Pin,
}

/// One audio frame of a range, with its wall time.
struct PickedAudio {
    wall: i64,
    sample: index::AudioSample,
    seg: usize,
}

impl Picking {
    fn own_wall_dur(&self, p: &Picked) -> i64 {
        let s = &self.segs[p.seg];
        rescale(p.sample.media_off + i64::from(p.sample.duration), s.media_dur, s.wall_dur)
            - rescale(p.sample.media_off, s.media_dur, s.wall_dur)
    }

    /// The gap after frame `j`, if the next frame belongs to another recording run and comes
    /// later than this one's end (beyond the tolerance).
    fn gap_after(&self, j: usize) -> Option<(Time90k, Time90k)> {
        let (p, n) = (&self.picked[j], self.picked.get(j + 1)?);
        let end = p.wall + self.own_wall_dur(p);
        (n.wall - end > GAP_TOLERANCE_90K && self.segs[n.seg].run_id != self.segs[p.seg].run_id)
            .then_some((Time90k(end), Time90k(n.wall)))
    }
}

impl Archive {
    /// Chooses the frames of `[start, end)` of `video`: from the keyframe at or before the
    /// frame on screen at `start`, to the last frame starting before `end`.
    fn pick(&self, video: &str, start: Time90k, end: Time90k) -> Result<Picking, ArchiveError> {
        if end <= start {
            return Err(ArchiveError::EndNotAfterStart { start, end });
        }
        let v = self.video(video)?;
        if v.kind == super::VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it has no wall-clock time ranges to export (startTime/endTime apply to archive videos \
                         only; download the whole file)",
            });
        }
        // Read and pinned at once: retention and eviction keep them until the export ends.
        let (segs, pin) = self
            .pins
            .hold(|| self.segments(v.id, Some(start), Some(end)), |segs| segs.iter().map(|s| s.id).collect())?;
        let no_data = || ArchiveError::NoData { video: video.to_owned(), start, end };
        // Every frame of the overlapping segments with its wall time.
        // Sized from the rows, bounded by the blobs (a frame takes at least a byte of its
        // index), so a damaged row's count cannot ask for more than the data could hold.
        let mut all: Vec<Picked> =
            Vec::with_capacity(segs.iter().map(|s| (s.frames.max(0) as usize).min(s.idx.len())).sum());
        let mut audio = Vec::with_capacity(segs.len());
        let mut audio_rates = Vec::with_capacity(segs.len());
        let mut rate_of: HashMap<i64, u32> = HashMap::new();
        for (i, s) in segs.iter().enumerate() {
            audio_rates.push(match s.audio_entry_id {
                Some(id) => match rate_of.get(&id) {
                    Some(&r) => Some(r),
                    None => {
                        let r = db::sample_entry(&*self.reader()?, id)?.timescale;
                        rate_of.insert(id, r);
                        Some(r)
                    }
                },
                None => None,
            });
            let d = index::decode_all(&s.idx).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", s.file)))?;
            for smp in d.video {
                let wall = s.start.0 + rescale(smp.media_off, s.media_dur, s.wall_dur);
                all.push(Picked { wall, sample: smp, seg: i });
            }
            audio.push(d.audio);
        }
        if all.is_empty() {
            return Err(no_data());
        }
        // The frame on screen at `start` (shown last at or before it, or the first), backed up
        // in decode order to its keyframe.
        let on_screen =
            (0..all.len()).filter(|&i| all[i].shown() <= start.0).max_by_key(|&i| (all[i].shown(), i)).unwrap_or(0);
        let first = all[..=on_screen].iter().rposition(|p| p.sample.key).ok_or_else(no_data)?;
        // The last frame in decode order that is shown before `end`; frames decoded before it
        // but shown after `end` come along and are hidden by the edit list.
        let last = all.iter().rposition(|p| p.shown() < end.0).ok_or_else(no_data)?;
        if last < first {
            return Err(no_data());
        }
        all.truncate(last + 1);
        all.drain(..first);
        let mut picking = Picking { segs, audio, audio_rates, picked: all, shown_start: 0, shown_end: 0, pin };
        let data_end = picking.picked.iter().map(|p| p.shown() + picking.own_wall_dur(p)).max().unwrap_or(i64::MIN);
        if data_end <= start.0 {
            return Err(no_data());
        }
        picking.shown_start = start.0.max(picking.picked[0].shown());
        picking.shown_end = end.0.min(data_end);
        Ok(picking)
    }

    /// The picture size of the latest recorded segment of `video` (None if nothing recorded).
    pub fn video_size(&self, video: &str) -> Result<Option<(u32, u32)>, ArchiveError> {
        let v = self.video(video)?;
        // The newest row only: a long archive's sample indexes are never read for this.
        let Some(last) = db::last_segments(&*self.reader()?, v.id, 1)?.pop() else { return Ok(None) };
        let e = db::sample_entry(&*self.reader()?, last.sample_entry_id)?;
        Ok(Some((e.width, e.height)))
    }

    /// The frames of `[start, end)` of `video` for decoding, without reading video data.
    pub fn frames_for_range(&self, video: &str, start: Time90k, end: Time90k) -> Result<FrameList, ArchiveError> {
        let k = self.pick(video, start, end)?;
        let mut entries: Vec<Vec<u8>> = Vec::new();
        let mut entry_of: HashMap<i64, usize> = HashMap::new();
        let mut frames = Vec::with_capacity(k.picked.len());
        let mut gaps = Vec::new();
        for (j, p) in k.picked.iter().enumerate() {
            let seg = &k.segs[p.seg];
            let entry = match entry_of.get(&seg.sample_entry_id) {
                Some(&e) => e,
                None => {
                    entries.push(db::sample_entry(&*self.reader()?, seg.sample_entry_id)?.data);
                    entry_of.insert(seg.sample_entry_id, entries.len() - 1);
                    entries.len() - 1
                }
            };
            frames.push(FrameRef {
                wall: Time90k(p.wall),
                wall_dur: k.own_wall_dur(p),
                key: p.sample.key,
                cts: p.sample.cts,
                path: self.segment_path(&seg.file),
                offset: p.sample.file_off,
                size: p.sample.size,
                entry,
            });
            gaps.extend(k.gap_after(j));
        }
        Ok(FrameList {
            frames,
            entries,
            requested: (start, end),
            actual: (Time90k(k.shown_start), Time90k(k.shown_end)),
            gaps,
            pin: k.pin,
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
        let mut movie = Movie::default();
        let mut audio = AudioTrack::default();
        let mut entry_of: HashMap<i64, usize> = HashMap::new();
        let mut audio_entry_of: HashMap<i64, usize> = HashMap::new();
        let mut gaps = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let mut frames = 0u64;
        let (mut actual_start, mut actual_end) = (None, None);
        let mut media_at = 0u64; // video media time at which the current range's samples start
        let mut audio_at = 0u64; // the same for audio, in its clock
        // Per range: shown start and end, and (wall time of its first audio frame, audio media
        // time there) if it has audio.
        let mut shown: Vec<RangeShown> = Vec::new();
        let mut pins = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            // A range with nothing recorded is a gap of the file (several ranges), or the
            // error (one range).
            let k = match self.pick(video, start, end) {
                Ok(k) => k,
                Err(ArchiveError::NoData { .. }) if ranges.len() > 1 => {
                    gaps.push((start, end));
                    continue;
                }
                Err(e) => return Err(e),
            };
            pins.push(k.pin.clone());
            let (picked, shown_start, shown_end) = (&k.picked, k.shown_start, k.shown_end);
            actual_start.get_or_insert(Time90k(shown_start));
            actual_end = Some(Time90k(shown_end));
            frames += picked.len() as u64;
            // Sample tables: decode durations telescope over wall times, so each range's
            // timeline is wall time.
            let mut chunks: Vec<(usize, u32, Chunk, Source)> = Vec::new();
            let mut range_media = 0u64;
            let mut last_entry: Option<(i64, usize)> = None;
            movie.samples.reserve(picked.len());
            for (j, p) in picked.iter().enumerate() {
                let dur = match picked.get(j + 1) {
                    Some(n) => {
                        gaps.extend(k.gap_after(j));
                        (n.wall - p.wall).max(1)
                    }
                    None => (shown_end - p.wall).clamp(1, k.own_wall_dur(p).max(1)),
                };
                let dur = u32::try_from(dur).map_err(|_| {
                    ArchiveError::BadRange(
                        "a gap longer than 13 hours inside one export; export the parts separately".into(),
                    )
                })?;
                range_media += u64::from(dur);
                movie.samples.push(file::Sample {
                    duration: dur,
                    size: p.sample.size,
                    key: p.sample.key,
                    cts: p.sample.cts,
                });
                let seg = &k.segs[p.seg];
                let entry = match last_entry.filter(|(id, _)| *id == seg.sample_entry_id) {
                    // Consecutive frames almost always share their segment's entry: no hashing.
                    Some((_, e)) => e,
                    None => match entry_of.get(&seg.sample_entry_id) {
                        Some(&e) => e,
                        None => {
                            let e = db::sample_entry(&*self.reader()?, seg.sample_entry_id)?;
                            if movie.entries.is_empty() {
                                movie.width = e.width;
                                movie.height = e.height;
                            }
                            movie.entries.push(e.data);
                            entry_of.insert(seg.sample_entry_id, movie.entries.len() - 1);
                            movie.entries.len() - 1
                        }
                    },
                };
                last_entry = Some((seg.sample_entry_id, entry));
                add_to_chunks(
                    &mut chunks,
                    p.seg,
                    p.sample.fragment,
                    entry,
                    false,
                    p.sample.file_off,
                    p.sample.size,
                    || self.segment_path(&seg.file),
                );
            }
            // The audio of the same stretch.
            let picked_audio = k.audio_in(shown_start, shown_end);
            let mut audio_chunks: Vec<(usize, u32, Chunk, Source)> = Vec::new();
            let mut range_audio = None;
            for (j, a) in picked_audio.iter().enumerate() {
                let seg = &k.segs[a.seg];
                let Some(entry_id) = seg.audio_entry_id else { continue };
                let entry = match audio_entry_of.get(&entry_id) {
                    Some(&e) => e,
                    None => {
                        let e = db::sample_entry(&*self.reader()?, entry_id)?;
                        if audio.entries.is_empty() {
                            audio.timescale = e.timescale;
                        } else if e.timescale != audio.timescale {
                            // One track has one clock: audio at another rate is left out.
                            continue;
                        }
                        audio.entries.push(e.data);
                        audio_entry_of.insert(entry_id, audio.entries.len() - 1);
                        audio.entries.len() - 1
                    }
                };
                let rate = i64::from(audio.timescale);
                let base = picked_audio[0].wall;
                let at = |w: i64| rescale(w - base, crate::time::TICKS_PER_SEC, rate);
                let dur = match picked_audio.get(j + 1) {
                    Some(n) => at(n.wall) - at(a.wall),
                    None => i64::from(a.sample.duration),
                };
                let dur = u32::try_from(dur.max(1)).unwrap_or(u32::MAX);
                range_audio.get_or_insert((a.wall, audio_at));
                audio_at += u64::from(dur);
                audio.samples.push(file::AudioSample { duration: dur, size: a.sample.size });
                add_to_chunks(
                    &mut audio_chunks,
                    a.seg,
                    a.sample.fragment,
                    entry,
                    true,
                    a.sample.file_off,
                    a.sample.size,
                    || self.segment_path(&seg.file),
                );
            }
            // Into the file in the order the bytes lie in the segment files: each fragment's
            // video, then its audio.
            let mut v = chunks.into_iter().peekable();
            let mut a = audio_chunks.into_iter().peekable();
            loop {
                let take_audio = match (v.peek(), a.peek()) {
                    (Some(x), Some(y)) => (y.0, y.1) < (x.0, x.1),
                    (None, Some(_)) => true,
                    (Some(_), None) => false,
                    (None, None) => break,
                };
                let next = if take_audio { a.next() } else { v.next() };
                let Some((_, _, chunk, source)) = next else { break };
                movie.chunks.push(chunk);
                match sources.last_mut() {
                    Some(last) if last.path == source.path && last.offset + last.len == source.offset => {
                        last.len += source.len;
                    }
                    _ => sources.push(source),
                }
            }
            movie.edits.push(Edit {
                media_time: media_at + (shown_start - picked[0].wall) as u64,
                duration: (shown_end - shown_start) as u64,
            });
            let audio_range = range_audio.map(|(wall, media)| RangeAudio { wall, media, media_end: audio_at });
            shown.push(RangeShown { start: shown_start, end: shown_end, audio: audio_range });
            media_at += range_media;
        }
        if movie.samples.is_empty() {
            return Err(ArchiveError::NoData { video: video.to_owned(), start: first_start, end: last_end });
        }
        if !audio.samples.is_empty() {
            // The audio edits follow the video's: each range's stretch of its own audio, with
            // silence (an empty edit) where its audio starts late, ends early or is missing, so
            // one range never plays another's audio.
            let rate = i64::from(audio.timescale);
            let to_90k = |ticks: u64| rescale(ticks as i64, rate, crate::time::TICKS_PER_SEC).max(0) as u64;
            let empty = |d: i64| Edit { media_time: file::EMPTY_EDIT, duration: d.max(0) as u64 };
            for RangeShown { start, end, audio: a } in shown {
                let Some(a) = a.filter(|a| a.wall < end) else {
                    audio.edits.push(empty(end - start));
                    continue;
                };
                // Where this range's audio starts in the track, and how much of it there is.
                let (media, from) = if a.wall <= start {
                    (a.media + rescale(start - a.wall, crate::time::TICKS_PER_SEC, rate) as u64, start)
                } else {
                    audio.edits.push(empty(a.wall - start));
                    (a.media, a.wall)
                };
                let have = to_90k(a.media_end.saturating_sub(media));
                let shown_audio = have.min((end - from) as u64);
                if shown_audio > 0 {
                    audio.edits.push(Edit { media_time: media, duration: shown_audio });
                }
                let rest = end - from - shown_audio as i64;
                if rest > 0 {
                    audio.edits.push(empty(rest));
                }
            }
            movie.audio = Some(audio);
        }
        let layout = file::build(&movie)?;
        Ok(Plan {
            requested: (first_start, last_end),
            actual: (actual_start.unwrap_or(first_start), actual_end.unwrap_or(last_end)),
            gaps,
            frames,
            layout,
            sources,
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

/// Adds a sample to the chunk of its fragment (a new chunk when the fragment changes).
#[allow(clippy::too_many_arguments)]
fn add_to_chunks(
    chunks: &mut Vec<(usize, u32, Chunk, Source)>,
    seg: usize,
    fragment: u32,
    entry: usize,
    audio: bool,
    offset: u64,
    size: u32,
    path: impl FnOnce() -> std::path::PathBuf,
) {
    match chunks.last_mut() {
        Some((s, f, c, src)) if *s == seg && *f == fragment && c.entry == entry => {
            c.samples += 1;
            c.bytes += u64::from(size);
            src.len += u64::from(size);
        }
        _ => chunks.push((
            seg,
            fragment,
            Chunk { entry, samples: 1, bytes: u64::from(size), audio },
            Source { path: path(), offset, len: u64::from(size) },
        )),
    }
}

impl Picking {
    /// The audio frames shown in `[start, end)`, in order, with their wall times.
    fn audio_in(&self, start: i64, end: i64) -> Vec<PickedAudio> {
        let mut out = Vec::new();
        for (i, (seg, samples)) in self.segs.iter().zip(&self.audio).enumerate() {
            let Some(timescale) = self.audio_rates.get(i).copied().flatten().filter(|&r| r > 0) else { continue };
            for a in samples {
                let at90 = rescale(seg.audio_start + a.media_off, i64::from(timescale), crate::time::TICKS_PER_SEC);
                let wall = seg.start.0 + rescale(at90 - seg.media_start, seg.media_dur, seg.wall_dur);
                let dur90 = rescale(i64::from(a.duration), i64::from(timescale), crate::time::TICKS_PER_SEC);
                if wall + dur90 > start && wall < end {
                    out.push(PickedAudio { wall, sample: *a, seg: i });
                }
            }
        }
        out
    }
}

impl Plan {
    /// Bytes of memory the plan holds (its header and its sources), for budgets.
    pub fn heap_bytes(&self) -> usize {
        self.layout.header.capacity()
            + self.sources.iter().map(|s| std::mem::size_of::<Source>() + s.path.as_os_str().len()).sum::<usize>()
    }

    /// Writes the file to `out` atomically (temporary name, then rename: no partial file ever
    /// has the final name), calling `progress` with the bytes written so far. With `sync` the
    /// file is fsynced before the rename, so it also survives a power loss right after; that
    /// waits for the disk, which dominates the time of a large export.
    pub fn write_to(&self, out: &Path, sync: bool, mut progress: impl FnMut(u64)) -> Result<(), ArchiveError> {
        let tmp = out.with_file_name(format!(
            ".{}.partial",
            out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into())
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp).map_err(ArchiveError::io("creating", &tmp))?;
            f.write_all(&self.layout.header).map_err(ArchiveError::io("writing", &tmp))?;
            let mut done = self.layout.header.len() as u64;
            progress(done);
            // Every segment opened before the first byte is copied: an open file stays readable
            // after it is unlinked, so retention running meanwhile (in the host, another
            // process, where this plan's pins do not reach) cannot cut the export short.
            let mut open: HashMap<&Path, std::fs::File> = HashMap::new();
            for s in &self.sources {
                if !open.contains_key(s.path.as_path()) {
                    let f = std::fs::File::open(&s.path).map_err(ArchiveError::io("opening segment", &s.path))?;
                    open.insert(&s.path, f);
                }
            }
            for s in &self.sources {
                let Some(src) = open.get_mut(s.path.as_path()) else { continue };
                src.seek(SeekFrom::Start(s.offset)).map_err(ArchiveError::io("reading segment", &s.path))?;
                // File to file: std uses copy_file_range, so the bytes never pass through
                // user space.
                let n = std::io::copy(&mut Read::by_ref(src).take(s.len), &mut f)
                    .map_err(ArchiveError::io("copying from segment", &s.path))?;
                if n != s.len {
                    return Err(ArchiveError::Corrupt(format!(
                        "{} is shorter than its index (deleted by retention meanwhile?)",
                        s.path.display()
                    )));
                }
                done += n;
                progress(done);
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
/// needs to answer `Range` requests. Segment files are opened on first use and kept open.
pub struct PlanReader {
    plan: std::sync::Arc<Plan>,
    /// Output offset at which each source starts.
    starts: Vec<u64>,
    /// The segment file read last: sources come in file order, so one open file at a time
    /// is enough and a long export never holds thousands of descriptors.
    file: Option<(PathBuf, std::fs::File)>,
}

impl PlanReader {
    /// A reader of `plan`'s bytes.
    pub fn new(plan: std::sync::Arc<Plan>) -> Self {
        let mut at = plan.layout.header.len() as u64;
        let starts = plan
            .sources
            .iter()
            .map(|s| {
                let start = at;
                at += s.len;
                start
            })
            .collect();
        PlanReader { plan, starts, file: None }
    }

    /// Fills `buf` with the file's bytes from `pos` (fewer at the end of the file); returns how
    /// many. A segment shorter than its index (deleted by retention meanwhile) is an error.
    pub fn read_at(&mut self, pos: u64, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let header = &self.plan.layout.header;
        let mut done = 0usize;
        let mut pos = pos;
        while done < buf.len() && pos < self.plan.layout.total_len {
            if pos < header.len() as u64 {
                let from = pos as usize;
                let n = (header.len() - from).min(buf.len() - done);
                buf[done..done + n].copy_from_slice(&header[from..from + n]);
                done += n;
                pos += n as u64;
                continue;
            }
            // The source holding `pos`: the last one starting at or before it.
            let i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
            let Some(src) = self.plan.sources.get(i) else { break };
            let within = pos - self.starts[i];
            let n = ((src.len - within) as usize).min(buf.len() - done);
            if self.file.as_ref().is_none_or(|(p, _)| *p != src.path) {
                let f = std::fs::File::open(&src.path).map_err(ArchiveError::io("opening segment", &src.path))?;
                self.file = Some((src.path.clone(), f));
            }
            let Some((_, f)) = self.file.as_ref() else { break };
            std::os::unix::fs::FileExt::read_exact_at(f, &mut buf[done..done + n], src.offset + within).map_err(
                |e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => ArchiveError::Corrupt(format!(
                        "{} is shorter than its index (deleted by retention meanwhile?)",
                        src.path.display()
                    )),
                    _ => ArchiveError::io("reading segment", &src.path)(e),
                },
            )?;
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
        let edits = audio_edits(&plan.layout.header);
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
