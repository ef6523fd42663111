//! `SignalGateProcessor`: lets media through to its sink for a while after a trigger (AVA's
//! event-based recording). The rules of each timing are AVA's (`docs/evr.md`).

use serde_json::{Map, Value};

use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;
use crate::time::Duration90k;

/// AVA's range of `activationEvaluationWindow`.
pub const WINDOW_RANGE: (Duration90k, Duration90k) = (Duration90k::ZERO, Duration90k::from_secs(10));
/// AVA's range of `activationSignalOffset` (negative: media from before the trigger).
pub const OFFSET_RANGE: (Duration90k, Duration90k) = (Duration90k::from_secs(-60), Duration90k::from_secs(60));
/// The range of `minimumActivationTime` and `maximumActivationTime`: AVA's is 10 s to 1 h;
/// openva accepts from 1 s, as LVA's drafts in the corpus use 5 s (`docs/topology.md`, "Rules
/// relaxed for the real corpus").
pub const ACTIVATION_RANGE: (Duration90k, Duration90k) = (Duration90k::from_secs(1), Duration90k::from_secs(3600));

/// Settings of a `SignalGateProcessor`. AVA documents no defaults; openva's are the values
/// every corpus topology uses (`PT1S`, `PT0S`, `PT30S`, `PT30S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalGateConfig {
    /// `activationEvaluationWindow`: how long after the first trigger earlier ones still count.
    pub evaluation_window: Duration90k,
    /// `activationSignalOffset`: where the clip starts relative to the earliest trigger.
    pub signal_offset: Duration90k,
    /// `minimumActivationTime`: how long the gate stays open after a trigger.
    pub minimum_activation: Duration90k,
    /// `maximumActivationTime`: the longest a gate stays open from its first trigger.
    pub maximum_activation: Duration90k,
}

impl Default for SignalGateConfig {
    fn default() -> Self {
        SignalGateConfig {
            evaluation_window: Duration90k::from_secs(1),
            signal_offset: Duration90k::ZERO,
            minimum_activation: Duration90k::from_secs(30),
            maximum_activation: Duration90k::from_secs(30),
        }
    }
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<SignalGateConfig, TopologyError> {
    let mut cfg = SignalGateConfig::default();
    let fields: [(&str, (Duration90k, Duration90k), &mut Duration90k); 4] = [
        ("activationEvaluationWindow", WINDOW_RANGE, &mut cfg.evaluation_window),
        ("activationSignalOffset", OFFSET_RANGE, &mut cfg.signal_offset),
        ("minimumActivationTime", ACTIVATION_RANGE, &mut cfg.minimum_activation),
        ("maximumActivationTime", ACTIVATION_RANGE, &mut cfg.maximum_activation),
    ];
    for (key, (lo, hi), slot) in fields {
        let what = || format!("node '{node}' (SignalGateProcessor): {key}");
        let Some(v) = stage.literal(json::opt_scalar(obj, key, what)?) else { continue };
        let d = Duration90k::parse_iso_signed(&v).map_err(|_| {
            TopologyError::module(format!("{} '{}' is not an ISO 8601 duration (e.g. PT1S, -PT5S)", what(), shown(&v)))
        })?;
        if d < lo || d > hi {
            return Err(TopologyError::module(format!(
                "{} '{}' must be from {} to {}",
                what(),
                shown(&v),
                lo.to_iso_millis(),
                hi.to_iso_millis()
            )));
        }
        *slot = d;
    }
    Ok(cfg)
}
