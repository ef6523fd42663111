//! A camera killed and restarted mid-recording: the recorder reconnects by itself, and the
//! archive shows two ranges whose gap is within 1 s of the outage.

use openva_e2e::*;
use std::time::{Duration, Instant};

#[test]
fn camera_outage_is_recorded_as_a_gap() -> anyhow::Result<()> {
    let tmp = TempDir::new("outage");
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let port = free_port();
    let sim_args = ["--size", "640x360", "--gop", "25"];
    let (mut sim, url) = start_sim(port, &sim_args)?;
    let mut rec = spawn_openva(&["record", "--data", data_s, "--video", "cam", "--url", &format!("{url}x")])?;
    std::thread::sleep(Duration::from_secs(6));
    sim.kill9()?;
    let down = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let (_sim2, _) = start_sim(port, &sim_args)?;
    let outage = down.elapsed();
    std::thread::sleep(Duration::from_secs(6));
    let st = rec.terminate(Duration::from_secs(10))?;
    assert!(st.success(), "recorder exited with {st}");

    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
    let r = ranges["timeRanges"].as_array().unwrap();
    assert_eq!(r.len(), 2, "expected two ranges around the outage: {ranges}");
    let gap = iso_ms(r[1]["start"].as_str().unwrap())? - iso_ms(r[0]["end"].as_str().unwrap())?;
    let outage_ms = outage.as_millis() as i64;
    assert!((gap - outage_ms).abs() <= 1_000, "gap {gap} ms vs outage {outage_ms} ms");

    // One export across the gap: one file, the gap reported, and it decodes.
    let out = tmp.path().join("across.mp4");
    let exp = export(&data, "cam", r[0]["start"].as_str().unwrap(), r[1]["end"].as_str().unwrap(), &out)?;
    let gaps = exp["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{exp}");
    let g = iso_ms(gaps[0]["end"].as_str().unwrap())? - iso_ms(gaps[0]["start"].as_str().unwrap())?;
    assert!((g - gap).abs() <= 100, "export gap {g} ms vs ranges gap {gap} ms");
    ffmpeg_decodes(&out)?;
    let check = openva_json(&["check", "--data", data_s])?;
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    Ok(())
}
