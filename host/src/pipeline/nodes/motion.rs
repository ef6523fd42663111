//! `MotionDetectionProcessor`: AVA's motion detector, run as the `motion` plugin.

use super::{LiveParts, ProcessorPlan, Runs, first_input};
use crate::topology::{MotionConfig, NodeInput};

/// The plugin that detects motion.
pub(super) const PLUGIN: &str = "motion";

pub(super) fn add(parts: &mut LiveParts, node: String, inputs: &[NodeInput], c: &MotionConfig) {
    parts.processors.push(ProcessorPlan {
        node,
        input: first_input(inputs),
        runs: Runs::Plugin { plugin: PLUGIN.into(), config: c.plugin_config() },
        interval: None,
    });
}
