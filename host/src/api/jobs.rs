//! AVA's pipeline jobs over REST: `/api/pipelineJobs[/{name}]` (GET, PUT, DELETE) and
//! `POST /api/pipelineJobs/{name}/cancel`. Bodies are AVA's entities:
//! `{"properties": {"topologyName", "description", "parameters"}}`.

use super::error::ApiError;
use super::methods::{deleted, reply};
use super::rest::named_body;
use super::{ApiState, entities};
use crate::pipeline::live::PipelineError;
use crate::topology::{self, PipelineSpec};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

fn check(name: &str) -> Result<(), ApiError> {
    Ok(topology::validate_name("pipeline job", name)?)
}

/// A job error as a reply: a full queue is 503 with `Retry-After`, the rest as everywhere.
fn error(e: PipelineError) -> Response {
    match e {
        PipelineError::Busy { message, retry_after_s } => {
            let mut r = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", message).into_response();
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        e => ApiError::from(e).into_response(),
    }
}

/// `GET /api/pipelineJobs`.
pub async fn list(State(st): State<ApiState>) -> Response {
    reply(StatusCode::OK, Some(json!({"value": st.runtime.job_list().iter().map(entities::job).collect::<Vec<_>>()})))
}

/// `GET /api/pipelineJobs/{name}`.
pub async fn get(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check(&name)?;
    Ok(reply(StatusCode::OK, Some(entities::job(&st.runtime.job_get(&name)?))))
}

/// `PUT /api/pipelineJobs/{name}`: 201 and `state: Processing` for a new job.
pub async fn put(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check(&name)?;
    let body = named_body(&name, body)?;
    let (name, spec) = PipelineSpec::parse_entity(&body, "pipeline job")?;
    Ok(match st.runtime.job_set(name, spec).await {
        Ok((created, job)) => {
            reply(if created { StatusCode::CREATED } else { StatusCode::OK }, Some(entities::job(&job)))
        }
        Err(e) => error(e),
    })
}

/// `DELETE /api/pipelineJobs/{name}`: 200 deleted, 204 unknown, 409 while processing.
pub async fn delete(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check(&name)?;
    Ok(deleted(st.runtime.job_delete(&name).await?))
}

/// `POST /api/pipelineJobs/{name}/cancel`: the job entity, now `Canceled`; 409 for a
/// completed or failed job.
pub async fn cancel(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check(&name)?;
    Ok(reply(StatusCode::OK, Some(entities::job(&st.runtime.job_cancel(&name).await?))))
}
