//! Box blur restricted to regions (privacy masking): pixels outside every region are never
//! written.

use crate::check_plane;
use crate::geometry::{Point, RatioBox, Span, polygon_spans};
use std::ops::Range;

/// An area of the frame, as ratios so it applies to planes of any size.
#[derive(Clone, Debug, PartialEq)]
pub enum Region {
    /// An axis-aligned rectangle.
    Box(RatioBox),
    /// A polygon (at least 3 vertices), filled by the even-odd rule.
    Polygon(Vec<Point>),
}

impl Region {
    /// The pixels of a `width × height` plane inside this region, as row spans.
    pub fn spans(&self, width: usize, height: usize) -> Vec<Span> {
        match self {
            Region::Box(b) => polygon_spans(&b.corners(), width, height),
            Region::Polygon(p) => polygon_spans(p, width, height),
        }
    }
}

/// Largest blur radius accepted; larger ones only cost time.
pub const MAX_RADIUS: u32 = 128;

/// Blurs the pixels of `plane` (`width × height`, rows `stride` apart) that lie inside any of
/// `regions` with a `(2·radius + 1)²` box filter; every other byte stays as it was.
///
/// Samples come from the unblurred plane (overlapping regions do not blur twice) and reach
/// outside the region, clamped at the plane's edges. Integer arithmetic, rounded to nearest.
pub fn blur_regions(
    plane: &mut [u8],
    width: usize,
    height: usize,
    stride: usize,
    regions: &[Region],
    radius: u32,
) -> Result<(), String> {
    blur_regions_in_rows(plane, width, height, 0..height, stride, regions, radius)
}

/// The rows of a `width × height` plane that [`blur_regions`] reads or writes: the regions'
/// rows plus `radius` above and below, clipped to the plane. `None` if no pixel is inside.
/// A plugin reads just these rows from the host and passes them to [`blur_regions_in_rows`].
pub fn rows_needed(regions: &[Region], width: usize, height: usize, radius: u32) -> Option<Range<usize>> {
    let spans = regions.iter().flat_map(|r| r.spans(width, height));
    let (y0, y1) = spans.fold((usize::MAX, 0), |(a, b), s| (a.min(s.y), b.max(s.y + 1)));
    (y0 < y1).then(|| y0.saturating_sub(radius as usize)..(y1 + radius as usize).min(height))
}

/// [`blur_regions`] on a strip of the plane: `strip` holds rows `rows` of a `width × height`
/// plane (regions are ratios of the whole plane). Given the rows from [`rows_needed`] the
/// result is exactly that of blurring the whole plane.
pub fn blur_regions_in_rows(
    strip: &mut [u8],
    width: usize,
    height: usize,
    rows: Range<usize>,
    stride: usize,
    regions: &[Region],
    radius: u32,
) -> Result<(), String> {
    if rows.start >= rows.end || rows.end > height {
        return Err(format!("rows {rows:?} outside a plane of height {height}"));
    }
    check_plane("plane", strip.len(), width, rows.len(), stride)?;
    if radius == 0 || radius > MAX_RADIUS {
        return Err(format!("radius must be 1..={MAX_RADIUS}, got {radius}"));
    }
    let r = radius as usize;
    let spans: Vec<Vec<Span>> = regions
        .iter()
        .map(|reg| {
            let mut s = reg.spans(width, height);
            s.retain(|s| rows.contains(&s.y));
            s.iter_mut().for_each(|s| s.y -= rows.start);
            s
        })
        .collect();
    if spans.iter().all(|s| s.is_empty()) {
        return Ok(());
    }
    let original = strip.to_vec();
    for region in spans.iter().filter(|s| !s.is_empty()) {
        blur_spans(&original, strip, width, rows.len(), stride, region, r);
    }
    Ok(())
}

/// Blurs one region: box sums over the region's bounding rectangle (plus the radius), written
/// back only on the region's spans. Rows are clamped to `0..height` of `src`.
fn blur_spans(src: &[u8], dst: &mut [u8], width: usize, height: usize, stride: usize, spans: &[Span], r: usize) {
    let x0 = spans.iter().map(|s| s.x0).min().unwrap_or(0);
    let x1 = spans.iter().map(|s| s.x1).max().unwrap_or(0);
    let y0 = spans.iter().map(|s| s.y).min().unwrap_or(0);
    let y1 = spans.iter().map(|s| s.y + 1).max().unwrap_or(0);
    let (ry0, ry1) = (y0.saturating_sub(r), (y1 + r).min(height));
    let bw = x1 - x0;
    let clamp_x = |x: isize| x.clamp(0, width as isize - 1) as usize;

    // Horizontal sums for every source row the vertical window can touch.
    let mut hsum = vec![0u32; (ry1 - ry0) * bw];
    for (row_sums, y) in hsum.chunks_exact_mut(bw).zip(ry0..ry1) {
        let row = &src[y * stride..y * stride + width];
        let mut s: u32 = (x0 as isize - r as isize..=x0 as isize + r as isize).map(|x| row[clamp_x(x)] as u32).sum();
        for (i, out) in row_sums.iter_mut().enumerate() {
            *out = s;
            let x = (x0 + i) as isize;
            s = s + row[clamp_x(x + r as isize + 1)] as u32 - row[clamp_x(x - r as isize)] as u32;
        }
    }

    // Vertical sums, sliding down the rows of the bounding rectangle.
    let d = (2 * r + 1) as u32;
    let area = d * d;
    let clamp_y = |y: isize| (y.clamp(0, height as isize - 1) as usize) - ry0;
    let mut vsum: Vec<u32> = vec![0; bw];
    for dy in -(r as isize)..=r as isize {
        let row = &hsum[clamp_y(y0 as isize + dy) * bw..][..bw];
        vsum.iter_mut().zip(row).for_each(|(v, &h)| *v += h);
    }
    let mut spans_at = spans.iter().peekable();
    for y in y0..y1 {
        while let Some(s) = spans_at.next_if(|s| s.y == y) {
            let out = &mut dst[y * stride + s.x0..y * stride + s.x1];
            for (o, &v) in out.iter_mut().zip(&vsum[s.x0 - x0..]) {
                *o = ((v + area / 2) / area) as u8;
            }
        }
        if y + 1 == y1 {
            break;
        }
        let add = &hsum[clamp_y(y as isize + r as isize + 1) * bw..][..bw];
        let sub = &hsum[clamp_y(y as isize - r as isize) * bw..][..bw];
        for ((v, &a), &s) in vsum.iter_mut().zip(add).zip(sub) {
            *v = *v + a - s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(w: usize, h: usize) -> Vec<u8> {
        let mut s = 0x1234_5678u32;
        (0..w * h)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s as u8
            })
            .collect()
    }

    /// Straightforward per-pixel box mean, to check the sliding sums against.
    fn reference(src: &[u8], w: usize, h: usize, x: usize, y: usize, r: isize) -> u8 {
        let mut s = 0u32;
        for dy in -r..=r {
            for dx in -r..=r {
                let yy = (y as isize + dy).clamp(0, h as isize - 1) as usize;
                let xx = (x as isize + dx).clamp(0, w as isize - 1) as usize;
                s += src[yy * w + xx] as u32;
            }
        }
        let n = ((2 * r + 1) * (2 * r + 1)) as u32;
        ((s + n / 2) / n) as u8
    }

    #[test]
    fn box_region_blurs_inside_only() {
        let (w, h) = (64, 48);
        let src = noise(w, h);
        let mut p = src.clone();
        let region = Region::Box(RatioBox::new(0.25, 0.25, 0.5, 0.5).unwrap());
        blur_regions(&mut p, w, h, w, std::slice::from_ref(&region), 3).unwrap();
        for y in 0..h {
            for x in 0..w {
                let inside = (16..48).contains(&x) && (12..36).contains(&y);
                let want = if inside { reference(&src, w, h, x, y, 3) } else { src[y * w + x] };
                assert_eq!(p[y * w + x], want, "{x},{y}");
            }
        }
    }

    #[test]
    fn edges_clamp_and_stride_padding_is_untouched() {
        let (w, h, stride) = (20, 10, 24);
        let img = noise(w, h);
        let mut p = vec![7u8; stride * h];
        for y in 0..h {
            p[y * stride..y * stride + w].copy_from_slice(&img[y * w..y * w + w]);
        }
        let all = Region::Box(RatioBox::new(0.0, 0.0, 1.0, 1.0).unwrap());
        blur_regions(&mut p, w, h, stride, &[all], 4).unwrap();
        for y in 0..h {
            for x in 0..w {
                assert_eq!(p[y * stride + x], reference(&img, w, h, x, y, 4), "{x},{y}");
            }
            assert!(p[y * stride + w..(y + 1) * stride].iter().all(|&v| v == 7));
        }
    }

    #[test]
    fn polygon_region_and_overlaps() {
        let (w, h) = (40, 40);
        let src = noise(w, h);
        let mut p = src.clone();
        let tri: Vec<Point> =
            [(0.1, 0.1), (0.9, 0.1), (0.1, 0.9)].iter().map(|&(x, y)| Point::new(x, y).unwrap()).collect();
        let tri = Region::Polygon(tri);
        let overlap = Region::Box(RatioBox::new(0.0, 0.0, 0.3, 0.3).unwrap());
        blur_regions(&mut p, w, h, w, &[tri.clone(), overlap.clone()], 2).unwrap();
        let mut inside = vec![false; w * h];
        for s in tri.spans(w, h).iter().chain(&overlap.spans(w, h)) {
            (s.x0..s.x1).for_each(|x| inside[s.y * w + x] = true);
        }
        let mut changed_inside = 0;
        for i in 0..w * h {
            let (x, y) = (i % w, i / w);
            if inside[i] {
                assert_eq!(p[i], reference(&src, w, h, x, y, 2));
                changed_inside += (p[i] != src[i]) as usize;
            } else {
                assert_eq!(p[i], src[i], "outside pixel {x},{y} changed");
            }
        }
        assert!(changed_inside > 500);
    }

    #[test]
    fn strip_equals_whole_plane() {
        let (w, h) = (50, 60);
        let src = noise(w, h);
        let regions = [
            Region::Box(RatioBox::new(0.1, 0.3, 0.3, 0.2).unwrap()),
            Region::Polygon(vec![
                Point::new(0.5, 0.4).unwrap(),
                Point::new(0.9, 0.45).unwrap(),
                Point::new(0.7, 0.6).unwrap(),
            ]),
        ];
        let mut whole = src.clone();
        blur_regions(&mut whole, w, h, w, &regions, 5).unwrap();
        let rows = rows_needed(&regions, w, h, 5).unwrap();
        assert_eq!(rows, 13..41);
        let mut strip = src[rows.start * w..rows.end * w].to_vec();
        blur_regions_in_rows(&mut strip, w, h, rows.clone(), w, &regions, 5).unwrap();
        assert_eq!(&whole[rows.start * w..rows.end * w], &strip[..]);
        assert_eq!(&whole[..rows.start * w], &src[..rows.start * w]);
        // At the plane's edges the strip is clipped and clamping matches too.
        let edge = [Region::Box(RatioBox::new(0.0, 0.9, 1.0, 0.1).unwrap())];
        let mut whole = src.clone();
        blur_regions(&mut whole, w, h, w, &edge, 4).unwrap();
        let rows = rows_needed(&edge, w, h, 4).unwrap();
        assert_eq!(rows, 50..60);
        let mut strip = src[rows.start * w..].to_vec();
        blur_regions_in_rows(&mut strip, w, h, rows, w, &edge, 4).unwrap();
        assert_eq!(&whole[50 * w..], &strip[..]);
        assert!(rows_needed(&[], w, h, 4).is_none());
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut p = vec![0u8; 100];
        let r = [Region::Box(RatioBox::new(0.0, 0.0, 1.0, 1.0).unwrap())];
        assert!(blur_regions(&mut p, 10, 10, 10, &r, 0).is_err());
        assert!(blur_regions(&mut p, 10, 10, 10, &r, 1000).is_err());
        assert!(blur_regions(&mut p, 10, 11, 10, &r, 1).is_err());
        assert!(blur_regions(&mut p, 10, 10, 10, &[], 3).is_ok());
    }
}
