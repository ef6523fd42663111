//! A pipeline's events: what its camera, recorder and archive report, as AVA's events and
//! metrics, with secrets scrubbed.

use super::*;

/// The archive's notices as events: disk-space eviction across videos is announced before it
/// deletes anything, and reported after (subject `/videos`: it is the archive's, not one
/// pipeline's).
pub(super) fn publish_notice(events: &Bus, n: &crate::archive::Notice) {
    use crate::archive::Notice;
    const MIB: f64 = 1024.0 * 1024.0;
    let body = match n {
        Notice::Evicting { free, floor } => json!({
            "message": format!(
                "the disk is nearly full ({:.1} MiB free, below the floor of {:.1} MiB): deleting the oldest \
                 recordings across videos",
                *free as f64 / MIB,
                *floor as f64 / MIB
            ),
            "freeBytes": free,
            "floorBytes": floor,
        }),
        Notice::NothingToEvict { free } => json!({
            "message": format!(
                "the disk is nearly full ({:.1} MiB free) and no closed recording is left to delete: recording \
                 stops when it is full, and resumes by itself when space returns",
                *free as f64 / MIB
            ),
            "freeBytes": free,
        }),
        Notice::Evicted { deleted } => {
            let per: serde_json::Map<String, Value> =
                deleted.iter().map(|(v, (n, b))| (v.clone(), json!({"segments": n, "bytes": b}))).collect();
            let bytes: u64 = deleted.values().map(|(_, b)| b).sum();
            json!({
                "message": format!("deleted {:.1} MiB of the oldest recordings to keep the disk from filling", bytes as f64 / MIB),
                "deleted": per,
            })
        }
    };
    events.publish("/videos".into(), EventType::StorageError, body);
}

/// Turns recorder reports into AVA events and metrics.
pub(in crate::pipeline) struct EventObserver {
    pub(super) events: Arc<Bus>,
    pub(super) metrics: Arc<PipelineMetrics>,
    pub(super) source_subject: String,
    /// The video sink's subject and video, when the pipeline records.
    pub(super) sink: Option<(String, String)>,
    pub(super) target: String,
    pub(super) told_available: AtomicBool,
    /// Values masked out of every message.
    pub(super) secrets: Vec<String>,
    /// The analysis branch, when the pipeline has processors.
    pub(in crate::pipeline) analysis: Mutex<Option<analysis::Analysis>>,
    /// The stream's sample entry (its parameter sets, sent by the camera only when its session
    /// starts): a branch added by a reconfiguration in place starts decoding with it.
    pub(in crate::pipeline) stream_entry: Mutex<Option<Vec<u8>>>,
    /// The camera's video cannot be decoded here (H.265 or B-frames on a host built without
    /// libavcodec, an absurd picture size): processors get nothing.
    pub(in crate::pipeline) pixels_unavailable: AtomicBool,
    /// The unsupported-audio warning was published.
    pub(in crate::pipeline) told_audio_skipped: AtomicBool,
}

impl EventObserver {
    /// The stream's pictures cannot be decoded here (`what`: why): processors get no frames,
    /// and one event says so.
    pub(super) fn no_pixels(&self, what: &str) {
        if self.pixels_unavailable.swap(true, Ordering::Relaxed) {
            return;
        }
        let has_processors = self.analysis.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if has_processors {
            self.media_format_error(format!(
                "the camera sends pictures this host cannot decode: {what}; processor nodes receive no frames \
                 (recording is not affected)"
            ));
        }
    }

    /// A `MediaFormatError` about the camera's stream.
    pub(super) fn media_format_error(&self, message: String) {
        self.events.publish(
            self.source_subject.clone(),
            EventType::MediaFormatError,
            json!({"target": self.target, "protocol": "rtsp", "message": message}),
        );
    }

    pub(super) fn storage_error(&self, message: &str) {
        let subject = self.sink.as_ref().map_or_else(|| self.source_subject.clone(), |(s, _)| s.clone());
        self.events.publish(subject, EventType::StorageError, json!({"message": message}));
    }

    /// One `StorageError` per segment whose media recovery found lost (a power loss): the
    /// file, the seconds lost and why.
    pub(super) fn media_lost(&self, losses: &[crate::archive::Loss]) {
        let subject = self.sink.as_ref().map_or_else(|| self.source_subject.clone(), |(s, _)| s.clone());
        for l in losses {
            self.events.publish(
                subject.clone(),
                EventType::StorageError,
                json!({
                    "message": format!("recorded media was lost before it reached the disk: {}", l.reason),
                    "file": l.file,
                    "secondsLost": (l.seconds * 1000.0).round() / 1000.0,
                }),
            );
        }
    }

    pub(super) fn scrub(&self, s: &str) -> String {
        scrub(&self.secrets, s)
    }
}

/// `s` with every secret value replaced by a mask.
pub(super) fn scrub(secrets: &[String], s: &str) -> String {
    let mut out = s.to_owned();
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), topology::SECRET_MASK);
        }
    }
    out
}

impl Observer for EventObserver {
    fn connected(&self, sdp: &str) {
        self.metrics.set_connected(true);
        if let Some(a) = self.analysis.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            a.session_started();
        }
        self.events.publish(
            self.source_subject.clone(),
            EventType::MediaSessionEstablished,
            json!({"sdp": self.scrub(&format!("SDP:\n{sdp}"))}),
        );
    }

    fn connect_failed(&self, e: &IngestError) {
        self.metrics.set_connected(false);
        let message = self.scrub(&e.to_string());
        let (kind, body) = match e {
            IngestError::Unauthorized { .. } => (
                EventType::AuthenticationError,
                json!({"code": "401", "target": self.target, "protocol": "rtsp", "message": message}),
            ),
            IngestError::NoVideo { .. } | IngestError::BadStream { .. } => {
                (EventType::MediaFormatError, json!({"target": self.target, "protocol": "rtsp", "message": message}))
            }
            _ => match e.status() {
                Some(code) => (
                    EventType::ProtocolError,
                    json!({"code": code.to_string(), "target": self.target, "protocol": "rtsp", "message": message}),
                ),
                None => {
                    (EventType::NetworkError, json!({"target": self.target, "protocol": "rtsp", "message": message}))
                }
            },
        };
        self.events.publish(self.source_subject.clone(), kind, body);
    }

    fn dropped(&self, why: &str) {
        self.metrics.set_connected(false);
        self.metrics.count_reconnect();
        self.events.publish(
            self.source_subject.clone(),
            EventType::NetworkError,
            json!({"target": self.target, "protocol": "rtsp", "message": self.scrub(why)}),
        );
    }

    fn frame(&self, au: &AccessUnit) {
        self.metrics.count_frame(au.data.len());
        if let Some(p) = &au.params {
            *self.stream_entry.lock().unwrap_or_else(|p| p.into_inner()) = Some(p.sample_entry.clone());
            if let Err(e) = crate::codec::check_decodable(&p.sample_entry, p.reorder_depth.is_some_and(|d| d > 0)) {
                self.no_pixels(&e.to_string());
            }
        }
        if au.cts != 0 && !crate::codec::HAVE_LIBAV {
            // B-frames the SPS did not announce. openh264 decodes them wrongly
            // (research/test-infra.md): processors would see garbage, so they see nothing and
            // say why.
            let entry = self.stream_entry.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(Err(e)) = entry.as_deref().map(|e| crate::codec::check_decodable(e, true)) {
                drop(entry);
                self.no_pixels(&e.to_string());
            }
        }
        if self.pixels_unavailable.load(Ordering::Relaxed) {
            return;
        }
        if let Some(a) = self.analysis.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            a.offer(au);
        }
    }

    fn audio_skipped(&self, what: &str) {
        if !self.told_audio_skipped.swap(true, Ordering::Relaxed) {
            self.media_format_error(format!(
                "the camera's {what} is not recorded (openva records AAC and G.711 audio); video is recorded"
            ));
        }
    }

    fn stored(&self, video: u64, audio: u64) {
        self.metrics.count_stored(video, audio);
    }

    fn available(&self) {
        if let Some((subject, video)) = &self.sink
            && !self.told_available.swap(true, Ordering::Relaxed)
        {
            self.events.publish(
                subject.clone(),
                EventType::RecordingAvailable,
                json!({"outputType": "videoName", "outputLocation": video}),
            );
        }
    }

    fn run_ended(&self, stats: &RunStats) {
        self.metrics.count_dropped(stats.skipped);
        self.metrics.count_audio_dropped(stats.audio_dropped);
    }
}
