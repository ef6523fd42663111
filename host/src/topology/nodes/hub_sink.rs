//! `IotHubMessageSink`: where a pipeline's inferences leave as messages (events on SSE today,
//! MQTT with the event-based recording issue).

use serde_json::{Map, Value};

use super::super::error::TopologyError;
use super::super::json;

/// Settings of an `IotHubMessageSink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSinkConfig {
    /// `hubOutputName`: the output the messages are sent to.
    pub hub_output_name: String,
}

pub(in crate::topology) fn build(node: &str, obj: &Map<String, Value>) -> Result<HubSinkConfig, TopologyError> {
    let what = || format!("node '{node}' (IotHubMessageSink): hubOutputName");
    let name = json::opt_scalar(obj, "hubOutputName", what)?.unwrap_or_default().into_owned();
    Ok(HubSinkConfig { hub_output_name: name })
}
