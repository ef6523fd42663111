//! RTSP sources: a client for real cameras (retina) and the simulated camera (`openva sim`).
//! Yields timestamped access units; never writes to disk.

pub mod rtsp;
pub mod sim;
