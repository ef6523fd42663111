//! `openva plugin list|run` on real decoded video: a clip recorded from the simulated camera
//! goes through grayscale, scale and motion; ffmpeg decodes every output and checks what the
//! plugin did (chroma, size), and the frame stamps show no frame lost.

use openva_e2e::*;
use std::process::Command;
use std::time::Duration;

/// Records ~4 s from the simulator and exports it; returns the MP4.
fn clip(tmp: &TempDir) -> anyhow::Result<std::path::PathBuf> {
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    openva_json(&["record", "--data", d, "--video", "v", "--url", &format!("{url}v"), "--duration", "4"])?;
    let r = openva_json(&["ranges", "--data", d, "--video", "v"])?;
    let r = &r["timeRanges"][0];
    let out = tmp.path().join("in.mp4");
    export(&data, "v", r["start"].as_str().unwrap(), r["end"].as_str().unwrap(), &out)?;
    Ok(out)
}

fn run_plugin(name: &str, config: &str, input: &std::path::Path, output: &std::path::Path) -> anyhow::Result<String> {
    let plugins = repo_root().join("plugins/dist");
    let out = openva(&[
        "plugin",
        "run",
        name,
        "--config",
        config,
        "--input",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
    ])?;
    anyhow::ensure!(out.status.success(), "plugin run {name}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

fn probe_size(path: &std::path::Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()?;
    let s = String::from_utf8(out.stdout)?;
    let mut it = s.trim().split(',').map(|v| v.parse::<u32>());
    Ok((it.next().unwrap()?, it.next().unwrap()?))
}

#[test]
fn plugins_on_recorded_video() -> anyhow::Result<()> {
    let tmp = TempDir::new("plugin-cli");
    let input = clip(&tmp)?;
    let plugins = repo_root().join("plugins/dist");
    let list = openva(&["plugin", "list", "--plugins", plugins.to_str().unwrap()])?;
    let list = String::from_utf8(list.stdout)?;
    assert!(list.lines().any(|l| l.contains("\"name\":\"motion\"")), "{list}");
    let in_stamps = frame_stamps(&input, 640)?;

    // Grayscale: chroma is flat 128 after decoding (±2 for the encoder), frames all there.
    let gray = tmp.path().join("gray.mp4");
    run_plugin("grayscale", "{}", &input, &gray)?;
    ffmpeg_decodes(&gray)?;
    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&gray)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()?
        .stdout;
    let frame = 640 * 360 * 3 / 2;
    assert!(!raw.is_empty() && raw.len() % frame == 0);
    for f in raw.chunks(frame) {
        assert!(f[640 * 360..].iter().all(|&c| (125..=131).contains(&c)), "chroma not gray");
    }
    let out_stamps = frame_stamps(&gray, 640)?;
    assert_eq!(out_stamps.len(), in_stamps.len(), "frames lost or added");

    // Scale: the requested size, decodable.
    let scaled = tmp.path().join("scaled.mp4");
    run_plugin("scale", r#"{"mode": "pad", "width": "320", "height": "320"}"#, &input, &scaled)?;
    ffmpeg_decodes(&scaled)?;
    assert_eq!(probe_size(&scaled)?, (320, 320));

    // Motion: the simulator's pattern moves, so there are motion inferences in AVA's shape.
    let moved = tmp.path().join("motion.mp4");
    let lines = run_plugin("motion", r#"{"sensitivity": "high", "eventAggregationWindow": "PT1S"}"#, &input, &moved)?;
    let events: Vec<serde_json::Value> = lines.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert!(events.len() >= 2, "expected about one motion event per second: {lines}");
    assert_eq!(events[0]["inferences"][0]["type"], "motion");
    // A hostile plugin makes `plugin run` fail with the fault, quickly.
    let t = std::time::Instant::now();
    let bad = openva(&[
        "plugin",
        "run",
        "test-loop",
        "--input",
        input.to_str().unwrap(),
        "-o",
        tmp.path().join("bad.mp4").to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
    ])?;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("ran longer than") && err.contains("paused"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(60));
    Ok(())
}

/// `plugin run` reads MP4s it did not write: ffmpeg's muxer (run-length `stts`, `stco`, chunks
/// of several samples, an `edts`), from libx264 in the Baseline profile openh264 decodes. Every
/// frame comes out, at the input's size.
#[test]
fn plugin_run_reads_an_mp4_written_by_ffmpeg() -> anyhow::Result<()> {
    let tmp = TempDir::new("plugin-ffmpeg");
    let input = tmp.path().join("x264.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"])
        .args(["-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "25"])
        .arg(&input)
        .output()?;
    anyhow::ensure!(made.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&made.stderr));
    let gray = tmp.path().join("gray.mp4");
    run_plugin("grayscale", "{}", &input, &gray)?;
    ffmpeg_decodes(&gray)?;
    assert_eq!(probe_size(&gray)?, (320, 240));
    let frames = |p: &std::path::Path| -> anyhow::Result<String> {
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(p)
            .output()?;
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    assert_eq!(frames(&gray)?, "75", "every frame of the input");
    assert_eq!(frames(&input)?, "75");
    Ok(())
}
