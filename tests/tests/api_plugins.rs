//! Processor plugins inside live pipelines: AVA's corpus topologies with motion detection run
//! end to end (Analytics inference events on `GET /api/events`, recording untouched), an
//! `#openva.WasmProcessor` node runs any plugin by name, and a hostile plugin in one pipeline
//! is stopped and reported while another pipeline keeps recording.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

fn corpus(name: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn host_with_plugins(tmp: &TempDir) -> anyhow::Result<(Proc, String)> {
    let plugins = repo_root().join("plugins/dist");
    start_host(&tmp.path().join("data"), &["--plugins", plugins.to_str().unwrap()])
}

#[test]
fn corpus_motion_topologies_emit_inference_events() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-motion");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_host, base) = host_with_plugins(&tmp)?;
    let events = Events::subscribe(&base, Some("cvr-motion"))?;
    let only_motion = Events::subscribe(&base, Some("md"))?;
    for t in ["cvr-with-motion.json", "motion-detection.json"] {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(t))?;
        assert_eq!(st, 201, "{t}: {body}");
    }
    set_and_activate(
        &base,
        "cvr-motion",
        "CVRWithMotionDetection",
        json!([{"name": "rtspUrl", "value": format!("{cam}a")}, {"name": "motionSensitivity", "value": "high"},
               {"name": "hubSinkOutputName", "value": "inferenceOutput"}]),
    )?;
    set_and_activate(&base, "md", "MotionDetection", json!([{"name": "rtspUrl", "value": format!("{cam}b")}]))?;
    let e = events.wait_for("Inference", Duration::from_secs(30))?;
    assert_eq!(e["applicationProperties"]["subject"], "/livePipelines/cvr-motion/processors/motionDetection");
    assert_eq!(e["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Analytics.Inference");
    let inf = &e["body"]["inferences"][0];
    assert_eq!(inf["type"], "motion", "{e}");
    let b = &inf["motion"]["box"];
    for k in ["l", "t", "w", "h"] {
        let v = b[k].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "box {k} = {v}: {e}");
    }
    assert!(e["body"]["timestamp"].as_i64().unwrap_or(0) > 1_700_000_000 * 90_000, "90 kHz wall time: {e}");
    // The pipeline without a video sink analyses too.
    only_motion.wait_for("Inference", Duration::from_secs(30))?;
    // The recording pipeline records while it analyses.
    events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    let am = request("GET", &format!("{base}/api/videos/sample-CVR-with-motion/availableMedia"), None, &[])?.json()?;
    assert_eq!(am["timeRanges"].as_array().map(Vec::len), Some(1), "{am}");
    for p in ["cvr-motion", "md"] {
        let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        assert_eq!(st, 200);
    }
    Ok(())
}

fn wasm_topology(name: &str, plugin: &str, config: Value) -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": name,
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}],
            "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": [{"@type": "#openva.WasmProcessor", "name": "proc", "plugin": plugin,
                "configuration": config,
                "inputs": [{"nodeName": "rtspSource"}]}],
            "sinks": [
                {"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub", "hubOutputName": "out",
                 "inputs": [{"nodeName": "proc"}]},
                {"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink",
                 "videoName": format!("{name}-video"), "inputs": [{"nodeName": "rtspSource"}]}
            ]
        }
    })
}

#[test]
fn hostile_plugin_in_a_pipeline_is_reported_and_others_keep_recording() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-hostile");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (host, base) = host_with_plugins(&tmp)?;
    let bad_events = Events::subscribe(&base, Some("bad"))?;
    let good_events = Events::subscribe(&base, Some("good"))?;
    let (st, body) = method(&base, "pipelineTopologySet", &wasm_topology("Loop", "test-loop", json!({})))?;
    assert_eq!(st, 201, "{body}");
    let (st, body) = method(&base, "pipelineTopologySet", &wasm_topology("Gray", "grayscale", json!({})))?;
    assert_eq!(st, 201, "{body}");
    // An unknown plugin is refused on set, naming the node.
    let (st, body) = method(&base, "pipelineTopologySet", &wasm_topology("Nope", "no-such-plugin", json!({})))?;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("no-such-plugin") && body.to_string().contains("proc"), "{body}");
    // A plugin that refuses its configuration refuses the activation.
    let (st, _) = method(
        &base,
        "pipelineTopologySet",
        &wasm_topology("BadScale", "scale", json!({"mode": "pad", "width": "7"})),
    )?;
    assert_eq!(st, 201);
    let p = json!({"@apiVersion": "1.1", "name": "badscale", "properties": {"topologyName": "BadScale",
        "parameters": [{"name": "rtspUrl", "value": format!("{cam}x")}]}});
    assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
    let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "badscale"}))?;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["details"][0]["code"], "ModuleValidationError");

    // Memory bombs: frames made in the host in a loop, and 1 MB of inference text a frame.
    let alloc_events = Events::subscribe(&base, Some("alloc"))?;
    let flood_events = Events::subscribe(&base, Some("flood"))?;
    let (st, _) =
        method(&base, "pipelineTopologySet", &wasm_topology("Alloc", "test-alloc", json!({"hostFrames": true})))?;
    assert_eq!(st, 201);
    let (st, _) =
        method(&base, "pipelineTopologySet", &wasm_topology("Flood", "test-flood", json!({"bigText": true})))?;
    assert_eq!(st, 201);

    set_and_activate(&base, "bad", "Loop", json!([{"name": "rtspUrl", "value": format!("{cam}bad")}]))?;
    set_and_activate(&base, "good", "Gray", json!([{"name": "rtspUrl", "value": format!("{cam}good")}]))?;
    set_and_activate(&base, "alloc", "Alloc", json!([{"name": "rtspUrl", "value": format!("{cam}alloc")}]))?;
    set_and_activate(&base, "flood", "Flood", json!([{"name": "rtspUrl", "value": format!("{cam}flood")}]))?;
    // Each is stopped at its limit, which the event names; the host stays small.
    let e = alloc_events.wait_for("RuntimeError", Duration::from_secs(30))?;
    assert_eq!(e["body"]["kind"], "memoryLimit", "{e}");
    assert!(e["body"]["message"].as_str().unwrap_or("").contains("frames it made in the host"), "{e}");
    let e = flood_events.wait_for("RuntimeError", Duration::from_secs(30))?;
    assert_eq!(e["body"]["kind"], "flood", "{e}");
    assert!(e["body"]["message"].as_str().unwrap_or("").contains("limit 64 KiB"), "{e}");
    let e = bad_events.wait_for("RuntimeError", Duration::from_secs(30))?;
    assert_eq!(e["body"]["plugin"], "test-loop", "{e}");
    assert_eq!(e["body"]["kind"], "timeout", "{e}");
    assert_eq!(e["applicationProperties"]["subject"], "/livePipelines/bad/processors/proc");
    // Both keep recording; the API answers.
    good_events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    bad_events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(3));
    for v in ["Loop-video", "Gray-video", "Alloc-video", "Flood-video"] {
        let am = request("GET", &format!("{base}/api/videos/{v}/availableMedia"), None, &[])?.json()?;
        let r = &am["timeRanges"][0];
        let span = iso_ms(r["end"].as_str().unwrap())? - iso_ms(r["start"].as_str().unwrap())?;
        assert!(span >= 4_000, "{v} recorded only {span} ms: {am}");
    }
    // The breaker pauses the node after repeated faults (5 within a minute), said once.
    let all = bad_events.all();
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["body"]["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "paused").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "timeout").count(), 5, "{kinds:?}");
    for p in ["bad", "good", "alloc", "flood"] {
        let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        assert_eq!(st, 200);
    }
    // The frames the allocating plugin made were held only up to its memory limit (256 MiB),
    // and dropped with it.
    let rss = peak_rss_mib(host.child.id());
    eprintln!("HOSTILE_PLUGINS peakRssMiB {rss:.0}");
    assert!(rss < 400.0, "peak RSS {rss:.0} MiB");
    Ok(())
}

/// A counter of `/metrics` for one pipeline.
fn metric(base: &str, name: &str, pipeline: &str) -> anyhow::Result<u64> {
    let text = String::from_utf8(request("GET", &format!("{base}/metrics"), None, &[])?.body)?;
    let prefix = format!("{name}{{live_pipeline=\"{pipeline}\"");
    let line = text.lines().find(|l| l.starts_with(&prefix)).ok_or_else(|| anyhow::anyhow!("no {prefix}:\n{text}"))?;
    Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
}

fn sampled_topology(name: &str, rate: Value) -> Value {
    let mut t = wasm_topology(name, "test-stamp", json!({}));
    t["properties"]["processors"][0]["samplingOptions"] = json!({"maximumSamplesPerSecond": rate});
    t
}

#[test]
fn sampled_processors_decode_only_what_they_need() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-sampling");
    // 25 fps with a keyframe every second: at one sample a second, once the keyframe interval
    // is known, only keyframes need decoding.
    // A camera each: the simulator (like many cameras) sends an IDR when a client connects,
    // which would move the sampled pipeline's keyframes under it.
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_sim2, cam2) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_host, base) = host_with_plugins(&tmp)?;
    let sampled_events = Events::subscribe(&base, Some("sampled"))?;
    // Bad rates are refused, naming the field.
    for bad in [json!("0"), json!(-1), json!("fast"), json!(5000), json!([1])] {
        let (st, body) = method(&base, "pipelineTopologySet", &sampled_topology("Bad", bad.clone()))?;
        assert_eq!(st, 400, "{bad}: {body}");
        assert!(body.to_string().contains("samplingOptions.maximumSamplesPerSecond"), "{body}");
    }
    let (st, body) = method(&base, "pipelineTopologySet", &sampled_topology("Sampled", json!("1")))?;
    assert_eq!(st, 201, "{body}");
    let (st, body) = method(&base, "pipelineTopologySet", &wasm_topology("Full", "test-stamp", json!({})))?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(&base, "sampled", "Sampled", json!([{"name": "rtspUrl", "value": format!("{cam}s")}]))?;
    set_and_activate(&base, "full", "Full", json!([{"name": "rtspUrl", "value": format!("{cam2}f")}]))?;
    sampled_events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(8));

    let (dec, skipped) = (
        metric(&base, "openva_analysis_frames_decoded_total", "sampled")?,
        metric(&base, "openva_analysis_frames_not_decoded_total", "sampled")?,
    );
    let (full_dec, full_skipped) = (
        metric(&base, "openva_analysis_frames_decoded_total", "full")?,
        metric(&base, "openva_analysis_frames_not_decoded_total", "full")?,
    );
    // Every frame is decoded for the node without a rate.
    assert_eq!(full_skipped, 0);
    assert!(full_dec > 150, "full decoded only {full_dec}");
    // The sampled node: the first two seconds in full (the keyframe interval is measured
    // twice), then one frame a second.
    assert!(skipped > dec, "sampled: decoded {dec}, not decoded {skipped}");
    assert!(dec < full_dec / 2, "sampled decoded {dec} of {full_dec}");

    // The node ran once a second: its stamps are a second apart (the keyframes), never closer
    // than a sample interval less jitter.
    let stamps: Vec<i64> = sampled_events
        .all()
        .iter()
        .filter(|e| e["applicationProperties"]["eventType"] == "Microsoft.VideoAnalyzer.Analytics.Inference")
        .filter_map(|e| e["body"]["timestamp"].as_i64())
        .collect();
    assert!((6..=16).contains(&stamps.len()), "{} samples in ~12 s at one a second: {stamps:?}", stamps.len());
    for w in stamps.windows(2) {
        assert!((80_000..=200_000).contains(&(w[1] - w[0])), "samples {} ticks apart: {stamps:?}", w[1] - w[0]);
    }
    for p in ["sampled", "full"] {
        let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        assert_eq!(st, 200);
    }
    Ok(())
}
