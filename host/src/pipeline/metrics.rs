//! Counters of the live pipelines, rendered as Prometheus text under AVA's metric names
//! (`va_*`) plus openva's own (`openva_*`). Counters are atomics updated on the pipelines'
//! threads; rendering takes a snapshot.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One pipeline's counters.
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    source_node: String,
    received_bytes: AtomicU64,
    frames: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    connected: AtomicBool,
    decoded: AtomicU64,
    not_decoded: AtomicU64,
    decode_errors: AtomicU64,
    stored: AtomicU64,
    audio_stored: AtomicU64,
    audio_dropped: AtomicU64,
    gate_late: AtomicU64,
    gate_dropped: AtomicU64,
    preroll_bytes: AtomicU64,
    extension_requests: AtomicU64,
    extension_request_micros: AtomicU64,
    extension_failures: AtomicU64,
    extension_skipped: AtomicU64,
}

impl PipelineMetrics {
    /// A frame of `bytes` arrived from the camera.
    pub fn count_frame(&self, bytes: usize) {
        self.received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames that could not be recorded (before the first keyframe of a session).
    pub fn count_dropped(&self, frames: u64) {
        self.dropped.fetch_add(frames, Ordering::Relaxed);
    }

    /// Frames written to the archive.
    pub fn count_stored(&self, video: u64, audio: u64) {
        self.stored.fetch_add(video, Ordering::Relaxed);
        self.audio_stored.fetch_add(audio, Ordering::Relaxed);
    }

    /// Frames dropped so far (for tests).
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Audio frames received but not recorded (before the first keyframe of a session, or after
    /// its last video frame).
    pub fn count_audio_dropped(&self, frames: u64) {
        self.audio_dropped.fetch_add(frames, Ordering::Relaxed);
    }

    /// The camera dropped and the source reconnects.
    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The analysis branch decoded a frame.
    pub fn count_decoded(&self) {
        self.decoded.fetch_add(1, Ordering::Relaxed);
    }

    /// The analysis branch skipped decoding a frame no processor needed.
    pub fn count_not_decoded(&self) {
        self.not_decoded.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame failed to decode (the decoder then skips to the next keyframe).
    pub fn count_decode_error(&self) {
        self.decode_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A trigger reached the signal gate after its evaluation window, from before the opening's
    /// earliest trigger (AVA's late arrival): dropped.
    pub fn count_late_trigger(&self) {
        self.gate_late.fetch_add(1, Ordering::Relaxed);
    }

    /// A trigger found the gate's queue full: dropped.
    pub fn count_dropped_trigger(&self) {
        self.gate_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An extension sent a frame to its server and had its answer after `took`; `failed`: the
    /// request failed (no answer, an error status, a reply outside the contract).
    pub fn count_extension_request(&self, failed: bool, took: std::time::Duration) {
        self.extension_requests.fetch_add(1, Ordering::Relaxed);
        self.extension_request_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if failed {
            self.extension_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An extension skipped a sample: a request was still out, or it paused after a failure,
    /// or frames waiting behind a request overflowed (AVA's `va_data_dropped_total`, kind
    /// `sample`).
    pub fn count_extension_skipped(&self) {
        self.extension_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes the gate's pre-roll ring holds now.
    pub fn set_preroll_bytes(&self, bytes: usize) {
        self.preroll_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// Whether a session is playing now.
    pub fn set_connected(&self, yes: bool) {
        self.connected.store(yes, Ordering::Relaxed);
    }
}

/// All pipelines' counters. Counters survive deactivation (Prometheus counters must not go
/// back) and are dropped when the pipeline is deleted.
#[derive(Debug, Default)]
pub struct Metrics {
    pipelines: Mutex<BTreeMap<String, Arc<PipelineMetrics>>>,
}

impl Metrics {
    /// The counters of a pipeline, created on first use.
    pub fn pipeline(&self, name: &str, source_node: &str) -> Arc<PipelineMetrics> {
        let mut m = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_owned())
            .or_insert_with(|| Arc::new(PipelineMetrics { source_node: source_node.to_owned(), ..Default::default() }))
            .clone()
    }

    /// Forgets a deleted pipeline.
    pub fn remove(&self, name: &str) {
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// Prometheus text. `active` lists (pipeline, topology) of the active pipelines. Names are
    /// validated (letters, digits, dashes) so they need no escaping in labels.
    pub fn render(&self, active: &[(String, String)]) -> String {
        let mut out = String::new();
        let mut per_topology: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, t) in active {
            *per_topology.entry(t.as_str()).or_default() += 1;
        }
        let _ = writeln!(out, "# HELP va_active_live_pipelines Live pipelines in the active state.");
        let _ = writeln!(out, "# TYPE va_active_live_pipelines gauge");
        if per_topology.is_empty() {
            let _ = writeln!(out, "va_active_live_pipelines 0");
        }
        for (t, n) in &per_topology {
            let _ = writeln!(out, "va_active_live_pipelines{{pipeline_topology=\"{t}\"}} {n}");
        }
        let snapshot: Vec<(String, Arc<PipelineMetrics>)> = self
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        type Get = fn(&PipelineMetrics) -> u64;
        let families: [(&str, &str, &str, Get); 17] = [
            ("va_received_bytes_total", "counter", "Bytes received from RTSP sources.", |m| {
                m.received_bytes.load(Ordering::Relaxed)
            }),
            ("va_data_dropped_total", "counter", "Frames received but not recorded.", |m| {
                m.dropped.load(Ordering::Relaxed)
            }),
            ("openva_frames_received_total", "counter", "Video frames received from RTSP sources.", |m| {
                m.frames.load(Ordering::Relaxed)
            }),
            ("openva_frames_stored_total", "counter", "Video frames written to the archive.", |m| {
                m.stored.load(Ordering::Relaxed)
            }),
            ("openva_audio_frames_stored_total", "counter", "Audio frames written to the archive.", |m| {
                m.audio_stored.load(Ordering::Relaxed)
            }),
            (
                "openva_audio_frames_dropped_total",
                "counter",
                "Audio frames received but not recorded (before a session's first keyframe or after its last frame).",
                |m| m.audio_dropped.load(Ordering::Relaxed),
            ),
            ("openva_source_reconnects_total", "counter", "Times an RTSP source lost its camera.", |m| {
                m.reconnects.load(Ordering::Relaxed)
            }),
            ("openva_source_connected", "gauge", "1 while the RTSP source has a playing session.", |m| {
                u64::from(m.connected.load(Ordering::Relaxed))
            }),
            ("openva_analysis_frames_decoded_total", "counter", "Frames decoded for processors.", |m| {
                m.decoded.load(Ordering::Relaxed)
            }),
            (
                "openva_analysis_frames_not_decoded_total",
                "counter",
                "Frames not decoded because no processor needed them (sampling rates).",
                |m| m.not_decoded.load(Ordering::Relaxed),
            ),
            (
                "openva_analysis_decode_errors_total",
                "counter",
                "Frames that failed to decode for processors (the frames up to the next keyframe are skipped).",
                |m| m.decode_errors.load(Ordering::Relaxed),
            ),
            (
                "openva_gate_triggers_late_total",
                "counter",
                "Signal gate triggers dropped as late arrivals (from before the opening's earliest trigger).",
                |m| m.gate_late.load(Ordering::Relaxed),
            ),
            (
                "openva_gate_triggers_dropped_total",
                "counter",
                "Signal gate triggers dropped because the gate's queue was full (a flood).",
                |m| m.gate_dropped.load(Ordering::Relaxed),
            ),
            ("openva_gate_preroll_bytes", "gauge", "Media the signal gate's pre-roll ring holds, bytes.", |m| {
                m.preroll_bytes.load(Ordering::Relaxed)
            }),
            ("openva_extension_requests_total", "counter", "Frames sent to extensions' inference servers.", |m| {
                m.extension_requests.load(Ordering::Relaxed)
            }),
            (
                "openva_extension_request_microseconds_total",
                "counter",
                "Time extensions' requests took, from preparing a frame (scaling, encoding) to its answer read (microseconds).",
                |m| m.extension_request_micros.load(Ordering::Relaxed),
            ),
            (
                "openva_extension_failures_total",
                "counter",
                "Extension requests that failed (no answer, an error status, a reply outside the contract).",
                |m| m.extension_failures.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (p, m) in &snapshot {
                let extra = if name == "va_data_dropped_total" { ",data_kind=\"video\"" } else { "" };
                let _ = writeln!(out, "{name}{{live_pipeline=\"{p}\",node=\"{}\"{extra}}} {}", m.source_node, get(m));
                if name == "va_data_dropped_total" {
                    let skipped = m.extension_skipped.load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "{name}{{live_pipeline=\"{p}\",node=\"{}\",data_kind=\"sample\"}} {skipped}",
                        m.source_node
                    );
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        let p = m.pipeline("p1", "rtspSource");
        p.count_frame(100);
        p.count_frame(50);
        let text = m.render(&[("p1".into(), "T".into())]);
        assert!(text.contains("va_active_live_pipelines{pipeline_topology=\"T\"} 1"), "{text}");
        assert!(text.contains("va_received_bytes_total{live_pipeline=\"p1\",node=\"rtspSource\"} 150"), "{text}");
        assert!(text.contains("openva_frames_received_total{live_pipeline=\"p1\",node=\"rtspSource\"} 2"));
    }
}
