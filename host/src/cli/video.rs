//! `openva video set`, the explicit change of a video's settings, and the rule `openva record`
//! follows with its own: settings given to `record` apply when it creates the video, and an
//! existing video with other settings is refused rather than changed (AVA's rule: creation
//! properties apply at creation; see `docs/archive.md`, "Video settings").

use super::client::Client;
use anyhow::{Context, Result, bail};
use openva::archive::{Archive, ArchiveError, VideoConfig, VideoKind, VideoUpdate};
use openva::time::Duration90k;
use serde_json::{Value, json};
use std::path::Path;

/// Settings as given on the command line (`None`: not given).
#[derive(Default)]
pub struct Given {
    /// `--segment-length`.
    pub segment_length: Option<Duration90k>,
    /// `--retention` (`Some(None)`: `none`, keep forever).
    pub retention: Option<Option<Duration90k>>,
    /// `--max-bytes` (`Some(None)`: `none`, no cap).
    pub max_bytes: Option<Option<i64>>,
}

impl Given {
    /// Parses the flags' texts; `allow_none` accepts `none` for retention and the cap (removing
    /// them is a change, meaningless when creating).
    pub fn parse(
        segment_length: Option<&str>,
        retention: Option<&str>,
        max_bytes: Option<&str>,
        allow_none: bool,
    ) -> Result<Self> {
        let none = |v: &str| allow_none && v.eq_ignore_ascii_case("none");
        let segment_length = segment_length
            .map(|s| {
                let t = Duration90k::parse_iso(s).context("--segment-length")?;
                if !VideoConfig::segment_length_ok(t) {
                    bail!("--segment-length {s} must be {}", VideoConfig::SEGMENT_LENGTH_RULE);
                }
                Ok(t)
            })
            .transpose()?;
        let retention = retention
            .map(|r| -> Result<Option<Duration90k>> {
                if none(r) {
                    return Ok(None);
                }
                let t = Duration90k::parse_iso(r).context("--retention")?;
                if t <= Duration90k::ZERO {
                    bail!("--retention {r} must be a positive ISO 8601 duration (e.g. P7D)");
                }
                Ok(Some(t))
            })
            .transpose()?;
        let max_bytes = max_bytes
            .map(|b| -> Result<Option<i64>> {
                if none(b) {
                    return Ok(None);
                }
                match b.parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => bail!("--max-bytes {b} must be a positive whole number of bytes"),
                }
            })
            .transpose()?;
        Ok(Given { segment_length, retention, max_bytes })
    }

    /// The settings a new video gets: those given, AVA's defaults for the rest.
    pub fn for_creation(&self) -> VideoConfig {
        VideoConfig {
            segment_length: self.segment_length.unwrap_or(Duration90k::from_secs(30)),
            retention: self.retention.flatten(),
            max_bytes: self.max_bytes.flatten(),
        }
    }

    /// The flags whose values differ from `have`, as `--flag value (the video has X)`.
    fn differences(&self, have: &VideoConfig) -> Vec<String> {
        let dur = |t: Option<Duration90k>| t.map_or_else(|| "none".to_owned(), Duration90k::to_iso_period);
        let bytes = |b: Option<i64>| b.map_or_else(|| "none".to_owned(), |b| b.to_string());
        let mut out = Vec::new();
        if let Some(s) = self.segment_length
            && s != have.segment_length
        {
            out.push(format!("--segment-length {} (it has {})", s.to_iso_secs(), have.segment_length.to_iso_secs()));
        }
        if let Some(r) = self.retention
            && r != have.retention
        {
            out.push(format!("--retention {} (it has {})", dur(r), dur(have.retention)));
        }
        if let Some(b) = self.max_bytes
            && b != have.max_bytes
        {
            out.push(format!("--max-bytes {} (it has {})", bytes(b), bytes(have.max_bytes)));
        }
        out
    }
}

/// `openva record`'s rule: every named video that exists must already have the settings given
/// (those not given are the video's own). Refuses, naming `openva video set`, otherwise.
pub fn check_record_settings(archive: &Archive, data: &Path, videos: &[String], given: &Given) -> Result<()> {
    for name in videos {
        let v = match archive.video(name) {
            Ok(v) => v,
            Err(ArchiveError::UnknownVideo(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        if v.kind == VideoKind::File {
            continue; // The writer refuses it with its own message.
        }
        let diff = given.differences(&v.config);
        if !diff.is_empty() {
            bail!(
                "video '{name}' exists and keeps its settings: {}. Settings given to `record` apply only when it creates \
                 a video; change an existing one with `openva video set --data {} --video {name} …` (or PATCH \
                 /api/videos/{name} on a running host)",
                diff.join(", "),
                data.display()
            );
        }
    }
    Ok(())
}

/// `openva video set --data DIR`: changes the video in a data directory no host is using.
pub fn set_in_archive(data: &Path, name: &str, update: &VideoUpdate) -> Result<Value> {
    let archive = Archive::open_existing(data)?;
    // A writer: refused while a host or recorder owns the directory (use --host then).
    let _lock = match openva::archive::DataLock::acquire(data) {
        Err(e @ ArchiveError::DirInUse { .. }) => bail!("{e}; change it through the host: --host URL"),
        r => r?,
    };
    let (v, changed) = archive.update_video(name, update)?;
    Ok(json!({
        "video": v.name,
        "title": v.title,
        "description": v.description,
        "segmentLength": v.config.segment_length.to_iso_secs(),
        "retentionPeriod": v.config.retention.map(Duration90k::to_iso_period),
        "maxBytes": v.config.max_bytes,
        "remoteTier": v.remote_tier,
        "changed": changed,
    }))
}

/// `openva video set --host URL`: the same change through a running host's API (`PATCH
/// /api/videos/NAME`), which applies it to a recording video from its next segment and
/// publishes it as an event. The API takes AVA's units: whole MiB, retention in days.
pub fn set_on_host(client: &Client, name: &str, update: &VideoUpdate) -> Result<Value> {
    const MIB: i64 = 1024 * 1024;
    let mut archival = serde_json::Map::new();
    if let Some(r) = update.retention {
        archival.insert("retentionPeriod".into(), json!(r.map(Duration90k::to_iso_period)));
    }
    if let Some(b) = update.max_bytes {
        if let Some(b) = b
            && b % MIB != 0
        {
            bail!("--max-bytes {b} is not a whole number of MiB, which is what the API takes (or use --data)");
        }
        archival.insert("maximumSizeMiB".into(), json!(b.map(|b| b / MIB)));
    }
    if let Some(t) = update.remote_tier {
        archival.insert("remoteTier".into(), json!(t));
    }
    let mut props = serde_json::Map::new();
    if !archival.is_empty() {
        props.insert("archival".into(), Value::Object(archival));
    }
    if let Some(s) = update.segment_length {
        props.insert("mediaInfo".into(), json!({ "segmentLength": s.to_iso_secs() }));
    }
    if let Some(t) = &update.title {
        props.insert("title".into(), json!(t));
    }
    if let Some(d) = &update.description {
        props.insert("description".into(), json!(d));
    }
    let (status, reply) =
        client.rest("PATCH", &format!("/api/videos/{name}"), Some(&json!({ "properties": props })))?;
    if status >= 400 {
        let msg = reply["error"]["message"].as_str().map_or_else(|| reply.to_string(), str::to_owned);
        bail!("the host refused the update ({status}): {msg}");
    }
    Ok(reply)
}
