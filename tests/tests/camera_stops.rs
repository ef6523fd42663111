//! A camera that stops sending (frozen, connection still open): the recorder notices within
//! its timeout, ends the run, keeps retrying, and records again when the camera resumes.

use openva_e2e::*;
use std::time::Duration;

#[test]
fn frozen_camera_is_detected_and_recording_resumes() -> anyhow::Result<()> {
    let tmp = TempDir::new("frozen");
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let (sim, url) = start_sim(free_port(), &["--size", "640x360"])?;
    let pid = sim.child.id().to_string();
    let mut rec = spawn_openva(&["record", "--data", d, "--video", "cam", "--url", &url])?;
    std::thread::sleep(Duration::from_secs(4));
    // Freeze the camera: its sockets stay open but nothing is sent or answered.
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status()?.success());
    let frozen_at = now_ms();
    std::thread::sleep(Duration::from_secs(13));
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status()?.success());
    std::thread::sleep(Duration::from_secs(6));
    assert!(rec.terminate(Duration::from_secs(10))?.success());

    let r = openva_json(&["ranges", "--data", d, "--video", "cam"])?;
    let ranges = r["timeRanges"].as_array().unwrap();
    assert!(ranges.len() >= 2, "the freeze must split the recording: {r}");
    let first_end = iso_ms(ranges[0]["end"].as_str().unwrap())?;
    assert!((first_end - frozen_at).abs() <= 1_000, "first range ends {} ms from the freeze", first_end - frozen_at);
    let last = &ranges[ranges.len() - 1];
    let resumed = iso_ms(last["end"].as_str().unwrap())? - iso_ms(last["start"].as_str().unwrap())?;
    assert!(resumed >= 3_000, "recording did not resume after the camera came back: {r}");
    let check = openva_json(&["check", "--data", d])?;
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    drop(sim);
    Ok(())
}
