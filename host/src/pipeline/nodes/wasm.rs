//! `WasmProcessor`: any WebAssembly plugin, with its configuration and sampling.

use super::{LiveParts, ProcessorPlan, Runs, first_input};
use crate::topology::{NodeInput, WasmConfig};

/// The plugin a node names, when the topology itself names it (not a parameter).
pub(super) fn literal_plugin(c: &WasmConfig) -> Option<&str> {
    Some(c.plugin.as_str()).filter(|p| !p.contains("${"))
}

pub(super) fn add(parts: &mut LiveParts, node: String, inputs: &[NodeInput], c: WasmConfig) {
    parts.processors.push(ProcessorPlan {
        node,
        input: first_input(inputs),
        runs: Runs::Plugin { plugin: c.plugin, config: serde_json::Value::Object(c.configuration) },
        interval: c.sampling_interval,
    });
}
