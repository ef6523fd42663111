//! Recording into the archive: one [`VideoWriter`] per video, fed frames of one run (RTSP
//! session) at a time. It lags one frame behind the camera, because a frame's duration is only
//! known when the next one arrives; cuts fragments at keyframes or after ~1 s; rotates segment
//! files at the first keyframe past the segment length or when the codec configuration changes;
//! and keeps wall time per the rules in `docs/archive.md`.

use super::db::{self, SegmentRow, VideoConfig, VideoRow};
use super::index::IndexBuilder;
use super::{Archive, ArchiveError, sync_dir};
use crate::mp4::fragment::{FragSample, fragment_header};
use crate::mp4::init::init_segment;
use crate::time::{TICKS_PER_SEC, Time90k};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// Longest fragment: about a second, so a crash loses at most ~1 s (plus the frame in flight).
const MAX_FRAGMENT_90K: i64 = TICKS_PER_SEC;

/// The codec configuration of frames: the `avc1` sample entry box (with `avcC`) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// The complete sample entry box.
    pub data: Vec<u8>,
    /// Display width.
    pub width: u32,
    /// Display height.
    pub height: u32,
}

/// One encoded frame (access unit) as received.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Media time in 90 kHz ticks from the camera's RTP timestamps (any origin, increasing).
    pub media_90k: i64,
    /// Local wall time at which the frame's first packet arrived.
    pub received: Time90k,
    /// Random access point.
    pub key: bool,
    /// AVC sample data: 4-byte length-prefixed NAL units.
    pub data: Vec<u8>,
}

/// What a finished run amounted to, for logs and the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames written.
    pub frames: u64,
    /// Frames skipped before the first keyframe.
    pub skipped: u64,
    /// Segment files written.
    pub segments: u64,
}

/// Writes one video. Holds the video's lock file so no other process writes it at once.
pub struct VideoWriter {
    archive: Arc<Archive>,
    video: VideoRow,
    _lock: File,
    run: Option<Run>,
}

struct Run {
    id: i64,
    entry: Option<(SampleEntry, i64)>,
    new_entry: bool,
    origin: Option<i64>,
    pending: Option<Frame>,
    frag: Vec<(FragSample, Vec<u8>)>,
    frag_media_start: i64,
    seg: Option<OpenSegment>,
    next_seq: i64,
    prev_end: Option<Time90k>,
    stats: RunStats,
}

struct OpenSegment {
    row: SegmentRow,
    file: File,
    path: PathBuf,
    index: IndexBuilder,
    frag_seq: u32,
    len: u64,
    /// min over frames of (received - media offset in segment): the least-delayed estimate of
    /// when the segment's first frame was captured.
    local_start: i64,
}

impl VideoWriter {
    /// Opens (creating if needed) the video for writing: takes its lock, applies `config`,
    /// finishes any deletion left by a crash and recovers segments a crash left open.
    pub fn open(archive: Arc<Archive>, name: &str, config: VideoConfig) -> Result<Self, ArchiveError> {
        super::validate_video_name(name)?;
        let dir = archive.video_dir(name);
        std::fs::create_dir_all(&dir).map_err(ArchiveError::io("creating", &dir))?;
        let lock_path = dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(ArchiveError::io("opening", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(ArchiveError::Locked(name.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(ArchiveError::io("locking", &lock_path)(e));
            }
        }
        let video = db::upsert_video(&archive.conn(), name, &config)?;
        super::recover::recover_video(&archive, &video)?;
        Ok(VideoWriter { archive, video, _lock: lock, run: None })
    }

    /// The video being written.
    pub fn video(&self) -> &VideoRow {
        &self.video
    }

    /// Starts a run: a continuous session from the camera. Ends any run still open.
    pub fn begin_run(&mut self) -> Result<(), ArchiveError> {
        self.end_run()?;
        let id = db::new_run(&self.archive.conn(), self.video.id, Time90k::now())?;
        self.run = Some(Run {
            id,
            entry: None,
            new_entry: false,
            origin: None,
            pending: None,
            frag: Vec::new(),
            frag_media_start: 0,
            seg: None,
            next_seq: 0,
            prev_end: None,
            stats: RunStats::default(),
        });
        Ok(())
    }

    /// Sets the codec configuration for the frames that follow. A change starts a new segment
    /// (and init segment) at the next keyframe.
    pub fn set_sample_entry(&mut self, entry: SampleEntry) -> Result<(), ArchiveError> {
        let Some(run) = self.run.as_mut() else {
            return Err(ArchiveError::BadRange("set_sample_entry outside a run".into()));
        };
        if run.entry.as_ref().is_some_and(|(e, _)| *e == entry) {
            return Ok(());
        }
        let id = db::sample_entry_id(&self.archive.conn(), &entry.data, entry.width, entry.height)?;
        run.entry = Some((entry, id));
        run.new_entry = true;
        Ok(())
    }

    /// Adds a frame of the current run. Frames before the first keyframe are skipped; a frame
    /// whose timestamp does not advance ends the run and starts a new one (a camera bug must
    /// not corrupt the timeline).
    pub fn push(&mut self, frame: Frame) -> Result<(), ArchiveError> {
        if self.run.is_none() {
            self.begin_run()?;
        }
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        if let Some(p) = &run.pending {
            if frame.media_90k <= p.media_90k {
                tracing::warn!(video = %self.video.name, "timestamp did not advance; starting a new run");
                let entry = run.entry.clone();
                self.end_run()?;
                self.begin_run()?;
                if let Some((e, _)) = entry {
                    self.set_sample_entry(e)?;
                }
                return self.push(frame);
            }
        } else if run.seg.is_none() && !frame.key {
            run.stats.skipped += 1;
            return Ok(());
        }
        let prev = run.pending.replace(frame);
        if let Some(prev) = prev {
            let next = run.pending.as_ref().map(|f| (f.media_90k, f.key));
            let (next_media, next_key) = next.unwrap_or((prev.media_90k, false));
            let dur = u32::try_from(next_media - prev.media_90k).unwrap_or(u32::MAX);
            self.append(prev, dur, next_key)?;
        }
        Ok(())
    }

    /// Ends the current run: writes the last frame (its duration taken from the one before)
    /// and closes the segment. Called on camera loss and on shutdown.
    pub fn end_run(&mut self) -> Result<RunStats, ArchiveError> {
        let Some(run) = self.run.as_mut() else {
            return Ok(RunStats::default());
        };
        if let Some(last) = run.pending.take() {
            let dur = run.frag.last().map(|(s, _)| s.duration).unwrap_or(0);
            let dur = if dur == 0 { 3000 } else { dur };
            self.append(last, dur, false)?;
        }
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        if run.seg.is_some() {
            flush_fragment(&self.archive, run)?;
            close_segment(&self.archive, &self.video, run)?;
        }
        let stats = self.run.take().map(|r| r.stats).unwrap_or_default();
        Ok(stats)
    }

    fn append(&mut self, f: Frame, dur: u32, next_key: bool) -> Result<(), ArchiveError> {
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        if run.seg.is_none() {
            open_segment(&self.archive, &self.video, run, &f)?;
        }
        let origin = *run.origin.get_or_insert(f.media_90k);
        let media = f.media_90k - origin;
        let seg = run.seg.as_mut().ok_or_else(|| ArchiveError::Corrupt("no segment".into()))?;
        if run.frag.is_empty() {
            run.frag_media_start = media;
        }
        let off_in_seg = media - seg.row.media_start;
        seg.local_start = seg.local_start.min(f.received.0 - off_in_seg);
        run.frag.push((FragSample { duration: dur, size: f.data.len() as u32, key: f.key }, f.data));
        run.stats.frames += 1;
        let frag_dur = media + i64::from(dur) - run.frag_media_start;
        if next_key || frag_dur >= MAX_FRAGMENT_90K {
            flush_fragment(&self.archive, run)?;
        }
        let seg = run.seg.as_ref().ok_or_else(|| ArchiveError::Corrupt("no segment".into()))?;
        let seg_dur = media + i64::from(dur) - seg.row.media_start;
        if next_key && (seg_dur >= self.video.config.segment_length_90k || run.new_entry) {
            close_segment(&self.archive, &self.video, run)?;
        }
        Ok(())
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if self.run.is_some()
            && let Err(e) = self.end_run()
        {
            tracing::error!(video = %self.video.name, "closing the run failed: {e}");
        }
    }
}

/// The JSON in a segment's `ovmd` box: enough to rebuild its index row from the file alone.
pub(crate) fn segment_meta(video: &str, row: &SegmentRow) -> serde_json::Value {
    serde_json::json!({
        "format": "openva-segment",
        "version": 1,
        "video": video,
        "run": row.run_id,
        "seq": row.seq,
        "start": row.start.to_iso_millis(),
        "start90k": row.start.0,
        "mediaStart90k": row.media_start,
    })
}

fn open_segment(archive: &Archive, video: &VideoRow, run: &mut Run, first: &Frame) -> Result<(), ArchiveError> {
    let (entry, entry_id) =
        run.entry.clone().ok_or_else(|| ArchiveError::Corrupt("frame before codec parameters".into()))?;
    run.new_entry = false;
    let media_start = run.origin.map_or(0, |o| first.media_90k - o);
    let start = run.prev_end.unwrap_or(first.received);
    let file = format!("videos/{}/{:08}-{:06}.mp4", video.name, run.id, run.next_seq);
    let mut row = SegmentRow {
        id: 0,
        video_id: video.id,
        run_id: run.id,
        seq: run.next_seq,
        file: file.clone(),
        open: true,
        sample_entry_id: entry_id,
        start,
        wall_dur: 0,
        media_start,
        media_dur: 0,
        frames: 0,
        key_frames: 0,
        init_len: 0,
        bytes: 0,
        idx: Vec::new(),
    };
    let mut head = init_segment(&entry.data, entry.width, entry.height);
    row.init_len = head.len() as i64;
    let meta = serde_json::to_vec(&segment_meta(&video.name, &row)).unwrap_or_default();
    crate::mp4::put_box(&mut head, b"ovmd", |o| o.extend_from_slice(&meta));
    row.bytes = head.len() as i64;
    // Row first, then file: a crash in between leaves a row whose file is missing or empty,
    // which recovery deletes; never a file the index cannot find.
    row.id = db::insert_segment(&archive.conn(), &row)?;
    let path = archive.segment_path(&file);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(ArchiveError::io("creating segment", &path))?;
    f.write_all(&head).map_err(ArchiveError::io("writing segment", &path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    run.next_seq += 1;
    run.stats.segments += 1;
    run.seg = Some(OpenSegment {
        len: head.len() as u64,
        local_start: first.received.0,
        row,
        file: f,
        path,
        index: IndexBuilder::new(),
        frag_seq: 1,
    });
    Ok(())
}

fn flush_fragment(archive: &Archive, run: &mut Run) -> Result<(), ArchiveError> {
    let Some(seg) = run.seg.as_mut() else {
        return Ok(());
    };
    if run.frag.is_empty() {
        return Ok(());
    }
    let samples: Vec<FragSample> = run.frag.iter().map(|(s, _)| *s).collect();
    let base = u64::try_from(run.frag_media_start).unwrap_or(0);
    let header = fragment_header(seg.frag_seq, base, &samples);
    let mut buf = Vec::with_capacity(header.len() + samples.iter().map(|s| s.size as usize).sum::<usize>());
    buf.extend_from_slice(&header);
    for (_, d) in &run.frag {
        buf.extend_from_slice(d);
    }
    // One write per fragment. After it, a kill -9 cannot lose the fragment (it is in the page
    // cache); the index row is updated after the write, so it never points past written data.
    if let Err(e) = seg.file.write_all(&buf) {
        // Cut the file back so it still ends at a fragment boundary, then report.
        let _ = seg.file.set_len(seg.len);
        run.frag.clear();
        return Err(ArchiveError::io("writing segment", &seg.path)(e));
    }
    let data_start = seg.len + header.len() as u64;
    let tuples: Vec<(u32, u32, bool)> = samples.iter().map(|s| (s.duration, s.size, s.key)).collect();
    seg.index.push_fragment(data_start, &tuples);
    seg.len += buf.len() as u64;
    seg.frag_seq += 1;
    run.frag.clear();
    let r = &mut seg.row;
    r.idx = seg.index.blob().to_vec();
    r.frames = seg.index.samples() as i64;
    r.key_frames = seg.index.key_samples() as i64;
    r.media_dur = seg.index.media_dur();
    r.wall_dur = r.media_dur;
    r.bytes = seg.len as i64;
    if run.prev_end.is_none() {
        // First segment of the run: the least-delayed frame so far sets the start.
        r.start = Time90k(seg.local_start);
    }
    db::update_segment(&archive.conn(), r)?;
    Ok(())
}

fn close_segment(archive: &Archive, video: &VideoRow, run: &mut Run) -> Result<(), ArchiveError> {
    let Some(mut seg) = run.seg.take() else {
        return Ok(());
    };
    seg.file.sync_data().map_err(ArchiveError::io("syncing segment", &seg.path))?;
    let r = &mut seg.row;
    if run.prev_end.is_some() {
        // Slew at most 500 ppm toward the local clock (docs/archive.md, "Time").
        let max = r.media_dur / 2000;
        r.wall_dur = r.media_dur + (seg.local_start - r.start.0).clamp(-max, max);
    } else {
        r.start = Time90k(seg.local_start);
        r.wall_dur = r.media_dur;
    }
    r.open = false;
    if r.frames == 0 {
        // Nothing was written (e.g. the disk filled at once): drop the empty file.
        super::recover::delete_segment(archive, r)?;
    } else {
        db::update_segment(&archive.conn(), r)?;
        run.prev_end = Some(r.end());
    }
    super::recover::apply_retention(archive, video, Time90k::now())?;
    Ok(())
}

/// Default settings: AVA's default segment length (PT30S), no retention limits.
impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig { segment_length_90k: 30 * TICKS_PER_SEC, retention_90k: None, max_bytes: None }
    }
}
