//! Against `openva sim`: record, export a range, and check from decoded frame stamps that the
//! first shown frame is within 100 ms of `start`, the last within 100 ms of `end`, and that no
//! frame is missing or repeated in between.

use openva_e2e::*;

const FPS: i64 = 25;

#[test]
fn exported_range_is_frame_accurate() -> anyhow::Result<()> {
    let tmp = TempDir::new("accuracy");
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let port = free_port();
    let (_sim, url) = start_sim(port, &["--size", "640x360", "--fps", "25", "--gop", "50"])?;
    let rec = openva_json(&[
        "record",
        "--data",
        data_s,
        "--video",
        "cam",
        "--url",
        &format!("{url}cam"),
        "--duration",
        "14",
    ])?;
    assert_eq!(rec["runs"], 1, "{rec}");
    assert!(rec["frames"].as_u64().unwrap() >= 12 * 25, "{rec}");

    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "cam"])?;
    let r = &ranges["timeRanges"];
    assert_eq!(r.as_array().unwrap().len(), 1, "{ranges}");
    let (r0, r1) = (iso_ms(r[0]["start"].as_str().unwrap())?, iso_ms(r[0]["end"].as_str().unwrap())?);
    assert!((r1 - r0 - 14_000).abs() < 1_500, "recorded {} ms for a 14 s recording", r1 - r0);

    // A range that starts and ends between keyframes (GOP is 2 s), at odd milliseconds.
    let (start, end) = (r0 + 3_333, r0 + 9_117);
    let out = tmp.path().join("clip.mp4");
    let exp = export(&data, "cam", &ms_iso(start), &ms_iso(end), &out)?;
    assert_eq!(exp["gaps"].as_array().unwrap().len(), 0, "{exp}");
    assert_eq!(iso_ms(exp["actual"]["start"].as_str().unwrap())?, start);
    assert_eq!(iso_ms(exp["actual"]["end"].as_str().unwrap())?, end);

    // moov before mdat: plays progressively in browsers.
    let boxes = top_level_boxes(&out)?;
    assert_eq!(boxes, ["ftyp", "moov", "mdat"]);
    ffmpeg_decodes(&out)?;

    let stamps = frame_stamps(&out, 640)?;
    assert!(!stamps.is_empty());
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    assert!((first - start).abs() <= 100, "first shown frame {first} is {} ms from start", first - start);
    assert!((last - end).abs() <= 100, "last shown frame {last} is {} ms from end", last - end);
    for w in stamps.windows(2) {
        assert_eq!(w[1] - w[0], 1000 / FPS, "frame missing or repeated between {} and {}", w[0], w[1]);
    }
    let expected = (end - start) as f64 / 40.0;
    assert!((stamps.len() as f64 - expected).abs() <= 2.0, "{} frames for {expected} expected", stamps.len());

    // Every segment file plays on its own.
    for seg in segment_files(&data, "cam")? {
        ffmpeg_decodes(&seg)?;
    }
    let check = openva_json(&["check", "--data", data_s])?;
    assert_eq!(check["problems"].as_array().unwrap().len(), 0, "{check}");
    Ok(())
}
