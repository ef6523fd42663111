//! `MotionDetectionProcessor`: AVA's motion detector, which openva runs as the `motion`
//! plugin. Its settings are checked here, so a misspelt sensitivity is refused when the
//! topology or pipeline is set rather than when it activates.

use serde_json::{Map, Value, json};

use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;
use super::video_sink::duration;
use crate::time::Duration90k;

/// The longest `eventAggregationWindow` the detector accepts.
pub const MAX_AGGREGATION_WINDOW: Duration90k = Duration90k::from_secs(24 * 3600);

/// AVA's `sensitivity` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensitivity {
    /// Large changes only.
    Low,
    /// AVA's default.
    Medium,
    /// Small changes too.
    High,
}

impl Sensitivity {
    /// The plugin's (and AVA's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Low => "low",
            Sensitivity::Medium => "medium",
            Sensitivity::High => "high",
        }
    }
}

/// Settings of a `MotionDetectionProcessor`; `None` leaves the detector's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MotionConfig {
    /// `sensitivity`.
    pub sensitivity: Option<Sensitivity>,
    /// `outputMotionRegion`: one inference per moving region (default) or one per event.
    pub output_motion_region: Option<bool>,
    /// `eventAggregationWindow` (0 to 24 h).
    pub event_aggregation_window: Option<Duration90k>,
}

impl MotionConfig {
    /// The `motion` plugin's configuration object.
    pub fn plugin_config(&self) -> Value {
        let mut c = Map::new();
        if let Some(s) = self.sensitivity {
            c.insert("sensitivity".into(), json!(s.as_str()));
        }
        if let Some(b) = self.output_motion_region {
            c.insert("outputMotionRegion".into(), json!(b));
        }
        if let Some(w) = self.event_aggregation_window {
            c.insert("eventAggregationWindow".into(), json!(w.to_iso_millis()));
        }
        Value::Object(c)
    }
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<MotionConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (MotionDetectionProcessor): {p}");
    let mut cfg = MotionConfig::default();
    if let Some(v) = stage.literal(json::opt_scalar(obj, "sensitivity", || what("sensitivity"))?) {
        cfg.sensitivity = Some(
            [Sensitivity::Low, Sensitivity::Medium, Sensitivity::High]
                .into_iter()
                .find(|s| s.as_str().eq_ignore_ascii_case(v.trim()))
                .ok_or_else(|| {
                    TopologyError::module(format!(
                        "{} '{}' must be low, medium or high",
                        what("sensitivity"),
                        shown(&v)
                    ))
                })?,
        );
    }
    if let Some(v) = stage.literal(json::opt_scalar(obj, "outputMotionRegion", || what("outputMotionRegion"))?) {
        cfg.output_motion_region = Some(match v.trim() {
            t if t.eq_ignore_ascii_case("true") => true,
            t if t.eq_ignore_ascii_case("false") => false,
            _ => {
                return Err(TopologyError::module(format!(
                    "{} '{}' must be true or false",
                    what("outputMotionRegion"),
                    shown(&v)
                )));
            }
        });
    }
    if let Some(v) = stage.literal(json::opt_scalar(obj, "eventAggregationWindow", || what("eventAggregationWindow"))?)
    {
        let w = duration(&v, &what("eventAggregationWindow"))?;
        if w > MAX_AGGREGATION_WINDOW {
            return Err(TopologyError::module(format!(
                "{} '{}' must be at most PT24H",
                what("eventAggregationWindow"),
                shown(&v)
            )));
        }
        cfg.event_aggregation_window = Some(w);
    }
    Ok(cfg)
}
