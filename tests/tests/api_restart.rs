//! The host killed (`kill -9`) while a pipeline records, then restarted: the pipeline comes back
//! active by itself and keeps recording into the same video; the archive shows one gap. Also
//! AVA's operations script, run unchanged by `openva operations`, and `openva demo`.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[test]
fn host_kill9_resumes_active_pipeline() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-restart");
    let data = tmp.path().join("data");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (mut host, base) = start_host(&data, &[])?;
    record_tutorial(&base, "cam1", &format!("{cam}cam1"), "cam1")?;
    let name = json!({"@apiVersion": "1.1", "name": "cam1"});
    std::thread::sleep(Duration::from_secs(7));
    host.kill9()?;
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let (mut host, base) = start_host(&data, &[])?;
    let outage = down.elapsed();
    let (st, got) = method(&base, "livePipelineGet", &name)?;
    assert_eq!(st, 200);
    assert_eq!(got["properties"]["state"], "active", "{got}");
    // The index of a growing segment is committed every 3 s, so give it time to show.
    std::thread::sleep(Duration::from_secs(9));
    let am = request("GET", &format!("{base}/api/videos/cam1/availableMedia"), None, &[])?.json()?;
    let r = am["timeRanges"].as_array().unwrap();
    assert_eq!(r.len(), 2, "one gap expected: {am}");
    let gap = iso_ms(r[1]["start"].as_str().unwrap())? - iso_ms(r[0]["end"].as_str().unwrap())?;
    // The gap covers the outage plus the restart; at most the last fragment (≤ 2 s) is lost.
    let outage_ms = outage.as_millis() as i64;
    assert!(gap >= outage_ms - 1_000 && gap <= outage_ms + 3_000, "gap {gap} ms, outage {outage_ms} ms");
    let later = iso_ms(r[1]["end"].as_str().unwrap())? - iso_ms(r[1]["start"].as_str().unwrap())?;
    assert!(later >= 3_000, "recording resumed only {later} ms: {am}");
    // A clean stop keeps it active for the next start, too.
    assert!(host.terminate(Duration::from_secs(15))?.success());
    let (_host, base) = start_host(&data, &[])?;
    let (_, got) = method(&base, "livePipelineGet", &name)?;
    assert_eq!(got["properties"]["state"], "active", "{got}");
    Ok(())
}

#[test]
fn operations_script_runs_unchanged() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-ops");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360"])?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    // AVA's script as published, with only its placeholders filled in (there is no internet
    // here: the topology comes from a local path, the camera is the simulator).
    let script = std::fs::read_to_string(
        repo_root().join("tests/corpus/ava/operations/video-analyzer-iot-edge-python-operations.json"),
    )?;
    let topo_path = repo_root().join("topologies/cvr-video.json");
    let script = script
        .replace("https://<update_url_to_topology.json>", &format!("file://{}", topo_path.display()))
        .replace("rtsp://rtspsim:554/media/camera-300s.mkv", &format!("{cam}ops"))
        .replace("\"TopologyName\"", "\"CVRToVideoSink\"");
    let file = tmp.path().join("operations.json");
    std::fs::write(&file, script)?;
    let out = openva(&["operations", file.to_str().unwrap(), "--host", &base, "--yes"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for op in ["pipelineTopologySet", "livePipelineSet", "livePipelineActivate", "livePipelineDeactivate"] {
        assert!(stdout.contains(&format!("Executing operation {op}")), "{stdout}");
    }
    assert!(stdout.contains("status: 201"), "{stdout}");
    assert!(!stdout.contains("testpassword"), "a secret was printed: {stdout}");
    // Everything was cleaned up by the script.
    let (_, list) = method(&base, "pipelineTopologyList", &json!({"@apiVersion": "1.1"}))?;
    assert_eq!(list, json!({"value": []}));
    // The same script with the topology fetched over HTTP.
    let port = free_port();
    let mut web = std::process::Command::new("/usr/bin/python3")
        .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
        .arg(repo_root().join("topologies"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let web_url = format!("http://127.0.0.1:{port}/cvr-video.json");
    for _ in 0..100 {
        if request("GET", &web_url, None, &[]).is_ok_and(|r| r.status == 200) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let script = std::fs::read_to_string(&file)?.replace(&format!("file://{}", topo_path.display()), &web_url);
    std::fs::write(&file, script)?;
    let out = openva(&["operations", file.to_str().unwrap(), "--host", &base, "--yes"])?;
    let _ = web.kill();
    let _ = web.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("status: 201"));
    // `openva call` prints status and payload.
    let out = openva(&["call", "livePipelineList", "--host", &base])?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v, json!({"status": 200, "payload": {"value": []}}));
    Ok(())
}

#[test]
fn demo_records_and_exports() -> anyhow::Result<()> {
    let tmp = TempDir::new("demo");
    let data = tmp.path().join("demo-data");
    let mp4 = tmp.path().join("demo.mp4");
    let args = ["demo", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0", "--seconds", "8", "-o"];
    let v = openva_json(&[&args[..], &[mp4.to_str().unwrap()]].concat())?;
    assert!(v["availableMedia"]["timeRanges"].as_array().is_some_and(|r| !r.is_empty()), "{v}");
    ffmpeg_decodes(&mp4)?;
    // A second run reuses the data directory and the same video: the first run's range is
    // kept and the new recording follows it (as a range of its own, or two if the host's
    // clock stepped meanwhile, which a busy VM's clock does: docs/archive.md, "Clock steps").
    let first = v["availableMedia"]["timeRanges"][0].clone();
    let v = openva_json(&[&args[..], &[mp4.to_str().unwrap()]].concat())?;
    let ranges = v["availableMedia"]["timeRanges"].as_array().cloned().unwrap_or_default();
    assert!(ranges.len() >= 2 && ranges[0] == first, "{v}");
    Ok(())
}
