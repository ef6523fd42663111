//! `VideoSink`: the video a pipeline records into (live) or creates (batch).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;
use super::super::names::validate_video_name;
use super::super::params;
use crate::archive::VideoConfig;
use crate::time::Duration90k;

/// Settings of a `VideoSink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSinkConfig {
    /// The video recorded into.
    pub video_name: String,
    /// `videoCreationProperties.title` (≤ 256 characters).
    pub title: Option<String>,
    /// `videoCreationProperties.description` (≤ 2048 characters).
    pub description: Option<String>,
    /// `videoCreationProperties.segmentLength` (30 s to 5 min in 30 s steps); `None` = the
    /// caller's default (AVA: 30 s).
    pub segment_length: Option<Duration90k>,
    /// `videoCreationProperties.retentionPeriod` (1 to 3650 days); `None` = keep forever.
    pub retention: Option<Duration90k>,
    /// `videoCreationProperties.maximumSizeMiB` (openva's) in bytes: the archive's cap, applied
    /// when the video is created like AVA's own creation properties.
    pub max_bytes: Option<u64>,
    /// `localMediaCacheMaximumSizeMiB` in bytes: AVA's local cache in front of remote storage
    /// (a later tier), never a cap on the archive.
    pub cache_max_bytes: Option<u64>,
    /// `localMediaCachePath`.
    pub cache_path: Option<String>,
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<VideoSinkConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (VideoSink): {p}");
    // `videoSinkName` is an early 1.0 draft spelling kept by the corpus.
    let key = ["videoName", "videoSinkName"].into_iter().find(|k| json::get(obj, k).is_some()).unwrap_or("videoName");
    let name = json::opt_scalar(obj, key, || what(key))?
        .ok_or_else(|| TopologyError::module(format!("{} is missing", what("videoName"))))?;
    if params::references(&name).into_iter().any(params::is_date_time_variable) {
        return Err(TopologyError::module(format!(
            "{} must not use ${{System.Runtime.DateTime}} or ${{System.Runtime.PreciseDateTime}} \
             (a video keeps one name; use them in a FileSink's fileNamePattern)",
            what(key)
        )));
    }
    if let Some(n) = stage.literal(Some(name.clone())) {
        validate_video_name(&what(key), &n)?;
    }
    let mut cfg = VideoSinkConfig {
        video_name: name.into_owned(),
        title: None,
        description: None,
        segment_length: None,
        retention: None,
        max_bytes: None,
        cache_max_bytes: None,
        cache_path: None,
    };
    if let Some(vcp) = json::opt_object(obj, "videoCreationProperties", || what("videoCreationProperties"))? {
        let at = |p: &str| what(&format!("videoCreationProperties.{p}"));
        for (key, max, slot) in [("title", 256, &mut cfg.title), ("description", 2048, &mut cfg.description)] {
            if let Some(v) = json::opt_scalar(vcp, key, || at(key))? {
                if (stage == Stage::Pipeline || !v.contains("${")) && v.chars().count() > max {
                    return Err(TopologyError::module(format!("{} is longer than {max} characters", at(key))));
                }
                *slot = Some(v.into_owned());
            }
        }
        type Rule = (fn(Duration90k) -> bool, &'static str);
        let periods: [(&str, Rule, &mut Option<Duration90k>); 2] = [
            (
                "segmentLength",
                (VideoConfig::segment_length_ok, VideoConfig::SEGMENT_LENGTH_RULE),
                &mut cfg.segment_length,
            ),
            ("retentionPeriod", (VideoConfig::retention_ok, VideoConfig::RETENTION_RULE), &mut cfg.retention),
        ];
        for (key, (ok, rule), slot) in periods {
            if let Some(v) = stage.literal(json::opt_scalar(vcp, key, || at(key))?) {
                let t = duration(&v, &at(key))?;
                if !ok(t) {
                    return Err(TopologyError::module(format!("{} '{}' must be {rule}", at(key), shown(&v))));
                }
                *slot = Some(t);
            }
        }
        if let Some(v) = stage.literal(json::opt_scalar(vcp, "maximumSizeMiB", || at("maximumSizeMiB"))?) {
            cfg.max_bytes = Some(mib(&v, &at("maximumSizeMiB"))?);
        }
    }
    if let Some(v) =
        stage.literal(json::opt_scalar(obj, "localMediaCacheMaximumSizeMiB", || what("localMediaCacheMaximumSizeMiB"))?)
    {
        cfg.cache_max_bytes = Some(mib(&v, &what("localMediaCacheMaximumSizeMiB"))?);
    }
    cfg.cache_path = json::opt_scalar(obj, "localMediaCachePath", || what("localMediaCachePath"))?
        .filter(|p| !p.is_empty())
        .map(Cow::into_owned);
    Ok(cfg)
}

/// Parses a positive whole number of MiB into bytes, naming the property on error.
fn mib(v: &str, what: &str) -> Result<u64, TopologyError> {
    VideoConfig::bytes_of_mib(v)
        .ok_or_else(|| TopologyError::module(format!("{what} '{}' must be a positive whole number of MiB", shown(v))))
}

/// Parses an ISO 8601 duration, naming the property on error.
pub(super) fn duration(v: &str, what: &str) -> Result<Duration90k, TopologyError> {
    Duration90k::parse_iso(v).map_err(|_| {
        TopologyError::module(format!("{what} '{}' is not an ISO 8601 duration (e.g. PT30S, P7D)", shown(v)))
    })
}
