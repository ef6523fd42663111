//! `test-alloc`: hostile: allocates (and touches) 1 MiB after 1 MiB in `process` without bound.
//! The host's memory limit makes the allocation fail, which aborts the instance (a trap).

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

const CHUNK: usize = 1 << 20;

struct Hoard {
    chunks: Vec<Vec<u8>>,
}

impl Plugin for Hoard {
    fn info() -> Info {
        Info::new("test-alloc", env!("CARGO_PKG_VERSION"), "Test: unbounded allocation in process").access(Access::None)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Hoard { chunks: Vec::new() })
    }

    fn process(&mut self, _frame: &mut Frame<'_>) -> Result<Output, String> {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            chunk.iter_mut().step_by(4096).for_each(|b| *b = 1); // touch every page
            self.chunks.push(std::hint::black_box(chunk));
        }
    }
}

openva_plugin_sdk::export_plugin!(Hoard);
