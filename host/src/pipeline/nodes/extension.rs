//! `HttpExtension` and `GrpcExtension`: frames to an inference server the user runs
//! (research/extensions.md §1–§2); the protocols are `crate::extension`, the frame flow
//! `pipeline::analysis`.

use super::{LiveParts, PipelineError, ProcessorPlan, Runs, first_input, module_error};
use crate::topology::{ExtensionConfig, ExtensionKind, NodeInput};

/// A frame size the scale settings are tried on at set, so settings that cannot work on any
/// camera (an odd size with `pad` or `stretch`) are a 400 then, not an error on every frame.
const PROBE: (u32, u32) = (1920, 1080);

pub(super) fn add(
    parts: &mut LiveParts,
    node: String,
    inputs: &[NodeInput],
    c: ExtensionConfig,
) -> Result<(), PipelineError> {
    let type_name = if c.kind == ExtensionKind::Http { "HttpExtension" } else { "GrpcExtension" };
    crate::extension::image::geometry(PROBE.0, PROBE.1, c.scale.as_ref())
        .map_err(|e| module_error(format!("node '{node}' ({type_name}): image.scale: {e}")))?;
    parts.processors.push(ProcessorPlan {
        node,
        input: first_input(inputs),
        interval: c.interval,
        runs: Runs::Extension(Box::new(c)),
    });
    Ok(())
}
