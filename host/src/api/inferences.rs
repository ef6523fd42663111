//! A video's recorded inferences (an openva addition to AVA's video resource): what playback
//! draws over the picture and on the timeline. AVA delivered them inside its CMAF/DASH
//! playback as `emsg` boxes; openva's player asks for them by time range instead, beside the
//! HLS it plays. See `archive::inferences`.

use super::ApiState;
use super::error::ApiError;
use super::videos::{blocking, time_param, video_name};
use crate::time::{DAY_90K, Time90k};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Widest span of one activity query (the timeline's widest window).
const ACTIVITY_MAX_90K: i64 = 31 * DAY_90K;

/// Both bounds of a range, required.
fn range(q: &Option<String>) -> Result<(Time90k, Time90k), ApiError> {
    match (time_param(q, "startTime")?, time_param(q, "endTime")?) {
        (Some(s), Some(e)) => Ok((s, e)),
        _ => Err(ApiError::bad_request("InvalidRequest", "startTime and endTime (ISO 8601 UTC) are required")),
    }
}

/// `GET /api/videos/{name}/inferences?startTime=&endTime=`: the frames with recorded
/// inferences in the range, oldest first: `{"value": [{"time", "timestamp", "inferences"}]}`,
/// at most 5000, with `@nextLink` (the rest of the range) when there is more.
pub async fn list(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let (start, end) = range(&q)?;
    let archive = st.runtime.archive().clone();
    let page = {
        let name = name.clone();
        blocking(move || archive.inferences(&name, start, end)).await??
    };
    let value: Vec<Value> = page
        .rows
        .into_iter()
        .map(|r| {
            // Written by this host from a JSON value: it parses; an unreadable row is shown as
            // what it is rather than failing the page.
            let inferences: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            json!({"time": r.time.to_iso_millis(), "timestamp": r.time.0, "inferences": inferences})
        })
        .collect();
    let mut body = json!({ "value": value });
    if let Some(from) = page.next {
        body["@nextLink"] = json!(format!(
            "/api/videos/{name}/inferences?startTime={}&endTime={}",
            from.to_iso_millis(),
            end.to_iso_millis()
        ));
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /api/videos/{name}/inferences/activity?startTime=&endTime=`: where the video has
/// recorded inferences, by whole minutes (spans of consecutive minutes with their counts), for
/// timelines up to 31 days wide.
pub async fn activity(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let (start, end) = range(&q)?;
    if end.0 - start.0 > ACTIVITY_MAX_90K {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            format!("the range {} – {} is longer than 31 days", start.to_iso_millis(), end.to_iso_millis()),
        ));
    }
    let archive = st.runtime.archive().clone();
    let spans = blocking(move || archive.inference_activity(&name, start, end)).await??;
    let value: Vec<Value> = spans
        .into_iter()
        .map(|a| json!({"start": a.start.to_iso_millis(), "end": a.end.to_iso_millis(), "count": a.count}))
        .collect();
    Ok(axum::Json(json!({ "value": value })).into_response())
}
