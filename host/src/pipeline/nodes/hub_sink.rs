//! `IotHubMessageSink`: the outlet of a pipeline's inferences.

use super::{HubSink, LiveParts};
use crate::topology::{HubSinkConfig, NodeInput};

pub(super) fn add(parts: &mut LiveParts, node: String, inputs: &[NodeInput], c: HubSinkConfig) {
    parts.hubs.push(HubSink {
        output_name: c.hub_output_name,
        inputs: inputs.iter().map(|i| i.node_name.clone()).collect(),
        node,
    });
}
