//! Recording from GStreamer's RTSP server (a real server we did not write; H.264 High without
//! B-frames) over TCP and UDP, without auth and with Digest and Basic auth; and from `openva sim`
//! with its own Basic/Digest auth.

use openva_e2e::*;

fn record_and_verify(url: &str, transport: &str, creds: Option<(&str, &str)>) -> anyhow::Result<()> {
    let tmp = TempDir::new(&format!("rtsp-{transport}"));
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let mut args =
        vec!["record", "--data", data_s, "--video", "v", "--url", url, "--transport", transport, "--duration", "4"];
    if let Some((u, p)) = creds {
        args.extend(["--user", u, "--password", p]);
    }
    let rec = openva_json(&args)?;
    let frames = rec["frames"].as_u64().unwrap_or(0);
    assert!(frames >= 70, "{transport}: only {frames} frames in 4 s: {rec}");
    let segs = segment_files(&data, "v")?;
    assert!(!segs.is_empty());
    for s in &segs {
        ffmpeg_decodes(s)?;
    }
    let ranges = openva_json(&["ranges", "--data", data_s, "--video", "v"])?;
    let r = &ranges["timeRanges"][0];
    let out = tmp.path().join("all.mp4");
    export(&data, "v", r["start"].as_str().unwrap(), r["end"].as_str().unwrap(), &out)?;
    ffmpeg_decodes(&out)?;
    Ok(())
}

#[test]
fn gstreamer_server_without_auth_tcp_and_udp() -> anyhow::Result<()> {
    let (_gst, url) = start_gst(free_port(), "none")?;
    record_and_verify(&url, "tcp", None)?;
    record_and_verify(&url, "udp", None)
}

#[test]
fn gstreamer_server_with_digest_auth() -> anyhow::Result<()> {
    let (_gst, url) = start_gst(free_port(), "digest")?;
    record_and_verify(&url, "tcp", Some(("admin", "s3cret")))?;
    record_and_verify(&url, "udp", Some(("admin", "s3cret")))?;
    // Credentials in the URL work too.
    record_and_verify(&url.replace("rtsp://", "rtsp://admin:s3cret@"), "tcp", None)?;
    let tmp = TempDir::new("gst-badcreds");
    let data = tmp.path().join("d");
    let bad = openva(&[
        "record",
        "--data",
        data.to_str().unwrap(),
        "--video",
        "v",
        "--url",
        &url,
        "--user",
        "admin",
        "--password",
        "wrong",
        "--duration",
        "3",
    ])?;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("401"), "{err}");
    Ok(())
}

#[test]
fn gstreamer_server_with_basic_auth() -> anyhow::Result<()> {
    let (_gst, url) = start_gst(free_port(), "basic")?;
    record_and_verify(&url, "tcp", Some(("admin", "s3cret")))?;
    record_and_verify(&url, "udp", Some(("admin", "s3cret")))
}

#[test]
fn sim_requires_credentials_when_set() -> anyhow::Result<()> {
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360", "--user", "op", "--password", "pw"])?;
    record_and_verify(&url, "tcp", Some(("op", "pw")))?;
    record_and_verify(&url, "udp", Some(("op", "pw")))?;
    let tmp = TempDir::new("sim-noauth");
    let data = tmp.path().join("d");
    let out = openva(&["record", "--data", data.to_str().unwrap(), "--video", "v", "--url", &url, "--duration", "2"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && !err.contains("panicked"), "{err}");
    Ok(())
}
