//! Ties sources to sinks: live pipelines (cameras → recording and analysis) and pipeline
//! jobs (recorded ranges → copied or re-encoded file videos).

pub mod analysis;
pub mod folder;
pub mod jobs;
pub mod live;
pub mod metrics;
mod nodes;
// The signal gate's pre-roll; the runtime feeds it with the event-based recording work (issue 17).
#[allow(dead_code)]
mod preroll;
pub mod preview;
pub mod record;
pub mod store;
pub mod transcode;
