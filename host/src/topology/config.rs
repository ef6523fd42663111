//! Typed configurations of the nodes openva runs, and topology instantiation.
//!
//! The same builders run twice: on the topology as set (stage [`Stage::Topology`], where any
//! value still holding a `${…}` is skipped) so literal mistakes are refused early, and on each
//! live pipeline's substituted nodes (stage [`Stage::Pipeline`]), where every value counts.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::catalogue::strip_type_prefix;
use super::error::{TopologyError, shown};
use super::json;
use super::model::{Node, NodeInput, ParameterDefinition, Topology};
use super::names::validate_video_name;
use super::params::{
    self, SYS_DATE_TIME, SYS_LEGACY_DATE_TIME, SYS_PIPELINE_NAME, SYS_PRECISE_DATE_TIME, SYS_TOPOLOGY_NAME,
};
use crate::archive::VideoConfig;
use crate::secrets::redact_url;
use crate::time::parse_iso_duration;

/// What a live pipeline contributes to substitution besides its parameter values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceContext {
    /// `${System.TopologyName}`.
    pub topology_name: String,
    /// `${System.PipelineName}`.
    pub pipeline_name: String,
    /// The instant behind `${System.Runtime.DateTime}` and `${System.Runtime.PreciseDateTime}`.
    pub now: jiff::Timestamp,
}

/// A topology with a live pipeline's values applied: what the runtime builds a graph from.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The nodes, in the topology's order (sources, processors, sinks).
    pub nodes: Vec<InstanceNode>,
}

/// One node of an [`Instance`].
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceNode {
    /// The node name.
    pub name: String,
    /// Upstream nodes, as in the topology.
    pub inputs: Vec<NodeInput>,
    /// The typed settings of the node.
    pub config: NodeConfig,
}

/// Typed settings of a node; types openva does not type (yet) are `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfig {
    /// An RTSP camera.
    RtspSource(RtspSourceConfig),
    /// Recording into a video.
    VideoSink(VideoSinkConfig),
    /// Any other node type (catalogue spelling, or the given suffix if unknown); the runtime
    /// decides whether it can run it and can read its settings from
    /// [`Topology::substituted_nodes`].
    Other {
        /// The node's type name.
        type_name: String,
    },
}

/// Settings of an `RtspSource`. `Debug` hides the password and any `user:password@` in the
/// URL, so logging a configuration cannot leak camera credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspSourceConfig {
    /// `endpoint.url`: an `rtsp://` or `rtsps://` URL.
    pub url: String,
    /// From `UsernamePasswordCredentials`; empty means none.
    pub username: Option<String>,
    /// From `UsernamePasswordCredentials`; empty means none.
    pub password: Option<String>,
    /// How RTP travels.
    pub transport: RtspTransport,
}

impl std::fmt::Debug for RtspSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSourceConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| super::SECRET_MASK))
            .field("transport", &self.transport)
            .finish()
    }
}

/// RTSP transport. AVA allowed `tcp` (interleaved, the default) and `http` (tunnelled);
/// openva also accepts `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtspTransport {
    /// RTP interleaved on the RTSP TCP connection.
    Tcp,
    /// RTP over UDP (openva extension).
    Udp,
    /// RTSP tunnelled in HTTP.
    Http,
}

/// Settings of a `VideoSink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSinkConfig {
    /// The video recorded into.
    pub video_name: String,
    /// `videoCreationProperties.title` (≤ 256 characters).
    pub title: Option<String>,
    /// `videoCreationProperties.description` (≤ 2048 characters).
    pub description: Option<String>,
    /// `videoCreationProperties.segmentLength` in 90 kHz ticks (30 s to 5 min in 30 s steps);
    /// `None` = the caller's default (AVA: 30 s).
    pub segment_length_90k: Option<i64>,
    /// `videoCreationProperties.retentionPeriod` in 90 kHz ticks (1 to 3650 days); `None` =
    /// keep forever.
    pub retention_90k: Option<i64>,
    /// `videoCreationProperties.maximumSizeMiB` (openva's) in bytes: the archive's cap, applied
    /// when the video is created like AVA's own creation properties.
    pub max_bytes: Option<u64>,
    /// `localMediaCacheMaximumSizeMiB` in bytes: AVA's local cache in front of remote storage
    /// (a later tier), never a cap on the archive.
    pub cache_max_bytes: Option<u64>,
    /// `localMediaCachePath`.
    pub cache_path: Option<String>,
}

/// Which pass a builder runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// On the topology: values containing `${` are not checked yet.
    Topology,
    /// On substituted values: everything is checked.
    Pipeline,
}

impl Stage {
    /// The value to check now, or `None` if it waits for substitution.
    fn literal<'a>(self, v: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
        v.filter(|s| self == Stage::Pipeline || !s.contains("${"))
    }
}

/// Builds the typed configuration of one node from its (possibly substituted) body.
pub(super) fn build(node: &Node, body: &Value, stage: Stage) -> Result<NodeConfig, TopologyError> {
    let empty = Map::new();
    let obj = body.as_object().unwrap_or(&empty);
    Ok(match (node.known, node.type_name.as_str()) {
        (true, "RtspSource") => NodeConfig::RtspSource(rtsp_source(&node.name, obj, stage)?),
        (true, "VideoSink") => NodeConfig::VideoSink(video_sink(&node.name, obj, stage)?),
        _ => NodeConfig::Other { type_name: node.type_name.clone() },
    })
}

fn rtsp_source(node: &str, obj: &Map<String, Value>, stage: Stage) -> Result<RtspSourceConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (RtspSource): {p}");
    let missing = |p: &str| TopologyError::module(format!("{} is missing", what(p)));
    let endpoint = json::opt_object(obj, "endpoint", || what("endpoint"))?.ok_or_else(|| missing("endpoint"))?;
    let url = json::opt_scalar(endpoint, "url", || what("endpoint.url"))?.ok_or_else(|| missing("endpoint.url"))?;
    if let Some(u) = stage.literal(Some(url.clone())) {
        check_rtsp_url(&u, &what("endpoint.url"))?;
    }
    let (mut username, mut password) = (None, None);
    if let Some(creds) = json::opt_object(endpoint, "credentials", || what("endpoint.credentials"))? {
        let t = json::opt_scalar(creds, "@type", || what("endpoint.credentials.@type"))?;
        if let Some(t) = stage.literal(t)
            && !strip_type_prefix(&t).is_some_and(|b| b.eq_ignore_ascii_case("UsernamePasswordCredentials"))
        {
            return Err(TopologyError::module(format!(
                "{} '{}' is not supported; use #Microsoft.VideoAnalyzer.UsernamePasswordCredentials",
                what("endpoint.credentials.@type"),
                shown(&t)
            )));
        }
        let non_empty = |v: Option<Cow<'_, str>>| v.filter(|s| !s.is_empty()).map(Cow::into_owned);
        username = non_empty(json::opt_scalar(creds, "username", || what("endpoint.credentials.username"))?);
        password = non_empty(json::opt_scalar(creds, "password", || what("endpoint.credentials.password"))?);
    }
    let transport_raw = json::opt_scalar(obj, "transport", || what("transport"))?;
    let transport = match stage.literal(transport_raw) {
        None => RtspTransport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => RtspTransport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("udp") => RtspTransport::Udp,
        Some(t) if t.eq_ignore_ascii_case("http") => RtspTransport::Http,
        Some(t) => {
            return Err(TopologyError::module(format!(
                "{} '{}' must be tcp or http (openva also accepts udp)",
                what("transport"),
                shown(&t)
            )));
        }
    };
    Ok(RtspSourceConfig { url: url.into_owned(), username, password, transport })
}

/// An RTSP URL must parse, have a host, and use `rtsp` or `rtsps`. Messages show the URL with
/// its user information hidden, as it may hold a password.
fn check_rtsp_url(url: &str, what: &str) -> Result<(), TopologyError> {
    let problem = match url::Url::parse(url) {
        Err(e) => e.to_string(),
        Ok(u) if !matches!(u.scheme(), "rtsp" | "rtsps") => "the scheme must be rtsp or rtsps".to_owned(),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => "it has no host".to_owned(),
        Ok(_) => return Ok(()),
    };
    Err(TopologyError::module(format!("{what} '{}' is not a valid RTSP URL: {problem}", shown(&redact_url(url)))))
}

fn video_sink(node: &str, obj: &Map<String, Value>, stage: Stage) -> Result<VideoSinkConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (VideoSink): {p}");
    // `videoSinkName` is an early 1.0 draft spelling kept by the corpus.
    let key = ["videoName", "videoSinkName"].into_iter().find(|k| json::get(obj, k).is_some()).unwrap_or("videoName");
    let name = json::opt_scalar(obj, key, || what(key))?
        .ok_or_else(|| TopologyError::module(format!("{} is missing", what("videoName"))))?;
    if params::references(&name).into_iter().any(params::is_date_time_variable) {
        return Err(TopologyError::module(format!(
            "{} must not use ${{System.Runtime.DateTime}} or ${{System.Runtime.PreciseDateTime}} \
             (a video keeps one name; use them in a FileSink's fileNamePattern)",
            what(key)
        )));
    }
    if let Some(n) = stage.literal(Some(name.clone())) {
        validate_video_name(&what(key), &n)?;
    }
    let mut cfg = VideoSinkConfig {
        video_name: name.into_owned(),
        title: None,
        description: None,
        segment_length_90k: None,
        retention_90k: None,
        max_bytes: None,
        cache_max_bytes: None,
        cache_path: None,
    };
    if let Some(vcp) = json::opt_object(obj, "videoCreationProperties", || what("videoCreationProperties"))? {
        let at = |p: &str| what(&format!("videoCreationProperties.{p}"));
        for (key, max, slot) in [("title", 256, &mut cfg.title), ("description", 2048, &mut cfg.description)] {
            if let Some(v) = json::opt_scalar(vcp, key, || at(key))? {
                if (stage == Stage::Pipeline || !v.contains("${")) && v.chars().count() > max {
                    return Err(TopologyError::module(format!("{} is longer than {max} characters", at(key))));
                }
                *slot = Some(v.into_owned());
            }
        }
        if let Some(v) = stage.literal(json::opt_scalar(vcp, "segmentLength", || at("segmentLength"))?) {
            let t = duration(&v, &at("segmentLength"))?;
            if !VideoConfig::segment_length_ok(t) {
                return Err(TopologyError::module(format!(
                    "{} '{}' must be {}",
                    at("segmentLength"),
                    shown(&v),
                    VideoConfig::SEGMENT_LENGTH_RULE
                )));
            }
            cfg.segment_length_90k = Some(t);
        }
        if let Some(v) = stage.literal(json::opt_scalar(vcp, "retentionPeriod", || at("retentionPeriod"))?) {
            let t = duration(&v, &at("retentionPeriod"))?;
            if !VideoConfig::retention_ok(t) {
                return Err(TopologyError::module(format!(
                    "{} '{}' must be {}",
                    at("retentionPeriod"),
                    shown(&v),
                    VideoConfig::RETENTION_RULE
                )));
            }
            cfg.retention_90k = Some(t);
        }
        if let Some(v) = stage.literal(json::opt_scalar(vcp, "maximumSizeMiB", || at("maximumSizeMiB"))?) {
            cfg.max_bytes = Some(mib(&v, &at("maximumSizeMiB"))?);
        }
    }
    if let Some(v) =
        stage.literal(json::opt_scalar(obj, "localMediaCacheMaximumSizeMiB", || what("localMediaCacheMaximumSizeMiB"))?)
    {
        cfg.cache_max_bytes = Some(mib(&v, &what("localMediaCacheMaximumSizeMiB"))?);
    }
    cfg.cache_path = json::opt_scalar(obj, "localMediaCachePath", || what("localMediaCachePath"))?
        .filter(|p| !p.is_empty())
        .map(Cow::into_owned);
    Ok(cfg)
}

/// Parses a positive whole number of MiB into bytes, naming the property on error.
fn mib(v: &str, what: &str) -> Result<u64, TopologyError> {
    VideoConfig::bytes_of_mib(v)
        .ok_or_else(|| TopologyError::module(format!("{what} '{}' must be a positive whole number of MiB", shown(v))))
}

/// Parses an ISO 8601 duration into 90 kHz ticks, naming the property on error.
fn duration(v: &str, what: &str) -> Result<i64, TopologyError> {
    parse_iso_duration(v).map_err(|_| {
        TopologyError::module(format!("{what} '{}' is not an ISO 8601 duration (e.g. PT30S, P7D)", shown(v)))
    })
}

/// `yyyyMMddTHHmmssZ` and `yyyyMMddTHHmmss.fffZ` in UTC, the two `System.Runtime` formats.
pub fn format_runtime_date_times(now: jiff::Timestamp) -> (String, String) {
    let z = now.to_zoned(jiff::tz::TimeZone::UTC);
    let base =
        format!("{:04}{:02}{:02}T{:02}{:02}{:02}", z.year(), z.month(), z.day(), z.hour(), z.minute(), z.second());
    (format!("{base}Z"), format!("{base}.{:03}Z", z.millisecond()))
}

impl Topology {
    /// Applies a live pipeline to this topology: checks the values
    /// ([`Topology::check_parameters`]), substitutes `${param}` and the `${System.…}` variables
    /// in every string of every node (also inside longer strings), and builds the typed
    /// configurations. Errors are `ModuleValidation` and name the node and property.
    pub fn instantiate(
        &self,
        ctx: &InstanceContext,
        values: &[ParameterDefinition],
    ) -> Result<Instance, TopologyError> {
        let bodies = self.substituted_nodes(ctx, values)?;
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (node, body) in self.nodes.iter().zip(&bodies) {
            nodes.push(InstanceNode {
                name: node.name.clone(),
                inputs: node.inputs.clone(),
                config: build(node, body, Stage::Pipeline)?,
            });
        }
        Ok(Instance { nodes })
    }

    /// Every node's JSON body after substitution, in node order: the settings of node types
    /// that have no typed [`NodeConfig`] yet (signal gate timings, file sink pattern, …).
    /// Checks the values first, like [`Topology::instantiate`].
    pub fn substituted_nodes(
        &self,
        ctx: &InstanceContext,
        values: &[ParameterDefinition],
    ) -> Result<Vec<Value>, TopologyError> {
        self.check_parameters(values)?;
        let vars = self.effective_values(values);
        let (date_time, precise) = format_runtime_date_times(ctx.now);
        let lookup = |name: &str| -> Option<&str> {
            if let Some(v) = vars.get(name) {
                return Some(v);
            }
            match params::system_variable(name)? {
                SYS_TOPOLOGY_NAME => Some(&ctx.topology_name),
                SYS_PIPELINE_NAME => Some(&ctx.pipeline_name),
                SYS_DATE_TIME | SYS_LEGACY_DATE_TIME => Some(&date_time),
                SYS_PRECISE_DATE_TIME => Some(&precise),
                _ => None,
            }
        };
        // Bytes of strings produced so far, across every node.
        let mut total = 0usize;
        self.nodes
            .iter()
            .map(|node| {
                json::map_strings(&node.body, &mut |s: &str| {
                    let out = params::substitute(s, &lookup).ok_or_else(|| {
                        TopologyError::module(format!(
                            "node '{}': a value is longer than 64 KiB after parameter substitution",
                            node.name
                        ))
                    })?;
                    total += out.len();
                    if total > json::MAX_SUBSTITUTED_LEN {
                        return Err(TopologyError::module(format!(
                            "node '{}': the topology's values are longer than {} MiB in all after parameter \
                             substitution",
                            node.name,
                            json::MAX_SUBSTITUTED_LEN >> 20
                        )));
                    }
                    Ok(out)
                })
            })
            .collect()
    }
}
