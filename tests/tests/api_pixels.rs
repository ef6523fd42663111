//! Features that need pixels on the cameras that need libavcodec (H.265 with and without
//! B-frames, Main 10, with AAC; H.264 with B-frames): the corpus motion topology finds motion in
//! the zoo's moving ball on each, with no `MediaFormatError`; preview images come at the sizes
//! asked; a re-encoding export of H.265 with B-frames is H.264 of the size asked that ffmpeg
//! decodes whole, with the frames of the range, each picture the one recorded at its time;
//! `openva plugin run` takes the H.265 file; a copy export and HLS still carry `hvc1`.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

fn events_of(events: &Events, pipeline: &str, kind: &str) -> Vec<Value> {
    events
        .all()
        .into_iter()
        .filter(|e| {
            e["applicationProperties"]["eventType"].as_str().unwrap_or_default().ends_with(kind)
                && e["applicationProperties"]["subject"].as_str().unwrap_or_default().contains(pipeline)
        })
        .collect()
}

/// Width and height of a baseline or progressive JPEG (its SOF marker).
fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
    let mut at = 2;
    while at + 9 < jpeg.len() {
        if jpeg[at] != 0xff {
            return None;
        }
        let marker = jpeg[at + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if matches!(marker, 0xc0..=0xc2) {
            let h = u16::from_be_bytes([jpeg[at + 5], jpeg[at + 6]]);
            let w = u16::from_be_bytes([jpeg[at + 7], jpeg[at + 8]]);
            return Some((w, h));
        }
        at += 2 + len;
    }
    None
}

#[test]
fn pixels_of_h265_and_b_frames_reach_processors_previews_and_exports() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-pixels");
    let zoo = Zoo::start_with(&["--size", "640x360"])?; // endless cameras
    let plugins = repo_root().join("plugins/dist");
    let data = tmp.path().join("data");
    let (_host, base) = start_host(&data, &["--plugins", plugins.to_str().unwrap()])?;
    let events = Events::subscribe(&base, None)?;
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies/cvr-with-motion.json"))?;
    let mut t: Value = serde_json::from_str(&text)?;
    // The corpus topology with its video name as a parameter, so several pipelines can use it.
    t["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "videoName", "type": "String"}));
    for s in t["properties"]["sinks"].as_array_mut().unwrap() {
        if s.get("videoName").is_some() {
            s["videoName"] = json!("${videoName}");
        }
    }
    assert_eq!(method(&base, "pipelineTopologySet", &t)?.0, 201);
    let cameras =
        [("hevc", "h265+aac"), ("hevcb", "h265-b3+aac"), ("main10", "h265-main10"), ("bframes", "h264-high-b2")];
    for (name, mount) in cameras {
        let p = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": "CVRWithMotionDetection",
            "parameters": [{"name": "rtspUrl", "value": format!("{}{mount}", zoo.url)}, {"name": "videoName", "value": name},
                           {"name": "hubSinkOutputName", "value": "out"}]}});
        assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
        let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": name}))?;
        assert_eq!(st, 200, "{body}");
    }
    // Motion: the ball moves all the time, so every pipeline reports it.
    for (name, _) in cameras {
        let subject = format!("/livePipelines/{name}/");
        wait_until(&format!("{name}: motion"), Duration::from_secs(40), || {
            Ok(!events_of(&events, &subject, "Inference").is_empty())
        })?;
    }
    for (name, mount) in cameras {
        let subject = format!("/livePipelines/{name}/");
        let said = events_of(&events, &subject, "MediaFormatError");
        assert!(said.is_empty(), "{name} ({mount}): no format error: {said:?}");
        let inf = &events_of(&events, &subject, "Inference")[0];
        let b = &inf["body"]["inferences"][0]["motion"]["box"];
        let (l, t, w, h) = (b["l"].as_f64(), b["t"].as_f64(), b["w"].as_f64(), b["h"].as_f64());
        assert!(
            [l, t, w, h].iter().all(|v| v.is_some_and(|v| (0.0..=1.0).contains(&v))) && w > Some(0.0),
            "{name}: a motion box inside the picture: {inf}"
        );
        // Previews at the sizes asked (never larger than the picture), once a keyframe is in.
        let latest = format!("{base}/api/videos/{name}/images/latest/small.jpg");
        wait_until(&format!("{name}: a keyframe recorded"), Duration::from_secs(20), || {
            Ok(request("GET", &latest, None, &[])?.status != 404)
        })?;
        for (size, want) in [("small", (320, 180)), ("large", (640, 360))] {
            let r = request("GET", &format!("{base}/api/videos/{name}/images/latest/{size}.jpg"), None, &[])?;
            assert_eq!((r.status, r.header("content-type")), (200, Some("image/jpeg")), "{name} {size}");
            assert_eq!(jpeg_size(&r.body), Some(want), "{name} {size}");
        }
    }

    // HLS of H.265: the codecs say hvc1, and ffmpeg reads it.
    let master = String::from_utf8(request("GET", &format!("{base}/api/videos/hevc/manifest.m3u8"), None, &[])?.body)?;
    assert!(master.contains("CODECS=\"hvc1."), "{master}");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", &format!("{base}/api/videos/hevc/manifest.m3u8"), "-t", "2", "-f", "null", "-"])
        .output()?;
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // At least 6 s recorded, for an export of the last 4.
    wait_until("6 s of hevcb", Duration::from_secs(30), || {
        let am = request("GET", &format!("{base}/api/videos/hevcb/availableMedia"), None, &[])?.json()?;
        let r = &am["timeRanges"][0];
        let span = |k: &str| r[k].as_str().map(iso_ms).transpose();
        Ok(matches!((span("start")?, span("end")?), (Some(s), Some(e)) if e - s >= 6_000))
    })?;
    for (name, _) in cameras {
        assert_eq!(method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": name}))?.0, 200);
    }
    // Exports of H.265 with B-frames: a copy, and a re-encoding to 320x180 H.264 with every
    // frame of the range (the same frames the copy shows).
    let am = request("GET", &format!("{base}/api/videos/hevcb/availableMedia"), None, &[])?.json()?;
    let end = am["timeRanges"][0]["end"].as_str().unwrap();
    let (e, s) = (end.to_owned(), ms_iso(iso_ms(end)? - 4_000));
    let copy = tmp.path().join("copy.mp4");
    export(&data, "hevcb", &s, &e, &copy)?;
    ffmpeg_decodes(&copy)?;
    let copied = probe_streams(&copy)?;
    let copied = copied.iter().find(|p| p.kind == "video").expect("a video stream");
    assert_eq!(copied.codec, "hevc");
    // `openva plugin run` takes the H.265 file: every picture through the grayscale plugin.
    let gray = tmp.path().join("gray.mp4");
    let out = openva(&[
        "plugin",
        "run",
        "grayscale",
        "--input",
        copy.to_str().unwrap(),
        "-o",
        gray.to_str().unwrap(),
        "--plugins",
        plugins.to_str().unwrap(),
    ])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let g = probe_streams(&gray)?;
    let g = g.iter().find(|p| p.kind == "video").expect("a video stream");
    assert_eq!((g.codec.as_str(), g.width, g.height), ("h264", 640, 360), "{g:?}");
    // Every sample of the file, the lead-in before its edit list (at most a GOP) included.
    assert!(
        g.frames >= copied.frames && g.frames <= copied.frames + 25,
        "{} frames through the plugin, {} shown by the copy",
        g.frames,
        copied.frames
    );
    let d = data.to_str().unwrap();
    let encoded = tmp.path().join("encoded.mp4");
    let o = encoded.to_str().unwrap();
    let args = ["export", "--data", d, "--video", "hevcb", "--start", &s, "--end", &e, "-o", o, "--width", "320"];
    let out = openva(&[&args[..], &["--height", "180", "--plugins", plugins.to_str().unwrap()]].concat())?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    ffmpeg_decodes(&encoded)?;
    let probed = probe_streams(&encoded)?;
    let v = probed.iter().find(|p| p.kind == "video").expect("a video stream");
    assert_eq!((v.codec.as_str(), v.width, v.height), ("h264", 320, 180), "{v:?}");
    // 4 s at 25 fps (a loaded zoo drops a frame now and then), as the copy shows them.
    assert!(v.frames.abs_diff(100) <= 5, "{} frames re-encoded", v.frames);
    assert!(v.frames.abs_diff(copied.frames) <= 1, "{} frames re-encoded, {} copied", v.frames, copied.frames);
    // At the recorded size, each re-encoded picture matches the copy's picture at the same
    // time (B-frames in their place): ~47 dB here, ~28 dB when off by one frame.
    let same = tmp.path().join("same-size.mp4");
    let args = ["export", "--data", d, "--video", "hevcb", "--start", &s, "--end", &e, "--bitrate", "3000", "-o"];
    let out = openva(&[&args[..], &[same.to_str().unwrap()]].concat())?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let psnr = luma_psnr(&same, &copy)?;
    assert!(psnr > 38.0, "re-encoded pictures match the recording's: {psnr} dB");
    Ok(())
}
