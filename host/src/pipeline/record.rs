//! Records one camera into one archive video until told to stop.
//!
//! A run is one RTSP session; when the camera drops, the run ends (its last frame is written)
//! and the recorder reconnects with capped exponential backoff, so the outage shows up as a gap
//! between two runs. The first connection must succeed: a wrong URL or credentials is reported
//! at once rather than retried forever.

use crate::archive::writer::{Frame, RunStats, SampleEntry, VideoWriter};
use crate::archive::{Archive, ArchiveError, VideoConfig};
use crate::ingest::rtsp::{AccessUnit, IngestError, Source, SourceOptions};
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
    /// The first media of this recording is committed to the index (playable).
    fn available(&self) {}
    /// A run (session) ended and its last frames are stored.
    fn run_ended(&self, _stats: &RunStats) {}
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

/// Totals of a recording session.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordSummary {
    /// RTSP sessions (runs) recorded.
    pub runs: u64,
    /// Frames written.
    pub frames: u64,
    /// Segment files written.
    pub segments: u64,
    /// Reconnections after the camera dropped.
    pub reconnects: u64,
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
    record_with(Some(&mut writer), source, stop, Policy::FailFast, &Silent).await
}

/// Records into an open writer until `stop` turns true, reporting to `observer`. With
/// [`Policy::RetryForever`] only the archive can end it with an error; the writer (and with it
/// the video's lock) stays with the caller, who may try again.
pub async fn record_with(
    mut writer: Option<&mut VideoWriter>,
    source: SourceOptions,
    mut stop: watch::Receiver<bool>,
    policy: Policy,
    observer: &dyn Observer,
) -> Result<RecordSummary, RecordError> {
    let video = writer.as_ref().map(|w| w.video().name.clone()).unwrap_or_default();
    let video = video.as_str();
    let mut summary = RecordSummary::default();
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
                let ended = record_run(writer.as_deref_mut(), &mut src, &mut stop, observer).await;
                // Close the run (keeping what was written) even if the archive failed; report
                // the failure that stopped recording first.
                let closed = writer.as_deref_mut().map(VideoWriter::end_run).transpose();
                let ended = ended?;
                if let Some(stats) = closed? {
                    observer.run_ended(&stats);
                    summary.frames += stats.frames;
                    summary.segments += stats.segments;
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
        w.end_run()?;
    }
    Ok(summary)
}

/// Feeds one session's frames to the writer. `Ok(None)`: told to stop; `Ok(Some(why))`: the
/// camera went away; `Err`: the archive failed (the caller still ends the run, keeping what
/// was written).
async fn record_run(
    mut writer: Option<&mut VideoWriter>,
    src: &mut Source,
    stop: &mut watch::Receiver<bool>,
    observer: &dyn Observer,
) -> Result<Option<String>, RecordError> {
    if let Some(w) = writer.as_deref_mut() {
        w.begin_run()?;
    }
    let mut told_available = false;
    loop {
        let next = tokio::select! {
            n = src.next() => n,
            _ = stop.changed() => return Ok(None),
        };
        match next {
            Ok(Some(au)) => {
                observer.frame(&au);
                let Some(writer) = writer.as_deref_mut() else { continue };
                if let Some(p) = au.params {
                    writer.set_sample_entry(SampleEntry { data: p.sample_entry, width: p.width, height: p.height })?;
                }
                writer.push(Frame { media_90k: au.media_90k, received: au.received, key: au.key, data: au.data })?;
                if !told_available && writer.media_available() {
                    told_available = true;
                    observer.available();
                }
            }
            Ok(None) => return Ok(Some("camera ended the session".to_owned())),
            Err(e) => return Ok(Some(e.to_string())),
        }
    }
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
