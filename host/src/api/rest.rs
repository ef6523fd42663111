//! The same resources as REST: `/api/pipelineTopologies/{name}` and `/api/livePipelines/{name}`
//! (GET/PUT/DELETE, list on the collection), `POST …/activate|deactivate`. Bodies are AVA's
//! entities; `@apiVersion` is optional here (the URL is the version).

use super::error::ApiError;
use super::methods::{deleted, reply};
use super::{ApiState, entities, json_body};
use crate::topology::{self, PipelineSpec};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

/// Puts the path's name into the body; a different name in the body is an error.
pub(super) fn named_body(name: &str, body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let mut v = json_body(body)?;
    let Some(o) = v.as_object_mut() else {
        return Err(ApiError::bad_request("InvalidRequest", "the body must be a JSON object"));
    };
    let key = crate::topology::json::key_of(o, "name").cloned();
    match key.as_ref().and_then(|k| o.get(k)) {
        Some(Value::String(n)) if n == name => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!("the body's name {other} differs from the name in the URL '{name}'"),
            ));
        }
        None => {
            o.insert("name".into(), json!(name));
        }
    }
    Ok(v)
}

fn check(what: &str, name: &str) -> Result<(), ApiError> {
    Ok(topology::validate_name(what, name)?)
}

/// `GET /api/pipelineTopologies`.
pub async fn topology_list(State(st): State<ApiState>) -> Response {
    reply(
        StatusCode::OK,
        Some(json!({"value": st.runtime.topology_list().iter().map(entities::topology).collect::<Vec<_>>()})),
    )
}

/// `GET /api/pipelineTopologies/{name}`.
pub async fn topology_get(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("pipeline topology", &name)?;
    Ok(reply(StatusCode::OK, Some(entities::topology(&st.runtime.topology_get(&name)?))))
}

/// `PUT /api/pipelineTopologies/{name}`.
pub async fn topology_put(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check("pipeline topology", &name)?;
    let (created, entry) = st.runtime.topology_set(topology::parse(&named_body(&name, body)?)?).await?;
    let entity = entities::topology(&entry);
    Ok(reply(if created { StatusCode::CREATED } else { StatusCode::OK }, Some(entity)))
}

/// `DELETE /api/pipelineTopologies/{name}`.
pub async fn topology_delete(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("pipeline topology", &name)?;
    Ok(deleted(st.runtime.topology_delete(&name).await?))
}

/// `GET /api/livePipelines`.
pub async fn pipeline_list(State(st): State<ApiState>) -> Response {
    reply(
        StatusCode::OK,
        Some(json!({"value": st.runtime.pipeline_list().iter().map(entities::pipeline).collect::<Vec<_>>()})),
    )
}

/// `GET /api/livePipelines/{name}`.
pub async fn pipeline_get(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("live pipeline", &name)?;
    Ok(reply(StatusCode::OK, Some(entities::pipeline(&st.runtime.pipeline_get(&name)?))))
}

/// `PUT /api/livePipelines/{name}`.
pub async fn pipeline_put(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    check("live pipeline", &name)?;
    let body = named_body(&name, body)?;
    let (name, spec) = PipelineSpec::parse_entity(&body, "live pipeline")?;
    let (created, view) = st.runtime.pipeline_set(name, spec).await?;
    let entity = entities::pipeline(&view);
    Ok(reply(if created { StatusCode::CREATED } else { StatusCode::OK }, Some(entity)))
}

/// `DELETE /api/livePipelines/{name}`.
pub async fn pipeline_delete(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("live pipeline", &name)?;
    Ok(deleted(st.runtime.pipeline_delete(&name).await?))
}

/// `POST /api/livePipelines/{name}/activate`.
pub async fn pipeline_activate(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("live pipeline", &name)?;
    st.runtime.activate(&name).await?;
    Ok(reply(StatusCode::OK, Some(Value::Null)))
}

/// `POST /api/livePipelines/{name}/deactivate`.
pub async fn pipeline_deactivate(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    check("live pipeline", &name)?;
    st.runtime.deactivate(&name).await?;
    Ok(reply(StatusCode::OK, Some(Value::Null)))
}
