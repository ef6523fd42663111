//! Ties sources to sinks: live pipelines (cameras → recording and analysis) and pipeline
//! jobs (recorded ranges → copied or re-encoded file videos).

pub mod analysis;
pub mod folder;
mod gated;
pub mod inputs;
pub mod jobs;
pub mod live;
pub mod metrics;
mod nodes;
mod preroll;
pub mod preview;
pub mod record;
pub mod spool;
pub mod store;
pub mod transcode;
pub mod variant;
