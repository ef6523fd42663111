//! Reading segments kept only in the remote tier (`docs/remote.md`, "Reading").
//!
//! - Reads are ranged GETs of aligned chunks (1 MiB unless `--remote-read-chunk` says) of the
//!   segment's object, so a short range
//!   of a long segment fetches only the chunks it touches (plus the head, which every reader
//!   parses): never the whole object for a few frames.
//! - Chunks are kept in a read cache on local disk (`cache/remote/`, emptied at start) under a
//!   byte cap, least recently used first out: a second viewer of the same minutes, or a
//!   player's next request in the same chunk, costs no request.
//! - The archive calls [`ChunkReader::read_at`] from blocking threads; the GET runs on the
//!   host's runtime and the caller waits for it, bounded by a timeout, so a store that hangs
//!   is an error after 60 s, never a stuck reader.

use crate::archive::{RemoteRead, RemoteReadFailed};
use crate::disk_lru::DiskLru;
use crate::events::{Bus, EventType};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::json;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes per ranged GET (and per cached chunk), unless the host says otherwise
/// (`--remote-read-chunk`): fewer requests against fetching bytes nobody reads.
pub const CHUNK: u64 = 1 << 20;
/// How long one GET may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What reading from the remote tier has cost so far (for `/metrics`).
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Ranged GETs made.
    pub gets: AtomicU64,
    /// Bytes they fetched.
    pub bytes: AtomicU64,
    /// Chunks served from the read cache.
    pub hits: AtomicU64,
    /// GETs that failed.
    pub failures: AtomicU64,
}

/// Ranged reads of remote objects through a chunk cache on local disk.
pub struct ChunkReader {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Handle,
    chunks: DiskLru,
    chunk: u64,
    /// Its counters.
    pub stats: Arc<ReadStats>,
    /// Where failures are reported, and the store's name for them.
    events: Option<(Arc<Bus>, String)>,
    /// Whether reads are failing now (an outage: reported once, at its first failure).
    failing: AtomicBool,
    /// Objects reported lost (each once; forgotten past [`LOST_REMEMBERED`]).
    lost: Mutex<HashSet<String>>,
}

/// How many lost objects are remembered as reported: beyond it the set starts again (a
/// bucket that lost thousands of objects is reported again, never grows memory).
const LOST_REMEMBERED: usize = 1024;

impl ChunkReader {
    /// A reader of `store` caching at most `cap` bytes in `dir` (emptied), in chunks of
    /// [`CHUNK`] bytes, its GETs run on `runtime`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        runtime: tokio::runtime::Handle,
        dir: PathBuf,
        cap: u64,
    ) -> std::io::Result<ChunkReader> {
        Ok(ChunkReader {
            store,
            runtime,
            chunks: DiskLru::new(dir, cap)?,
            chunk: CHUNK,
            stats: Arc::default(),
            events: None,
            failing: AtomicBool::new(false),
            lost: Mutex::default(),
        })
    }

    /// The same, reporting failed reads on `events` as `StorageError`s naming `target`: one
    /// per outage (the first failure after a success), and one per object the store lost.
    pub fn with_events(mut self, events: Arc<Bus>, target: String) -> Self {
        self.events = Some((events, target));
        self
    }

    /// Says a read failed: a warning and an event when it starts an outage or is the first
    /// of a lost object, at debug level otherwise (a player retrying would flood the log).
    fn report(&self, failure: &RemoteReadFailed, lost: bool) {
        let first = if lost {
            let mut seen = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= LOST_REMEMBERED {
                seen.clear();
            }
            seen.insert(failure.key.clone())
        } else {
            !self.failing.swap(true, Ordering::Relaxed)
        };
        let (key, start, end) = (failure.key.as_str(), failure.start, failure.end);
        if !first {
            tracing::debug!(key, start, end, "remote read failed: {}", failure.reason);
            return;
        }
        tracing::warn!(key, start, end, "remote read failed: {}", failure.reason);
        if let Some((events, target)) = &self.events {
            events.publish(
                "/remote".into(),
                EventType::StorageError,
                json!({
                    "errorCode": "RemoteReadFailed",
                    "target": target,
                    "key": key,
                    "range": {"start": start, "end": end},
                    "message": failure.to_string(),
                }),
            );
        }
    }

    /// The same with chunks of `bytes` (at least 4 KiB).
    pub fn with_chunk(mut self, bytes: u64) -> Self {
        self.chunk = bytes.max(4096);
        self
    }

    /// Chunk `chunk` of object `key` (`size` bytes): from the cache, or fetched and cached.
    fn chunk(&self, key: &str, size: u64, chunk: u64) -> std::io::Result<Vec<u8>> {
        // The chunk number after the last '#': one name for each key and chunk.
        let id = format!("{key}#{chunk}");
        if let Some(b) = self.chunks.get(&id) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(b);
        }
        let (start, end) = (chunk * self.chunk, ((chunk + 1) * self.chunk).min(size));
        if start >= end {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{key}: no byte {start}")));
        }
        let bytes = self.get(key, start..end)?;
        if bytes.len() as u64 != end - start {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{key}: the store gave {} bytes for {start}..{end}", bytes.len()),
            ));
        }
        // A chunk that cannot be written is served, not kept.
        if let Err(e) = self.chunks.put(&id, &bytes) {
            tracing::warn!("cannot keep a remote chunk in {}: {e}", self.chunks.dir().display());
        }
        Ok(bytes)
    }

    /// One ranged GET, run on the host's runtime, waited for here.
    fn get(&self, key: &str, range: std::ops::Range<u64>) -> std::io::Result<Vec<u8>> {
        let (store, loc, r) = (self.store.clone(), Key::from(key), range.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let got = tokio::time::timeout(TIMEOUT, store.get_range(&loc, r)).await;
            let _ = tx.send(got);
        });
        let failed = |reason: String, lost: bool| {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            let f = RemoteReadFailed { key: key.to_owned(), start: range.start, end: range.end, reason };
            self.report(&f, lost);
            std::io::Error::other(f)
        };
        match rx.recv_timeout(TIMEOUT + Duration::from_secs(5)) {
            Ok(Ok(Ok(b))) => {
                self.stats.gets.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("remote reads succeed again");
                }
                Ok(b.to_vec())
            }
            Ok(Ok(Err(object_store::Error::NotFound { .. }))) => {
                Err(failed("the object is not in the store (lost or deleted there)".into(), true))
            }
            Ok(Ok(Err(e))) => Err(failed(brief(&e.to_string()), false)),
            Ok(Err(_)) | Err(_) => Err(failed(format!("no answer within {TIMEOUT:?}"), false)),
        }
    }
}

impl RemoteRead for ChunkReader {
    fn read_at(&self, key: &str, size: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let chunk = pos / self.chunk;
            let bytes = self.chunk(key, size, chunk)?;
            let within = (pos - chunk * self.chunk) as usize;
            let n = bytes.len().saturating_sub(within).min(buf.len() - done);
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{key}: ends at {pos}")));
            }
            buf[done..done + n].copy_from_slice(&bytes[within..within + n]);
            done += n;
        }
        Ok(())
    }
}

/// A store client's message without the response body it quotes (an XML error document) and
/// without any URL's query (a SAS token is a credential), at most 300 characters.
fn brief(m: &str) -> String {
    let m = m.split("<?xml").next().unwrap_or(m).trim_end_matches([':', ' ']);
    let m = crate::secrets::redact_url_queries(m);
    match m.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &m[..at]),
        None => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn short_reads_fetch_only_their_chunks_and_a_second_read_none() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let data: Vec<u8> = (0..(3 * CHUNK + 1000)).map(|i| (i % 251) as u8).collect();
        rt.block_on(store.put(&Key::from("k"), bytes::Bytes::from(data.clone()).into())).unwrap();
        let dir = std::env::temp_dir().join(format!("openva-remote-read-{}", std::process::id()));
        let r = ChunkReader::new(store, rt.handle().clone(), dir.clone(), 2 * CHUNK).unwrap();
        let size = data.len() as u64;
        // Across the boundary of chunks 1 and 2: two GETs of a megabyte each.
        let mut buf = vec![0u8; 5000];
        let at = 2 * CHUNK - 2000;
        r.read_at("k", size, at, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[at as usize..at as usize + 5000]);
        assert_eq!(r.stats.gets.load(Ordering::Relaxed), 2);
        assert_eq!(r.stats.bytes.load(Ordering::Relaxed), 2 * CHUNK);
        // Again: from the cache.
        r.read_at("k", size, at, &mut buf).unwrap();
        assert_eq!((r.stats.gets.load(Ordering::Relaxed), r.stats.hits.load(Ordering::Relaxed)), (2, 2));
        // The last, short chunk; then the first, which evicts the least recently used (cap 2).
        let mut tail = vec![0u8; 1000];
        r.read_at("k", size, 3 * CHUNK, &mut tail).unwrap();
        assert_eq!(&tail[..], &data[3 * CHUNK as usize..]);
        r.read_at("k", size, 0, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[..5000]);
        assert!(r.chunks.bytes() <= 2 * CHUNK);
        // Past the end, and a missing object: errors, not panics.
        assert!(r.read_at("k", size, size - 10, &mut buf).is_err());
        assert!(r.read_at("gone", 100, 0, &mut buf[..10]).is_err());
        assert_eq!(r.stats.failures.load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A lost object is one event however often it is read, each lost object its own; an
    /// outage is one event until a read succeeds again.
    #[test]
    fn failed_reads_are_events_once() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        rt.block_on(store.put(&Key::from("k"), bytes::Bytes::from(vec![1u8; 100]).into())).unwrap();
        let dir = std::env::temp_dir().join(format!("openva-remote-read-events-{}", std::process::id()));
        let bus = Arc::new(Bus::new("/test"));
        let (_, mut rx) = bus.subscribe(None);
        let r =
            ChunkReader::new(store, rt.handle().clone(), dir.clone(), 0).unwrap().with_events(bus, "s3://b/p".into());
        let mut buf = [0u8; 10];
        for key in ["gone", "gone", "lost", "gone"] {
            let e = r.read_at(key, 100, 0, &mut buf).unwrap_err();
            assert!(RemoteReadFailed::in_io(&e).is_some_and(|f| f.key == key && f.end == 100), "{e}");
        }
        let mut said = Vec::new();
        while let Ok(e) = rx.try_recv() {
            assert_eq!(
                (e.event_type, e.body["errorCode"].as_str()),
                (EventType::StorageError, Some("RemoteReadFailed"))
            );
            assert_eq!(e.body["target"], "s3://b/p");
            said.push(e.body["key"].as_str().unwrap().to_owned());
        }
        assert_eq!(said, ["gone", "lost"]);
        assert_eq!(r.stats.failures.load(Ordering::Relaxed), 4);
        // An outage: the first failure says so, the next do not; a success ends it.
        r.report(&RemoteReadFailed { key: "k".into(), start: 0, end: 1, reason: "503".into() }, false);
        r.report(&RemoteReadFailed { key: "k".into(), start: 0, end: 1, reason: "503".into() }, false);
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 1);
        r.read_at("k", 100, 0, &mut buf).unwrap();
        r.report(&RemoteReadFailed { key: "k".into(), start: 0, end: 1, reason: "503".into() }, false);
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
