//! Features that need pixels, on cameras this host records but cannot decode yet (H.265, and
//! H.264 with B-frames, which openh264 decodes wrongly): the corpus motion topology records
//! them and says once, in a `MediaFormatError`, that its processor gets no frames; preview
//! images of H.265 are a 415 naming the codec (an H.264 keyframe decodes even with B-frames);
//! a re-encoding export fails naming the codec while a copy export works; and HLS of H.265
//! reads in ffmpeg with `hvc1` in its codecs.

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

#[test]
fn pixels_of_h265_and_b_frames_are_refused_clearly_and_recording_goes_on() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-pixels");
    let zoo = Zoo::start_with(&[])?; // endless cameras
    let plugins = repo_root().join("plugins/dist");
    let data = tmp.path().join("data");
    let (_host, base) = start_host(&data, &["--plugins", plugins.to_str().unwrap()])?;
    let events = Events::subscribe(&base, None)?;
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies/cvr-with-motion.json"))?;
    let mut t: Value = serde_json::from_str(&text)?;
    // The corpus topology with its video name as a parameter, so two pipelines can use it.
    t["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "videoName", "type": "String"}));
    for s in t["properties"]["sinks"].as_array_mut().unwrap() {
        if s.get("videoName").is_some() {
            s["videoName"] = json!("${videoName}");
        }
    }
    assert_eq!(method(&base, "pipelineTopologySet", &t)?.0, 201);
    for (name, mount) in [("hevc", "h265-b3"), ("bframes", "h264-high-b2")] {
        let p = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": "CVRWithMotionDetection",
            "parameters": [{"name": "rtspUrl", "value": format!("{}{mount}", zoo.url)}, {"name": "videoName", "value": name},
                           {"name": "hubSinkOutputName", "value": "out"}]}});
        assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
        let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": name}))?;
        assert_eq!(st, 200, "{body}");
    }
    events.wait_for("RecordingAvailable", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(6));
    for (name, codec) in [("hevc", "H.265"), ("bframes", "H.264 with B-frames")] {
        let said = events_of(&events, &format!("/livePipelines/{name}/"), "MediaFormatError");
        assert_eq!(said.len(), 1, "{name}: one MediaFormatError: {said:?}");
        let m = said[0]["body"]["message"].as_str().unwrap_or_default();
        assert!(m.contains(codec) && m.contains("processor"), "{name}: {m}");
        assert!(
            events_of(&events, &format!("/livePipelines/{name}/"), "Inference").is_empty(),
            "{name}: no garbage inferences"
        );
        let v = request("GET", &format!("{base}/api/videos/{name}"), None, &[])?.json()?;
        assert_eq!(v["properties"]["flags"]["hasData"], true, "{name}: recording goes on: {v}");
    }

    // Previews.
    let hevc = request("GET", &format!("{base}/api/videos/hevc/images/latest/small.jpg"), None, &[])?;
    assert_eq!(hevc.status, 415, "{}", String::from_utf8_lossy(&hevc.body));
    assert!(String::from_utf8_lossy(&hevc.body).contains("H.265"), "{}", String::from_utf8_lossy(&hevc.body));
    let b = request("GET", &format!("{base}/api/videos/bframes/images/latest/small.jpg"), None, &[])?;
    assert_eq!((b.status, b.header("content-type")), (200, Some("image/jpeg")), "an IDR decodes");

    // HLS of H.265: the codecs say hvc1, and ffmpeg reads it.
    let master = String::from_utf8(request("GET", &format!("{base}/api/videos/hevc/manifest.m3u8"), None, &[])?.body)?;
    assert!(master.contains("CODECS=\"hvc1."), "{master}");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", &format!("{base}/api/videos/hevc/manifest.m3u8"), "-t", "2", "-f", "null", "-"])
        .output()?;
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    for name in ["hevc", "bframes"] {
        assert_eq!(method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": name}))?.0, 200);
    }
    // Exports: a copy works, a re-encoding says why it cannot.
    let am = request("GET", &format!("{base}/api/videos/hevc/availableMedia"), None, &[])?.json()?;
    let (s, e) = (am["timeRanges"][0]["start"].as_str().unwrap(), am["timeRanges"][0]["end"].as_str().unwrap());
    let copy = tmp.path().join("copy.mp4");
    export(&data, "hevc", s, e, &copy)?;
    ffmpeg_decodes(&copy)?;
    let d = data.to_str().unwrap();
    let encoded = tmp.path().join("encoded.mp4");
    let o = encoded.to_str().unwrap();
    let out = openva(&[
        "export",
        "--data",
        d,
        "--video",
        "hevc",
        "--start",
        s,
        "--end",
        e,
        "-o",
        o,
        "--preset",
        "SingleLayer_540p_H264_AAC",
        "--plugins",
        plugins.to_str().unwrap(),
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("H.265 cannot be decoded") && !err.contains("panicked"), "{err}");
    assert!(!encoded.exists(), "no partial output left");
    Ok(())
}
