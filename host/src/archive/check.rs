//! `openva check`: verify every segment file against the index, and `--repair`: rebuild the
//! index from the segment files alone (each file carries its video, run, sequence number and
//! start time in its `ovmd` box).

use super::db::{self, VideoConfig};
use super::recover::{adopt_file, index_from_scan, scan_file, scan_meta, segment_files};
use super::{Archive, ArchiveError, index};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Mutex;

/// What a check found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// Videos seen.
    pub videos: u64,
    /// Segments verified.
    pub segments: u64,
    /// Frames verified.
    pub frames: u64,
    /// Problems found (empty means clean).
    pub problems: Vec<String>,
    /// Whether the index was rebuilt from the files.
    pub rebuilt: bool,
}

/// Verifies the archive at `root` without changing anything.
pub fn check(root: &Path) -> Result<Report, ArchiveError> {
    let archive = Archive::open_existing(root)?;
    let mut rep = Report::default();
    let conn = archive.conn();
    let ic: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if ic != "ok" {
        rep.problems.push(format!("sqlite integrity_check: {ic}"));
    }
    let garbage: i64 = conn.query_row("SELECT count(*) FROM garbage", [], |r| r.get(0))?;
    if garbage > 0 {
        rep.problems.push(format!("{garbage} deletions were interrupted (finished by the next recording or --repair)"));
    }
    let videos = db::videos(&conn)?;
    let rows = db::all_segments(&conn)?;
    drop(conn);
    rep.videos = videos.len() as u64;
    let names: HashMap<i64, String> = videos.iter().map(|v| (v.id, v.name.clone())).collect();
    let mut known = std::collections::HashSet::new();
    for row in &rows {
        known.insert(row.file.clone());
        rep.segments += 1;
        rep.frames += row.frames as u64;
        let video = names.get(&row.video_id).cloned().unwrap_or_default();
        let recording = row.open && is_locked(&archive, &video);
        let mut problem = |m: String| rep.problems.push(format!("{}: {m}", row.file));
        if row.open && !recording {
            problem("left open by a crash (recovered when the video records again, or by --repair)".into());
        }
        let idx = match index::decode(&row.idx) {
            Ok(i) => i,
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        if idx.len() as i64 != row.frames || idx.iter().filter(|s| s.key).count() as i64 != row.key_frames {
            problem("frame counts disagree with the sample index".into());
        }
        let media: i64 = idx.iter().map(|s| i64::from(s.duration)).sum();
        if media != row.media_dur {
            problem(format!("media duration {} disagrees with the index sum {media}", row.media_dur));
        }
        let Some(scan) = scan_file(&archive.segment_path(&row.file))? else {
            problem("file missing or not a segment".into());
            continue;
        };
        match scan_meta(&scan) {
            Some((v, run, seq, _, _)) if v == video && run == row.run_id && seq == row.seq => {}
            _ => problem("metadata box does not match the index row".into()),
        }
        let from_file = index::decode(index_from_scan(&scan).blob()).unwrap_or_default();
        let covered = from_file.len().min(idx.len());
        if from_file[..covered] != idx[..covered] || from_file.len() < idx.len() {
            problem(format!("file holds {} frames that disagree with the index's {}", from_file.len(), idx.len()));
        }
        if !recording {
            if scan.file_len != row.bytes as u64 {
                problem(format!("file is {} bytes, index says {}", scan.file_len, row.bytes));
            }
            if let Some(t) = &scan.tail_problem {
                problem(t.clone());
            }
        }
    }
    for v in &videos {
        for rel in segment_files(&archive, &archive.video_dir(&v.name))? {
            if !known.contains(&rel) {
                rep.problems.push(format!("{rel}: file has no index row"));
            }
        }
    }
    Ok(rep)
}

fn is_locked(archive: &Archive, video: &str) -> bool {
    let p = archive.video_dir(video).join(".lock");
    match File::open(&p) {
        Ok(f) => match f.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(_) => false,
        },
        Err(_) => false,
    }
}

/// Rebuilds the index of the archive at `root` from its segment files alone, keeping video
/// settings from the old index when it is readable. Refuses while any video is being recorded.
pub fn repair(root: &Path) -> Result<Report, ArchiveError> {
    let videos_dir = root.join("videos");
    if !videos_dir.is_dir() {
        return Err(ArchiveError::NoArchive(root.to_path_buf()));
    }
    let mut names: Vec<String> = Vec::new();
    for ent in std::fs::read_dir(&videos_dir).map_err(ArchiveError::io("listing", &videos_dir))? {
        let ent = ent.map_err(ArchiveError::io("listing", &videos_dir))?;
        if ent.path().is_dir()
            && let Some(n) = ent.file_name().to_str()
            && super::validate_video_name(n).is_ok()
        {
            names.push(n.to_owned());
        }
    }
    names.sort();
    // Hold every video's lock for the whole rebuild.
    let mut locks = Vec::new();
    for n in &names {
        let f = super::lock_video(&videos_dir.join(n), n)?;
        locks.push(f);
    }
    let old_configs: HashMap<String, VideoConfig> = Archive::open_existing(root)
        .and_then(|a| a.videos())
        .map(|vs| vs.into_iter().map(|v| (v.name, v.config)).collect())
        .unwrap_or_default();
    let db_path = root.join(db::DB_FILE);
    let new_path = root.join("index.db.rebuild");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", new_path.display()));
    }
    let fresh = Archive { root: root.to_path_buf(), db: Mutex::new(db::open(&new_path, true)?) };
    let mut rep = Report { rebuilt: true, ..Report::default() };
    for n in &names {
        let cfg = old_configs.get(n).cloned().unwrap_or_default();
        let video = db::upsert_video(&fresh.conn(), n, &cfg)?;
        rep.videos += 1;
        for rel in segment_files(&fresh, &fresh.video_dir(n))? {
            match adopt_file(&fresh, &video, &rel)? {
                Some(row) => {
                    rep.segments += 1;
                    rep.frames += row.frames as u64;
                }
                None => rep.problems.push(format!("{rel}: not an openva segment of '{n}', or empty; left out")),
            }
        }
    }
    {
        let c = fresh.conn();
        c.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    }
    drop(fresh);
    // The old database's WAL must go before the new file takes its name, or SQLite would
    // replay old pages into the new database.
    for suffix in ["-wal", "-shm"] {
        let p = format!("{}{suffix}", db_path.display());
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ArchiveError::io("removing", Path::new(&p))(e)),
        }
    }
    for suffix in ["-wal", "-shm"] {
        let from = format!("{}{suffix}", new_path.display());
        let _ = std::fs::remove_file(&from);
    }
    std::fs::rename(&new_path, &db_path).map_err(ArchiveError::io("replacing", &db_path))?;
    super::sync_dir(root)?;
    drop(locks);
    Ok(rep)
}
