//! What streaming playback needs from the index: the fragments of a wall-clock range with their
//! byte ranges in the segment files, the files' init segments, and where the timeline breaks;
//! AVA's rules for which range a manifest covers and whether it is still growing; and the one
//! segment file or keyframe a request names. No HTTP here: `api/` turns this into playlists
//! (through `mp4::hls`) and responses.

use super::index;
use super::{Archive, ArchiveError, SegmentRow, VideoKind, db};
use crate::mp4::fragment::fragment_header_len;
use crate::time::{TICKS_PER_SEC, Time90k, rescale};
use std::collections::HashMap;
use std::path::PathBuf;

/// What a manifest without times covers: the most recent 4 hours (AVA's default window).
pub const DEFAULT_WINDOW_90K: i64 = 4 * 3600 * TICKS_PER_SEC;
/// How long after its end a range of a video being recorded stays live, waiting for the
/// fragment that holds the end: fragments are listed as soon as they are written (up to ~1 s
/// after their first frame, plus a frame), and a late camera may take longer.
pub const COMMIT_GRACE_90K: i64 = 5 * TICKS_PER_SEC;

/// What a manifest request asks for.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PlaybackRequest {
    /// `startTime`, if given.
    pub start: Option<Time90k>,
    /// `endTime`, if given.
    pub end: Option<Time90k>,
    /// Whether a pipeline records into the video now (so the range may still grow).
    pub recording: bool,
    /// The wall clock when the request is answered.
    pub now: Time90k,
}

/// Whether, and how, the range can still change.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Closed: everything it will ever hold is listed.
    Closed,
    /// Still being recorded, fixed start: fragments will be appended.
    Growing,
    /// The most recent window of a video being recorded: fragments are appended and the oldest
    /// drop off as the clock moves; the sequence numbers say how many are gone.
    Sliding,
}

/// One fragment (`moof` + `mdat`) of a segment file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FragmentRef {
    /// Offset of its `moof` in the file.
    pub offset: u64,
    /// Bytes of `moof` + `mdat`.
    pub len: u64,
    /// Wall-clock time of its first frame.
    pub wall_start: Time90k,
    /// Media duration (sum of its frame durations), 90 kHz.
    pub media_dur: i64,
}

/// The listed fragments of one segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFragments {
    /// The file's name in the video's directory (what the segment route takes).
    pub file_name: String,
    /// Bytes of its init segment (`ftyp` + `moov`) at offset 0.
    pub init_len: u64,
    /// Whether the media timeline restarts, or the codec parameters change, between the previous
    /// listed segment and this one (another run, or another sample entry).
    pub new_timeline: bool,
    /// Its fragments in the range, in order.
    pub fragments: Vec<FragmentRef>,
}

/// The fragments a manifest lists, and how it may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playback {
    /// Closed, growing or sliding.
    pub liveness: Liveness,
    /// The start the request asked for, inside the first fragment when that begins earlier at
    /// its keyframe (players can be told to start there).
    pub requested_start: Option<Time90k>,
    /// Sequence number of the first listed fragment (0 unless sliding).
    pub media_sequence: u64,
    /// Number of timeline breaks before the first listed fragment (0 unless sliding).
    pub discontinuity_sequence: u64,
    /// The segment files and their fragments, oldest first.
    pub segments: Vec<SegmentFragments>,
    /// RFC 6381 codec strings of the listed segments' tracks (video first, then audio), for
    /// HLS `CODECS` and the player's Media Source buffer.
    pub codecs: Vec<String>,
}

impl Playback {
    /// Wall-clock time of the first listed fragment.
    pub fn first_start(&self) -> Option<Time90k> {
        self.segments.iter().flat_map(|s| s.fragments.first()).map(|f| f.wall_start).next()
    }
}

/// What a video's newest recording holds (AVA's `mediaInfo`, with openva's additions).
#[derive(Clone, Debug, PartialEq)]
pub struct MediaInfo {
    /// RFC 6381 video codec, e.g. `avc1.64001F`, `hvc1.1.6.L93.B0`.
    pub codec: String,
    /// Picture width.
    pub width: u32,
    /// Picture height.
    pub height: u32,
    /// Frames per second, measured over the newest segment.
    pub frame_rate: Option<f64>,
    /// The audio track, if recorded.
    pub audio: Option<AudioInfo>,
}

/// A recorded audio track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// RFC 6381 codec, e.g. `mp4a.40.2`, `flac`.
    pub codec: String,
    /// Samples per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
}

/// A segment file of a video, as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentFile {
    /// Absolute path (where it is on local disk, unless evicted to the remote tier).
    pub path: PathBuf,
    /// Relative to the data directory: what [`Archive::open_segment`] opens.
    pub rel: String,
    /// Bytes written as complete fragments (committed or in the live tail): final, even while
    /// the file is appended to.
    pub bytes: u64,
    /// Still being written.
    pub open: bool,
    /// The row's id (with `bytes`, it names this exact content).
    pub id: i64,
}

/// A recorded keyframe and what decoding it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyframe {
    /// Its wall-clock time.
    pub wall: Time90k,
    /// The sample (4-byte length-prefixed NAL units).
    pub data: Vec<u8>,
    /// The `avc1` sample entry of its segment (SPS and PPS).
    pub sample_entry: Vec<u8>,
}

/// Sequence numbers of segments in the last sliding window served, per video: a sliding
/// window's numbers must continue from one reload to the next, and they are carried from
/// segments the windows share. See [`Archive::playback`].
#[derive(Default)]
pub(crate) struct Numbering {
    /// Video id → (segment id → (sequence number of its first fragment, discontinuity number)).
    videos: HashMap<i64, HashMap<i64, (u64, u64)>>,
}

/// A segment's decoded fragments, before the range is cut out of them.
struct Loaded {
    row: SegmentRow,
    frags: Vec<(FragmentRef, bool)>,
}

impl Archive {
    /// The fragments a manifest of `video` lists for `req`, under AVA's rules:
    ///
    /// - `endTime` without `startTime`, `endTime` not after `startTime`, or a span over 24 h are
    ///   errors naming the parameter;
    /// - `startTime` alone means up to 24 h from it; no times mean the most recent 4 h (of the
    ///   clock while recording, else of the recorded media);
    /// - while the video is recorded, a range whose end is not yet recorded is live: growing
    ///   from its start, or, without times, a window sliding with the clock. A range stays
    ///   live until its end is recorded or [`COMMIT_GRACE_90K`] after it, so the fragment
    ///   holding its end is not cut off.
    ///
    /// The first fragment is the one holding the start, backed up to one that begins with a
    /// keyframe; the last is the last one beginning before the end. Every fragment written so
    /// far is listed, committed to the index or not yet (`archive/live.rs`): their bytes are
    /// final. A closed range with nothing recorded is [`ArchiveError::NoData`]; a live one may
    /// be empty.
    pub fn playback(&self, video: &str, req: &PlaybackRequest) -> Result<Playback, ArchiveError> {
        if let (None, Some(e)) = (req.start, req.end) {
            return Err(ArchiveError::EndWithoutStart { end: e });
        }
        if let (Some(s), Some(e)) = (req.start, req.end) {
            if e <= s {
                return Err(ArchiveError::EndNotAfterStart { start: s, end: e });
            }
            if e.0 - s.0 > crate::limits::MAX_SPAN_90K {
                return Err(ArchiveError::SpanTooLong { start: s, end: e, limit: "24 hours", of: "a manifest" });
            }
        }
        let v = self.video(video)?;
        if v.kind == VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it cannot be streamed (manifests apply to archive videos only; download content.mp4)",
            });
        }
        let stats = self.video_stats(v.id)?;
        let recorded_end = stats.last.unwrap_or(Time90k(i64::MIN));
        let (start, end, liveness) = match (req.start, req.end) {
            (Some(s), e) => {
                let e = e.unwrap_or(Time90k(s.0.saturating_add(crate::limits::MAX_SPAN_90K)));
                let live = req.recording && recorded_end < e && req.now.0 < e.0.saturating_add(COMMIT_GRACE_90K);
                (s, Some(e), if live { Liveness::Growing } else { Liveness::Closed })
            }
            (None, _) if req.recording => (Time90k(req.now.0 - DEFAULT_WINDOW_90K), None, Liveness::Sliding),
            (None, _) => {
                let Some(last) = stats.last else {
                    return Err(ArchiveError::NoData {
                        video: video.to_owned(),
                        start: Time90k(req.now.0 - DEFAULT_WINDOW_90K),
                        end: req.now,
                    });
                };
                (Time90k(last.0 - DEFAULT_WINDOW_90K), Some(last), Liveness::Closed)
            }
        };
        let loaded = self.load_fragments(v.id, start, end)?;
        // The fragment holding `start` (or the first after it), backed up to a keyframe.
        let mut first: Option<(usize, usize)> = None;
        let mut first_key: Option<(usize, usize)> = None;
        'find: for (si, l) in loaded.iter().enumerate() {
            for (fi, (f, key)) in l.frags.iter().enumerate() {
                if f.wall_start > start && first.is_some() {
                    break 'find;
                }
                if *key {
                    first_key = Some((si, fi));
                }
                first = Some((si, fi));
                if f.wall_start > start {
                    break 'find;
                }
            }
        }
        let first = first_key.or(first);
        let mut segments = Vec::new();
        let mut prev: Option<&SegmentRow> = None;
        let mut window: Vec<(i64, usize, bool)> = Vec::new(); // (segment id, fragment count, new timeline)
        let mut first_index = 0usize;
        for (si, l) in loaded.iter().enumerate() {
            let new_timeline =
                prev.is_some_and(|p| p.run_id != l.row.run_id || p.sample_entry_id != l.row.sample_entry_id);
            prev = Some(&l.row);
            let Some((fs, ff)) = first else { break };
            if si < fs || l.frags.is_empty() {
                continue;
            }
            let skip = if si == fs { ff } else { 0 };
            let fragments: Vec<FragmentRef> =
                l.frags[skip..].iter().map(|(f, _)| *f).take_while(|f| end.is_none_or(|e| f.wall_start < e)).collect();
            if fragments.is_empty() {
                // This file starts at or after the end: later files start later still.
                break;
            }
            if si == fs {
                first_index = skip;
            }
            window.push((l.row.id, l.frags.len(), new_timeline && !segments.is_empty()));
            segments.push(SegmentFragments {
                file_name: file_name(&l.row.file),
                init_len: u64::try_from(l.row.init_len).unwrap_or(0),
                new_timeline: new_timeline && !segments.is_empty(),
                fragments,
            });
        }
        if segments.is_empty() && liveness == Liveness::Closed {
            return Err(ArchiveError::NoData { video: video.to_owned(), start, end: end.unwrap_or(req.now) });
        }
        let (media_sequence, discontinuity_sequence) = match liveness {
            Liveness::Sliding => self.sliding_numbers(v.id, &window, first_index, &segments),
            _ => (0, 0),
        };
        let requested_start = req.start.filter(|_| liveness != Liveness::Sliding);
        let mut listed: Vec<&SegmentRow> = Vec::new();
        for s in &segments {
            if let Some(l) = loaded.iter().find(|l| file_name(&l.row.file) == s.file_name) {
                listed.push(&l.row);
            }
        }
        let codecs = self.codecs_of(listed.iter().copied())?;
        Ok(Playback { liveness, requested_start, media_sequence, discontinuity_sequence, segments, codecs })
    }

    /// What the newest recorded segment of `video` holds: codecs, picture size, frame rate and
    /// audio (`None` before anything is recorded).
    pub fn media_info(&self, video: &str) -> Result<Option<MediaInfo>, ArchiveError> {
        let v = self.video(video)?;
        let mut rows = db::last_segments(&*self.reader()?, v.id, 2)?;
        self.live.overlay(&mut rows);
        let Some(row) = rows.into_iter().find(|r| r.frames > 0) else { return Ok(None) };
        let e = db::sample_entry(&*self.reader()?, row.sample_entry_id)?;
        let frame_rate = (row.media_dur > 0)
            .then(|| (row.frames as f64 * TICKS_PER_SEC as f64 / row.media_dur as f64 * 100.0).round() / 100.0);
        let audio = match row.audio_entry_id {
            Some(id) => {
                let a = db::sample_entry(&*self.reader()?, id)?;
                let (rate, channels) = crate::mp4::entry::audio_info(&a.data).unwrap_or((a.timescale, 0));
                crate::mp4::entry::codec_string(&a.data).map(|codec| AudioInfo { codec, rate, channels })
            }
            None => None,
        };
        Ok(Some(MediaInfo {
            codec: crate::mp4::entry::codec_string(&e.data).unwrap_or_default(),
            width: e.width,
            height: e.height,
            frame_rate,
            audio,
        }))
    }

    /// The codec strings of the tracks of `rows`: each distinct video codec, then each distinct
    /// audio codec, in the order they appear.
    pub(crate) fn codecs_of<'a>(
        &self,
        rows: impl Iterator<Item = &'a SegmentRow>,
    ) -> Result<Vec<String>, ArchiveError> {
        let (mut video, mut audio) = (Vec::new(), Vec::new());
        let mut seen = std::collections::HashSet::new();
        for r in rows {
            for (id, list) in [(Some(r.sample_entry_id), &mut video), (r.audio_entry_id, &mut audio)] {
                let Some(id) = id else { continue };
                if !seen.insert(id) {
                    continue;
                }
                let e = db::sample_entry(&*self.reader()?, id)?;
                if let Some(c) = crate::mp4::entry::codec_string(&e.data)
                    && !list.contains(&c)
                {
                    list.push(c);
                }
            }
        }
        video.extend(audio);
        Ok(video)
    }

    /// Every fragment of the segments overlapping `[start, end)`, with wall times and byte
    /// ranges, from the index alone.
    fn load_fragments(&self, video_id: i64, start: Time90k, end: Option<Time90k>) -> Result<Vec<Loaded>, ArchiveError> {
        let rows = self.segments(video_id, Some(start), end)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let corrupt = |what: String| ArchiveError::Corrupt(format!("{}: {what}", row.file));
            let samples = index::decode_all(&row.idx).map_err(|e| corrupt(e.to_string()))?;
            let mut frags = Vec::new();
            let mut prev_end: Option<u64> = None;
            for f in index::fragments(&samples) {
                // Fragments follow each other directly; the first follows the init segment and
                // the metadata box, so its header length says where its `moof` is.
                let offset = match prev_end {
                    Some(e) => e,
                    None => f.data_start.saturating_sub(fragment_header_len(f.samples, f.has_cts, f.audio_samples)),
                };
                if offset < u64::try_from(row.init_len).unwrap_or(u64::MAX) || f.data_end < offset {
                    return Err(corrupt("a fragment overlaps the init segment".into()));
                }
                prev_end = Some(f.data_end);
                let wall_start = Time90k(row.start.0 + rescale(f.media_off, row.media_dur, row.wall_dur));
                frags.push((
                    FragmentRef { offset, len: f.data_end - offset, wall_start, media_dur: f.media_dur },
                    f.starts_with_key,
                ));
            }
            if u64::try_from(row.bytes).unwrap_or(0) < prev_end.unwrap_or(0) {
                return Err(corrupt("the index reaches past the file's committed length".into()));
            }
            out.push(Loaded { row, frags });
        }
        Ok(out)
    }

    /// Media and discontinuity sequence numbers of a sliding window, continuing those of the
    /// last window served for the video from a segment both share. Without one (the first
    /// request, or none in the last 4 h, or after a restart), they start from the first
    /// fragment's wall time in milliseconds: higher than any number an earlier window of the
    /// video can have reached, since fragments last at least a millisecond.
    fn sliding_numbers(
        &self,
        video_id: i64,
        window: &[(i64, usize, bool)],
        first_index: usize,
        segments: &[SegmentFragments],
    ) -> (u64, u64) {
        let fresh = segments
            .first()
            .and_then(|s| s.fragments.first())
            .map_or(0, |f| u64::try_from(f.wall_start.as_millis()).unwrap_or(0));
        let mut numbering = self.numbering.lock().unwrap_or_else(|p| p.into_inner());
        let known = numbering.videos.entry(video_id).or_default();
        // Numbers of each window segment's first fragment, from an anchor it shares with the
        // last window, walking forward and backward through the fragment counts.
        let mut numbers: Vec<(u64, u64)> = vec![(0, 0); window.len()];
        let anchor = window.iter().position(|(id, _, _)| known.contains_key(id));
        let derived = anchor.and_then(|a| {
            numbers[a] = known.get(&window[a].0).copied()?;
            for k in a + 1..window.len() {
                let (m, d) = numbers[k - 1];
                numbers[k] = (m + window[k - 1].1 as u64, d + u64::from(window[k].2));
            }
            for k in (0..a).rev() {
                let (m, d) = numbers[k + 1];
                numbers[k] = (m.checked_sub(window[k].1 as u64)?, d.checked_sub(u64::from(window[k + 1].2))?);
            }
            Some(())
        });
        if derived.is_none() && !window.is_empty() {
            numbers[0] = (fresh.saturating_sub(first_index as u64), fresh);
            for k in 1..window.len() {
                let (m, d) = numbers[k - 1];
                numbers[k] = (m + window[k - 1].1 as u64, d + u64::from(window[k].2));
            }
        }
        *known = window.iter().zip(&numbers).map(|((id, _, _), n)| (*id, *n)).collect();
        numbers.first().map_or((fresh, fresh), |&(m, d)| (m + first_index as u64, d))
    }

    /// A segment file of `video` by its name in the video's directory; only files the index
    /// lists for that video are found. A name with a path separator or a leading dot is refused.
    pub fn segment_file(&self, video: &str, name: &str) -> Result<SegmentFile, ArchiveError> {
        if name.is_empty() || name.len() > 64 || name.starts_with('.') || name.contains(['/', '\\', '\0']) {
            return Err(ArchiveError::BadRange(format!("'{name}' is not a segment file name")));
        }
        let v = self.video(video)?;
        let rel = format!("videos/{}/{name}", v.name);
        let row = db::segment_by_file(&*self.reader()?, v.id, &rel)?
            .ok_or_else(|| ArchiveError::UnknownSegment { video: v.name.clone(), file: name.to_owned() })?;
        let mut rows = [row];
        self.live.overlay(&mut rows);
        let [row] = rows;
        Ok(SegmentFile {
            path: self.segment_path(&row.file),
            rel: row.file.clone(),
            bytes: u64::try_from(row.bytes).unwrap_or(0),
            open: row.open,
            id: row.id,
        })
    }

    /// The keyframe on screen at `at`: the last one at or before it in the segment recorded at
    /// that time ([`ArchiveError::NoPicture`] if nothing was recorded then). Without `at`, the
    /// latest keyframe written.
    pub fn keyframe(&self, video: &str, at: Option<Time90k>) -> Result<Keyframe, ArchiveError> {
        let v = self.video(video)?;
        if v.kind == VideoKind::File {
            return Err(ArchiveError::FileVideo {
                video: v.name,
                reason: "it has no recorded pictures by time (images apply to archive videos only)",
            });
        }
        let rows = match at {
            Some(t) => self
                .segments(v.id, Some(t), Some(Time90k(t.0 + 1)))?
                .into_iter()
                .rev()
                .filter(|s| s.start <= t && t < s.end())
                .collect(),
            // The newest segment may have just been opened with nothing committed yet.
            None => {
                let mut rows = db::last_segments(&*self.reader()?, v.id, 3)?;
                self.live.overlay(&mut rows);
                rows
            }
        };
        for row in rows {
            let samples = index::decode(&row.idx).map_err(|e| ArchiveError::Corrupt(format!("{}: {e}", row.file)))?;
            let wall = |s: &index::Sample| Time90k(row.start.0 + rescale(s.media_off, row.media_dur, row.wall_dur));
            let Some(key) = samples.iter().rev().find(|s| s.key && at.is_none_or(|t| wall(s) <= t)) else {
                continue;
            };
            let file = self.open_segment(&row.file)?;
            let path = file.name().to_owned();
            let mut data = vec![0u8; key.size as usize];
            file.read_exact_at(&mut data, key.file_off).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => ArchiveError::Corrupt(format!(
                    "{} is shorter than its index (deleted by retention meanwhile?)",
                    path.display()
                )),
                _ => ArchiveError::io("reading segment", &path)(e),
            })?;
            let sample_entry = db::sample_entry(&*self.reader()?, row.sample_entry_id)?.data;
            return Ok(Keyframe { wall: wall(key), data, sample_entry });
        }
        Err(ArchiveError::NoPicture { video: video.to_owned(), at })
    }
}

/// The last component of a segment's relative path.
fn file_name(rel: &str) -> String {
    rel.rsplit('/').next().unwrap_or(rel).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::writer::{Frame, SampleEntry, VideoWriter};
    use crate::archive::{VideoConfig, VideoStats};
    use std::sync::Arc;

    use crate::archive::test_dir::Tmp;

    fn tmp(name: &str) -> Tmp {
        crate::archive::test_dir::tmp("playback", name)
    }

    fn entry() -> SampleEntry {
        let mut data = Vec::new();
        crate::mp4::put_box(&mut data, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        SampleEntry { data, width: 640, height: 360 }
    }

    /// 2023-11-14T22:13:20Z.
    const BASE: i64 = 1_700_000_000 * TICKS_PER_SEC;
    const FRAME: i64 = 3600; // 25 fps

    /// Records runs of 25 fps frames with a keyframe every `gop`: each `(from_s, secs)` is one
    /// run starting `from_s` seconds after BASE. Segments rotate every 30 s.
    fn record(t: &Tmp, runs: &[(i64, i64)], gop: i64) -> Arc<Archive> {
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let cfg =
            VideoConfig { segment_length: crate::time::Duration90k::from_secs(30), retention: None, max_bytes: None };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        for &(from_s, secs) in runs {
            w.begin_run().unwrap();
            w.set_sample_entry(entry()).unwrap();
            for n in 0..secs * 25 {
                let media = 1_000_000 + n * FRAME;
                let received = Time90k(BASE + from_s * TICKS_PER_SEC + n * FRAME);
                let data = vec![n as u8; 200 + (n % 7) as usize];
                w.push(Frame { media_90k: media, cts: 0, received, key: n % gop == 0, data, new_clock: false })
                    .unwrap();
            }
            w.end_run().unwrap();
        }
        a
    }

    fn at(s: f64) -> Time90k {
        Time90k(BASE + (s * TICKS_PER_SEC as f64) as i64)
    }

    fn req(start: Option<f64>, end: Option<f64>, recording: bool, now: f64) -> PlaybackRequest {
        PlaybackRequest { start: start.map(at), end: end.map(at), recording, now: at(now) }
    }

    fn all(p: &Playback) -> Vec<FragmentRef> {
        p.segments.iter().flat_map(|s| s.fragments.iter().copied()).collect()
    }

    #[test]
    fn fragments_are_the_moofs_of_the_files_and_the_range_starts_in_the_first() {
        let t = tmp("closed");
        let a = record(&t, &[(0, 40)], 25);
        let p = a.playback("cam", &req(Some(3.5), Some(35.2), false, 100.0)).unwrap();
        assert_eq!(p.liveness, Liveness::Closed);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (0, 0));
        assert_eq!(p.requested_start, Some(at(3.5)));
        // Two files of one run: no timeline break between them.
        assert_eq!(p.segments.len(), 2);
        assert!(!p.segments[0].new_timeline && !p.segments[1].new_timeline);
        let f = all(&p);
        // One-second GOPs: the fragment holding 3.5 s starts at 3 s; the last starts before 35.2 s.
        assert_eq!(f[0].wall_start, at(3.0));
        assert_eq!(f.last().unwrap().wall_start, at(35.0));
        assert_eq!(f.len(), 33);
        for s in &p.segments {
            let bytes = std::fs::read(a.video_dir("cam").join(&s.file_name)).unwrap();
            assert_eq!(&bytes[4..8], b"ftyp");
            assert_eq!(&bytes[s.init_len as usize + 4..s.init_len as usize + 8], b"ovmd");
            for (i, fr) in s.fragments.iter().enumerate() {
                let o = fr.offset as usize;
                assert_eq!(&bytes[o + 4..o + 8], b"moof", "fragment {i} of {}", s.file_name);
                let end = o + fr.len as usize;
                assert!(end == bytes.len() || &bytes[end + 4..end + 8] == b"moof");
                assert_eq!(fr.media_dur, 25 * FRAME);
            }
        }
    }

    #[test]
    fn fragments_are_listed_as_soon_as_they_are_written() {
        let t = tmp("tail");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let mut w = VideoWriter::open(a.clone(), "cam", VideoConfig::default()).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry()).unwrap();
        let changes = a.recorded_changes();
        // Two seconds and a keyframe: two fragments are written (the second when the keyframe
        // arrived); the index commits an open segment only every few seconds.
        for n in 0..51 {
            let f = Frame {
                media_90k: n * FRAME,
                cts: 0,
                received: Time90k(BASE + n * FRAME),
                key: n % 25 == 0,
                data: vec![1; 300],
                new_clock: false,
            };
            w.push(f).unwrap();
        }
        let id = a.video("cam").unwrap().id;
        let committed = db::segments_starting(&a.conn(), id, None, None, true).unwrap();
        assert_eq!((committed.len(), committed[0].frames), (1, 0), "nothing committed yet");
        assert!(changes.has_changed().unwrap(), "waiting readers are told");
        let p = a.playback("cam", &req(Some(0.0), None, true, 2.1)).unwrap();
        assert_eq!(p.liveness, Liveness::Growing);
        let f = all(&p);
        assert_eq!(f.iter().map(|f| f.wall_start).collect::<Vec<_>>(), [at(0.0), at(1.0)]);
        // The segment route serves what was written, and it is all on disk.
        let file = a.segment_file("cam", &p.segments[0].file_name).unwrap();
        assert_eq!(file.bytes, f[1].offset + f[1].len);
        assert_eq!(std::fs::metadata(&file.path).unwrap().len(), file.bytes);
        assert_eq!(a.keyframe("cam", None).unwrap().wall, at(1.0));
        assert_eq!(a.video_stats(id).unwrap().last, Some(at(2.0)));
        assert_eq!(a.recorded_ranges("cam", None, None).unwrap(), [(at(0.0), at(2.0))]);
        // Closing commits the segment and leaves the index alone to describe it.
        drop(w);
        assert!(a.live.of_video(id).is_empty());
        let p = a.playback("cam", &req(Some(0.0), None, false, 3.0)).unwrap();
        assert_eq!((p.liveness, all(&p).len()), (Liveness::Closed, 3));
        // The last frame alone in its fragment gets the writer's default duration (3000 ticks).
        assert_eq!(a.video_stats(id).unwrap().last, Some(Time90k(at(2.0).0 + 3000)));
    }

    #[test]
    fn long_gops_back_up_to_the_fragment_with_the_keyframe() {
        let t = tmp("gop");
        // A keyframe every 2 s: fragments are cut after 1 s, so every other one has no keyframe.
        let a = record(&t, &[(0, 10)], 50);
        let p = a.playback("cam", &req(Some(3.5), Some(6.0), false, 100.0)).unwrap();
        let f = all(&p);
        assert_eq!(f[0].wall_start, at(2.0));
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn a_gap_between_runs_is_a_new_timeline() {
        let t = tmp("gap");
        let a = record(&t, &[(0, 5), (9, 5)], 25);
        let p = a.playback("cam", &req(Some(2.0), Some(12.0), false, 100.0)).unwrap();
        assert_eq!(p.segments.len(), 2);
        assert!(!p.segments[0].new_timeline && p.segments[1].new_timeline);
        let f = all(&p);
        assert_eq!(f.iter().map(|f| f.wall_start).collect::<Vec<_>>()[..4], [at(2.0), at(3.0), at(4.0), at(9.0)]);
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn ava_rules_for_times() {
        let t = tmp("rules");
        let a = record(&t, &[(0, 5)], 25);
        let bad = |r: PlaybackRequest, needle: &str| match a.playback("cam", &r) {
            Err(
                e @ (ArchiveError::EndWithoutStart { .. }
                | ArchiveError::EndNotAfterStart { .. }
                | ArchiveError::SpanTooLong { .. }),
            ) => {
                assert!(e.to_string().contains(needle), "{e}")
            }
            other => panic!("{other:?}"),
        };
        bad(req(None, Some(3.0), false, 10.0), "needs a start");
        bad(req(Some(3.0), Some(3.0), false, 10.0), "is not after start");
        bad(req(Some(3.0), Some(1.0), false, 10.0), "is not after start");
        bad(req(Some(0.0), Some(24.0 * 3600.0 + 1.0), false, 10.0), "24 hours");
        assert!(a.playback("cam", &req(Some(0.0), Some(24.0 * 3600.0), false, 10.0)).is_ok());
        assert!(matches!(a.playback("nope", &req(None, None, false, 10.0)), Err(ArchiveError::UnknownVideo(_))));
        // Nothing recorded in a closed range.
        let none = a.playback("cam", &req(Some(100.0), Some(200.0), false, 300.0));
        assert!(matches!(none, Err(ArchiveError::NoData { .. })), "{none:?}");
        // No times, not recording: the most recent 4 h of the media, closed.
        let p = a.playback("cam", &req(None, None, false, 1e6)).unwrap();
        assert_eq!((p.liveness, all(&p).len(), p.requested_start), (Liveness::Closed, 5, None));
        // startTime alone: up to 24 h from it.
        let p = a.playback("cam", &req(Some(2.0), None, false, 1e6)).unwrap();
        assert_eq!((p.liveness, all(&p).len()), (Liveness::Closed, 3));
    }

    #[test]
    fn live_ranges_grow_until_their_end_is_recorded_or_past_the_grace() {
        let t = tmp("live");
        let a = record(&t, &[(0, 5)], 25);
        let live = |r| a.playback("cam", &r).unwrap().liveness;
        assert_eq!(live(req(Some(1.0), None, true, 6.0)), Liveness::Growing);
        assert_eq!(live(req(Some(1.0), Some(8.0), true, 6.0)), Liveness::Growing);
        assert_eq!(live(req(Some(1.0), Some(8.0), true, 13.5)), Liveness::Closed, "past the grace");
        assert_eq!(live(req(Some(1.0), Some(4.0), true, 6.0)), Liveness::Closed, "end already recorded");
        assert_eq!(live(req(Some(1.0), Some(8.0), false, 6.0)), Liveness::Closed, "not recording");
        // A live range with nothing recorded yet is an empty list, not an error.
        let p = a.playback("cam", &req(Some(50.0), None, true, 50.0)).unwrap();
        assert_eq!((p.liveness, p.segments.len()), (Liveness::Growing, 0));
        assert_eq!(live(req(None, None, true, 6.0)), Liveness::Sliding);
    }

    #[test]
    fn sliding_windows_keep_their_numbers_across_reloads() {
        let t = tmp("sliding");
        let window = DEFAULT_WINDOW_90K as f64 / TICKS_PER_SEC as f64;
        let a = record(&t, &[(0, 40), (50, 40)], 25);
        let numbers = |now: f64| {
            let p = a.playback("cam", &req(None, None, true, now)).unwrap();
            assert_eq!(p.liveness, Liveness::Sliding);
            let f = all(&p);
            let mut breaks = p.discontinuity_sequence;
            let mut out = Vec::new();
            let mut seq = p.media_sequence;
            for s in &p.segments {
                breaks += u64::from(s.new_timeline);
                for fr in &s.fragments {
                    out.push((fr.wall_start, seq, breaks));
                    seq += 1;
                }
            }
            assert_eq!(out.len(), f.len());
            out
        };
        let first = numbers(window + 10.5);
        assert_eq!(first[0].0, at(10.0));
        // The first request numbers from the first fragment's wall time in milliseconds.
        assert_eq!(first[0].1 as i64, at(10.0).as_millis());
        // 20 s and 55 s later the window has slid (past a segment and past the gap); every
        // fragment still listed keeps its numbers.
        for later in [window + 30.5, window + 65.5] {
            let next = numbers(later);
            assert!(next[0].0 > first[0].0);
            for n in &next {
                if let Some(f) = first.iter().find(|f| f.0 == n.0) {
                    assert_eq!(f, n);
                }
            }
            assert_eq!(next.last(), first.last());
        }
        let after_gap = numbers(window + 65.5);
        assert_eq!(after_gap[0].0, at(65.0));
        assert_eq!(after_gap[0].2, first[0].2 + 1, "the discontinuity at the gap is counted");
        // A new archive instance (a host restart) numbers afresh, above the old numbers.
        let b = Archive::open_existing(&t.0).unwrap();
        let p = b.playback("cam", &req(None, None, true, window + 65.5)).unwrap();
        assert!(p.media_sequence >= after_gap[0].1);
    }

    #[test]
    fn segment_files_only_by_their_own_video_and_name() {
        let t = tmp("files");
        let a = record(&t, &[(0, 3)], 25);
        let name = file_name(&a.segments(a.video("cam").unwrap().id, None, None).unwrap()[0].file);
        let f = a.segment_file("cam", &name).unwrap();
        assert!(!f.open);
        assert_eq!(f.bytes, std::fs::metadata(&f.path).unwrap().len());
        for bad in ["../index.db", ".lock", "", "a/b.mp4"] {
            assert!(matches!(a.segment_file("cam", bad), Err(ArchiveError::BadRange(_))), "{bad}");
        }
        assert!(matches!(a.segment_file("cam", "00000009-000000.mp4"), Err(ArchiveError::UnknownSegment { .. })));
        assert!(matches!(a.segment_file("other", &name), Err(ArchiveError::UnknownVideo(_))));
    }

    #[test]
    fn keyframes_at_a_time_and_the_latest() {
        let t = tmp("keys");
        let a = record(&t, &[(0, 5), (9, 5)], 50);
        let k = a.keyframe("cam", Some(at(3.9))).unwrap();
        assert_eq!(k.wall, at(2.0));
        assert_eq!(k.data, vec![50u8; 201]);
        assert!(k.sample_entry.starts_with(&[0, 0, 0, 86, b'a', b'v', b'c', b'1']));
        assert_eq!(a.keyframe("cam", None).unwrap().wall, at(13.0));
        // In the gap, or before anything: nothing recorded there.
        assert!(matches!(a.keyframe("cam", Some(at(7.0))), Err(ArchiveError::NoPicture { .. })));
        assert!(matches!(a.keyframe("cam", Some(at(-1.0))), Err(ArchiveError::NoPicture { .. })));
        let stats: VideoStats = a.video_stats(a.video("cam").unwrap().id).unwrap();
        assert_eq!(stats.last, Some(at(14.0)));
    }
}
