//! `openva ranges`: AVA's availableMedia of a video, read from a data directory.

use super::parse_time;
use anyhow::Result;
use openva::archive::{Archive, ranges::Precision};
use std::path::PathBuf;

/// The options of `openva ranges`.
#[derive(clap::Args)]
pub struct RangesArgs {
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Video name.
    #[arg(long)]
    pub video: String,
    /// year, month, day or full.
    #[arg(long, default_value = "full")]
    pub precision: String,
    /// Start (ISO 8601 UTC).
    #[arg(long)]
    pub start: Option<String>,
    /// End (ISO 8601 UTC).
    #[arg(long)]
    pub end: Option<String>,
}

/// Runs `openva ranges`.
pub fn run(args: RangesArgs) -> Result<()> {
    let RangesArgs { data, video, precision, start, end } = args;
    let precision: Precision = precision.parse()?;
    let start = start.map(|s| parse_time("start", &s)).transpose()?;
    let end = end.map(|s| parse_time("end", &s)).transpose()?;
    let archive = Archive::open_existing(&data)?;
    let media = archive.available_media(&video, precision, start, end, false)?;
    println!("{}", serde_json::to_string(&media)?);
    Ok(())
}
