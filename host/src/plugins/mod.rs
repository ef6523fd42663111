//! The Wasm plugin host: processor nodes are WebAssembly components implementing
//! `wit/processor.wit`, loaded by name from a plugins directory and run by wasmtime with hard
//! limits, so that a third party's bug (a loop, a leak, a panic, a wrong frame, a flood) stops
//! that plugin's node and nothing else.
//!
//! One [`PluginHost`] (one wasmtime `Engine`) per process; one [`PluginInstance`] (one `Store`)
//! per pipeline node, long-lived, rebuilt after a fault. Calls are synchronous: run them on a
//! plain thread, never on a tokio worker (WASI's sync bindings would panic there). The contract
//! and the limits are written down in `docs/plugins.md`.

pub mod bindings;
mod epoch;
mod instance;
mod registry;

pub use instance::{FaultKind, PluginInstance, Processed};
pub use registry::{Limits, LoadedPlugin, PluginHost, PluginSummary};

/// Why a plugin could not be loaded, configured or run.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file is not a usable component.
    #[error("plugin {path}: {message}")]
    Load {
        /// The `.wasm` file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// No plugin of that name is loaded.
    #[error("no plugin named '{name}' (loaded: {loaded})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The loaded ones, comma-separated.
        loaded: String,
    },
    /// The plugin refused its configuration.
    #[error("plugin '{plugin}' refused its configuration: {message}")]
    Configure {
        /// Plugin name.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// The plugin misbehaved and was stopped.
    #[error("plugin '{plugin}' was stopped: {message}")]
    Fault {
        /// Plugin name.
        plugin: String,
        /// The kind of fault.
        kind: FaultKind,
        /// What happened.
        message: String,
    },
    /// The plugin returned an error for this frame (it keeps running).
    #[error("plugin '{plugin}': {message}")]
    Process {
        /// Plugin name.
        plugin: String,
        /// Its message.
        message: String,
    },
    /// The plugin failed too often and is paused.
    #[error("plugin '{plugin}' is paused after {failures} failures; next try in {retry_in_s} s")]
    Paused {
        /// Plugin name.
        plugin: String,
        /// Failures in the window.
        failures: u32,
        /// Seconds until the next try.
        retry_in_s: u64,
    },
    /// wasmtime itself failed (engine setup, cache I/O).
    #[error("plugin host: {0}")]
    Host(String),
}

/// An inference in AVA's inference-metadata shape (`{"type": "motion", "motion": {"box":
/// {…}}}`, `{"type": "entity", "entity": {"tag", "box"}}`, …), as it leaves the host in
/// `Microsoft.VideoAnalyzer.Analytics.Inference` events.
pub fn inference_to_ava(i: &bindings::Inference) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut detail = Map::new();
    if let Some(b) = &i.region {
        detail.insert("box".into(), json!({"l": b.l, "t": b.t, "w": b.w, "h": b.h}));
    }
    if let Some(t) = &i.tag {
        detail.insert("tag".into(), json!({"value": t.value, "confidence": t.confidence}));
    }
    if !i.attributes.is_empty() {
        let attrs: Vec<Value> = i.attributes.iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
        detail.insert("attributes".into(), Value::Array(attrs));
    }
    let mut out = Map::new();
    out.insert("type".into(), json!(i.kind));
    if let Some(s) = &i.subtype {
        out.insert("subtype".into(), json!(s));
    }
    out.insert(i.kind.clone(), Value::Object(detail));
    if !i.extensions.is_empty() {
        let ext: Map<String, Value> = i.extensions.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        out.insert("extensions".into(), Value::Object(ext));
    }
    Value::Object(out)
}
