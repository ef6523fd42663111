//! `remote`: the remote tier under load (issue 20), against SeaweedFS on loopback.
//!
//! - **Cameras through the store.** N simulated cameras (640x360, 10 fps, 250 kb/s) recorded by
//!   one host through AVA's tutorial topology (30 s segments), first local-only, then with
//!   `--remote`: recorder CPU per camera-minute (the ratio is the remote tier's cost), per-camera
//!   bytes/s and PUT/s, upload lag p50/p99 (a segment's end to its copy confirmed, from the
//!   index), then the store stopped for 60 s while recording goes on: the backlog it leaves and
//!   the rate it drains at.
//! - **Remote reads.** A 1-hour archive (120 segments of a real 30 s 720p recording) uploaded,
//!   then served by a read-only gateway of the bucket, where every segment is remote-only:
//!   time to first byte (median of 5) and throughput of the hour's `content.mp4` against the
//!   recorder serving the same hour from local disk.

use super::{cpu_time, rss};
use anyhow::{Context, Result, ensure};
use openva::archive::Archive;
use openva::archive::synth::{Backing, clone_segments};
use openva::time::{TICKS_PER_SEC, Time90k};
use openva_e2e::http::*;
use openva_e2e::stores::Seaweed;
use openva_e2e::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A host (`openva serve`) with the store's environment.
fn serve(store: &Seaweed, data: &Path, extra: &[&str]) -> Result<(Proc, String)> {
    let mut cmd = Command::new(openva_bin());
    cmd.args(["serve", "--data"]).arg(data).args(["--listen", "127.0.0.1:0"]).args(extra);
    cmd.envs(store.env()).env("RUST_LOG", "warn");
    let (proc, url) = spawn_ready("openva serve", cmd, Duration::from_secs(30))?;
    Ok((proc, url.trim_end_matches('/').to_owned()))
}

/// `n` pipelines of the tutorial topology, camera `cam{i}` into video `c{i}`, activated.
pub(crate) fn record_cameras(base: &str, cam: &str, n: usize) -> Result<()> {
    let topo = std::fs::read_to_string(repo_root().join("topologies/cvr-video.json"))?;
    let r = request("POST", &format!("{base}/api/methods/pipelineTopologySet"), Some(topo.as_bytes()), &[])?;
    ensure!(r.status == 201 || r.status == 200, "pipelineTopologySet: {}", r.status);
    for i in 0..n {
        let p = json!({"@apiVersion": "1.1", "name": format!("p{i}"), "properties": {"topologyName": "CVRToVideoSink",
            "parameters": [{"name": "rtspUrl", "value": format!("{cam}cam{i}")}, {"name": "videoName", "value": format!("c{i}")}]}});
        let (st, body) = method(base, "livePipelineSet", &p)?;
        ensure!(st == 201, "livePipelineSet: {st} {body}");
        let (st, body) = method(base, "livePipelineActivate", &json!({"@apiVersion": "1.1", "name": format!("p{i}")}))?;
        ensure!(st == 200, "livePipelineActivate: {st} {body}");
    }
    Ok(())
}

fn deactivate_all(base: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let (st, body) =
            method(base, "livePipelineDeactivate", &json!({"@apiVersion": "1.1", "name": format!("p{i}")}))?;
        ensure!(st == 200, "livePipelineDeactivate: {st} {body}");
    }
    Ok(())
}

/// What a window measured: the host's CPU seconds and RSS, and `sample`'s counters at its
/// start and end.
struct Window {
    cpu: f64,
    rss: u64,
    counters: [f64; 3],
}

/// Measures `proc` over `secs`, after a warm-up that lets every camera connect.
fn measure_window(proc: &Proc, secs: u64, sample: impl Fn() -> Result<[f64; 3]>) -> Result<Window> {
    std::thread::sleep(Duration::from_secs(8));
    let (c0, m0) = (cpu_time(proc.child.id())?, sample()?);
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, m1) = (cpu_time(proc.child.id())?, sample()?);
    Ok(Window {
        cpu: (c1 - c0).as_secs_f64(),
        rss: rss(proc.child.id())?,
        counters: [m1[0] - m0[0], m1[1] - m0[1], m1[2] - m0[2]],
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Upload lags (seconds from a segment's end to its copy confirmed) of the segments that ended
/// before `before` (closed by rotation, not by the deactivation's burst).
fn upload_lags(data: &Path, before: Time90k) -> Result<Vec<f64>> {
    let conn =
        rusqlite::Connection::open_with_flags(data.join("index.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut st = conn.prepare(
        "SELECT r.uploaded_90k - (s.start_90k + s.wall_dur_90k) FROM remote_copy r JOIN segment s ON s.id = r.segment_id
         WHERE s.start_90k + s.wall_dur_90k < ?1",
    )?;
    let mut lags: Vec<f64> = st
        .query_map([before.0], |r| r.get::<_, i64>(0))?
        .map(|l| Ok(l? as f64 / TICKS_PER_SEC as f64))
        .collect::<Result<_>>()?;
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

fn cameras(tmp: &Path, store: &mut Seaweed, server: &mut Option<Proc>, n: usize, secs: u64) -> Result<()> {
    let (_sim, cam) =
        start_sim(free_port(), &["--size", "640x360", "--fps", "10", "--gop", "10", "--bitrate", "250000"])?;
    // Local only.
    let (mut host, base) = serve(store, &tmp.join(format!("local-{n}")), &[])?;
    record_cameras(&base, &cam, n)?;
    let local = measure_window(&host, secs, || Ok([0.0; 3]))?;
    deactivate_all(&base, n)?;
    host.terminate(Duration::from_secs(30))?;
    // Through the store.
    let data = tmp.join(format!("remote-{n}"));
    let url = format!("s3://openva/bench-{n}");
    let (mut host, base) = serve(store, &data, &["--remote", &url])?;
    record_cameras(&base, &cam, n)?;
    let remote = measure_window(&host, secs, || {
        Ok([
            metric(&base, "openva_remote_uploads_total")?,
            metric(&base, "openva_remote_uploaded_bytes_total")?,
            metric(&base, "openva_remote_manifests_total")?,
        ])
    })?;
    let window = secs as f64;
    let rotated_before = Time90k::now();
    // The store away for 60 s: recording goes on; then the backlog drains.
    server.take().context("store")?.terminate(Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_secs(60));
    let backlog = metric(&base, "openva_remote_backlog_bytes")?;
    let backlog_segments = metric(&base, "openva_remote_backlog_segments")?;
    *server = Some(store.start()?);
    let back = Instant::now();
    wait_until("the backlog drained", Duration::from_secs(600), || {
        Ok(metric(&base, "openva_remote_backlog_segments")? == 0.0)
    })?;
    let drain = back.elapsed().as_secs_f64();
    deactivate_all(&base, n)?;
    wait_until("the last segments uploaded", Duration::from_secs(300), || {
        Ok(metric(&base, "openva_remote_backlog_segments")? == 0.0)
    })?;
    host.terminate(Duration::from_secs(30))?;
    let lags = upload_lags(&data, rotated_before)?;
    let per_cam_min = |cpu: f64| cpu / (n as f64 * window / 60.0);
    let (lo, re) = (per_cam_min(local.cpu), per_cam_min(remote.cpu));
    let [uploads, bytes, manifests] = remote.counters;
    println!(
        "{n:>4} | {lo:>9.4} | {re:>10.4} | {:>6.2} | {:>9.0} | {:>7.3} | {:>7.3} | {:>6.2} / {:>6.2} ({:>4}) | {:>8.1} MB, {:>4.0} seg | {:>7.1} MB/s | {:>5.2} / {:>5.2}",
        re / lo,
        bytes / window / n as f64,
        uploads / window,
        manifests / window,
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.len(),
        backlog / 1e6,
        backlog_segments,
        backlog / 1e6 / drain.max(1e-3),
        local.rss as f64 / n as f64 / 1048576.0,
        remote.rss as f64 / n as f64 / 1048576.0,
    );
    let _ = std::fs::remove_dir_all(tmp.join(format!("local-{n}")));
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

fn reads(tmp: &Path, store: &Seaweed, template: &Path) -> Result<()> {
    let data = tmp.join("hour");
    let start = Time90k::parse_iso("2026-01-01T00:00:00Z")?;
    let end = Time90k(start.0 + 3600 * TICKS_PER_SEC);
    {
        let a = Archive::open_or_create(&data)?;
        clone_segments(&a, "hour", template, 120, start, Backing::HardLink)?;
    }
    let (mut rec, rbase) = serve(store, &data, &["--remote", "s3://openva/hour"])?;
    let up = Instant::now();
    wait_until("the hour uploaded with its manifests", Duration::from_secs(900), || {
        Ok(metric(&rbase, "openva_remote_uploads_total")? >= 120.0
            && metric(&rbase, "openva_remote_backlog_segments")? == 0.0
            && metric(&rbase, "openva_remote_manifests_total")? >= 1.0)
    })?;
    let bytes = metric(&rbase, "openva_remote_uploaded_bytes_total")?;
    println!(
        "uploading the hour: {:.0} MB in {:.1} s ({:.0} MB/s)",
        bytes / 1e6,
        up.elapsed().as_secs_f64(),
        bytes / 1e6 / up.elapsed().as_secs_f64()
    );
    let (mut gw, gbase) =
        serve(store, &tmp.join("gateway"), &["--remote", "s3://openva/hour", "--read-only", "--remote-sync", "1"])?;
    wait_until("the gateway has the hour", Duration::from_secs(120), || {
        Ok(metric(&gbase, "openva_remote_sync_added_total")? >= 120.0)
    })?;
    let path =
        format!("/api/videos/hour/content.mp4?startTime={}&endTime={}", start.to_iso_millis(), end.to_iso_millis());
    let ttfb = |base: &str| -> Result<f64> {
        let mut t: Vec<f64> =
            (0..5).map(|_| Ok(super::reads::first_byte(base, &path)?.as_secs_f64() * 1e3)).collect::<Result<_>>()?;
        t.sort_by(f64::total_cmp);
        Ok(t[2])
    };
    let (local_first, remote_first) = (ttfb(&rbase)?, ttfb(&gbase)?);
    let gets0 = metric(&gbase, "openva_remote_read_gets_total")?;
    let (_, remote_all, n) = super::reads::timed_get(&gbase, &path, true)?;
    let gets = metric(&gbase, "openva_remote_read_gets_total")? - gets0;
    let (_, local_all, n2) = super::reads::timed_get(&rbase, &path, true)?;
    ensure!(n == n2, "the gateway's hour is {n} bytes, the recorder's {n2}");
    println!("{:<28} | {:>10} | {:>14} | {:>9}", "1-hour content.mp4", "TTFB ms", "whole file s", "MB/s");
    for (what, first, all) in
        [("local (recorder)", local_first, local_all), ("remote-only (gateway, cold)", remote_first, remote_all)]
    {
        println!(
            "{what:<28} | {first:>10.2} | {:>14.2} | {:>9.0}",
            all.as_secs_f64(),
            n as f64 / 1e6 / all.as_secs_f64()
        );
    }
    println!(
        "remote / local: TTFB {:.2}x, whole file {:.2}x; {gets:.0} ranged GETs for {:.0} MB",
        remote_first / local_first,
        remote_all.as_secs_f64() / local_all.as_secs_f64(),
        n as f64 / 1e6
    );
    gw.terminate(Duration::from_secs(20))?;
    rec.terminate(Duration::from_secs(20))?;
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(tmp.join("gateway"));
    Ok(())
}

pub(crate) fn run(tmp: &Path, secs: u64, template: &Path) -> Result<()> {
    let secs = secs.max(60);
    let mut store = Seaweed::new(&tmp.join("seaweed"))?;
    let mut server = Some(store.start()?);
    println!(
        "== remote: N cameras (640x360 10 fps 250 kb/s, 30 s segments) recorded local-only, then through SeaweedFS; {secs} s windows; then the store stopped 60 s"
    );
    println!(
        "{:>4} | {:>9} | {:>9} | {:>6} | {:>9} | {:>7} | {:>7} | {:>20} | {:>22} | {:>12} | {:>13}",
        "N",
        "local CPU",
        "remote CPU",
        "ratio",
        "B/s/cam",
        "PUT/s",
        "man/s",
        "upload lag p50/p99 s",
        "backlog after 60 s",
        "drain",
        "RSS/cam MiB"
    );
    println!("       (CPU-s per camera-minute)");
    let ns: Vec<usize> = std::env::var("BENCH_REMOTE_N")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![25, 100]);
    for n in ns {
        cameras(tmp, &mut store, &mut server, n, secs)?;
    }
    // BENCH_REMOTE_READS=0 skips the reads (for a lever measured on the cameras alone).
    if std::env::var("BENCH_REMOTE_READS").as_deref() != Ok("0") {
        println!(
            "== remote reads: a 1-hour archive (120 x 30 s, 1280x720 2 Mb/s) uploaded, then from a read-only gateway"
        );
        reads(tmp, &store, template)?;
    }
    if let Some(mut s) = server {
        s.terminate(Duration::from_secs(10))?;
    }
    Ok(())
}
