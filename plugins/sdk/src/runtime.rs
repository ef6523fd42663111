//! The glue behind [`crate::export_plugin!`]: raw exports → [`crate::Plugin`] calls, and the
//! configured instance, kept between calls.

use crate::bindings::exports::openva::processor::processor::{Output as RawOutput, OutputData, PluginInfo};
use crate::bindings::openva::processor::types::{Frame as HostFrame, FrameData, PixelFormat};
use crate::{Config, Frame, Plugin};
use std::any::Any;
use std::cell::RefCell;

thread_local! {
    /// The configured plugin value. Wasm is single-threaded, so this is the instance's one slot;
    /// it holds the concrete `P` of `export_plugin!`, behind `Any` because a `thread_local!`
    /// cannot be generic.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// `describe`: the plugin's [`crate::Info`]; every plugin accepts I420.
pub fn describe<P: Plugin>() -> PluginInfo {
    let i = P::info();
    PluginInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        accepts: vec![PixelFormat::I420],
        access: i.access,
        mode: i.mode,
    }
}

/// `configure`: builds a new instance. On error the old one is dropped too, so frames fail
/// rather than run with a configuration the host was told is refused.
pub fn configure<P: Plugin>(json: &str) -> Result<(), String> {
    let made = Config::parse(json).and_then(|c| P::configure(&c));
    INSTANCE.with(|slot| {
        let mut slot = slot.try_borrow_mut().map_err(|_| "configure called during process".to_string())?;
        match made {
            Ok(p) => {
                *slot = Some(Box::new(p));
                Ok(())
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    })
}

fn with_plugin<P: Plugin, R>(f: impl FnOnce(&mut P) -> Result<R, String>) -> Result<R, String> {
    INSTANCE.with(|slot| {
        let mut slot = slot.try_borrow_mut().map_err(|_| "process called during process".to_string())?;
        let plugin = slot
            .as_mut()
            .and_then(|b| b.downcast_mut::<P>())
            .ok_or_else(|| "not configured: configure must succeed before process".to_string())?;
        f(plugin)
    })
}

/// `process`: a host frame. A replacement made in plugin memory becomes a new host frame.
pub fn process<P: Plugin>(input: &HostFrame) -> Result<RawOutput, String> {
    with_plugin::<P, _>(|p| {
        let mut frame = Frame::from_host(input);
        let out = p.process(&mut frame)?;
        let replaced = out.replaced.map(Frame::into_host).transpose()?;
        Ok(RawOutput { replaced, inferences: out.inferences })
    })
}

/// `process-data`: the frame by value. The output carries a frame only if the plugin replaced
/// it or wrote to it; a replacement keeps the input's `pts`.
pub fn process_data<P: Plugin>(input: FrameData) -> Result<OutputData, String> {
    with_plugin::<P, _>(|p| {
        let pts = input.info.pts;
        let mut frame = Frame::from_data(input);
        let out = p.process(&mut frame)?;
        let frame = match out.replaced {
            Some(r) => {
                let mut d = r.into_data()?;
                d.info.pts = pts;
                Some(d)
            }
            None => frame.take_if_dirty(),
        };
        Ok(OutputData { frame, inferences: out.inferences })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::openva::processor::types::FrameInfo;
    use crate::{Inference, Info, Output};

    struct Gray {
        value: u8,
    }

    impl Plugin for Gray {
        fn info() -> Info {
            Info::new("gray-test", "1", "test")
        }
        fn configure(config: &Config) -> Result<Self, String> {
            Ok(Gray { value: config.u32_in("value", 0..=255)?.unwrap_or(128) as u8 })
        }
        fn process(&mut self, frame: &mut Frame<'_>) -> Result<Output, String> {
            frame.fill_plane(1, self.value)?;
            frame.fill_plane(2, self.value)?;
            if frame.width() == 2 {
                return Ok(Output::replace(Frame::new_i420(4, 4)?));
            }
            Ok(Output::none().inference(Inference::new("other").with_tag("gray", 1.0)))
        }
    }

    fn frame(w: u32, h: u32) -> FrameData {
        let f = Frame::new_i420(w, h).unwrap().into_data().unwrap();
        FrameData { info: FrameInfo { pts: 7, ..f.info }, data: vec![50; f.data.len()] }
    }

    #[test]
    fn lifecycle_by_value() {
        assert!(process_data::<Gray>(frame(4, 4)).unwrap_err().contains("not configured"));
        assert_eq!(describe::<Gray>().name, "gray-test");
        configure::<Gray>(r#"{"Value": "100"}"#).unwrap();
        let out = process_data::<Gray>(frame(4, 4)).unwrap();
        let f = out.frame.unwrap();
        assert_eq!(&f.data[..16], &[50; 16]);
        assert!(f.data[16..].iter().all(|&v| v == 100));
        assert_eq!(out.inferences[0].tag.as_ref().unwrap().value, "gray");
        // A replacement keeps the input's time.
        let out = process_data::<Gray>(frame(2, 2)).unwrap();
        let f = out.frame.unwrap();
        let p = f.info.planes[1];
        assert_eq!((f.info.width, f.info.pts, f.data.len()), (4, 7, 24));
        assert_eq!((p.offset, p.stride, p.width, p.height), (16, 2, 2, 2));
        // A refused reconfiguration leaves the plugin unconfigured.
        assert!(configure::<Gray>(r#"{"value": 300}"#).unwrap_err().contains("value: must be 0..=255"));
        assert!(process_data::<Gray>(frame(4, 4)).is_err());
        assert!(configure::<Gray>("[]").is_err());
    }
}
