//! Ties sources to sinks. Today: recording one camera into one archive video, with
//! reconnection; later the AVA topology graph runs here.

pub mod analysis;
pub mod live;
pub mod metrics;
pub mod record;
pub mod store;
