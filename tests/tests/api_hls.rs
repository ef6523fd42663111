//! Streaming playback over HTTP against a real host: HLS manifests of closed ranges, of a range
//! across a camera outage, at AVA's `content.ism/manifest(…)` URL and of a video being recorded
//! (growing, with the latency measured from the simulator's frame stamps), read by ffmpeg; the
//! segment route's confinement to the video's own files; the token as a query parameter;
//! preview images; and every 4xx of the rules.

use openva::archive::{Archive, FileMeta};
use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "0123456789abcdef-hls-token";
const W: usize = 640;
const SIM: [&str; 4] = ["--size", "640x360", "--gop", "25"];

/// One segment line of a playlist with the tags that apply to it.
#[derive(Clone, Debug)]
struct Entry {
    /// `EXT-X-PROGRAM-DATE-TIME`, ms since the epoch.
    pdt: i64,
    /// `EXTINF`, ms.
    dur: i64,
    uri: String,
    offset: u64,
    len: u64,
    discontinuity: bool,
    /// The `EXT-X-MAP` in force: URI and length.
    map: (String, u64),
}

#[derive(Debug, Default)]
struct Playlist {
    target: i64,
    media_sequence: u64,
    kind: Option<String>,
    endlist: bool,
    maps: usize,
    start_offset_ms: Option<i64>,
    entries: Vec<Entry>,
}

fn ms(s: &str) -> i64 {
    (s.parse::<f64>().unwrap_or(f64::NAN) * 1000.0).round() as i64
}

fn parse(text: &str) -> anyhow::Result<Playlist> {
    let mut p = Playlist::default();
    let mut lines = text.lines();
    anyhow::ensure!(lines.next() == Some("#EXTM3U"), "not a playlist: {text}");
    let (mut pdt, mut dur, mut range, mut disc, mut map) = (None, None, None, false, None);
    for l in lines {
        if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse()?;
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse()?;
        } else if let Some(v) = l.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
            p.kind = Some(v.to_owned());
        } else if let Some(v) = l.strip_prefix("#EXT-X-START:TIME-OFFSET=") {
            p.start_offset_ms = Some(ms(v.split(',').next().unwrap_or("")));
        } else if let Some(v) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            let (uri, rest) = v.split_once('"').unwrap();
            let len = rest.strip_prefix(",BYTERANGE=\"").and_then(|r| r.strip_suffix("@0\"")).unwrap();
            map = Some((uri.to_owned(), len.parse()?));
            p.maps += 1;
        } else if let Some(v) = l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(iso_ms(v)?);
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = Some(ms(v.trim_end_matches(',')));
        } else if let Some(v) = l.strip_prefix("#EXT-X-BYTERANGE:") {
            let (n, o) = v.split_once('@').unwrap();
            range = Some((n.parse()?, o.parse()?));
        } else if l == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if l == "#EXT-X-ENDLIST" {
            p.endlist = true;
        } else if !l.starts_with('#') && !l.is_empty() {
            let ((len, offset), map) = (range.take().unwrap(), map.clone().unwrap());
            let (pdt, dur) = (pdt.take().expect("PROGRAM-DATE-TIME on every segment"), dur.take().unwrap());
            p.entries.push(Entry { pdt, dur, uri: l.to_owned(), offset, len, discontinuity: disc, map });
            disc = false;
        }
    }
    Ok(p)
}

fn auth() -> [(&'static str, &'static str); 1] {
    [("authorization", "Bearer 0123456789abcdef-hls-token")]
}

fn get(url: &str) -> anyhow::Result<Reply> {
    request("GET", url, None, &auth())
}

fn get_range(url: &str, from: u64, len: u64) -> anyhow::Result<Vec<u8>> {
    let r = request("GET", url, None, &[auth()[0], ("range", &format!("bytes={from}-{}", from + len - 1))])?;
    anyhow::ensure!(r.status == 206, "{url} {from}+{len}: {}", r.status);
    Ok(r.body)
}

/// A 4xx in AVA's error shape whose message mentions `needle`.
fn assert_4xx(r: &Reply, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json().unwrap();
    let code = if status == 400 { "BadRequest" } else { "NotFound" };
    assert_eq!(e["error"]["code"], code, "{e}");
    if status == 400 {
        assert_eq!(e["error"]["details"][0]["code"], "InvalidRequest", "{e}");
    }
    assert!(e["error"]["message"].as_str().unwrap_or("").contains(needle), "'{needle}' not in {e}");
}

/// ffmpeg reads the whole playlist at `url` without any error.
/// The `EXT-X-STREAM-INF` line and URI of a multivariant playlist's one variant.
fn variant(text: &str) -> anyhow::Result<(String, String)> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with("#EXT-X-STREAM-INF:"));
    let inf = lines.next().ok_or_else(|| anyhow::anyhow!("no variant in:\n{text}"))?;
    let uri = lines.find(|l| !l.is_empty() && !l.starts_with('#')).ok_or_else(|| anyhow::anyhow!("no URI:\n{text}"))?;
    Ok((inf.to_owned(), uri.to_owned()))
}

fn ffmpeg_reads(url: &str) -> anyhow::Result<()> {
    ffmpeg_decodes(Path::new(url))
}

/// The stamps of the frames ffmpeg decodes from `url`, each frame once: `passthrough` keeps
/// ffmpeg from repeating frames to fill a gap in the timestamps (its default for raw output).
fn stamps(url: &str) -> anyhow::Result<Vec<i64>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", url, "-fps_mode", "passthrough", "-vf", &format!("crop={W}:32:0:0")])
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()?;
    anyhow::ensure!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    let cell = W / 48;
    Ok(out
        .stdout
        .chunks_exact(W * 32)
        .map(|f| (0..48).fold(0i64, |t, i| (t << 1) | i64::from(f[16 * W + i * cell + cell / 2] > 125)))
        .collect())
}

/// Width and height of an image, by ffprobe.
fn image_size(jpeg: &[u8], tmp: &Path) -> anyhow::Result<(u32, u32)> {
    let f = tmp.join("probe.jpg");
    std::fs::write(&f, jpeg)?;
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&f)
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let v: Vec<&str> = text.trim().split(',').collect();
    anyhow::ensure!(out.status.success() && v.len() == 3 && v[0] == "mjpeg", "not a JPEG: {text}");
    Ok((v[1].parse()?, v[2].parse()?))
}

/// A real H.264 MP4 registered as File video `name`, as a batch job would.
fn register_file_video(data: &Path, name: &str, tmp: &Path) -> anyhow::Result<()> {
    let src = tmp.join("clip.mp4");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&src)
        .status()?;
    anyhow::ensure!(st.success(), "ffmpeg failed");
    let archive = Archive::open_or_create(data)?;
    let staged = archive.file_staging_path(name)?;
    std::fs::copy(&src, &staged)?;
    std::fs::File::open(&staged)?.sync_all()?;
    archive.add_file_video(
        name,
        &staged,
        None,
        None,
        FileMeta { duration_90k: 90_000, width: 320, height: 240, frames: 25 },
    )?;
    Ok(())
}

/// Frames 40 ms apart from `from` to `to` (inclusive) with none lost.
fn assert_continuous(s: &[i64], what: &str) {
    for w in s.windows(2) {
        assert_eq!(w[1] - w[0], 40, "{what}: frame lost or repeated between {} and {}", w[0], w[1]);
    }
}

#[test]
fn recorded_ranges_over_hls() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-hls");
    let data = tmp.path().join("data");
    let data_s = data.to_str().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n"))?;

    // Record two videos with the CLI, one after the other (two recorder processes on one
    // archive can collide on SQLite's write lock); "cam" loses its camera for 4 s in the middle.
    let port = free_port();
    let (mut sim, url) = start_sim(port, &SIM)?;
    let mut cam = spawn_openva(&["record", "--data", data_s, "--video", "cam", "--url", &format!("{url}cam")])?;
    std::thread::sleep(Duration::from_secs(7));
    sim.kill9()?;
    std::thread::sleep(Duration::from_secs(4));
    let (_sim2, _) = start_sim(port, &SIM)?;
    std::thread::sleep(Duration::from_secs(7));
    let st = cam.terminate(Duration::from_secs(10))?;
    assert!(st.success(), "recorder exited with {st}");
    let mut other = spawn_openva(&["record", "--data", data_s, "--video", "other", "--url", &format!("{url}other")])?;
    std::thread::sleep(Duration::from_secs(3));
    let st = other.terminate(Duration::from_secs(10))?;
    assert!(st.success(), "recorder exited with {st}");
    register_file_video(&data, "clip", tmp.path())?;

    // The host, with a token even on loopback: every request must carry it.
    let (_host, base) = start_host(&data, &["--token-file", token_file.to_str().unwrap()])?;
    let v = format!("{base}/api/videos/cam");
    let am = get(&format!("{v}/availableMedia"))?.json()?;
    let r = am["timeRanges"].as_array().unwrap();
    assert_eq!(r.len(), 2, "{am}");
    let ms_of = |i: usize, k: &str| iso_ms(r[i][k].as_str().unwrap()).unwrap();
    let (r0, r1) = ((ms_of(0, "start"), ms_of(0, "end")), (ms_of(1, "start"), ms_of(1, "end")));
    let q = |a: i64, b: i64| format!("startTime={}&endTime={}", ms_iso(a), ms_iso(b));

    // (a) A closed range: VOD, one file, byte ranges into it, wall clock on every segment.
    let (a, b) = (r0.0 + 1_500, r0.1 - 1_200);
    let m_url = format!("{v}/media.m3u8?{}", q(a, b));
    let reply = get(&m_url)?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/vnd.apple.mpegurl"));
    let text = String::from_utf8(reply.body.clone())?;
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{text}");
    let m = parse(&text)?;
    assert_eq!((m.kind.as_deref(), m.endlist, m.maps, m.media_sequence), (Some("VOD"), true, 1, 0));
    assert!(m.entries.iter().all(|e| !e.discontinuity), "{text}");
    let longest = m.entries.iter().map(|e| e.dur).max().unwrap();
    assert_eq!(m.target, (longest + 999) / 1000, "TARGETDURATION is the ceiling of the longest");
    // HLS starts at the fragment holding startTime (GOPs are 1 s: every fragment starts with a
    // keyframe) and ends with the fragment holding endTime; players are told where to start.
    let (first, last) = (&m.entries[0], m.entries.last().unwrap());
    assert!(first.pdt <= a && a < first.pdt + first.dur, "{a} not in the first fragment {first:?}");
    assert!(last.pdt < b && b <= last.pdt + last.dur + 40, "{b} not in the last fragment {last:?}");
    let offset = m.start_offset_ms.expect("EXT-X-START");
    assert!((offset - (a - first.pdt)).abs() <= 1, "start offset {offset} vs {}", a - first.pdt);
    for w in m.entries.windows(2) {
        assert_eq!(w[1].offset, w[0].offset + w[0].len, "fragments follow each other in the file");
        assert!((w[1].pdt - (w[0].pdt + w[0].dur)).abs() <= 2, "wall clock steps with the durations");
    }
    // The URIs are the segment route: the init segment and every fragment by byte range.
    let seg_url = |e: &Entry| format!("{v}/{}", e.uri);
    let init = get_range(&seg_url(first), 0, first.map.1)?;
    assert_eq!(&init[4..8], b"ftyp");
    for e in [first, &m.entries[m.entries.len() / 2], last] {
        let bytes = get_range(&seg_url(e), e.offset, e.len)?;
        assert_eq!((bytes.len() as u64, &bytes[4..8]), (e.len, &b"moof"[..]));
    }
    // ffmpeg reads it (token in the query, carried into every segment URI), and the pictures
    // are the wall-clock times the playlist says.
    let m_tok = format!("{m_url}&token={TOKEN}");
    assert!(get(&m_tok)?.body.windows(6).any(|w| w == b"?token"), "segment URIs carry the token");
    ffmpeg_reads(&m_tok)?;
    let s = stamps(&m_tok)?;
    // manifest.m3u8 is the multivariant playlist: the codecs players need before any media,
    // and media.m3u8 of the same range (with the token) as its one variant.
    let master = String::from_utf8(get(&format!("{v}/manifest.m3u8?{}&token={TOKEN}", q(a, b)))?.body)?;
    let (inf, uri) = variant(&master)?;
    assert!(
        inf.contains("CODECS=\"avc1.") && inf.contains("RESOLUTION=640x360") && inf.contains("BANDWIDTH="),
        "{master}"
    );
    assert!(uri.starts_with("media.m3u8?") && uri.contains("token="), "{master}");
    assert_eq!(String::from_utf8(get(&format!("{v}/{uri}"))?.body)?, String::from_utf8(get(&m_tok)?.body)?);
    assert_eq!(
        stamps(&format!("{v}/manifest.m3u8?{}&token={TOKEN}", q(a, b)))?,
        s,
        "players that start from it see the same"
    );
    assert!((s[0] - first.pdt).abs() <= 100, "first frame {} vs PROGRAM-DATE-TIME {}", s[0], first.pdt);
    eprintln!("first frame's stamp minus its PROGRAM-DATE-TIME: {} ms", s[0] - first.pdt);
    assert!((s[0] - a).abs() <= 1_100, "starts in the fragment holding startTime");
    assert!(*s.last().unwrap() >= b - 140 && *s.last().unwrap() < last.pdt + last.dur, "ends at endTime");
    assert_continuous(&s, "closed range");

    // (c) AVA's URL form: a multivariant playlist whose variant is the same media playlist, and
    // its relative URIs resolve under content.ism/.
    let ava = format!("{v}/content.ism/manifest(format=m3u8-cmaf,starttime={},endtime={}).m3u8", ms_iso(a), ms_iso(b));
    let ava_reply = get(&ava)?;
    assert_eq!(ava_reply.status, 200, "{}", String::from_utf8_lossy(&ava_reply.body));
    let (_, ava_uri) = variant(&String::from_utf8(ava_reply.body)?)?;
    assert_eq!(String::from_utf8(get(&format!("{v}/content.ism/{ava_uri}"))?.body)?, text);
    let ava_tok = format!("{ava}?token={TOKEN}");
    ffmpeg_reads(&ava_tok)?;
    assert_eq!(stamps(&ava_tok)?, s);
    let bare = get(&format!("{v}/content.ism/manifest(format=m3u8-cmaf,starttime={})", ms_iso(a)))?;
    assert_eq!(bare.status, 200);

    // (b) Across the outage: one discontinuity where the second run starts, with its own map.
    let (a2, b2) = (r0.1 - 3_000, r1.0 + 3_000);
    let across = format!("{v}/media.m3u8?{}&token={TOKEN}", q(a2, b2));
    let m2 = parse(&String::from_utf8(get(&across)?.body)?)?;
    let breaks: Vec<usize> = (0..m2.entries.len()).filter(|&i| m2.entries[i].discontinuity).collect();
    assert_eq!(breaks.len(), 1, "{m2:?}");
    let after = &m2.entries[breaks[0]];
    assert_ne!(after.map.0, m2.entries[breaks[0] - 1].map.0, "a new file after the gap");
    assert!((after.pdt - r1.0).abs() <= 100, "the second run starts at {} not {}", after.pdt, r1.0);
    assert!(m2.endlist && m2.maps == 2);
    ffmpeg_reads(&across)?;
    let s2 = stamps(&across)?;
    let gap_at = s2.windows(2).position(|w| w[1] - w[0] > 1_000).expect("the outage is in the pictures");
    assert_continuous(&s2[..=gap_at], "before the outage");
    assert_continuous(&s2[gap_at + 1..], "after the outage");
    assert!((s2[gap_at] + 40 - r0.1).abs() <= 100, "last picture before the gap {} vs {}", s2[gap_at], r0.1);
    // ffmpeg 5.1's HLS reader does not restart its timeline at a discontinuity and drops the
    // first fragment after it (docs/playback.md); every later frame is there.
    assert!(s2[gap_at + 1] - r1.0 <= 1_100, "first picture after the gap {} vs {}", s2[gap_at + 1], r1.0);
    assert!(*s2.last().unwrap() >= b2 - 140);

    // No times (the video is not being recorded): the most recent 4 h of media, both runs.
    let m3 = parse(&String::from_utf8(get(&format!("{v}/media.m3u8"))?.body)?)?;
    assert!(m3.endlist && m3.entries.iter().filter(|e| e.discontinuity).count() == 1);
    assert_eq!(
        m3.entries[0].pdt,
        parse(&String::from_utf8(get(&format!("{v}/media.m3u8?startTime={}", ms_iso(r0.0)))?.body)?)?.entries[0].pdt
    );

    // Every 4xx of the rules, in AVA's error shape, naming the parameter.
    let e = |query: &str| get(&format!("{v}/manifest.m3u8?{query}")).unwrap();
    assert_4xx(&e(&format!("endTime={}", ms_iso(b))), 400, "startTime");
    assert_4xx(&e(&q(b, a)), 400, "endTime");
    assert_4xx(&e(&q(a, a)), 400, "endTime");
    assert_4xx(&e(&q(a, a + 24 * 3_600_000 + 1)), 400, "24 hours");
    assert_4xx(&e("startTime=yesterday"), 400, "startTime");
    assert_4xx(&e(&q(r1.1 + 60_000, r1.1 + 120_000)), 404, "no recorded media");
    let ava_err = |spec: &str| get(&format!("{v}/content.ism/{spec}")).unwrap();
    assert_4xx(&ava_err("manifest(format=mpd-time-cmaf)"), 400, "only m3u8-cmaf");
    assert_4xx(&ava_err("manifest(format=m3u8-aapl).m3u8"), 400, "only m3u8-cmaf");
    assert_4xx(&ava_err("manifest(format=m3u8-cmaf,endtime=2026-01-01T00:00:00Z)"), 400, "startTime");
    assert_4xx(&ava_err("manifest(format=m3u8-cmaf,starttime=soon)"), 400, "starttime");
    assert_4xx(&get(&format!("{base}/api/videos/nope/manifest.m3u8"))?, 404, "nope");
    assert_4xx(&get(&format!("{base}/api/videos/clip/manifest.m3u8"))?, 400, "File video");

    // The segment route serves only the video's own files.
    let other_file = {
        let o = parse(&String::from_utf8(get(&format!("{base}/api/videos/other/media.m3u8"))?.body)?)?;
        o.entries[0].uri.trim_start_matches("segments/").to_owned()
    };
    assert_eq!(get(&format!("{base}/api/videos/other/segments/{other_file}"))?.status, 200);
    assert_4xx(&get(&format!("{v}/segments/{other_file}"))?, 404, "no segment file");
    assert_4xx(&get(&format!("{v}/segments/00000099-000000.mp4"))?, 404, "no segment file");
    for bad in ["..%2Findex.db", "%2E%2E%2F%2E%2E%2Findex.db", ".lock", "..%2F..%2Fapi-token"] {
        assert_4xx(&get(&format!("{v}/segments/{bad}"))?, 400, "not a segment file name");
    }
    assert_4xx(&get(&format!("{base}/api/videos/clip/segments/content.mp4"))?, 404, "no segment file");
    // The token: required, accepted in the query for media reads only.
    let seg = format!("{v}/{}", first.uri);
    assert_eq!(request("GET", &seg, None, &[])?.status, 401);
    assert_eq!(request("GET", &format!("{seg}?token=wrong-token-0123456789"), None, &[])?.status, 401);
    assert_eq!(request("GET", &format!("{seg}?token={TOKEN}"), None, &[])?.status, 200);
    assert_eq!(request("GET", &format!("{m_url}&token={TOKEN}"), None, &[])?.status, 200);
    assert_eq!(request("GET", &format!("{base}/api/livePipelines?token={TOKEN}"), None, &[])?.status, 401);
    assert_eq!(request("GET", &format!("{base}/api/videos?token={TOKEN}"), None, &[])?.status, 401);
    assert_eq!(request("GET", &format!("{v}?token={TOKEN}"), None, &[])?.status, 401);
    assert_eq!(request("GET", &format!("{v}/availableMedia?token={TOKEN}"), None, &[])?.status, 200);
    let del = request("DELETE", &format!("{base}/api/videos/other?token={TOKEN}"), None, &[])?;
    assert_eq!(del.status, 401, "the query token is for reads only");
    // Content tokens (AVA's listContentToken): good for one video's media reads, in the query
    // (carried into a manifest's segment URIs, as players need) or a header; for nothing else.
    assert_eq!(request("POST", &format!("{v}/listContentToken"), None, &[])?.status, 401);
    assert_4xx(&request("POST", &format!("{base}/api/videos/nosuch/listContentToken"), None, &auth())?, 404, "nosuch");
    let issued = request("POST", &format!("{v}/listContentToken"), None, &auth())?;
    assert_eq!(issued.status, 200);
    let issued = issued.json()?;
    let ctok = issued["token"].as_str().unwrap_or_default().to_owned();
    let expires = iso_ms(issued["expirationDate"].as_str().unwrap_or_default())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64;
    assert!((expires - now - 3_600_000).abs() < 60_000, "an hour: {issued}");
    assert!(!ctok.is_empty() && !ctok.contains(TOKEN), "{issued}");
    // Digits, a dot and URL-safe base64: nothing to escape in a query.
    let ctok_q = &ctok;
    ffmpeg_reads(&format!("{m_url}&token={ctok_q}"))?;
    let bearer = format!("Bearer {ctok}");
    let by_header = [("authorization", bearer.as_str())];
    assert_eq!(request("GET", &format!("{seg}?token={ctok_q}"), None, &[])?.status, 200);
    assert_eq!(request("GET", &format!("{v}/availableMedia"), None, &by_header)?.status, 200);
    let mut forged = ctok.clone();
    forged.pop();
    forged.push(if ctok.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(request("GET", &format!("{seg}?token={forged}"), None, &[])?.status, 401, "forged");
    let other_seg = format!("{base}/api/videos/other/segments/{other_file}");
    assert_eq!(request("GET", &format!("{other_seg}?token={ctok_q}"), None, &[])?.status, 401, "another video");
    for (method, url) in [
        ("GET", v.clone()),
        ("GET", format!("{base}/api/videos")),
        ("GET", format!("{base}/api/events")),
        ("DELETE", v.clone()),
        ("POST", format!("{v}/listContentToken")),
    ] {
        assert_eq!(request(method, &url, None, &by_header)?.status, 401, "{method} {url} with a content token");
    }

    // Preview images: the keyframe at or before a time, in AVA's sizes, never upscaled.
    let mid = (r0.0 + r0.1) / 2;
    let img = |size: &str, t: i64| get(&format!("{v}/images/at.jpg?time={}&size={size}", ms_iso(t))).unwrap();
    for (size, want) in [("small", (320, 180)), ("medium", (640, 360)), ("large", (640, 360))] {
        let t = Instant::now();
        let r = img(size, mid);
        eprintln!("{size} image in {:?}", t.elapsed());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(image_size(&r.body, tmp.path())?, want, "{size}");
    }
    // The picture is the keyframe at or before the time: its stamp says so.
    let r = img("medium", mid);
    let shown = iso_ms(r.header("openva-frame-time").unwrap())?;
    let jpg = tmp.path().join("at.jpg");
    std::fs::write(&jpg, &r.body)?;
    let stamp = frame_stamps(&jpg, W)?[0];
    assert!((stamp - shown).abs() <= 100, "picture stamp {stamp} vs frame time {shown}");
    assert!(shown <= mid && mid - shown <= 1_100, "keyframe at or before {mid}: {shown}");
    let small = get(&format!("{v}/images/at.jpg?time={}", ms_iso(mid)))?;
    assert_eq!(image_size(&small.body, tmp.path())?, (320, 180), "size defaults to small");
    let entity = get(&v)?.json()?;
    let urls = &entity["properties"]["contentUrls"];
    assert_eq!(urls["archiveBaseUrl"], format!("{v}/content.ism"), "{entity}");
    assert_eq!(urls["previewImageUrls"]["large"], format!("{v}/images/latest/large.jpg"), "{entity}");
    let latest = get(&format!("{v}/images/latest/large.jpg"))?;
    assert_eq!(latest.status, 200);
    assert_eq!(latest.header("cache-control"), Some("no-cache"));
    assert_eq!(image_size(&latest.body, tmp.path())?, (640, 360));
    let latest_at = iso_ms(latest.header("openva-frame-time").unwrap())?;
    assert!(latest_at <= r1.1 && r1.1 - latest_at <= 1_100, "latest keyframe {latest_at} vs end {}", r1.1);
    assert_4xx(&img("small", (r0.1 + r1.0) / 2), 404, "no recorded picture");
    assert_4xx(&img("huge", mid), 400, "size");
    assert_4xx(&get(&format!("{v}/images/latest/huge.jpg"))?, 400, "size");
    assert_4xx(&get(&format!("{v}/images/latest/small.png"))?, 400, "small.jpg");
    assert_4xx(&get(&format!("{v}/images/at.jpg"))?, 400, "time");
    assert_4xx(&get(&format!("{v}/images/at.jpg?time=noon"))?, 400, "time");
    assert_4xx(&get(&format!("{base}/api/videos/clip/images/latest/small.jpg"))?, 400, "File video");
    assert_4xx(&get(&format!("{base}/api/videos/nope/images/latest/small.jpg"))?, 404, "nope");
    let img_tok = request("GET", &format!("{v}/images/latest/small.jpg?token={TOKEN}"), None, &[])?;
    assert_eq!(img_tok.status, 200);
    Ok(())
}

/// The topology of AVA's tutorial, recording `video` from `url`.
fn start_pipeline(base: &str, url: &str, video: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json"))?;
    let topology: Value = serde_json::from_str(&text)?;
    assert_eq!(method(base, "pipelineTopologySet", &topology)?.0, 201);
    let p = json!({"@apiVersion": "1.1", "name": "live", "properties": {"topologyName": "CVRToVideoSink",
        "parameters": [{"name": "rtspUrl", "value": url}, {"name": "videoName", "value": video}]}});
    assert_eq!(method(base, "livePipelineSet", &p)?.0, 201);
    assert_eq!(method(base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": "live"}))?.0, 200);
    Ok(())
}

#[test]
fn live_manifest_lists_fragments_as_they_are_written() -> anyhow::Result<()> {
    let tmp = TempDir::new("api-hls-live");
    let (_sim, url) = start_sim(free_port(), &SIM)?;
    let (_host, base) = start_host(&tmp.path().join("data"), &[])?;
    let events = Events::subscribe(&base, None)?;
    start_pipeline(&base, &format!("{url}live"), "live")?;
    events.wait_for("RecordingAvailable", Duration::from_secs(20))?;
    let started = Instant::now();
    let v = format!("{base}/api/videos/live");
    let fetch = |u: &str| -> anyhow::Result<(String, i64)> {
        let r = request("GET", u, None, &[])?;
        anyhow::ensure!(r.status == 200, "{u}: {} {}", r.status, String::from_utf8_lossy(&r.body));
        Ok((String::from_utf8(r.body)?, now_ms()))
    };

    // No times while recording: a sliding live window, no ENDLIST; it grows.
    let (t1, _) = fetch(&format!("{v}/media.m3u8"))?;
    let m1 = parse(&t1)?;
    assert!(!m1.endlist && m1.kind.is_none(), "{t1}");
    assert!(m1.media_sequence > 1_000_000_000, "sliding windows number from the wall clock");
    assert!(m1.target >= 2);
    std::thread::sleep(Duration::from_secs(4));
    let (t2, _) = fetch(&format!("{v}/media.m3u8"))?;
    let m2 = parse(&t2)?;
    assert!(m2.entries.len() > m1.entries.len(), "the live manifest did not grow:\n{t1}\n{t2}");
    assert_eq!(m2.media_sequence, m1.media_sequence);
    // While the run's first file is open its wall-clock anchor is refined (the least-delayed
    // frame so far): dates may move back by milliseconds, never by a frame.
    assert!((m2.entries[0].pdt - m1.entries[0].pdt).abs() <= 20, "{} vs {}", m2.entries[0].pdt, m1.entries[0].pdt);
    assert!(m2.entries.last().unwrap().pdt > m1.entries.last().unwrap().pdt);
    assert_eq!(m2.target, m1.target, "a live playlist keeps its target duration");
    // startTime alone while recording: an EVENT playlist from that start, growing.
    let from = m1.entries[1].pdt + 300;
    let (t3, _) = fetch(&format!("{v}/media.m3u8?startTime={}", ms_iso(from)))?;
    let m3 = parse(&t3)?;
    assert_eq!((m3.kind.as_deref(), m3.endlist), (Some("EVENT"), false));
    assert!((m3.entries[0].pdt - m1.entries[1].pdt).abs() <= 20, "starts at the fragment holding startTime");
    // ffmpeg follows it live for a few seconds without an error.
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &format!("{v}/manifest.m3u8"), "-t", "3", "-f", "null", "-"])
        .output()?;
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // The newest listed fragment decoded from its init segment and byte range: the end of its
    // last frame by the picture's own stamp (the camera's clock).
    let newest_end = |m: &Playlist| -> anyhow::Result<(i64, i64)> {
        let e = m.entries.last().unwrap();
        let seg = format!("{v}/{}", e.uri);
        let mut bytes = request("GET", &seg, None, &[("range", &format!("bytes=0-{}", e.map.1 - 1))])?.body;
        bytes.extend(get_range(&seg, e.offset, e.len)?);
        let f = tmp.path().join("newest.mp4");
        std::fs::write(&f, &bytes)?;
        let s = frame_stamps(&f, W)?;
        anyhow::ensure!(s.len() as i64 == (e.dur + 20) / 40, "the whole fragment decodes");
        Ok((e.pdt + e.dur, s.last().unwrap() + 40))
    };
    // Polled: how far behind the wall clock the newest listed media is at a random moment, by
    // the playlist's dates and by the pictures' stamps.
    let mut by_date = Vec::new();
    let mut by_stamp = Vec::new();
    for _ in 0..10 {
        let (text, at) = fetch(&format!("{v}/media.m3u8"))?;
        let (date_end, stamp_end) = newest_end(&parse(&text)?)?;
        by_date.push(at - date_end);
        by_stamp.push(at - stamp_end);
        std::thread::sleep(Duration::from_millis(1_300));
    }
    let stat = |v: &[i64]| (*v.iter().min().unwrap(), v.iter().sum::<i64>() / v.len() as i64, *v.iter().max().unwrap());
    let (d, s) = (stat(&by_date), stat(&by_stamp));
    eprintln!(
        "polled live manifest, newest media behind the clock (ms) min/mean/max: by PROGRAM-DATE-TIME {d:?}, by frame stamp {s:?}"
    );
    for (x, y) in by_date.iter().zip(&by_stamp) {
        assert!((x - y).abs() <= 100, "dates and stamps disagree: {by_date:?} vs {by_stamp:?}");
    }
    assert!(s.0 >= 0, "{by_stamp:?}");
    // Blocking reloads (LL-HLS `_HLS_msn`): asking for the segment after the last one listed
    // returns as soon as it is written. Fragments are listed one by one as the recorder writes
    // them (not in batches at index commits), so each reply adds exactly one.
    let event = format!("{v}/media.m3u8?startTime={}", ms_iso(now_ms() - 4_000));
    let (text, _) = fetch(&event)?;
    assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"), "{text}");
    let mut next = parse(&text)?.entries.len() as u64;
    let (mut one_by_one, mut fresh, mut waits) = (0, Vec::new(), Vec::new());
    for _ in 0..6 {
        let asked = Instant::now();
        let (text, at) = fetch(&format!("{event}&_HLS_msn={next}"))?;
        waits.push(asked.elapsed().as_millis() as i64);
        let m = parse(&text)?;
        let listed = m.entries.len() as u64;
        assert!(listed > next, "a blocking reload returned without segment {next}:\n{text}");
        one_by_one += usize::from(listed == next + 1);
        fresh.push(at - newest_end(&m)?.1);
        next = listed;
    }
    eprintln!("blocking reloads: waited {waits:?} ms; newest media behind the clock at the reply {fresh:?} ms");
    assert!(one_by_one >= 4, "fragments came in batches, not as written: {one_by_one} of 6 replies added one");
    // Asking too far ahead, or for what is not served, is a clear 400.
    for bad in ["_HLS_msn=999999", "_HLS_msn=x", "_HLS_msn=1&_HLS_part=0", "_HLS_msn=1&_HLS_skip=YES"] {
        let r = request("GET", &format!("{event}&{bad}"), None, &[])?;
        assert_eq!(r.status, 400, "{bad}: {}", String::from_utf8_lossy(&r.body));
    }

    // The latest picture is recent too.
    let latest = request("GET", &format!("{v}/images/latest/medium.jpg"), None, &[])?;
    assert_eq!((latest.status, latest.header("cache-control")), (200, Some("no-cache")));
    let jpg = tmp.path().join("latest.jpg");
    std::fs::write(&jpg, &latest.body)?;
    let age = now_ms() - frame_stamps(&jpg, W)?[0];
    assert!((0..8_000).contains(&age), "latest picture is {age} ms old");

    // A closed range across the first segment rotation (30 s): a second map for the new file,
    // no discontinuity (same run, same codec), and not a frame lost.
    while started.elapsed() < Duration::from_secs(38) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (all, _) = fetch(&format!("{v}/media.m3u8"))?;
    let all = parse(&all)?;
    let rotation = all.entries.windows(2).find(|w| w[1].map.0 != w[0].map.0).map(|w| w[1].pdt).expect("rotated");
    let range = format!("{v}/media.m3u8?startTime={}&endTime={}", ms_iso(rotation - 3_000), ms_iso(rotation + 3_000));
    let (text, _) = fetch(&range)?;
    let m = parse(&text)?;
    assert!(m.endlist && m.maps == 2 && m.entries.iter().all(|e| !e.discontinuity), "{text}");
    ffmpeg_reads(&range)?;
    let s = stamps(&range)?;
    assert_continuous(&s, "across a new file of the same run");
    assert!((s[0] - m.entries[0].pdt).abs() <= 100);

    // Once recording stops, the manifest without times is closed.
    assert_eq!(method(&base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": "live"}))?.0, 200);
    let (text, _) = fetch(&format!("{v}/media.m3u8"))?;
    let m = parse(&text)?;
    assert!(m.endlist && m.kind.as_deref() == Some("VOD"), "{text}");
    ffmpeg_reads(&format!("{v}/manifest.m3u8"))?;
    Ok(())
}
