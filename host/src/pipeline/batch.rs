//! What a batch topology asks for, read from its nodes after parameter substitution:
//! `VideoSource` (a recorded video and its time ranges) → optional `EncoderProcessor` (a
//! preset) → `VideoSink` (the file video to create). Every malformed or out-of-range value is
//! a `ModuleValidationError` that names the node and the field, so a job is refused before it
//! starts rather than failing half-way.

use crate::time::Time90k;
use crate::topology::{TopologyError, shown};
use serde_json::Value;

/// Most ranges in one job.
pub const MAX_RANGES: usize = 1000;
/// Bit rates accepted for `videoEncoder.bitrateKbps`.
pub const VIDEO_KBPS: std::ops::RangeInclusive<u32> = 100..=100_000;
/// AVA's `AudioEncoderAac.bitrateKbps` values.
pub const AAC_KBPS: [u32; 7] = [96, 112, 128, 160, 192, 224, 256];

/// The batch pipeline a job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchPlan {
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

impl BatchPlan {
    /// Sum of the ranges' lengths.
    pub fn total_90k(&self) -> i64 {
        self.ranges.iter().map(|(s, e)| e.0 - s.0).sum()
    }
}

/// AVA's scale modes (`ImageScale.mode` and the encoder's `scale.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMode {
    /// Exactly the size asked, letterboxed to keep the aspect ratio (AVA's default).
    Pad,
    /// The largest size within the bounds that keeps the aspect ratio.
    PreserveAspectRatio,
    /// Exactly the size asked, aspect ratio not kept.
    Stretch,
}

impl ScaleMode {
    /// The `scale` plugin's name for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleMode::Pad => "pad",
            ScaleMode::PreserveAspectRatio => "preserveAspectRatio",
            ScaleMode::Stretch => "stretch",
        }
    }

    /// Parses AVA's spelling in any letter case.
    pub fn parse(s: &str) -> Option<Self> {
        [ScaleMode::Pad, ScaleMode::PreserveAspectRatio, ScaleMode::Stretch]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

/// The picture size an encode asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScaleSpec {
    /// How the picture fits the size.
    pub mode: ScaleMode,
    /// Output width (Pad/Stretch: required).
    pub width: Option<u32>,
    /// Output height (Pad/Stretch: required).
    pub height: Option<u32>,
}

impl ScaleSpec {
    /// The `scale` plugin's configuration.
    pub fn plugin_config(&self) -> Value {
        let mut c = serde_json::json!({"mode": self.mode.as_str()});
        if let Some(w) = self.width {
            c["width"] = w.into();
        }
        if let Some(h) = self.height {
            c["height"] = h.into();
        }
        c
    }
}

/// What an `EncoderProcessor` asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodeSpec {
    /// The preset's name (system presets) or `custom`.
    pub preset: String,
    /// Target video bit rate; `None`: chosen from the output size.
    pub bitrate_kbps: Option<u32>,
    /// Output frame rate; `None`: the input's.
    pub frame_rate: Option<f64>,
    /// Output size; `None`: the input's.
    pub scale: Option<ScaleSpec>,
    /// AAC bit rate asked for. The archive records video only, so there is no audio to encode;
    /// kept for the job's report.
    pub audio_kbps: Option<u32>,
}

/// System presets: AVA's `SingleLayer_*_H264_AAC` (cloud) and the tutorial's
/// `H264SingleBitrate*` names: output height, video bit rate, AAC bit rate. The aspect ratio is
/// kept (width derived), the frame rate is the input's.
const SYSTEM_PRESETS: [(&str, u32, u32, u32); 7] = [
    ("SingleLayer_540p_H264_AAC", 540, 2000, 96),
    ("SingleLayer_720p_H264_AAC", 720, 3500, 96),
    ("SingleLayer_1080p_H264_AAC", 1080, 6000, 128),
    ("SingleLayer_2160p_H264_AAC", 2160, 16000, 128),
    ("H264SingleBitrateSD", 480, 2200, 128),
    ("H264SingleBitrate720p", 720, 4500, 128),
    ("H264SingleBitrate1080p", 1080, 6750, 128),
];

/// The names of the system presets, for messages and the CLI.
pub fn system_preset_names() -> Vec<&'static str> {
    SYSTEM_PRESETS.iter().map(|p| p.0).collect()
}

/// A system preset by name (any letter case).
pub fn system_preset(name: &str) -> Option<EncodeSpec> {
    let &(canonical, height, kbps, audio) = SYSTEM_PRESETS.iter().find(|p| p.0.eq_ignore_ascii_case(name))?;
    Some(EncodeSpec {
        preset: canonical.to_owned(),
        bitrate_kbps: Some(kbps),
        frame_rate: None,
        scale: Some(ScaleSpec { mode: ScaleMode::PreserveAspectRatio, width: None, height: Some(height) }),
        audio_kbps: Some(audio),
    })
}

fn invalid(node: &str, field: &str, message: impl std::fmt::Display) -> TopologyError {
    TopologyError::module(format!("node '{node}': {field}: {message}"))
}

/// A key of a JSON object, case-insensitively (AVA's clients vary the case), `null` as absent.
use crate::topology::json::member as get;

fn string<'a>(v: &'a Value, key: &str, node: &str, field: &str) -> Result<Option<&'a str>, TopologyError> {
    match get(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(node, field, "must be a string")),
    }
}

/// A number given as a JSON number or a numeric string (AVA writes `"bitrateKbps": "3000"`).
fn number(v: &Value, key: &str, node: &str, field: &str) -> Result<Option<f64>, TopologyError> {
    let x = match get(v, key) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match x {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(invalid(node, field, "must be a number")),
    }
}

fn integer_in(
    v: &Value,
    key: &str,
    node: &str,
    field: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<Option<u32>, TopologyError> {
    match number(v, key, node, field)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && x >= f64::from(*range.start()) && x <= f64::from(*range.end()) => {
            Ok(Some(x as u32))
        }
        Some(x) => {
            Err(invalid(node, field, format!("must be a whole number in {}..={}, got {x}", range.start(), range.end())))
        }
    }
}

/// Reads the plan from the substituted bodies of a batch topology's nodes (`(type, name,
/// body)` in topology order). The graph shape was checked when the topology was set.
pub fn plan(nodes: &[(String, String, Value)]) -> Result<BatchPlan, TopologyError> {
    let find = |t: &str| nodes.iter().find(|(ty, _, _)| ty == t);
    let (_, source_node, source) =
        find("VideoSource").ok_or_else(|| TopologyError::pipeline("a batch topology needs a VideoSource"))?;
    let (_, sink_node, sink) =
        find("VideoSink").ok_or_else(|| TopologyError::pipeline("a batch topology needs a VideoSink"))?;
    let source_video = string(source, "videoName", source_node, "videoName")?
        .ok_or_else(|| invalid(source_node, "videoName", "is required"))?
        .to_owned();
    crate::archive::validate_video_name(&source_video).map_err(|e| invalid(source_node, "videoName", e))?;
    let ranges = time_sequences(source_node, get(source, "timeSequences"))?;
    let encoder = match find("EncoderProcessor") {
        Some((_, name, body)) => Some((name.clone(), encoder(name, body)?)),
        None => None,
    };
    let output_video = string(sink, "videoName", sink_node, "videoName")?
        .ok_or_else(|| invalid(sink_node, "videoName", "is required"))?
        .to_owned();
    crate::archive::validate_video_name(&output_video).map_err(|e| invalid(sink_node, "videoName", e))?;
    if output_video == source_video {
        return Err(invalid(sink_node, "videoName", "the output video must not be the source video"));
    }
    let (mut title, mut description) = (None, None);
    if let Some(props) = get(sink, "videoCreationProperties") {
        for key in ["segmentLength", "retentionPeriod"] {
            if get(props, key).is_some() {
                return Err(invalid(
                    sink_node,
                    &format!("videoCreationProperties.{key}"),
                    "is not allowed in a batch topology (its video is one MP4 file)",
                ));
            }
        }
        title = string(props, "title", sink_node, "videoCreationProperties.title")?.map(str::to_owned);
        description =
            string(props, "description", sink_node, "videoCreationProperties.description")?.map(str::to_owned);
        if title.as_ref().is_some_and(|t| t.chars().count() > 256) {
            return Err(invalid(sink_node, "videoCreationProperties.title", "is longer than 256 characters"));
        }
        if description.as_ref().is_some_and(|d| d.chars().count() > 2048) {
            return Err(invalid(sink_node, "videoCreationProperties.description", "is longer than 2048 characters"));
        }
    }
    Ok(BatchPlan {
        source_node: source_node.clone(),
        source_video,
        ranges,
        encoder,
        sink_node: sink_node.clone(),
        output_video,
        title,
        description,
    })
}

/// `timeSequences` in both of AVA's forms: `{"@type": "…VideoSequenceAbsoluteTimeMarkers",
/// "ranges": "[[start, end], …]"}` (a JSON string, or the array itself) and the tutorial's
/// `dateTimeMarkers` (the same, or `[{"start", "end"}, …]`).
fn time_sequences(node: &str, v: Option<&Value>) -> Result<Vec<(Time90k, Time90k)>, TopologyError> {
    let Some(v) = v else { return Err(invalid(node, "timeSequences", "is required")) };
    if let Some(t) = get(v, "@type").and_then(Value::as_str) {
        let bare = t.rsplit('.').next().unwrap_or(t);
        if !bare.eq_ignore_ascii_case("VideoSequenceAbsoluteTimeMarkers") {
            return Err(invalid(
                node,
                "timeSequences.@type",
                format!("must be #Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers, got '{}'", shown(t)),
            ));
        }
    }
    let (field, list) = match (get(v, "ranges"), get(v, "dateTimeMarkers")) {
        (Some(r), None) => ("timeSequences.ranges", r),
        (None, Some(d)) => ("timeSequences.dateTimeMarkers", d),
        (Some(_), Some(_)) => {
            return Err(invalid(node, "timeSequences", "give either ranges or dateTimeMarkers, not both"));
        }
        (None, None) => return Err(invalid(node, "timeSequences.ranges", "is required")),
    };
    let parsed;
    let list = match list {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s)
                .map_err(|e| invalid(node, field, format!("is not a JSON list of [start, end] pairs: {e}")))?;
            &parsed
        }
        other => other,
    };
    let Some(items) = list.as_array() else {
        return Err(invalid(node, field, "must be a list of [start, end] pairs"));
    };
    if items.is_empty() {
        return Err(invalid(node, field, "must hold at least one range"));
    }
    if items.len() > MAX_RANGES {
        return Err(invalid(node, field, format!("holds {} ranges; at most {MAX_RANGES}", items.len())));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut total = 0i64;
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let (s, e) = match item {
            Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
            Value::Object(_) => (
                get(item, "start").or_else(|| get(item, "startTime")).unwrap_or(&Value::Null),
                get(item, "end").or_else(|| get(item, "endTime")).unwrap_or(&Value::Null),
            ),
            _ => return Err(invalid(node, &at, "must be a [start, end] pair")),
        };
        let instant = |v: &Value, which: &str| -> Result<Time90k, TopologyError> {
            let text = v.as_str().ok_or_else(|| invalid(node, &format!("{at}.{which}"), "must be a string"))?;
            utc_instant(text).map_err(|m| invalid(node, &format!("{at}.{which}"), m))
        };
        let (start, end) = (instant(s, "start")?, instant(e, "end")?);
        if end <= start {
            return Err(invalid(
                node,
                &at,
                format!("end {} is not after start {}", end.to_iso_millis(), start.to_iso_millis()),
            ));
        }
        total += end.0 - start.0;
        // AVA: the ranges of one job add up to 24 hours at most.
        if total > crate::limits::MAX_SPAN_90K {
            return Err(invalid(node, field, "the ranges add up to more than 24 hours"));
        }
        out.push((start, end));
    }
    Ok(out)
}

/// An ISO 8601 instant in UTC: `Z` or a zero offset (AVA's time markers are UTC).
fn utc_instant(s: &str) -> Result<Time90k, String> {
    let t = s.trim();
    let utc = t.ends_with('Z') || t.ends_with('z') || t.ends_with("+00:00") || t.ends_with("-00:00");
    if !utc || !t.contains('T') {
        return Err(format!("'{}' is not an ISO 8601 UTC instant (e.g. 2021-10-05T03:30:00Z)", shown(s)));
    }
    Time90k::parse_iso(t).map_err(|_| format!("'{}' is not an ISO 8601 UTC instant", shown(s)))
}

/// An `EncoderProcessor` node's body (`{"preset": …}`) as settings; errors name `node` and
/// the field. Also what `openva export`'s encoder options are checked with.
pub fn encoder(node: &str, body: &Value) -> Result<EncodeSpec, TopologyError> {
    let Some(preset) = get(body, "preset") else { return Err(invalid(node, "preset", "is required")) };
    let ty = get(preset, "@type").and_then(Value::as_str).unwrap_or("");
    let bare = ty.rsplit('.').next().unwrap_or(ty).trim_start_matches('#');
    if bare.eq_ignore_ascii_case("EncoderSystemPreset") {
        let name =
            string(preset, "name", node, "preset.name")?.ok_or_else(|| invalid(node, "preset.name", "is required"))?;
        return system_preset(name).ok_or_else(|| {
            invalid(
                node,
                "preset.name",
                format!("unknown preset '{}'; use one of {}", shown(name), system_preset_names().join(", ")),
            )
        });
    }
    if !bare.eq_ignore_ascii_case("EncoderCustomPreset") {
        return Err(invalid(
            node,
            "preset.@type",
            format!("must be #Microsoft.VideoAnalyzer.EncoderSystemPreset or EncoderCustomPreset, got '{}'", shown(ty)),
        ));
    }
    let mut spec =
        EncodeSpec { preset: "custom".into(), bitrate_kbps: None, frame_rate: None, scale: None, audio_kbps: None };
    if let Some(a) = get(preset, "audioEncoder") {
        spec.audio_kbps = match number(a, "bitrateKbps", node, "preset.audioEncoder.bitrateKbps")? {
            None => None,
            Some(k) if k.fract() == 0.0 && AAC_KBPS.contains(&(k as u32)) => Some(k as u32),
            Some(k) => {
                return Err(invalid(
                    node,
                    "preset.audioEncoder.bitrateKbps",
                    format!("must be one of {AAC_KBPS:?}, got {k}"),
                ));
            }
        };
    }
    if let Some(v) = get(preset, "videoEncoder") {
        spec.bitrate_kbps = integer_in(v, "bitrateKbps", node, "preset.videoEncoder.bitrateKbps", VIDEO_KBPS)?;
        spec.frame_rate = match number(v, "frameRate", node, "preset.videoEncoder.frameRate")? {
            None => None,
            Some(f) if f > 0.0 && f <= 300.0 => Some(f),
            Some(f) => {
                return Err(invalid(node, "preset.videoEncoder.frameRate", format!("must be in (0, 300], got {f}")));
            }
        };
        if let Some(sc) = get(v, "scale") {
            spec.scale = Some(scale(node, sc)?);
        }
    }
    Ok(spec)
}

fn scale(node: &str, v: &Value) -> Result<ScaleSpec, TopologyError> {
    let mode = match string(v, "mode", node, "preset.videoEncoder.scale.mode")? {
        None => ScaleMode::Pad,
        Some(m) => ScaleMode::parse(m).ok_or_else(|| {
            invalid(
                node,
                "preset.videoEncoder.scale.mode",
                format!("must be Pad, PreserveAspectRatio or Stretch, got '{}'", shown(m)),
            )
        })?,
    };
    let width = integer_in(v, "width", node, "preset.videoEncoder.scale.width", 1..=8192)?;
    let height = integer_in(v, "height", node, "preset.videoEncoder.scale.height", 1..=4320)?;
    match mode {
        ScaleMode::Pad | ScaleMode::Stretch => {
            for (field, value) in [("width", width), ("height", height)] {
                match value {
                    None => {
                        return Err(invalid(
                            node,
                            &format!("preset.videoEncoder.scale.{field}"),
                            format!("is required with mode {mode:?}"),
                        ));
                    }
                    Some(x) if x % 2 == 1 => {
                        return Err(invalid(
                            node,
                            &format!("preset.videoEncoder.scale.{field}"),
                            format!("must be even with mode {mode:?} (H.264 4:2:0 chroma), got {x}"),
                        ));
                    }
                    _ => {}
                }
            }
        }
        ScaleMode::PreserveAspectRatio => {
            if width.is_none() && height.is_none() {
                return Err(invalid(
                    node,
                    "preset.videoEncoder.scale",
                    "needs width or height with mode PreserveAspectRatio",
                ));
            }
        }
    }
    Ok(ScaleSpec { mode, width, height })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TICKS_PER_SEC;
    use serde_json::json;

    fn nodes(source: Value, encoder: Option<Value>, sink: Value) -> Vec<(String, String, Value)> {
        let mut v = vec![("VideoSource".to_owned(), "videoSource".to_owned(), source)];
        if let Some(e) = encoder {
            v.push(("EncoderProcessor".to_owned(), "encoder".to_owned(), e));
        }
        v.push(("VideoSink".to_owned(), "videoSink".to_owned(), sink));
        v
    }

    fn source(ranges: Value) -> Value {
        json!({"videoName": "cam1", "timeSequences": {"@type": "#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers", "ranges": ranges}})
    }

    fn err(n: Vec<(String, String, Value)>) -> String {
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
        assert_eq!(p.total_90k(), 600 * TICKS_PER_SEC);
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
        assert_eq!(a.total_90k(), 90 * TICKS_PER_SEC);
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
        assert!(e.contains("timeSequences: is required"), "{e}");
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
            (json!({}), "preset: is required"),
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
        assert!(e.contains("node 'videoSink': videoName"), "{e}");
        let e = err(nodes(src(), None, json!({})));
        assert!(e.contains("videoName: is required"), "{e}");
    }
}
