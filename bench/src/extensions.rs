//! `extensions`: what an extension node costs per frame beyond the model (issue 18). One host,
//! one camera (the simulator at 640×360, 50 fps, so the node and not the camera sets the pace),
//! and one pipeline at a time whose extension takes every frame it can (HTTP one request in
//! flight, gRPC up to its window; the tests' gRPC server works on one frame at a time, so a
//! sample sent while another is out waits in its queue, and that wait is in the round trip):
//! HTTP with JPEG and with raw `bgr24`, gRPC embedded and through shared memory, all scaled to
//! 416×416 (pad). The servers are the tests' (`tests/servers/`: OpenCV's ArUco detector behind
//! Python's HTTP server and grpcio; `tests/run` makes their venv). Printed per case: frames a
//! second the node took (all the camera's 50 when it keeps up) and its ceiling (one frame per
//! round trip), the host's mean round trip (`openva_extension_request_microseconds_total`),
//! the server's own mean time per frame (its log), and openva's share (round trip − server time:
//! scaling, encoding, sending and parsing, and also Python's HTTP or gRPC handling) as a ratio of
//! the server's time.

use anyhow::{Context, Result};
use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const WARM: Duration = Duration::from_secs(3);
const MEASURE: Duration = Duration::from_secs(10);

fn topology(kind: &str, format: Value, transfer: Option<Value>) -> Value {
    let mut ext = json!({"@type": format!("#Microsoft.VideoAnalyzer.{kind}"), "name": "ext",
        "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${url}"},
        "image": {"scale": {"mode": "pad", "width": "416", "height": "416"}, "format": format},
        "samplingOptions": {"maximumSamplesPerSecond": "100"},
        "inputs": [{"nodeName": "src"}]});
    if let Some(t) = transfer {
        ext["dataTransfer"] = t;
    }
    json!({"name": "Bench", "properties": {
        "parameters": [{"name": "rtspUrl", "type": "String"}, {"name": "url", "type": "String"}],
        "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "src",
            "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
        "processors": [ext],
        "sinks": [{"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub", "hubOutputName": "o",
            "inputs": [{"nodeName": "ext"}]}]}})
}

/// A pipeline's value of a metric family.
fn metric(base: &str, family: &str, pipeline: &str) -> Result<f64> {
    let r = request("GET", &format!("{base}/metrics"), None, &[])?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    let prefix = format!("{family}{{live_pipeline=\"{pipeline}\"");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .with_context(|| format!("no {family} for {pipeline}"))
}

pub fn run(tmp: &Path) -> Result<()> {
    println!("== extensions: per-frame cost of HTTP and gRPC extension nodes beside the server's own time (416×416)");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--fps", "50", "--gop", "50"])?;
    let http = InferenceServer::start(tmp, &[])?;
    let grpc = InferenceServer::start_grpc(tmp, &[])?;
    let (_host, base) = start_host(&tmp.join("ext-host"), &[])?;
    let jpeg = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"});
    let raw = json!({"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"});
    let cases = [
        ("HTTP, JPEG", "HttpExtension", jpeg.clone(), None, &http),
        ("HTTP, raw bgr24", "HttpExtension", raw, None, &http),
        ("gRPC embedded, JPEG", "GrpcExtension", jpeg.clone(), Some(json!({"mode": "embedded"})), &grpc),
        (
            "gRPC shared memory, JPEG",
            "GrpcExtension",
            jpeg,
            Some(json!({"mode": "sharedMemory", "sharedMemorySizeMiB": "16"})),
            &grpc,
        ),
    ];
    for (i, (name, kind, format, transfer, server)) in cases.into_iter().enumerate() {
        let p = format!("b{i}");
        let (st, body) = method(&base, "pipelineTopologySet", &topology(kind, format, transfer))?;
        anyhow::ensure!(st == 201 || st == 200, "{body}");
        set_and_activate(
            &base,
            &p,
            "Bench",
            json!([{"name": "rtspUrl", "value": format!("{cam}{p}")},
                   {"name": "url", "value": format!("{}/b?p={p}", server.url)}]),
        )?;
        std::thread::sleep(WARM);
        let (n0, us0) = (
            metric(&base, "openva_extension_requests_total", &p)?,
            metric(&base, "openva_extension_request_microseconds_total", &p)?,
        );
        let t0 = Instant::now();
        let wall0 = now_ms() as f64 / 1e3;
        std::thread::sleep(MEASURE);
        let (n1, us1) = (
            metric(&base, "openva_extension_requests_total", &p)?,
            metric(&base, "openva_extension_request_microseconds_total", &p)?,
        );
        let secs = t0.elapsed().as_secs_f64();
        let wall1 = now_ms() as f64 / 1e3;
        let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        anyhow::ensure!(st == 200);
        let n = n1 - n0;
        anyhow::ensure!(n > 0.0, "{name}: no requests");
        let round_trip = (us1 - us0) / n / 1e3;
        let server_ms: Vec<f64> = server
            .requests()
            .iter()
            // One case at a time: the window's requests are this case's.
            .filter(|e| e["t"].as_f64().is_some_and(|t| (wall0..wall1).contains(&t)))
            .filter_map(|e| e["ms"].as_f64())
            .collect();
        anyhow::ensure!(!server_ms.is_empty(), "{name}: the server logged no times");
        let server = server_ms.iter().sum::<f64>() / server_ms.len() as f64;
        let ours = (round_trip - server).max(0.0);
        // With the camera's 50 frames a second all taken, the node's own ceiling is one frame
        // per round trip.
        println!(
            "  {name:<26} {:>5.1} frames/s taken (ceiling {:>5.0}/s); round trip {round_trip:>6.2} ms = server \
             {server:>6.2} ms + openva (scale, encode, send, parse) and the transport {ours:>5.2} ms: ratio {:.2}",
            n / secs,
            1000.0 / round_trip,
            ours / server
        );
    }
    Ok(())
}
