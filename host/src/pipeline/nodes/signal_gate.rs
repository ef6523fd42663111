//! `SignalGateProcessor`: when the gate opens and closes, on media time.
//!
//! AVA's rules, as `docs/evr.md` states them with the worked examples this module's tests
//! replay: the first trigger starts an evaluation window (wall time) in which earlier triggers
//! still count; the gate then opens at the earliest trigger plus the signal offset, and stays
//! open until media time passes the latest trigger plus the minimum activation time, never
//! later than the earliest trigger plus the maximum. A trigger from before the earliest one that
//! arrives after the window is a late arrival: dropped and counted. A new clip never starts
//! before the previous one ended, so media is never given to a sink twice.
//!
//! The gate only decides; the runtime keeps the media (a pre-roll ring) and feeds the sink.

use super::{LiveParts, PipelineError, ProcessorPlan, module_error};
use crate::pipeline::live::GatePlan;
use crate::time::Time90k;
use crate::topology::{NodeInput, SignalGateConfig};

pub(super) fn add(
    parts: &mut LiveParts,
    node: String,
    inputs: Vec<NodeInput>,
    c: SignalGateConfig,
) -> Result<(), PipelineError> {
    if parts.gate.is_some() {
        return Err(module_error(format!("node '{node}': this host runs one signal gate per pipeline")));
    }
    parts.gate = Some((node, inputs, c));
    Ok(())
}

/// The gate's plan once every node is known: its media comes from the camera, its triggers
/// from processors (their inferences) and hub message sources (their messages).
pub(super) fn plan(
    node: String,
    inputs: &[NodeInput],
    config: SignalGateConfig,
    source_node: &str,
    processors: &[ProcessorPlan],
    hub_sources: &[(String, String)],
) -> Result<GatePlan, PipelineError> {
    let mut plan = GatePlan { node, config, processors: Vec::new(), inputs: Vec::new() };
    let mut media = false;
    for i in inputs {
        if i.node_name == source_node {
            if !i.takes("video") {
                return Err(module_error(format!(
                    "node '{}': its input from '{source_node}' must select video (the gate lets video clips through)",
                    plan.node
                )));
            }
            media = true;
        } else if processors.iter().any(|p| p.node == i.node_name) {
            plan.processors.push(i.node_name.clone());
        } else if let Some((_, name)) = hub_sources.iter().find(|(n, _)| *n == i.node_name) {
            plan.inputs.push(name.clone());
        } else {
            return Err(module_error(format!(
                "node '{}': input '{}' neither carries the camera's video nor signals (a processor or an \
                 IotHubMessageSource)",
                plan.node, i.node_name
            )));
        }
    }
    if !media {
        return Err(module_error(format!(
            "node '{}': the gate needs the camera's video as an input ('{source_node}')",
            plan.node
        )));
    }
    if plan.processors.is_empty() && plan.inputs.is_empty() {
        return Err(module_error(format!(
            "node '{}': nothing can open the gate; add a processor or an IotHubMessageSource as an input",
            plan.node
        )));
    }
    Ok(plan)
}

/// Something that opens or extends the gate: a motion event, a non-empty inference result, a
/// hub message.
#[derive(Debug, Clone)]
pub(crate) struct Trigger {
    /// When it happened, in media time (a frame's time; a hub message's `eventTime`).
    pub(crate) media: Time90k,
    /// When it reached the gate (wall clock).
    pub(crate) arrival: Time90k,
    /// Its event's `messageId`: the `correlationId` of everything the opening causes.
    pub(crate) id: String,
}

/// What the gate tells its sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GateEvent {
    /// Media from `start` on goes to the sink (until `Closed`).
    Opened {
        /// The clip's start (the sink starts at the keyframe at or before it).
        start: Time90k,
        /// The `messageId` of the trigger that opened the gate.
        correlation: String,
    },
    /// The clip is `[start, end]`; nothing more goes to the sink.
    Closed {
        /// As opened.
        start: Time90k,
        /// Where media stops.
        end: Time90k,
        /// As opened.
        correlation: String,
    },
}

/// What became of a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// It opened, or may still open, extend or shape the gate.
    Yes,
    /// A late arrival: dropped.
    Late,
}

#[derive(Debug)]
enum State {
    Closed,
    /// Triggers are gathered until `decide_at` (wall time).
    Evaluating {
        decide_at: Time90k,
        /// The earliest trigger so far (media time).
        earliest: Time90k,
        /// The latest trigger plus the minimum activation time.
        latest_end: Time90k,
        correlation: String,
    },
    Open {
        earliest: Time90k,
        start: Time90k,
        end: Time90k,
        correlation: String,
    },
}

/// One gate's state.
#[derive(Debug)]
pub(crate) struct Gate {
    cfg: SignalGateConfig,
    state: State,
    /// Where the previous clip ended.
    previous_end: Option<Time90k>,
    /// Decisions not yet taken by the caller.
    events: Vec<GateEvent>,
    /// Late arrivals dropped so far.
    pub(crate) late: u64,
}

impl Gate {
    pub(crate) fn new(cfg: SignalGateConfig) -> Self {
        Gate { cfg, state: State::Closed, previous_end: None, events: Vec::new(), late: 0 }
    }

    /// A trigger reaches the gate. Call [`Gate::advance`] with its arrival time first, so an
    /// evaluation window that has passed is decided before it.
    pub(crate) fn trigger(&mut self, t: Trigger) -> Counted {
        let m = self.cfg.minimum_activation;
        match &mut self.state {
            State::Closed => {
                self.state = State::Evaluating {
                    decide_at: t.arrival + self.cfg.evaluation_window,
                    earliest: t.media,
                    latest_end: t.media + m,
                    correlation: t.id,
                };
            }
            State::Evaluating { earliest, latest_end, .. } => {
                *earliest = (*earliest).min(t.media);
                *latest_end = (*latest_end).max(t.media + m);
            }
            State::Open { earliest, end, .. } => {
                if t.media < *earliest {
                    self.late += 1;
                    return Counted::Late;
                }
                *end = (*end).max(t.media + m).min(*earliest + self.cfg.maximum_activation);
            }
        }
        Counted::Yes
    }

    /// Media has reached `media` and the wall clock `wall`: an evaluation window that has
    /// passed opens the gate; media past the gate's end closes it.
    pub(crate) fn advance(&mut self, media: Time90k, wall: Time90k) {
        if let State::Evaluating { decide_at, earliest, latest_end, correlation } = &mut self.state
            && wall >= *decide_at
        {
            let (earliest, correlation) = (*earliest, std::mem::take(correlation));
            let end = (*latest_end).min(earliest + self.cfg.maximum_activation);
            let start = (earliest + self.cfg.signal_offset).max(self.previous_end.unwrap_or(Time90k(i64::MIN)));
            self.events.push(GateEvent::Opened { start, correlation: correlation.clone() });
            self.state = State::Open { earliest, start, end, correlation };
        }
        if let State::Open { start, end, correlation, .. } = &mut self.state
            && media > *end
        {
            let (start, end) = (*start, *end);
            self.events.push(GateEvent::Closed { start, end, correlation: std::mem::take(correlation) });
            self.previous_end = Some(end);
            self.state = State::Closed;
        }
    }

    /// The media stopped at `media` (the camera went away, the pipeline stops): an open gate
    /// closes there. A trigger being evaluated still opens it when media comes back.
    pub(crate) fn cut(&mut self, media: Time90k) {
        if let State::Open { start, end, correlation, .. } = &mut self.state {
            let (start, end) = (*start, (*end).min(media));
            self.events.push(GateEvent::Closed { start, end, correlation: std::mem::take(correlation) });
            self.previous_end = Some(end);
            self.state = State::Closed;
        }
    }

    /// The decisions taken since the last call, in order.
    pub(crate) fn take_events(&mut self) -> Vec<GateEvent> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{Duration90k, TICKS_PER_SEC};

    fn secs(s: f64) -> Time90k {
        Time90k((s * TICKS_PER_SEC as f64).round() as i64)
    }

    fn cfg(v: f64, o: f64, m: f64, x: f64) -> SignalGateConfig {
        let d = |s: f64| Duration90k((s * TICKS_PER_SEC as f64).round() as i64);
        SignalGateConfig {
            evaluation_window: d(v),
            signal_offset: d(o),
            minimum_activation: d(m),
            maximum_activation: d(x),
        }
    }

    /// Plays media from 0 to 400 s (25 frames a second, wall clock = media clock), delivering
    /// each trigger `(media time, arrival time)` when its arrival comes; returns the clips as
    /// `(start, end)` in seconds and the late arrivals.
    fn run(c: SignalGateConfig, triggers: &[(f64, f64)]) -> (Vec<(f64, f64)>, u64) {
        let mut g = Gate::new(c);
        let mut pending: Vec<(usize, (f64, f64))> = triggers.iter().copied().enumerate().collect();
        pending.sort_by(|a, b| a.1.1.total_cmp(&b.1.1));
        let mut pending = pending.into_iter().peekable();
        let mut clips = Vec::new();
        let mut opened: Option<(Time90k, String)> = None;
        for frame in 0..=10_000 {
            let now = secs(f64::from(frame) * 0.04);
            while let Some(&(i, (media, arrival))) = pending.peek() {
                if secs(arrival) > now {
                    break;
                }
                g.advance(now, secs(arrival));
                g.trigger(Trigger { media: secs(media), arrival: secs(arrival), id: format!("m{i}") });
                pending.next();
            }
            g.advance(now, now);
            for e in g.take_events() {
                match e {
                    GateEvent::Opened { start, correlation } => opened = Some((start, correlation)),
                    GateEvent::Closed { start, end, correlation } => {
                        let (s, c) = opened.take().expect("closed before opened");
                        assert_eq!((s, &c), (start, &correlation), "one opening per clip, one correlation");
                        let f = |t: Time90k| (t.0 as f64 / TICKS_PER_SEC as f64 * 100.0).round() / 100.0;
                        clips.push((f(start), f(end)));
                    }
                }
            }
        }
        (clips, g.late)
    }

    fn at_once(events: &[f64]) -> Vec<(f64, f64)> {
        events.iter().map(|&e| (e, e)).collect()
    }

    /// AVA's documented configuration: `PT1S, -PT5S, PT20S, PT40S`.
    fn doc() -> SignalGateConfig {
        cfg(1.0, -5.0, 20.0, 40.0)
    }

    #[test]
    fn a_one_event() {
        assert_eq!(run(doc(), &at_once(&[100.0])), (vec![(95.0, 120.0)], 0));
    }

    #[test]
    fn b_two_events() {
        assert_eq!(run(doc(), &at_once(&[100.0, 105.0])), (vec![(95.0, 125.0)], 0));
    }

    #[test]
    fn c_events_every_five_seconds_are_capped_at_the_maximum() {
        let events: Vec<f64> = (0..=20).map(|i| 100.0 + 5.0 * f64::from(i)).collect();
        assert_eq!(run(doc(), &at_once(&events)).0, vec![(95.0, 140.0), (140.0, 185.0), (185.0, 220.0)]);
    }

    #[test]
    fn d_an_earlier_event_inside_the_window_moves_the_start() {
        assert_eq!(run(doc(), &[(100.0, 100.0), (99.4, 100.6)]), (vec![(94.4, 120.0)], 0));
    }

    #[test]
    fn e_an_earlier_event_after_the_window_is_a_late_arrival() {
        assert_eq!(run(doc(), &[(100.0, 100.0), (99.4, 101.3)]), (vec![(95.0, 120.0)], 1));
    }

    #[test]
    fn f_minimum_equal_to_maximum_cannot_be_extended() {
        let (clips, _) = run(cfg(1.0, 0.0, 30.0, 30.0), &at_once(&[100.0, 110.0, 120.0, 131.0]));
        assert_eq!(clips, vec![(100.0, 130.0), (131.0, 161.0)]);
    }

    #[test]
    fn g_hub_message_video_sink_has_five_seconds_of_pre_roll() {
        assert_eq!(run(cfg(1.0, -5.0, 30.0, 30.0), &at_once(&[100.0])).0, vec![(95.0, 130.0)]);
    }

    #[test]
    fn h_motion_file_sink() {
        let h = || cfg(1.0, 0.0, 10.0, 30.0);
        assert_eq!(run(h(), &at_once(&[100.0])).0, vec![(100.0, 110.0)]);
        assert_eq!(run(h(), &at_once(&[100.0, 105.0])).0, vec![(100.0, 115.0)]);
        // Continuous motion (an event a frame): 30 s, then a new clip at the next event.
        let motion: Vec<f64> = (0..1500).map(|i| 100.0 + f64::from(i) * 0.04).collect();
        let clips = run(h(), &at_once(&motion)).0;
        assert_eq!(clips[0], (100.0, 130.0));
        assert_eq!(clips[1].0, 130.04);
    }

    /// A negative offset never makes a clip start inside the previous one.
    #[test]
    fn clips_never_overlap() {
        let (clips, _) = run(cfg(0.0, -60.0, 10.0, 10.0), &at_once(&[100.0, 111.0, 300.0]));
        assert_eq!(clips, vec![(40.0, 110.0), (110.0, 121.0), (240.0, 310.0)]);
    }
}
