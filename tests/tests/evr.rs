//! Event-based recording: AVA's signal gate in front of a file sink and a video sink, opened by
//! hub messages (`POST /api/inputs/{name}`) and by the motion detector, against the simulated
//! camera's frame stamps: each clip's first and last frames lie within a GOP of the gate's
//! bounds, pre-roll comes from before the trigger, one file per opening appears whole, and
//! hostile file sink paths write nothing outside the file sink root.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn corpus(name: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A gate (−5 s offset, 4 s of activation) opened by hub input `doorbell`, feeding a video
/// sink and a file sink.
fn preroll_topology() -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "EVRPreroll",
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}],
            "sources": [
                {"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource",
                 "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}},
                {"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSource", "name": "door", "hubInputName": "doorbell"}
            ],
            "processors": [{
                "@type": "#Microsoft.VideoAnalyzer.SignalGateProcessor", "name": "gate",
                "inputs": [{"nodeName": "door"}, {"nodeName": "rtspSource"}],
                "activationEvaluationWindow": "PT0.5S", "activationSignalOffset": "-PT5S",
                "minimumActivationTime": "PT4S", "maximumActivationTime": "PT4S"
            }],
            "sinks": [
                {"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink", "videoName": "door-clips",
                 "inputs": [{"nodeName": "gate"}]},
                {"@type": "#Microsoft.VideoAnalyzer.FileSink", "name": "fileSink", "inputs": [{"nodeName": "gate"}],
                 "baseDirectoryPath": "/var/media", "fileNamePattern": "door-${System.Runtime.PreciseDateTime}",
                 "maximumSizeMiB": "64"}
            ]
        }
    })
}

/// The clip files in `dir` (sorted), failing on any temporary file left visible.
fn clip_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        anyhow::ensure!(!name.ends_with(".partial") || name.starts_with('.'), "a partial file is visible: {name}");
        if name.ends_with(".mp4") && !name.starts_with('.') {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The clip start a file's name carries (`${System.Runtime.DateTime}`, `20261207T120304Z`, last
/// in the name), in ms.
fn named_start(name: &str) -> anyhow::Result<i64> {
    let stamp = name.rsplit('-').next().unwrap_or_default().trim_end_matches(".mp4");
    anyhow::ensure!(stamp.len() >= 15 && stamp.is_ascii(), "no date at the end of {name}");
    iso_ms(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    ))
}

/// Sends a hub message dated `at_ms`; returns its reply.
fn ring(base: &str, input: &str, id: &str, at_ms: i64) -> anyhow::Result<Value> {
    let msg = json!({"body": {"button": "pressed"},
                     "applicationProperties": {"eventTime": ms_iso(at_ms), "messageId": id}});
    let r = request("POST", &format!("{base}/api/inputs/{input}"), Some(msg.to_string().as_bytes()), &[])?;
    anyhow::ensure!(r.status == 202, "POST inputs: {} {}", r.status, String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn hub_messages_cut_clips_with_pre_roll_into_files_and_a_video() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-hub");
    let root = tmp.path().join("root");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--file-sink-root", root.to_str().unwrap()])?;
    let events = Events::subscribe(&base, Some("door"))?;
    let (st, body) = method(&base, "pipelineTopologySet", &preroll_topology())?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(&base, "door", "EVRPreroll", json!([{"name": "rtspUrl", "value": cam}]))?;
    events.wait_for("MediaSessionEstablished", Duration::from_secs(20))?;
    // Let the pre-roll ring fill, then ring twice, 12 s apart (each clip is 9 s).
    std::thread::sleep(Duration::from_secs(8));
    let mut triggers = Vec::new();
    for id in ["ring-1", "ring-2"] {
        let at = now_ms();
        let reply = ring(&base, "doorbell", id, at)?;
        assert_eq!((reply["pipelines"].as_u64(), reply["messageId"].as_str()), (Some(1), Some(id)), "{reply}");
        triggers.push((id, at));
        std::thread::sleep(Duration::from_secs(12));
    }
    // A message to an input nobody listens on reaches no pipeline; a bad name is a 400.
    assert_eq!(ring(&base, "nobody", "x", now_ms())?["pipelines"], 0);
    let r = request("POST", &format!("{base}/api/inputs/a+b"), Some(b"{}"), &[])?;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let r = request("POST", &format!("{base}/api/inputs/doorbell"), Some(b""), &[])?;
    assert_eq!(r.status, 400, "an empty message carries nothing");
    let dir = root.join("var/media");
    for (id, at) in &triggers {
        let is_mine = |e: &Value| e["applicationProperties"]["correlationId"] == *id;
        let file_done = events.wait_where(
            "RecordingAvailable",
            |e| is_mine(e) && e["body"]["outputType"] == "filePath",
            Duration::from_secs(30),
        )?;
        let path = file_done["body"]["outputLocation"].as_str().unwrap_or_default().to_owned();
        assert!(Path::new(&path).starts_with(&dir), "{path} is under the root's /var/media");
        // Every event of the opening carries the trigger's id: started, available, stopped on
        // both sinks.
        for (kind, output) in [
            ("RecordingStarted", "filePath"),
            ("RecordingStopped", "filePath"),
            ("RecordingStarted", "videoName"),
            ("RecordingAvailable", "videoName"),
            ("RecordingStopped", "videoName"),
        ] {
            events.wait_where(kind, |e| is_mine(e) && e["body"]["outputType"] == output, Duration::from_secs(5))?;
        }
        // The clip: from the keyframe at or before trigger − 5 s to trigger + 4 s.
        let stamps = frame_stamps(Path::new(&path), 640)?;
        let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
        let (want_start, want_end) = (at - 5_000, at + 4_000);
        assert!(
            first <= want_start + 100 && first >= want_start - 1_100,
            "{id}: first frame {} for a start of {} (GOP 1 s)",
            ms_iso(first),
            ms_iso(want_start)
        );
        assert!(
            (last - want_end).abs() <= 1_100,
            "{id}: last frame {} for an end of {}",
            ms_iso(last),
            ms_iso(want_end)
        );
        let true_start = iso_ms(file_done["body"]["startTime"].as_str().unwrap_or_default())?;
        assert!((true_start - first).abs() <= 200, "the events report the true start: {true_start} vs {first}");
        ffmpeg_decodes(Path::new(&path))?;
    }
    // The pre-roll ring's size is a metric: about 9 s of 640x360 (5 s back, 2 s of slack, a
    // GOP and the window), well under its 64 MiB cap.
    let metrics = String::from_utf8(request("GET", &format!("{base}/metrics"), None, &[])?.body)?;
    let preroll: u64 = metrics
        .lines()
        .find(|l| l.starts_with("openva_gate_preroll_bytes{live_pipeline=\"door\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    assert!(preroll > 100_000 && preroll < 64 << 20, "pre-roll {preroll} bytes:\n{metrics}");
    // One file per opening, none partial; the video holds one range per clip.
    assert_eq!(clip_files(&dir)?.len(), 2, "{:?}", clip_files(&dir)?);
    let am = request("GET", &format!("{base}/api/videos/door-clips/availableMedia"), None, &[])?.json()?;
    assert_eq!(am["timeRanges"].as_array().map(Vec::len), Some(2), "{am}");
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "door"}))?;
    assert_eq!(st, 200);
    Ok(())
}

/// Watches `dir` until `stop`: every size each `.mp4` name was seen with.
fn watch_sizes(
    dir: std::path::PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<std::collections::BTreeMap<String, std::collections::BTreeSet<u64>>> {
    std::thread::spawn(move || {
        let mut seen: std::collections::BTreeMap<String, std::collections::BTreeSet<u64>> = Default::default();
        loop {
            // One scan after `stop` is seen: the file named by the event that set it was
            // renamed in before the event, and a last scan must see it.
            let last = stop.load(std::sync::atomic::Ordering::Relaxed);
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                // A file deleted between the listing and its metadata is not a size.
                if let (true, Ok(m)) = (name.ends_with(".mp4") && !name.starts_with('.'), e.metadata()) {
                    seen.entry(name).or_default().insert(m.len());
                }
            }
            if last {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

#[test]
fn the_size_cap_keeps_the_newest_files_and_files_appear_whole() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-cap");
    let root = tmp.path().join("root");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25", "--bitrate", "2000000"])?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--file-sink-root", root.to_str().unwrap()])?;
    let events = Events::subscribe(&base, Some("door"))?;
    // A 1 MiB sink: a 9 s clip at 2 Mb/s (about 2.2 MB) is cut at the cap, and each new file
    // deletes the one before.
    let mut t = preroll_topology();
    t["properties"]["sinks"][1]["maximumSizeMiB"] = json!("1");
    let (st, body) = method(&base, "pipelineTopologySet", &t)?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(&base, "door", "EVRPreroll", json!([{"name": "rtspUrl", "value": cam}]))?;
    events.wait_for("MediaSessionEstablished", Duration::from_secs(20))?;
    let dir = root.join("var/media");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_sizes(dir.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(6));
    for id in ["cap-1", "cap-2", "cap-3"] {
        ring(&base, "doorbell", id, now_ms())?;
        events.wait_where(
            "RecordingAvailable",
            |e| e["applicationProperties"]["correlationId"] == id && e["body"]["outputType"] == "filePath",
            Duration::from_secs(30),
        )?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = watcher.join().map_err(|_| anyhow::anyhow!("watcher panicked"))?;
    // Every file was seen with one size only: it appeared whole, never growing.
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.values().all(|sizes| sizes.len() == 1), "a file was seen growing: {seen:?}");
    // The cap: the oldest went, the newest stayed, and what stays fits 1 MiB (a lone file may
    // pass it by up to a GOP: a file ends at the keyframe that would pass the cap).
    let files = clip_files(&dir)?;
    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
    assert!(files.len() < seen.len(), "nothing was deleted: {names:?}");
    assert_eq!(names.last(), seen.keys().last(), "the newest file stays");
    assert!(!names.contains(seen.keys().next().unwrap_or(&String::new())), "the oldest file went: {names:?}");
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let limit = if files.len() == 1 { (1 << 20) + 400_000 } else { 1 << 20 };
    assert!(total <= limit, "{total} bytes in {names:?}");
    for f in &files {
        ffmpeg_decodes(f)?;
    }
    Ok(())
}

#[test]
fn motion_opens_the_gates_of_the_corpus_topologies_and_the_sample() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-motion");
    let root = tmp.path().join("root");
    // Still for 15 s, moving for 3 s, on the wall clock's phase; 10 fps (a keyframe a second)
    // keeps the two analysed pipelines light beside other tests on two cores.
    let (_sim, cam) =
        start_sim(free_port(), &["--size", "640x360", "--fps", "10", "--gop", "10", "--motion-schedule", "15,3"])?;
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) = start_host(
        &tmp.path().join("data"),
        &["--plugins", plugins.to_str().unwrap(), "--file-sink-root", root.to_str().unwrap()],
    )?;
    let events = Events::subscribe(&base, Some("motion-evr"))?;
    let (st, body) = method(&base, "pipelineTopologySet", &corpus("evr-motion-file-sink.json"))?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(&base, "motion-evr", "EVRToFilesOnMotionDetection", json!([{"name": "rtspUrl", "value": cam}]))?;
    // The sample in topologies/ (5 s of pre-roll), its files in a directory of their own.
    let sample: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("topologies/evr-motion-files.json"))?)?;
    let (st, body) = method(&base, "pipelineTopologySet", &sample)?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(
        &base,
        "motion-sample",
        "EVRMotionToFiles",
        json!([{"name": "rtspUrl", "value": format!("{cam}s")}, {"name": "baseDirectoryPath", "value": "/var/media/sample"}]),
    )?;
    let sample_started = now_ms();
    // The corpus's file sink and video sink behind one gate.
    let (st, body) = method(&base, "pipelineTopologySet", &corpus("evr-motion-video-sink-file-sink.json"))?;
    assert_eq!(st, 201, "{body}");
    let both_events = Events::subscribe(&base, Some("motion-both"))?;
    set_and_activate(
        &base,
        "motion-both",
        "EVRToFilesAndVideoSinkOnMotion",
        json!([{"name": "rtspUrl", "value": format!("{cam}b")}, {"name": "fileSinkOutputName", "value": "both"}]),
    )?;
    // The corpus's video sink behind a motion gate, on the same camera.
    let (st, body) = method(&base, "pipelineTopologySet", &corpus("evr-motion-video-sink.json"))?;
    assert_eq!(st, 201, "{body}");
    let video_events = Events::subscribe(&base, Some("motion-video"))?;
    set_and_activate(
        &base,
        "motion-video",
        "EVRtoVideoSinkOnMotionDetection",
        json!([{"name": "rtspUrl", "value": format!("{cam}v")}, {"name": "hubSinkOutputName", "value": "motion"}]),
    )?;
    let started = now_ms();
    // Two motion periods: two clips, each starting in a moving stretch, none in a still one.
    let dir = root.join("var/media");
    let prefix = "sampleFilesFromEVR-motion-EVRToFilesOnMotionDetection-motion-evr-filesinkOutput-";
    let named = |prefix: &'static str| {
        let dir = dir.clone();
        move || -> anyhow::Result<Vec<std::path::PathBuf>> {
            Ok(clip_files(&dir)?
                .into_iter()
                .filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
                .collect())
        }
    };
    let evr_files = named(prefix);
    wait_until("two clip files", Duration::from_secs(60), || Ok(evr_files()?.len() >= 2))?;
    let files = evr_files()?;
    for f in &files {
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let stamps = frame_stamps(f, 640)?;
        // The stamps freeze with the scene: the first new one is the first moving frame.
        let moving = stamps.iter().copied().find(|&s| s != stamps[0]).unwrap_or(stamps[0]);
        let phase = (moving / 1000).rem_euclid(18);
        assert!((15..18).contains(&phase), "{name}: motion at {} is not in a moving stretch", ms_iso(moving));
        // The clip (offset 0) starts at the keyframe at or before the motion's detection: its
        // name carries that true start, at most a GOP (1 s) and the detection before it.
        let named = named_start(&name)?;
        assert!(
            named <= moving && named >= moving - 2_000,
            "{name}: starts {} for motion at {}",
            ms_iso(named),
            ms_iso(moving)
        );
        let first = named;
        assert!(first >= started - 2_000, "{name} holds media from before the pipeline");
        // The scene moves 3 s; the gate stays open 10 s after the last motion. (The stamps
        // freeze with the scene, so the length is counted in frames, 10 a second.)
        let span = stamps.len() as i64 * 100;
        assert!((9_000..=16_000).contains(&span), "{name}: {span} ms");
        ffmpeg_decodes(f)?;
    }
    let available = events.wait_for("RecordingAvailable", Duration::from_secs(5))?;
    assert_eq!(available["applicationProperties"]["subject"], "/livePipelines/motion-evr/sinks/fileSink");
    assert!(available["applicationProperties"]["correlationId"].as_str().is_some_and(|c| c.len() == 36), "{available}");
    // The video: a 30 s clip (minimum = maximum = PT30S) from a moving stretch, as one range.
    video_events.wait_for("RecordingStopped", Duration::from_secs(40))?;
    let am = request("GET", &format!("{base}/api/videos/sample-motion-video/availableMedia"), None, &[])?.json()?;
    let r = &am["timeRanges"][0];
    let (s, e) = (iso_ms(r["start"].as_str().unwrap_or_default())?, iso_ms(r["end"].as_str().unwrap_or_default())?);
    let phase = (s / 1000).rem_euclid(18);
    assert!(phase >= 13 || phase == 0, "the video's clip starts {} in a still stretch: {am}", ms_iso(s));
    assert!((29_000..=32_000).contains(&(e - s)), "a clip of {} ms: {am}", e - s);

    // Both sinks behind one gate: each opening is a range of the video and a file, announced
    // by both sinks with the same correlationId (the trigger's messageId).
    let stopped = both_events.wait_where(
        "RecordingStopped",
        |e| e["applicationProperties"]["subject"] == "/livePipelines/motion-both/sinks/videoSink",
        Duration::from_secs(40),
    )?;
    let file_done = both_events.wait_where(
        "RecordingAvailable",
        |e| e["body"]["outputType"] == "filePath",
        Duration::from_secs(10),
    )?;
    let correlation = |e: &Value| e["applicationProperties"]["correlationId"].as_str().map(str::to_owned);
    assert!(correlation(&stopped).is_some(), "{stopped}");
    assert_eq!(correlation(&stopped), correlation(&file_done), "one opening, two sinks: {stopped} {file_done}");
    let path = PathBuf::from(file_done["body"]["outputLocation"].as_str().unwrap_or_default());
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    assert!(name.starts_with("sampleFilesFromEVR-EVRToFilesAndVideoSinkOnMotion-motion-both-both-"), "{name}");
    assert_eq!(path.parent(), Some(dir.as_path()), "{}", path.display());
    ffmpeg_decodes(&path)?;
    // 30 s of clip (minimum = maximum = PT30S), 10 frames a second, in the file and the video.
    let frames = frame_stamps(&path, 640)?.len() as i64;
    assert!((285..=320).contains(&frames), "{name}: {frames} frames");
    let am = request("GET", &format!("{base}/api/videos/sample-motion-video-sink-files/availableMedia"), None, &[])?
        .json()?;
    let r = &am["timeRanges"][0];
    let (s, e) = (iso_ms(r["start"].as_str().unwrap_or_default())?, iso_ms(r["end"].as_str().unwrap_or_default())?);
    assert!((29_000..=32_000).contains(&(e - s)), "a clip of {} ms: {am}", e - s);

    // The sample: a file per opening, starting 5 s (and up to a GOP) before the motion, whose
    // first frames are the still scene (the stamps freeze with it).
    // (A clip starting less than 5 s after the camera was connected cannot have all of it.)
    let sample_dir = dir.join("sample");
    let whole_preroll = |f: &PathBuf| {
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        named_start(&name).is_ok_and(|t| t >= sample_started + 6_000)
    };
    let f = wait_until_some("a sample clip with all its pre-roll", Duration::from_secs(60), || {
        Ok(if sample_dir.is_dir() { clip_files(&sample_dir)?.into_iter().find(whole_preroll) } else { None })
    })?;
    let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
    assert!(name.starts_with("motion-motion-sample-"), "{name}");
    ffmpeg_decodes(&f)?;
    let stamps = frame_stamps(&f, 640)?;
    let still = stamps.iter().take_while(|&&t| t == stamps[0]).count();
    assert!((38..=75).contains(&still), "{name}: {still} frames before the motion, not 5 s of pre-roll");
    Ok(())
}

#[test]
fn hostile_file_sink_paths_write_nothing_outside_the_root() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-hostile");
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&outside)?;
    // A symlink planted in the root, pointing out of it.
    std::os::unix::fs::symlink(&outside, root.join("escape"))?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--file-sink-root", root.to_str().unwrap()])?;
    let mut t = preroll_topology();
    for (base_dir, status) in [("../../etc", 400), ("/var/../../etc", 400), ("relative/dir", 400)] {
        t["name"] = json!("Hostile");
        t["properties"]["sinks"][1]["baseDirectoryPath"] = json!(base_dir);
        let (st, body) = method(&base, "pipelineTopologySet", &t)?;
        assert_eq!(st, status, "{base_dir}: {body}");
        assert!(body.to_string().contains("baseDirectoryPath"), "{body}");
    }
    // Through the planted symlink: refused at activation, nothing created outside.
    t["properties"]["sinks"][1]["baseDirectoryPath"] = json!("/escape/clips");
    let (st, body) = method(&base, "pipelineTopologySet", &t)?;
    assert_eq!(st, 201, "{body}");
    let p = json!({"@apiVersion": "1.1", "name": "hostile", "properties": {"topologyName": "Hostile",
        "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1:9/x"}]}});
    assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
    let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "hostile"}))?;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("outside the file sink root"), "{body}");
    assert_eq!(std::fs::read_dir(&outside)?.count(), 0, "nothing was made outside the root");
    // Bad gates and sinks: each a 400 in AVA's error shape, naming the node (and property).
    let bad = |what: &str, edit: &dyn Fn(&mut Value), names: &[&str]| -> anyhow::Result<()> {
        let mut t = preroll_topology();
        t["name"] = json!("Bad");
        edit(&mut t);
        let (st, body) = method(&base, "pipelineTopologySet", &t)?;
        assert_eq!(st, 400, "{what}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(body["error"]["code"].is_string() && body["error"]["details"][0]["code"].is_string(), "{what}: {body}");
        for n in names {
            assert!(message.contains(n), "{what}: {n} not named: {body}");
        }
        Ok(())
    };
    bad(
        "a pattern without a system variable",
        &|t| t["properties"]["sinks"][1]["fileNamePattern"] = json!("door"),
        &["fileSink", "fileNamePattern"],
    )?;
    for (key, value) in [
        ("activationEvaluationWindow", "PT11S"),
        ("activationSignalOffset", "-PT61S"),
        ("minimumActivationTime", "PT2H"),
        ("maximumActivationTime", "PT0.5S"),
        ("minimumActivationTime", "soon"),
    ] {
        bad(&format!("{key} {value}"), &|t| t["properties"]["processors"][0][key] = json!(value), &["gate", key])?;
    }
    bad(
        "two file sinks",
        &|t| {
            let mut second = t["properties"]["sinks"][1].clone();
            second["name"] = json!("moreFiles");
            if let Some(sinks) = t["properties"]["sinks"].as_array_mut() {
                sinks.push(second);
            }
        },
        &["'fileSink'", "'moreFiles'"],
    )?;
    bad(
        "a gate that feeds no sink",
        &|t| {
            t["properties"]["sinks"] = json!([{"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink",
                "videoName": "all", "inputs": [{"nodeName": "rtspSource"}]}])
        },
        &["gate", "feeds no sink"],
    )?;
    bad(
        "a gate nothing opens",
        &|t| t["properties"]["processors"][0]["inputs"] = json!([{"nodeName": "rtspSource"}]),
        &["gate", "IotHubMessageSource"],
    )?;
    Ok(())
}

#[test]
fn hub_messages_over_mqtt_open_the_gate() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-mqtt");
    let root = tmp.path().join("root");
    let port = free_port();
    let _broker = openva_e2e::mqtt::start_broker(tmp.path(), port)?;
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_host, base) = start_host(
        &tmp.path().join("data"),
        &["--file-sink-root", root.to_str().unwrap(), "--mqtt", &format!("mqtt://127.0.0.1:{port}")],
    )?;
    let events = Events::subscribe(&base, Some("door"))?;
    let sub = openva_e2e::mqtt::Subscriber::start(port, "openva/pipelines/door/#")?;
    // AVA's hub-message topology, unchanged: no offset, 10 s of activation.
    let (st, body) = method(&base, "pipelineTopologySet", &corpus("evr-hubMessage-file-sink.json"))?;
    assert_eq!(st, 201, "{body}");
    let params = json!([{"name": "rtspUrl", "value": cam}, {"name": "hubSourceInput", "value": "doorbell"}]);
    set_and_activate(&base, "door", "EVRtoFilesBasedOnHubMessages", params)?;
    events.wait_for("MediaSessionEstablished", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(4));
    // A doorbell's message, dated by an MQTT v5 user property 1 s before it is sent.
    let at = now_ms() - 1_000;
    openva_e2e::mqtt::publish(
        port,
        "openva/inputs/doorbell",
        r#"{"button": "pressed"}"#,
        &[("eventTime", &ms_iso(at))],
    )?;
    let done =
        events.wait_where("RecordingAvailable", |e| e["body"]["outputType"] == "filePath", Duration::from_secs(30))?;
    let path = done["body"]["outputLocation"].as_str().unwrap_or_default().to_owned();
    // The gated clip's events go out over MQTT too, the same envelopes as over SSE.
    let id = done["applicationProperties"]["messageId"].as_str().unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "{done}");
    let over_mqtt =
        sub.wait_for("the clip's RecordingAvailable over MQTT", Duration::from_secs(10), |m| m.payload.contains(&id))?;
    assert_eq!(serde_json::from_str::<Value>(&over_mqtt.payload)?, done, "{}", over_mqtt.topic);
    assert_eq!(over_mqtt.topic, "openva/pipelines/door/outputs/operational");
    let stamps = frame_stamps(Path::new(&path), 640)?;
    // The clip starts at the keyframe at or before eventTime (the ring holds it).
    let want = at;
    assert!(
        stamps[0] <= want + 100 && stamps[0] >= want - 1_100,
        "first frame {} for {}",
        ms_iso(stamps[0]),
        ms_iso(want)
    );
    // One trigger: the gate closes its minimum activation time (PT10S) after it.
    let last = stamps.last().copied().unwrap_or_default();
    assert!(
        (last - (at + 10_000)).abs() <= 1_000,
        "last frame {} for a gate closing at {}",
        ms_iso(last),
        ms_iso(at + 10_000)
    );
    Ok(())
}

/// Real camera shapes from GStreamer's RTSP server (the camera zoo): H.264 with B-frames and
/// AAC, and H.265, each behind a gate into a file sink. Each clip is one MP4 ffmpeg decodes
/// whole, video only, about 9 s of frames (−5 s pre-roll, 4 s of activation), in a
/// presentation order that only grows.
#[test]
fn real_camera_shapes_are_clipped_whole() -> anyhow::Result<()> {
    let tmp = TempDir::new("evr-zoo");
    let root = tmp.path().join("root");
    let zoo = Zoo::start(25 * 25)?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--file-sink-root", root.to_str().unwrap()])?;
    let mut t = preroll_topology();
    t["properties"]["sinks"].as_array_mut().map(|s| s.remove(0));
    let (st, body) = method(&base, "pipelineTopologySet", &t)?;
    assert_eq!(st, 201, "{body}");
    let mounts = ["h264-high-b2+aac", "h265"];
    for (i, m) in mounts.iter().enumerate() {
        set_and_activate(
            &base,
            &format!("zoo{i}"),
            "EVRPreroll",
            json!([{"name": "rtspUrl", "value": format!("{}{m}", zoo.url)}]),
        )?;
    }
    let events = Events::subscribe(&base, None)?;
    std::thread::sleep(Duration::from_secs(8));
    ring(&base, "doorbell", "zoo-ring", now_ms())?;
    for (i, mount) in mounts.iter().enumerate() {
        let subject = format!("/livePipelines/zoo{i}/sinks/fileSink");
        let done = events.wait_where(
            "RecordingAvailable",
            |e| e["applicationProperties"]["subject"] == subject.as_str(),
            Duration::from_secs(30),
        )?;
        let path = std::path::PathBuf::from(done["body"]["outputLocation"].as_str().unwrap_or_default());
        ffmpeg_decodes(&path)?;
        let streams = probe_streams(&path)?;
        assert_eq!(streams.len(), 1, "{mount}: video only: {streams:?}");
        let want = if i == 0 { "h264" } else { "hevc" };
        assert_eq!(streams[0].codec, want, "{mount}");
        // 9 s, from a keyframe up to a GOP (1 s) before the start.
        assert!((8 * 25..=12 * 25).contains(&streams[0].frames), "{mount}: {} frames", streams[0].frames);
        let pts = video_frame_pts(&path)?;
        assert!(pts.windows(2).all(|w| w[1] > w[0]), "{mount}: presentation order");
    }
    Ok(())
}
