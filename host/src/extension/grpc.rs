//! The gRPC extension's client (research/extensions.md §2): AVA's `MediaGraphExtension`
//! contract, one bidirectional `ProcessMediaStream` per node. A worker thread of its own runs a
//! small tokio runtime; the session opens at the first frame (its descriptor needs the image's
//! size), each frame is one `MediaSample`, embedded or referenced in a shared memory file, and
//! the answer is the server message acknowledging it. One sample is in flight at a time (the
//! node's rule for every extension), so the shared memory holds one frame at offset 0, free
//! again once acknowledged. A stream that fails or ends is dropped; the next frame after the
//! node's back-off opens a new session (sequence numbers from 1, the memory announced again).

use super::ExtensionError;
use super::guard::AddressPolicy;
use super::http::{Answer, Job};
use super::image::Prepared;
use super::proto::pb;
use super::reply::{Failure, FailureKind, Outcome, grpc_results};
use crate::topology::{DataTransfer, ExtensionConfig, ExtensionCredentials, ExtensionKind, ImageFormat};
use base64::Engine;
use futures::SinkExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// The stream's timescale: openva's 90 kHz (sample timestamps are frame times).
const TIMESCALE: u32 = 90_000;

/// A node's gRPC client: a worker thread fed one job at a time (see [`super::http::HttpClient`]).
pub struct GrpcClient {
    jobs: SyncSender<Job>,
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
        let (jobs, rx) = sync_channel::<Job>(1);
        std::thread::Builder::new()
            .name(format!("ext-{node}"))
            .spawn(move || work(rx, setup, &mut answer))
            .map_err(|e| ExtensionError::Start(e.to_string()))?;
        Ok(GrpcClient { jobs })
    }

    /// Hands a job to the worker; false when the worker is still busy (the caller keeps one
    /// request in flight, so that means a bug, not a load) or gone.
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
    let mut session: Option<Session> = None;
    for job in rx {
        let started = Instant::now();
        let (seq, prepare) = (job.seq, job.prepare);
        let outcome = match rt.block_on(exchange(&setup, &mut session, job)) {
            Ok(o) => o,
            Err(f) => {
                // Whatever failed, the stream is not trusted any more.
                session = None;
                Outcome::Failed(f)
            }
        };
        if !answer(Answer { seq, outcome, elapsed: prepare + started.elapsed() }) {
            return;
        }
    }
}

/// One open stream.
struct Session {
    tx: futures::channel::mpsc::Sender<pb::MediaStreamMessage>,
    inbound: tonic::Streaming<pb::MediaStreamMessage>,
    next_seq: u64,
    /// The image layout the descriptor announced (width, height, stride).
    layout: (u32, u32, u32),
    shm: Option<SharedMemory>,
    /// Keeps the stream's task alive with the session.
    _channel: tonic::transport::Channel,
}

/// Sends one frame and waits for its acknowledgement.
async fn exchange(setup: &Setup, session: &mut Option<Session>, job: Job) -> Result<Outcome, Failure> {
    let p = job.prepared;
    let layout = (p.width, p.height, p.stride);
    if session.as_ref().is_some_and(|s| s.layout != layout) {
        *session = None; // a new image size needs a new descriptor
    }
    if session.is_none() {
        *session = Some(open(setup, &p).await?);
    }
    let Some(s) = session.as_mut() else { return Err(Failure::new(FailureKind::Protocol, "session", "no session")) };
    let content = match &s.shm {
        Some(shm) => Some(pb::media_sample::Content::ContentReference(shm.put(&p.body)?)),
        None => Some(pb::media_sample::Content::ContentBytes(pb::ContentBytes { bytes: p.body })),
    };
    let seq = s.next_seq;
    s.next_seq += 1;
    let sample = pb::MediaSample {
        timestamp: u64::try_from(job.pts).unwrap_or(0),
        content,
        inferences: job.upstream.iter().filter_map(super::proto::from_json).collect(),
    };
    let msg = pb::MediaStreamMessage {
        sequence_number: seq,
        ack_sequence_number: 0,
        payload: Some(pb::media_stream_message::Payload::MediaSample(sample)),
    };
    s.tx.send(msg).await.map_err(|_| Failure::new(FailureKind::Protocol, "closed", "the stream is closed"))?;
    let deadline = tokio::time::Instant::now() + setup.timeout;
    loop {
        let m = next(&mut s.inbound, deadline).await?;
        if m.ack_sequence_number != seq {
            continue; // an answer to an earlier sample that timed out, or bookkeeping
        }
        return Ok(match m.payload {
            Some(pb::media_stream_message::Payload::MediaSample(sample)) => {
                grpc_results(&sample.inferences, &p.content)
            }
            _ => Outcome::NoResult,
        });
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
    Ok(Session { tx, inbound, next_seq: 2, layout: (p.width, p.height, p.stride), shm, _channel: channel })
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

    /// Writes a frame at offset 0 (one sample in flight: the slot is free once its
    /// predecessor was acknowledged).
    fn put(&self, bytes: &[u8]) -> Result<pb::ContentReference, Failure> {
        if bytes.len() as u64 > self.len {
            return Err(Failure::new(
                FailureKind::Protocol,
                "shared-memory",
                format!(
                    "a {} byte frame does not fit the {} byte shared memory (sharedMemorySizeMiB)",
                    bytes.len(),
                    self.len
                ),
            ));
        }
        self.file
            .write_all_at(bytes, 0)
            .map_err(|e| Failure::new(FailureKind::Protocol, "shared-memory", e.to_string()))?;
        Ok(pb::ContentReference { address_offset: 0, length_bytes: bytes.len() as u64 })
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(&self.name));
    }
}
