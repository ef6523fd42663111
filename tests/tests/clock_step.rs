//! A host whose wall clock steps during a recording (NTP after a boot without a real-time
//! clock): the recorder runs under Debian's libfaketime, its wall clock offset read from a file
//! on every call and its monotonic and boot clocks left alone, and the offset jumps 3 days
//! forward mid-recording. What was recorded before the step stays dated by the clock of the
//! time, what follows is dated by the new one, in a new run that starts at the next keyframe
//! with no frame lost; and age retention (P1D) does not delete the video from before the step,
//! whose wall-clock date now looks 3 days old but which the boot clock knows is seconds old.

use openva_e2e::*;
use std::time::Duration;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const W: usize = 640;

#[test]
fn a_host_clock_step_starts_a_new_run_and_retention_keeps_fresh_video() -> anyhow::Result<()> {
    anyhow::ensure!(std::path::Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing (apt-get install faketime)");
    let tmp = TempDir::new("clock-step");
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360", "--gop", "25"])?;
    let offset = tmp.path().join("faketime");
    std::fs::write(&offset, "+0\n")?;
    let data = tmp.path().join("data");
    let recorder = std::process::Command::new(openva_bin())
        .args(["record", "--data", data.to_str().unwrap(), "--video", "cam", "--url", &format!("{url}cam")])
        .args(["--retention", "P1D"])
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME_TIMESTAMP_FILE", &offset)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(6));
    let stepped_at = now_ms();
    std::fs::write(&offset, "+3d\n")?;
    std::thread::sleep(Duration::from_secs(6));
    let st = std::process::Command::new("kill").arg("-TERM").arg(recorder.id().to_string()).status()?;
    anyhow::ensure!(st.success());
    let out = recorder.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "recorder failed");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(summary["runs"], 1, "one RTSP session: {summary}");
    assert_eq!(summary["received"], summary["frames"], "every frame stored: {summary}");

    // AVA's full precision covers at most 25 h a query: before the step, and 3 days on.
    let three_days = 3 * 86_400_000;
    let mut r = Vec::new();
    for around in [stepped_at, stepped_at + three_days] {
        let (a, b) = (ms_iso(around - 3_600_000), ms_iso(around + 3_600_000));
        let ranges =
            openva_json(&["ranges", "--data", data.to_str().unwrap(), "--video", "cam", "--start", &a, "--end", &b])?;
        r.extend(ranges["timeRanges"].as_array().cloned().unwrap_or_default());
    }
    assert_eq!(r.len(), 2, "before and after the step: {r:?}");
    let ms = |i: usize, k: &str| iso_ms(r[i][k].as_str().unwrap()).unwrap();
    // Before: dated by the clock of the time, up to the first keyframe after the step (1 s GOPs).
    assert!((ms(0, "end") - stepped_at).abs() <= 1_500, "first run ends at {} (step at {stepped_at})", ms(0, "end"));
    // After: dated by the new clock, continuing exactly where the first run ended, 3 days on.
    let jump = ms(1, "start") - ms(0, "end");
    assert!((jump - three_days).abs() <= 100, "the second run starts {jump} ms after the first ends");

    // Both halves hold the camera's frames without a gap: the stamps continue across the step.
    let mut stamps = Vec::new();
    for (i, range) in r.iter().enumerate() {
        let f = tmp.path().join(format!("part{i}.mp4"));
        export(&data, "cam", range["start"].as_str().unwrap(), range["end"].as_str().unwrap(), &f)?;
        let s = frame_stamps(&f, W)?;
        // Dated truly: the picture's capture stamp (real time) against the range's date.
        let shift = if i == 0 { 0 } else { three_days };
        assert!(
            (s[0] + shift - ms(i, "start")).abs() <= 300,
            "part {i} starts at {} for a frame of {}",
            ms(i, "start"),
            s[0]
        );
        stamps.extend(s);
    }
    assert!(stamps.windows(2).all(|w| w[1] - w[0] == 40), "a frame lost or repeated at the step");

    // Retention ran when the first run's segment closed, by a clock 3 days ahead: the segment is
    // seconds old by the boot clock, and kept.
    let check = openva_json(&["check", "--data", data.to_str().unwrap()])?;
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    assert_eq!(check["segments"], 2, "{check}");
    Ok(())
}
