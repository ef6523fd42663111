//! `openva check`: verify every segment against the index, or rebuild the index (from the
//! segment files, or from a remote tier's bucket).

use anyhow::{Context, Result, bail};
use openva::archive::check;
use std::path::PathBuf;
use std::sync::Arc;

/// The options of `openva check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Data directory.
    #[arg(long)]
    pub data: PathBuf,
    /// Rebuild the index from the segment files alone.
    #[arg(long, conflicts_with = "from_remote")]
    pub repair: bool,
    /// Build the index from a remote tier's bucket alone (its manifests; no segment is
    /// downloaded): `s3://BUCKET/PREFIX` or `azure://CONTAINER/PREFIX`. A recorder's own
    /// prefix makes an index that recorder can go on with; a prefix above several recorders
    /// makes a read-only gateway's.
    #[arg(long, value_name = "URL")]
    pub from_remote: Option<String>,
    /// The remote store's settings file (as `serve --remote-credentials`).
    #[arg(long, env = "OPENVA_REMOTE_CREDENTIALS", value_name = "FILE")]
    pub remote_credentials: Option<PathBuf>,
}

/// Runs `openva check`.
pub fn run(args: CheckArgs) -> Result<()> {
    let CheckArgs { data, repair, from_remote, remote_credentials } = args;
    if let Some(url) = from_remote {
        let config = openva::remote::RemoteConfig::parse(&url, remote_credentials.as_deref())?;
        return from_bucket(&data, &config);
    }
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

/// `check --from-remote`: one pass of the bucket's manifests into the index at `data`.
fn from_bucket(data: &std::path::Path, config: &openva::remote::RemoteConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
        let archive = Arc::new(openva::archive::Archive::open_or_create(data)?);
        // Into a new index, or one made from a bucket before: never beside recorded videos,
        // whose evicted segments a stale manifest could make look gone.
        let imported: Vec<String> = archive.imported_videos()?.into_iter().map(|(n, _)| n).collect();
        if let Some(v) = archive.videos()?.into_iter().find(|v| !imported.contains(&v.name)) {
            bail!(
                "{} already holds video '{}' recorded here: rebuild from the bucket into a new data directory",
                data.display(),
                v.name
            );
        }
        let store = config.build()?;
        let report = openva::remote::catalog::sync_once(store.as_ref(), &config.prefix, &archive)
            .await
            .with_context(|| format!("reading {}", config.target()))?;
        if report.recorders == [config.prefix.clone()] {
            // One recorder's prefix: this index may go on recording there, as that recorder.
            if let Some(w) = openva::remote::catalog::writer_of(store.as_ref(), &config.prefix).await? {
                archive.set_host_id(&w.host_id)?;
            }
        } else if !report.recorders.is_empty() {
            // Other hosts' objects: never to be uploaded to or deleted from by this index.
            archive.set_gateway(&config.target())?;
        }
        println!("{}", serde_json::to_string(&report)?);
        if report.recorders.is_empty() {
            bail!("{} holds no openva videos (no v1/videos/ at that prefix or one level below)", config.target());
        }
        Ok(())
    })
}
