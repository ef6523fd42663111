//! `openva check`: verify every segment against the index, or rebuild the index.

use anyhow::{Result, bail};
use openva::archive::check;
use std::path::PathBuf;

/// The options of `openva check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Rebuild the index from the segment files alone.
    #[arg(long)]
    pub repair: bool,
}

/// Runs `openva check`.
pub fn run(args: CheckArgs) -> Result<()> {
    let CheckArgs { data, repair } = args;
    let report = if repair { check::repair(&data)? } else { check::check(&data)? };
    println!("{}", serde_json::to_string(&report)?);
    if !report.problems.is_empty() && !repair {
        bail!(
            "{} problem(s) found; `openva check --repair` rebuilds the index from the segment files",
            report.problems.len()
        );
    }
    Ok(())
}
