//! The uploader: copies every closed segment to the remote tier once, oldest first, and
//! records the copy in the index only after the store confirmed it (`docs/remote.md`).
//!
//! - **Never in recording's way.** It runs beside the pipelines, reads closed files only, and
//!   holds at most `concurrency` uploads at once. A store that fails, refuses or hangs (every
//!   request has a timeout) costs a retry later, with backoff per segment up to a minute;
//!   recording goes on and the backlog (closed, not copied) waits on local disk.
//! - **Once, and only the same bytes.** A PUT is create-only (`If-None-Match: *`): an object
//!   already at the key (the upload before a crash, whose confirmation the index never got) is
//!   success only when its bytes hash the same; otherwise it is a conflict (another writer on
//!   this prefix), reported and never overwritten.
//! - **Confirmed.** After the PUT the object's size is read back; only then does the index say
//!   the segment has a remote copy. A segment deleted meanwhile (retention) has its fresh
//!   object queued for deletion instead.
//! - **Retention reaches the store.** Keys of copies whose segments went (`remote_garbage`)
//!   are deleted from the store, and forgotten once it confirms.
//! - Faults are `StorageError` events (one per outage, not per retry) and `/metrics`; the
//!   recovery is a `RemoteUploadResumed` event.

use super::{RemoteConfig, RemoteError};
use crate::archive::Archive;
use crate::archive::remote::PendingUpload;
use crate::events::{Bus, EventType};
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, WriteMultipart};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Segments larger than this go up in parts of [`PART`] (memory per upload stays bounded).
const WHOLE_UP_TO: u64 = 16 << 20;
const PART: usize = 8 << 20;
/// Longest wait before a failed segment is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the backlog is looked at when nothing new was recorded.
const IDLE: Duration = Duration::from_secs(5);
/// How often due hour manifests are rewritten: often enough for gateways to see new segments
/// within a minute, seldom enough that an hour's manifest is not rewritten per segment.
const MANIFEST_EVERY: Duration = Duration::from_secs(10);
/// How long to wait before trying again to claim a prefix.
const CLAIM_RETRY: Duration = Duration::from_secs(60);

/// Why one upload failed.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The store failed or refused.
    #[error("{0}")]
    Store(#[from] object_store::Error),
    /// The local file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Another object is already at the key.
    #[error("another object is already at {0} (another writer on this prefix?): never overwritten")]
    Conflict(String),
    /// The store's copy is not what was sent.
    #[error("the copy at {key} has {got} bytes, {want} were sent")]
    Verify {
        /// The key.
        key: String,
        /// Its size.
        got: u64,
        /// What was sent.
        want: u64,
    },
    /// The index could not record it.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
}

/// What the uploader has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// Where it uploads (no credentials).
    pub target: String,
    /// Segments copied and confirmed.
    pub uploaded: AtomicU64,
    /// Their bytes.
    pub uploaded_bytes: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// Objects deleted because their segments went.
    pub deleted: AtomicU64,
    /// Whether the last attempt failed (an outage is under way).
    pub failing: AtomicBool,
    /// Local copies evicted (their remote copies confirmed) to keep videos' local caches under
    /// their caps.
    pub evicted: AtomicU64,
    /// Their bytes.
    pub evicted_bytes: AtomicU64,
    /// Hour manifests written (or deleted, when their hour emptied).
    pub manifests: AtomicU64,
    /// Whether another host owns the prefix (nothing is uploaded while it does).
    pub prefix_taken: AtomicBool,
}

struct Ctx {
    archive: Arc<Archive>,
    store: Arc<dyn ObjectStore>,
    config: RemoteConfig,
    events: Arc<Bus>,
    status: Arc<Status>,
    /// Videos whose local cache is over its cap with media not uploaded (reported once).
    over_cap: Mutex<std::collections::HashSet<String>>,
}

/// The running uploader.
pub struct Uploader {
    task: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    /// What it has done.
    pub status: Arc<Status>,
}

impl Uploader {
    /// Starts uploading `archive`'s closed segments to `config`'s store, `concurrency` at once.
    /// Must be called inside the host's tokio runtime.
    pub fn start(
        archive: Arc<Archive>,
        config: &RemoteConfig,
        events: Arc<Bus>,
        concurrency: usize,
    ) -> Result<Self, RemoteError> {
        let store = config.build()?;
        let status = Arc::new(Status { target: config.target(), ..Status::default() });
        let ctx = Arc::new(Ctx {
            archive,
            store,
            config: config.clone(),
            events,
            status: status.clone(),
            over_cap: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(ctx, stopped, concurrency.max(1)));
        Ok(Uploader { task, stop, status })
    }

    /// Stops: uploads in progress are abandoned (their segments stay in the backlog and are
    /// uploaded again next time; the key and the create-only PUT make that harmless).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn run(ctx: Arc<Ctx>, mut stopped: tokio::sync::watch::Receiver<bool>, concurrency: usize) {
    // Woken when a segment closes, not at every fragment (a wake-up costs a backlog query).
    let mut changes = ctx.archive.closed_segments();
    // Per segment: failed attempts and when to try again.
    let mut retry: HashMap<i64, (u32, Instant)> = HashMap::new();
    tracing::info!(target = ctx.status.target, "uploading closed segments to the remote tier");
    // Nothing is written under a prefix before it is ours (`catalog::claim_prefix`).
    if !claim(&ctx, &mut stopped).await {
        return;
    }
    // Manifests are written beside the uploads, not between their batches: a pass of many
    // hours must not hold uploads back, nor a long upload batch hold manifests back.
    tokio::spawn(manifest_loop(ctx.clone(), stopped.clone()));
    loop {
        if *stopped.borrow() {
            return;
        }
        collect_garbage(&ctx).await;
        let now = Instant::now();
        let waiting: Vec<i64> = retry.iter().filter(|(_, (_, at))| *at > now).map(|(id, _)| *id).collect();
        let archive = ctx.archive.clone();
        let batch = tokio::task::spawn_blocking(move || archive.pending_uploads(32, &waiting)).await;
        let batch = match batch {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::warn!("remote tier: reading the backlog: {e}");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        if batch.is_empty() {
            let next_retry = retry.values().map(|(_, at)| *at).min();
            let wait = next_retry.map_or(IDLE, |at| at.saturating_duration_since(Instant::now()).min(IDLE));
            tokio::select! {
                _ = stopped.changed() => return,
                _ = changes.changed() => {
                    // Cameras' segments close together after a restart: look once for all of them.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ = tokio::time::sleep(wait.max(Duration::from_millis(100))) => {}
            }
            continue;
        }
        let uploads = futures::stream::iter(batch)
            .map(|p| {
                let ctx = ctx.clone();
                async move { (p.segment_id, upload(&ctx, &p).await) }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>();
        let results = tokio::select! {
            _ = stopped.changed() => return,
            r = uploads => r,
        };
        for (id, result) in results {
            match result {
                Ok(()) => {
                    retry.remove(&id);
                    if ctx.status.failing.swap(false, Ordering::Relaxed) {
                        ctx.events.publish(
                            "/remote".into(),
                            EventType::RemoteUploadResumed,
                            json!({"target": ctx.status.target}),
                        );
                        tracing::info!(target = ctx.status.target, "remote tier reachable again");
                    }
                }
                Err(e) => {
                    ctx.status.failures.fetch_add(1, Ordering::Relaxed);
                    let attempts = retry.get(&id).map_or(1, |(n, _)| n + 1);
                    let backoff = Duration::from_secs(1u64 << attempts.min(6)).min(MAX_BACKOFF);
                    retry.insert(id, (attempts, Instant::now() + backoff));
                    // The client's message names the request's URL: never its query (a SAS
                    // token is a credential).
                    let message = crate::secrets::redact_url_queries(&e.to_string());
                    if !ctx.status.failing.swap(true, Ordering::Relaxed) {
                        // One event and one warning per outage, not one per segment and retry
                        // (each message names its key: 100 cameras would flood the log).
                        tracing::warn!(target = ctx.status.target, "remote upload failed (retried): {message}");
                        ctx.events.publish(
                            "/remote".into(),
                            EventType::StorageError,
                            json!({"errorCode": "RemoteUploadFailed", "target": ctx.status.target, "message": message}),
                        );
                    } else {
                        tracing::debug!(target = ctx.status.target, "remote upload failed (retried): {message}");
                    }
                }
            }
        }
        // Segments gone from the index (retention) need no retry.
        if retry.len() > 10_000 {
            retry.clear();
        }
    }
}

/// Claims the prefix, trying again every minute while the store fails or another host has
/// it (one event each way). Returns `false` when stopped first.
async fn claim(ctx: &Ctx, stopped: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    let host_id = match tokio::task::block_in_place(|| ctx.archive.host_id()) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("remote tier: this host's id: {e}; nothing is uploaded");
            return false;
        }
    };
    let mut reported = None;
    loop {
        let result = super::catalog::claim_prefix(ctx.store.as_ref(), &ctx.config, &host_id).await;
        let (code, message) = match result {
            Ok(super::catalog::Claim::Ours) => {
                ctx.status.prefix_taken.store(false, Ordering::Relaxed);
                if reported.is_some() {
                    tracing::info!(target = ctx.status.target, "the remote prefix is this host's now");
                }
                return true;
            }
            Ok(super::catalog::Claim::Taken(by)) => {
                ctx.status.prefix_taken.store(true, Ordering::Relaxed);
                (
                    "RemotePrefixTaken",
                    format!(
                        "{} is written by another host ({by}); nothing is uploaded there. Give this host its own \
                         prefix, or delete {} if that host is gone for good",
                        ctx.status.target,
                        ctx.config.writer_key()
                    ),
                )
            }
            Err(e) => {
                ctx.status.failures.fetch_add(1, Ordering::Relaxed);
                ("RemoteUploadFailed", crate::secrets::redact_url_queries(&e.to_string()))
            }
        };
        if reported != Some(code) {
            tracing::warn!(target = ctx.status.target, "{message}");
            ctx.events.publish(
                "/remote".into(),
                EventType::StorageError,
                json!({"errorCode": code, "target": ctx.status.target, "message": message}),
            );
            reported = Some(code);
        }
        tokio::select! {
            _ = stopped.changed() => return false,
            _ = tokio::time::sleep(CLAIM_RETRY) => {}
        }
    }
}

/// Every [`MANIFEST_EVERY`], rewrites the manifests that are due, until the host stops.
async fn manifest_loop(ctx: Arc<Ctx>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut written = super::catalog::Written::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(MANIFEST_EVERY) => {}
        }
        if *stopped.borrow() {
            return;
        }
        write_manifests(&ctx, &mut written).await;
    }
}

/// Rewrites the manifests of the hours whose copies changed (`catalog::write_due`); what fails
/// stays due for the next pass.
async fn write_manifests(ctx: &Ctx, written: &mut super::catalog::Written) {
    let pass = super::catalog::write_due(ctx.store.as_ref(), &ctx.config, &ctx.archive, written).await;
    let error = match pass {
        Ok(pass) => {
            ctx.status.manifests.fetch_add(pass.written as u64, Ordering::Relaxed);
            pass.error
        }
        Err(e) => Some(e),
    };
    if let Some(e) = error {
        ctx.status.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target = ctx.status.target,
            "writing manifests (retried): {}",
            crate::secrets::redact_url_queries(&e.to_string())
        );
    }
}

/// Deletes the objects of segments that went.
async fn collect_garbage(ctx: &Ctx) {
    let archive = ctx.archive.clone();
    let Ok(Ok(keys)) = tokio::task::spawn_blocking(move || archive.remote_garbage(256)).await else { return };
    for key in keys {
        match ctx.store.delete(&Key::from(key.as_str())).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                ctx.status.deleted.fetch_add(1, Ordering::Relaxed);
                let archive = ctx.archive.clone();
                let _ = tokio::task::spawn_blocking(move || archive.remote_garbage_done(&key)).await;
            }
            // Kept for the next pass.
            Err(e) => {
                tracing::debug!("remote tier: deleting {key}: {}", crate::secrets::redact_url_queries(&e.to_string()));
                return;
            }
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies one segment and records it.
async fn upload(ctx: &Ctx, p: &PendingUpload) -> Result<(), UploadError> {
    let key_text = ctx.config.segment_key(&p.video, p.start, p.run, p.seq);
    let key = Key::from(key_text.as_str());
    let path = p.path.clone();
    let read_err = |source: std::io::Error| UploadError::Read { path: p.path.display().to_string(), source };
    let len = p.bytes;
    let sha = if len <= WHOLE_UP_TO {
        let (data, sha) = tokio::task::spawn_blocking(move || -> std::io::Result<(Bytes, String)> {
            let mut data = std::fs::read(&path)?;
            // What the index covers: a closed segment's file is exactly that long.
            if (data.len() as u64) < len {
                return Err(std::io::Error::other(format!(
                    "the file has {} bytes, the index covers {len}",
                    data.len()
                )));
            }
            data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
            let sha = hex(&Sha256::digest(&data));
            Ok((Bytes::from(data), sha))
        })
        .await
        .map_err(|e| read_err(std::io::Error::other(e)))?
        .map_err(read_err)?;
        let mut attributes = Attributes::new();
        // A name both services take: Azure's must be an identifier (no `-`), and some proxies
        // drop headers with `_`.
        attributes.insert(Attribute::Metadata("openvasha256".into()), sha.clone().into());
        let opts = PutOptions { mode: PutMode::Create, attributes, ..PutOptions::default() };
        match ctx.store.put_opts(&key, data.clone().into(), opts.clone()).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                if !same_object(ctx, &key, &sha).await? {
                    // Taken but unreadable (deleted since): nothing there to protect.
                    let opts = PutOptions { mode: PutMode::Overwrite, ..opts };
                    ctx.store.put_opts(&key, data.into(), opts).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        sha
    } else {
        // Too large to hold whole: a multipart upload has no create-only mode, so an object
        // already there is compared first.
        let sha = file_sha(&p.path, len).await.map_err(read_err)?;
        let there = match ctx.store.head(&key).await {
            Ok(_) => same_object(ctx, &key, &sha).await?,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !there {
            {
                let mut w = WriteMultipart::new_with_chunk_size(ctx.store.put_multipart(&key).await?, PART);
                let mut f = tokio::fs::File::open(&p.path).await.map_err(read_err)?;
                let mut left = len;
                let mut buf = vec![0u8; PART];
                while left > 0 {
                    use tokio::io::AsyncReadExt;
                    let n = usize::try_from(left).unwrap_or(PART).min(PART);
                    f.read_exact(&mut buf[..n]).await.map_err(read_err)?;
                    w.wait_for_capacity(2).await?;
                    w.write(&buf[..n]);
                    left -= n as u64;
                }
                w.finish().await?;
            }
        }
        sha
    };
    let meta = ctx.store.head(&key).await?;
    if meta.size != len {
        return Err(UploadError::Verify { key: key_text, got: meta.size, want: len });
    }
    let archive = ctx.archive.clone();
    let (id, k, s, video) = (p.segment_id, key_text.clone(), sha, p.video.clone());
    // Recorded, then the video's local cache kept under its cap: the copy just confirmed may
    // let the oldest local copies go.
    let (recorded, evicted) = tokio::task::spawn_blocking(move || {
        let recorded = archive.record_upload(id, &k, len, &s)?;
        let evicted = match archive.local_cache_cap(&video) {
            Some(cap) if recorded => Some(archive.evict_local_copies(&video, cap)?),
            _ => None,
        };
        Ok::<_, crate::archive::ArchiveError>((recorded, evicted))
    })
    .await
    .map_err(|e| UploadError::Archive(crate::archive::ArchiveError::Internal(e.to_string())))??;
    if recorded {
        ctx.status.uploaded.fetch_add(1, Ordering::Relaxed);
        ctx.status.uploaded_bytes.fetch_add(len, Ordering::Relaxed);
    }
    if let Some(e) = evicted {
        ctx.status.evicted.fetch_add(e.segments, Ordering::Relaxed);
        ctx.status.evicted_bytes.fetch_add(e.bytes, Ordering::Relaxed);
        over_cap(ctx, &p.video, e.over);
    }
    Ok(())
}

/// Says once per episode that `video`'s local cache holds `over` bytes beyond its cap that are
/// not uploaded yet (kept: never dropped for the cap; the disk's free-space floor still
/// applies), and once when it is back under.
fn over_cap(ctx: &Ctx, video: &str, over: u64) {
    let mut flagged = ctx.over_cap.lock().unwrap_or_else(|p| p.into_inner());
    let was = flagged.contains(video);
    if over > 0 && !was {
        flagged.insert(video.to_owned());
        tracing::warn!(video, over, "the local cache holds more than its cap of media not uploaded yet; kept");
        ctx.events.publish(
            format!("/videos/{video}"),
            EventType::StorageError,
            json!({
                "errorCode": "LocalCacheOverCap",
                "message": format!(
                    "video '{video}' holds {over} bytes beyond its localMediaCacheMaximumSizeMiB that are not in the \
                     remote tier yet: kept until uploaded (the disk's free-space floor still applies)"
                ),
                "bytesOverCap": over,
            }),
        );
    } else if over == 0 && was {
        flagged.remove(video);
        tracing::info!(video, "the local cache is back under its cap");
    }
}

/// Whether the object at `key` holds the bytes hashing to `sha` (a retry of our own upload):
/// `true`; `false` when there is nothing readable there after all; a conflict otherwise.
async fn same_object(ctx: &Ctx, key: &Key, sha: &str) -> Result<bool, UploadError> {
    let mut stream = match ctx.store.get(key).await {
        Ok(got) => got.into_stream(),
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut h = Sha256::new();
    while let Some(chunk) = stream.next().await {
        h.update(&chunk?);
    }
    if hex(&h.finalize()) == sha { Ok(true) } else { Err(UploadError::Conflict(key.to_string())) }
}

/// SHA-256 of the first `len` bytes of a file.
async fn file_sha(path: &std::path::Path, len: u64) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?.take(len);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex(&h.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::VideoConfig;
    use crate::archive::writer::{Frame, SampleEntry, VideoWriter};
    use crate::time::Time90k;
    use object_store::memory::InMemory;

    /// An archive holding one closed segment.
    fn one_segment(name: &str) -> (crate::archive::test_dir::Tmp, Arc<Archive>) {
        let t = crate::archive::test_dir::tmp("remote", name);
        let a = Arc::new(Archive::open_or_create(&t.0).unwrap());
        record_segment(&a, "cam");
        (t, a)
    }

    /// Records one closed segment of 50 frames into `video`.
    fn record_segment(a: &Arc<Archive>, video: &str) {
        let mut w = VideoWriter::open(a.clone(), video, VideoConfig::default()).unwrap();
        let mut entry = Vec::new();
        crate::mp4::put_box(&mut entry, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        w.begin_run().unwrap();
        w.set_sample_entry(SampleEntry { data: entry, width: 640, height: 360 }).unwrap();
        for n in 0..50i64 {
            let data = vec![n as u8; 100];
            let received = Time90k(Time90k::now().0 + n * 3600);
            w.push(Frame { media_90k: n * 3600, cts: 0, received, key: n % 25 == 0, data, new_clock: false }).unwrap();
        }
        w.end_run().unwrap();
    }

    /// Every byte of segment `rel`, wherever it is (read off the reactor).
    async fn read_whole(a: &Arc<Archive>, rel: &str) -> Vec<u8> {
        let (a, rel) = (a.clone(), rel.to_owned());
        tokio::task::spawn_blocking(move || {
            let seg = a.open_segment(&rel).unwrap();
            let mut whole = vec![0u8; seg.len() as usize];
            seg.read_exact_at(&mut whole, 0).unwrap();
            whole
        })
        .await
        .unwrap()
    }

    fn ctx(archive: Arc<Archive>, store: Arc<dyn ObjectStore>) -> Ctx {
        Ctx {
            archive,
            store,
            config: RemoteConfig::parse("s3://b/site", None).unwrap(),
            events: Arc::new(Bus::new("/test")),
            status: Arc::new(Status::default()),
            over_cap: Mutex::default(),
        }
    }

    /// Uploaded once and recorded; a second upload of the same segment (a crash before the
    /// index heard of the first) finds the same bytes and succeeds; other bytes at the key are a
    /// conflict, never overwritten; the segment's deletion queues its key, and collecting the
    /// garbage deletes the object.
    #[tokio::test(flavor = "multi_thread")]
    async fn create_only_confirmed_and_collected() {
        let (_t, a) = one_segment("once");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let c = ctx(a.clone(), store.clone());
        let pending = a.pending_uploads(10, &[]).unwrap();
        assert_eq!(pending.len(), 1);
        let p = &pending[0];
        upload(&c, p).await.unwrap();
        assert!(a.pending_uploads(10, &[]).unwrap().is_empty());
        let key = c.config.segment_key(&p.video, p.start, p.run, p.seq);
        let stored = store.get(&Key::from(key.as_str())).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), &std::fs::read(&p.path).unwrap()[..]);
        // Again: the same bytes are there, which is success.
        upload(&c, p).await.unwrap();
        // Other bytes at the key: a conflict, and the object is left as it was.
        store.put(&Key::from(key.as_str()), Bytes::from_static(b"someone else").into()).await.unwrap();
        match upload(&c, p).await {
            Err(UploadError::Conflict(k)) => assert_eq!(k, key),
            other => panic!("{other:?}"),
        }
        let kept = store.get(&Key::from(key.as_str())).await.unwrap().bytes().await.unwrap();
        assert_eq!(kept.as_ref(), b"someone else");
        // The segment deleted: its key is garbage, and collecting deletes the object.
        a.delete_video("cam").unwrap();
        assert_eq!(a.remote_garbage(10).unwrap(), vec![key.clone()]);
        collect_garbage(&c).await;
        assert!(matches!(store.head(&Key::from(key.as_str())).await, Err(object_store::Error::NotFound { .. })));
        assert!(a.remote_garbage(10).unwrap().is_empty());
        assert_eq!(c.status.deleted.load(Ordering::Relaxed), 1);
    }

    /// With a local cache cap, a confirmed upload lets the local copy go; the segment is then
    /// read from the store, the same bytes, by ranges; `check` is clean, a writer's recovery
    /// leaves it alone, and deleting it deletes the remote object.
    #[tokio::test(flavor = "multi_thread")]
    async fn evicted_local_copies_are_read_from_the_store() {
        let (t, a) = one_segment("evict");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let reader = crate::remote::read::ChunkReader::new(
            store.clone(),
            tokio::runtime::Handle::current(),
            t.0.join("cache/remote"),
            16 << 20,
        )
        .unwrap();
        let stats = reader.stats.clone();
        a.set_remote_reader(Arc::new(reader));
        let c = ctx(a.clone(), store.clone());
        let p = a.pending_uploads(10, &[]).unwrap().remove(0);
        let bytes = std::fs::read(&p.path).unwrap();
        let rel = p.path.strip_prefix(&t.0).unwrap().to_str().unwrap().to_owned();
        // Not evicted before its copy is confirmed, whatever the cap.
        assert_eq!(a.evict_local_copies("cam", 0).unwrap().segments, 0);
        a.set_local_cache_cap("cam", Some(0));
        upload(&c, &p).await.unwrap();
        assert_eq!(c.status.evicted.load(Ordering::Relaxed), 1);
        assert!(!p.path.exists(), "the local copy is gone");
        assert!(a.is_evicted(&rel).unwrap());
        assert_eq!(a.local_and_remote_bytes("cam").unwrap(), (0, bytes.len() as u64));
        let a2 = a.clone();
        let rel2 = rel.clone();
        let (whole, part) = tokio::task::spawn_blocking(move || {
            let seg = a2.open_segment(&rel2).unwrap();
            assert!(seg.is_remote());
            let mut whole = vec![0u8; seg.len() as usize];
            seg.read_exact_at(&mut whole, 0).unwrap();
            let mut part = vec![0u8; 10];
            seg.read_exact_at(&mut part, 100).unwrap();
            (whole, part)
        })
        .await
        .unwrap();
        assert_eq!(whole, bytes);
        assert_eq!(&part[..], &bytes[100..110]);
        assert!(stats.gets.load(Ordering::Relaxed) >= 1);
        // The archive holds no problem, and a writer opening the video keeps the segment.
        let rep = crate::archive::check::check(&t.0).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        drop(VideoWriter::open(a.clone(), "cam", VideoConfig::default()).unwrap());
        assert_eq!(a.segments(a.video("cam").unwrap().id, None, None).unwrap().len(), 1);
        // Deleting the video deletes the remote object.
        a.delete_video("cam").unwrap();
        collect_garbage(&c).await;
        assert_eq!(c.status.deleted.load(Ordering::Relaxed), 1);
    }

    /// A recorder claims its prefix (another host is refused it), and after an upload writes
    /// the hour's manifest and `video.json`; a second index built from the bucket alone holds
    /// the same segment (times, frames, sample index, codec) and reads its bytes from the
    /// store, and reads nothing again when nothing changed. The video deleted on the recorder,
    /// its manifests go, and the second index forgets it without touching the store.
    #[tokio::test(flavor = "multi_thread")]
    async fn manifests_rebuild_the_index_elsewhere() {
        use super::super::catalog::{Claim, claim_prefix, sync_once, write_due};
        let (_t, a) = one_segment("manifest");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let c = ctx(a.clone(), store.clone());
        let me = a.host_id().unwrap();
        assert_eq!(a.host_id().unwrap(), me, "the id is kept");
        assert_eq!(claim_prefix(store.as_ref(), &c.config, &me).await.unwrap(), Claim::Ours);
        assert_eq!(claim_prefix(store.as_ref(), &c.config, &me).await.unwrap(), Claim::Ours);
        assert!(
            matches!(claim_prefix(store.as_ref(), &c.config, "other").await.unwrap(), Claim::Taken(w) if w.contains(&me))
        );
        let p = a.pending_uploads(10, &[]).unwrap().remove(0);
        upload(&c, &p).await.unwrap();
        let mut written = super::super::catalog::Written::new();
        assert_eq!(write_due(store.as_ref(), &c.config, &a, &mut written).await.unwrap().written, 1);
        assert_eq!(
            write_due(store.as_ref(), &c.config, &a, &mut written).await.unwrap().written,
            0,
            "nothing due twice"
        );

        let t2 = crate::archive::test_dir::tmp("remote", "gateway");
        let g = Arc::new(Archive::open_or_create(&t2.0).unwrap());
        let reader = crate::remote::read::ChunkReader::new(
            store.clone(),
            tokio::runtime::Handle::current(),
            t2.0.join("c"),
            1 << 20,
        )
        .unwrap();
        g.set_remote_reader(Arc::new(reader));
        let rep = sync_once(store.as_ref(), "", &g).await.unwrap();
        assert_eq!((rep.recorders.clone(), rep.videos, rep.added), (vec!["site".to_owned()], 1, 1), "{rep:?}");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let theirs = a.segments(a.video("cam").unwrap().id, None, None).unwrap();
        let ours = g.segments(g.video("cam").unwrap().id, None, None).unwrap();
        assert_eq!(ours.len(), 1);
        let (x, y) = (&theirs[0], &ours[0]);
        assert_eq!(
            (
                x.start,
                x.wall_dur,
                x.media_start,
                x.media_dur,
                x.frames,
                x.key_frames,
                x.init_len,
                x.bytes,
                &x.idx,
                x.summary
            ),
            (
                y.start,
                y.wall_dur,
                y.media_start,
                y.media_dur,
                y.frames,
                y.key_frames,
                y.init_len,
                y.bytes,
                &y.idx,
                y.summary
            )
        );
        let bytes = std::fs::read(&p.path).unwrap();
        assert_eq!(read_whole(&g, &y.file).await, bytes);
        let again = sync_once(store.as_ref(), "", &g).await.unwrap();
        assert_eq!((again.manifests_read, again.added, again.removed), (0, 0, 0), "{again:?}");
        let rep = crate::archive::check::check(&t2.0).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);

        a.delete_video("cam").unwrap();
        write_due(store.as_ref(), &c.config, &a, &mut written).await.unwrap();
        let left: Vec<String> = {
            use futures::TryStreamExt;
            store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap()
        };
        assert!(left.iter().all(|k| !k.contains("/hours/") && !k.ends_with("video.json")), "{left:?}");
        let gone = sync_once(store.as_ref(), "", &g).await.unwrap();
        assert_eq!((gone.videos_forgotten, gone.removed), (1, 1), "{gone:?}");
        assert!(g.videos().unwrap().is_empty());
        assert!(g.remote_garbage(10).unwrap().is_empty(), "an importing index never deletes in the bucket");
    }

    /// The disk guard on a full disk (a floor no disk meets): a segment whose remote copy is
    /// confirmed loses its local file only and stays readable from the store; one not uploaded
    /// yet is deleted, as without a remote tier; and a remote-only segment is never touched
    /// again (it frees no local space), nor is its object.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_disk_evicts_copied_segments_instead_of_deleting_them() {
        let (t, a) = one_segment("guard");
        record_segment(&a, "other");
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let reader = crate::remote::read::ChunkReader::new(
            store.clone(),
            tokio::runtime::Handle::current(),
            t.0.join("cache/remote"),
            1 << 20,
        )
        .unwrap();
        a.set_remote_reader(Arc::new(reader));
        let c = ctx(a.clone(), store.clone());
        let pending = a.pending_uploads(10, &[]).unwrap();
        let copied = pending.iter().find(|p| p.video == "cam").unwrap().clone();
        let not_copied = pending.iter().find(|p| p.video == "other").unwrap().clone();
        upload(&c, &copied).await.unwrap();
        let bytes = std::fs::read(&copied.path).unwrap();
        let a2 = a.clone();
        tokio::task::spawn_blocking(move || a2.keep_free_space(1 << 60)).await.unwrap().unwrap();
        let rel = copied.path.strip_prefix(&t.0).unwrap().to_str().unwrap().to_owned();
        assert!(!copied.path.exists() && a.is_evicted(&rel).unwrap(), "the copied segment is remote-only now");
        assert_eq!(a.segments(a.video("cam").unwrap().id, None, None).unwrap().len(), 1, "its row is kept");
        assert!(!not_copied.path.exists());
        assert!(a.segments(a.video("other").unwrap().id, None, None).unwrap().is_empty(), "the other is deleted");
        // Again: nothing local is left, the remote-only segment stays, and so does its object.
        let a2 = a.clone();
        tokio::task::spawn_blocking(move || a2.keep_free_space(1 << 60)).await.unwrap().unwrap();
        assert_eq!(a.segments(a.video("cam").unwrap().id, None, None).unwrap().len(), 1);
        assert!(a.remote_garbage(10).unwrap().is_empty(), "no object is queued for deletion");
        assert_eq!(read_whole(&a, &rel).await, bytes);
        let rep = crate::archive::check::check(&t.0).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    }
}
