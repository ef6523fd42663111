//! Live pipelines: AVA's topologies and live pipelines, their life cycle and their persistence.
//!
//! The runtime keeps every topology and pipeline in memory and in `control.db`; mutating calls
//! are serialised (AVA's methods were synchronous and not meant to run in parallel), reads are
//! not. Each active pipeline runs on its own thread with its own single-threaded tokio
//! runtime, so a camera or disk that blocks stalls only its own pipeline, never another one or
//! the API. A pipeline that was active when the host stopped (or was killed) is activated
//! again at start and keeps recording into the same video.
//!
//! Here: the runtime and its control API (topologies, pipelines, activation); [`plan`] turns a
//! topology and a pipeline's parameters into the typed plan it runs, [`run`] is a pipeline's
//! thread, [`observer`] its events and metrics.

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
use crate::topology::{self, ErrorKind, Topology, TopologyError, TopologyKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

mod observer;
mod plan;
mod run;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

use super::nodes;
pub use crate::topology::PipelineSpec;
pub(super) use observer::EventObserver;
use observer::*;
use plan::*;
pub(in crate::pipeline) use plan::{GatePlan, GatedPlan, Plan, ProcessorPlan, Runs, VideoPlan};
use run::*;

/// AVA's edge limit on topologies.
pub const MAX_TOPOLOGIES: usize = 50;
/// AVA's edge limit on live pipelines.
pub const MAX_PIPELINES: usize = 1000;
/// Segment length when a video sink does not set one (AVA's default).
pub const DEFAULT_SEGMENT: crate::time::Duration90k = crate::time::Duration90k::from_secs(30);
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

/// A stored topology, as the control API reads it.
#[derive(Clone)]
pub struct TopologyEntry {
    /// The topology.
    pub topology: Arc<Topology>,
    /// When it was first set.
    pub created: Time90k,
    /// When it was last set.
    pub modified: Time90k,
    /// Who manages it.
    pub origin: Origin,
}

/// A live pipeline, as the control API reads it (`api/entities.rs` shapes AVA's reply).
#[derive(Clone)]
pub struct PipelineView {
    /// Its name.
    pub name: String,
    /// What it runs, as set.
    pub spec: PipelineSpec,
    /// Its state.
    pub state: State,
    /// When it was first set.
    pub created: Time90k,
    /// When it was last set.
    pub modified: Time90k,
    /// Who manages it.
    pub origin: Origin,
    /// Its topology, if it still exists: which parameter values are secret.
    pub topology: Option<Arc<Topology>>,
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
    /// The hub inputs (`hubInputName`) whose messages open its gate, and the gate's triggers.
    pub(super) inputs: Vec<String>,
    pub(super) triggers: Option<super::gated::TriggerTx>,
}

/// The settings that need a new RTSP session or writer when they change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RecordingKey {
    source: SourceOptions,
    video: Option<(String, VideoConfig, Option<String>, Option<String>)>,
    /// A gated pipeline's gate and file sink: any change restarts it.
    gated: Option<GatedPlan>,
}

impl Plan {
    pub(super) fn recording_key(&self) -> RecordingKey {
        RecordingKey {
            source: self.source.clone(),
            video: self
                .video
                .as_ref()
                .map(|v| (v.video.clone(), v.config.clone(), v.title.clone(), v.description.clone())),
            gated: self.gated.clone(),
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
    /// A read-only gateway's: nothing is activated.
    pub(super) read_only: bool,
    /// Where file sinks write: a topology's `baseDirectoryPath` is placed under it.
    pub(super) file_sink_root: std::path::PathBuf,
    /// What extension nodes may call, and how long they wait.
    pub(super) extensions: ExtensionOptions,
}

/// The host's settings for extension nodes.
#[derive(Clone, Debug)]
pub struct ExtensionOptions {
    /// Addresses refused or allowed (`--extension-allow`; the API's own address).
    pub policy: crate::extension::guard::AddressPolicy,
    /// Time-out of one request (`--extension-timeout`).
    pub timeout: std::time::Duration,
}

impl Default for ExtensionOptions {
    fn default() -> Self {
        ExtensionOptions { policy: Default::default(), timeout: std::time::Duration::from_secs(10) }
    }
}

/// The file sink root under the data directory when the operator names none.
pub const DEFAULT_FILE_SINK_ROOT: &str = "files";

/// How a runtime is opened beyond its data directory.
#[derive(Default)]
pub struct RuntimeOptions {
    /// Pipeline job settings.
    pub jobs: JobOptions,
    /// The watched topologies folder.
    pub folder: Option<std::path::PathBuf>,
    /// Where file sinks write (`--file-sink-root`; default `DATA/files`).
    pub file_sink_root: Option<std::path::PathBuf>,
    /// Extension nodes' settings.
    pub extensions: ExtensionOptions,
    /// A read-only playback gateway's runtime (`serve --read-only`): pipelines are stored but
    /// never activated, as a gateway records nothing.
    pub read_only: bool,
}

pub(super) fn module_error(message: String) -> PipelineError {
    PipelineError::Invalid(TopologyError { kind: ErrorKind::ModuleValidation, message })
}

/// A member of an AVA body, matched case-insensitively, `null` as absent (`topology::json`).
pub(super) use crate::topology::json::member as get_ci;

impl Runtime {
    /// Opens the runtime on a data directory (archive + control store) and re-activates the
    /// pipelines that were active when the host last stopped.
    pub async fn open(
        data: &Path,
        events: Arc<Bus>,
        plugins: Option<Arc<PluginHost>>,
    ) -> Result<Arc<Runtime>, PipelineError> {
        Self::open_with(data, events, plugins, RuntimeOptions::default()).await
    }

    /// [`Runtime::open`] with options: pipeline job settings, the file sink root, and a
    /// topologies folder, whose files are applied (see [`super::folder`]) before the stored
    /// pipelines resume, so a stored pipeline may use a topology a file declares.
    pub async fn open_with(
        data: &Path,
        events: Arc<Bus>,
        plugins: Option<Arc<PluginHost>>,
        options: RuntimeOptions,
    ) -> Result<Arc<Runtime>, PipelineError> {
        let RuntimeOptions { jobs: job_options, folder, file_sink_root, extensions, read_only } = options;
        let folder = folder.as_deref();
        let file_sink_root = file_sink_root.unwrap_or_else(|| data.join(DEFAULT_FILE_SINK_ROOT));
        let archive = Arc::new(Archive::open_or_create(data)?);
        let bus = events.clone();
        archive.set_listener(move |n| publish_notice(&bus, n));
        // Segments a crash left open are closed now, before any pipeline resumes: a video no
        // pipeline records again still gets its last media closed, playable and uploaded.
        let recovered = {
            let a = archive.clone();
            tokio::task::spawn_blocking(move || a.recover_interrupted())
                .await
                .map_err(|e| PipelineError::Resource(format!("recovery stopped: {e}")))??
        };
        for (video, losses) in recovered {
            for l in losses {
                events.publish(
                    format!("/videos/{video}"),
                    EventType::StorageError,
                    json!({
                        "message": format!("recorded media was lost before it reached the disk: {}", l.reason),
                        "file": l.file,
                        "secondsLost": (l.seconds * 1000.0).round() / 1000.0,
                    }),
                );
            }
        }
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
            read_only,
            file_sink_root,
            extensions,
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
    pub async fn topology_set(&self, t: Topology) -> Result<(bool, TopologyEntry), PipelineError> {
        nodes::check(&t, self.plugins.as_deref())?;
        let _op = self.ops.lock().await;
        let name = t.name.clone();
        self.check_api_managed_topology(&name)?;
        let stored = t.to_stored_json();
        {
            let inner = self.inner();
            if let Some(old) = inner.topologies.get(&name) {
                // Setting the same topology again (re-running an operations script) changes
                // nothing and is allowed in any state.
                if old.topology.to_entity_json() == t.to_entity_json() && old.topology.parameters == t.parameters {
                    return Ok((false, old.clone()));
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
                nodes::plan_live(&t, pname, &p.spec, self.plugins.as_deref())
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
        let reply = entry.clone();
        self.inner().topologies.insert(name, entry);
        Ok((created, reply))
    }

    /// `pipelineTopologyGet`.
    pub fn topology_get(&self, name: &str) -> Result<TopologyEntry, PipelineError> {
        self.inner()
            .topologies
            .get(name)
            .cloned()
            .ok_or_else(|| PipelineError::NotFound { kind: "pipeline topology", name: name.to_owned() })
    }

    /// `pipelineTopologyList`.
    pub fn topology_list(&self) -> Vec<TopologyEntry> {
        self.inner().topologies.values().cloned().collect()
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

    /// `livePipelineSet`: creates (returns true) or updates a live pipeline.
    pub async fn pipeline_set(&self, name: &str, spec: PipelineSpec) -> Result<(bool, PipelineView), PipelineError> {
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
        nodes::plan_live(&topo, name, &spec, self.plugins.as_deref())?;
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
        let json = serde_json::to_string(&spec).map_err(|e| module_error(format!("invalid live pipeline: {e}")))?;
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
        let reply = view(name, entry, Some(topo));
        Ok((created, reply))
    }

    /// `livePipelineGet`.
    pub fn pipeline_get(&self, name: &str) -> Result<PipelineView, PipelineError> {
        let inner = self.inner();
        let p = inner
            .pipelines
            .get(name)
            .ok_or_else(|| PipelineError::NotFound { kind: "live pipeline", name: name.to_owned() })?;
        let topo = inner.topologies.get(&p.spec.topology_name).map(|t| t.topology.clone());
        Ok(view(name, p, topo))
    }

    /// `livePipelineList`.
    pub fn pipeline_list(&self) -> Vec<PipelineView> {
        let inner = self.inner();
        inner
            .pipelines
            .iter()
            .map(|(n, p)| {
                let topo = inner.topologies.get(&p.spec.topology_name).map(|t| t.topology.clone());
                view(n, p, topo)
            })
            .collect()
    }

    /// Every live pipeline's state, without the rest of its view (read every second by the
    /// MQTT link).
    pub fn pipeline_states(&self) -> Vec<(String, State)> {
        self.inner().pipelines.iter().map(|(n, p)| (n.clone(), p.state)).collect()
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
        if self.read_only {
            return Err(PipelineError::Resource(format!(
                "live pipeline '{name}' is not activated: this host is a read-only playback gateway (--read-only) and \
                 records nothing; activate it on a recorder"
            )));
        }
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

    /// Where the video sink's processor inputs (its metadata) are recorded, if it has any.
    pub(super) fn record_feed(&self, video: Option<&VideoPlan>) -> Option<analysis::RecordFeed> {
        video.filter(|v| !v.metadata.is_empty()).map(|v| analysis::RecordFeed {
            nodes: v.metadata.clone(),
            log: Mutex::new(crate::archive::inferences::InferenceLog::new(self.archive.clone(), &v.video)),
        })
    }

    /// The analysis branch of a plan (none without processors): plugins instantiated and
    /// configured here, so a refused configuration is the caller's error.
    pub(super) fn analysis_for(
        &self,
        name: &str,
        source_node: &str,
        processors: Vec<ProcessorPlan>,
        outlets: analysis::Outlets,
        metrics: &Arc<PipelineMetrics>,
    ) -> Result<Option<analysis::Analysis>, PipelineError> {
        if processors.is_empty() {
            return Ok(None);
        }
        let mut built = Vec::new();
        for p in processors {
            let stage = match p.runs {
                Runs::Plugin { plugin, config } => {
                    let host =
                        self.plugins.as_ref().ok_or_else(|| module_error("this host runs without plugins".into()))?;
                    let instance = host
                        .instantiate(&plugin, &config)
                        .map_err(|e| module_error(format!("node '{}': {e}", p.node)))?;
                    analysis::StageSpec::Plugin(instance)
                }
                Runs::Tracker(accuracy) => analysis::StageSpec::Tracker(accuracy),
                Runs::Lines(lines) => analysis::StageSpec::Lines(lines),
                Runs::Extension(config) => {
                    analysis::StageSpec::Extension(config, self.extensions.policy.clone(), self.extensions.timeout)
                }
            };
            built.push(analysis::Processor { node: p.node, input: p.input, stage, interval: p.interval });
        }
        let a = analysis::Analysis::start(name, source_node, built, outlets, self.events.clone(), metrics.clone())
            .map_err(module_error)?;
        Ok(Some(a))
    }
}

/// What the control API reads of a live pipeline.
fn view(name: &str, p: &PipelineEntry, topology: Option<Arc<Topology>>) -> PipelineView {
    PipelineView {
        name: name.to_owned(),
        spec: p.spec.clone(),
        state: p.state,
        created: p.created,
        modified: p.modified,
        origin: p.origin.clone(),
        topology,
    }
}
