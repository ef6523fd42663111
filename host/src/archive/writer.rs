//! Recording into the archive: one [`VideoWriter`] per video, fed frames of one run (RTSP
//! session) at a time. It lags one video frame behind the camera, because a frame's decode
//! duration is only known when the next one arrives; cuts fragments at keyframes or after ~1 s;
//! puts the audio that arrived for a fragment's time span into the same fragment; rotates
//! segment files at the first keyframe past the segment length or when a codec configuration
//! changes; and keeps wall time per the rules in `docs/archive.md`.

use super::db::{self, SegmentRow, VideoConfig, VideoRow};
use super::index::{AudioEntry as IndexAudio, IndexBuilder, VideoEntry};
use super::{Archive, ArchiveError, sync_dir};
use crate::mp4::fragment::{AudioFragSample, AudioPart, FragSample, fragment_header};
use crate::mp4::init::init_segment;
use crate::time::{Duration90k, TICKS_PER_SEC, Time90k, rescale};
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// Longest fragment: about a second, so a crash loses at most ~1 s (plus the frame in flight).
const MAX_FRAGMENT_90K: i64 = TICKS_PER_SEC;

/// A frame longer than this is not a frame but a stall of the camera that kept its clock
/// running: the run ends there (a gap) instead of holding one picture across it.
const MAX_FRAME_90K: i64 = 5 * TICKS_PER_SEC;

/// How far the camera's timeline may drift from the local clock (the least-delayed frames of a
/// fragment against where the run's timeline puts them) before the run ends at the next
/// keyframe and a new one starts from the local clock: a camera whose clock runs fast or slow
/// is never mis-dated by more than this plus what one fragment adds.
pub const MAX_DRIFT_90K: i64 = 2 * TICKS_PER_SEC;

/// Audio frames held while their fragment is not yet written (video stalled or not started),
/// at most; the oldest are dropped beyond it (counted).
const MAX_PENDING_AUDIO: usize = 4096;

/// How often a growing segment's file is synced and its row brought up to date. A `kill -9`
/// does not depend on it (recovery adopts every complete fragment found in the file); it bounds
/// what a power loss takes, and how far behind live other processes (`ranges`, `export`) see
/// an open segment. Each update costs an `fdatasync` and a SQLite transaction per stream.
const INDEX_UPDATE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// The codec configuration of video frames: the `avc1`/`hvc1` sample entry box and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// The complete sample entry box.
    pub data: Vec<u8>,
    /// Display width.
    pub width: u32,
    /// Display height.
    pub height: u32,
}

/// The codec configuration of audio frames: the sample entry box (`mp4a`, `fLaC`) and the
/// audio clock (samples per second), which is also the track's timescale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioEntry {
    /// The complete sample entry box.
    pub data: Vec<u8>,
    /// Samples per second.
    pub timescale: u32,
}

/// One encoded video frame (access unit) as received, in decode order.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Decode time in 90 kHz ticks (any origin, increasing).
    pub media_90k: i64,
    /// Presentation minus decode time, 90 kHz (non-zero with B-frames).
    pub cts: i32,
    /// Local wall time at which the frame's first packet arrived.
    pub received: Time90k,
    /// Random access point.
    pub key: bool,
    /// Sample data: 4-byte length-prefixed NAL units.
    pub data: Vec<u8>,
    /// The local clock this frame is dated by is not the one of the frames before (the host's
    /// clock stepped): a keyframe with it starts a new run.
    pub new_clock: bool,
}

/// One encoded audio frame.
#[derive(Clone, Debug)]
pub struct AudioFrame {
    /// Time of its first sample in the audio clock, on the same timeline as the video frames'
    /// `media_90k` (same origin, scaled to the audio rate).
    pub media: i64,
    /// Its length in samples (the duration of the last frame of a run).
    pub samples: u32,
    /// The frame.
    pub data: Vec<u8>,
}

/// What a finished run amounted to, for logs, metrics and the CLI. Every frame received is
/// either stored or counted here with the reason it was not.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunStats {
    /// Video frames received.
    pub received: u64,
    /// Video frames written.
    pub frames: u64,
    /// Video frames skipped before the run's first keyframe (nothing could decode them).
    pub skipped: u64,
    /// Segment files written.
    pub segments: u64,
    /// Audio frames received.
    pub audio_received: u64,
    /// Audio frames written.
    pub audio_frames: u64,
    /// Audio frames not written: from before the first keyframe, after the last video frame, or
    /// out of order.
    pub audio_dropped: u64,
}

impl RunStats {
    /// Adds another run's counts to these.
    pub fn add(&mut self, o: &RunStats) {
        self.received += o.received;
        self.frames += o.frames;
        self.skipped += o.skipped;
        self.segments += o.segments;
        self.audio_received += o.audio_received;
        self.audio_frames += o.audio_frames;
        self.audio_dropped += o.audio_dropped;
    }
}

/// Writes one video. Holds the video's lock file so no other process writes it at once.
pub struct VideoWriter {
    archive: Arc<Archive>,
    video: VideoRow,
    _lock: File,
    run: Option<Run>,
    /// Counts of runs the writer ended itself (a timestamp jump) since the last `end_run`.
    carried: RunStats,
    /// Video and audio frames written by this writer, ever (for metrics).
    stored: (u64, u64),
    /// Some frame written by this writer is committed to the index (exportable).
    available: bool,
    /// This writer created the video (so the creator's title and description apply).
    created: bool,
    /// What recovery found lost at open, until taken.
    losses: Vec<super::Loss>,
}

struct Run {
    id: i64,
    entry: Option<(SampleEntry, i64)>,
    new_entry: bool,
    audio: Option<(AudioEntry, i64)>,
    new_audio: bool,
    /// Decode time of the run's first frame (the origin of run-relative times).
    origin: Option<i64>,
    pending: Option<Frame>,
    frag: Vec<(FragSample, Vec<u8>)>,
    frag_media_start: i64,
    /// min over the fragment's frames of (received − media offset in the segment).
    frag_local: i64,
    /// The first fragment's `frag_local`: the run's anchor to the local clock.
    anchor: Option<i64>,
    /// The timeline drifted from the local clock: a new run starts at the next keyframe.
    restart: bool,
    /// Where on the local clock the run's last segment must end (a drift restart: the next run
    /// starts there).
    close_at: Option<Time90k>,
    /// The earliest the run may start: where the run before it ended after a drift restart (the
    /// least-delayed anchor of a fast camera's first segment would reach back into it).
    floor: Option<Time90k>,
    /// Time of the last audio frame accepted (audio clock): a frame not after it is dropped.
    last_audio: Option<i64>,
    /// Audio received, not yet written (times in the audio clock, session timeline).
    audio_pending: VecDeque<AudioFrame>,
    /// Run-relative end of the audio written so far (audio clock): where the next starts.
    audio_end: Option<i64>,
    seg: Option<OpenSegment>,
    next_seq: i64,
    prev_end: Option<Time90k>,
    stats: RunStats,
    /// An index row with frames of this run has been committed.
    committed: bool,
}

/// Audio frames for one fragment: the run-relative time of the first (audio clock) and the
/// frames with their data.
type AudioBatch = (i64, Vec<(AudioFragSample, Vec<u8>)>);

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
    /// When the row was last written.
    row_written: std::time::Instant,
}

impl Run {
    /// The audio clock's rate, when the run records audio.
    fn audio_rate(&self) -> Option<i64> {
        self.audio.as_ref().map(|(a, _)| i64::from(a.timescale))
    }

    /// The run's origin in the audio clock.
    fn audio_origin(&self) -> Option<i64> {
        Some(rescale(self.origin?, TICKS_PER_SEC, self.audio_rate()?))
    }

    /// Takes the audio frames that start before run-relative video time `until_90k`, each with
    /// its duration: up to the next frame's start, so audio keeps the camera's timing across
    /// losses. A frame whose successor has not arrived yet waits for the next fragment (the
    /// audio timeline continues exactly there), unless this is the run's `last` fragment: then
    /// it lasts its own length. Returns the run-relative start of the first frame taken (audio
    /// clock) and the frames.
    fn take_audio(&mut self, until_90k: i64, last: bool) -> Option<AudioBatch> {
        let (rate, origin) = (self.audio_rate()?, self.audio_origin()?);
        let seg = self.seg.as_ref()?;
        if seg.row.audio_entry_id != self.audio.as_ref().map(|(_, id)| *id) {
            return None; // the audio track changed; it starts with the next segment
        }
        let until = rescale(until_90k, TICKS_PER_SEC, rate);
        let mut first = None;
        let mut out = Vec::new();
        while let Some(f) = self.audio_pending.front() {
            let start = f.media - origin;
            let behind = self.audio_end.is_some_and(|e| start < e);
            if start < 0 || behind {
                // Before the run's first keyframe, or overlapping audio already written.
                self.audio_pending.pop_front();
                self.stats.audio_dropped += 1;
                continue;
            }
            if start >= until {
                break;
            }
            let dur = match self.audio_pending.get(1) {
                Some(next) if !last || next.media - origin < until => next.media - f.media,
                Some(_) => i64::from(f.samples),
                None if last => i64::from(f.samples),
                None => break,
            };
            let Some(f) = self.audio_pending.pop_front() else { break };
            let Ok(dur) = u32::try_from(dur) else {
                self.stats.audio_dropped += 1;
                continue;
            };
            first.get_or_insert(start);
            if self.audio_end.is_none()
                && let Some(seg) = self.seg.as_mut()
                && seg.row.audio_frames == 0
            {
                seg.row.audio_start = start;
            }
            self.audio_end = Some(start + i64::from(dur));
            self.stats.audio_frames += 1;
            out.push((AudioFragSample { duration: dur, size: f.data.len() as u32 }, f.data));
        }
        first.map(|f| (f, out))
    }
}

impl VideoWriter {
    /// Opens the video for writing, creating it with `config` if it does not exist (an existing
    /// video keeps its own settings: AVA's creation properties apply at creation; see
    /// [`Archive::update_video`]): takes its lock, finishes any deletion left by a crash
    /// and recovers segments a crash left open. A File video of that name is refused: it is one
    /// finished MP4, not appendable.
    pub fn open(archive: Arc<Archive>, name: &str, config: VideoConfig) -> Result<Self, ArchiveError> {
        super::validate_video_name(name)?;
        // Checked before anything touches the disk; `create_video` checks again under the lock.
        if db::video_by_name(&archive.conn(), name)?.is_some_and(|v| v.kind == super::VideoKind::File) {
            return Err(ArchiveError::not_appendable(name));
        }
        let dir = archive.video_dir(name);
        std::fs::create_dir_all(&dir).map_err(ArchiveError::io("creating", &dir))?;
        let lock = super::lock_video(&dir, name)?;
        let (video, created) = db::create_video(&archive.conn(), name, &config)?;
        if !created && video.config != config {
            tracing::info!(video = name, "the video exists: its own settings are kept (change them with an update)");
        }
        archive.live.retire_video(video.id);
        let losses = super::recover::recover_video(&archive, &video)?;
        archive.ensure_reserve()?;
        Ok(VideoWriter {
            archive,
            video,
            _lock: lock,
            run: None,
            carried: RunStats::default(),
            stored: (0, 0),
            available: false,
            created,
            losses,
        })
    }

    /// What recovery found lost when this writer opened the video (media the index listed and
    /// the files did not hold, after a power loss): for the caller to publish. Taken once.
    pub fn take_losses(&mut self) -> Vec<super::Loss> {
        std::mem::take(&mut self.losses)
    }

    /// Whether opening this writer created the video (AVA's creation properties, such as a
    /// title, apply only then).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The video being written.
    pub fn video(&self) -> &VideoRow {
        &self.video
    }

    /// Video and audio frames written by this writer so far (every run), for metrics.
    pub fn stored(&self) -> (u64, u64) {
        let (v, a) = self.run.as_ref().map_or((0, 0), |r| (r.stats.frames, r.stats.audio_frames));
        (self.stored.0 + self.carried.frames + v, self.stored.1 + self.carried.audio_frames + a)
    }

    /// Whether media written by this writer is committed to the index, so ranges and exports
    /// see it (AVA's RecordingAvailable). The index is updated every few seconds.
    pub fn media_available(&self) -> bool {
        self.available || self.run.as_ref().is_some_and(|r| r.committed)
    }

    /// Starts a run: a continuous session from the camera. Ends any run still open.
    pub fn begin_run(&mut self) -> Result<(), ArchiveError> {
        let r = self.end_run_inner().map(|(mut stats, leftover)| {
            stats.audio_dropped += leftover.len() as u64;
            stats
        });
        let ended = self.on_error(r)?;
        self.carried.add(&ended);
        // Room to record: the free-space floor (evicting the oldest recordings if need be) and
        // the reserve, which a disk-full error may have released (docs/archive.md, "Disk full").
        self.archive.keep_free_space(0)?;
        self.archive.ensure_reserve()?;
        let now = Time90k::now();
        let boot = crate::time::boot_clock().map(|(id, up)| (id, now.0 - up));
        let id = db::new_run(&mut self.archive.conn(), self.video.id, now, boot)?;
        self.run = Some(Run {
            id,
            entry: None,
            new_entry: false,
            audio: None,
            new_audio: false,
            origin: None,
            pending: None,
            frag: Vec::new(),
            frag_media_start: 0,
            frag_local: i64::MAX,
            anchor: None,
            restart: false,
            close_at: None,
            floor: None,
            last_audio: None,
            audio_pending: VecDeque::new(),
            audio_end: None,
            seg: None,
            next_seq: 0,
            prev_end: None,
            stats: RunStats::default(),
            committed: false,
        });
        Ok(())
    }

    /// Sets the codec configuration for the frames that follow. A change starts a new segment
    /// (and init segment) at the next keyframe.
    pub fn set_sample_entry(&mut self, entry: SampleEntry) -> Result<(), ArchiveError> {
        let Some(run) = self.run.as_mut() else {
            return Err(ArchiveError::Internal("set_sample_entry outside a run".into()));
        };
        if run.entry.as_ref().is_some_and(|(e, _)| *e == entry) {
            return Ok(());
        }
        let id = db::sample_entry_id(&self.archive.conn(), &entry.data, entry.width, entry.height, None)?;
        run.entry = Some((entry, id));
        run.new_entry = true;
        Ok(())
    }

    /// Sets the audio track of the frames that follow (`None`: no audio). Call before the first
    /// frame of a run; a later change starts a new segment at the next keyframe.
    pub fn set_audio_entry(&mut self, entry: Option<AudioEntry>) -> Result<(), ArchiveError> {
        let Some(run) = self.run.as_mut() else {
            return Err(ArchiveError::Internal("set_audio_entry outside a run".into()));
        };
        if run.audio.as_ref().map(|(e, _)| e) == entry.as_ref() {
            return Ok(());
        }
        if let Some(e) = &entry
            && e.timescale == 0
        {
            return Err(ArchiveError::Internal("an audio track needs a non-zero sample rate".into()));
        }
        run.audio = match entry {
            Some(e) => {
                let id = db::sample_entry_id(&self.archive.conn(), &e.data, 0, 0, Some(e.timescale))?;
                Some((e, id))
            }
            None => None,
        };
        run.audio_pending.clear();
        run.audio_end = None;
        run.new_audio = run.seg.is_some();
        Ok(())
    }

    /// Adds an audio frame of the current run. It is written with the video fragment whose time
    /// span it starts in; audio before the run's first keyframe is dropped (counted).
    pub fn push_audio(&mut self, frame: AudioFrame) -> Result<(), ArchiveError> {
        if self.run.is_none() {
            self.begin_run()?;
        }
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        run.stats.audio_received += 1;
        if run.audio.is_none() || run.last_audio.is_some_and(|l| frame.media <= l) {
            // No audio track, or a frame not after the one before (a camera whose audio clock
            // went back): dropped, counted.
            run.stats.audio_dropped += 1;
            return Ok(());
        }
        run.last_audio = Some(frame.media);
        if run.audio_pending.len() >= MAX_PENDING_AUDIO {
            run.audio_pending.pop_front();
            run.stats.audio_dropped += 1;
        }
        run.audio_pending.push_back(frame);
        Ok(())
    }

    /// Adds a video frame of the current run, in decode order. Frames before the first keyframe
    /// are skipped; a frame whose decode time does not advance, or jumps by more than 5 s, ends
    /// the run and starts a new one (a camera bug or stall must not corrupt the timeline).
    pub fn push(&mut self, frame: Frame) -> Result<(), ArchiveError> {
        let r = self.push_inner(frame);
        self.on_error(r)
    }

    /// On a full disk, frees the reserve so that ending the run can still commit the index.
    fn on_error<T>(&self, r: Result<T, ArchiveError>) -> Result<T, ArchiveError> {
        if let Err(e) = &r
            && e.is_disk_full()
        {
            self.archive.release_reserve();
        }
        r
    }

    fn push_inner(&mut self, frame: Frame) -> Result<(), ArchiveError> {
        if self.run.is_none() {
            self.begin_run()?;
        }
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        if let Some(p) = &run.pending {
            let step = frame.media_90k - p.media_90k;
            let restart = frame.key && (frame.new_clock || run.restart);
            let broken = step <= 0 || step > MAX_FRAME_90K;
            if broken || restart {
                if broken {
                    tracing::warn!(video = %self.video.name, step, "timestamp did not advance or jumped; starting a new run");
                } else if run.restart && !frame.new_clock {
                    // The camera's clock drifted: the old run ends where the local clock puts
                    // this keyframe, so the two runs meet (docs/archive.md, "Time").
                    run.close_at = Some(frame.received);
                }
                let (entry, audio) = (run.entry.clone(), run.audio.clone());
                // The old run's last fragment takes the audio up to its end; what is left starts
                // after it, in the new run, when the camera's timeline goes on (a clock step or
                // drift), and is dropped when it broke.
                let floor = run.close_at;
                let (ended, leftover) = self.end_run_inner()?;
                self.carried.add(&ended);
                self.begin_run()?;
                if let Some(r) = self.run.as_mut() {
                    r.floor = floor;
                }
                if let Some((e, _)) = entry {
                    self.set_sample_entry(e)?;
                }
                self.set_audio_entry(audio.map(|(a, _)| a))?;
                if let Some(r) = self.run.as_mut() {
                    if broken {
                        r.stats.audio_dropped += leftover.len() as u64;
                    } else {
                        r.audio_pending = leftover;
                    }
                }
                let mut frame = frame;
                frame.new_clock = false;
                return self.push_inner(frame);
            }
        } else if run.seg.is_none() && !frame.key {
            run.stats.received += 1;
            run.stats.skipped += 1;
            return Ok(());
        }
        run.stats.received += 1;
        let prev = run.pending.replace(frame);
        if let Some(prev) = prev {
            let next = run.pending.as_ref().map(|f| (f.media_90k, f.key));
            let (next_media, next_key) = next.unwrap_or((prev.media_90k, false));
            let dur = u32::try_from(next_media - prev.media_90k).unwrap_or(u32::MAX);
            self.append(prev, dur, next_key, false)?;
        }
        Ok(())
    }

    /// Ends the current run: writes the last frame (its duration taken from the one before)
    /// and the audio up to the end of the video, and closes the segment. Called on camera loss
    /// and on shutdown.
    pub fn end_run(&mut self) -> Result<RunStats, ArchiveError> {
        let r = self.end_run_inner().map(|(mut stats, leftover)| {
            stats.audio_dropped += leftover.len() as u64;
            stats
        });
        let ended = self.on_error(r)?;
        let mut stats = std::mem::take(&mut self.carried);
        stats.add(&ended);
        self.stored.0 += stats.frames;
        self.stored.1 += stats.audio_frames;
        Ok(stats)
    }

    /// Ends the current run and returns its counts alone, and the audio received for after its
    /// end (not counted yet: the caller carries it into the next run or counts it dropped).
    fn end_run_inner(&mut self) -> Result<(RunStats, VecDeque<AudioFrame>), ArchiveError> {
        let Some(run) = self.run.as_mut() else {
            return Ok((RunStats::default(), VecDeque::new()));
        };
        if let Some(last) = run.pending.take() {
            let dur = run.frag.last().map(|(s, _)| s.duration).unwrap_or(0);
            let dur = if dur == 0 { 3000 } else { dur };
            self.append(last, dur, false, true)?;
        }
        let run = self.run.as_mut().ok_or_else(|| ArchiveError::Corrupt("no run".into()))?;
        if run.seg.is_some() {
            flush_fragment(&self.archive, run, true)?;
            close_segment(&self.archive, &self.video, run)?;
        }
        match self.run.take() {
            Some(r) => {
                self.available |= r.committed;
                Ok((r.stats, r.audio_pending))
            }
            None => Ok((RunStats::default(), VecDeque::new())),
        }
    }

    /// Writes a frame whose duration is known; `last`: the run's last frame (its fragment takes
    /// all the audio up to the video's end).
    fn append(&mut self, f: Frame, dur: u32, next_key: bool, last: bool) -> Result<(), ArchiveError> {
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
        run.frag_local = run.frag_local.min(f.received.0 - off_in_seg);
        run.frag.push((FragSample { duration: dur, size: f.data.len() as u32, key: f.key, cts: f.cts }, f.data));
        run.stats.frames += 1;
        let frag_dur = media + i64::from(dur) - run.frag_media_start;
        if next_key || frag_dur >= MAX_FRAGMENT_90K || last {
            flush_fragment(&self.archive, run, last)?;
        }
        let seg = run.seg.as_ref().ok_or_else(|| ArchiveError::Corrupt("no segment".into()))?;
        let seg_dur = media + i64::from(dur) - seg.row.media_start;
        if next_key && (seg_dur >= self.video.config.segment_length.0 || run.new_entry || run.new_audio) {
            close_segment(&self.archive, &self.video, run)?;
            // Settings changed by an update while recording apply from the next segment.
            let now = db::video_by_name(&self.archive.conn(), &self.video.name)?;
            if let Some(v) = now {
                self.video.config = v.config;
            }
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

/// The JSON in a segment's `ovmd` box: enough to rebuild its index row from the file alone
/// (the audio track's start is the `tfdt` of the first fragment that holds audio).
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
    run.new_audio = false;
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
        idx: IndexBuilder::new().blob().to_vec(),
        audio_entry_id: run.audio.as_ref().map(|(_, id)| *id),
        audio_start: run.audio_end.unwrap_or(0),
        audio_frames: 0,
        audio_dur: 0,
        summary: Some(Default::default()),
    };
    let audio =
        run.audio.as_ref().map(|(a, _)| crate::mp4::AudioTrack { sample_entry: &a.data, timescale: a.timescale });
    let mut head = init_segment(&entry.data, entry.width, entry.height, audio.as_ref());
    row.init_len = head.len() as i64;
    let meta = serde_json::to_vec(&segment_meta(&video.name, &row)).unwrap_or_default();
    crate::mp4::put_box(&mut head, b"ovmd", |o| o.extend_from_slice(&meta));
    row.bytes = head.len() as i64;
    // Row first, then file: a crash in between leaves a row whose file is missing or empty,
    // which recovery deletes; never a file the index cannot find.
    row.id = db::insert_segment(&archive.conn(), &row)?;
    let path = archive.segment_path(&file);
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &head, 0).map(|()| f));
    let f = match created {
        Ok(f) => f,
        Err(e) => {
            // Disk full or unwritable at segment start: leave no open row or empty file behind.
            let _ = super::recover::delete_segment(archive, row.id, &row.file);
            return Err(ArchiveError::io("creating segment", &path)(e));
        }
    };
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
        row_written: std::time::Instant::now(),
    });
    Ok(())
}

/// Writes the buffered video frames as one fragment, with the audio that starts before their
/// end (all of it when `last`: the run ends).
fn flush_fragment(archive: &Archive, run: &mut Run, last: bool) -> Result<(), ArchiveError> {
    if run.seg.is_none() || run.frag.is_empty() {
        return Ok(());
    }
    let video_end = run.frag_media_start + run.frag.iter().map(|(s, _)| i64::from(s.duration)).sum::<i64>();
    let (audio_base, audio) = run.take_audio(video_end, last).unwrap_or_default();
    let Some(seg) = run.seg.as_mut() else {
        return Ok(());
    };
    let samples: Vec<FragSample> = run.frag.iter().map(|(s, _)| *s).collect();
    let audio_samples: Vec<AudioFragSample> = audio.iter().map(|(s, _)| *s).collect();
    let base = u64::try_from(run.frag_media_start).unwrap_or(0);
    let part = AudioPart { base_decode_time: u64::try_from(audio_base).unwrap_or(0), samples: &audio_samples };
    let header = fragment_header(seg.frag_seq, base, &samples, Some(part));
    let payload = samples.iter().map(|s| s.size as usize).sum::<usize>()
        + audio_samples.iter().map(|s| s.size as usize).sum::<usize>();
    let mut buf = Vec::with_capacity(header.len() + payload);
    buf.extend_from_slice(&header);
    for (_, d) in &run.frag {
        buf.extend_from_slice(d);
    }
    for (_, d) in &audio {
        buf.extend_from_slice(d);
    }
    // One write per fragment. After it, a kill -9 cannot lose the fragment (it is in the page
    // cache); the index row is updated after the write, so it never points past written data.
    // At an explicit offset: after a failed write the file is cut back, and the next write must
    // land at the cut, not at a cursor left past the end (that would leave a hole of zeros).
    let mut written = std::os::unix::fs::FileExt::write_all_at(&seg.file, &buf, seg.len);
    if written.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::StorageFull) {
        // The disk filled faster than the floor allowed for: make room and try once more.
        let _ = seg.file.set_len(seg.len);
        if archive.keep_free_space(buf.len() as u64).unwrap_or(0) > 0 {
            written = std::os::unix::fs::FileExt::write_all_at(&seg.file, &buf, seg.len);
        }
    }
    if let Err(e) = written {
        // Cut the file back so it still ends at a fragment boundary, then report.
        let _ = seg.file.set_len(seg.len);
        run.frag.clear();
        return Err(ArchiveError::io("writing segment", &seg.path)(e));
    }
    let data_start = seg.len + header.len() as u64;
    let video: Vec<VideoEntry> =
        samples.iter().map(|s| VideoEntry { duration: s.duration, cts: s.cts, size: s.size, key: s.key }).collect();
    let audio_entries: Vec<IndexAudio> =
        audio_samples.iter().map(|s| IndexAudio { duration: s.duration, size: s.size }).collect();
    seg.index.push_fragment(data_start, &video, &audio_entries);
    seg.len += buf.len() as u64;
    seg.frag_seq += 1;
    run.frag.clear();
    let r = &mut seg.row;
    r.idx = seg.index.blob().to_vec();
    r.frames = seg.index.samples() as i64;
    r.key_frames = seg.index.key_samples() as i64;
    r.media_dur = seg.index.media_dur();
    r.wall_dur = r.media_dur;
    r.audio_frames = seg.index.audio_samples() as i64;
    r.audio_dur = seg.index.audio_dur();
    r.summary = Some(seg.index.summary());
    r.bytes = seg.len as i64;
    if run.prev_end.is_none() {
        // First segment of the run: the least-delayed frame so far sets the start.
        r.start = Time90k(seg.local_start).max(run.floor.unwrap_or(Time90k(i64::MIN)));
    }
    // How far the run's timeline is from the local clock now (docs/archive.md, "Time").
    let anchor = if run.prev_end.is_some() { r.start.0 } else { *run.anchor.get_or_insert(run.frag_local) };
    let drift = run.frag_local - anchor;
    if drift.abs() > MAX_DRIFT_90K && !run.restart {
        tracing::warn!(
            file = %r.file,
            secs = drift as f64 / TICKS_PER_SEC as f64,
            "the camera's clock drifted from the local clock; a new run starts at the next keyframe"
        );
        run.restart = true;
    }
    run.frag_local = i64::MAX;
    // Readers in this process see the fragment at once (archive/live.rs); the index follows.
    archive.live.publish(r);
    if seg.row_written.elapsed() >= INDEX_UPDATE_INTERVAL {
        // The file first: then the row never lists data a power loss can take, and what a power
        // loss takes is bounded by this interval plus the fragment being buffered rather than by
        // the segment length (docs/archive.md, "Power loss"; figures in docs/reliability.md).
        seg.file.sync_data().map_err(ArchiveError::io("syncing segment", &seg.path))?;
        db::update_segment(&archive.conn(), r)?;
        archive.keep_free_space(0)?;
        seg.row_written = std::time::Instant::now();
        run.committed = true;
    }
    Ok(())
}

fn close_segment(archive: &Archive, video: &VideoRow, run: &mut Run) -> Result<(), ArchiveError> {
    let Some(mut seg) = run.seg.take() else {
        return Ok(());
    };
    close_row(archive, run, &mut seg)?;
    // Committed: from now on the index alone describes the file. (After a failure the published
    // row stays: its fragments are on disk, and the next writer's recovery adopts them.)
    archive.live.retire(seg.row.id);
    // Not the free-space floor here: a run ending because the disk is full would evict the
    // segment it just closed. The next run's start and the next segment's first commit keep it.
    super::recover::apply_retention(archive, video, Time90k::now())?;
    Ok(())
}

/// Syncs a segment's file and commits its final row (or deletes it when it holds no frame).
fn close_row(archive: &Archive, run: &mut Run, seg: &mut OpenSegment) -> Result<(), ArchiveError> {
    seg.file.sync_data().map_err(ArchiveError::io("syncing segment", &seg.path))?;
    let r = &mut seg.row;
    if run.prev_end.is_none() {
        r.start = Time90k(seg.local_start).max(run.floor.unwrap_or(Time90k(i64::MIN)));
    }
    match run.close_at.take() {
        // A drift restart: the segment ends where the local clock puts the next run's first
        // frame, whatever the slew, so the runs meet without a gap or an overlap.
        Some(at) => r.wall_dur = (at.0 - r.start.0).max(1),
        _ if run.prev_end.is_some() => {
            // Slew at most 500 ppm toward the local clock (docs/archive.md, "Time").
            let max = r.media_dur / 2000;
            r.wall_dur = r.media_dur + (seg.local_start - r.start.0).clamp(-max, max);
        }
        _ => r.wall_dur = r.media_dur,
    }
    r.open = false;
    if r.frames == 0 {
        // Nothing was written (e.g. the disk filled at once): drop the empty file.
        super::recover::delete_segment(archive, r.id, &r.file)?;
    } else {
        db::update_segment(&archive.conn(), r)?;
        run.prev_end = Some(r.end());
        run.committed = true;
    }
    Ok(())
}

/// Default settings: AVA's default segment length (PT30S), no retention limits.
impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig { segment_length: Duration90k::from_secs(30), retention: None, max_bytes: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_dir::Tmp;
    use crate::archive::{VideoUpdate, index};

    fn tmp(name: &str) -> Tmp {
        crate::archive::test_dir::tmp("writer", name)
    }

    fn entry(tag: u8) -> SampleEntry {
        let mut data = Vec::new();
        crate::mp4::put_box(&mut data, b"avc1", |o| {
            o.extend_from_slice(&[0u8; 77]);
            o.push(tag)
        });
        SampleEntry { data, width: 640, height: 360 }
    }

    /// 2023-11-14: long enough ago that a 1-day retention deletes everything written at it.
    const BASE: i64 = 1_700_000_000 * TICKS_PER_SEC;

    /// A video frame without composition offset, on the clock of the frames before.
    fn frame(media: i64, received: i64, key: bool, data: Vec<u8>) -> Frame {
        Frame { media_90k: media, cts: 0, received: Time90k(received), key, data, new_clock: false }
    }

    /// 25 fps frames, keyframe every `gop`; `delay(n)` is the network delay of frame n.
    fn feed(w: &mut VideoWriter, frames: std::ops::Range<i64>, gop: i64, delay: impl Fn(i64) -> i64) {
        for n in frames {
            let media = n * 3600;
            let key = n % gop == 0;
            w.push(frame(media, BASE + media + delay(n), key, vec![n as u8; 100])).unwrap();
        }
    }

    fn config(seg_secs: i64) -> VideoConfig {
        VideoConfig { segment_length: Duration90k::from_secs(seg_secs), retention: None, max_bytes: None }
    }

    /// A writer of video "cam" in the archive at `t`, in a run with codec configuration 1.
    fn writer(t: &Tmp, cfg: VideoConfig) -> (Arc<Archive>, VideoWriter) {
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        (a, w)
    }

    #[test]
    fn rotates_on_keyframes_after_segment_length() {
        let t = tmp("rotate");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..(70 * 25), 60, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        // Keyframes every 2.4 s: the first at or after 30 s is 31.2 s.
        let secs: Vec<f64> = segs.iter().map(|s| s.media_dur as f64 / 90_000.0).collect();
        assert_eq!(secs.len(), 3, "{secs:?}");
        assert!((secs[0] - 31.2).abs() < 1e-9 && (secs[1] - 31.2).abs() < 1e-9, "{secs:?}");
        for s in &segs {
            let idx = index::decode(&s.idx).unwrap();
            assert!(idx[0].key, "segment {} does not start with a keyframe", s.file);
            assert!(!s.open);
            // Fragments are at most ~1 s (25 frames) and never straddle a keyframe.
            for frag in 0..=idx.last().unwrap().fragment {
                let f: Vec<_> = idx.iter().filter(|x| x.fragment == frag).collect();
                assert!(f.len() <= 25 && f.iter().skip(1).all(|x| !x.key), "fragment {frag} of {}", s.file);
            }
        }
        // Within a run segments touch exactly.
        assert_eq!(segs[0].end(), segs[1].start);
        assert_eq!(segs[1].end(), segs[2].start);
    }

    #[test]
    fn codec_change_starts_a_new_segment_at_the_next_keyframe() {
        let t = tmp("params");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..100, 50, |_| 0);
        w.set_sample_entry(entry(2)).unwrap();
        feed(&mut w, 100..200, 50, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs.len(), 2);
        assert_ne!(segs[0].sample_entry_id, segs[1].sample_entry_id);
        assert_eq!(segs[0].frames, 100);
    }

    #[test]
    fn least_delayed_frame_anchors_the_run_and_slew_is_bounded() {
        let t = tmp("time");
        let (a, mut w) = writer(&t, config(30));
        // Frames arrive 20-60 ms late, except frame 37 (no delay); from 40 s on the camera clock
        // runs 1% slow, so the local clock says the second segment is late by far more than the
        // 500 ppm the slew may correct.
        feed(&mut w, 0..(65 * 25), 25, |n| {
            let jitter = if n == 37 { 0 } else { 1800 + (n * 7919 % 3600) };
            jitter + if n > 1000 { (n - 1000) * 36 } else { 0 }
        });
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs[0].start, Time90k(BASE), "first segment must start at the least-delayed estimate");
        assert_eq!(segs[0].wall_dur, segs[0].media_dur);
        let slew = segs[1].wall_dur - segs[1].media_dur;
        assert!(slew != 0 && slew.abs() <= segs[1].media_dur / 2000, "slew {slew}");
    }

    #[test]
    fn stalled_timestamps_start_a_new_run() {
        let t = tmp("stall");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..60, 25, |_| 0);
        // The camera restarts its clock (keyframe at media 0 again, 3 s later in wall time).
        let f = frame(0, BASE + 63 * 3600, true, vec![1; 100]);
        w.push(f).unwrap();
        feed(&mut w, 1..30, 25, |_| 63 * 3600);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs.len(), 2);
        assert_ne!(segs[0].run_id, segs[1].run_id);
        assert_eq!(segs.iter().map(|s| s.frames).sum::<i64>(), 90);
    }

    #[test]
    fn timestamp_jumps_are_gaps_not_held_frames() {
        let t = tmp("jump");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..50, 25, |_| 0);
        // 12 s of nothing, then the camera carries on with its clock.
        feed(&mut w, 350..400, 25, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs.len(), 2);
        assert_ne!(segs[0].run_id, segs[1].run_id);
        assert_eq!(segs[0].media_dur, 50 * 3600, "no frame held across the jump");
        assert_eq!(segs[1].start.0 - segs[0].end().0, 300 * 3600, "the jump is a gap");
    }

    #[test]
    fn retention_deletes_oldest_segments_by_bytes_and_age() {
        let t = tmp("retention");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let cfg = VideoConfig { max_bytes: Some(200_000), ..config(30) };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        // 5 segments of 30 s at 25 fps x 100 bytes: ~90 kB each with headers.
        feed(&mut w, 0..(150 * 25 + 1), 25, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        let total: i64 = segs.iter().map(|s| s.bytes).sum();
        assert!(total <= 200_000, "{total} bytes kept");
        let newest = segs.last().unwrap().seq;
        assert!(
            newest >= 4 && segs.len() >= 2 && (segs.len() as i64) < newest + 1,
            "{} of {} kept",
            segs.len(),
            newest + 1
        );
        let seqs: Vec<i64> = segs.iter().map(|s| s.seq).collect();
        let expect: Vec<i64> = (newest + 1 - segs.len() as i64..=newest).collect();
        assert_eq!(seqs, expect, "the oldest go first");
        let files = std::fs::read_dir(a.video_dir("cam"))
            .unwrap()
            .filter(|e| e.as_ref().is_ok_and(|e| e.path().extension().is_some_and(|x| x == "mp4")));
        assert_eq!(files.count(), segs.len(), "deleted segments leave no files");
        // By age: everything ended long before now (BASE is in 2026-11), so a 1-day retention
        // deletes all closed segments at the next rotation. A writer naming the video with
        // other settings does not change them (AVA's rule); an update does.
        drop(w);
        let cfg = VideoConfig { retention: Some(Duration90k::from_days(1)), ..config(30) };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg.clone()).unwrap();
        assert!(!w.created());
        assert_eq!(w.video().config.max_bytes, Some(200_000), "the video keeps its settings");
        let update = VideoUpdate { retention: Some(cfg.retention), ..Default::default() };
        a.update_video("cam", &update).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 10_000..10_001 + 31 * 25, 25, |_| 0);
        w.end_run().unwrap();
        assert!(a.segments(w.video().id, None, None).unwrap().is_empty());
    }

    /// Issue 14: retention never deletes a segment an export is reading; it deletes it at the
    /// first pass after the export is dropped, and newer segments do not pay for the wait.
    #[test]
    fn retention_keeps_segments_being_read() {
        let t = tmp("pinned");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        // ~90 kB segments (30 s at 25 fps x 100 bytes); the cap holds two.
        let cfg = VideoConfig { max_bytes: Some(200_000), ..config(30) };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 0..(60 * 25 + 1), 25, |_| 0);
        w.end_run().unwrap();
        let first = a.segments(w.video().id, None, None).unwrap().remove(0);
        let plan = a.plan_export("cam", first.start, first.end()).unwrap();
        let path = a.segment_path(&first.file);
        // Three more segments: without the pin the first would go at the first rotation.
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 10_000..(10_000 + 90 * 25 + 1), 25, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs[0].id, first.id, "the segment being read is kept");
        assert!(path.is_file());
        let rest: Vec<(i64, i64)> = segs[1..].iter().map(|s| (s.id, s.bytes)).collect();
        let newest = segs.last().unwrap().id;
        assert!(
            rest.iter().map(|r| r.1).sum::<i64>() <= 200_000
                && rest.len() >= 2
                && rest[0].0 == newest + 1 - rest.len() as i64,
            "besides the pinned one, the newest within the cap are kept: {rest:?}"
        );
        let out = t.0.join("export.mp4");
        plan.write_to(&a, &out, false, |_| {}).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), plan.layout.total_len(), "the planned bytes");
        drop(plan);
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 20_000..(20_000 + 31 * 25), 25, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert!(segs.iter().all(|s| s.id != first.id) && !path.exists(), "deleted once the export is dropped");
    }

    /// AVA's rule, the bug of issue 14: a second writer naming an existing video with a small
    /// cap deletes nothing; an update of the cap while a writer records applies at its next
    /// segment, without reopening.
    #[test]
    fn settings_apply_at_creation_and_updates_from_the_next_segment() {
        let t = tmp("settings");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let mut w = VideoWriter::open(a.clone(), "cam", config(30)).unwrap();
        assert!(w.created());
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 0..(90 * 25 + 1), 25, |_| 0);
        w.end_run().unwrap();
        drop(w);
        let kept = a.segments(a.video("cam").unwrap().id, None, None).unwrap();
        assert_eq!(kept.len(), 4);
        // Another writer with a 1-byte cap: nothing is deleted, the cap is not taken.
        let mut w = VideoWriter::open(a.clone(), "cam", VideoConfig { max_bytes: Some(1), ..config(60) }).unwrap();
        assert_eq!(w.video().config, config(30));
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        feed(&mut w, 5_000..5_000 + 31 * 25, 25, |_| 0);
        let video = w.video().id;
        let now = a.segments(video, None, None).unwrap();
        assert!(now.len() > kept.len() && now[..kept.len()] == kept[..], "a rotation deleted nothing");
        // An update while recording: a cap of about two segments, applied at the next rotation.
        let update = VideoUpdate { max_bytes: Some(Some(200_000)), ..Default::default() };
        assert_eq!(a.update_video("cam", &update).unwrap().0.config.max_bytes, Some(200_000));
        feed(&mut w, 5_000 + 31 * 25..5_000 + 62 * 25, 25, |_| 0);
        w.end_run().unwrap();
        let segs = a.segments(video, None, None).unwrap();
        let total: i64 = segs.iter().map(|s| s.bytes).sum();
        assert!(total <= 200_000 && segs.len() < now.len(), "{total} bytes in {} segments kept", segs.len());
        assert_eq!(w.video().config.max_bytes, Some(200_000));
        // Updates are checked.
        for bad in [
            VideoUpdate { segment_length: Some(Duration90k::from_secs(45)), ..Default::default() },
            VideoUpdate { retention: Some(Some(Duration90k::ZERO)), ..Default::default() },
            VideoUpdate { max_bytes: Some(Some(-1)), ..Default::default() },
            VideoUpdate { title: Some(Some("t".repeat(257))), ..Default::default() },
        ] {
            assert!(matches!(a.update_video("cam", &bad), Err(ArchiveError::BadSetting(_))), "{bad:?}");
        }
        assert!(matches!(a.update_video("nope", &update), Err(ArchiveError::UnknownVideo(_))));
    }

    #[test]
    fn b_frames_keep_their_composition_offsets_and_segments_start_at_keyframes() {
        let t = tmp("bframes");
        let (a, mut w) = writer(&t, config(30));
        // Closed GOPs of 49 frames: I0 P3 B1 B2 P6 B4 B5 … in decode order, with the decode
        // times the ingest gives them (the sorted presentation times); 70 s.
        let mut cts_seen = Vec::new();
        for n in 0..(70 * 25) {
            let i = n % 49;
            let shown = if i == 0 {
                0
            } else {
                [3 * ((i - 1) / 3) + 3, 3 * ((i - 1) / 3) + 1, 3 * ((i - 1) / 3) + 2][(i - 1) as usize % 3]
            };
            let (pts, dts) = ((n - i + shown) * 3600, n * 3600);
            cts_seen.push((pts - dts) as i32);
            let f = Frame {
                media_90k: dts,
                cts: (pts - dts) as i32,
                received: Time90k(BASE + dts),
                key: i == 0,
                data: vec![n as u8; 100],
                new_clock: false,
            };
            w.push(f).unwrap();
        }
        let stats = w.end_run().unwrap();
        assert_eq!((stats.received, stats.frames), (70 * 25, 70 * 25));
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs.len(), 3);
        let mut all = Vec::new();
        for s in &segs {
            let idx = index::decode(&s.idx).unwrap();
            assert!(idx[0].key && idx[0].cts == 0, "segment {} starts at a keyframe shown at its decode time", s.file);
            all.extend(idx.iter().map(|x| x.cts));
            // The file's fragments carry the same offsets (check reads them back).
            let scan = crate::archive::recover::scan_file(&a.segment_path(&s.file)).unwrap().unwrap();
            let from_file = index::decode(crate::archive::recover::index_from_scan(&scan).blob()).unwrap();
            assert_eq!(from_file, idx);
        }
        assert_eq!(all, cts_seen);
    }

    #[test]
    fn audio_goes_with_the_fragment_it_starts_in_and_keeps_its_timing() {
        let t = tmp("audio");
        let (a, mut w) = writer(&t, config(30));
        w.set_audio_entry(Some(AudioEntry { data: b"\0\0\0\x08mp4a".to_vec(), timescale: 48_000 })).unwrap();
        // AAC frames of 1024 samples from 0.1 s before the first video frame; one lost at 2 s.
        let mut sent = 0u64;
        let mut next_audio = -4800i64; // audio clock, 48 kHz: 0.1 s early
        for n in 0..(5 * 25) {
            let media = n * 3600;
            while next_audio * 90_000 / 48_000 <= media {
                if next_audio != 97_600 {
                    w.push_audio(AudioFrame { media: next_audio, samples: 1024, data: vec![7; 300] }).unwrap();
                    sent += 1;
                }
                next_audio += 1024;
            }
            let f = frame(media, BASE + media, n % 25 == 0, vec![1; 200]);
            w.push(f).unwrap();
        }
        // The audio of the last frame's time too.
        while next_audio * 90_000 / 48_000 < 125 * 3600 {
            w.push_audio(AudioFrame { media: next_audio, samples: 1024, data: vec![7; 300] }).unwrap();
            sent += 1;
            next_audio += 1024;
        }
        let stats = w.end_run().unwrap();
        assert_eq!(stats.audio_received, sent);
        assert_eq!(stats.audio_frames + stats.audio_dropped, sent);
        assert_eq!(stats.audio_dropped, 5, "the five frames before the first keyframe: {stats:?}");
        let segs = a.segments(w.video().id, None, None).unwrap();
        let s = &segs[0];
        let d = index::decode_all(&s.idx).unwrap();
        assert_eq!(d.audio.len() as u64, stats.audio_frames);
        assert_eq!(s.audio_start, 320, "the first audio frame at or after the first video frame");
        // The lost frame's predecessor lasts two frames; every other one its own.
        let long: Vec<u32> = d.audio.iter().map(|x| x.duration).filter(|&d| d != 1024).collect();
        assert_eq!(long, [2048]);
        // Audio ends within a frame of the video's end.
        let audio_end = (s.audio_start + s.audio_dur) as f64 / 48_000.0;
        let video_end = s.media_dur as f64 / 90_000.0;
        assert!((audio_end - video_end).abs() <= 1024.0 / 48_000.0, "{audio_end} vs {video_end}");
        // In the file: each fragment's audio follows its video; check reads it all back.
        let scan = crate::archive::recover::scan_file(&a.segment_path(&s.file)).unwrap().unwrap();
        assert_eq!(index::decode_all(crate::archive::recover::index_from_scan(&scan).blob()).unwrap(), d);
        assert_eq!(crate::archive::recover::audio_start_from_scan(&scan), s.audio_start);
    }

    #[test]
    fn a_camera_clock_that_drifts_starts_a_new_run_within_the_bound() {
        let t = tmp("drift");
        let (a, mut w) = writer(&t, config(30));
        w.set_audio_entry(Some(AudioEntry { data: b"\0\0\0\x08mp4a".to_vec(), timescale: 48_000 })).unwrap();
        // The camera's clock runs 5 % fast: its media time gains 0.05 s a second on ours. Its
        // audio (AAC frames) is on the same clock.
        let mut next_audio = 0i64;
        for n in 0..(120 * 25) {
            let media = n * 3600;
            while next_audio * 90_000 / 48_000 < media + 3600 {
                w.push_audio(AudioFrame { media: next_audio, samples: 1024, data: vec![7; 200] }).unwrap();
                next_audio += 1024;
            }
            w.push(frame(media, BASE + media - media / 20, n % 25 == 0, vec![n as u8; 100])).unwrap();
        }
        let stats = w.end_run().unwrap();
        // Not an audio frame lost at the restarts (the last ones past the video's end aside).
        assert!(stats.audio_dropped <= 2, "{stats:?}");
        let segs = a.segments(w.video().id, None, None).unwrap();
        let runs: std::collections::BTreeSet<i64> = segs.iter().map(|s| s.run_id).collect();
        assert!(runs.len() >= 2, "a new run after the drift passed the bound: {segs:?}");
        // Every frame is dated within the bound (and a fragment's drift) of when it arrived.
        let mut k = 0i64;
        for s in &segs {
            for x in index::decode(&s.idx).unwrap() {
                let wall = s.start.0 + crate::time::rescale(x.media_off, s.media_dur, s.wall_dur);
                let arrived = BASE + k * 3600 - (k * 3600) / 20;
                assert!(
                    (wall - arrived).abs() <= MAX_DRIFT_90K + TICKS_PER_SEC / 10,
                    "frame {k} in {} off by {}",
                    s.file,
                    wall - arrived
                );
                k += 1;
            }
        }
        assert_eq!(k, 120 * 25);
        // The runs meet: no gap, no overlap.
        for w2 in segs.windows(2) {
            assert_eq!(w2[0].end(), w2[1].start, "{} then {}", w2[0].file, w2[1].file);
        }
    }

    #[test]
    fn a_keyframe_dated_by_a_stepped_clock_starts_a_new_run() {
        let t = tmp("step");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..50, 25, |_| 0);
        // The host's clock stepped forward by 3 days at frame 50 (a keyframe).
        let three_days = 3 * 86_400 * TICKS_PER_SEC;
        for n in 50..100 {
            let media = n * 3600;
            let f = Frame {
                media_90k: media,
                cts: 0,
                received: Time90k(BASE + media + three_days),
                key: n % 25 == 0,
                data: vec![1; 100],
                new_clock: n == 50,
            };
            w.push(f).unwrap();
        }
        let stats = w.end_run().unwrap();
        assert_eq!(stats.frames, 100, "no frame lost at the restart");
        let segs = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(segs.len(), 2);
        assert_ne!(segs[0].run_id, segs[1].run_id);
        assert_eq!((segs[0].start, segs[0].end()), (Time90k(BASE), Time90k(BASE + 50 * 3600)));
        assert_eq!(segs[1].start, Time90k(BASE + 50 * 3600 + three_days));
    }

    #[test]
    fn retention_by_age_trusts_the_boot_clock_over_a_stepped_wall_clock() {
        let t = tmp("boot-retention");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let cfg = VideoConfig { retention: Some(Duration90k::from_days(1)), ..config(30) };
        let mut w = VideoWriter::open(a.clone(), "cam", cfg).unwrap();
        w.begin_run().unwrap();
        w.set_sample_entry(entry(1)).unwrap();
        let now = Time90k::now().0;
        for n in 0..(31 * 25 + 1) {
            let media = n * 3600;
            let f = frame(media, now + media, n % 25 == 0, vec![1; 100]);
            w.push(f).unwrap();
        }
        w.end_run().unwrap();
        let v = w.video().clone();
        assert_eq!(a.segments(v.id, None, None).unwrap().len(), 2);
        // Three days later by a wall clock that stepped (the boot clock says: seconds later),
        // the video is fresh and kept.
        let later = Time90k(now + 3 * 86_400 * TICKS_PER_SEC);
        if crate::time::boot_clock().is_some() {
            assert_eq!(crate::archive::recover::apply_retention(&a, &v, later).unwrap(), 0);
        }
        // Runs without a boot id (older archives, other machines) age by the wall clock.
        a.conn().execute("UPDATE run SET boot_id = NULL", []).unwrap();
        assert_eq!(crate::archive::recover::apply_retention(&a, &v, later).unwrap(), 2);
    }

    #[test]
    fn second_writer_of_a_video_is_refused() {
        let t = tmp("lock");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let _w = VideoWriter::open(a.clone(), "cam", config(30)).unwrap();
        assert!(matches!(VideoWriter::open(a, "cam", config(30)), Err(ArchiveError::Locked(_))));
    }

    /// A crash leaves a segment open; the host's start closes it whether or not the video
    /// records again (so it plays as recorded and joins the remote backlog), and leaves a video
    /// a writer holds to that writer.
    #[test]
    fn a_host_start_closes_what_a_crash_left_open() {
        let t = tmp("interrupted");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..40 * 25, 25, |_| 0);
        w.end_run().unwrap();
        drop(w);
        // What a crash leaves: the last segment's row still open (its fragments committed, its
        // file holding them), not in the backlog yet.
        let vid = a.video("cam").unwrap().id;
        let last = a.segments(vid, None, None).unwrap().pop().unwrap();
        a.conn().execute("UPDATE segment SET open = 1 WHERE id = ?1", [last.id]).unwrap();
        a.conn().execute("DELETE FROM remote_backlog WHERE segment_id = ?1", [last.id]).unwrap();
        let backlog = a.remote_backlog().unwrap().segments;
        // A writer holds the video: left to it.
        let held = VideoWriter::open(a.clone(), "cam", config(30)).unwrap();
        // (Its own recovery closed the segment: open it again.)
        a.conn().execute("UPDATE segment SET open = 1 WHERE id = ?1", [last.id]).unwrap();
        a.conn().execute("DELETE FROM remote_backlog WHERE segment_id = ?1", [last.id]).unwrap();
        assert!(a.recover_interrupted().unwrap().is_empty());
        drop(held);
        // Nobody holds it: closed, with nothing lost, and in the backlog.
        let done = a.recover_interrupted().unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "cam");
        assert!(done[0].1.is_empty(), "{:?}", done[0].1);
        let now = a.segments(vid, None, None).unwrap().pop().unwrap();
        assert!(!now.open && now.id == last.id && now.frames == last.frames, "{now:?}");
        assert_eq!(a.remote_backlog().unwrap().segments, backlog + 1);
        // Nothing left to do the next time.
        assert!(a.recover_interrupted().unwrap().is_empty());
    }

    /// Each video chooses whether its closed segments go to the remote tier, and the host
    /// chooses for the videos that do not: the backlog follows every change at once, and a
    /// copy already made stays (under retention as before).
    #[test]
    fn videos_choose_their_remote_tier() {
        let t = tmp("remote-choice");
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        let record = |name: &str, frames: std::ops::Range<i64>| {
            let mut w = VideoWriter::open(a.clone(), name, config(30)).unwrap();
            w.begin_run().unwrap();
            w.set_sample_entry(entry(1)).unwrap();
            feed(&mut w, frames, 25, |_| 0);
            w.end_run().unwrap();
        };
        for name in ["cam", "door"] {
            record(name, 0..95 * 25);
        }
        let videos = |a: &Archive| {
            let mut v: Vec<String> = a.pending_uploads(100, &[]).unwrap().into_iter().map(|p| p.video).collect();
            v.sort();
            v.dedup();
            v
        };
        let segments = a.remote_backlog().unwrap().segments;
        assert_eq!((segments, videos(&a)), (8, vec!["cam".to_owned(), "door".to_owned()]), "all by default");
        // One video opts out: its segments leave the backlog, and new ones never join.
        let off = VideoUpdate { remote_tier: Some(Some(false)), ..Default::default() };
        let (v, changed) = a.update_video("door", &off).unwrap();
        assert!(changed && v.remote_tier == Some(false));
        assert_eq!(videos(&a), vec!["cam".to_owned()]);
        record("door", 200 * 25..240 * 25);
        assert_eq!(videos(&a), vec!["cam".to_owned()]);
        // A copy made of "cam" stays when the host stops copying by default; "cam"'s other
        // segments leave the backlog; "door" opted in comes back whole.
        let first = a.pending_uploads(1, &[]).unwrap().remove(0);
        assert!(a.record_upload(first.segment_id, "k", first.bytes, "sha").unwrap());
        a.set_remote_videos_all(false).unwrap();
        assert!(videos(&a).is_empty());
        let on = VideoUpdate { remote_tier: Some(Some(true)), ..Default::default() };
        a.update_video("door", &on).unwrap();
        assert_eq!(videos(&a), vec!["door".to_owned()]);
        assert_eq!(a.remote_backlog().unwrap().segments, 6, "door's four, then two more");
        // Back to the host's choice, and the host's choice back to all: "cam" comes back
        // without its copied segment.
        a.update_video("door", &VideoUpdate { remote_tier: Some(None), ..Default::default() }).unwrap();
        assert!(videos(&a).is_empty());
        a.set_remote_videos_all(true).unwrap();
        assert_eq!(a.remote_backlog().unwrap().segments, 8 - 1 + 2);
        assert!(a.pending_uploads(100, &[]).unwrap().iter().all(|p| p.segment_id != first.segment_id));
        assert_eq!(
            a.remote_key(&a.segments(a.video("cam").unwrap().id, None, None).unwrap()[0].file).unwrap().as_deref(),
            Some("k")
        );
    }

    /// What a power loss leaves, and what recovery makes of it: a segment file gone, a closed
    /// one shorter than its row, the open one shorter than its last committed row. The writer
    /// opens anyway (never `Corrupt`), the rows follow the files, each loss is reported with its
    /// seconds, and `check` is clean.
    #[test]
    fn power_loss_recovery_trusts_the_files() {
        let t = tmp("powerloss");
        let (a, mut w) = writer(&t, config(30));
        feed(&mut w, 0..75 * 25, 25, |_| 0);
        w.end_run().unwrap();
        let first_run = a.segments(w.video().id, None, None).unwrap()[0].run_id;
        drop(w);
        let segs = a.segments(a.video("cam").unwrap().id, None, None).unwrap();
        assert_eq!(segs.len(), 3);
        std::fs::remove_file(a.segment_path(&segs[0].file)).unwrap();
        let half = |s: &SegmentRow| {
            let f = OpenOptions::new().write(true).open(a.segment_path(&s.file)).unwrap();
            f.set_len((s.init_len + s.bytes) as u64 / 2).unwrap();
        };
        half(&segs[1]);
        half(&segs[2]);
        a.conn().execute("UPDATE segment SET open = 1 WHERE id = ?1", [segs[2].id]).unwrap();
        let mut w = VideoWriter::open(a.clone(), "cam", config(30)).expect("recording resumes");
        let losses = w.take_losses();
        assert_eq!(losses.len(), 3, "{losses:?}");
        assert_eq!((losses[0].file.as_str(), losses[0].seconds), (segs[0].file.as_str(), 30.0));
        for (l, s) in losses[1..].iter().zip(&segs[1..]) {
            assert!(l.file == s.file && l.seconds > 1.0 && l.seconds < s.media_dur as f64 / 90_000.0, "{l:?}");
        }
        let now = a.segments(w.video().id, None, None).unwrap();
        assert_eq!(now.len(), 2);
        for (n, s) in now.iter().zip(&segs[1..]) {
            assert!(!n.open && n.frames < s.frames && n.media_dur == n.frames * 3600, "{n:?}");
        }
        let rep = crate::archive::check::check(&t.0).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        // Run ids only grow, even after every run of the video is deleted with it.
        w.begin_run().unwrap();
        let second_run = w.run.as_ref().unwrap().id;
        assert!(second_run > first_run);
        w.end_run().unwrap();
        drop(w);
        a.delete_video("cam").unwrap();
        let mut w = VideoWriter::open(a.clone(), "cam", config(30)).unwrap();
        w.begin_run().unwrap();
        assert!(w.run.as_ref().unwrap().id > second_run, "a run id was reused");
    }
}
