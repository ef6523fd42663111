//! Motion detection on a small luma plane: difference against a running background,
//! thresholded per sensitivity, cleaned, grouped into connected regions, reported as boxes.
//!
//! A region counts as motion only if part of it also changed since the previous frame. The
//! background difference gives the whole extent of a moving object (even a uniform one whose
//! inside looks the same from frame to frame); the frame difference rejects "ghosts": the
//! place an object left while the background still remembers it, or an object that stopped.
//! Such still regions are absorbed into the background quickly.
//!
//! The detector is meant for a host-downscaled luma copy (`read-scaled`, see
//! [`analysis_size`]): area averaging removes most sensor noise and makes the work per frame
//! small (240×135 for 1080p). Everything is integer arithmetic, so results do not depend on the
//! target.

use crate::geometry::RatioBox;

/// AVA's `MotionDetectionProcessor.sensitivity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sensitivity {
    /// Large, strong changes only.
    Low,
    /// AVA's default.
    #[default]
    Medium,
    /// Small or faint changes too.
    High,
}

impl Sensitivity {
    /// Parses `low`, `medium` or `high`, case-insensitively.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Sensitivity::Low),
            "medium" => Ok(Sensitivity::Medium),
            "high" => Ok(Sensitivity::High),
            _ => Err(format!("sensitivity must be low, medium or high, got {s:?}")),
        }
    }

    /// Luma difference (0–255) from the background that counts as changed.
    pub fn threshold(self) -> u16 {
        match self {
            Sensitivity::Low => 35,
            Sensitivity::Medium => 25,
            Sensitivity::High => 15,
        }
    }

    /// Smallest region reported, in changed pixels per 100 000 pixels of the analysed plane.
    pub fn min_area_per_100k(self) -> usize {
        match self {
            Sensitivity::Low => 500,
            Sensitivity::Medium => 150,
            Sensitivity::High => 40,
        }
    }
}

/// The analysis plane size for a `width × height` frame: about 1/8 of the width, at least 160
/// pixels wide (or the frame's width if smaller), aspect ratio kept. 1080p gives 240×135,
/// 720p 160×90, 4K 480×270.
pub fn analysis_size(width: u32, height: u32) -> (u32, u32) {
    let w = width.min((width / 8).max(160)).max(1);
    let h = ((height as u64 * w as u64 + width.max(1) as u64 / 2) / width.max(1) as u64).max(1) as u32;
    (w, h)
}

/// Fractional bits of the background model.
const BG_FRAC: u32 = 4;
/// Background adaptation outside moving regions: 1/4 per frame, so noise, slow light changes,
/// ghosts and stopped objects fade into the background within a few frames.
const ADAPT_STILL: u32 = 2;
/// Background adaptation inside moving regions: 1/32 per frame, so a passing object neither
/// leaves a trail nor fades while it moves.
const ADAPT_MOVING: u32 = 5;
/// When more than this share (per mille) of the plane changes at once it is a light change or a
/// camera move, not motion: the background restarts and nothing is reported.
const GLOBAL_CHANGE_PERMILLE: usize = 600;
/// At most this many boxes per frame (the largest).
pub const MAX_BOXES: usize = 32;

/// A stateful motion detector for one stream. Feed it every analysed frame in order.
#[derive(Clone, Debug)]
pub struct MotionDetector {
    sensitivity: Sensitivity,
    width: usize,
    height: usize,
    background: Vec<u16>,
    previous: Vec<u8>,
    changed: Vec<bool>,
    moving: Vec<bool>,
    kept: Vec<bool>,
    labels: Vec<u32>,
}

/// A connected region of changed pixels, in plane coordinates.
#[derive(Clone, Copy, Debug)]
struct Blob {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    pixels: usize,
    /// Pixels of the region that also changed since the previous frame.
    moved: usize,
}

impl MotionDetector {
    /// A detector with no background yet: the first frame only seeds it.
    pub fn new(sensitivity: Sensitivity) -> Self {
        MotionDetector {
            sensitivity,
            width: 0,
            height: 0,
            background: Vec::new(),
            previous: Vec::new(),
            changed: Vec::new(),
            moving: Vec::new(),
            kept: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// The configured sensitivity.
    pub fn sensitivity(&self) -> Sensitivity {
        self.sensitivity
    }

    /// Forgets the background (e.g. after a gap in the stream).
    pub fn reset(&mut self) {
        self.background.clear();
    }

    /// Analyses the next frame: `luma` is a packed `width × height` plane. Returns the boxes
    /// (ratios of the frame) of the regions that moved, largest first, at most [`MAX_BOXES`].
    /// The first frame, a size change and a global change (light switched, camera moved)
    /// restart the background and report nothing.
    pub fn detect(&mut self, luma: &[u8], width: usize, height: usize) -> Result<Vec<RatioBox>, String> {
        let n = width.checked_mul(height).filter(|&n| n > 0).ok_or("motion: empty plane")?;
        if luma.len() != n {
            return Err(format!("motion: {}x{} plane needs {n} bytes, got {}", width, height, luma.len()));
        }
        if self.background.len() != n || (self.width, self.height) != (width, height) {
            self.seed(luma, width, height);
            return Ok(Vec::new());
        }
        let thr = self.sensitivity.threshold() << BG_FRAC;
        let mut count = 0usize;
        for ((c, &bg), &p) in self.changed.iter_mut().zip(&self.background).zip(luma) {
            *c = ((p as u16) << BG_FRAC).abs_diff(bg) > thr;
            count += *c as usize;
        }
        if count * 1000 > n * GLOBAL_CHANGE_PERMILLE {
            self.seed(luma, width, height);
            return Ok(Vec::new());
        }
        let mut blobs = Vec::new();
        if count > 0 {
            self.denoise();
            let min_pixels = (n * self.sensitivity.min_area_per_100k() / 100_000).max(2);
            let min_moved = (min_pixels / 8).max(2);
            let all = self.blobs(luma);
            // Only pixels of moving regions adapt slowly; everything else is background.
            self.moving.fill(false);
            for (i, &l) in self.labels.iter().enumerate() {
                if l != 0 && all[l as usize - 1].moved >= min_moved {
                    self.moving[i] = true;
                }
            }
            blobs = all.into_iter().filter(|b| b.pixels >= min_pixels && b.moved >= min_moved).collect();
        } else {
            self.moving.fill(false);
        }
        self.update_background(luma);
        self.previous.copy_from_slice(luma);
        blobs.sort_by(|a, b| b.pixels.cmp(&a.pixels).then((a.y0, a.x0).cmp(&(b.y0, b.x0))));
        blobs.truncate(MAX_BOXES);
        let (wf, hf) = (width as f32, height as f32);
        Ok(blobs
            .iter()
            .map(|b| RatioBox {
                l: b.x0 as f32 / wf,
                t: b.y0 as f32 / hf,
                w: (b.x1 - b.x0) as f32 / wf,
                h: (b.y1 - b.y0) as f32 / hf,
            })
            .collect())
    }

    fn seed(&mut self, luma: &[u8], width: usize, height: usize) {
        let n = width * height;
        self.width = width;
        self.height = height;
        self.background = luma.iter().map(|&p| (p as u16) << BG_FRAC).collect();
        self.previous = luma.to_vec();
        self.changed = vec![false; n];
        self.moving = vec![false; n];
        self.kept = vec![false; n];
        self.labels = vec![0; n];
    }

    fn update_background(&mut self, luma: &[u8]) {
        for ((bg, &p), &c) in self.background.iter_mut().zip(luma).zip(&self.moving) {
            let shift = if c { ADAPT_MOVING } else { ADAPT_STILL };
            let diff = (((p as u16) << BG_FRAC) as i32) - *bg as i32;
            *bg = (*bg as i32 + ((diff + (1 << (shift - 1))) >> shift)) as u16;
        }
    }

    /// Drops isolated changed pixels (fewer than 2 changed neighbours of 8): noise and edges
    /// flickering by one pixel.
    fn denoise(&mut self) {
        let (w, h) = (self.width, self.height);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if !self.changed[i] {
                    self.kept[i] = false;
                    continue;
                }
                let mut nb = 0;
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xx in x.saturating_sub(1)..(x + 2).min(w) {
                        nb += self.changed[yy * w + xx] as u32;
                    }
                }
                self.kept[i] = nb > 2; // itself plus at least two neighbours
            }
        }
    }

    /// Groups kept pixels into regions. Pixels up to 2 apart join (a dilation by one pixel), so
    /// an object whose inside matches the background is not split in pieces.
    fn blobs(&mut self, luma: &[u8]) -> Vec<Blob> {
        let (w, h) = (self.width, self.height);
        let thr = self.sensitivity.threshold();
        self.labels.fill(0);
        let mut blobs = Vec::new();
        let mut stack: Vec<usize> = Vec::new();
        for start in 0..w * h {
            if !self.kept[start] || self.labels[start] != 0 {
                continue;
            }
            let label = blobs.len() as u32 + 1;
            let mut b = Blob { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0, pixels: 0, moved: 0 };
            self.labels[start] = label;
            stack.push(start);
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                b.x0 = b.x0.min(x);
                b.y0 = b.y0.min(y);
                b.x1 = b.x1.max(x + 1);
                b.y1 = b.y1.max(y + 1);
                b.pixels += 1;
                b.moved += ((luma[i] as u16).abs_diff(self.previous[i] as u16) > thr) as usize;
                for yy in y.saturating_sub(2)..(y + 3).min(h) {
                    for xx in x.saturating_sub(2)..(x + 3).min(w) {
                        let j = yy * w + xx;
                        if self.kept[j] && self.labels[j] == 0 {
                            self.labels[j] = label;
                            stack.push(j);
                        }
                    }
                }
            }
            blobs.push(b);
        }
        blobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 160;
    const H: usize = 90;

    /// A gray scene with deterministic noise of ±`amp`, and optionally a bright square.
    fn scene(frame: u32, amp: u32, square: Option<(usize, usize, usize)>) -> Vec<u8> {
        let mut s = 0x9e37_79b9u32 ^ frame.wrapping_mul(0x85eb_ca6b);
        let mut v: Vec<u8> = (0..W * H)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let base = 90 + (i % W) as u32 / 4; // a gentle gradient
                (base + s % (2 * amp + 1) - amp) as u8
            })
            .collect();
        if let Some((x, y, size)) = square {
            for yy in y..y + size {
                v[yy * W + x..yy * W + x + size].fill(230);
            }
        }
        v
    }

    #[test]
    fn static_scene_gives_no_boxes() {
        for sens in [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High] {
            let mut d = MotionDetector::new(sens);
            for f in 0..100 {
                let boxes = d.detect(&scene(f, 5, Some((40, 30, 12))), W, H).unwrap();
                assert!(boxes.is_empty(), "{sens:?} frame {f}: {boxes:?}");
            }
        }
    }

    #[test]
    fn moving_square_gives_a_box_around_it() {
        let mut d = MotionDetector::new(Sensitivity::Medium);
        let size = 12;
        for f in 0..30usize {
            let (x, y) = (10 + 3 * f, 40);
            let boxes = d.detect(&scene(f as u32, 4, Some((x, y, size))), W, H).unwrap();
            if f == 0 {
                assert!(boxes.is_empty(), "first frame only seeds");
                continue;
            }
            if f < 12 {
                // Early on the place the square started from (seeded into the background) is
                // still a region of its own or joined to the square.
                assert!(!boxes.is_empty(), "frame {f}");
                continue;
            }
            assert_eq!(boxes.len(), 1, "frame {f}: {boxes:?}");
            let b = boxes[0];
            let (bx0, by0) = ((b.l * W as f32).round() as usize, (b.t * H as f32).round() as usize);
            let (bx1, by1) = (((b.l + b.w) * W as f32).round() as usize, ((b.t + b.h) * H as f32).round() as usize);
            assert!(bx0 <= x && by0 <= y && bx1 >= x + size && by1 >= y + size, "frame {f}: {b:?} misses the square");
            // The box hugs the square (and at most its last step).
            assert!(bx1 - bx0 <= size + 4 && by1 - by0 <= size + 2, "frame {f}: {b:?} too large");
        }
    }

    #[test]
    fn two_objects_give_two_boxes_and_small_ones_follow_sensitivity() {
        let mut hi = MotionDetector::new(Sensitivity::High);
        let mut lo = MotionDetector::new(Sensitivity::Low);
        let mut last = (vec![], vec![]);
        for f in 0..6u32 {
            let mut img = scene(f, 3, None);
            let mut draw = |x: usize, y: usize, s: usize| {
                (y..y + s).for_each(|yy| img[yy * W + x..yy * W + x + s].fill(230));
            };
            if f > 0 {
                draw(20 + 2 * f as usize, 20, 16);
                draw(120, 60 + f as usize, 5);
            }
            last = (hi.detect(&img, W, H).unwrap(), lo.detect(&img, W, H).unwrap());
        }
        assert_eq!(last.0.len(), 2, "{:?}", last.0);
        assert!(last.0[0].w > last.0[1].w, "largest first");
        assert_eq!(last.1.len(), 1, "low sensitivity ignores the 5 px object: {:?}", last.1);
    }

    #[test]
    fn stopped_object_and_its_ghost_fade() {
        let mut d = MotionDetector::new(Sensitivity::High);
        d.detect(&scene(0, 3, Some((20, 20, 16))), W, H).unwrap();
        // The object jumps away and stays: one frame of motion, then nothing (neither the
        // stopped object nor the hole it left is motion).
        assert!(!d.detect(&scene(1, 3, Some((100, 50, 16))), W, H).unwrap().is_empty());
        for f in 2..40 {
            let boxes = d.detect(&scene(f, 3, Some((100, 50, 16))), W, H).unwrap();
            assert!(boxes.is_empty(), "frame {f}: {boxes:?}");
        }
    }

    #[test]
    fn light_change_is_not_motion() {
        let mut d = MotionDetector::new(Sensitivity::High);
        d.detect(&scene(0, 2, None), W, H).unwrap();
        let bright: Vec<u8> = scene(1, 2, None).iter().map(|&p| p + 80).collect();
        assert!(d.detect(&bright, W, H).unwrap().is_empty());
        assert!(d.detect(&bright, W, H).unwrap().is_empty());
    }

    #[test]
    fn bad_sizes_are_errors_and_size_changes_reseed() {
        let mut d = MotionDetector::new(Sensitivity::Medium);
        assert!(d.detect(&[0; 10], 4, 4).is_err());
        assert!(d.detect(&[], 0, 0).is_err());
        assert!(d.detect(&[0; 16], 4, 4).unwrap().is_empty());
        assert!(d.detect(&[200; 64], 8, 8).unwrap().is_empty());
    }

    #[test]
    fn analysis_sizes() {
        assert_eq!(analysis_size(1920, 1080), (240, 135));
        assert_eq!(analysis_size(1280, 720), (160, 90));
        assert_eq!(analysis_size(3840, 2160), (480, 270));
        assert_eq!(analysis_size(100, 50), (100, 50));
        assert_eq!(analysis_size(0, 0), (1, 1));
        assert_eq!(Sensitivity::parse("HIGH"), Ok(Sensitivity::High));
        assert!(Sensitivity::parse("max").is_err());
    }
}
