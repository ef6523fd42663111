//! `openva export`'s re-encoding options: the same settings and checks as a batch topology's
//! `EncoderProcessor`, run offline on a data directory with a progress bar.

use super::parse_time;
use anyhow::{Result, bail};
use openva::archive::Archive;
use openva::pipeline::transcode::{self, Outcome};
use openva::plugins::PluginHost;
use openva::time::Time90k;
use openva::topology::{self, EncodeSpec};
use serde_json::json;
use std::path::{Path, PathBuf};
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
    Ok(topology::encoder_spec("export", &body)?)
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

/// The options of `openva export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Video name.
    #[arg(long)]
    pub video: String,
    /// Start (ISO 8601 UTC).
    #[arg(long)]
    pub start: String,
    /// End (ISO 8601 UTC).
    #[arg(long)]
    pub end: String,
    /// Output file.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// fsync the file before reporting success (it then survives a power loss at once;
    /// waits for the disk).
    #[arg(long)]
    pub sync: bool,
    /// Re-encode with a system preset (e.g. SingleLayer_720p_H264_AAC) instead of copying.
    #[arg(long)]
    pub preset: Option<String>,
    /// Re-encode to this width (with --height and --mode; one of them keeps the aspect).
    #[arg(long)]
    pub width: Option<u32>,
    /// Re-encode to this height.
    #[arg(long)]
    pub height: Option<u32>,
    /// How the picture fits --width x --height: pad (default), preserveAspectRatio, stretch.
    #[arg(long)]
    pub mode: Option<String>,
    /// Re-encode at this video bit rate (kbit/s).
    #[arg(long)]
    pub bitrate: Option<u32>,
    /// Re-encode at this frame rate (fewer frames; at most the input's).
    #[arg(long)]
    pub frame_rate: Option<f64>,
    /// Plugins directory (the `scale` plugin scales).
    #[arg(long, env = "OPENVA_PLUGINS", default_value = "plugins/dist")]
    pub plugins: PathBuf,
}

/// Runs `openva export`.
pub fn run(args: ExportArgs) -> Result<()> {
    let ExportArgs { data, video, start, end, output, sync, preset, width, height, mode, bitrate, frame_rate, plugins } =
        args;
    let (start, end) = (parse_time("start", &start)?, parse_time("end", &end)?);
    let archive = Archive::open_existing(&data)?;
    let range = |(a, b): (Time90k, Time90k)| serde_json::json!({"start": a.to_iso_millis(), "end": b.to_iso_millis()});
    let encode = preset.is_some() || width.is_some() || height.is_some() || bitrate.is_some() || frame_rate.is_some();
    if encode {
        let spec = encode_spec(preset.as_deref(), width, height, mode.as_deref(), bitrate, frame_rate)?;
        let host = if spec.scale.is_some() { Some(crate::cli::plugin::load(&plugins)?) } else { None };
        let out = transcode(&archive, &video, (start, end), &spec, host.as_ref(), &output)?;
        println!(
            "{}",
            serde_json::json!({
                "video": video,
                "file": output,
                "requested": range((start, end)),
                "actual": out.actual.iter().map(|r| range(*r)).collect::<Vec<_>>(),
                "gaps": out.gaps.iter().map(|g| range(*g)).collect::<Vec<_>>(),
                "frames": out.frames,
                "width": out.width,
                "height": out.height,
                "bytes": out.bytes,
            })
        );
        return Ok(());
    }
    let plan = archive.plan_export(&video, start, end)?;
    let bar = indicatif::ProgressBar::new(plan.layout.total_len());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    plan.write_to(&archive, &output, sync, |n| bar.set_position(n))?;
    bar.finish_and_clear();
    let out = serde_json::json!({
        "video": video,
        "file": output,
        "requested": range(plan.requested),
        "actual": range(plan.actual),
        "gaps": plan.gaps.iter().map(|g| range(*g)).collect::<Vec<_>>(),
        "frames": plan.frames,
        "bytes": plan.layout.total_len(),
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
