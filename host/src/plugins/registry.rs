//! The plugin registry: one wasmtime `Engine` for the process, components loaded from a
//! directory, compiled once and cached as precompiled artifacts keyed by the engine's
//! compatibility hash and the file's content, each known by the name its `describe` returns.

use super::PluginError;
use super::bindings::{CallMode, Plugin, PluginInfo, PluginPre, StoreState};
use super::instance::PluginInstance;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

pub use super::epoch::EPOCH_TICK;

/// Limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest one `process` call may run before it is interrupted.
    pub call_time: Duration,
    /// Longest `describe`/`configure` may run.
    pub setup_time: Duration,
    /// Linear memory cap per instance.
    pub memory_bytes: usize,
    /// Most inferences one frame may produce.
    pub max_inferences: usize,
    /// Most bytes of text (kinds, tags, attributes, extensions) the inferences of one frame
    /// may carry: each becomes an event, and the event ring keeps a thousand of them.
    pub max_inference_bytes: usize,
    /// Log lines per call passed on (more are dropped; 50× this is a flood and stops the call).
    pub max_log_lines: u32,
    /// Faults within `failure_window` after which the node is paused for `pause`.
    pub max_failures: u32,
    /// Window for counting faults.
    pub failure_window: Duration,
    /// How long a node that keeps failing is paused.
    pub pause: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_time: Duration::from_millis(200),
            setup_time: Duration::from_secs(2),
            memory_bytes: 256 << 20,
            max_inferences: 1000,
            max_inference_bytes: 64 * 1024,
            max_log_lines: 20,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            pause: Duration::from_secs(30),
        }
    }
}

/// A loaded plugin: its component, pre-linked, and what it said about itself.
pub struct LoadedPlugin {
    /// Its `describe`.
    pub info: PluginInfo,
    /// Where it came from.
    pub path: PathBuf,
    pub(crate) pre: PluginPre<StoreState>,
}

/// What loading one file gave: the plugin's name, or why it was skipped.
pub type LoadOutcome = (PathBuf, Result<String, PluginError>);

/// A line of `openva plugin list`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PluginSummary {
    /// Name (what topologies reference).
    pub name: String,
    /// Version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// resource or by-value.
    pub mode: String,
    /// The file.
    pub path: String,
}

/// The plugin host of one process.
pub struct PluginHost {
    pub(crate) engine: Engine,
    linker: Linker<StoreState>,
    plugins: RwLock<BTreeMap<String, Arc<LoadedPlugin>>>,
    /// Content hash of every file loaded (or refused) last, so a re-scan loads only changes.
    seen: std::sync::Mutex<BTreeMap<PathBuf, u64>>,
    pub(crate) limits: Limits,
    cache_dir: Option<PathBuf>,
    /// Advances the engine's epoch while a guest call runs (`epoch.rs`).
    pub(crate) ticker: super::epoch::Ticker,
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn host_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::Host(e.to_string())
}

impl PluginHost {
    /// Creates the engine (epoch interruption on, pooling allocator when the machine allows
    /// it) and starts the epoch ticker. `cache_dir` holds precompiled artifacts.
    pub fn new(limits: Limits, cache_dir: Option<PathBuf>) -> Result<Arc<PluginHost>, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(1024)
            .total_memories(512)
            .total_tables(1024)
            .max_memory_size(limits.memory_bytes);
        let mut pooled = config.clone();
        pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // Pooling reserves address space up front; fall back to on-demand allocation where
        // that is not possible (small VMs, strict overcommit).
        let engine = Engine::new(&pooled).or_else(|e| {
            tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation");
            Engine::new(&config)
        });
        let engine = engine.map_err(host_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host_err)?;
        Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s).map_err(host_err)?;
        super::bindings::add_zero_copy_writes(&mut linker).map_err(host_err)?;
        let ticker = super::epoch::Ticker::start(&engine).map_err(host_err)?;
        if let Some(d) = &cache_dir {
            let _ = std::fs::create_dir_all(d);
        }
        Ok(Arc::new(PluginHost {
            engine,
            linker,
            plugins: RwLock::new(BTreeMap::new()),
            seen: std::sync::Mutex::default(),
            limits,
            cache_dir,
            ticker,
        }))
    }

    /// Compiles (or loads the cached compilation of) a component.
    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Component, PluginError> {
        let load_err = |m: String| PluginError::Load { path: path.display().to_string(), message: m };
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(|e| load_err(format!("{e:#}")));
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let engine_key = h.finish();
        let content = md5::Md5::digest(bytes);
        let key: String = content.iter().map(|b| format!("{b:02x}")).collect();
        let cached = dir.join(format!("{key}-{engine_key:016x}.cwasm"));
        if cached.is_file() {
            // SAFETY: `deserialize_file` trusts the file to be a compilation by this engine.
            // The name binds it to the exact component bytes (content digest) and to this
            // engine's configuration and version (compatibility hash); the file is written by
            // this process (below) via a temporary name and an atomic rename, in a cache
            // directory owned by the user running openva. Whoever can write there can already
            // replace the openva binary itself, so it adds no capability.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!(path = %cached.display(), "unusable cached compilation, recompiling: {e}"),
            }
        }
        let compiled = self.engine.precompile_component(bytes).map_err(|e| load_err(format!("{e:#}")))?;
        // A name of its own per writer: two processes compiling the same plugin at once must
        // not interleave their bytes in one temporary file.
        let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let tmp = cached.with_extension(format!("{}.{unique}.tmp", std::process::id()));
        if std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &cached)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Component::new(&self.engine, bytes).map_err(|e| load_err(format!("{e:#}")))
    }

    /// Loads one component file, asks it to describe itself, and registers it by that name
    /// (replacing a previous version of the same name).
    pub fn load_file(&self, path: &Path) -> Result<Arc<LoadedPlugin>, PluginError> {
        let load_err = |m: String| PluginError::Load { path: path.display().to_string(), message: m };
        let bytes = std::fs::read(path).map_err(|e| load_err(e.to_string()))?;
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_owned(), content_hash(&bytes));
        let component = self.compile(path, &bytes)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| load_err(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| load_err(format!("not an openva:processor plugin: {e:#}")))?;
        let mut store = Store::new(&self.engine, StoreState::new("(loading)", self.limits.memory_bytes, 20));
        store.limiter(|s| &mut s.limits);
        let _running = self.ticker.running();
        store.set_epoch_deadline(ticks(self.limits.setup_time));
        let plugin = pre.instantiate(&mut store).map_err(|e| load_err(format!("{e:#}")))?;
        let info = plugin
            .openva_processor_processor()
            .call_describe(&mut store)
            .map_err(|e| load_err(format!("describe failed: {e:#}")))?;
        if info.name.is_empty()
            || info.name.len() > 64
            || !info.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(load_err(format!("describe returned an invalid name {:?}", info.name)));
        }
        let loaded = Arc::new(LoadedPlugin { info, path: path.to_path_buf(), pre });
        self.plugins.write().unwrap_or_else(|p| p.into_inner()).insert(loaded.info.name.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Loads every `*.wasm` in `dir` (sorted); returns each file's outcome. One bad file does
    /// not stop the others.
    pub fn load_dir(&self, dir: &Path) -> Result<Vec<LoadOutcome>, PluginError> {
        let rd = std::fs::read_dir(dir).map_err(|e| PluginError::Load {
            path: dir.display().to_string(),
            message: format!("cannot read the plugins directory: {e}"),
        })?;
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
        files.sort();
        Ok(files
            .into_iter()
            .map(|p| {
                let r = self.load_file(&p).map(|l| l.info.name.clone());
                if let Err(e) = &r {
                    tracing::warn!("{e}");
                }
                (p, r)
            })
            .collect())
    }

    /// The plugin registered under `name`.
    pub fn get(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        plugins.get(name).cloned().ok_or_else(|| PluginError::Unknown {
            name: name.to_owned(),
            loaded: plugins.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// Loads the `*.wasm` files of `dir` that are new or changed since they were last loaded
    /// (compiling off the caller's hot path: nodes keep running the version they have). A new
    /// version that compiles replaces the old one under its name, and every node picks it up
    /// at its next frame; one that does not compile is refused and the old one stays. Files
    /// removed from the folder leave their plugin loaded (running nodes keep working).
    pub fn reload_changed(&self, dir: &Path) -> Vec<LoadOutcome> {
        let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
        files.sort();
        let mut out = Vec::new();
        for p in files {
            let Ok(bytes) = std::fs::read(&p) else { continue };
            let h = content_hash(&bytes);
            if self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(&p) == Some(&h) {
                continue;
            }
            let r = self.load_file(&p).map(|l| l.info.name.clone());
            out.push((p, r));
        }
        out
    }

    /// Every loaded plugin.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.plugins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| PluginSummary {
                name: p.info.name.clone(),
                version: p.info.version.clone(),
                description: p.info.description.clone(),
                mode: match p.info.mode {
                    CallMode::Resource => "resource".into(),
                    CallMode::ByValue => "by-value".into(),
                },
                path: p.path.display().to_string(),
            })
            .collect()
    }

    /// A configured instance of `name` for one node. `config` is the node's configuration as
    /// a JSON object.
    pub fn instantiate(
        self: &Arc<Self>,
        name: &str,
        config: &serde_json::Value,
    ) -> Result<PluginInstance, PluginError> {
        PluginInstance::new(self.clone(), self.get(name)?, config.to_string())
    }
}

/// Epoch ticks covering `d` (at least one).
pub(crate) fn ticks(d: Duration) -> u64 {
    (d.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

use md5::Digest as _;
