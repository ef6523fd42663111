//! `test-flood`: hostile. By default every frame logs 100 000 lines and returns 100 000
//! inferences; with `{"bigText": true}` it returns one inference carrying 1 MB of text. The
//! host must rate-limit the log and refuse the floods without falling behind.

use openva_plugin_sdk::{Access, Config, Frame, Inference, Info, Output, Plugin, Rect, log};

const COUNT: usize = 100_000;

struct Flood {
    big_text: bool,
}

impl Plugin for Flood {
    fn info() -> Info {
        Info::new("test-flood", env!("CARGO_PKG_VERSION"), "Test: 100 000 log lines and inferences per frame")
            .access(Access::None)
    }

    fn configure(config: &Config) -> Result<Self, String> {
        Ok(Flood { big_text: config.bool("bigText")?.unwrap_or(false) })
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        if self.big_text {
            let text = "x".repeat(1 << 20);
            return Ok(Output::with_inferences(vec![Inference::motion(None).with_attribute("text", text)]));
        }
        let pts = frame.pts();
        for i in 0..COUNT {
            log::info!("test-flood: line {i} of frame {pts}");
        }
        let inferences = (0..COUNT)
            .map(|i| {
                let x = (i % 100) as f32 / 100.0;
                Inference::motion(Some(Rect::new(x, x, 0.01, 0.01))).with_attribute("n", i.to_string())
            })
            .collect();
        Ok(Output::with_inferences(inferences))
    }
}

openva_plugin_sdk::export_plugin!(Flood);
