//! The runtime's side of each node type, one module per type: what it needs from the host
//! when a topology is set, and what it adds to the plan a live pipeline or a job runs. The
//! typed settings come from `topology` ([`NodeConfig`]); a new node type is a module here, its
//! settings in `topology/nodes/`, and an arm in [`check`] and [`plan_live`] (or
//! [`plan_batch`]).

mod encoder;
mod extension;
pub(super) mod file_sink;
mod hub_sink;
mod hub_source;
mod motion;
mod rtsp_source;
pub(super) mod signal_gate;
mod tracking;
mod video_sink;
mod video_source;
mod wasm;

pub(in crate::pipeline) use encoder::SCALE_PLUGIN;

use super::analysis::HubSink;
use super::live::{GatedPlan, PipelineError, Plan, ProcessorPlan, Runs, module_error};
use crate::archive::Archive;
use crate::plugins::PluginHost;
use crate::topology::{
    BatchSpec, FileSinkConfig, InstanceContext, NodeConfig, NodeInput, PipelineSpec, RtspSourceConfig,
    SignalGateConfig, Topology, TopologyKind, VideoSinkConfig,
};

/// Node types a live pipeline can run on this host (batch topologies take exactly the nodes
/// their graph rules allow: `VideoSource`, `EncoderProcessor`, `VideoSink`).
pub(super) const LIVE: &[&str] = &[
    "RtspSource",
    "VideoSink",
    "MotionDetectionProcessor",
    "IotHubMessageSink",
    "WasmProcessor",
    "SignalGateProcessor",
    "FileSink",
    "IotHubMessageSource",
    "HttpExtension",
    "GrpcExtension",
    "ObjectTrackingProcessor",
    "LineCrossingProcessor",
];

/// Refuses topologies with nodes this host cannot run yet (AVA: ModuleValidationError), and
/// nodes that need a plugin this host lacks. The message names the node and its type as
/// written in the topology.
pub(in crate::pipeline) fn check(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
    let configs = t.literal_configs()?;
    if t.kind == TopologyKind::Batch {
        return check_batch(t, plugins);
    }
    for (n, config) in t.nodes.iter().zip(&configs) {
        let plugin = match config {
            NodeConfig::MotionDetection(_) => Some(motion::PLUGIN),
            NodeConfig::Wasm(c) => wasm::literal_plugin(c),
            _ => None,
        };
        if let Some(plugin) = plugin {
            need_plugin(plugins, &n.name, plugin)?;
        }
        let written = crate::topology::json::member(&n.body, "@type").and_then(|v| v.as_str()).unwrap_or(&n.type_name);
        if !n.known {
            return Err(module_error(format!("node '{}' has unknown type '{written}'", n.name)));
        }
        if !LIVE.contains(&n.type_name.as_str()) {
            return Err(module_error(format!(
                "node '{}' of type '{written}' is not supported by this host yet (supported: {})",
                n.name,
                LIVE.join(", ")
            )));
        }
    }
    Ok(())
}

/// A batch topology: its encoder's plugin, and when no value waits for a parameter (the
/// common case of a topology written for one export), the whole job's rules now.
fn check_batch(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
    for n in t.nodes.iter().filter(|n| n.type_name == "EncoderProcessor") {
        encoder::check_plugin(&n.name, crate::topology::encoder_scales(&n.body), plugins)?;
    }
    if t.nodes.iter().any(|n| crate::topology::json::has_placeholder(&n.body)) {
        return Ok(());
    }
    let ctx =
        InstanceContext { topology_name: t.name.clone(), pipeline_name: t.name.clone(), now: jiff::Timestamp::now() };
    t.instantiate(&ctx, &[])?.batch()?;
    Ok(())
}

/// `node` runs `plugin`: this host must have it.
fn need_plugin(plugins: Option<&PluginHost>, node: &str, plugin: &str) -> Result<(), PipelineError> {
    match plugins {
        None => Err(module_error(format!(
            "node '{node}' needs the plugin '{plugin}', but this host runs without plugins (start it with --plugins DIR)"
        ))),
        Some(h) => {
            h.get(plugin).map_err(|e| module_error(format!("node '{node}': {e}")))?;
            Ok(())
        }
    }
}

/// What the nodes of a live pipeline add up to, before the rules that span nodes.
#[derive(Default)]
struct LiveParts {
    source: Option<(String, RtspSourceConfig)>,
    sink: Option<(String, Vec<NodeInput>, VideoSinkConfig)>,
    processors: Vec<ProcessorPlan>,
    hubs: Vec<HubSink>,
    gate: Option<(String, Vec<NodeInput>, SignalGateConfig)>,
    file_sink: Option<(String, FileSinkConfig)>,
    /// Hub message sources: node and `hubInputName`.
    hub_sources: Vec<(String, String)>,
}

/// The first input of a processor (AVA's processors read one stream).
fn first_input(inputs: &[NodeInput]) -> String {
    inputs.first().map(|i| i.node_name.clone()).unwrap_or_default()
}

/// Instantiates a live topology for a pipeline and plans what it runs.
pub(in crate::pipeline) fn plan_live(
    topo: &Topology,
    name: &str,
    spec: &PipelineSpec,
    plugins: Option<&PluginHost>,
) -> Result<Plan, PipelineError> {
    let ctx = InstanceContext {
        topology_name: topo.name.clone(),
        pipeline_name: name.to_owned(),
        now: jiff::Timestamp::now(),
    };
    let mut parts = LiveParts::default();
    for n in topo.instantiate(&ctx, &spec.parameters)?.nodes {
        match n.config {
            NodeConfig::RtspSource(c) => rtsp_source::add(&mut parts, n.name, c)?,
            NodeConfig::VideoSink(c) => video_sink::add(&mut parts, n.name, n.inputs, c)?,
            NodeConfig::MotionDetection(c) => motion::add(&mut parts, n.name, &n.inputs, &c),
            NodeConfig::Wasm(c) => wasm::add(&mut parts, n.name, &n.inputs, c),
            NodeConfig::IotHubMessageSink(c) => hub_sink::add(&mut parts, n.name, &n.inputs, c),
            NodeConfig::SignalGate(c) => signal_gate::add(&mut parts, n.name, n.inputs, c)?,
            NodeConfig::FileSink(c) => file_sink::add(&mut parts, n.name, c)?,
            NodeConfig::IotHubMessageSource(c) => hub_source::add(&mut parts, n.name, c),
            NodeConfig::Extension(c) => extension::add(&mut parts, n.name, &n.inputs, c)?,
            NodeConfig::ObjectTracking(a) => tracking::add_tracker(&mut parts, n.name, &n.inputs, a),
            NodeConfig::LineCrossing(lines) => tracking::add_lines(&mut parts, n.name, &n.inputs, lines),
            NodeConfig::VideoSource(_) | NodeConfig::Encoder(_) => {
                return Err(module_error(format!("node '{}' belongs in a batch topology", n.name)));
            }
            NodeConfig::Other { type_name } => {
                return Err(module_error(format!("node '{}' of type '{type_name}' is not supported yet", n.name)));
            }
        }
    }
    let (source_node, src) =
        parts.source.ok_or_else(|| module_error("the topology has no RtspSource node to read from".into()))?;
    if parts.sink.is_none() && parts.processors.is_empty() && parts.file_sink.is_none() {
        return Err(module_error("the topology neither records (VideoSink) nor analyses (processors)".into()));
    }
    let gate = match parts.gate.take() {
        Some((node, inputs, c)) => {
            Some(signal_gate::plan(node, &inputs, c, &source_node, &parts.processors, &parts.hub_sources)?)
        }
        None => None,
    };
    if let Some((node, _)) =
        parts.hub_sources.iter().find(|(_, input)| !gate.as_ref().is_some_and(|g| g.inputs.contains(input)))
    {
        return Err(module_error(format!(
            "node '{node}': on this host, messages from an IotHubMessageSource can only open a signal gate; \
             make it an input of a SignalGateProcessor"
        )));
    }
    let gate_node = gate.as_ref().map(|g| g.node.as_str());
    let (video, record_audio, video_gated) = match parts.sink {
        None => (None, false, false),
        Some((sink_node, inputs, vs)) => {
            let names: Vec<String> = parts.processors.iter().map(|p| p.node.clone()).collect();
            let (v, audio, gated) = video_sink::plan(&source_node, gate_node, sink_node, &inputs, vs, &names)?;
            (Some(v), audio, gated)
        }
    };
    let gated = match gate {
        None => None,
        Some(g) => {
            let file = parts.file_sink.take();
            if file.is_none() && !video_gated {
                return Err(module_error(format!(
                    "node '{}': the gate feeds no sink (add a VideoSink or FileSink taking it as an input)",
                    g.node
                )));
            }
            if video.is_some() && !video_gated {
                return Err(module_error(format!(
                    "node '{}': this host records a pipeline either continuously or behind its signal gate; make \
                     the video sink take the gate as its input",
                    video.as_ref().map_or("", |v| v.sink_node.as_str())
                )));
            }
            Some(GatedPlan { gate: g, file })
        }
    };
    let processors = order_processors(&source_node, parts.processors)?;
    for p in &processors {
        if let Runs::Plugin { plugin, .. } = &p.runs {
            need_plugin(plugins, &p.node, plugin)?;
        }
    }
    Ok(Plan {
        source: rtsp_source::options(src, record_audio),
        source_node,
        video,
        processors,
        hubs: parts.hubs,
        gated,
    })
}

/// Processors in topological order: each after the node it reads from.
fn order_processors(
    source_node: &str,
    mut processors: Vec<ProcessorPlan>,
) -> Result<Vec<ProcessorPlan>, PipelineError> {
    let mut ordered: Vec<ProcessorPlan> = Vec::new();
    let mut known: Vec<String> = vec![source_node.to_owned()];
    while !processors.is_empty() {
        let Some(i) = processors.iter().position(|p| known.contains(&p.input)) else {
            let p = &processors[0];
            return Err(module_error(format!(
                "node '{}' reads from '{}', which produces no frames on this host",
                p.node, p.input
            )));
        };
        let p = processors.remove(i);
        known.push(p.node.clone());
        ordered.push(p);
    }
    Ok(ordered)
}

/// Instantiates a batch topology for job `name`.
pub(in crate::pipeline) fn plan_batch(
    topo: &Topology,
    name: &str,
    spec: &PipelineSpec,
) -> Result<BatchSpec, PipelineError> {
    if topo.kind != TopologyKind::Batch {
        return Err(module_error(format!(
            "pipeline topology '{}' is of kind Live; a pipeline job needs a topology of kind Batch",
            spec.topology_name
        )));
    }
    let ctx = InstanceContext {
        topology_name: topo.name.clone(),
        pipeline_name: name.to_owned(),
        now: jiff::Timestamp::now(),
    };
    Ok(topo.instantiate(&ctx, &spec.parameters)?.batch()?)
}

/// What a job needs from this host beyond its topology: a recorded source video, and the
/// `scale` plugin when its encoder scales.
pub(in crate::pipeline) fn check_job(
    spec: &BatchSpec,
    archive: &Archive,
    plugins: Option<&PluginHost>,
) -> Result<(), PipelineError> {
    video_source::check(spec, archive)?;
    if let Some((node, enc)) = &spec.encoder {
        encoder::check_plugin(node, enc.scale.is_some(), plugins)?;
    }
    Ok(())
}
