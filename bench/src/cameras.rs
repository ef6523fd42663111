//! `cameras`: ingest CPU per stream-minute and RSS for the camera shapes the archive now keeps
//! whole (H.264 with B-frames, H.265 with B-frames, H.264 with AAC audio), openva against
//! `ffmpeg -rtsp_transport tcp -i URL -c copy -f segment` on the same streams, in one run.
//! The cameras are GStreamer's RTSP server (tools/camera-zoo.py) encoding 1280x720 at 25 fps
//! live, one pipeline per client; their encoders run beside the measured processes, which are
//! measured alone (their own CPU time), so the ratio compares like with like.

use super::{Load, measure};
use anyhow::Result;
use openva_e2e::*;
use std::path::Path;
use std::time::Duration;

/// The shapes measured: (zoo mount, description).
const SHAPES: [(&str, &str); 3] = [
    ("h264-high-b2", "H.264 High, 2 B-frames"),
    ("h265-b3", "H.265 Main, 3 B-frames"),
    ("h264-main+aac", "H.264 Main + AAC 48 kHz"),
];

/// `n` streams of `mount` recorded by one openva, then by `n` ffmpeg processes.
fn one(tmp: &Path, zoo: &Zoo, mount: &str, n: usize, secs: u64) -> Result<(Load, Load)> {
    let data = tmp.join(format!("cameras-{}", mount.replace('+', "-")));
    let mut args: Vec<String> = vec!["record".into(), "--data".into(), data.display().to_string()];
    for i in 0..n {
        args.extend(["--video".into(), format!("c{i}"), "--url".into(), format!("{}{mount}", zoo.url)]);
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut rec = spawn_openva(&argv)?;
    let ov = measure(&[&rec], secs)?;
    rec.terminate(Duration::from_secs(20))?;
    let segdir = tmp.join(format!("cameras-ff-{}", mount.replace('+', "-")));
    let ffs = super::ffmpeg_segmenters(&segdir, (0..n).map(|_| format!("{}{mount}", zoo.url)))?;
    let refs: Vec<&Proc> = ffs.iter().collect();
    let ff = measure(&refs, secs)?;
    drop(refs);
    drop(ffs);
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&segdir);
    Ok((ov, ff))
}

pub fn run(tmp: &Path, secs: u64) -> Result<()> {
    println!("== cameras: {secs} s per measurement, GStreamer's RTSP server encoding 1280x720 25 fps live");
    let zoo = Zoo::start_with(&["--size", "1280x720", "--gop", "50"])?;
    println!(
        "{:<26} | {:>2} | {:>23} | {:>23} | {:>6} | {:>14} | {:>14}",
        "camera",
        "N",
        "openva CPU s/stream-min",
        "ffmpeg CPU s/stream-min",
        "ratio",
        "openva RSS/str",
        "ffmpeg RSS/str"
    );
    for (mount, what) in SHAPES {
        // Two streams at most: the two cores also run the cameras' encoders.
        for n in [1usize, 2] {
            let (ov, ff) = one(tmp, &zoo, mount, n, secs)?;
            let per_min = |cpu: Duration| cpu.as_secs_f64() / (n as f64 * secs as f64 / 60.0);
            let (o, f) = (per_min(ov.cpu), per_min(ff.cpu));
            println!(
                "{what:<26} | {n:>2} | {o:>23.3} | {f:>23.3} | {:>6.3} | {:>10.2} MiB | {:>10.2} MiB",
                o / f,
                ov.rss as f64 / n as f64 / 1048576.0,
                ff.rss as f64 / n as f64 / 1048576.0,
            );
        }
    }
    Ok(())
}
