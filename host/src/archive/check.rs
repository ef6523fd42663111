//! `openva check`: verify every segment file against the index, and `--repair`: rebuild the
//! index from the segment files alone (each file carries its video, run, sequence number and
//! start time in its `ovmd` box).

use super::db::{self, FileVideo, VideoKind, VideoRow};
use super::files::{self, FILE_NAME, MARKER};
use super::recover::{adopt_file, index_from_scan, scan_file, scan_meta, segment_files};
use super::{Archive, ArchiveError, index};
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

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
    // Segments kept only in the remote tier have no local file by design.
    let evicted: std::collections::HashSet<String> = {
        let mut st = conn.prepare("SELECT s.file FROM local_evicted l JOIN segment s ON s.id = l.segment_id")?;
        st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?
    };
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
        let all = match index::decode_all(&row.idx) {
            Ok(i) => i,
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        let idx = &all.video;
        let audio_dur: i64 = all.audio.iter().map(|s| i64::from(s.duration)).sum();
        if all.audio.len() as i64 != row.audio_frames || audio_dur != row.audio_dur {
            problem("audio frame count or duration disagrees with the sample index".into());
        }
        if !all.audio.is_empty() && row.audio_entry_id.is_none() {
            problem("audio frames without an audio track".into());
        }
        if idx.len() as i64 != row.frames || idx.iter().filter(|s| s.key).count() as i64 != row.key_frames {
            problem("frame counts disagree with the sample index".into());
        }
        let media: i64 = idx.iter().map(|s| i64::from(s.duration)).sum();
        if media != row.media_dur {
            problem(format!("media duration {} disagrees with the index sum {media}", row.media_dur));
        }
        if evicted.contains(&row.file) {
            if archive.segment_path(&row.file).exists() {
                problem(
                    "evicted to the remote tier, but its local file is still there (removed by the next eviction)"
                        .into(),
                );
            }
            continue;
        }
        let Some(scan) = scan_file(&archive.segment_path(&row.file))? else {
            problem("file missing or not a segment".into());
            continue;
        };
        match scan_meta(&scan) {
            Some((v, run, seq, _, _)) if v == video && run == row.run_id && seq == row.seq => {}
            _ => problem("metadata box does not match the index row".into()),
        }
        let file_all = index::decode_all(index_from_scan(&scan).blob()).unwrap_or_default();
        let from_file = &file_all.video;
        let covered = from_file.len().min(idx.len());
        if from_file[..covered] != idx[..covered] || from_file.len() < idx.len() {
            problem(format!("file holds {} frames that disagree with the index's {}", from_file.len(), idx.len()));
        }
        let covered = file_all.audio.len().min(all.audio.len());
        if file_all.audio[..covered] != all.audio[..covered] || file_all.audio.len() < all.audio.len() {
            problem(format!(
                "file holds {} audio frames that disagree with the index's {}",
                file_all.audio.len(),
                all.audio.len()
            ));
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
        if v.kind == VideoKind::File {
            check_file_video(&archive, v, &mut rep.problems);
        }
    }
    // Directories no video row names: what interrupted registrations and deletions left.
    for n in video_dir_names(root)? {
        if videos.iter().any(|v| v.name == n) {
            continue;
        }
        let dir = archive.video_dir(&n);
        if dir.join(FILE_NAME).exists() {
            rep.problems.push(if dir.join(MARKER).exists() {
                format!(
                    "videos/{n}/{FILE_NAME}: left by an interrupted registration (removed when the archive next \
                     opens for writing)"
                )
            } else {
                format!("videos/{n}/{FILE_NAME}: no video row knows it (--repair registers it as a File video)")
            });
        }
        for rel in segment_files(&archive, &dir)? {
            rep.problems.push(format!("{rel}: file has no index row (no video '{n}')"));
        }
    }
    for p in files::stale_staging(root)? {
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        rep.problems.push(format!(
            "{rel}: staging left by a crash (removed when the archive next opens for writing, or by --repair)"
        ));
    }
    Ok(rep)
}

/// A File video's MP4 exists and has the length it was registered with.
fn check_file_video(archive: &Archive, v: &VideoRow, problems: &mut Vec<String>) {
    let Some(f) = &v.file else {
        problems.push(format!("video '{}': a File video without its file row", v.name));
        return;
    };
    match std::fs::metadata(archive.segment_path(&f.file)) {
        Ok(m) if m.len() == f.bytes => {}
        Ok(m) => problems.push(format!("{}: file is {} bytes, index says {}", f.file, m.len(), f.bytes)),
        Err(e) => problems.push(format!("{}: {e}", f.file)),
    }
}

/// Names of the video directories (valid video names only).
fn video_dir_names(root: &Path) -> Result<Vec<String>, ArchiveError> {
    let videos_dir = root.join("videos");
    let mut names: Vec<String> = Vec::new();
    let rd = match std::fs::read_dir(&videos_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(e) => return Err(ArchiveError::io("listing", &videos_dir)(e)),
    };
    for ent in rd {
        let ent = ent.map_err(ArchiveError::io("listing", &videos_dir))?;
        if ent.path().is_dir()
            && let Some(n) = ent.file_name().to_str()
            && super::validate_video_name(n).is_ok()
        {
            names.push(n.to_owned());
        }
    }
    names.sort();
    Ok(names)
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
    // Never under a running host or recorder: the index is replaced below.
    let _dir = super::DataLock::acquire(root)?;
    let names = video_dir_names(root)?;
    // Hold every video's lock for the whole rebuild.
    let mut locks = Vec::new();
    for n in &names {
        let f = super::lock_video(&videos_dir.join(n), n)?;
        locks.push(f);
    }
    // Segments kept only in the remote tier have no file to rebuild them from: a rebuild from
    // local files would forget them (and then their remote copies).
    if let Ok(a) = Archive::open_existing(root) {
        let remote_only: i64 = a.conn().query_row("SELECT count(*) FROM local_evicted", [], |r| r.get(0))?;
        if remote_only > 0 {
            return Err(ArchiveError::BadSetting(format!(
                "{remote_only} segment(s) are kept only in the remote tier; a repair from local files would \
                 forget them (rebuilding from the bucket is not built yet)"
            )));
        }
    }
    let old_rows: HashMap<String, VideoRow> = Archive::open_existing(root)
        .and_then(|a| a.videos())
        .map(|vs| vs.into_iter().map(|v| (v.name.clone(), v)).collect())
        .unwrap_or_default();
    let db_path = root.join(db::DB_FILE);
    let new_path = root.join("index.db.rebuild");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", new_path.display()));
    }
    let fresh = Archive::with_conn(root, db::open(&new_path, true)?, None);
    let mut rep = Report { rebuilt: true, ..Report::default() };
    for n in &names {
        let old = old_rows.get(n);
        if repair_file_video(&fresh, n, old, &mut rep)? {
            continue;
        }
        let cfg = old.map(|v| v.config.clone()).unwrap_or_default();
        let (video, _) = db::create_video(&fresh.conn(), n, &cfg)?;
        if let Some(o) = old {
            db::set_video_info(&fresh.conn(), n, o.title.as_deref(), o.description.as_deref())?;
        }
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
    for p in files::stale_staging(root)? {
        let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
        rep.problems.push(format!("{rel}: staging left by a crash; removed"));
    }
    files::remove_stale_staging(root)?;
    Ok(rep)
}

/// The rebuild of video directory `n` when it holds a File video's MP4 (or held one): registers
/// it with the facts of its old row when there was one. Returns whether `n` was handled here.
fn repair_file_video(fresh: &Archive, n: &str, old: Option<&VideoRow>, rep: &mut Report) -> Result<bool, ArchiveError> {
    let dir = fresh.video_dir(n);
    let rel = format!("videos/{n}/{FILE_NAME}");
    let mp4 = dir.join(FILE_NAME);
    let marker = dir.join(MARKER);
    let was_file = old.is_some_and(|v| v.kind == VideoKind::File);
    if !mp4.is_file() {
        if was_file {
            rep.problems.push(format!("File video '{n}': {rel} is missing; the video is left out"));
        }
        return Ok(was_file);
    }
    if old.is_some_and(|v| v.kind == VideoKind::Archive) {
        rep.problems.push(format!("{rel}: an MP4 in archive video '{n}'; left out"));
        return Ok(false);
    }
    if old.is_none() && marker.exists() {
        // A registration that never committed: not a video.
        std::fs::remove_file(&mp4).map_err(ArchiveError::io("removing", &mp4))?;
        rep.problems.push(format!("{rel}: left by an interrupted registration; removed"));
        return Ok(false);
    }
    let len = std::fs::metadata(&mp4).map_err(ArchiveError::io("reading", &mp4))?.len();
    let old_file = old.and_then(|v| v.file.as_ref());
    // The facts describe the file registered; a file of another length is not that file.
    let meta = old_file.filter(|f| f.bytes == len).and_then(|f| f.meta);
    match old_file {
        None => rep.problems.push(format!("{rel}: registered as File video '{n}' without title or media facts")),
        Some(f) if f.bytes != len => rep
            .problems
            .push(format!("{rel}: file is {len} bytes, the old index said {}; media facts dropped", f.bytes)),
        Some(_) => {}
    }
    let created = old.map_or_else(crate::time::Time90k::now, |v| v.created);
    let file = FileVideo { file: rel, bytes: len, meta };
    db::insert_file_video(
        &fresh.conn(),
        n,
        created,
        old.and_then(|v| v.title.as_deref()),
        old.and_then(|v| v.description.as_deref()),
        &file,
    )?;
    let _ = std::fs::remove_file(&marker);
    rep.videos += 1;
    for seg in segment_files(fresh, &dir)? {
        rep.problems.push(format!("{seg}: a segment in File video '{n}'; left out"));
    }
    Ok(true)
}
