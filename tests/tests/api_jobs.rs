//! Pipeline jobs (AVA's batch export) over HTTP, on video recorded from the simulated camera:
//! the corpus batch topology re-encodes a range into a File video that downloads and decodes;
//! copy and encode cuts are checked against the camera's frame stamps; several ranges and a
//! gap give one playable file with the gaps reported; scaling modes give the right sizes;
//! every malformed field is a 400 naming it; cancel, delete and restart rules hold.

use openva_e2e::http::*;
use openva_e2e::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Frame interval of the simulator (25 fps), ms.
const FRAME_MS: i64 = 40;

/// Records from the simulator into video `cam` of `data`: `parts` runs of `secs` seconds with a
/// pause of `pause` seconds between them (a gap in the archive). Returns the recorded ranges
/// (ms since the epoch).
fn record(data: &Path, parts: usize, secs: u32, pause: u64) -> anyhow::Result<Vec<(i64, i64)>> {
    let (_sim, url) = start_sim(free_port(), &["--size", "640x360", "--fps", "25", "--gop", "25"])?;
    let d = data.to_str().unwrap();
    for i in 0..parts {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(pause));
        }
        let r = openva_json(&[
            "record",
            "--data",
            d,
            "--video",
            "cam",
            "--url",
            &format!("{url}cam"),
            "--duration",
            &secs.to_string(),
        ])?;
        anyhow::ensure!(r["frames"].as_u64().unwrap_or(0) > u64::from(secs) * 20, "{r}");
    }
    let ranges = openva_json(&["ranges", "--data", d, "--video", "cam"])?;
    ranges["timeRanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Ok((iso_ms(r["start"].as_str().unwrap())?, iso_ms(r["end"].as_str().unwrap())?)))
        .collect()
}

fn host(data: &Path) -> anyhow::Result<(Proc, String)> {
    let plugins = repo_root().join("plugins/dist");
    start_host(data, &["--plugins", plugins.to_str().unwrap()])
}

fn put(base: &str, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
    let r = request("PUT", &format!("{base}{path}"), Some(body.to_string().as_bytes()), &[])?;
    let status = r.status;
    Ok((status, if r.body.is_empty() { Value::Null } else { r.json()? }))
}

fn get(base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = request("GET", &format!("{base}{path}"), None, &[])?;
    let status = r.status;
    Ok((status, if r.body.is_empty() { Value::Null } else { r.json()? }))
}

fn post(base: &str, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = request("POST", &format!("{base}{path}"), Some(b"{}"), &[])?;
    let status = r.status;
    Ok((status, if r.body.is_empty() { Value::Null } else { r.json()? }))
}

fn ranges_param(ranges: &[(i64, i64)]) -> String {
    serde_json::to_string(&ranges.iter().map(|(s, e)| vec![ms_iso(*s), ms_iso(*e)]).collect::<Vec<_>>()).unwrap()
}

/// Creates a job and waits until it leaves Processing; returns its entity.
fn run_job(base: &str, name: &str, topology: &str, params: Value) -> anyhow::Result<Value> {
    let (st, body) = put(
        base,
        &format!("/api/pipelineJobs/{name}"),
        &json!({"properties": {"topologyName": topology, "parameters": params}}),
    )?;
    anyhow::ensure!(st == 201, "create job {name}: {st} {body}");
    anyhow::ensure!(body["properties"]["state"] == "Processing", "{body}");
    wait_job(base, name, Duration::from_secs(180))
}

fn wait_job(base: &str, name: &str, timeout: Duration) -> anyhow::Result<Value> {
    let t = Instant::now();
    loop {
        let (st, job) = get(base, &format!("/api/pipelineJobs/{name}"))?;
        anyhow::ensure!(st == 200, "{st} {job}");
        if job["properties"]["state"] != "Processing" {
            return Ok(job);
        }
        anyhow::ensure!(t.elapsed() < timeout, "job {name} still processing: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Downloads a file video and returns the path.
fn download(base: &str, video: &str, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let (st, v) = get(base, &format!("/api/videos/{video}"))?;
    anyhow::ensure!(st == 200, "{st} {v}");
    anyhow::ensure!(v["properties"]["type"] == "File", "{v}");
    let url = v["properties"]["contentUrls"]["downloadUrl"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(url.ends_with(&format!("/videos/{video}/content.mp4")), "{v}");
    let r = request("GET", &format!("{base}/api/videos/{video}/content.mp4"), None, &[])?;
    anyhow::ensure!(r.status == 200, "download {video}: {}", r.status);
    let path = dir.join(format!("{video}.mp4"));
    std::fs::write(&path, &r.body)?;
    Ok(path)
}

/// Width and height by ffprobe.
fn dimensions(path: &Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(path)
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.trim().split(',').map(|v| v.parse::<u32>());
    Ok((it.next().unwrap_or(Ok(0))?, it.next().unwrap_or(Ok(0))?))
}

/// Luma of the pixel in the middle of row `y` of the first frame.
fn first_frame_luma_at(path: &Path, width: u32, height: u32, y: u32) -> anyhow::Result<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()?;
    anyhow::ensure!(out.stdout.len() == (width * height) as usize, "decoded {} bytes", out.stdout.len());
    Ok(out.stdout[(y * width + width / 2) as usize])
}

/// A batch topology without an encoder (copy) or with a custom preset.
fn batch_topology(name: &str, encoder: Option<Value>) -> Value {
    let mut processors = vec![];
    let mut sink_input = "videoSource";
    if let Some(preset) = encoder {
        processors.push(json!({"@type": "#Microsoft.VideoAnalyzer.EncoderProcessor", "name": "encoder",
            "preset": preset, "inputs": [{"nodeName": "videoSource"}]}));
        sink_input = "encoder";
    }
    json!({
        "kind": "Batch",
        "properties": {
            "parameters": [
                {"name": "source", "type": "String"},
                {"name": "ranges", "type": "String"},
                {"name": "output", "type": "String"}
            ],
            "sources": [{"@type": "#Microsoft.VideoAnalyzer.VideoSource", "name": "videoSource", "videoName": "${source}",
                "timeSequences": {"@type": "#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers", "ranges": "${ranges}"}}],
            "processors": processors,
            "sinks": [{"@type": "#Microsoft.VideoAnalyzer.VideoSink", "name": "videoSink", "videoName": "${output}",
                "videoCreationProperties": {"title": format!("{name} export")},
                "inputs": [{"nodeName": sink_input}]}]
        }
    })
}

/// A batch topology whose jobs take a while (a 4K system preset): for cancel and queue tests.
fn slow_encode_topology() -> Value {
    batch_topology(
        "enc",
        Some(json!({"@type": "#Microsoft.VideoAnalyzer.EncoderSystemPreset", "name": "SingleLayer_2160p_H264_AAC"})),
    )
}

fn params(source: &str, ranges: &[(i64, i64)], output: &str) -> Value {
    json!([{"name": "source", "value": source}, {"name": "ranges", "value": ranges_param(ranges)},
           {"name": "output", "value": output}])
}

#[test]
fn tutorial_flow_copy_and_encode_are_frame_accurate() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-flow");
    let data = tmp.path().join("data");
    let rec = record(&data, 1, 12, 0)?;
    let (r0, r1) = rec[0];
    let (_host, base) = host(&data)?;
    let events = Events::subscribe(&base, None)?;

    // The corpus batch topology, unchanged (its envelope says "Kind": "batch").
    let text = std::fs::read_to_string(repo_root().join("tests/corpus/ava/topologies/export-from-video-archive.json"))?;
    let (st, body) = put(&base, "/api/pipelineTopologies/export-from-video-archive", &serde_json::from_str(&text)?)?;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["kind"], "Batch", "{body}");

    // Encode: the tutorial's preset (1080p), a range starting and ending between keyframes.
    let (start, end) = (r0 + 2_210, r0 + 6_530);
    let job = run_job(
        &base,
        "tutorial",
        "export-from-video-archive",
        json!([{"name": "sourceVideoNameParameter", "value": "cam"},
               {"name": "timeSequenceParameter", "value": ranges_param(&[(start, end)])},
               {"name": "outputVideoNameParameter", "value": "clip-encoded"}]),
    )?;
    let p = &job["properties"];
    assert_eq!(p["state"], "Completed", "{job}");
    assert_eq!(p["progressPercent"], 100.0, "{job}");
    assert_eq!(p["mode"], "encode");
    assert_eq!(p["gaps"].as_array().map(Vec::len), Some(0), "{job}");
    assert!(p["expiration"].as_str().is_some(), "{job}");
    let file = download(&base, "clip-encoded", tmp.path())?;
    ffmpeg_decodes(&file)?;
    assert_eq!(dimensions(&file)?, (1920, 1080), "SingleLayer_1080p keeps 16:9 at 1080 rows");
    let stamps = frame_stamps_rescaled(&file, 640, 360)?;
    let (first, last) = (stamps[0], stamps[stamps.len() - 1]);
    // Frame-exact: the frame on screen at `start` first, the one on screen before `end` last
    // (the archive's wall clock is the receive time, a few ms after the stamp).
    assert!((first - start).abs() <= FRAME_MS + 20, "first frame {first} is {} ms from start", first - start);
    assert!((last - end).abs() <= FRAME_MS + 20, "last frame {last} is {} ms from end", last - end);
    for w in stamps.windows(2) {
        assert_eq!(w[1] - w[0], FRAME_MS, "frame missing or repeated between {} and {}", w[0], w[1]);
    }

    // Copy: same range, no encoder: starts at the keyframe before and hides the lead-in.
    let (st, body) = put(&base, "/api/pipelineTopologies/copy", &batch_topology("copy", None))?;
    assert_eq!(st, 201, "{body}");
    let job = run_job(&base, "copy1", "copy", params("cam", &[(start, end)], "clip-copied"))?;
    assert_eq!(job["properties"]["state"], "Completed", "{job}");
    assert_eq!(job["properties"]["mode"], "copy");
    let file = download(&base, "clip-copied", tmp.path())?;
    ffmpeg_decodes(&file)?;
    assert_eq!(dimensions(&file)?, (640, 360));
    let stamps = frame_stamps(&file, 640)?;
    assert!((stamps[0] - start).abs() <= 100, "copy starts {} ms from start", stamps[0] - start);
    assert!((stamps[stamps.len() - 1] - end).abs() <= 100);

    // The job's events: state changes and the sink's recording events.
    let subjects: Vec<String> = events
        .all()
        .iter()
        .filter(|e| {
            e["applicationProperties"]["subject"].as_str().is_some_and(|s| s.starts_with("/pipelineJobs/copy1"))
        })
        .map(|e| {
            e["applicationProperties"]["eventType"].as_str().unwrap_or("").rsplit('.').next().unwrap_or("").to_owned()
        })
        .collect();
    for want in ["PipelineJobStateChanged", "RecordingStarted", "RecordingStopped"] {
        assert!(subjects.iter().any(|s| s == want), "{want} missing: {subjects:?}");
    }
    let list = get(&base, "/api/pipelineJobs")?.1;
    assert_eq!(list["value"].as_array().map(Vec::len), Some(2), "{list}");
    assert!(r1 > end);
    Ok(())
}

#[test]
fn several_ranges_and_a_gap_make_one_playable_file() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-ranges");
    let data = tmp.path().join("data");
    let rec = record(&data, 2, 5, 2)?;
    assert_eq!(rec.len(), 2, "two runs with a pause give two ranges: {rec:?}");
    let (_host, base) = host(&data)?;
    for (name, enc) in [
        ("copy", None),
        (
            "enc",
            Some(json!({"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset",
        "videoEncoder": {"@type": "#Microsoft.VideoAnalyzer.VideoEncoderH264", "bitrateKbps": "800"}})),
        ),
    ] {
        let (st, body) = put(&base, &format!("/api/pipelineTopologies/{name}"), &batch_topology(name, enc))?;
        assert_eq!(st, 201, "{body}");
        // Across the gap: one file, the gap reported.
        let across = [(rec[0].0 + 1_000, rec[1].1 - 1_000)];
        let job = run_job(&base, &format!("{name}-across"), name, params("cam", &across, &format!("{name}-across")))?;
        let p = &job["properties"];
        assert_eq!(p["state"], "Completed", "{job}");
        let gaps = p["gaps"].as_array().unwrap();
        assert_eq!(gaps.len(), 1, "{job}");
        let g0 = iso_ms(gaps[0]["start"].as_str().unwrap())?;
        assert!((g0 - rec[0].1).abs() <= 100, "gap starts {g0}, recording ended {}", rec[0].1);
        let file = download(&base, &format!("{name}-across"), tmp.path())?;
        ffmpeg_decodes(&file)?;

        // Two ranges in one job, in the order given (the later one first).
        let two = [(rec[1].0 + 1_000, rec[1].0 + 3_000), (rec[0].0 + 1_000, rec[0].0 + 2_000)];
        let job = run_job(&base, &format!("{name}-two"), name, params("cam", &two, &format!("{name}-two")))?;
        assert_eq!(job["properties"]["state"], "Completed", "{job}");
        assert_eq!(job["properties"]["exported"].as_array().map(Vec::len), Some(2), "{job}");
        let file = download(&base, &format!("{name}-two"), tmp.path())?;
        ffmpeg_decodes(&file)?;
        let stamps = frame_stamps(&file, 640)?;
        let jump = stamps.windows(2).position(|w| w[1] < w[0]).expect("the second range comes after the first");
        let (a, b) = (&stamps[..=jump], &stamps[jump + 1..]);
        assert!((a[0] - two[0].0).abs() <= 100 && (a[a.len() - 1] - two[0].1).abs() <= 100, "{a:?}");
        assert!((b[0] - two[1].0).abs() <= 100 && (b[b.len() - 1] - two[1].1).abs() <= 100, "{b:?}");
        assert!((stamps.len() as i64 - 75).abs() <= 3, "{} frames for 3 s", stamps.len());
        // A range with nothing recorded is a gap too.
        let with_empty = [(rec[0].0 + 1_000, rec[0].0 + 2_000), (rec[0].0 - 60_000, rec[0].0 - 50_000)];
        let job = run_job(&base, &format!("{name}-empty"), name, params("cam", &with_empty, &format!("{name}-empty")))?;
        assert_eq!(job["properties"]["state"], "Completed", "{job}");
        assert_eq!(job["properties"]["gaps"].as_array().map(Vec::len), Some(1), "{job}");
        // Nothing recorded at all: the job fails and no video appears.
        let none = [(rec[0].0 - 60_000, rec[0].0 - 50_000)];
        let job = run_job(&base, &format!("{name}-none"), name, params("cam", &none, &format!("{name}-none")))?;
        assert_eq!(job["properties"]["state"], "Failed", "{job}");
        assert_eq!(job["properties"]["error"]["code"], "NoRecordedMedia", "{job}");
        assert_eq!(get(&base, &format!("/api/videos/{name}-none"))?.0, 404);
    }
    Ok(())
}

#[test]
fn scaling_modes_give_the_asked_size_and_aspect() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-scale");
    let data = tmp.path().join("data");
    let rec = record(&data, 1, 5, 0)?;
    let (_host, base) = host(&data)?;
    let range = [(rec[0].0 + 1_000, rec[0].0 + 2_000)];
    let custom = |scale: Value| {
        json!({"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset",
               "videoEncoder": {"@type": "#Microsoft.VideoAnalyzer.VideoEncoderH264", "scale": scale}})
    };
    let cases = [
        ("stretch", json!({"mode": "Stretch", "width": "320", "height": "320"}), (320, 320)),
        ("pad", json!({"mode": "Pad", "width": "480", "height": "480"}), (480, 480)),
        ("keep", json!({"mode": "PreserveAspectRatio", "height": "240"}), (426, 240)),
        // 640x360 within 400x400: 400 wide, 225 rows rounded to an even 226.
        ("keep-box", json!({"mode": "PreserveAspectRatio", "width": "400", "height": "400"}), (400, 226)),
    ];
    for (name, scale, want) in cases {
        let (st, body) =
            put(&base, &format!("/api/pipelineTopologies/{name}"), &batch_topology(name, Some(custom(scale))))?;
        assert_eq!(st, 201, "{body}");
        let job = run_job(&base, name, name, params("cam", &range, name))?;
        assert_eq!(job["properties"]["state"], "Completed", "{job}");
        let file = download(&base, name, tmp.path())?;
        ffmpeg_decodes(&file)?;
        assert_eq!(dimensions(&file)?, want, "{name}");
        if name == "pad" {
            // 640x360 in 480x480: a 480x270 picture with black bars above and below.
            assert!(first_frame_luma_at(&file, 480, 480, 20)? < 24, "top bar is black");
            assert!(first_frame_luma_at(&file, 480, 480, 460)? < 24, "bottom bar is black");
        }
    }
    Ok(())
}

#[test]
fn bad_input_and_job_rules() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-rules");
    let data = tmp.path().join("data");
    let rec = record(&data, 1, 6, 0)?;
    let (mut host_proc, base) = host(&data)?;
    let (st, body) = put(&base, "/api/pipelineTopologies/copy", &batch_topology("copy", None))?;
    assert_eq!(st, 201, "{body}");
    let (st, body) = put(&base, "/api/pipelineTopologies/enc", &slow_encode_topology())?;
    assert_eq!(st, 201, "{body}");
    let ok_range = [(rec[0].0 + 1_000, rec[0].0 + 3_000)];
    let create = |name: &str, topology: &str, p: Value| -> anyhow::Result<(u16, Value)> {
        put(
            &base,
            &format!("/api/pipelineJobs/{name}"),
            &json!({"properties": {"topologyName": topology, "parameters": p}}),
        )
    };
    let expect_400 = |(st, body): (u16, Value), field: &str| {
        assert_eq!(st, 400, "{field}: {body}");
        let msg = body["error"]["message"].as_str().unwrap_or("").to_owned();
        assert!(msg.contains(field), "message does not name {field}: {msg}");
    };
    let p = |ranges: &str, output: &str| json!([{"name": "source", "value": "cam"}, {"name": "ranges", "value": ranges}, {"name": "output", "value": output}]);
    let t0 = ms_iso(ok_range[0].0);
    expect_400(create("b1", "copy", p("not json", "o1"))?, "timeSequences.ranges");
    expect_400(create("b2", "copy", p(&format!("[[\"{t0}\", \"{t0}\"]]"), "o1"))?, "timeSequences.ranges[0]");
    expect_400(
        create("b3", "copy", p("[[\"2021-01-01T00:00:00\", \"2021-01-01T00:00:01Z\"]]", "o1"))?,
        "ranges[0].start",
    );
    expect_400(create("b4", "copy", p("[[\"2021-01-01T00:00:00Z\", \"2021-01-02T00:00:01Z\"]]", "o1"))?, "24 hours");
    expect_400(create("b5", "copy", p(&ranges_param(&ok_range), "bad/name"))?, "videoName");
    expect_400(create("b6", "copy", p(&ranges_param(&ok_range), "cam"))?, "must not be the source video");
    expect_400(create("b7", "copy", json!([{"name": "source", "value": "cam"}]))?, "ranges");
    // A bad encoder field is refused when the topology is set.
    let bad_enc = batch_topology(
        "x",
        Some(json!({"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset",
        "videoEncoder": {"frameRate": "400"}})),
    );
    expect_400(put(&base, "/api/pipelineTopologies/badenc", &bad_enc)?, "preset.videoEncoder.frameRate");
    // Live-only nodes in a batch topology, batch nodes in a live one.
    let mut mixed = batch_topology("m", None);
    mixed["properties"]["sinks"][0] = json!({"@type": "#Microsoft.VideoAnalyzer.IotHubMessageSink", "name": "hub",
        "hubOutputName": "o", "inputs": [{"nodeName": "videoSource"}]});
    expect_400(put(&base, "/api/pipelineTopologies/mixed", &mixed)?, "IotHubMessageSink");
    let mut live = batch_topology("l", None);
    live["kind"] = json!("Live");
    expect_400(put(&base, "/api/pipelineTopologies/live-with-source", &live)?, "Batch");
    let mut bad_kind = batch_topology("k", None);
    bad_kind["kind"] = json!("Streaming");
    expect_400(put(&base, "/api/pipelineTopologies/bad-kind", &bad_kind)?, "kind");
    // References: unknown topology, unknown source video, existing output, a live topology.
    assert_eq!(create("r1", "nope", p(&ranges_param(&ok_range), "o1"))?.0, 409);
    let (st, body) = create(
        "r2",
        "copy",
        json!([{"name": "source", "value": "ghost"}, {"name": "ranges", "value": ranges_param(&ok_range)}, {"name": "output", "value": "o2"}]),
    )?;
    assert_eq!(st, 409, "{body}");
    assert!(body.to_string().contains("ghost"), "{body}");

    // Cancel mid-run: a 4K encode of 2 s takes a while; cancel it at once.
    let (st, body) = create("long", "enc", p(&ranges_param(&ok_range), "big"))?;
    assert_eq!(st, 201, "{body}");
    let (st, body) =
        request("DELETE", &format!("{base}/api/pipelineJobs/long"), None, &[]).map(|r| (r.status, r.body))?;
    assert_eq!(st, 409, "delete while processing: {}", String::from_utf8_lossy(&body));
    let (st, body) = post(&base, "/api/pipelineJobs/long/cancel")?;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["properties"]["state"], "Canceled", "{body}");
    let job = wait_job(&base, "long", Duration::from_secs(5))?;
    assert_eq!(job["properties"]["state"], "Canceled");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(get(&base, "/api/videos/big")?.0, 404, "a canceled job leaves no video");
    // Canceling again changes nothing; deleting a canceled job works.
    assert_eq!(post(&base, "/api/pipelineJobs/long/cancel")?.0, 200);

    // Completed: cannot be canceled; the output name is now taken.
    let job = run_job(&base, "done", "copy", p(&ranges_param(&ok_range), "out1"))?;
    assert_eq!(job["properties"]["state"], "Completed", "{job}");
    assert_eq!(post(&base, "/api/pipelineJobs/done/cancel")?.0, 409);
    let (st, body) = create("again", "copy", p(&ranges_param(&ok_range), "out1"))?;
    assert_eq!(st, 409, "{body}");
    // A topology with jobs cannot be deleted; after deleting the jobs it can.
    let del = |path: &str| request("DELETE", &format!("{base}{path}"), None, &[]).map(|r| r.status);
    assert_eq!(del("/api/pipelineTopologies/copy")?, 409);
    assert_eq!(del("/api/pipelineJobs/done")?, 200);
    assert_eq!(del("/api/pipelineJobs/done")?, 204);
    let (st, _) = get(&base, "/api/videos/out1")?;
    assert_eq!(st, 200, "deleting a job keeps its video");

    // A restart while a job runs: the job is Failed (HostRestarted) and leaves nothing.
    let (st, body) = create("interrupted", "enc", p(&ranges_param(&ok_range), "never"))?;
    assert_eq!(st, 201, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    host_proc.kill9()?;
    let (_host2, base2) = host(&data)?;
    let (st, job) = get(&base2, "/api/pipelineJobs/interrupted")?;
    assert_eq!(st, 200, "{job}");
    assert_eq!(job["properties"]["state"], "Failed", "{job}");
    assert_eq!(job["properties"]["error"]["code"], "HostRestarted", "{job}");
    assert_eq!(get(&base2, "/api/videos/never")?.0, 404);
    let leftovers: Vec<_> = walk(&data).into_iter().filter(|p| p.to_string_lossy().contains("never")).collect();
    assert!(leftovers.is_empty(), "the interrupted job left {leftovers:?}");
    Ok(())
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn cli_jobs_and_an_encoding_export() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-cli");
    let data = tmp.path().join("data");
    let rec = record(&data, 1, 5, 0)?;
    let range = (rec[0].0 + 1_000, rec[0].0 + 3_000);
    // Offline: `openva export` with encoder options, checked like an EncoderProcessor.
    let out = tmp.path().join("small.mp4");
    let d = data.to_str().unwrap();
    let plugins = repo_root().join("plugins/dist");
    let (start, end) = (ms_iso(range.0), ms_iso(range.1));
    // `openva export` of the range into `out`, scaled to `width`x180 by stretching, then `more`.
    let export_args = |out: &str, width: &'static str, more: &[&'static str]| -> Vec<String> {
        let common = ["export", "--data", d, "--video", "cam", "--start", &start, "--end", &end, "-o", out];
        let scaling = ["--width", width, "--height", "180", "--mode", "stretch"];
        common.iter().chain(&scaling).chain(more).map(|a| a.to_string()).collect()
    };
    let args = export_args(out.to_str().unwrap(), "320", &["--bitrate", "500", "--plugins"]);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push(plugins.to_str().unwrap());
    let exp = openva_json(&args)?;
    assert_eq!((exp["width"].as_u64(), exp["height"].as_u64()), (Some(320), Some(180)), "{exp}");
    ffmpeg_decodes(&out)?;
    assert_eq!(dimensions(&out)?, (320, 180));
    let args = export_args("x.mp4", "321", &[]);
    let bad = openva(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("scale.width"), "{}", String::from_utf8_lossy(&bad.stderr));

    // Against a host: `openva job create --wait`, list, get, delete.
    let (_host, base) = host(&data)?;
    let (st, body) = put(&base, "/api/pipelineTopologies/copy", &batch_topology("copy", None))?;
    assert_eq!(st, 201, "{body}");
    let ranges = ranges_param(&[range]);
    let job = openva_json(&[
        "job",
        "create",
        "cli1",
        "--topology",
        "copy",
        "--param",
        "source=cam",
        "--param",
        &format!("ranges={ranges}"),
        "--param",
        "output=cli-out",
        "--wait",
        "--host",
        &base,
    ])?;
    assert_eq!(job["properties"]["state"], "Completed", "{job}");
    let list = openva_json(&["job", "list", "--host", &base])?;
    assert_eq!(list["value"][0]["name"], "cli1", "{list}");
    assert_eq!(openva_json(&["job", "get", "cli1", "--host", &base])?["properties"]["outputVideoName"], "cli-out");
    let failed = openva(&[
        "job",
        "create",
        "cli2",
        "--topology",
        "copy",
        "--param",
        "source=cam",
        "--param",
        "ranges=[]",
        "--param",
        "output=x",
        "--host",
        &base,
    ])?;
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("timeSequences.ranges"));
    openva_json(&["job", "delete", "cli1", "--host", &base])?;
    assert_eq!(get(&base, "/api/pipelineJobs/cli1")?.0, 404);
    Ok(())
}

#[test]
fn a_full_queue_answers_503_with_retry_after() -> anyhow::Result<()> {
    let tmp = TempDir::new("jobs-queue");
    let data = tmp.path().join("data");
    let rec = record(&data, 1, 3, 0)?;
    // One worker and no room to wait: while a long job runs, the next one is refused.
    let plugins = repo_root().join("plugins/dist");
    let (_host, base) =
        start_host(&data, &["--plugins", plugins.to_str().unwrap(), "--job-concurrency", "1", "--job-queue", "0"])?;
    let (st, body) = put(&base, "/api/pipelineTopologies/enc", &slow_encode_topology())?;
    assert_eq!(st, 201, "{body}");
    let long = params("cam", &[(rec[0].0 + 200, rec[0].1 - 200)], "long-out");
    let (st, body) =
        put(&base, "/api/pipelineJobs/long", &json!({"properties": {"topologyName": "enc", "parameters": long}}))?;
    assert_eq!(st, 201, "{body}");
    let p = params("cam", &[(rec[0].0 + 500, rec[0].0 + 1_500)], "q-out");
    let r = request(
        "PUT",
        &format!("{base}/api/pipelineJobs/q1"),
        Some(json!({"properties": {"topologyName": "enc", "parameters": p}}).to_string().as_bytes()),
        &[],
    )?;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("retry-after").is_some_and(|v| v.parse::<u32>().is_ok()), "Retry-After missing");
    assert_eq!(r.json()?["error"]["code"], "ServerBusy");
    assert_eq!(get(&base, "/api/pipelineJobs/q1")?.0, 404, "a refused job is not created");
    // Once the running one is done, there is room again.
    let done = wait_job(&base, "long", Duration::from_secs(180))?;
    assert_eq!(done["properties"]["state"], "Completed", "{done}");
    let (st, body) =
        put(&base, "/api/pipelineJobs/q2", &json!({"properties": {"topologyName": "enc", "parameters": p}}))?;
    assert_eq!(st, 201, "{body}");
    Ok(())
}
