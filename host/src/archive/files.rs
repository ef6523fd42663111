//! File videos (AVA's `type: File`): one finished MP4 per video, written by a batch job into a
//! staging directory, then moved into the archive and registered in one step; and deleting
//! videos of either kind.
//!
//! A File video appears atomically (docs/archive.md, "File videos"): the caller writes and
//! fsyncs the MP4 under `staging/`, then [`Archive::add_file_video`] takes the video's lock,
//! and inside one SQLite transaction inserts the rows, marks the directory as registering,
//! renames the file to `videos/<name>/content.mp4`, fsyncs the directory and commits. A crash
//! before the commit leaves no row; the renamed file, if any, lies next to the marker, and the
//! next open removes both. What a crash leaves under `staging/` is removed too, unless its
//! owner still holds it.

use super::db::{self, FileMeta, FileVideo, VideoKind, VideoRow};
use super::{Archive, ArchiveError, lock_video, sync_dir, validate_video_name};
use crate::time::Time90k;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Name of a File video's MP4 inside its directory. Segment files are `<run>-<seq>.mp4`, so
/// the two never meet.
pub(crate) const FILE_NAME: &str = "content.mp4";

/// Marker in a video directory while a registration is between rename and commit: an MP4
/// without a row is removed by recovery only next to it. Without it (an index lost or
/// restored from a backup) the file is left for `check --repair` to register.
pub(crate) const MARKER: &str = ".registering";

/// Directory under the data directory where jobs write MP4s before registering them: inside
/// the archive root, so the final rename stays on one file system.
const STAGING_DIR: &str = "staging";

/// One archive instance's staging directory, `staging/<pid>-<nanos>/`. Its `.lock` is held as
/// long as the instance lives, which tells cleanup in other processes (and other instances)
/// that the files in it are still being written.
pub(crate) struct Staging {
    dir: PathBuf,
    _lock: File,
    next: u64,
}

impl Drop for Staging {
    /// Whatever is still staged when the archive closes was never registered; the lock is
    /// still held here, so no one else is using the directory.
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

impl Staging {
    /// Whether nothing is staged (only the lock file is there).
    fn is_empty(&self) -> bool {
        std::fs::read_dir(&self.dir).map(|mut rd| rd.all(|e| e.is_ok_and(|e| e.file_name() == ".lock"))).unwrap_or(true)
    }

    fn create(root: &Path) -> Result<Self, ArchiveError> {
        let base = root.join(STAGING_DIR);
        for attempt in 0u32..10 {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let id = format!("{}-{nanos}-{attempt}", std::process::id());
            let dir = base.join(&id);
            // The same lock protocol as a video's directory: cleanup that wins the race
            // removes the directory, and the retry takes a new name.
            match lock_video(&dir, &id) {
                Ok(lock) => return Ok(Staging { dir, _lock: lock, next: 0 }),
                Err(ArchiveError::Locked(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ArchiveError::Locked(STAGING_DIR.into()))
    }
}

impl Archive {
    /// At a clean shutdown: removes this instance's staging directory when nothing is staged
    /// in it (a job still writing keeps it, and the next open cleans up). Not left to `Drop`:
    /// the process may exit while a thread still holds the archive, and then a clean stop
    /// would leave what `check` reports as a crash's staging.
    pub fn close_staging(&self) {
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        if staging.as_ref().is_some_and(Staging::is_empty) {
            staging.take();
        }
    }

    /// A path inside the archive root (same filesystem, so the final rename is atomic) where a job
    /// may write the MP4 for video `name` before registering it; the directory exists on return.
    /// Staging files left by a crash are removed when the archive opens (or by `check --repair`).
    ///
    /// Every call returns a new path. The directory belongs to this `Archive` value: files in it
    /// are safe from cleanup by other processes while it lives, and removed when it is dropped.
    pub fn file_staging_path(&self, name: &str) -> Result<PathBuf, ArchiveError> {
        validate_video_name(name)?;
        let mut staging = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let s = match staging.as_mut() {
            Some(s) if s.dir.is_dir() => s,
            _ => staging.insert(Staging::create(&self.root)?),
        };
        s.next += 1;
        Ok(s.dir.join(format!("{name}.{}.mp4", s.next)))
    }

    /// Registers the finished, fsynced MP4 at `staged` as File video `name`: moves it (rename) into the
    /// video's directory and inserts the row in one step; a crash in between leaves either nothing or a
    /// complete video, never a partial file with the final name. Fails with a clear ArchiveError if a
    /// video of that name exists (of either kind) or the name is invalid (validate_video_name).
    ///
    /// On failure the staged file stays where it was, for the caller to retry or remove.
    pub fn add_file_video(
        &self,
        name: &str,
        staged: &Path,
        title: Option<&str>,
        description: Option<&str>,
        meta: FileMeta,
    ) -> Result<VideoRow, ArchiveError> {
        validate_video_name(name)?;
        if db::video_by_name(&self.conn(), name)?.is_some() {
            return Err(ArchiveError::VideoExists(name.to_owned()));
        }
        let md = std::fs::metadata(staged).map_err(ArchiveError::io("reading the staged file", staged))?;
        if !md.is_file() {
            let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
            return Err(ArchiveError::io("registering", staged)(e));
        }
        let dir = self.video_dir(name);
        // The video's lock: no recorder, registration, deletion or cleanup of this name runs
        // meanwhile, in this process or another.
        let lock = lock_video(&dir, name)?;
        let rel = format!("videos/{name}/{FILE_NAME}");
        let file = FileVideo { file: rel.clone(), bytes: md.len(), meta: Some(meta) };
        let result = self.register_locked(name, staged, &dir, title, description, &file);
        if result.is_err() && db::video_by_name(&self.conn(), name).is_ok_and(|v| v.is_none()) {
            // A directory without a video would come back as an empty video from `repair`.
            let _ = remove_dir_if_empty(&dir);
        }
        drop(lock);
        result
    }

    /// The rows, rename and commit of `add_file_video`, with the video's lock held.
    fn register_locked(
        &self,
        name: &str,
        staged: &Path,
        dir: &Path,
        title: Option<&str>,
        description: Option<&str>,
        file: &FileVideo,
    ) -> Result<VideoRow, ArchiveError> {
        let dest = self.root.join(&file.file);
        let mut conn = self.conn();
        // FULL for this one commit: with NORMAL a power loss may undo the last commits, and the
        // next open would then remove the MP4 as the leftover of an unfinished registration.
        db::with_full_sync(&mut conn, |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if db::video_by_name(&tx, name)?.is_some() {
                return Err(ArchiveError::VideoExists(name.to_owned()));
            }
            let marker = dir.join(MARKER);
            if dest.exists() {
                // No row and the lock held: an MP4 here is either what a crash left between
                // rename and commit (marked; it is not a video, the new one replaces it) or a
                // file no index knows (kept: `check --repair` registers it).
                if !marker.exists() {
                    return Err(ArchiveError::Corrupt(format!("{} exists but no video row knows it", file.file)));
                }
                std::fs::remove_file(&dest).map_err(ArchiveError::io("removing", &dest))?;
                tracing::warn!(video = name, "replacing a file left by an interrupted registration");
            }
            db::insert_file_video(&tx, name, Time90k::now(), title, description, file)?;
            // Marker, then rename, each made durable before the next step.
            let undo = || {
                let _ = std::fs::rename(&dest, staged);
                let _ = std::fs::remove_file(&marker);
            };
            if let Err(e) =
                File::create(&marker).map_err(ArchiveError::io("creating", &marker)).and_then(|_| sync_dir(dir))
            {
                undo();
                return Err(e);
            }
            if let Err(e) = std::fs::rename(staged, &dest) {
                undo();
                return Err(ArchiveError::io("moving the staged file to", &dest)(e));
            }
            if let Err(e) = sync_dir(dir).and_then(|()| Ok(tx.commit()?)) {
                // The transaction rolls back; put the file back so the name stays free and the
                // caller still has its file.
                undo();
                return Err(e);
            }
            // Committed: the marker has done its work (one left behind is harmless).
            let _ = std::fs::remove_file(&marker);
            Ok(())
        })?;
        db::video_by_name(&conn, name)?.ok_or_else(|| ArchiveError::UnknownVideo(name.to_owned()))
    }

    /// The MP4 of a File video (None for archives).
    pub fn file_video_path(&self, v: &VideoRow) -> Option<PathBuf> {
        v.file.as_ref().map(|f| self.root.join(&f.file))
    }

    /// Deletes a video and all its data. A File video: row and file. An Archive video: only when no
    /// VideoWriter holds it (ArchiveError::Locked otherwise) — rows, segments, files.
    ///
    /// The rows go in one transaction that lists the files as garbage; the files are unlinked
    /// after it, and a crash in between is finished by the next open (docs/archive.md).
    pub fn delete_video(&self, name: &str) -> Result<(), ArchiveError> {
        validate_video_name(name)?;
        // Before touching the disk: an unknown name must not leave a directory behind.
        self.video(name)?;
        let dir = self.video_dir(name);
        let lock = lock_video(&dir, name)?;
        // Again under the lock: another process may have deleted it meanwhile.
        let v = self.video(name)?;
        // Durable before any file is unlinked: a power loss must not bring rows back whose
        // files are gone.
        let files: Vec<String> = db::with_full_sync(&mut self.conn(), |conn| {
            let tx = conn.transaction()?;
            let files = match v.kind {
                VideoKind::File => {
                    tx.execute("DELETE FROM file_video WHERE video_id = ?1", [v.id])?;
                    v.file.iter().map(|f| f.file.clone()).collect()
                }
                VideoKind::Archive => {
                    let files = {
                        let mut st = tx.prepare("SELECT file FROM segment WHERE video_id = ?1")?;
                        st.query_map([v.id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?
                    };
                    tx.execute("DELETE FROM segment WHERE video_id = ?1", [v.id])?;
                    tx.execute("DELETE FROM run WHERE video_id = ?1", [v.id])?;
                    // A row a failed writer left published must not outlive the video (its id
                    // may be reused by the next video made).
                    self.live.retire_video(v.id);
                    files
                }
            };
            for f in &files {
                tx.execute("INSERT OR IGNORE INTO garbage (file) VALUES (?1)", [f])?;
            }
            tx.execute("DELETE FROM video WHERE id = ?1", [v.id])?;
            tx.commit()?;
            Ok(files)
        })?;
        unlink_all(self, &dir, &files)?;
        if !remove_dir_if_empty(&dir)? {
            tracing::warn!(video = name, "deleted; files no index row knows are left in {}", dir.display());
        }
        drop(lock);
        tracing::info!(video = name, kind = v.kind.as_str(), files = files.len(), "video deleted");
        Ok(())
    }
}

/// Unlinks the garbage files `rels` of one directory, fsyncs it once (a deleted archive may
/// have thousands of segments), then forgets them.
fn unlink_all(archive: &Archive, dir: &Path, rels: &[String]) -> Result<(), ArchiveError> {
    for rel in rels {
        let path = archive.segment_path(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("deleting", &path)(e)),
        }
    }
    if dir.is_dir() {
        sync_dir(dir)?;
    }
    let mut conn = archive.conn();
    let tx = conn.transaction()?;
    for rel in rels {
        tx.execute("DELETE FROM garbage WHERE file = ?1", [rel])?;
    }
    tx.commit()?;
    Ok(())
}

/// Removes a video directory that holds nothing but its lock file (and perhaps a registration
/// marker) — call with the lock held.
/// Returns whether it is gone.
pub(crate) fn remove_dir_if_empty(dir: &Path) -> Result<bool, ArchiveError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(ArchiveError::io("listing", dir)(e)),
    };
    for ent in rd {
        let ent = ent.map_err(ArchiveError::io("listing", dir))?;
        if ent.file_name() != ".lock" && ent.file_name() != MARKER {
            return Ok(false);
        }
    }
    for f in [MARKER, ".lock"] {
        let p = dir.join(f);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("removing", &p)(e)),
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Someone made a file meanwhile (a recorder that lost the race for the lock retries).
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => return Ok(false),
        Err(e) => return Err(ArchiveError::io("removing", dir)(e)),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(true)
}

/// What a crash left of File videos and deletions: staging directories no live archive holds,
/// MP4s renamed into place whose registration never committed, garbage of deleted videos,
/// and their empty directories. Run when an archive opens for writing; failures are logged,
/// they never stop the archive from opening.
pub(crate) fn remove_leftovers(archive: &Archive) {
    match remove_stale_staging(archive.root()) {
        Ok(0) => {}
        Ok(n) => tracing::warn!("removed {n} staging director(ies) left by a crash"),
        Err(e) => tracing::warn!("cleaning up staging files: {e}"),
    }
    if let Err(e) = remove_orphans(archive) {
        tracing::warn!("cleaning up after an interrupted registration or deletion: {e}");
    }
}

/// Staging directories (and stray files) under `staging/` that no live archive holds.
pub(crate) fn stale_staging(root: &Path) -> Result<Vec<PathBuf>, ArchiveError> {
    let base = root.join(STAGING_DIR);
    let rd = match std::fs::read_dir(&base) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ArchiveError::io("listing", &base)(e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let path = ent.map_err(ArchiveError::io("listing", &base))?.path();
        if !path.is_dir() || try_lock_staging(&path)?.is_some() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The lock of a staging directory if nobody holds it: `Some(None)` when it has no lock file
/// (its creator died before making one, or has not made it yet and will retry), `None` when
/// it is held.
fn try_lock_staging(dir: &Path) -> Result<Option<Option<File>>, ArchiveError> {
    let p = dir.join(".lock");
    match File::open(&p) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Ok(Some(Some(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(ArchiveError::io("locking", &p)(e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Some(None)),
        Err(e) => Err(ArchiveError::io("opening", &p)(e)),
    }
}

/// Removes what [`stale_staging`] finds, each directory while holding its lock. Returns how
/// many entries went.
pub(crate) fn remove_stale_staging(root: &Path) -> Result<usize, ArchiveError> {
    let mut n = 0;
    for path in stale_staging(root)? {
        if !path.is_dir() {
            match std::fs::remove_file(&path) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ArchiveError::io("removing", &path)(e)),
            }
            continue;
        }
        // Taken again: the owner may have come back to life since the listing (it cannot, but a
        // new directory of the same name could have been made).
        let Some(guard) = try_lock_staging(&path)? else { continue };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("removing", &path)(e)),
        }
        drop(guard);
    }
    Ok(n)
}

/// Names under `videos/` (directories, and videos named by pending garbage) that have no
/// video row: the leftovers of interrupted registrations and deletions.
fn names_without_rows(archive: &Archive) -> Result<Vec<String>, ArchiveError> {
    let conn = archive.conn();
    let known: BTreeSet<String> = db::videos(&conn)?.into_iter().map(|v| v.name).collect();
    let mut names = BTreeSet::new();
    {
        let mut st = conn.prepare("SELECT file FROM garbage")?;
        for f in st.query_map([], |r| r.get::<_, String>(0))? {
            if let Some(n) = f?.strip_prefix("videos/").and_then(|r| r.split('/').next()) {
                names.insert(n.to_owned());
            }
        }
    }
    drop(conn);
    let videos = archive.root().join("videos");
    if let Ok(rd) = std::fs::read_dir(&videos) {
        for ent in rd {
            let ent = ent.map_err(ArchiveError::io("listing", &videos))?;
            if ent.path().is_dir()
                && let Some(n) = ent.file_name().to_str()
            {
                names.insert(n.to_owned());
            }
        }
    }
    Ok(names.into_iter().filter(|n| validate_video_name(n).is_ok() && !known.contains(n)).collect())
}

fn remove_orphans(archive: &Archive) -> Result<(), ArchiveError> {
    for name in names_without_rows(archive)? {
        let dir = archive.video_dir(&name);
        // Held by someone: a registration or a recorder is creating this video right now.
        let lock = match lock_video(&dir, &name) {
            Ok(l) => l,
            Err(ArchiveError::Locked(_)) => continue,
            Err(e) => return Err(e),
        };
        // Creating a video takes its lock, so without a row now there will be none meanwhile.
        if db::video_by_name(&archive.conn(), &name)?.is_some() {
            continue;
        }
        super::recover::collect_garbage(archive, Some(&name))?;
        let mp4 = dir.join(FILE_NAME);
        if dir.join(MARKER).exists() {
            match std::fs::remove_file(&mp4) {
                Ok(()) => {
                    tracing::warn!(video = name, "removed the MP4 of a registration a crash interrupted");
                    sync_dir(&dir)?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ArchiveError::io("removing", &mp4)(e)),
            }
        } else if mp4.exists() {
            tracing::warn!(video = name, "{} has no video row; `openva check --repair` registers it", mp4.display());
        }
        remove_dir_if_empty(&dir)?;
        drop(lock);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::VideoConfig;
    use crate::archive::writer::{Frame, SampleEntry, VideoWriter};
    use std::sync::Arc;

    use crate::archive::test_dir::Tmp;

    fn tmp(name: &str) -> Tmp {
        crate::archive::test_dir::tmp("files", name)
    }

    const META: FileMeta = FileMeta { duration_90k: 270_000, width: 320, height: 240, frames: 75 };

    /// Stages `bytes` as a job would: write, fsync, then register.
    fn stage(a: &Archive, name: &str, bytes: &[u8]) -> PathBuf {
        let p = a.file_staging_path(name).expect("staging path");
        let mut f = File::create(&p).expect("create staged");
        std::io::Write::write_all(&mut f, bytes).expect("write");
        f.sync_all().expect("fsync");
        p
    }

    /// Records a few seconds of fake frames into archive video `name`.
    fn record(a: &Arc<Archive>, name: &str) -> VideoWriter {
        let mut w = VideoWriter::open(a.clone(), name, VideoConfig::default()).expect("writer");
        w.begin_run().expect("run");
        let mut data = Vec::new();
        crate::mp4::put_box(&mut data, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        w.set_sample_entry(SampleEntry { data, width: 640, height: 360 }).expect("entry");
        let base = Time90k::now().0 - 3600 * 90_000;
        for n in 0..100i64 {
            let f = Frame {
                media_90k: n * 3600,
                cts: 0,
                received: Time90k(base + n * 3600),
                key: n % 25 == 0,
                data: vec![1; 50],
                new_clock: false,
            };
            w.push(f).expect("push");
        }
        w.end_run().expect("end run");
        w
    }

    #[test]
    fn file_video_is_registered_and_read_back() {
        let t = tmp("add");
        let a = Archive::open_or_create(&t.0).expect("archive");
        let staged = stage(&a, "batch-1", b"an mp4, as far as the archive cares");
        assert!(staged.starts_with(t.0.join(STAGING_DIR)), "{}", staged.display());
        let v = a.add_file_video("batch-1", &staged, Some("Title"), Some("Desc"), META).expect("registered");
        assert_eq!(v.kind, VideoKind::File);
        assert_eq!(v.kind.as_str(), "File");
        assert_eq!((v.title.as_deref(), v.description.as_deref()), (Some("Title"), Some("Desc")));
        let f = v.file.clone().expect("file facts");
        assert_eq!((f.file.as_str(), f.bytes, f.meta), ("videos/batch-1/content.mp4", 35, Some(META)));
        let path = a.file_video_path(&v).expect("path");
        assert_eq!(std::fs::read(&path).expect("read"), b"an mp4, as far as the archive cares");
        assert!(!staged.exists(), "moved, not copied");
        assert!(!path.with_file_name(MARKER).exists(), "marker removed after the commit");
        // Read back through every reader, also from a second process's view of the index.
        drop(a);
        let a = Archive::open_existing(&t.0).expect("reopen");
        assert_eq!(a.videos().expect("videos"), vec![v.clone()]);
        assert_eq!(a.video("batch-1").expect("video"), v);
        // Archive-only operations say why they do not apply.
        assert!(matches!(
            a.available_media("batch-1", crate::archive::ranges::Precision::Full, None, None, false),
            Err(ArchiveError::FileVideo { .. })
        ));
        assert!(matches!(a.plan_export("batch-1", Time90k(0), Time90k(90_000)), Err(ArchiveError::FileVideo { .. })));
        // `check` is clean, and a rebuilt index keeps the video with its facts.
        let rep = crate::archive::check::check(&t.0).expect("check");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let rep = crate::archive::check::repair(&t.0).expect("repair");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let again = Archive::open_existing(&t.0).expect("reopen").video("batch-1").expect("kept");
        assert_eq!((again.kind, again.file, again.title, again.created), (v.kind, v.file, v.title, v.created));
    }

    #[test]
    fn names_of_either_kind_are_not_taken_twice() {
        let t = tmp("clash");
        let a = Arc::new(Archive::open_or_create(&t.0).expect("archive"));
        let staged = stage(&a, "f", b"one");
        a.add_file_video("f", &staged, None, None, META).expect("first");
        let staged = stage(&a, "f", b"two");
        assert!(
            matches!(a.add_file_video("f", &staged, None, None, META), Err(ArchiveError::VideoExists(n)) if n == "f")
        );
        assert!(staged.exists(), "a refused registration leaves the staged file to the caller");
        // An archive video's name, recorded or not, is taken too.
        drop(record(&a, "cam"));
        assert!(matches!(a.add_file_video("cam", &staged, None, None, META), Err(ArchiveError::VideoExists(_))));
        let _w = VideoWriter::open(a.clone(), "live", VideoConfig::default()).expect("writer");
        assert!(matches!(a.add_file_video("live", &staged, None, None, META), Err(ArchiveError::VideoExists(_))));
        for bad in ["", ".hidden", "a/b", "../x"] {
            assert!(matches!(a.add_file_video(bad, &staged, None, None, META), Err(ArchiveError::BadVideoName(_))));
            assert!(matches!(a.file_staging_path(bad), Err(ArchiveError::BadVideoName(_))));
        }
        assert_eq!(std::fs::read(a.file_video_path(&a.video("f").expect("f")).expect("path")).expect("read"), b"one");
        assert_eq!(a.video("cam").expect("cam").kind, VideoKind::Archive);
        assert!(staged.exists());
    }

    #[test]
    fn recording_into_a_file_video_is_refused() {
        let t = tmp("append");
        let a = Arc::new(Archive::open_or_create(&t.0).expect("archive"));
        let staged = stage(&a, "f", b"finished");
        let v = a.add_file_video("f", &staged, None, None, META).expect("registered");
        match VideoWriter::open(a.clone(), "f", VideoConfig::default()) {
            Err(e @ ArchiveError::FileVideo { .. }) => assert!(e.to_string().contains("not appendable"), "{e}"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("a File video was opened for recording"),
        }
        assert_eq!(a.video("f").expect("f"), v, "the row is untouched");
    }

    #[test]
    fn leftovers_of_crashes_are_removed_on_open() {
        let t = tmp("leftovers");
        let a = Archive::open_or_create(&t.0).expect("archive");
        // What a process killed mid-job leaves: its staging directory with an unlocked lock file
        // and a partial MP4; and one killed before it made the lock file.
        let crashed = t.0.join(STAGING_DIR).join("4242-1-0");
        std::fs::create_dir_all(&crashed).expect("dir");
        std::fs::write(crashed.join(".lock"), b"").expect("lock file");
        std::fs::write(crashed.join("x.1.mp4"), b"half an export").expect("partial");
        let unlocked = t.0.join(STAGING_DIR).join("4243-1-0");
        std::fs::create_dir_all(&unlocked).expect("dir");
        // A live archive instance (another process, say) is mid-job: its staging is held.
        let busy = stage(&a, "y", b"being written");
        // A registration that renamed its file but never committed; a plain unknown MP4 (no
        // marker) is kept for repair.
        let torn = t.0.join("videos/torn");
        std::fs::create_dir_all(&torn).expect("dir");
        std::fs::write(torn.join(FILE_NAME), b"renamed, not committed").expect("mp4");
        std::fs::write(torn.join(MARKER), b"").expect("marker");
        let stray = t.0.join("videos/stray");
        std::fs::create_dir_all(&stray).expect("dir");
        std::fs::write(stray.join(FILE_NAME), b"from a backup").expect("mp4");
        let rep = crate::archive::check::check(&t.0).expect("check");
        assert_eq!(rep.problems.len(), 4, "{:?}", rep.problems);
        let c = Archive::open_or_create(&t.0).expect("reopen");
        assert!(!crashed.exists() && !unlocked.exists(), "crashed staging removed");
        assert!(busy.exists(), "a live archive's staging is kept");
        assert!(!torn.exists(), "an uncommitted registration is removed");
        assert!(stray.join(FILE_NAME).exists(), "an MP4 without marker is kept");
        assert!(c.videos().expect("videos").is_empty());
        // The held staging still registers; the stray one becomes a video on repair.
        a.add_file_video("y", &busy, None, None, META).expect("registered after cleanup");
        let unused = stage(&a, "z", b"never registered");
        drop((a, c));
        assert!(!unused.exists() && !busy.parent().expect("dir").exists(), "staging goes with its archive");
        let rep = crate::archive::check::repair(&t.0).expect("repair");
        assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
        let a = Archive::open_existing(&t.0).expect("reopen");
        let stray = a.video("stray").expect("registered by repair");
        assert_eq!((stray.kind, stray.file.map(|f| (f.bytes, f.meta))), (VideoKind::File, Some((13, None))));
        assert_eq!(a.video("y").expect("y").file.and_then(|f| f.meta), Some(META));
    }

    #[test]
    fn videos_of_both_kinds_are_deleted_with_their_files() {
        let t = tmp("delete");
        let a = Arc::new(Archive::open_or_create(&t.0).expect("archive"));
        let staged = stage(&a, "f", b"file video");
        let v = a.add_file_video("f", &staged, None, None, META).expect("registered");
        let path = a.file_video_path(&v).expect("path");
        a.delete_video("f").expect("deleted");
        assert!(matches!(a.video("f"), Err(ArchiveError::UnknownVideo(_))));
        assert!(!path.exists() && !a.video_dir("f").exists());
        assert!(matches!(a.delete_video("f"), Err(ArchiveError::UnknownVideo(_))));
        assert!(!a.video_dir("f").exists(), "deleting an unknown video makes no directory");

        // An archive: refused while a writer holds it, then rows, segments and files go.
        let w = record(&a, "cam");
        let id = w.video().id;
        let segs = a.segments(id, None, None).expect("segments");
        assert!(!segs.is_empty());
        assert!(matches!(a.delete_video("cam"), Err(ArchiveError::Locked(_))));
        assert!(a.segment_path(&segs[0].file).exists());
        drop(w);
        a.delete_video("cam").expect("deleted");
        assert!(matches!(a.video("cam"), Err(ArchiveError::UnknownVideo(_))));
        assert!(a.segments(id, None, None).expect("segments").is_empty());
        assert!(!a.video_dir("cam").exists());
        let garbage: i64 = a.conn().query_row("SELECT count(*) FROM garbage", [], |r| r.get(0)).expect("garbage");
        assert_eq!(garbage, 0);
        // The names are free again, for either kind.
        drop(record(&a, "f"));
        let staged = stage(&a, "cam", b"now a file");
        a.add_file_video("cam", &staged, None, None, META).expect("re-registered");
        let rep = crate::archive::check::check(&t.0).expect("check");
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    }

    #[test]
    fn deletion_interrupted_after_its_commit_is_finished_on_open() {
        let t = tmp("delete-crash");
        let a = Archive::open_or_create(&t.0).expect("archive");
        let staged = stage(&a, "f", b"file video");
        let v = a.add_file_video("f", &staged, None, None, META).expect("registered");
        let rel = v.file.clone().expect("file").file;
        // The transaction of delete_video, without what follows it.
        {
            let c = a.conn();
            c.execute("INSERT INTO garbage (file) VALUES (?1)", [&rel]).expect("garbage");
            c.execute("DELETE FROM file_video WHERE video_id = ?1", [v.id]).expect("file row");
            c.execute("DELETE FROM video WHERE id = ?1", [v.id]).expect("video row");
        }
        drop(a);
        let a = Archive::open_or_create(&t.0).expect("reopen");
        assert!(!a.segment_path(&rel).exists() && !a.video_dir("f").exists());
        let garbage: i64 = a.conn().query_row("SELECT count(*) FROM garbage", [], |r| r.get(0)).expect("garbage");
        assert_eq!(garbage, 0);
    }
}
