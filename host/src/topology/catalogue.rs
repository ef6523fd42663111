//! AVA's node catalogue: which `@type`s exist, their role and their required properties.

use super::model::NodeRole;

/// The `@type` prefix of AVA (`#Microsoft.VideoAnalyzer.RtspSource`).
const AVA_PREFIX: &str = "#Microsoft.VideoAnalyzer.";

/// The `@type` prefix of AVA's predecessor LVA (`#Microsoft.Media.MediaGraphRtspSource`);
/// accepted so old graph topologies still load.
const LVA_PREFIX: &str = "#Microsoft.Media.MediaGraph";

/// The `@type` prefix of openva's own node types (`#openva.WasmProcessor`).
const OPENVA_PREFIX: &str = "#openva.";

/// Strips the AVA, LVA or openva prefix (case-insensitively) from a `@type`, giving the bare type
/// name; `None` when the prefix is missing or nothing follows it.
pub fn strip_type_prefix(t: &str) -> Option<&str> {
    for p in [AVA_PREFIX, LVA_PREFIX, OPENVA_PREFIX] {
        if let Some(head) = t.get(..p.len())
            && head.eq_ignore_ascii_case(p)
        {
            let rest = &t[p.len()..];
            return (!rest.is_empty()).then_some(rest);
        }
    }
    None
}

/// A catalogue entry.
#[derive(Debug, Clone, Copy)]
pub struct NodeKind {
    /// The canonical spelling, e.g. `IotHubMessageSink`.
    pub canonical: &'static str,
    /// The list the node type belongs in.
    pub role: NodeRole,
    /// Required properties as dotted paths; `a|b` means either is enough.
    pub required: &'static [&'static str],
}

/// Catalogue spellings; lookup is case-insensitive (samples write `IoTHubMessageSink`).
const CATALOGUE: &[(&str, NodeKind)] = &[
    ("RtspSource", kind("RtspSource", NodeRole::Source, &["endpoint", "endpoint.url"])),
    ("IotHubMessageSource", kind("IotHubMessageSource", NodeRole::Source, &[])),
    ("VideoSource", kind("VideoSource", NodeRole::Source, &["videoName", "timeSequences"])),
    ("MotionDetectionProcessor", kind("MotionDetectionProcessor", NodeRole::Processor, &[])),
    ("HttpExtension", kind("HttpExtension", NodeRole::Processor, &["endpoint", "endpoint.url", "image"])),
    (
        "GrpcExtension",
        kind("GrpcExtension", NodeRole::Processor, &["endpoint", "endpoint.url", "image", "dataTransfer.mode"]),
    ),
    (
        "CognitiveServicesVisionProcessor",
        kind("CognitiveServicesVisionProcessor", NodeRole::Processor, &["endpoint", "endpoint.url", "operation"]),
    ),
    // The 1.0 draft name (corpus `spatial-analysis@18d9447.json`); that draft had no
    // `operation` yet, so it is not required under this spelling.
    (
        "CognitiveServicesVisionExtension",
        kind("CognitiveServicesVisionProcessor", NodeRole::Processor, &["endpoint", "endpoint.url"]),
    ),
    ("SignalGateProcessor", kind("SignalGateProcessor", NodeRole::Processor, &[])),
    ("ObjectTrackingProcessor", kind("ObjectTrackingProcessor", NodeRole::Processor, &[])),
    ("LineCrossingProcessor", kind("LineCrossingProcessor", NodeRole::Processor, &["lines"])),
    ("EncoderProcessor", kind("EncoderProcessor", NodeRole::Processor, &["preset"])),
    // The edge swagger also requires `localMediaCachePath` and `localMediaCacheMaximumSizeMiB`,
    // but cloud topologies (corpus `cloud-*.json`, `export-from-video-archive.json`) have
    // neither, so only the video name is required. `videoSinkName` is an early 1.0 draft
    // spelling (corpus `cvr-with-httpExtension-and-objectTracking-topology1/4`).
    ("VideoSink", kind("VideoSink", NodeRole::Sink, &["videoName|videoSinkName"])),
    ("FileSink", kind("FileSink", NodeRole::Sink, &["baseDirectoryPath", "fileNamePattern", "maximumSizeMiB"])),
    ("IotHubMessageSink", kind("IotHubMessageSink", NodeRole::Sink, &["hubOutputName"])),
    // openva: runs any processor plugin by name (`#openva.WasmProcessor`).
    ("WasmProcessor", kind("WasmProcessor", NodeRole::Processor, &["plugin"])),
];

const fn kind(canonical: &'static str, role: NodeRole, required: &'static [&'static str]) -> NodeKind {
    NodeKind { canonical, role, required }
}

/// Looks a bare type name up in the catalogue, case-insensitively.
pub fn lookup(type_name: &str) -> Option<NodeKind> {
    CATALOGUE.iter().find(|(k, _)| k.eq_ignore_ascii_case(type_name)).map(|(_, v)| *v)
}

/// Whether a canonical type is an inference extension (the nodes an object tracker may follow).
pub fn is_extension(canonical: &str) -> bool {
    matches!(canonical, "HttpExtension" | "GrpcExtension" | "CognitiveServicesVisionProcessor")
}
