//! `test-empty`: does nothing and reads nothing, so a benchmark of it measures the host's
//! per-call overhead.

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

struct Empty;

impl Plugin for Empty {
    fn info() -> Info {
        Info::new("test-empty", env!("CARGO_PKG_VERSION"), "Test: no-op (per-call overhead)").access(Access::None)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Empty)
    }

    fn process(&mut self, _frame: &mut Frame<'_>) -> Result<Output, String> {
        Ok(Output::none())
    }
}

openva_plugin_sdk::export_plugin!(Empty);
