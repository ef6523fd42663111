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

/// Sends one RTSP request on a fresh connection and returns the whole response head and body.
fn rtsp_request(url: &str, req: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("rtsp://").split('/').next().unwrap_or_default().to_owned();
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    s.write_all(req.as_bytes())?;
    let mut buf = vec![0u8; 8192];
    let mut out = Vec::new();
    // Read until the head and any Content-Length body have arrived.
    loop {
        let n = s.read(&mut buf)?;
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if text.len() >= head_end + 4 + len {
                return Ok(text);
            }
        }
        if n == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
    }
}

#[test]
fn sim_offers_digest_and_basic_and_accepts_basic() -> anyhow::Result<()> {
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360", "--user", "op", "--password", "pw"])?;
    let denied = rtsp_request(&url, &format!("DESCRIBE {url}cam RTSP/1.0\r\nCSeq: 1\r\n\r\n"))?;
    assert!(denied.starts_with("RTSP/1.0 401"), "{denied}");
    // Both challenges, in one field as RFC 7235 4.1 allows (rtsp-types folds repeated headers).
    let challenge = denied.lines().find(|l| l.starts_with("WWW-Authenticate: ")).unwrap_or_default();
    assert!(challenge.contains("Digest realm=\"openva\", nonce=\""), "{denied}");
    assert!(challenge.contains("Basic realm=\"openva\""), "{denied}");
    // "op:pw" in base64.
    let ok =
        rtsp_request(&url, &format!("DESCRIBE {url}cam RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic b3A6cHc=\r\n\r\n"))?;
    assert!(ok.starts_with("RTSP/1.0 200"), "{ok}");
    assert!(ok.contains("a=rtpmap:96 H264/90000") && ok.contains("sprop-parameter-sets="), "{ok}");
    let wrong =
        rtsp_request(&url, &format!("DESCRIBE {url}cam RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic b3A6bm8=\r\n\r\n"))?;
    assert!(wrong.starts_with("RTSP/1.0 401"), "{wrong}");
    // Garbage instead of RTSP gets a 400, and the server keeps serving.
    let bad = rtsp_request(&url, "\u{1}\u{2} not rtsp at all\r\n\r\n")?;
    assert!(bad.is_empty() || bad.starts_with("RTSP/1.0 400"), "{bad}");
    let again = rtsp_request(&url, &format!("OPTIONS {url} RTSP/1.0\r\nCSeq: 4\r\n\r\n"))?;
    assert!(again.starts_with("RTSP/1.0 200") && again.contains("DESCRIBE"), "{again}");
    Ok(())
}
