//! AVA's direct methods over HTTP: `POST /api/methods/{methodName}` with the method's payload.
//! The HTTP status is the method's status and the body its payload.

use super::error::ApiError;
use super::{ApiState, entities, json_body};
use crate::topology::{self, PipelineSpec};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// API versions this host accepts (AVA edge 1.0 and 1.1).
pub const API_VERSIONS: &[&str] = &["1.0", "1.1"];

/// A method's reply: status and payload (`None`: empty body).
pub(crate) fn reply(status: StatusCode, payload: Option<Value>) -> Response {
    match payload {
        Some(p) => (status, axum::Json(p)).into_response(),
        None => status.into_response(),
    }
}

fn check_version(payload: &Value) -> Result<(), ApiError> {
    match topology::json::member(payload, "@apiVersion") {
        Some(Value::String(v)) if API_VERSIONS.contains(&v.as_str()) => Ok(()),
        Some(v) => Err(ApiError::bad_request(
            "ApiVersionNotSupported",
            format!("The API version {v} is not supported. Supported version(s): {}.", API_VERSIONS.join(", ")),
        )),
        // AVA's cloud topologies (ARM resources) carry no version; console apps sent such
        // files verbatim. A missing (or null) version means the newest one.
        None => Ok(()),
    }
}

fn name_of<'a>(payload: &'a Value, what: &str) -> Result<&'a str, ApiError> {
    let name = topology::json::member(payload, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("InvalidRequest", format!("the payload needs the {what}'s \"name\"")))?;
    topology::validate_name(what, name)?;
    Ok(name)
}

/// Dispatches one direct method.
pub async fn call(
    State(st): State<ApiState>,
    Path(method): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let rt = &st.runtime;
    let known = [
        "pipelineTopologyList",
        "pipelineTopologyGet",
        "pipelineTopologySet",
        "pipelineTopologyDelete",
        "livePipelineList",
        "livePipelineGet",
        "livePipelineSet",
        "livePipelineDelete",
        "livePipelineActivate",
        "livePipelineDeactivate",
    ];
    let Some(method) = known.iter().find(|m| m.eq_ignore_ascii_case(&method)) else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!("unknown method '{method}'; this host implements: {}", known.join(", ")),
        ));
    };
    let payload = json_body(body)?;
    if !payload.is_object() {
        return Err(ApiError::bad_request("InvalidRequest", "the payload must be a JSON object"));
    }
    check_version(&payload)?;
    Ok(match *method {
        "pipelineTopologyList" => reply(
            StatusCode::OK,
            Some(json!({"value": rt.topology_list().iter().map(entities::topology).collect::<Vec<_>>()})),
        ),
        "pipelineTopologyGet" => {
            reply(StatusCode::OK, Some(entities::topology(&rt.topology_get(name_of(&payload, "pipeline topology")?)?)))
        }
        "pipelineTopologySet" => {
            let (created, entry) = rt.topology_set(topology::parse(&payload)?).await?;
            reply(if created { StatusCode::CREATED } else { StatusCode::OK }, Some(entities::topology(&entry)))
        }
        "pipelineTopologyDelete" => deleted(rt.topology_delete(name_of(&payload, "pipeline topology")?).await?),
        "livePipelineList" => reply(
            StatusCode::OK,
            Some(json!({"value": rt.pipeline_list().iter().map(entities::pipeline).collect::<Vec<_>>()})),
        ),
        "livePipelineGet" => {
            reply(StatusCode::OK, Some(entities::pipeline(&rt.pipeline_get(name_of(&payload, "live pipeline")?)?)))
        }
        "livePipelineSet" => {
            let (name, spec) = PipelineSpec::parse_entity(&payload, "live pipeline")?;
            let (created, view) = rt.pipeline_set(name, spec).await?;
            reply(if created { StatusCode::CREATED } else { StatusCode::OK }, Some(entities::pipeline(&view)))
        }
        "livePipelineDelete" => deleted(rt.pipeline_delete(name_of(&payload, "live pipeline")?).await?),
        "livePipelineActivate" => {
            rt.activate(name_of(&payload, "live pipeline")?).await?;
            reply(StatusCode::OK, Some(Value::Null))
        }
        _ => {
            rt.deactivate(name_of(&payload, "live pipeline")?).await?;
            reply(StatusCode::OK, Some(Value::Null))
        }
    })
}

/// AVA: 200 with a `null` payload when deleted, 204 when there was nothing to delete.
pub(crate) fn deleted(existed: bool) -> Response {
    if existed { reply(StatusCode::OK, Some(Value::Null)) } else { reply(StatusCode::NO_CONTENT, None) }
}
