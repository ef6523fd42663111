//! A byte-capped cache of blobs on local disk, least recently used first out: the one kept by
//! transcoded segments (`pipeline::variant::cache`) and by chunks read from the remote tier
//! (`remote::read`).
//!
//! - **A cache, never a second archive:** the directory is emptied when the cache is made, so
//!   nothing in it outlives a restart (a deleted recording's bytes included).
//! - **Never a partial blob:** each is written under a temporary name and renamed.
//! - **Bounded disk:** after each write the least recently used blobs are deleted until the
//!   total is under the cap; a blob larger than the whole cap is not kept.
//! - **No name from a key:** each blob's file is named by a number the cache gives it, so no
//!   key (a video name, an object key) ever names a path, and two keys never share a file.
//! - A blob whose file has gone (someone cleaned the directory) is forgotten when read.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Entry {
    /// The file's number (its name).
    file: u64,
    bytes: u64,
    /// When last used, on the cache's clock (a key of `State::order`).
    used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Last use → key: the least recently used first.
    order: BTreeMap<u64, String>,
    total: u64,
    clock: u64,
}

impl State {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let e = self.entries.remove(key)?;
        self.order.remove(&e.used);
        self.total -= e.bytes;
        Some(e)
    }
}

/// Blobs on disk under a byte cap (see the module's doc).
pub struct DiskLru {
    dir: PathBuf,
    cap: u64,
    state: Mutex<State>,
}

impl DiskLru {
    /// A cache of at most `cap` bytes in `dir`, emptied (made if missing).
    pub fn new(dir: PathBuf, cap: u64) -> std::io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(DiskLru { dir, cap, state: Mutex::new(State::default()) })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, file: u64) -> PathBuf {
        self.dir.join(format!("{file}.blob"))
    }

    /// The blob kept under `key`, now the most recently used; `None` if there is none (or
    /// its file has gone, which forgets it).
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let file = {
            let mut st = self.lock();
            let now = st.tick();
            let e = st.entries.get_mut(key)?;
            let was = std::mem::replace(&mut e.used, now);
            let file = e.file;
            st.order.remove(&was);
            st.order.insert(now, key.to_owned());
            file
        };
        match std::fs::read(self.path(file)) {
            Ok(b) => Some(b),
            Err(_) => {
                let mut st = self.lock();
                // Only if it is still that file (not written again meanwhile).
                if st.entries.get(key).is_some_and(|e| e.file == file) {
                    st.remove(key);
                }
                None
            }
        }
    }

    /// Whether a blob is kept under `key` (without using it).
    pub fn contains(&self, key: &str) -> bool {
        self.lock().entries.contains_key(key)
    }

    /// The length of the blob under `key`, without reading or using it.
    pub fn len_of(&self, key: &str) -> Option<u64> {
        self.lock().entries.get(key).map(|e| e.bytes)
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> u64 {
        self.lock().total
    }

    /// Keeps `bytes` under `key` (replacing what was there), then deletes the least recently
    /// used blobs beyond the cap. A blob larger than the cap is not kept (`Ok`).
    pub fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let len = bytes.len() as u64;
        if len > self.cap {
            return Ok(());
        }
        let file = self.lock().tick();
        let (path, tmp) = (self.path(file), self.dir.join(format!("{file}.tmp")));
        if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let mut gone = Vec::new();
        {
            let mut st = self.lock();
            let used = st.tick();
            if let Some(old) = st.remove(key) {
                gone.push(old.file);
            }
            st.entries.insert(key.to_owned(), Entry { file, bytes: len, used });
            st.order.insert(used, key.to_owned());
            st.total += len;
            while st.total > self.cap {
                let Some(oldest) = st.order.values().next().cloned() else { break };
                if let Some(e) = st.remove(&oldest) {
                    gone.push(e.file);
                }
            }
        }
        for f in gone {
            let _ = std::fs::remove_file(self.path(f));
        }
        Ok(())
    }

    /// Deletes every blob whose key starts with `prefix`.
    pub fn forget_prefix(&self, prefix: &str) {
        let gone: Vec<u64> = {
            let mut st = self.lock();
            let keys: Vec<String> = st.entries.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
            keys.iter().filter_map(|k| st.remove(k)).map(|e| e.file).collect()
        };
        for f in gone {
            let _ = std::fs::remove_file(self.path(f));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &str, cap: u64) -> DiskLru {
        let d = std::env::temp_dir().join(format!("openva-disk-lru-{name}-{}", std::process::id()));
        DiskLru::new(d, cap).unwrap()
    }

    fn files(c: &DiskLru) -> usize {
        std::fs::read_dir(c.dir()).unwrap().count()
    }

    #[test]
    fn least_recently_used_go_first_under_the_cap() {
        let c = cache("lru", 250);
        c.put("a", &[1; 100]).unwrap();
        c.put("b", &[2; 100]).unwrap();
        assert_eq!(c.get("a").unwrap(), vec![1; 100]);
        // "b" is now the least recently used.
        c.put("c", &[3; 100]).unwrap();
        assert!(c.get("b").is_none() && c.contains("a") && c.contains("c"));
        assert_eq!((c.bytes(), files(&c)), (200, 2));
        // Written again: replaced, counted once.
        c.put("a", &[4; 50]).unwrap();
        assert_eq!((c.get("a").unwrap(), c.bytes(), files(&c)), (vec![4; 50], 150, 2));
        // Larger than the cap: not kept, nothing evicted for it.
        c.put("big", &[0; 300]).unwrap();
        assert_eq!((c.contains("big"), c.bytes()), (false, 150));
        let _ = std::fs::remove_dir_all(c.dir());
    }

    #[test]
    fn forgets_by_prefix_and_files_that_went() {
        let c = cache("forget", 1000);
        for k in ["cam/1", "cam/2", "door/1"] {
            c.put(k, k.as_bytes()).unwrap();
        }
        c.forget_prefix("cam/");
        assert_eq!((c.contains("cam/1"), c.contains("door/1"), c.len_of("door/1")), (false, true, Some(6)));
        assert_eq!(files(&c), 1);
        // Someone empties the directory: the entry is forgotten at its next read.
        for e in std::fs::read_dir(c.dir()).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        assert!(c.get("door/1").is_none() && !c.contains("door/1") && c.bytes() == 0);
        // A new cache in the same directory starts empty.
        c.put("x", b"x").unwrap();
        let again = DiskLru::new(c.dir().to_owned(), 10).unwrap();
        assert_eq!((files(&again), again.bytes()), (0, 0));
        let _ = std::fs::remove_dir_all(again.dir());
    }
}
