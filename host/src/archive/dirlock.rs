//! One process writes a data directory: the host and every command that writes (`record`,
//! `video set --data`, `check --repair`) hold an advisory lock on `DATA/.openva.lock` for as
//! long as they run. A second writer is refused at once with the holder's pid and command, so
//! `check --repair` can never replace the index under a running host (whose writes would go to
//! an unlinked file and be lost), and two hosts never share one archive.
//!
//! Readers (`ranges`, `export`, `check` without `--repair`) take no lock: SQLite's WAL lets
//! them read beside the writer. Within one process the lock is shared: every `Archive` opened
//! on the same directory holds the same lock (the kernel's `flock` would otherwise refuse a
//! second open file in the same process).

use super::ArchiveError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = ".openva.lock";

/// The held lock; released when the last holder in this process drops it.
#[derive(Clone)]
pub struct DataLock(#[allow(dead_code)] Arc<File>);

/// Locks held by this process, by the data directory's (device, inode).
type Held = HashMap<(u64, u64), Weak<File>>;
static HELD: Mutex<Option<Held>> = Mutex::new(None);

impl DataLock {
    /// Takes the lock of the data directory `root` (which must exist), or shares the one this
    /// process already holds.
    pub fn acquire(root: &Path) -> Result<DataLock, ArchiveError> {
        let meta = std::fs::metadata(root).map_err(ArchiveError::io("opening", root))?;
        let key = (meta.dev(), meta.ino());
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if let Some(f) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(DataLock(f));
        }
        let path = root.join(LOCK_FILE);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(ArchiveError::io("opening", &path))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = f.read_to_string(&mut holder);
                return Err(ArchiveError::DirInUse { dir: root.to_path_buf(), holder: describe(&holder) });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(ArchiveError::io("locking", &path)(e)),
        }
        // Who holds it, for the next one's message (best effort: the lock is what counts).
        let _ =
            f.set_len(0).and_then(|()| f.rewind()).and_then(|()| writeln!(f, "{} {}", std::process::id(), command()));
        let f = Arc::new(f);
        held.retain(|_, w| w.strong_count() > 0);
        held.insert(key, Arc::downgrade(&f));
        Ok(DataLock(f))
    }
}

/// This process's command, as `openva serve`.
fn command() -> String {
    let mut args = std::env::args();
    let bin = args.next().map(PathBuf::from);
    let bin =
        bin.as_deref().and_then(Path::file_name).map_or_else(|| "openva".into(), |b| b.to_string_lossy().into_owned());
    match args.next() {
        Some(sub) if !sub.starts_with('-') => format!("{bin} {sub}"),
        _ => bin,
    }
}

/// The holder as the lock file names it: `openva serve (pid 1234)`.
fn describe(content: &str) -> String {
    match content.trim().split_once(' ') {
        Some((pid, cmd)) if pid.parse::<u32>().is_ok() => format!("{cmd} (pid {pid})"),
        _ => "another process".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_shares_it_and_names_itself() {
        let t = crate::archive::test_dir::tmp("dirlock", "share");
        std::fs::create_dir_all(&t.0).expect("dir");
        let a = DataLock::acquire(&t.0).expect("lock");
        let b = DataLock::acquire(&t.0).expect("shared in one process");
        let text = std::fs::read_to_string(t.0.join(LOCK_FILE)).expect("lock file");
        assert!(text.starts_with(&format!("{} ", std::process::id())), "{text}");
        drop((a, b));
        // Another open file description is refused while one is held (as another process is).
        let _held = DataLock::acquire(&t.0).expect("again");
        let other = File::open(t.0.join(LOCK_FILE)).expect("open");
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        assert_eq!(describe("1234 openva serve\n"), "openva serve (pid 1234)");
        assert_eq!(describe(""), "another process");
    }
}
