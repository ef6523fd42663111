//! The disk cache of transcoded segments and the bound on transcoding.
//!
//! - **Made once:** a segment is made by the first request for it. Requests for the same
//!   segment while it is being made wait for that result instead of starting another
//!   transcode. Later requests read the file. Two viewers of one range cost one transcode.
//! - **Bounded work:** at most `slots` segments are transcoded at once, each on one thread.
//!   A request that would need another slot is refused at once (`VariantError::Busy`, a 503
//!   with `Retry-After`) rather than queued. A queue would let playback requests pile up behind
//!   each other and take the CPU recording needs.
//! - **Bounded disk:** files are written under a temporary name and renamed, so a reader never
//!   sees a partial segment. The least recently used are deleted to stay under `cap` bytes. The
//!   directory is emptied at start: a cache, never a second archive (a deleted recording's
//!   variants do not outlive a restart, requests check the segment exists before asking, and
//!   deleting a video forgets its entries: a new video of that name reuses file names).

use super::VariantError;
use crate::disk_lru::DiskLru;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Longest a request waits for another request's transcode of the same segment.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(60);

/// A segment being made: its result, once there.
type Pending = Arc<(Mutex<Option<Result<Bytes, String>>>, Condvar)>;

#[derive(Default)]
struct State {
    making: HashMap<String, Pending>,
    busy: usize,
}

/// Cache statistics, for `/metrics` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Segments served from the cache.
    pub hits: u64,
    /// Segments transcoded.
    pub made: u64,
    /// Requests refused because every slot was busy.
    pub refused: u64,
    /// Bytes in the cache now.
    pub bytes: u64,
}

/// Transcoded segments on disk, and the slots that make them.
pub struct VariantCache {
    files: DiskLru,
    slots: usize,
    state: Mutex<State>,
    stats: Mutex<CacheStats>,
}

impl VariantCache {
    /// A cache in `dir` (emptied) of at most `cap` bytes, making at most `slots` segments at
    /// once.
    pub fn new(dir: PathBuf, cap: u64, slots: usize) -> std::io::Result<Self> {
        Ok(VariantCache {
            files: DiskLru::new(dir, cap)?,
            slots: slots.max(1),
            state: Mutex::new(State::default()),
            stats: Mutex::new(CacheStats::default()),
        })
    }

    /// How many segments are made at once.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Counts so far.
    pub fn stats(&self) -> CacheStats {
        let mut s = *self.stats.lock().unwrap_or_else(|p| p.into_inner());
        s.bytes = self.files.bytes();
        s
    }

    /// The length of what is cached under `key`, without reading or making it.
    pub fn cached_len(&self, key: &str) -> Option<u64> {
        self.files.len_of(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, f: impl FnOnce(&mut CacheStats)) {
        f(&mut self.stats.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The bytes cached under `key`, or made by `make` (in this thread, in one of the slots)
    /// and cached. Blocking.
    pub fn get_or_make(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Vec<u8>, VariantError>,
    ) -> Result<Bytes, VariantError> {
        if let Some(bytes) = self.files.get(key) {
            self.count(|s| s.hits += 1);
            return Ok(Bytes::from(bytes));
        }
        // Take a slot and say this key is being made, in one step. A maker keeps its result
        // before it stops saying so: a key neither being made nor kept here is not made yet.
        let mine: Pending = Arc::new((Mutex::new(None), Condvar::new()));
        {
            let mut st = self.lock();
            if let Some(p) = st.making.get(key).cloned() {
                drop(st);
                return self.wait_for(&p);
            }
            if self.files.contains(key) {
                drop(st);
                if let Some(bytes) = self.files.get(key) {
                    self.count(|s| s.hits += 1);
                    return Ok(Bytes::from(bytes));
                }
                return self.get_or_make(key, make);
            }
            if st.busy >= self.slots {
                drop(st);
                self.count(|s| s.refused += 1);
                return Err(VariantError::Busy(self.slots));
            }
            st.busy += 1;
            st.making.insert(key.to_owned(), mine.clone());
        }
        let made = make().map(Bytes::from);
        if let Ok(bytes) = &made {
            self.count(|s| s.made += 1);
            if let Err(e) = self.files.put(key, bytes) {
                tracing::warn!("cannot cache a transcoded segment in {}: {e}", self.files.dir().display());
            }
        }
        {
            let mut st = self.lock();
            st.busy -= 1;
            st.making.remove(key);
        }
        let (slot, done) = &*mine;
        *slot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(made.as_ref().map(Bytes::clone).map_err(|e| e.to_string()));
        done.notify_all();
        made
    }

    fn wait_for(&self, p: &Pending) -> Result<Bytes, VariantError> {
        let (slot, done) = &**p;
        let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) =
            done.wait_timeout_while(guard, WAIT_FOR_OTHER, |r| r.is_none()).unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(Ok(bytes)) => {
                self.count(|s| s.hits += 1);
                Ok(bytes.clone())
            }
            Some(Err(e)) => Err(VariantError::Segment { file: "(shared transcode)".into(), message: e.clone() }),
            None => Err(VariantError::Busy(self.slots)),
        }
    }

    /// Drops every entry whose key starts with `prefix` (a deleted video's `name/`): a video
    /// made again under the same name reuses its segment file names, and must never be served
    /// the old one's pictures.
    pub fn forget(&self, prefix: &str) {
        self.files.forget_prefix(prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("openva-variant-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn made_once_then_read_and_evicted_oldest_first() {
        let c = VariantCache::new(dir("lru"), 250, 1).unwrap();
        let a = c.get_or_make("a", || Ok(vec![1; 100])).unwrap();
        assert_eq!(a.len(), 100);
        let again = c.get_or_make("a", || panic!("made twice")).unwrap();
        assert_eq!(*again, vec![1; 100]);
        c.get_or_make("b", || Ok(vec![2; 100])).unwrap();
        // "a" was last read before "b" was made: it is the least recently used.
        c.get_or_make("c", || Ok(vec![3; 100])).unwrap();
        let s = c.stats();
        assert_eq!((s.made, s.hits, s.bytes), (3, 1, 200));
        let mut remade = false;
        c.get_or_make("a", || {
            remade = true;
            Ok(vec![1; 100])
        })
        .unwrap();
        assert!(remade, "the least recently used went first");
        assert!(c.get_or_make("x", || Err(VariantError::BadRequest("no".into()))).is_err());
        // Larger than the whole cache: served, not kept.
        assert_eq!(c.get_or_make("big", || Ok(vec![0; 1000])).unwrap().len(), 1000);
        assert!(c.stats().bytes <= 250);
        // A deleted video's entries go, others stay.
        let c2 = VariantCache::new(dir("forget"), 1 << 20, 1).unwrap();
        c2.get_or_make("cam/1.mp4/init.mp4", || Ok(vec![1; 10])).unwrap();
        c2.get_or_make("camera/1.mp4/init.mp4", || Ok(vec![2; 10])).unwrap();
        c2.forget("cam/");
        let mut remade = false;
        c2.get_or_make("cam/1.mp4/init.mp4", || {
            remade = true;
            Ok(vec![3; 10])
        })
        .unwrap();
        assert!(remade, "a forgotten entry is made again");
        assert_eq!(*c2.get_or_make("camera/1.mp4/init.mp4", || panic!("forgotten")).unwrap(), vec![2; 10]);
        let _ = std::fs::remove_dir_all(c.files.dir());
        let _ = std::fs::remove_dir_all(c2.files.dir());
    }

    #[test]
    fn a_second_request_waits_for_the_first_and_a_third_key_is_refused() {
        let c = Arc::new(VariantCache::new(dir("share"), 1 << 20, 1).unwrap());
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let c = c.clone();
            std::thread::spawn(move || {
                c.get_or_make("seg", || {
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    Ok(vec![7; 10])
                })
            })
        };
        started_rx.recv().unwrap();
        let second = {
            let c = c.clone();
            std::thread::spawn(move || c.get_or_make("seg", || panic!("the same segment made twice")))
        };
        // Another segment while the only slot is busy: refused at once.
        match c.get_or_make("other", || panic!("no slot was free")) {
            Err(VariantError::Busy(1)) => {}
            other => panic!("{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(50));
        go_tx.send(()).unwrap();
        assert_eq!(*first.join().unwrap().unwrap(), vec![7; 10]);
        assert_eq!(*second.join().unwrap().unwrap(), vec![7; 10]);
        let s = c.stats();
        assert_eq!((s.made, s.refused), (1, 1));
        let _ = std::fs::remove_dir_all(c.files.dir());
    }
}
