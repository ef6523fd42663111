//! The API under bad and unusual input: every corpus topology through pipelineTopologySet
//! (runnable ones 201, the rest 400 naming the node), malformed and oversize bodies, wrong
//! types, unknown and missing parameters, bad names, versions and routes — always a clear
//! 4xx in AVA's error shape, never a 5xx.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};

fn corpus(dir: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(repo_root().join("tests/corpus/ava").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    v.sort();
    v
}

/// A member by key, case-insensitively (cloud samples write `Properties`, `Name`).
fn ci<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.as_object().and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))).map_or(&Value::Null, |(_, v)| v)
}

/// The nodes of a topology with their short type names (`#Microsoft.VideoAnalyzer.X` and the
/// legacy `#Microsoft.Media.MediaGraphX` both give `X`).
fn nodes(v: &Value) -> Vec<(String, String)> {
    ["sources", "processors", "sinks"]
        .iter()
        .flat_map(|k| ci(ci(v, "properties"), k).as_array().cloned().unwrap_or_default())
        .map(|n| {
            let t = ci(&n, "@type").as_str().unwrap_or("").rsplit('.').next().unwrap_or("").to_owned();
            let t = t.strip_prefix("MediaGraph").map(str::to_owned).unwrap_or(t);
            (ci(&n, "name").as_str().unwrap_or("?").to_owned(), t)
        })
        .collect()
}

/// An AVA error body with a message.
fn assert_error(status: u16, body: &Value, want_status: u16, detail: Option<&str>) {
    assert_eq!(status, want_status, "{body}");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty(), "{body}");
    if let Some(d) = detail {
        assert_eq!(body["error"]["details"][0]["code"], d, "{body}");
    }
}

#[test]
fn every_corpus_topology_through_set() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-corpus");
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) = start_host(&tmp.path().join("data"), &["--plugins", plugins.to_str().unwrap()])?;
    let mut created = Vec::new();
    for dir in ["topologies", "topologies-history"] {
        for (file, text) in corpus(dir) {
            let r = request("POST", &format!("{base}/api/methods/pipelineTopologySet"), Some(text.as_bytes()), &[])?;
            let body = r.json()?;
            if file.contains("INVALID-JSON") {
                assert_error(r.status, &body, 400, Some("InvalidJson"));
                continue;
            }
            let v: Value = serde_json::from_str(&text)?;
            let nodes = nodes(&v);
            let batch = v
                .as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("kind")))
                .is_some_and(|(_, k)| k.as_str().is_some_and(|k| k.eq_ignore_ascii_case("batch")));
            let kinds: &[&str] = if batch {
                &["VideoSource", "EncoderProcessor", "VideoSink"]
            } else {
                &[
                    "RtspSource",
                    "VideoSink",
                    "MotionDetectionProcessor",
                    "IotHubMessageSink",
                    "SignalGateProcessor",
                    "FileSink",
                    "IotHubMessageSource",
                    "HttpExtension",
                    "GrpcExtension",
                    "ObjectTrackingProcessor",
                    "LineCrossingProcessor",
                ]
            };
            let runnable = nodes.iter().all(|(_, t)| kinds.iter().any(|r| r.eq_ignore_ascii_case(t)));
            if runnable {
                assert!(r.status == 201 || r.status == 200, "{dir}/{file}: {} {body}", r.status);
                created.push(file);
            } else {
                assert_error(r.status, &body, 400, Some("ModuleValidationError"));
                // The message names an unsupported node and its type.
                let msg = body["error"]["details"][0]["message"].as_str().unwrap();
                let lower = msg.to_lowercase();
                let named =
                    nodes.iter().any(|(n, t)| msg.contains(&format!("'{n}'")) && lower.contains(&t.to_lowercase()));
                assert!(named, "{dir}/{file}: message does not name the node and type: {msg}");
            }
        }
    }
    for f in [
        "cvr-video-sink.json",
        "cvr-with-motion.json",
        "motion-detection.json",
        "export-from-video-archive.json",
        "httpExtension.json",
        "cvr-with-httpExtension.json",
        "motion-with-httpExtension.json",
        "evr-httpExtension-video-sink.json",
        "evr-hubMessage-video-sink.json",
        "httpExtensionOpenVINO.json",
        "cvr-with-grpcExtension.json",
        "grpcExtensionOpenVINO.json",
        "motion-with-grpcExtension.json",
        "evr-grpcExtension-video-sink.json",
        "ai-composition.json",
        "nvidia-deepstream-grpcExtension.json",
        "object-tracking.json",
        "line-crossing.json",
        "cvr-with-httpExtension-and-objectTracking.json",
    ] {
        assert!(created.iter().any(|c| c == f), "{f} not created: {created:?}");
    }
    Ok(())
}

#[test]
fn bad_input_gets_clear_4xx() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-bad");
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let m = |name: &str, body: &[u8]| -> anyhow::Result<(u16, Value)> {
        let r = request("POST", &format!("{base}/api/methods/{name}"), Some(body), &[])?;
        Ok((r.status, r.json()?))
    };
    let topo = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json"))?;

    // Malformed JSON, empty body, not an object.
    let (s, b) = m("pipelineTopologySet", b"{\"name\": ")?;
    assert_error(s, &b, 400, Some("InvalidJson"));
    let (s, b) = m("pipelineTopologySet", b"")?;
    assert_error(s, &b, 400, Some("InvalidJson"));
    let (s, b) = m("livePipelineList", b"[1,2]")?;
    assert_error(s, &b, 400, None);
    // Versions: unsupported ones are refused; a missing one means the newest (cloud files).
    let (s, b) = m("livePipelineList", br#"{"@apiVersion":"2.0"}"#)?;
    assert_error(s, &b, 400, Some("ApiVersionNotSupported"));
    let (s, b) = m("livePipelineList", br#"{"@apiVersion":1.1}"#)?;
    assert_error(s, &b, 400, Some("ApiVersionNotSupported"));
    let (s, _) = m("livePipelineList", b"{}")?;
    assert_eq!(s, 200);
    // Unknown method.
    let (s, b) = m("livePipelineExplode", br#"{"@apiVersion":"1.1"}"#)?;
    assert_error(s, &b, 501, None);
    // Oversize body.
    let big = format!("{{\"@apiVersion\":\"1.1\",\"name\":\"x\",\"pad\":\"{}\"}}", "a".repeat(400 * 1024));
    let (s, b) = m("pipelineTopologySet", big.as_bytes())?;
    assert_error(s, &b, 413, None);
    // Deeply nested JSON is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, b) = m("pipelineTopologySet", deep.as_bytes())?;
    assert_error(s, &b, 400, Some("InvalidJson"));
    // Wrong types and shapes in a topology.
    let mut t: Value = serde_json::from_str(&topo)?;
    t["properties"]["sources"] = json!("not a list");
    let (s, b) = m("pipelineTopologySet", t.to_string().as_bytes())?;
    assert!(s == 400, "{s} {b}");
    let mut t: Value = serde_json::from_str(&topo)?;
    t["name"] = json!("../../etc");
    let (s, b) = m("pipelineTopologySet", t.to_string().as_bytes())?;
    assert_error(s, &b, 400, None);
    let mut t: Value = serde_json::from_str(&topo)?;
    t["properties"]["sinks"][0]["inputs"][0]["nodeName"] = json!("nowhere");
    let (s, b) = m("pipelineTopologySet", t.to_string().as_bytes())?;
    assert_error(s, &b, 400, Some("PipelineValidationError"));

    // Pipelines: unknown topology, unknown parameter, missing required, wrong value types.
    let (s, _) = m("pipelineTopologySet", topo.as_bytes())?;
    assert_eq!(s, 201);
    let pipe = |params: Value, topology: &str| {
        json!({"@apiVersion":"1.1","name":"p1","properties":{"topologyName":topology,"parameters":params}}).to_string()
    };
    let url = json!({"name":"rtspUrl","value":"rtsp://127.0.0.1:9/x"});
    let (s, b) = m("livePipelineSet", pipe(json!([url]), "NoSuchTopology").as_bytes())?;
    assert_error(s, &b, 409, Some("ResourceValidationError"));
    let (s, b) = m("livePipelineSet", pipe(json!([url, {"name":"bogus","value":"1"}]), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, Some("ModuleValidationError"));
    assert!(b["error"]["message"].as_str().unwrap().contains("bogus"), "{b}");
    let (s, b) = m("livePipelineSet", pipe(json!([]), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, Some("ModuleValidationError"));
    assert!(b["error"]["message"].as_str().unwrap().contains("rtspUrl"), "{b}");
    let (s, b) =
        m("livePipelineSet", pipe(json!([{"name":"rtspUrl","value":"http://x/"}]), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, Some("ModuleValidationError"));
    let (s, b) =
        m("livePipelineSet", pipe(json!([url, {"name":"segmentLength","value":"PT7S"}]), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, Some("ModuleValidationError"));
    let (s, b) = m("livePipelineSet", pipe(json!("params"), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, None);
    let (s, b) =
        m("livePipelineSet", pipe(json!([url, {"name":"videoName","value":"../../x"}]), "CVRToVideoSink").as_bytes())?;
    assert_error(s, &b, 400, None);
    let (s, b) = m("livePipelineGet", br#"{"@apiVersion":"1.1","name":"no-such"}"#)?;
    assert_error(s, &b, 404, None);
    let (s, b) = m("livePipelineActivate", br#"{"@apiVersion":"1.1","name":"a/../b"}"#)?;
    assert_error(s, &b, 400, None);
    let (s, b) = m("livePipelineActivate", br#"{"@apiVersion":"1.1","name":"no-such"}"#)?;
    assert_error(s, &b, 404, None);

    // REST and video routes with bad names, times and ranges.
    for (method, path) in [
        ("GET", "/api/livePipelines/..%2F..%2Fetc"),
        ("GET", "/api/videos/..%2Fsecret"),
        ("GET", "/api/videos/nope/availableMedia?precision=decade"),
        ("GET", "/api/videos/nope/content.mp4?startTime=yesterday&endTime=2026-01-01T00:00:00Z"),
        ("GET", "/api/videos/nope/content.mp4"),
        ("GET", "/api/events?pipeline=../x"),
    ] {
        let r = request(method, &format!("{base}{path}"), None, &[])?;
        assert_error(r.status, &r.json()?, 400, None);
    }
    for path in ["/api/videos/nope", "/api/videos/nope/availableMedia", "/api/nothing-here", "/nothing"] {
        let r = request("GET", &format!("{base}{path}"), None, &[])?;
        assert_error(r.status, &r.json()?, 404, None);
    }
    let health = request("GET", &format!("{base}/healthz"), None, &[])?;
    assert_eq!(health.status, 200);
    Ok(())
}

#[test]
fn token_required_beyond_loopback() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-token");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "0123456789abcdef-test-token\n")?;
    let port = free_port();
    let data = tmp.path().join("data");
    let mut cmd = std::process::Command::new(openva_bin());
    cmd.args(["serve", "--data"]).arg(&data).args(["--listen", &format!("0.0.0.0:{port}"), "--token-file"]);
    cmd.arg(&token_file);
    let mut child = cmd.stdout(std::process::Stdio::null()).spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if request("GET", &format!("{base}/healthz"), None, &[]).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(up, "host did not come up");
    let no = request("GET", &format!("{base}/api/livePipelines"), None, &[])?;
    let wrong = request("GET", &format!("{base}/api/livePipelines"), None, &[("authorization", "Bearer nope")])?;
    let ok = request(
        "GET",
        &format!("{base}/api/livePipelines"),
        None,
        &[("authorization", "Bearer 0123456789abcdef-test-token")],
    )?;
    let _ = child.kill();
    let _ = child.wait();
    assert_error(no.status, &no.json()?, 401, None);
    assert_eq!(wrong.status, 401);
    assert_eq!(ok.status, 200);
    Ok(())
}
