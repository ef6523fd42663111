//! The HTTP extension's client (research/extensions.md §1.3): one worker thread per node
//! posts one prepared frame at a time with AVA's headers and hands back what the answer means.
//! A blocking client on a plain thread: requests are sequential by contract (one in flight per
//! node), and the analysis thread never waits for the network.

use super::ExtensionError;
use super::guard::AddressPolicy;
use super::image::Prepared;
use super::reply::{Failure, FailureKind, Outcome, interpret};
use crate::topology::{ExtensionConfig, ExtensionCredentials};
use base64::Engine;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

/// Largest answer read; a larger one is a failure (a broken or hostile server must not make
/// the host buffer without bound).
pub const MAX_REPLY: u64 = 4 << 20;

/// AVA's `User-Agent`, which servers written for AVA may expect.
const USER_AGENT: &str = "Azure Media Services";

/// One frame to send.
pub struct Job {
    /// The node's request number, returned with the answer.
    pub seq: u64,
    /// The encoded frame.
    pub prepared: Prepared,
    /// The frame's time (90 kHz ticks since the epoch).
    pub pts: i64,
    /// Inferences nodes upstream put on the frame (the gRPC contract sends them along).
    pub upstream: Vec<serde_json::Value>,
    /// What preparing it (scaling, encoding) took: part of the request's time.
    pub prepare: Duration,
}

/// The answer to a [`Job`].
pub struct Answer {
    /// The job's number.
    pub seq: u64,
    /// What it came to.
    pub outcome: Outcome,
    /// From preparing the frame to the answer read.
    pub elapsed: Duration,
}

/// A node's client: a worker thread fed one job at a time. Dropping it lets the worker end
/// after the request in hand (it is not joined: a server may take up to the time-out).
pub struct HttpClient {
    jobs: SyncSender<Job>,
}

impl HttpClient {
    /// Starts the worker of node `node` calling `config.url`; `answer` receives each answer
    /// (returning false when nobody listens any more, which ends the worker). Bad TLS settings
    /// are an error here, at activation.
    pub fn start(
        node: &str,
        config: &ExtensionConfig,
        policy: AddressPolicy,
        timeout: Duration,
        mut answer: impl FnMut(Answer) -> bool + Send + 'static,
    ) -> Result<HttpClient, ExtensionError> {
        let target = Target::new(config, policy)?;
        let agent = agent(config, timeout)?;
        let (jobs, rx) = sync_channel::<Job>(1);
        std::thread::Builder::new()
            .name(format!("ext-{node}"))
            .spawn(move || work(rx, &agent, &target, &mut answer))
            .map_err(|e| ExtensionError::Start(e.to_string()))?;
        Ok(HttpClient { jobs })
    }

    /// Hands a job to the worker; false when the worker is still busy (the caller keeps one
    /// request in flight, so that means a bug, not a load) or gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.try_send(job).is_ok()
    }
}

/// Where requests go and how they authenticate.
struct Target {
    url: String,
    host: String,
    port: u16,
    auth: Option<(String, String)>,
    policy: AddressPolicy,
}

impl Target {
    fn new(config: &ExtensionConfig, policy: AddressPolicy) -> Result<Target, ExtensionError> {
        let parsed = url::Url::parse(&config.url).map_err(|e| ExtensionError::Url(e.to_string()))?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        policy.check_literal(&host, port).map_err(ExtensionError::Refused)?;
        let auth = match &config.credentials {
            ExtensionCredentials::None => None,
            ExtensionCredentials::Basic { username, password } => Some((
                "Authorization".to_owned(),
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))),
            )),
            ExtensionCredentials::Header { name, value } => Some((name.clone(), value.clone())),
        };
        if let Some((name, value)) = &auth
            && (ureq::http::HeaderName::try_from(name.as_str()).is_err()
                || ureq::http::HeaderValue::try_from(value.as_str()).is_err())
        {
            return Err(ExtensionError::Credentials(format!("'{name}' is not a valid HTTP header name and value")));
        }
        Ok(Target { url: config.url.clone(), host, port, auth, policy })
    }
}

/// The node's agent: AVA's `User-Agent` and `Accept`, the time-out, no redirects (they would
/// escape the address guard) and no proxy from the environment; TLS as the endpoint says.
fn agent(config: &ExtensionConfig, timeout: Duration) -> Result<ureq::Agent, ExtensionError> {
    let mut b = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .max_redirects(0)
        .proxy(None)
        .user_agent(USER_AGENT)
        .accept("application/json");
    if let Some(tls) = &config.tls {
        if tls.ignore_hostname && !tls.ignore_signature {
            return Err(ExtensionError::Tls(
                "validationOptions.ignoreHostname without ignoreSignature is not supported by this host: trust the \
                 server's certificate (trustedCertificates) with a name that matches the URL, or ignore both"
                    .into(),
            ));
        }
        let mut t = ureq::tls::TlsConfig::builder().disable_verification(tls.ignore_signature);
        if !tls.certificates.is_empty() {
            let mut roots = Vec::new();
            for pem in &tls.certificates {
                for item in ureq::tls::parse_pem(pem.as_bytes()) {
                    match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => roots.push(c),
                        Ok(_) => {}
                        Err(e) => return Err(ExtensionError::Tls(format!("trustedCertificates: {e}"))),
                    }
                }
            }
            if roots.is_empty() {
                return Err(ExtensionError::Tls("trustedCertificates holds no PEM certificate".into()));
            }
            t = t.root_certs(ureq::tls::RootCerts::new_with_certs(&roots));
        }
        b = b.tls_config(t.build());
    }
    Ok(b.build().into())
}

fn work(rx: Receiver<Job>, agent: &ureq::Agent, target: &Target, answer: &mut impl FnMut(Answer) -> bool) {
    for job in rx {
        let started = Instant::now();
        let outcome = match target.policy.check(&target.host, target.port) {
            Err(why) => Outcome::Failed(Failure::new(FailureKind::Refused, "address", why)),
            Ok(()) => post(agent, target, job.prepared),
        };
        if !answer(Answer { seq: job.seq, outcome, elapsed: job.prepare + started.elapsed() }) {
            return;
        }
    }
}

fn post(agent: &ureq::Agent, target: &Target, p: Prepared) -> Outcome {
    let mut req = ureq::http::Request::builder()
        .method("POST")
        .uri(&target.url)
        .header("Content-Type", &p.content_type)
        .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
    if let Some((name, value)) = &target.auth {
        req = req.header(name, value);
    }
    let req = match req.body(p.body) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(Failure::new(FailureKind::Protocol, "request", e.to_string())),
    };
    let mut resp = match agent.run(req) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(failure(e)),
    };
    let status = resp.status().as_u16();
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    match resp.body_mut().with_config().limit(MAX_REPLY).read_to_vec() {
        Ok(body) => interpret(status, content_type.as_deref(), retry_after.as_deref(), &body, &p.content),
        Err(e) => Outcome::Failed(failure(e)),
    }
}

fn failure(e: ureq::Error) -> Failure {
    use ureq::Error as E;
    match e {
        E::Timeout(t) => Failure::new(FailureKind::Network, "timeout", format!("no answer in time ({t})")),
        E::HostNotFound => Failure::new(FailureKind::Network, "connection", "the server's name does not resolve"),
        E::ConnectionFailed => Failure::new(FailureKind::Network, "connection", "cannot connect to the server"),
        E::Io(e) => Failure::new(FailureKind::Network, "connection", e.to_string()),
        E::BodyExceedsLimit(n) => {
            Failure::new(FailureKind::Protocol, "reply", format!("the reply is larger than {n} bytes"))
        }
        e @ (E::Tls(_) | E::Rustls(_) | E::Pem(_)) => Failure::new(FailureKind::Network, "tls", e.to_string()),
        e => Failure::new(FailureKind::Protocol, "protocol", e.to_string()),
    }
}
