//! Event-based recording on the host: a signal gate between the camera and its sinks.
//!
//! The recorder gives every frame to [`Gated`] (a [`MediaSink`], like a video writer). It keeps
//! a pre-roll ring of recent frames, takes triggers (a processor's inferences, hub messages)
//! from a channel, lets the gate decide on the frames' times (`pipeline/nodes/signal_gate.rs`,
//! `docs/evr.md`), and writes each opening as one clip: a run of the video sink's video, and
//! one MP4 of the file sink. A clip starts at the keyframe at or before the gate's start (from
//! the ring) and its events report that true start.
//!
//! Times: a frame's time on the gate's clock is its arrival time (`received`, the wall clock
//! the archive dates it by), the clock hub messages' `eventTime` and the processors' inferences
//! use too.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use serde_json::{Value, json};

use super::metrics::PipelineMetrics;
use super::nodes::file_sink::{self, FileSinkError};
use super::nodes::signal_gate::{Counted, Gate, GateEvent, Trigger};
use super::preroll::{Preroll, Timed};
use super::record::MediaSink;
use super::spool::Mp4Spool;
use crate::archive::ArchiveError;
use crate::archive::writer::{AudioEntry, AudioFrame, Frame, RunStats, SampleEntry, VideoWriter};
use crate::events::{Bus, EventType};
use crate::time::{Duration90k, Time90k};
use crate::topology::{FileSinkConfig, SignalGateConfig};

/// Triggers waiting for the gate (it takes them at each frame). Past this, new ones are
/// dropped: a flood of messages cannot grow memory.
pub(super) const TRIGGER_QUEUE: usize = 256;
/// Hard cap of a gate's pre-roll ring: a minute of 1080p at 4 Mb/s (30 MB) and its GOP fit;
/// a camera sending more keeps a shorter pre-roll, never more memory.
pub(super) const PREROLL_CAP: usize = 64 << 20;
/// Pre-roll kept beyond the offset and the evaluation window: triggers reach the gate a little
/// after the frame they are about (decoding, a message's travel).
const PREROLL_SLACK: Duration90k = Duration90k::from_secs(2);

/// Where a pipeline's triggers enter its gate. Cloned to each producer (the analysis thread,
/// the hub inputs); never blocks.
#[derive(Clone)]
pub(crate) struct TriggerTx(SyncSender<Trigger>, Arc<PipelineMetrics>);

impl TriggerTx {
    /// Hands a trigger to the gate; `false` if its queue is full (the trigger is dropped and
    /// counted).
    pub(crate) fn send(&self, t: Trigger) -> bool {
        match self.0.try_send(t) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.1.count_dropped_trigger();
                false
            }
            // The pipeline stopped: nobody to tell.
            Err(TrySendError::Disconnected(_)) => true,
        }
    }
}

/// A new trigger channel of a pipeline with `metrics`.
pub(super) fn trigger_channel(metrics: Arc<PipelineMetrics>) -> (TriggerTx, Receiver<Trigger>) {
    let (tx, rx) = sync_channel(TRIGGER_QUEUE);
    (TriggerTx(tx, metrics), rx)
}

/// A frame in the ring.
struct Held(Frame);

impl Timed for Held {
    fn time(&self) -> Time90k {
        self.0.received
    }
    fn is_key(&self) -> bool {
        self.0.key
    }
    fn bytes(&self) -> usize {
        self.0.data.len()
    }
}

/// The video sink behind the gate: each clip is a run of its video.
pub(super) struct VideoOut {
    pub(super) writer: VideoWriter,
    /// Its events' subject.
    pub(super) subject: String,
}

/// The file sink behind the gate.
pub(super) struct FileOut {
    pub(super) subject: String,
    /// Its directory on the host (inside the file sink root).
    pub(super) dir: PathBuf,
    pub(super) config: FileSinkConfig,
}

/// A clip's file while it is written.
struct FileClip {
    spool: Mp4Spool,
    tmp: PathBuf,
    name: String,
}

/// The clip of the current opening.
struct Clip {
    correlation: String,
    /// The first frame written (a keyframe): the true start. `None` until one came.
    start: Option<Time90k>,
    /// The last frame written (its decode time and time) and the step before it.
    last: Option<(i64, Time90k)>,
    step: i64,
    video_available: bool,
    file: Option<FileClip>,
    /// The file sink still takes this clip (false after a failure or its size cap).
    file_open: bool,
}

/// A gate and the sinks behind it, fed by the recorder.
pub(super) struct Gated {
    node: String,
    gate: Gate,
    ring: Preroll<Held>,
    triggers: Receiver<Trigger>,
    video: Option<VideoOut>,
    file: Option<FileOut>,
    entry: Option<SampleEntry>,
    clip: Option<Clip>,
    events: Arc<Bus>,
    metrics: Arc<PipelineMetrics>,
    /// The newest frame's time.
    last: Option<Time90k>,
    stored: u64,
    /// What the video sink's runs stored this session.
    carried: RunStats,
    /// Files being finished (written, synced, renamed) off the recording thread.
    /// One thread per sink, in clip order: a clip's cap never deletes a newer clip's file.
    finisher: Option<(std::sync::mpsc::Sender<Finish>, std::thread::JoinHandle<()>)>,
}

/// What a gated pipeline's thread needs besides its video writer.
pub(super) struct GatedParts {
    /// The gate's node.
    pub(super) node: String,
    pub(super) config: SignalGateConfig,
    pub(super) triggers: Receiver<Trigger>,
    pub(super) file: Option<FileOut>,
    /// The video sink's subject, when it is behind the gate.
    pub(super) video_subject: Option<String>,
    pub(super) events: Arc<Bus>,
    pub(super) metrics: Arc<PipelineMetrics>,
}

impl GatedParts {
    /// The gate with its sinks (`writer`: the video sink's, opened).
    pub(super) fn build(self, writer: Option<VideoWriter>) -> Gated {
        let video = match (writer, self.video_subject) {
            (Some(writer), Some(subject)) => Some(VideoOut { writer, subject }),
            _ => None,
        };
        Gated::new(self.node, self.config, self.triggers, video, self.file, self.events, self.metrics)
    }
}

impl Gated {
    pub(super) fn new(
        node: String,
        config: SignalGateConfig,
        triggers: Receiver<Trigger>,
        video: Option<VideoOut>,
        file: Option<FileOut>,
        events: Arc<Bus>,
        metrics: Arc<PipelineMetrics>,
    ) -> Self {
        let back = Duration90k((-config.signal_offset.0).max(0));
        let keep = back + config.evaluation_window + PREROLL_SLACK;
        Gated {
            node,
            gate: Gate::new(config),
            ring: Preroll::new(keep, PREROLL_CAP),
            triggers,
            video,
            file,
            entry: None,
            clip: None,
            events,
            metrics,
            last: None,
            stored: 0,
            carried: RunStats::default(),
            finisher: None,
        }
    }

    /// Late arrivals dropped so far.
    #[cfg(test)]
    pub(super) fn late(&self) -> u64 {
        self.gate.late
    }

    /// Bytes of media the pre-roll ring holds.
    #[cfg(test)]
    pub(super) fn preroll_bytes(&self) -> usize {
        self.ring.bytes()
    }

    /// A frame from the camera, with the wall clock now.
    fn push_at(&mut self, f: Frame, now: Time90k) -> Result<(), ArchiveError> {
        let t = f.received;
        while let Ok(tr) = self.triggers.try_recv() {
            self.step(self.last.unwrap_or(t), tr.arrival)?;
            if self.gate.trigger(tr) == Counted::Late {
                self.metrics.count_late_trigger();
                tracing::debug!(gate = self.node, late = self.gate.late, "a late trigger was dropped");
            }
        }
        // The frame joins the ring first: a gate opening now may start the clip with it.
        self.ring.push(Held(f));
        self.metrics.set_preroll_bytes(self.ring.bytes());
        self.last = Some(t);
        let opened = self.step(t, now)?;
        if self.clip.is_some() && !opened {
            // The clip was open before this frame and still is.
            let ring = self.take_ring();
            let r = ring.newest().map_or(Ok(()), |h| self.write(&h.0));
            self.ring = ring;
            r?;
        }
        Ok(())
    }

    /// The ring, taken out so its frames can be written while `self` is borrowed mutably
    /// (put it back after).
    fn take_ring(&mut self) -> Preroll<Held> {
        std::mem::replace(&mut self.ring, Preroll::new(Duration90k::ZERO, 0))
    }

    /// Lets the gate decide at media time `media` and wall time `wall`, and acts on it.
    /// Returns whether a clip opened (it already holds the newest frame).
    fn step(&mut self, media: Time90k, wall: Time90k) -> Result<bool, ArchiveError> {
        self.gate.advance(media, wall);
        let mut opened = false;
        for e in self.gate.take_events() {
            match e {
                GateEvent::Opened { start, correlation } => {
                    self.open_clip(start, correlation)?;
                    opened = true;
                }
                GateEvent::Closed { .. } => {
                    self.close_clip()?;
                    opened = false;
                }
            }
        }
        Ok(opened)
    }

    /// The gate opened at `start`: the clip begins with the ring's frames from the keyframe
    /// at or before it.
    fn open_clip(&mut self, start: Time90k, correlation: String) -> Result<(), ArchiveError> {
        self.close_clip()?;
        self.clip = Some(Clip {
            correlation,
            start: None,
            last: None,
            step: 0,
            video_available: false,
            file: None,
            file_open: self.file.is_some(),
        });
        let ring = self.take_ring();
        let mut result = Ok(());
        for h in ring.from(start) {
            result = self.write(&h.0);
            if result.is_err() {
                break;
            }
        }
        self.ring = ring;
        result
    }

    /// Writes a frame of the open clip to each sink. The clip starts at its first keyframe.
    fn write(&mut self, f: &Frame) -> Result<(), ArchiveError> {
        let Some(clip) = self.clip.as_mut() else { return Ok(()) };
        if clip.start.is_none() {
            if !f.key {
                return Ok(());
            }
            clip.start = Some(f.received);
            let correlation = clip.correlation.clone();
            self.begin_clip(f.received, &correlation)?;
        }
        let Some(clip) = self.clip.as_mut() else { return Ok(()) };
        if let Some((media, _)) = clip.last {
            clip.step = f.media_90k - media;
        }
        clip.last = Some((f.media_90k, f.received));
        if let Some(v) = self.video.as_mut() {
            v.writer.push(f.clone())?;
            if !clip.video_available && v.writer.media_available() {
                clip.video_available = true;
                let body = video_body(&v.writer, clip.start, None);
                self.events.publish_correlated(
                    v.subject.clone(),
                    EventType::RecordingAvailable,
                    body,
                    Some(clip.correlation.clone()),
                );
            }
        }
        if let (Some(out), Some(fc)) = (self.file.as_ref(), clip.file.as_mut())
            && clip.file_open
        {
            let full = fc.spool.bytes() + f.data.len() as u64 > out.config.max_bytes;
            if full && f.key {
                // One clip never outgrows the sink's whole allowance: the file ends here.
                tracing::warn!(file = fc.name, "the clip reached the file sink's maximumSizeMiB; its file ends here");
                clip.file_open = false;
            } else if let Err(e) = fc.spool.push(&f.data, f.key, f.cts, f.media_90k) {
                self.events.publish(out.subject.clone(), EventType::StorageError, json!({"message": e.to_string()}));
                clip.file_open = false;
                clip.file = None;
            }
        }
        self.stored += 1;
        Ok(())
    }

    /// The clip's first keyframe: each sink starts (a run of the video, a new file).
    fn begin_clip(&mut self, start: Time90k, correlation: &str) -> Result<(), ArchiveError> {
        if let Some(v) = self.video.as_mut() {
            v.writer.begin_run()?;
            if let Some(e) = &self.entry {
                v.writer.set_sample_entry(e.clone())?;
            }
            let body = video_body(&v.writer, Some(start), None);
            self.events.publish_correlated(
                v.subject.clone(),
                EventType::RecordingStarted,
                body,
                Some(correlation.to_owned()),
            );
        }
        let (Some(out), Some(entry)) = (self.file.as_ref(), self.entry.as_ref()) else { return Ok(()) };
        let name = file_sink::unused_name(&out.dir, &out.config.file_name(start.to_jiff()));
        let tmp = out.dir.join(file_sink::temp_name(&name));
        match Mp4Spool::new(&tmp) {
            Ok(mut spool) => {
                spool.set_entry(entry.data.clone(), entry.width, entry.height);
                let path = out.dir.join(&name);
                self.events.publish_correlated(
                    out.subject.clone(),
                    EventType::RecordingStarted,
                    file_body(&path, Some(start), None),
                    Some(correlation.to_owned()),
                );
                if let Some(c) = self.clip.as_mut() {
                    c.file = Some(FileClip { spool, tmp, name });
                }
            }
            Err(e) => {
                self.events.publish(out.subject.clone(), EventType::StorageError, json!({"message": e.to_string()}));
                if let Some(c) = self.clip.as_mut() {
                    c.file_open = false;
                }
            }
        }
        Ok(())
    }

    /// Ends the open clip, if any: the video's run ends, the file is finished and appears.
    fn close_clip(&mut self) -> Result<(), ArchiveError> {
        let Some(clip) = self.clip.take() else { return Ok(()) };
        let Some(start) = clip.start else { return Ok(()) };
        let end = clip.last.map(|(_, t)| t + Duration90k(clip.step.max(0)));
        if let Some(v) = self.video.as_mut() {
            let stats = v.writer.end_run()?;
            self.carried.add(&stats);
            let body = video_body(&v.writer, Some(start), end);
            let correlation = Some(clip.correlation.clone());
            if !clip.video_available {
                self.events.publish_correlated(
                    v.subject.clone(),
                    EventType::RecordingAvailable,
                    body.clone(),
                    correlation.clone(),
                );
            }
            self.events.publish_correlated(v.subject.clone(), EventType::RecordingStopped, body, correlation);
        }
        if let (Some(out), Some(mut fc)) = (self.file.as_ref(), clip.file) {
            if let Some((media, _)) = clip.last {
                fc.spool.end_range(media + clip.step.max(1));
            }
            let job = Finish {
                file: fc,
                dir: out.dir.clone(),
                subject: out.subject.clone(),
                config: out.config.clone(),
                events: self.events.clone(),
                correlation: clip.correlation,
                start,
                end,
            };
            self.finish(job);
        }
        Ok(())
    }
}

impl Gated {
    /// Hands a clip's file to the sink's finishing thread (started with the first clip).
    fn finish(&mut self, job: Finish) {
        if self.finisher.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<Finish>();
            match std::thread::Builder::new()
                .name("file-sink".into())
                .spawn(move || rx.into_iter().for_each(Finish::run))
            {
                Ok(h) => self.finisher = Some((tx, h)),
                Err(e) => {
                    tracing::error!("cannot start the thread that finishes clip files, finishing here: {e}");
                    job.run();
                    return;
                }
            }
        }
        if let Some((tx, _)) = &self.finisher
            && let Err(std::sync::mpsc::SendError(job)) = tx.send(job)
        {
            job.run();
        }
    }
}

/// A clip's file to finish: written out, synced, renamed into place, the sink kept under its
/// cap, and the events.
struct Finish {
    file: FileClip,
    dir: PathBuf,
    subject: String,
    config: FileSinkConfig,
    events: Arc<Bus>,
    correlation: String,
    start: Time90k,
    end: Option<Time90k>,
}

impl Finish {
    fn run(self) {
        let FileClip { spool, tmp, name } = self.file;
        let done = spool.finish(&tmp).map_err(|e| e.to_string()).and_then(|_| {
            let path = file_sink::publish(&self.dir, &tmp, &name).map_err(|e| e.to_string())?;
            let prefix = file_sink::prefix(&self.config.file_name_pattern);
            file_sink::make_room(&self.dir, prefix, self.config.max_bytes, 0, Some(&name))
                .map_err(|e: FileSinkError| e.to_string())?;
            Ok(path)
        });
        match done {
            Ok(path) => {
                let body = file_body(&path, Some(self.start), self.end);
                let c = Some(self.correlation);
                self.events.publish_correlated(
                    self.subject.clone(),
                    EventType::RecordingStopped,
                    body.clone(),
                    c.clone(),
                );
                self.events.publish_correlated(self.subject, EventType::RecordingAvailable, body, c);
            }
            Err(message) => {
                let _ = std::fs::remove_file(&tmp);
                self.events.publish(self.subject, EventType::StorageError, json!({"message": message}));
            }
        }
    }
}

/// The body of a video sink's clip events: AVA's `outputType`/`outputLocation`, and (openva)
/// the clip's true start and its end.
fn video_body(w: &VideoWriter, start: Option<Time90k>, end: Option<Time90k>) -> Value {
    with_times(json!({"outputType": "videoName", "outputLocation": w.video().name}), start, end)
}

fn file_body(path: &std::path::Path, start: Option<Time90k>, end: Option<Time90k>) -> Value {
    with_times(json!({"outputType": "filePath", "outputLocation": path.to_string_lossy()}), start, end)
}

fn with_times(mut body: Value, start: Option<Time90k>, end: Option<Time90k>) -> Value {
    if let Some(o) = body.as_object_mut() {
        if let Some(s) = start {
            o.insert("startTime".into(), s.to_iso_millis().into());
        }
        if let Some(e) = end {
            o.insert("endTime".into(), e.to_iso_millis().into());
        }
    }
    body
}

impl MediaSink for Gated {
    fn name(&self) -> &str {
        &self.node
    }

    fn begin_run(&mut self) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn set_sample_entry(&mut self, entry: SampleEntry) -> Result<(), ArchiveError> {
        if self.entry.as_ref() == Some(&entry) {
            return Ok(());
        }
        // Frames before the change cannot start a clip with the new configuration.
        self.ring.clear();
        if let Some(clip) = self.clip.as_mut()
            && clip.file.is_some()
        {
            // An MP4 track has one configuration: the file ends; the video goes on.
            clip.file_open = false;
        }
        if let (Some(v), Some(clip)) = (self.video.as_mut(), self.clip.as_ref())
            && clip.start.is_some()
        {
            v.writer.set_sample_entry(entry.clone())?;
        }
        self.entry = Some(entry);
        Ok(())
    }

    /// Clips hold video only: the corpus's gates select video, as AVA's file sink did.
    fn set_audio_entry(&mut self, _entry: Option<AudioEntry>) -> Result<(), ArchiveError> {
        Ok(())
    }

    fn push(&mut self, frame: Frame) -> Result<(), ArchiveError> {
        self.push_at(frame, Time90k::now())
    }

    fn push_audio(&mut self, _frame: AudioFrame) -> Result<(), ArchiveError> {
        Ok(())
    }

    /// The camera session ended: an open clip ends with its last frame; the ring starts over
    /// with the next session (its timeline is new).
    fn end_run(&mut self) -> Result<RunStats, ArchiveError> {
        if let Some(last) = self.last {
            // Any decision is taken as it comes (`step`): only the cut's closing is new.
            self.gate.cut(last);
            self.gate.take_events();
        }
        self.close_clip()?;
        self.ring.clear();
        Ok(std::mem::take(&mut self.carried))
    }

    fn media_available(&self) -> bool {
        false
    }

    fn stored(&self) -> (u64, u64) {
        (self.stored, 0)
    }
}

impl Drop for Gated {
    /// Files still being finished complete before the pipeline counts as stopped.
    fn drop(&mut self) {
        if let Some(clip) = self.clip.as_ref()
            && clip.start.is_some()
        {
            let _ = self.close_clip();
        }
        if let Some((tx, thread)) = self.finisher.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Archive, VideoConfig};
    use crate::time::TICKS_PER_SEC;

    /// 2023-11-14T22:13:20Z.
    const BASE: i64 = 1_700_000_000 * TICKS_PER_SEC;
    const FRAME: i64 = 3600; // 25 fps

    fn secs(s: f64) -> Time90k {
        Time90k(BASE + (s * TICKS_PER_SEC as f64).round() as i64)
    }

    fn entry() -> SampleEntry {
        let mut data = Vec::new();
        crate::mp4::put_box(&mut data, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        SampleEntry { data, width: 640, height: 360 }
    }

    /// A 25 fps frame `i` with a keyframe every second.
    fn frame(i: i64) -> Frame {
        Frame {
            media_90k: i * FRAME,
            cts: 0,
            received: Time90k(BASE + i * FRAME),
            key: i % 25 == 0,
            data: vec![(i % 251) as u8; 1000],
            new_clock: false,
        }
    }

    struct Setup {
        _t: crate::archive::test_dir::Tmp,
        gated: Gated,
        tx: TriggerTx,
        bus: Arc<Bus>,
        archive: Arc<Archive>,
        dir: PathBuf,
    }

    fn setup(name: &str, offset_s: i64, max_bytes: u64) -> Setup {
        let t = crate::archive::test_dir::tmp("gated", name);
        let archive = Arc::new(Archive::open_or_create(&t.0.join("data")).unwrap());
        let writer = VideoWriter::open(archive.clone(), "clips", VideoConfig::default()).unwrap();
        let dir = file_sink::directory(&t.0.join("root"), "/var/media").unwrap();
        let bus = Arc::new(Bus::new("/test"));
        let metrics = Arc::new(PipelineMetrics::default());
        let (tx, rx) = trigger_channel(metrics.clone());
        let config = SignalGateConfig {
            evaluation_window: Duration90k::ZERO,
            signal_offset: Duration90k::from_secs(offset_s),
            minimum_activation: Duration90k::from_secs(3),
            maximum_activation: Duration90k::from_secs(3),
        };
        let file = FileOut {
            subject: "/livePipelines/p/sinks/fileSink".into(),
            dir: dir.clone(),
            config: FileSinkConfig {
                base_directory: "/var/media".into(),
                file_name_pattern: "clip-${System.Runtime.PreciseDateTime}".into(),
                max_bytes,
            },
        };
        let video = VideoOut { writer, subject: "/livePipelines/p/sinks/videoSink".into() };
        let mut gated = Gated::new("gate".into(), config, rx, Some(video), Some(file), bus.clone(), metrics);
        gated.begin_run().unwrap();
        gated.set_sample_entry(entry()).unwrap();
        Setup { _t: t, gated, tx, bus, archive, dir }
    }

    /// Plays frames `0..n`, sending each trigger `(media s, frame index at which it arrives)`.
    fn play(s: &mut Setup, n: i64, triggers: &[(f64, i64, &str)]) {
        for i in 0..n {
            for (media, at, id) in triggers {
                if *at == i {
                    let arrival = Time90k(BASE + i * FRAME);
                    assert!(s.tx.send(Trigger { media: secs(*media), arrival, id: (*id).into() }));
                }
            }
            let now = Time90k(BASE + i * FRAME);
            s.gated.push_at(frame(i), now).unwrap();
        }
    }

    fn clips(dir: &std::path::Path) -> Vec<(String, Vec<crate::mp4::read::TrackSample>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
            .map(|p| {
                let mut f = std::fs::File::open(&p).unwrap();
                let len = f.metadata().unwrap().len();
                let tracks = crate::mp4::read::tracks(&mut f, len).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), tracks[0].samples.clone())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A trigger at 10 s with a −2 s offset and 3 s of activation: the clip runs from the
    /// keyframe at 8 s to 11 s, in a file named by its true start and in a run of the video,
    /// and every event of the opening carries the trigger's id.
    #[test]
    fn a_trigger_makes_one_clip_with_pre_roll() {
        let mut s = setup("one", -2, 100 << 20);
        play(&mut s, 20 * 25, &[(10.0, 250, "trigger-1")]);
        s.gated.end_run().unwrap();
        drop(s.gated);
        let files = clips(&s.dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].0, "clip-20231114T221328.000Z.mp4");
        let samples = &files[0].1;
        // From 8 s to the trigger plus the minimum activation, 13 s, inclusive.
        assert_eq!(samples.len(), 5 * 25 + 1);
        assert!(samples[0].key);
        assert!(samples.iter().all(|x| x.size == 1000));
        let ranges = s.archive.recorded_ranges("clips", None, None).unwrap();
        assert_eq!(ranges.len(), 1, "{ranges:?}");
        assert_eq!(ranges[0].0, secs(8.0));
        let (events, _) = s.bus.subscribe(Some(0));
        let mine: Vec<_> = events.iter().filter(|e| e.subject.contains("/sinks/")).collect();
        let kinds: Vec<_> = mine.iter().map(|e| format!("{:?} {}", e.event_type, e.subject)).collect();
        assert_eq!(mine.len(), 6, "{kinds:?}");
        assert!(mine.iter().all(|e| e.correlation_id.as_deref() == Some("trigger-1")), "{kinds:?}");
        let started = mine.iter().find(|e| e.subject.ends_with("fileSink")).unwrap();
        assert_eq!(started.body["startTime"], "2023-11-14T22:13:28.000Z");
        assert!(started.body["outputLocation"].as_str().unwrap().ends_with("/var/media/clip-20231114T221328.000Z.mp4"));
    }

    /// Two openings make two files; the cap deletes the older one; a trigger from before the
    /// opening's earliest one is a late arrival.
    #[test]
    fn the_size_cap_keeps_the_newest_clip() {
        // A clip of 4 s is about 100 kB: a cap of 150 kB holds one.
        let mut s = setup("cap", 0, 150_000);
        play(&mut s, 30 * 25, &[(5.0, 125, "a"), (4.0, 130, "late"), (20.0, 500, "b")]);
        s.gated.end_run().unwrap();
        assert_eq!(s.gated.late(), 1);
        drop(s.gated);
        let files = clips(&s.dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].0.starts_with("clip-20231114T221340"), "{files:?}");
    }

    /// One clip never outgrows the sink's allowance: its file ends at the keyframe that would
    /// pass it, and the video keeps the whole clip.
    #[test]
    fn a_clip_larger_than_the_cap_is_cut_at_a_keyframe() {
        // 6 s of 25 kB a second (keyframe every second) into a 50 kB sink.
        let mut s = setup("cut", 0, 50_000);
        play(&mut s, 20 * 25, &[(10.0, 250, "big")]);
        s.gated.end_run().unwrap();
        drop(s.gated);
        let files = clips(&s.dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(files[0].1.len(), 50, "two whole GOPs");
        let ranges = s.archive.recorded_ranges("clips", None, None).unwrap();
        assert!(ranges[0].1.0 - ranges[0].0.0 >= 3 * 90_000, "the video has the whole 3 s: {ranges:?}");
    }

    /// A minute of pre-roll of 1080p at 4 Mb/s (25 fps, a keyframe every 2 s) is held whole:
    /// about 31 MB, under the ring's hard cap.
    #[test]
    fn a_minute_of_pre_roll_fits_the_cap() {
        let mut s = setup("memory", -60, 100 << 20);
        for i in 0..120 * 25 {
            let mut f = frame(i);
            f.key = i % 50 == 0;
            f.data = vec![0; 20_000];
            s.gated.push_at(f, Time90k(BASE + i * FRAME)).unwrap();
        }
        let held = s.gated.preroll_bytes();
        assert!((60 * 25 * 20_000..=PREROLL_CAP).contains(&held), "{held}");
    }
}
