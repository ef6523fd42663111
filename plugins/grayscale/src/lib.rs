//! `grayscale`: removes colour by setting both chroma planes to neutral (128); luma is
//! untouched. Two `fill-plane` calls per frame and no pixel copies, so it is the cheapest
//! useful filter and the resource-mode reference for benchmarks.

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

/// Chroma value of every gray.
const NEUTRAL: u8 = 128;

/// Stateless: no configuration keys.
struct Grayscale;

impl Plugin for Grayscale {
    fn info() -> Info {
        Info::new("grayscale", env!("CARGO_PKG_VERSION"), "Removes colour (U and V set to 128); luma untouched")
            .access(Access::Full)
    }

    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(Grayscale)
    }

    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        frame.fill_plane(1, NEUTRAL)?;
        frame.fill_plane(2, NEUTRAL)?;
        Ok(Output::none())
    }
}

openva_plugin_sdk::export_plugin!(Grayscale);
