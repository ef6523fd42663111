//! `FileSink`: one MP4 file per opening of the signal gate in front of it, under a base
//! directory, named by a pattern with system variables.
//!
//! The pattern's date variables (`${System.Runtime.DateTime}`, `…PreciseDateTime`) are left in
//! place when the pipeline is instantiated and evaluated per file, at the clip's start
//! ([`FileSinkConfig::file_name`]); parameters and the topology and pipeline names are
//! substituted as everywhere else.

use serde_json::{Map, Value};

use super::super::config::{Stage, format_runtime_date_times};
use super::super::error::{TopologyError, shown};
use super::super::json;
use super::super::params::{self, SYS_DATE_TIME, SYS_LEGACY_DATE_TIME, SYS_PRECISE_DATE_TIME};

/// AVA's limit on `fileNamePattern`.
pub const MAX_PATTERN_LEN: usize = 260;
/// Longest file name a file system takes (the pattern, its dates and `.mp4`).
const MAX_FILE_NAME_LEN: usize = 255;

/// Settings of a `FileSink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// `baseDirectoryPath`: absolute, as the topology writes it (the host places it under the
    /// root the operator chose, as AVA's container saw it through a volume mount).
    pub base_directory: String,
    /// `fileNamePattern`, with its date variables still to evaluate.
    pub file_name_pattern: String,
    /// `maximumSizeMiB` in bytes: the oldest files of this sink go beyond it.
    pub max_bytes: u64,
}

impl FileSinkConfig {
    /// The file name of a clip starting at `start`: the pattern with its dates, and `.mp4`.
    pub fn file_name(&self, start: jiff::Timestamp) -> String {
        let (date_time, precise) = format_runtime_date_times(start);
        let lookup = |name: &str| match params::system_variable(name)? {
            SYS_DATE_TIME | SYS_LEGACY_DATE_TIME => Some(date_time.as_str()),
            SYS_PRECISE_DATE_TIME => Some(precise.as_str()),
            _ => None,
        };
        // The pattern was checked to stay short, so this cannot exceed the string limit.
        let name = params::substitute(&self.file_name_pattern, &lookup).unwrap_or_default();
        format!("{name}.mp4")
    }
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<FileSinkConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (FileSink): {p}");
    let required = |key: &str| -> Result<String, TopologyError> {
        json::opt_scalar(obj, key, || what(key))?
            .map(|v| v.into_owned())
            .ok_or_else(|| TopologyError::module(format!("{} is missing", what(key))))
    };
    let base_directory = required("baseDirectoryPath")?;
    if let Some(b) = stage.literal(Some(base_directory.as_str().into())) {
        check_base(&b)
            .map_err(|m| TopologyError::module(format!("{} '{}' {m}", what("baseDirectoryPath"), shown(&b))))?;
    }
    let pattern = required("fileNamePattern")?;
    let problem = if pattern.is_empty() || pattern.chars().count() > MAX_PATTERN_LEN {
        Some(format!("must be 1 to {MAX_PATTERN_LEN} characters"))
    } else if stage == Stage::Topology
        && !params::references(&pattern).into_iter().any(|r| params::system_variable(r).is_some())
    {
        Some("must include at least one system variable (e.g. ${System.Runtime.DateTime})".to_owned())
    } else if stage == Stage::Pipeline {
        let example =
            FileSinkConfig { base_directory: String::new(), file_name_pattern: pattern.clone(), max_bytes: 0 }
                .file_name(jiff::Timestamp::UNIX_EPOCH);
        check_file_name(&example).err()
    } else {
        None
    };
    if let Some(m) = problem {
        return Err(TopologyError::module(format!("{} '{}' {m}", what("fileNamePattern"), shown(&pattern))));
    }
    let max_bytes = match stage.literal(json::opt_scalar(obj, "maximumSizeMiB", || what("maximumSizeMiB"))?) {
        None if stage == Stage::Topology => 0,
        None => return Err(TopologyError::module(format!("{} is missing", what("maximumSizeMiB")))),
        Some(v) => crate::archive::VideoConfig::bytes_of_mib(&v).ok_or_else(|| {
            TopologyError::module(format!(
                "{} '{}' must be a positive whole number of MiB",
                what("maximumSizeMiB"),
                shown(&v)
            ))
        })?,
    };
    Ok(FileSinkConfig { base_directory, file_name_pattern: pattern, max_bytes })
}

/// An absolute path of plain components: no `.` or `..`, so it cannot climb out of the root the
/// host puts it under.
fn check_base(b: &str) -> Result<(), String> {
    if !b.starts_with('/') {
        return Err("must be an absolute path (e.g. /var/media)".into());
    }
    if b.contains('\0') || b.split('/').any(|c| c == "." || c == "..") {
        return Err("must not contain '.' or '..' components".into());
    }
    Ok(())
}

/// A file name (not a path) the sink may create.
fn check_file_name(name: &str) -> Result<(), String> {
    if name.contains('/') || name.contains('\0') {
        return Err("must not make a file name with '/' in it".into());
    }
    if name.len() > MAX_FILE_NAME_LEN {
        return Err(format!("makes file names longer than {MAX_FILE_NAME_LEN} bytes"));
    }
    if name.starts_with('.') {
        return Err("must not make a hidden file name (starting with '.')".into());
    }
    Ok(())
}
