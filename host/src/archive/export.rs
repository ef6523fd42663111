//! Any wall-clock range of a video as one progressive MP4, planned from the index alone.
//!
//! The plan starts at the keyframe at or before `start` and uses an edit list so players show
//! `start` first; it ends with the frame on screen at `end`, clipped. Across a gap the last frame
//! before it is held for the gap's length, so the file's timeline stays wall time, and the gap is
//! reported. Only after planning are video bytes read, by byte range, from the segment files.

use super::db;
use super::index;
use super::{Archive, ArchiveError, GAP_TOLERANCE_90K};
use crate::mp4::file::{self, Chunk, Edit, Movie};
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
}

struct Picked {
    wall: i64,
    sample: index::Sample,
    seg: usize,
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
}

/// The frames an export covers, chosen from the index.
struct Picking {
    segs: Vec<db::SegmentRow>,
    picked: Vec<Picked>,
    shown_start: i64,
    shown_end: i64,
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
            return Err(ArchiveError::BadRange(format!("end {end} is not after start {start}")));
        }
        let v = self.video(video)?;
        if v.kind == super::VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it has no wall-clock time ranges to export (startTime/endTime apply to archive videos \
                         only; download the whole file)",
            });
        }
        let segs = self.segments(v.id, Some(start), Some(end))?;
        let no_data = || ArchiveError::NoData { video: video.to_owned(), start, end };
        // Every frame of the overlapping segments with its wall time.
        let mut all: Vec<Picked> = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let samples = index::decode(&s.idx).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", s.file)))?;
            for smp in samples {
                let wall = s.start.0 + rescale(smp.media_off, s.media_dur, s.wall_dur);
                all.push(Picked { wall, sample: smp, seg: i });
            }
        }
        if all.is_empty() {
            return Err(no_data());
        }
        // The frame on screen at `start` (or the first after it), backed up to its keyframe.
        let on_screen = all.iter().rposition(|p| p.wall <= start.0).unwrap_or(0);
        let first = all[..=on_screen].iter().rposition(|p| p.sample.key).ok_or_else(no_data)?;
        let last = all.iter().rposition(|p| p.wall < end.0).ok_or_else(no_data)?;
        if last < first {
            return Err(no_data());
        }
        all.truncate(last + 1);
        all.drain(..first);
        let mut picking = Picking { segs, picked: all, shown_start: 0, shown_end: 0 };
        let last_p = &picking.picked[picking.picked.len() - 1];
        let data_end = last_p.wall + picking.own_wall_dur(last_p);
        if data_end <= start.0 {
            return Err(no_data());
        }
        picking.shown_start = start.0.max(picking.picked[0].wall);
        picking.shown_end = end.0.min(data_end);
        Ok(picking)
    }

    /// The picture size of the latest recorded segment of `video` (None if nothing recorded).
    pub fn video_size(&self, video: &str) -> Result<Option<(u32, u32)>, ArchiveError> {
        let v = self.video(video)?;
        let Some(last) = self.segments(v.id, None, None)?.pop() else { return Ok(None) };
        let (_, w, h) = db::sample_entry(&self.conn(), last.sample_entry_id)?;
        Ok(Some((w, h)))
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
                    let (data, _, _) = db::sample_entry(&self.conn(), seg.sample_entry_id)?;
                    entries.push(data);
                    entry_of.insert(seg.sample_entry_id, entries.len() - 1);
                    entries.len() - 1
                }
            };
            frames.push(FrameRef {
                wall: Time90k(p.wall),
                wall_dur: k.own_wall_dur(p),
                key: p.sample.key,
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
    pub fn plan_export_ranges(&self, video: &str, ranges: &[(Time90k, Time90k)]) -> Result<Plan, ArchiveError> {
        let Some(&(first_start, _)) = ranges.first() else {
            return Err(ArchiveError::BadRange("no range to export".into()));
        };
        let last_end = ranges.last().map_or(first_start, |r| r.1);
        let mut movie = Movie::default();
        let mut entry_of: HashMap<i64, usize> = HashMap::new();
        let mut gaps = Vec::new();
        let mut sources: Vec<Source> = Vec::new();
        let mut frames = 0u64;
        let (mut actual_start, mut actual_end) = (None, None);
        let mut media_at = 0u64; // media time at which the current range's samples start
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
            let (picked, shown_start, shown_end) = (&k.picked, k.shown_start, k.shown_end);
            actual_start.get_or_insert(Time90k(shown_start));
            actual_end = Some(Time90k(shown_end));
            frames += picked.len() as u64;
            // Sample tables: durations telescope over wall times, so each range's timeline is
            // wall time.
            let mut cur: Option<(usize, u32)> = None; // (segment, fragment) of the open chunk
            let mut range_media = 0u64;
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
                movie.samples.push(file::Sample { duration: dur, size: p.sample.size, key: p.sample.key });
                let seg = &k.segs[p.seg];
                let entry = match entry_of.get(&seg.sample_entry_id) {
                    Some(&e) => e,
                    None => {
                        let (data, w, h) = db::sample_entry(&self.conn(), seg.sample_entry_id)?;
                        if movie.entries.is_empty() {
                            movie.width = w;
                            movie.height = h;
                        }
                        movie.entries.push(data);
                        entry_of.insert(seg.sample_entry_id, movie.entries.len() - 1);
                        movie.entries.len() - 1
                    }
                };
                if cur == Some((p.seg, p.sample.fragment)) {
                    let c = movie.chunks.last_mut().ok_or_else(|| ArchiveError::Corrupt("chunk".into()))?;
                    c.samples += 1;
                    c.bytes += u64::from(p.sample.size);
                    let src = sources.last_mut().ok_or_else(|| ArchiveError::Corrupt("chunk".into()))?;
                    src.len += u64::from(p.sample.size);
                } else {
                    movie.chunks.push(Chunk { entry, samples: 1, bytes: u64::from(p.sample.size) });
                    sources.push(Source {
                        path: self.segment_path(&seg.file),
                        offset: p.sample.file_off,
                        len: u64::from(p.sample.size),
                    });
                    cur = Some((p.seg, p.sample.fragment));
                }
            }
            movie.edits.push(Edit {
                media_time: media_at + (shown_start - picked[0].wall) as u64,
                duration: (shown_end - shown_start) as u64,
            });
            media_at += range_media;
        }
        if movie.samples.is_empty() {
            return Err(ArchiveError::NoData { video: video.to_owned(), start: first_start, end: last_end });
        }
        let layout = file::build(&movie)?;
        Ok(Plan {
            requested: (first_start, last_end),
            actual: (actual_start.unwrap_or(first_start), actual_end.unwrap_or(last_end)),
            gaps,
            frames,
            layout,
            sources,
        })
    }
}

impl Plan {
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
            let mut open: Option<(PathBuf, std::fs::File)> = None;
            for s in &self.sources {
                if open.as_ref().is_none_or(|(p, _)| *p != s.path) {
                    let src = std::fs::File::open(&s.path).map_err(ArchiveError::io("opening segment", &s.path))?;
                    open = Some((s.path.clone(), src));
                }
                let Some((_, src)) = open.as_mut() else { continue };
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
