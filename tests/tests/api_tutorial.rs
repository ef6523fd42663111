//! AVA's continuous-video-recording tutorial, end to end over HTTP against GStreamer's RTSP
//! server with Digest auth: set the topology, set and activate a live pipeline, watch the
//! events, list the video, query its media, download and decode a range (whole and by byte
//! ranges), then deactivate and delete everything.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

fn topology() -> Value {
    let text = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn tutorial_flow_over_http() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-tutorial");
    let (_gst, cam) = start_gst(free_port(), "digest")?;
    let (mut host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;

    // Topology: created, then updated.
    let (st, t) = method(&base, "pipelineTopologySet", &topology())?;
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["name"], "CVRToVideoSink");
    assert!(t["systemData"]["createdAt"].is_string(), "{t}");
    let (st, _) = method(&base, "pipelineTopologySet", &topology())?;
    assert_eq!(st, 200);
    // The secret default never comes back.
    let (st, list) = method(&base, "pipelineTopologyList", &json!({"@apiVersion": "1.1"}))?;
    assert_eq!(st, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("dummyPassword"), "{list}");

    // Live pipeline with the camera's URL and credentials.
    let pipeline = json!({
        "@apiVersion": "1.1",
        "name": "Sample-Pipeline-1",
        "properties": {
            "topologyName": "CVRToVideoSink",
            "description": "Sample pipeline description",
            "parameters": [
                {"name": "rtspUrl", "value": cam},
                {"name": "rtspUserName", "value": "admin"},
                {"name": "rtspPassword", "value": "s3cret"},
                {"name": "videoName", "value": "tutorial-video"}
            ]
        }
    });
    let (st, p) = method(&base, "livePipelineSet", &pipeline)?;
    assert_eq!(st, 201, "{p}");
    assert_eq!(p["properties"]["state"], "inactive");
    assert!(!p.to_string().contains("s3cret"), "secret echoed: {p}");
    let name = json!({"@apiVersion": "1.1", "name": "Sample-Pipeline-1"});
    let (st, _) = method(&base, "livePipelineActivate", &name)?;
    assert_eq!(st, 200);
    let (st, _) = method(&base, "livePipelineActivate", &name)?;
    assert_eq!(st, 200, "activate is idempotent");
    let (_, p) = method(&base, "livePipelineGet", &name)?;
    assert_eq!(p["properties"]["state"], "active");

    // Events: session, recording started and available, in AVA's envelope.
    let e = events.wait_for("MediaSessionEstablished", Duration::from_secs(20))?;
    assert_eq!(e["applicationProperties"]["subject"], "/livePipelines/Sample-Pipeline-1/sources/rtspSource");
    assert_eq!(e["applicationProperties"]["dataVersion"], "1.0");
    assert!(e["body"]["sdp"].as_str().unwrap().starts_with("SDP:\n"), "{e}");
    assert!(!e.to_string().contains("s3cret"));
    let e = events.wait_for("RecordingStarted", Duration::from_secs(5))?;
    assert_eq!(e["body"], json!({"outputType": "videoName", "outputLocation": "tutorial-video"}));
    events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    std::thread::sleep(Duration::from_secs(6));

    // Setting the same topology again is fine while it is in use; changing it is not.
    let (st, _) = method(&base, "pipelineTopologySet", &topology())?;
    assert_eq!(st, 200);
    let mut changed = topology();
    changed["properties"]["description"] = json!("changed");
    let (st, err) = method(&base, "pipelineTopologySet", &changed)?;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["error"]["details"][0]["code"], "PipelineTopologyInUse");
    // Topology in use: cannot be deleted; an active pipeline cannot be deleted.
    let topo_name = json!({"@apiVersion": "1.1", "name": "CVRToVideoSink"});
    let (st, err) = method(&base, "pipelineTopologyDelete", &topo_name)?;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["error"]["details"][0]["code"], "PipelineTopologyInUse");
    let (st, err) = method(&base, "livePipelineDelete", &name)?;
    assert_eq!(st, 409, "{err}");
    assert_eq!(err["error"]["details"][0]["code"], "OperationNotAllowedInState");

    // The video resource.
    let videos = request("GET", &format!("{base}/api/videos"), None, &[])?.json()?;
    let v = videos["value"].as_array().unwrap().iter().find(|v| v["name"] == "tutorial-video").cloned();
    let v = v.expect("video listed");
    assert_eq!(v["properties"]["type"], "Archive");
    assert_eq!(v["properties"]["flags"], json!({"canStream": true, "hasData": true, "isInUse": true}));
    assert_eq!(v["properties"]["mediaInfo"]["segmentLength"], "PT30S");
    assert_eq!(v["properties"]["archival"]["retentionPeriod"], "P7D");
    assert_eq!(v["properties"]["title"], "Sample CVR video");
    assert!(v["properties"]["contentUrls"]["archiveBaseUrl"].as_str().unwrap().ends_with("/content.ism"));

    // Available media, then a range of it as MP4.
    let am = request("GET", &format!("{base}/api/videos/tutorial-video/availableMedia?precision=full"), None, &[])?;
    assert_eq!(am.status, 200);
    let am = am.json()?;
    let r = &am["timeRanges"][0];
    let (start, end) = (iso_ms(r["start"].as_str().unwrap())?, iso_ms(r["end"].as_str().unwrap())?);
    assert!(end - start >= 4_000, "{am}");
    let (a, b) = (ms_iso(start + 1_000), ms_iso(end - 500));
    let url = format!("{base}/api/videos/tutorial-video/content.mp4?startTime={a}&endTime={b}");
    let full = request("GET", &url, None, &[])?;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").expect("etag").to_owned();
    let file = tmp.path().join("range.mp4");
    std::fs::write(&file, &full.body)?;
    ffmpeg_decodes(&file)?;
    // Byte ranges agree with the whole file; the ETag is stable; bad ranges get 416.
    let n = full.body.len();
    for (lo, hi) in [(0, 99), (n / 2, (n / 2 + 70_000).min(n - 1)), (n - 10, n - 1)] {
        let part = request("GET", &url, None, &[("range", &format!("bytes={lo}-{hi}"))])?;
        assert_eq!(part.status, 206);
        assert_eq!(part.header("content-range"), Some(format!("bytes {lo}-{hi}/{n}").as_str()));
        assert_eq!(part.header("etag"), Some(etag.as_str()));
        assert!(part.body == full.body[lo..=hi], "bytes {lo}-{hi} differ");
    }
    let bad = request("GET", &url, None, &[("range", &format!("bytes={}-", n + 5))])?;
    assert_eq!(bad.status, 416);
    let same = request("GET", &url, None, &[("if-none-match", &etag)])?;
    assert_eq!(same.status, 304);
    let same = request("GET", &url, None, &[("if-none-match", &format!("\"x\", W/{etag}"))])?;
    assert_eq!(same.status, 304, "weak tags in a list match");
    // Ranges that are not byte ranges, or do not parse, are ignored; a suffix longer than the
    // file is the whole file.
    for r in ["items=0-5", "bytes=abc", "bytes=5-2"] {
        let whole = request("GET", &url, None, &[("range", r)])?;
        assert!(whole.status == 200 || whole.status == 416, "{r}: {}", whole.status);
        if whole.status == 200 {
            assert_eq!(whole.body.len(), n, "{r}");
        }
    }
    let all = request("GET", &url, None, &[("range", &format!("bytes=-{}", n * 2))])?;
    assert_eq!(all.status, 206);
    assert_eq!(all.body.len(), n);

    // Metrics count what came in.
    let m = String::from_utf8(request("GET", &format!("{base}/metrics"), None, &[])?.body)?;
    assert!(m.contains("va_active_live_pipelines{pipeline_topology=\"CVRToVideoSink\"} 1"), "{m}");
    let received = m
        .lines()
        .find(|l| l.starts_with("va_received_bytes_total{live_pipeline=\"Sample-Pipeline-1\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(received > 100_000, "{m}");

    // Deactivate (waits for the last fragment), delete everything, idempotently.
    let (st, _) = method(&base, "livePipelineDeactivate", &name)?;
    assert_eq!(st, 200);
    events.wait_for("RecordingStopped", Duration::from_secs(5))?;
    let (st, _) = method(&base, "livePipelineDeactivate", &name)?;
    assert_eq!(st, 200, "deactivate is idempotent");
    let v = request("GET", &format!("{base}/api/videos/tutorial-video"), None, &[])?.json()?;
    assert_eq!(v["properties"]["flags"]["isInUse"], false);
    let (st, _) = method(&base, "livePipelineDelete", &name)?;
    assert_eq!(st, 200);
    let (st, _) = method(&base, "livePipelineDelete", &name)?;
    assert_eq!(st, 204);
    let (st, _) = method(&base, "pipelineTopologyDelete", &topo_name)?;
    assert_eq!(st, 200);
    let (st, list) = method(&base, "livePipelineList", &json!({"@apiVersion": "1.1"}))?;
    assert_eq!((st, list), (200, json!({"value": []})));
    let (st, list) = method(&base, "pipelineTopologyList", &json!({"@apiVersion": "1.1"}))?;
    assert_eq!((st, list), (200, json!({"value": []})));

    // The order of the pipeline's events.
    let types = events.types();
    let pos = |t: &str| types.iter().position(|x| x == t).unwrap_or(usize::MAX);
    assert!(pos("RecordingStarted") < pos("RecordingAvailable"), "{types:?}");
    assert!(pos("MediaSessionEstablished") < pos("RecordingAvailable"), "{types:?}");
    assert!(pos("RecordingAvailable") < pos("RecordingStopped"), "{types:?}");
    let st = host.terminate(Duration::from_secs(15))?;
    assert!(st.success(), "host exited with {st}");
    Ok(())
}

#[test]
fn rest_resources_and_camera_errors() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-rest");
    let (_gst, cam) = start_gst(free_port(), "digest")?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, Some("wrong-creds"))?;
    let body = topology().to_string();
    let put = request("PUT", &format!("{base}/api/pipelineTopologies/CVRToVideoSink"), Some(body.as_bytes()), &[])?;
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    let got = request("GET", &format!("{base}/api/pipelineTopologies/CVRToVideoSink"), None, &[])?.json()?;
    assert_eq!(got["name"], "CVRToVideoSink");
    // Name in the body must agree with the URL.
    let other = request("PUT", &format!("{base}/api/pipelineTopologies/Other"), Some(body.as_bytes()), &[])?;
    assert_eq!(other.status, 400);
    // A pipeline with wrong credentials: activation succeeds (AVA keeps retrying while
    // active) and the failures come as events, filtered to this pipeline.
    let p = json!({"properties": {"topologyName": "CVRToVideoSink", "parameters": [
        {"name": "rtspUrl", "value": cam}, {"name": "rtspUserName", "value": "admin"},
        {"name": "rtspPassword", "value": "wrong"}, {"name": "videoName", "value": "v-wrong"}]}});
    let put = request("PUT", &format!("{base}/api/livePipelines/wrong-creds"), Some(p.to_string().as_bytes()), &[])?;
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    let act = request("POST", &format!("{base}/api/livePipelines/wrong-creds/activate"), None, &[])?;
    assert_eq!(act.status, 200);
    let e = events.wait_for("AuthenticationError", Duration::from_secs(20))?;
    assert_eq!(e["body"]["code"], "401");
    assert!(!e.to_string().contains("wrong\""), "{e}");
    // A second pipeline into the same video is refused while the first records.
    let p2 = p.to_string().replace("wrong-creds", "x");
    let put = request("PUT", &format!("{base}/api/livePipelines/second"), Some(p2.as_bytes()), &[])?;
    assert_eq!(put.status, 201);
    let act = request("POST", &format!("{base}/api/livePipelines/second/activate"), None, &[])?;
    assert_eq!(act.status, 409, "{}", String::from_utf8_lossy(&act.body));
    assert_eq!(act.json()?["error"]["details"][0]["code"], "ResourceValidationError");
    let list = request("GET", &format!("{base}/api/livePipelines"), None, &[])?.json()?;
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    let de = request("POST", &format!("{base}/api/livePipelines/wrong-creds/deactivate"), None, &[])?;
    assert_eq!(de.status, 200);
    // A stored secret cannot be turned into a readable value by changing its declared type.
    let mut t = topology();
    t["properties"]["parameters"][2]["type"] = json!("String");
    assert_eq!(t["properties"]["parameters"][2]["name"], "rtspPassword");
    let r =
        request("PUT", &format!("{base}/api/pipelineTopologies/CVRToVideoSink"), Some(t.to_string().as_bytes()), &[])?;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("SecretString"));
    for p in ["wrong-creds", "second"] {
        let del = request("DELETE", &format!("{base}/api/livePipelines/{p}"), None, &[])?;
        assert_eq!(del.status, 200);
    }
    let del = request("DELETE", &format!("{base}/api/pipelineTopologies/CVRToVideoSink"), None, &[])?;
    assert_eq!(del.status, 200);
    // Other pipelines' events were filtered out.
    assert!(events.all().iter().all(|e| {
        e["applicationProperties"]["subject"].as_str().is_some_and(|s| s.starts_with("/livePipelines/wrong-creds/"))
    }));
    Ok(())
}

#[test]
fn a_stuck_camera_does_not_hold_up_another_pipeline() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-isolation");
    // A "camera" that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hole_url = format!("rtsp://{}/stuck", hole.local_addr()?);
    let _held: std::thread::JoinHandle<()> = std::thread::spawn(move || {
        let mut conns = Vec::new();
        for c in hole.incoming().flatten() {
            conns.push(c);
        }
    });
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, Some("good"))?;
    assert_eq!(method(&base, "pipelineTopologySet", &topology())?.0, 201);
    for (name, url) in [("stuck", hole_url.as_str()), ("good", &format!("{cam}good"))] {
        let p = json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": "CVRToVideoSink",
            "parameters": [{"name": "rtspUrl", "value": url}, {"name": "videoName", "value": name}]}});
        assert_eq!(method(&base, "livePipelineSet", &p)?.0, 201);
        assert_eq!(method(&base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": name}))?.0, 200);
    }
    // The good pipeline records while the stuck one waits on its camera.
    events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    let (st, list) = method(&base, "livePipelineList", &json!({"@apiVersion": "1.1"}))?;
    assert_eq!(st, 200);
    assert!(list["value"].as_array().unwrap().iter().all(|p| p["properties"]["state"] == "active"), "{list}");
    // The stuck one deactivates without waiting for its camera's timeout.
    let (st, _) = method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "stuck"}))?;
    assert_eq!(st, 200);
    let am = request("GET", &format!("{base}/api/videos/good/availableMedia"), None, &[])?.json()?;
    assert_eq!(am["timeRanges"].as_array().map(Vec::len), Some(1), "{am}");
    let stuck = request("GET", &format!("{base}/api/videos/stuck"), None, &[])?.json()?;
    assert_eq!(stuck["properties"]["flags"]["hasData"], false, "{stuck}");
    Ok(())
}
