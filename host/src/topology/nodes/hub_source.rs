//! `IotHubMessageSource`: messages from outside (another device, a script, a cloud rule) that
//! enter a live pipeline, typically to open a signal gate. openva receives them on the MQTT
//! topic `openva/inputs/{hubInputName}` and at `POST /api/inputs/{hubInputName}` (`docs/evr.md`).

use serde_json::{Map, Value};

use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;

/// Longest `hubInputName`: it becomes an MQTT topic level and a URL path segment.
pub const MAX_INPUT_NAME: usize = 128;

/// Settings of an `IotHubMessageSource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSourceConfig {
    /// `hubInputName`: the module input the messages arrive on.
    pub hub_input_name: String,
}

/// Whether `name` can name an input: letters, digits, `-`, `_` and `.`, so that it is one
/// topic level (no `/`, `+` or `#`) and one URL segment as written.
pub fn valid_input_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INPUT_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<HubSourceConfig, TopologyError> {
    let what = || format!("node '{node}' (IotHubMessageSource): hubInputName");
    let raw = json::opt_scalar(obj, "hubInputName", what)?;
    let Some(name) = stage.literal(raw.clone()) else {
        return Ok(HubSourceConfig { hub_input_name: raw.unwrap_or_default().into_owned() });
    };
    if !valid_input_name(&name) {
        return Err(TopologyError::module(format!(
            "{} '{}' must be 1 to {MAX_INPUT_NAME} letters, digits, '-', '_' or '.'",
            what(),
            shown(&name)
        )));
    }
    Ok(HubSourceConfig { hub_input_name: name.into_owned() })
}
