//! Disk space: the archive keeps a floor of free space on its file system, whatever each
//! video's retention says. Below the floor it deletes the oldest closed segments across all
//! videos (after telling its listener, which the host turns into an event) until the floor is
//! back. So a full disk costs the oldest recordings, not the newest, and recording goes on.
//!
//! Checked where a writer is about to need space: each periodic index commit (every 3 s) and
//! each run start; and once more when a write fails with `ENOSPC` (then the
//! write is retried). Segments being read (pinned, see `pins`) and open segments are never
//! deleted here.

use super::db::{self, SegmentBrief};
use super::{Archive, ArchiveError};
use std::collections::BTreeMap;
use std::path::Path;

/// Free space kept: 5 % of the file system, at least 4 MiB (the reserve and a few fragments),
/// at most 1 GiB; and never more than a quarter of a tiny file system, where a floor above
/// its size would evict every segment as soon as it closed.
pub(crate) fn floor_for(total: u64) -> u64 {
    (total / 20).clamp(4 << 20, 1 << 30).min(total / 4)
}

/// Bytes available to this process on the file system holding `path`, and its size.
pub(crate) fn free_and_total(path: &Path) -> Result<(u64, u64), ArchiveError> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| ArchiveError::io("reading free space of", path)(std::io::Error::from(e)))?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_blocks.saturating_mul(st.f_frsize)))
}

/// Who hears the archive's notices.
pub(crate) type Listener = Box<dyn Fn(&Notice) + Send + Sync>;

/// What the archive tells its listener (the host publishes it as an event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Free space fell below the floor: the oldest recordings across videos are about to be
    /// deleted.
    Evicting {
        /// Bytes free now.
        free: u64,
        /// The floor.
        floor: u64,
    },
    /// Free space is below the floor and nothing can be deleted (only open or pinned
    /// segments are left): recording will stop when the disk is full.
    NothingToEvict {
        /// Bytes free now.
        free: u64,
    },
    /// What an eviction deleted: segments and bytes per video.
    Evicted {
        /// Video name → (segments, bytes).
        deleted: BTreeMap<String, (u64, u64)>,
    },
}

/// What has been told during one stretch of low space (from free space falling below the
/// floor until it is back): each notice once, not at every check of every writer.
#[derive(Default)]
pub(crate) struct Episode {
    evicting: bool,
    nothing_left: bool,
}

impl Archive {
    /// Keeps the free-space floor: if the file system holds less, deletes the oldest closed,
    /// unpinned segments across all videos until it holds enough again (`need` more bytes when
    /// a write just failed). Returns the bytes deleted. One eviction at a time per archive.
    pub fn keep_free_space(&self, need: u64) -> Result<u64, ArchiveError> {
        let (free, total) = free_and_total(&self.root)?;
        let floor = floor_for(total).saturating_add(need);
        let mut episode = self.space.lock().unwrap_or_else(|p| p.into_inner());
        // Another writer may have made room while this one waited for the lock.
        let mut free = if episode.evicting { free_and_total(&self.root)?.0 } else { free };
        if free >= floor {
            *episode = Episode::default();
            return Ok(0);
        }
        let names: BTreeMap<i64, String> = db::videos(&self.conn())?.into_iter().map(|v| (v.id, v.name)).collect();
        // Only what is on local disk frees local space. A segment whose remote copy is
        // confirmed loses its local copy only (it stays playable from the remote tier); the
        // others are deleted, as without a remote tier.
        let mut candidates: Vec<SegmentBrief> = db::segment_briefs(&self.conn(), None)?
            .into_iter()
            .filter(|s| s.local && !s.open && !self.pins.is_pinned(s.id))
            .collect();
        candidates.sort_by_key(|s| (s.start, s.id));
        if candidates.is_empty() {
            if !std::mem::replace(&mut episode.nothing_left, true) {
                tracing::error!(free, "the disk is nearly full and nothing more can be deleted");
                self.notify(&Notice::NothingToEvict { free });
            }
            return Ok(0);
        }
        if !std::mem::replace(&mut episode.evicting, true) {
            tracing::warn!(free, floor, "the disk is nearly full: deleting the oldest recordings across videos");
            self.notify(&Notice::Evicting { free, floor });
        }
        let mut deleted: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut bytes = 0u64;
        let mut failed = None;
        for s in candidates {
            if free >= floor {
                break;
            }
            // Pinned since the list was made: kept (a reader is using it).
            let delete = || {
                self.pins.unless_pinned(s.id, || {
                    if s.copied && self.evict_local_copy(s.id, &s.file)? {
                        return Ok(());
                    }
                    super::recover::delete_segment(self, s.id, &s.file)
                })
            };
            let done = match delete() {
                // Committing a deletion takes a little space itself: on a disk filled to the
                // last byte, the reserve pays for it (the next run re-creates the reserve).
                Err(e) if e.is_disk_full() && self.release_reserve() => delete(),
                r => r,
            };
            match done {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
            let n = u64::try_from(s.bytes).unwrap_or(0);
            bytes += n;
            let e = deleted.entry(names.get(&s.video_id).cloned().unwrap_or_default()).or_default();
            e.0 += 1;
            e.1 += n;
            free = free_and_total(&self.root)?.0;
        }
        if !deleted.is_empty() {
            tracing::warn!(?deleted, free, "disk full: deleted the oldest recordings");
            self.notify(&Notice::Evicted { deleted });
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }

    /// Sets who hears the archive's notices (the host: events). Replaces any earlier one.
    pub fn set_listener(&self, listener: impl Fn(&Notice) + Send + Sync + 'static) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(listener));
    }

    fn notify(&self, n: &Notice) {
        if let Some(l) = self.listener.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            l(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_five_percent_within_bounds() {
        assert_eq!(floor_for(64 << 20), 4 << 20);
        assert_eq!(floor_for(3 << 20), 768 << 10);
        assert_eq!(floor_for(1 << 30), (1 << 30) / 20);
        assert_eq!(floor_for(1 << 40), 1 << 30);
    }
}
