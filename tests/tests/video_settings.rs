//! AVA's rule for video settings (issue 14): creation properties apply when a video is created;
//! a later `openva record`, pipeline or topology naming the video never changes its retention,
//! size cap or segment length. Changing them is an explicit update: `openva video set` and
//! `PATCH /api/videos/{name}`, whose retention and cap apply at once (a segment length from a
//! recording video's next segment) and which the host publishes as `VideoUpdated`.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn fails_with(args: &[&str], needles: &[&str]) -> anyhow::Result<()> {
    let out = openva(args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "openva {args:?} succeeded");
    let last = err.lines().last().unwrap_or("");
    for n in needles {
        assert!(last.starts_with("error: ") && last.contains(n), "openva {args:?}: expected '{n}' in: {err}");
    }
    Ok(())
}

/// The reproduction from the issue, on the command line: a second `record` with a small
/// `--max-bytes` used to delete the video at once; now it is refused and deletes nothing.
#[test]
fn record_never_changes_an_existing_videos_settings() -> anyhow::Result<()> {
    let tmp = TempDir::new("settings-cli");
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360"])?;
    let rec = |extra: &[&str]| {
        let mut a = vec!["record", "--data", d, "--video", "cam", "--url", &url, "--duration", "3"];
        a.extend_from_slice(extra);
        openva_json(&a)
    };
    rec(&["--retention", "P7D"])?;
    let ranges = || openva_json(&["ranges", "--data", d, "--video", "cam"]);
    let before = ranges()?;
    let first = before["timeRanges"][0].clone();
    assert!(first.is_object(), "{before}");

    let base = ["record", "--data", d, "--video", "cam", "--url", url.as_str(), "--duration", "2"];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    fails_with(&with(&["--max-bytes", "1000000"]), &["--max-bytes 1000000 (it has none)", "openva video set"])?;
    fails_with(&with(&["--retention", "P1D"]), &["--retention P1D (it has P7D)"])?;
    fails_with(&with(&["--segment-length", "PT1M"]), &["--segment-length PT60S (it has PT30S)"])?;
    assert_eq!(ranges()?, before, "a refused record touches nothing");

    // The same settings, or none: it records and keeps them.
    rec(&["--retention", "P7D", "--segment-length", "PT30S"])?;
    rec(&[])?;
    let after = ranges()?;
    assert_eq!(after["timeRanges"][0]["start"], first["start"], "{after}");

    // The explicit change.
    let v = openva_json(&[
        "video",
        "set",
        "--data",
        d,
        "--video",
        "cam",
        "--retention",
        "P30D",
        "--max-bytes",
        "500000000",
        "--segment-length",
        "PT1M",
        "--title",
        "Yard",
    ])?;
    assert_eq!(
        (&v["retentionPeriod"], &v["maxBytes"], &v["segmentLength"], &v["title"]),
        (&json!("P30D"), &json!(500_000_000), &json!("PT60S"), &json!("Yard")),
        "{v}"
    );
    let v = openva_json(&["video", "set", "--data", d, "--video", "cam", "--max-bytes", "none"])?;
    assert_eq!((&v["maxBytes"], &v["retentionPeriod"]), (&Value::Null, &json!("P30D")), "{v}");
    fails_with(&with(&["--retention", "P7D"]), &["(it has P30D)"])?;
    rec(&["--retention", "P30D", "--segment-length", "PT1M"])?;

    // Bad changes are refused with what is wrong.
    let set = |extra: &[&'static str]| [&["video", "set", "--data", d, "--video", "cam"][..], extra].concat();
    fails_with(&set(&["--segment-length", "PT45S"]), &["30 seconds to 5 minutes"])?;
    fails_with(&set(&["--retention", "soon"]), &["--retention"])?;
    fails_with(&set(&["--max-bytes", "0"]), &["positive"])?;
    fails_with(&set(&[]), &["nothing to change"])?;
    fails_with(&["video", "set", "--data", d, "--video", "nope", "--retention", "P1D"], &["unknown video 'nope'"])?;
    let report = openva_json(&["check", "--data", d])?;
    assert_eq!(report["problems"], json!([]), "{report}");
    Ok(())
}

fn tutorial_topology() -> Value {
    let text = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn pipeline(name: &str, topology: &str, cam: &str) -> Value {
    json!({"@apiVersion": "1.1", "name": name, "properties": {"topologyName": topology, "parameters": [
        {"name": "rtspUrl", "value": cam}, {"name": "videoName", "value": "door"}]}})
}

fn call_ok(base: &str, m: &str, payload: &Value) -> anyhow::Result<Value> {
    let (st, reply) = method(base, m, payload)?;
    anyhow::ensure!(st < 300, "{m}: {st} {reply}");
    Ok(reply)
}

/// Waits until `n` events of type `short` have arrived; returns the n-th.
fn nth_event(events: &Events, short: &str, n: usize, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Value> = events
            .all()
            .into_iter()
            .filter(|e| {
                e["applicationProperties"]["eventType"].as_str().is_some_and(|t| t.ends_with(&format!(".{short}")))
            })
            .collect();
        if found.len() >= n {
            return Ok(found[n - 1].clone());
        }
        anyhow::ensure!(Instant::now() < deadline, "{n} {short} events not seen; got {:?}", events.types());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Over the API: the tutorial's topology keeps 7 days (its cache size is no cap); a second
/// topology naming the video with other settings changes nothing and deletes nothing; a PATCH
/// changes them, is published, and is checked field by field.
#[test]
fn pipelines_never_change_settings_and_patch_does() -> anyhow::Result<()> {
    let tmp = TempDir::new("settings-api");
    let data = tmp.path().join("data");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360"])?;
    let (mut host, base) = start_host(&data, &[])?;
    let events = Events::subscribe(&base, None)?;
    let video = |b: &str| -> anyhow::Result<Value> {
        let r = request("GET", &format!("{b}/api/videos/door"), None, &[])?;
        anyhow::ensure!(r.status == 200, "GET video: {}", r.status);
        r.json()
    };

    call_ok(&base, "pipelineTopologySet", &tutorial_topology())?;
    call_ok(&base, "livePipelineSet", &pipeline("p1", "CVRToVideoSink", &cam))?;
    call_ok(&base, "livePipelineActivate", &json!({"name": "p1"}))?;
    nth_event(&events, "RecordingAvailable", 1, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(3));
    call_ok(&base, "livePipelineDeactivate", &json!({"name": "p1"}))?;
    let v = video(&base)?;
    assert_eq!(v["properties"]["archival"], json!({"retentionPeriod": "P7D"}), "{v}");
    assert_eq!(v["properties"]["mediaInfo"]["segmentLength"], "PT30S");
    let media = |b: &str| -> anyhow::Result<Value> {
        request("GET", &format!("{b}/api/videos/door/availableMedia"), None, &[])?.json()
    };
    let first = media(&base)?["timeRanges"][0]["start"].clone();
    assert!(first.is_string());

    // Another topology names the same video with a 1 MiB cap, 1 day and 1 minute segments.
    let mut other = tutorial_topology();
    other["name"] = json!("Other");
    let sink = &mut other["properties"]["sinks"][0];
    sink["videoCreationProperties"] =
        json!({"title": "Other", "retentionPeriod": "P1D", "segmentLength": "PT1M", "maximumSizeMiB": "1"});
    call_ok(&base, "pipelineTopologySet", &other)?;
    call_ok(&base, "livePipelineSet", &pipeline("p2", "Other", &cam))?;
    call_ok(&base, "livePipelineActivate", &json!({"name": "p2"}))?;
    nth_event(&events, "RecordingAvailable", 2, Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(3));
    let v = video(&base)?;
    assert_eq!(v["properties"]["archival"], json!({"retentionPeriod": "P7D"}), "{v}");
    assert_eq!(v["properties"]["mediaInfo"]["segmentLength"], "PT30S");
    assert_eq!(v["properties"]["title"], "Sample CVR video");
    assert_eq!(media(&base)?["timeRanges"][0]["start"], first, "nothing deleted");

    // The explicit update, while p2 records.
    let patch = |body: &str| request("PATCH", &format!("{base}/api/videos/door"), Some(body.as_bytes()), &[]);
    let r = patch(
        r#"{"properties": {"title": "Front door", "archival": {"retentionPeriod": "P30D", "maximumSizeMiB": 4096}}}"#,
    )?;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json()?;
    assert_eq!(v["properties"]["archival"], json!({"retentionPeriod": "P30D", "maximumSizeMiB": 4096}), "{v}");
    assert_eq!(v["properties"]["title"], "Front door");
    let e = nth_event(&events, "VideoUpdated", 1, Duration::from_secs(5))?;
    assert_eq!(e["applicationProperties"]["subject"], "/videos/door");
    assert_eq!(e["body"]["archival"], json!({"retentionPeriod": "P30D", "maximumSizeMiB": 4096}), "{e}");
    assert_eq!(e["body"]["mediaInfo"]["segmentLength"], "PT30S");
    // A fetched entity sent back changes nothing.
    let r = patch(&video(&base)?.to_string())?;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()?["properties"]["archival"], v["properties"]["archival"]);

    // Refusals name what is wrong; nothing changes.
    for (body, status, needle) in [
        (r#"{"properties": {"archival": {"retentionPeriod": "PT1H"}}}"#, 400, "properties.archival.retentionPeriod"),
        (r#"{"properties": {"archival": {"maximumSizeMiB": -5}}}"#, 400, "properties.archival.maximumSizeMiB"),
        (r#"{"properties": {"mediaInfo": {"segmentLength": "PT7S"}}}"#, 400, "properties.mediaInfo.segmentLength"),
        (r#"{"properties": {"retention": "P1D"}}"#, 400, "properties.retention"),
        (r#"{"properties": "#, 400, "JSON"),
    ] {
        let r = patch(body)?;
        let reply = r.json()?;
        assert_eq!(r.status, status, "{body}: {reply}");
        let msg = reply["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains(needle), "{body}: {reply}");
    }
    let r = request("PATCH", &format!("{base}/api/videos/nope"), Some(br#"{"properties": {"title": "x"}}"#), &[])?;
    assert_eq!(r.status, 404);
    assert_eq!(video(&base)?["properties"]["archival"], v["properties"]["archival"]);

    // The command line through the host's API: published too.
    let out = openva_json(&["video", "set", "--host", &base, "--video", "door", "--retention", "none"])?;
    assert_eq!(out["properties"]["archival"], json!({"maximumSizeMiB": 4096}), "{out}");
    let e = nth_event(&events, "VideoUpdated", 2, Duration::from_secs(5))?;
    assert_eq!(e["body"]["archival"], json!({"maximumSizeMiB": 4096}), "{e}");
    call_ok(&base, "livePipelineDeactivate", &json!({"name": "p2"}))?;
    host.terminate(Duration::from_secs(20))?;
    let report = openva_json(&["check", "--data", data.to_str().unwrap()])?;
    assert_eq!(report["problems"], json!([]), "{report}");
    Ok(())
}
