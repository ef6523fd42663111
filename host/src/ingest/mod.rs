//! RTSP sources: a client for real cameras (retina) and the simulated camera (`openva sim`).
//! Yields timestamped access units of every recorded track (video, audio); never writes to disk.

pub mod reorder;
pub mod rtsp;
pub mod sim;
