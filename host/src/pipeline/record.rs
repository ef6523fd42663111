//! Records one camera into one archive video until told to stop.
//!
//! A run is one RTSP session; when the camera drops, the run ends (its last frame is written)
//! and the recorder reconnects with capped exponential backoff, so the outage shows up as a gap
//! between two runs. The first connection must succeed: a wrong URL or credentials is reported
//! at once rather than retried forever.

use crate::archive::writer::{AudioEntry, AudioFrame, Frame, RunStats, SampleEntry, VideoWriter};
use crate::archive::{Archive, ArchiveError, VideoConfig};
use crate::codec::audio::{G711, G711ToFlac};
use crate::ingest::rtsp::{AccessUnit, AudioCodec, AudioParams, IngestError, Media, Source, SourceOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// First reconnection delay. Every second without a connection is a second not recorded, and
/// a refused connection costs the camera nothing, so retries start fast.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest reconnection delay: a camera that comes back is recorded again within ~0.5 s.
pub const BACKOFF_CAP: Duration = Duration::from_millis(500);
/// Longest delay between attempts while a camera keeps refusing us (bad credentials, wrong
/// path): a live pipeline retries for as long as it is active, but not so often that it
/// hammers the camera or floods the events.
pub const BACKOFF_CAP_REFUSED: Duration = Duration::from_secs(5);

/// What the recorder reports while it runs. The live-pipeline runtime turns these into AVA
/// events and metrics; the `record` command ignores them. Called on the recording task: keep
/// them quick and never blocking.
pub trait Observer: Send + Sync {
    /// A session is playing; `sdp` is the camera's session description.
    fn connected(&self, _sdp: &str) {}
    /// Connecting failed (the recorder will retry unless the policy says otherwise).
    fn connect_failed(&self, _error: &IngestError) {}
    /// A playing session ended abnormally.
    fn dropped(&self, _why: &str) {}
    /// A frame arrived (before it is written). Observers that analyse video take it here.
    fn frame(&self, _au: &AccessUnit) {}
    /// The camera offers audio that is not recorded (`what`: its codec); video is recorded.
    fn audio_skipped(&self, _what: &str) {}
    /// Frames were written to the archive (`video` and `audio` more than before).
    fn stored(&self, _video: u64, _audio: u64) {}
    /// The first media of this recording is committed to the index (playable).
    fn available(&self) {}
    /// A run (session) ended and its last frames are stored.
    fn run_ended(&self, _stats: &RunStats) {}
}

/// Where a recording's frames go: a video of the archive ([`VideoWriter`]), or a signal gate
/// that lets clips of the stream into its sinks (`pipeline::gated`). The recorder drives runs
/// (one per camera session) the same way for both.
pub trait MediaSink: Send {
    /// What it records into, for logs.
    fn name(&self) -> &str;
    /// A camera session starts.
    fn begin_run(&mut self) -> Result<(), ArchiveError>;
    /// The codec configuration of the frames that follow.
    fn set_sample_entry(&mut self, entry: SampleEntry) -> Result<(), ArchiveError>;
    /// The audio track of the frames that follow (`None`: no audio).
    fn set_audio_entry(&mut self, entry: Option<AudioEntry>) -> Result<(), ArchiveError>;
    /// A video frame, in decode order.
    fn push(&mut self, frame: Frame) -> Result<(), ArchiveError>;
    /// An audio frame.
    fn push_audio(&mut self, frame: AudioFrame) -> Result<(), ArchiveError>;
    /// The session ended: what it stored.
    fn end_run(&mut self) -> Result<RunStats, ArchiveError>;
    /// The first media of this recording is playable (the observer is told once).
    fn media_available(&self) -> bool;
    /// Video and audio frames stored so far.
    fn stored(&self) -> (u64, u64);
}

impl MediaSink for VideoWriter {
    fn name(&self) -> &str {
        &self.video().name
    }
    fn begin_run(&mut self) -> Result<(), ArchiveError> {
        VideoWriter::begin_run(self)
    }
    fn set_sample_entry(&mut self, entry: SampleEntry) -> Result<(), ArchiveError> {
        VideoWriter::set_sample_entry(self, entry)
    }
    fn set_audio_entry(&mut self, entry: Option<AudioEntry>) -> Result<(), ArchiveError> {
        VideoWriter::set_audio_entry(self, entry)
    }
    fn push(&mut self, frame: Frame) -> Result<(), ArchiveError> {
        VideoWriter::push(self, frame)
    }
    fn push_audio(&mut self, frame: AudioFrame) -> Result<(), ArchiveError> {
        VideoWriter::push_audio(self, frame)
    }
    fn end_run(&mut self) -> Result<RunStats, ArchiveError> {
        VideoWriter::end_run(self)
    }
    fn media_available(&self) -> bool {
        VideoWriter::media_available(self)
    }
    fn stored(&self) -> (u64, u64) {
        VideoWriter::stored(self)
    }
}

/// An observer that ignores everything.
pub struct Silent;
impl Observer for Silent {}

/// How the recorder treats a camera that never worked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The first connection must succeed; a wrong URL or credentials ends recording at once
    /// (the `record` command: the operator is watching and wants the error).
    FailFast,
    /// Retry for as long as recording is wanted (a live pipeline: AVA keeps an active
    /// pipeline retrying while the camera is offline).
    RetryForever,
}

/// Why recording stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The camera could not be used.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The archive could not be written (disk full, unwritable, locked…).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Totals of a recording session: its runs' counts (every video frame received is stored, or
/// counted as skipped before the first keyframe of a session, which nothing could decode), the
/// sessions and the reconnections.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordSummary {
    /// RTSP sessions (runs) recorded.
    pub runs: u64,
    /// Reconnections after the camera dropped.
    pub reconnects: u64,
    /// Frames received, stored and not stored, and segments written.
    #[serde(flatten)]
    pub stats: RunStats,
}

impl RecordSummary {
    /// Adds another recording's totals (several cameras).
    pub fn merge(&mut self, o: &RecordSummary) {
        self.runs += o.runs;
        self.reconnects += o.reconnects;
        self.stats.add(&o.stats);
    }
}

/// Records until `stop` turns true. Returns an error for a camera that never worked or an
/// archive that cannot be written; camera drops after the first success are retried.
pub async fn record(
    archive: Arc<Archive>,
    video: &str,
    config: VideoConfig,
    source: SourceOptions,
    stop: watch::Receiver<bool>,
) -> Result<RecordSummary, RecordError> {
    let mut writer = VideoWriter::open(archive, video, config)?;
    record_with(Some(&mut writer as &mut (dyn MediaSink + 'static)), source, stop, Policy::FailFast, &Silent).await
}

/// Records into an open writer until `stop` turns true, reporting to `observer`. With
/// [`Policy::RetryForever`] only the archive can end it with an error; the writer (and with it
/// the video's lock) stays with the caller, who may try again.
pub async fn record_with(
    mut writer: Option<&mut (dyn MediaSink + 'static)>,
    source: SourceOptions,
    mut stop: watch::Receiver<bool>,
    policy: Policy,
    observer: &dyn Observer,
) -> Result<RecordSummary, RecordError> {
    let video = writer.as_ref().map(|w| w.name().to_owned()).unwrap_or_default();
    let video = video.as_str();
    let mut summary = RecordSummary::default();
    // Frames of the writer already reported to the observer as stored.
    let mut reported = writer.as_ref().map_or((0, 0), |w| w.stored());
    let mut backoff = BACKOFF_FIRST;
    let mut ever_connected = false;
    while !*stop.borrow() {
        let connected = tokio::select! {
            r = Source::connect(&source) => r,
            _ = stop.changed() => break,
        };
        // Why the camera is gone this time; every path below it retries the same way.
        let mut refused = false;
        let why = match connected {
            Err(e) => {
                observer.connect_failed(&e);
                if policy == Policy::FailFast && (!ever_connected || e.is_permanent()) {
                    return Err(e.into());
                }
                // A refusing or never-seen camera: back off further than after a drop.
                refused = e.is_permanent() || !ever_connected;
                e.to_string()
            }
            Ok(mut src) => {
                observer.connected(src.sdp());
                if ever_connected {
                    tracing::info!(url = src.url(), "camera back");
                } else {
                    tracing::info!(url = src.url(), video, "recording");
                }
                ever_connected = true;
                backoff = BACKOFF_FIRST;
                summary.runs += 1;
                let ended = record_run(writer.as_deref_mut(), &mut src, &mut stop, observer, &mut reported).await;
                // Close the run (keeping what was written) even if the archive failed; report
                // the failure that stopped recording first.
                let closed = writer.as_deref_mut().map(|w| w.end_run()).transpose();
                if let Some(w) = writer.as_deref() {
                    report_stored(w, observer, &mut reported);
                }
                let ended = ended?;
                if let Some(stats) = closed? {
                    observer.run_ended(&stats);
                    summary.stats.add(&stats);
                }
                if writer.as_ref().is_some_and(|w| w.media_available()) {
                    observer.available();
                }
                match ended {
                    Some(why) => {
                        observer.dropped(&why);
                        why
                    }
                    None => break,
                }
            }
        };
        tracing::warn!("{why}; reconnecting in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        let cap = if refused { BACKOFF_CAP_REFUSED } else { BACKOFF_CAP };
        backoff = (backoff * 2).min(cap);
        summary.reconnects += 1;
    }
    if let Some(w) = writer {
        let stats = w.end_run()?;
        summary.stats.add(&stats);
    }
    Ok(summary)
}

/// How the recorder stores the camera's audio: as sent (AAC), or converted losslessly to FLAC
/// (G.711, which MP4 players cannot play; see `codec::audio`).
enum AudioPath {
    AsSent,
    Flac(Box<G711ToFlac>),
}

impl AudioPath {
    /// The archive's audio track for `p`, and how to get frames into it.
    fn new(p: &AudioParams) -> Option<(AudioEntry, AudioPath)> {
        let law = match &p.codec {
            AudioCodec::Aac { sample_entry } => {
                return Some((AudioEntry { data: sample_entry.clone(), timescale: p.rate }, AudioPath::AsSent));
            }
            AudioCodec::Pcmu => G711::MuLaw,
            AudioCodec::Pcma => G711::ALaw,
        };
        match G711ToFlac::new(law, p.rate, p.channels) {
            Ok(c) => Some((AudioEntry { data: c.sample_entry(), timescale: p.rate }, AudioPath::Flac(Box::new(c)))),
            Err(e) => {
                tracing::warn!("audio {} not recorded: {e}", p.name);
                None
            }
        }
    }
}

/// Tells the observer how many frames the writer stored since `reported`.
fn report_stored(writer: &dyn MediaSink, observer: &dyn Observer, reported: &mut (u64, u64)) {
    let now = writer.stored();
    if now != *reported {
        observer.stored(now.0.saturating_sub(reported.0), now.1.saturating_sub(reported.1));
        *reported = now;
    }
}

/// Feeds one session's frames to the writer. `Ok(None)`: told to stop; `Ok(Some(why))`: the
/// camera went away; `Err`: the archive failed (the caller still ends the run, keeping what
/// was written).
async fn record_run(
    mut writer: Option<&mut (dyn MediaSink + 'static)>,
    src: &mut Source,
    stop: &mut watch::Receiver<bool>,
    observer: &dyn Observer,
    reported: &mut (u64, u64),
) -> Result<Option<String>, RecordError> {
    let mut audio = src.audio().and_then(AudioPath::new);
    if let Some(what) = src.unsupported_audio() {
        observer.audio_skipped(what);
    }
    if let Some(w) = writer.as_deref_mut() {
        w.begin_run()?;
        w.set_audio_entry(audio.as_ref().map(|(e, _)| e.clone()))?;
    }
    let mut told_available = false;
    // Why the session failed, while what the source still held is written.
    let mut pending_why: Option<String> = None;
    let mut finishing: Option<std::vec::IntoIter<Media>> = None;
    let ended = loop {
        let next = match finishing.as_mut() {
            // Stopping or the camera gone: what the source still holds, then the end.
            Some(rest) => match rest.next() {
                Some(m) => Ok(Some(m)),
                None => break None,
            },
            None => tokio::select! {
                n = src.next() => n,
                _ = stop.changed() => {
                    finishing = Some(src.finish().into_iter());
                    continue;
                }
            },
        };
        match next {
            Ok(Some(Media::Video(au))) => {
                observer.frame(&au);
                let Some(writer) = writer.as_deref_mut() else { continue };
                if let Some(p) = au.params {
                    writer.set_sample_entry(SampleEntry { data: p.sample_entry, width: p.width, height: p.height })?;
                }
                writer.push(Frame {
                    media_90k: au.media_90k,
                    cts: au.cts,
                    received: au.received,
                    key: au.key,
                    data: au.data,
                    new_clock: au.clock_stepped,
                })?;
                if !told_available && writer.media_available() {
                    told_available = true;
                    observer.available();
                }
                report_stored(writer, observer, reported);
            }
            Ok(Some(Media::Audio(u))) => {
                let (Some(writer), Some((_, path))) = (writer.as_deref_mut(), audio.as_mut()) else { continue };
                match path {
                    AudioPath::AsSent => {
                        writer.push_audio(AudioFrame { media: u.media, samples: u.samples, data: u.data })?
                    }
                    AudioPath::Flac(c) => match c.push(u.media, &u.data) {
                        Ok(frames) => {
                            for f in frames {
                                writer.push_audio(AudioFrame { media: f.start, samples: f.samples, data: f.data })?;
                            }
                        }
                        Err(e) => {
                            tracing::warn!("audio conversion failed, recording video only: {e}");
                            audio = None;
                        }
                    },
                }
            }
            Ok(None) => break Some("camera ended the session".to_owned()),
            Err(e) => {
                // Keep what arrived before the failure.
                let why = e.to_string();
                let rest = src.finish();
                if rest.is_empty() {
                    break Some(why);
                }
                finishing = Some(rest.into_iter());
                pending_why = Some(why);
            }
        }
    };
    let ended = ended.or(pending_why);
    // The converter's last, partial block belongs to this run.
    if let (Some(writer), Some((_, AudioPath::Flac(c)))) = (writer, audio.as_mut())
        && let Ok(Some(f)) = c.flush()
    {
        writer.push_audio(AudioFrame { media: f.start, samples: f.samples, data: f.data })?;
    }
    Ok(ended)
}

/// Records several cameras in one process (one task each, one archive). Stops all of them when
/// `stop` turns true or when one fails, and returns each video's summary, or the first error.
pub async fn record_many(
    archive: Arc<Archive>,
    streams: Vec<(String, SourceOptions)>,
    config: VideoConfig,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(String, RecordSummary)>, RecordError> {
    let (tx, rx) = watch::channel(false);
    let tx = Arc::new(tx);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (video, source)) in streams.into_iter().enumerate() {
        let (archive, config, rx, tx) = (archive.clone(), config.clone(), rx.clone(), tx.clone());
        tasks.spawn(async move {
            let r = record(archive, &video, config, source, rx).await;
            if r.is_err() {
                let _ = tx.send(true);
            }
            (i, video, r)
        });
    }
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
            let _ = tx.send(true);
        })
    };
    let mut done = Vec::new();
    let mut first_err = None;
    while let Some(j) = tasks.join_next().await {
        match j {
            Ok((i, video, Ok(s))) => done.push((i, video, s)),
            Ok((_, video, Err(e))) => {
                tracing::error!(video, "{e}");
                first_err.get_or_insert(e);
            }
            Err(e) => tracing::error!("recording task failed: {e}"),
        }
    }
    forward.abort();
    if let Some(e) = first_err {
        return Err(e);
    }
    done.sort_by_key(|(i, _, _)| *i);
    Ok(done.into_iter().map(|(_, v, s)| (v, s)).collect())
}
