//! Live pipelines: AVA's topologies and live pipelines, their life cycle and their persistence.
//!
//! The runtime keeps every topology and pipeline in memory and in `control.db`; mutating calls
//! are serialised (AVA's methods were synchronous and not meant to run in parallel), reads are
//! not. Each active pipeline runs on its own thread with its own single-threaded tokio
//! runtime, so a camera or disk that blocks stalls only its own pipeline, never another one or
//! the API. A pipeline that was active when the host stopped (or was killed) is activated
//! again at start and keeps recording into the same video.

use super::analysis;
use super::jobs::JobOptions;
use super::metrics::{Metrics, PipelineMetrics};
use super::record::{self, Observer, Policy, RecordError};
use super::store::{Store, Table};
use crate::archive::writer::{RunStats, VideoWriter};
use crate::archive::{Archive, ArchiveError, VideoConfig};
use crate::events::{Bus, EventType};
use crate::ingest::rtsp::{AccessUnit, IngestError, SourceOptions, redact};
use crate::plugins::PluginHost;
use crate::time::Time90k;
use crate::topology::{
    self, ErrorKind, InstanceContext, NodeConfig, ParameterDefinition, RtspTransport, Topology, TopologyError,
    TopologyKind,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// AVA's edge limit on topologies.
pub const MAX_TOPOLOGIES: usize = 50;
/// AVA's edge limit on live pipelines.
pub const MAX_PIPELINES: usize = 1000;
/// Segment length when a video sink does not set one (AVA's default).
pub const DEFAULT_SEGMENT_90K: i64 = 30 * crate::time::TICKS_PER_SEC;
/// Pause before a pipeline whose archive failed (full disk…) tries to record again.
const STORAGE_RETRY: Duration = Duration::from_secs(5);

/// Why a control call failed. The API maps each kind to AVA's status and error codes.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// No such topology or pipeline.
    #[error("{kind} '{name}' was not found")]
    NotFound {
        /// "pipeline topology" or "live pipeline".
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The topology or pipeline is invalid (AVA's PipelineValidationError/ModuleValidationError).
    #[error(transparent)]
    Invalid(#[from] TopologyError),
    /// A topology still referenced by pipelines cannot be deleted or changed.
    #[error("pipeline topology '{topology}' is in use by {pipelines}")]
    TopologyInUse {
        /// Topology name.
        topology: String,
        /// Referencing live pipelines and pipeline jobs, described for a human.
        pipelines: String,
    },
    /// The pipeline's state does not allow the operation.
    #[error("live pipeline '{name}' cannot be {op} while it is {state}")]
    NotAllowedInState {
        /// Pipeline name.
        name: String,
        /// What was attempted ("deleted", "activated"…).
        op: &'static str,
        /// Current state.
        state: State,
    },
    /// A referenced resource is missing or busy (AVA's ResourceValidationError).
    #[error("{0}")]
    Resource(String),
    /// The control database failed.
    #[error("control store: {0}")]
    Store(#[from] rusqlite::Error),
    /// The archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// A pipeline job's state does not allow the operation.
    #[error("pipeline job '{name}' cannot be {op} while it is {state}")]
    JobNotAllowed {
        /// Job name.
        name: String,
        /// What was attempted.
        op: &'static str,
        /// Its state.
        state: &'static str,
    },
    /// The entity is declared by a file of the watched folder; change the file instead.
    #[error(
        "{kind} '{name}' is managed by the file '{file}' of the topologies folder; change or remove that file instead"
    )]
    FileManaged {
        /// "pipeline topology" or "live pipeline".
        kind: &'static str,
        /// Its name.
        name: String,
        /// The file declaring it.
        file: String,
    },
    /// Too much work queued already (503 with `Retry-After`).
    #[error("{message}")]
    Busy {
        /// Why.
        message: String,
        /// When to try again.
        retry_after_s: u32,
    },
}

/// AVA's live pipeline states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running.
    Inactive,
    /// Being started.
    Activating,
    /// Running (possibly retrying an offline camera).
    Active,
    /// Being stopped.
    Deactivating,
}

impl State {
    /// AVA's spelling (edge: lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Activating => "activating",
            State::Active => "active",
            State::Deactivating => "deactivating",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored topology.
/// Who manages an entity: the API (stored in `control.db`), or a file of the watched
/// topologies folder (the file is the store; the API may read but not change it).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Origin {
    /// Set through the API.
    #[default]
    Api,
    /// Declared by this file (path relative to the watched folder).
    File(String),
}

impl Origin {
    fn system_data(&self, v: &mut Value) {
        if let Some(o) = v.get_mut("systemData").and_then(Value::as_object_mut) {
            let (by, by_type) = match self {
                Origin::Api => (Value::Null, "Api"),
                Origin::File(f) => (json!(f), "File"),
            };
            if !by.is_null() {
                o.insert("lastModifiedBy".into(), by);
            }
            o.insert("lastModifiedByType".into(), json!(by_type));
        }
    }
}

pub(super) struct TopologyEntry {
    pub(super) topology: Arc<Topology>,
    pub(super) created: Time90k,
    pub(super) modified: Time90k,
    pub(super) origin: Origin,
}

/// What a live pipeline is, as set by `livePipelineSet`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PipelineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
    pub(super) topology_name: String,
    #[serde(default)]
    pub(super) parameters: Vec<ParameterDefinition>,
}

pub(super) struct PipelineEntry {
    pub(super) spec: PipelineSpec,
    pub(super) state: State,
    pub(super) created: Time90k,
    pub(super) modified: Time90k,
    pub(super) running: Option<Running>,
    /// Video the running pipeline records into.
    pub(super) video: Option<String>,
    pub(super) origin: Origin,
}

/// A running pipeline's handles.
pub(super) struct Running {
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<()>,
    /// What it records from and into: a new configuration with the same key is applied in
    /// place (only the analysis branch changes), so recording never stops.
    pub(super) key: RecordingKey,
    pub(super) observer: Arc<EventObserver>,
}

/// The settings that need a new RTSP session or writer when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RecordingKey {
    source: SourceOptions,
    video: Option<(String, VideoConfig, Option<String>, Option<String>)>,
}

impl Plan {
    pub(super) fn recording_key(&self) -> RecordingKey {
        RecordingKey {
            source: self.source.clone(),
            video: self
                .video
                .as_ref()
                .map(|v| (v.video.clone(), v.config.clone(), v.title.clone(), v.description.clone())),
        }
    }
}

pub(super) struct Inner {
    pub(super) topologies: BTreeMap<String, TopologyEntry>,
    pub(super) pipelines: BTreeMap<String, PipelineEntry>,
}

/// The live-pipeline runtime of one host.
pub struct Runtime {
    pub(super) archive: Arc<Archive>,
    /// The plugin host, when the host runs with a plugins directory.
    pub(super) plugins: Option<Arc<PluginHost>>,
    pub(super) events: Arc<Bus>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) store: Mutex<Store>,
    pub(super) inner: Mutex<Inner>,
    /// Serialises mutating calls.
    pub(super) ops: tokio::sync::Mutex<()>,
    /// Pipeline jobs and their queue.
    pub(super) jobs: super::jobs::Jobs,
    /// The watched topologies folder's state.
    pub(super) folder: Mutex<super::folder::FolderState>,
}

/// Node types this host can run today.
const RUNNABLE: &[&str] =
    &["RtspSource", "VideoSink", "MotionDetectionProcessor", "IotHubMessageSink", "WasmProcessor"];

pub(super) fn system_data(created: Time90k, modified: Time90k) -> Value {
    json!({"createdAt": created.to_iso_millis(), "lastModifiedAt": modified.to_iso_millis()})
}

pub(super) fn module_error(message: String) -> PipelineError {
    PipelineError::Invalid(TopologyError { kind: ErrorKind::ModuleValidation, message })
}

/// A batch topology's settings are checked when it is set if they hold no `${…}` (the
/// common case of a topology written for one export); parameterised ones when a job sets them.
fn check_batch_literals(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
    let encoder_scales = |v: &Value| {
        get_ci(v, "preset").is_some_and(|p| {
            get_ci(p, "@type").and_then(Value::as_str).is_some_and(|t| t.ends_with("EncoderSystemPreset"))
                || get_ci(p, "videoEncoder").and_then(|e| get_ci(e, "scale")).is_some()
        })
    };
    if let Some(n) = t.nodes.iter().find(|n| n.type_name == "EncoderProcessor" && encoder_scales(&n.body))
        && plugins.is_none_or(|p| p.get("scale").is_err())
    {
        return Err(module_error(format!(
            "node '{}' (EncoderProcessor) scales, which needs the 'scale' plugin; start the host with --plugins DIR",
            n.name
        )));
    }
    // An encoder without parameters is checked on its own even if the ranges are parameters.
    for n in t.nodes.iter().filter(|n| n.type_name == "EncoderProcessor" && !n.body.to_string().contains("${")) {
        super::batch::encoder(&n.name, &n.body)?;
    }
    if t.nodes.iter().any(|n| n.body.to_string().contains("${")) {
        return Ok(());
    }
    let nodes: Vec<(String, String, Value)> =
        t.nodes.iter().map(|n| (n.type_name.clone(), n.name.clone(), n.body.clone())).collect();
    super::batch::plan(&nodes)?;
    Ok(())
}

/// Refuses topologies with nodes this host cannot run yet (AVA: ModuleValidationError). The
/// message names the node and its type as written in the topology.
pub(super) fn check_runnable(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
    if t.kind == TopologyKind::Batch {
        return check_batch_literals(t, plugins);
    }
    for n in &t.nodes {
        // Processors run as plugins: AVA's motion detector is the `motion` plugin.
        let plugin = match n.type_name.as_str() {
            "MotionDetectionProcessor" => Some("motion"),
            "WasmProcessor" => get_ci(&n.body, "plugin").and_then(Value::as_str).filter(|p| !p.contains("${")),
            _ => None,
        };
        // A literal sampling rate is checked now; one from a parameter when a pipeline sets it.
        if n.type_name == "WasmProcessor" && !n.body.to_string().contains("${") {
            sampling_interval(&n.name, &n.body)?;
        }
        if let Some(plugin) = plugin {
            match plugins {
                None => {
                    return Err(module_error(format!(
                        "node '{}' needs the plugin '{plugin}', but this host runs without plugins (start it with --plugins DIR)",
                        n.name
                    )));
                }
                Some(h) => {
                    h.get(plugin).map_err(|e| module_error(format!("node '{}': {e}", n.name)))?;
                }
            }
        }
        let written = get_ci(&n.body, "@type").and_then(Value::as_str).unwrap_or(&n.type_name);
        if !n.known {
            return Err(module_error(format!("node '{}' has unknown type '{written}'", n.name)));
        }
        if !RUNNABLE.contains(&n.type_name.as_str()) {
            return Err(module_error(format!(
                "node '{}' of type '{written}' is not supported by this host yet (supported: {})",
                n.name,
                RUNNABLE.join(", ")
            )));
        }
    }
    Ok(())
}

/// A member of an AVA body, matched case-insensitively, `null` as absent (`topology::json`).
pub(super) use crate::topology::json::member as get_ci;

/// The typed configuration of a pipeline ready to run.
pub(super) struct Plan {
    pub(super) source_node: String,
    pub(super) source: SourceOptions,
    /// The video sink, if the topology records.
    video: Option<VideoPlan>,
    /// Processor nodes in topological order.
    pub(super) processors: Vec<ProcessorPlan>,
    /// IoT Hub message sinks (inference outlets).
    pub(super) hubs: Vec<analysis::HubSink>,
}

#[derive(Clone)]
struct VideoPlan {
    sink_node: String,
    video: String,
    config: VideoConfig,
    title: Option<String>,
    description: Option<String>,
}

impl VideoPlan {
    /// Opens the sink's video for writing (creating it with the sink's creation properties).
    fn open(&self, archive: &Arc<Archive>) -> Result<VideoWriter, PipelineError> {
        let w = VideoWriter::open(archive.clone(), &self.video, self.config.clone()).map_err(|e| match e {
            ArchiveError::Locked(v) => {
                PipelineError::Resource(format!("video '{v}' is already being recorded by another pipeline"))
            }
            // The sink names a File video (a batch result): not something to record into.
            e @ ArchiveError::FileVideo { .. } => PipelineError::Resource(e.to_string()),
            e => PipelineError::Archive(e),
        })?;
        if w.created() {
            archive.set_video_info(&self.video, self.title.as_deref(), self.description.as_deref())?;
        }
        Ok(w)
    }
}

/// A pipeline's writer as its thread gets it: open, or still to be opened (the host activated
/// the pipeline while the archive could not open the video; the error says why).
enum Writer {
    Open(Box<VideoWriter>),
    Pending(VideoPlan, String),
}

pub(super) struct ProcessorPlan {
    node: String,
    input: String,
    plugin: String,
    config: Value,
    /// From `samplingOptions.maximumSamplesPerSecond`: least 90 kHz ticks between frames.
    interval: Option<i64>,
}

/// Highest sampling rate accepted: above any camera's frame rate, so it means "every frame".
const MAX_SAMPLES_PER_SECOND: f64 = 1000.0;

/// AVA's `samplingOptions` of an extension-style node: `maximumSamplesPerSecond` (a number, or
/// a numeric string as AVA writes it) → least 90 kHz ticks between processed frames.
fn sampling_interval(node: &str, body: &Value) -> Result<Option<i64>, PipelineError> {
    let Some(opts) = get_ci(body, "samplingOptions").filter(|v| !v.is_null()) else { return Ok(None) };
    let field = format!("node '{node}': samplingOptions.maximumSamplesPerSecond");
    if !opts.is_object() {
        return Err(module_error(format!("node '{node}': samplingOptions must be an object")));
    }
    let rate = match get_ci(opts, "maximumSamplesPerSecond") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(t)) => t.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match rate {
        Some(r) if r > 0.0 && r <= MAX_SAMPLES_PER_SECOND => {
            Ok(Some((crate::time::TICKS_PER_SEC as f64 / r).round() as i64))
        }
        _ => Err(module_error(format!("{field} must be a number above 0 and at most {MAX_SAMPLES_PER_SECOND}"))),
    }
}

impl Runtime {
    /// Opens the runtime on a data directory (archive + control store) and re-activates the
    /// pipelines that were active when the host last stopped.
    pub async fn open(
        data: &Path,
        events: Arc<Bus>,
        plugins: Option<Arc<PluginHost>>,
    ) -> Result<Arc<Runtime>, PipelineError> {
        Self::open_with(data, events, plugins, JobOptions::default(), None).await
    }

    /// [`Runtime::open`] with pipeline job settings and a topologies folder, whose files are
    /// applied (see [`super::folder`]) before the stored pipelines resume, so a stored
    /// pipeline may use a topology a file declares.
    pub async fn open_with(
        data: &Path,
        events: Arc<Bus>,
        plugins: Option<Arc<PluginHost>>,
        job_options: JobOptions,
        folder: Option<&Path>,
    ) -> Result<Arc<Runtime>, PipelineError> {
        let archive = Arc::new(Archive::open_or_create(data)?);
        let bus = events.clone();
        archive.set_listener(move |n| publish_notice(&bus, n));
        let store = Store::open(data)?;
        let (jobs, interrupted) = super::jobs::Jobs::load(store.load(Table::Job)?, job_options);
        for (name, json) in interrupted {
            tracing::warn!(job = name, "pipeline job was processing when the host stopped: marked Failed");
            store.put(Table::Job, &name, &json, Time90k::now())?;
        }
        let mut topologies = BTreeMap::new();
        for row in store.load(Table::Topology)? {
            match topology::parse_str(&row.json) {
                Ok(t) => {
                    topologies.insert(
                        row.name.clone(),
                        TopologyEntry {
                            topology: Arc::new(t),
                            created: row.created,
                            modified: row.modified,
                            origin: Origin::Api,
                        },
                    );
                }
                Err(e) => tracing::error!(topology = row.name, "stored topology no longer parses, skipped: {e}"),
            }
        }
        let mut pipelines = BTreeMap::new();
        let mut resume = Vec::new();
        for row in store.load(Table::Pipeline)? {
            match serde_json::from_str::<PipelineSpec>(&row.json) {
                Ok(spec) => {
                    if row.active {
                        resume.push(row.name.clone());
                    }
                    pipelines.insert(
                        row.name.clone(),
                        PipelineEntry {
                            spec,
                            state: State::Inactive,
                            created: row.created,
                            modified: row.modified,
                            running: None,
                            video: None,
                            origin: Origin::Api,
                        },
                    );
                }
                Err(e) => tracing::error!(pipeline = row.name, "stored live pipeline unreadable, skipped: {e}"),
            }
        }
        let rt = Arc::new(Runtime {
            archive,
            plugins,
            events,
            metrics: Arc::new(Metrics::default()),
            store: Mutex::new(store),
            inner: Mutex::new(Inner { topologies, pipelines }),
            ops: tokio::sync::Mutex::new(()),
            jobs,
            folder: Mutex::default(),
        });
        if let Some(dir) = folder {
            let n = rt.sync_folder(dir).await;
            tracing::info!("{n} file(s) applied from {}", dir.display());
        }
        super::jobs::start_workers(&rt)
            .map_err(|e| PipelineError::Resource(format!("cannot start job workers: {e}")))?;
        for name in resume {
            // Host-driven: a video that cannot be opened yet (a disk error) is retried by the
            // pipeline with backoff and events, never left inactive silently.
            match rt.activate_any(&name).await {
                Ok(()) => tracing::info!(pipeline = name, "resumed"),
                Err(e) => {
                    // A configuration that no longer applies (a topology or plugin gone): the
                    // pipeline stays inactive, and says so where operators look.
                    tracing::error!(pipeline = name, "could not resume: {e}");
                    rt.events.publish(
                        format!("/livePipelines/{name}"),
                        EventType::RuntimeError,
                        json!({"kind": "resume", "message": format!("the pipeline could not resume: {e}")}),
                    );
                }
            }
        }
        Ok(rt)
    }

    pub(super) fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The archive the sinks write to.
    pub fn archive(&self) -> &Arc<Archive> {
        &self.archive
    }

    /// The event bus.
    pub fn events(&self) -> &Arc<Bus> {
        &self.events
    }

    /// Prometheus text of the runtime's metrics.
    pub fn metrics_text(&self) -> String {
        let active: Vec<(String, String)> = self
            .inner()
            .pipelines
            .iter()
            .filter(|(_, p)| p.state == State::Active)
            .map(|(n, p)| (n.clone(), p.spec.topology_name.clone()))
            .collect();
        self.metrics.render(&active)
    }

    /// Whether an active pipeline records into `video` (AVA's `flags.isInUse`).
    pub fn video_in_use(&self, video: &str) -> bool {
        self.inner().pipelines.values().any(|p| p.state != State::Inactive && p.video.as_deref() == Some(video))
    }

    // ---- topologies ----

    /// `pipelineTopologySet`: creates (returns true) or updates a topology.
    pub async fn topology_set(&self, body: &Value) -> Result<(bool, Value), PipelineError> {
        let t = topology::parse(body)?;
        check_runnable(&t, self.plugins.as_deref())?;
        let _op = self.ops.lock().await;
        let name = t.name.clone();
        self.check_api_managed_topology(&name)?;
        let mut stored = body.clone();
        if let Some(o) = stored.as_object_mut() {
            crate::topology::json::remove_all(o, "systemData");
        }
        {
            let inner = self.inner();
            if let Some(old) = inner.topologies.get(&name) {
                // Setting the same topology again (re-running an operations script) changes
                // nothing and is allowed in any state.
                if old.topology.to_entity_json() == t.to_entity_json() && old.topology.parameters == t.parameters {
                    return Ok((false, topology_entity(old)));
                }
            }
            let busy: Vec<String> = inner
                .pipelines
                .iter()
                .filter(|(_, p)| p.spec.topology_name == name && p.state != State::Inactive)
                .map(|(n, _)| n.clone())
                .collect();
            if !busy.is_empty() {
                return Err(PipelineError::TopologyInUse {
                    topology: name,
                    pipelines: format!("live pipeline(s): {}", busy.join(", ")),
                });
            }
            let jobs = self.jobs.processing_with(&name);
            if !jobs.is_empty() {
                return Err(PipelineError::TopologyInUse {
                    topology: name,
                    pipelines: format!("processing pipeline job(s): {}", jobs.join(", ")),
                });
            }
            let old = inner.topologies.get(&name).map(|e| e.topology.clone());
            for (pname, p) in inner.pipelines.iter().filter(|(_, p)| p.spec.topology_name == name) {
                // Every referencing pipeline must still be valid (AVA revalidates on update)…
                plan(&t, pname, &p.spec, self.plugins.as_deref())
                    .map_err(|e| module_error(format!("the update would break live pipeline '{pname}': {e}")))?;
                // …and a value stored as a secret must stay one, or GET would reveal it.
                if let Some(old) = &old
                    && let Some(d) = p.spec.parameters.iter().find(|d| old.is_secret(&d.name) && !t.is_secret(&d.name))
                {
                    return Err(module_error(format!(
                        "parameter '{}' is a SecretString set by live pipeline '{pname}'; it cannot become \
                         a non-secret type while a pipeline references the topology",
                        d.name
                    )));
                }
            }
            if !inner.topologies.contains_key(&name) && inner.topologies.len() >= MAX_TOPOLOGIES {
                return Err(module_error(format!("at most {MAX_TOPOLOGIES} pipeline topologies are allowed")));
            }
        }
        let now = Time90k::now();
        let (created, at) = self.store().put(Table::Topology, &name, &stored.to_string(), now)?;
        let entry = TopologyEntry { topology: Arc::new(t), created: at, modified: now, origin: Origin::Api };
        let reply = topology_entity(&entry);
        self.inner().topologies.insert(name, entry);
        Ok((created, reply))
    }

    /// `pipelineTopologyGet`.
    pub fn topology_get(&self, name: &str) -> Result<Value, PipelineError> {
        self.inner()
            .topologies
            .get(name)
            .map(topology_entity)
            .ok_or_else(|| PipelineError::NotFound { kind: "pipeline topology", name: name.to_owned() })
    }

    /// `pipelineTopologyList`.
    pub fn topology_list(&self) -> Vec<Value> {
        self.inner().topologies.values().map(topology_entity).collect()
    }

    /// `pipelineTopologyDelete`: returns whether it existed.
    pub async fn topology_delete(&self, name: &str) -> Result<bool, PipelineError> {
        let _op = self.ops.lock().await;
        self.check_api_managed_topology(name)?;
        {
            let inner = self.inner();
            let users: Vec<&String> =
                inner.pipelines.iter().filter(|(_, p)| p.spec.topology_name == name).map(|(n, _)| n).collect();
            if !users.is_empty() {
                return Err(PipelineError::TopologyInUse {
                    topology: name.to_owned(),
                    pipelines: format!(
                        "live pipeline(s): {}",
                        users.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        let jobs = self.jobs.referencing(name);
        if !jobs.is_empty() {
            return Err(PipelineError::TopologyInUse {
                topology: name.to_owned(),
                pipelines: format!("pipeline job(s): {} (delete them first)", jobs.join(", ")),
            });
        }
        let existed = self.store().delete(Table::Topology, name)?;
        self.inner().topologies.remove(name);
        Ok(existed)
    }

    // ---- live pipelines ----

    /// `livePipelineSet`: creates (returns true) or updates a live pipeline. `body` is the
    /// entity `{"name", "properties": {"topologyName", "parameters", "description"}}`.
    pub async fn pipeline_set(&self, body: &Value) -> Result<(bool, Value), PipelineError> {
        let invalid = |m: &str| module_error(format!("invalid live pipeline: {m}"));
        let name =
            get_ci(body, "name").and_then(Value::as_str).ok_or_else(|| invalid("'name' (string) is required"))?;
        topology::validate_name("live pipeline", name)?;
        let props = get_ci(body, "properties").ok_or_else(|| invalid("'properties' is required"))?;
        let spec = parse_spec(props, "live pipeline")?;
        let _op = self.ops.lock().await;
        self.check_api_managed_pipeline(name)?;
        let topo = self.inner().topologies.get(&spec.topology_name).map(|t| t.topology.clone()).ok_or_else(|| {
            PipelineError::Resource(format!("pipeline topology '{}' does not exist", spec.topology_name))
        })?;
        if topo.kind == TopologyKind::Batch {
            return Err(module_error(format!(
                "pipeline topology '{}' is of kind Batch: run it as a pipeline job (PUT /api/pipelineJobs/NAME), not a live pipeline",
                spec.topology_name
            )));
        }
        topo.check_parameters(&spec.parameters)?;
        // Build the typed plan now, so a bad URL or video name is reported by the set, not
        // later by the activation.
        plan(&topo, name, &spec, self.plugins.as_deref())?;
        {
            let inner = self.inner();
            if let Some(p) = inner.pipelines.get(name) {
                if p.state != State::Inactive && p.spec != spec {
                    return Err(PipelineError::NotAllowedInState {
                        name: name.to_owned(),
                        op: "changed",
                        state: p.state,
                    });
                }
            } else if inner.pipelines.len() >= MAX_PIPELINES {
                return Err(module_error(format!("at most {MAX_PIPELINES} live pipelines are allowed")));
            }
        }
        let now = Time90k::now();
        let json = serde_json::to_string(&spec).map_err(|e| invalid(&e.to_string()))?;
        let (created, at) = self.store().put(Table::Pipeline, name, &json, now)?;
        let mut inner = self.inner();
        let entry = inner.pipelines.entry(name.to_owned()).or_insert_with(|| PipelineEntry {
            spec: spec.clone(),
            state: State::Inactive,
            created: at,
            modified: now,
            running: None,
            video: None,
            origin: Origin::Api,
        });
        entry.spec = spec;
        entry.modified = now;
        let reply = pipeline_entity(name, entry, &topo);
        Ok((created, reply))
    }

    /// `livePipelineGet`.
    pub fn pipeline_get(&self, name: &str) -> Result<Value, PipelineError> {
        let inner = self.inner();
        let p = inner
            .pipelines
            .get(name)
            .ok_or_else(|| PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() })?;
        let topo = inner.topologies.get(&p.spec.topology_name).map(|t| t.topology.clone());
        Ok(pipeline_entity_opt(name, p, topo.as_deref()))
    }

    /// `livePipelineList`.
    pub fn pipeline_list(&self) -> Vec<Value> {
        let inner = self.inner();
        inner
            .pipelines
            .iter()
            .map(|(n, p)| {
                let topo = inner.topologies.get(&p.spec.topology_name).map(|t| t.topology.clone());
                pipeline_entity_opt(n, p, topo.as_deref())
            })
            .collect()
    }

    /// `livePipelineDelete`: only inactive pipelines; returns whether it existed.
    pub async fn pipeline_delete(&self, name: &str) -> Result<bool, PipelineError> {
        let _op = self.ops.lock().await;
        self.check_api_managed_pipeline(name)?;
        match self.inner().pipelines.get(name) {
            None => return Ok(false),
            Some(p) if p.state != State::Inactive => {
                return Err(PipelineError::NotAllowedInState { name: name.to_owned(), op: "deleted", state: p.state });
            }
            Some(_) => {}
        }
        self.store().delete(Table::Pipeline, name)?;
        self.inner().pipelines.remove(name);
        self.metrics.remove(name);
        Ok(true)
    }

    /// Refuses API changes to a topology a file declares.
    fn check_api_managed_topology(&self, name: &str) -> Result<(), PipelineError> {
        match self.inner().topologies.get(name).map(|t| t.origin.clone()) {
            Some(Origin::File(file)) => {
                Err(PipelineError::FileManaged { kind: "pipeline topology", name: name.to_owned(), file })
            }
            _ => Ok(()),
        }
    }

    /// Refuses API changes to a live pipeline a file declares.
    fn check_api_managed_pipeline(&self, name: &str) -> Result<(), PipelineError> {
        match self.inner().pipelines.get(name).map(|p| p.origin.clone()) {
            Some(Origin::File(file)) => {
                Err(PipelineError::FileManaged { kind: "live pipeline", name: name.to_owned(), file })
            }
            _ => Ok(()),
        }
    }

    fn state_of(&self, name: &str) -> Result<State, PipelineError> {
        self.inner()
            .pipelines
            .get(name)
            .map(|p| p.state)
            .ok_or_else(|| PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() })
    }

    /// `livePipelineActivate`: idempotent; refused while deactivating. Must run on a
    /// multi-threaded tokio runtime (opening the video is blocking file I/O, moved off the
    /// async workers with `block_in_place`).
    pub async fn activate(&self, name: &str) -> Result<(), PipelineError> {
        self.check_api_managed_pipeline(name)?;
        self.activate_inner(name, false).await
    }

    /// Activation by the host itself (resuming after a restart, the folder sync): as
    /// [`Self::activate`], except that a video the archive cannot open yet does not fail it:
    /// the pipeline becomes active and keeps trying, with an event each time (nobody waits
    /// on this call to be told).
    pub(super) async fn activate_any(&self, name: &str) -> Result<(), PipelineError> {
        self.activate_inner(name, true).await
    }

    async fn activate_inner(&self, name: &str, host_driven: bool) -> Result<(), PipelineError> {
        if self.state_of(name)? == State::Deactivating {
            return Err(PipelineError::NotAllowedInState {
                name: name.to_owned(),
                op: "activated",
                state: State::Deactivating,
            });
        }
        let _op = self.ops.lock().await;
        let (spec, topo) = {
            let mut inner = self.inner();
            let Inner { topologies, pipelines } = &mut *inner;
            let p = pipelines
                .get_mut(name)
                .ok_or_else(|| PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() })?;
            match p.state {
                State::Active => return Ok(()),
                State::Deactivating => {
                    return Err(PipelineError::NotAllowedInState {
                        name: name.to_owned(),
                        op: "activated",
                        state: State::Deactivating,
                    });
                }
                State::Inactive | State::Activating => {}
            }
            let topo = topologies.get(&p.spec.topology_name).map(|t| t.topology.clone()).ok_or_else(|| {
                PipelineError::Resource(format!("pipeline topology '{}' does not exist", p.spec.topology_name))
            })?;
            p.state = State::Activating;
            (p.spec.clone(), topo)
        };
        // Opening the video may recover segments a crash left open: file I/O, off the API's
        // async workers.
        let started = tokio::task::block_in_place(|| self.start(name, &spec, &topo, host_driven));
        // Persist the desired state before reporting success: after a crash the pipeline
        // must come back as the caller was told it is.
        let started = started.and_then(|(running, video)| match self.store().set_active(name, true) {
            Ok(()) => Ok((running, video)),
            Err(e) => {
                let _ = running.stop.send(true);
                Err(e.into())
            }
        });
        let mut inner = self.inner();
        let Some(p) = inner.pipelines.get_mut(name) else {
            return Err(PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() });
        };
        match started {
            Ok((running, video)) => {
                p.state = State::Active;
                p.running = Some(running);
                p.video = video;
                Ok(())
            }
            Err(e) => {
                p.state = State::Inactive;
                Err(e)
            }
        }
    }

    /// `livePipelineDeactivate`: idempotent; waits until the pipeline has stopped and its
    /// last fragment is stored. Refused while activating. The wait happens outside the lock
    /// that serialises control calls, so a pipeline slow to stop (a stalled disk) holds up
    /// only callers of this pipeline.
    pub async fn deactivate(&self, name: &str) -> Result<(), PipelineError> {
        self.check_api_managed_pipeline(name)?;
        self.deactivate_any(name).await
    }

    /// Deactivation whoever manages the pipeline.
    pub(super) async fn deactivate_any(&self, name: &str) -> Result<(), PipelineError> {
        if self.state_of(name)? == State::Activating {
            return Err(PipelineError::NotAllowedInState {
                name: name.to_owned(),
                op: "deactivated",
                state: State::Activating,
            });
        }
        let running = {
            let _op = self.ops.lock().await;
            let running = {
                let mut inner = self.inner();
                let p = inner
                    .pipelines
                    .get_mut(name)
                    .ok_or_else(|| PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() })?;
                match p.state {
                    State::Inactive => None,
                    // Another caller is stopping it: wait below for the same outcome.
                    State::Deactivating => None,
                    State::Active | State::Activating => {
                        p.state = State::Deactivating;
                        p.running.take()
                    }
                }
            };
            // Always: a pipeline that failed to resume at start is inactive in memory but
            // still marked active in the store; deactivating it must stick.
            self.store().set_active(name, false)?;
            running
        };
        if let Some(r) = running {
            stop(r).await;
            let mut inner = self.inner();
            if let Some(p) = inner.pipelines.get_mut(name) {
                p.state = State::Inactive;
                p.video = None;
            }
        } else {
            // Deactivating elsewhere: wait until that caller is done.
            while self.state_of(name)? == State::Deactivating {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Stops every running pipeline for a host shutdown, keeping their desired state so the
    /// next start resumes them.
    pub async fn shutdown(&self) {
        self.jobs.stop();
        let _op = self.ops.lock().await;
        let running: Vec<Running> = {
            let mut inner = self.inner();
            inner
                .pipelines
                .values_mut()
                .filter_map(|p| {
                    p.state = State::Inactive;
                    p.running.take()
                })
                .collect()
        };
        futures::future::join_all(running.into_iter().map(stop)).await;
        self.archive.close_staging();
    }

    /// The analysis branch of a plan (none without processors): plugins instantiated and
    /// configured here, so a refused configuration is the caller's error.
    pub(super) fn analysis_for(
        &self,
        name: &str,
        source_node: &str,
        processors: Vec<ProcessorPlan>,
        hubs: Vec<analysis::HubSink>,
        metrics: &Arc<PipelineMetrics>,
    ) -> Result<Option<analysis::Analysis>, PipelineError> {
        if processors.is_empty() {
            return Ok(None);
        }
        let host = self.plugins.as_ref().ok_or_else(|| module_error("this host runs without plugins".into()))?;
        let mut built = Vec::new();
        for p in processors {
            let instance =
                host.instantiate(&p.plugin, &p.config).map_err(|e| module_error(format!("node '{}': {e}", p.node)))?;
            built.push(analysis::Processor { node: p.node, input: p.input, instance, interval: p.interval });
        }
        let a = analysis::Analysis::start(name, source_node, built, hubs, self.events.clone(), metrics.clone())
            .map_err(|e| module_error(format!("cannot start the analysis thread: {e}")))?;
        Ok(Some(a))
    }

    /// Starts a pipeline's thread. Opening the writer and configuring the plugins here (not on
    /// the thread) reports a video already being recorded, an unwritable archive or a plugin
    /// that refuses its configuration as the activation's error.
    fn start(
        &self,
        name: &str,
        spec: &PipelineSpec,
        topo: &Topology,
        host_driven: bool,
    ) -> Result<(Running, Option<String>), PipelineError> {
        let mut plan = plan(topo, name, spec, self.plugins.as_deref())?;
        let writer = match &plan.video {
            None => None,
            Some(v) => match v.open(&self.archive) {
                Ok(w) => Some(Writer::Open(Box::new(w))),
                // A storage failure (not a wrong name): the thread keeps trying.
                Err(PipelineError::Archive(e)) if host_driven => {
                    tracing::error!(pipeline = name, video = v.video, "cannot open the video yet: {e}; retrying");
                    Some(Writer::Pending(v.clone(), e.to_string()))
                }
                Err(e) => return Err(e),
            },
        };
        let metrics = self.metrics.pipeline(name, &plan.source_node);
        let analysis = self.analysis_for(
            name,
            &plan.source_node,
            std::mem::take(&mut plan.processors),
            std::mem::take(&mut plan.hubs),
            &metrics,
        )?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = oneshot::channel();
        let source_subject = format!("/livePipelines/{name}/sources/{}", plan.source_node);
        let sink =
            plan.video.as_ref().map(|v| (format!("/livePipelines/{name}/sinks/{}", v.sink_node), v.video.clone()));
        // Values that must never appear in an event: the camera password and every value of
        // a SecretString parameter (it may have been substituted into the URL itself).
        let mut secrets: Vec<String> = spec
            .parameters
            .iter()
            .filter(|d| topo.is_secret(&d.name) && !d.value.is_empty())
            .map(|d| d.value.clone())
            .collect();
        secrets.extend(plan.source.password.clone().filter(|p| !p.is_empty()));
        let observer = Arc::new(EventObserver {
            events: self.events.clone(),
            metrics,
            source_subject,
            sink: sink.clone(),
            target: scrub(&secrets, &redact(&plan.source.url)),
            told_available: AtomicBool::new(false),
            secrets,
            analysis: Mutex::new(analysis),
            stream_params: Mutex::new(None),
            pixels_unavailable: AtomicBool::new(false),
            told_audio_skipped: AtomicBool::new(false),
        });
        if let Some((subject, video)) = &sink {
            self.events.publish(
                subject.clone(),
                EventType::RecordingStarted,
                json!({"outputType": "videoName", "outputLocation": video}),
            );
        }
        let video = sink.map(|(_, v)| v);
        let key = plan.recording_key();
        let source = plan.source;
        let pipeline = name.to_owned();
        let thread_observer = observer.clone();
        let archive = self.archive.clone();
        std::thread::Builder::new()
            .name(format!("pipeline-{name}"))
            .spawn(move || {
                let observer = thread_observer;
                pipeline_thread(&pipeline, &archive, writer, source, stop_rx, &observer);
                // Stop the analysis thread (it finishes the frame in hand).
                observer.analysis.lock().unwrap_or_else(|p| p.into_inner()).take();
                observer.metrics.set_connected(false);
                if let Some((subject, video)) = &observer.sink {
                    observer.events.publish(
                        subject.clone(),
                        EventType::RecordingStopped,
                        json!({"outputType": "videoName", "outputLocation": video}),
                    );
                }
                let _ = done_tx.send(());
            })
            .map_err(|e| module_error(format!("cannot start a thread for live pipeline '{name}': {e}")))?;
        Ok((Running { stop: stop_tx, done: done_rx, key, observer }, video))
    }
}

/// Tells a pipeline to stop and waits for its thread (it ends its run and closes files).
async fn stop(r: Running) {
    let _ = r.stop.send(true);
    // An Err means the thread ended without saying so: it is stopped either way.
    let _ = r.done.await;
}

/// The body of a pipeline's thread: its own single-threaded runtime, recording until told to
/// stop. A panic (a bug) is contained here: it is logged and the pipeline starts over after a
/// pause, without taking the host or other pipelines down.
fn pipeline_thread(
    name: &str,
    archive: &Arc<Archive>,
    writer: Option<Writer>,
    source: SourceOptions,
    mut stop: watch::Receiver<bool>,
    observer: &Arc<EventObserver>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(pipeline = name, "cannot start the pipeline's runtime: {e}");
            return;
        }
    };
    let mut writer = match writer {
        None => None,
        Some(Writer::Open(mut w)) => {
            observer.media_lost(&w.take_losses());
            Some(*w)
        }
        Some(Writer::Pending(v, first)) => {
            match rt.block_on(open_with_backoff(archive, &v, first, stop.clone(), observer)) {
                Some(w) => Some(w),
                None => return, // Stopped before the video could be opened.
            }
        }
    };
    while !*stop.borrow() {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(run_pipeline(writer.as_mut(), &source, stop.clone(), observer.as_ref()))
        }));
        if run.is_ok() {
            break;
        }
        tracing::error!(pipeline = name, "the pipeline failed unexpectedly; restarting it in 5 s");
        rt.block_on(async {
            tokio::select! {
                _ = tokio::time::sleep(STORAGE_RETRY) => {}
                _ = stop.changed() => {}
            }
        });
    }
    // Do not wait for blocking tasks (a hung DNS lookup of the camera's name) to finish.
    rt.shutdown_timeout(Duration::from_millis(500));
}

/// The archive's notices as events: disk-space eviction across videos is announced before it
/// deletes anything, and reported after (subject `/videos`: it is the archive's, not one
/// pipeline's).
fn publish_notice(events: &Bus, n: &crate::archive::Notice) {
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

/// Opens the video of a pipeline the host activated when the archive could not: one
/// `StorageError` per failure (the first is `first`), retried after 1 s, doubling to a minute,
/// until it opens or the pipeline is stopped (`None`).
async fn open_with_backoff(
    archive: &Arc<Archive>,
    v: &VideoPlan,
    first: String,
    mut stop: watch::Receiver<bool>,
    observer: &EventObserver,
) -> Option<VideoWriter> {
    let mut wait = Duration::from_secs(1);
    let mut error = first;
    loop {
        observer.storage_error(&format!("cannot open video '{}': {error}; retrying in {} s", v.video, wait.as_secs()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return None;
        }
        wait = (wait * 2).min(Duration::from_secs(60));
        match v.open(archive) {
            Ok(mut w) => {
                tracing::info!(video = v.video, "the video opened; recording");
                observer.media_lost(&w.take_losses());
                return Some(w);
            }
            Err(e) => error = e.to_string(),
        }
    }
}

/// Records until stopped. An archive failure (a full disk) is reported and retried after a
/// pause, keeping the writer and so the video's lock: no other pipeline can take the video
/// meanwhile.
async fn run_pipeline(
    mut writer: Option<&mut VideoWriter>,
    source: &SourceOptions,
    mut stop: watch::Receiver<bool>,
    observer: &EventObserver,
) {
    while !*stop.borrow() {
        let w = writer.as_deref_mut();
        match record::record_with(w, source.clone(), stop.clone(), Policy::RetryForever, observer).await {
            Ok(_) => break,
            Err(RecordError::Archive(e)) => observer.storage_error(&e.to_string()),
            Err(RecordError::Ingest(e)) => observer.connect_failed(&e),
        }
        tokio::select! {
            _ = tokio::time::sleep(STORAGE_RETRY) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Turns recorder reports into AVA events and metrics.
pub(super) struct EventObserver {
    events: Arc<Bus>,
    metrics: Arc<PipelineMetrics>,
    source_subject: String,
    /// The video sink's subject and video, when the pipeline records.
    sink: Option<(String, String)>,
    target: String,
    told_available: AtomicBool,
    /// Values masked out of every message.
    secrets: Vec<String>,
    /// The analysis branch, when the pipeline has processors.
    pub(super) analysis: Mutex<Option<analysis::Analysis>>,
    /// The stream's SPS and PPS, sent by the camera only when its session starts: a branch
    /// added by a reconfiguration in place starts decoding with them.
    pub(super) stream_params: Mutex<Option<(Vec<u8>, Vec<u8>)>>,
    /// The camera's video cannot be decoded here (H.265, or B-frames): processors get nothing.
    pub(super) pixels_unavailable: AtomicBool,
    /// The unsupported-audio warning was published.
    pub(super) told_audio_skipped: AtomicBool,
}

impl EventObserver {
    /// The stream's pictures cannot be decoded here (`what`: its codec): processors get no
    /// frames, and one event says so.
    fn no_pixels(&self, what: &str) {
        if self.pixels_unavailable.swap(true, Ordering::Relaxed) {
            return;
        }
        let has_processors = self.analysis.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        if has_processors {
            self.media_format_error(format!(
                "the camera sends {what}, which this host cannot decode yet: processor nodes receive no frames \
                 (recording is not affected)"
            ));
        }
    }

    /// A `MediaFormatError` about the camera's stream.
    fn media_format_error(&self, message: String) {
        self.events.publish(
            self.source_subject.clone(),
            EventType::MediaFormatError,
            json!({"target": self.target, "protocol": "rtsp", "message": message}),
        );
    }

    fn storage_error(&self, message: &str) {
        let subject = self.sink.as_ref().map_or_else(|| self.source_subject.clone(), |(s, _)| s.clone());
        self.events.publish(subject, EventType::StorageError, json!({"message": message}));
    }

    /// One `StorageError` per segment whose media recovery found lost (a power loss): the
    /// file, the seconds lost and why.
    fn media_lost(&self, losses: &[crate::archive::Loss]) {
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

    fn scrub(&self, s: &str) -> String {
        scrub(&self.secrets, s)
    }
}

/// `s` with every secret value replaced by a mask.
fn scrub(secrets: &[String], s: &str) -> String {
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
            *self.stream_params.lock().unwrap_or_else(|p| p.into_inner()) =
                crate::mp4::init::avc1_parameter_sets(&p.sample_entry);
            if let Some(c) = crate::mp4::entry::video_codec(&p.sample_entry)
                && c != crate::mp4::entry::VideoCodec::H264
            {
                self.no_pixels(c.name());
            }
            if p.reorder_depth.is_some_and(|d| d > 0) {
                self.no_pixels("H.264 with B-frames");
            }
        }
        if au.cts != 0 {
            // openh264 decodes B-frames wrongly (research/test-infra.md): processors would see
            // garbage, so they see nothing and say why.
            self.no_pixels("H.264 with B-frames");
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

pub(super) fn parse_spec(props: &Value, what: &str) -> Result<PipelineSpec, PipelineError> {
    let invalid = |m: String| module_error(format!("invalid {what}: {m}"));
    let topology_name = get_ci(props, "topologyName")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("'properties.topologyName' (string) is required".into()))?
        .to_owned();
    topology::validate_name("pipeline topology", &topology_name)?;
    let description = match get_ci(props, "description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 2048 => Some(s.clone()),
        Some(_) => return Err(invalid("'properties.description' must be a string of at most 2048 characters".into())),
    };
    let mut parameters = Vec::new();
    match get_ci(props, "parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let name = get_ci(item, "name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("parameters[{i}].name (string) is required")))?;
                let value = match get_ci(item, "value") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
                    _ => return Err(invalid(format!("parameters[{i}] ('{name}') needs a string 'value'"))),
                };
                parameters.push(ParameterDefinition { name: name.to_owned(), value });
            }
        }
        Some(_) => return Err(invalid("'properties.parameters' must be an array".into())),
    }
    Ok(PipelineSpec { description, topology_name, parameters })
}

/// Instantiates the topology for a pipeline and extracts what the runtime needs.
pub(super) fn plan(
    topo: &Topology,
    name: &str,
    spec: &PipelineSpec,
    plugins: Option<&PluginHost>,
) -> Result<Plan, PipelineError> {
    let ctx = InstanceContext {
        topology_name: topo.name.clone(),
        pipeline_name: name.to_owned(),
        now: jiff::Timestamp::now(),
    };
    let inst = topo.instantiate(&ctx, &spec.parameters)?;
    // Node bodies after substitution, for the node types without a typed configuration.
    let bodies: HashMap<String, Value> = topo
        .substituted_nodes(&ctx, &spec.parameters)?
        .into_iter()
        .filter_map(|b| get_ci(&b, "name").and_then(Value::as_str).map(str::to_owned).map(|n| (n, b)))
        .collect();
    let mut source = None;
    let mut sink = None;
    let mut processors = Vec::new();
    let mut hubs = Vec::new();
    for n in inst.nodes {
        let input = n.inputs.first().map(|i| i.node_name.clone()).unwrap_or_default();
        let body = bodies.get(&n.name).cloned().unwrap_or(Value::Null);
        match n.config {
            NodeConfig::RtspSource(c) => source = Some((n.name, c)),
            NodeConfig::VideoSink(c) => {
                if sink.is_some() {
                    return Err(module_error(format!(
                        "node '{}': this host records one video sink per pipeline",
                        n.name
                    )));
                }
                sink = Some((n.name, n.inputs, c));
            }
            NodeConfig::Other { type_name } => match type_name.as_str() {
                "MotionDetectionProcessor" => {
                    let mut config = serde_json::Map::new();
                    for key in ["sensitivity", "outputMotionRegion", "eventAggregationWindow"] {
                        if let Some(v) = get_ci(&body, key) {
                            config.insert(key.to_owned(), v.clone());
                        }
                    }
                    processors.push(ProcessorPlan {
                        node: n.name,
                        input,
                        plugin: "motion".into(),
                        config: config.into(),
                        interval: None,
                    });
                }
                "WasmProcessor" => {
                    let plugin = get_ci(&body, "plugin").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let config = match get_ci(&body, "configuration") {
                        None | Some(Value::Null) => json!({}),
                        Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                            module_error(format!("node '{}': configuration is not a JSON object: {e}", n.name))
                        })?,
                        Some(v) => v.clone(),
                    };
                    if !config.is_object() {
                        return Err(module_error(format!("node '{}': configuration must be a JSON object", n.name)));
                    }
                    let interval = sampling_interval(&n.name, &body)?;
                    processors.push(ProcessorPlan { node: n.name, input, plugin, config, interval });
                }
                "IotHubMessageSink" => hubs.push(analysis::HubSink {
                    output_name: get_ci(&body, "hubOutputName").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    inputs: n.inputs.iter().map(|i| i.node_name.clone()).collect(),
                    node: n.name,
                }),
                _ => {
                    return Err(module_error(format!("node '{}' of type '{type_name}' is not supported yet", n.name)));
                }
            },
        }
    }
    let (source_node, src) =
        source.ok_or_else(|| module_error("the topology has no RtspSource node to read from".into()))?;
    if src.transport == RtspTransport::Http {
        return Err(module_error(format!(
            "node '{source_node}': transport 'http' (RTSP over HTTP tunnelling) is not supported; use 'tcp' or 'udp'"
        )));
    }
    if sink.is_none() && processors.is_empty() {
        return Err(module_error("the topology neither records (VideoSink) nor analyses (processors)".into()));
    }
    // Processors in topological order: each after the node it reads from.
    let mut ordered: Vec<ProcessorPlan> = Vec::new();
    let mut known: Vec<String> = vec![source_node.clone()];
    while !processors.is_empty() {
        let Some(i) = processors.iter().position(|p| known.contains(&p.input)) else {
            let p = &processors[0];
            return Err(module_error(format!(
                "node '{}' reads from '{}', which produces no frames on this host",
                p.node, p.input
            )));
        };
        let p = processors.remove(i);
        known.push(p.node.clone());
        ordered.push(p);
    }
    for p in &ordered {
        match plugins {
            None => {
                return Err(module_error(format!(
                    "node '{}' needs the plugin '{}', but this host runs without plugins (start it with --plugins DIR)",
                    p.node, p.plugin
                )));
            }
            Some(h) => {
                h.get(&p.plugin).map_err(|e| module_error(format!("node '{}': {e}", p.node)))?;
            }
        }
    }
    // The sink's selectors decide which of the camera's tracks are stored (AVA's outputSelectors).
    let mut record_audio = false;
    let video = match sink {
        None => None,
        Some((sink_node, inputs, vs)) => {
            let Some(from_camera) = inputs.iter().find(|i| i.node_name == source_node) else {
                return Err(module_error(format!(
                    "node '{sink_node}': this host records the camera's stream; the video sink must take '{source_node}' as an input"
                )));
            };
            if !from_camera.takes("video") {
                return Err(module_error(format!(
                    "node '{sink_node}': its outputSelectors exclude video; recording audio alone is not supported \
                     (select video, or video and audio)"
                )));
            }
            record_audio = from_camera.takes("audio");
            crate::archive::validate_video_name(&vs.video_name)
                .map_err(|e| module_error(format!("node '{sink_node}': videoName: {e}")))?;
            Some(VideoPlan {
                config: VideoConfig {
                    segment_length_90k: vs.segment_length_90k.unwrap_or(DEFAULT_SEGMENT_90K),
                    retention_90k: vs.retention_90k,
                    // AVA's localMediaCacheMaximumSizeMiB sizes the cache in front of remote
                    // storage, never the archive: the archive's cap is openva's own
                    // videoCreationProperties.maximumSizeMiB.
                    max_bytes: vs.max_bytes.and_then(|b| i64::try_from(b).ok()),
                },
                video: vs.video_name,
                title: vs.title,
                description: vs.description,
                sink_node,
            })
        }
    };
    Ok(Plan {
        source: SourceOptions {
            url: src.url,
            user: src.username,
            password: src.password,
            udp: src.transport == RtspTransport::Udp,
            audio: record_audio,
        },
        source_node,
        video,
        processors: ordered,
        hubs,
    })
}

pub(super) fn topology_entity(e: &TopologyEntry) -> Value {
    let mut v = e.topology.to_entity_json();
    if let Some(o) = v.as_object_mut() {
        o.insert("systemData".into(), system_data(e.created, e.modified));
    }
    e.origin.system_data(&mut v);
    v
}

fn pipeline_entity(name: &str, p: &PipelineEntry, topo: &Topology) -> Value {
    pipeline_entity_opt(name, p, Some(topo))
}

/// The live pipeline as AVA returned it. Values of secret parameters are left out (a topology
/// that is gone counts every value as secret: better hidden than leaked).
fn pipeline_entity_opt(name: &str, p: &PipelineEntry, topo: Option<&Topology>) -> Value {
    let params: Vec<Value> = p
        .spec
        .parameters
        .iter()
        .map(|d| {
            if topo.is_some_and(|t| !t.is_secret(&d.name)) {
                json!({"name": d.name, "value": d.value})
            } else {
                json!({"name": d.name})
            }
        })
        .collect();
    let mut props = json!({
        "topologyName": p.spec.topology_name,
        "parameters": params,
        "state": p.state.as_str(),
    });
    if let (Some(d), Some(o)) = (&p.spec.description, props.as_object_mut()) {
        o.insert("description".into(), json!(d));
    }
    let mut v = json!({"name": name, "systemData": system_data(p.created, p.modified), "properties": props});
    p.origin.system_data(&mut v);
    v
}
