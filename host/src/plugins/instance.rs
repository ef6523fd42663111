//! One plugin instance per pipeline node: a long-lived store, the per-call limits, fault
//! classification, rebuild after a fault and a circuit breaker for plugins that keep failing.

use super::PluginError;
use super::bindings::{CallMode, FrameData, Inference, PixelFormat, Plugin, StoreState, frame_info};
use super::registry::{Limits, LoadedPlugin, PluginHost, ticks};
use crate::codec::I420;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::Resource;

/// How a plugin misbehaved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Ran past its time budget.
    Timeout,
    /// Hit its memory cap.
    MemoryLimit,
    /// Trapped: a panic, an abort, an out-of-bounds access.
    Crash,
    /// Returned a frame that does not match its own description.
    WrongOutput,
    /// Produced more inferences or log lines than allowed.
    Flood,
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::Timeout => "timeout",
            FaultKind::MemoryLimit => "memory limit",
            FaultKind::Crash => "crash",
            FaultKind::WrongOutput => "wrong output",
            FaultKind::Flood => "flood",
        })
    }
}

/// What one `process` call gave.
#[derive(Debug, Default)]
pub struct Processed {
    /// Inferences for this frame.
    pub inferences: Vec<Inference>,
    /// The frame was replaced (e.g. scaled to another size).
    pub replaced: bool,
    /// A new version of the plugin was loaded since the last call: it now runs this node
    /// (`Ok(version)`), or it refused this node's configuration and the old one keeps running
    /// (`Err(why)`). Reported once per new version.
    pub update: Option<Result<String, String>>,
}

/// A configured plugin for one node.
pub struct PluginInstance {
    host: Arc<PluginHost>,
    plugin: Arc<LoadedPlugin>,
    config: String,
    live: Option<(Store<StoreState>, Plugin)>,
    failures: VecDeque<Instant>,
    paused_until: Option<Instant>,
    /// A newer version that refused this node's configuration (not retried).
    refused: Option<Arc<LoadedPlugin>>,
}

impl PluginInstance {
    pub(crate) fn new(host: Arc<PluginHost>, plugin: Arc<LoadedPlugin>, config: String) -> Result<Self, PluginError> {
        let mut inst = PluginInstance {
            host,
            plugin,
            config,
            live: None,
            failures: VecDeque::new(),
            paused_until: None,
            refused: None,
        };
        // Configure now, so a bad configuration refuses the node at once.
        inst.ensure_live()?;
        Ok(inst)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.plugin.info.name
    }

    /// Swaps in a newer version of the plugin if the registry has one: it is instantiated and
    /// configured first, and only then replaces the running one, so a version that refuses
    /// the configuration (or traps in it) leaves the old one running.
    fn check_update(&mut self) -> Option<Result<String, String>> {
        let current = self.host.get(self.name()).ok()?;
        if Arc::ptr_eq(&current, &self.plugin) || self.refused.as_ref().is_some_and(|r| Arc::ptr_eq(r, &current)) {
            return None;
        }
        let mut next = PluginInstance {
            host: self.host.clone(),
            plugin: current.clone(),
            config: self.config.clone(),
            live: None,
            failures: VecDeque::new(),
            paused_until: None,
            refused: None,
        };
        match next.ensure_live() {
            Ok(()) => {
                let version = current.info.version.clone();
                tracing::info!(plugin = %self.name(), version, "new plugin version swapped in");
                *self = next;
                Some(Ok(version))
            }
            Err(e) => {
                tracing::warn!(plugin = %self.name(), "new plugin version refused, the old one keeps running: {e}");
                self.refused = Some(current);
                Some(Err(e.to_string()))
            }
        }
    }

    /// Instantiates and configures if there is no live instance.
    fn ensure_live(&mut self) -> Result<(), PluginError> {
        if self.live.is_some() {
            return Ok(());
        }
        let limits = &self.host.limits;
        let mut store =
            Store::new(&self.host.engine, StoreState::new(self.name(), limits.memory_bytes, limits.max_log_lines));
        store.limiter(|s| &mut s.limits);
        let _running = self.host.ticker.running();
        store.set_epoch_deadline(ticks(limits.setup_time));
        let plugin = match self.plugin.pre.instantiate(&mut store) {
            Ok(p) => p,
            Err(e) => return Err(trap(self.name(), limits, &mut store, &e)),
        };
        match plugin.openva_processor_processor().call_configure(&mut store, &self.config) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(PluginError::Configure { plugin: self.name().to_owned(), message }),
            Err(e) => return Err(trap(self.name(), limits, &mut store, &e)),
        }
        self.live = Some((store, plugin));
        Ok(())
    }

    /// Counts a fault and drops the instance; pauses the node after too many.
    fn record_fault(&mut self) {
        self.live = None;
        let now = Instant::now();
        let limits = &self.host.limits;
        self.failures.push_back(now);
        while self.failures.front().is_some_and(|t| now.duration_since(*t) > limits.failure_window) {
            self.failures.pop_front();
        }
        if self.failures.len() as u32 >= limits.max_failures {
            self.paused_until = Some(now + limits.pause);
            self.failures.clear();
        }
    }

    /// Runs the plugin on one frame, in place: afterwards `pic` is the (possibly changed or
    /// replaced) frame. A fault stops this call, rebuilds the instance on the next one, and
    /// after repeated faults pauses the node; the error says which.
    pub fn process(&mut self, pic: &mut I420) -> Result<Processed, PluginError> {
        let update = self.check_update();
        let r = self.process_current(pic);
        r.map(|mut p| {
            p.update = update;
            p
        })
    }

    fn process_current(&mut self, pic: &mut I420) -> Result<Processed, PluginError> {
        if let Some(until) = self.paused_until {
            let now = Instant::now();
            if now < until {
                return Err(PluginError::Paused {
                    plugin: self.name().to_owned(),
                    failures: self.host.limits.max_failures,
                    retry_in_s: until.duration_since(now).as_secs() + 1,
                });
            }
            self.paused_until = None;
        }
        if let Err(e) = self.ensure_live() {
            if matches!(e, PluginError::Fault { .. }) {
                self.record_fault();
            }
            return Err(e);
        }
        let r = self.call(pic);
        if let Err(PluginError::Fault { .. }) = &r {
            self.record_fault();
        }
        if let Some((store, _)) = self.live.as_mut()
            && let Some(text) = store.data_mut().take_stderr()
        {
            tracing::warn!(plugin = %self.plugin.info.name, "stderr: {}", text.chars().take(1000).collect::<String>());
        }
        r
    }

    fn call(&mut self, pic: &mut I420) -> Result<Processed, PluginError> {
        let limits = self.host.limits.clone();
        let mode = self.plugin.info.mode;
        let name = self.plugin.info.name.clone();
        let fault = |kind, message| PluginError::Fault { plugin: name.clone(), kind, message };
        let Some((store, plugin)) = self.live.as_mut() else {
            return Err(fault(FaultKind::Crash, "no live instance".into()));
        };
        store.data_mut().budget.log_lines = 0;
        store.data_mut().budget.dropped_logs = 0;
        let _running = self.host.ticker.running();
        store.set_epoch_deadline(ticks(limits.call_time));
        let pts = pic.pts;
        let outcome = match mode {
            CallMode::Resource => {
                let input = std::mem::replace(pic, I420 { width: 0, height: 0, pts, data: Vec::new() });
                let res = match store.data_mut().table.push(input) {
                    Ok(r) => r,
                    Err(e) => return Err(PluginError::Host(e.to_string())),
                };
                let borrow = Resource::<I420>::new_borrow(res.rep());
                let r = plugin.openva_processor_processor().call_process(&mut *store, borrow);
                // Take the input back whatever happened.
                match store.data_mut().table.delete(res) {
                    Ok(back) => *pic = back,
                    Err(e) => return Err(PluginError::Host(format!("input frame lost: {e}"))),
                }
                match r {
                    Err(e) => Err(e),
                    Ok(Err(message)) => return Err(PluginError::Process { plugin: name.clone(), message }),
                    Ok(Ok(out)) => {
                        let replaced = match out.replaced {
                            None => None,
                            Some(r) => match store.data_mut().table.delete(r) {
                                Ok(f) => {
                                    store.data_mut().limits.give_frame(f.data.len());
                                    Some(f)
                                }
                                Err(e) => return Err(PluginError::Host(e.to_string())),
                            },
                        };
                        Ok((replaced, out.inferences))
                    }
                }
            }
            CallMode::ByValue => {
                let data = FrameData { info: frame_info(pic), data: std::mem::take(&mut pic.data) };
                let r = plugin.openva_processor_processor().call_process_data(&mut *store, &data);
                pic.data = data.data;
                match r {
                    Err(e) => Err(e),
                    Ok(Err(message)) => return Err(PluginError::Process { plugin: name.clone(), message }),
                    Ok(Ok(out)) => {
                        let replaced = match out.frame {
                            None => None,
                            Some(fd) => Some(from_frame_data(fd, pts).map_err(|m| fault(FaultKind::WrongOutput, m))?),
                        };
                        Ok((replaced, out.inferences))
                    }
                }
            }
        };
        let (replaced, inferences) = match outcome {
            Ok(v) => v,
            Err(e) => return Err(trap(&name, &limits, store, &e)),
        };
        if inferences.len() > limits.max_inferences {
            return Err(fault(
                FaultKind::Flood,
                format!("returned {} inferences for one frame (limit {})", inferences.len(), limits.max_inferences),
            ));
        }
        let text: usize = inferences.iter().map(inference_text_len).sum();
        if text > limits.max_inference_bytes {
            return Err(fault(
                FaultKind::Flood,
                format!(
                    "returned {} KiB of inference text for one frame (limit {} KiB)",
                    text >> 10,
                    limits.max_inference_bytes >> 10
                ),
            ));
        }
        if store.data().budget.dropped_logs > 0 {
            tracing::warn!(plugin = %name, "{} log lines over budget dropped", store.data().budget.dropped_logs);
        }
        let was_replaced = replaced.is_some();
        if let Some(mut f) = replaced {
            if !f.is_consistent() || f.width % 2 == 1 || f.height % 2 == 1 {
                return Err(fault(
                    FaultKind::WrongOutput,
                    format!(
                        "returned a {}x{} frame of {} bytes (even sizes, packed I420)",
                        f.width,
                        f.height,
                        f.data.len()
                    ),
                ));
            }
            f.pts = pts;
            let old = std::mem::replace(pic, f);
            store.data_mut().spare = Some(old.data);
        }
        Ok(Processed { inferences, replaced: was_replaced, update: None })
    }
}

/// Describes a trap, with the plugin's last words from stderr.
fn trap(plugin: &str, limits: &Limits, store: &mut Store<StoreState>, e: &wasmtime::Error) -> PluginError {
    let (kind, mut message) = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => {
            (FaultKind::Timeout, format!("ran longer than its {} ms budget", limits.call_time.as_millis()))
        }
        Some(wasmtime::Trap::UnreachableCodeReached) => (FaultKind::Crash, "panicked or aborted".to_owned()),
        Some(t) => (FaultKind::Crash, format!("trapped: {t}")),
        None => {
            let m = format!("{e:#}");
            if m.contains("growing memory") || m.contains("memory size") {
                let frames = if m.contains("frames of") { " (frames it made in the host count too)" } else { "" };
                (
                    FaultKind::MemoryLimit,
                    format!("exceeded its memory limit of {} MiB{frames}", limits.memory_bytes >> 20),
                )
            } else if m.contains("flooded") {
                (FaultKind::Flood, m)
            } else {
                (FaultKind::Crash, m)
            }
        }
    };
    if let Some(last) = store.data_mut().take_stderr() {
        let last: String = last.chars().take(300).collect();
        message = format!("{message} ({last})");
    }
    PluginError::Fault { plugin: plugin.to_owned(), kind, message }
}

/// A by-value frame checked against its own description.
fn from_frame_data(fd: FrameData, pts: i64) -> Result<I420, String> {
    let (w, h) = (fd.info.width, fd.info.height);
    if fd.info.format != PixelFormat::I420 || w == 0 || h == 0 || w > 8192 || h > 4320 {
        return Err(format!("returned a frame of unsupported size or format ({w}x{h})"));
    }
    let want = I420::size(w, h);
    if fd.data.len() != want {
        return Err(format!("returned a {w}x{h} frame with {} bytes of data; it needs {want}", fd.data.len()));
    }
    let expected = frame_info(&I420 { width: w, height: h, pts, data: Vec::new() }).planes;
    let same = fd.info.planes.len() == expected.len()
        && fd
            .info
            .planes
            .iter()
            .zip(&expected)
            .all(|(a, b)| (a.offset, a.stride, a.width, a.height) == (b.offset, b.stride, b.width, b.height));
    if !same {
        return Err("returned a frame whose plane layout is not packed I420".into());
    }
    Ok(I420 { width: w, height: h, pts, data: fd.data })
}

/// Bytes of text an inference carries (what its event will hold).
fn inference_text_len(i: &Inference) -> usize {
    i.kind.len()
        + i.subtype.as_ref().map_or(0, String::len)
        + i.tag.as_ref().map_or(0, |t| t.value.len())
        + i.attributes.iter().chain(&i.extensions).map(|(k, v)| k.len() + v.len()).sum::<usize>()
}
