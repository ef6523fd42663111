//! Segments being read are kept: an export, a download or a job in progress pins the segments
//! it planned, and retention and disk-space eviction leave pinned segments alone until the pin
//! is dropped (the next pass deletes them). Without this, a long download could lose a file
//! under it, or a resumed one could be re-planned into other bytes.
//!
//! Race-free by construction: a reader reads its rows and pins them under the same lock under
//! which a deleter checks for pins and deletes, so no segment is deleted between a plan reading
//! it and pinning it.

use super::ArchiveError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The pinned segments of one archive (by row id, with a count of pins).
#[derive(Default)]
pub(crate) struct Pins(Arc<Mutex<HashMap<i64, usize>>>);

impl Pins {
    /// Runs `read` (which reads segment rows) and pins the ids it returns, atomically with
    /// respect to deleters.
    pub(crate) fn hold<T>(
        &self,
        read: impl FnOnce() -> Result<T, ArchiveError>,
        ids: impl FnOnce(&T) -> Vec<i64>,
    ) -> Result<(T, Pin), ArchiveError> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let rows = read()?;
        let ids = ids(&rows);
        for id in &ids {
            *map.entry(*id).or_default() += 1;
        }
        Ok((rows, Pin { pins: self.0.clone(), ids }))
    }

    /// Runs `delete` unless segment `id` is pinned; returns whether it ran.
    pub(crate) fn unless_pinned(
        &self,
        id: i64,
        delete: impl FnOnce() -> Result<(), ArchiveError>,
    ) -> Result<bool, ArchiveError> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(&id) {
            return Ok(false);
        }
        delete()?;
        Ok(true)
    }

    /// Whether segment `id` is pinned now.
    pub(crate) fn is_pinned(&self, id: i64) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&id)
    }
}

/// A hold on some segments; they are kept until it (and every clone) is dropped.
pub struct Pin {
    pins: Arc<Mutex<HashMap<i64, usize>>>,
    ids: Vec<i64>,
}

impl Clone for Pin {
    fn clone(&self) -> Self {
        let mut map = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            *map.entry(*id).or_default() += 1;
        }
        Pin { pins: self.pins.clone(), ids: self.ids.clone() }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut map = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.ids {
            if let Some(n) = map.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    map.remove(id);
                }
            }
        }
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pin({} segments)", self.ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_count_and_release() {
        let pins = Pins::default();
        let (_, a) = pins.hold(|| Ok(vec![1, 2]), |v| v.clone()).expect("hold");
        let b = a.clone();
        assert!(pins.is_pinned(1) && pins.is_pinned(2) && !pins.is_pinned(3));
        assert!(!pins.unless_pinned(1, || panic!("deleted a pinned segment")).expect("skip"));
        drop(a);
        assert!(pins.is_pinned(1), "the clone still holds it");
        drop(b);
        let mut ran = false;
        assert!(
            pins.unless_pinned(1, || {
                ran = true;
                Ok(())
            })
            .expect("delete")
        );
        assert!(ran && !pins.is_pinned(2));
    }
}
