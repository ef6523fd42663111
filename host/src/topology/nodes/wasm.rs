//! `WasmProcessor` (openva's own node type): a processor run as a WebAssembly plugin, with
//! its configuration object and AVA's `samplingOptions`.

use serde_json::{Map, Value};

use super::super::config::Stage;
use super::super::error::TopologyError;
use super::super::json;
use super::sampling_interval;
use crate::time::Duration90k;

/// Settings of a `WasmProcessor`.
#[derive(Debug, Clone, PartialEq)]
pub struct WasmConfig {
    /// `plugin`: the plugin's name in the host's plugins directory.
    pub plugin: String,
    /// `configuration`: an object, or a string holding one (so `${…}` can stand for all of it).
    pub configuration: Map<String, Value>,
    /// From `samplingOptions.maximumSamplesPerSecond`: least time between processed frames.
    pub sampling_interval: Option<Duration90k>,
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<WasmConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (WasmProcessor): {p}");
    let plugin = json::opt_scalar(obj, "plugin", || what("plugin"))?
        .ok_or_else(|| TopologyError::module(format!("{} is missing", what("plugin"))))?
        .into_owned();
    let configuration = match json::get(obj, "configuration") {
        None => Map::new(),
        Some(Value::String(s)) if stage == Stage::Topology && s.contains("${") => Map::new(),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(TopologyError::module(format!("node '{node}': configuration must be a JSON object"))),
            Err(e) => {
                return Err(TopologyError::module(format!("node '{node}': configuration is not a JSON object: {e}")));
            }
        },
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(TopologyError::module(format!("node '{node}': configuration must be a JSON object"))),
    };
    let sampling = json::get(obj, "samplingOptions");
    let sampling_interval = if stage == Stage::Pipeline || !sampling.is_some_and(json::has_placeholder) {
        sampling_interval(node, sampling)?
    } else {
        None
    };
    Ok(WasmConfig { plugin, configuration, sampling_interval })
}
