//! The gRPC extension's client (research/extensions.md §2): AVA's `MediaGraphExtension`
//! contract, one bidirectional `ProcessMediaStream` per node. A worker thread of its own runs a
//! small tokio runtime; the session opens at the first frame (its descriptor needs the image's
//! size), each frame is one `MediaSample`, embedded or referenced in a shared memory file, and
//! the answer is the server message acknowledging it (matched by `ack_sequence_number`, in any
//! order). Up to [`WINDOW`] samples are out at once, so a server that works on several frames
//! at a time (as the contract encourages) or a slow link does not cap the rate at one round trip
//! per frame; in shared memory each lies in its own region of a ring, freed when it is
//! acknowledged (a frame waits for room when the ring is full). A stream that fails, ends or
//! leaves a sample unanswered past the time-out is dropped with every sample out on it (each
//! answered as failed); the next frame after the node's back-off opens a new session (sequence
//! numbers from 1, the memory announced again).

use super::ExtensionError;
use super::guard::AddressPolicy;
use super::http::{Answer, Job};
use super::image::Prepared;
use super::proto::pb;
use super::reply::{Failure, FailureKind, Outcome, grpc_results};
use crate::topology::{DataTransfer, ExtensionConfig, ExtensionCredentials, ExtensionKind, ImageFormat};
use base64::Engine;
use futures::SinkExt;
use std::collections::VecDeque;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{Receiver, Sender, channel};

/// The stream's timescale: openva's 90 kHz (sample timestamps are frame times).
const TIMESCALE: u32 = 90_000;

/// Samples a node keeps out at once, at most. AVA left the number open; a few let a server
/// that works on frames in parallel keep busy, and bound what a stalled one holds.
pub const WINDOW: usize = 4;

/// A node's gRPC client: a worker thread fed up to [`WINDOW`] jobs at a time.
pub struct GrpcClient {
    jobs: Sender<Job>,
}

/// What a session needs to open.
struct Setup {
    /// `http(s)://host:port` (AVA's `tcp://` is cleartext HTTP/2).
    uri: String,
    host: String,
    port: u16,
    tls: Option<tonic::transport::ClientTlsConfig>,
    auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    policy: AddressPolicy,
    timeout: Duration,
    graph: pb::GraphIdentifier,
    configuration: String,
    format: ImageFormat,
    /// Shared memory size in bytes, when samples go through it.
    shared_memory: Option<u64>,
}

impl GrpcClient {
    /// Starts the worker of node `node` of pipeline `pipeline`. Settings that cannot work (TLS
    /// options gRPC lacks, an address refused) are an error here, at activation.
    pub fn start(
        pipeline: &str,
        node: &str,
        config: &ExtensionConfig,
        policy: AddressPolicy,
        timeout: Duration,
        mut answer: impl FnMut(Answer) -> bool + Send + 'static,
    ) -> Result<GrpcClient, ExtensionError> {
        let ExtensionKind::Grpc { transfer, configuration } = &config.kind else {
            return Err(ExtensionError::Url("not a gRPC extension".into()));
        };
        let parsed = url::Url::parse(&config.url).map_err(|e| ExtensionError::Url(e.to_string()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let secure = parsed.scheme() == "https" || config.tls.is_some();
        let port = parsed.port().unwrap_or(if secure { 443 } else { 80 });
        policy.check_literal(&host, port).map_err(ExtensionError::Refused)?;
        let tls = match &config.tls {
            None if parsed.scheme() != "https" => None,
            None => Some(tonic::transport::ClientTlsConfig::new().with_native_roots()),
            Some(t) if t.ignore_hostname || t.ignore_signature => {
                return Err(ExtensionError::Tls(
                    "validationOptions (ignoreHostname, ignoreSignature) are not supported by gRPC (as in AVA): the \
                     server's certificate must name the URL's host"
                        .into(),
                ));
            }
            Some(t) => {
                let mut c = tonic::transport::ClientTlsConfig::new().domain_name(host.trim_matches(['[', ']']));
                if t.certificates.is_empty() {
                    c = c.with_native_roots();
                }
                for pem in &t.certificates {
                    c = c.ca_certificate(tonic::transport::Certificate::from_pem(pem));
                }
                Some(c)
            }
        };
        let auth = match &config.credentials {
            ExtensionCredentials::None => None,
            ExtensionCredentials::Basic { username, password } => {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
                Some(format!("Basic {token}").parse().map_err(|_| {
                    ExtensionError::Credentials("the user name and password do not make a header value".into())
                })?)
            }
            ExtensionCredentials::Header { .. } => {
                return Err(ExtensionError::Credentials(
                    "the gRPC extension takes UsernamePasswordCredentials (sent as x-ms-authentication)".into(),
                ));
            }
        };
        let scheme = if secure { "https" } else { "http" };
        let bracketed = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
        let setup = Setup {
            uri: format!("{scheme}://{bracketed}:{port}"),
            host,
            port,
            tls,
            auth,
            policy,
            timeout,
            graph: pb::GraphIdentifier {
                media_services_arm_id: String::new(),
                graph_instance_name: pipeline.to_owned(),
                graph_node_name: node.to_owned(),
            },
            configuration: configuration.clone().unwrap_or_default(),
            format: config.format.clone(),
            shared_memory: match transfer {
                DataTransfer::Embedded => None,
                DataTransfer::SharedMemory { size_mib } => Some(u64::from(*size_mib) << 20),
            },
        };
        let (jobs, rx) = channel::<Job>(WINDOW);
        std::thread::Builder::new()
            .name(format!("ext-{node}"))
            .spawn(move || work(rx, setup, &mut answer))
            .map_err(|e| ExtensionError::Start(e.to_string()))?;
        Ok(GrpcClient { jobs })
    }

    /// Hands a job to the worker; false when its queue is full (the caller keeps at most
    /// [`WINDOW`] out, so that means a bug, not a load) or it is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.try_send(job).is_ok()
    }
}

fn work(rx: Receiver<Job>, setup: Setup, answer: &mut impl FnMut(Answer) -> bool) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("the gRPC extension's runtime did not start: {e}");
            return;
        }
    };
    rt.block_on(Worker { setup, session: None, answer }.run(rx));
}

/// A sample out on the stream.
struct Pending {
    /// The node's request number.
    seq: u64,
    /// Its message's sequence number on the stream (what the server acknowledges).
    msg_seq: u64,
    started: Instant,
    prepare: Duration,
    deadline: tokio::time::Instant,
    /// Where the picture lies in the image sent (to un-pad the boxes).
    content: super::image::Content,
}

/// One open stream.
struct Session {
    tx: futures::channel::mpsc::Sender<pb::MediaStreamMessage>,
    inbound: tonic::Streaming<pb::MediaStreamMessage>,
    next_seq: u64,
    /// The server's latest sequence number: our acknowledgement of its messages.
    server_seq: u64,
    /// The image layout the descriptor announced (width, height, stride).
    layout: (u32, u32, u32),
    shm: Option<(SharedMemory, Ring)>,
    /// Samples out, in sending order.
    pending: VecDeque<Pending>,
    /// Keeps the stream's task alive with the session.
    _channel: tonic::transport::Channel,
}

/// The worker's state: the stream, and where answers go.
struct Worker<'a, F> {
    setup: Setup,
    session: Option<Session>,
    answer: &'a mut F,
}

/// Why the worker stops: the node is gone (its answer callback said so).
struct Gone;

impl<F: FnMut(Answer) -> bool> Worker<'_, F> {
    async fn run(mut self, mut rx: Receiver<Job>) {
        loop {
            let deadline = self.session.as_ref().and_then(|s| s.pending.front().map(|p| p.deadline));
            let step = tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => self.submit(job).await,
                    None => return,
                },
                m = inbound(&mut self.session), if deadline.is_some() => self.on_message(m),
                _ = sleep_until(deadline) => {
                    self.fail_all(Failure::new(FailureKind::Network, "timeout", "no answer in time"))
                }
            };
            if step.is_err() {
                return;
            }
        }
    }

    /// Sends a job's frame; when that fails, the stream is dropped with what was out on it,
    /// and the job is answered as failed too.
    async fn submit(&mut self, job: Job) -> Result<(), Gone> {
        let (seq, prepare, started) = (job.seq, job.prepare, Instant::now());
        match self.send(job, started).await {
            Ok(()) => Ok(()),
            Err(Stop::Gone) => Err(Gone),
            Err(Stop::Failed(f)) => {
                self.fail_all(f.clone())?;
                self.tell(Answer { seq, outcome: Outcome::Failed(f), elapsed: prepare + started.elapsed() })
            }
        }
    }

    async fn send(&mut self, job: Job, started: Instant) -> Result<(), Stop> {
        let p = job.prepared;
        let layout = (p.width, p.height, p.stride);
        if self.session.as_ref().is_some_and(|s| s.layout != layout) {
            // A new image size needs a new descriptor: what is out is answered first.
            while self.session.as_ref().is_some_and(|s| !s.pending.is_empty()) {
                let m = self.next_message().await?;
                self.on_message(Ok(m)).map_err(|Gone| Stop::Gone)?;
            }
            self.session = None;
        }
        if self.session.is_none() {
            self.session = Some(open(&self.setup, &p).await?);
        }
        // Room in the shared memory: while the ring is full, answers free it.
        let offset = loop {
            let Some(s) = self.session.as_mut() else { return Err(closed().into()) };
            let Some((shm, ring)) = s.shm.as_mut() else { break None };
            if let Some(off) = ring.alloc(p.body.len() as u64, shm.len)? {
                break Some(off);
            }
            let m = self.next_message().await?;
            self.on_message(Ok(m)).map_err(|Gone| Stop::Gone)?;
        };
        let Some(s) = self.session.as_mut() else { return Err(closed().into()) };
        let msg_seq = s.next_seq;
        s.next_seq += 1;
        let content = match (s.shm.as_mut(), offset) {
            (Some((shm, ring)), Some(off)) => {
                let r = shm.put_at(off, &p.body)?;
                ring.taken(msg_seq, off, p.body.len() as u64);
                pb::media_sample::Content::ContentReference(r)
            }
            _ => pb::media_sample::Content::ContentBytes(pb::ContentBytes { bytes: p.body }),
        };
        let sample = pb::MediaSample {
            timestamp: u64::try_from(job.pts).unwrap_or(0),
            content: Some(content),
            inferences: job.upstream.iter().filter_map(super::proto::from_json).collect(),
        };
        let msg = pb::MediaStreamMessage {
            sequence_number: msg_seq,
            ack_sequence_number: s.server_seq,
            payload: Some(pb::media_stream_message::Payload::MediaSample(sample)),
        };
        s.tx.send(msg).await.map_err(|_| Stop::from(closed()))?;
        s.pending.push_back(Pending {
            seq: job.seq,
            msg_seq,
            started,
            prepare: job.prepare,
            deadline: tokio::time::Instant::now() + self.setup.timeout,
            content: p.content,
        });
        Ok(())
    }

    /// The next message, before the oldest sample's deadline.
    async fn next_message(&mut self) -> Result<pb::MediaStreamMessage, Failure> {
        let timeout = self.setup.timeout;
        let Some(s) = self.session.as_mut() else { return Err(closed()) };
        let deadline = s.pending.front().map_or_else(|| tokio::time::Instant::now() + timeout, |p| p.deadline);
        next(&mut s.inbound, deadline).await
    }

    /// A message from the server: the answer to the sample it acknowledges (others are
    /// bookkeeping, or answers to samples already given up).
    fn on_message(&mut self, m: Result<pb::MediaStreamMessage, Failure>) -> Result<(), Gone> {
        let m = match m {
            Ok(m) => m,
            Err(f) => return self.fail_all(f),
        };
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        s.server_seq = m.sequence_number;
        let Some(k) = s.pending.iter().position(|p| p.msg_seq == m.ack_sequence_number) else { return Ok(()) };
        let Some(p) = s.pending.remove(k) else { return Ok(()) };
        if let Some((_, ring)) = s.shm.as_mut() {
            ring.free(p.msg_seq);
        }
        let outcome = match m.payload {
            Some(pb::media_stream_message::Payload::MediaSample(sample)) => {
                grpc_results(&sample.inferences, &p.content)
            }
            _ => Outcome::NoResult,
        };
        self.tell(Answer { seq: p.seq, outcome, elapsed: p.prepare + p.started.elapsed() })
    }

    /// Drops the stream (whatever failed, it is not trusted any more) and answers every sample
    /// out on it with the failure.
    fn fail_all(&mut self, f: Failure) -> Result<(), Gone> {
        let Some(s) = self.session.take() else { return Ok(()) };
        for p in s.pending {
            let elapsed = p.prepare + p.started.elapsed();
            self.tell(Answer { seq: p.seq, outcome: Outcome::Failed(f.clone()), elapsed })?;
        }
        Ok(())
    }

    fn tell(&mut self, a: Answer) -> Result<(), Gone> {
        if (self.answer)(a) { Ok(()) } else { Err(Gone) }
    }
}

/// Why a frame was not sent.
enum Stop {
    /// The stream failed (it is dropped, with what was out on it).
    Failed(Failure),
    /// The node went away meanwhile: nothing is left to answer.
    Gone,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

fn closed() -> Failure {
    Failure::new(FailureKind::Protocol, "closed", "the stream is closed")
}

/// The next message of the open stream (never, without one).
async fn inbound(session: &mut Option<Session>) -> Result<pb::MediaStreamMessage, Failure> {
    match session.as_mut() {
        Some(s) => match s.inbound.message().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(Failure::new(FailureKind::Protocol, "closed", "the server ended the stream")),
            Err(status) => Err(status_failure(&status)),
        },
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The next message from the server, before `deadline`.
async fn next(
    inbound: &mut tonic::Streaming<pb::MediaStreamMessage>,
    deadline: tokio::time::Instant,
) -> Result<pb::MediaStreamMessage, Failure> {
    match tokio::time::timeout_at(deadline, inbound.message()).await {
        Err(_) => Err(Failure::new(FailureKind::Network, "timeout", "no answer in time")),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(Failure::new(FailureKind::Protocol, "closed", "the server ended the stream")),
        Ok(Err(status)) => Err(status_failure(&status)),
    }
}

fn status_failure(s: &tonic::Status) -> Failure {
    let kind = match s.code() {
        tonic::Code::Unauthenticated => FailureKind::Authentication,
        tonic::Code::PermissionDenied => FailureKind::Authorization,
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => FailureKind::Network,
        _ => FailureKind::Protocol,
    };
    Failure::new(kind, format!("{:?}", s.code()), s.message().to_owned())
}

/// Opens a stream: connects, sends AVA's descriptor, waits for the server's.
async fn open(setup: &Setup, p: &Prepared) -> Result<Session, Failure> {
    setup.policy.check(&setup.host, setup.port).map_err(|why| Failure::new(FailureKind::Refused, "address", why))?;
    let mut endpoint = tonic::transport::Endpoint::from_shared(setup.uri.clone())
        .map_err(|e| Failure::new(FailureKind::Protocol, "url", e.to_string()))?
        .connect_timeout(setup.timeout);
    if let Some(tls) = &setup.tls {
        endpoint =
            endpoint.tls_config(tls.clone()).map_err(|e| Failure::new(FailureKind::Network, "tls", e.to_string()))?;
    }
    let channel = tokio::time::timeout(setup.timeout, endpoint.connect())
        .await
        .map_err(|_| Failure::new(FailureKind::Network, "timeout", "cannot connect in time"))?
        .map_err(|e| Failure::new(FailureKind::Network, "connection", format!("cannot connect: {e}")))?;
    let shm = match setup.shared_memory {
        Some(len) => Some(SharedMemory::create(&setup.graph, len)?),
        None => None,
    };
    let (mut tx, rx) = futures::channel::mpsc::channel(2);
    let descriptor = pb::MediaStreamDescriptor {
        stream_identifier: Some(pb::media_stream_descriptor::StreamIdentifier::GraphIdentifier(setup.graph.clone())),
        extension_configuration: setup.configuration.clone(),
        media_descriptor: Some(pb::MediaDescriptor {
            timescale: TIMESCALE,
            media_sample_format: Some(pb::media_descriptor::MediaSampleFormat::VideoFrameSampleFormat(
                super::proto::sample_format(&setup.format, p),
            )),
        }),
        data_transfer_properties: shm.as_ref().map(|m| {
            pb::media_stream_descriptor::DataTransferProperties::SharedMemoryBufferTransferProperties(
                pb::SharedMemoryBufferTransferProperties { handle_name: m.name.clone(), length_bytes: m.len },
            )
        }),
    };
    let first = pb::MediaStreamMessage {
        sequence_number: 1,
        ack_sequence_number: 0,
        payload: Some(pb::media_stream_message::Payload::MediaStreamDescriptor(descriptor)),
    };
    tx.send(first).await.map_err(|_| Failure::new(FailureKind::Protocol, "closed", "the stream is closed"))?;
    let mut request = tonic::Request::new(rx);
    if let Some(a) = &setup.auth {
        request.metadata_mut().insert("x-ms-authentication", a.clone());
    }
    let mut client = pb::media_graph_extension_client::MediaGraphExtensionClient::new(channel.clone());
    let call = tokio::time::timeout(setup.timeout, client.process_media_stream(request))
        .await
        .map_err(|_| Failure::new(FailureKind::Network, "timeout", "the server did not open the stream in time"))?;
    let mut inbound = call.map_err(|s| status_failure(&s))?.into_inner();
    let m = next(&mut inbound, tokio::time::Instant::now() + setup.timeout).await?;
    if !matches!(m.payload, Some(pb::media_stream_message::Payload::MediaStreamDescriptor(_))) {
        return Err(Failure::new(
            FailureKind::Protocol,
            "descriptor",
            "the server's first message is not its media stream descriptor",
        ));
    }
    Ok(Session {
        tx,
        inbound,
        next_seq: 2,
        server_seq: 1,
        layout: (p.width, p.height, p.stride),
        shm: shm.map(|m| (m, Ring::default())),
        pending: VecDeque::new(),
        _channel: channel,
    })
}

/// The shared memory file samples travel through: `/dev/shm/<name>`, created by this host
/// (only its user may open it: run the server as the same user), removed with the session.
struct SharedMemory {
    name: String,
    len: u64,
    file: std::fs::File,
}

impl SharedMemory {
    fn create(graph: &pb::GraphIdentifier, len: u64) -> Result<SharedMemory, Failure> {
        let name = format!(
            "openva-{}-{}-{}-{}",
            std::process::id(),
            graph.graph_instance_name,
            graph.graph_node_name,
            uuid::Uuid::new_v4().simple()
        );
        let fail =
            |e: std::io::Error| Failure::new(FailureKind::Protocol, "shared-memory", format!("/dev/shm/{name}: {e}"));
        let file = std::fs::OpenOptions::new()
            .mode(0o600)
            .read(true)
            .write(true)
            .create_new(true)
            .open(std::path::Path::new("/dev/shm").join(&name))
            .map_err(fail)?;
        file.set_len(len).map_err(fail)?;
        Ok(SharedMemory { name, len, file })
    }

    /// Writes a frame at `offset` (a region the ring gave it).
    fn put_at(&self, offset: u64, bytes: &[u8]) -> Result<pb::ContentReference, Failure> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| Failure::new(FailureKind::Protocol, "shared-memory", e.to_string()))?;
        Ok(pb::ContentReference { address_offset: offset, length_bytes: bytes.len() as u64 })
    }
}

/// The regions of the shared memory that samples out occupy, in sending order: each new one
/// goes after the newest, wrapping to the start when the end has no room, and never over a
/// region not yet acknowledged (the contract: "the sender must hold any shared memory until it
/// has been acknowledged").
#[derive(Default)]
struct Ring {
    /// (message sequence number, offset, length).
    regions: VecDeque<(u64, u64, u64)>,
}

impl Ring {
    /// Where `n` bytes fit in a memory of `len` bytes now; `None` until acknowledgements free
    /// room; an error when they can never fit.
    fn alloc(&self, n: u64, len: u64) -> Result<Option<u64>, Failure> {
        if n > len {
            return Err(Failure::new(
                FailureKind::Protocol,
                "shared-memory",
                format!("a {n} byte frame does not fit the {len} byte shared memory (sharedMemorySizeMiB)"),
            ));
        }
        let (Some(oldest), Some(newest)) = (self.regions.front(), self.regions.back()) else { return Ok(Some(0)) };
        let (head, tail) = (newest.1 + newest.2, oldest.1);
        // Wrapped: the newest region lies before the oldest, and the room is between them.
        Ok(if newest.1 < oldest.1 {
            (head + n <= tail).then_some(head)
        } else if head + n <= len {
            Some(head)
        } else {
            (n <= tail).then_some(0)
        })
    }

    fn taken(&mut self, seq: u64, offset: u64, n: u64) {
        self.regions.push_back((seq, offset, n));
    }

    fn free(&mut self, seq: u64) {
        self.regions.retain(|r| r.0 != seq);
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(&self.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_places_frames_after_the_newest_and_never_over_one_out() {
        let len = 100;
        let mut r = Ring::default();
        assert_eq!(r.alloc(40, len).ok().flatten(), Some(0));
        r.taken(1, 0, 40);
        assert_eq!(r.alloc(40, len).ok().flatten(), Some(40));
        r.taken(2, 40, 40);
        // No room at the end, none before the oldest.
        assert_eq!(r.alloc(30, len).ok().flatten(), None);
        assert_eq!(r.alloc(20, len).ok().flatten(), Some(80));
        // The oldest acknowledged: wrap to the start.
        r.free(1);
        assert_eq!(r.alloc(30, len).ok().flatten(), Some(0));
        r.taken(3, 0, 30);
        // Wrapped: room only between the newest (0..30) and the oldest (40..80).
        assert_eq!(r.alloc(10, len).ok().flatten(), Some(30));
        assert_eq!(r.alloc(11, len).ok().flatten(), None);
        // Acknowledged out of order: the middle one's room is not reused before the oldest goes.
        r.taken(4, 30, 10);
        r.free(3);
        assert_eq!(r.alloc(1, len).ok().flatten(), None);
        r.free(2);
        assert_eq!(r.alloc(60, len).ok().flatten(), Some(40));
        // Never fits: an error, not a wait.
        assert!(r.alloc(101, len).is_err());
        r.free(4);
        assert_eq!(r.alloc(100, len).ok().flatten(), Some(0));
    }
}
