//! A full disk: recording stops with a one-line error naming the problem and a non-zero exit,
//! and what was recorded before stays intact (check clean, export decodes).
//! Uses a small tmpfs as the data directory (needs root, as CI has).

use openva_e2e::*;

#[test]
fn full_disk_stops_recording_without_damage() -> anyhow::Result<()> {
    let tmp = TempDir::new("diskfull");
    let data = tmp.path().join("data");
    let fs = Tmpfs::mount(&data, "3m")?;
    let d = data.to_str().unwrap();
    let (_sim, url) = start_sim(free_port(), &["--bitrate", "4000000"])?;
    let out = openva(&["record", "--data", d, "--video", "cam", "--url", &url, "--duration", "40"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "recording into a full disk succeeded");
    assert!(!err.contains("panicked"), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && (last.contains("No space left") || last.contains("full")),
        "expected a disk-full error, got: {err}"
    );
    // Give the archive room again: what was recorded is intact.
    fs.resize("64m")?;
    let check = openva_json(&["check", "--data", d])?;
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    assert!(check["frames"].as_u64().unwrap() > 25, "{check}");
    let r = openva_json(&["ranges", "--data", d, "--video", "cam"])?;
    let range = &r["timeRanges"][0];
    let clip = tmp.path().join("clip.mp4");
    export(&data, "cam", range["start"].as_str().unwrap(), range["end"].as_str().unwrap(), &clip)?;
    ffmpeg_decodes(&clip)?;
    for s in segment_files(&data, "cam")? {
        ffmpeg_decodes(&s)?;
    }
    Ok(())
}
