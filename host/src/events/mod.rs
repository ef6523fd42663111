//! Events in AVA's envelope, and the in-process bus every outlet (SSE today, MQTT later) reads.
//!
//! Everyone may publish; this module imports none of the publishers. Each event gets a
//! sequence number so an SSE client that reconnects with `Last-Event-ID` misses nothing that is
//! still in the replay buffer.

use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events kept for replay to late or reconnecting subscribers.
const REPLAY: usize = 1024;

/// Bytes (of subjects and JSON bodies) the replay buffer holds at most: a flood of large
/// events keeps fewer of them, never more memory.
const REPLAY_BYTES: usize = 8 << 20;

/// The event types openva emits, named as AVA named them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// An RTSP source connected; body `{"sdp": "SDP:\n…"}`.
    MediaSessionEstablished,
    /// The camera answered with a protocol error (e.g. 404, 454).
    ProtocolError,
    /// The camera (or an extension's server) refused the credentials (401).
    AuthenticationError,
    /// An extension's server refused this client (403).
    AuthorizationError,
    /// The camera could not be reached or stopped sending.
    NetworkError,
    /// The archive could not be written.
    StorageError,
    /// The camera's media cannot be recorded (no H.264 video).
    MediaFormatError,
    /// A sink started recording.
    RecordingStarted,
    /// A sink's first media is stored and playable.
    RecordingAvailable,
    /// A sink stopped recording.
    RecordingStopped,
    /// Inferences of a processor for one frame (motion, entities…).
    Inference,
    /// A processor (plugin) failed and was stopped, rebuilt or paused.
    RuntimeError,
    /// A pipeline job changed state (openva's event, in AVA's operational family); body
    /// `{"state", "outputVideoName", "error"?}`.
    PipelineJobStateChanged,
    /// A file of the watched topologies folder could not be applied; body `{"file", "line"?,
    /// "column"?, "message"}` (openva's event, in AVA's diagnostics family).
    ConfigurationError,
    /// A plugin file changed: the new version was swapped in, or refused (body says why).
    PluginUpdated,
    /// A video was updated through the API (openva's event, in AVA's operational family); body
    /// `{"videoName", "title"?, "description"?, "archival"?, "mediaInfo"}`: the video's
    /// settings as they now are.
    VideoUpdated,
    /// The remote tier accepts uploads again after a `StorageError` with `errorCode`
    /// `RemoteUploadFailed` (openva's event, in AVA's operational family); body `{"target"}`.
    RemoteUploadResumed,
}

impl EventType {
    /// AVA's full name, e.g. `Microsoft.VideoAnalyzer.Diagnostics.MediaSessionEstablished`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MediaSessionEstablished => "Microsoft.VideoAnalyzer.Diagnostics.MediaSessionEstablished",
            EventType::ProtocolError => "Microsoft.VideoAnalyzer.Diagnostics.ProtocolError",
            EventType::AuthenticationError => "Microsoft.VideoAnalyzer.Diagnostics.AuthenticationError",
            EventType::AuthorizationError => "Microsoft.VideoAnalyzer.Diagnostics.AuthorizationError",
            EventType::NetworkError => "Microsoft.VideoAnalyzer.Diagnostics.NetworkError",
            EventType::StorageError => "Microsoft.VideoAnalyzer.Diagnostics.StorageError",
            EventType::MediaFormatError => "Microsoft.VideoAnalyzer.Diagnostics.MediaFormatError",
            EventType::RecordingStarted => "Microsoft.VideoAnalyzer.Operational.RecordingStarted",
            EventType::RecordingAvailable => "Microsoft.VideoAnalyzer.Operational.RecordingAvailable",
            EventType::RecordingStopped => "Microsoft.VideoAnalyzer.Operational.RecordingStopped",
            EventType::Inference => "Microsoft.VideoAnalyzer.Analytics.Inference",
            EventType::RuntimeError => "Microsoft.VideoAnalyzer.Diagnostics.RuntimeError",
            EventType::PipelineJobStateChanged => "Microsoft.VideoAnalyzer.Operational.PipelineJobStateChanged",
            EventType::ConfigurationError => "Microsoft.VideoAnalyzer.Diagnostics.ConfigurationError",
            EventType::PluginUpdated => "Microsoft.VideoAnalyzer.Operational.PluginUpdated",
            EventType::VideoUpdated => "Microsoft.VideoAnalyzer.Operational.VideoUpdated",
            EventType::RemoteUploadResumed => "Microsoft.VideoAnalyzer.Operational.RemoteUploadResumed",
        }
    }
}

/// One event as published.
#[derive(Clone, Debug)]
pub struct Event {
    /// Sequence number on this bus, from 1.
    pub id: u64,
    /// AVA subject, e.g. `/livePipelines/p1/sources/rtspSource`.
    pub subject: String,
    /// Event type.
    pub event_type: EventType,
    /// ISO 8601 UTC with milliseconds.
    pub event_time: String,
    /// Event data.
    pub body: Value,
    /// AVA's `messageId`: a GUID of its own, for every event.
    pub message_id: String,
    /// AVA's `correlationId`: the `messageId` of the event that caused this one (a signal gate's
    /// trigger, for the recording events of its opening).
    pub correlation_id: Option<String>,
}

impl Event {
    /// The pipeline named by the subject, for `?pipeline=` filters.
    pub fn pipeline(&self) -> Option<&str> {
        self.subject.strip_prefix("/livePipelines/").map(|r| r.split('/').next().unwrap_or(r))
    }
}

/// The bus: a broadcast channel plus a replay buffer.
pub struct Bus {
    topic: String,
    /// When this bus started (ms since the epoch): part of every event id, so a client that
    /// reconnects after a host restart is recognised and gets the new buffer from its start.
    boot: i64,
    tx: broadcast::Sender<Arc<Event>>,
    state: Mutex<BusState>,
}

struct BusState {
    next_id: u64,
    /// The replay buffer, with the size of each event.
    recent: VecDeque<(Arc<Event>, usize)>,
    /// Their sizes' sum.
    bytes: usize,
}

impl Bus {
    /// A bus whose envelopes carry `topic` (AVA: the account; here: this host).
    pub fn new(topic: impl Into<String>) -> Self {
        let (tx, _) = broadcast::channel(REPLAY);
        Bus {
            topic: topic.into(),
            boot: crate::time::Time90k::now().as_millis(),
            tx,
            state: Mutex::new(BusState { next_id: 1, recent: VecDeque::new(), bytes: 0 }),
        }
    }

    /// The id an outlet shows for an event (`BOOT-SEQ`).
    pub fn event_id(&self, e: &Event) -> String {
        format!("{}-{}", self.boot, e.id)
    }

    /// The sequence number after which to replay, given a client's last event id: its own
    /// for an id of this boot, 0 (everything buffered) for one of an earlier boot, `None` for
    /// something that is not an id.
    pub fn replay_after(&self, last_id: &str) -> Option<u64> {
        let (boot, seq) = last_id.trim().split_once('-')?;
        let (boot, seq) = (boot.parse::<i64>().ok()?, seq.parse::<u64>().ok()?);
        Some(if boot == self.boot { seq } else { 0 })
    }

    /// Publishes an event now and returns its `messageId`. Never blocks: slow subscribers lag
    /// and are told so.
    pub fn publish(&self, subject: String, event_type: EventType, body: Value) -> String {
        self.publish_correlated(subject, event_type, body, None)
    }

    /// [`Bus::publish`] for an event about a moment of the media (an inference on a frame):
    /// its `eventTime` is that moment, not the time of publishing (AVA's Analytics events).
    pub fn publish_at(&self, subject: String, event_type: EventType, body: Value, at: crate::time::Time90k) -> String {
        self.publish_full(subject, event_type, body, None, at)
    }

    /// [`Bus::publish`] for an event caused by another one (`correlation`: its `messageId`).
    pub fn publish_correlated(
        &self,
        subject: String,
        event_type: EventType,
        body: Value,
        correlation: Option<String>,
    ) -> String {
        self.publish_full(subject, event_type, body, correlation, crate::time::Time90k::now())
    }

    fn publish_full(
        &self,
        subject: String,
        event_type: EventType,
        body: Value,
        correlation: Option<String>,
        at: crate::time::Time90k,
    ) -> String {
        let event_time = at.to_iso_millis();
        let size = subject.len() + serde_json::to_vec(&body).map_or(0, |v| v.len());
        let message_id = uuid::Uuid::new_v4().to_string();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let e = Arc::new(Event {
            id: st.next_id,
            subject,
            event_type,
            event_time,
            body,
            message_id: message_id.clone(),
            correlation_id: correlation,
        });
        st.next_id += 1;
        while st.recent.len() == REPLAY || (!st.recent.is_empty() && st.bytes + size > REPLAY_BYTES) {
            if let Some((_, n)) = st.recent.pop_front() {
                st.bytes -= n;
            }
        }
        st.recent.push_back((e.clone(), size));
        st.bytes += size;
        tracing::info!(subject = %e.subject, event = e.event_type.as_str(), "event");
        // Sent under the lock so that ids reach every receiver in order.
        let _ = self.tx.send(e);
        message_id
    }

    /// Subscribes; returns the buffered events with an id above `after` (for replay) and the
    /// receiver of everything published from now on. No event falls between the two.
    pub fn subscribe(&self, after: Option<u64>) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let replay = match after {
            Some(a) => st.recent.iter().filter(|(e, _)| e.id > a).map(|(e, _)| e.clone()).collect(),
            None => Vec::new(),
        };
        (replay, rx)
    }

    /// The AVA envelope of an event. AVA's `messageId` and `correlationId` were IoT Hub system
    /// properties; openva puts them with the application properties (a documented addition).
    pub fn envelope(&self, e: &Event) -> Value {
        let mut v = json!({
            "body": e.body,
            "applicationProperties": {
                "topic": self.topic,
                "subject": e.subject,
                "eventType": e.event_type.as_str(),
                "eventTime": e.event_time,
                "dataVersion": "1.0",
                "messageId": e.message_id,
            }
        });
        if let Some(c) = &e.correlation_id {
            v["applicationProperties"]["correlationId"] = json!(c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_buffer_is_bounded_by_bytes_too() {
        let bus = Bus::new("/openva/test");
        let big = "x".repeat(1 << 20);
        for _ in 0..20 {
            bus.publish("/s".into(), EventType::StorageError, json!({"message": big}));
        }
        let (replay, _) = bus.subscribe(Some(0));
        let bytes: usize = replay.iter().map(|e| e.body["message"].as_str().map_or(0, str::len)).sum();
        assert!(bytes <= REPLAY_BYTES && replay.len() >= 7, "{} events, {bytes} bytes", replay.len());
        assert_eq!(replay.last().map(|e| e.id), Some(20), "the newest are kept");
    }

    #[test]
    fn envelope_and_replay() {
        let bus = Bus::new("/openva/test");
        let (_, mut rx) = bus.subscribe(None);
        bus.publish(
            "/livePipelines/p1/sinks/videoSink".into(),
            EventType::RecordingStarted,
            json!({"outputType": "videoName", "outputLocation": "v"}),
        );
        let e = rx.try_recv().expect("event delivered");
        assert_eq!(e.id, 1);
        assert_eq!(e.pipeline(), Some("p1"));
        let env = bus.envelope(&e);
        assert_eq!(env["applicationProperties"]["eventType"], "Microsoft.VideoAnalyzer.Operational.RecordingStarted");
        assert_eq!(env["applicationProperties"]["dataVersion"], "1.0");
        assert_eq!(env["body"]["outputLocation"], "v");
        bus.publish("/livePipelines/p2/sources/s".into(), EventType::NetworkError, json!({}));
        let (replay, _) = bus.subscribe(Some(1));
        assert_eq!(replay.iter().map(|e| e.id).collect::<Vec<_>>(), vec![2]);
        // Ids carry the boot: this boot's id replays after it, an older boot's replays all.
        let id = bus.event_id(&e);
        assert_eq!(bus.replay_after(&id), Some(1));
        assert_eq!(bus.replay_after("1-7"), Some(0));
        assert_eq!(bus.replay_after("garbage"), None);
    }

    /// Every event has a GUID `messageId`; one caused by another carries that one's id as
    /// `correlationId`.
    #[test]
    fn message_and_correlation_ids() {
        let bus = Bus::new("/openva/test");
        let (_, mut rx) = bus.subscribe(None);
        let trigger = bus.publish("/livePipelines/p/processors/motion".into(), EventType::Inference, json!({}));
        let env = bus.envelope(&rx.try_recv().expect("event"));
        assert_eq!(env["applicationProperties"]["messageId"].as_str(), Some(trigger.as_str()));
        assert_eq!(uuid::Uuid::parse_str(&trigger).map(|u| u.get_version_num()).ok(), Some(4));
        assert!(env["applicationProperties"].get("correlationId").is_none());
        let caused = bus.publish_correlated(
            "/livePipelines/p/sinks/fileSink".into(),
            EventType::RecordingStarted,
            json!({}),
            Some(trigger.clone()),
        );
        let env = bus.envelope(&rx.try_recv().expect("event"));
        assert_eq!(env["applicationProperties"]["correlationId"].as_str(), Some(trigger.as_str()));
        assert_eq!(env["applicationProperties"]["messageId"].as_str(), Some(caused.as_str()));
        assert_ne!(caused, trigger);
    }
}
