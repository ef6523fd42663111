//! `test-wrong-size`: hostile, by value: returns a `frame-data` whose `data` is half as long as
//! its `info` says. The host must refuse the frame, not read past the buffer.
//!
//! The SDK never builds such a frame, so this plugin implements the raw exports itself: it also
//! shows how to use the bindings without the `Plugin` trait.

use openva_plugin_sdk::bindings::exports::openva::processor::processor::{
    Access, CallMode, Guest, Output, OutputData, PluginInfo,
};
use openva_plugin_sdk::bindings::openva::processor::types::{Frame, FrameData, PixelFormat};

struct WrongSize;

impl Guest for WrongSize {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "test-wrong-size".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test: by-value output shorter than its frame info".into(),
            accepts: vec![PixelFormat::I420],
            access: Access::Full,
            mode: CallMode::ByValue,
        }
    }

    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn process(_input: &Frame) -> Result<Output, String> {
        Err("test-wrong-size is a by-value plugin".into())
    }

    fn process_data(mut input: FrameData) -> Result<OutputData, String> {
        input.data.truncate(input.data.len() / 2);
        Ok(OutputData { frame: Some(input), inferences: Vec::new() })
    }
}

openva_plugin_sdk::bindings::export!(WrongSize with_types_in openva_plugin_sdk::bindings);
