// The plugin itself, shared by `test-stamp` (version 1) and `test-stamp-v2` (version 2),
// which differ only in `VERSION` (defined by the including crate).

use openva_plugin_sdk::{Access, Config, Frame, Inference, Info, Output, Plugin};

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
