//! The archive's ownership and resume rules (issue 14): one process writes a data directory
//! (a second writer, `check --repair` or `video set --data` beside a running host is refused
//! with the holder's pid), and a pipeline whose video cannot be opened when the host starts is
//! retried with an event each time until it records again, never left inactive silently.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::time::Duration;

/// The last stderr line of a failing `openva` command.
fn error_of(args: &[&str]) -> anyhow::Result<String> {
    let out = openva(args)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(!out.status.success(), "openva {args:?} succeeded: {err}");
    anyhow::ensure!(!err.contains("panicked"), "openva {args:?} panicked: {err}");
    Ok(err.lines().last().unwrap_or("").to_owned())
}

#[test]
fn one_process_writes_a_data_directory() -> anyhow::Result<()> {
    let tmp = TempDir::new("one-writer");
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360"])?;
    openva_json(&["record", "--data", d, "--video", "cam", "--url", &url, "--duration", "2"])?;
    let (mut host, _base) = start_host(&data, &[])?;
    let holder = format!("in use by openva serve (pid {})", host.child.id());
    for args in [
        vec!["record", "--data", d, "--video", "other", "--url", &url, "--duration", "2"],
        vec!["check", "--data", d, "--repair"],
        vec!["serve", "--data", d, "--listen", "127.0.0.1:0"],
    ] {
        let e = error_of(&args)?;
        assert!(e.starts_with("error: ") && e.contains(&holder), "{args:?}: {e}");
    }
    let e = error_of(&["video", "set", "--data", d, "--video", "cam", "--retention", "P1D"])?;
    assert!(e.contains(&holder) && e.contains("--host"), "{e}");
    // Readers read beside it.
    let report = openva_json(&["check", "--data", d])?;
    assert_eq!(report["problems"], json!([]), "{report}");
    openva_json(&["ranges", "--data", d, "--video", "cam"])?;
    assert!(host.terminate(Duration::from_secs(15))?.success());
    // Once it has stopped, the directory is free again.
    let report = openva_json(&["check", "--data", d, "--repair"])?;
    assert_eq!(report["problems"], json!([]), "{report}");
    Ok(())
}

fn events_of(events: &Events, short: &str) -> Vec<Value> {
    events
        .all()
        .into_iter()
        .filter(|e| e["applicationProperties"]["eventType"].as_str().is_some_and(|t| t.ends_with(&format!(".{short}"))))
        .collect()
}

#[test]
fn a_video_that_cannot_be_opened_at_start_is_retried_until_it_records() -> anyhow::Result<()> {
    let tmp = TempDir::new("resume-retry");
    let data = tmp.path().join("data");
    let (_sim, cam) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let (mut host, base) = start_host(&data, &[])?;
    record_tutorial(&base, "p", &cam, "cam")?;
    let name = json!({"@apiVersion": "1.1", "name": "p"});
    std::thread::sleep(Duration::from_secs(5));
    host.kill9()?;

    // The video's directory is unusable when the host comes back (a plain file in its place).
    let dir = data.join("videos/cam");
    let away = data.join("videos/cam.away");
    std::fs::rename(&dir, &away)?;
    std::fs::write(&dir, b"not a directory")?;
    let (mut host, base) = start_host(&data, &[])?;
    let events = Events::subscribe(&base, None)?;
    let (st, got) = method(&base, "livePipelineGet", &name)?;
    assert_eq!((st, &got["properties"]["state"]), (200, &json!("active")), "{got}");
    // Retried, with an event each time (1 s, then 2 s, …).
    wait_until("two StorageError events", Duration::from_secs(20), || {
        Ok(events_of(&events, "StorageError").len() >= 2)
    })?;
    let e = &events_of(&events, "StorageError")[0];
    assert_eq!(e["applicationProperties"]["subject"], "/livePipelines/p/sinks/videoSink", "{e}");
    assert!(e["body"]["message"].as_str().unwrap().contains("cannot open video 'cam'"), "{e}");
    assert!(events_of(&events, "RecordingAvailable").is_empty());

    // The disk is fixed: recording resumes by itself, with what was recorded before intact.
    std::fs::remove_file(&dir)?;
    std::fs::rename(&away, &dir)?;
    wait_until("RecordingAvailable", Duration::from_secs(40), || {
        Ok(!events_of(&events, "RecordingAvailable").is_empty())
    })?;
    std::thread::sleep(Duration::from_secs(4));
    let am = request("GET", &format!("{base}/api/videos/cam/availableMedia"), None, &[])?.json()?;
    let ranges = am["timeRanges"].as_array().unwrap();
    assert_eq!(ranges.len(), 2, "before and after the outage: {am}");
    let before = iso_ms(ranges[0]["end"].as_str().unwrap())? - iso_ms(ranges[0]["start"].as_str().unwrap())?;
    assert!(before >= 3_000, "what was recorded before the crash is kept: {am}");
    assert!(host.terminate(Duration::from_secs(15))?.success());
    let report = openva_json(&["check", "--data", data.to_str().unwrap()])?;
    assert_eq!(report["problems"], json!([]), "{report}");
    Ok(())
}
