//! Graph-level validation: names, edges, cycles and AVA's placement rules.
//!
//! Everything here is AVA's `PipelineValidationError`. Placement rules apply to catalogue
//! nodes only: an unknown node type is a wildcard here (it may be an openva extension node),
//! and the runtime refuses the types it cannot run.

use std::collections::{HashMap, HashSet};

use super::catalogue::is_extension;
use super::error::TopologyError;
use super::model::{Node, NodeRole, TopologyKind};

/// Node types of batch topologies (AVA: cloud, batch only), and the only ones they may have.
const BATCH_ONLY: [&str; 2] = ["VideoSource", "EncoderProcessor"];

/// Most nodes a topology may have: a DoS guard (AVA's real topologies have at most 7).
pub const MAX_NODES: usize = 1000;

/// Runs every graph check on the parsed nodes of a topology of `kind`.
pub fn check(nodes: &[Node], kind: TopologyKind) -> Result<(), TopologyError> {
    if !nodes.iter().any(|n| n.role == NodeRole::Source) {
        return Err(TopologyError::pipeline("the topology has no source node; at least one is required"));
    }
    if !nodes.iter().any(|n| n.role == NodeRole::Sink) {
        return Err(TopologyError::pipeline("the topology has no sink node; at least one is required"));
    }
    let mut seen = HashSet::new();
    for n in nodes {
        if !seen.insert(n.name.to_ascii_lowercase()) {
            return Err(TopologyError::pipeline(format!(
                "node name '{}' is used more than once (node names are unique, ignoring case)",
                n.name
            )));
        }
    }
    let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    for n in nodes {
        for i in &n.inputs {
            if !by_name.contains_key(i.node_name.as_str()) {
                return Err(TopologyError::pipeline(format!(
                    "node '{}' has input '{}', which is not a node of this topology",
                    n.name,
                    super::error::shown(&i.node_name)
                )));
            }
        }
    }
    check_acyclic(nodes)?;
    match kind {
        TopologyKind::Live => {
            if let Some(n) = nodes.iter().find(|n| BATCH_ONLY.contains(&n.type_name.as_str())) {
                return Err(TopologyError::pipeline(format!(
                    "node '{}' ({}) belongs in a topology of kind Batch (a pipeline job), not Live",
                    n.name, n.type_name
                )));
            }
            check_placement(nodes, &by_name)
        }
        TopologyKind::Batch => check_batch(nodes),
    }
}

/// AVA's batch shape: one `VideoSource` → an optional `EncoderProcessor` → one `VideoSink`,
/// and nothing else.
fn check_batch(nodes: &[Node]) -> Result<(), TopologyError> {
    if let Some(n) =
        nodes.iter().find(|n| !matches!(n.type_name.as_str(), "VideoSource" | "EncoderProcessor" | "VideoSink"))
    {
        return Err(TopologyError::pipeline(format!(
            "node '{}' ({}) cannot be used in a topology of kind Batch: only VideoSource, EncoderProcessor and VideoSink",
            n.name, n.type_name
        )));
    }
    let of = |t: &str| nodes.iter().filter(|n| n.type_name == t).collect::<Vec<_>>();
    let (sources, encoders, sinks) = (of("VideoSource"), of("EncoderProcessor"), of("VideoSink"));
    if sources.len() != 1 || sinks.len() != 1 || encoders.len() > 1 {
        return Err(TopologyError::pipeline(format!(
            "a batch topology has one VideoSource, at most one EncoderProcessor and one VideoSink (this one has {}, {} and {})",
            sources.len(),
            encoders.len(),
            sinks.len()
        )));
    }
    let (source, sink) = (sources[0], sinks[0]);
    let single_input = |n: &Node, from: &Node| -> Result<(), TopologyError> {
        match n.inputs.as_slice() {
            [i] if i.node_name == from.name => Ok(()),
            _ => Err(TopologyError::pipeline(format!(
                "node '{}' ({}) must have exactly one input, '{}'",
                n.name, n.type_name, from.name
            ))),
        }
    };
    match encoders.first() {
        Some(enc) => {
            single_input(enc, source)?;
            single_input(sink, enc)
        }
        None => single_input(sink, source),
    }
}

/// Refuses cycles (Kahn's algorithm); the message names the nodes on or behind a cycle.
fn check_acyclic(nodes: &[Node]) -> Result<(), TopologyError> {
    let mut indegree: HashMap<&str, usize> = nodes.iter().map(|n| (n.name.as_str(), n.inputs.len())).collect();
    let mut consumers: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in nodes {
        for i in &n.inputs {
            consumers.entry(i.node_name.as_str()).or_default().push(n.name.as_str());
        }
    }
    let mut ready: Vec<&str> = nodes.iter().filter(|n| n.inputs.is_empty()).map(|n| n.name.as_str()).collect();
    let mut done = 0usize;
    while let Some(n) = ready.pop() {
        done += 1;
        for c in consumers.get(n).map(Vec::as_slice).unwrap_or_default() {
            if let Some(d) = indegree.get_mut(c) {
                *d = d.saturating_sub(1);
                if *d == 0 {
                    ready.push(c);
                }
            }
        }
    }
    if done == nodes.len() {
        return Ok(());
    }
    let mut stuck: Vec<&str> =
        nodes.iter().map(|n| n.name.as_str()).filter(|n| indegree.get(n).is_some_and(|d| *d > 0)).collect();
    let more = stuck.len().saturating_sub(10);
    stuck.truncate(10);
    let mut list = stuck.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    Err(TopologyError::pipeline(format!("the topology has a cycle through nodes {list}")))
}

/// AVA's placement rules (reference §2.7), relaxed only where real topologies need it.
fn check_placement(nodes: &[Node], by_name: &HashMap<&str, &Node>) -> Result<(), TopologyError> {
    let count = |t: &str| nodes.iter().filter(|n| n.known && n.type_name == t).count();
    if count("RtspSource") > 1 {
        return Err(TopologyError::pipeline("a topology may have only one RtspSource node"));
    }
    if count("FileSink") > 1 {
        let names: Vec<String> =
            nodes.iter().filter(|n| n.known && n.type_name == "FileSink").map(|n| format!("'{}'", n.name)).collect();
        return Err(TopologyError::pipeline(format!(
            "a topology may have only one FileSink node, but has {}",
            names.join(", ")
        )));
    }
    // The known types of a node's inputs; unknown inputs are left out (wildcards).
    let known_inputs = |n: &Node| -> Vec<(&str, &str)> {
        n.inputs
            .iter()
            .filter_map(|i| by_name.get(i.node_name.as_str()))
            .filter(|u| u.known)
            .map(|u| (u.name.as_str(), u.type_name.as_str()))
            .collect()
    };
    let has_unknown_input =
        |n: &Node| n.inputs.iter().any(|i| by_name.get(i.node_name.as_str()).is_some_and(|u| !u.known));
    let all_inputs = |n: &Node, ok: &dyn Fn(&str) -> bool, rule: &str| -> Result<(), TopologyError> {
        match known_inputs(n).into_iter().find(|(_, t)| !ok(t)) {
            None => Ok(()),
            Some((u, t)) => Err(TopologyError::pipeline(format!(
                "node '{}' ({}) must be {rule}, but its input '{u}' is a {t}",
                n.name, n.type_name
            ))),
        }
    };
    let some_input = |n: &Node, ok: &dyn Fn(&str) -> bool, rule: &str| -> Result<(), TopologyError> {
        if has_unknown_input(n) || known_inputs(n).into_iter().any(|(_, t)| ok(t)) {
            Ok(())
        } else {
            Err(TopologyError::pipeline(format!("node '{}' ({}) must be {rule}", n.name, n.type_name)))
        }
    };
    for n in nodes.iter().filter(|n| n.known) {
        match n.type_name.as_str() {
            "MotionDetectionProcessor" => {
                all_inputs(n, &|t| t == "RtspSource", "immediately downstream of the RtspSource")?;
            }
            "ObjectTrackingProcessor" => {
                all_inputs(
                    n,
                    &is_extension,
                    "immediately downstream of an HTTP, gRPC or Cognitive Services extension",
                )?;
            }
            "LineCrossingProcessor" => {
                all_inputs(
                    n,
                    &|t| t == "ObjectTrackingProcessor",
                    "immediately downstream of an ObjectTrackingProcessor",
                )?;
            }
            "SignalGateProcessor" => {
                some_input(
                    n,
                    &|t| t == "RtspSource",
                    "fed its media by the RtspSource (an input from the RtspSource)",
                )?;
                if !nodes.iter().any(|c| c.inputs.iter().any(|i| i.node_name == n.name)) {
                    return Err(TopologyError::pipeline(format!(
                        "signal gate '{}' feeds no sink: add a VideoSink or FileSink taking it as an input",
                        n.name
                    )));
                }
                for c in nodes.iter().filter(|c| c.known && c.inputs.iter().any(|i| i.node_name == n.name)) {
                    if !matches!(c.type_name.as_str(), "VideoSink" | "FileSink") {
                        return Err(TopologyError::pipeline(format!(
                            "signal gate '{}' may only feed a VideoSink or FileSink, but feeds '{}' ({})",
                            n.name, c.name, c.type_name
                        )));
                    }
                }
                // Something must open it: a processor's results or hub messages. Media and
                // another gate carry no application data.
                let signals =
                    |t: &str| !matches!(t, "RtspSource" | "VideoSource" | "EncoderProcessor" | "SignalGateProcessor");
                some_input(
                    n,
                    &signals,
                    "opened by something: add a processor or an IotHubMessageSource as an input (its \
                     inputs carry media only)",
                )?;
            }
            "FileSink" => {
                all_inputs(n, &|t| t == "SignalGateProcessor", "immediately downstream of a SignalGateProcessor")?;
            }
            // AVA: "immediately after RTSP source or signal gate (plus optional metadata inputs)".
            // Batch topologies (corpus `export-from-video-archive.json`) feed it from an
            // EncoderProcessor, which reads a VideoSource, so those count as media inputs too.
            "VideoSink" => {
                some_input(
                    n,
                    &|t| matches!(t, "RtspSource" | "SignalGateProcessor" | "EncoderProcessor" | "VideoSource"),
                    "fed its media by the RtspSource or a SignalGateProcessor",
                )?;
            }
            "IotHubMessageSink" => {
                all_inputs(n, &|t| t != "IotHubMessageSource", "not immediately downstream of an IotHubMessageSource")?;
            }
            _ => {}
        }
    }
    Ok(())
}
