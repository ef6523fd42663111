//! `openva sim`: a live synthetic H.264 camera served over RTSP 1.0, what AVA's rtspsim was.
//! One encoder ([`encoder::Camera`]) fans frames out to every client ([`server`]).

pub mod encoder;
pub mod painter;
pub mod server;
