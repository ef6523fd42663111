//! The analysis branch of a live pipeline: decode the camera's frames and run the processor
//! nodes (Wasm plugins) on them, publishing their inferences as AVA Analytics events.
//!
//! It runs on a thread of its own, fed through a small bounded queue, so the recording path
//! never waits for decoding or plugins: when analysis falls behind, frames are dropped (and
//! counted in `va_data_dropped_total`) up to the next keyframe, and recording is untouched.
//! Plugin calls are synchronous wasmtime calls on this plain thread (never a tokio worker).
//!
//! Decoding follows what the processors need. A processor may ask for at most N frames a
//! second (AVA's `samplingOptions.maximumSamplesPerSecond`); frames no processor wants are not
//! decoded when nothing depends on them (non-reference frames), and when the next wanted
//! frame lies beyond the next keyframe (by the stream's measured keyframe interval), the
//! reference frames in between are skipped too and decoding resumes at that keyframe. A
//! processor without a rate sees every frame, and then every frame is decoded.
//!
//! Extension nodes (`HttpExtension`, `GrpcExtension`) pass every frame through, their sampled
//! ones with the server's results on them (AVA: "media passthrough"). Their requests run on a
//! worker thread of their own, whose answers come back through this thread's queue; a node has
//! up to its window of requests out (HTTP one, gRPC a few), and while any is, frames for the
//! nodes downstream wait behind the oldest (bounded: [`HELD_FRAMES`], [`HELD_BYTES`]), so those
//! nodes see frames in order and the sampled ones with their results. An extension with nothing
//! downstream holds nothing: its results are published when they arrive, stamped with their
//! frame's time.

use super::metrics::PipelineMetrics;
use super::nodes::signal_gate::Trigger;
use crate::codec::{Decoder, I420, is_non_reference};
use crate::events::{Bus, EventType};
use crate::extension::{Client, Extension, Sent, guard::AddressPolicy, http};
use crate::ingest::rtsp::AccessUnit;
use crate::plugins::{PluginError, PluginInstance, inference_to_ava};
use crate::time::Time90k;
use crate::topology::ExtensionConfig;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

/// Frames waiting for analysis before new ones are dropped (about half a second at 25 fps).
const QUEUE: usize = 12;

/// Frames an extension holds for its downstream nodes while a request is out, at most; older
/// ones are dropped (counted) past it.
pub const HELD_FRAMES: usize = 50;
/// Bytes of held frames, at most.
pub const HELD_BYTES: usize = 64 << 20;

/// One processor node and what runs it.
pub struct Processor {
    /// Node name.
    pub node: String,
    /// The node it takes frames from (the source or another processor).
    pub input: String,
    /// What processes its frames.
    pub stage: StageSpec,
    /// Least time between two frames it processes (`None`: every frame).
    pub interval: Option<crate::time::Duration90k>,
}

/// How a processor node runs, as planned.
pub enum StageSpec {
    /// A configured Wasm plugin.
    Plugin(PluginInstance),
    /// An HTTP or gRPC extension: its settings, the address policy, and the request time-out.
    Extension(Box<ExtensionConfig>, AddressPolicy, std::time::Duration),
    /// The object tracker, with its `accuracy`.
    Tracker(crate::topology::Accuracy),
    /// The line counter, with its lines.
    Lines(Vec<crate::topology::NamedLine>),
}

/// A processor node while it runs.
enum Stage {
    Plugin(PluginInstance),
    Extension(Box<ExtensionStage>),
    Tracker(Box<TrackerStage>),
    Lines(Box<LinesStage>),
}

/// A frame on its way through the processors, with the inferences nodes upstream put on it.
#[derive(Clone)]
struct Sample {
    pic: I420,
    inferences: Vec<Value>,
    /// An extension's server looked at this frame (its inferences, possibly none, are on it):
    /// a tracker's detection frame.
    detected: bool,
}

/// What the tracker keeps of a detection: the inference's tag and subtype.
#[derive(Clone, Debug)]
struct Detected {
    tag: Value,
    subtype: Value,
}

/// An object tracker on the analysis thread.
struct TrackerStage {
    tracker: openva_algos::tracking::Tracker<Detected>,
    /// AVA's `sequenceId` of each track.
    sequence_ids: HashMap<u64, String>,
}

/// A line counter on the analysis thread.
struct LinesStage {
    counter: openva_algos::tracking::LineCounter<String>,
    names: Vec<String>,
}

/// An inference's box (`{"l", "t", "w", "h"}`), when it has four numbers.
fn box_of(b: &Value) -> Option<openva_algos::tracking::Rect> {
    let n = |k: &str| b[k].as_f64();
    Some(openva_algos::tracking::Rect { l: n("l")?, t: n("t")?, w: n("w")?, h: n("h")? })
}

/// A new AVA inference id: 32 lower-case hex digits.
fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An extension node (HTTP or gRPC) on the analysis thread.
struct ExtensionStage {
    ext: Extension,
    /// When it sends (its own rate: the node passes every frame on).
    sampler: Schedule,
    /// Whether any processor reads its frames (else nothing is held).
    downstream: bool,
    /// Requests out, oldest first: number and frame time.
    in_flight: VecDeque<(u64, i64)>,
    /// With nodes downstream: the frames from the oldest request out on, in order.
    queue: VecDeque<Waiting>,
    /// Bytes of pictures in `queue`.
    held_bytes: usize,
}

/// A frame waiting at an extension for the nodes downstream.
enum Waiting {
    /// A frame behind a request.
    Frame(Sample),
    /// A frame sent as request `seq`, with its results once answered.
    Sent { seq: u64, sample: Sample, answered: bool },
}

impl Waiting {
    fn bytes(&self) -> usize {
        match self {
            Waiting::Frame(s) | Waiting::Sent { sample: s, .. } => s.pic.data.len(),
        }
    }

    /// Whether it may go on downstream (nothing before it waits).
    fn ready(&self) -> bool {
        !matches!(self, Waiting::Sent { answered: false, .. })
    }
}

/// What an extension did with a frame.
enum Flow {
    /// On to the nodes downstream now.
    Pass(Sample),
    /// Held behind a request.
    Held,
}

/// What reaches the analysis thread.
enum Msg {
    Frame(Item),
    /// An extension's answer (processor index).
    Answer(usize, http::Answer),
    Stop,
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

/// The processors whose inferences open the pipeline's signal gate, and where the gate takes
/// its triggers.
pub(crate) struct GateFeed {
    /// Processor nodes that are inputs of the gate.
    pub(crate) nodes: Vec<String>,
    pub(crate) tx: super::gated::TriggerTx,
}

/// Where a branch's results go besides the nodes downstream: hub sinks (Analytics events),
/// the signal gate, and the video's recorded inferences.
pub(crate) struct Outlets {
    pub(crate) hubs: Vec<HubSink>,
    pub(crate) gate: Option<GateFeed>,
    pub(crate) record: Option<RecordFeed>,
}

/// The processors whose inferences the pipeline's video sink records with the video (its
/// metadata inputs), and the log they are written through.
pub(crate) struct RecordFeed {
    /// Processor nodes that are inputs of the video sink.
    pub(crate) nodes: Vec<String>,
    pub(crate) log: Mutex<crate::archive::inferences::InferenceLog>,
}

struct Item {
    data: Vec<u8>,
    /// The stream's sample entry (its parameter sets), with the first frame and after a
    /// change or a drop.
    entry: Option<Vec<u8>>,
    /// Presentation time (arrival of the frame plus its composition offset).
    pts: i64,
    key: bool,
}

/// Handle of a running analysis branch; dropping it stops the thread (after the frame in
/// hand) and waits for it.
pub struct Analysis {
    tx: Option<SyncSender<Msg>>,
    /// After a drop, frames are skipped until the next keyframe (a decoder cannot use P-frames
    /// whose reference it never saw).
    need_key: AtomicBool,
    /// The stream's sample entry, re-sent with the first frame after a drop.
    entry: Mutex<Option<Vec<u8>>>,
    metrics: Arc<PipelineMetrics>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Analysis {
    /// Starts the analysis thread of pipeline `pipeline` whose frames come from `source_node`,
    /// and the extensions' workers. `processors` must be in topological order.
    pub(crate) fn start(
        pipeline: &str,
        source_node: &str,
        processors: Vec<Processor>,
        outlets: Outlets,
        events: Arc<Bus>,
        metrics: Arc<PipelineMetrics>,
    ) -> Result<Analysis, String> {
        let (tx, rx) = sync_channel(QUEUE);
        let readers: Vec<String> = processors.iter().map(|p| p.input.clone()).collect();
        let mut stages = Vec::with_capacity(processors.len());
        let mut nodes = Vec::with_capacity(processors.len());
        for (i, p) in processors.into_iter().enumerate() {
            let downstream = readers.contains(&p.node);
            let stage = match p.stage {
                StageSpec::Plugin(instance) => Stage::Plugin(instance),
                StageSpec::Tracker(accuracy) => {
                    use openva_algos::tracking::Effort;
                    let effort = match accuracy {
                        crate::topology::Accuracy::Low => Effort::LOW,
                        crate::topology::Accuracy::Medium => Effort::MEDIUM,
                        crate::topology::Accuracy::High => Effort::HIGH,
                    };
                    let tracker = openva_algos::tracking::Tracker::new(effort);
                    Stage::Tracker(Box::new(TrackerStage { tracker, sequence_ids: HashMap::new() }))
                }
                StageSpec::Lines(lines) => {
                    let ends: Vec<_> = lines.iter().map(|l| (l.start, l.end)).collect();
                    let counter = openva_algos::tracking::LineCounter::new(&ends);
                    Stage::Lines(Box::new(LinesStage { counter, names: lines.into_iter().map(|l| l.name).collect() }))
                }
                StageSpec::Extension(config, policy, timeout) => {
                    let answers = tx.clone();
                    let client = Client::start(pipeline, &p.node, &config, policy, timeout, move |a| {
                        answers.send(Msg::Answer(i, a)).is_ok()
                    })
                    .map_err(|e| format!("node '{}': {e}", p.node))?;
                    let rate = p.interval.map(|d| d.0);
                    Stage::Extension(Box::new(ExtensionStage {
                        ext: Extension::new(*config, client),
                        sampler: Schedule::new(vec![rate], vec![0]),
                        downstream,
                        in_flight: VecDeque::new(),
                        queue: VecDeque::new(),
                        held_bytes: 0,
                    }))
                }
            };
            // What the decoder must deliver: an extension with nodes downstream passes every
            // frame on, so it needs every frame.
            let interval = match &stage {
                Stage::Extension(h) if h.downstream => None,
                _ => p.interval,
            };
            nodes.push(Node { node: p.node, input: p.input, interval });
            stages.push(stage);
        }
        let ctx = Ctx {
            pipeline: pipeline.to_owned(),
            source: source_node.to_owned(),
            hubs: outlets.hubs,
            gate: outlets.gate,
            record: outlets.record,
            events,
            metrics: metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("analysis-{pipeline}"))
            .spawn(move || run(rx, nodes, stages, ctx))
            .map_err(|e| format!("cannot start the analysis thread: {e}"))?;
        Ok(Analysis {
            tx: Some(tx),
            need_key: AtomicBool::new(true),
            entry: Mutex::new(None),
            metrics,
            thread: Some(thread),
        })
    }

    /// Gives a branch started mid-stream (a reconfiguration in place) the stream's sample
    /// entry: the camera sends its parameter sets only when its session starts.
    pub fn adopt_stream(&self, entry: Option<Vec<u8>>) {
        if entry.is_some() {
            *self.entry.lock().unwrap_or_else(|p| p.into_inner()) = entry;
        }
    }

    /// A new camera session starts: its first frames may refer to pictures this branch never
    /// saw (the camera went on sending while we reconnected), so decoding waits for a keyframe.
    pub fn session_started(&self) {
        self.need_key.store(true, Ordering::Relaxed);
    }

    /// Offers a camera frame; never blocks.
    pub fn offer(&self, au: &AccessUnit) {
        let mut entry = self.entry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = &au.params {
            *entry = Some(p.sample_entry.clone());
        }
        // Packets lost before a frame damage it and every frame referring to it: processors
        // would see smeared pictures (and find or miss things that are not so), so nothing is
        // decoded up to the next keyframe.
        let need_key = self.need_key.load(Ordering::Relaxed) || au.loss > 0;
        if need_key && !au.key {
            self.metrics.count_dropped(1);
            self.need_key.store(true, Ordering::Relaxed);
            return;
        }
        let Some(tx) = &self.tx else { return };
        let item = Item {
            data: au.data.clone(),
            entry: if need_key || au.params.is_some() { entry.clone() } else { None },
            pts: au.received.0 + i64::from(au.cts),
            key: au.key,
        };
        match tx.try_send(Msg::Frame(item)) {
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
        // The extensions' workers hold senders too: the thread is told to stop, not left to
        // wait for the channel to close.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Ctx {
    pipeline: String,
    source: String,
    hubs: Vec<HubSink>,
    gate: Option<GateFeed>,
    record: Option<RecordFeed>,
    events: Arc<Bus>,
    metrics: Arc<PipelineMetrics>,
}

/// When each processor next wants a frame, and what that lets the decoder skip.
#[derive(Debug)]
struct Schedule {
    /// Per processor: least ticks between two frames (`None`: every frame).
    intervals: Vec<Option<i64>>,
    /// Per processor: the time from which it wants its next frame.
    due: Vec<i64>,
    /// Processors reading the source directly: only they decide what is decoded.
    roots: Vec<usize>,
    /// Time of the last keyframe, and the last two intervals between keyframes.
    last_key: Option<i64>,
    gops: [Option<i64>; 2],
    /// Reference frames are being skipped up to the next keyframe.
    to_key: bool,
    /// The previous frame's time, and the latest spacing between frames.
    last_pts: Option<i64>,
    frame_gap: i64,
}

/// What the decoder does with an incoming frame.
#[derive(Debug, PartialEq, Eq)]
enum Decode {
    Yes,
    /// Nobody wants it and no later frame refers to it.
    SkipFrame,
    /// Nobody wants anything before the next keyframe.
    SkipToKey,
}

impl Schedule {
    fn for_processors(processors: &[Node], source: &str) -> Self {
        let roots = processors.iter().enumerate().filter(|(_, p)| p.input == source).map(|(i, _)| i).collect();
        Schedule::new(processors.iter().map(|p| p.interval.map(|d| d.0)).collect(), roots)
    }

    fn new(intervals: Vec<Option<i64>>, roots: Vec<usize>) -> Self {
        Schedule {
            due: vec![i64::MIN; intervals.len()],
            intervals,
            roots,
            last_key: None,
            gops: [None; 2],
            to_key: false,
            last_pts: None,
            frame_gap: 0,
        }
    }

    /// From when processor `i` takes a frame: its due time less half a frame (at most an
    /// eighth of its interval), so timestamp jitter does not push every sample one frame late
    /// and a sample is never taken a whole frame early.
    fn wants_from(&self, i: usize) -> i64 {
        match self.intervals[i] {
            None => i64::MIN,
            Some(iv) => self.due[i].saturating_sub((self.frame_gap / 2).min(iv / 8)),
        }
    }

    fn wants(&self, i: usize, pts: i64) -> bool {
        pts >= self.wants_from(i)
    }

    /// Processor `i` took the frame at `pts`: it is next due one interval later (or one
    /// interval after `pts`, if it fell behind, so it never bursts to catch up).
    fn took(&mut self, i: usize, pts: i64) {
        if let Some(iv) = self.intervals[i] {
            let due = self.due[i];
            self.due[i] = if due == i64::MIN || pts - due > iv { pts + iv } else { due + iv };
        }
    }

    /// The keyframe interval, when the last two agree within 10 % (a camera with a variable
    /// GOP gets no skipping to keyframes).
    fn gop(&self) -> Option<i64> {
        match self.gops {
            [Some(a), Some(b)] if (a - b).abs() * 10 <= a.max(b) => Some(a.max(b)),
            _ => None,
        }
    }

    fn decide(&mut self, pts: i64, key: bool, non_reference: bool) -> Decode {
        if let Some(last) = self.last_pts.replace(pts)
            && pts > last
        {
            self.frame_gap = pts - last;
        }
        if key {
            if let Some(k) = self.last_key
                && pts > k
            {
                self.gops = [self.gops[1], Some(pts - k)];
            }
            self.last_key = Some(pts);
            self.to_key = false;
            return Decode::Yes;
        }
        if self.to_key {
            return Decode::SkipToKey;
        }
        if self.roots.is_empty() || self.roots.iter().any(|&i| self.wants(i, pts)) {
            return Decode::Yes;
        }
        if non_reference {
            return Decode::SkipFrame;
        }
        let earliest = self.roots.iter().map(|&i| self.wants_from(i)).min().unwrap_or(i64::MIN);
        // No frame before the next keyframe (the last one comes a frame before it) is wanted.
        if let (Some(k), Some(gop)) = (self.last_key, self.gop())
            && earliest > k + gop - self.frame_gap
        {
            self.to_key = true;
            return Decode::SkipToKey;
        }
        Decode::Yes
    }
}

impl Ctx {
    fn subject(&self, node: &str) -> String {
        format!("/livePipelines/{}/processors/{node}", self.pipeline)
    }
}

/// For each processor (in order), whether it is the last one reading its input: that one may
/// take the frame, the others need a copy. Fixed by the topology, so computed once.
fn last_readers(processors: &[Node]) -> Vec<bool> {
    (0..processors.len()).map(|i| !processors[i + 1..].iter().any(|q| q.input == processors[i].input)).collect()
}

/// What the thread knows of a processor node besides its stage.
struct Node {
    node: String,
    input: String,
    /// Least time between two frames the decoder must deliver it (`None`: every frame).
    interval: Option<crate::time::Duration90k>,
}

/// The analysis thread's state.
struct Branch {
    ctx: Ctx,
    nodes: Vec<Node>,
    stages: Vec<Stage>,
    last_reader: Vec<bool>,
    schedule: Schedule,
    paused: HashMap<String, bool>,
}

fn run(rx: Receiver<Msg>, nodes: Vec<Node>, stages: Vec<Stage>, ctx: Ctx) {
    let last_reader = last_readers(&nodes);
    let schedule = Schedule::for_processors(&nodes, &ctx.source);
    let mut b = Branch { ctx, nodes, stages, last_reader, schedule, paused: HashMap::new() };
    // The decoder is made for the stream's sample entry, which the first item carries.
    let mut decoder: Option<Decoder> = None;
    let mut last_pts = i64::MIN;
    for msg in rx {
        let item = match msg {
            Msg::Stop => return,
            Msg::Answer(i, a) => {
                if let (Some(done), Some(d)) = (b.answered(i, a), decoder.as_mut()) {
                    d.recycle(done);
                }
                continue;
            }
            Msg::Frame(item) => item,
        };
        if let Some(r) = &b.ctx.record {
            r.log.lock().unwrap_or_else(|p| p.into_inner()).tick();
        }
        if let Some(entry) = &item.entry {
            // One thread, no frame delay: results follow the picture at once. The observer
            // offers only streams this host decodes (B-frames included when it has libav).
            let kept = decoder.as_mut().is_some_and(|d| d.set_entry(entry, false).is_ok());
            if !kept {
                decoder = match Decoder::for_entry(entry, false, 1) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        // Recording goes on without analysis.
                        tracing::error!(pipeline = %b.ctx.pipeline, "cannot start the decoder, no analysis: {e}");
                        None
                    }
                };
            }
        }
        let Some(dec) = decoder.as_mut() else { continue };
        let droppable = dec.codec() == crate::mp4::entry::VideoCodec::H264 && is_non_reference(&item.data);
        if b.schedule.decide(item.pts, item.key, droppable) != Decode::Yes {
            b.ctx.metrics.count_not_decoded();
            continue;
        }
        b.ctx.metrics.count_decoded();
        let mut pic = match dec.decode(&item.data, item.pts, item.key) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => {
                b.ctx.metrics.count_decode_error();
                let errors = dec.errors();
                if errors.is_power_of_two() {
                    tracing::warn!(pipeline = %b.ctx.pipeline, "cannot decode a frame ({errors} so far): {e}");
                }
                continue;
            }
        };
        // Arrival jitter must not run a reordered stream's times backwards.
        pic.pts = pic.pts.max(last_pts.saturating_add(1));
        last_pts = pic.pts;
        let source = b.ctx.source.clone();
        if let Some(done) = b.process(0, source, Sample { pic, inferences: Vec::new(), detected: false }) {
            dec.recycle(done);
        }
    }
}

impl Branch {
    /// Runs the processors from index `start` on a frame coming out of node `from`, in
    /// topological order. A frame is copied only where a node feeds several processors; the
    /// last reader takes it. Returns a finished frame whose buffer the decoder can reuse.
    fn process(&mut self, start: usize, from: String, sample: Sample) -> Option<I420> {
        let mut frames: HashMap<String, Sample> = HashMap::new();
        frames.insert(from, sample);
        for i in start..self.nodes.len() {
            let (node, input, last) = (&self.nodes[i].node, &self.nodes[i].input, self.last_reader[i]);
            let Some(pts) = frames.get(input).map(|s| s.pic.pts) else { continue };
            let plugin = matches!(self.stages[i], Stage::Plugin(_));
            if plugin && !self.schedule.wants(i, pts) {
                continue; // not this node's sample: it and the nodes after it see no frame
            }
            let taken = if last { frames.remove(input) } else { frames.get(input).cloned() };
            let Some(sample) = taken else { continue };
            let node = node.clone();
            match &mut self.stages[i] {
                Stage::Plugin(instance) => {
                    self.schedule.took(i, pts);
                    if let Some(s) = run_plugin(&self.ctx, &mut self.paused, &node, instance, sample) {
                        frames.insert(node, s);
                    }
                }
                Stage::Tracker(t) => {
                    let s = t.step(&self.ctx, &node, sample);
                    frames.insert(node, s);
                }
                Stage::Lines(l) => {
                    let s = l.step(&self.ctx, &node, sample);
                    frames.insert(node, s);
                }
                Stage::Extension(h) => {
                    let due = h.sampler.due[0];
                    let flow = h.offer(sample, &self.ctx.metrics);
                    if let Some(d) = h.ext.take_diagnostic() {
                        self.ctx.events.publish(self.ctx.subject(&node), d.0, d.1);
                    }
                    if h.sampler.due[0] != due {
                        // It took a sample: the decoder's schedule follows its rate.
                        self.schedule.took(i, pts);
                    }
                    if let Flow::Pass(s) = flow {
                        frames.insert(node, s);
                    }
                }
            }
        }
        frames.into_values().next().map(|s| s.pic)
    }

    /// An extension's answer: its results published and put on the frame it was for, which
    /// then goes on downstream with the frames behind it, up to the next request still out.
    fn answered(&mut self, i: usize, a: http::Answer) -> Option<I420> {
        let Some(Stage::Extension(h)) = self.stages.get_mut(i) else { return None };
        let node = self.nodes[i].node.clone();
        let failed = matches!(a.outcome, crate::extension::reply::Outcome::Failed(_));
        self.ctx.metrics.count_extension_request(failed, a.elapsed);
        let seq = a.seq;
        let pts = h.in_flight.iter().position(|(s, _)| *s == seq).and_then(|k| h.in_flight.remove(k)).map(|(_, p)| p);
        let (results, diagnostic) = h.ext.answered(a);
        if let Some(d) = diagnostic {
            self.ctx.events.publish(self.ctx.subject(&node), d.0, d.1);
        }
        let waiting = h.queue.iter_mut().find_map(|w| match w {
            Waiting::Sent { seq: s, sample, answered } if *s == seq => {
                *answered = true;
                sample.detected = !failed;
                Some(sample)
            }
            _ => None,
        });
        if let Some((body, inferences)) = results {
            if let Some(p) = pts {
                self.ctx.publish_results(&node, p, body);
            }
            if let Some(s) = waiting {
                s.inferences.extend(inferences);
            }
        }
        // On downstream: what no request before it holds back.
        let mut done = None;
        while let Some(Stage::Extension(h)) = self.stages.get_mut(i) {
            if !h.queue.front().is_some_and(Waiting::ready) {
                break;
            }
            let Some(w) = h.queue.pop_front() else { break };
            h.held_bytes -= w.bytes();
            let (Waiting::Frame(s) | Waiting::Sent { sample: s, .. }) = w;
            done = self.process(i + 1, node.clone(), s).or(done);
        }
        done
    }
}

impl ExtensionStage {
    /// A frame reaches the node: sent when it is a sample and the node's window has room; with
    /// nodes downstream, held while a request before it (or it) is out, else passed on.
    fn offer(&mut self, s: Sample, metrics: &PipelineMetrics) -> Flow {
        let pts = s.pic.pts;
        let annotated = !self.ext.skips_unannotated() || !s.inferences.is_empty();
        let mut sent = None;
        if annotated && self.sampler.wants(0, pts) {
            self.sampler.took(0, pts);
            match self.ext.send(&s.pic, &s.inferences) {
                Sent::Yes(seq) => {
                    self.in_flight.push_back((seq, pts));
                    sent = Some(seq);
                }
                Sent::Busy | Sent::Paused => metrics.count_extension_skipped(),
                Sent::Failed => {}
            }
        }
        if !self.downstream || (sent.is_none() && self.queue.is_empty()) {
            return Flow::Pass(s);
        }
        let w = match sent {
            Some(seq) => Waiting::Sent { seq, sample: s, answered: false },
            None => Waiting::Frame(s),
        };
        self.hold(w, metrics);
        Flow::Held
    }

    /// Keeps a frame in the queue, dropping the oldest frames that wait for nothing of their
    /// own past the bounds (the sent ones stay: at most the window of them).
    fn hold(&mut self, w: Waiting, metrics: &PipelineMetrics) {
        self.held_bytes += w.bytes();
        self.queue.push_back(w);
        while self.queue.len() > HELD_FRAMES || (self.held_bytes > HELD_BYTES && self.queue.len() > 1) {
            let Some(k) = self.queue.iter().position(|w| matches!(w, Waiting::Frame(_))) else { break };
            if let Some(old) = self.queue.remove(k) {
                self.held_bytes -= old.bytes();
                metrics.count_extension_skipped();
            }
        }
    }
}

impl TrackerStage {
    /// Moves the tracks to this frame (re-anchored on a detection frame) and publishes them:
    /// one entity per track with its `sequenceId` and a new `inferenceId` (AVA's tracker output,
    /// research/extensions.md §3.3).
    fn step(&mut self, ctx: &Ctx, node: &str, mut sample: Sample) -> Sample {
        use openva_algos::tracking::{Detection, Luma};
        let (w, h) = (sample.pic.width as usize, sample.pic.height as usize);
        let luma =
            Luma { data: &sample.pic.data[..(w * h).min(sample.pic.data.len())], width: w, height: h, stride: w };
        let detections: Option<Vec<Detection<Detected>>> = sample.detected.then(|| {
            sample
                .inferences
                .iter()
                .filter(|i| i["type"] == "entity" && i["sequenceId"].is_null())
                .filter_map(|i| {
                    let rect = box_of(&i["entity"]["box"])?;
                    let subtype =
                        if i["subtype"].is_string() { i["subtype"].clone() } else { json!("objectDetection") };
                    Some(Detection { rect, data: Detected { tag: i["entity"]["tag"].clone(), subtype } })
                })
                .collect()
        });
        let tracks = self.tracker.step(luma, detections.as_deref());
        self.sequence_ids.retain(|id, _| tracks.iter().any(|t| t.id == *id));
        let mut out = Vec::with_capacity(tracks.len());
        for t in tracks {
            let seq = self.sequence_ids.entry(t.id).or_insert_with(new_id);
            out.push(json!({"type": "entity", "subtype": t.data.subtype, "inferenceId": new_id(), "sequenceId": seq,
                "entity": {"tag": t.data.tag, "box": {"l": t.rect.l, "t": t.rect.t, "w": t.rect.w, "h": t.rect.h}}}));
        }
        if !out.is_empty() {
            let mut body = Map::new();
            body.insert("inferences".into(), Value::Array(out.clone()));
            ctx.publish_results(node, sample.pic.pts, body);
            sample.inferences.extend(out);
        }
        sample
    }
}

impl LinesStage {
    /// Counts the tracked objects (entities with a `sequenceId`) crossing the lines; each
    /// crossing is a `lineCrossing` event inference (AVA's shape, research/extensions.md §3.4).
    fn step(&mut self, ctx: &Ctx, node: &str, mut sample: Sample) -> Sample {
        use openva_algos::tracking::{Direction, Rect};
        let mut entity_ids: HashMap<String, Value> = HashMap::new();
        let tracks: Vec<(String, Rect)> = sample
            .inferences
            .iter()
            .filter_map(|i| {
                let seq = i["sequenceId"].as_str()?.to_owned();
                let rect = box_of(&i["entity"]["box"])?;
                entity_ids.insert(seq.clone(), i["inferenceId"].clone());
                Some((seq, rect))
            })
            .collect();
        let crossings = self.counter.step(&tracks);
        if crossings.is_empty() {
            return sample;
        }
        let events: Vec<Value> = crossings
            .iter()
            .map(|c| {
                let direction = match c.direction {
                    Direction::Clockwise => "clockwise",
                    Direction::Counterclockwise => "counterclockwise",
                };
                let related: Vec<Value> = entity_ids.get(&c.track).filter(|v| v.is_string()).cloned().into_iter().collect();
                json!({"type": "event", "subtype": "lineCrossing", "inferenceId": new_id(), "relatedInferences": related,
                    "event": {"name": self.names.get(c.line).cloned().unwrap_or_default(), "properties": {
                        "total": (c.totals.clockwise + c.totals.counterclockwise).to_string(),
                        "clockwiseTotal": c.totals.clockwise.to_string(),
                        "counterclockwiseTotal": c.totals.counterclockwise.to_string(),
                        "direction": direction}}})
            })
            .collect();
        let mut body = Map::new();
        body.insert("inferences".into(), Value::Array(events.clone()));
        ctx.publish_results(node, sample.pic.pts, body);
        sample.inferences.extend(events);
        sample
    }
}

/// Runs a plugin on a sample; its inferences are published and ride on the frame.
fn run_plugin(
    ctx: &Ctx,
    paused: &mut HashMap<String, bool>,
    node: &str,
    instance: &mut PluginInstance,
    mut sample: Sample,
) -> Option<Sample> {
    let pts = sample.pic.pts;
    match instance.process(&mut sample.pic) {
        Ok(out) => {
            if let Some(update) = &out.update {
                let body = match update {
                    Ok(version) => json!({"plugin": instance.name(), "version": version, "applied": true}),
                    Err(why) => json!({"plugin": instance.name(), "applied": false, "message": why}),
                };
                ctx.events.publish(ctx.subject(node), EventType::PluginUpdated, body);
            }
            paused.insert(node.to_owned(), false);
            if !out.inferences.is_empty() {
                let inferences: Vec<Value> = out.inferences.iter().map(inference_to_ava).collect();
                let mut body = Map::new();
                body.insert("inferences".into(), Value::Array(inferences.clone()));
                ctx.publish_results(node, pts, body);
                sample.inferences.extend(inferences);
            }
            Some(sample)
        }
        Err(PluginError::Paused { plugin, failures, retry_in_s }) => {
            // Said once per pause, not once per frame.
            if !paused.insert(node.to_owned(), true).unwrap_or(false) {
                ctx.events.publish(
                    ctx.subject(node),
                    EventType::RuntimeError,
                    json!({"plugin": plugin, "kind": "paused",
                           "message": format!("paused after {failures} failures; retrying in {retry_in_s} s")}),
                );
            }
            None
        }
        Err(PluginError::Fault { plugin, kind, message }) => {
            ctx.events.publish(
                ctx.subject(node),
                EventType::RuntimeError,
                json!({"plugin": plugin, "kind": kind, "message": message}),
            );
            None
        }
        Err(e) => {
            tracing::warn!(pipeline = %ctx.pipeline, node = %node, "{e}");
            None
        }
    }
}

impl Ctx {
    /// A node's results for the frame at `pts`: an Analytics event per hub sink listening to
    /// it (AVA's body: `timestamp` in 90 kHz ticks, `eventTime` the frame's time), a row of
    /// the video's recorded inferences when the video sink takes it, and a trigger of the gate
    /// when the node feeds it.
    fn publish_results(&self, node: &str, pts: i64, body: Map<String, Value>) {
        // The event a trigger of the gate stands for: the first one published.
        let mut published = None;
        for hub in self.hubs.iter().filter(|h| h.inputs.iter().any(|n| n == node)) {
            let mut b = body.clone();
            b.insert("timestamp".into(), json!(pts));
            b.insert("hubOutputName".into(), json!(hub.output_name));
            let id = self.events.publish_at(self.subject(node), EventType::Inference, Value::Object(b), Time90k(pts));
            published.get_or_insert(id);
        }
        if let Some(r) = &self.record
            && r.nodes.iter().any(|n| n == node)
            && let Some(inferences) = body.get("inferences").filter(|i| i.as_array().is_some_and(|a| !a.is_empty()))
        {
            r.log.lock().unwrap_or_else(|p| p.into_inner()).push(Time90k(pts), inferences.to_string());
        }
        if let Some(g) = &self.gate
            && g.nodes.iter().any(|n| n == node)
        {
            let id = published.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let t = Trigger { media: Time90k(pts), arrival: Time90k::now(), id };
            if !g.tx.send(t) {
                tracing::debug!(pipeline = %self.pipeline, node, "the gate's trigger queue is full");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames after lost packets, and a new session's first frames, refer to pictures the
    /// decoder never got: they are dropped up to the next keyframe.
    #[test]
    fn loss_and_new_sessions_wait_for_a_keyframe() {
        let metrics = Arc::new(PipelineMetrics::default());
        let outlets = Outlets { hubs: Vec::new(), gate: None, record: None };
        let bus = Arc::new(Bus::new("/openva/test"));
        let a = Analysis::start("p", "src", Vec::new(), outlets, bus, metrics.clone()).unwrap();
        let au = |key: bool, loss: u16| AccessUnit {
            media_90k: 0,
            cts: 0,
            received: Time90k(0),
            key,
            data: vec![0, 0, 0, 1, if key { 0x65 } else { 0x41 }],
            params: None,
            clock_stepped: false,
            loss,
        };
        let offers = [
            // (frame, dropped so far after it)
            (au(false, 0), 1), // before the first keyframe
            (au(true, 0), 1),
            (au(false, 0), 1),
            (au(false, 2), 2), // packets lost before it
            (au(false, 0), 3), // still refers to the damaged one
            (au(true, 1), 3),  // a keyframe after loss is whole
            (au(false, 0), 3),
        ];
        for (i, (frame, dropped)) in offers.iter().enumerate() {
            a.offer(frame);
            assert_eq!(metrics.dropped(), *dropped, "after frame {i}");
        }
        a.session_started();
        a.offer(&au(false, 0));
        assert_eq!(metrics.dropped(), 4, "a new session's frame before its keyframe");
        a.offer(&au(true, 0));
        a.offer(&au(false, 0));
        assert_eq!(metrics.dropped(), 4);
    }

    /// 25 fps in 90 kHz ticks.
    const FRAME: i64 = 3600;

    /// Feeds `seconds` of a 25 fps stream with a keyframe every `gop` frames (`non_ref(i)`:
    /// frame `i` is a non-reference frame) and returns (frames decoded, times processed).
    fn simulate(
        schedule: &mut Schedule,
        seconds: i64,
        gop: impl Fn(i64) -> bool,
        non_ref: impl Fn(i64) -> bool,
    ) -> (usize, Vec<i64>) {
        let (mut decoded, mut taken) = (0, Vec::new());
        let mut key_seen = false;
        for i in 0..seconds * 25 {
            let (pts, key) = (i * FRAME, gop(i));
            let d = schedule.decide(pts, key, non_ref(i));
            if d != Decode::Yes {
                continue;
            }
            decoded += 1;
            key_seen |= key;
            assert!(key_seen, "decoded a frame before the first keyframe");
            if schedule.wants(0, pts) {
                schedule.took(0, pts);
                taken.push(pts);
            }
        }
        (decoded, taken)
    }

    #[test]
    fn every_frame_without_a_rate() {
        let mut s = Schedule::new(vec![None], vec![0]);
        let (decoded, taken) = simulate(&mut s, 4, |i| i % 25 == 0, |_| false);
        assert_eq!((decoded, taken.len()), (100, 100));
    }

    #[test]
    fn one_per_second_decodes_keyframes_only_once_the_gop_is_known() {
        let mut s = Schedule::new(vec![Some(90_000)], vec![0]);
        let (decoded, taken) = simulate(&mut s, 20, |i| i % 25 == 0, |_| false);
        // One frame per second, on the second.
        assert_eq!(taken.len(), 20);
        assert!(taken.windows(2).all(|w| w[1] - w[0] == 90_000), "{taken:?}");
        // The first two seconds decode everything (GOP not yet measured twice); then the
        // keyframes alone: 50 + 18.
        assert_eq!(decoded, 68);
    }

    #[test]
    fn non_reference_frames_are_skipped_between_samples() {
        // 5 fps from 25 fps, every other frame non-reference, a keyframe every 2 s.
        let mut s = Schedule::new(vec![Some(18_000)], vec![0]);
        let (decoded, taken) = simulate(&mut s, 10, |i| i % 50 == 0, |i| i % 2 == 1);
        assert_eq!(taken.len(), 50);
        // The reference frames (125) plus the non-reference ones taken as samples — less the
        // reference frame or two just before a keyframe once the GOP is known, when the
        // keyframe itself is the next sample (3 keyframes after the GOP is measured).
        let taken_non_ref = taken.iter().filter(|&&t| (t / FRAME) % 2 == 1).count();
        assert_eq!(taken_non_ref, 25);
        assert!((125 + taken_non_ref - 3 * 2..=125 + taken_non_ref).contains(&decoded), "{decoded}");
    }

    #[test]
    fn a_variable_gop_is_never_skipped_over() {
        // Keyframes at irregular spacing: the schedule cannot predict the next one.
        let keys = [0i64, 25, 35, 80, 90, 150, 160, 230];
        let mut s = Schedule::new(vec![Some(90_000)], vec![0]);
        let (decoded, taken) = simulate(&mut s, 10, |i| keys.contains(&i), |_| false);
        assert_eq!(decoded, 250);
        assert_eq!(taken.len(), 10);
    }

    #[test]
    fn a_processor_without_rate_keeps_decoding_on() {
        let mut s = Schedule::new(vec![Some(90_000), None], vec![0, 1]);
        let (decoded, _) = simulate(&mut s, 6, |i| i % 25 == 0, |_| false);
        assert_eq!(decoded, 150);
    }

    #[test]
    fn a_late_start_does_not_burst() {
        let mut s = Schedule::new(vec![Some(9_000)], vec![0]); // 10 fps
        s.took(0, 0);
        // The next frame comes 1 s later (a camera stall): it is taken, and the one after is
        // due 100 ms after it, not immediately.
        assert!(s.wants(0, 90_000));
        s.took(0, 90_000);
        assert!(!s.wants(0, 90_000 + FRAME));
        assert!(s.wants(0, 90_000 + 9_000));
    }
}
