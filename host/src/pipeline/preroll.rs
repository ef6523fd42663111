//! The pre-roll ring: compressed media a signal gate keeps so a clip can start before its
//! trigger without a continuous recording (`docs/evr.md`).
//!
//! It holds at least `keep` of media before the newest frame, from a keyframe (a clip can only
//! start at one), and never more than `cap` bytes: past the cap the oldest whole GOP goes, so
//! what stays still starts at a keyframe. Memory is therefore bounded by the cap whatever the
//! camera sends.

use std::collections::VecDeque;

use crate::time::{Duration90k, Time90k};

/// What the ring needs to know of a frame.
pub(crate) trait Timed {
    /// Its time (the clock the gate decides on).
    fn time(&self) -> Time90k;
    /// A random access point.
    fn is_key(&self) -> bool;
    /// Bytes it holds.
    fn bytes(&self) -> usize;
}

/// Recent frames, from a keyframe.
#[derive(Debug)]
pub(crate) struct Preroll<F> {
    frames: VecDeque<F>,
    bytes: usize,
    keep: Duration90k,
    cap: usize,
    /// Frames dropped for the byte cap before their time (the pre-roll came out shorter).
    pub(crate) capped: u64,
}

impl<F: Timed> Preroll<F> {
    /// A ring keeping `keep` of media (the gate's |offset| + evaluation window; the GOP before
    /// comes on top) within `cap` bytes.
    pub(crate) fn new(keep: Duration90k, cap: usize) -> Self {
        Preroll { frames: VecDeque::new(), bytes: 0, keep, cap, capped: 0 }
    }

    /// Adds the newest frame. Frames before the first keyframe are never kept.
    pub(crate) fn push(&mut self, f: F) {
        if self.frames.is_empty() && !f.is_key() {
            return;
        }
        self.bytes += f.bytes();
        let newest = f.time();
        self.frames.push_back(f);
        // Drop whole GOPs while the next one still starts early enough.
        while let Some(next_key) = self.frames.iter().skip(1).position(F::is_key).map(|i| i + 1) {
            if newest - self.frames[next_key].time() < self.keep {
                break;
            }
            self.drop_front(next_key, false);
        }
        while self.bytes > self.cap {
            match self.frames.iter().skip(1).position(F::is_key).map(|i| i + 1) {
                Some(next_key) => self.drop_front(next_key, true),
                // One GOP above the cap: nothing can start a clip anymore but its keyframe.
                None => {
                    let n = self.frames.len();
                    self.drop_front(n, true);
                }
            }
        }
    }

    fn drop_front(&mut self, n: usize, capped: bool) {
        for f in self.frames.drain(..n) {
            self.bytes -= f.bytes();
            if capped {
                self.capped += 1;
            }
        }
    }

    /// The frames from the keyframe at or before `start` (or the oldest kept, if `start` is
    /// older than the ring), oldest first.
    pub(crate) fn from(&self, start: Time90k) -> impl Iterator<Item = &F> {
        let from = self.frames.iter().rposition(|f| f.is_key() && f.time() <= start).unwrap_or(0);
        self.frames.iter().skip(from)
    }

    /// The newest frame.
    pub(crate) fn newest(&self) -> Option<&F> {
        self.frames.back()
    }

    /// Forgets every frame (the stream starts over: a new session, a new configuration).
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TICKS_PER_SEC;

    #[derive(Debug, Clone, PartialEq)]
    struct F(i64, bool, usize);

    impl Timed for F {
        fn time(&self) -> Time90k {
            Time90k(self.0)
        }
        fn is_key(&self) -> bool {
            self.1
        }
        fn bytes(&self) -> usize {
            self.2
        }
    }

    /// 25 frames a second, a keyframe every second, 1000 bytes a frame (keyframes 10×).
    fn camera(seconds: i64) -> impl Iterator<Item = F> {
        (0..seconds * 25).map(|i| {
            let key = i % 25 == 0;
            F(i * TICKS_PER_SEC / 25, key, if key { 10_000 } else { 1000 })
        })
    }

    #[test]
    fn keeps_the_window_from_a_keyframe() {
        let mut p = Preroll::new(Duration90k::from_secs(5), usize::MAX);
        camera(60).for_each(|f| p.push(f));
        let first = p.from(Time90k(0)).next().unwrap().clone();
        // The newest frame is at 59.96 s: media from 54.96 s must be there, so from the keyframe
        // at 54 s.
        assert_eq!((first.0, first.1), (54 * TICKS_PER_SEC, true));
        // A clip starting at 57.5 s starts at the keyframe at 57 s.
        assert_eq!(p.from(Time90k(57 * TICKS_PER_SEC + TICKS_PER_SEC / 2)).next().unwrap().0, 57 * TICKS_PER_SEC);
        assert_eq!(p.from(Time90k(0)).count(), 6 * 25);
        assert_eq!(p.capped, 0);
    }

    #[test]
    fn the_byte_cap_drops_whole_gops() {
        // One GOP is 34 000 bytes; a 100 000-byte cap holds two whole ones and a part.
        let mut p = Preroll::new(Duration90k::from_secs(60), 100_000);
        camera(30).for_each(|f| p.push(f));
        assert!(p.bytes() <= 100_000);
        let first = p.from(Time90k(0)).next().unwrap();
        assert!(first.1, "the ring still starts at a keyframe");
        assert!(p.capped > 0);
        assert_eq!(first.0, 28 * TICKS_PER_SEC);
    }

    #[test]
    fn frames_before_the_first_keyframe_are_not_kept() {
        let mut p = Preroll::new(Duration90k::from_secs(5), usize::MAX);
        p.push(F(0, false, 10));
        assert_eq!(p.bytes(), 0);
        p.push(F(1, true, 10));
        p.push(F(2, false, 10));
        assert_eq!(p.from(Time90k(0)).count(), 2);
    }
}
