//! The analysis branch of a live pipeline: decode the camera's frames and run the processor
//! nodes (Wasm plugins) on them, publishing their inferences as AVA Analytics events.
//!
//! It runs on a thread of its own, fed through a small bounded queue, so the recording path
//! never waits for decoding or plugins: when analysis falls behind, frames are dropped (and
//! counted in `va_data_dropped_total`) up to the next keyframe, and recording is untouched.
//! Plugin calls are synchronous wasmtime calls on this plain thread (never a tokio worker).

use super::metrics::PipelineMetrics;
use crate::codec::{Decoder, I420};
use crate::events::{Bus, EventType};
use crate::ingest::rtsp::AccessUnit;
use crate::plugins::{PluginError, PluginInstance, inference_to_ava};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Frames waiting for analysis before new ones are dropped (about half a second at 25 fps).
const QUEUE: usize = 12;

/// One processor node and its plugin instance.
pub struct Processor {
    /// Node name.
    pub node: String,
    /// The node it takes frames from (the source or another processor).
    pub input: String,
    /// The configured plugin.
    pub instance: PluginInstance,
}

/// An IoT Hub message sink: publishes the inferences of the nodes it takes as inputs.
pub struct HubSink {
    /// Node name.
    pub node: String,
    /// AVA's `hubOutputName` (carried in the event body for routing).
    pub output_name: String,
    /// Processor nodes it listens to.
    pub inputs: Vec<String>,
}

struct Item {
    data: Vec<u8>,
    params: Option<(Vec<u8>, Vec<u8>)>,
    pts: i64,
}

/// Handle of a running analysis branch; dropping it stops the thread (after the frame in
/// hand) and waits for it.
pub struct Analysis {
    tx: Option<SyncSender<Item>>,
    /// After a drop, frames are skipped until the next keyframe (a decoder cannot use P-frames
    /// whose reference it never saw).
    need_key: AtomicBool,
    /// The stream's parameter sets, re-sent with the first frame after a drop.
    params: Mutex<Option<(Vec<u8>, Vec<u8>)>>,
    metrics: Arc<PipelineMetrics>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Analysis {
    /// Starts the analysis thread of pipeline `pipeline` whose frames come from `source_node`.
    /// `processors` must be in topological order.
    pub fn start(
        pipeline: &str,
        source_node: &str,
        processors: Vec<Processor>,
        hubs: Vec<HubSink>,
        events: Arc<Bus>,
        metrics: Arc<PipelineMetrics>,
    ) -> std::io::Result<Analysis> {
        let (tx, rx) = sync_channel(QUEUE);
        let ctx = Ctx { pipeline: pipeline.to_owned(), source: source_node.to_owned(), hubs, events };
        let thread =
            std::thread::Builder::new().name(format!("analysis-{pipeline}")).spawn(move || run(rx, processors, ctx))?;
        Ok(Analysis {
            tx: Some(tx),
            need_key: AtomicBool::new(true),
            params: Mutex::new(None),
            metrics,
            thread: Some(thread),
        })
    }

    /// Offers a camera frame; never blocks.
    pub fn offer(&self, au: &AccessUnit) {
        let mut params = self.params.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &au.params
            && let Some(sets) = crate::mp4::init::avc1_parameter_sets(&p.sample_entry)
        {
            *params = Some(sets);
        }
        let need_key = self.need_key.load(Ordering::Relaxed);
        if need_key && !au.key {
            self.metrics.count_dropped(1);
            return;
        }
        let Some(tx) = &self.tx else { return };
        let item = Item {
            data: au.data.clone(),
            params: if need_key || au.params.is_some() { params.clone() } else { None },
            pts: au.received.0,
        };
        match tx.try_send(item) {
            Ok(()) => self.need_key.store(false, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.count_dropped(1);
                self.need_key.store(true, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Analysis {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ctx {
    pipeline: String,
    source: String,
    hubs: Vec<HubSink>,
    events: Arc<Bus>,
}

impl Ctx {
    fn subject(&self, node: &str) -> String {
        format!("/livePipelines/{}/processors/{node}", self.pipeline)
    }
}

/// For each processor (in order), whether it is the last one reading its input: that one may
/// take the frame, the others need a copy. Fixed by the topology, so computed once.
fn last_readers(processors: &[Processor]) -> Vec<bool> {
    (0..processors.len()).map(|i| !processors[i + 1..].iter().any(|q| q.input == processors[i].input)).collect()
}

fn run(rx: Receiver<Item>, mut processors: Vec<Processor>, ctx: Ctx) {
    let last_reader = last_readers(&processors);
    let mut decoder: Option<Decoder> = None;
    let mut paused: HashMap<String, bool> = HashMap::new();
    let mut decode_errors = 0u64;
    for item in rx {
        if let Some(sets) = item.params {
            match decoder.as_mut() {
                Some(d) => d.set_params(vec![sets.0, sets.1]),
                None => match Decoder::new(vec![sets.0, sets.1]) {
                    Ok(d) => decoder = Some(d),
                    Err(e) => {
                        tracing::error!(pipeline = %ctx.pipeline, "cannot start the decoder: {e}");
                        continue;
                    }
                },
            }
        }
        let Some(dec) = decoder.as_mut() else { continue };
        let pic = match dec.decode(&item.data, item.pts) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                decode_errors += 1;
                if decode_errors.is_power_of_two() {
                    tracing::warn!(pipeline = %ctx.pipeline, "cannot decode a frame ({decode_errors} so far): {e}");
                }
                continue;
            }
        };
        if let Some(done) = process_frame(&ctx, &mut processors, &last_reader, &mut paused, pic) {
            dec.recycle(done);
        }
    }
}

/// Runs every processor on one decoded frame, in topological order. A frame is copied only
/// where a node feeds several processors; the last reader takes it. Returns a finished frame
/// whose buffer the decoder can reuse.
fn process_frame(
    ctx: &Ctx,
    processors: &mut [Processor],
    last_reader: &[bool],
    paused: &mut HashMap<String, bool>,
    pic: I420,
) -> Option<I420> {
    let pts = pic.pts;
    let mut frames: HashMap<String, I420> = HashMap::new();
    frames.insert(ctx.source.clone(), pic);
    for (p, &last) in processors.iter_mut().zip(last_reader) {
        let taken = if last { frames.remove(&p.input) } else { frames.get(&p.input).cloned() };
        let Some(mut f) = taken else { continue };
        match p.instance.process(&mut f) {
            Ok(out) => {
                paused.insert(p.node.clone(), false);
                for hub in ctx.hubs.iter().filter(|h| h.inputs.contains(&p.node)) {
                    if out.inferences.is_empty() {
                        continue;
                    }
                    let inferences: Vec<_> = out.inferences.iter().map(inference_to_ava).collect();
                    ctx.events.publish(
                        ctx.subject(&p.node),
                        EventType::Inference,
                        json!({"timestamp": pts, "inferences": inferences, "hubOutputName": hub.output_name}),
                    );
                }
                frames.insert(p.node.clone(), f);
            }
            Err(PluginError::Paused { plugin, failures, retry_in_s }) => {
                // Said once per pause, not once per frame.
                if !paused.insert(p.node.clone(), true).unwrap_or(false) {
                    ctx.events.publish(
                        ctx.subject(&p.node),
                        EventType::RuntimeError,
                        json!({"plugin": plugin, "kind": "paused",
                               "message": format!("paused after {failures} failures; retrying in {retry_in_s} s")}),
                    );
                }
            }
            Err(PluginError::Fault { plugin, kind, message }) => {
                ctx.events.publish(
                    ctx.subject(&p.node),
                    EventType::RuntimeError,
                    json!({"plugin": plugin, "kind": kind, "message": message}),
                );
            }
            Err(e) => tracing::warn!(pipeline = %ctx.pipeline, node = %p.node, "{e}"),
        }
    }
    frames.into_values().next()
}
