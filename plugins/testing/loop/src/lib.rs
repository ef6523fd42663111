//! `test-loop`: hostile: never returns from `process`. The host must interrupt it (epoch
//! deadline) and keep running.

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

struct Spin;

impl Plugin for Spin {
    fn info() -> Info {
        Info::new("test-loop", env!("CARGO_PKG_VERSION"), "Test: infinite loop in process").access(Access::None)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Spin)
    }

    fn process(&mut self, _frame: &mut Frame<'_>) -> Result<Output, String> {
        let mut n: u64 = 0;
        loop {
            // black_box keeps the loop real work the optimiser cannot remove.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

openva_plugin_sdk::export_plugin!(Spin);
