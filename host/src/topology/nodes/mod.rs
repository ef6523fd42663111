//! Typed settings of each node type openva runs, one module per type: the only place AVA's
//! node JSON is read. A new node type is a module here, a [`super::NodeConfig`] variant and a
//! line in [`super::config::build`]; the runtime's side lives in `pipeline/nodes/`.
//!
//! Two styles of reading coexist on purpose: live nodes (`RtspSource`, `VideoSink`, the
//! processors) check each literal value even while others wait for parameters; batch nodes
//! (`VideoSource`, `EncoderProcessor`) are read as a whole once they hold no `${…}`, with
//! messages `node 'x': field: problem` that the job API's clients match on.

pub(super) mod encoder;
pub(super) mod extension;
pub(super) mod file_sink;
pub(super) mod hub_sink;
pub(super) mod hub_source;
pub(super) mod motion;
pub(super) mod rtsp_source;
pub(super) mod signal_gate;
pub(super) mod tracking;
pub(super) mod video_sink;
pub(super) mod video_source;
pub(super) mod wasm;

use serde_json::Value;

use super::error::TopologyError;
use crate::time::{Duration90k, TICKS_PER_SEC};

/// Highest sampling rate accepted: above any camera's frame rate, so it means "every frame".
pub const MAX_SAMPLES_PER_SECOND: f64 = 1000.0;

/// AVA's `samplingOptions` of an extension-style node: `maximumSamplesPerSecond` (a number, or
/// a numeric string as AVA writes it) → least time between processed frames.
pub(super) fn sampling_interval(node: &str, opts: Option<&Value>) -> Result<Option<Duration90k>, TopologyError> {
    let Some(opts) = opts else { return Ok(None) };
    if !opts.is_object() {
        return Err(TopologyError::module(format!("node '{node}': samplingOptions must be an object")));
    }
    let rate = match get(opts, "maximumSamplesPerSecond") {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(t)) => t.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match rate {
        Some(r) if r > 0.0 && r <= MAX_SAMPLES_PER_SECOND => {
            Ok(Some(Duration90k((TICKS_PER_SEC as f64 / r).round() as i64)))
        }
        _ => Err(TopologyError::module(format!(
            "node '{node}': samplingOptions.maximumSamplesPerSecond must be a number above 0 and at most {MAX_SAMPLES_PER_SECOND}"
        ))),
    }
}

pub(super) fn invalid(node: &str, field: &str, message: impl std::fmt::Display) -> TopologyError {
    TopologyError::module(format!("node '{node}': {field}: {message}"))
}

/// A key of a JSON object, case-insensitively (AVA's clients vary the case), `null` as absent.
pub(super) use super::json::member as get;

pub(super) fn string<'a>(v: &'a Value, key: &str, node: &str, field: &str) -> Result<Option<&'a str>, TopologyError> {
    match get(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(node, field, "must be a string")),
    }
}

/// A number given as a JSON number or a numeric string (AVA writes `"bitrateKbps": "3000"`).
pub(super) fn number(v: &Value, key: &str, node: &str, field: &str) -> Result<Option<f64>, TopologyError> {
    let x = match get(v, key) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match x {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(invalid(node, field, "must be a number")),
    }
}

pub(super) fn integer_in(
    v: &Value,
    key: &str,
    node: &str,
    field: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, TopologyError> {
    match number(v, key, node, field)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && x >= f64::from(*range.start()) && x <= f64::from(*range.end()) => {
            Ok(Some(x as u32))
        }
        Some(x) => {
            Err(invalid(node, field, format!("must be a whole number in {}..={}, got {x}", range.start(), range.end())))
        }
    }
}
