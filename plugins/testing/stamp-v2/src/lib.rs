//! `test-stamp` version 2 (crate `test-stamp-v2`, the same plugin name): for hot-swap tests,
//! which replace version 1's file with this one and see `version` 2 in the inferences.
//!
//! Version 1's documentation: one `event` inference per frame it is given, carrying the frame's `pts` and the
//! configured `label`, and nothing else (no pixel access). Tests use it to see exactly which
//! frames a node processed (sampling rates) and which version of a plugin ran them.

use openva_plugin_sdk::{Access, Config, Frame, Inference, Info, Output, Plugin};

/// Which build this is (`test-stamp-v2` is the same plugin, version 2).
const VERSION: &str = "2";

struct Stamp {
    label: String,
}

impl Plugin for Stamp {
    fn info() -> Info {
        Info::new("test-stamp", format!("{VERSION}.0.0"), "Test: one event inference per processed frame")
            .access(Access::None)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Stamp { label: config.string("label")?.unwrap_or_else(|| "stamp".into()) })
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        let event = Inference::new("event")
            .with_subtype("frame")
            .with_attribute("pts", frame.pts().to_string())
            .with_attribute("label", self.label.clone())
            .with_attribute("version", VERSION);
        Ok(Output::with_inferences(vec![event]))
    }
}

openva_plugin_sdk::export_plugin!(Stamp);
