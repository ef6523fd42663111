//! The MQTT link (`--mqtt URL`): AVA's IoT Hub messages on a broker, the way Frigate users
//! wire their NVR (`docs/mqtt.md`, research/extensions.md §5.3).
//!
//! Out: every event of the bus, as the same envelope SSE sends, to
//! `{prefix}/pipelines/{pipeline}/outputs/{output}` (`{prefix}/module/outputs/{output}` for
//! events of no pipeline), where `output` is the hub sink's `hubOutputName` for inferences and
//! `diagnostics` or `operational` for the rest; each pipeline's state, retained, at
//! `{prefix}/pipelines/{pipeline}/state`; the host's availability, retained, at
//! `{prefix}/available` (`online`; `offline` as the last will; `stopped` on a clean stop).
//! In: messages to `{prefix}/inputs/{hubInputName}` reach the pipelines listening on that input.
//!
//! A broker outage never blocks a pipeline: the bus is read by this link's own task into a
//! bounded queue (oldest dropped first, counted); events are published at QoS 1 and kept until
//! the broker acknowledges them, so what was queued or unacknowledged when the connection
//! dropped is sent again after it returns (at least once).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PublishProperties};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::events::{Event, EventType};
use crate::pipeline::inputs::{HubMessage, MAX_MESSAGE};
use crate::pipeline::live::Runtime;

/// Events waiting for the broker, at most (and at most [`QUEUE_BYTES`]): beyond, the oldest go.
pub const QUEUE_EVENTS: usize = 10_000;
/// Bytes of events waiting for the broker, at most.
pub const QUEUE_BYTES: usize = 16 << 20;
/// Messages handed to the client and not yet acknowledged, at most.
const WINDOW: usize = 32;
/// How often pipeline states are compared with what the broker was told.
const STATE_EVERY: Duration = Duration::from_secs(1);
/// Longest pause between two connection attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    /// The URL or a setting cannot be used.
    #[error("--mqtt: {0}")]
    Config(String),
}

/// How to reach the broker and what to call things there.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    host: String,
    port: u16,
    tls: bool,
    credentials: Option<(String, String)>,
    /// Client id (`--mqtt-client-id`): one per host on a broker.
    pub client_id: String,
    /// Topic prefix (`--mqtt-prefix`).
    pub prefix: String,
    /// CA certificates (PEM) trusted for `mqtts://` besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl MqttConfig {
    /// Reads `mqtt://[user:password@]host[:port]` (or `mqtts://`, TLS, default port 8883).
    pub fn parse(url: &str, client_id: &str, prefix: &str) -> Result<MqttConfig, MqttError> {
        let bad = |m: String| MqttError::Config(m);
        let u = url::Url::parse(url)
            .map_err(|e| bad(format!("'{}' is not a URL: {e}", crate::secrets::redact_url(url))))?;
        let tls = match u.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            s => return Err(bad(format!("scheme '{s}' is not mqtt:// or mqtts://"))),
        };
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or_else(|| bad("the URL has no host".into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = u.port().unwrap_or(if tls { 8883 } else { 1883 });
        if (!u.path().is_empty() && u.path() != "/") || u.query().is_some() || u.fragment().is_some() {
            return Err(bad("the URL takes no path, query or fragment: mqtt://[user:password@]host[:port]".into()));
        }
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = match (u.username(), u.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user), password.map(decode).unwrap_or_default())),
        };
        if client_id.is_empty() || client_id.len() > 64 {
            return Err(bad("the client id must be 1 to 64 characters".into()));
        }
        let topic_safe = |s: &str| !s.is_empty() && !s.contains(['+', '#', '\0']) && !s.starts_with('/');
        if !topic_safe(prefix) || prefix.ends_with('/') {
            return Err(bad(format!(
                "topic prefix '{prefix}' must be a topic without '+', '#' or a leading or trailing '/'"
            )));
        }
        Ok(MqttConfig {
            host,
            port,
            tls,
            credentials,
            client_id: client_id.to_owned(),
            prefix: prefix.to_owned(),
            ca_file: None,
        })
    }

    /// The broker, for messages (no credentials).
    pub fn target(&self) -> String {
        format!("{}://{}:{}", if self.tls { "mqtts" } else { "mqtt" }, self.host, self.port)
    }

    fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut o = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_clean_start(true);
        o.set_max_packet_size(Some((MAX_MESSAGE + 4096) as u32));
        o.set_last_will(LastWill::new(self.topic("available"), "offline", QoS::AtLeastOnce, true, None));
        if let Some((user, password)) = &self.credentials {
            o.set_credentials(user.clone(), password.clone());
        }
        if self.tls {
            o.set_transport(rumqttc::Transport::tls_with_config(self.tls_config()?.into()));
        }
        Ok(o)
    }

    /// TLS with the system's CA certificates and `ca_file`'s.
    fn tls_config(&self) -> Result<rustls::ClientConfig, MqttError> {
        let bad = |m: String| MqttError::Config(m);
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        if let Some(f) = &self.ca_file {
            let pem = std::fs::read(f).map_err(|e| bad(format!("--mqtt-ca {}: {e}", f.display())))?;
            let mut n = 0;
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| bad(format!("--mqtt-ca {}: {e}", f.display())))?;
                roots.add(c).map_err(|e| bad(format!("--mqtt-ca {}: {e}", f.display())))?;
                n += 1;
            }
            if n == 0 {
                return Err(bad(format!("--mqtt-ca {}: no PEM certificate in it", f.display())));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(format!("TLS: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }

    fn topic(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix)
    }

    /// Where an event goes.
    fn event_topic(&self, e: &Event) -> String {
        let output = match e.event_type {
            EventType::Inference => topic_level(e.body.get("hubOutputName").and_then(|v| v.as_str()).unwrap_or("")),
            t if t.as_str().contains(".Diagnostics.") => "diagnostics".to_owned(),
            _ => "operational".to_owned(),
        };
        match e.pipeline() {
            Some(p) => self.topic(&format!("pipelines/{}/outputs/{output}", topic_level(p))),
            None => self.topic(&format!("module/outputs/{output}")),
        }
    }
}

/// `s` as one topic level: `/`, `+`, `#` and NUL become `_` (an output name is free text).
fn topic_level(s: &str) -> String {
    if s.is_empty() {
        return "_".to_owned();
    }
    s.chars().map(|c| if matches!(c, '/' | '+' | '#' | '\0') { '_' } else { c }).collect()
}

/// One message for the broker.
#[derive(Clone, Debug)]
struct Out {
    topic: String,
    payload: Bytes,
    retain: bool,
    properties: PublishProperties,
}

/// Messages waiting for the broker, bounded in count and bytes: beyond, the oldest go
/// (counted in `dropped`).
#[derive(Default)]
struct Queue {
    items: VecDeque<Out>,
    bytes: usize,
    /// Dropped since the last connection's report.
    dropped: u64,
    /// Dropped since the link started.
    total_dropped: u64,
}

impl Queue {
    fn push_back(&mut self, o: Out) {
        self.bytes += o.payload.len();
        self.items.push_back(o);
        while self.items.len() > QUEUE_EVENTS || self.bytes > QUEUE_BYTES {
            match self.items.pop_front() {
                Some(old) => {
                    self.bytes -= old.payload.len();
                    self.dropped += 1;
                    self.total_dropped += 1;
                }
                None => break,
            }
        }
    }

    /// Puts back a message taken or sent before (it keeps its place at the front).
    fn push_front(&mut self, o: Out) {
        self.bytes += o.payload.len();
        self.items.push_front(o);
    }

    fn pop_front(&mut self) -> Option<Out> {
        let o = self.items.pop_front()?;
        self.bytes -= o.payload.len();
        Some(o)
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What the connection task tells the link.
#[derive(Debug)]
enum Net {
    Connected,
    Lost(String),
    /// The client sent a publish with this packet id (in the order they were handed over).
    Sent(u16),
    Acked(u16),
    Message {
        topic: String,
        payload: Bytes,
        event_time: Option<String>,
    },
}

/// What the link has done so far (for `/metrics`): the link's task writes, anyone reads.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages the broker acknowledged.
    pub delivered: AtomicU64,
    /// Events dropped, the oldest first, while the queue was full (a long outage, a flood).
    pub dropped: AtomicU64,
    /// Messages not yet acknowledged (queued, or sent and waiting).
    pub waiting: AtomicU64,
    /// 1 while connected to the broker, else 0.
    pub connected: AtomicU64,
}

/// The running link; [`Link::stop`] says `stopped` and disconnects.
pub struct Link {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// Its counters.
    pub stats: Arc<Stats>,
}

impl Link {
    /// Starts the link (its tasks on the current tokio runtime). An unreachable broker is not
    /// an error: the link reports it and keeps trying.
    pub fn start(config: MqttConfig, runtime: Arc<Runtime>) -> Result<Link, MqttError> {
        let (client, eventloop) = AsyncClient::new(config.options()?, WINDOW * 2);
        let (net_tx, net_rx) = mpsc::channel(1024);
        let poller = tokio::spawn(poll(eventloop, net_tx));
        let (stop_tx, stop_rx) = oneshot::channel();
        // Everything of this boot so far (the pipelines resumed before the link started), then
        // what follows.
        let (replay, events) = runtime.events().subscribe(Some(0));
        let mut state = State::new(config, client, runtime);
        for e in &replay {
            state.push_event(e);
        }
        let stats = state.stats.clone();
        let task = tokio::spawn(async move {
            state.run(events, net_rx, stop_rx).await;
            poller.abort();
        });
        Ok(Link { stop: Some(stop_tx), task, stats })
    }

    /// Publishes `stopped`, waits (up to 2 s) for what is queued to go, and disconnects.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), &mut self.task).await;
        self.task.abort();
    }
}

/// Drives the client's connection: every event goes to the link; after a failure the next
/// attempt waits (1 s, doubling to 30 s), which is what reconnects.
async fn poll(mut eventloop: EventLoop, tx: mpsc::Sender<Net>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let net = match eventloop.poll().await {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_secs(1);
                // A clean session: nothing from before the drop is resent by the client; the
                // link resends what was not acknowledged.
                eventloop.pending.clear();
                Some(Net::Connected)
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Publish(pkid))) => Some(Net::Sent(pkid)),
            Ok(MqttEvent::Incoming(Packet::PubAck(a))) => Some(Net::Acked(a.pkid)),
            Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                let event_time = p.properties.as_ref().and_then(|pp| {
                    pp.user_properties.iter().find(|(k, _)| k.eq_ignore_ascii_case("eventTime")).map(|(_, v)| v.clone())
                });
                Some(Net::Message {
                    topic: String::from_utf8_lossy(&p.topic).into_owned(),
                    payload: p.payload,
                    event_time,
                })
            }
            Ok(_) => None,
            Err(e) => {
                if tx.send(Net::Lost(e.to_string())).await.is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_CAP);
                None
            }
        };
        if let Some(n) = net
            && tx.send(n).await.is_err()
        {
            return;
        }
    }
}

/// The link's state, owned by its task.
struct State {
    config: MqttConfig,
    client: AsyncClient,
    runtime: Arc<Runtime>,
    queue: Queue,
    /// Handed to the client, packet id not known yet (in order).
    sent: VecDeque<Out>,
    /// Sent, waiting for the broker's acknowledgement (in sending order).
    unacked: VecDeque<(u16, Out)>,
    connected: bool,
    /// The outage being reported (so it is reported once).
    outage: Option<String>,
    /// Pipeline states the broker holds (retained).
    states: HashMap<String, &'static str>,
    stats: Arc<Stats>,
}

impl State {
    fn new(config: MqttConfig, client: AsyncClient, runtime: Arc<Runtime>) -> State {
        State {
            config,
            client,
            runtime,
            queue: Queue::default(),
            sent: VecDeque::new(),
            unacked: VecDeque::new(),
            connected: false,
            outage: None,
            states: HashMap::new(),
            stats: Arc::default(),
        }
    }

    async fn run(
        mut self,
        mut events: broadcast::Receiver<Arc<Event>>,
        mut net: mpsc::Receiver<Net>,
        mut stop: oneshot::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(STATE_EVERY);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                e = events.recv() => match e {
                    Ok(e) => self.push_event(&e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.queue.dropped += n;
                        self.queue.total_dropped += n;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                n = net.recv() => match n {
                    Some(n) => self.on_net(n),
                    None => break,
                },
                _ = tick.tick() => self.publish_states(),
            }
            self.flush();
            self.count();
        }
        // What the host published while stopping (its pipelines' last events) goes too.
        while let Ok(e) = events.try_recv() {
            self.push_event(&e);
        }
        self.say_stopped(&mut net).await;
    }

    /// Brings [`Stats`] up to date.
    fn count(&self) {
        let waiting = self.queue.items.len() + self.sent.len() + self.unacked.len();
        self.stats.waiting.store(waiting as u64, Ordering::Relaxed);
        self.stats.connected.store(u64::from(self.connected), Ordering::Relaxed);
        self.stats.dropped.store(self.queue.total_dropped, Ordering::Relaxed);
    }

    fn push_event(&mut self, e: &Event) {
        let envelope = self.runtime.events().envelope(e);
        let payload = Bytes::from(serde_json::to_vec(&envelope).unwrap_or_default());
        let p = &envelope["applicationProperties"];
        let mut user = Vec::new();
        for (key, name) in [
            ("topic", "topic"),
            ("subject", "subject"),
            ("eventType", "eventType"),
            ("eventTime", "eventTime"),
            ("dataVersion", "dataVersion"),
            ("messageId", "message-id"),
            ("correlationId", "correlationId"),
        ] {
            if let Some(v) = p.get(key).and_then(|v| v.as_str()) {
                user.push((name.to_owned(), v.to_owned()));
            }
        }
        let properties = PublishProperties {
            content_type: Some("application/json".into()),
            user_properties: user,
            ..Default::default()
        };
        self.queue.push_back(Out { topic: self.config.event_topic(e), payload, retain: false, properties });
    }

    fn retained(&self, topic: String, payload: &'static str) -> Out {
        Out { topic, payload: Bytes::from_static(payload.as_bytes()), retain: true, properties: Default::default() }
    }

    fn on_net(&mut self, n: Net) {
        match n {
            Net::Connected => {
                self.connected = true;
                self.requeue();
                // First the availability, then what waited; retained states again (a broker
                // restarted without persistence lost them).
                let online = self.retained(self.config.topic("available"), "online");
                self.queue.push_front(online);
                self.states.clear();
                self.publish_states();
                let inputs = self.config.topic("inputs/+");
                if let Err(e) = self.client.try_subscribe(inputs, QoS::AtLeastOnce) {
                    tracing::warn!("MQTT: cannot subscribe to the inputs: {e}");
                }
                if let Some(why) = self.outage.take() {
                    tracing::info!(broker = self.config.target(), "MQTT broker reachable again (was: {why})");
                } else {
                    tracing::info!(broker = self.config.target(), "MQTT connected");
                }
                if self.queue.dropped > 0 {
                    tracing::warn!("MQTT: {} event(s) were dropped while the broker was away", self.queue.dropped);
                    self.queue.dropped = 0;
                }
            }
            Net::Lost(why) => {
                self.connected = false;
                self.requeue();
                if self.outage.is_none() {
                    tracing::warn!(broker = self.config.target(), "MQTT broker unreachable: {why}; retrying");
                    self.runtime.events().publish(
                        "/mqtt".into(),
                        EventType::NetworkError,
                        serde_json::json!({"target": self.config.target(), "protocol": "mqtt", "message": why}),
                    );
                    self.outage = Some(why);
                }
            }
            Net::Sent(pkid) => {
                if let Some(o) = self.sent.pop_front() {
                    self.unacked.push_back((pkid, o));
                }
            }
            Net::Acked(pkid) => {
                if let Some(i) = self.unacked.iter().position(|(id, _)| *id == pkid) {
                    self.unacked.remove(i);
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Net::Message { topic, payload, event_time } => self.input(&topic, &payload, event_time.as_deref()),
        }
    }

    /// Everything not acknowledged goes back to the front of the queue, in order.
    fn requeue(&mut self) {
        let mut back: Vec<Out> = std::mem::take(&mut self.unacked).into_iter().map(|(_, o)| o).collect();
        back.extend(std::mem::take(&mut self.sent));
        for o in back.into_iter().rev() {
            self.queue.push_front(o);
        }
    }

    /// Hands queued messages to the client while connected, up to the window.
    fn flush(&mut self) {
        while self.connected && self.sent.len() + self.unacked.len() < WINDOW {
            let Some(o) = self.queue.pop_front() else { break };
            let r = self.client.try_publish_with_properties(
                o.topic.clone(),
                QoS::AtLeastOnce,
                o.retain,
                o.payload.clone(),
                o.properties.clone(),
            );
            match r {
                Ok(()) => self.sent.push_back(o),
                Err(_) => {
                    self.queue.push_front(o);
                    break;
                }
            }
        }
    }

    /// Pipeline states that changed since the broker was told, retained; a deleted pipeline's
    /// state is cleared (an empty retained message).
    fn publish_states(&mut self) {
        let now: HashMap<String, &'static str> =
            self.runtime.pipeline_states().into_iter().map(|(name, state)| (name, state.as_str())).collect();
        let mut changed = Vec::new();
        for (name, state) in &now {
            if self.states.get(name) != Some(state) {
                changed.push(self.retained(self.config.topic(&format!("pipelines/{name}/state")), state));
            }
        }
        for name in self.states.keys().filter(|n| !now.contains_key(*n)) {
            changed.push(self.retained(self.config.topic(&format!("pipelines/{name}/state")), ""));
        }
        self.states = now;
        for o in changed {
            self.queue.push_back(o);
        }
    }

    /// A message on `{prefix}/inputs/{name}`.
    fn input(&self, topic: &str, payload: &[u8], event_time: Option<&str>) {
        let Some(name) = topic.strip_prefix(&format!("{}/inputs/", self.config.prefix)) else { return };
        let delivered = HubMessage::read(payload, event_time).and_then(|m| self.runtime.hub_message(name, &m));
        match delivered {
            Ok(d) => tracing::debug!(input = name, pipelines = d.pipelines, dropped = d.dropped, "MQTT message in"),
            Err(e) => tracing::warn!(input = name, "MQTT message refused: {e}"),
        }
    }

    /// A clean stop: `stopped` (retained) after what is queued, within 2 s, then disconnect.
    async fn say_stopped(&mut self, net: &mut mpsc::Receiver<Net>) {
        let stopped = self.retained(self.config.topic("available"), "stopped");
        self.queue.push_back(stopped);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self.connected && !(self.queue.is_empty() && self.sent.is_empty() && self.unacked.is_empty()) {
            self.flush();
            match tokio::time::timeout_at(deadline, net.recv()).await {
                Ok(Some(n)) => self.on_net(n),
                _ => break,
            }
        }
        // A DISCONNECT, so the broker does not send the last will over `stopped`; the client
        // sends it when the connection task next runs, and then reports the connection gone.
        if self.connected && self.client.try_disconnect().is_ok() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(Some(n)) = tokio::time::timeout_at(deadline, net.recv()).await {
                if matches!(n, Net::Lost(_)) {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_refused_clearly() {
        let c = MqttConfig::parse("mqtt://user:p%40ss@127.0.0.1:1884", "openva", "openva").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.tls), ("127.0.0.1", 1884, false));
        assert_eq!(c.credentials, Some(("user".into(), "p@ss".into())));
        assert_eq!(c.target(), "mqtt://127.0.0.1:1884");
        let c = MqttConfig::parse("mqtts://broker.example", "openva", "site/a").unwrap();
        assert_eq!((c.port, c.tls), (8883, true));
        for bad in ["http://x", "mqtt://", "not a url", "mqtt://h/path", "mqtt://h?client_id=x"] {
            assert!(MqttConfig::parse(bad, "openva", "openva").is_err(), "{bad}");
        }
        assert!(MqttConfig::parse("mqtt://h", "", "openva").is_err());
        assert!(MqttConfig::parse("mqtt://h", "openva", "a/+").is_err());
        let e = MqttConfig::parse("mqtt://u:secret@h:x", "openva", "openva").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn events_go_to_their_outputs() {
        let c = MqttConfig::parse("mqtt://h", "openva", "openva").unwrap();
        let bus = crate::events::Bus::new("/t");
        bus.publish(
            "/livePipelines/p1/processors/m".into(),
            EventType::Inference,
            serde_json::json!({"hubOutputName": "a/b"}),
        );
        bus.publish("/livePipelines/p1/sources/s".into(), EventType::NetworkError, serde_json::json!({}));
        bus.publish("/livePipelines/p1/sinks/v".into(), EventType::RecordingStarted, serde_json::json!({}));
        bus.publish("/videos".into(), EventType::StorageError, serde_json::json!({}));
        let (events, _) = bus.subscribe(Some(0));
        let topics: Vec<_> = events.iter().map(|e| c.event_topic(e)).collect();
        assert_eq!(
            topics,
            [
                "openva/pipelines/p1/outputs/a_b",
                "openva/pipelines/p1/outputs/diagnostics",
                "openva/pipelines/p1/outputs/operational",
                "openva/module/outputs/diagnostics",
            ]
        );
    }

    fn out(topic: String, bytes: usize) -> Out {
        Out { topic, payload: Bytes::from(vec![0u8; bytes]), retain: false, properties: Default::default() }
    }

    #[test]
    fn the_queue_drops_the_oldest_beyond_its_bounds() {
        let mut q = Queue::default();
        for i in 0..QUEUE_EVENTS + 5 {
            q.push_back(out(i.to_string(), 10));
        }
        assert_eq!((q.items.len(), q.dropped), (QUEUE_EVENTS, 5));
        assert_eq!(q.items.front().map(|o| o.topic.as_str()), Some("5"));
        // Bytes bound too: four 5 MiB events keep three.
        let mut q = Queue::default();
        for i in 0..4 {
            q.push_back(out(i.to_string(), 5 << 20));
        }
        assert_eq!((q.items.len(), q.dropped, q.bytes), (3, 1, 15 << 20));
        let first = q.pop_front().map(|o| o.topic);
        assert_eq!((first.as_deref(), q.bytes), (Some("1"), 10 << 20));
    }
}
