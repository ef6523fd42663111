//! From a topology and a pipeline's parameters to the typed plan a pipeline runs: which nodes
//! this host can run, their settings checked, the video, the processors and the hub sinks.

use super::*;

/// A batch topology's settings are checked when it is set if they hold no `${…}` (the
/// common case of a topology written for one export); parameterised ones when a job sets them.
pub(super) fn check_batch_literals(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
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
        crate::pipeline::batch::encoder(&n.name, &n.body)?;
    }
    if t.nodes.iter().any(|n| n.body.to_string().contains("${")) {
        return Ok(());
    }
    let nodes: Vec<(String, String, Value)> =
        t.nodes.iter().map(|n| (n.type_name.clone(), n.name.clone(), n.body.clone())).collect();
    crate::pipeline::batch::plan(&nodes)?;
    Ok(())
}

/// Refuses topologies with nodes this host cannot run yet (AVA: ModuleValidationError). The
/// message names the node and its type as written in the topology.
pub(in crate::pipeline) fn check_runnable(t: &Topology, plugins: Option<&PluginHost>) -> Result<(), PipelineError> {
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

/// The typed configuration of a pipeline ready to run.
pub(in crate::pipeline) struct Plan {
    pub(in crate::pipeline) source_node: String,
    pub(in crate::pipeline) source: SourceOptions,
    /// The video sink, if the topology records.
    pub(super) video: Option<VideoPlan>,
    /// Processor nodes in topological order.
    pub(in crate::pipeline) processors: Vec<ProcessorPlan>,
    /// IoT Hub message sinks (inference outlets).
    pub(in crate::pipeline) hubs: Vec<analysis::HubSink>,
}

#[derive(Clone)]
pub(super) struct VideoPlan {
    pub(super) sink_node: String,
    pub(super) video: String,
    pub(super) config: VideoConfig,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
}

impl VideoPlan {
    /// Opens the sink's video for writing (creating it with the sink's creation properties).
    pub(super) fn open(&self, archive: &Arc<Archive>) -> Result<VideoWriter, PipelineError> {
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
pub(super) enum Writer {
    Open(Box<VideoWriter>),
    Pending(VideoPlan, String),
}

pub(in crate::pipeline) struct ProcessorPlan {
    pub(super) node: String,
    pub(super) input: String,
    pub(super) plugin: String,
    pub(super) config: Value,
    /// From `samplingOptions.maximumSamplesPerSecond`: least 90 kHz ticks between frames.
    pub(super) interval: Option<i64>,
}

/// Highest sampling rate accepted: above any camera's frame rate, so it means "every frame".
pub(super) const MAX_SAMPLES_PER_SECOND: f64 = 1000.0;

/// AVA's `samplingOptions` of an extension-style node: `maximumSamplesPerSecond` (a number, or
/// a numeric string as AVA writes it) → least 90 kHz ticks between processed frames.
pub(super) fn sampling_interval(node: &str, body: &Value) -> Result<Option<i64>, PipelineError> {
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

/// The name and spec of an AVA pipeline entity `{"name", "properties": {…}}` (`what`: "live
/// pipeline", "pipeline job"), checked.
pub(in crate::pipeline) fn parse_entity<'a>(
    body: &'a Value,
    what: &str,
) -> Result<(&'a str, PipelineSpec), PipelineError> {
    let invalid = |m: &str| module_error(format!("invalid {what}: {m}"));
    let name = get_ci(body, "name").and_then(Value::as_str).ok_or_else(|| invalid("'name' (string) is required"))?;
    topology::validate_name(what, name)?;
    let props = get_ci(body, "properties").ok_or_else(|| invalid("'properties' is required"))?;
    Ok((name, parse_spec(props, what)?))
}

pub(in crate::pipeline) fn parse_spec(props: &Value, what: &str) -> Result<PipelineSpec, PipelineError> {
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
pub(in crate::pipeline) fn plan(
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
