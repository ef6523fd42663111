//! Records one camera into one archive video until told to stop.
//!
//! A run is one RTSP session; when the camera drops, the run ends (its last frame is written)
//! and the recorder reconnects with capped exponential backoff, so the outage shows up as a gap
//! between two runs. The first connection must succeed: a wrong URL or credentials is reported
//! at once rather than retried forever.

use crate::archive::writer::{Frame, SampleEntry, VideoWriter};
use crate::archive::{Archive, ArchiveError, VideoConfig};
use crate::ingest::rtsp::{IngestError, Source, SourceOptions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// First reconnection delay. Every second without a connection is a second not recorded, and
/// a refused connection costs the camera nothing, so retries start fast.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Longest reconnection delay: a camera that comes back is recorded again within ~0.5 s.
pub const BACKOFF_CAP: Duration = Duration::from_millis(500);

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
    mut stop: watch::Receiver<bool>,
) -> Result<RecordSummary, RecordError> {
    let mut writer = VideoWriter::open(archive, video, config)?;
    let mut summary = RecordSummary::default();
    let mut backoff = BACKOFF_FIRST;
    let mut ever_connected = false;
    while !*stop.borrow() {
        let connected = tokio::select! {
            r = Source::connect(&source) => r,
            _ = stop.changed() => break,
        };
        // Why the camera is gone this time; every path below it retries the same way.
        let why = match connected {
            Err(e) if !ever_connected || e.is_permanent() => return Err(e.into()),
            Err(e) => e.to_string(),
            Ok(mut src) => {
                if ever_connected {
                    tracing::info!(url = src.url(), "camera back");
                } else {
                    tracing::info!(url = src.url(), video, "recording");
                }
                ever_connected = true;
                backoff = BACKOFF_FIRST;
                summary.runs += 1;
                let ended = record_run(&mut writer, &mut src, &mut stop).await;
                // Close the run (keeping what was written) even if the archive failed; report
                // the failure that stopped recording first.
                let closed = writer.end_run();
                let ended = ended?;
                let stats = closed?;
                summary.frames += stats.frames;
                summary.segments += stats.segments;
                match ended {
                    Some(why) => why,
                    None => break,
                }
            }
        };
        tracing::warn!("{why}; reconnecting in {backoff:?}");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_CAP);
        summary.reconnects += 1;
    }
    writer.end_run()?;
    Ok(summary)
}

/// Feeds one session's frames to the writer. `Ok(None)`: told to stop; `Ok(Some(why))`: the
/// camera went away; `Err`: the archive failed (the caller still ends the run, keeping what
/// was written).
async fn record_run(
    writer: &mut VideoWriter,
    src: &mut Source,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<String>, RecordError> {
    writer.begin_run()?;
    loop {
        let next = tokio::select! {
            n = src.next() => n,
            _ = stop.changed() => return Ok(None),
        };
        match next {
            Ok(Some(au)) => {
                if let Some(p) = au.params {
                    writer.set_sample_entry(SampleEntry { data: p.sample_entry, width: p.width, height: p.height })?;
                }
                writer.push(Frame { media_90k: au.media_90k, received: au.received, key: au.key, data: au.data })?;
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
