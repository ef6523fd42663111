//! `EncoderProcessor`: a batch topology's re-encoding, from AVA's system presets or a custom
//! preset (bit rate, frame rate, scale).

use serde_json::Value;

use super::super::error::{TopologyError, shown};
use super::{get, integer_in, invalid, number, string};

/// Bit rates accepted for `videoEncoder.bitrateKbps`.
pub const VIDEO_KBPS: std::ops::RangeInclusive<u32> = 100..=100_000;
/// AVA's `AudioEncoderAac.bitrateKbps` values.
pub const AAC_KBPS: [u32; 7] = [96, 112, 128, 160, 192, 224, 256];

/// AVA's scale modes (`ImageScale.mode` and the encoder's `scale.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMode {
    /// Exactly the size asked, letterboxed to keep the aspect ratio (AVA's default).
    Pad,
    /// The largest size within the bounds that keeps the aspect ratio.
    PreserveAspectRatio,
    /// Exactly the size asked, aspect ratio not kept.
    Stretch,
}

impl ScaleMode {
    /// The `scale` plugin's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleMode::Pad => "pad",
            ScaleMode::PreserveAspectRatio => "preserveAspectRatio",
            ScaleMode::Stretch => "stretch",
        }
    }

    /// Parses AVA's spelling in any letter case.
    pub fn parse(s: &str) -> Option<Self> {
        [ScaleMode::Pad, ScaleMode::PreserveAspectRatio, ScaleMode::Stretch]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// The picture size an encode asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleSpec {
    /// How the picture fits the size.
    pub mode: ScaleMode,
    /// Output width (Pad/Stretch: required).
    pub width: Option<u32>,
    /// Output height (Pad/Stretch: required).
    pub height: Option<u32>,
}

impl ScaleSpec {
    /// The `scale` plugin's configuration.
    pub fn plugin_config(&self) -> Value {
        let mut c = serde_json::json!({"mode": self.mode.as_str()});
        if let Some(w) = self.width {
            c["width"] = w.into();
        }
        if let Some(h) = self.height {
            c["height"] = h.into();
        }
        c
    }
}

/// What an `EncoderProcessor` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeSpec {
    /// The preset's name (system presets) or `custom`.
    pub preset: String,
    /// Target video bit rate; `None`: chosen from the output size.
    pub bitrate_kbps: Option<u32>,
    /// Output frame rate; `None`: the input's.
    pub frame_rate: Option<f64>,
    /// Output size; `None`: the input's.
    pub scale: Option<ScaleSpec>,
    /// AAC bit rate asked for. The archive records video only, so there is no audio to encode;
    /// kept for the job's report.
    pub audio_kbps: Option<u32>,
}

/// System presets: AVA's `SingleLayer_*_H264_AAC` (cloud) and the tutorial's
/// `H264SingleBitrate*` names: output height, video bit rate, AAC bit rate. The aspect ratio is
/// kept (width derived), the frame rate is the input's.
const SYSTEM_PRESETS: [(&str, u32, u32, u32); 7] = [
    ("SingleLayer_540p_H264_AAC", 540, 2000, 96),
    ("SingleLayer_720p_H264_AAC", 720, 3500, 96),
    ("SingleLayer_1080p_H264_AAC", 1080, 6000, 128),
    ("SingleLayer_2160p_H264_AAC", 2160, 16000, 128),
    ("H264SingleBitrateSD", 480, 2200, 128),
    ("H264SingleBitrate720p", 720, 4500, 128),
    ("H264SingleBitrate1080p", 1080, 6750, 128),
];

/// The names of the system presets, for messages and the CLI.
pub fn system_preset_names() -> Vec<&'static str> {
    SYSTEM_PRESETS.iter().map(|p| p.0).collect()
}

/// A system preset by name (any letter case).
pub fn system_preset(name: &str) -> Option<EncodeSpec> {
    let &(canonical, height, kbps, audio) = SYSTEM_PRESETS.iter().find(|p| p.0.eq_ignore_ascii_case(name))?;
    Some(EncodeSpec {
        preset: canonical.to_owned(),
        bitrate_kbps: Some(kbps),
        frame_rate: None,
        scale: Some(ScaleSpec { mode: ScaleMode::PreserveAspectRatio, width: None, height: Some(height) }),
        audio_kbps: Some(audio),
    })
}

/// Whether an encoder body scales the picture (a system preset always does), readable even
/// while its values wait for parameters: scaling needs the `scale` plugin, which the host
/// checks when the topology is set.
pub fn scales(body: &Value) -> bool {
    get(body, "preset").is_some_and(|p| {
        get(p, "@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("EncoderSystemPreset"))
            || get(p, "videoEncoder").and_then(|e| get(e, "scale")).is_some()
    })
}

/// An `EncoderProcessor` node's body (`{"preset": …}`) as settings; errors name `node` and
/// the field. Also what `openva export`'s encoder options are checked with
/// ([`super::super::encoder_spec`]).
pub fn build(node: &str, body: &Value) -> Result<EncodeSpec, TopologyError> {
    let Some(preset) = get(body, "preset") else { return Err(invalid(node, "preset", "is required")) };
    let ty = get(preset, "@type").and_then(Value::as_str).unwrap_or("");
    let bare = ty.rsplit('.').next().unwrap_or(ty).trim_start_matches('#');
    if bare.eq_ignore_ascii_case("EncoderSystemPreset") {
        let name =
            string(preset, "name", node, "preset.name")?.ok_or_else(|| invalid(node, "preset.name", "is required"))?;
        return system_preset(name).ok_or_else(|| {
            invalid(
                node,
                "preset.name",
                format!("unknown preset '{}'; use one of {}", shown(name), system_preset_names().join(", ")),
            )
        });
    }
    if !bare.eq_ignore_ascii_case("EncoderCustomPreset") {
        return Err(invalid(
            node,
            "preset.@type",
            format!("must be #Microsoft.VideoAnalyzer.EncoderSystemPreset or EncoderCustomPreset, got '{}'", shown(ty)),
        ));
    }
    let mut spec =
        EncodeSpec { preset: "custom".into(), bitrate_kbps: None, frame_rate: None, scale: None, audio_kbps: None };
    if let Some(a) = get(preset, "audioEncoder") {
        spec.audio_kbps = match number(a, "bitrateKbps", node, "preset.audioEncoder.bitrateKbps")? {
            None => None,
            Some(k) if k.fract() == 0.0 && AAC_KBPS.contains(&(k as u32)) => Some(k as u32),
            Some(k) => {
                return Err(invalid(
                    node,
                    "preset.audioEncoder.bitrateKbps",
                    format!("must be one of {AAC_KBPS:?}, got {k}"),
                ));
            }
        };
    }
    if let Some(v) = get(preset, "videoEncoder") {
        spec.bitrate_kbps = integer_in(v, "bitrateKbps", node, "preset.videoEncoder.bitrateKbps", VIDEO_KBPS)?;
        spec.frame_rate = match number(v, "frameRate", node, "preset.videoEncoder.frameRate")? {
            None => None,
            Some(f) if f > 0.0 && f <= 300.0 => Some(f),
            Some(f) => {
                return Err(invalid(node, "preset.videoEncoder.frameRate", format!("must be in (0, 300], got {f}")));
            }
        };
        if let Some(sc) = get(v, "scale") {
            spec.scale = Some(scale(node, sc)?);
        }
    }
    Ok(spec)
}

fn scale(node: &str, v: &Value) -> Result<ScaleSpec, TopologyError> {
    let mode = match string(v, "mode", node, "preset.videoEncoder.scale.mode")? {
        None => ScaleMode::Pad,
        Some(m) => ScaleMode::parse(m).ok_or_else(|| {
            invalid(
                node,
                "preset.videoEncoder.scale.mode",
                format!("must be Pad, PreserveAspectRatio or Stretch, got '{}'", shown(m)),
            )
        })?,
    };
    let width = integer_in(v, "width", node, "preset.videoEncoder.scale.width", 1..=8192)?;
    let height = integer_in(v, "height", node, "preset.videoEncoder.scale.height", 1..=4320)?;
    match mode {
        ScaleMode::Pad | ScaleMode::Stretch => {
            for (field, value) in [("width", width), ("height", height)] {
                match value {
                    None => {
                        return Err(invalid(
                            node,
                            &format!("preset.videoEncoder.scale.{field}"),
                            format!("is required with mode {mode:?}"),
                        ));
                    }
                    Some(x) if x % 2 == 1 => {
                        return Err(invalid(
                            node,
                            &format!("preset.videoEncoder.scale.{field}"),
                            format!("must be even with mode {mode:?} (H.264 4:2:0 chroma), got {x}"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        ScaleMode::PreserveAspectRatio => {
            if width.is_none() && height.is_none() {
                return Err(invalid(
                    node,
                    "preset.videoEncoder.scale",
                    "needs width or height with mode PreserveAspectRatio",
                ));
            }
        }
    }
    Ok(ScaleSpec { mode, width, height })
}
