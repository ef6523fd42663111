//! openva's benchmarks, each printed as a ratio against its peer measured in the same run:
//!
//! - `ingest`: CPU seconds per recorded stream-minute and RSS per stream for N = 1, 8, 32
//!   streams of the simulated camera, openva vs `ffmpeg -c copy -f segment` (goal ≤ 1/5 of
//!   ffmpeg's CPU, ≤ 4 MiB per stream);
//! - `export`: a 1-hour range to one MP4, openva vs `ffmpeg -f concat -c copy` over the same
//!   segment files (goal ≥ 5× faster);
//! - `ttfb`: time to the first byte of a 1-hour export (the moov built from the index) in
//!   archives of 1 hour and 7 days (goal ≤ 10 ms and flat).
//!
//! Run `bench/run [ingest|export|ttfb|all]` (release build). Figures go to docs/benchmarks.md.

use anyhow::{Context, Result, bail, ensure};
use openva::archive::Archive;
use openva::archive::synth::{Backing, clone_segments};
use openva::time::{TICKS_PER_SEC, Time90k};
use openva_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let secs: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let tmp = TempDir::new("bench");
    let template = || record_template(tmp.path());
    match what {
        "ingest" => ingest(tmp.path(), secs)?,
        "export" => export(tmp.path(), &template()?)?,
        "ttfb" => ttfb(tmp.path(), &template()?)?,
        "all" => {
            ingest(tmp.path(), secs)?;
            let t = template()?;
            export(tmp.path(), &t)?;
            ttfb(tmp.path(), &t)?;
        }
        other => bail!("unknown benchmark '{other}': ingest, export, ttfb or all"),
    }
    Ok(())
}

/// CPU time (user + system) of a process so far.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()?))
}

fn clock_ticks() -> Result<f64> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// Resident set size of a process, bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS")?;
    Ok(kb * 1024)
}

struct Load {
    cpu: Duration,
    rss: u64,
}

/// Measures CPU and RSS of `procs` over `secs` after a warm-up.
fn measure(procs: &[&Proc], secs: u64) -> Result<Load> {
    std::thread::sleep(Duration::from_secs(4));
    let pids: Vec<u32> = procs.iter().map(|p| p.child.id()).collect();
    let c0: Duration = pids.iter().map(|&p| cpu_time(p)).sum::<Result<Duration>>()?;
    std::thread::sleep(Duration::from_secs(secs));
    let c1: Duration = pids.iter().map(|&p| cpu_time(p)).sum::<Result<Duration>>()?;
    let rss = pids.iter().map(|&p| rss(p)).sum::<Result<u64>>()?;
    Ok(Load { cpu: c1 - c0, rss })
}

fn ingest(tmp: &Path, secs: u64) -> Result<()> {
    println!("== ingest: {secs} s per measurement, 1280x720 25 fps 2 Mb/s simulated camera, RTSP over TCP");
    let (_sim, url) = start_sim(free_port(), &[])?;
    println!(
        "{:>3} | {:>22} | {:>22} | {:>8} | {:>14} | {:>16}",
        "N", "openva CPU s/stream-min", "ffmpeg CPU s/stream-min", "ratio", "openva RSS/str", "ffmpeg RSS/str"
    );
    let mut one_rss = 0u64;
    for n in [1usize, 8, 32] {
        let data = tmp.join(format!("ingest-{n}"));
        let mut args: Vec<String> = vec!["record".into(), "--data".into(), data.display().to_string()];
        for i in 0..n {
            args.extend(["--video".into(), format!("c{i}"), "--url".into(), format!("{url}c{i}")]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut rec = spawn_openva(&argv)?;
        let ov = measure(&[&rec], secs)?;
        rec.terminate(Duration::from_secs(20))?;
        let segdir = tmp.join(format!("ff-{n}"));
        std::fs::create_dir_all(&segdir)?;
        let mut ffs = Vec::new();
        for i in 0..n {
            let child = Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", &format!("{url}f{i}")])
                .args(["-c", "copy", "-f", "segment", "-segment_time", "30", "-reset_timestamps", "1"])
                .arg(segdir.join(format!("s{i}-%03d.mp4")))
                .stdin(std::process::Stdio::null())
                .spawn()?;
            ffs.push(Proc { child, name: format!("ffmpeg {i}") });
        }
        let refs: Vec<&Proc> = ffs.iter().collect();
        let ff = measure(&refs, secs)?;
        drop(refs);
        drop(ffs);
        let per_min = |cpu: Duration| cpu.as_secs_f64() / (n as f64 * secs as f64 / 60.0);
        let (o, f) = (per_min(ov.cpu), per_min(ff.cpu));
        if n == 1 {
            one_rss = ov.rss;
        }
        println!(
            "{n:>3} | {o:>22.3} | {f:>23.3} | {:>8.3} | {:>10.2} MiB | {:>12.2} MiB",
            o / f,
            ov.rss as f64 / n as f64 / 1048576.0,
            ff.rss as f64 / n as f64 / 1048576.0,
        );
        if n > 1 {
            println!(
                "    openva marginal RSS per added stream: {:.2} MiB",
                (ov.rss as f64 - one_rss as f64) / (n - 1) as f64 / 1048576.0
            );
        }
        let _ = std::fs::remove_dir_all(&data);
        let _ = std::fs::remove_dir_all(&segdir);
    }
    Ok(())
}

/// Records ~35 s from the simulated camera and returns its first (30 s) segment file.
fn record_template(tmp: &Path) -> Result<PathBuf> {
    let (_sim, url) = start_sim(free_port(), &[])?;
    let data = tmp.join("template");
    let d = data.display().to_string();
    openva_json(&["record", "--data", &d, "--video", "t", "--url", &format!("{url}t"), "--duration", "34"])?;
    let segs = segment_files(&data, "t")?;
    ensure!(segs.len() >= 2, "expected a full 30 s segment, got {segs:?}");
    Ok(segs[0].clone())
}

fn best_of(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn export(tmp: &Path, template: &Path) -> Result<()> {
    let data = tmp.join("export-1h");
    let archive = Archive::open_or_create(&data)?;
    let start = Time90k::parse_iso("2026-01-01T00:00:00Z")?;
    let files = clone_segments(&archive, "hour", template, 120, start, Backing::HardLink)?;
    drop(archive);
    let list = tmp.join("concat.txt");
    std::fs::write(&list, files.iter().map(|f| format!("file '{}'\n", f.display())).collect::<String>())?;
    let out = tmp.join("openva-1h.mp4");
    let ff_out = tmp.join("ffmpeg-1h.mp4");
    let end = Time90k(start.0 + 3600 * TICKS_PER_SEC);
    let d = data.display().to_string();
    let (s, e) = (start.to_iso_millis(), end.to_iso_millis());
    let ov = best_of(3, || {
        openva_json(&[
            "export",
            "--data",
            &d,
            "--video",
            "hour",
            "--start",
            &s,
            "--end",
            &e,
            "-o",
            &out.display().to_string(),
        ])
        .map(|_| ())
    })?;
    let ff = best_of(3, || {
        let st = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i"])
            .arg(&list)
            .args(["-c", "copy"])
            .arg(&ff_out)
            .status()?;
        ensure!(st.success(), "ffmpeg concat failed");
        Ok(())
    })?;
    let size = std::fs::metadata(&out)?.len();
    let frames = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets"])
        .args(["-of", "csv=p=0"])
        .arg(&out)
        .output()?;
    println!("== export: 1 hour (120 segments of 30 s, 1280x720 2 Mb/s) to one MP4, best of 3");
    println!(
        "openva {:.3} s ({:.0} MB, {} frames) | ffmpeg -f concat -c copy {:.3} s | openva is {:.1}x faster",
        ov.as_secs_f64(),
        size as f64 / 1e6,
        String::from_utf8_lossy(&frames.stdout).trim(),
        ff.as_secs_f64(),
        ff.as_secs_f64() / ov.as_secs_f64()
    );
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&ff_out);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

fn ttfb(tmp: &Path, template: &Path) -> Result<()> {
    println!("== ttfb: plan and build the header of a 1-hour export (median of 25), sparse synthetic archives");
    let mut medians = Vec::new();
    for (label, count) in [("1 hour", 120usize), ("7 days", 7 * 24 * 120)] {
        let data = tmp.join(format!("ttfb-{count}"));
        let start = Time90k::parse_iso("2026-01-01T00:00:00Z")?;
        {
            let a = Archive::open_or_create(&data)?;
            clone_segments(&a, "cam", template, count, start, Backing::Sparse)?;
        }
        let a = Archive::open_existing(&data)?;
        let last = a.recorded_ranges("cam", None, None)?.last().map(|r| r.1).context("no data")?;
        let from = Time90k(last.0 - 3600 * TICKS_PER_SEC);
        let mut times = Vec::new();
        for _ in 0..25 {
            let t = Instant::now();
            let plan = a.plan_export("cam", from, last)?;
            std::hint::black_box(&plan.layout.header);
            times.push(t.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        println!("archive of {label:>7} ({count:>5} segments): {:.2} ms", median.as_secs_f64() * 1e3);
        medians.push(median);
        let _ = std::fs::remove_dir_all(&data);
    }
    println!(
        "7-day / 1-hour archive: {:.2}x (flat = 1.0); goal 10 ms: {:.2}x of budget",
        medians[1].as_secs_f64() / medians[0].as_secs_f64(),
        medians[1].as_secs_f64() / 0.010
    );
    Ok(())
}
