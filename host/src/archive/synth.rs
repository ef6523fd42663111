//! Synthetic archives for benchmarks: many contiguous segment rows cloned from one real
//! segment file, so effects of archive size (a week of video) can be measured in seconds.
//!
//! The clones' `ovmd` boxes still describe the template, so `check` reports them; they are
//! for measuring, not for keeping.

use super::db::{self, SegmentRow, VideoConfig};
use super::recover::{index_from_scan, scan_file};
use super::{Archive, ArchiveError, validate_video_name};
use crate::time::Time90k;
use std::path::{Path, PathBuf};

/// How clone files get their bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Hard links to the template: real bytes, no extra disk (for exports that read data).
    HardLink,
    /// Sparse files of the template's length: no data (for index-only measurements).
    Sparse,
}

/// Adds `count` back-to-back copies of `template` (a segment file) to `video`, the first
/// starting at `start`, in one run. Returns the files, oldest first.
pub fn clone_segments(
    archive: &Archive,
    video: &str,
    template: &Path,
    count: usize,
    start: Time90k,
    backing: Backing,
) -> Result<Vec<PathBuf>, ArchiveError> {
    validate_video_name(video)?;
    let scan = scan_file(template)?
        .ok_or_else(|| ArchiveError::Corrupt(format!("{} is not a segment", template.display())))?;
    let index = index_from_scan(&scan);
    if index.samples() == 0 {
        return Err(ArchiveError::Corrupt(format!("{} holds no frames", template.display())));
    }
    let dir = archive.video_dir(video);
    std::fs::create_dir_all(&dir).map_err(ArchiveError::io("creating", &dir))?;
    let mut conn = archive.conn();
    let (v, _) = db::create_video(&conn, video, &VideoConfig::default())?;
    let entry = db::sample_entry_id(&conn, &scan.sample_entry, scan.dims.0, scan.dims.1, None)?;
    let audio_entry = match &scan.audio {
        Some(a) => Some(db::sample_entry_id(&conn, &a.sample_entry, 0, 0, Some(a.timescale))?),
        None => None,
    };
    let run = db::new_run(&mut conn, v.id, start, None)?;
    let tx = conn.transaction()?;
    let mut files = Vec::with_capacity(count);
    let dur = index.media_dur();
    for seq in 0..count {
        let rel = format!("videos/{video}/{run:08}-{seq:06}.mp4");
        let path = archive.segment_path(&rel);
        match backing {
            Backing::HardLink => std::fs::hard_link(template, &path).map_err(ArchiveError::io("linking", &path))?,
            Backing::Sparse => std::fs::File::create(&path)
                .and_then(|f| f.set_len(scan.file_len))
                .map_err(ArchiveError::io("creating", &path))?,
        }
        let row = SegmentRow {
            id: 0,
            video_id: v.id,
            run_id: run,
            seq: seq as i64,
            file: rel,
            open: false,
            sample_entry_id: entry,
            start: Time90k(start.0 + seq as i64 * dur),
            wall_dur: dur,
            media_start: seq as i64 * dur,
            media_dur: dur,
            frames: index.samples() as i64,
            key_frames: index.key_samples() as i64,
            init_len: scan.init_len as i64,
            bytes: scan.file_len as i64,
            idx: index.blob().to_vec(),
            audio_entry_id: audio_entry,
            audio_start: super::recover::audio_start_from_scan(&scan)
                + seq as i64
                    * crate::time::rescale(
                        dur,
                        crate::time::TICKS_PER_SEC,
                        i64::from(scan.audio.as_ref().map_or(crate::mp4::TIMESCALE, |a| a.timescale)),
                    ),
            audio_frames: index.audio_samples() as i64,
            audio_dur: index.audio_dur(),
            summary: Some(index.summary()),
        };
        db::insert_segment(&tx, &row)?;
        files.push(path);
    }
    tx.commit()?;
    Ok(files)
}
