#!/usr/bin/env python3
"""openva beside Moonfire NVR, the Rust NVR built on the same RTSP library (issue 21's peer).

Run by hand, not in CI (it builds Moonfire from source and records for minutes):

    bench/peers/moonfire.py [--n 1,8] [--window 120] [--reps 2] [--minutes 10] [--only ingest|ttfb]

What it does, all on 127.0.0.1, every process stopped by its PID:

1. Builds Moonfire NVR (tag v0.7.30) into a cache (`--cache`, default ~/.cache/openva-peers),
   once. Its git dependencies come from GitHub, or from local mirrors of the same revisions
   (`--mirror DIR` holding `OWNER+NAME/repo` git directories, as `fetch` makes them). The
   `scottlamb/rust-protobuf` fork is replaced with crates.io `protobuf =3.7.2` (the version the
   fork carries; it only encodes Moonfire's directory and config blobs, not its recording or
   MP4 paths). Makes an empty database with a sample-file directory, through `moonfire-nvr
   config` driven by tmux (the TUI also writes the directory's `meta` file), kept as a template.
2. Ingest: one `openva sim` camera (1280x720, 25 fps, 2 Mb/s) serves N paths; openva
   (`openva record`) and Moonfire (`moonfire-nvr run`) record them in turn (A B A B), each
   with fresh data: CPU (utime+stime) over a window after a warm-up, RSS (max, sampled every
   5 s). Prints CPU seconds per stream-minute and openva/Moonfire ratios.
3. Time to first byte: both record one path of the same camera at once for --minutes + 2;
   then each serves the last --minutes of it (openva `serve`; Moonfire with recording off),
   and the first body byte of the MP4 of that range is timed on fresh connections, alternating,
   25 each, 30 ms apart; median and ratio. Both files are fetched whole once and their frame
   counts compared.

Needs: cargo, git, tmux, ffprobe; openva's release binary (built here if missing).
"""
import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MOONFIRE_TAG = "v0.7.30"
MOONFIRE_COMMIT = "ffc8bd6"
# Moonfire's git dependencies (Cargo.toml of v0.7.30) and the mirror directory of each.
GIT_DEPS = {
    "https://github.com/scottlamb/tracing": "scottlamb+tracing",
    "https://github.com/scottlamb/coded": "scottlamb+coded",
    "https://github.com/scottlamb/mp4-rust": "scottlamb+mp4-rust",
}
TICK = os.sysconf("SC_CLK_TCK")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    log("$", " ".join(str(c) for c in cmd))
    subprocess.run(cmd, check=True, **kw)


class Proc:
    """A child process, stopped by its PID (SIGINT, then SIGKILL after a grace period)."""

    def __init__(self, cmd, log_path, env=None):
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.p.pid

    def stop(self, grace=20):
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGINT)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()

    def alive(self):
        return self.p.poll() is None


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of the line)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_http(port, path, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not proc.alive():
            raise SystemExit(f"the server on port {port} exited; see its log")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return r.read()
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer on port {port} within {timeout} s")


# ---------------------------------------------------------------- building


def openva_bin(given):
    """openva's release binary: `--openva`, or the target directory's (built if missing, with
    the default features). Says whether it links libavcodec (`--features ffmpeg`): the
    shared libraries it maps count in its RSS."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    exe = Path(given) if given else target / "release" / "openva"
    if not exe.exists():
        run(["cargo", "build", "--release", "-p", "openva"], cwd=ROOT)
    libs = subprocess.run(["ldd", exe], capture_output=True, text=True).stdout
    print(f"openva: {exe} ({'with' if 'libavcodec' in libs else 'without'} libavcodec); "
          f"Moonfire NVR {MOONFIRE_TAG} ({MOONFIRE_COMMIT}), release build, default features")
    return exe


def git_env(mirror):
    """Environment making git (and cargo, through the git CLI) fetch GitHub URLs from mirrors."""
    env = dict(os.environ, CARGO_NET_GIT_FETCH_WITH_CLI="true")
    if mirror:
        pairs = [(f"url.{Path(mirror) / d / 'repo'}.insteadOf", url) for url, d in GIT_DEPS.items()]
        env["GIT_CONFIG_COUNT"] = str(len(pairs))
        for i, (k, v) in enumerate(pairs):
            env[f"GIT_CONFIG_KEY_{i}"] = k
            env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env


def build_moonfire(cache, mirror):
    exe = cache / "moonfire-target" / "release" / "moonfire-nvr"
    if exe.exists():
        return exe
    src = cache / "moonfire-src"
    if not src.exists():
        origin = (Path(mirror) / "scottlamb+moonfire-nvr" / "repo") if mirror else "https://github.com/scottlamb/moonfire-nvr"
        run(["git", "clone", "-q", str(origin), str(src)])
        run(["git", "-C", str(src), "checkout", "-q", MOONFIRE_COMMIT])
    manifest = src / "server" / "Cargo.toml"
    text = manifest.read_text()
    fork = 'git = "https://github.com/scottlamb/rust-protobuf", rev = "593aa7f26bb5fc736c2e61d410afa34efb914ecb"'
    if fork in text:
        text = text.replace(f"protobuf = {{ {fork} }}", 'protobuf = "=3.7.2"')
        text = text.replace(f"protobuf-codegen = {{ {fork} }}", 'protobuf-codegen = "=3.7.2"')
        manifest.write_text(text)
    env = git_env(mirror)
    env["CARGO_TARGET_DIR"] = str(cache / "moonfire-target")
    t = time.time()
    run(["cargo", "build", "--release"], cwd=src / "server", env=env)
    log(f"Moonfire built in {time.time() - t:.0f} s")
    return exe


def moonfire_template(cache, mf, work):
    """An empty Moonfire database with sample-file directory id 1 at WORK/sample (absolute
    paths are stored, so it is always restored at WORK)."""
    tar = cache / "moonfire-template.tar"
    if tar.exists():
        return tar
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed to drive `moonfire-nvr config` once (apt install tmux)")
    shutil.rmtree(work, ignore_errors=True)
    (work / "db").mkdir(parents=True)
    run([mf, "init", "--db-dir", work / "db"])
    session = f"mfconfig{os.getpid()}"
    run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
         f"{mf} config --db-dir {work / 'db'}"])
    try:
        keys = [["Down"], ["Enter"], ["Enter"], ["-l", str(work / "sample")], ["Enter"],
                ["Tab"], ["Enter"], ["Tab"], ["Enter"]]
        for k in keys:
            time.sleep(0.7)
            subprocess.run(["tmux", "send-keys", "-t", session, *k], check=True)
        deadline = time.time() + 20
        while time.time() < deadline and subprocess.run(["tmux", "has-session", "-t", session],
                                                       capture_output=True).returncode == 0:
            time.sleep(0.3)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    with db(work) as c:
        dirs = [(i, json.loads(cfg or "{}").get("path")) for i, cfg in c.execute("select id, config from sample_file_dir")]
    if dirs != [(1, str(work / "sample"))] or not (work / "sample" / "meta").exists():
        raise SystemExit(f"the config TUI did not add the sample directory ({dirs}); run it by hand")
    with tarfile.open(tar, "w") as t:
        t.add(work, arcname=".")
    return tar


# ---------------------------------------------------------------- recorders


@contextlib.contextmanager
def db(work):
    """Moonfire's database, committed and closed at the end (Moonfire locks it exclusively:
    a connection left open, even idle, keeps it from starting)."""
    c = sqlite3.connect(work / "db" / "db")
    try:
        with c:
            yield c
    finally:
        c.close()


def cam_uuid(i):
    return f"aaaaaaaa-0000-4000-8000-{i:012x}"


def start_moonfire(mf, tar, work, logs, urls, port, record=True, fresh=True):
    """Moonfire on WORK (restored from the template when `fresh`), recording `urls`."""
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        with tarfile.open(tar) as t:
            t.extractall(work, filter="data") if sys.version_info >= (3, 12) else t.extractall(work)
        with db(work) as c:
            for i, url in enumerate(urls, 1):
                c.execute("insert into camera (uuid, short_name, config) values (?, ?, '{}')",
                          (bytes.fromhex(cam_uuid(i).replace("-", "")), f"cam{i}"))
                cfg = {"mode": "record", "url": url, "rtspTransport": "tcp",
                       "retainBytes": 20_000_000_000, "flushIfSec": 120}
                c.execute("insert into stream (camera_id, sample_file_dir_id, type, config, cum_recordings, "
                          "cum_media_duration_90k, cum_runs) values (last_insert_rowid(), 1, 'main', ?, 0, 0, 0)",
                          (json.dumps(cfg),))
    if not record:
        with db(work) as c:
            for (sid, cfg) in c.execute("select id, config from stream").fetchall():
                cfg = json.loads(cfg)
                cfg["mode"] = ""
                c.execute("update stream set config = ? where id = ?", (json.dumps(cfg), sid))
    conf = work / "moonfire.toml"
    conf.write_text(f'dbDir = "{work / "db"}"\n\n[[binds]]\nipv4 = "127.0.0.1:{port}"\n'
                    "allowUnauthenticatedPermissions = { viewVideo = true }\n")
    env = dict(os.environ, MOONFIRE_LOG="info")
    return Proc([mf, "run", "--config", conf], logs / f"moonfire-{time.time():.0f}.log", env)


def start_openva(ova, data, urls):
    cmd = [ova, "record", "--data", data]
    for i, url in enumerate(urls, 1):
        cmd += ["--video", f"cam{i}", "--url", url]
    data.mkdir(parents=True, exist_ok=True)
    return Proc(cmd, data.parent / f"openva-{data.name}.log", dict(os.environ, RUST_LOG="warn"))


# ---------------------------------------------------------------- part 1: ingest


def ingest(args, ova, mf, tar, tmp, sim_port):
    print(f"== ingest: CPU per stream-minute, {args.warmup} s warm-up, {args.window} s window, "
          "1280x720 25 fps 2 Mb/s H.264 over TCP")
    results = {}
    for n in args.n:
        for rep in range(args.reps):
            for prog in ("openva", "moonfire"):
                urls = [f"rtsp://127.0.0.1:{sim_port}/{prog}{rep}n{n}c{i}" for i in range(1, n + 1)]
                if prog == "openva":
                    data = tmp / f"ova-n{n}-r{rep}"
                    shutil.rmtree(data, ignore_errors=True)
                    p = start_openva(ova, data, urls)
                else:
                    data = args.mfwork / "sample"
                    p = start_moonfire(mf, tar, args.mfwork, tmp, urls, free_port())
                time.sleep(args.warmup)
                if not p.alive():
                    raise SystemExit(f"{prog} exited during the warm-up; see its log in {tmp}")
                c0, t0, rss = cpu_ticks(p.pid), time.time(), []
                while time.time() - t0 < args.window:
                    rss.append(rss_kib(p.pid))
                    time.sleep(min(5, max(0.0, args.window - (time.time() - t0))))
                c1, t1 = cpu_ticks(p.pid), time.time()
                rss.append(rss_kib(p.pid))
                p.stop()
                written = sum(f.stat().st_size for f in data.rglob("*") if f.is_file())
                if written < n * 1_000_000:
                    raise SystemExit(f"{prog} wrote only {written} bytes for {n} cameras; see its log in {tmp}")
                cpu = (c1 - c0) / TICK
                per = cpu / (n * (t1 - t0) / 60)
                results.setdefault((n, prog), []).append((per, max(rss)))
                print(f"  {prog:8} N={n} rep {rep + 1}: {cpu:.2f} CPU-s in {t1 - t0:.0f} s = "
                      f"{per:.4f} s per stream-minute, RSS max {max(rss) / 1024:.1f} MiB, {written / 1e6:.1f} MB written",
                      flush=True)
    for n in args.n:
        o = statistics.mean(x[0] for x in results[(n, "openva")])
        m = statistics.mean(x[0] for x in results[(n, "moonfire")])
        ro = max(x[1] for x in results[(n, "openva")])
        rm = max(x[1] for x in results[(n, "moonfire")])
        print(f"N={n}: openva {o:.4f}, Moonfire {m:.4f} CPU-s per stream-minute: openva/Moonfire "
              f"{o / m:.2f} (goal <= 0.5); RSS {ro / 1024:.1f} vs {rm / 1024:.1f} MiB ({ro / rm:.2f})")


# ---------------------------------------------------------------- part 2: time to first byte


def first_byte_and_header(port, path):
    """Seconds from sending the request (fresh connection) to the first byte of the body, and
    to the end of the MP4's header (ftyp and moov: what a player needs before showing
    anything); the connection is dropped then."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        t = time.perf_counter()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        got, first = b"", None
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise SystemExit(f"{path}: the connection closed before the MP4 header ended")
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            if not sep or not body:
                continue
            if first is None:
                first = time.perf_counter() - t
                status = head.split(b" ", 2)[1]
                if status != b"200":
                    raise SystemExit(f"{path}: HTTP {status.decode()}")
            if len(body) >= 8:
                ftyp = int.from_bytes(body[:4], "big")
                if len(body) >= ftyp + 8:
                    moov = int.from_bytes(body[ftyp:ftyp + 4], "big")
                    if body[ftyp + 4:ftyp + 8] != b"moov":
                        raise SystemExit(f"{path}: no moov after ftyp")
                    if len(body) >= ftyp + moov:
                        return first, time.perf_counter() - t


def fetch_to(port, path, out):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    t = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"{path}: HTTP {r.status}")
    with open(out, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)
    return time.perf_counter() - t


def video_packets(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets,codec_name,width,height", "-of", "json", path],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["streams"][0]


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ttfb(args, ova, mf, tar, tmp, sim_port):
    secs = args.minutes * 60
    print(f"== time to first byte: MP4 of the last {args.minutes} min, both recording the same camera "
          f"for {args.minutes + 4} min first")
    data = tmp / "ova-ttfb"
    shutil.rmtree(data, ignore_errors=True)
    o = start_openva(ova, data, [f"rtsp://127.0.0.1:{sim_port}/ttfb-openva"])
    m = start_moonfire(mf, tar, args.mfwork, tmp, [f"rtsp://127.0.0.1:{sim_port}/ttfb-moonfire"], free_port())
    # Moonfire commits a recording (60 s) when it ends, and a stop loses the one in progress:
    # 4 minutes more than the range leave it a committed stretch that covers the range.
    time.sleep(secs + 240)
    o.stop()
    m.stop()
    ova_port, mf_port = free_port(), free_port()
    srv = Proc([ova, "serve", "--data", data, "--listen", f"127.0.0.1:{ova_port}"], tmp / "openva-serve.log",
               dict(os.environ, RUST_LOG="warn"))
    msrv = start_moonfire(mf, tar, args.mfwork, tmp, [], mf_port, record=False, fresh=False)
    try:
        wait_http(ova_port, "/api/videos", srv)
        wait_http(mf_port, "/api/", msrv)
        cam = cam_uuid(1)
        recs = json.loads(wait_http(mf_port, f"/api/cameras/{cam}/main/recordings", msrv))["recordings"]
        if not recs:
            raise SystemExit("Moonfire committed no recording")
        # The newest committed run of recordings, and openva's recorded range: the range timed
        # is the last `minutes` both hold, ending 5 s before the earlier of their ends.
        r = max(recs, key=lambda r: r["endTime90k"])
        ranges = json.loads(wait_http(ova_port, "/api/videos/cam1/availableMedia", srv))["timeRanges"]
        ova_end = datetime.fromisoformat(ranges[-1]["end"].replace("Z", "+00:00")).timestamp()
        end = min(ova_end, r["endTime90k"] / 90000) - 5
        start = end - secs
        ova_start = datetime.fromisoformat(ranges[-1]["start"].replace("Z", "+00:00")).timestamp()
        if start < max(ova_start, r["startTime90k"] / 90000):
            raise SystemExit(f"the recordings do not both cover {secs} s: openva {ranges[-1]}, Moonfire {r}")
        ova_path = f"/api/videos/cam1/content.mp4?startTime={iso(start)}&endTime={iso(end)}".replace(":", "%3A")
        s90, e90 = round(start * 90000), round(end * 90000)
        ids = f"{r['startId']}-{r.get('endId', r['startId'])}"
        mf_path = f"/api/cameras/{cam}/main/view.mp4?s={ids}.{s90 - r['startTime90k']}-{e90 - r['startTime90k']}"
        files = {}
        for name, port, path in (("openva", ova_port, ova_path), ("moonfire", mf_port, mf_path)):
            out = tmp / f"{name}.mp4"
            whole = fetch_to(port, path, out)
            files[name] = (video_packets(out), out.stat().st_size, whole)
        times = {"openva": [], "moonfire": []}
        headers = {"openva": [], "moonfire": []}
        for _ in range(args.repeat):
            for name, port, path in (("openva", ova_port, ova_path), ("moonfire", mf_port, mf_path)):
                time.sleep(0.03)
                first, header = first_byte_and_header(port, path)
                times[name].append(first)
                headers[name].append(header)
    finally:
        srv.stop()
        msrv.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    hmed = {k: statistics.median(v) for k, v in headers.items()}
    for name in ("openva", "moonfire"):
        v, size, whole = files[name]
        print(f"  {name:8}: first byte {med[name] * 1e3:.2f} ms, ftyp+moov {hmed[name] * 1e3:.2f} ms "
              f"(medians of {args.repeat}), whole "
              f"{size / 1e6:.1f} MB in {whole * 1e3:.0f} ms, {v['nb_read_packets']} video packets "
              f"{v['codec_name']} {v['width']}x{v['height']}")
    print(f"{args.minutes} min MP4, first byte: openva/Moonfire {med['openva'] / med['moonfire']:.2f} "
          f"(goal: openva <= 1 ms and ahead of Moonfire); whole header: "
          f"{hmed['openva'] / hmed['moonfire']:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "openva-peers")
    ap.add_argument("--mirror", help="directory of local git mirrors (OWNER+NAME/repo) instead of GitHub")
    ap.add_argument("--openva", help="the openva binary to measure (default: the release build)")
    ap.add_argument("--n", default="1,8", help="camera counts for the ingest part")
    ap.add_argument("--window", type=float, default=120)
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--minutes", type=int, default=10, help="length of the MP4 range timed")
    ap.add_argument("--repeat", type=int, default=25, help="timed requests per server")
    ap.add_argument("--only", choices=["ingest", "ttfb"])
    args = ap.parse_args()
    args.n = [int(x) for x in args.n.split(",")]
    args.cache.mkdir(parents=True, exist_ok=True)
    ova = openva_bin(args.openva)
    mf = build_moonfire(args.cache, args.mirror)
    # Moonfire stores the sample directory's absolute path: every trial runs in this one.
    args.mfwork = args.cache / "mf-work"
    tar = moonfire_template(args.cache, mf, args.mfwork)
    with tempfile.TemporaryDirectory(prefix="openva-peers-") as t:
        tmp = Path(t)
        sim_port = free_port()
        sim = Proc([ova, "sim", "--listen", f"127.0.0.1:{sim_port}", "--size", "1280x720", "--fps", "25",
                    "--gop", "50"], tmp / "sim.log")
        try:
            time.sleep(1)
            if args.only != "ttfb":
                ingest(args, ova, mf, tar, tmp, sim_port)
            if args.only != "ingest":
                ttfb(args, ova, mf, tar, tmp, sim_port)
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
