//! `transcode`: a re-encoding export (issue 5), 1080p → 720p, openva (`openva export --width
//! 1280 --height 720 --mode stretch`: `codec::Decoder` (libavcodec, two frame threads), the
//! `scale` Wasm plugin, openh264 encode) against `ffmpeg -vf scale=1280:720 -c:v libx264 -preset ultrafast` on
//! the same frames (the copy export of the same range as its input), in the same run. Goal:
//! openva within 1.5× ffmpeg's time. Both print frames per second.

use super::{Timing, best_of, timed};
use anyhow::{Context, Result, ensure};
use openva_e2e::*;
use std::path::Path;
use std::process::Command;

/// Seconds of 1080p exported.
const SECONDS: i64 = 60;

pub fn run(tmp: &Path) -> Result<()> {
    // A 30 s segment of 1080p from the simulator, cloned to a minute.
    let (_sim, url) = start_sim(free_port(), &["--size", "1920x1080", "--bitrate", "6000000"])?;
    let rec = tmp.join("rec-1080p");
    let d = rec.display().to_string();
    openva_json(&["record", "--data", &d, "--video", "t", "--url", &format!("{url}t"), "--duration", "34"])?;
    let segs = segment_files(&rec, "t")?;
    ensure!(segs.len() >= 2, "expected a full 30 s segment, got {segs:?}");
    let (data, start, end) = super::cloned_archive(tmp, "transcode", &segs[0], 30, SECONDS)?;
    let (s, e) = (start.to_iso_millis(), end.to_iso_millis());
    let data_s = data.display().to_string();
    let plugins = repo_root().join("plugins/dist").display().to_string();

    // ffmpeg's input: the same range, copied.
    let input = tmp.join("in-1080p.mp4");
    super::copy_export(&data, start, end, &input)?;
    let frames = count_frames(&input)?;

    let ov_out = tmp.join("openva-720p.mp4");
    let o = ov_out.display().to_string();
    let ov = best_of(2, || {
        timed(Command::new(openva_bin()).args([
            "export",
            "--data",
            &data_s,
            "--video",
            "src",
            "--start",
            &s,
            "--end",
            &e,
            "-o",
            &o,
            "--width",
            "1280",
            "--height",
            "720",
            "--mode",
            "stretch",
            "--bitrate",
            "3500",
            "--plugins",
            &plugins,
        ]))
    })?;
    let ff_out = tmp.join("ffmpeg-720p.mp4");
    let ff = best_of(2, || {
        timed(
            Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
                .arg(&input)
                .args(["-vf", "scale=1280:720", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3500k"])
                .arg(&ff_out),
        )
    })?;
    ffmpeg_decodes(&ov_out)?;
    let ov_frames = count_frames(&ov_out)?;
    ensure!(ov_frames == frames, "openva wrote {ov_frames} frames of {frames}");
    println!("== transcode: {SECONDS} s of 1080p (25 fps) re-encoded to 720p, best of 2, {frames} frames");
    println!("{:<58} {:>8} {:>8} {:>8}", "", "wall s", "CPU s", "fps");
    let row = |name: &str, t: Timing| {
        println!(
            "{name:<58} {:>8.2} {:>8.2} {:>8.1}",
            t.wall.as_secs_f64(),
            t.cpu.as_secs_f64(),
            frames as f64 / t.wall.as_secs_f64()
        )
    };
    row("openva export --width 1280 --height 720 (libav + Wasm + openh264)", ov);
    row("ffmpeg -vf scale=1280:720 -c:v libx264 -preset ultrafast", ff);
    println!(
        "openva takes {:.2}x ffmpeg's time (goal ≤ 1.5x), {:.2}x its CPU",
        ov.wall.as_secs_f64() / ff.wall.as_secs_f64(),
        ov.cpu.as_secs_f64() / ff.cpu.as_secs_f64().max(1e-3)
    );
    for f in [&input, &ov_out, &ff_out] {
        let _ = std::fs::remove_file(f);
    }
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&rec);
    Ok(())
}

pub(crate) fn count_frames(path: &Path) -> Result<u64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().context("ffprobe frame count")
}
