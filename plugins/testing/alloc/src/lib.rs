//! `test-alloc`: hostile: allocates (and touches) 1 MiB after 1 MiB in `process` without bound.
//! The host's memory limit makes the allocation fail, which aborts the instance (a trap). With
//! `{"hostFrames": true}` it makes the host allocate instead: four 4K frames in the host per
//! call, all kept across calls; they count against the same limit, which a few calls reach
//! (each call stays quick, so the memory limit, not the time limit, is what stops it).

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

const CHUNK: usize = 1 << 20;

struct Hoard {
    chunks: Vec<Vec<u8>>,
    frames: Vec<Frame<'static>>,
    host_frames: bool,
}

impl Plugin for Hoard {
    fn info() -> Info {
        Info::new("test-alloc", env!("CARGO_PKG_VERSION"), "Test: unbounded allocation in process").access(Access::None)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Hoard { chunks: Vec::new(), frames: Vec::new(), host_frames: config.bool("hostFrames")?.unwrap_or(false) })
    }

    fn process(&mut self, _frame: &mut Frame<'_>) -> Result<Output, String> {
        loop {
            if self.host_frames {
                for _ in 0..4 {
                    self.frames.push(Frame::new_in_host(3840, 2160)?);
                }
                return Ok(Output::none());
            }
            let mut chunk = vec![0u8; CHUNK];
            chunk.iter_mut().step_by(4096).for_each(|b| *b = 1); // touch every page
            self.chunks.push(std::hint::black_box(chunk));
        }
    }
}

openva_plugin_sdk::export_plugin!(Hoard);
