//! Typed configurations of the nodes openva runs, and topology instantiation.
//!
//! The same builders run twice: on the topology as set (stage [`Stage::Topology`], where any
//! value still holding a `${…}` is skipped) so literal mistakes are refused early, and on each
//! live pipeline's substituted nodes (stage [`Stage::Pipeline`]), where every value counts.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::error::TopologyError;
use super::json;
use super::model::{Node, NodeInput, ParameterDefinition, Topology};
use super::nodes::encoder::EncodeSpec;
use super::nodes::extension::ExtensionConfig;
use super::nodes::file_sink::FileSinkConfig;
use super::nodes::hub_sink::HubSinkConfig;
use super::nodes::hub_source::HubSourceConfig;
use super::nodes::motion::MotionConfig;
use super::nodes::rtsp_source::RtspSourceConfig;
use super::nodes::signal_gate::SignalGateConfig;
use super::nodes::video_sink::VideoSinkConfig;
use super::nodes::video_source::VideoSourceConfig;
use super::nodes::wasm::WasmConfig;
use super::nodes::{self};
use super::params::{
    self, SYS_DATE_TIME, SYS_LEGACY_DATE_TIME, SYS_PIPELINE_NAME, SYS_PRECISE_DATE_TIME, SYS_TOPOLOGY_NAME,
};

/// What a live pipeline contributes to substitution besides its parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceContext {
    /// `${System.TopologyName}`.
    pub topology_name: String,
    /// `${System.PipelineName}`.
    pub pipeline_name: String,
    /// The instant behind `${System.Runtime.DateTime}` and `${System.Runtime.PreciseDateTime}`.
    pub now: jiff::Timestamp,
}

/// A topology with a live pipeline's values applied: what the runtime builds a graph from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The nodes, in the topology's order (sources, processors, sinks).
    pub nodes: Vec<InstanceNode>,
}

/// One node of an [`Instance`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceNode {
    /// The node name.
    pub name: String,
    /// Upstream nodes, as in the topology.
    pub inputs: Vec<NodeInput>,
    /// The typed settings of the node.
    pub config: NodeConfig,
}

/// Typed settings of a node, one variant per node type openva runs (settings in
/// [`super::nodes`]); the runtime's `pipeline/nodes/` drives each. Types openva does not run
/// yet are `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfig {
    /// An RTSP camera.
    RtspSource(RtspSourceConfig),
    /// Recording into a video (live), or the file video a batch job creates.
    VideoSink(VideoSinkConfig),
    /// AVA's motion detector.
    MotionDetection(MotionConfig),
    /// A WebAssembly plugin (openva's node type).
    Wasm(WasmConfig),
    /// Inferences out as messages.
    IotHubMessageSink(HubSinkConfig),
    /// Messages in (triggers of a signal gate).
    IotHubMessageSource(HubSourceConfig),
    /// An HTTP or gRPC extension (a model server).
    Extension(ExtensionConfig),
    /// Event-based recording's gate.
    SignalGate(SignalGateConfig),
    /// Follows an extension's detections between its samples (`accuracy`).
    ObjectTracking(nodes::tracking::Accuracy),
    /// Counts tracked objects crossing lines.
    LineCrossing(Vec<nodes::tracking::NamedLine>),
    /// One MP4 file per opening of a gate.
    FileSink(FileSinkConfig),
    /// Recorded ranges of a video (batch).
    VideoSource(VideoSourceConfig),
    /// Re-encoding (batch).
    Encoder(EncodeSpec),
    /// Any other node type (catalogue spelling, or the given suffix if unknown), or, on the
    /// topology as set, a batch node whose values still wait for parameters.
    Other {
        /// The node's type name.
        type_name: String,
    },
}

/// Which pass a builder runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// On the topology: values containing `${` are not checked yet.
    Topology,
    /// On substituted values: everything is checked.
    Pipeline,
}

impl Stage {
    /// The value to check now, or `None` if it waits for substitution.
    pub(super) fn literal<'a>(self, v: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
        v.filter(|s| self == Stage::Pipeline || !s.contains("${"))
    }
}

/// Builds the typed configuration of one node from its (possibly substituted) body: the
/// registry of node types openva reads.
pub(super) fn build(node: &Node, body: &Value, stage: Stage) -> Result<NodeConfig, TopologyError> {
    let empty = Map::new();
    let obj = body.as_object().unwrap_or(&empty);
    let literal = stage == Stage::Pipeline || !json::has_placeholder(body);
    let name = &node.name;
    Ok(match (node.known, node.type_name.as_str()) {
        (true, "RtspSource") => NodeConfig::RtspSource(nodes::rtsp_source::build(name, obj, stage)?),
        (true, "VideoSink") => NodeConfig::VideoSink(nodes::video_sink::build(name, obj, stage)?),
        (true, "MotionDetectionProcessor") => NodeConfig::MotionDetection(nodes::motion::build(name, obj, stage)?),
        (true, "WasmProcessor") => NodeConfig::Wasm(nodes::wasm::build(name, obj, stage)?),
        (true, "IotHubMessageSink") => NodeConfig::IotHubMessageSink(nodes::hub_sink::build(name, obj)?),
        (true, "IotHubMessageSource") => NodeConfig::IotHubMessageSource(nodes::hub_source::build(name, obj, stage)?),
        (true, "HttpExtension") => {
            NodeConfig::Extension(nodes::extension::build(name, obj, stage, nodes::extension::Which::Http)?)
        }
        (true, "GrpcExtension") => {
            NodeConfig::Extension(nodes::extension::build(name, obj, stage, nodes::extension::Which::Grpc)?)
        }
        (true, "FileSink") => NodeConfig::FileSink(nodes::file_sink::build(name, obj, stage)?),
        (true, "ObjectTrackingProcessor") => {
            NodeConfig::ObjectTracking(nodes::tracking::build_tracker(name, obj, stage)?)
        }
        (true, "LineCrossingProcessor") => NodeConfig::LineCrossing(nodes::tracking::build_lines(name, obj, stage)?),
        (true, "SignalGateProcessor") => NodeConfig::SignalGate(nodes::signal_gate::build(name, obj, stage)?),
        (true, "VideoSource") if literal => NodeConfig::VideoSource(nodes::video_source::build(name, body)?),
        (true, "EncoderProcessor") if literal => NodeConfig::Encoder(nodes::encoder::build(name, body)?),
        _ => NodeConfig::Other { type_name: node.type_name.clone() },
    })
}

/// `yyyyMMddTHHmmssZ` and `yyyyMMddTHHmmss.fffZ` in UTC, the two `System.Runtime` formats.
pub fn format_runtime_date_times(now: jiff::Timestamp) -> (String, String) {
    let z = now.to_zoned(jiff::tz::TimeZone::UTC);
    let base =
        format!("{:04}{:02}{:02}T{:02}{:02}{:02}", z.year(), z.month(), z.day(), z.hour(), z.minute(), z.second());
    (format!("{base}Z"), format!("{base}.{:03}Z", z.millisecond()))
}

impl Topology {
    /// Applies a live pipeline to this topology: checks the values
    /// ([`Topology::check_parameters`]), substitutes `${param}` and the `${System.…}` variables
    /// in every string of every node (also inside longer strings), and builds the typed
    /// configurations. Errors are `ModuleValidation` and name the node and property.
    pub fn instantiate(
        &self,
        ctx: &InstanceContext,
        values: &[ParameterDefinition],
    ) -> Result<Instance, TopologyError> {
        let bodies = self.substituted_nodes(ctx, values)?;
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (node, body) in self.nodes.iter().zip(&bodies) {
            nodes.push(InstanceNode {
                name: node.name.clone(),
                inputs: node.inputs.clone(),
                config: build(node, body, Stage::Pipeline)?,
            });
        }
        Ok(Instance { nodes })
    }

    /// Every node's typed settings as far as the topology alone fixes them, in node order: the
    /// runtime checks these when the topology is set (plugins present, …). Values waiting for
    /// parameters are left as written (live nodes) or make the node `Other` (batch nodes).
    pub fn literal_configs(&self) -> Result<Vec<NodeConfig>, TopologyError> {
        self.nodes.iter().map(|n| build(n, &n.body, Stage::Topology)).collect()
    }

    /// Every node's JSON body after substitution, in node order. Checks the values first,
    /// like [`Topology::instantiate`].
    pub(super) fn substituted_nodes(
        &self,
        ctx: &InstanceContext,
        values: &[ParameterDefinition],
    ) -> Result<Vec<Value>, TopologyError> {
        self.check_parameters(values)?;
        let vars = self.effective_values(values);
        let (date_time, precise) = format_runtime_date_times(ctx.now);
        // A file sink's dates name each file at its clip's start: they stay in place here.
        let lookup = |name: &str, keep_dates: bool| -> Option<&str> {
            if let Some(v) = vars.get(name) {
                return Some(v);
            }
            match params::system_variable(name)? {
                SYS_TOPOLOGY_NAME => Some(&ctx.topology_name),
                SYS_PIPELINE_NAME => Some(&ctx.pipeline_name),
                SYS_DATE_TIME | SYS_LEGACY_DATE_TIME if !keep_dates => Some(&date_time),
                SYS_PRECISE_DATE_TIME if !keep_dates => Some(&precise),
                _ => None,
            }
        };
        // Bytes of strings produced so far, across every node.
        let mut total = 0usize;
        self.nodes
            .iter()
            .map(|node| {
                let keep_dates = node.known && node.type_name == "FileSink";
                let lookup = |name: &str| lookup(name, keep_dates);
                json::map_strings(&node.body, &mut |s: &str| {
                    let out = params::substitute(s, &lookup).ok_or_else(|| {
                        TopologyError::module(format!(
                            "node '{}': a value is longer than 64 KiB after parameter substitution",
                            node.name
                        ))
                    })?;
                    total += out.len();
                    if total > json::MAX_SUBSTITUTED_LEN {
                        return Err(TopologyError::module(format!(
                            "node '{}': the topology's values are longer than {} MiB in all after parameter \
                             substitution",
                            node.name,
                            json::MAX_SUBSTITUTED_LEN >> 20
                        )));
                    }
                    Ok(out)
                })
            })
            .collect()
    }
}
