//! The typed plan a live pipeline runs, as `pipeline/nodes` builds it from a topology and a
//! pipeline's parameters: the camera, the video, the processors and the hub sinks.

use super::*;
use crate::time::Duration90k;

/// The typed configuration of a pipeline ready to run.
pub(in crate::pipeline) struct Plan {
    pub(in crate::pipeline) source_node: String,
    pub(in crate::pipeline) source: SourceOptions,
    /// The video sink, if the topology records.
    pub(in crate::pipeline) video: Option<VideoPlan>,
    /// Processor nodes in topological order.
    pub(in crate::pipeline) processors: Vec<ProcessorPlan>,
    /// IoT Hub message sinks (inference outlets).
    pub(in crate::pipeline) hubs: Vec<analysis::HubSink>,
    /// Event-based recording: the signal gate and its file sink; the video sink (`video`) is
    /// then behind the gate too.
    pub(in crate::pipeline) gated: Option<GatedPlan>,
}

/// A signal gate: what opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::pipeline) struct GatePlan {
    pub(in crate::pipeline) node: String,
    pub(in crate::pipeline) config: crate::topology::SignalGateConfig,
    /// Processor nodes whose inferences open it.
    pub(in crate::pipeline) processors: Vec<String>,
    /// Hub inputs (`hubInputName`) whose messages open it.
    pub(in crate::pipeline) inputs: Vec<String>,
}

/// Event-based recording: the gate, and the file sink behind it (node and settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(in crate::pipeline) struct GatedPlan {
    pub(in crate::pipeline) gate: GatePlan,
    pub(in crate::pipeline) file: Option<(String, crate::topology::FileSinkConfig)>,
}

#[derive(Clone)]
pub(in crate::pipeline) struct VideoPlan {
    pub(in crate::pipeline) sink_node: String,
    pub(in crate::pipeline) video: String,
    /// Processor nodes whose inferences are recorded with the video.
    pub(in crate::pipeline) metadata: Vec<String>,
    pub(in crate::pipeline) config: VideoConfig,
    pub(in crate::pipeline) title: Option<String>,
    pub(in crate::pipeline) description: Option<String>,
    /// AVA's `localMediaCacheMaximumSizeMiB`, in bytes: the local disk is a cache of this
    /// size in front of the remote tier (when the host has one).
    pub(in crate::pipeline) local_cache: Option<u64>,
}

impl VideoPlan {
    /// Opens the sink's video for writing (creating it with the sink's creation properties).
    pub(super) fn open(&self, archive: &Arc<Archive>) -> Result<VideoWriter, PipelineError> {
        let w = VideoWriter::open(archive.clone(), &self.video, self.config.clone()).map_err(|e| match e {
            ArchiveError::Locked(v) => {
                PipelineError::Resource(format!("video '{v}' is already being recorded by another pipeline"))
            }
            // The sink names a File video (a batch result): not something to record into.
            e @ ArchiveError::FileVideo { .. } => PipelineError::Resource(e.to_string()),
            e => PipelineError::Archive(e),
        })?;
        if w.created() {
            archive.set_video_info(&self.video, self.title.as_deref(), self.description.as_deref())?;
        }
        archive.set_local_cache_cap(&self.video, self.local_cache);
        Ok(w)
    }
}

/// A pipeline's writer as its thread gets it: open, or still to be opened (the host activated
/// the pipeline while the archive could not open the video; the error says why).
pub(super) enum Writer {
    Open(Box<VideoWriter>),
    Pending(VideoPlan, String),
}

pub(in crate::pipeline) struct ProcessorPlan {
    pub(in crate::pipeline) node: String,
    pub(in crate::pipeline) input: String,
    pub(in crate::pipeline) runs: Runs,
    /// From `samplingOptions.maximumSamplesPerSecond`: least time between frames.
    pub(in crate::pipeline) interval: Option<Duration90k>,
}

/// What runs a processor node.
pub(in crate::pipeline) enum Runs {
    /// A Wasm plugin with its configuration.
    Plugin { plugin: String, config: Value },
    /// An extension's inference server.
    Extension(Box<crate::topology::ExtensionConfig>),
    /// The object tracker.
    Tracker(crate::topology::Accuracy),
    /// The line counter.
    Lines(Vec<crate::topology::NamedLine>),
}
