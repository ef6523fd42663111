//! Still pictures from decoded frames, for preview images: a size that keeps the aspect ratio,
//! an area-average downscale of I420, and JPEG encoding (by `jpeg-encoder`).
//!
//! The scaler is the plain box filter: every output sample is the mean of the source samples
//! its footprint covers. That is what a thumbnail needs (no aliasing when shrinking by large
//! factors) and costs one pass over the source; quality scaling for video lives in the scale
//! plugin.

use super::{CodecError, I420};

/// The size of a picture of `width` × `height` scaled to at most `max_width` wide, keeping the
/// aspect ratio: never larger than the source, even dimensions (JPEG's 4:2:0 chroma and the
/// I420 planes then agree), at least 2 × 2.
pub fn fit(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    let even = |v: u64| (v.max(2) & !1) as u32;
    let w = u64::from(max_width.min(width).max(1));
    let h = (w * u64::from(height) * 2 + u64::from(width.max(1))) / (2 * u64::from(width.max(1)));
    (even(w), even(h))
}

/// `pic` scaled to `width` × `height` by area averaging (meant for shrinking; growing repeats
/// samples).
pub fn scale(pic: &I420, width: u32, height: u32) -> I420 {
    let src = I420::planes(pic.width, pic.height);
    let dst = I420::planes(width, height);
    let mut data = vec![0u8; I420::size(width, height)];
    for (s, d) in src.iter().zip(dst.iter()) {
        let from = &pic.data[s.offset..s.offset + s.stride * s.height];
        let to = &mut data[d.offset..d.offset + d.stride * d.height];
        scale_plane(from, s.width, s.height, to, d.width, d.height);
    }
    I420 { width, height, pts: pic.pts, data }
}

/// The source span `[a, b)` that output sample `i` of `n` covers in a source of `len`.
fn span(i: usize, n: usize, len: usize) -> (usize, usize) {
    let a = i * len / n;
    let b = ((i + 1) * len / n).max(a + 1).min(len);
    (a.min(len - 1), b)
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    if sw == 0 || sh == 0 {
        return;
    }
    let cols: Vec<(usize, usize)> = (0..dw).map(|x| span(x, dw, sw)).collect();
    let mut sums = vec![0u32; dw];
    for y in 0..dh {
        let (y0, y1) = span(y, dh, sh);
        sums.fill(0);
        for row in src.chunks_exact(sw).skip(y0).take(y1 - y0) {
            for (sum, &(x0, x1)) in sums.iter_mut().zip(&cols) {
                *sum += row[x0..x1].iter().map(|&v| u32::from(v)).sum::<u32>();
            }
        }
        for (x, (sum, &(x0, x1))) in sums.iter().zip(&cols).enumerate() {
            let n = ((x1 - x0) * (y1 - y0)) as u32;
            dst[y * dw + x] = ((sum + n / 2) / n) as u8;
        }
    }
}

/// An I420 picture as the rows of a JPEG's Y, Cb and Cr components. H.264 video is limited
/// range (luma 16–235, chroma 16–240) and JFIF is full range, so samples are stretched.
struct Ycbcr<'a>(&'a I420);

impl jpeg_encoder::ImageBuffer for Ycbcr<'_> {
    fn get_jpeg_color_type(&self) -> jpeg_encoder::JpegColorType {
        jpeg_encoder::JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.0.width as u16
    }

    fn height(&self) -> u16 {
        self.0.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let [py, pu, pv] = I420::planes(self.0.width, self.0.height);
        let d = &self.0.data;
        let (y, cy) = (usize::from(y), usize::from(y) / 2);
        let luma = |v: u8| ((i32::from(v) - 16) * 298 + 128).clamp(0, 255 * 256) >> 8;
        let chroma = |v: u8| (((i32::from(v) - 128) * 291 + 128 * 256 + 128) >> 8).clamp(0, 255);
        for x in 0..py.width {
            buffers[0].push(luma(d[py.offset + y * py.stride + x]) as u8);
            buffers[1].push(chroma(d[pu.offset + cy * pu.stride + x / 2]) as u8);
            buffers[2].push(chroma(d[pv.offset + cy * pv.stride + x / 2]) as u8);
        }
    }
}

/// Encodes `pic` as a baseline JPEG (JFIF, 4:2:0) of the given quality (1–100).
pub fn jpeg(pic: &I420, quality: u8) -> Result<Vec<u8>, CodecError> {
    if !pic.is_consistent() || pic.width > u32::from(u16::MAX) || pic.height > u32::from(u16::MAX) {
        return Err(CodecError::Malformed(format!("a {}x{} picture cannot be a JPEG", pic.width, pic.height)));
    }
    let mut out = Vec::with_capacity(pic.data.len() / 8);
    let mut enc = jpeg_encoder::Encoder::new(&mut out, quality);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode_image(Ycbcr(pic)).map_err(|e| CodecError::Jpeg(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_never_grows_and_stays_even() {
        assert_eq!(fit(1920, 1080, 320), (320, 180));
        assert_eq!(fit(1920, 1080, 640), (640, 360));
        assert_eq!(fit(1920, 1080, 1280), (1280, 720));
        assert_eq!(fit(640, 360, 1280), (640, 360));
        assert_eq!(fit(640, 480, 320), (320, 240));
        assert_eq!(fit(704, 576, 320), (320, 262));
        assert_eq!(fit(1, 1, 320), (2, 2));
    }

    #[test]
    fn area_average_of_blocks_and_a_gradient() {
        // 4x4 luma of four flat 2x2 blocks halves to exactly those four values.
        let mut pic = I420::black(4, 4, 7);
        let y: [u8; 16] = [10, 10, 50, 50, 10, 10, 50, 50, 90, 90, 200, 200, 90, 90, 200, 200];
        pic.data[..16].copy_from_slice(&y);
        let s = scale(&pic, 2, 2);
        assert_eq!((s.width, s.height, s.pts), (2, 2, 7));
        assert!(s.is_consistent());
        assert_eq!(&s.data[..4], &[10, 50, 90, 200]);
        assert_eq!(&s.data[4..], &[128, 128]);
        // A horizontal ramp keeps its mean when shrunk by a non-integer factor.
        let mut ramp = I420::black(300, 2, 0);
        for x in 0..300 {
            ramp.data[x] = (x * 255 / 299) as u8;
            ramp.data[300 + x] = (x * 255 / 299) as u8;
        }
        let s = scale(&ramp, 200, 2);
        let mean = |v: &[u8]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        assert!((mean(&s.data[..200]) - mean(&ramp.data[..300])).abs() < 1.0);
        assert!(s.data[..200].windows(2).all(|w| w[0] <= w[1]), "monotonic");
    }

    #[test]
    fn jpeg_is_a_jfif_file_and_bad_pictures_are_errors() {
        let pic = I420::black(64, 36, 0);
        let j = jpeg(&pic, 85).unwrap();
        assert_eq!(&j[..2], &[0xff, 0xd8]);
        assert_eq!(&j[j.len() - 2..], &[0xff, 0xd9]);
        let mut bad = pic.clone();
        bad.data.pop();
        assert!(jpeg(&bad, 85).is_err());
    }
}
