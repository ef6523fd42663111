//! The `openva` binary's commands, one module each (`main.rs` only parses and dispatches).

pub mod check;
pub mod client;
pub mod export;
pub mod host;
pub mod job;
pub mod plugin;
pub mod ranges;
pub mod record;
pub mod sim;
pub mod video;

use anyhow::Context;

/// The host's runtime: the API and control calls. Pipelines run on threads of their own.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The recorder's runtime: one thread. Recording is light I/O; a single thread avoids the
/// cross-thread wake-ups that dominated a multi-threaded runtime's CPU in `bench/ ingest`.
pub fn recorder_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

/// A watch channel that turns true on SIGINT or SIGTERM (or after `limit`).
pub fn stop_signal(limit: Option<std::time::Duration>) -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::spawn(async move {
        let sleep = async {
            match limit {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = sleep => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// A command-line time (ISO 8601 UTC); errors name the option.
pub fn parse_time(what: &str, s: &str) -> anyhow::Result<openva::time::Time90k> {
    openva::time::Time90k::parse_iso(s).with_context(|| format!("--{what}"))
}
