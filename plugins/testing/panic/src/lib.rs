//! `test-panic`: hostile: panics in `process`. With `panic = "abort"` the panic is a trap; the
//! host must survive it and re-instantiate the plugin.

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

struct Panic;

impl Plugin for Panic {
    fn info() -> Info {
        Info::new("test-panic", env!("CARGO_PKG_VERSION"), "Test: panics in process").access(Access::None)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Panic)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        panic!("test-panic: deliberate panic at pts {}", frame.pts());
    }
}

openva_plugin_sdk::export_plugin!(Panic);
