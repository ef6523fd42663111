//! Helpers for openva's end-to-end tests: start real servers (`openva sim`, GStreamer's RTSP
//! server), run the `openva` binary, and check outputs with real ffmpeg/ffprobe.
//!
//! Every process is owned by a [`Proc`] that kills it when dropped, so a failing test leaves
//! nothing running.

pub mod faultproxy;
pub mod http;
pub mod mqtt;
pub mod powercut;
pub mod stores;

use anyhow::{Context, Result, bail, ensure};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `openva` binary built next to this test binary (`target/<profile>/openva`).
pub fn openva_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OPENVA_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // A test runs from target/<profile>/deps/, a benchmark binary from target/<profile>/.
    let here = exe.parent().expect("binary dir");
    let bin = [here.join("openva"), here.parent().map(|p| p.join("openva")).unwrap_or_default()]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| here.join("openva"));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p openva` first (the README's test command does)",
        bin.display()
    );
    bin
}

/// The repository root (for tools/, plugins/dist, the corpus).
///
/// From the test runner's `CARGO_MANIFEST_DIR` when set (cargo and nextest set it at run
/// time): the compile-time value can name another checkout, because cargo shares a workspace
/// member's artifacts between checkouts that use one target directory.
pub fn repo_root() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).filter(|d| d.join("Cargo.toml").is_file());
    let dir = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// A child process killed (SIGKILL) on drop unless already stopped.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// What it is, for messages.
    pub name: String,
}

impl Proc {
    /// Sends SIGTERM and waits up to `timeout` for exit; returns the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        signal(self.child.id(), "TERM")?;
        self.wait(timeout)
    }

    /// Sends SIGKILL (a crash) and reaps the process.
    pub fn kill9(&mut self) -> Result<()> {
        self.child.kill().ok();
        self.child.wait()?;
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) -> Result<()> {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status()?;
    ensure!(st.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// A free TCP port on loopback (bound then released), below the kernel's ephemeral range
/// (32768–60999 on Debian). A port the kernel picks for `bind(0)` is one it also hands to
/// outgoing connections, and CI once lost a server's port to one between this check and the
/// server's own bind; ports below that range are only ever taken on purpose.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    // Tests run as separate processes: each starts somewhere else in the range.
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos;
    for _ in 0..2_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + (seed.wrapping_add(n.wrapping_mul(7_919)) % 22_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Spawns a command whose stdout prints a `READY <url>` line; waits for it.
pub fn spawn_ready(name: &str, mut cmd: Command, timeout: Duration) -> Result<(Proc, String)> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
    let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let proc = Proc { child, name: name.to_owned() };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("READY ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
            }
        }
    });
    let url = rx.recv_timeout(timeout).with_context(|| format!("{name} did not print READY"))?;
    Ok((proc, url))
}

/// Starts `openva sim` on `port` with extra args; returns it and its base URL.
pub fn start_sim(port: u16, extra: &[&str]) -> Result<(Proc, String)> {
    let mut cmd = Command::new(openva_bin());
    cmd.args(["sim", "--listen", &format!("127.0.0.1:{port}")]).args(extra);
    spawn_ready("openva sim", cmd, Duration::from_secs(20))
}

/// Starts GStreamer's RTSP server (tools/gst-rtsp-server.py) with `auth` none|basic|digest.
pub fn start_gst(port: u16, auth: &str) -> Result<(Proc, String)> {
    start_gst_with(port, &["--auth", auth, "--user", "admin", "--password", "s3cret"])
}

/// GStreamer's RTSP server (tools/gst-rtsp-server.py) on `port` with other arguments (`--gop`,
/// `--width`, …).
pub fn start_gst_with(port: u16, args: &[&str]) -> Result<(Proc, String)> {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(repo_root().join("tools/gst-rtsp-server.py")).args(["--port", &port.to_string()]).args(args);
    spawn_ready("gst-rtsp-server", cmd, Duration::from_secs(20))
}

/// GStreamer's RTSP server serving every camera shape of `tools/camera-zoo.py`, each client its
/// own pipeline of `frames` video frames (and audio as long), and what it sent.
pub struct Zoo {
    /// The server.
    pub proc: Proc,
    /// `rtsp://127.0.0.1:PORT/`: mounts are `<video>[+<audio>]`.
    pub url: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Zoo {
    /// Starts the zoo; each stream captures `frames` frames at 25 fps, then goes silent.
    pub fn start(frames: u32) -> Result<Zoo> {
        Zoo::start_with(&["--frames", &frames.to_string()])
    }

    /// Starts the zoo with its options (`--size`, `--gop`, `--frames`…).
    pub fn start_with(args: &[&str]) -> Result<Zoo> {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(repo_root().join("tools/camera-zoo.py")).args(["--port", "0"]).args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).stdin(Stdio::null());
        let mut child = cmd.spawn().context("starting tools/camera-zoo.py")?;
        let stdout = child.stdout.take().context("stdout")?;
        let proc = Proc { child, name: "camera zoo".into() };
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = sent.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("READY ") {
                    let _ = tx.send(rest.trim().to_owned());
                } else if line.starts_with("SENT ") {
                    lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(20)).context("camera zoo did not print READY")?;
        Ok(Zoo { proc, url, sent })
    }

    /// Waits until every one of `mounts` has finished sending its video (and its audio, for
    /// mounts with `+audio`), then a moment for the last packets to arrive.
    pub fn wait_finished(&self, mounts: &[&str], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let done = |m: &&str| self.sent(m, "video").is_some() && (!m.contains('+') || self.sent(m, "audio").is_some());
        while !mounts.iter().all(done) {
            ensure!(Instant::now() < deadline, "the cameras {mounts:?} did not finish within {timeout:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        Ok(())
    }

    /// Records `mounts` into `data` with one `openva record` (videos `v0`, `v1`…) until they
    /// finish, and returns its summary.
    pub fn record(&self, data: &Path, mounts: &[&str]) -> Result<serde_json::Value> {
        let mut args = vec!["record".to_owned(), "--data".into(), data.to_str().context("data path")?.into()];
        for (i, m) in mounts.iter().enumerate() {
            args.extend(["--video".into(), format!("v{i}"), "--url".into(), format!("{}{m}", self.url)]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut recorder = spawn_openva(&argv)?;
        self.wait_finished(mounts, Duration::from_secs(90))?;
        let status = recorder.terminate(Duration::from_secs(20))?;
        ensure!(status.success(), "openva record exited with {status}");
        let mut stdout = String::new();
        std::io::Read::read_to_string(recorder.child.stdout.as_mut().context("stdout")?, &mut stdout)?;
        Ok(serde_json::from_str(stdout.lines().last().unwrap_or_default())?)
    }

    /// What the server sent of `mount`'s `what` (`video`: access units; `audio`: packets and
    /// payload bytes), once that stream ended.
    pub fn sent(&self, mount: &str, what: &str) -> Option<Vec<u64>> {
        let prefix = format!("SENT /{mount} {what} ");
        let lines = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|r| r.split(' ').filter_map(|n| n.parse().ok()).collect())
    }
}

/// One stream of a media file as ffprobe sees it.
#[derive(Clone, Debug, Default)]
pub struct Probed {
    /// `video` or `audio`.
    pub kind: String,
    /// ffmpeg's codec name (`h264`, `hevc`, `aac`, `flac`).
    pub codec: String,
    /// First presentation time, seconds.
    pub start: f64,
    /// Duration, seconds.
    pub duration: f64,
    /// Frames (or audio frames) decoded.
    pub frames: u64,
    /// Sample rate (audio).
    pub sample_rate: u64,
    /// Picture size (video).
    pub width: u64,
    /// Picture size (video).
    pub height: u64,
}

/// Every stream of `path`, with frames counted by decoding.
pub fn probe_streams(path: &Path) -> Result<Vec<Probed>> {
    let out = run_with_timeout(
        Command::new("ffprobe").args(["-v", "error", "-count_frames", "-show_streams", "-of", "json"]).arg(path),
        Duration::from_secs(120),
    )?;
    ensure!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let num = |s: &serde_json::Value, k: &str| s[k].as_str().and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(v["streams"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| Probed {
            kind: s["codec_type"].as_str().unwrap_or_default().to_owned(),
            codec: s["codec_name"].as_str().unwrap_or_default().to_owned(),
            start: num(s, "start_time"),
            duration: num(s, "duration"),
            frames: num(s, "nb_read_frames") as u64,
            sample_rate: num(s, "sample_rate") as u64,
            width: s["width"].as_u64().unwrap_or(0),
            height: s["height"].as_u64().unwrap_or(0),
        })
        .collect())
}

/// Presentation times of the video frames of `path` as decoded, in the order shown.
pub fn video_frame_pts(path: &Path) -> Result<Vec<i64>> {
    let out = run_with_timeout(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v", "-show_entries", "frame=pts", "-of", "csv=p=0"])
            .arg(path),
        Duration::from_secs(120),
    )?;
    ensure!(out.status.success(), "ffprobe failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect())
}

/// Spawns `openva ARGS` in the background (e.g. a recorder), stderr inherited.
pub fn spawn_openva(args: &[&str]) -> Result<Proc> {
    let child = Command::new(openva_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting openva")?;
    Ok(Proc { child, name: format!("openva {}", args.first().copied().unwrap_or("")) })
}

/// Runs `openva ARGS` to completion (with a timeout).
pub fn openva(args: &[&str]) -> Result<Output> {
    run_with_timeout(Command::new(openva_bin()).args(args), Duration::from_secs(120))
}

/// Runs `openva ARGS`, requires success, and parses its stdout as JSON.
pub fn openva_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = openva(args)?;
    ensure!(
        out.status.success(),
        "openva {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).with_context(|| format!("stdout of openva {args:?} is not JSON"))
}

fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => Ok(out?),
        Err(_) => {
            let _ = signal(pid, "KILL");
            bail!("command timed out after {timeout:?}")
        }
    }
}

/// Runs `openva export` of `[start, end)` (ISO strings) to `out` and returns its JSON report.
pub fn export(data: &Path, video: &str, start: &str, end: &str, out: &Path) -> Result<serde_json::Value> {
    let (d, o) = (data.to_str().context("data path")?, out.to_str().context("output path")?);
    openva_json(&["export", "--data", d, "--video", video, "--start", start, "--end", end, "-o", o])
}

/// Decodes the whole file with ffmpeg, failing on any decode error.
pub fn ffmpeg_decodes(path: &Path) -> Result<()> {
    let out = run_with_timeout(
        Command::new("ffmpeg").args(["-v", "error", "-xerror", "-i"]).arg(path).args(["-f", "null", "-"]),
        Duration::from_secs(120),
    )?;
    ensure!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg could not decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The average luma PSNR (dB) of `a` against `b`, frame by frame in presentation order, as
/// ffmpeg's `psnr` filter measures it (both decoded by ffmpeg, same picture size). A picture
/// shown at the wrong time (a B-frame misplaced) costs tens of dB on a moving scene.
pub fn luma_psnr(a: &Path, b: &Path) -> Result<f64> {
    let out = run_with_timeout(
        Command::new("ffmpeg").args(["-v", "info", "-nostats", "-i"]).arg(a).arg("-i").arg(b).args([
            "-lavfi",
            "[0:v][1:v]psnr",
            "-f",
            "null",
            "-",
        ]),
        Duration::from_secs(120),
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "ffmpeg psnr failed: {err}");
    let line = err.lines().rev().find(|l| l.contains("PSNR y:")).context("no PSNR in ffmpeg's output")?;
    let y = line.split("PSNR y:").nth(1).and_then(|r| r.split_whitespace().next()).context("PSNR y")?;
    if y == "inf" {
        return Ok(f64::INFINITY);
    }
    Ok(y.parse()?)
}

/// Decodes the file and reads the simulated camera's frame stamp of every displayed frame
/// (ms since the epoch), in display order.
pub fn frame_stamps(path: &Path, width: usize) -> Result<Vec<i64>> {
    frame_stamps_filtered(path, width, "")
}

/// [`frame_stamps`] of a file scaled from a `width`-wide recording (a re-encoding export at
/// another size): the frames are scaled back to `width × height` before reading.
pub fn frame_stamps_rescaled(path: &Path, width: usize, height: usize) -> Result<Vec<i64>> {
    frame_stamps_filtered(path, width, &format!("scale={width}:{height},"))
}

fn frame_stamps_filtered(path: &Path, width: usize, pre: &str) -> Result<Vec<i64>> {
    let out = run_with_timeout(
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args([
            "-vf",
            &format!("{pre}crop={width}:32:0:0"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ]),
        Duration::from_secs(120),
    )?;
    ensure!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    let frame = width * 32;
    ensure!(out.stdout.len() % frame == 0, "decoded size is not a whole number of frames");
    let cell = width / 48;
    Ok(out
        .stdout
        .chunks(frame)
        .map(|f| (0..48).fold(0i64, |t, i| (t << 1) | i64::from(f[16 * width + i * cell + cell / 2] > 125)))
        .collect())
}

/// The top-level box types of an MP4 file, in order.
pub fn top_level_boxes(path: &Path) -> Result<Vec<String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut pos = 0;
    let mut out = Vec::new();
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let mut h = [0u8; 16];
        f.read_exact(&mut h[..8])?;
        let mut size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        if size == 1 {
            f.read_exact(&mut h[8..16])?;
            size = u64::from_be_bytes(h[8..16].try_into()?);
        }
        out.push(String::from_utf8_lossy(&h[4..8]).into_owned());
        ensure!(size >= 8, "bad box size at {pos}");
        pos += size;
    }
    Ok(out)
}

/// Milliseconds since the epoch of an ISO 8601 time printed by openva.
pub fn iso_ms(s: &str) -> Result<i64> {
    let t: jiff::Timestamp = s.parse().with_context(|| format!("'{s}' is not a timestamp"))?;
    Ok(t.as_millisecond())
}

/// Formats ms since the epoch as ISO 8601 UTC with milliseconds.
pub fn ms_iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| format!("{t:.3}")).unwrap_or_default()
}

/// A size from `/proc/PID/status` (`VmRSS`, `VmHWM` — the peak — …), in bytes; `None` when
/// the process or the line is gone.
pub fn proc_status_bytes(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident memory of a process, MiB (0 when unknown).
pub fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_bytes(pid, "VmHWM").unwrap_or(0) as f64 / 1048576.0
}

/// Starts a new peak for [`peak_rss_mib`] (Linux resets `VmHWM` on "5" to `clear_refs`).
pub fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Current time in ms since the epoch.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Segment files of a video in a data directory.
pub fn segment_files(data: &Path, video: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("videos").join(video))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    v.sort();
    Ok(v)
}

/// A fresh temporary directory under the target dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `target/e2e-tmp/<name>-<pid>-<n>`.
    pub fn new(name: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = openva_bin().parent().map(|p| p.join("e2e-tmp")).unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("OPENVA_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A tmpfs of a given size mounted on a directory (needs root, as CI has), unmounted on drop:
/// a disk that fills up for real.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `3m`, `64m`) on `dir`.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let st =
            Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status()?;
        ensure!(st.success(), "mounting a {size} tmpfs on {} failed: this test needs root", dir.display());
        Ok(Tmpfs(dir.to_path_buf()))
    }

    /// Changes its size (`remount`).
    pub fn resize(&self, size: &str) -> Result<()> {
        let st = Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&self.0).status()?;
        ensure!(st.success(), "resizing the tmpfs on {} failed", self.0.display());
        Ok(())
    }

    /// Bytes free and the size of the file system, as `statvfs` tells an unprivileged writer.
    pub fn free_and_total(&self) -> Result<(u64, u64)> {
        let st = rustix::fs::statvfs(&self.0)?;
        Ok((st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Polls `ok` every 100 ms until it holds; fails naming `what` after `timeout`. Returns how
/// long it took.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> Result<bool>) -> Result<Duration> {
    let t0 = Instant::now();
    while !ok()? {
        ensure!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(t0.elapsed())
}

/// Polls `found` every 100 ms until it finds something (returned), failing after `timeout`.
pub fn wait_until_some<T>(what: &str, timeout: Duration, mut found: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let t0 = Instant::now();
    loop {
        if let Some(t) = found()? {
            return Ok(t);
        }
        ensure!(t0.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP connection to `addr`, from loopback address `from` when given (the host counts
/// connections per client address, and 127.0.0.0/8 is all loopback), with a receive buffer of
/// `rcvbuf` bytes when given (so a server cannot push a whole response into the kernel while
/// the test does not read).
pub fn tcp_connect(
    addr: std::net::SocketAddr,
    from: Option<&str>,
    rcvbuf: Option<usize>,
) -> Result<std::net::TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket, sockopt};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let fd = socket(family, SocketType::STREAM, None)?;
    if let Some(n) = rcvbuf {
        sockopt::set_socket_recv_buffer_size(&fd, n)?;
    }
    if let Some(from) = from {
        let local: std::net::SocketAddr = format!("{from}:0").parse()?;
        bind(&fd, &local)?;
    }
    connect(&fd, &addr)?;
    Ok(std::net::TcpStream::from(fd))
}

/// The tests' Python: a venv with the system's site packages (GStreamer's `gi`) and OpenCV
/// (`tests/servers/requirements.txt`), made by `tests/run` (`OPENVA_TEST_VENV`, default
/// `~/.cache/openva-venv`).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OPENVA_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/openva-venv"));
    venv.join("bin/python")
}

/// `tests/servers/marker_camera.py`: ArUco markers at known places (marker 3 still at
/// (40, 40), 80 px, in 640×360; marker 7 moving), over GStreamer's RTSP server. Returns it and
/// its RTSP URL.
pub fn start_marker_camera() -> Result<(Proc, String)> {
    let mut cmd = Command::new(venv_python());
    cmd.arg(repo_root().join("tests/servers/marker_camera.py")).arg(free_port().to_string());
    spawn_ready("marker camera", cmd, Duration::from_secs(30))
}

/// `tests/servers/aruco_http.py`: an inference server on AVA's HTTP extension contract with
/// OpenCV's ArUco detector, logging each request it gets.
pub struct InferenceServer {
    /// The server.
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
}

impl InferenceServer {
    /// Starts it with its options (`--basic user:password`, `--header name:value`), logging to
    /// a file in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Result<InferenceServer> {
        Self::start_script("aruco_http.py", &dir.join(format!("inference-{}.jsonl", free_port())), args)
    }

    /// The gRPC one (`tests/servers/aruco_grpc.py`, AVA's gRPC contract), `--port` among
    /// `args` or any free port; `url` is `tcp://127.0.0.1:PORT`.
    pub fn start_grpc(dir: &Path, args: &[&str]) -> Result<InferenceServer> {
        Self::start_script("aruco_grpc.py", &dir.join(format!("grpc-{}.jsonl", free_port())), args)
    }

    /// Starts the same gRPC server again on its port (after [`Proc::terminate`]), logging on.
    pub fn restart_grpc(&mut self) -> Result<()> {
        let port = self.url.rsplit(':').next().unwrap_or_default().to_owned();
        let again = Self::start_script("aruco_grpc.py", &self.log, &["--port", &port])?;
        self.proc = again.proc;
        Ok(())
    }

    fn start_script(script: &str, log: &Path, args: &[&str]) -> Result<InferenceServer> {
        let mut cmd = Command::new(venv_python());
        cmd.arg(repo_root().join("tests/servers").join(script)).arg("--log").arg(log).args(args);
        let (proc, url) = spawn_ready(script, cmd, Duration::from_secs(30))?;
        Ok(InferenceServer { proc, url, log: log.to_owned() })
    }

    /// Every request so far, as the server logged it (headers, content type, image size,
    /// markers found, status answered).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Makes `?busy=N` endpoints answer 503 (while `on`).
    pub fn set_busy(&self, on: bool) -> Result<()> {
        let flag = self.log.with_extension("jsonl.busy");
        if on {
            std::fs::write(&flag, b"")?;
        } else if flag.exists() {
            std::fs::remove_file(&flag)?;
        }
        Ok(())
    }
}

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, made with
/// openssl in `dir`: `ca.crt`, `server.crt`, `server.key`.
pub fn test_certificates(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl").args(args).current_dir(dir).output().context("openssl")?;
        ensure!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")?;
    let ca = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt"];
    openssl(&[&ca[..], &["-subj", "/CN=openva test CA", "-days", "2"]].concat())?;
    let csr = ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr"];
    openssl(&[&csr[..], &["-subj", "/CN=localhost"]].concat())?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ])?;
    Ok(())
}
