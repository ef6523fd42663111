//! `RtspSource`: the camera a live pipeline records and analyses.

use super::{LiveParts, PipelineError, module_error};
use crate::ingest::rtsp::SourceOptions;
use crate::topology::{RtspSourceConfig, RtspTransport};

pub(super) fn add(parts: &mut LiveParts, node: String, c: RtspSourceConfig) -> Result<(), PipelineError> {
    if c.transport == RtspTransport::Http {
        return Err(module_error(format!(
            "node '{node}': transport 'http' (RTSP over HTTP tunnelling) is not supported; use 'tcp' or 'udp'"
        )));
    }
    parts.source = Some((node, c));
    Ok(())
}

/// The ingest's options: audio only when the video sink stores it.
pub(super) fn options(c: RtspSourceConfig, audio: bool) -> SourceOptions {
    SourceOptions { url: c.url, user: c.username, password: c.password, udp: c.transport == RtspTransport::Udp, audio }
}
