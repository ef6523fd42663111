//! A broken or hostile camera (tools/hostile-camera.py, GStreamer's RTSP server fed exactly
//! what the script says): garbage NAL units, truncated access units, an SPS claiming a
//! 65520x65520 picture, a 6 MB access unit of noise, between stretches of good video. The
//! recorder never panics, keeps its memory small, stores every frame the camera sent (the
//! archive holds what the camera sent, nonsense included), `check` finds the archive sound,
//! the good parts export and decode, and a preview of the absurd picture is a clear 415 while
//! the latest picture still works.

use openva_e2e::http::*;
use openva_e2e::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Frames the camera sends in all (tools/hostile-camera.py's phases).
const SENT: u64 = 50 + 10 + 5 + 50 + 25 + 50 + 1 + 50;

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[test]
fn a_hostile_camera_is_recorded_without_panic_or_damage() -> anyhow::Result<()> {
    let tmp = TempDir::new("hostile");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(repo_root().join("tools/hostile-camera.py")).args(["--port", "0"]);
    let (_camera, url) = spawn_ready("hostile camera", cmd, Duration::from_secs(30))?;
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let mut recorder =
        spawn_openva(&["record", "--data", data_s, "--video", "cam", "--url", &format!("{url}hostile")])?;
    let pid = recorder.child.id();
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(13) {
        peak = peak.max(rss_kb(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = recorder.terminate(Duration::from_secs(20))?;
    assert!(status.success(), "openva record exited with {status}");
    let mut stdout = String::new();
    std::io::Read::read_to_string(recorder.child.stdout.as_mut().expect("stdout"), &mut stdout)?;
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
    eprintln!("hostile camera: {summary}; peak RSS {peak} kB");
    assert_eq!((summary["received"].as_u64(), summary["frames"].as_u64()), (Some(SENT), Some(SENT)), "{summary}");
    assert!(peak < 150_000, "the recorder grew to {peak} kB");

    let check = openva_json(&["check", "--data", data_s])?;
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert_eq!(check["frames"], SENT, "{check}");
    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
    let r = &ranges["timeRanges"][0];
    let start = iso_ms(r["start"].as_str().unwrap())?;
    // The last good stretch (the 2 s before the end) decodes.
    let end = iso_ms(r["end"].as_str().unwrap())?;
    let good = tmp.path().join("good.mp4");
    export(&data, "cam", &ms_iso(end - 1_900), &ms_iso(end), &good)?;
    ffmpeg_decodes(&good)?;

    // Pictures: the absurd SPS's keyframe (5 s in: after 115 frames) is refused clearly; the
    // latest picture is there.
    let (_host, base) = start_host(&data, &[])?;
    let at = ms_iso(start + 115 * 40 + 500);
    let r = request("GET", &format!("{base}/api/videos/cam/images/at.jpg?time={at}"), None, &[])?;
    assert_eq!(r.status, 415, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("65520x65520"), "{}", String::from_utf8_lossy(&r.body));
    let latest = request("GET", &format!("{base}/api/videos/cam/images/latest/small.jpg"), None, &[])?;
    assert_eq!(latest.status, 200);
    assert_eq!(request("GET", &format!("{base}/healthz"), None, &[])?.status, 200);
    Ok(())
}
