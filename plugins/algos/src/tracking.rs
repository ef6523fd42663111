//! Following objects between sparse detections, and counting the ones that cross lines
//! (AVA's `ObjectTrackingProcessor` and `LineCrossingProcessor`; research/extensions.md
//! §3.3–§3.4).
//!
//! **Tracker.** A detector runs on some frames only (an extension sampling a few a second);
//! between them each track is moved by matching the luma patch it had at its last detection
//! (sum of absolute differences, coarse to fine) in a window around where its velocity puts
//! it. At a detection frame, tracks and detections are paired by overlap (greedy IoU); a paired
//! track takes the detection's box (the detector is the truth) and a new template, a track left
//! unpaired ends ("stops tracking objects which are not subsequently detected"), a detection
//! left unpaired starts a track. `Effort` (AVA's `accuracy`) sets the window and how densely the
//! patch is sampled.
//!
//! **Line counter.** The point tested is a box's bottom centre. A track crosses a line when its
//! point moves from one side of the line to the other across the line's segment; the direction
//! is the sign of `(y2−y1)(px−x2) − (py−y2)(x2−x1)` for the new point (`> 0`: counterclockwise),
//! the convention of the one public AVA-compatible implementation, in image coordinates (y down).
//! A point exactly on the line counts on neither side until it leaves it.

use std::collections::HashMap;
use std::hash::Hash;

/// A box in fractions of the frame, origin top-left.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left.
    pub l: f64,
    /// Top.
    pub t: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Rect {
    /// Overlap over union.
    pub fn iou(&self, o: &Rect) -> f64 {
        let x = (self.l + self.w).min(o.l + o.w) - self.l.max(o.l);
        let y = (self.t + self.h).min(o.t + o.h) - self.t.max(o.t);
        if x <= 0.0 || y <= 0.0 {
            return 0.0;
        }
        let inter = x * y;
        inter / (self.w * self.h + o.w * o.h - inter)
    }

    /// The middle of the bottom edge.
    pub fn bottom_centre(&self) -> (f64, f64) {
        (self.l + self.w / 2.0, self.t + self.h)
    }
}

/// A frame's luma plane.
#[derive(Clone, Copy, Debug)]
pub struct Luma<'a> {
    /// Samples; row `y` starts at `y * stride`.
    pub data: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
}

impl Luma<'_> {
    fn at(&self, x: usize, y: usize) -> u8 {
        self.data.get(y * self.stride + x).copied().unwrap_or(0)
    }
}

/// How hard the tracker looks (AVA's `accuracy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effort {
    /// Search radius around the predicted place, pixels.
    pub radius: i32,
    /// Step between the template's samples, pixels.
    pub sample_step: usize,
    /// Step of the coarse search, pixels (then refined to one pixel).
    pub search_step: i32,
}

impl Effort {
    /// `low`.
    pub const LOW: Effort = Effort { radius: 16, sample_step: 4, search_step: 4 };
    /// `medium`.
    pub const MEDIUM: Effort = Effort { radius: 24, sample_step: 2, search_step: 2 };
    /// `high`.
    pub const HIGH: Effort = Effort { radius: 32, sample_step: 1, search_step: 2 };
}

/// A detection on a frame the detector saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection<T> {
    /// Where.
    pub rect: Rect,
    /// What the caller keeps with it (tag, confidence…).
    pub data: T,
}

/// A followed object.
#[derive(Clone, Debug)]
pub struct Track<T> {
    /// Unique while the tracker lives, from 1.
    pub id: u64,
    /// Where it is on the last frame.
    pub rect: Rect,
    /// The data of its last detection.
    pub data: T,
    /// Pixels a frame.
    velocity: (f64, f64),
    /// Luma samples of its last detection, `sample_step` apart, and their grid size.
    template: Vec<u8>,
    grid: (usize, usize),
    /// Its top-left at the template's frame, in pixels.
    anchor: (f64, f64),
    /// Frames since the template was taken.
    age: u32,
}

/// The tracker of one node.
pub struct Tracker<T> {
    effort: Effort,
    tracks: Vec<Track<T>>,
    next_id: u64,
}

/// Least overlap for a detection to continue a track.
const MIN_IOU: f64 = 0.2;

/// Frames a track is followed without a detection frame at all (the detector's server down):
/// past this it ends rather than drift on.
pub const MAX_FRAMES_UNSEEN: u32 = 150;

impl<T: Clone> Tracker<T> {
    /// A tracker with no tracks.
    pub fn new(effort: Effort) -> Self {
        Tracker { effort, tracks: Vec::new(), next_id: 1 }
    }

    /// The tracks now.
    pub fn tracks(&self) -> &[Track<T>] {
        &self.tracks
    }

    /// One frame: `detections` when the detector saw it (possibly none found), `None` when it
    /// did not. Returns the tracks on this frame.
    pub fn step(&mut self, luma: Luma<'_>, detections: Option<&[Detection<T>]>) -> &[Track<T>] {
        if luma.width == 0 || luma.height == 0 {
            return &self.tracks;
        }
        for t in &mut self.tracks {
            follow(t, luma, self.effort);
        }
        self.tracks.retain(|t| t.age <= MAX_FRAMES_UNSEEN);
        if let Some(dets) = detections {
            self.associate(luma, dets);
        }
        &self.tracks
    }

    fn associate(&mut self, luma: Luma<'_>, dets: &[Detection<T>]) {
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (ti, t) in self.tracks.iter().enumerate() {
            for (di, d) in dets.iter().enumerate() {
                let iou = t.rect.iou(&d.rect);
                if iou >= MIN_IOU {
                    pairs.push((iou, ti, di));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut track_of, mut used) = (vec![None; dets.len()], vec![false; self.tracks.len()]);
        for (_, ti, di) in pairs {
            if !used[ti] && track_of[di].is_none() {
                used[ti] = true;
                track_of[di] = Some(ti);
            }
        }
        let old = std::mem::take(&mut self.tracks);
        let mut old: Vec<Option<Track<T>>> = old.into_iter().map(Some).collect();
        for (di, d) in dets.iter().enumerate() {
            let mut t = match track_of[di].and_then(|ti| old[ti].take()) {
                Some(mut t) => {
                    // Velocity from where the template was to where the detector saw it.
                    let (x, y) = pixels(&d.rect, luma);
                    if t.age > 0 {
                        let n = f64::from(t.age);
                        t.velocity = ((x - t.anchor.0) / n, (y - t.anchor.1) / n);
                    }
                    t.data = d.data.clone();
                    t
                }
                None => {
                    let id = self.next_id;
                    self.next_id += 1;
                    Track {
                        id,
                        rect: d.rect,
                        data: d.data.clone(),
                        velocity: (0.0, 0.0),
                        template: Vec::new(),
                        grid: (0, 0),
                        anchor: (0.0, 0.0),
                        age: 0,
                    }
                }
            };
            t.rect = d.rect;
            retemplate(&mut t, luma, self.effort);
            self.tracks.push(t);
        }
    }
}

/// A box's top-left in pixels.
fn pixels(r: &Rect, luma: Luma<'_>) -> (f64, f64) {
    (r.l * luma.width as f64, r.t * luma.height as f64)
}

/// Takes the track's template from its box on this frame.
fn retemplate<T>(t: &mut Track<T>, luma: Luma<'_>, e: Effort) {
    let (x0, y0) = pixels(&t.rect, luma);
    let (w, h) = ((t.rect.w * luma.width as f64) as usize, (t.rect.h * luma.height as f64) as usize);
    let s = e.sample_step.max(1);
    let grid = (w / s, h / s);
    let (x0, y0) = (x0.max(0.0) as usize, y0.max(0.0) as usize);
    t.template = (0..grid.1)
        .flat_map(|gy| (0..grid.0).map(move |gx| (gx, gy)))
        .map(|(gx, gy)| luma.at((x0 + gx * s).min(luma.width - 1), (y0 + gy * s).min(luma.height - 1)))
        .collect();
    t.grid = grid;
    t.anchor = (x0 as f64, y0 as f64);
    t.age = 0;
}

/// Sum of absolute differences of the template placed with its top-left at (x, y).
fn sad(t: &[u8], grid: (usize, usize), luma: Luma<'_>, x: i32, y: i32, s: usize, limit: u64) -> u64 {
    let mut sum = 0u64;
    for gy in 0..grid.1 {
        let py = (y + (gy * s) as i32).clamp(0, luma.height as i32 - 1) as usize;
        for gx in 0..grid.0 {
            let px = (x + (gx * s) as i32).clamp(0, luma.width as i32 - 1) as usize;
            sum += u64::from(t[gy * grid.0 + gx].abs_diff(luma.at(px, py)));
        }
        if sum >= limit {
            return sum;
        }
    }
    sum
}

/// Moves a track to where its template matches best near where its velocity puts it.
fn follow<T>(t: &mut Track<T>, luma: Luma<'_>, e: Effort) {
    if t.template.is_empty() {
        return;
    }
    let (x, y) = pixels(&t.rect, luma);
    let (px, py) = ((x + t.velocity.0).round() as i32, (y + t.velocity.1).round() as i32);
    let s = e.sample_step.max(1);
    let mut best = (u64::MAX, px, py);
    let try_at = |cx: i32, cy: i32, best: &mut (u64, i32, i32)| {
        let v = sad(&t.template, t.grid, luma, cx, cy, s, best.0);
        if v < best.0 {
            *best = (v, cx, cy);
        }
    };
    let step = e.search_step.max(1);
    let mut dy = -e.radius;
    while dy <= e.radius {
        let mut dx = -e.radius;
        while dx <= e.radius {
            try_at(px + dx, py + dy, &mut best);
            dx += step;
        }
        dy += step;
    }
    let (cx, cy) = (best.1, best.2);
    for dy in -step + 1..step {
        for dx in -step + 1..step {
            try_at(cx + dx, cy + dy, &mut best);
        }
    }
    let (nx, ny) = (f64::from(best.1), f64::from(best.2));
    t.velocity = (nx - x, ny - y);
    t.rect.l = nx / luma.width as f64;
    t.rect.t = ny / luma.height as f64;
    t.age += 1;
}

/// Which way an object crossed a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The sign rule's positive side.
    Counterclockwise,
    /// Its negative side.
    Clockwise,
}

/// A line's counts since the counter started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Clockwise crossings.
    pub clockwise: u64,
    /// Counterclockwise crossings.
    pub counterclockwise: u64,
}

/// One crossing on one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossing<K> {
    /// The line's index.
    pub line: usize,
    /// The track that crossed.
    pub track: K,
    /// Which way.
    pub direction: Direction,
    /// The line's counts with this crossing.
    pub totals: Totals,
}

/// Counts crossings of a set of lines.
pub struct LineCounter<K> {
    lines: Vec<((f64, f64), (f64, f64), Totals)>,
    /// Per track, its last point (a point on a line is judged when it leaves it, so the one
    /// before is kept).
    last: HashMap<K, (f64, f64)>,
}

/// Which side of the line through `a`→`b` point `p` lies on: the sign rule above.
fn side(a: (f64, f64), b: (f64, f64), p: (f64, f64)) -> f64 {
    (b.1 - a.1) * (p.0 - b.0) - (p.1 - b.1) * (b.0 - a.0)
}

impl<K: Hash + Eq + Clone> LineCounter<K> {
    /// A counter of `lines` (start, end), all counts 0.
    pub fn new(lines: &[((f64, f64), (f64, f64))]) -> Self {
        LineCounter { lines: lines.iter().map(|&(a, b)| (a, b, Totals::default())).collect(), last: HashMap::new() }
    }

    /// One frame's tracks (key, box); tracks absent from it are forgotten. Returns the
    /// crossings on this frame.
    pub fn step(&mut self, tracks: &[(K, Rect)]) -> Vec<Crossing<K>> {
        let mut out = Vec::new();
        let mut next = HashMap::with_capacity(tracks.len());
        for (k, r) in tracks {
            let p = r.bottom_centre();
            let prev = self.last.get(k).copied();
            let mut keep = p;
            for (i, (a, b, totals)) in self.lines.iter_mut().enumerate() {
                let Some(q) = prev else { continue };
                let (sq, sp) = (side(*a, *b, q), side(*a, *b, p));
                if sp == 0.0 {
                    keep = q; // on the line: judged when it leaves it
                    continue;
                }
                // Opposite sides of the line, and the move passes between its ends.
                let (oa, ob) = (side(q, p, *a), side(q, p, *b));
                if sq * sp < 0.0 && oa * ob <= 0.0 {
                    let direction = if sp > 0.0 { Direction::Counterclockwise } else { Direction::Clockwise };
                    match direction {
                        Direction::Counterclockwise => totals.counterclockwise += 1,
                        Direction::Clockwise => totals.clockwise += 1,
                    }
                    out.push(Crossing { line: i, track: k.clone(), direction, totals: *totals });
                }
            }
            next.insert(k.clone(), keep);
        }
        self.last = next;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A grey frame with a textured square (`size` px) at (x, y).
    fn frame(w: usize, h: usize, x: usize, y: usize, size: usize) -> Vec<u8> {
        let mut f = vec![128u8; w * h];
        for dy in 0..size {
            for dx in 0..size {
                f[(y + dy) * w + x + dx] = if ((dx / 10) + (dy / 10)) % 2 == 0 { 20 } else { 235 };
            }
        }
        f
    }

    #[test]
    fn a_square_is_followed_between_detections_and_dropped_when_not_redetected() {
        let (w, h, size) = (640usize, 360usize, 80usize);
        for effort in [Effort::LOW, Effort::MEDIUM, Effort::HIGH] {
            let mut tr: Tracker<&str> = Tracker::new(effort);
            let det = |x: usize| Detection {
                rect: Rect {
                    l: x as f64 / w as f64,
                    t: 100.0 / h as f64,
                    w: size as f64 / w as f64,
                    h: size as f64 / h as f64,
                },
                data: "marker",
            };
            // 6 px a frame to the right; a detection every 12 frames.
            for n in 0..60usize {
                let x = 20 + 6 * n;
                let f = frame(w, h, x, 100, size);
                let luma = Luma { data: &f, width: w, height: h, stride: w };
                let dets = [det(x)];
                let tracks = tr.step(luma, (n % 12 == 0).then_some(&dets[..]));
                assert_eq!(tracks.len(), 1, "{effort:?} frame {n}");
                assert_eq!(tracks[0].id, 1, "one track all along");
                let got = tracks[0].rect.l * w as f64;
                assert!((got - x as f64).abs() <= 2.0, "{effort:?} frame {n}: at {got}, truly {x}");
            }
            // A detection frame without it: the track ends; a new detection starts track 2.
            let f = frame(w, h, 400, 100, size);
            let luma = Luma { data: &f, width: w, height: h, stride: w };
            assert!(tr.step(luma, Some(&[])).is_empty());
            assert_eq!(tr.step(luma, Some(&[det(400)]))[0].id, 2);
        }
    }

    #[test]
    fn crossings_follow_the_sign_rule_and_count_once() {
        let mut c = LineCounter::new(&[((0.5, 0.1), (0.5, 0.9))]);
        let at = |x: f64| Rect { l: x - 0.05, t: 0.3, w: 0.1, h: 0.2 }; // bottom centre (x, 0.5)
        let mut all = Vec::new();
        for x in [0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7] {
            all.extend(c.step(&[(7u32, at(x))]));
        }
        // Left to right (through a frame exactly on the line): one counterclockwise crossing.
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].direction, Direction::Counterclockwise);
        assert_eq!(all[0].totals, Totals { clockwise: 0, counterclockwise: 1 });
        // Back right to left: clockwise. Beyond the segment's end (y > 0.9): nothing.
        let back = c.step(&[(7u32, at(0.3))]);
        assert_eq!(back[0].direction, Direction::Clockwise);
        assert_eq!(back[0].totals, Totals { clockwise: 1, counterclockwise: 1 });
        let low = |x: f64| Rect { l: x - 0.05, t: 0.85, w: 0.1, h: 0.1 }; // y = 0.95
        assert!(c.step(&[(8u32, low(0.3))]).is_empty());
        assert!(c.step(&[(8u32, low(0.7))]).is_empty());
        // A track that vanished and came back is new: no crossing from its old point.
        assert!(c.step(&[]).is_empty());
        assert!(c.step(&[(7u32, at(0.7))]).is_empty());
    }
}
