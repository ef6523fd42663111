//! A read-only playback gateway (`serve --remote URL --read-only`): a host that records
//! nothing and serves every video its bucket's recorders wrote, through the same API and web
//! UI, kept up to date by [`catalog::sync_once`](super::catalog::sync_once) every few seconds
//! (`docs/remote.md`, "Read-only gateways").
//!
//! It never writes to the store (a gateway needs only read and list rights), and its index
//! is marked as a gateway's, so it can never later be used to upload or delete there.

use super::RemoteConfig;
use super::RemoteError;
use super::catalog::{self, SyncReport};
use crate::archive::Archive;
use crate::events::{Bus, EventType};
use object_store::ObjectStore;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the gateway has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// Passes over the bucket that completed.
    pub passes: AtomicU64,
    /// Passes that failed (the store failed or refused).
    pub failures: AtomicU64,
    /// Segments taken into the index.
    pub added: AtomicU64,
    /// Segments dropped from it (gone from the bucket).
    pub removed: AtomicU64,
    /// Videos served.
    pub videos: AtomicU64,
    /// Objects the last pass left out (a manifest that does not parse or disagrees with its
    /// key, a video.json of no video): foreign or broken objects in the bucket.
    pub problems: AtomicU64,
    /// Whether the last pass failed.
    pub failing: AtomicBool,
}

/// The running gateway.
pub struct Gateway {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    /// What it has done.
    pub status: Arc<Status>,
}

impl Gateway {
    /// Marks `archive` as a gateway's and starts keeping it up to date with `config`'s bucket
    /// (the videos under its prefix, or one level below it), a pass every `every`.
    pub fn start(
        archive: Arc<Archive>,
        config: &RemoteConfig,
        events: Arc<Bus>,
        every: Duration,
    ) -> Result<Self, RemoteError> {
        archive.set_gateway(&config.target()).map_err(|e| RemoteError::Store(e.to_string()))?;
        let store = config.build()?;
        let status = Arc::new(Status::default());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(archive, store, config.clone(), events, status.clone(), every, stopped));
        Ok(Gateway { task, stop, status })
    }

    /// Stops after the pass under way, if any, is abandoned.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// How many problems are remembered as said.
const TOLD_REMEMBERED: usize = 1024;

async fn run(
    archive: Arc<Archive>,
    store: Arc<dyn ObjectStore>,
    config: RemoteConfig,
    events: Arc<Bus>,
    status: Arc<Status>,
    every: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let target = config.target();
    tracing::info!(target, "read-only gateway: serving the bucket's videos");
    let mut told: std::collections::HashSet<String> = std::collections::HashSet::new();
    loop {
        let pass = tokio::select! {
            _ = stopped.changed() => return,
            r = catalog::sync_once(store.as_ref(), &config.prefix, &archive) => r,
        };
        match pass {
            Ok(rep) => {
                report(&status, &rep);
                if status.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(target, "remote tier reachable again");
                    events.publish("/remote".into(), EventType::RemoteUploadResumed, json!({"target": target}));
                }
                // Each problem is said once (a log line and an event), not at every pass;
                // the set is bounded, so a bucket full of foreign objects never grows memory.
                for p in rep.problems {
                    if told.len() >= TOLD_REMEMBERED {
                        told.clear();
                    }
                    if told.insert(p.clone()) {
                        tracing::warn!(target, "{p}");
                        events.publish(
                            "/remote".into(),
                            EventType::StorageError,
                            json!({"errorCode": "RemoteObjectRejected", "target": target, "message": p}),
                        );
                    }
                }
                if rep.added + rep.removed + rep.updated > 0 {
                    tracing::info!(target, added = rep.added, removed = rep.removed, "index brought up to date");
                }
            }
            Err(e) => {
                status.failures.fetch_add(1, Ordering::Relaxed);
                let message = crate::secrets::redact_url_queries(&e.to_string());
                if !status.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target, "reading the bucket failed (retried): {message}");
                    events.publish(
                        "/remote".into(),
                        EventType::StorageError,
                        json!({"errorCode": "RemoteSyncFailed", "target": target, "message": message}),
                    );
                }
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

fn report(status: &Status, rep: &SyncReport) {
    status.passes.fetch_add(1, Ordering::Relaxed);
    status.added.fetch_add(rep.added, Ordering::Relaxed);
    status.removed.fetch_add(rep.removed, Ordering::Relaxed);
    status.videos.store(rep.videos, Ordering::Relaxed);
    status.problems.store(rep.problems.len() as u64, Ordering::Relaxed);
}
