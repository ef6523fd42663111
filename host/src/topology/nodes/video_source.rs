//! `VideoSource`: a batch topology's input, recorded ranges of a video.

use serde_json::Value;

use super::super::error::{TopologyError, shown};
use super::{get, invalid, string};
use crate::time::{Duration90k, Time90k};

/// Most ranges in one job.
pub const MAX_RANGES: usize = 1000;

/// Settings of a `VideoSource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSourceConfig {
    /// `videoName`: the recorded video read.
    pub video_name: String,
    /// `timeSequences`: the ranges exported, in this order.
    pub ranges: Vec<(Time90k, Time90k)>,
}

pub(in crate::topology) fn build(node: &str, body: &Value) -> Result<VideoSourceConfig, TopologyError> {
    let video_name = string(body, "videoName", node, "videoName")?
        .ok_or_else(|| invalid(node, "videoName", "is required"))?
        .to_owned();
    if !crate::limits::video_name_ok(&video_name) {
        return Err(invalid(
            node,
            "videoName",
            format!("'{}' is not a valid video name (use {})", shown(&video_name), crate::limits::VIDEO_NAME_RULE),
        ));
    }
    let ranges = time_sequences(node, get(body, "timeSequences"))?;
    Ok(VideoSourceConfig { video_name, ranges })
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
    let mut total = Duration90k::ZERO;
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
        total += end - start;
        // AVA: the ranges of one job add up to 24 hours at most.
        if total.0 > crate::limits::MAX_SPAN_90K {
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
