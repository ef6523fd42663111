//! AVA pipeline topologies: the JSON model, its validation, and parameter substitution.
//!
//! openva takes AVA topology JSON unchanged (edge direct-method payloads and the cloud ARM
//! form), validates it with AVA's rules (names, graph, placement, parameters) and turns a
//! topology plus a live pipeline's parameter values into an [`Instance`] with typed node
//! configurations for the runtime. See `docs/topology.md`.
//!
//! This module is pure: no I/O, no async, and it never imports `pipeline`, `api` or `archive`.

mod catalogue;
mod config;
mod error;
mod graph;
pub mod json;
mod model;
mod names;
mod nodes;
mod params;
mod parse;
mod spec;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use config::{Instance, InstanceContext, InstanceNode, NodeConfig, format_runtime_date_times};
pub use error::{ErrorKind, TopologyError, shown};
pub use graph::MAX_NODES;
pub use json::MAX_STRING_LEN;
pub use model::{
    Node, NodeInput, NodeRole, OutputSelector, ParameterDeclaration, ParameterDefinition, ParameterType,
    SelectorOperator, Topology, TopologyKind,
};
pub use names::{validate_name, validate_video_name};
pub use nodes::MAX_SAMPLES_PER_SECOND;
pub use nodes::encoder::{
    AAC_KBPS, EncodeSpec, ScaleMode, ScaleSpec, VIDEO_KBPS, build as encoder_spec, scales as encoder_scales,
    system_preset, system_preset_names,
};
pub use nodes::extension::{
    DataTransfer, ExtensionConfig, ExtensionCredentials, ExtensionKind, ImageFormat, TlsSettings,
};
pub use nodes::file_sink::FileSinkConfig;
pub use nodes::hub_sink::HubSinkConfig;
pub use nodes::hub_source::{HubSourceConfig, valid_input_name};
pub use nodes::motion::{MotionConfig, Sensitivity};
pub use nodes::rtsp_source::{RtspSourceConfig, RtspTransport};
pub use nodes::signal_gate::SignalGateConfig;
pub use nodes::tracking::{Accuracy, NamedLine};
pub use nodes::video_sink::VideoSinkConfig;
pub use nodes::video_source::{MAX_RANGES, VideoSourceConfig};
pub use nodes::wasm::WasmConfig;
pub use params::MAX_PARAMETERS;
pub use parse::{parse, parse_str};
pub use spec::{BatchSpec, PipelineSpec};

/// What replaces a secret parameter's default in everything openva sends back.
pub const SECRET_MASK: &str = "******";

/// Largest topology or pipeline document read, from the API or the topologies folder (AVA's
/// direct-method payload limit was 128 KiB): a parsed document is several times its text, so
/// this bounds the memory one costs.
pub const MAX_DOCUMENT_LEN: usize = 256 * 1024;

impl Topology {
    /// The topology as stored in the control store: as [`Topology::to_entity_json`], secrets
    /// included (the store is the host's own), so [`parse_str`] reads it back the same.
    pub fn to_stored_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".to_owned(), Value::String(self.name.clone()));
        out.insert("kind".to_owned(), Value::String(self.kind.as_str().to_owned()));
        out.insert("properties".to_owned(), self.properties.clone());
        Value::Object(out)
    }

    /// The topology as AVA returns it from GET/List: `{"name", "properties"}` with the
    /// properties as they were set, except that the `default` of every `SecretString`
    /// parameter reads `"******"`, so secrets never leave the module. The caller adds
    /// `systemData` and `@apiVersion`.
    pub fn to_entity_json(&self) -> Value {
        let mut props = self.properties.clone();
        if let Some(obj) = props.as_object_mut() {
            // Every spelling of "parameters" and of "default" is masked, not just the one the
            // parser read, so an ambiguous document cannot smuggle a secret out.
            for (key, list) in obj.iter_mut() {
                if !key.eq_ignore_ascii_case("parameters") {
                    continue;
                }
                for item in list.as_array_mut().into_iter().flatten() {
                    if let Some(p) = item.as_object_mut()
                        && self.is_secret_declaration(p)
                    {
                        for (k, v) in p.iter_mut() {
                            if k.eq_ignore_ascii_case("default") && !v.is_null() {
                                *v = Value::String(SECRET_MASK.to_owned());
                            }
                        }
                    }
                }
            }
        }
        let mut out = Map::new();
        out.insert("name".to_owned(), Value::String(self.name.clone()));
        out.insert("kind".to_owned(), Value::String(self.kind.as_str().to_owned()));
        out.insert("properties".to_owned(), props);
        Value::Object(out)
    }

    /// Whether a raw parameter declaration is, under any key spelling, a secret one.
    fn is_secret_declaration(&self, p: &Map<String, Value>) -> bool {
        p.iter().any(|(k, v)| {
            (k.eq_ignore_ascii_case("name") && v.as_str().is_some_and(|n| self.is_secret(n)))
                || (k.eq_ignore_ascii_case("type")
                    && v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("SecretString")))
        })
    }
}
