//! `scale`: AVA's `#Microsoft.VideoAnalyzer.ImageScale` as a plugin. Reads the three planes,
//! scales them with `openva-algos` (deterministic bilinear) and returns a replacement frame.
//!
//! Configuration (keys and mode values in any letter case, numbers as numbers or strings):
//! - `mode`: `pad` (default, as in AVA), `preserveAspectRatio` or `stretch`;
//! - `width`, `height`: the output size. `pad` and `stretch` need both, even; with
//!   `preserveAspectRatio` they bound the output and one may be left out (derived from the
//!   aspect ratio). See `openva_algos::scale::output_geometry`.

use openva_algos::scale::{I420Ref, PlaneRef, ScaleMode, output_geometry, scale_i420};
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
