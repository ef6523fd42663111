//! File videos (AVA's `type: File`) over HTTP. There is no job API yet, so the test plays the
//! batch job itself: it writes a real MP4 with ffmpeg into the archive's staging directory and
//! registers it through `openva::archive` — before the host starts, and once more while the host
//! runs (the archive is shared between processes: SQLite in WAL mode plus per-video locks).
//! Then, over HTTP: the video entities, the download (whole, `HEAD`, byte ranges, suffixes,
//! `416`, `ETag`/`304`), the archive-only operations refused with `400`, and `DELETE` of both
//! kinds, including `409` while another process records the archive video.

use openva::archive::writer::VideoWriter;
use openva::archive::{Archive, FileMeta, VideoConfig};
use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// What ffmpeg's `testsrc` at 320x240, 25 fps for 3 s holds.
const META: FileMeta = FileMeta { duration_90k: 3 * 90_000, width: 320, height: 240, frames: 75 };

/// A real H.264 MP4 made by ffmpeg.
fn make_mp4(out: &Path) -> anyhow::Result<()> {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "3"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(out)
        .status()?;
    anyhow::ensure!(st.success(), "ffmpeg failed to make {}", out.display());
    Ok(())
}

/// Registers `src` as File video `name`, as a batch job would: copy into staging, fsync,
/// register.
fn register(archive: &Archive, name: &str, src: &Path, title: Option<&str>) -> anyhow::Result<()> {
    let staged = archive.file_staging_path(name)?;
    std::fs::copy(src, &staged)?;
    std::fs::File::open(&staged)?.sync_all()?;
    archive.add_file_video(name, &staged, title, None, META)?;
    Ok(())
}

/// A 400 in AVA's error shape whose message mentions `needle`.
fn assert_bad_request(r: &Reply, needle: &str) -> anyhow::Result<()> {
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json()?;
    assert_eq!(e["error"]["code"], "BadRequest", "{e}");
    assert_eq!(e["error"]["details"][0]["code"], "InvalidRequest", "{e}");
    assert!(e["error"]["message"].as_str().unwrap_or("").contains(needle), "{e}");
    Ok(())
}

#[test]
fn file_videos_over_http() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-file-videos");
    let data = tmp.path().join("data");
    let src = tmp.path().join("clip.mp4");
    make_mp4(&src)?;
    let bytes = std::fs::read(&src)?;
    let n = bytes.len();

    // Before the host starts: an archive video (created by opening a writer, no media) and a
    // File video, in the data directory `openva serve` uses as its archive.
    {
        let archive = Arc::new(Archive::open_or_create(&data)?);
        drop(VideoWriter::open(archive.clone(), "cam", VideoConfig::default())?);
        register(&archive, "clip", &src, Some("A clip"))?;
        register(&archive, "clip2", &src, None)?;
    }
    let (mut host, base) = start_host(&data, &[])?;

    // The entities.
    let list = request("GET", &format!("{base}/api/videos"), None, &[])?.json()?;
    let types: Vec<(String, String)> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["properties"]["type"].as_str().unwrap().to_owned()))
        .collect();
    let file = |n: &str| (n.to_owned(), "File".to_owned());
    assert_eq!(types, [("cam".to_owned(), "Archive".to_owned()), file("clip"), file("clip2")]);
    let v = request("GET", &format!("{base}/api/videos/clip"), None, &[])?;
    assert_eq!(v.status, 200);
    let p = v.json()?["properties"].clone();
    assert_eq!(p["type"], "File");
    assert_eq!(p["title"], "A clip");
    assert_eq!(p["flags"], json!({"canStream": false, "hasData": true, "isInUse": false}));
    let download = format!("{base}/api/videos/clip/content.mp4");
    assert_eq!(p["contentUrls"], json!({"downloadUrl": download}));
    assert_eq!(
        p["mediaInfo"],
        json!({"sizeInBytes": n, "duration": "PT3S", "width": 320, "height": 240, "frameCount": 75})
    );
    assert!(p.get("archival").is_none(), "{p}");
    let cam = request("GET", &format!("{base}/api/videos/cam"), None, &[])?.json()?;
    assert_eq!(cam["properties"]["type"], "Archive");
    assert_eq!(cam["properties"]["flags"]["canStream"], true);
    assert!(cam["properties"]["contentUrls"]["archiveBaseUrl"].is_string(), "{cam}");

    // The whole file: byte for byte what was registered, and it decodes.
    let full = request("GET", &download, None, &[])?;
    assert_eq!(full.status, 200);
    assert_eq!(full.header("content-type"), Some("video/mp4"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.header("content-length"), Some(n.to_string().as_str()));
    assert!(full.body == bytes, "the download differs from the registered file");
    let got = tmp.path().join("download.mp4");
    std::fs::write(&got, &full.body)?;
    ffmpeg_decodes(&got)?;
    let etag = full.header("etag").expect("etag").to_owned();
    let head = request("HEAD", &download, None, &[])?;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(head.header("etag"), Some(etag.as_str()));

    // Byte ranges are slices of the file.
    for (lo, hi) in [(0, 99), (n / 2, (n / 2 + 70_000).min(n - 1)), (n - 10, n - 1)] {
        let part = request("GET", &download, None, &[("range", &format!("bytes={lo}-{hi}"))])?;
        assert_eq!(part.status, 206);
        assert_eq!(part.header("content-range"), Some(format!("bytes {lo}-{hi}/{n}").as_str()));
        assert_eq!(part.header("content-length"), Some((hi - lo + 1).to_string().as_str()));
        assert_eq!(part.header("etag"), Some(etag.as_str()));
        assert!(part.body == bytes[lo..=hi], "bytes {lo}-{hi} differ");
    }
    let tail = request("GET", &download, None, &[("range", "bytes=-100")])?;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.header("content-range"), Some(format!("bytes {}-{}/{n}", n - 100, n - 1).as_str()));
    assert!(tail.body == bytes[n - 100..]);
    let all = request("GET", &download, None, &[("range", &format!("bytes=-{}", n * 2))])?;
    assert_eq!((all.status, all.body.len()), (206, n));
    let bad = request("GET", &download, None, &[("range", &format!("bytes={}-", n + 5))])?;
    assert_eq!(bad.status, 416);
    assert_eq!(bad.header("content-range"), Some(format!("bytes */{n}").as_str()));
    let same = request("GET", &download, None, &[("if-none-match", &etag)])?;
    assert_eq!((same.status, same.body.len()), (304, 0));
    let stale = request("GET", &download, None, &[("range", "bytes=0-9"), ("if-range", "\"other\"")])?;
    assert_eq!((stale.status, stale.body.len()), (200, n), "If-Range with another tag gets the whole file");

    // Time ranges are for archives.
    let r =
        request("GET", &format!("{download}?startTime=2024-01-01T00:00:00Z&endTime=2024-01-01T00:01:00Z"), None, &[])?;
    assert_bad_request(&r, "archive videos only")?;
    let r = request("GET", &format!("{base}/api/videos/clip/availableMedia"), None, &[])?;
    assert_bad_request(&r, "File video")?;
    // And an archive's content.mp4 still needs them.
    let r = request("GET", &format!("{base}/api/videos/cam/content.mp4"), None, &[])?;
    assert_bad_request(&r, "startTime and endTime")?;

    // Another process cannot write the archive while the host runs (docs/archive.md, "One
    // process writes a data directory").
    match Archive::open_or_create(&data) {
        Err(e) => assert!(e.to_string().contains(&format!("openva serve (pid {})", host.child.id())), "{e}"),
        Ok(_) => panic!("a second writer opened the archive of a running host"),
    }
    let v2 = request("GET", &format!("{base}/api/videos/clip2"), None, &[])?;
    assert_eq!(v2.status, 200);
    assert_eq!(v2.json()?["properties"]["type"], "File");
    let d2 = request("GET", &format!("{base}/api/videos/clip2/content.mp4"), None, &[])?;
    assert!(d2.status == 200 && d2.body == bytes);
    assert_ne!(d2.header("etag"), Some(etag.as_str()), "another file, another tag");

    // DELETE: a File video goes with its file; again is 204; bad names are 400.
    let file = data.join("videos/clip/content.mp4");
    assert!(file.is_file());
    let del = request("DELETE", &format!("{base}/api/videos/clip"), None, &[])?;
    assert_eq!(del.status, 200, "{}", String::from_utf8_lossy(&del.body));
    assert_eq!(request("GET", &format!("{base}/api/videos/clip"), None, &[])?.status, 404);
    // Its download URL is now an unknown video without times: 400, as it always was
    // (tests/tests/api_input.rs pins that), with times 404.
    assert_eq!(request("GET", &download, None, &[])?.status, 400);
    let r =
        request("GET", &format!("{download}?startTime=2024-01-01T00:00:00Z&endTime=2024-01-01T00:01:00Z"), None, &[])?;
    assert_eq!(r.status, 404);
    assert!(!file.exists() && !data.join("videos/clip").exists(), "the file is gone from disk");
    assert_eq!(request("DELETE", &format!("{base}/api/videos/clip"), None, &[])?.status, 204);
    let bad = request("DELETE", &format!("{base}/api/videos/.hidden"), None, &[])?;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()?["error"]["code"], "BadRequest");

    // An archive being recorded (its lock held, as a recorder holds it) is refused with 409;
    // once the lock is released it is deleted.
    let writer = std::fs::File::open(data.join("videos/cam/.lock"))?;
    writer.try_lock()?;
    let busy = request("DELETE", &format!("{base}/api/videos/cam"), None, &[])?;
    assert_eq!(busy.status, 409, "{}", String::from_utf8_lossy(&busy.body));
    let e = busy.json()?;
    assert_eq!(e["error"]["code"], "Conflict");
    assert_eq!(e["error"]["details"][0]["code"], "ResourceValidationError");
    assert_eq!(request("GET", &format!("{base}/api/videos/cam"), None, &[])?.status, 200);
    drop(writer);
    assert_eq!(request("DELETE", &format!("{base}/api/videos/cam"), None, &[])?.status, 200);
    assert_eq!(request("GET", &format!("{base}/api/videos/cam"), None, &[])?.status, 404);
    assert!(!data.join("videos/cam").exists());

    let names: Vec<String> = request("GET", &format!("{base}/api/videos"), None, &[])?.json()?["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["clip2"]);
    assert!(host.terminate(Duration::from_secs(15))?.success());
    let rep = openva_json(&["check", "--data", data.to_str().unwrap()])?;
    assert_eq!(rep["problems"], json!([]), "{rep}");
    Ok(())
}
