//! `kill -9` while recording, repeated: each crash loses at most the fragment in flight
//! (≤ 2 s), the next recording recovers the open segment, `openva check` is then clean, every
//! segment decodes, and `check --repair` rebuilds the same index from the files alone.

use openva_e2e::*;
use std::time::Duration;

#[test]
fn kill_dash_nine_loses_at_most_the_fragment_in_flight() -> anyhow::Result<()> {
    let tmp = TempDir::new("crash");
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360"])?;
    let cam = format!("{url}cam");
    // Varying run times so the kill lands at different points of fragments and segments.
    for (i, ms) in [3_300u64, 4_650, 2_900, 5_200].iter().enumerate() {
        let mut rec = spawn_openva(&["record", "--data", data_s, "--video", "cam", "--url", &cam])?;
        std::thread::sleep(Duration::from_millis(*ms));
        let killed_at = now_ms();
        rec.kill9()?;
        // Recording again recovers the open segment the crash left behind.
        let out = openva_json(&["record", "--data", data_s, "--video", "cam", "--url", &cam, "--duration", "1.5"])?;
        assert!(out["frames"].as_u64().unwrap() > 0);
        let ranges = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
        let r = ranges["timeRanges"].as_array().unwrap();
        // The range that holds the killed run ends within 2 s before the kill.
        let ended = r
            .iter()
            .filter_map(|x| iso_ms(x["end"].as_str()?).ok())
            .filter(|&e| e <= killed_at + 200)
            .max()
            .expect("the killed run left no media");
        let lost = killed_at - ended;
        assert!(lost <= 2_000, "crash {i}: lost {lost} ms of video (killed at {killed_at}, data ends {ended})");
        let check = openva_json(&["check", "--data", data_s])?;
        assert_eq!(check["problems"].as_array().unwrap().len(), 0, "crash {i}: {check}");
    }
    for seg in segment_files(&data, "cam")? {
        ffmpeg_decodes(&seg)?;
    }
    // Rebuild from files alone: same segments and frames, same ranges (to the ms).
    let before = openva_json(&["check", "--data", data_s])?;
    let ranges_before = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
    let repaired = openva_json(&["check", "--data", data_s, "--repair"])?;
    assert_eq!(repaired["segments"], before["segments"], "{repaired} vs {before}");
    assert_eq!(repaired["frames"], before["frames"], "{repaired} vs {before}");
    let after = openva_json(&["check", "--data", data_s])?;
    assert_eq!(after["problems"].as_array().unwrap().len(), 0, "{after}");
    let ranges_after = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
    let (rb, ra) = (ranges_before["timeRanges"].as_array().unwrap(), ranges_after["timeRanges"].as_array().unwrap());
    assert_eq!(rb.len(), ra.len(), "{ranges_before} vs {ranges_after}");
    for (b, a) in rb.iter().zip(ra) {
        for k in ["start", "end"] {
            let d = iso_ms(b[k].as_str().unwrap())? - iso_ms(a[k].as_str().unwrap())?;
            assert!(d.abs() <= 50, "{k} moved by {d} ms in the rebuild: {ranges_before} vs {ranges_after}");
        }
    }
    Ok(())
}
