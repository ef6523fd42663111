//! The smallest useful openva plugin: inverts the luma plane (a photographic negative of the
//! brightness; colour is left alone). Copy this crate to start a plugin; see README.md.

use openva_plugin_sdk::{Access, Config, Frame, Info, Output, Plugin};

/// The plugin's state, built by `configure`. This one has none.
struct InvertLuma;

impl Plugin for InvertLuma {
    /// The name here is what topologies reference and what the `.wasm` file should be called.
    fn info() -> Info {
        Info::new("invert-luma", env!("CARGO_PKG_VERSION"), "Inverts the luma plane").access(Access::Full)
    }

    /// No configuration keys. A real plugin reads them with `config.u32("key")?` and friends,
    /// and returns `Err` naming the key when one is wrong.
    fn configure(_config: &Config) -> Result<Self, String> {
        Ok(InvertLuma)
    }

    /// Reads luma, inverts it, writes it back; chroma never crosses into the plugin.
    fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
        let mut y = frame.plane(0)?;
        y.iter_mut().for_each(|p| *p = 255 - *p);
        frame.set_plane(0, &y)?;
        Ok(Output::none())
    }
}

openva_plugin_sdk::export_plugin!(InvertLuma);

#[cfg(test)]
mod tests {
    use super::*;

    /// `process` runs natively on a by-value frame: no host needed.
    #[test]
    fn inverts_luma_only() -> Result<(), String> {
        let mut plugin = InvertLuma::configure(&Config::parse("{}")?)?;
        let mut frame = Frame::new_i420(64, 48)?; // black: Y 16, U and V 128
        plugin.process(&mut frame)?;
        assert!(frame.plane(0)?.iter().all(|&y| y == 255 - 16));
        assert!(frame.plane(1)?.iter().all(|&u| u == 128));
        Ok(())
    }
}
