//! The picture an inference server receives: the decoded frame scaled as the node's
//! `image.scale` asks (the `scale` plugin's own algorithm, run natively, so a frame sent to an
//! extension and one scaled by the plugin are the same pixels) and encoded as its
//! `image.format` says (research/extensions.md §1.1, §1.3).
//!
//! Colour: decoded video is limited-range YCbCr; RGB formats are converted with BT.601
//! coefficients, as the preview JPEGs are (`codec::still`). `yuv420p` sends the planes as they
//! are.

use crate::codec::I420;
use crate::topology::{ImageFormat, ScaleSpec};
use openva_algos::scale as algo;

/// Why a frame could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The scale settings do not fit this frame (e.g. an odd size with `pad`).
    #[error("cannot scale the {0}x{1} frame: {2}")]
    Scale(u32, u32, String),
    /// An encoder refused the picture.
    #[error("cannot encode the frame as {0}: {1}")]
    Encode(&'static str, String),
    /// A raw pixel format this host does not produce.
    #[error("raw pixel format '{0}' is not supported")]
    PixelFormat(String),
}

/// Where the frame's picture lies in the image sent, as fractions of that image: the whole of
/// it, except with `pad`, whose black bars surround it. Boxes the server finds in the padded
/// image are mapped back through it ([`Content::unpad`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Content {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub w: f64,
    /// Height.
    pub h: f64,
}

impl Content {
    /// The whole image.
    pub const FULL: Content = Content { x: 0.0, y: 0.0, w: 1.0, h: 1.0 };

    /// A box `(l, t, w, h)` in fractions of the sent image, in fractions of the original
    /// frame, clamped to it (AVA's rule for padded images, §1.1; the clamp is openva's, since
    /// the schema requires 0..1).
    pub fn unpad(&self, l: f64, t: f64, w: f64, h: f64) -> (f64, f64, f64, f64) {
        let x0 = ((l - self.x) / self.w).clamp(0.0, 1.0);
        let y0 = ((t - self.y) / self.h).clamp(0.0, 1.0);
        let x1 = ((l + w - self.x) / self.w).clamp(0.0, 1.0);
        let y1 = ((t + h - self.y) / self.h).clamp(0.0, 1.0);
        (x0, y0, x1 - x0, y1 - y0)
    }
}

/// A frame ready to send.
#[derive(Debug)]
pub struct Prepared {
    /// The encoded image.
    pub body: Vec<u8>,
    /// Its media type (`image/jpeg`, …; raw: `image/x-raw; format=…; width=…; height=…;
    /// stride=…`, an openva addition, since AVA gave HTTP servers no way to know them).
    pub content_type: String,
    /// Image size in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// Bytes per row (raw formats; 0 for the compressed ones).
    pub stride: u32,
    /// Where the picture lies in it.
    pub content: Content,
}

/// The size of the image a `width` × `height` frame becomes with `scale`, and where the
/// picture lies in it. Also the check at activation that the settings can work at all.
pub fn geometry(width: u32, height: u32, scale: Option<&ScaleSpec>) -> Result<algo::Geometry, ImageError> {
    let full = algo::Geometry { width, height, picture: algo::Rect { x: 0, y: 0, w: width, h: height } };
    let Some(s) = scale else { return Ok(full) };
    let mode = match s.mode {
        crate::topology::ScaleMode::Pad => algo::ScaleMode::Pad,
        crate::topology::ScaleMode::PreserveAspectRatio => algo::ScaleMode::PreserveAspectRatio,
        crate::topology::ScaleMode::Stretch => algo::ScaleMode::Stretch,
    };
    algo::output_geometry(mode, width, height, s.width, s.height).map_err(|e| ImageError::Scale(width, height, e))
}

/// Scales and encodes `frame` for the server.
pub fn prepare(frame: &I420, scale: Option<&ScaleSpec>, format: &ImageFormat) -> Result<Prepared, ImageError> {
    let g = geometry(frame.width, frame.height, scale)?;
    let scaled;
    let pic = if g.width == frame.width && g.height == frame.height && g.picture.w == g.width {
        frame
    } else {
        let src = algo::I420Ref::packed(frame.width, frame.height, &frame.data)
            .map_err(|e| ImageError::Scale(frame.width, frame.height, e))?;
        let out = algo::scale_i420(&src, &g).map_err(|e| ImageError::Scale(frame.width, frame.height, e))?;
        scaled = I420 { width: out.width, height: out.height, pts: frame.pts, data: out.data };
        &scaled
    };
    let content = Content {
        x: f64::from(g.picture.x) / f64::from(g.width),
        y: f64::from(g.picture.y) / f64::from(g.height),
        w: f64::from(g.picture.w) / f64::from(g.width),
        h: f64::from(g.picture.h) / f64::from(g.height),
    };
    let (w, h) = (pic.width, pic.height);
    let done = |body: Vec<u8>, content_type: String, stride: u32| Prepared {
        body,
        content_type,
        width: w,
        height: h,
        stride,
        content,
    };
    match format {
        ImageFormat::Jpeg { quality } => {
            let body = crate::codec::still::jpeg(pic, (*quality).clamp(1, 100))
                .map_err(|e| ImageError::Encode("JPEG", e.to_string()))?;
            Ok(done(body, "image/jpeg".into(), 0))
        }
        ImageFormat::Png => {
            let mut body = Vec::new();
            let enc = image::codecs::png::PngEncoder::new(&mut body);
            image::ImageEncoder::write_image(enc, &packed(pic, Packing::Rgb24)?, w, h, image::ExtendedColorType::Rgb8)
                .map_err(|e| ImageError::Encode("PNG", e.to_string()))?;
            Ok(done(body, "image/png".into(), 0))
        }
        ImageFormat::Bmp => {
            let mut body = Vec::new();
            image::codecs::bmp::BmpEncoder::new(&mut body)
                .encode(&packed(pic, Packing::Rgb24)?, w, h, image::ExtendedColorType::Rgb8)
                .map_err(|e| ImageError::Encode("BMP", e.to_string()))?;
            Ok(done(body, "image/bmp".into(), 0))
        }
        ImageFormat::Raw { pixel_format } => {
            let p = Packing::parse(pixel_format).ok_or_else(|| ImageError::PixelFormat(pixel_format.clone()))?;
            let body = packed(pic, p)?;
            let stride = if p == Packing::Yuv420p { w } else { w * p.bytes_per_pixel() };
            let ct = format!("image/x-raw; format={}; width={w}; height={h}; stride={stride}", p.name());
            Ok(done(body, ct, stride))
        }
    }
}

/// AVA's raw pixel formats (`ImageFormatRaw.pixelFormat`, research/extensions.md §1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// Planar Y, then U, then V (2×2 subsampled).
    Yuv420p,
    /// 5:6:5 in 16 bits, big endian.
    Rgb565be,
    /// 5:6:5 in 16 bits, little endian.
    Rgb565le,
    /// 1X 5:5:5 in 16 bits, big endian.
    Rgb555be,
    /// 1X 5:5:5 in 16 bits, little endian.
    Rgb555le,
    /// R, G, B bytes.
    Rgb24,
    /// B, G, R bytes.
    Bgr24,
    /// A, R, G, B bytes.
    Argb,
    /// R, G, B, A bytes.
    Rgba,
    /// A, B, G, R bytes.
    Abgr,
    /// B, G, R, A bytes.
    Bgra,
}

const PACKINGS: [(Packing, &str); 11] = [
    (Packing::Yuv420p, "yuv420p"),
    (Packing::Rgb565be, "rgb565be"),
    (Packing::Rgb565le, "rgb565le"),
    (Packing::Rgb555be, "rgb555be"),
    (Packing::Rgb555le, "rgb555le"),
    (Packing::Rgb24, "rgb24"),
    (Packing::Bgr24, "bgr24"),
    (Packing::Argb, "argb"),
    (Packing::Rgba, "rgba"),
    (Packing::Abgr, "abgr"),
    (Packing::Bgra, "bgra"),
];

impl Packing {
    /// AVA's name, any letter case.
    pub fn parse(s: &str) -> Option<Self> {
        PACKINGS.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)).map(|(p, _)| *p)
    }

    /// AVA's name.
    pub fn name(self) -> &'static str {
        PACKINGS.iter().find(|(p, _)| *p == self).map_or("", |(_, n)| n)
    }

    /// Bytes per pixel of the packed formats (`yuv420p`: 1, its luma plane's).
    pub fn bytes_per_pixel(self) -> u32 {
        match self {
            Packing::Yuv420p => 1,
            Packing::Rgb565be | Packing::Rgb565le | Packing::Rgb555be | Packing::Rgb555le => 2,
            Packing::Rgb24 | Packing::Bgr24 => 3,
            Packing::Argb | Packing::Rgba | Packing::Abgr | Packing::Bgra => 4,
        }
    }
}

/// One of `yuv`'s I420-to-packed conversions.
type ToPacked =
    fn(&yuv::YuvPlanarImage<u8>, &mut [u8], u32, yuv::YuvRange, yuv::YuvStandardMatrix) -> Result<(), yuv::YuvError>;

/// `pic` in a packed pixel format, rows without padding.
fn packed(pic: &I420, p: Packing) -> Result<Vec<u8>, ImageError> {
    if p == Packing::Yuv420p {
        return Ok(pic.data.clone());
    }
    let (w, h) = (pic.width, pic.height);
    let [py, pu, pv] = I420::planes(w, h);
    let planar = yuv::YuvPlanarImage {
        y_plane: &pic.data[py.offset..py.offset + py.stride * py.height],
        y_stride: py.stride as u32,
        u_plane: &pic.data[pu.offset..pu.offset + pu.stride * pu.height],
        u_stride: pu.stride as u32,
        v_plane: &pic.data[pv.offset..pv.offset + pv.stride * pv.height],
        v_stride: pv.stride as u32,
        width: w,
        height: h,
    };
    let (range, matrix) = (yuv::YuvRange::Limited, yuv::YuvStandardMatrix::Bt601);
    let convert = |bpp: u32, f: ToPacked| {
        let mut out = vec![0u8; (w * h * bpp) as usize];
        f(&planar, &mut out, w * bpp, range, matrix).map_err(|e| ImageError::Encode("raw", e.to_string()))?;
        Ok::<_, ImageError>(out)
    };
    Ok(match p {
        Packing::Rgb24 => convert(3, yuv::yuv420_to_rgb)?,
        Packing::Bgr24 => convert(3, yuv::yuv420_to_bgr)?,
        Packing::Rgba => convert(4, yuv::yuv420_to_rgba)?,
        Packing::Bgra => convert(4, yuv::yuv420_to_bgra)?,
        // A, R, G, B is B, G, R, A backwards; A, B, G, R is R, G, B, A backwards.
        Packing::Argb => reversed_pixels(convert(4, yuv::yuv420_to_bgra)?),
        Packing::Abgr => reversed_pixels(convert(4, yuv::yuv420_to_rgba)?),
        Packing::Rgb565be | Packing::Rgb565le | Packing::Rgb555be | Packing::Rgb555le => {
            let rgb = convert(3, yuv::yuv420_to_rgb)?;
            let mut out = Vec::with_capacity(rgb.len() / 3 * 2);
            for px in rgb.chunks_exact(3) {
                let (r, g, b) = (u16::from(px[0]), u16::from(px[1]), u16::from(px[2]));
                let v = match p {
                    Packing::Rgb565be | Packing::Rgb565le => (r >> 3) << 11 | (g >> 2) << 5 | b >> 3,
                    _ => (r >> 3) << 10 | (g >> 3) << 5 | b >> 3,
                };
                let bytes =
                    if matches!(p, Packing::Rgb565be | Packing::Rgb555be) { v.to_be_bytes() } else { v.to_le_bytes() };
                out.extend_from_slice(&bytes);
            }
            out
        }
        Packing::Yuv420p => pic.data.clone(),
    })
}

fn reversed_pixels(mut v: Vec<u8>) -> Vec<u8> {
    v.chunks_exact_mut(4).for_each(<[u8]>::reverse);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ScaleMode;

    /// A frame of one flat colour (limited-range YCbCr).
    fn flat(w: u32, h: u32, y: u8, u: u8, v: u8) -> I420 {
        let [_, pu, pv] = I420::planes(w, h);
        let mut f = I420::black(w, h, 0);
        f.data[..pu.offset].fill(y);
        f.data[pu.offset..pv.offset].fill(u);
        f.data[pv.offset..].fill(v);
        f
    }

    #[test]
    fn pad_letterboxes_and_unpads_back() {
        let f = flat(1920, 1080, 128, 128, 128);
        let s = ScaleSpec { mode: ScaleMode::Pad, width: Some(416), height: Some(416) };
        let p = prepare(&f, Some(&s), &ImageFormat::Raw { pixel_format: "rgb24".into() }).unwrap();
        assert_eq!((p.width, p.height, p.stride, p.body.len()), (416, 416, 1248, 519_168));
        assert_eq!(p.content_type, "image/x-raw; format=rgb24; width=416; height=416; stride=1248");
        // The picture is 416x234, centred on even rows: 90 rows of bars above.
        assert_eq!(p.content, Content { x: 0.0, y: 90.0 / 416.0, w: 1.0, h: 234.0 / 416.0 });
        // Bars are black, the picture grey.
        assert_eq!(&p.body[..3], &[0, 0, 0]);
        let mid = (208 * 416 + 208) * 3;
        assert!(p.body[mid..mid + 3].iter().all(|&c| (125..=132).contains(&c)), "{:?}", &p.body[mid..mid + 3]);
        // A box filling the picture maps to the whole frame; AVA's example with side bars.
        let (l, t, w, h) = p.content.unpad(0.0, 90.0 / 416.0, 1.0, 234.0 / 416.0);
        assert!((l, t).0.abs() < 1e-9 && t.abs() < 1e-9 && (w - 1.0).abs() < 1e-9 && (h - 1.0).abs() < 1e-9);
        let side = Content { x: 0.2, y: 0.0, w: 0.6, h: 1.0 };
        let (l, t, w, h) = side.unpad(0.2, 0.0, 0.6, 1.0);
        assert!(l.abs() < 1e-9 && t == 0.0 && (w - 1.0).abs() < 1e-9 && h == 1.0);
        // Parts of a box in the bars are clamped away.
        let (l, _, w, _) = side.unpad(0.0, 0.0, 0.5, 1.0);
        assert!(l == 0.0 && (w - 0.5).abs() < 1e-9, "{l} {w}");
    }

    #[test]
    fn every_format_encodes_and_decodes() {
        let f = flat(64, 48, 81, 90, 240); // about pure red
        for (format, ct) in [
            (ImageFormat::Jpeg { quality: 90 }, "image/jpeg"),
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Bmp, "image/bmp"),
        ] {
            let p = prepare(&f, None, &format).unwrap();
            assert_eq!(p.content_type, ct);
            assert_eq!(p.content, Content::FULL);
            let img = image::load_from_memory(&p.body).map(|i| i.to_rgb8());
            if format == (ImageFormat::Jpeg { quality: 90 }) {
                assert_eq!(&p.body[..2], &[0xFF, 0xD8]);
                continue; // no JPEG decoder in this build; decoded by OpenCV in the e2e tests
            }
            let img = img.unwrap();
            assert_eq!(img.dimensions(), (64, 48));
            let px = img.get_pixel(10, 10).0;
            assert!(px[0] > 230 && px[1] < 30 && px[2] < 30, "{ct}: {px:?}");
        }
        // BMP as in AVA's documented request: 54 header bytes and 3 bytes a pixel.
        let s = ScaleSpec { mode: ScaleMode::Stretch, width: Some(416), height: Some(416) };
        assert_eq!(prepare(&f, Some(&s), &ImageFormat::Bmp).unwrap().body.len(), 519_222);
        let raw = |name: &str| prepare(&f, None, &ImageFormat::Raw { pixel_format: name.into() }).unwrap().body;
        assert_eq!(raw("yuv420p"), f.data);
        let rgb = raw("rgb24");
        let (r, g, b) = (rgb[0], rgb[1], rgb[2]);
        assert_eq!(&raw("bgr24")[..3], &[b, g, r]);
        assert_eq!(&raw("rgba")[..4], &[r, g, b, 255]);
        assert_eq!(&raw("bgra")[..4], &[b, g, r, 255]);
        assert_eq!(&raw("argb")[..4], &[255, r, g, b]);
        assert_eq!(&raw("abgr")[..4], &[255, b, g, r]);
        let v565 = (u16::from(r) >> 3) << 11 | (u16::from(g) >> 2) << 5 | u16::from(b) >> 3;
        assert_eq!(&raw("rgb565be")[..2], &v565.to_be_bytes());
        assert_eq!(&raw("rgb565LE")[..2], &v565.to_le_bytes());
        let v555 = (u16::from(r) >> 3) << 10 | (u16::from(g) >> 3) << 5 | u16::from(b) >> 3;
        assert_eq!(&raw("rgb555be")[..2], &v555.to_be_bytes());
        assert_eq!(raw("rgb555le").len(), 64 * 48 * 2);
        assert!(matches!(
            prepare(&f, None, &ImageFormat::Raw { pixel_format: "nv12".into() }),
            Err(ImageError::PixelFormat(_))
        ));
    }

    #[test]
    fn preserve_aspect_ratio_fits_the_box_and_odd_pad_sizes_are_refused() {
        let f = flat(1920, 1080, 16, 128, 128);
        let s = ScaleSpec { mode: ScaleMode::PreserveAspectRatio, width: Some(416), height: Some(416) };
        let p = prepare(&f, Some(&s), &ImageFormat::Png).unwrap();
        assert_eq!((p.width, p.height, p.content), (416, 234, Content::FULL));
        let odd = ScaleSpec { mode: ScaleMode::Pad, width: Some(415), height: Some(416) };
        assert!(matches!(geometry(1920, 1080, Some(&odd)), Err(ImageError::Scale(..))));
    }
}
