//! `openva sim`: a live synthetic H.264 camera over RTSP, for demos, tests and benchmarks.

use super::stop_signal;
use anyhow::{Context, Result};
use openva::ingest::sim::{encoder, server};

/// The options of `openva sim`.
#[derive(clap::Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8554")]
    pub listen: String,
    /// Picture size, WIDTHxHEIGHT (width ≥ 640).
    #[arg(long, default_value = "1280x720")]
    pub size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 25)]
    pub fps: u32,
    /// Keyframe interval in frames.
    #[arg(long, default_value_t = 50)]
    pub gop: u32,
    /// Target bit rate in bits per second.
    #[arg(long, default_value_t = 2_000_000)]
    pub bitrate: u32,
    /// Require this user (Basic or Digest).
    #[arg(long, requires = "password")]
    pub user: Option<String>,
    /// Password for --user.
    #[arg(long, requires = "user")]
    pub password: Option<String>,
    /// STILL,MOVING: a scene frozen for STILL seconds (stamp included), then moving for MOVING
    /// seconds, repeating on the wall clock's phase (for event-based recording on motion).
    #[arg(long, value_name = "STILL,MOVING")]
    pub motion_schedule: Option<String>,
}

/// Runs `openva sim`.
pub fn run(args: SimArgs) -> Result<()> {
    let SimArgs { listen, size, fps, gop, bitrate, user, password, motion_schedule } = args;
    let motion = match motion_schedule {
        None => None,
        Some(m) => Some(
            m.split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?)))
                .filter(|&(a, b)| a > 0 && b > 0 && a + b <= 86_400)
                .map(|(still_s, moving_s)| encoder::MotionSchedule { still_s, moving_s })
                .with_context(|| format!("--motion-schedule '{m}' is not STILL,MOVING (whole seconds above 0)"))?,
        ),
    };
    let (w, h) = size
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .with_context(|| format!("--size '{size}' is not WIDTHxHEIGHT"))?;
    let camera = encoder::Camera::start(encoder::EncoderSettings { width: w, height: h, fps, gop, bitrate, motion })?;
    let auth = user.zip(password).map(|(user, password)| server::Auth { user, password });
    crate::cli::runtime()?.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        println!("READY rtsp://{addr}/");
        use std::io::Write;
        std::io::stdout().flush()?;
        let mut stop = stop_signal(None)?;
        tokio::select! {
            _ = server::serve(listener, camera, auth) => {}
            _ = stop.changed() => {}
        }
        Ok(())
    })
}
