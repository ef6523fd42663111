//! Commands of the `openva` binary that run or talk to the host.

pub mod client;
pub mod export;
pub mod host;
pub mod job;
pub mod plugin;
pub mod video;

/// The host's runtime: the API and control calls. Pipelines run on threads of their own.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
