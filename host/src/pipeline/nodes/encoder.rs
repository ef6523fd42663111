//! `EncoderProcessor` of a batch job: scaling runs through the `scale` plugin.

use super::{PipelineError, module_error};
use crate::plugins::PluginHost;

/// The plugin that scales pictures.
pub(in crate::pipeline) const SCALE_PLUGIN: &str = "scale";

/// An encoder that scales needs the `scale` plugin.
pub(super) fn check_plugin(node: &str, scales: bool, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
    if scales && plugins.is_none_or(|p| p.get(SCALE_PLUGIN).is_err()) {
        return Err(module_error(format!(
            "node '{node}' (EncoderProcessor) scales, which needs the 'scale' plugin; start the host with --plugins DIR"
        )));
    }
    Ok(())
}
