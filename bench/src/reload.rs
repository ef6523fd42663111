//! `reload`: hot reload (issue 7). A host with `--topologies DIR` records the simulator through
//! a file-managed pipeline with a Wasm processor; the topology file is rewritten 20 times
//! (the processor's configuration changes, so each reload is applied in place). For each:
//! the time from the write to the API showing the new version, and to the first frame
//! processed by the new configuration. Then the frames lost: the recording's decoded frame
//! stamps must step by exactly one frame. Five reloads that change the camera URL (a restart)
//! are measured the same way, with the gap they cause.

use anyhow::{Result, ensure};
use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const RELOADS: usize = 20;

fn topology(label: &str) -> Value {
    json!({"name": "T", "properties": {
        "parameters": [{"name": "rtspUrl", "type": "String"}],
        "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "src",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
        "processors": [{"@type": "#openva.WasmProcessor", "name": "stamp", "plugin": "test-stamp",
            "configuration": {"label": label}, "inputs": [{"nodeName": "src"}]}],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub", "hubOutputName": "o",
                   "inputs": [{"nodeName": "stamp"}]},
                  {"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "sink", "videoName": "v",
                   "inputs": [{"nodeName": "src"}]}]}})
}

fn pipeline(url: &str) -> Value {
    json!({"name": "p", "activate": true, "properties": {"topologyName": "T",
        "parameters": [{"name": "rtspUrl", "value": url}]}})
}

fn write(path: &Path, v: &Value) -> Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, v.to_string())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn wait(limit: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let t = Instant::now();
    while !f()? {
        ensure!(t.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(t.elapsed())
}

fn label_seen(events: &Events, label: &str) -> bool {
    events.all().iter().rev().take(50).any(|e| {
        e["body"]["inferences"][0]["event"]["attributes"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "label" && x["value"] == label))
    })
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("  {name:<44} median {:>6.1} ms, max {:>6.1} ms", ms(v[v.len() / 2]), ms(v[v.len() - 1]));
}

pub fn run(tmp: &Path) -> Result<()> {
    let folder = tmp.join("reload-topologies");
    std::fs::create_dir_all(&folder)?;
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) = start_host(
        &tmp.join("reload-data"),
        &["--topologies", folder.to_str().unwrap_or_default(), "--plugins", plugins.to_str().unwrap_or_default()],
    )?;
    let events = Events::subscribe(&base, Some("p"))?;
    write(&folder.join("t.json"), &topology("l0"))?;
    write(&folder.join("p.json"), &pipeline(&format!("{cam}a")))?;
    events.wait_for("RecordingAvailable", Duration::from_secs(30))?;
    wait(Duration::from_secs(10), || Ok(label_seen(&events, "l0")))?;
    let (mut api, mut frame) = (Vec::new(), Vec::new());
    for i in 1..=RELOADS {
        let label = format!("l{i}");
        let t = Instant::now();
        write(&folder.join("t.json"), &topology(&label))?;
        wait(Duration::from_secs(5), || {
            let r = request("GET", &format!("{base}/api/pipelineTopologies/T"), None, &[])?;
            Ok(r.json()?["properties"]["processors"][0]["configuration"]["label"] == label.as_str())
        })?;
        api.push(t.elapsed());
        wait(Duration::from_secs(5), || Ok(label_seen(&events, &label)))?;
        frame.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    // Frames lost over the in-place reloads: the recording so far, decoded.
    let am = request("GET", &format!("{base}/api/videos/v/availableMedia"), None, &[])?.json()?;
    let r = &am["timeRanges"];
    ensure!(r.as_array().is_some_and(|a| a.len() == 1), "in-place reloads left gaps: {am}");
    let (s, e) = (r[0]["start"].as_str().unwrap_or_default(), r[0]["end"].as_str().unwrap_or_default());
    let mp4 = request("GET", &format!("{base}/api/videos/v/content.mp4?startTime={s}&endTime={e}"), None, &[])?;
    let file = tmp.join("reload.mp4");
    std::fs::write(&file, &mp4.body)?;
    let stamps = frame_stamps(&file, 640)?;
    let lost: i64 = stamps.windows(2).map(|w| ((w[1] - w[0]) / 40 - 1).max(0)).sum();
    // Restarts: the camera URL changes (another session of the same simulator).
    let mut restart = Vec::new();
    for i in 0..5 {
        let t = Instant::now();
        write(&folder.join("p.json"), &pipeline(&format!("{cam}r{i}")))?;
        let before = events.all().len();
        wait(Duration::from_secs(10), || {
            Ok(events.all()[before..].iter().any(|e| {
                e["applicationProperties"]["eventType"] == "Microsoft.VideoAnalyzer.Diagnostics.MediaSessionEstablished"
            }))
        })?;
        restart.push(t.elapsed());
        std::thread::sleep(Duration::from_secs(2));
    }
    let am = request("GET", &format!("{base}/api/videos/v/availableMedia"), None, &[])?.json()?;
    let ranges = am["timeRanges"].as_array().cloned().unwrap_or_default();
    let gaps: Vec<i64> = ranges
        .windows(2)
        .filter_map(|w| Some(iso_ms(w[1]["start"].as_str()?).ok()? - iso_ms(w[0]["end"].as_str()?).ok()?))
        .collect();
    println!("== reload: {RELOADS} topology file rewrites applied in place, 5 camera changes (restarts)");
    summary("write → API shows the new topology", api);
    summary("write → first frame processed by it", frame);
    println!("  frames lost over the in-place reloads: {lost} of {} recorded (goal 0)", stamps.len());
    summary("camera change: write → new RTSP session", restart);
    println!("  camera change gaps in the recording: {gaps:?} ms");
    let _ = std::fs::remove_file(&file);
    Ok(())
}
