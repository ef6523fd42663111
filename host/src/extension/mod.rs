//! AVA's extensions: AI that runs outside the host, in an inference server the user already
//! has (research/extensions.md §1–§2). This module is the protocol side of the `HttpExtension`
//! and `GrpcExtension` nodes: preparing frames ([`image`]), calling the server ([`http`],
//! [`grpc`] over AVA's contract in [`proto`], behind the address [`guard`]), reading its answers
//! ([`reply`]), and the node's state between requests
//! ([`Extension`]: requests in flight up to the client's window — one over HTTP, a few over
//! gRPC —, back-off after `503` and failures, one Diagnostics event per change of state). Where frames wait and where results go is the analysis
//! branch's business (`pipeline::analysis`).

pub mod grpc;
pub mod guard;
pub mod http;
pub mod image;
pub mod proto;
pub mod reply;

use crate::codec::I420;
use crate::events::EventType;
use crate::secrets::redact_url;
use crate::topology::ExtensionConfig;
use reply::{FailureKind, Outcome};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// Why an extension node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    /// The endpoint URL does not parse.
    #[error("endpoint.url: {0}")]
    Url(String),
    /// The endpoint's address is refused by the host's policy.
    #[error("endpoint.url: {0}")]
    Refused(String),
    /// The TLS settings cannot be used.
    #[error("endpoint (TLS): {0}")]
    Tls(String),
    /// The credentials cannot be sent.
    #[error("endpoint.credentials: {0}")]
    Credentials(String),
    /// The image settings cannot work.
    #[error("image: {0}")]
    Image(#[from] image::ImageError),
    /// The worker thread did not start.
    #[error("cannot start the extension's thread: {0}")]
    Start(String),
}

/// Pauses after failures: from the first to the longest, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
/// The longest pause a `Retry-After` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What became of a frame offered for sending.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// On its way, as request `seq`.
    Yes(u64),
    /// The node's window of requests is full: this sample is skipped.
    Busy,
    /// The node is pausing (server busy, or failing): this sample is skipped.
    Paused,
    /// The frame could not be prepared (reported once per state change).
    Failed,
}

/// A Diagnostics event to publish: its type and body.
pub type Diagnostic = (EventType, Value);

/// Results of a request: the body to publish (without `timestamp`) and its inferences.
pub type Results = (Map<String, Value>, Vec<Value>);

/// A node's client, by contract.
pub enum Client {
    /// `HttpExtension`.
    Http(http::HttpClient),
    /// `GrpcExtension`.
    Grpc(grpc::GrpcClient),
}

impl Client {
    /// Starts the client of node `node` of pipeline `pipeline`; `answer` receives its answers.
    pub fn start(
        pipeline: &str,
        node: &str,
        config: &ExtensionConfig,
        policy: guard::AddressPolicy,
        timeout: std::time::Duration,
        answer: impl FnMut(http::Answer) -> bool + Send + 'static,
    ) -> Result<Client, ExtensionError> {
        Ok(match config.kind {
            crate::topology::ExtensionKind::Http => {
                Client::Http(http::HttpClient::start(node, config, policy, timeout, answer)?)
            }
            crate::topology::ExtensionKind::Grpc { .. } => {
                Client::Grpc(grpc::GrpcClient::start(pipeline, node, config, policy, timeout, answer)?)
            }
        })
    }

    fn submit(&self, job: http::Job) -> bool {
        match self {
            Client::Http(c) => c.submit(job),
            Client::Grpc(c) => c.submit(job),
        }
    }

    fn protocol(&self) -> &'static str {
        match self {
            Client::Http(_) => "http",
            Client::Grpc(_) => "grpc",
        }
    }

    /// Requests it takes at once: one HTTP request (AVA's rule); over gRPC a window of samples
    /// the server may work on while the next arrive (see `grpc`).
    fn window(&self) -> usize {
        match self {
            Client::Http(_) => 1,
            Client::Grpc(_) => grpc::WINDOW,
        }
    }
}

/// One extension node's client state.
pub struct Extension {
    config: ExtensionConfig,
    client: Client,
    next_seq: u64,
    /// Requests out (their numbers), at most the client's window.
    in_flight: Vec<u64>,
    paused_until: Option<Instant>,
    backoff: Duration,
    /// The failure being reported (code), so a lasting one is told once.
    failing: Option<String>,
    /// A Diagnostic waiting for the caller (from preparing a frame).
    pending: Option<Diagnostic>,
}

impl Extension {
    /// A node's state around its started client.
    pub fn new(config: ExtensionConfig, client: Client) -> Self {
        Extension {
            config,
            client,
            next_seq: 1,
            in_flight: Vec::new(),
            paused_until: None,
            backoff: Duration::ZERO,
            failing: None,
            pending: None,
        }
    }

    /// Whether it skips frames without upstream inferences.
    pub fn skips_unannotated(&self) -> bool {
        self.config.skip_without_annotation
    }

    /// Prepares `pic` and sends it (with the inferences nodes upstream put on it), unless the
    /// window of requests is full or the node pauses.
    pub fn send(&mut self, pic: &I420, upstream: &[Value]) -> Sent {
        if self.in_flight.len() >= self.client.window() {
            return Sent::Busy;
        }
        if self.paused_until.is_some_and(|t| Instant::now() < t) {
            return Sent::Paused;
        }
        let started = Instant::now();
        let prepared = match image::prepare(pic, self.config.scale.as_ref(), &self.config.format) {
            Ok(p) => p,
            Err(e) => {
                self.pending = self.enter_failure("image", EventType::MediaFormatError, e.to_string());
                return Sent::Failed;
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let job = http::Job { seq, prepared, pts: pic.pts, upstream: upstream.to_vec(), prepare: started.elapsed() };
        if self.client.submit(job) {
            self.in_flight.push(seq);
            Sent::Yes(seq)
        } else {
            Sent::Busy
        }
    }

    /// A Diagnostic left by [`Extension::send`], once.
    pub fn take_diagnostic(&mut self) -> Option<Diagnostic> {
        self.pending.take()
    }

    /// Takes an answer: the results to publish (body and inferences), if any, and a
    /// Diagnostic when the node's state changed for the worse.
    pub fn answered(&mut self, a: http::Answer) -> (Option<Results>, Option<Diagnostic>) {
        self.in_flight.retain(|s| *s != a.seq);
        match a.outcome {
            Outcome::Results { body, inferences } => {
                self.recovered();
                (Some((body, inferences)), None)
            }
            Outcome::NoResult => {
                self.recovered();
                (None, None)
            }
            Outcome::Busy(after) => {
                let pause = after.map_or_else(|| self.next_backoff(), |d| d.min(MAX_RETRY_AFTER));
                self.paused_until = Some(Instant::now() + pause);
                let message = format!("the server is busy (503); pausing {} ms", pause.as_millis());
                (None, self.enter_failure("503", EventType::ProtocolError, message))
            }
            Outcome::Failed(f) => {
                // The other samples out on a failed stream fail with it: one failure, one
                // step of back-off.
                let now = Instant::now();
                if self.paused_until.is_none_or(|t| t <= now) {
                    let pause = self.next_backoff();
                    self.paused_until = Some(now + pause);
                }
                let kind = match f.kind {
                    FailureKind::Network => EventType::NetworkError,
                    FailureKind::Authentication => EventType::AuthenticationError,
                    FailureKind::Authorization => EventType::AuthorizationError,
                    FailureKind::Protocol | FailureKind::Refused => EventType::ProtocolError,
                };
                (None, self.enter_failure(&f.code, kind, f.message))
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        self.backoff = (self.backoff * 2).clamp(BACKOFF.0, BACKOFF.1);
        self.backoff
    }

    fn recovered(&mut self) {
        if let Some(code) = self.failing.take() {
            tracing::info!(url = %redact_url(&self.config.url), "the extension answers again (was: {code})");
        }
        self.backoff = Duration::ZERO;
        self.paused_until = None;
    }

    /// The Diagnostic for a failure, unless the same one is already being reported.
    fn enter_failure(&mut self, code: &str, kind: EventType, message: String) -> Option<Diagnostic> {
        if self.failing.as_deref() == Some(code) {
            return None;
        }
        self.failing = Some(code.to_owned());
        let protocol = self.client.protocol();
        let body =
            json!({"code": code, "target": redact_url(&self.config.url), "protocol": protocol, "message": message});
        Some((kind, body))
    }
}
