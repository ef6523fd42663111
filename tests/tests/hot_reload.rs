//! Hot reload for ops: a host with `--topologies DIR` and `--plugins DIR` while a pipeline
//! records the simulated camera. Files are added, changed, broken, fixed and removed, a plugin
//! is swapped for a new version and then for a broken file; the API reflects each change
//! within a second and refuses to change file-managed entities; a broken file changes nothing
//! that runs; and the recording has no gap: one range, and the decoded frame stamps step by
//! exactly one frame across every reload.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes a file the way sync tools do: a temporary name, then an atomic rename.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn topology(label: &str) -> Value {
    json!({
        "@apiVersion": "1.1",
        "name": "HotT",
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}],
            "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": [{"@type": "#openva.WasmProcessor", "name": "stamp", "plugin": "test-stamp",
                "configuration": {"label": label}, "samplingOptions": {"maximumSamplesPerSecond": "5"},
                "inputs": [{"nodeName": "rtspSource"}]}],
            "sinks": [
                {"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub", "hubOutputName": "out",
                 "inputs": [{"nodeName": "stamp"}]},
                {"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink", "videoName": "hot",
                 "inputs": [{"nodeName": "rtspSource"}]}
            ]
        }
    })
}

/// Polls `check` every 20 ms until it holds; returns how long it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        if check()? {
            return Ok(t.elapsed());
        }
        anyhow::ensure!(t.elapsed() < limit, "{what}: not seen within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = request("GET", &format!("{base}{path}"), None, &[])?;
    let status = r.status;
    Ok((status, if r.body.is_empty() { Value::Null } else { r.json()? }))
}

/// The (label, version) of the latest stamp inference received.
fn latest_stamp(events: &Events) -> Option<(String, String)> {
    events.all().iter().rev().find_map(|e| {
        let inf = &e["body"]["inferences"][0];
        let attr = |k: &str| {
            inf["event"]["attributes"].as_array()?.iter().find(|a| a["name"] == k)?["value"].as_str().map(str::to_owned)
        };
        Some((attr("label")?, attr("version")?))
    })
}

#[test]
fn files_and_plugins_reload_without_a_recording_gap() -> anyhow::Result<()> {
    let tmp = TempDir::new("hot-reload");
    let (folder, plugins) = (tmp.path().join("topologies"), tmp.path().join("plugins"));
    std::fs::create_dir_all(folder.join("cams"))?;
    std::fs::create_dir_all(&plugins)?;
    let dist = repo_root().join("plugins/dist");
    std::fs::copy(dist.join("test-stamp.wasm"), plugins.join("stamp.wasm"))?;
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let (host, base) = start_host(
        &tmp.path().join("data"),
        &["--topologies", folder.to_str().unwrap(), "--plugins", plugins.to_str().unwrap()],
    )?;
    let events = Events::subscribe(&base, None)?;

    // Add: a topology and a pipeline (in a subfolder) that activates itself.
    write_atomic(&folder.join("hot.json"), &topology("one").to_string())?;
    let pipeline = json!({"name": "hot1", "activate": true,
        "properties": {"topologyName": "HotT", "parameters": [{"name": "rtspUrl", "value": format!("{cam}hot")}]}});
    write_atomic(&folder.join("cams/hot1.json"), &pipeline.to_string())?;
    let took = within(Duration::from_secs(2), "pipeline active", || {
        Ok(get(&base, "/api/livePipelines/hot1")?.1["properties"]["state"] == "active")
    })?;
    eprintln!("add applied in {took:?}");
    let (_, t) = get(&base, "/api/pipelineTopologies/HotT")?;
    assert_eq!(t["systemData"]["lastModifiedByType"], "File", "{t}");
    assert_eq!(t["systemData"]["lastModifiedBy"], "hot.json", "{t}");
    events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    within(Duration::from_secs(10), "stamps of label one", || {
        Ok(latest_stamp(&events) == Some(("one".into(), "1".into())))
    })?;

    // The API reads file-managed entities but does not change them.
    let r = request(
        "PUT",
        &format!("{base}/api/pipelineTopologies/HotT"),
        Some(topology("api").to_string().as_bytes()),
        &[],
    )?;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("hot.json"));
    assert_eq!(request("DELETE", &format!("{base}/api/livePipelines/hot1"), None, &[])?.status, 409);
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "hot1"}))?;
    assert_eq!(st, 409);

    // Change: the processor's configuration, applied in place (recording untouched).
    write_atomic(&folder.join("hot.json"), &topology("two").to_string())?;
    let took = within(Duration::from_secs(2), "label two", || Ok(latest_stamp(&events).is_some_and(|s| s.0 == "two")))?;
    eprintln!("change applied in {took:?}");

    // Break: nothing changes, the error is reported with the file and line.
    std::fs::write(folder.join("hot.json"), "{\n  \"name\": \"HotT\",\n  \"properties\": {,\n}")?;
    within(Duration::from_secs(2), "file in error", || {
        Ok(get(&base, "/api/status")?.1["filesInError"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["file"] == "hot.json" && f["line"] == 3)))
    })?;
    let err = events.wait_for("ConfigurationError", Duration::from_secs(2))?;
    assert_eq!(err["body"]["file"], "hot.json", "{err}");
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(latest_stamp(&events).map(|s| s.0), Some("two".into()), "the running version stays");
    assert_eq!(get(&base, "/api/livePipelines/hot1")?.1["properties"]["state"], "active");
    // A topology that parses but does not validate is refused the same way.
    let mut bad = topology("bad");
    bad["properties"]["processors"][0]["samplingOptions"]["maximumSamplesPerSecond"] = json!("fast");
    write_atomic(&folder.join("hot.json"), &bad.to_string())?;
    within(Duration::from_secs(2), "invalid file reported", || {
        Ok(get(&base, "/api/status")?.1["filesInError"].to_string().contains("maximumSamplesPerSecond"))
    })?;
    // A huge file (a 32 MB topology) is refused, unread beyond the limit.
    let mut huge = topology("huge");
    huge["properties"]["description"] = json!("x".repeat(32 << 20));
    write_atomic(&folder.join("hot.json"), &huge.to_string())?;
    drop(huge);
    within(Duration::from_secs(5), "huge file reported", || {
        Ok(get(&base, "/api/status")?.1["filesInError"].to_string().contains("larger than 256 KiB"))
    })?;
    assert_eq!(get(&base, "/api/livePipelines/hot1")?.1["properties"]["state"], "active");

    // Fix: applied, and the error is gone.
    write_atomic(&folder.join("hot.json"), &topology("three").to_string())?;
    within(Duration::from_secs(2), "label three", || Ok(latest_stamp(&events).is_some_and(|s| s.0 == "three")))?;
    assert_eq!(get(&base, "/api/status")?.1["filesInError"].as_array().map(Vec::len), Some(0));

    // Plugin swap: version 2 replaces the file; every node runs it from its next frame.
    std::fs::copy(dist.join("test-stamp-v2.wasm"), plugins.join("stamp.tmp"))?;
    std::fs::rename(plugins.join("stamp.tmp"), plugins.join("stamp.wasm"))?;
    within(Duration::from_secs(20), "version 2", || Ok(latest_stamp(&events) == Some(("three".into(), "2".into()))))?;
    let upd = events.wait_for("PluginUpdated", Duration::from_secs(5))?;
    assert_eq!(upd["body"]["applied"], true, "{upd}");
    // A broken plugin file is refused; version 2 keeps running.
    std::fs::write(plugins.join("stamp.wasm"), b"\0asm not really")?;
    within(Duration::from_secs(20), "refused plugin", || {
        Ok(events.all().iter().any(|e| e["body"]["applied"] == false && e["body"]["file"] == "stamp.wasm"))
    })?;
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(latest_stamp(&events).map(|s| s.1), Some("2".into()));

    // SIGHUP re-reads the folder (nothing changed: everything keeps running).
    let pid = host.child.id();
    let _ = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&base, "/api/livePipelines/hot1")?.1["properties"]["state"], "active");

    // Remove: the pipeline goes (deactivated first), then the topology.
    std::fs::remove_file(folder.join("cams/hot1.json"))?;
    within(Duration::from_secs(2), "pipeline removed", || Ok(get(&base, "/api/livePipelines/hot1")?.0 == 404))?;
    std::fs::remove_file(folder.join("hot.json"))?;
    within(Duration::from_secs(2), "topology removed", || Ok(get(&base, "/api/pipelineTopologies/HotT")?.0 == 404))?;

    // No gap across all of it: one recorded range, and every frame present.
    let (_, am) = get(&base, "/api/videos/hot/availableMedia")?;
    let ranges = am["timeRanges"].as_array().cloned().unwrap_or_default();
    assert_eq!(ranges.len(), 1, "{am}");
    let (s, e) = (ranges[0]["start"].as_str().unwrap(), ranges[0]["end"].as_str().unwrap());
    let r = request("GET", &format!("{base}/api/videos/hot/content.mp4?startTime={s}&endTime={e}"), None, &[])?;
    assert_eq!(r.status, 200);
    let file = tmp.path().join("hot.mp4");
    std::fs::write(&file, &r.body)?;
    ffmpeg_decodes(&file)?;
    let stamps = frame_stamps(&file, 640)?;
    assert!(stamps.len() > 100, "{} frames", stamps.len());
    for w in stamps.windows(2) {
        assert_eq!(w[1] - w[0], 40, "frame missing or repeated between {} and {}", w[0], w[1]);
    }
    Ok(())
}
