//! Hot reload for ops: a watched folder of topology and live-pipeline files.
//!
//! Each `*.json` file under the folder (recursively; hidden files and editors' temporaries
//! ignored) holds one entity: an AVA topology (the `pipelineTopologySet` body) or a live
//! pipeline (the `livePipelineSet` body, whose `properties` has `topologyName`), with an
//! optional `"activate": true` of ours. A change is applied by re-reading the whole folder
//! (so atomic renames, editors' save dances and bursts of changes all end in the same state),
//! debounced; `SIGHUP` asks for the same re-scan. A file that does not parse or validate
//! changes nothing that runs: the previous version stays, the error is logged, published as a
//! `ConfigurationError` event naming the file, line and reason, and listed by
//! `GET /api/status`.
//!
//! What files declare is not stored in `control.db` (the folder is its store) and the API may
//! read it but not change it (409 naming the file). A changed topology or pipeline that active
//! pipelines use is applied in place when it records the same camera into the same video: the
//! RTSP session and the writer stay, only the analysis branch is rebuilt, so the recording has
//! no gap. Otherwise the pipeline restarts.

use super::live::{Origin, PipelineError, PipelineSpec, Runtime, State, TopologyEntry, get_ci};
use super::nodes;
use crate::events::EventType;
use crate::time::Time90k;
use crate::topology::{self, Topology, TopologyKind};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last change before the folder is re-read.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// What a file declares.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Declared {
    Topology(String),
    Pipeline(String),
}

/// A file that could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileProblem {
    /// Path relative to the folder.
    pub file: String,
    /// 1-based line of a syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column of a syntax error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Why.
    pub message: String,
}

/// The folder's state as last applied.
#[derive(Default)]
pub struct FolderState {
    root: Option<PathBuf>,
    /// Per file: its content's hash when last read, and what it declares (when it applied).
    files: BTreeMap<String, (u64, Option<Declared>)>,
    problems: BTreeMap<String, FileProblem>,
}

impl FolderState {
    /// The files in error, for `GET /api/status`.
    pub fn problems(&self) -> Vec<FileProblem> {
        self.problems.values().cloned().collect()
    }

    /// The watched folder, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

fn hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Every entity file under `dir`, relative paths, sorted.
fn list(dir: &Path, rel: &Path, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = e.path();
        let relp = rel.join(&name);
        if path.is_dir() {
            list(&path, &relp, out);
        } else if name.ends_with(".json") {
            out.push(relp.to_string_lossy().into_owned());
        }
    }
    out.sort();
}

/// A parsed file: what it declares and its body.
struct Parsed {
    declared: Declared,
    body: Value,
    activate: bool,
}

/// A file's first `MAX_DOCUMENT_LEN + 1` bytes: a huge file in the folder costs no memory
/// beyond that (it is reported as too large).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(topology::MAX_DOCUMENT_LEN as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn parse_file(bytes: &[u8]) -> Result<Parsed, FileProblem> {
    let problem = |line, column, message: String| FileProblem { file: String::new(), line, column, message };
    let body: Value = serde_json::from_slice(bytes)
        .map_err(|e| problem(Some(e.line()), Some(e.column()), format!("not valid JSON: {e}")))?;
    let name = get_ci(&body, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| problem(None, None, "the file has no \"name\" (string)".into()))?
        .to_owned();
    let props =
        get_ci(&body, "properties").ok_or_else(|| problem(None, None, "the file has no \"properties\"".into()))?;
    let activate = match get_ci(&body, "activate") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(problem(None, None, "\"activate\" must be true or false".into())),
    };
    let declared =
        if get_ci(props, "topologyName").is_some() { Declared::Pipeline(name) } else { Declared::Topology(name) };
    Ok(Parsed { declared, body, activate })
}

impl Runtime {
    /// The files of the watched folder in error.
    pub fn folder_problems(&self) -> Vec<FileProblem> {
        self.folder().problems()
    }

    fn folder(&self) -> std::sync::MutexGuard<'_, FolderState> {
        self.folder.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, p: FileProblem) {
        tracing::error!(file = p.file, line = p.line, "topologies folder: {}", p.message);
        self.events.publish(
            format!("/topologies/files/{}", p.file),
            EventType::ConfigurationError,
            serde_json::to_value(&p).unwrap_or(Value::Null),
        );
        let mut f = self.folder();
        f.problems.insert(p.file.clone(), p);
    }

    /// Reads the folder and applies what changed: new and changed topologies, then pipelines,
    /// then removals (pipelines before topologies). Returns the number of files applied.
    pub async fn sync_folder(&self, root: &Path) -> usize {
        self.folder().root = Some(root.to_owned());
        let mut names = Vec::new();
        list(root, Path::new(""), &mut names);
        let mut changed: Vec<(String, u64, Result<Parsed, FileProblem>)> = Vec::new();
        for rel in &names {
            let Ok(bytes) = read_bounded(&root.join(rel)) else { continue };
            let h = hash(&bytes);
            let unchanged = self.folder().files.get(rel).is_some_and(|(old, _)| *old == h);
            if !unchanged {
                let parsed = if bytes.len() > topology::MAX_DOCUMENT_LEN {
                    Err(FileProblem {
                        file: String::new(),
                        line: None,
                        column: None,
                        message: format!(
                            "the file is larger than {} KiB, the most a topology or pipeline may be",
                            topology::MAX_DOCUMENT_LEN >> 10
                        ),
                    })
                } else {
                    parse_file(&bytes)
                };
                changed.push((rel.clone(), h, parsed));
            }
        }
        let removed: Vec<(String, Option<Declared>)> = {
            let f = self.folder();
            f.files.iter().filter(|(k, _)| !names.contains(k)).map(|(k, (_, d))| (k.clone(), d.clone())).collect()
        };
        let mut applied = 0;
        // Topologies first, so pipelines of the same scan find them.
        changed.sort_by_key(|(_, _, p)| !matches!(p, Ok(Parsed { declared: Declared::Topology(_), .. })));
        for (rel, h, parsed) in changed {
            let outcome = match parsed {
                Err(mut p) => {
                    p.file = rel.clone();
                    Err(p)
                }
                Ok(p) => self.apply_file(&rel, p).await.map_err(|e| FileProblem {
                    file: rel.clone(),
                    line: None,
                    column: None,
                    message: e.to_string(),
                }),
            };
            match outcome {
                Ok(declared) => {
                    applied += 1;
                    let old = self.folder().files.insert(rel.clone(), (h, Some(declared.clone())));
                    self.folder().problems.remove(&rel);
                    // The file now declares another entity: the old one goes.
                    if let Some((_, Some(prev))) = old
                        && prev != declared
                    {
                        self.remove_declared(&rel, &prev).await;
                    }
                    tracing::info!(file = rel, "topologies folder: applied");
                }
                Err(p) => {
                    // Keep the old hash's entity running; remember the new hash so the same
                    // broken content is not reported again on every scan.
                    let prev = self.folder().files.get(&rel).and_then(|(_, d)| d.clone());
                    self.folder().files.insert(rel.clone(), (h, prev));
                    self.report(p);
                }
            }
        }
        let (pipes, topos): (Vec<_>, Vec<_>) =
            removed.into_iter().partition(|(_, d)| matches!(d, Some(Declared::Pipeline(_))));
        for (rel, d) in pipes.into_iter().chain(topos) {
            if let Some(d) = d {
                self.remove_declared(&rel, &d).await;
            }
            self.folder().files.remove(&rel);
            self.folder().problems.remove(&rel);
        }
        applied
    }

    async fn remove_declared(&self, rel: &str, d: &Declared) {
        let origin = Origin::File(rel.to_owned());
        let r = match d {
            Declared::Pipeline(name) => self.remove_file_pipeline(name, &origin).await,
            Declared::Topology(name) => self.remove_file_topology(name, &origin).await,
        };
        match r {
            Ok(()) => tracing::info!(file = rel, "topologies folder: removed what the file declared"),
            Err(e) => self.report(FileProblem {
                file: rel.to_owned(),
                line: None,
                column: None,
                message: format!("cannot remove what the file declared: {e}"),
            }),
        }
    }

    async fn apply_file(&self, rel: &str, p: Parsed) -> Result<Declared, PipelineError> {
        let origin = Origin::File(rel.to_owned());
        match &p.declared {
            Declared::Topology(_) => self.file_topology_set(&p.body, origin).await?,
            Declared::Pipeline(name) => self.file_pipeline_set(name, &p.body, origin, p.activate).await?,
        }
        Ok(p.declared)
    }

    /// Sets a topology a file declares, and applies it to the active pipelines that use it.
    async fn file_topology_set(&self, body: &Value, origin: Origin) -> Result<(), PipelineError> {
        let t = topology::parse(body)?;
        nodes::check(&t, self.plugins.as_deref())?;
        let name = t.name.clone();
        let users: Vec<(String, PipelineSpec, State)> = {
            let _op = self.ops.lock().await;
            let mut inner = self.inner();
            match inner.topologies.get(&name).map(|e| &e.origin) {
                Some(Origin::Api) => {
                    return Err(PipelineError::Resource(format!(
                        "pipeline topology '{name}' was set through the API; delete it there before a file declares it"
                    )));
                }
                Some(Origin::File(f)) if Origin::File(f.clone()) != origin => {
                    return Err(PipelineError::Resource(format!(
                        "pipeline topology '{name}' is declared by '{f}' already"
                    )));
                }
                _ => {}
            }
            let users: Vec<(String, PipelineSpec, State)> = inner
                .pipelines
                .iter()
                .filter(|(_, p)| p.spec.topology_name == name)
                .map(|(n, p)| (n.clone(), p.spec.clone(), p.state))
                .collect();
            // Every pipeline must still be valid with the new version.
            for (pname, spec, _) in &users {
                nodes::plan_live(&t, pname, spec, self.plugins.as_deref()).map_err(|e| {
                    super::live::module_error(format!("the change would break live pipeline '{pname}': {e}"))
                })?;
            }
            let now = Time90k::now();
            let created = inner.topologies.get(&name).map_or(now, |e| e.created);
            inner
                .topologies
                .insert(name.clone(), TopologyEntry { topology: Arc::new(t), created, modified: now, origin });
            users
        };
        for (pname, spec, state) in users {
            if state == State::Active {
                self.reconfigure(&pname, &spec).await?;
            }
        }
        Ok(())
    }

    /// Sets a live pipeline a file declares; activates, reconfigures or deactivates it as the
    /// file says.
    async fn file_pipeline_set(
        &self,
        name: &str,
        body: &Value,
        origin: Origin,
        activate: bool,
    ) -> Result<(), PipelineError> {
        topology::validate_name("live pipeline", name)?;
        let props =
            get_ci(body, "properties").ok_or_else(|| super::live::module_error("'properties' is required".into()))?;
        let spec = PipelineSpec::parse_properties(props, "live pipeline")?;
        let (state, changed) = {
            let _op = self.ops.lock().await;
            let topo =
                self.inner().topologies.get(&spec.topology_name).map(|t| t.topology.clone()).ok_or_else(|| {
                    PipelineError::Resource(format!("pipeline topology '{}' does not exist", spec.topology_name))
                })?;
            if topo.kind == TopologyKind::Batch {
                return Err(super::live::module_error(format!(
                    "pipeline topology '{}' is of kind Batch; a live pipeline needs a Live topology",
                    spec.topology_name
                )));
            }
            topo.check_parameters(&spec.parameters)?;
            nodes::plan_live(&topo, name, &spec, self.plugins.as_deref())?;
            let mut inner = self.inner();
            let now = Time90k::now();
            match inner.pipelines.get_mut(name) {
                Some(p) => {
                    match &p.origin {
                        Origin::Api => {
                            return Err(PipelineError::Resource(format!(
                                "live pipeline '{name}' was set through the API; delete it there before a file declares it"
                            )));
                        }
                        Origin::File(f) if Origin::File(f.clone()) != origin => {
                            return Err(PipelineError::Resource(format!(
                                "live pipeline '{name}' is declared by '{f}' already"
                            )));
                        }
                        _ => {}
                    }
                    let changed = p.spec != spec;
                    p.spec = spec.clone();
                    p.modified = now;
                    (p.state, changed)
                }
                None => {
                    inner.pipelines.insert(
                        name.to_owned(),
                        super::live::PipelineEntry {
                            spec: spec.clone(),
                            state: State::Inactive,
                            created: now,
                            modified: now,
                            running: None,
                            video: None,
                            origin,
                        },
                    );
                    (State::Inactive, false)
                }
            }
        };
        match (state, activate) {
            (State::Active, true) if changed => self.reconfigure(name, &spec).await,
            (State::Inactive, true) => self.activate_any(name).await,
            (State::Active, false) => self.deactivate_any(name).await,
            _ => Ok(()),
        }
    }

    /// Applies a new configuration to an active pipeline: in place when it records the same
    /// camera into the same video (only the analysis branch is rebuilt: no frame is lost),
    /// otherwise by a restart.
    async fn reconfigure(&self, name: &str, spec: &PipelineSpec) -> Result<(), PipelineError> {
        let topo: Arc<Topology> =
            self.inner().topologies.get(&spec.topology_name).map(|t| t.topology.clone()).ok_or_else(|| {
                PipelineError::Resource(format!("pipeline topology '{}' does not exist", spec.topology_name))
            })?;
        let mut new_plan = nodes::plan_live(&topo, name, spec, self.plugins.as_deref())?;
        let running = self
            .inner()
            .pipelines
            .get(name)
            .and_then(|p| p.running.as_ref().map(|r| (r.key.clone(), r.observer.clone())));
        // A gated pipeline restarts: its processors feed the gate of the running thread.
        if let Some((key, observer)) = running
            && key == new_plan.recording_key()
            && new_plan.gated.is_none()
        {
            let metrics = self.metrics.pipeline(name, &new_plan.source_node);
            let analysis = tokio::task::block_in_place(|| {
                self.analysis_for(
                    name,
                    &new_plan.source_node,
                    std::mem::take(&mut new_plan.processors),
                    super::analysis::Outlets {
                        hubs: std::mem::take(&mut new_plan.hubs),
                        gate: None,
                        record: self.record_feed(new_plan.video.as_ref()),
                    },
                    &metrics,
                )
            })?;
            // Swap under the lock, stop the old branch outside it (it finishes its frame).
            let old = {
                if let Some(new) = analysis.as_ref() {
                    new.adopt_stream(observer.stream_entry.lock().unwrap_or_else(|p| p.into_inner()).clone());
                }
                let mut slot = observer.analysis.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::replace(&mut *slot, analysis)
            };
            drop(old);
            tracing::info!(pipeline = name, "reconfigured in place (recording untouched)");
            return Ok(());
        }
        tracing::info!(pipeline = name, "restarting: its camera or video changed");
        self.deactivate_any(name).await?;
        self.activate_any(name).await
    }

    async fn remove_file_pipeline(&self, name: &str, origin: &Origin) -> Result<(), PipelineError> {
        if self.inner().pipelines.get(name).is_none_or(|p| &p.origin != origin) {
            return Ok(());
        }
        self.deactivate_any(name).await?;
        let _op = self.ops.lock().await;
        self.inner().pipelines.remove(name);
        self.metrics.remove(name);
        Ok(())
    }

    async fn remove_file_topology(&self, name: &str, origin: &Origin) -> Result<(), PipelineError> {
        let _op = self.ops.lock().await;
        let mut inner = self.inner();
        if inner.topologies.get(name).is_none_or(|t| &t.origin != origin) {
            return Ok(());
        }
        let users: Vec<String> =
            inner.pipelines.iter().filter(|(_, p)| p.spec.topology_name == name).map(|(n, _)| n.clone()).collect();
        if !users.is_empty() {
            return Err(PipelineError::TopologyInUse {
                topology: name.to_owned(),
                pipelines: format!("live pipeline(s): {}", users.join(", ")),
            });
        }
        inner.topologies.remove(name);
        Ok(())
    }

    /// `GET /api/status`: the host's state for ops (folder, files in error, counts).
    pub fn status(&self) -> Value {
        let (topologies, pipelines, active) = {
            let inner = self.inner();
            (
                inner.topologies.len(),
                inner.pipelines.len(),
                inner.pipelines.values().filter(|p| p.state == State::Active).count(),
            )
        };
        let f = self.folder();
        json!({
            "topologiesFolder": f.root().map(|p| p.display().to_string()),
            "filesApplied": f.files.values().filter(|(_, d)| d.is_some()).count(),
            "filesInError": f.problems(),
            "pipelineTopologies": topologies,
            "livePipelines": pipelines,
            "activeLivePipelines": active,
            "plugins": self.plugins.as_ref().map(|p| p.list()),
        })
    }
}

/// Watches `root` and re-applies it after changes (debounced) and on `SIGHUP`. The returned
/// watcher must be kept alive.
pub fn watch(rt: Arc<Runtime>, root: PathBuf) -> Result<notify::RecommendedWatcher, notify::Error> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let fs_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = fs_tx.send(());
        }
    })?;
    watcher.watch(&root, notify::RecursiveMode::Recursive)?;
    #[cfg(unix)]
    {
        let hup_tx = tx.clone();
        tokio::spawn(async move {
            let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: re-reading the topologies folder");
                let _ = hup_tx.send(());
            }
        });
    }
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait for a quiet moment, so a burst of writes is read once.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            rt.sync_folder(&root).await;
        }
    });
    Ok(watcher)
}

/// Watches the plugins directory: a changed `*.wasm` is compiled off the hot path and swapped
/// into every node that runs it at its next frame (see `PluginHost::reload_changed`); a file
/// that does not compile is refused with a `PluginUpdated` event saying why, and the old
/// version keeps running. The returned watcher must be kept alive.
pub fn watch_plugins(rt: Arc<Runtime>, dir: PathBuf) -> Result<Option<notify::RecommendedWatcher>, notify::Error> {
    use notify::Watcher;
    let Some(host) = rt.plugins.clone() else { return Ok(None) };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let (h, d) = (host.clone(), dir.clone());
            let Ok(outcomes) = tokio::task::spawn_blocking(move || h.reload_changed(&d)).await else { continue };
            for (path, r) in outcomes {
                let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
                match r {
                    Ok(name) => {
                        tracing::info!(plugin = name, file, "plugin file loaded; nodes swap at their next frame")
                    }
                    Err(e) => {
                        tracing::warn!(file, "plugin file refused, the loaded version keeps running: {e}");
                        rt.events.publish(
                            format!("/plugins/files/{file}"),
                            EventType::PluginUpdated,
                            json!({"file": file, "applied": false, "message": e.to_string()}),
                        );
                    }
                }
            }
        }
    });
    Ok(Some(watcher))
}
