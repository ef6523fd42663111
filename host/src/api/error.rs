//! The API's error model: AVA's OData error body, `{"error": {"code", "message", "details":
//! [{"code", "message"}]}}`, with AVA's top-level codes per status and detail codes per cause.

use crate::archive::ArchiveError;
use crate::pipeline::live::PipelineError;
use crate::topology::TopologyError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error reply.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status (the direct method's status).
    pub status: StatusCode,
    /// AVA's top-level code (`BadRequest`, `NotFound`, `Conflict`…).
    pub code: &'static str,
    /// What went wrong, for a human.
    pub message: String,
    /// AVA's detail code (`PipelineValidationError`…), if any.
    pub detail: Option<&'static str>,
}

impl ApiError {
    /// An error with a status, top-level code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), detail: None }
    }

    /// A 400 with a detail code.
    pub fn bad_request(detail: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "BadRequest", message: message.into(), detail: Some(detail) }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// A 409 with a detail code.
    pub fn conflict(detail: &'static str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::CONFLICT, code: "Conflict", message: message.into(), detail: Some(detail) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(d) = self.detail {
            error["details"] = json!([{"code": d, "message": self.message}]);
        }
        (self.status, axum::Json(json!({ "error": error }))).into_response()
    }
}

impl From<TopologyError> for ApiError {
    fn from(e: TopologyError) -> Self {
        ApiError::bad_request(e.kind.detail_code(), e.message)
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        let conflict = |detail, message: String| ApiError {
            status: StatusCode::CONFLICT,
            code: "Conflict",
            message,
            detail: Some(detail),
        };
        match e {
            PipelineError::NotFound { .. } => ApiError::not_found(e.to_string()),
            PipelineError::Invalid(t) => t.into(),
            PipelineError::TopologyInUse { .. } => conflict("PipelineTopologyInUse", e.to_string()),
            PipelineError::NotAllowedInState { .. } | PipelineError::JobNotAllowed { .. } => {
                conflict("OperationNotAllowedInState", e.to_string())
            }
            PipelineError::Busy { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", e.to_string()),
            PipelineError::Resource(m) => conflict("ResourceValidationError", m),
            PipelineError::FileManaged { .. } => conflict("ResourceValidationError", e.to_string()),
            PipelineError::Archive(a) => a.into(),
            PipelineError::Store(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string())
            }
        }
    }
}

impl From<ArchiveError> for ApiError {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::UnknownVideo(_) | ArchiveError::UnknownSegment { .. } => ApiError::not_found(e.to_string()),
            ArchiveError::BadVideoName(_) | ArchiveError::BadRange(_) | ArchiveError::BadSetting(_) => {
                ApiError::bad_request("InvalidRequest", e.to_string())
            }
            // Ranges come from the query's startTime and endTime: named here, not in the archive.
            ArchiveError::EndBeforeStart { start, end } => {
                ApiError::bad_request("InvalidRequest", format!("endTime {end} is before startTime {start}"))
            }
            ArchiveError::EndNotAfterStart { start, end } => {
                ApiError::bad_request("InvalidRequest", format!("endTime {end} is not after startTime {start}"))
            }
            ArchiveError::EndWithoutStart { end } => {
                ApiError::bad_request("InvalidRequest", format!("endTime {end} needs a startTime (ISO 8601 UTC)"))
            }
            ArchiveError::SpanTooLong { start, end, limit, of } => ApiError::bad_request(
                "InvalidRequest",
                format!(
                    "the range from startTime {start} to endTime {end} is longer than {limit}, the limit of {of}; \
                     ask for it in parts"
                ),
            ),
            ArchiveError::NoData { .. } | ArchiveError::NoPicture { .. } => ApiError::not_found(e.to_string()),
            // An archive-only operation (time ranges) asked of a File video.
            ArchiveError::FileVideo { .. } => ApiError::bad_request("InvalidRequest", e.to_string()),
            ArchiveError::Locked(_) | ArchiveError::VideoExists(_) => ApiError {
                status: StatusCode::CONFLICT,
                code: "Conflict",
                message: e.to_string(),
                detail: Some("ResourceValidationError"),
            },
            e if e.is_disk_full() => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", e.to_string()),
            // The store holding the only copy cannot be read now: not this host's fault, nor
            // the client's.
            ArchiveError::Remote(_) => ApiError::new(StatusCode::BAD_GATEWAY, "RemoteStorageError", e.to_string()),
            ArchiveError::Io { ref source, .. } if crate::archive::RemoteReadFailed::in_io(source).is_some() => {
                let failed =
                    crate::archive::RemoteReadFailed::in_io(source).map(ToString::to_string).unwrap_or_default();
                ApiError::new(StatusCode::BAD_GATEWAY, "RemoteStorageError", failed)
            }
            e => {
                // Not the client's doing: said to it as a 500, and logged for the operator.
                tracing::error!(error = %e, "archive failure answering a request");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string())
            }
        }
    }
}
