//! Videos (AVA's video resource), their available media, and any range of them as one MP4
//! served with HTTP range requests.

use super::error::ApiError;
use super::{ApiState, base_url};
use crate::archive::export::PlanReader;
use crate::archive::ranges::Precision;
use crate::archive::{self, VideoRow};
use crate::time::Time90k;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Bytes per read when streaming an MP4.
const CHUNK: usize = 256 * 1024;
/// Longest range one `content.mp4` request may cover (AVA: 24 h per export and manifest). The
/// plan holds every sample of the range in memory.
const MAX_SPAN_90K: i64 = 24 * 3600 * 90_000;

const DAY_90K: i64 = 86_400 * 90_000;

/// Whether an `If-None-Match` value (a list, weak tags, or `*`) matches our ETag.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// N of a suffix range `bytes=-N`, if that is what the header is.
fn suffix_len(range: &str) -> Option<u64> {
    range.trim().strip_prefix("bytes=")?.trim().strip_prefix('-')?.parse().ok()
}

/// A query parameter, matched case-insensitively (AVA's widget sends `starttime`).
fn query_param(q: &Option<String>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.into_owned())
}

fn time_param(q: &Option<String>, key: &str) -> Result<Option<Time90k>, ApiError> {
    query_param(q, key)
        .map(|v| {
            Time90k::parse_iso(&v).map_err(|e| ApiError::bad_request("InvalidRequest", format!("{key} '{v}': {e}")))
        })
        .transpose()
}

fn video_name(name: &str) -> Result<(), ApiError> {
    Ok(archive::validate_video_name(name)?)
}

/// ISO duration as AVA wrote retention: whole days as `P7D`.
fn iso_days(ticks: i64) -> String {
    if ticks % DAY_90K == 0 { format!("P{}D", ticks / DAY_90K) } else { crate::time::format_iso_duration(ticks) }
}

fn video_entity(st: &ApiState, base: &str, v: &VideoRow) -> Result<Value, ApiError> {
    let stats = st.runtime.archive().video_stats(v.id)?;
    let mut props = json!({
        "type": "archive",
        "flags": {
            "canStream": true,
            "hasData": stats.segments > 0,
            "isInUse": st.runtime.video_in_use(&v.name),
        },
        "contentUrls": {
            "archiveBaseUrl": format!("{base}/api/videos/{}/content.ism", v.name),
        },
        "mediaInfo": { "segmentLength": crate::time::format_iso_duration(v.config.segment_length_90k) },
    });
    if let Some(t) = &v.title {
        props["title"] = json!(t);
    }
    if let Some(d) = &v.description {
        props["description"] = json!(d);
    }
    if let Some(r) = v.config.retention_90k {
        props["archival"] = json!({ "retentionPeriod": iso_days(r) });
    }
    Ok(json!({
        "name": v.name,
        "id": format!("/videos/{}", v.name),
        "properties": props,
        "systemData": { "createdAt": v.created.to_iso_millis() },
    }))
}

/// `GET /api/videos`.
pub async fn list(State(st): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let base = base_url(&headers);
    let videos = st.runtime.archive().videos()?;
    let value = videos.iter().map(|v| video_entity(&st, &base, v)).collect::<Result<Vec<_>, _>>()?;
    Ok(axum::Json(json!({ "value": value })).into_response())
}

/// `GET /api/videos/{name}`.
pub async fn get(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let v = st.runtime.archive().video(&name)?;
    Ok(axum::Json(video_entity(&st, &base_url(&headers), &v)?).into_response())
}

/// `GET /api/videos/{name}/availableMedia?precision=&startTime=&endTime=`.
pub async fn available_media(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let precision: Precision = query_param(&q, "precision").as_deref().unwrap_or("full").parse()?;
    let start = time_param(&q, "startTime")?;
    let end = time_param(&q, "endTime")?;
    let archive = st.runtime.archive().clone();
    let media = tokio::task::spawn_blocking(move || archive.available_media(&name, precision, start, end))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()))??;
    Ok(axum::Json(media).into_response())
}

/// `GET /api/videos/{name}/content.mp4?startTime=&endTime=`: the export of that range, built
/// from the index; `Range` requests get `206`, the `ETag` names this exact file.
pub async fn content_mp4(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let (Some(start), Some(end)) = (time_param(&q, "startTime")?, time_param(&q, "endTime")?) else {
        return Err(ApiError::bad_request("InvalidRequest", "startTime and endTime (ISO 8601 UTC) are required"));
    };
    if end.0.saturating_sub(start.0) > MAX_SPAN_90K {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            format!("the range from {start} to {end} is longer than 24 hours; export it in parts"),
        ));
    }
    let archive = st.runtime.archive().clone();
    let video = name.clone();
    let plan = tokio::task::spawn_blocking(move || archive.plan_export(&video, start, end))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()))??;
    let plan = Arc::new(plan);
    let total = plan.layout.total_len;
    let etag = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        plan.layout.header.hash(&mut h);
        total.hash(&mut h);
        format!("\"{:016x}\"", h.finish())
    };
    // A range still being recorded (its end beyond the last stored frame) would be a
    // different file on every request, and byte ranges of different files do not splice:
    // send the player to the fixed range that exists now.
    if end.0 > plan.actual.1.0 + 90_000 && st.runtime.video_in_use(&name) {
        let q = format!(
            "startTime={}&endTime={}",
            start.to_iso_millis().replace(':', "%3A"),
            plan.actual.1.to_iso_millis().replace(':', "%3A")
        );
        let location = format!("/api/videos/{name}/content.mp4?{q}");
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
    }
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| etag_matches(v, &etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    // A Range applies only if If-Range (when given) still names this file. A Range that is
    // not in bytes or does not parse is ignored (RFC 9110): the whole file is sent.
    let if_range_ok = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()).is_none_or(|v| v == etag);
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) if if_range_ok && r.trim_start().starts_with("bytes=") => {
            match http_range_header::parse_range_header(r.trim()) {
                Err(_) => None,
                Ok(parsed) => match parsed.validate(total) {
                    Ok(ranges) if ranges.len() == 1 => Some((*ranges[0].start(), *ranges[0].end())),
                    // Several ranges: serve the whole file (allowed, and simpler than multipart).
                    Ok(_) => None,
                    // A suffix longer than the file means the whole file.
                    Err(_) if suffix_len(r).is_some_and(|n| n > 0) && total > 0 => Some((0, total - 1)),
                    Err(_) => {
                        return Ok((
                            StatusCode::RANGE_NOT_SATISFIABLE,
                            [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                            axum::Json(json!({"error": {"code": "RangeNotSatisfiable",
                                "message": format!("range '{r}' is not satisfiable for a file of {total} bytes")}})),
                        )
                            .into_response());
                    }
                },
            }
        }
        _ => None,
    };
    let (status, from, to) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        None => (StatusCode::OK, 0, total),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(4);
    let reader_plan = plan.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = PlanReader::new(reader_plan);
        let mut pos = from;
        while pos < to {
            let mut buf = vec![0u8; CHUNK.min((to - pos) as usize)];
            let item = match reader.read_at(pos, &mut buf) {
                Ok(0) => Err(std::io::Error::other("export ended early")),
                Ok(n) => {
                    buf.truncate(n);
                    pos += n as u64;
                    Ok(axum::body::Bytes::from(buf))
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let failed = item.is_err();
            // The client went away: stop reading.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let hv = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, hv((to - from).to_string()));
    h.insert(header::ETAG, hv(etag));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, hv(format!("bytes {from}-{}/{total}", to - 1)));
    }
    h.insert(
        header::CONTENT_DISPOSITION,
        hv(format!("inline; filename=\"{name}-{}.mp4\"", plan.actual.0.to_iso_millis().replace(':', ""))),
    );
    h.insert("openva-actual-start", hv(plan.actual.0.to_iso_millis()));
    h.insert("openva-actual-end", hv(plan.actual.1.to_iso_millis()));
    h.insert("openva-gaps", hv(plan.gaps.len().to_string()));
    Ok(resp)
}
