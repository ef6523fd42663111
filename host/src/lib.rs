//! openva: an open, self-hosted successor to Azure Video Analyzer.
//!
//! Data flows one way: camera → [`ingest`] → [`pipeline`] → [`archive`] → [`mp4`] → player.
//! See `../shared/ARCHITECTURE.md` for which module owns what.

pub mod api;
pub mod archive;
pub mod codec;
pub mod events;
pub mod ingest;
pub mod mp4;
pub mod pipeline;
pub mod plugins;
pub mod time;
pub mod topology;
