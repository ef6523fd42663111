//! `VideoSource` of a batch job: the recorded video it reads must exist and be an archive
//! (not a file video another job made).

use super::{PipelineError, module_error};
use crate::archive::{Archive, ArchiveError, VideoKind};
use crate::topology::BatchSpec;

pub(super) fn check(spec: &BatchSpec, archive: &Archive) -> Result<(), PipelineError> {
    let src = archive.video(&spec.source_video).map_err(|e| match e {
        ArchiveError::UnknownVideo(_) => PipelineError::Resource(format!(
            "node '{}': video '{}' does not exist",
            spec.source_node, spec.source_video
        )),
        e => e.into(),
    })?;
    if src.kind != VideoKind::Archive {
        return Err(module_error(format!(
            "node '{}': video '{}' is a file video; a VideoSource reads recorded (archive) videos",
            spec.source_node, spec.source_video
        )));
    }
    Ok(())
}
