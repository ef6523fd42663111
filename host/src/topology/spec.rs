//! What the runtime is asked to run, typed: a live pipeline's or pipeline job's properties
//! ([`PipelineSpec`], AVA gives both the same shape) and a batch topology instantiated for one
//! job ([`BatchSpec`]).

use serde_json::Value;

use super::config::{Instance, NodeConfig};
use super::error::TopologyError;
use super::json::member as get;
use super::model::ParameterDefinition;
use super::names::validate_name;
use super::nodes::encoder::EncodeSpec;
use crate::time::{Duration90k, Time90k};

/// Longest `description` of a live pipeline or job.
pub const MAX_DESCRIPTION_LEN: usize = 2048;

/// The properties of a live pipeline (`livePipelineSet`) or a pipeline job, as set: which
/// topology, with which parameter values. This is also how they are stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    /// `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `topologyName`.
    pub topology_name: String,
    /// `parameters`: the values given, in order.
    #[serde(default)]
    pub parameters: Vec<ParameterDefinition>,
}

impl PipelineSpec {
    /// The name and spec of an AVA entity `{"name", "properties": {…}}`; `what` is "live
    /// pipeline" or "pipeline job", for messages.
    pub fn parse_entity<'a>(body: &'a Value, what: &str) -> Result<(&'a str, PipelineSpec), TopologyError> {
        let invalid = |m: &str| TopologyError::module(format!("invalid {what}: {m}"));
        let name = get(body, "name").and_then(Value::as_str).ok_or_else(|| invalid("'name' (string) is required"))?;
        validate_name(what, name)?;
        let props = get(body, "properties").ok_or_else(|| invalid("'properties' is required"))?;
        Ok((name, Self::parse_properties(props, what)?))
    }

    /// The spec from an entity's `properties`.
    pub fn parse_properties(props: &Value, what: &str) -> Result<PipelineSpec, TopologyError> {
        let invalid = |m: String| TopologyError::module(format!("invalid {what}: {m}"));
        let topology_name = get(props, "topologyName")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("'properties.topologyName' (string) is required".into()))?
            .to_owned();
        validate_name("pipeline topology", &topology_name)?;
        let description = match get(props, "description") {
            None => None,
            Some(Value::String(s)) if s.len() <= MAX_DESCRIPTION_LEN => Some(s.clone()),
            Some(_) => {
                return Err(invalid(format!(
                    "'properties.description' must be a string of at most {MAX_DESCRIPTION_LEN} characters"
                )));
            }
        };
        let mut parameters = Vec::new();
        match get(props, "parameters") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let name = get(item, "name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(format!("parameters[{i}].name (string) is required")))?;
                    let value = match get(item, "value") {
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
}

/// A batch topology instantiated for one job: `VideoSource` (a recorded video and its time
/// ranges) → optional `EncoderProcessor` → `VideoSink` (the file video to create).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSpec {
    /// `VideoSource` node name.
    pub source_node: String,
    /// The recorded video to read.
    pub source_video: String,
    /// Ranges exported in this order into one file.
    pub ranges: Vec<(Time90k, Time90k)>,
    /// `EncoderProcessor` node name and settings; `None` copies the recorded stream.
    pub encoder: Option<(String, EncodeSpec)>,
    /// `VideoSink` node name.
    pub sink_node: String,
    /// The file video to create.
    pub output_video: String,
    /// `videoCreationProperties.title`.
    pub title: Option<String>,
    /// `videoCreationProperties.description`.
    pub description: Option<String>,
}

impl BatchSpec {
    /// Sum of the ranges' lengths.
    pub fn total(&self) -> Duration90k {
        self.ranges.iter().map(|&(s, e)| e - s).sum()
    }
}

impl Instance {
    /// The batch job this instance of a batch topology describes, with the rules that span
    /// nodes (the graph's shape was checked when the topology was set).
    pub fn batch(self) -> Result<BatchSpec, TopologyError> {
        let (mut source, mut encoder, mut sink) = (None, None, None);
        for n in self.nodes {
            match n.config {
                NodeConfig::VideoSource(c) => source = Some((n.name, c)),
                NodeConfig::Encoder(e) => encoder = Some((n.name, e)),
                NodeConfig::VideoSink(c) => sink = Some((n.name, c)),
                _ => {}
            }
        }
        let (source_node, source) =
            source.ok_or_else(|| TopologyError::pipeline("a batch topology needs a VideoSource"))?;
        let (sink_node, sink) = sink.ok_or_else(|| TopologyError::pipeline("a batch topology needs a VideoSink"))?;
        let invalid = |field: &str, m: &str| TopologyError::module(format!("node '{sink_node}': {field}: {m}"));
        if sink.video_name == source.video_name {
            return Err(invalid("videoName", "the output video must not be the source video"));
        }
        for (key, set) in
            [("segmentLength", sink.segment_length.is_some()), ("retentionPeriod", sink.retention.is_some())]
        {
            if set {
                return Err(invalid(
                    &format!("videoCreationProperties.{key}"),
                    "is not allowed in a batch topology (its video is one MP4 file)",
                ));
            }
        }
        Ok(BatchSpec {
            source_node,
            source_video: source.video_name,
            ranges: source.ranges,
            encoder,
            sink_node,
            output_video: sink.video_name,
            title: sink.title,
            description: sink.description,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TICKS_PER_SEC;
    use crate::topology::nodes::encoder::{ScaleMode, ScaleSpec, system_preset};
    use crate::topology::{InstanceContext, parse};
    use serde_json::json;

    /// A batch topology of these node bodies (names and inputs added), as set and as one job
    /// instantiates it: `(topology as set, job)` results.
    fn nodes(source: Value, encoder: Option<Value>, sink: Value) -> Value {
        let with = |mut body: Value, t: &str, name: &str, input: Option<&str>| {
            body["@type"] = json!(format!("#Microsoft.VideoAnalyzer.{t}"));
            body["name"] = json!(name);
            if let Some(i) = input {
                body["inputs"] = json!([{"nodeName": i}]);
            }
            body
        };
        let processors: Vec<Value> =
            encoder.into_iter().map(|e| with(e, "EncoderProcessor", "encoder", Some("videoSource"))).collect();
        let sink_input = if processors.is_empty() { "videoSource" } else { "encoder" };
        json!({"name": "t", "kind": "Batch", "properties": {
            "sources": [with(source, "VideoSource", "videoSource", None)],
            "processors": processors,
            "sinks": [with(sink, "VideoSink", "videoSink", Some(sink_input))]}})
    }

    fn plan(topology: &Value) -> Result<BatchSpec, TopologyError> {
        let t = parse(topology)?;
        let ctx =
            InstanceContext { topology_name: "t".into(), pipeline_name: "job".into(), now: jiff::Timestamp::now() };
        t.instantiate(&ctx, &[])?.batch()
    }

    fn source(ranges: Value) -> Value {
        json!({"videoName": "cam1", "timeSequences": {"@type": "#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers", "ranges": ranges}})
    }

    fn err(n: Value) -> String {
        plan(&n).unwrap_err().to_string()
    }

    #[test]
    fn the_corpus_shape_with_a_system_preset() {
        let p = plan(&nodes(
            source(json!("[[\"2021-10-05T03:30:00Z\", \"2021-10-05T03:40:00Z\"]]")),
            Some(json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderSystemPreset", "name": "SingleLayer_1080p_H264_AAC"}})),
            json!({"videoName": "clip", "videoCreationProperties": {"title": "t", "description": "d"}}),
        ))
        .unwrap();
        assert_eq!(p.source_video, "cam1");
        assert_eq!(p.ranges.len(), 1);
        assert_eq!(p.total().0, 600 * TICKS_PER_SEC);
        let (_, e) = p.encoder.unwrap();
        assert_eq!(e.bitrate_kbps, Some(6000));
        assert_eq!(e.scale, Some(ScaleSpec { mode: ScaleMode::PreserveAspectRatio, width: None, height: Some(1080) }));
        assert_eq!((p.output_video.as_str(), p.title.as_deref()), ("clip", Some("t")));
    }

    #[test]
    fn both_time_marker_forms_and_several_ranges() {
        let a = plan(&nodes(
            source(json!([
                ["2021-10-05T03:30:00Z", "2021-10-05T03:31:00Z"],
                ["2021-10-05T04:00:00Z", "2021-10-05T04:00:30Z"]
            ])),
            None,
            json!({"videoName": "clip"}),
        ))
        .unwrap();
        let b = plan(&nodes(
            json!({"videoName": "cam1", "timeSequences": {"dateTimeMarkers": [
                {"start": "2021-10-05T03:30:00Z", "end": "2021-10-05T03:31:00Z"},
                {"startTime": "2021-10-05T04:00:00+00:00", "endTime": "2021-10-05T04:00:30Z"}]}}),
            None,
            json!({"videoName": "clip"}),
        ))
        .unwrap();
        assert_eq!(a.ranges, b.ranges);
        assert_eq!(a.total().0, 90 * TICKS_PER_SEC);
        assert!(a.encoder.is_none());
    }

    #[test]
    fn bad_ranges_name_the_field() {
        let sink = || json!({"videoName": "clip"});
        let cases = [
            (json!("not json"), "timeSequences.ranges: is not a JSON list"),
            (json!("[]"), "must hold at least one range"),
            (json!([["2021-10-05T03:31:00Z", "2021-10-05T03:30:00Z"]]), "timeSequences.ranges[0]: end"),
            (json!([["2021-10-05T03:30:00Z", "2021-10-05T03:30:00Z"]]), "is not after start"),
            (
                json!([["2021-10-05T03:30:00", "2021-10-05T03:31:00Z"]]),
                "ranges[0].start: '2021-10-05T03:30:00' is not an ISO 8601 UTC",
            ),
            (json!([["2021-10-05T03:30:00+02:00", "2021-10-05T03:31:00Z"]]), "ranges[0].start"),
            (json!([["yesterday", "2021-10-05T03:31:00Z"]]), "ranges[0].start"),
            (json!([["2021-10-05T03:30:00Z"]]), "ranges[0]: must be a [start, end] pair"),
            (json!([["2021-10-01T00:00:00Z", "2021-10-02T00:00:01Z"]]), "more than 24 hours"),
            (
                json!([
                    ["2021-10-01T00:00:00Z", "2021-10-01T13:00:00Z"],
                    ["2021-10-02T00:00:00Z", "2021-10-02T12:00:00Z"]
                ]),
                "more than 24 hours",
            ),
            (json!(42), "must be a list"),
        ];
        for (ranges, want) in cases {
            let e = err(nodes(source(ranges.clone()), None, sink()));
            assert!(e.contains("node 'videoSource'") && e.contains(want), "{ranges}: {e}");
        }
        let e = err(nodes(json!({"videoName": "cam1"}), None, sink()));
        assert!(e.contains("node 'videoSource' (VideoSource): required property 'timeSequences' is missing"), "{e}");
        let e = err(nodes(
            json!({"videoName": "cam1", "timeSequences": {"@type": "#Microsoft.VideoAnalyzer.Other", "ranges": "[]"}}),
            None,
            sink(),
        ));
        assert!(e.contains("timeSequences.@type"), "{e}");
    }

    #[test]
    fn encoder_presets_and_their_errors() {
        let src = || source(json!([["2021-10-05T03:30:00Z", "2021-10-05T03:31:00Z"]]));
        let sink = || json!({"videoName": "clip"});
        let custom = |video: Value| json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset", "videoEncoder": video}});
        let p = plan(&nodes(
            src(),
            Some(custom(
                json!({"@type": "#Microsoft.VideoAnalyzer.VideoEncoderH264", "bitrateKbps": "3000", "frameRate": "15",
                "scale": {"mode": "Stretch", "width": "1280", "height": "720"}}),
            )),
            sink(),
        ))
        .unwrap();
        let (_, e) = p.encoder.unwrap();
        assert_eq!((e.bitrate_kbps, e.frame_rate), (Some(3000), Some(15.0)));
        assert_eq!(e.scale, Some(ScaleSpec { mode: ScaleMode::Stretch, width: Some(1280), height: Some(720) }));
        assert!(system_preset("h264singlebitratesd").is_some());
        let cases = [
            (
                json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderSystemPreset", "name": "Fast"}}),
                "preset.name: unknown preset 'Fast'",
            ),
            (json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.Nope"}}), "preset.@type"),
            (json!({}), "required property 'preset' is missing"),
            (
                custom(json!({"bitrateKbps": "99"})),
                "preset.videoEncoder.bitrateKbps: must be a whole number in 100..=100000",
            ),
            (custom(json!({"bitrateKbps": "fast"})), "preset.videoEncoder.bitrateKbps: must be a number"),
            (custom(json!({"frameRate": "0"})), "preset.videoEncoder.frameRate: must be in (0, 300]"),
            (custom(json!({"frameRate": 301})), "preset.videoEncoder.frameRate"),
            (custom(json!({"scale": {"mode": "Zoom", "width": 2, "height": 2}})), "preset.videoEncoder.scale.mode"),
            (custom(json!({"scale": {"mode": "Pad", "width": 1280}})), "preset.videoEncoder.scale.height: is required"),
            (
                custom(json!({"scale": {"width": 9000, "height": 720}})),
                "preset.videoEncoder.scale.width: must be a whole number in 1..=8192",
            ),
            (custom(json!({"scale": {"width": 1280, "height": 0}})), "preset.videoEncoder.scale.height"),
            (custom(json!({"scale": {"mode": "Stretch", "width": 1281, "height": 720}})), "must be even"),
            (custom(json!({"scale": {"mode": "PreserveAspectRatio"}})), "needs width or height"),
            (
                json!({"preset": {"@type": "#Microsoft.VideoAnalyzer.EncoderCustomPreset", "audioEncoder": {"bitrateKbps": "100"}}}),
                "preset.audioEncoder.bitrateKbps",
            ),
        ];
        for (enc, want) in cases {
            let e = err(nodes(src(), Some(enc.clone()), sink()));
            assert!(e.contains("node 'encoder'") && e.contains(want), "{enc}: {e}");
        }
    }

    #[test]
    fn sink_rules() {
        let src = || source(json!([["2021-10-05T03:30:00Z", "2021-10-05T03:31:00Z"]]));
        let e = err(nodes(src(), None, json!({"videoName": "cam1"})));
        assert!(e.contains("must not be the source video"), "{e}");
        let e = err(nodes(
            src(),
            None,
            json!({"videoName": "clip", "videoCreationProperties": {"segmentLength": "PT30S"}}),
        ));
        assert!(e.contains("videoCreationProperties.segmentLength: is not allowed"), "{e}");
        let e = err(nodes(src(), None, json!({"videoName": "../x"})));
        assert!(e.contains("node 'videoSink' (VideoSink): videoName"), "{e}");
        let e = err(nodes(src(), None, json!({})));
        assert!(e.contains("node 'videoSink' (VideoSink): required property 'videoName' is missing"), "{e}");
    }
}
