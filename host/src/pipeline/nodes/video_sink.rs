//! `VideoSink` in a live pipeline: the video the camera's stream is recorded into. (In a
//! batch topology the sink is the job's output; see `topology::BatchSpec`.)

use super::{LiveParts, PipelineError, module_error};
use crate::archive::VideoConfig;
use crate::pipeline::live::{DEFAULT_SEGMENT, VideoPlan};
use crate::topology::{NodeInput, VideoSinkConfig};

pub(super) fn add(
    parts: &mut LiveParts,
    node: String,
    inputs: Vec<NodeInput>,
    c: VideoSinkConfig,
) -> Result<(), PipelineError> {
    if parts.sink.is_some() {
        return Err(module_error(format!("node '{node}': this host records one video sink per pipeline")));
    }
    parts.sink = Some((node, inputs, c));
    Ok(())
}

/// The recording, whether it stores the camera's audio (the sink's selectors decide which of
/// the camera's tracks are stored: AVA's outputSelectors), and whether it sits behind the
/// signal gate `gate` (clips of video, no audio). Inputs that are processor nodes (of
/// `processors`) are its metadata: their inferences are recorded with the video, as AVA's
/// `cvr-with-httpExtension-and-objectTracking` does with its tracker.
pub(super) fn plan(
    source_node: &str,
    gate: Option<&str>,
    sink_node: String,
    inputs: &[NodeInput],
    vs: VideoSinkConfig,
    processors: &[String],
) -> Result<(VideoPlan, bool, bool), PipelineError> {
    let behind_gate = gate.is_some_and(|g| inputs.iter().any(|i| i.node_name == g));
    let from = if behind_gate { gate } else { Some(source_node) };
    let Some(from_camera) = inputs.iter().find(|i| Some(i.node_name.as_str()) == from) else {
        return Err(module_error(format!(
            "node '{sink_node}': this host records the camera's stream; the video sink must take '{source_node}' as an input"
        )));
    };
    if !from_camera.takes("video") {
        return Err(module_error(format!(
            "node '{sink_node}': its outputSelectors exclude video; recording audio alone is not supported \
             (select video, or video and audio)"
        )));
    }
    let audio = !behind_gate && from_camera.takes("audio");
    let plan = VideoPlan {
        config: VideoConfig {
            segment_length: vs.segment_length.unwrap_or(DEFAULT_SEGMENT),
            retention: vs.retention,
            // AVA's localMediaCacheMaximumSizeMiB sizes the cache in front of remote storage,
            // never the archive: the archive's cap is openva's own
            // videoCreationProperties.maximumSizeMiB.
            max_bytes: vs.max_bytes.and_then(|b| i64::try_from(b).ok()),
        },
        video: vs.video_name,
        metadata: inputs.iter().filter(|i| processors.contains(&i.node_name)).map(|i| i.node_name.clone()).collect(),
        title: vs.title,
        description: vs.description,
        local_cache: vs.cache_max_bytes,
        sink_node,
    };
    Ok((plan, audio, behind_gate))
}
