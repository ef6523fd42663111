//! `evr`: event-based recording (issue 17). One 1080p camera at 4 Mb/s (the simulator, a
//! keyframe every 2 s) is recorded by two hosts: one through a signal gate with a −60 s offset
//! and no trigger yet (its pre-roll ring full), one continuously (the tutorial's topology).
//! Printed: the RSS and CPU of the gated host against the continuous one (the peer), then, with
//! hub messages to the gated host, the time from a message to `RecordingStarted` and from the
//! gate's close to the file's `RecordingAvailable` (median, max).

use anyhow::{Context, Result};
use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const TRIGGERS: usize = 10;
/// The gate's activation, seconds (minimum = maximum).
const ACTIVATION_S: i64 = 4;

fn gated_topology() -> Value {
    json!({"name": "Gated", "properties": {
        "parameters": [{"name": "rtspUrl", "type": "String"}],
        "sources": [
            {"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "src",
             "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}},
            {"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSource", "name": "hub", "hubInputName": "bench"}],
        "processors": [{"@type": "#Microsoft.VideoAnalyzer.SignalGateProcessor", "name": "gate",
            "inputs": [{"nodeName": "hub"}, {"nodeName": "src"}],
            "activationEvaluationWindow": "PT0S", "activationSignalOffset": "-PT60S",
            "minimumActivationTime": format!("PT{ACTIVATION_S}S"), "maximumActivationTime": format!("PT{ACTIVATION_S}S")}],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.FileSink", "name": "files", "inputs": [{"nodeName": "gate"}],
            "baseDirectoryPath": "/clips", "fileNamePattern": "bench-${System.Runtime.PreciseDateTime}",
            "maximumSizeMiB": "2048"}]}})
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("  {name:<44} median {:>7.1} ms, max {:>7.1} ms", ms(v[v.len() / 2]), ms(v[v.len() - 1]));
}

pub fn run(tmp: &Path) -> Result<()> {
    println!(
        "== evr: a gated camera (1080p 25 fps 4 Mb/s, GOP 2 s, −60 s pre-roll) vs the same camera recorded continuously"
    );
    let (_sim, cam) =
        start_sim(free_port(), &["--size", "1920x1080", "--bitrate", "4000000", "--gop", "50", "--fps", "25"])?;
    let (gated, gbase) =
        start_host(&tmp.join("evr-gated"), &["--file-sink-root", tmp.join("evr-files").to_str().unwrap_or_default()])?;
    let (continuous, cbase) = start_host(&tmp.join("evr-continuous"), &[])?;
    let (st, body) = method(&gbase, "pipelineTopologySet", &gated_topology())?;
    anyhow::ensure!(st == 201, "{body}");
    let p = json!({"@apiVersion": "1.1", "name": "g", "properties": {"topologyName": "Gated",
        "parameters": [{"name": "rtspUrl", "value": format!("{cam}g")}]}});
    anyhow::ensure!(method(&gbase, "livePipelineSet", &p)?.0 == 201);
    anyhow::ensure!(method(&gbase, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "g"}))?.0 == 200);
    record_tutorial(&cbase, "c", &format!("{cam}c"), "c")?;
    // The ring fills in 62 s (offset, slack): measure after it, over 30 s.
    std::thread::sleep(Duration::from_secs(66));
    let (g0, c0) = (super::cpu_time(gated.child.id())?, super::cpu_time(continuous.child.id())?);
    std::thread::sleep(Duration::from_secs(30));
    let (g1, c1) = (super::cpu_time(gated.child.id())?, super::cpu_time(continuous.child.id())?);
    let (grss, crss) = (super::rss(gated.child.id())?, super::rss(continuous.child.id())?);
    let mib = |b: u64| b as f64 / 1048576.0;
    let pct = |d: Duration| d.as_secs_f64() / 30.0 * 100.0;
    println!(
        "  RSS: gated {:.1} MiB vs continuous {:.1} MiB: ratio {:.2} (the ring: about {:.1} MiB more)",
        mib(grss),
        mib(crss),
        grss as f64 / crss as f64,
        mib(grss) - mib(crss)
    );
    println!(
        "  CPU: gated {:.2} % vs continuous {:.2} % of a core: ratio {:.2}",
        pct(g1 - g0),
        pct(c1 - c0),
        (g1 - g0).as_secs_f64() / (c1 - c0).as_secs_f64().max(1e-9)
    );
    // Latency: a message, then its clip's events.
    let events = Events::subscribe(&gbase, Some("g"))?;
    let (mut started, mut available) = (Vec::new(), Vec::new());
    for i in 0..TRIGGERS {
        let id = format!("bench-{i}");
        let msg = json!({"body": {}, "applicationProperties": {"messageId": id}});
        let t = Instant::now();
        let r = request("POST", &format!("{gbase}/api/inputs/bench"), Some(msg.to_string().as_bytes()), &[])?;
        anyhow::ensure!(r.status == 202, "POST inputs: {}", r.status);
        let mine = |e: &Value| e["applicationProperties"]["correlationId"] == id.as_str();
        wait_event(&events, "RecordingStarted", &mine, Duration::from_secs(10))?;
        started.push(t.elapsed());
        wait_event(&events, "RecordingAvailable", &mine, Duration::from_secs(30))?;
        // The gate closes once media passes the trigger plus the activation.
        available.push(t.elapsed().saturating_sub(Duration::from_secs(ACTIVATION_S as u64)));
        std::thread::sleep(Duration::from_secs(2));
    }
    summary("hub message → RecordingStarted", started);
    summary("gate close → file RecordingAvailable", available);
    Ok(())
}

fn wait_event(events: &Events, kind: &str, pred: &dyn Fn(&Value) -> bool, timeout: Duration) -> Result<()> {
    let t = Instant::now();
    loop {
        let found = events
            .all()
            .iter()
            .any(|e| e["applicationProperties"]["eventType"].as_str().is_some_and(|k| k.ends_with(kind)) && pred(e));
        if found {
            return Ok(());
        }
        if t.elapsed() > timeout {
            return Err(anyhow::anyhow!("no {kind} within {timeout:?}")).context("evr bench");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
