//! Recordings of real camera shapes (tools/camera-zoo.py) played by openva's web player in
//! Debian's Chromium (tests/web/av-check.js): H.264 with B-frames and AAC, H.264 with a
//! B-frame pyramid and G.711 (stored as FLAC), and H.265. The first two play, advancing, with
//! their audio decoded and an unmute control; H.265, which this Chromium cannot decode without
//! a hardware decoder, plays through the host's H.264 transcode, which the page picks by itself
//! and names.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn b_frames_and_audio_play_in_chromium() -> anyhow::Result<()> {
    let tmp = TempDir::new("web-av");
    let zoo = Zoo::start(250)?;
    let data = tmp.path().join("data");
    let mounts = ["h264-high-b2+aac", "h264-high-b3+pcmu", "h265-b3"];
    zoo.record(&data, &mounts)?;
    let names = ["v0", "v1", "v2"];
    let (_host, base) = start_host(&data, &[])?;
    let mut plays = Vec::new();
    for name in names {
        let am = request("GET", &format!("{base}/api/videos/{name}/availableMedia"), None, &[])?.json()?;
        let start = iso_ms(am["timeRanges"][0]["start"].as_str().unwrap_or_default())?;
        plays.push(format!("{name}={start}"));
        // The multivariant playlist names the codecs a player needs.
        let master =
            String::from_utf8(request("GET", &format!("{base}/api/videos/{name}/manifest.m3u8"), None, &[])?.body)?;
        let want = match name {
            "v0" | "v1" => "CODECS=\"avc1.64",
            _ => "CODECS=\"hvc1.",
        };
        assert!(master.contains(want), "{name}: {master}");
        let audio = match name {
            "v0" => Some(",mp4a.40.2\""),
            "v1" => Some(",flac\""),
            _ => None,
        };
        assert_eq!(audio.is_some_and(|a| master.contains(a)), audio.is_some(), "{name}: {master}");
        let info = request("GET", &format!("{base}/api/videos/{name}"), None, &[])?.json()?;
        assert_eq!(info["properties"]["mediaInfo"]["audio"].is_object(), audio.is_some(), "{name}: {info}");
    }
    let out = Command::new("node")
        .arg(repo_root().join("tests/web/av-check.js"))
        .arg(&base)
        .args(&plays)
        .current_dir(repo_root().join("tests/web"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).map_err(|e| {
        anyhow::anyhow!("av-check printed no JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })?;
    eprintln!("{seen}");
    assert!(seen["failure"].is_null(), "{seen}");
    assert_eq!(seen["consoleErrors"].as_array().map(Vec::len), Some(0), "console errors: {seen}");
    assert_eq!((seen["mse"]["aac"].as_bool(), seen["mse"]["flac"].as_bool()), (Some(true), Some(true)), "{seen}");
    for name in ["v0", "v1"] {
        let v = &seen["videos"][name];
        assert!(v["failure"].is_null(), "{name}: {v}");
        assert!(v["advanced"].as_f64().unwrap_or(0.0) >= 1.5, "{name} did not play: {v}");
        assert!(v["videoBytes"].as_u64().unwrap_or(0) > 0, "{name}: {v}");
        assert!(v["audioBytes"].as_u64().unwrap_or(0) > 0, "{name}: no audio decoded: {v}");
        assert_eq!((v["muteShown"].as_bool(), v["muted"].as_bool()), (Some(true), Some(false)), "{name}: {v}");
    }
    let hevc = &seen["videos"]["v2"];
    assert!(hevc["advanced"].as_f64().unwrap_or(0.0) >= 1.5, "{hevc}");
    if seen["mse"]["hevc"] == false {
        let note = hevc["note"].as_str().unwrap_or_default();
        assert!(note.contains("transcoded") && note.contains("cannot play hvc1."), "{hevc}");
    }
    Ok(())
}
