//! Reads beside recording (issue 15): `availableMedia?precision=day` over 31 days of 8 cameras
//! and the first byte of a 24-hour `content.mp4`, asked of a host that records a camera
//! meanwhile, and how late that camera's fragments reach a player while the reads run.
//!
//! The archive: 8 videos of 31 days each, cloned from one real 30 s segment (sparse files, real
//! index rows: 89,280 segments and their sample indexes per camera, as a month of recording
//! leaves them). The recording: `openva sim` into a ninth video through AVA's tutorial
//! topology. Fragment lateness is what a live player sees: the time from a fragment's end (its
//! program date-time plus duration) to the reply of the blocking playlist reload that lists it.
//! It is measured idle first, then while the reads run; the figures are printed against the
//! issue's 50 ms budget and the idle lateness, measured in the same run.

use anyhow::{Context, Result, ensure};
use openva::archive::Archive;
use openva::archive::synth::{Backing, clone_segments};
use openva::time::Time90k;
use openva_e2e::http::*;
use openva_e2e::*;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CAMERAS: usize = 8;
const DAYS: i64 = 31;
/// The budget for each read.
const BUDGET_MS: f64 = 50.0;

pub(crate) fn run(tmp: &Path, template: &Path) -> Result<()> {
    println!(
        "== reads: availableMedia (day) over {DAYS} days x {CAMERAS} cameras, and a 24 h content.mp4, while recording"
    );
    // BENCH_READS_DATA keeps the archive there and uses it again (within hours: the history
    // ends about two hours before it was made), to repeat the measurement without the build.
    let kept = std::env::var_os("BENCH_READS_DATA").map(std::path::PathBuf::from);
    let data = kept.clone().unwrap_or_else(|| tmp.join("reads"));
    let now = now_ms();
    // The history ends about two hours before now (the template is a little over 30 s).
    let count = (DAYS * 24 * 120) as usize;
    let start = Time90k::from_millis(now - (DAYS * 24 + 2) * 3_600_000);
    let t = Instant::now();
    if !data.join("index.db").exists() {
        let a = Archive::open_or_create(&data)?;
        for cam in 0..CAMERAS {
            clone_segments(&a, &format!("cam{cam}"), template, count, start, Backing::Sparse)?;
        }
    }
    let db_mb = std::fs::metadata(data.join("index.db"))?.len() as f64 / 1e6;
    println!(
        "archive: {} segments ({count} per camera), index.db {db_mb:.0} MB, built in {:.0} s",
        count * CAMERAS,
        t.elapsed().as_secs_f64()
    );

    // A kept archive: the last run's pipeline goes, its recording stays.
    for f in ["control.db", "control.db-wal", "control.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let (mut host, base) = start_host(&data, &[])?;
    let (mut sim, url) = start_sim(free_port(), &[])?;
    record_tutorial(&base, "live", &format!("{url}live"), "live")?;
    wait_until("the live video's first fragments", Duration::from_secs(30), || {
        let am = request("GET", &format!("{base}/api/videos/live/availableMedia"), None, &[])?.json()?;
        Ok(am["timeRanges"].as_array().is_some_and(|r| !r.is_empty()))
    })?;

    let idle = Fragments::watch(&base, "live");
    std::thread::sleep(Duration::from_secs(20));
    let idle = idle.stop()?;

    let busy = Fragments::watch(&base, "live");
    let day_from = ms_iso(now - DAYS * 24 * 3_600_000);
    // AVA's day precision covers at most 31 days.
    let day_to = ms_iso(now);
    let mut day_times = Vec::new();
    let mut mp4_times = Vec::new();
    // At least 5 rounds, and on for at least 15 s, so the live video's fragment lateness is
    // measured over enough fragments while the reads run.
    let busy_from = Instant::now();
    for round in (0..100).take_while(|&r| r < 5 || busy_from.elapsed() < Duration::from_secs(15)) {
        for cam in 0..CAMERAS {
            let q = format!(
                "{base}/api/videos/cam{cam}/availableMedia?precision=day&startTime={day_from}&endTime={day_to}"
            );
            let t = Instant::now();
            let r = request("GET", &q, None, &[])?;
            day_times.push(t.elapsed());
            ensure!(r.status == 200, "{q}: {} {}", r.status, String::from_utf8_lossy(&r.body));
            let days = r.json()?["timeRanges"].as_array().map_or(0, Vec::len);
            ensure!(days == 1, "cam{cam}: {days} ranges at day precision (one contiguous month expected)");
        }
        for cam in 0..CAMERAS {
            // A different day of each camera in each round (25 days, then again): no plan is
            // served from a warm cache.
            let end = now - (2 + (round % 25) as i64 * 24) * 3_600_000 - 3 * 3_600_000;
            let path = format!(
                "/api/videos/cam{cam}/content.mp4?startTime={}&endTime={}",
                ms_iso(end - 24 * 3_600_000),
                ms_iso(end)
            );
            mp4_times.push(first_byte(&base, &path)?);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let busy = busy.stop()?;
    let peak_rss = peak_rss_mib(host.child.id());
    host.terminate(Duration::from_secs(20))?;
    sim.terminate(Duration::from_secs(5))?;

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = |what: &str, times: &mut Vec<Duration>| {
        times.sort();
        let median = ms(times[times.len() / 2]);
        let max = ms(times[times.len() - 1]);
        println!(
            "{what}: median {median:.1} ms, max {max:.1} ms over {} requests; {:.2}x of the {BUDGET_MS} ms budget (max {:.2}x)",
            times.len(),
            median / BUDGET_MS,
            max / BUDGET_MS
        );
    };
    report("availableMedia?precision=day, 31 days", &mut day_times);
    report("content.mp4 of 24 h, first byte", &mut mp4_times);
    let (idle_med, idle_max) = idle.lateness()?;
    let (busy_med, busy_max) = busy.lateness()?;
    println!(
        "live fragment lateness (end to blocking reload reply): idle median {idle_med} ms max {idle_max} ms ({} fragments); \
         during the reads median {busy_med} ms max {busy_max} ms ({} fragments); max ratio {:.2}x of idle",
        idle.0.len(),
        busy.0.len(),
        busy_max as f64 / idle_max.max(1) as f64
    );
    println!("host peak RSS: {peak_rss:.0} MiB");
    if kept.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// Time to the first body byte of `GET path`, on a fresh connection (then dropped).
pub(crate) fn first_byte(base: &str, path: &str) -> Result<Duration> {
    Ok(timed_get(base, path, false)?.0)
}

/// `GET path` of an MP4 on a fresh connection: the time to the first body byte and to the end
/// of its header (`ftyp` and `moov`, what a player needs before it can show anything); the
/// connection is dropped then.
pub(crate) fn first_byte_and_header(base: &str, path: &str) -> Result<(Duration, Duration)> {
    let (mut s, t) = send_get(base, path)?;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut first, mut body_at) = (None, None);
    loop {
        let n = s.read(&mut buf)?;
        ensure!(n > 0, "{path}: closed before the end of the MP4 header");
        got.extend_from_slice(&buf[..n]);
        if body_at.is_none()
            && let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
        {
            ensure!(got.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&got[..end]));
            body_at = Some(end + 4);
        }
        let Some(at) = body_at else { continue };
        let body = &got[at..];
        if !body.is_empty() && first.is_none() {
            first = Some(t.elapsed());
        }
        // The first two boxes' sizes (32-bit: ftyp and a moov under 4 GiB).
        let size = |at: usize| body.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
        if let Some(ftyp) = size(0)
            && let Some(moov) = size(ftyp)
            && body.len() >= ftyp + moov
        {
            ensure!(&body[ftyp + 4..ftyp + 8] == b"moov", "{path}: no moov after ftyp");
            return Ok((first.unwrap_or_default(), t.elapsed()));
        }
    }
}

/// Sends `GET path` on a fresh connection; returns it and when the request was sent.
fn send_get(base: &str, path: &str) -> Result<(std::net::TcpStream, Instant)> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let t = Instant::now();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    Ok((s, t))
}

/// `GET path` on a fresh connection: the time to the first body byte, and with `whole` the
/// time to the last and the body's length (else the connection is dropped after the first).
pub(crate) fn timed_get(base: &str, path: &str, whole: bool) -> Result<(Duration, Duration, u64)> {
    let (mut s, t) = send_get(base, path)?;
    let mut head = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let (first, mut body) = loop {
        let n = s.read(&mut buf)?;
        ensure!(n > 0, "{path}: closed before the body: {}", String::from_utf8_lossy(&head));
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            ensure!(head.starts_with(b"HTTP/1.1 200"), "{path}: {}", String::from_utf8_lossy(&head[..end]));
            if head.len() > end + 4 {
                break (t.elapsed(), (head.len() - end - 4) as u64);
            }
        }
    };
    if whole {
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            body += n as u64;
        }
    }
    Ok((first, t.elapsed(), body))
}

/// A live player's view of a video: each new fragment's end and when a blocking reload listed it.
struct Fragments(Vec<(i64, i64)>);

/// A [`Fragments`] being collected on a thread.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Fragments>>,
}

impl Fragments {
    fn watch(base: &str, video: &str) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{base}/api/videos/{video}/media.m3u8?startTime={}", ms_iso(now_ms() - 5_000));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next: Option<i64> = None;
            while !flag.load(Ordering::Relaxed) {
                let q = next.map_or(url.clone(), |n| format!("{url}&_HLS_msn={n}"));
                let r = request("GET", &q, None, &[])?;
                let arrived = now_ms();
                ensure!(r.status == 200, "{q}: {}", r.status);
                let entries = playlist_entries(&String::from_utf8(r.body)?)?;
                for &(seq, pdt, dur) in &entries {
                    // The first reply lists what was already there: not a measure of delivery.
                    if next.is_some_and(|n| seq >= n) {
                        seen.push((pdt + dur, arrived));
                    }
                }
                next = entries.last().map(|e| e.0 + 1).or(next);
            }
            Ok(Fragments(seen))
        });
        Watch { stop, thread }
    }

    /// Median and maximum lateness, ms.
    fn lateness(&self) -> Result<(i64, i64)> {
        let mut late: Vec<i64> = self.0.iter().map(|(end, arrived)| arrived - end).collect();
        late.sort();
        ensure!(!late.is_empty(), "no fragments were delivered");
        Ok((late[late.len() / 2], late[late.len() - 1]))
    }
}

impl Watch {
    fn stop(self) -> Result<Fragments> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("the fragment watcher panicked"))?
    }
}

/// `(media sequence, program date-time ms, duration ms)` of each entry of a media playlist.
fn playlist_entries(text: &str) -> Result<Vec<(i64, i64, i64)>> {
    let mut seq = 0i64;
    let (mut pdt, mut dur) = (None, 0i64);
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            seq = v.parse()?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(iso_ms(v)?);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            dur = (v.trim_end_matches(',').split(',').next().unwrap_or("0").parse::<f64>()? * 1e3).round() as i64;
        } else if !line.is_empty() && !line.starts_with('#') {
            let p = pdt.context("an entry without EXT-X-PROGRAM-DATE-TIME")?;
            out.push((seq, p, dur));
            seq += 1;
            // Without a date-time of its own, an entry follows the one before.
            pdt = Some(p + dur);
        }
    }
    Ok(out)
}
