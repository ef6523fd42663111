//! `openva plugin list|run`: lets plugin authors try a plugin on a file (decode, process,
//! encode; inferences printed as JSON lines) with the same host and limits as pipelines.

use anyhow::{Context, Result, bail};
use openva::codec::{Decoder, EncoderSettings};
use openva::pipeline::transcode::PictureWriter;
use openva::plugins::{Limits, PluginError, PluginHost, inference_to_ava};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where compiled plugins are cached.
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/openva/plugins"))
}

/// The plugin host with every plugin of `dir` loaded.
pub fn load(dir: &Path) -> Result<Arc<PluginHost>> {
    let host = PluginHost::new(Limits::default(), cache_dir())?;
    let results = host.load_dir(dir)?;
    if results.is_empty() {
        bail!("no *.wasm plugins in {} (build them with plugins/build)", dir.display());
    }
    Ok(host)
}

/// `openva plugin list`.
pub fn list(dir: &Path) -> Result<()> {
    let host = PluginHost::new(Limits::default(), cache_dir())?;
    for (path, r) in host.load_dir(dir)? {
        match r {
            Ok(_) => {}
            Err(e) => eprintln!("skipped {}: {e}", path.display()),
        }
    }
    for p in host.list() {
        println!("{}", serde_json::to_string(&p)?);
    }
    Ok(())
}

/// `openva plugin run NAME --input IN.mp4 -o OUT.mp4 [--config JSON]`.
pub fn run(dir: &Path, name: &str, config: Option<&str>, input: &Path, output: &Path) -> Result<()> {
    let config: serde_json::Value = match config {
        Some(c) => serde_json::from_str(c).context("--config is not valid JSON")?,
        None => serde_json::json!({}),
    };
    if !config.is_object() {
        bail!("--config must be a JSON object");
    }
    let host = load(dir)?;
    let mut inst = host.instantiate(name, &config)?;
    let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let size = file.metadata()?.len();
    let tracks = openva::mp4::read::tracks(&mut std::io::BufReader::new(&file), size)
        .with_context(|| format!("{} is not a readable MP4", input.display()))?;
    let track = tracks
        .iter()
        .find(|t| openva::mp4::entry::video_codec(&t.sample_entry).is_some())
        .with_context(|| format!("{} has no H.264 or H.265 video track", input.display()))?;
    let timescale = track.timescale.max(1);
    // Frames per second over the whole track (the last frame lasts as long as the one before).
    let fps = match track.samples.as_slice() {
        [.., a, b] => {
            let span = b.decode + (b.decode - a.decode);
            track.samples.len() as f64 * f64::from(timescale) / span.max(1) as f64
        }
        _ => 25.0,
    };
    let fps = if fps.is_finite() && fps > 0.0 { fps as f32 } else { 25.0 };
    let b_frames = track.samples.iter().any(|s| s.cts != 0);
    let mut dec = Decoder::for_entry(&track.sample_entry, b_frames, 0)?;
    let mut writer = PictureWriter::new(output, move |_| EncoderSettings {
        bitrate: 4_000_000,
        fps,
        gop: (fps.round() as u32).max(1) * 2,
        threads: 1,
        fast: false,
    })?;
    let mut out = std::io::stdout().lock();
    let (mut frames, mut faults, mut last_pts) = (0u64, 0u64, 0i64);
    let mut data = Vec::new();
    let mut step = |pic: openva::codec::I420, dec: &mut Decoder| -> Result<()> {
        let mut pic = pic;
        let pts = pic.pts;
        match inst.process(&mut pic) {
            Ok(p) => {
                if !p.inferences.is_empty() {
                    let inf: Vec<_> = p.inferences.iter().map(inference_to_ava).collect();
                    writeln!(out, "{}", serde_json::json!({"timestamp": pts, "inferences": inf}))?;
                }
            }
            Err(e @ (PluginError::Fault { .. } | PluginError::Paused { .. } | PluginError::Process { .. })) => {
                faults += 1;
                eprintln!("frame at {pts}: {e}");
            }
            Err(e) => return Err(e.into()),
        }
        frames += 1;
        writer.push(&pic, pts)?;
        dec.recycle(pic);
        last_pts = last_pts.max(pts);
        Ok(())
    };
    for (id, s) in (1u64..).zip(&track.samples) {
        data.resize(s.size as usize, 0);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut data, s.offset)
            .with_context(|| format!("reading sample {id} of {}", input.display()))?;
        let shown = s.decode as i64 + s.cts;
        let pts = openva::time::rescale(shown, i64::from(timescale), openva::time::TICKS_PER_SEC);
        match dec.decode(&data, pts, s.key) {
            Ok(Some(pic)) => step(pic, &mut dec)?,
            Ok(None) => {}
            Err(e) => eprintln!("sample {id} did not decode (skipping to the next keyframe): {e}"),
        }
    }
    for pic in dec.flush() {
        step(pic, &mut dec)?;
    }
    if writer.frames() == 0 {
        bail!("no frame could be decoded from {}", input.display());
    }
    writer.end_range(last_pts + (openva::time::TICKS_PER_SEC as f32 / fps) as i64);
    writer.finish(output)?;
    eprintln!("{frames} frames processed, {faults} faults; wrote {}", output.display());
    if faults > 0 {
        bail!("the plugin failed on {faults} frame(s)");
    }
    Ok(())
}
