//! `IotHubMessageSource`: messages sent to the host's input `hubInputName` (over MQTT or
//! `POST /api/inputs/{name}`) reach every active pipeline whose source names that input; on
//! this host they open the signal gate they feed.

use super::LiveParts;
use crate::topology::HubSourceConfig;

pub(super) fn add(parts: &mut LiveParts, node: String, c: HubSourceConfig) {
    parts.hub_sources.push((node, c.hub_input_name));
}
