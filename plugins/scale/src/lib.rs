//! `scale`: AVA's `#Microsoft.VideoAnalyzer.ImageScale` as a plugin. Reads the three planes,
//! scales them with `openva-algos` (deterministic bilinear) and returns a replacement frame.
//!
//! Configuration (keys and mode values in any letter case, numbers as numbers or strings):
//! - `mode`: `pad` (default, as in AVA), `preserveAspectRatio` or `stretch`;
//! - `width`, `height`: the output size. `pad` and `stretch` need both, even; with
//!   `preserveAspectRatio` they bound the output and one may be left out (derived from the
//!   aspect ratio). See `openva_algos::scale::output_geometry`.

use openva_algos::scale::{
    BLACK_Y, BilinearPlan, Geometry, I420Ref, NEUTRAL_CHROMA, PlaneRef, ScaleMode, output_geometry, scale_i420,
};
use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

/// A configured scaler; the geometry depends on each frame's size, so it is computed per frame.
#[derive(Debug, PartialEq)]
struct Scale {
    mode: ScaleMode,
    width: Option<u32>,
    height: Option<u32>,
}

impl Scale {
    fn from_config(config: &Config) -> Result<Self, String> {
        let mode = match config.string("mode")? {
            Some(m) => ScaleMode::parse(&m)?,
            None => ScaleMode::Pad,
        };
        let scale = Scale { mode, width: config.u32("width")?, height: config.u32("height")? };
        // Refuse a bad request now rather than on the first frame: the geometry rules do not
        // depend on the input, except that a derived side must stay in range.
        output_geometry(mode, 1920, 1080, scale.width, scale.height)?;
        Ok(scale)
    }
}

impl Plugin for Scale {
    fn info() -> Info {
        Info::new(
            "scale",
            env!("CARGO_PKG_VERSION"),
            "Scales frames (AVA ImageScale: pad, preserveAspectRatio, stretch)",
        )
        .access(Access::Full)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Scale::from_config(config)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        let (w, h) = (frame.width(), frame.height());
        let g = output_geometry(self.mode, w, h, self.width, self.height)?;
        if (g.width, g.height) == (w, h) && (g.picture.w, g.picture.h) == (w, h) {
            return Ok(Output::none()); // already the right size: pass through untouched
        }
        if !frame.is_by_value() {
            return Ok(Output::replace(scale_in_bands(frame, &g)?));
        }
        let planes = [frame.plane(0)?, frame.plane(1)?, frame.plane(2)?];
        let mut refs = [PlaneRef { data: &[], width: 0, height: 0, stride: 0 }; 3];
        for (i, (r, bytes)) in refs.iter_mut().zip(&planes).enumerate() {
            let (pw, ph) = frame.plane_size(i as u32)?;
            *r = PlaneRef::new(bytes, pw as usize, ph as usize, pw as usize)?;
        }
        let out = scale_i420(&I420Ref { width: w, height: h, planes: refs }, &g)?;
        Ok(Output::replace(Frame::from_i420(out.width, out.height, out.data)?))
    }
}

/// Output rows per band: the source rows a band needs (about 1.5× as many at 1080p→720p) and
/// the band itself stay in the CPU's cache between the host's copy and the filter.
const BAND_ROWS: usize = 32;

/// Resource mode: the output frame is made in the host (already black, so `Pad`'s borders
/// cost nothing) and filled band by band, each band reading from the host only the source
/// rows it needs. The bytes are those of `scale_i420` (the host's tests check it).
fn scale_in_bands(frame: &Frame<'_>, g: &Geometry) -> Result<Frame<'static>, String> {
    let mut out = Frame::new_in_host(g.width, g.height)?;
    let p = g.picture;
    for plane in 0..3u32 {
        let div = if plane == 0 { 1 } else { 2 };
        let (sw, sh) = frame.plane_size(plane)?;
        let (ow, _) = out.plane_size(plane)?;
        let (x, y, w, h) = ((p.x / div) as usize, (p.y / div) as usize, (p.w / div) as usize, (p.h / div) as usize);
        let (ow, sw) = (ow as usize, sw as usize);
        let mut plan = BilinearPlan::new(sw, sh as usize, w, h)?;
        // Whole output rows, so one write per band; the columns outside the picture keep the
        // black of `Pad`'s borders.
        let mut band = vec![if plane == 0 { BLACK_Y } else { NEUTRAL_CHROMA }; ow * BAND_ROWS];
        for y0 in (0..h).step_by(BAND_ROWS) {
            let rows = y0..(y0 + BAND_ROWS).min(h);
            let need = plan.source_rows(rows.clone());
            let src = frame.rows(plane, need.start as u32, need.len() as u32)?;
            let n = rows.len();
            plan.run(&src, need.start, sw, &mut band[x..], rows, ow)?;
            out.set_rows(plane, (y + y0) as u32, &band[..n * ow])?;
        }
    }
    Ok(out)
}

openva_plugin_sdk::export_plugin!(Scale);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> Result<Scale, String> {
        Scale::from_config(&Config::parse(json).unwrap())
    }

    #[test]
    fn ava_style_configuration() {
        let s = cfg(r#"{"width": "1280", "height": "720"}"#).unwrap();
        assert_eq!(s, Scale { mode: ScaleMode::Pad, width: Some(1280), height: Some(720) });
        let s = cfg(r#"{"Mode": "PRESERVEASPECTRATIO", "Width": 640}"#).unwrap();
        assert_eq!(s, Scale { mode: ScaleMode::PreserveAspectRatio, width: Some(640), height: None });
        assert!(cfg(r#"{"mode": "stretch", "width": 640, "height": 480}"#).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let e = |j| cfg(j).unwrap_err();
        assert!(e(r#"{"width": "wide", "height": 720}"#).starts_with("width"));
        assert!(e(r#"{"width": 1280}"#).starts_with("height is required"));
        assert!(e(r#"{"width": 1280, "height": 721}"#).starts_with("height must be even"));
        assert!(e(r#"{"width": 1280, "height": 720, "mode": "zoom"}"#).starts_with("mode"));
        assert!(e(r#"{"width": 99999, "height": 720}"#).starts_with("width must be 1..=8192"));
        assert!(e(r#"{"mode": "preserveAspectRatio"}"#).starts_with("width or height"));
    }
}
