//! Name rules for topologies, live pipelines, nodes and videos.

use super::error::{TopologyError, shown};

/// Longest AVA entity or node name (edge direct-methods documentation).
pub const MAX_NAME_LEN: usize = 32;

/// Checks AVA's rule for entity names (topologies, live pipelines, nodes): 1 to 32 ASCII
/// letters, digits and dashes, not starting or ending with a dash.
///
/// These names end up in URLs, event subjects and file paths, so the small alphabet is also
/// what keeps `../` and friends out. `what` names the thing for the message, e.g.
/// `"live pipeline"` gives `invalid live pipeline name 'x/../y': …`. Errors are
/// `ModuleValidation`.
pub fn validate_name(what: &str, name: &str) -> Result<(), TopologyError> {
    let problem = if name.is_empty() {
        Some("it is empty")
    } else if name.chars().count() > MAX_NAME_LEN {
        Some("it is longer than 32 characters")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Some("only letters, digits and '-' are allowed")
    } else if name.starts_with('-') || name.ends_with('-') {
        Some("it must not start or end with '-'")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(TopologyError::module(format!(
            "invalid {what} name '{}': {p} (use 1-32 letters, digits or '-', not starting or ending with '-')",
            shown(name)
        ))),
    }
}

/// Checks a video sink's `videoName` by the one video-name rule ([`crate::limits`]).
///
/// AVA allowed more (cloud resource names), but openva's video name becomes a directory name,
/// so the alphabet stays path-safe. Errors are `ModuleValidation`; `what` names the node and
/// property.
pub fn validate_video_name(what: &str, name: &str) -> Result<(), TopologyError> {
    if crate::limits::video_name_ok(name) {
        Ok(())
    } else {
        Err(TopologyError::module(format!(
            "{what} '{}' is not a valid video name (use {})",
            shown(name),
            crate::limits::VIDEO_NAME_RULE
        )))
    }
}
