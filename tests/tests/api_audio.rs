//! AVA's `audio-video.json` (the corpus topology, unchanged) over HTTP with a real camera that
//! sends H.264 with B-frames and AAC: video and audio are recorded, the video resource's
//! `mediaInfo` says so, `MediaSessionEstablished` carries the camera's whole SDP, and
//! `content.mp4` and a copy job's output hold both tracks. Then AVA's output selectors: `is
//! video` records a G.711 camera without its audio; a camera with Opus audio (not recorded)
//! gets its video recorded and one `MediaFormatError` naming the codec; a selector that
//! excludes video is refused; a camera with no video openva records (Motion JPEG, audio alone)
//! gets a `MediaFormatError` listing what it offers, over the API and from the CLI, and nothing
//! is written.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Activates pipeline `name` of topology `topology` on `url`, waits until the zoo says the
/// camera finished (plus a moment), and deactivates it.
fn record(base: &str, zoo: &Zoo, topology: &str, name: &str, mount: &str, video: Option<&str>) -> anyhow::Result<()> {
    let mut params = vec![json!({"name": "rtspUrl", "value": format!("{}{mount}", zoo.url)})];
    if let Some(v) = video {
        params.push(json!({"name": "videoName", "value": v}));
    }
    let p = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": topology, "parameters": params}});
    let (st, body) = method(base, "livePipelineSet", &p)?;
    anyhow::ensure!(st == 201, "{body}");
    let (st, body) = method(base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": name}))?;
    anyhow::ensure!(st == 200, "{body}");
    zoo.wait_finished(&[mount], Duration::from_secs(60))?;
    let (st, body) = method(base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": name}))?;
    anyhow::ensure!(st == 200, "{body}");
    Ok(())
}

/// The whole recording of `video` as an MP4 from `content.mp4`, and its streams.
fn content(base: &str, video: &str, tmp: &TempDir) -> anyhow::Result<Vec<Probed>> {
    let am = request("GET", &format!("{base}/api/videos/{video}/availableMedia"), None, &[])?.json()?;
    let r = &am["timeRanges"].as_array().cloned().unwrap_or_default();
    anyhow::ensure!(r.len() == 1, "{video}: {am}");
    let url = format!(
        "{base}/api/videos/{video}/content.mp4?startTime={}&endTime={}",
        r[0]["start"].as_str().unwrap(),
        r[0]["end"].as_str().unwrap()
    );
    let reply = request("GET", &url, None, &[])?;
    anyhow::ensure!(reply.status == 200, "{url}: {}", reply.status);
    let f = tmp.path().join(format!("{video}.mp4"));
    std::fs::write(&f, &reply.body)?;
    ffmpeg_decodes(&f)?;
    probe_streams(&f)
}

#[test]
fn audio_video_topology_records_both_and_selectors_choose() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-audio");
    let zoo = Zoo::start(150)?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;

    // The corpus topology, unchanged.
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies/audio-video.json"))?;
    let av: Value = serde_json::from_str(&text)?;
    let (st, body) = method(&base, "pipelineTopologySet", &av)?;
    assert_eq!(st, 201, "{body}");
    record(&base, &zoo, "AudioVideo", "av", "h264-high-b2+aac", None)?;
    let v = request("GET", &format!("{base}/api/videos/sample-audio-video"), None, &[])?.json()?;
    let info = &v["properties"]["mediaInfo"];
    assert!(info["codec"].as_str().unwrap_or_default().starts_with("avc1.64"), "{v}");
    assert_eq!((info["width"].as_u64(), info["height"].as_u64()), (Some(320), Some(180)), "{v}");
    assert_eq!(info["audio"], json!({"codec": "mp4a.40.2", "sampleRate": 48000, "channels": 1}), "{v}");
    let streams = content(&base, "sample-audio-video", &tmp)?;
    let kinds: Vec<(&str, &str)> = streams.iter().map(|s| (s.kind.as_str(), s.codec.as_str())).collect();
    assert_eq!(kinds, [("video", "h264"), ("audio", "aac")], "{streams:?}");
    assert_eq!(streams[0].frames, zoo.sent("h264-high-b2+aac", "video").unwrap()[0], "every frame: {streams:?}");
    // /metrics counts what arrived and what was stored: every frame the camera sent.
    let metrics = String::from_utf8(request("GET", &format!("{base}/metrics"), None, &[])?.body)?;
    let counter = |name: &str| -> u64 {
        let prefix = format!("{name}{{live_pipeline=\"av\",");
        metrics.lines().find(|l| l.starts_with(&prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
    };
    let sent = zoo.sent("h264-high-b2+aac", "video").unwrap()[0];
    assert_eq!(
        (counter("openva_frames_received_total"), counter("openva_frames_stored_total")),
        (sent, sent),
        "{metrics}"
    );
    assert!(counter("openva_audio_frames_stored_total") > 100, "{metrics}");

    // A copy job (AVA's batch export) of the recording carries the audio too.
    let am = request("GET", &format!("{base}/api/videos/sample-audio-video/availableMedia"), None, &[])?.json()?;
    let ranges = serde_json::to_string(&json!([[am["timeRanges"][0]["start"], am["timeRanges"][0]["end"]]]))?;
    let batch = json!({"kind": "Batch", "properties": {
        "parameters": [{"name": "ranges", "type": "String"}],
        "sources": [{"@type": "#Microsoft.VideoAnalyzer.VideoSource", "name": "videoSource", "videoName": "sample-audio-video",
            "timeSequences": {"@type": "#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers", "ranges": "${ranges}"}}],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink", "videoName": "av-copy",
            "inputs": [{"nodeName": "videoSource"}]}]}});
    let put =
        |path: &str, body: &Value| request("PUT", &format!("{base}{path}"), Some(body.to_string().as_bytes()), &[]);
    assert_eq!(put("/api/pipelineTopologies/copy-av", &batch)?.status, 201);
    let job = json!({"properties": {"topologyName": "copy-av", "parameters": [{"name": "ranges", "value": ranges}]}});
    assert_eq!(put("/api/pipelineJobs/av", &job)?.status, 201);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let j = request("GET", &format!("{base}/api/pipelineJobs/av"), None, &[])?.json()?;
        if j["properties"]["state"] != "Processing" {
            assert_eq!(j["properties"]["state"], "Completed", "{j}");
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "the copy job did not finish: {j}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let file = tmp.path().join("av-copy.mp4");
    std::fs::write(&file, request("GET", &format!("{base}/api/videos/av-copy/content.mp4"), None, &[])?.body)?;
    ffmpeg_decodes(&file)?;
    let copied = probe_streams(&file)?;
    assert_eq!(
        copied.iter().map(|s| (s.kind.as_str(), s.codec.as_str())).collect::<Vec<_>>(),
        [("video", "h264"), ("audio", "aac")],
        "{copied:?}"
    );
    assert!((copied[1].duration - copied[0].duration).abs() <= 0.05, "{copied:?}");

    let sdp = events.wait_for("MediaSessionEstablished", Duration::from_secs(5))?;
    let sdp = sdp["body"]["sdp"].as_str().unwrap_or_default();
    assert!(sdp.contains("m=video") && sdp.contains("m=audio") && sdp.contains("MPEG4-GENERIC"), "{sdp}");

    // The same sink, parameterised, with other selectors.
    let with = |name: &str, operator: &str, value: &str| -> Value {
        let mut t = av.clone();
        t["name"] = json!(name);
        t["properties"]["parameters"].as_array_mut().unwrap().push(json!({"name": "videoName", "type": "String"}));
        let sink = &mut t["properties"]["sinks"][0];
        sink["videoName"] = json!("${videoName}");
        sink["inputs"][0]["outputSelectors"] = json!([{"property": "mediaType", "operator": operator, "value": value}]);
        t
    };
    for (name, op, value) in
        [("VideoOnly", "is", "video"), ("AudioOnly", "is", "audio"), ("All", "isNot", "application")]
    {
        let (st, body) = method(&base, "pipelineTopologySet", &with(name, op, value))?;
        assert_eq!(st, 201, "{body}");
    }
    // `is video`: a G.711 camera, recorded without its audio.
    record(&base, &zoo, "VideoOnly", "vo", "h264-main+pcma", Some("video-only"))?;
    let v = request("GET", &format!("{base}/api/videos/video-only"), None, &[])?.json()?;
    assert!(v["properties"]["mediaInfo"]["audio"].is_null(), "{v}");
    let streams = content(&base, "video-only", &tmp)?;
    assert_eq!(streams.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(), ["video"], "{streams:?}");

    // Opus audio is not recorded: the video is, and one event says why.
    record(&base, &zoo, "All", "opus", "h264-main+opus", Some("opus-camera"))?;
    let streams = content(&base, "opus-camera", &tmp)?;
    assert_eq!(streams.iter().map(|s| s.kind.as_str()).collect::<Vec<_>>(), ["video"], "{streams:?}");
    let said: Vec<Value> = events
        .all()
        .into_iter()
        .filter(|e| e["applicationProperties"]["eventType"].as_str().unwrap_or_default().ends_with("MediaFormatError"))
        .collect();
    assert_eq!(said.len(), 1, "one MediaFormatError: {said:?}");
    assert!(said[0]["body"]["message"].as_str().unwrap_or_default().contains("OPUS"), "{said:?}");

    // A camera without video openva records: nothing is written, and the event says what the
    // camera offers.
    let p = json!({"@apiVersion": "1.1", "name": "jpeg", "properties": {"topologyName": "All", "parameters": [
        {"name": "rtspUrl", "value": format!("{}mjpeg", zoo.url)}, {"name": "videoName", "value": "jpeg"}]}});
    assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
    assert_eq!(method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "jpeg"}))?.0, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let said = loop {
        let said: Vec<Value> = events
            .all()
            .into_iter()
            .filter(|e| e["applicationProperties"]["subject"].as_str().unwrap_or_default().contains("/jpeg/"))
            .filter(|e| {
                e["applicationProperties"]["eventType"].as_str().unwrap_or_default().ends_with("MediaFormatError")
            })
            .collect();
        if !said.is_empty() || std::time::Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let m = said.first().map(|e| e["body"]["message"].to_string()).unwrap_or_default();
    assert!(m.contains("offers no H.264 or H.265 video") && m.contains("video/JPEG"), "{said:?}");
    assert_eq!(method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "jpeg"}))?.0, 200);
    let v = request("GET", &format!("{base}/api/videos/jpeg"), None, &[])?.json()?;
    assert_ne!(v["properties"]["flags"]["hasData"], true, "nothing recorded: {v}");
    // The CLI says the same, writes nothing, and exits non-zero at once.
    for (mount, offered) in [("mjpeg", "video/JPEG"), ("audio-only", "audio/MPEG4-GENERIC")] {
        let d = tmp.path().join(format!("cli-{mount}"));
        let url = format!("{}{mount}", zoo.url);
        let out =
            openva(&["record", "--data", d.to_str().unwrap(), "--video", "cam", "--url", &url, "--duration", "5"])?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("offers no H.264 or H.265 video") && err.contains(offered),
            "{err}"
        );
        assert!(segment_files(&d, "cam").unwrap_or_default().is_empty(), "{mount}: nothing written");
    }

    // Excluding video is refused (when the pipeline is set, or at the latest when activated),
    // naming the selectors.
    let p = json!({"@apiVersion": "1.1", "name": "ao", "properties": {"topologyName": "AudioOnly", "parameters": [
        {"name": "rtspUrl", "value": format!("{}h265+aac", zoo.url)}, {"name": "videoName", "value": "audio-only"}]}});
    let (mut st, mut body) = method(&base, "livePipelineSet", &p)?;
    if st == 201 {
        (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "ao"}))?;
    }
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("outputSelectors exclude video"), "{body}");
    Ok(())
}
