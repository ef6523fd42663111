//! `openva export`'s re-encoding options: the same settings and checks as a batch topology's
//! `EncoderProcessor`, run offline on a data directory with a progress bar.

use anyhow::{Result, bail};
use openva::archive::Archive;
use openva::pipeline::batch::{self, EncodeSpec};
use openva::pipeline::transcode::{self, Outcome};
use openva::plugins::PluginHost;
use openva::time::Time90k;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// The encoder settings of `--preset` or `--width/--height/--mode/--bitrate/--frame-rate`,
/// checked like an `EncoderProcessor` node (errors name the option's field).
pub fn encode_spec(
    preset: Option<&str>,
    width: Option<u32>,
    height: Option<u32>,
    mode: Option<&str>,
    bitrate: Option<u32>,
    frame_rate: Option<f64>,
) -> Result<EncodeSpec> {
    let custom = width.is_some() || height.is_some() || bitrate.is_some() || frame_rate.is_some() || mode.is_some();
    let body = match (preset, custom) {
        (Some(_), true) => bail!("--preset cannot be combined with --width/--height/--mode/--bitrate/--frame-rate"),
        (Some(p), false) => json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderSystemPreset", "name": p}}),
        (None, _) => {
            let mut video = json!({"@type": "#Microsoft.VideoAnalyzer.VideoEncoderH264"});
            if let Some(b) = bitrate {
                video["bitrateKbps"] = json!(b);
            }
            if let Some(f) = frame_rate {
                video["frameRate"] = json!(f);
            }
            if width.is_some() || height.is_some() {
                // One side only keeps the aspect ratio; both default to AVA's Pad.
                let default = if width.is_some() && height.is_some() { "Pad" } else { "PreserveAspectRatio" };
                let mut scale = json!({"mode": mode.unwrap_or(default)});
                if let Some(w) = width {
                    scale["width"] = json!(w);
                }
                if let Some(h) = height {
                    scale["height"] = json!(h);
                }
                video["scale"] = scale;
            } else if mode.is_some() {
                bail!("--mode needs --width and/or --height");
            }
            json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset", "videoEncoder": video}})
        }
    };
    Ok(batch::encoder("export", &body)?)
}

/// Re-encodes `[start, end)` of `video` into `output`, with a progress bar.
pub fn transcode(
    archive: &Archive,
    video: &str,
    range: (Time90k, Time90k),
    spec: &EncodeSpec,
    plugins: Option<&Arc<PluginHost>>,
    output: &Path,
) -> Result<Outcome> {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {elapsed} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cancel = AtomicBool::new(false);
    let mut progress = |share: f64| bar.set_position((share * 1000.0) as u64);
    let source = transcode::Source { archive, video, ranges: &[range] };
    let out = transcode::transcode(source, spec, plugins, output, &cancel, &mut progress)?;
    bar.finish_and_clear();
    Ok(out)
}
