//! AVA's HTTP extension against a real inference server: OpenCV's ArUco detector behind a
//! Python HTTP app on AVA's contract (`tests/servers/aruco_http.py`), looking at a GStreamer
//! camera that shows markers at known places (`tests/servers/marker_camera.py`). Boxes land
//! where the markers are (un-padded), requests carry AVA's headers and images the server can
//! decode, failures are told once while media keeps flowing, and endpoints at the host itself or
//! a metadata address are refused.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

fn corpus(name: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Marker 3 of the camera, in fractions of its 640×360 frame: corners (40, 40) to (119, 119).
const MARKER_3: [f64; 4] = [40.0 / 640.0, 40.0 / 360.0, 79.0 / 640.0, 79.0 / 360.0];

/// The box of `tag` in an Analytics body, if one was found.
fn box_of(body: &Value, tag: &str) -> Option<[f64; 4]> {
    body["inferences"].as_array()?.iter().find(|i| i["entity"]["tag"]["value"] == tag).map(|i| {
        let b = &i["entity"]["box"];
        ["l", "t", "w", "h"].map(|k| b[k].as_f64().unwrap_or(f64::NAN))
    })
}

/// Within `px` pixels of the 640×360 frame.
fn near(got: [f64; 4], want: [f64; 4], px: f64) -> bool {
    let scale = [640.0, 360.0, 640.0, 360.0];
    got.iter().zip(want).zip(scale).all(|((g, w), s)| ((g - w) * s).abs() <= px)
}

/// A pipeline's Inference events of node `node`.
fn inferences(events: &Events, pipeline: &str, node: &str) -> Vec<Value> {
    let subject = format!("/livePipelines/{pipeline}/processors/{node}");
    events
        .all()
        .into_iter()
        .filter(|e| {
            e["applicationProperties"]["subject"] == subject.as_str()
                && e["applicationProperties"]["eventType"] == "Microsoft.VideoAnalyzer.Analytics.Inference"
        })
        .collect()
}

#[test]
fn markers_are_found_where_they_are_through_the_corpus_topologies() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-corpus");
    let server = InferenceServer::start(tmp.path(), &["--basic", "dummyUserName:dummyPassword"])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    for f in ["cvr-with-httpExtension.json", "httpExtension.json"] {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(f))?;
        assert_eq!(st, 201, "{f}: {body}");
    }
    // Pad to 416×416, BMP, 5 a second, recorded continuously beside.
    set_and_activate(
        &base,
        "padded",
        "CVRWithHttpExtension",
        json!([{"name": "rtspUrl", "value": cam},
               {"name": "inferencingUrl", "value": format!("{}/score?pipeline=padded", server.url)}]),
    )?;
    // preserveAspectRatio into 416×416 (416×234 for this camera), one sample in 5 s.
    set_and_activate(
        &base,
        "fitted",
        "InferencingWithHttpExtension",
        json!([{"name": "rtspUrl", "value": cam},
               {"name": "inferencingUrl", "value": format!("{}/score?pipeline=fitted", server.url)},
               {"name": "imageScaleMode", "value": "preserveAspectRatio"}]),
    )?;
    let started = std::time::Instant::now();
    events.wait_where(
        "Inference",
        |e| e["applicationProperties"]["subject"] == "/livePipelines/fitted/processors/httpExtension",
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_secs(4));
    let elapsed = started.elapsed().as_secs_f64();

    // Boxes, un-padded, where marker 3 stands; timestamps are the frame's.
    for p in ["padded", "fitted"] {
        let found = inferences(&events, p, "httpExtension");
        assert!(!found.is_empty(), "{p}: no inference events");
        for e in &found {
            let b = box_of(&e["body"], "marker-3").unwrap_or_else(|| panic!("{p}: no marker 3 in {e}"));
            assert!(near(b, MARKER_3, 3.0), "{p}: marker 3 at {b:?}, expected {MARKER_3:?}");
            let ts = e["body"]["timestamp"].as_i64().expect("timestamp");
            let event_time = iso_ms(e["applicationProperties"]["eventTime"].as_str().unwrap_or(""))?;
            assert_eq!(event_time, ts / 90, "{p}: eventTime is the frame's time");
            assert!((now_ms() - ts / 90).abs() < 30_000, "{p}: timestamp {ts} is not 90 kHz epoch time");
        }
    }
    // What the server saw.
    let requests = server.requests();
    let of = |p: &str| -> Vec<&Value> {
        requests.iter().filter(|r| r["path"].as_str().unwrap_or("").ends_with(&format!("pipeline={p}"))).collect()
    };
    let padded = of("padded");
    for r in of("padded").iter().chain(of("fitted").iter()) {
        let h = &r["headers"];
        assert_eq!(h["user-agent"], "Azure Media Services", "{r}");
        assert_eq!(h["accept"], "application/json", "{r}");
        assert_eq!(r["contentType"], "image/bmp", "{r}");
        let id = h["x-ms-client-request-id"].as_str().unwrap_or("");
        assert!(id.len() == 36 && id.matches('-').count() == 4, "request id {id:?}");
        // 204: accepted, nothing found (CI once saw the camera's first picture blank).
        assert!(r["status"] == 200 || r["status"] == 204, "the credentials were accepted: {r}");
    }
    for p in ["padded", "fitted"] {
        let (all, found) = (of(p).len(), of(p).iter().filter(|r| r["status"] == 200).count());
        assert!(all > 0 && found + 1 >= all && found > 0, "{p}: a marker found in {found} of {all} pictures");
    }
    for r in &padded {
        assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(416), Some(416)), "{r}");
        assert_eq!(r["bytes"], 519_222, "AVA's 416×416 BMP");
        assert!(r["topRowMean"].as_f64().unwrap_or(255.0) < 8.0, "the pad bars are black: {r}");
    }
    for r in of("fitted") {
        assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(416), Some(234)), "{r}");
    }
    // At most 5 a second (sampling in media time, one in flight), and near it.
    let rate = padded.len() as f64 / elapsed;
    assert!((2.5..=5.5).contains(&rate), "{} requests in {elapsed:.1} s", padded.len());
    assert!(of("fitted").len() <= 1 + (elapsed / 5.0).ceil() as usize, "fitted sends one frame in 5 s");
    // The corpus's video sink records beside the extension.
    let am = request("GET", &format!("{base}/api/videos/sample-http-extension/availableMedia"), None, &[]);
    let ranges = am.ok().and_then(|r| r.json().ok()).map(|v| v["timeRanges"].clone());
    assert!(ranges.as_ref().and_then(Value::as_array).is_some_and(|r| !r.is_empty()), "{ranges:?}");
    Ok(())
}

/// A topology of one HTTP extension (JPEG, 5 a second) at parameter `url`, its results to a
/// hub sink, and a video sink recording continuously into parameter `video`.
fn one_extension() -> Value {
    json!({
        "@apiVersion": "1.1", "name": "OneExtension",
        "properties": {
            "parameters": [{"name": "rtspUrl", "type": "String"}, {"name": "url", "type": "String"},
                           {"name": "video", "type": "String"}],
            "sources": [{"@type": "#Microsoft.VideoAnalyzer.RtspSource", "name": "rtspSource",
                         "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${rtspUrl}"}}],
            "processors": [{"@type": "#Microsoft.VideoAnalyzer.HttpExtension", "name": "ext",
                "endpoint": {"@type": "#Microsoft.VideoAnalyzer.UnsecuredEndpoint", "url": "${url}"},
                "image": {"format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatJpeg", "quality": "90"}},
                "samplingOptions": {"maximumSamplesPerSecond": "5"},
                "inputs": [{"nodeName": "rtspSource"}]}],
            "sinks": [
                {"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub", "hubOutputName": "out",
                 "inputs": [{"nodeName": "ext"}]},
                {"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink", "videoName": "${video}",
                 "localMediaCachePath": "/var/lib/videoanalyzer/tmp/", "localMediaCacheMaximumSizeMiB": "1024",
                 "inputs": [{"nodeName": "rtspSource"}]}
            ]
        }
    })
}

/// [`one_extension`] over gRPC (`OneGrpcExtension`) with `dataTransfer`.
fn one_grpc_extension(transfer: Value) -> Value {
    let mut t = one_extension();
    t["name"] = json!("OneGrpcExtension");
    t["properties"]["processors"][0]["@type"] = json!("#Microsoft.VideoAnalyzer.GrpcExtension");
    t["properties"]["processors"][0]["dataTransfer"] = transfer;
    t
}

/// The Diagnostics events of a pipeline's extension node, as (short type, code).
fn diagnostics(events: &Events, pipeline: &str) -> Vec<(String, String)> {
    let subject = format!("/livePipelines/{pipeline}/processors/ext");
    events
        .all()
        .into_iter()
        .filter(|e| e["applicationProperties"]["subject"] == subject.as_str())
        .filter_map(|e| {
            let t = e["applicationProperties"]["eventType"].as_str()?;
            let short = t.strip_prefix("Microsoft.VideoAnalyzer.Diagnostics.")?;
            Some((short.to_owned(), e["body"]["code"].as_str().unwrap_or("").to_owned()))
        })
        .collect()
}

#[test]
fn a_failing_server_is_told_once_and_media_keeps_flowing() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-faults");
    let server = InferenceServer::start(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--extension-timeout", "1"])?;
    let events = Events::subscribe(&base, None)?;
    let (st, body) = method(&base, "pipelineTopologySet", &one_extension())?;
    assert_eq!(st, 201, "{body}");
    let cases = [
        ("error", "status=500", "ProtocolError", "500"),
        ("slow", "slow=3", "NetworkError", "timeout"),
        ("garbage", "garbage=1", "ProtocolError", "reply"),
        ("big", "big=5", "ProtocolError", "reply"),
        ("busy", "busy=2", "ProtocolError", "503"),
        ("text", "text=1", "", ""),
        ("nothing", "status=204", "", ""),
    ];
    server.set_busy(true)?;
    for (p, query, _, _) in cases {
        set_and_activate(
            &base,
            p,
            "OneExtension",
            json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": p},
                   {"name": "url", "value": format!("{}/x?{query}&p={p}", server.url)}]),
        )?;
    }
    std::thread::sleep(Duration::from_secs(8));
    server.set_busy(false)?;
    std::thread::sleep(Duration::from_secs(4));
    let requests = server.requests();
    let of = |p: &str| -> Vec<Value> {
        requests.iter().filter(|r| r["path"].as_str().unwrap_or("").ends_with(&format!("p={p}"))).cloned().collect()
    };
    for (p, _, kind, code) in cases {
        let told = diagnostics(&events, p);
        if kind.is_empty() {
            assert!(told.is_empty(), "{p}: {told:?}");
            continue;
        }
        // Told once, though the failure lasted through several requests.
        assert_eq!(told, vec![(kind.to_owned(), code.to_owned())], "{p}");
        assert!(of(p).len() >= 2, "{p}: the node kept trying: {}", of(p).len());
        // Backing off: nowhere near 5 requests a second while failing.
        let failing = of(p).iter().filter(|r| p != "busy" || r["status"] == 503).count();
        assert!(failing <= 12, "{p}: {failing} requests while failing");
        // And the video was recorded all along.
        let am = request("GET", &format!("{base}/api/videos/{p}/availableMedia"), None, &[])?.json()?;
        assert!(am["timeRanges"].as_array().is_some_and(|r| !r.is_empty()), "{p}: {am}");
    }
    // 503: the next request waited for Retry-After (2 s), and once the server is free, results.
    let busy = of("busy");
    let t: Vec<(f64, bool)> = busy.iter().filter_map(|r| Some((r["t"].as_f64()?, r["status"] == 503))).collect();
    assert!(t.windows(2).all(|w| !w[0].1 || w[1].0 - w[0].0 >= 1.9), "requests after a 503 came too soon: {t:?}");
    assert!(t.iter().filter(|(_, busy)| *busy).count() >= 2, "{t:?}");
    assert!(busy.iter().any(|r| r["status"] == 200), "no answer after the server was free again");
    assert!(!inferences(&events, "busy", "ext").is_empty(), "no inference after the 503s");
    // A reply that is not JSON: AVA's base64 `other` inference.
    let text = inferences(&events, "text", "ext");
    let first = text.first().ok_or_else(|| anyhow::anyhow!("no inference for the text reply"))?;
    assert_eq!(
        first["body"]["inferences"][0]["other"],
        json!({"contentType": "text/plain", "contentBytes": "YSBjYXQ="})
    );
    assert_eq!(first["body"]["hubOutputName"], "out");
    // 204: nothing found, nothing published, nothing wrong; requests go on at the node's rate.
    assert!(inferences(&events, "nothing", "ext").is_empty());
    assert!(of("nothing").len() >= 30 && of("nothing").iter().all(|r| r["status"] == 204), "{}", of("nothing").len());
    // Samples skipped while a request was out or the node paused are counted.
    let metrics = request("GET", &format!("{base}/metrics"), None, &[])?;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    let skipped = text
        .lines()
        .find(|l| l.starts_with("va_data_dropped_total{live_pipeline=\"slow\"") && l.contains("data_kind=\"sample\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert!(skipped.is_some_and(|n| n > 10), "skipped samples of the slow server: {skipped:?}");
    Ok(())
}

#[test]
fn endpoints_at_the_host_itself_or_a_metadata_address_are_refused() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-ssrf");
    let port = free_port();
    let (_host, base) = start_host_on(&tmp.path().join("data"), &format!("127.0.0.1:{port}"), &[])?;
    let (st, body) = method(&base, "pipelineTopologySet", &one_extension())?;
    assert_eq!(st, 201, "{body}");
    for (p, url) in [
        ("metadata", "http://169.254.169.254/latest/meta-data/".to_owned()),
        ("itself", format!("http://127.0.0.1:{port}/api/methods/livePipelineDelete")),
        ("itself6", format!("http://[::ffff:127.0.0.1]:{port}/api")),
    ] {
        let set = json!({"@apiVersion": "1.1", "name": p, "properties": {"topologyName": "OneExtension",
            "parameters": [{"name": "rtspUrl", "value": "rtsp://127.0.0.1:9/"}, {"name": "url", "value": url},
                           {"name": "video", "value": p}]}});
        let (st, body) = method(&base, "livePipelineSet", &set)?;
        assert_eq!(st, 201, "{body}");
        let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        assert_eq!(st, 400, "{p}: {body}");
        let msg = body["error"]["details"][0]["message"].as_str().unwrap_or("");
        assert!(msg.contains("'ext'") && msg.contains("--extension-allow"), "{p}: {msg}");
    }
    Ok(())
}

#[test]
fn an_extension_opens_the_gate_of_the_corpus_evr_topology() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-evr");
    let server = InferenceServer::start(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, Some("evr"))?;
    let (st, body) = method(&base, "pipelineTopologySet", &corpus("evr-httpExtension-video-sink.json"))?;
    assert_eq!(st, 201, "{body}");
    let topology = corpus("evr-httpExtension-video-sink.json")["name"].as_str().unwrap_or_default().to_owned();
    set_and_activate(
        &base,
        "evr",
        &topology,
        json!([{"name": "rtspUrl", "value": cam}, {"name": "inferencingUrl", "value": format!("{}/score", server.url)}]),
    )?;
    // The detection opens the gate: the clip's events point at the inference that opened it.
    let started = events.wait_for("RecordingStarted", Duration::from_secs(30))?;
    let cause = started["applicationProperties"]["correlationId"].as_str().unwrap_or("").to_owned();
    let trigger = events.all().into_iter().find(|e| e["applicationProperties"]["messageId"] == cause.as_str());
    let trigger = trigger.ok_or_else(|| anyhow::anyhow!("no event with messageId {cause}"))?;
    assert_eq!(trigger["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Analytics.Inference");
    assert!(box_of(&trigger["body"], "marker-3").is_some_and(|b| near(b, MARKER_3, 3.0)), "{trigger}");
    Ok(())
}

/// The server's log lines of one pipeline's stream (descriptors and samples, in order).
fn stream_of(server: &InferenceServer, pipeline: &str) -> Vec<Value> {
    let mut node_pipeline = String::new();
    let mut out = Vec::new();
    for e in server.requests() {
        if e["event"] == "descriptor" {
            node_pipeline = e["pipeline"].as_str().unwrap_or_default().to_owned();
        }
        if node_pipeline == pipeline {
            out.push(e);
        }
    }
    out
}

#[test]
fn grpc_corpus_topologies_find_markers_through_shared_memory_and_embedded() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-grpc");
    // One server per pipeline, so each stream's log is its own.
    let jpeg = InferenceServer::start_grpc(tmp.path(), &["--basic", "dummyUserName:dummyPassword"])?;
    let raw = InferenceServer::start_grpc(tmp.path(), &["--basic", "dummyUserName:dummyPassword"])?;
    let embedded = InferenceServer::start_grpc(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    for f in ["cvr-with-grpcExtension.json", "grpcExtensionOpenVINO.json"] {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(f))?;
        assert_eq!(st, 201, "{f}: {body}");
    }
    // Shared memory (75 MiB), JPEG padded to 416×416, every frame it can take.
    set_and_activate(
        &base,
        "jpeg",
        "CVRWithGrpcExtension",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "grpcExtensionAddress", "value": jpeg.url}]),
    )?;
    // Shared memory (64 MiB), raw BGR at the camera's size, the configuration passed through.
    set_and_activate(
        &base,
        "raw",
        "InferencingWithOpenVINOgRPC",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "grpcExtensionAddress", "value": raw.url},
               {"name": "extensionConfiguration", "value": "{\"objectLabel\": \"marker\"}"}]),
    )?;
    // Embedded, the same node as `one_extension` over gRPC.
    let (st, body) = method(&base, "pipelineTopologySet", &one_grpc_extension(json!({"mode": "Embedded"})))?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(
        &base,
        "embedded",
        "OneGrpcExtension",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": "embedded"},
               {"name": "url", "value": embedded.url}]),
    )?;
    std::thread::sleep(Duration::from_secs(6));
    for (p, node, server, transfer, size) in [
        ("jpeg", "grpcExtension", &jpeg, "shm", (416, 416)),
        ("raw", "grpcExtension", &raw, "shm", (640, 360)),
        ("embedded", "ext", &embedded, "embedded", (640, 360)),
    ] {
        let found = inferences(&events, p, node);
        assert!(found.len() >= 10, "{p}: {} inference events", found.len());
        for e in &found {
            let b = box_of(&e["body"], "marker-3").unwrap_or_else(|| panic!("{p}: no marker 3 in {e}"));
            assert!(near(b, MARKER_3, 3.0), "{p}: marker 3 at {b:?}, expected {MARKER_3:?}");
        }
        // The stream as the server saw it: AVA's descriptor first, then samples numbered on from
        // 2, stamped with the frame's time.
        let s = stream_of(server, p);
        let d = &s[0];
        assert_eq!((d["event"].as_str(), d["seq"].as_u64(), d["ack"].as_u64()), (Some("descriptor"), Some(1), Some(0)));
        assert_eq!((d["node"].as_str(), d["timescale"].as_u64()), (Some(node), Some(90_000)), "{d}");
        assert_eq!((d["width"].as_u64(), d["height"].as_u64()), (Some(size.0), Some(size.1)), "{d}");
        let samples: Vec<&Value> = s.iter().filter(|e| e["event"] == "sample").collect();
        assert!(samples.iter().all(|e| e["transfer"] == transfer && e["width"] == size.0), "{p}: {samples:?}");
        let seqs: Vec<u64> = samples.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert!(seqs.iter().zip(2u64..).all(|(s, want)| *s == want), "{p}: {seqs:?}");
        let stamps: Vec<i64> = found.iter().filter_map(|e| e["body"]["timestamp"].as_i64()).collect();
        let sent: Vec<i64> = samples.iter().filter_map(|e| e["timestamp"].as_i64()).collect();
        assert!(stamps.iter().all(|t| sent.contains(t)), "{p}: published timestamps are the samples' times");
    }
    let raw_descriptor = &stream_of(&raw, "raw")[0];
    assert_eq!(raw_descriptor["configuration"], "{\"objectLabel\": \"marker\"}");
    assert_eq!((raw_descriptor["encoding"].as_u64(), raw_descriptor["pixelFormat"].as_u64()), (Some(3), Some(61)));
    assert_eq!(raw_descriptor["stride"], 1920);
    assert_eq!(stream_of(&jpeg, "jpeg")[0]["shmBytes"], 75u64 << 20);
    Ok(())
}

#[test]
fn a_grpc_server_that_dies_is_told_once_and_rejoined_when_back() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-grpc-restart");
    let mut server = InferenceServer::start_grpc(tmp.path(), &[])?;
    // A server that takes only 416×416 (as Microsoft's YOLOv3 does) and a 640×360 camera.
    let picky = InferenceServer::start_grpc(tmp.path(), &["--size", "416x416"])?;
    // And one that takes samples and never answers.
    let silent = InferenceServer::start_grpc(tmp.path(), &["--silent"])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &["--extension-timeout", "2"])?;
    let events = Events::subscribe(&base, None)?;
    let shm = json!({"mode": "sharedMemory", "SharedMemorySizeMiB": "8"});
    let (st, body) = method(&base, "pipelineTopologySet", &one_grpc_extension(shm))?;
    assert_eq!(st, 201, "{body}");
    for (p, s) in [("dies", &server), ("picky", &picky), ("silent", &silent)] {
        set_and_activate(
            &base,
            p,
            "OneGrpcExtension",
            json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": p}, {"name": "url", "value": s.url}]),
        )?;
    }
    events.wait_where(
        "Inference",
        |e| e["applicationProperties"]["subject"] == "/livePipelines/dies/processors/ext",
        Duration::from_secs(20),
    )?;
    server.proc.terminate(Duration::from_secs(5))?;
    std::thread::sleep(Duration::from_secs(5));
    let before = inferences(&events, "dies", "ext").len();
    server.restart_grpc()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while inferences(&events, "dies", "ext").len() <= before {
        anyhow::ensure!(std::time::Instant::now() < deadline, "no inference after the server came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Told once per state while it was away (the stream broke; then, maybe, no connection),
    // though frames kept coming.
    let told = diagnostics(&events, "dies");
    assert!((1..=2).contains(&told.len()), "{told:?}");
    // The new stream starts over: a descriptor with sequence number 1.
    let descriptors = server.requests().into_iter().filter(|e| e["event"] == "descriptor").count();
    assert!(descriptors >= 2, "{descriptors} descriptors");
    // The picky server's refusal (INVALID_ARGUMENT) is a ProtocolError, told once.
    assert_eq!(diagnostics(&events, "picky"), vec![("ProtocolError".to_owned(), "InvalidArgument".to_owned())]);
    // The silent one: each stream given up after the time-out (2 s) and opened again after the
    // back-off, told once; nothing published, the video recorded all along.
    assert_eq!(diagnostics(&events, "silent"), vec![("NetworkError".to_owned(), "timeout".to_owned())]);
    assert!(inferences(&events, "silent", "ext").is_empty());
    let streams = silent.requests().into_iter().filter(|e| e["event"] == "descriptor").count();
    assert!(streams >= 2, "{streams} streams to the silent server");
    let am = request("GET", &format!("{base}/api/videos/silent/availableMedia"), None, &[])?.json()?;
    assert_eq!(am["timeRanges"].as_array().map(Vec::len), Some(1), "{am}");
    // The shared memory files are the host's and go with their streams.
    for p in ["dies", "picky", "silent"] {
        let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": p}))?;
        assert_eq!(st, 200);
    }
    let left = || -> anyhow::Result<Vec<String>> {
        Ok(std::fs::read_dir("/dev/shm")?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| ["-dies-ext-", "-picky-ext-", "-silent-ext-"].iter().any(|p| n.contains(p)))
            .collect())
    };
    // A worker may still wait for an answer (the time-out, 2 s) before it lets go.
    wait_until("the shared memory files to go", Duration::from_secs(10), || Ok(left()?.is_empty()))?;
    Ok(())
}

/// The entity boxes of `tag` in a pipeline's inference events of `node`, by frame timestamp,
/// with the track's `sequenceId` and the inference's id.
fn tracked(events: &Events, pipeline: &str, node: &str, tag: &str) -> Vec<(i64, [f64; 4], String, String)> {
    inferences(events, pipeline, node)
        .iter()
        .flat_map(|e| {
            let ts = e["body"]["timestamp"].as_i64().unwrap_or(0);
            e["body"]["inferences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i["entity"]["tag"]["value"] == tag)
                .map(move |i| {
                    let b = &i["entity"]["box"];
                    let r = ["l", "t", "w", "h"].map(|k| b[k].as_f64().unwrap_or(f64::NAN));
                    (ts, r, str_of(&i["sequenceId"]), str_of(&i["inferenceId"]))
                })
        })
        .collect()
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let x = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let y = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if x <= 0.0 || y <= 0.0 {
        return 0.0;
    }
    x * y / (a[2] * a[3] + b[2] * b[3] - x * y)
}

#[test]
fn objects_are_tracked_between_detections_and_line_crossings_counted() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-tracking");
    let server = InferenceServer::start(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    // AVA's line-crossing topology (detections at 2 a second, the tracker, the line x = 0.5),
    // its hub sink also listening to the tracker so the test sees the boxes the counter saw.
    let mut t = corpus("line-crossing.json");
    t["name"] = json!("LineCrossingObserved");
    for s in t["properties"]["sinks"].as_array_mut().into_iter().flatten() {
        if s["@type"].as_str().is_some_and(|t| t.ends_with("IotHubMessageSink")) {
            s["inputs"].as_array_mut().into_iter().for_each(|i| i.push(json!({"nodeName": "objectTracker"})));
        }
    }
    let (st, body) = method(&base, "pipelineTopologySet", &t)?;
    assert_eq!(st, 201, "{body}");
    for f in ["line-crossing.json", "object-tracking.json", "cvr-with-httpExtension-and-objectTracking.json"] {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(f))?;
        assert_eq!(st, 201, "{f}: {body}");
    }
    set_and_activate(
        &base,
        "lines",
        "LineCrossingObserved",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "rtspUserName", "value": "u"},
               {"name": "rtspPassword", "value": "p"},
               {"name": "inferenceUrl", "value": format!("{}/score?p=lines", server.url)}]),
    )?;
    // Ground truth: the same detector on every frame.
    let (st, body) = method(&base, "pipelineTopologySet", &one_extension())?;
    assert_eq!(st, 201, "{body}");
    let mut truth_topology = one_extension();
    truth_topology["properties"]["processors"][0]["samplingOptions"] = json!({"maximumSamplesPerSecond": "30"});
    truth_topology["name"] = json!("EveryFrame");
    let (st, body) = method(&base, "pipelineTopologySet", &truth_topology)?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(
        &base,
        "truth",
        "EveryFrame",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": "truth"},
               {"name": "url", "value": format!("{}/score?p=truth", server.url)}]),
    )?;
    // The corpus's tracker recorded beside the video (its second input) also runs.
    set_and_activate(
        &base,
        "recorded",
        "CVRHttpExtensionObjectTracking",
        json!([{"name": "rtspUrl", "value": cam},
               {"name": "inferencingUrl", "value": format!("{}/score?p=recorded", server.url)}]),
    )?;
    // Marker 7 crosses x = 0.5 every 3.5 s, one way then the other.
    std::thread::sleep(Duration::from_secs(12));

    let moving = tracked(&events, "lines", "objectTracker", "marker-7");
    let still = tracked(&events, "lines", "objectTracker", "marker-3");
    assert!(moving.len() > 150, "{} tracked boxes of marker 7", moving.len());
    // The still marker is one track all along, where it stands.
    let ids: std::collections::BTreeSet<&String> = still.iter().map(|s| &s.2).collect();
    assert_eq!(ids.len(), 1, "marker 3 had several tracks: {ids:?}");
    assert!(still.iter().all(|s| near(s.1, MARKER_3, 3.0)), "marker 3 drifted");
    // Between detections the moving marker's box follows it: IoU with the every-frame
    // detector's box (same frame time within 20 ms) at least 0.5 on 90 % of frames.
    let truth = tracked(&events, "truth", "ext", "marker-7");
    let mut matched = 0;
    let mut good = 0;
    for (ts, b, _, _) in &moving {
        if let Some((_, tb, _, _)) = truth.iter().find(|(t, ..)| (t - ts).abs() <= 1800) {
            matched += 1;
            good += usize::from(iou(*b, *tb) >= 0.5);
        }
    }
    assert!(matched > 100, "only {matched} frames matched the truth ({} truth boxes)", truth.len());
    eprintln!("tracking: {good} of {matched} tracked boxes overlap the every-frame detection by half or more");
    assert!(good * 10 >= matched * 9, "{good} of {matched} tracked boxes overlap the truth by half");
    // Crossings alternate: left to right is counterclockwise by AVA's convention, right to
    // left clockwise; the totals count on.
    let crossings: Vec<Value> = inferences(&events, "lines", "lineCrossing")
        .iter()
        .flat_map(|e| e["body"]["inferences"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!((2..=4).contains(&crossings.len()), "{crossings:?}");
    let ids: Vec<&String> = moving.iter().map(|m| &m.3).collect();
    let (mut cw, mut ccw) = (0, 0);
    for (n, c) in crossings.iter().enumerate() {
        assert_eq!(c["subtype"], "lineCrossing");
        assert_eq!(c["event"]["name"], "LineCrossing1");
        let p = &c["event"]["properties"];
        if p["direction"] == "counterclockwise" {
            ccw += 1;
        } else {
            assert_eq!(p["direction"], "clockwise", "{c}");
            cw += 1;
        }
        if n > 0 {
            let before = &crossings[n - 1]["event"]["properties"]["direction"];
            assert_ne!(&p["direction"], before, "crossings alternate: {crossings:?}");
        }
        let (cw_s, ccw_s, total_s) = (cw.to_string(), ccw.to_string(), (n + 1).to_string());
        let totals = (p["clockwiseTotal"].as_str(), p["counterclockwiseTotal"].as_str(), p["total"].as_str());
        assert_eq!(totals, (Some(cw_s.as_str()), Some(ccw_s.as_str()), Some(total_s.as_str())), "{c}");
        let related = c["relatedInferences"][0].as_str().unwrap_or_default().to_owned();
        assert!(ids.contains(&&related), "relatedInferences names the tracked entity: {c}");
    }
    // An independent counter (supervision's LineZone, bottom-centre anchor) on the same boxes
    // counts the same, up to the last crossing the host reported.
    let last = inferences(&events, "lines", "lineCrossing").last().and_then(|e| e["body"]["timestamp"].as_i64());
    let mut frames: std::collections::BTreeMap<i64, Vec<Value>> = Default::default();
    for e in inferences(&events, "lines", "objectTracker") {
        let ts = e["body"]["timestamp"].as_i64().unwrap_or(0);
        if last.is_some_and(|l| ts <= l) {
            let boxes = e["body"]["inferences"].as_array().cloned().unwrap_or_default();
            frames
                .entry(ts)
                .or_default()
                .extend(boxes.iter().map(|i| json!({"id": i["sequenceId"], "box": i["entity"]["box"]})));
        }
    }
    let job = json!({"width": 640, "height": 360, "line": [[0.5, 0.1], [0.5, 0.9]],
                     "frames": frames.into_values().collect::<Vec<_>>()});
    let mut child = std::process::Command::new(venv_python())
        .arg(repo_root().join("tests/servers/count_crossings.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::io::Write::write_all(
        &mut child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?,
        job.to_string().as_bytes(),
    )?;
    let out = child.wait_with_output()?;
    let counts: Value = serde_json::from_slice(&out.stdout)?;
    eprintln!("line crossing: {} crossings; supervision counted {counts}", crossings.len());
    assert_eq!(counts, json!({"in": ccw, "out": cw}), "supervision's counts");
    // The corpus tracker beside a recording: tracked entities, and the video recorded.
    assert!(!tracked(&events, "recorded", "objectTracker", "marker-3").is_empty());
    let am = request("GET", &format!("{base}/api/videos/sample-cvr-inference-metadata/availableMedia"), None, &[])?;
    let ranges = am.json()?["timeRanges"].as_array().map_or(0, Vec::len);
    assert!(ranges >= 1, "the corpus tracker's video sink recorded nothing");
    recorded_boxes_are_stored_and_drawn(&base, &events, tmp.path())
}

/// ISO 8601 of a 90 kHz epoch time.
fn iso_of(ticks: i64) -> String {
    jiff::Timestamp::from_millisecond(ticks / 90).map(|t| t.to_string()).unwrap_or_default()
}

/// The corpus topology records its tracker's output with the video (the video sink's second
/// input): the stored rows are exactly the frames the tracker published, the timeline marks
/// them, and the web player draws each paused frame's boxes where that frame shows the marker.
fn recorded_boxes_are_stored_and_drawn(base: &str, events: &Events, tmp: &std::path::Path) -> anyhow::Result<()> {
    const VIDEO: &str = "sample-cvr-inference-metadata";
    let (st, body) = method(base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "recorded"}))?;
    assert_eq!(st, 200, "{body}");
    let published: std::collections::BTreeMap<i64, Value> = inferences(events, "recorded", "objectTracker")
        .into_iter()
        .filter(|e| e["body"]["inferences"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|e| (e["body"]["timestamp"].as_i64().unwrap_or(0), e["body"]["inferences"].clone()))
        .collect();
    let (Some(first), Some(last)) = (published.keys().next().copied(), published.keys().last().copied()) else {
        anyhow::bail!("the recorded pipeline's tracker published nothing");
    };
    let (from, to) = (iso_of(first - 90_000), iso_of(last + 90_000));
    let mut stored = std::collections::BTreeMap::new();
    let mut url = format!("{base}/api/videos/{VIDEO}/inferences?startTime={from}&endTime={to}");
    loop {
        let page = request("GET", &url, None, &[])?.json()?;
        for r in page["value"].as_array().cloned().unwrap_or_default() {
            stored.insert(r["timestamp"].as_i64().unwrap_or(0), r["inferences"].clone());
        }
        match page["@nextLink"].as_str() {
            Some(next) => url = format!("{base}{next}"),
            None => break,
        }
    }
    assert_eq!(
        stored.len(),
        published.len(),
        "stored {} rows, the tracker published {}",
        stored.len(),
        published.len()
    );
    assert!(stored == published, "the stored rows differ from what the tracker published");
    let act = request(
        "GET",
        &format!("{base}/api/videos/{VIDEO}/inferences/activity?startTime={from}&endTime={to}"),
        None,
        &[],
    )?
    .json()?;
    let counted: i64 = act["value"].as_array().into_iter().flatten().filter_map(|a| a["count"].as_i64()).sum();
    assert_eq!(counted as usize, stored.len(), "{act}");
    // Bad ranges are AVA-shaped 400s, an unknown video a 404.
    let bad =
        request("GET", &format!("{base}/api/videos/{VIDEO}/inferences?startTime={to}&endTime={from}"), None, &[])?;
    assert_eq!(bad.status, 400);
    assert!(bad.json()?["error"]["message"].is_string());
    assert_eq!(request("GET", &format!("{base}/api/videos/{VIDEO}/inferences"), None, &[])?.status, 400);
    let unknown = format!("{base}/api/videos/nothing-here/inferences?startTime={from}&endTime={to}");
    assert_eq!(request("GET", &unknown, None, &[])?.status, 404);

    // The player: paused frames, the boxes drawn on them against the marker in their pixels.
    let shots = openva_bin().parent().map(|p| p.join("ui-screenshots")).unwrap_or_else(|| tmp.join("shots"));
    std::fs::create_dir_all(&shots)?;
    let out = std::process::Command::new("node")
        .arg(repo_root().join("tests/web/boxes-check.js"))
        .args([base, VIDEO, &(first / 90).to_string(), shots.to_str().unwrap_or(".")])
        .current_dir(repo_root().join("tests/web"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("{}")).map_err(|e| {
        anyhow::anyhow!("boxes-check printed no JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })?;
    assert!(seen["failure"].is_null(), "the page run failed: {seen}");
    assert_eq!(seen["consoleErrors"].as_array().map(Vec::len), Some(0), "console errors: {seen}");
    assert!(seen["marks"].as_u64().unwrap_or(0) >= 1, "no inference marks on the timeline: {seen}");
    let frames = seen["frames"].as_array().cloned().unwrap_or_default();
    let mut good = 0;
    for f in &frames {
        let m = &f["marker"];
        let width = m["width"].as_f64().unwrap_or(0.0);
        let (a, b) = (m["first"].as_f64().unwrap_or(-1.0), m["last"].as_f64().unwrap_or(-1.0) + 1.0);
        let Some(bx) = f["shown"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|b| b["label"].as_str().is_some_and(|l| l.starts_with("marker-7")))
        else {
            continue;
        };
        let (l, r) = (
            bx["l"].as_f64().unwrap_or(0.0) * width,
            (bx["l"].as_f64().unwrap_or(0.0) + bx["w"].as_f64().unwrap_or(0.0)) * width,
        );
        let overlap = (r.min(b) - l.max(a)).max(0.0) / (r.max(b) - l.min(a));
        // The row drawn is the paused frame's own or the one before it (a frame is 40 ms; rows
        // are dated by arrival, the player's clock 10–30 ms later, give or take a few ms of
        // jitter either way: CI once saw a row dated 5 ms after its frame).
        let lag = f["wall"].as_f64().unwrap_or(0.0) - f["at"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "player: marker at {a}..{b} px, box {l:.0}..{r:.0} px (overlap {overlap:.2}), row {lag:.0} ms before the frame"
        );
        good += usize::from(a >= 0.0 && overlap >= 0.6 && (-20.0..=80.0).contains(&lag));
    }
    assert!(
        frames.len() >= 5 && good + 1 >= frames.len(),
        "boxes over the picture: {good} of {} line up: {seen}",
        frames.len()
    );
    Ok(())
}

/// A camera reconnect lands mid-stream: the first frames of the new session refer to pictures
/// sent while the host was away. Analysis waits for the next keyframe, so every picture the
/// extension gets is whole: both markers, where and as large as they are, in every answer.
#[test]
fn analysis_after_a_camera_reconnect_sees_only_whole_pictures() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-reconnect");
    let server = InferenceServer::start(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let port = cam.trim_start_matches("rtsp://127.0.0.1:").split('/').next().unwrap_or_default().parse()?;
    let proxy = openva_e2e::faultproxy::FaultProxy::start(port)?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    // Every frame it can take, so the frames right after each reconnect are offered.
    let mut t = one_extension();
    if let Some(p) = t["properties"]["processors"][0].as_object_mut() {
        p.remove("samplingOptions");
    }
    assert_eq!(method(&base, "pipelineTopologySet", &t)?.0, 201);
    set_and_activate(
        &base,
        "cut",
        "OneExtension",
        json!([{"name": "rtspUrl", "value": format!("rtsp://127.0.0.1:{}/test", proxy.port)},
               {"name": "video", "value": "cut"}, {"name": "url", "value": format!("{}/score", server.url)}]),
    )?;
    // A second client straight to the camera keeps its stream going (GStreamer restarts a
    // stream nobody watches), so each reconnect of `cut` joins it mid-way.
    set_and_activate(
        &base,
        "direct",
        "OneExtension",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": "direct"},
               {"name": "url", "value": format!("{}/score", server.url)}]),
    )?;
    wait_until("inferences", Duration::from_secs(30), || Ok(inferences(&events, "cut", "ext").len() >= 10))?;
    // Cuts at times unrelated to the camera's keyframes (one a second).
    for wait in [700, 1300, 900, 1100] {
        proxy.set(openva_e2e::faultproxy::Fault::Pass);
        std::thread::sleep(Duration::from_millis(wait));
    }
    std::thread::sleep(Duration::from_secs(2));
    let sessions = events
        .all()
        .iter()
        .filter(|e| {
            e["applicationProperties"]["subject"] == "/livePipelines/cut/sources/rtspSource"
                && e["applicationProperties"]["eventType"]
                    == "Microsoft.VideoAnalyzer.Diagnostics.MediaSessionEstablished"
        })
        .count();
    assert!(sessions >= 5, "{sessions} camera sessions: the cuts did not reconnect");
    let found = inferences(&events, "cut", "ext");
    assert!(found.len() >= 30, "{} inferences", found.len());
    // Marker 7 moves along y = 200 and its box is 80 px square wherever it is; it is missing
    // only while it touches the picture's left edge (no quiet zone there), where it turns.
    let moving: Vec<Option<[f64; 4]>> = found.iter().map(|e| box_of(&e["body"], "marker-7")).collect();
    let at_edge =
        |i: Option<usize>| i.and_then(|i| moving.get(i).copied().flatten()).is_some_and(|b| b[0] * 640.0 < 25.0);
    for (i, e) in found.iter().enumerate() {
        let still = box_of(&e["body"], "marker-3");
        assert!(still.is_some_and(|b| near(b, MARKER_3, 3.0)), "marker 3 missing or misplaced: {e}");
        match moving[i] {
            Some(b) => {
                let whole = [b[2] * 640.0, b[3] * 360.0, b[1] * 360.0];
                assert!(
                    whole.iter().zip([79.0, 79.0, 200.0]).all(|(g, w)| (g - w).abs() <= 3.0),
                    "marker 7 damaged: {e}"
                );
            }
            None => assert!(at_edge(i.checked_sub(1)) || at_edge(Some(i + 1)), "marker 7 missing: {e}"),
        }
    }
    Ok(())
}

#[test]
fn tls_endpoints_trust_the_certificates_they_are_given() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-tls");
    let certs = tmp.path().join("certs");
    test_certificates(&certs)?;
    let (cert, key) = (certs.join("server.crt"), certs.join("server.key"));
    let server = InferenceServer::start(
        tmp.path(),
        &["--tls", cert.to_str().unwrap_or_default(), key.to_str().unwrap_or_default()],
    )?;
    let ca = std::fs::read_to_string(certs.join("ca.crt"))?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    let with_tls = |name: &str, tls: Value| {
        let mut t = one_extension();
        t["name"] = json!(name);
        let endpoint = &mut t["properties"]["processors"][0]["endpoint"];
        endpoint["@type"] = json!("#Microsoft.VideoAnalyzer.TlsEndpoint");
        if let Some(o) = tls.as_object() {
            for (k, v) in o {
                endpoint[k] = v.clone();
            }
        }
        t
    };
    let cases = [
        (
            "trusted",
            json!({"trustedCertificates": {"@type": "#Microsoft.VideoAnalyzer.PemCertificateList", "certificates": [ca]}}),
        ),
        ("untrusted", json!({})),
        ("unchecked", json!({"validationOptions": {"ignoreHostname": "true", "ignoreSignature": "true"}})),
    ];
    for (p, tls) in &cases {
        let (st, body) = method(&base, "pipelineTopologySet", &with_tls(&format!("Tls-{p}"), tls.clone()))?;
        assert_eq!(st, 201, "{body}");
        set_and_activate(
            &base,
            p,
            &format!("Tls-{p}"),
            json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": p},
                   {"name": "url", "value": format!("{}/score?p={p}", server.url)}]),
        )?;
    }
    // ignoreHostname alone cannot be honoured: a clear 400 at activation.
    let t =
        with_tls("Tls-hostname", json!({"validationOptions": {"ignoreHostname": "true", "ignoreSignature": "false"}}));
    assert_eq!(method(&base, "pipelineTopologySet", &t)?.0, 201);
    let set = json!({"@apiVersion": "1.1", "name": "hostname", "properties": {"topologyName": "Tls-hostname",
        "parameters": [{"name": "rtspUrl", "value": cam}, {"name": "video", "value": "hostname"},
                       {"name": "url", "value": format!("{}/score", server.url)}]}});
    assert_eq!(method(&base, "livePipelineSet", &set)?.0, 201);
    let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "hostname"}))?;
    assert_eq!(st, 400, "{body}");
    assert!(body.to_string().contains("ignoreHostname"), "{body}");
    std::thread::sleep(Duration::from_secs(5));
    for p in ["trusted", "unchecked"] {
        let found = inferences(&events, p, "ext");
        assert!(!found.is_empty(), "{p}: no inference over TLS");
        assert!(box_of(&found[0]["body"], "marker-3").is_some_and(|b| near(b, MARKER_3, 3.0)), "{p}: {}", found[0]);
    }
    // A certificate from an unknown CA: refused, told once, nothing reached the server.
    assert!(inferences(&events, "untrusted", "ext").is_empty());
    let told: Vec<Value> = events
        .all()
        .into_iter()
        .filter(|e| e["applicationProperties"]["subject"] == "/livePipelines/untrusted/processors/ext")
        .collect();
    // One NetworkError that names the certificate (ureq reports the refused handshake as a
    // connection error).
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Diagnostics.NetworkError");
    assert!(told[0]["body"]["message"].as_str().is_some_and(|m| m.contains("certificate")), "{told:?}");
    assert!(!server.requests().iter().any(|r| r["path"].as_str().is_some_and(|s| s.ends_with("p=untrusted"))));

    // gRPC over TLS (AVA's `tcp://` URL behind a TlsEndpoint): the trusted CA gets results; the
    // built-in roots refuse the test CA, told once; gRPC has no validation options (as in AVA).
    let grpc = InferenceServer::start_grpc(
        tmp.path(),
        &["--tls", cert.to_str().unwrap_or_default(), key.to_str().unwrap_or_default()],
    )?;
    let grpc_tls = |name: &str, tls: &Value| {
        let mut t = one_grpc_extension(json!({"mode": "Embedded"}));
        t["name"] = json!(name);
        let endpoint = &mut t["properties"]["processors"][0]["endpoint"];
        endpoint["@type"] = json!("#Microsoft.VideoAnalyzer.TlsEndpoint");
        for (k, v) in tls.as_object().into_iter().flatten() {
            endpoint[k] = v.clone();
        }
        t
    };
    for (p, tls) in &cases {
        let name = format!("GrpcTls-{p}");
        assert_eq!(method(&base, "pipelineTopologySet", &grpc_tls(&name, tls))?.0, 201);
        let pipeline = format!("grpc-{p}");
        let set = json!({"@apiVersion": "1.1", "name": pipeline, "properties": {"topologyName": name,
            "parameters": [{"name": "rtspUrl", "value": cam}, {"name": "video", "value": pipeline},
                           {"name": "url", "value": grpc.url}]}});
        assert_eq!(method(&base, "livePipelineSet", &set)?.0, 201);
        let (st, body) = method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": pipeline}))?;
        if *p == "unchecked" {
            assert_eq!(st, 400, "{body}");
            assert!(body.to_string().contains("not supported by gRPC"), "{body}");
        } else {
            assert_eq!(st, 200, "{body}");
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    let found = inferences(&events, "grpc-trusted", "ext");
    assert!(!found.is_empty(), "no inference over gRPC with TLS");
    assert!(box_of(&found[0]["body"], "marker-3").is_some_and(|b| near(b, MARKER_3, 3.0)));
    assert!(inferences(&events, "grpc-untrusted", "ext").is_empty());
    let told: Vec<Value> = events
        .all()
        .into_iter()
        .filter(|e| e["applicationProperties"]["subject"] == "/livePipelines/grpc-untrusted/processors/ext")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Diagnostics.NetworkError");
    // Only the trusted pipeline's stream reached the server.
    let descriptors: Vec<Value> = grpc.requests().into_iter().filter(|r| r["event"] == "descriptor").collect();
    assert!(!descriptors.is_empty() && descriptors.iter().all(|d| d["pipeline"] == "grpc-trusted"), "{descriptors:?}");
    Ok(())
}

/// AVA's two compositions, end to end with a broker in the middle (`--mqtt`):
/// - `ai-composition`: motion → a gRPC detector → a second gRPC server that receives the
///   detector's inferences with each frame (it answers each with a classification of what it was
///   given); the second stage's results leave over MQTT on the hub sink's output and open the
///   gate of the recording;
/// - `evr-hubMessage-video-sink`'s loop: the HTTP extension's Analytics go out over MQTT, an
///   outside "object counter" (this test, as AVA's sample module did) reads them and, seeing the
///   moving marker, sends a message to the pipeline's hub input, which opens its gate.
#[test]
fn compositions_run_with_mqtt_in_the_loop() -> anyhow::Result<()> {
    use openva_e2e::mqtt::{Subscriber, publish, start_broker};
    let tmp = TempDir::new("ext-compose");
    let port = free_port();
    let _broker = start_broker(tmp.path(), port)?;
    let sub = Subscriber::start(port, "openva/#")?;
    let detector = InferenceServer::start_grpc(tmp.path(), &[])?;
    let classifier = InferenceServer::start_grpc(tmp.path(), &["--classify"])?;
    let http = InferenceServer::start(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    // The composition's motion detector is the `motion` plugin.
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) = start_host(
        &tmp.path().join("data"),
        &["--mqtt", &format!("mqtt://127.0.0.1:{port}"), "--plugins", plugins.to_str().unwrap_or_default()],
    )?;
    let events = Events::subscribe(&base, None)?;
    for f in ["ai-composition.json", "evr-hubMessage-video-sink.json"] {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(f))?;
        assert_eq!(st, 201, "{f}: {body}");
    }
    set_and_activate(
        &base,
        "composed",
        "AIComposition",
        json!([{"name": "rtspUrl", "value": cam},
               {"name": "grpcExtensionAddressSource", "value": detector.url},
               {"name": "grpcExtensionAddress", "value": classifier.url},
               {"name": "grpcImageScaleMode", "value": "pad"},
               {"name": "grpcFrameWidth", "value": "416"}, {"name": "grpcFrameHeight", "value": "416"},
               {"name": "grpcImageQuality", "value": "90"}, {"name": "motionSensitivity", "value": "medium"},
               {"name": "grpcExtensionConfiguration", "value": ""}]),
    )?;
    set_and_activate(
        &base,
        "counted",
        "EVRtoVideoSinkOnObjDetect",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "hubSourceInput", "value": "objectCounter"},
               {"name": "inferencingUrl", "value": format!("{}/score?p=counted", http.url)},
               {"name": "hubSinkOutputName", "value": "inferences"}]),
    )?;

    // The loop: an Analytics event with marker 7 arrives over MQTT; the counter answers on the
    // pipeline's hub input, as AVA's objectCounter module did through IoT Hub routes.
    let seen = sub.wait_for("the counted pipeline's inferences over MQTT", Duration::from_secs(30), |m| {
        m.topic == "openva/pipelines/counted/outputs/inferences" && m.payload.contains("marker-7")
    })?;
    let envelope: Value = serde_json::from_str(&seen.payload)?;
    assert_eq!(envelope["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Analytics.Inference");
    assert_eq!(envelope["body"]["hubOutputName"], "inferences");
    publish(port, "openva/inputs/objectCounter", r#"{"count": 1, "label": "marker-7"}"#, &[])?;
    let started = events.wait_where(
        "RecordingStarted",
        |e| e["applicationProperties"]["subject"] == "/livePipelines/counted/sinks/videoSink",
        Duration::from_secs(30),
    )?;
    assert_eq!(started["body"]["outputLocation"], "sample-hub-messages-video-sink", "{started}");

    // The chain: the classifier was handed the detector's markers with the frames it got.
    wait_until("the classifier saw upstream markers", Duration::from_secs(30), || {
        Ok(classifier
            .requests()
            .iter()
            .any(|r| r["upstreamTags"].as_array().is_some_and(|t| t.contains(&json!("marker-3")))))
    })?;
    let samples: Vec<Value> = classifier.requests().into_iter().filter(|r| r["event"] == "sample").collect();
    let with_markers = samples.iter().filter(|r| r["upstream"].as_u64().unwrap_or(0) > 0).count();
    eprintln!(
        "composition: {with_markers} of {} samples reached the classifier with the detector's markers",
        samples.len()
    );
    assert!(
        with_markers * 10 >= samples.len() * 9,
        "{with_markers} of {} samples carried the detector's results",
        samples.len()
    );
    // Its classifications leave over MQTT on the hub sink's output, and opened the gate.
    let chained = sub.wait_for("the classifier's results over MQTT", Duration::from_secs(20), |m| {
        m.topic == "openva/pipelines/composed/outputs/inferenceOutput" && m.payload.contains("seen:marker-3")
    })?;
    let body: Value = serde_json::from_str(&chained.payload)?;
    let kinds: Vec<&Value> = body["body"]["inferences"].as_array().into_iter().flatten().map(|i| &i["type"]).collect();
    assert!(kinds.iter().all(|k| *k == "classification"), "{body}");
    events.wait_where(
        "RecordingStarted",
        |e| e["applicationProperties"]["subject"] == "/livePipelines/composed/sinks/videoSink",
        Duration::from_secs(30),
    )?;
    // Both gated videos get media.
    for v in ["sample-ai-composition", "sample-hub-messages-video-sink"] {
        wait_until(&format!("{v} has media"), Duration::from_secs(30), || {
            let am = request("GET", &format!("{base}/api/videos/{v}/availableMedia"), None, &[])?;
            Ok(am.status == 200 && am.json()?["timeRanges"].as_array().is_some_and(|r| !r.is_empty()))
        })?;
    }
    Ok(())
}

/// AVA's gRPC contract lets a server work on frames in parallel: the node keeps up to its
/// window of samples out, each in its own region of the shared memory, held until acknowledged.
/// A server taking 200 ms a frame on four workers gets several at once (the rate is printed: one
/// at a time would allow 5 a second), and every image arrives whole: the server reads each only
/// after its delay, so a region reused too early would show as a frame without its marker.
#[test]
fn a_grpc_window_keeps_a_parallel_server_busy() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-grpc-window");
    let server = InferenceServer::start_grpc(tmp.path(), &["--parallel", "4", "--delay", "200"])?;
    let (_cam, cam) = start_marker_camera()?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    // 1 MiB of shared memory and raw 320×180 BGR frames (172,800 bytes): six fit, so the ring
    // wraps every few samples with up to four of them out.
    let mut t = one_grpc_extension(json!({"mode": "sharedMemory", "SharedMemorySizeMiB": "1"}));
    t["properties"]["processors"][0]["samplingOptions"] = json!({"maximumSamplesPerSecond": "25"});
    t["properties"]["processors"][0]["image"] = json!({
        "scale": {"mode": "stretch", "width": "320", "height": "180"},
        "format": {"@type": "#Microsoft.VideoAnalyzer.ImageFormatRaw", "pixelFormat": "bgr24"}});
    // A tracker behind it sees every frame, in order, while samples are out.
    t["properties"]["processors"].as_array_mut().into_iter().for_each(|p| {
        p.push(json!({"@type": "#Microsoft.VideoAnalyzer.ObjectTrackingProcessor", "name": "tracker",
                      "accuracy": "low", "inputs": [{"nodeName": "ext"}]}));
    });
    t["properties"]["sinks"][0]["inputs"]
        .as_array_mut()
        .into_iter()
        .for_each(|i| i.push(json!({"nodeName": "tracker"})));
    let (st, body) = method(&base, "pipelineTopologySet", &t)?;
    assert_eq!(st, 201, "{body}");
    set_and_activate(
        &base,
        "window",
        "OneGrpcExtension",
        json!([{"name": "rtspUrl", "value": cam}, {"name": "video", "value": "window"},
               {"name": "url", "value": server.url}]),
    )?;
    std::thread::sleep(Duration::from_secs(8));
    let log = server.requests();
    let samples: Vec<&Value> = log.iter().filter(|e| e["event"] == "sample").collect();
    let answers: Vec<&Value> = log.iter().filter(|e| e["event"] == "answer").collect();
    let most = samples.iter().filter_map(|e| e["outstanding"].as_u64()).max().unwrap_or(0);
    let times: Vec<f64> = samples.iter().filter_map(|e| e["t"].as_f64()).collect();
    let rate = match (times.first(), times.last()) {
        (Some(a), Some(b)) if b > a => (times.len() - 1) as f64 / (b - a),
        _ => 0.0,
    };
    eprintln!("window: {} samples at {rate:.1}/s, at most {most} out at once", samples.len());
    assert!((3..=4).contains(&most), "at most {most} samples were out at once");
    assert!(answers.len() >= 20 && answers.iter().all(|a| a["found"].as_u64().unwrap_or(0) >= 1), "{answers:?}");
    // The ring wrapped, and regions of samples out at the same time never overlapped.
    let offsets: Vec<u64> = samples.iter().filter_map(|e| e["offset"].as_u64()).collect();
    assert!(offsets.windows(2).any(|w| w[1] < w[0]), "the ring never wrapped: {offsets:?}");
    let answered_at = |seq: &Value| answers.iter().find(|a| &a["ack"] == seq).and_then(|a| a["t"].as_f64());
    let spans: Vec<(f64, f64, u64, u64)> = samples
        .iter()
        .filter_map(|e| {
            let (off, len) = (e["offset"].as_u64()?, e["bytes"].as_u64()?);
            Some((e["t"].as_f64()?, answered_at(&e["seq"])?, off, off + len))
        })
        .collect();
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            let together = a.0 < b.1 && b.0 < a.1;
            assert!(!(together && a.2 < b.3 && b.2 < a.3), "regions out at once overlap: {a:?} {b:?}");
        }
    }
    let tracked: Vec<i64> =
        inferences(&events, "window", "tracker").iter().filter_map(|e| e["body"]["timestamp"].as_i64()).collect();
    eprintln!("window: the tracker saw {} frames", tracked.len());
    assert!(tracked.len() >= 120, "the tracker saw {} frames in 8 s at 25 fps", tracked.len());
    assert!(tracked.windows(2).all(|w| w[1] > w[0]), "frames reached the tracker out of order");
    let found = inferences(&events, "window", "ext");
    assert!(found.len() >= 40, "{} inference events", found.len());
    assert!(found.iter().all(|e| box_of(&e["body"], "marker-3").is_some_and(|b| near(b, MARKER_3, 3.0))));
    Ok(())
}

/// The corpus's other extension topologies, unchanged, each pointed at the test servers by its
/// parameters: set, activated, and producing what they are for (results from the right node,
/// the gate opened where there is one).
#[test]
fn the_other_corpus_extension_topologies_run() -> anyhow::Result<()> {
    let tmp = TempDir::new("ext-corpus-rest");
    let http = InferenceServer::start(tmp.path(), &[])?;
    let grpc = InferenceServer::start_grpc(tmp.path(), &[])?;
    let (_cam, cam) = start_marker_camera()?;
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) = start_host(&tmp.path().join("data"), &["--plugins", plugins.to_str().unwrap_or_default()])?;
    let events = Events::subscribe(&base, None)?;
    let score = |p: &str| format!("{}/score?p={p}", http.url);
    let runs = [
        (
            "httpExtensionOpenVINO.json",
            "InferencingWithOpenVINO",
            "ov",
            json!([{"name": "inferencingUrl", "value": score("ov")}]),
        ),
        (
            "motion-with-httpExtension.json",
            "EVROnMotionPlusHttpExtension",
            "mh",
            json!([{"name": "httpAIServerAddress", "value": score("mh")}]),
        ),
        (
            "motion-with-grpcExtension.json",
            "EVROnMotionPlusGrpcExtension",
            "mg",
            json!([{"name": "grpcExtensionAddress", "value": grpc.url}]),
        ),
        (
            "evr-grpcExtension-video-sink.json",
            "EVRtoVideoSinkByGrpcExtension",
            "eg",
            json!([{"name": "grpcExtensionAddress", "value": grpc.url}, {"name": "inferencingUrl", "value": score("eg")}]),
        ),
        (
            "nvidia-deepstream-grpcExtension.json",
            "InferencingWithGrpcExtension",
            "ds",
            json!([{"name": "grpcExtensionAddress", "value": grpc.url}]),
        ),
        (
            "object-tracking.json",
            "ObjectTrackingWithHttpExtension",
            "ot",
            json!([{"name": "inferenceUrl", "value": score("ot")}, {"name": "rtspUserName", "value": "u"},
                   {"name": "rtspPassword", "value": "p"}]),
        ),
    ];
    for (file, topology, pipeline, params) in &runs {
        let (st, body) = method(&base, "pipelineTopologySet", &corpus(file))?;
        assert_eq!(st, 201, "{file}: {body}");
        let mut params = params.clone();
        params.as_array_mut().into_iter().for_each(|p| p.push(json!({"name": "rtspUrl", "value": cam})));
        set_and_activate(&base, pipeline, topology, params)?;
    }
    // Who answers in each: the node whose results the hub sink publishes.
    let expect = [
        ("ov", "httpExtension"),
        ("mh", "httpExtension"),
        ("mg", "grpcExtension"),
        ("eg", "grpcExtension"),
        ("ds", "grpcExtension"),
        ("ot", "objectTracker"),
    ];
    for (pipeline, node) in expect {
        wait_until(&format!("{pipeline}: marker 3 from {node}"), Duration::from_secs(30), || {
            Ok(inferences(&events, pipeline, node)
                .iter()
                .any(|e| box_of(&e["body"], "marker-3").is_some_and(|b| near(b, MARKER_3, 3.0))))
        })?;
    }
    assert!(tracked(&events, "ot", "objectTracker", "marker-3").iter().all(|t| !t.2.is_empty()), "sequenceIds");
    // The gated ones record clips: motion opens two, the gRPC detection one.
    for pipeline in ["mh", "mg", "eg"] {
        events.wait_where(
            "RecordingStarted",
            |e| e["applicationProperties"]["subject"] == format!("/livePipelines/{pipeline}/sinks/videoSink").as_str(),
            Duration::from_secs(30),
        )?;
    }
    Ok(())
}
