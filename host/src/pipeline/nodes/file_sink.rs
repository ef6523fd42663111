//! `FileSink` on the host: where its files go, how a file appears, and how many stay.
//!
//! A topology's `baseDirectoryPath` (absolute, checked to have no `.` or `..`) is placed under
//! the root the operator chose, as AVA's container saw `/var/media` through a volume mount; a
//! symlink planted under the root cannot lead a sink outside it. A clip is written under a
//! hidden temporary name and appears under its real name only complete and on disk (fsync,
//! rename, fsync of the directory). Before each new file the oldest files of this sink (by the
//! pattern's fixed prefix) go until the sink fits its cap with room for it.

use std::path::{Component, Path, PathBuf};

use super::{LiveParts, PipelineError, module_error};
use crate::topology::FileSinkConfig;

pub(super) fn add(parts: &mut LiveParts, node: String, c: FileSinkConfig) -> Result<(), PipelineError> {
    if parts.file_sink.is_some() {
        return Err(module_error(format!("node '{node}': a pipeline has at most one file sink")));
    }
    parts.file_sink = Some((node, c));
    Ok(())
}

/// Why a file sink could not do its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileSinkError {
    /// The directory resolves outside the root (a symlink under the root).
    #[error("baseDirectoryPath '{base}' leads outside the file sink root {}", root.display())]
    Escapes {
        /// As the topology gave it.
        base: String,
        /// The root.
        root: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// What it was done on.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileSinkError + '_ {
    move |source| FileSinkError::Io { path: path.to_owned(), source }
}

/// The directory a sink writes in: `root` joined with the topology's absolute `base`, created
/// if needed, and checked to be inside the root once symlinks are resolved.
pub(crate) fn directory(root: &Path, base: &str) -> Result<PathBuf, FileSinkError> {
    std::fs::create_dir_all(root).map_err(io(root))?;
    let root = root.canonicalize().map_err(io(root))?;
    let relative = Path::new(base.trim_start_matches('/'));
    if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(FileSinkError::Escapes { base: base.to_owned(), root });
    }
    // One level at a time, each checked before anything is made inside it: a symlink planted
    // under the root must not get a directory created at its target.
    let mut dir = root.clone();
    for part in relative.components() {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = dir.canonicalize().map_err(io(&dir))?;
                if !real.starts_with(&root) || !real.is_dir() {
                    return Err(FileSinkError::Escapes { base: base.to_owned(), root });
                }
                dir = real;
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(FileSinkError::Io {
                    path: dir,
                    source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                Err(e) => return Err(FileSinkError::Io { path: dir, source: e }),
            },
            Err(e) => return Err(FileSinkError::Io { path: dir, source: e }),
        }
    }
    Ok(dir)
}

/// The fixed start of a pattern's file names (before its first variable): how a sink knows its
/// own files among others in a shared directory.
pub(crate) fn prefix(pattern: &str) -> &str {
    pattern.split("${").next().unwrap_or(pattern)
}

/// The hidden name a file has while it is written: no reader listing `*.mp4` ever sees it.
pub(crate) fn temp_name(name: &str) -> String {
    format!(".{name}.partial")
}

/// Deletes the oldest files of this sink (names starting with `prefix`, ending in `.mp4`),
/// never `keep` (the file just written), until they hold at most `cap - room` bytes. Returns
/// the deleted files.
pub(crate) fn make_room(
    dir: &Path,
    prefix: &str,
    cap: u64,
    room: u64,
    keep: Option<&str>,
) -> Result<Vec<PathBuf>, FileSinkError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(prefix) || !name.ends_with(".mp4") {
            continue;
        }
        let meta = entry.metadata().map_err(io(&entry.path()))?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().map_err(io(&entry.path()))?;
        files.push((modified, name.to_owned(), meta.len()));
    }
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let target = cap.saturating_sub(room);
    let mut deleted = Vec::new();
    for (_, name, len) in files {
        if total <= target {
            break;
        }
        if Some(name.as_str()) == keep {
            continue;
        }
        let path = dir.join(&name);
        std::fs::remove_file(&path).map_err(io(&path))?;
        total -= len;
        deleted.push(path);
    }
    Ok(deleted)
}

/// A name for a new file in `dir`: `name`, or with `-2`, `-3`… before `.mp4` if taken (two
/// clips starting within the pattern's one-second resolution).
pub(crate) fn unused_name(dir: &Path, name: &str) -> String {
    let stem = name.strip_suffix(".mp4").unwrap_or(name);
    let mut candidate = name.to_owned();
    for n in 2u32.. {
        if std::fs::symlink_metadata(dir.join(&candidate)).is_err() {
            break;
        }
        candidate = format!("{stem}-{n}.mp4");
    }
    candidate
}

/// Makes the finished temporary file `tmp`, already on disk (the spool's `finish` synced it),
/// appear as `name` in `dir`: the rename, then the directory entry on disk.
pub(crate) fn publish(dir: &Path, tmp: &Path, name: &str) -> Result<PathBuf, FileSinkError> {
    let path = dir.join(name);
    std::fs::rename(tmp, &path).map_err(io(&path))?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::test_dir::tmp;

    #[test]
    fn the_directory_stays_under_the_root() {
        let t = tmp("file-sink", "root");
        let root = t.0.join("root");
        let d = directory(&root, "/var/media").unwrap();
        assert!(d.ends_with("root/var/media") && d.is_dir(), "{}", d.display());
        // A symlink planted under the root cannot lead outside it.
        let outside = t.0.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        assert!(matches!(directory(&root, "/escape/clips"), Err(FileSinkError::Escapes { .. })));
        assert!(!outside.join("clips").exists(), "nothing was made outside the root");
        assert!(matches!(directory(&root, "/var/../../etc"), Err(FileSinkError::Escapes { .. })));
        // A symlink that stays inside the root is followed.
        std::os::unix::fs::symlink(root.join("var"), root.join("inside")).unwrap();
        let d = directory(&root, "/inside/media").unwrap();
        assert!(d.ends_with("root/var/media"), "{}", d.display());
    }

    #[test]
    fn the_cap_deletes_this_sinks_oldest_files() {
        let t = tmp("file-sink", "cap");
        let dir = directory(&t.0, "/m").unwrap();
        for (i, name) in ["clip-1.mp4", "clip-2.mp4", "clip-3.mp4", "other-1.mp4", "clip-4.txt"].iter().enumerate() {
            std::fs::write(dir.join(name), vec![0u8; 100]).unwrap();
            let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            std::fs::File::options().write(true).open(dir.join(name)).unwrap().set_modified(when).unwrap();
        }
        // 300 bytes of this sink's files; a cap of 250 with room for 100 keeps one.
        let deleted = make_room(&dir, prefix("clip-${System.Runtime.DateTime}"), 250, 100, None).unwrap();
        let names: Vec<_> = deleted.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["clip-1.mp4", "clip-2.mp4"]);
        assert!(dir.join("clip-3.mp4").exists() && dir.join("other-1.mp4").exists() && dir.join("clip-4.txt").exists());
        // The file just written stays, even alone above the cap.
        let deleted = make_room(&dir, "clip-", 50, 0, Some("clip-3.mp4")).unwrap();
        assert!(deleted.is_empty() && dir.join("clip-3.mp4").exists());
    }

    #[test]
    fn a_file_appears_only_complete() {
        let t = tmp("file-sink", "publish");
        let dir = directory(&t.0, "/m").unwrap();
        let tmp_path = dir.join(temp_name("clip-1.mp4"));
        std::fs::write(&tmp_path, b"data").unwrap();
        assert!(!dir.join("clip-1.mp4").exists());
        let p = publish(&dir, &tmp_path, "clip-1.mp4").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        assert!(!tmp_path.exists());
        // The temporary name is hidden and never counted as one of the sink's files.
        assert!(temp_name("clip-2.mp4").starts_with('.'));
    }
}
