//! Scaling of planes and I420 frames, and AVA's scale modes.
//!
//! The bilinear kernel uses 16.16 source positions and 8-bit weights in integer arithmetic, so
//! its output is bit-identical on every target (the host checks wasm against native with it).
//! Sampling is pixel-centre aligned (like ffmpeg's and OpenCV's bilinear), with edges clamped.

use crate::check_plane;
use std::ops::Range;

mod simd;

/// Largest output width accepted (8K UHD).
pub const MAX_WIDTH: u32 = 8192;
/// Largest output height accepted (8K UHD).
pub const MAX_HEIGHT: u32 = 4320;
/// Luma of black in limited-range video.
pub const BLACK_Y: u8 = 16;
/// Chroma of any gray, black included.
pub const NEUTRAL_CHROMA: u8 = 128;

/// One plane borrowed from a frame: `height` rows of `width` bytes, `stride` bytes apart.
#[derive(Clone, Copy, Debug)]
pub struct PlaneRef<'a> {
    /// The bytes; row `y` starts at `y * stride`.
    pub data: &'a [u8],
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Bytes from one row to the next (at least `width`).
    pub stride: usize,
}

/// An I420 frame borrowed plane by plane, whatever its layout (host planes, a by-value buffer).
#[derive(Clone, Copy, Debug)]
pub struct I420Ref<'a> {
    /// Luma width.
    pub width: u32,
    /// Luma height.
    pub height: u32,
    /// Y, U, V.
    pub planes: [PlaneRef<'a>; 3],
}

/// An owned I420 frame, tightly packed: Y then U then V, no row padding. This is the layout of
/// `read-plane`/`write-plane` data, so planes go to the host without repacking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420 {
    /// Luma width.
    pub width: u32,
    /// Luma height.
    pub height: u32,
    /// The three planes back to back.
    pub data: Vec<u8>,
}

/// Size of a chroma plane of an I420 frame: half of luma, rounded up.
pub fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// Size of plane `plane` (0 = Y, 1 = U, 2 = V) of an I420 frame.
pub fn plane_size(width: u32, height: u32, plane: usize) -> (u32, u32) {
    if plane == 0 { (width, height) } else { chroma_size(width, height) }
}

impl<'a> PlaneRef<'a> {
    /// A plane with its size checked against the bytes.
    pub fn new(data: &'a [u8], width: usize, height: usize, stride: usize) -> Result<Self, String> {
        check_plane("plane", data.len(), width, height, stride)?;
        Ok(PlaneRef { data, width, height, stride })
    }

    /// Row `y` (exactly `width` bytes).
    pub fn row(&self, y: usize) -> &'a [u8] {
        &self.data[y * self.stride..y * self.stride + self.width]
    }
}

impl<'a> I420Ref<'a> {
    /// A view of a tightly packed I420 buffer (Y, U, V back to back).
    pub fn packed(width: u32, height: u32, data: &'a [u8]) -> Result<Self, String> {
        let ranges = packed_ranges(width, height)?;
        if data.len() < ranges[2].end {
            return Err(format!("I420 {width}x{height} needs {} bytes, got {}", ranges[2].end, data.len()));
        }
        let plane = |i: usize| {
            let (w, h) = plane_size(width, height, i);
            PlaneRef { data: &data[ranges[i].clone()], width: w as usize, height: h as usize, stride: w as usize }
        };
        Ok(I420Ref { width, height, planes: [plane(0), plane(1), plane(2)] })
    }

    /// Checks that the planes have the sizes I420 requires for `width × height`.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.planes.iter().enumerate() {
            let (w, h) = plane_size(self.width, self.height, i);
            if (p.width, p.height) != (w as usize, h as usize) {
                return Err(format!(
                    "plane {i} is {}x{}, I420 {}x{} needs {w}x{h}",
                    p.width, p.height, self.width, self.height
                ));
            }
            check_plane(&format!("plane {i}"), p.data.len(), p.width, p.height, p.stride)?;
        }
        Ok(())
    }
}

fn packed_ranges(width: u32, height: u32) -> Result<[Range<usize>; 3], String> {
    if width == 0 || height == 0 {
        return Err(format!("empty frame {width}x{height}"));
    }
    let y = width as usize * height as usize;
    let (cw, ch) = chroma_size(width, height);
    let c = cw as usize * ch as usize;
    Ok([0..y, y..y + c, y + c..y + 2 * c])
}

impl I420 {
    /// A black frame (Y 16, U and V 128): the background of `Pad`, and a blank canvas.
    pub fn black(width: u32, height: u32) -> Result<Self, String> {
        let r = packed_ranges(width, height)?;
        let mut data = vec![NEUTRAL_CHROMA; r[2].end];
        data[r[0].clone()].fill(BLACK_Y);
        Ok(I420 { width, height, data })
    }

    /// Where plane `plane` lies in `data`.
    pub fn plane_range(&self, plane: usize) -> Range<usize> {
        packed_ranges(self.width, self.height).map(|r| r[plane.min(2)].clone()).unwrap_or(0..0)
    }

    /// Plane `plane` (0 = Y, 1 = U, 2 = V), packed.
    pub fn plane(&self, plane: usize) -> &[u8] {
        &self.data[self.plane_range(plane)]
    }

    /// Plane `plane`, packed, writable.
    pub fn plane_mut(&mut self, plane: usize) -> &mut [u8] {
        let r = self.plane_range(plane);
        &mut self.data[r]
    }

    /// A borrowed view (for chaining algorithms).
    pub fn as_ref(&self) -> I420Ref<'_> {
        // The buffer was built by `black`, so its size matches; fall back to empty planes if a
        // caller shrank `data` by hand rather than panicking.
        I420Ref::packed(self.width, self.height, &self.data).unwrap_or(I420Ref {
            width: self.width,
            height: self.height,
            planes: [PlaneRef { data: &[], width: 0, height: 0, stride: 0 }; 3],
        })
    }
}

/// AVA's `ImageScale.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleMode {
    /// Exactly the requested width × height; the aspect ratio may change.
    Stretch,
    /// The largest size that fits inside the request and keeps the aspect ratio; with only one
    /// of width/height the other is derived.
    PreserveAspectRatio,
    /// Exactly the requested size: the picture fitted inside keeping its aspect ratio, centred,
    /// the rest black. AVA's default.
    #[default]
    Pad,
}

impl ScaleMode {
    /// Parses AVA's mode names case-insensitively (`pad`, `preserveAspectRatio`, `stretch`).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pad" => Ok(ScaleMode::Pad),
            "preserveaspectratio" => Ok(ScaleMode::PreserveAspectRatio),
            "stretch" => Ok(ScaleMode::Stretch),
            _ => Err(format!("mode must be pad, preserveAspectRatio or stretch, got {s:?}")),
        }
    }
}

/// A pixel rectangle (luma coordinates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Columns.
    pub w: u32,
    /// Rows.
    pub h: u32,
}

/// Where a scaled frame goes: the output size and the rectangle the picture fills in it (the
/// whole output except with `Pad`). All values are even, so chroma maps exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// The scaled picture inside the output.
    pub picture: Rect,
}

fn check_dim(name: &str, v: Option<u32>, max: u32) -> Result<Option<u32>, String> {
    match v {
        Some(v) if !(1..=max).contains(&v) => Err(format!("{name} must be 1..={max}, got {v}")),
        _ => Ok(v),
    }
}

fn require_even(name: &str, v: u32, mode: &str) -> Result<u32, String> {
    if v % 2 == 1 {
        return Err(format!("{name} must be even with mode {mode} (I420 chroma is half size), got {v}"));
    }
    Ok(v)
}

/// `round(num / den)` to the nearest even number, from integers.
fn round_even(num: u64, den: u64) -> u64 {
    (num + den) / (2 * den) * 2
}

/// The largest even size keeping `in_w:in_h` that fits inside `bw × bh` (both at least 2).
fn fit(in_w: u32, in_h: u32, bw: u32, bh: u32) -> (u32, u32) {
    let (iw, ih, bw64, bh64) = (in_w as u64, in_h as u64, bw as u64, bh as u64);
    let (w, h) = if iw * bh64 >= ih * bw64 {
        let w = bw64 & !1;
        (w, round_even(ih * w, iw).min(bh64 & !1))
    } else {
        let h = bh64 & !1;
        (round_even(iw * h, ih).min(bw64 & !1), h)
    };
    (w.max(2) as u32, h.max(2) as u32)
}

/// Output size and picture placement for scaling `in_w × in_h` with `mode` to the requested
/// `want_w`/`want_h` (AVA's `ImageScale` width/height).
///
/// Rules: width 1..=8192 and height 1..=4320. `Stretch` and `Pad` need both and they must be
/// even (the output is exactly that size). `PreserveAspectRatio` needs at least one; a given
/// value is a bound (an odd one is rounded down), a missing one is derived from the aspect
/// ratio, and the result is rounded to even sizes. With `Pad` the picture is centred on even
/// offsets.
pub fn output_geometry(
    mode: ScaleMode,
    in_w: u32,
    in_h: u32,
    want_w: Option<u32>,
    want_h: Option<u32>,
) -> Result<Geometry, String> {
    if in_w == 0 || in_h == 0 {
        return Err(format!("input frame is empty ({in_w}x{in_h})"));
    }
    let want_w = check_dim("width", want_w, MAX_WIDTH)?;
    let want_h = check_dim("height", want_h, MAX_HEIGHT)?;
    let full = |width: u32, height: u32| Geometry { width, height, picture: Rect { x: 0, y: 0, w: width, h: height } };
    match mode {
        ScaleMode::Stretch | ScaleMode::Pad => {
            let name = if mode == ScaleMode::Pad { "pad" } else { "stretch" };
            let w = want_w.ok_or_else(|| format!("width is required with mode {name}"))?;
            let h = want_h.ok_or_else(|| format!("height is required with mode {name}"))?;
            let (w, h) = (require_even("width", w, name)?, require_even("height", h, name)?);
            if mode == ScaleMode::Stretch {
                return Ok(full(w, h));
            }
            let (pw, ph) = fit(in_w, in_h, w, h);
            let picture = Rect { x: ((w - pw) / 2) & !1, y: ((h - ph) / 2) & !1, w: pw, h: ph };
            Ok(Geometry { width: w, height: h, picture })
        }
        ScaleMode::PreserveAspectRatio => {
            let (w, h) = match (want_w, want_h) {
                (None, None) => return Err("width or height is required with mode preserveAspectRatio".into()),
                (Some(w), Some(h)) => {
                    if w < 2 || h < 2 {
                        return Err(format!("width and height must be at least 2, got {w}x{h}"));
                    }
                    fit(in_w, in_h, w, h)
                }
                (Some(w), None) => {
                    let w = w & !1;
                    let h = round_even(in_h as u64 * w as u64, in_w as u64).max(2);
                    if w < 2 || h > MAX_HEIGHT as u64 {
                        return Err(format!("width {w} gives a height of {h}, outside 2..={MAX_HEIGHT}"));
                    }
                    (w, h as u32)
                }
                (None, Some(h)) => {
                    let h = h & !1;
                    let w = round_even(in_w as u64 * h as u64, in_h as u64).max(2);
                    if h < 2 || w > MAX_WIDTH as u64 {
                        return Err(format!("height {h} gives a width of {w}, outside 2..={MAX_WIDTH}"));
                    }
                    (w as u32, h)
                }
            };
            Ok(full(w, h))
        }
    }
}

/// Fractional bits of a source position.
const POS_BITS: u32 = 16;
/// Bits of an interpolation weight.
const W_BITS: u32 = 8;
const W_ONE: u16 = 1 << W_BITS;

/// One output column (or row): the two source samples and the weight of the second.
#[derive(Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    f: u16,
}

/// Pixel-centre aligned sample positions: `(x + 0.5) * src / dst - 0.5`, clamped to the edges.
fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let last = ((src - 1) as i64) << POS_BITS;
    (0..dst)
        .map(|x| {
            let num = ((2 * x as u64 + 1) * src as u64) << POS_BITS;
            let pos = ((num / (2 * dst as u64)) as i64 - (1 << (POS_BITS - 1))).clamp(0, last);
            let i0 = (pos >> POS_BITS) as usize;
            let f = ((pos >> (POS_BITS - W_BITS)) & (W_ONE as i64 - 1)) as u16;
            Tap { i0, i1: (i0 + 1).min(src - 1), f }
        })
        .collect()
}

/// One horizontal tap of the bilinear filter, rounded to nearest.
#[inline(always)]
fn h_tap(tmp: &[u16], t: &Tap) -> u8 {
    let (p0, p1) = (tmp[t.i0], tmp[t.i0 + 1]);
    let v = p0 as u32 * (W_ONE - t.f) as u32 + p1 as u32 * t.f as u32;
    ((v + (1 << (2 * W_BITS - 1))) >> (2 * W_BITS)) as u8
}

/// Entries of `tmp` past the last source column: a v128 load of 8 samples at any tap's first
/// sample stays inside the row buffer.
const TMP_SPARE: usize = 8;

/// Four consecutive horizontal taps whose sample pairs all lie in the 8 intermediates starting
/// at `base`, prepared for a SIMD pass: one load, one byte shuffle and one 16-bit dot product
/// give the four outputs. The shuffle lines up the pairs (`p0` in even lanes, `p1` in odd
/// lanes) and `w` holds the matching weights (`256 - f`, `f`) in the same order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Quad {
    pub(crate) base: usize,
    pub(crate) shuffle: [u8; 16],
    pub(crate) w: [u16; 8],
}

impl Quad {
    /// The quad for `t` (4 taps), or `None` when their pairs span more than 8 samples (a
    /// downscale by more than about 2), which the scalar path handles.
    fn new(t: &[Tap]) -> Option<Quad> {
        let base = t[0].i0;
        let mut shuffle = [0u8; 16];
        let mut w = [0u16; 8];
        for (k, tap) in t.iter().enumerate() {
            let off = tap.i0.checked_sub(base)?;
            if off + 1 >= 8 {
                return None;
            }
            for (lane, sample) in [(2 * k, off), (2 * k + 1, off + 1)] {
                shuffle[2 * lane] = (2 * sample) as u8;
                shuffle[2 * lane + 1] = (2 * sample + 1) as u8;
            }
            w[2 * k] = W_ONE - tap.f;
            w[2 * k + 1] = tap.f;
        }
        Some(Quad { base, shuffle, w })
    }
}

/// The horizontal pass of a plane, prepared once per plane: the taps, and the SIMD tables
/// when every run of 16 outputs fits the SIMD kernel (any upscale, downscales to about half).
struct HorizontalPlan {
    taps: Vec<Tap>,
    simd: Option<simd::Row>,
}

impl HorizontalPlan {
    fn new(src: usize, dst: usize) -> Self {
        let taps = taps(src, dst);
        let blocks: Option<Vec<[Quad; 4]>> = taps
            .chunks_exact(16)
            .map(|t16| {
                Some([Quad::new(&t16[..4])?, Quad::new(&t16[4..8])?, Quad::new(&t16[8..12])?, Quad::new(&t16[12..])?])
            })
            .collect();
        HorizontalPlan { taps, simd: blocks.map(simd::Row::new) }
    }

    /// Filters one row of vertical intermediates (`tmp`, the source width plus [`TMP_SPARE`])
    /// into `out` (the destination width).
    fn run(&self, tmp: &[u16], out: &mut [u8]) {
        let done = match (&self.simd, simd::available()) {
            (Some(row), Some(token)) => row.filter(token, tmp, out),
            _ => 0,
        };
        for (o, t) in out[done..].iter_mut().zip(&self.taps[done..]) {
            *o = h_tap(tmp, t);
        }
    }
}

/// Bilinear scale of one plane: `src` (`sw × sh`, rows `sstride` apart) into `dst` (`dw × dh`,
/// rows `dstride` apart). Bytes of `dst` outside the `dw × dh` area are left alone, which is
/// how `Pad` draws into the middle of a black frame.
///
/// Deterministic integer arithmetic: a vertical pass to 16-bit intermediates, then a
/// horizontal pass rounding to nearest, sixteen outputs at a time with SIMD shuffles where the
/// target has them (wasm simd128, x86 SSSE3) and scalar otherwise — both compute the same
/// sums, so every path gives the same bytes. Same-size scaling is an exact copy. To scale a
/// plane a band of rows at a time (without holding the whole source), use [`BilinearPlan`].
#[allow(clippy::too_many_arguments)] // the classic (buffer, width, height, stride) × 2 shape
pub fn scale_plane_bilinear(
    src: &[u8],
    sw: usize,
    sh: usize,
    sstride: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
    dstride: usize,
) -> Result<(), String> {
    let mut plan = BilinearPlan::new(sw, sh, dw, dh)?;
    plan.run(src, 0, sstride, dst, 0..dh, dstride)
}

/// A bilinear scale of one plane prepared once (filter taps, SIMD tables, the row buffer), to
/// run over the output in bands of rows. A plugin that reads its source from the host uses it
/// to fetch only the source rows a band needs ([`BilinearPlan::source_rows`]), so the copies
/// stay small and in cache; the bytes are the same as [`scale_plane_bilinear`]'s.
pub struct BilinearPlan {
    sw: usize,
    dw: usize,
    dh: usize,
    horizontal: HorizontalPlan,
    vertical: Vec<Tap>,
    /// One row of vertical intermediates plus [`TMP_SPARE`] copies of the last: every
    /// horizontal tap reads the pair `tmp[i0..i0 + 2]` (at the right edge `i1 == i0` and the
    /// weight of the second sample is 0, so the spare value never changes a result) and a SIMD
    /// load of 8 never leaves the buffer.
    tmp: Vec<u16>,
}

impl BilinearPlan {
    /// Plans scaling a `sw × sh` plane to `dw × dh`.
    pub fn new(sw: usize, sh: usize, dw: usize, dh: usize) -> Result<Self, String> {
        if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
            return Err(format!("cannot scale {sw}x{sh} to {dw}x{dh}: empty plane"));
        }
        Ok(BilinearPlan {
            sw,
            dw,
            dh,
            horizontal: HorizontalPlan::new(sw, dw),
            vertical: taps(sh, dh),
            tmp: vec![0; sw + TMP_SPARE],
        })
    }

    /// The source rows that output rows `rows` read (clamped to the output).
    pub fn source_rows(&self, rows: Range<usize>) -> Range<usize> {
        let rows = rows.start.min(self.dh)..rows.end.min(self.dh);
        if rows.is_empty() {
            return 0..0;
        }
        let first = self.vertical[rows.start].i0;
        let last = self.vertical[rows.end - 1].i1;
        first..last + 1
    }

    /// Scales output rows `rows` into `dst` (its row 0 is output row `rows.start`, rows
    /// `dstride` apart, `dw` bytes written per row). `src` holds source rows from `src_first`
    /// on, `sstride` apart; it must cover [`BilinearPlan::source_rows`] of `rows`.
    pub fn run(
        &mut self,
        src: &[u8],
        src_first: usize,
        sstride: usize,
        dst: &mut [u8],
        rows: Range<usize>,
        dstride: usize,
    ) -> Result<(), String> {
        let (sw, dw) = (self.sw, self.dw);
        if rows.start > rows.end || rows.end > self.dh {
            return Err(format!("output rows {rows:?} outside 0..{}", self.dh));
        }
        if rows.is_empty() {
            return Ok(());
        }
        let need = self.source_rows(rows.clone());
        if need.start < src_first {
            return Err(format!("source rows from {src_first} given, rows {need:?} needed"));
        }
        let have = need.end - src_first;
        check_plane("source", src.len(), sw, have, sstride)?;
        check_plane("destination", dst.len(), dw, rows.len(), dstride)?;
        let tmp = &mut self.tmp;
        for (y, t) in self.vertical[rows].iter().enumerate() {
            let (r0, r1) = ((t.i0 - src_first) * sstride, (t.i1 - src_first) * sstride);
            simd::vertical(&src[r0..r0 + sw], &src[r1..r1 + sw], W_ONE - t.f, t.f, &mut tmp[..sw]);
            let last = tmp[sw - 1];
            tmp[sw..].fill(last);
            self.horizontal.run(tmp, &mut dst[y * dstride..y * dstride + dw]);
        }
        Ok(())
    }
}

/// Area-average downscale of one plane into a packed `dw × dh` buffer: each output pixel is the
/// rounded mean of the source pixels it covers (at least one, so upscaling repeats pixels).
/// This is what the host's `read-scaled` does; the SDK uses it for by-value frames.
pub fn scale_plane_area(
    src: &[u8],
    sw: usize,
    sh: usize,
    sstride: usize,
    dw: usize,
    dh: usize,
) -> Result<Vec<u8>, String> {
    check_plane("source", src.len(), sw, sh, sstride)?;
    if dw == 0 || dh == 0 {
        return Err(format!("empty destination {dw}x{dh}"));
    }
    let span = |i: usize, s: usize, d: usize| {
        let a = i * s / d;
        (a, ((i + 1) * s / d).max(a + 1).min(s))
    };
    let cols: Vec<(usize, usize)> = (0..dw).map(|x| span(x, sw, dw)).collect();
    let mut out = vec![0u8; dw * dh];
    let mut sums = vec![0u32; dw];
    for (y, row_out) in out.chunks_exact_mut(dw).enumerate() {
        let (y0, y1) = span(y, sh, dh);
        sums.fill(0);
        for sy in y0..y1 {
            let row = &src[sy * sstride..sy * sstride + sw];
            for (s, &(x0, x1)) in sums.iter_mut().zip(&cols) {
                *s += row[x0..x1].iter().map(|&p| p as u32).sum::<u32>();
            }
        }
        for ((o, &s), &(x0, x1)) in row_out.iter_mut().zip(&sums).zip(&cols) {
            let n = ((x1 - x0) * (y1 - y0)) as u32;
            *o = ((s + n / 2) / n) as u8;
        }
    }
    Ok(out)
}

/// Scales an I420 frame into the output described by `geometry` (from [`output_geometry`]).
/// The result is packed I420; with `Pad` the area around the picture is black.
pub fn scale_i420(src: &I420Ref<'_>, geometry: &Geometry) -> Result<I420, String> {
    src.validate()?;
    let g = geometry;
    let p = g.picture;
    if g.width % 2 == 1 || g.height % 2 == 1 || p.x % 2 == 1 || p.y % 2 == 1 || p.w % 2 == 1 || p.h % 2 == 1 {
        return Err(format!("geometry must be even: {g:?}"));
    }
    if p.w == 0 || p.h == 0 || p.x + p.w > g.width || p.y + p.h > g.height {
        return Err(format!("picture lies outside the output: {g:?}"));
    }
    let mut out = I420::black(g.width, g.height)?;
    for (i, sp) in src.planes.iter().enumerate() {
        let div = if i == 0 { 1 } else { 2 };
        let stride = (g.width / div) as usize;
        let (x, y, w, h) = ((p.x / div) as usize, (p.y / div) as usize, (p.w / div) as usize, (p.h / div) as usize);
        let dst = &mut out.plane_mut(i)[y * stride + x..];
        scale_plane_bilinear(sp.data, sp.width, sp.height, sp.stride, dst, w, h, stride)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(w: usize, h: usize, stride: usize) -> Vec<u8> {
        let mut v = vec![0xAAu8; stride * h];
        for y in 0..h {
            for x in 0..w {
                v[y * stride + x] = ((x * 7 + y * 13) ^ (x * y)) as u8;
            }
        }
        v
    }

    fn fnv(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
    }

    #[test]
    fn same_size_is_an_exact_copy() {
        let src = pattern(33, 17, 40);
        let mut dst = vec![0u8; 33 * 17];
        scale_plane_bilinear(&src, 33, 17, 40, &mut dst, 33, 17, 33).unwrap();
        for y in 0..17 {
            assert_eq!(&dst[y * 33..y * 33 + 33], &src[y * 40..y * 40 + 33]);
        }
    }

    #[test]
    fn constant_stays_constant() {
        let src = vec![77u8; 50 * 30];
        for (dw, dh) in [(1, 1), (7, 3), (100, 60), (13, 97)] {
            let mut dst = vec![0u8; dw * dh];
            scale_plane_bilinear(&src, 50, 30, 50, &mut dst, dw, dh, dw).unwrap();
            assert!(dst.iter().all(|&v| v == 77), "{dw}x{dh}");
        }
    }

    #[test]
    fn interpolates_between_samples() {
        // [0, 255] stretched to 4: centres at -0.25, 0.25, 0.75, 1.25 of the source.
        let mut dst = [0u8; 4];
        scale_plane_bilinear(&[0, 255], 2, 1, 2, &mut dst, 4, 1, 4).unwrap();
        assert_eq!(dst, [0, 64, 191, 255]);
        // Halving averages pairs.
        let mut half = [0u8; 2];
        scale_plane_bilinear(&[10, 20, 100, 200], 4, 1, 4, &mut half, 2, 1, 2).unwrap();
        assert_eq!(half, [15, 150]);
    }

    #[test]
    fn leaves_bytes_outside_the_destination_area() {
        let src = vec![200u8; 8 * 8];
        let mut dst = [1u8; 10 * 10];
        scale_plane_bilinear(&src, 8, 8, 8, &mut dst[2 * 10 + 3..], 4, 4, 10).unwrap();
        for y in 0..10 {
            for x in 0..10 {
                let inside = (2..6).contains(&y) && (3..7).contains(&x);
                assert_eq!(dst[y * 10 + x], if inside { 200 } else { 1 }, "{x},{y}");
            }
        }
    }

    #[test]
    fn short_buffers_are_errors_not_panics() {
        let mut dst = vec![0u8; 10];
        assert!(scale_plane_bilinear(&[0; 10], 4, 4, 4, &mut dst, 2, 2, 2).is_err());
        assert!(scale_plane_bilinear(&[0; 16], 4, 4, 4, &mut dst, 4, 4, 4).is_err());
        assert!(scale_plane_bilinear(&[0; 16], 4, 4, 3, &mut dst, 2, 2, 2).is_err());
        assert!(scale_plane_bilinear(&[], 0, 0, 0, &mut dst, 2, 2, 2).is_err());
    }

    /// Pins the exact output: the same numbers must come out of the wasm build (the host's
    /// tests compare against native), so any change to the kernel shows up here first.
    #[test]
    fn golden_checksum() {
        let src = pattern(1920, 1080, 1920);
        let mut dst = vec![0u8; 1280 * 720];
        scale_plane_bilinear(&src, 1920, 1080, 1920, &mut dst, 1280, 720, 1280).unwrap();
        let mut up = vec![0u8; 333 * 211];
        scale_plane_bilinear(&src[..97 * 1920], 97, 61, 1920, &mut up, 333, 211, 333).unwrap();
        assert_eq!((fnv(&dst), fnv(&up)), (0x6e90_1821_0a02_ca35, 0x89ef_1da8_8343_fceb));
    }

    /// The straightforward filter, one `h_tap` per output: the SIMD blocks must match it byte
    /// for byte at every ratio, width and edge.
    fn scalar_reference(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
        let (xt, yt) = (taps(sw, dw), taps(sh, dh));
        let mut out = vec![0u8; dw * dh];
        let mut tmp = vec![0u16; sw + 1];
        for (y, t) in yt.iter().enumerate() {
            for x in 0..sw {
                tmp[x] = src[t.i0 * sw + x] as u16 * (W_ONE - t.f) + src[t.i1 * sw + x] as u16 * t.f;
            }
            tmp[sw] = tmp[sw - 1];
            for (x, t) in xt.iter().enumerate() {
                out[y * dw + x] = h_tap(&tmp, t);
            }
        }
        out
    }

    #[test]
    fn simd_blocks_match_the_scalar_filter() {
        assert!(cfg!(not(target_arch = "x86_64")) || simd::available().is_some(), "SSSE3 expected");
        let sizes = [1usize, 2, 3, 15, 16, 17, 31, 33, 64, 100, 161, 320, 641, 960, 1280, 1920];
        let mut planned = 0;
        for &sw in &sizes {
            let src = pattern(sw, 6, sw);
            for &dw in &sizes {
                let plan = HorizontalPlan::new(sw, dw);
                planned += usize::from(plan.simd.is_some() && dw >= 16);
                let mut dst = vec![0u8; dw * 3];
                scale_plane_bilinear(&src, sw, 6, sw, &mut dst, dw, 3, dw).unwrap();
                assert_eq!(dst, scalar_reference(&src, sw, 6, dw, 3), "{sw} -> {dw}");
            }
        }
        assert!(planned > 50, "the SIMD path ran for only {planned} size pairs");
    }

    #[test]
    fn bands_give_the_same_bytes_as_a_whole_plane() {
        for (sw, sh, dw, dh) in [(1920, 1080, 1280, 720), (97, 61, 333, 211), (640, 480, 100, 37), (5, 300, 5, 7)] {
            let src = pattern(sw, sh, sw);
            let mut whole = vec![0u8; dw * dh];
            scale_plane_bilinear(&src, sw, sh, sw, &mut whole, dw, dh, dw).unwrap();
            for band in [1, 7, 32, dh] {
                let mut plan = BilinearPlan::new(sw, sh, dw, dh).unwrap();
                let mut out = vec![0u8; dw * dh];
                for y0 in (0..dh).step_by(band) {
                    let rows = y0..(y0 + band).min(dh);
                    let need = plan.source_rows(rows.clone());
                    let src_band = &src[need.start * sw..need.end * sw];
                    plan.run(src_band, need.start, sw, &mut out[y0 * dw..], rows, dw).unwrap();
                }
                assert_eq!(out, whole, "{sw}x{sh} -> {dw}x{dh} in bands of {band}");
            }
            // A band given too few source rows is an error, not a panic.
            let mut plan = BilinearPlan::new(sw, sh, dw, dh).unwrap();
            let need = plan.source_rows(0..dh);
            assert!(plan.run(&src[sw..], need.start + 1, sw, &mut whole, 0..dh, dw).is_err());
            assert!(plan.run(&src[..sw], 0, sw, &mut whole, 0..dh, dw).is_err());
            assert!(plan.run(&src, 0, sw, &mut whole, 0..dh + 1, dw).is_err());
        }
    }

    #[test]
    fn area_average() {
        let src = [0u8, 10, 20, 30, 40, 50, 60, 70];
        assert_eq!(scale_plane_area(&src, 4, 2, 4, 2, 1).unwrap(), vec![25, 45]);
        assert_eq!(scale_plane_area(&src, 4, 2, 4, 4, 2).unwrap(), src.to_vec());
        assert_eq!(scale_plane_area(&[9, 200], 2, 1, 2, 4, 1).unwrap(), vec![9, 9, 200, 200]);
        assert!(scale_plane_area(&src, 4, 2, 4, 0, 1).is_err());
    }

    #[test]
    fn geometry_modes() {
        let g = output_geometry(ScaleMode::Pad, 1920, 1080, Some(1280), Some(960)).unwrap();
        assert_eq!(g, Geometry { width: 1280, height: 960, picture: Rect { x: 0, y: 120, w: 1280, h: 720 } });
        let g = output_geometry(ScaleMode::Pad, 1080, 1920, Some(1280), Some(720)).unwrap();
        assert_eq!(g.picture, Rect { x: 436, y: 0, w: 406, h: 720 }); // 405 rounds to even
        let g = output_geometry(ScaleMode::Stretch, 1920, 1080, Some(640), Some(640)).unwrap();
        assert_eq!((g.width, g.height, g.picture.w, g.picture.h), (640, 640, 640, 640));
        let g = output_geometry(ScaleMode::PreserveAspectRatio, 1920, 1080, Some(1280), Some(1280)).unwrap();
        assert_eq!((g.width, g.height), (1280, 720));
        let g = output_geometry(ScaleMode::PreserveAspectRatio, 1920, 1080, None, Some(480)).unwrap();
        assert_eq!((g.width, g.height), (854, 480));
        let g = output_geometry(ScaleMode::PreserveAspectRatio, 1920, 1080, Some(641), None).unwrap();
        assert_eq!((g.width, g.height), (640, 360));
        let g = output_geometry(ScaleMode::PreserveAspectRatio, 641, 481, Some(320), Some(320)).unwrap();
        assert_eq!((g.width, g.height), (320, 240));
    }

    #[test]
    fn geometry_errors_name_the_field() {
        let e = |m, w, h| output_geometry(m, 1920, 1080, w, h).unwrap_err();
        assert!(e(ScaleMode::Pad, Some(1280), None).starts_with("height"));
        assert!(e(ScaleMode::Stretch, None, Some(720)).starts_with("width"));
        assert!(e(ScaleMode::Stretch, Some(1281), Some(720)).starts_with("width must be even"));
        assert!(e(ScaleMode::Pad, Some(9000), Some(720)).starts_with("width must be 1..=8192"));
        assert!(e(ScaleMode::Pad, Some(1280), Some(0)).starts_with("height must be 1..=4320"));
        assert!(e(ScaleMode::PreserveAspectRatio, None, None).starts_with("width or height"));
        assert!(output_geometry(ScaleMode::PreserveAspectRatio, 100, 1000, Some(8000), None).is_err());
        assert!(output_geometry(ScaleMode::Pad, 0, 10, Some(2), Some(2)).is_err());
        assert_eq!(ScaleMode::parse("PreserveAspectRatio"), Ok(ScaleMode::PreserveAspectRatio));
        assert_eq!(ScaleMode::parse("PAD"), Ok(ScaleMode::Pad));
        assert!(ScaleMode::parse("crop").is_err());
    }

    #[test]
    fn pad_draws_black_around_the_picture() {
        let (w, h) = (64u32, 32u32);
        let mut frame = I420::black(w, h).unwrap();
        frame.plane_mut(0).fill(235);
        frame.plane_mut(1).fill(90);
        frame.plane_mut(2).fill(240);
        let g = output_geometry(ScaleMode::Pad, w, h, Some(32), Some(32)).unwrap();
        assert_eq!(g.picture, Rect { x: 0, y: 8, w: 32, h: 16 });
        let out = scale_i420(&frame.as_ref(), &g).unwrap();
        assert_eq!(out.data.len(), 32 * 32 * 3 / 2);
        let y = out.plane(0);
        assert!(y[..8 * 32].iter().all(|&v| v == BLACK_Y));
        assert!(y[8 * 32..24 * 32].iter().all(|&v| v == 235));
        assert!(y[24 * 32..].iter().all(|&v| v == BLACK_Y));
        let u = out.plane(1);
        assert!(u[..4 * 16].iter().all(|&v| v == NEUTRAL_CHROMA));
        assert!(u[4 * 16..12 * 16].iter().all(|&v| v == 90));
        assert!(out.plane(2)[4 * 16..12 * 16].iter().all(|&v| v == 240));
    }

    #[test]
    fn odd_input_scales_with_rounded_up_chroma() {
        let data = pattern(641 * 481 + 2 * 321 * 241, 1, 641 * 481 + 2 * 321 * 241);
        let src = I420Ref::packed(641, 481, &data).unwrap();
        assert_eq!(src.planes[1].width, 321);
        let g = output_geometry(ScaleMode::Stretch, 641, 481, Some(320), Some(240)).unwrap();
        let out = scale_i420(&src, &g).unwrap();
        assert_eq!(out.data.len(), 320 * 240 * 3 / 2);
        assert!(I420Ref::packed(641, 481, &data[..1000]).is_err());
    }
}
