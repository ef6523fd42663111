//! openva: an open, self-hosted successor to Azure Video Analyzer.
//!
//! Data flows one way: camera → [`ingest`] → [`pipeline`] → [`archive`] → [`mp4`] → player.
//! See `docs/architecture.md` for which module owns what and what never imports what.

pub mod api;
pub mod archive;
pub mod codec;
pub mod disk_lru;
pub mod events;
pub mod extension;
pub mod ingest;
pub mod limits;
pub mod mp4;
pub mod mqtt;
pub mod pipeline;
pub mod plugins;
pub mod remote;
pub mod secrets;
pub mod time;
pub mod topology;
