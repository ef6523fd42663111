//! `openva record`: record cameras straight into a data directory, without the host.

use super::{recorder_runtime, stop_signal};
use anyhow::{Result, bail};
use openva::archive::Archive;
use openva::ingest::rtsp::SourceOptions;
use std::path::PathBuf;
use std::sync::Arc;

/// The options of `openva record`.
#[derive(clap::Args)]
pub struct RecordArgs {
    /// Data directory (created if missing).
    #[arg(long)]
    pub data: PathBuf,
    /// Video name in the archive (repeatable, one per --url).
    #[arg(long, required = true)]
    pub video: Vec<String>,
    /// Camera URL, rtsp://… (repeatable).
    #[arg(long, required = true)]
    pub url: Vec<String>,
    /// Camera user name.
    #[arg(long)]
    pub user: Option<String>,
    /// Camera password.
    #[arg(long, env = "OPENVA_CAMERA_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// RTP transport.
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
    pub transport: String,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Segment file length of a new video, ISO 8601 (AVA: PT30S to PT5M; default PT30S).
    /// This and the next two apply when `record` creates the video; an existing video
    /// with other settings is refused (change them with `openva video set`).
    #[arg(long)]
    pub segment_length: Option<String>,
    /// Delete a new video's segments older than this ISO 8601 duration (e.g. P7D).
    #[arg(long)]
    pub retention: Option<String>,
    /// Delete a new video's oldest segments while it holds more than this many bytes.
    #[arg(long)]
    pub max_bytes: Option<String>,
    /// Record video only, even if the camera sends audio.
    #[arg(long)]
    pub no_audio: bool,
}

/// Runs `openva record`.
pub fn run(args: RecordArgs) -> Result<()> {
    let RecordArgs {
        data,
        video,
        url,
        user,
        password,
        transport,
        duration,
        segment_length,
        retention,
        max_bytes,
        no_audio,
    } = args;
    let given =
        crate::cli::video::Given::parse(segment_length.as_deref(), retention.as_deref(), max_bytes.as_deref(), false)?;
    if let Some(d) = duration
        && !(d > 0.0 && d.is_finite())
    {
        bail!("--duration must be a positive number of seconds");
    }
    if video.len() != url.len() {
        bail!("give one --video per --url ({} videos, {} URLs)", video.len(), url.len());
    }
    for v in &video {
        openva::archive::validate_video_name(v)?;
    }
    let archive = Arc::new(Archive::open_or_create(&data)?);
    crate::cli::video::check_record_settings(&archive, &data, &video, &given)?;
    let config = given.for_creation();
    let udp = transport == "udp";
    let streams: Vec<(String, SourceOptions)> = video
        .into_iter()
        .zip(url)
        .map(|(v, url)| {
            let (user, password) = (user.clone(), password.clone());
            (v, SourceOptions { url, user, password, udp, audio: !no_audio })
        })
        .collect();
    let results = recorder_runtime()?.block_on(async move {
        let stop = stop_signal(duration.map(std::time::Duration::from_secs_f64))?;
        Ok::<_, anyhow::Error>(openva::pipeline::record::record_many(archive, streams, config, stop).await?)
    })?;
    let mut total = openva::pipeline::record::RecordSummary::default();
    for (_, s) in &results {
        total.merge(s);
    }
    let mut out = serde_json::to_value(&total)?;
    if results.len() > 1 {
        out["videos"] = results.iter().map(|(v, s)| (v.clone(), serde_json::json!(s))).collect();
    }
    println!("{out}");
    Ok(())
}
