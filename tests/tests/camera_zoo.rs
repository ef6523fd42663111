//! Every common camera stream shape, from GStreamer's RTSP server (tools/camera-zoo.py), not
//! our simulator: H.264 Baseline, Main (parameter sets only in the SDP), High with 2 B-frames,
//! with a 3 B-frame pyramid, with 4 slices a picture; H.265 without and with B-frames, and Main
//! 10; each without audio and with AAC, G.711 µ-law and A-law. For every one: the frames the
//! server put on the wire, the frames `openva record` received and stored, and the frames
//! ffmpeg decodes from an export of the whole recording are the same number; one range; strictly
//! increasing presentation times; `ffmpeg -xerror` decodes it; the audio is there and as long
//! as the video within one audio frame; `openva check` finds nothing.

use openva_e2e::*;
use std::path::Path;

/// Video frames each camera captures (4 s at 25 fps).
const FRAMES: u32 = 100;

const VIDEOS: [(&str, &str); 8] = [
    ("h264-baseline", "h264"),
    ("h264-main", "h264"),
    ("h264-high-b2", "h264"),
    ("h264-high-b3", "h264"),
    ("h264-slices", "h264"),
    ("h265", "hevc"),
    ("h265-b3", "hevc"),
    ("h265-main10", "hevc"),
];

/// Audio of the cameras: (mount suffix, codec as stored, one frame in seconds). G.711 is stored
/// as FLAC frames of 40 ms.
const AUDIOS: [(&str, &str, f64); 4] =
    [("", "", 0.0), ("aac", "aac", 1024.0 / 48_000.0), ("pcmu", "flac", 0.040), ("pcma", "flac", 0.040)];

/// Records `mounts` of the zoo at once (one `openva record`, a video each) until the server
/// says every stream has ended (encoder latency and two busy cores make that take longer than
/// the 4 s captured), then checks each.
fn record_and_check(zoo: &Zoo, tmp: &TempDir, mounts: &[(String, &str, &str, f64)]) -> anyhow::Result<()> {
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let names: Vec<&str> = mounts.iter().map(|m| m.0.as_str()).collect();
    let summary = zoo.record(&data, &names)?;
    for (i, (mount, vcodec, acodec, aframe)) in mounts.iter().enumerate() {
        let video = format!("v{i}");
        let what = format!("{mount} ({video})");
        let s = &summary["videos"][&video];
        let sent = zoo.sent(mount, "video").ok_or_else(|| anyhow::anyhow!("{what}: the server reported nothing"))?[0];
        assert!(sent >= 60, "{what}: the camera sent only {sent} frames");
        assert_eq!(s["received"], sent, "{what}: frames received vs sent by the server: {s}");
        assert_eq!((s["frames"].as_u64(), s["skipped"].as_u64()), (Some(sent), Some(0)), "{what}: stored {s}");
        assert_eq!(s["runs"], 1, "{what}: {s}");

        let ranges = openva_json(&["ranges", "--data", data_s, "--video", &video])?;
        let r = ranges["timeRanges"].as_array().unwrap();
        assert_eq!(r.len(), 1, "{what}: one range, not {ranges}");
        let out = tmp.path().join(format!("{video}.mp4"));
        let report = export(&data, &video, r[0]["start"].as_str().unwrap(), r[0]["end"].as_str().unwrap(), &out)?;
        assert_eq!(report["frames"], sent, "{what}: export {report}");
        assert!(report["gaps"].as_array().unwrap().is_empty(), "{what}: {report}");
        let what = format!("{what}: recorded {s}, audio sent {:?}", zoo.sent(mount, "audio"));
        check_file(&out, &what, sent, vcodec, acodec, *aframe)?;

        let check = openva_json(&["check", "--data", data_s])?;
        assert!(check["problems"].as_array().unwrap().is_empty(), "{what}: {check}");
    }
    Ok(())
}

fn check_file(out: &Path, what: &str, sent: u64, vcodec: &str, acodec: &str, aframe: f64) -> anyhow::Result<()> {
    ffmpeg_decodes(out)?;
    let streams = probe_streams(out)?;
    let v = streams.iter().find(|s| s.kind == "video").expect("video");
    assert_eq!((v.codec.as_str(), v.frames), (vcodec, sent), "{what}: video decoded from the export");
    let pts = video_frame_pts(out)?;
    assert_eq!(pts.len() as u64, sent, "{what}");
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "{what}: presentation times not increasing: {pts:?}");
    let audio = streams.iter().find(|s| s.kind == "audio");
    if acodec.is_empty() {
        assert!(audio.is_none(), "{what}: {streams:?}");
        return Ok(());
    }
    let a = audio.unwrap_or_else(|| panic!("{what}: no audio in {streams:?}"));
    assert!(a.codec == acodec && a.frames > 0, "{what}: {a:?}");
    let (v_end, a_end) = (v.start + v.duration, a.start + a.duration);
    eprintln!(
        "{what}: video {:.3}+{:.3} s, audio {:.3}+{:.3} s ({} frames of {:.1} ms)",
        v.start,
        v.duration,
        a.start,
        a.duration,
        a.frames,
        aframe * 1000.0
    );
    let slack = aframe + 0.002;
    assert!((a.duration - v.duration).abs() <= slack, "{what}: audio lasts {} s, video {} s", a.duration, v.duration);
    assert!((a.start - v.start).abs() <= slack && (a_end - v_end).abs() <= slack, "{what}: {a:?} vs {v:?}");
    Ok(())
}

/// Every shape once, in batches recorded side by side (GStreamer encodes them all at once on
/// this machine's two cores; one batch lasts ~8 s).
#[test]
fn every_camera_shape_keeps_every_frame() -> anyhow::Result<()> {
    let tmp = TempDir::new("camera-zoo");
    let zoo = Zoo::start(FRAMES)?;
    let mut all = Vec::new();
    for (v, vcodec) in VIDEOS {
        for (a, acodec, aframe) in AUDIOS {
            let mount = if a.is_empty() { v.to_owned() } else { format!("{v}+{a}") };
            all.push((mount, vcodec, acodec, aframe));
        }
    }
    for (i, batch) in all.chunks(8).enumerate() {
        let dir = TempDir::new(&format!("camera-zoo-{i}"));
        record_and_check(&zoo, &dir, batch)?;
    }
    drop(tmp);
    Ok(())
}

/// A camera whose picture size changes mid-session (new SPS and PPS in band): it keeps
/// recording into the same video and run, a new segment (new init segment) starts at the first
/// keyframe of the new size, the range has no gap, HLS marks the change with a discontinuity,
/// and an export holds every frame in both sizes.
#[test]
fn a_picture_size_change_mid_session_keeps_recording() -> anyhow::Result<()> {
    let tmp = TempDir::new("camera-resize");
    let zoo = Zoo::start(150)?;
    let mount = "h264-resize";
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    zoo.record(&data, &[mount])?;
    let sent = zoo.sent(mount, "video").unwrap()[0];
    let segments = segment_files(&data, "v0")?;
    assert_eq!(segments.len(), 2, "one segment per picture size: {segments:?}");
    let sizes: Vec<(u64, u64)> = segments
        .iter()
        .map(|f| {
            let s = probe_streams(f).unwrap_or_default();
            s.first().map_or((0, 0), |v| (v.width, v.height))
        })
        .collect();
    assert_eq!(sizes, [(320, 180), (640, 360)], "{segments:?}");
    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "v0"])?;
    let r = ranges["timeRanges"].as_array().unwrap();
    assert_eq!(r.len(), 1, "no gap at the change: {ranges}");
    let out = tmp.path().join("resize.mp4");
    let report = export(&data, "v0", r[0]["start"].as_str().unwrap(), r[0]["end"].as_str().unwrap(), &out)?;
    assert_eq!(report["frames"], sent, "{report}");
    ffmpeg_decodes(&out)?;
    let v = probe_streams(&out)?;
    assert_eq!(v[0].frames, sent, "every frame decodes: {v:?}");

    // HLS: the new size is a new init segment after a discontinuity.
    let (_host, base) = openva_e2e::http::start_host(&data, &[])?;
    let media = openva_e2e::http::request("GET", &format!("{base}/api/videos/v0/media.m3u8"), None, &[])?;
    let text = String::from_utf8(media.body)?;
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2, "{text}");
    Ok(())
}

/// A camera with periodic intra refresh sends one IDR, then for minutes only recovery points:
/// segments still rotate (at a recovery point past the segment length), so every range query
/// finds them, and the frames after the rotation export and play from the new segment.
#[test]
fn periodic_intra_refresh_still_rotates_segments() -> anyhow::Result<()> {
    let tmp = TempDir::new("camera-pir");
    let zoo = Zoo::start(36 * 25)?;
    let mount = "h264-intra-refresh";
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    zoo.record(&data, &[mount])?;
    let sent = zoo.sent(mount, "video").unwrap()[0];
    let check = openva_json(&["check", "--data", data_s])?;
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert_eq!((check["frames"].as_u64(), check["segments"].as_u64()), (Some(sent), Some(2)), "{check}");
    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "v0"])?;
    let r = ranges["timeRanges"].as_array().unwrap();
    assert_eq!(r.len(), 1, "{ranges}");
    // The last 3 s, which lie in the second segment: planned from its recovery point, decoded.
    let end = iso_ms(r[0]["end"].as_str().unwrap())?;
    let out = tmp.path().join("tail.mp4");
    let report = export(&data, "v0", &ms_iso(end - 3_000), r[0]["end"].as_str().unwrap(), &out)?;
    assert!(report["frames"].as_u64().unwrap_or(0) >= 75, "{report}");
    // A decoder starting at a recovery point shows pictures once the refresh has swept the
    // frame (at most a GOP): the rest decodes.
    let v = probe_streams(&out)?;
    eprintln!("intra refresh: {} frames exported, {} decoded", report["frames"], v[0].frames);
    assert!(v[0].frames + 25 >= report["frames"].as_u64().unwrap_or(0), "{v:?}");
    Ok(())
}
