//! `test-gray-byvalue`: the `grayscale` plugin in by-value mode (the whole frame is copied in
//! and out), for the resource-vs-by-value benchmark. Output must equal `grayscale`'s.

use openva_plugin_sdk::{Access, CallMode, Config, Frame, Info, Output, Plugin};

struct GrayByValue;

impl Plugin for GrayByValue {
    fn info() -> Info {
        Info::new("test-gray-byvalue", env!("CARGO_PKG_VERSION"), "Test: grayscale through process-data")
            .access(Access::Full)
            .mode(CallMode::ByValue)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(GrayByValue)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        frame.fill_plane(1, 128)?;
        frame.fill_plane(2, 128)?;
        Ok(Output::none())
    }
}

openva_plugin_sdk::export_plugin!(GrayByValue);
