//! Bad input gives a one-line error naming the problem and a non-zero exit, never a panic,
//! and never damages what is already recorded.

use openva_e2e::*;

fn fails_with(args: &[&str], needle: &str) -> anyhow::Result<()> {
    let out = openva(args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "openva {args:?} succeeded");
    assert!(!err.contains("panicked"), "openva {args:?} panicked: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with("error: ") && last.contains(needle), "openva {args:?}: expected '{needle}' in: {err}");
    Ok(())
}

#[test]
fn bad_input_is_reported_not_panicked_on() -> anyhow::Result<()> {
    let tmp = TempDir::new("bad");
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    // Nothing recorded yet.
    fails_with(&["ranges", "--data", d, "--video", "cam"], "no archive")?;
    // Camera problems.
    let closed = free_port();
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", &format!("rtsp://127.0.0.1:{closed}/x"), "--duration", "2"],
        "refused",
    )?;
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", "http://127.0.0.1/x", "--duration", "2"],
        "rtsp://",
    )?;
    fails_with(&["record", "--data", d, "--video", "cam", "--url", "not a url", "--duration", "2"], "bad camera URL")?;
    fails_with(&["record", "--data", d, "--video", "../etc", "--url", "rtsp://127.0.0.1/x"], "invalid video name")?;
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", "rtsp://127.0.0.1/x", "--segment-length", "PT10S"],
        "PT30S",
    )?;
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", "rtsp://127.0.0.1/x", "--retention", "a week"],
        "ISO 8601 duration",
    )?;
    // A camera that is not RTSP at all (an HTTP-ish server that answers garbage).
    let garbage = std::net::TcpListener::bind("127.0.0.1:0")?;
    let gport = garbage.local_addr()?.port();
    std::thread::spawn(move || {
        for s in garbage.incoming().flatten() {
            use std::io::Write;
            let mut s = s;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n\x00\x01garbage garbage\r\n\r\n");
        }
    });
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", &format!("rtsp://127.0.0.1:{gport}/x"), "--duration", "3"],
        "camera",
    )?;

    // Record something real, then make sure bad reads do not touch it.
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360"])?;
    openva_json(&["record", "--data", d, "--video", "cam", "--url", &url, "--duration", "3"])?;
    let before = openva_json(&["check", "--data", d])?;
    fails_with(&["ranges", "--data", d, "--video", "nope"], "unknown video 'nope'")?;
    fails_with(&["ranges", "--data", d, "--video", "cam", "--precision", "hour"], "precision")?;
    fails_with(
        &["ranges", "--data", d, "--video", "cam", "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z"],
        "before",
    )?;
    fails_with(
        &[
            "ranges",
            "--data",
            d,
            "--video",
            "cam",
            "--precision",
            "full",
            "--start",
            "2020-01-01T00:00:00Z",
            "--end",
            "2020-01-03T00:00:00Z",
        ],
        "25 hours",
    )?;
    let out = tmp.path().join("x.mp4");
    let o = out.to_str().unwrap();
    fails_with(
        &[
            "export",
            "--data",
            d,
            "--video",
            "cam",
            "--start",
            "2026-01-02T00:00:00Z",
            "--end",
            "2026-01-01T00:00:00Z",
            "-o",
            o,
        ],
        "not after start",
    )?;
    fails_with(
        &[
            "export",
            "--data",
            d,
            "--video",
            "cam",
            "--start",
            "2001-01-01T00:00:00Z",
            "--end",
            "2001-01-01T01:00:00Z",
            "-o",
            o,
        ],
        "no recorded media",
    )?;
    fails_with(
        &["export", "--data", d, "--video", "cam", "--start", "yesterday", "--end", "2001-01-01T01:00:00Z", "-o", o],
        "not an ISO 8601 time",
    )?;
    fails_with(
        &[
            "export",
            "--data",
            d,
            "--video",
            "ghost",
            "--start",
            "2001-01-01T00:00:00Z",
            "--end",
            "2001-01-01T01:00:00Z",
            "-o",
            o,
        ],
        "unknown video",
    )?;
    // An output directory that does not exist: no partial file is left behind.
    let r = openva_json(&["ranges", "--data", d, "--video", "cam"])?;
    let (s, e) = (r["timeRanges"][0]["start"].as_str().unwrap(), r["timeRanges"][0]["end"].as_str().unwrap());
    let missing = tmp.path().join("no/such/dir/x.mp4");
    fails_with(
        &["export", "--data", d, "--video", "cam", "--start", s, "--end", e, "-o", missing.to_str().unwrap()],
        "creating",
    )?;
    // An unwritable archive: a data "directory" that is a file.
    let file = tmp.path().join("plainfile");
    std::fs::write(&file, b"x")?;
    fails_with(
        &["record", "--data", file.to_str().unwrap(), "--video", "cam", "--url", &url, "--duration", "2"],
        "plainfile",
    )?;
    // A second recorder of the same video is refused while the first runs.
    let mut first = spawn_openva(&["record", "--data", d, "--video", "cam", "--url", &url])?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    fails_with(
        &["record", "--data", d, "--video", "cam", "--url", &url, "--duration", "2"],
        "is in use by openva record (pid",
    )?;
    assert!(first.terminate(std::time::Duration::from_secs(10))?.success());

    let after = openva_json(&["check", "--data", d])?;
    assert_eq!(after["problems"].as_array().unwrap().len(), 0, "{after}");
    assert!(after["frames"].as_u64() > before["frames"].as_u64(), "{before} -> {after}");
    Ok(())
}
