//! Ties sources to sinks: live pipelines (cameras → recording and analysis) and pipeline
//! jobs (recorded ranges → copied or re-encoded file videos).

pub mod analysis;
pub mod batch;
pub mod folder;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod preview;
pub mod record;
pub mod store;
pub mod transcode;
