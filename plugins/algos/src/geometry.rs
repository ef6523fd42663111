//! Regions as ratios of the frame (AVA's box and polygon convention) and their rasterisation
//! into per-row pixel spans for a plane of any size.

/// A rectangle as ratios of the frame, 0.0–1.0, origin top-left: AVA's inference `box`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioBox {
    /// Left edge.
    pub l: f32,
    /// Top edge.
    pub t: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// A polygon vertex as ratios of the frame (x right, y down), as in AVA's zone polygons.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal position, 0.0–1.0.
    pub x: f32,
    /// Vertical position, 0.0–1.0.
    pub y: f32,
}

/// A horizontal run of pixels `[x0, x1)` on row `y` that lies inside a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Row.
    pub y: usize,
    /// First column inside.
    pub x0: usize,
    /// One past the last column inside.
    pub x1: usize,
}

fn check_ratio(what: &str, v: f32) -> Result<(), String> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(format!("{what} must be a ratio 0..1, got {v}"));
    }
    Ok(())
}

impl RatioBox {
    /// A checked box: every value a ratio 0..1 and a non-empty size. A box that runs past the
    /// right or bottom edge is accepted and clipped when rasterised (AVA boxes sometimes do).
    pub fn new(l: f32, t: f32, w: f32, h: f32) -> Result<Self, String> {
        check_ratio("box l", l)?;
        check_ratio("box t", t)?;
        check_ratio("box w", w)?;
        check_ratio("box h", h)?;
        if w <= 0.0 || h <= 0.0 {
            return Err(format!("box must have a positive size, got w={w} h={h}"));
        }
        Ok(RatioBox { l, t, w, h })
    }

    /// The box as a polygon, so boxes and polygons share one rasteriser.
    pub fn corners(&self) -> [Point; 4] {
        let (r, b) = ((self.l + self.w).min(1.0), (self.t + self.h).min(1.0));
        [Point { x: self.l, y: self.t }, Point { x: r, y: self.t }, Point { x: r, y: b }, Point { x: self.l, y: b }]
    }
}

impl Point {
    /// A checked vertex: both coordinates ratios 0..1.
    pub fn new(x: f32, y: f32) -> Result<Self, String> {
        check_ratio("polygon x", x)?;
        check_ratio("polygon y", y)?;
        Ok(Point { x, y })
    }
}

/// Maps a pixel-space edge position to the first column whose centre lies at or right of it.
fn first_centre_at_or_after(pos: f32, limit: usize) -> usize {
    let c = (pos - 0.5).ceil();
    if c <= 0.0 { 0 } else { (c as usize).min(limit) }
}

/// Rasterises a polygon (ratios) onto a `width × height` grid: the pixels whose centres are
/// inside by the even-odd rule, as spans per row. Edges are half-open (top and left edges in,
/// bottom and right out), so adjacent regions do not share pixels and a full-frame box covers
/// every pixel exactly once.
pub fn polygon_spans(points: &[Point], width: usize, height: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    if points.len() < 3 || width == 0 || height == 0 {
        return spans;
    }
    let (wf, hf) = (width as f32, height as f32);
    let px: Vec<(f32, f32)> = points.iter().map(|p| (p.x * wf, p.y * hf)).collect();
    let ymin = px.iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
    let ymax = px.iter().map(|p| p.1).fold(f32::NEG_INFINITY, f32::max);
    let row0 = first_centre_at_or_after(ymin, height);
    let row1 = first_centre_at_or_after(ymax, height);
    let mut xs: Vec<f32> = Vec::with_capacity(8);
    for y in row0..row1 {
        let yc = y as f32 + 0.5;
        xs.clear();
        for i in 0..px.len() {
            let (a, b) = (px[i], px[(i + 1) % px.len()]);
            let (lo, hi) = if a.1 <= b.1 { (a, b) } else { (b, a) };
            if lo.1 <= yc && yc < hi.1 {
                xs.push(lo.0 + (yc - lo.1) * (hi.0 - lo.0) / (hi.1 - lo.1));
            }
        }
        xs.sort_by(f32::total_cmp);
        for pair in xs.chunks_exact(2) {
            let x0 = first_centre_at_or_after(pair[0], width);
            let x1 = first_centre_at_or_after(pair[1], width);
            if x1 > x0 {
                spans.push(Span { y, x0, x1 });
            }
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(spans: &[Span]) -> usize {
        spans.iter().map(|s| s.x1 - s.x0).sum()
    }

    #[test]
    fn full_frame_box_covers_every_pixel_once() {
        let b = RatioBox::new(0.0, 0.0, 1.0, 1.0).unwrap();
        let spans = polygon_spans(&b.corners(), 7, 5);
        assert_eq!(spans.len(), 5);
        assert!(spans.iter().all(|s| s.x0 == 0 && s.x1 == 7));
    }

    #[test]
    fn box_maps_to_pixel_centres() {
        let b = RatioBox::new(0.25, 0.5, 0.5, 0.25).unwrap();
        let spans = polygon_spans(&b.corners(), 100, 100);
        assert_eq!(spans.first().unwrap(), &Span { y: 50, x0: 25, x1: 75 });
        assert_eq!(spans.last().unwrap().y, 74);
        assert_eq!(count(&spans), 50 * 25);
    }

    #[test]
    fn triangle_is_about_half_its_bounding_box() {
        let tri = [Point::new(0.0, 0.0).unwrap(), Point::new(1.0, 0.0).unwrap(), Point::new(0.0, 1.0).unwrap()];
        let n = count(&polygon_spans(&tri, 200, 200));
        assert!((19_800..=20_200).contains(&n), "{n}");
    }

    #[test]
    fn concave_polygon_has_two_spans_on_a_row() {
        // A "U" shape: the notch in the middle stays outside.
        let u = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.6), (0.7, 0.6), (0.7, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)];
        let pts: Vec<Point> = u.iter().map(|&(x, y)| Point::new(x, y).unwrap()).collect();
        let spans = polygon_spans(&pts, 10, 10);
        let row2: Vec<_> = spans.iter().filter(|s| s.y == 2).collect();
        assert_eq!(row2.len(), 2);
        assert_eq!((row2[0].x0, row2[0].x1, row2[1].x0, row2[1].x1), (0, 3, 7, 10));
        assert_eq!(spans.iter().filter(|s| s.y == 8).count(), 1);
    }

    #[test]
    fn bad_ratios_are_errors() {
        assert!(RatioBox::new(-0.1, 0.0, 0.5, 0.5).is_err());
        assert!(RatioBox::new(0.0, 0.0, 0.0, 0.5).is_err());
        assert!(RatioBox::new(0.0, f32::NAN, 0.5, 0.5).is_err());
        assert!(Point::new(1.5, 0.0).is_err());
        assert!(polygon_spans(&[Point { x: 0.0, y: 0.0 }, Point { x: 1.0, y: 1.0 }], 10, 10).is_empty());
    }
}
