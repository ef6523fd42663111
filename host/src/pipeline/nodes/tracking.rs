//! `ObjectTrackingProcessor` and `LineCrossingProcessor`: run in the analysis branch behind an
//! extension (`pipeline::analysis`), with the algorithms of `openva_algos::tracking`. The graph
//! rules (`topology/graph.rs`) already place them: a tracker right after an extension, a line
//! counter right after a tracker.

use super::{LiveParts, ProcessorPlan, Runs, first_input};
use crate::topology::{Accuracy, NamedLine, NodeInput};

pub(super) fn add_tracker(parts: &mut LiveParts, node: String, inputs: &[NodeInput], accuracy: Accuracy) {
    parts.processors.push(ProcessorPlan {
        node,
        input: first_input(inputs),
        interval: None,
        runs: Runs::Tracker(accuracy),
    });
}

pub(super) fn add_lines(parts: &mut LiveParts, node: String, inputs: &[NodeInput], lines: Vec<NamedLine>) {
    parts.processors.push(ProcessorPlan { node, input: first_input(inputs), interval: None, runs: Runs::Lines(lines) });
}
