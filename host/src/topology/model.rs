//! The parsed form of a pipeline topology.
//!
//! Only what openva needs to reason about the graph is typed (names, roles, types, inputs,
//! parameter declarations); each node keeps its JSON body as given, so nothing AVA clients
//! sent is lost and the runtime can read node-specific settings later.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A validated pipeline topology: a named template of parameters and nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    /// The topology name (AVA name rules).
    pub name: String,
    /// Live (pipelines from cameras) or batch (pipeline jobs over recorded video).
    pub kind: TopologyKind,
    /// `properties.description`, if any.
    pub description: Option<String>,
    /// `properties.parameters`, in the given order.
    pub parameters: Vec<ParameterDeclaration>,
    /// Sources, then processors, then sinks, each in the given order.
    pub nodes: Vec<Node>,
    /// The `properties` object exactly as given, so GET returns what was set.
    pub(super) properties: Value,
}

impl Topology {
    /// The declaration of parameter `name` (names are case-sensitive).
    pub fn parameter(&self, name: &str) -> Option<&ParameterDeclaration> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// AVA's topology `kind`: what instantiates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopologyKind {
    /// Live pipelines: RTSP sources, processors, recording and events (AVA's default).
    #[default]
    Live,
    /// Pipeline jobs: a recorded video's range, optionally re-encoded, into a file video.
    Batch,
}

impl TopologyKind {
    /// AVA's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TopologyKind::Live => "Live",
            TopologyKind::Batch => "Batch",
        }
    }

    /// Parses `Live` or `Batch` in any letter case (the corpus writes `batch`).
    pub fn parse(s: &str) -> Option<Self> {
        [TopologyKind::Live, TopologyKind::Batch].into_iter().find(|k| k.as_str().eq_ignore_ascii_case(s))
    }
}

/// One entry of `properties.parameters`: a named, typed placeholder that live pipelines fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParameterDeclaration {
    /// The name used in `${name}` references.
    pub name: String,
    /// The declared type; values are checked against it.
    pub kind: ParameterType,
    /// Free text for humans.
    pub description: Option<String>,
    /// The value used when a live pipeline gives none; without a default the value is
    /// required.
    pub default: Option<String>,
}

/// The declared type of a parameter (parsed case-insensitively: AVA's edge swagger says
/// `string`, the cloud one `String`, and samples use both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParameterType {
    /// Any text.
    String,
    /// Any text that must never be echoed back (passwords, keys).
    SecretString,
    /// A 32-bit signed integer.
    Int,
    /// A finite 64-bit float.
    Double,
    /// `true` or `false` (any case).
    Bool,
}

impl ParameterType {
    /// Parses a declared `type`, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        const ALL: [ParameterType; 5] = [
            ParameterType::String,
            ParameterType::SecretString,
            ParameterType::Int,
            ParameterType::Double,
            ParameterType::Bool,
        ];
        ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(s))
    }

    /// The cloud swagger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "String",
            ParameterType::SecretString => "SecretString",
            ParameterType::Int => "Int",
            ParameterType::Double => "Double",
            ParameterType::Bool => "Bool",
        }
    }
}

impl fmt::Display for ParameterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter value given by a live pipeline: `{"name": "rtspUrl", "value": "rtsp://…"}`.
///
/// AVA sends values as JSON strings; numbers and booleans are accepted too and kept as their
/// JSON text, and `Name`/`Value` spellings are accepted like the service did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterDefinition {
    /// The declared parameter this value is for.
    #[serde(alias = "Name")]
    pub name: String,
    /// The value, as text.
    #[serde(alias = "Value", deserialize_with = "scalar_text")]
    pub value: String,
}

/// Deserializes a JSON scalar (string, number or boolean) as text.
fn scalar_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = Value::deserialize(d)?;
    match super::json::scalar(&v) {
        Some(s) => Ok(s.into_owned()),
        None => Err(serde::de::Error::custom("a parameter value must be a string, number or boolean")),
    }
}

/// Where a node sits in the graph; given by the list it is declared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Listed in `sources`: produces media or messages, has no inputs.
    Source,
    /// Listed in `processors`: has inputs and outputs.
    Processor,
    /// Listed in `sinks`: has inputs, no outputs.
    Sink,
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node name, unique within the topology.
    pub name: String,
    /// Which list the node came from.
    pub role: NodeRole,
    /// The catalogue spelling without prefix (`RtspSource`, `VideoSink`, …); for unknown types
    /// the suffix as given.
    pub type_name: String,
    /// Whether the type is in AVA's node catalogue; the runtime refuses unknown types it
    /// cannot run, but the topology itself is accepted.
    pub known: bool,
    /// Upstream nodes, in the given order (empty for sources).
    pub inputs: Vec<NodeInput>,
    /// The node object exactly as given.
    pub body: Value,
}

/// An edge of the graph: this node reads from `node_name`, optionally only some streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInput {
    /// The upstream node.
    pub node_name: String,
    /// Filters on the upstream node's outputs; empty = everything.
    pub output_selectors: Vec<OutputSelector>,
}

impl NodeInput {
    /// Whether the input takes the upstream node's streams of `media_type` (`video`, `audio`,
    /// `application`): every selector must allow it, and no selector means everything.
    pub fn takes(&self, media_type: &str) -> bool {
        self.output_selectors.iter().all(|s| (s.value == media_type) == (s.operator == SelectorOperator::Is))
    }
}

/// A stream filter on an input, e.g. `mediaType is video`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputSelector {
    /// The property compared; AVA only has `mediaType` (normalised to that spelling).
    pub property: String,
    /// Whether the property must equal or differ from `value`.
    pub operator: SelectorOperator,
    /// `video`, `audio` or `application` (normalised to lower case).
    pub value: String,
}

/// The comparison of an [`OutputSelector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SelectorOperator {
    /// `is`: the property equals the value.
    Is,
    /// `isNot`: the property differs from the value.
    IsNot,
}
