//! `POST /api/inputs/{hubInputName}`: a message to one of the host's inputs, as AVA's edge
//! modules received them from IoT Edge routes (`pipeline::inputs`). The body is the message
//! (any payload; a JSON envelope's `eventTime` and `messageId` are used); the reply says how
//! many active pipelines took it.

use super::ApiState;
use super::error::ApiError;
use super::methods::reply;
use crate::pipeline::inputs::{HubMessage, InputError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooLarge(_) => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge", e.to_string()),
            e => ApiError::bad_request("InvalidRequest", e.to_string()),
        }
    }
}

/// `POST /api/inputs/{name}`; an `eventTime` header stands for MQTT's user property.
pub async fn post(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body =
        body.map_err(|r| ApiError::bad_request("InvalidRequest", format!("cannot read the request body: {r}")))?;
    let event_time = match headers.get("eventTime") {
        None => None,
        Some(v) => {
            Some(v.to_str().map_err(|_| ApiError::bad_request("InvalidRequest", "the eventTime header is not text"))?)
        }
    };
    let m = HubMessage::read(&body, event_time)?;
    let d = st.runtime.hub_message(&name, &m)?;
    Ok(reply(StatusCode::ACCEPTED, Some(json!({"messageId": m.id, "pipelines": d.pipelines, "dropped": d.dropped}))))
}
