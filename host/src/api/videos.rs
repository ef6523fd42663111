//! Videos (AVA's video resource): archives, with their available media and any range of them
//! as one MP4, and File videos, served whole; both with HTTP range requests. Deleting videos.

use super::error::ApiError;
use super::methods::deleted;
use super::{ApiState, base_url};
use crate::archive::export::PlanReader;
use crate::archive::ranges::Precision;
use crate::archive::{self, Archive, ArchiveError, VideoConfig, VideoKind, VideoRow, VideoUpdate};
use crate::events::EventType;
use crate::time::{Duration90k, Time90k};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Bytes per read when streaming an MP4.
const CHUNK: usize = 256 * 1024;
/// The first read of a reply is smaller: a player waits for its first bytes, and a whole chunk
/// of an export's header means the sample tables of many segments generated before any byte
/// leaves (issue 21: a 10-minute MP4's first byte 1.57 → 1.2 ms, 1 hour's 2.2 → 1.1 ms).
const FIRST_CHUNK: usize = 16 * 1024;

/// Whether an `If-None-Match` value (a list, weak tags, or `*`) matches our ETag.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// N of a suffix range `bytes=-N`, if that is what the header is.
fn suffix_len(range: &str) -> Option<u64> {
    range.trim().strip_prefix("bytes=")?.trim().strip_prefix('-')?.parse().ok()
}

/// A query parameter, matched case-insensitively (AVA's widget sends `starttime`).
pub(super) fn query_param(q: &Option<String>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.into_owned())
}

pub(super) fn time_param(q: &Option<String>, key: &str) -> Result<Option<Time90k>, ApiError> {
    query_param(q, key)
        .map(|v| {
            Time90k::parse_iso(&v).map_err(|e| ApiError::bad_request("InvalidRequest", format!("{key} '{v}': {e}")))
        })
        .transpose()
}

pub(super) fn video_name(name: &str) -> Result<(), ApiError> {
    Ok(archive::validate_video_name(name)?)
}

/// AVA's `archival` of an archive video, with openva's size cap and remote tier choice;
/// `None` when it keeps everything forever and follows the host's remote tier.
fn archival(v: &VideoRow) -> Option<Value> {
    const MIB: i64 = 1024 * 1024;
    let c = &v.config;
    let mut a = serde_json::Map::new();
    if let Some(r) = c.retention {
        a.insert("retentionPeriod".into(), json!(r.to_iso_period()));
    }
    if let Some(b) = c.max_bytes {
        // `openva record --max-bytes` need not give whole MiB.
        let mib = if b % MIB == 0 { json!(b / MIB) } else { json!(b as f64 / MIB as f64) };
        a.insert("maximumSizeMiB".into(), mib);
    }
    if let Some(t) = v.remote_tier {
        a.insert("remoteTier".into(), json!(t));
    }
    (!a.is_empty()).then_some(Value::Object(a))
}

fn video_entity(st: &ApiState, base: &str, v: &VideoRow) -> Result<Value, ApiError> {
    let mut props = match v.kind {
        VideoKind::Archive => {
            let stats = st.runtime.archive().video_stats(v.id)?;
            let mut props = json!({
                "type": v.kind.as_str(),
                "flags": {
                    "canStream": true,
                    "hasData": stats.segments > 0,
                    "isInUse": st.runtime.video_in_use(&v.name),
                },
                "contentUrls": {
                    "archiveBaseUrl": format!("{base}/api/videos/{}/content.ism", v.name),
                    // Made on request from the latest keyframe (see api::playback).
                    "previewImageUrls": {
                        "small": format!("{base}/api/videos/{}/images/latest/small.jpg", v.name),
                        "medium": format!("{base}/api/videos/{}/images/latest/medium.jpg", v.name),
                        "large": format!("{base}/api/videos/{}/images/latest/large.jpg", v.name),
                    },
                },
                "mediaInfo": { "segmentLength": v.config.segment_length.to_iso_secs() },
            });
            // openva's additions: what the newest recording holds.
            if let Some(m) = st.runtime.archive().media_info(&v.name)? {
                let info = &mut props["mediaInfo"];
                info["codec"] = json!(m.codec);
                info["width"] = json!(m.width);
                info["height"] = json!(m.height);
                if let Some(f) = m.frame_rate {
                    info["frameRate"] = json!(f);
                }
                if let Some(a) = m.audio {
                    info["audio"] = json!({ "codec": a.codec, "sampleRate": a.rate, "channels": a.channels });
                }
            }
            if let Some(a) = archival(v) {
                props["archival"] = a;
            }
            props
        }
        // One finished MP4: downloaded, never streamed or recorded into. `mediaInfo` carries what
        // was stored at registration (openva's additions; AVA's only field is segmentLength).
        VideoKind::File => {
            let mut media = json!({});
            if let Some(f) = &v.file {
                media["sizeInBytes"] = json!(f.bytes);
                if let Some(m) = &f.meta {
                    media["duration"] = json!(Duration90k(m.duration_90k).to_iso_millis());
                    media["width"] = json!(m.width);
                    media["height"] = json!(m.height);
                    media["frameCount"] = json!(m.frames);
                }
            }
            json!({
                "type": v.kind.as_str(),
                "flags": { "canStream": false, "hasData": true, "isInUse": false },
                "contentUrls": { "downloadUrl": format!("{base}/api/videos/{}/content.mp4", v.name) },
                "mediaInfo": media,
            })
        }
    };
    if let Some(t) = &v.title {
        props["title"] = json!(t);
    }
    if let Some(d) = &v.description {
        props["description"] = json!(d);
    }
    Ok(json!({
        "name": v.name,
        "id": format!("/videos/{}", v.name),
        "properties": props,
        "systemData": { "createdAt": v.created.to_iso_millis() },
    }))
}

/// Runs archive work (SQLite, file system) off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<Result<T, ArchiveError>, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()))
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

/// An AVA video `PATCH` body as a [`VideoUpdate`]. Changeable: `properties.title`,
/// `.description`, `.archival.retentionPeriod` (AVA's rule; `null` keeps everything),
/// `.archival.maximumSizeMiB` (openva's size cap; `null` removes it), `.archival.remoteTier`
/// (openva's: whether closed segments are copied to the host's remote tier; `null` follows
/// the host) and
/// `.mediaInfo.segmentLength` (read-only in AVA's cloud, where it paced uploads; openva allows
/// it, from the next segment). The read-only parts of a fetched entity (`type`, `flags`,
/// `contentUrls`, `systemData`…) may be sent back and are ignored; any other property is
/// refused by name, so a misspelt setting is never silently dropped.
fn video_update(name: &str, body: &Value) -> Result<VideoUpdate, ApiError> {
    let bad = |m: String| ApiError::bad_request("InvalidRequest", m);
    let obj = body.as_object().ok_or_else(|| bad("the body must be a JSON object".into()))?;
    if let Some(n) = obj.get("name")
        && n.as_str() != Some(name)
    {
        return Err(bad(format!("the body's name {n} differs from the name in the URL '{name}'")));
    }
    let mut u = VideoUpdate::default();
    let Some(props) = obj.get("properties") else {
        return Ok(u);
    };
    let props = props.as_object().ok_or_else(|| bad("properties must be a JSON object".into()))?;
    let text = |key: &str, v: &Value| -> Result<Option<String>, ApiError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            other => Err(bad(format!("properties.{key} must be a string or null, not {other}"))),
        }
    };
    for (key, v) in props {
        match key.as_str() {
            "title" => u.title = Some(text(key, v)?),
            "description" => u.description = Some(text(key, v)?),
            "archival" => {
                let a = v.as_object().ok_or_else(|| bad("properties.archival must be a JSON object".into()))?;
                for (k, v) in a {
                    let at = format!("properties.archival.{k}");
                    match k.as_str() {
                        "retentionPeriod" => {
                            u.retention = Some(match text(&format!("archival.{k}"), v)? {
                                None => None,
                                Some(p) => Some(
                                    Duration90k::parse_iso(&p)
                                        .ok()
                                        .filter(|t| VideoConfig::retention_ok(*t))
                                        .ok_or_else(|| {
                                            bad(format!("{at} '{p}' must be {}", VideoConfig::RETENTION_RULE))
                                        })?,
                                ),
                            })
                        }
                        "maximumSizeMiB" => {
                            u.max_bytes = Some(match v {
                                Value::Null => None,
                                Value::Number(_) | Value::String(_) => {
                                    let t = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                                    let b =
                                        VideoConfig::bytes_of_mib(&t).and_then(|b| i64::try_from(b).ok()).ok_or_else(
                                            || bad(format!("{at} {v} must be a positive whole number of MiB")),
                                        )?;
                                    Some(b)
                                }
                                other => return Err(bad(format!("{at} must be a number of MiB or null, not {other}"))),
                            })
                        }
                        "remoteTier" => {
                            u.remote_tier = Some(match v {
                                Value::Null => None,
                                Value::Bool(b) => Some(*b),
                                other => return Err(bad(format!("{at} must be true, false or null, not {other}"))),
                            })
                        }
                        _ => return Err(bad(format!("{at} is not a setting of a video's archival"))),
                    }
                }
            }
            "mediaInfo" => {
                let m = v.as_object().ok_or_else(|| bad("properties.mediaInfo must be a JSON object".into()))?;
                if let Some(v) = m.get("segmentLength") {
                    let at = "properties.mediaInfo.segmentLength";
                    let s = v.as_str().ok_or_else(|| bad(format!("{at} must be a string, not {v}")))?;
                    let t = Duration90k::parse_iso(s)
                        .ok()
                        .filter(|t| VideoConfig::segment_length_ok(*t))
                        .ok_or_else(|| bad(format!("{at} '{s}' must be {}", VideoConfig::SEGMENT_LENGTH_RULE)))?;
                    u.segment_length = Some(t);
                }
                // The rest of mediaInfo (codec, size, frame rate) describes the recording.
            }
            // Read-only parts of the entity, sent back by a GET-modify-PATCH client.
            "type" | "flags" | "contentUrls" => {}
            other => return Err(bad(format!("properties.{other} is not a property of a video that can be changed"))),
        }
    }
    Ok(u)
}

/// `PATCH /api/videos/{name}`: AVA's video update (see [`video_update`] for what may change).
/// A recording video applies new settings from its next segment. A change (not a body that
/// changes nothing) publishes `VideoUpdated`; replies with the video.
pub async fn patch(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let update = video_update(&name, &super::json_body(body)?)?;
    let archive = st.runtime.archive().clone();
    let n = name.clone();
    let (v, changed) = blocking(move || archive.update_video(&n, &update)).await??;
    if changed {
        publish_update(&st, &v);
    }
    Ok(axum::Json(video_entity(&st, &base_url(&headers), &v)?).into_response())
}

/// Publishes `VideoUpdated` with the video's settings as they now are.
fn publish_update(st: &ApiState, v: &VideoRow) {
    let mut event = json!({ "videoName": v.name });
    if let Some(t) = &v.title {
        event["title"] = json!(t);
    }
    if let Some(d) = &v.description {
        event["description"] = json!(d);
    }
    if v.kind == VideoKind::Archive {
        event["mediaInfo"] = json!({ "segmentLength": v.config.segment_length.to_iso_secs() });
        if let Some(a) = archival(v) {
            event["archival"] = a;
        }
    }
    st.runtime.events().publish(format!("/videos/{}", v.name), EventType::VideoUpdated, event);
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
    // openva's addition: where each range's media is kept (ranges split where that changes).
    let located = match query_param(&q, "location").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(ArchiveError::BadRange(format!("location '{v}' is not true or false")).into()),
    };
    let archive = st.runtime.archive().clone();
    let media = blocking(move || archive.available_media(&name, precision, start, end, located)).await??;
    Ok(axum::Json(media).into_response())
}

/// `DELETE /api/videos/{name}`: the video and all its media. AVA's ARM semantics: `200` when
/// deleted, `204` when there was no such video; `409` while it is being recorded.
pub async fn delete(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    video_name(&name)?;
    if st.runtime.video_in_use(&name) {
        return Err(ApiError::conflict(
            "ResourceValidationError",
            format!("video '{name}' is being recorded by a live pipeline; deactivate the pipeline first"),
        ));
    }
    let archive = st.runtime.archive().clone();
    let variants = st.variants.clone();
    let prefix = format!("{name}/");
    match blocking(move || archive.delete_video(&name)).await? {
        Ok(()) => {
            // Its transcoded segments go with it (a new video of that name reuses file names).
            variants.forget(&prefix);
            Ok(deleted(true))
        }
        Err(ArchiveError::UnknownVideo(_)) => Ok(deleted(false)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/videos/{name}/content.mp4`: for an archive (`?startTime=&endTime=`, required) the
/// export of that range, built from the index (transcoded with `codec`, `height`, `bitrate`:
/// `transcoded`); for a File video (no times) its MP4. `Range`
/// requests get `206`, the `ETag` names this exact file; `HEAD` is answered by the same route.
pub async fn content_mp4(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q_raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let q = q_raw.clone();
    video_name(&name)?;
    let (start, end) = (time_param(&q, "startTime")?, time_param(&q, "endTime")?);
    let archive = st.runtime.archive().clone();
    let found = {
        let (archive, name) = (archive.clone(), name.clone());
        blocking(move || archive.video(&name)).await?
    };
    let variant = super::playback::variant_spec(&q)?;
    match found {
        Ok(v) if v.kind == VideoKind::File && variant.is_some() => {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!(
                    "video '{}' is a File video: codec, height and bitrate (transcoded playback) apply to archive \
                     videos only",
                    v.name
                ),
            ));
        }
        Ok(v) if v.kind == VideoKind::File => return file_content(archive, v, &q, &headers).await,
        Ok(_) => {}
        // Checked as before File videos existed: missing times are a 400 for any name, an
        // unknown video with times a 404 (from the plan below).
        Err(ArchiveError::UnknownVideo(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Err(ApiError::bad_request("InvalidRequest", "startTime and endTime (ISO 8601 UTC) are required"));
    };
    if let Some(spec) = variant {
        let token = q_token(q_raw.as_deref());
        return super::transcoded::content_mp4(st, name, (start, end), spec, token, &headers).await;
    }
    // AVA's limit.
    if end.0.saturating_sub(start.0) > crate::limits::MAX_SPAN_90K {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            format!("the range from {start} to {end} is longer than 24 hours; export it in parts"),
        ));
    }
    let video = name.clone();
    let planning = match st.downloads.planning().await {
        Ok(p) => p,
        Err(busy) => return Ok(busy.into_response()),
    };
    let plan = blocking(move || archive.plan_export(&video, start, end)).await??;
    drop(planning);
    // Held by the body until the download ends (docs/api.md, "Connections").
    let share = match st.downloads.hold(plan.heap_bytes(), CHUNK).await {
        Ok(s) => s,
        Err(busy) => return Ok(busy.into_response()),
    };
    let plan = Arc::new(plan);
    let total = plan.layout.total_len();
    let etag = {
        // When retention deletes a segment of the range, the re-planned file gets another
        // tag, so a resumed download (If-Range, If-Match) never splices two different files.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        plan.hash_identity(&mut h);
        format!("\"{:016x}\"", h.finish())
    };
    // A range still being recorded (its end beyond the last stored frame) would be a
    // different file on every request, and byte ranges of different files do not splice:
    // send the player to the fixed range that exists now.
    if end.0 > plan.actual.1.0 + crate::time::TICKS_PER_SEC && st.runtime.video_in_use(&name) {
        let mut q = format!(
            "startTime={}&endTime={}",
            start.to_iso_millis().replace(':', "%3A"),
            plan.actual.1.to_iso_millis().replace(':', "%3A")
        );
        // A player given the token in the URL follows the redirect with it (it cannot add a
        // header).
        if let Some(token) = q_token(q_raw.as_deref()) {
            q.push_str("&token=");
            q.push_str(&percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC).to_string());
        }
        let location = format!("/api/videos/{name}/content.mp4?{q}");
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
    }
    let (status, from, to) = match byte_range(&headers, total, &etag) {
        ByteRange::Send(status, from, to) => (status, from, to),
        ByteRange::Reply(reply) => return Ok(reply),
    };
    let mut reader = PlanReader::new(st.runtime.archive().clone(), plan.clone());
    // The header's first bytes (ftyp, and moov up to its first sample table) go out at once;
    // the tables, generated from every segment's index, follow.
    let ready = plan.layout.fixed_at(from).to_vec();
    let body = stream_body_after(&ready, from, to, move |pos, buf| {
        let _share = &share;
        reader.read_at(pos, buf).map_err(|e| e.to_string())
    });
    let filename = format!("{name}-{}.mp4", plan.actual.0.to_iso_millis().replace(':', ""));
    let mut resp = media_response(body, status, (from, to, total), &etag, &filename);
    let h = resp.headers_mut();
    h.insert("openva-actual-start", header_value(plan.actual.0.to_iso_millis()));
    h.insert("openva-actual-end", header_value(plan.actual.1.to_iso_millis()));
    h.insert("openva-gaps", header_value(plan.gaps.len().to_string()));
    Ok(resp)
}

/// A File video's MP4, streamed from disk.
async fn file_content(
    archive: Arc<Archive>,
    v: VideoRow,
    q: &Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if query_param(q, "startTime").is_some() || query_param(q, "endTime").is_some() {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            format!(
                "video '{}' is a File video: startTime and endTime apply to archive videos only; \
                 request content.mp4 without them for the whole file",
                v.name
            ),
        ));
    }
    let filename = format!("{}.mp4", v.name);
    let name = v.name.clone();
    let (file, total, etag) = blocking(move || open_file_video(&archive, &v)).await??;
    let (status, from, to) = match byte_range(headers, total, &etag) {
        ByteRange::Send(status, from, to) => (status, from, to),
        ByteRange::Reply(reply) => return Ok(reply),
    };
    let body = stream_body(from, to, move |pos, buf| {
        std::os::unix::fs::FileExt::read_at(&file, buf, pos).map_err(|e| format!("reading video '{name}': {e}"))
    });
    Ok(media_response(body, status, (from, to, total), &etag, &filename))
}

/// Opens a File video's MP4: the open file, its length and an ETag. The file never changes
/// once registered; the ETag still covers its identity, so a video deleted and registered
/// again under the same name gets a new one.
fn open_file_video(archive: &Archive, v: &VideoRow) -> Result<(std::fs::File, u64, String), ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    let (Some(path), Some(facts)) = (archive.file_video_path(v), v.file.as_ref()) else {
        return Err(ArchiveError::Corrupt(format!("File video '{}' has no file row", v.name)));
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Deleted since the row was read: the video is gone, not broken.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            archive.video(&v.name)?;
            return Err(ArchiveError::io("opening", &path)(e));
        }
        Err(e) => return Err(ArchiveError::io("opening", &path)(e)),
    };
    let m = file.metadata().map_err(ArchiveError::io("reading", &path))?;
    if m.len() != facts.bytes {
        return Err(ArchiveError::Corrupt(format!(
            "{} is {} bytes, the index says {}",
            path.display(),
            m.len(),
            facts.bytes
        )));
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (v.id, v.created.0, m.len(), m.dev(), m.ino(), m.mtime(), m.mtime_nsec()).hash(&mut h);
    Ok((file, m.len(), format!("\"{:016x}\"", h.finish())))
}

/// What to answer a request for a file's bytes.
pub(super) enum ByteRange {
    /// Send bytes `from..to` (exclusive) with this status (`200` or `206`).
    Send(StatusCode, u64, u64),
    /// The whole reply, without the file (`304`, `416`).
    Reply(Response),
}

/// What to send of a file of `total` bytes named by `etag`, given the request's conditional
/// and `Range` headers. A Range applies only if `If-Range` (when given) still names this file;
/// one that is not in bytes or does not parse is ignored (RFC 9110) and the whole file is sent.
pub(super) fn byte_range(headers: &HeaderMap, total: u64, etag: &str) -> ByteRange {
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| etag_matches(v, etag)) {
        return ByteRange::Reply((StatusCode::NOT_MODIFIED, [(header::ETAG, etag.to_owned())]).into_response());
    }
    // A client resuming a download of a file that has changed since (retention deleted part of
    // the range): never the new file's bytes under the old tag.
    if let Some(m) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
        && !etag_matches(m, etag)
    {
        return ByteRange::Reply(
            (
                StatusCode::PRECONDITION_FAILED,
                [(header::ETAG, etag.to_owned())],
                axum::Json(json!({"error": {"code": "PreconditionFailed", "message": format!(
                    "the file is no longer the one tagged {m} (part of its media was deleted by retention, or the \
                     range has changed): download it again"
                )}})),
            )
                .into_response(),
        );
    }
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
                        return ByteRange::Reply(
                            (
                                StatusCode::RANGE_NOT_SATISFIABLE,
                                [(header::CONTENT_RANGE, format!("bytes */{total}"))],
                                axum::Json(json!({"error": {"code": "RangeNotSatisfiable",
                                "message": format!("range '{r}' is not satisfiable for a file of {total} bytes")}})),
                            )
                                .into_response(),
                        );
                    }
                },
            }
        }
        _ => None,
    };
    match range {
        Some((a, b)) => ByteRange::Send(StatusCode::PARTIAL_CONTENT, a, b + 1),
        None => ByteRange::Send(StatusCode::OK, 0, total),
    }
}

/// A body of bytes `from..to`, read by `read_at` on a blocking thread a chunk at a time (never
/// the whole file in memory). Reading stops when the client goes away.
pub(super) fn stream_body(
    from: u64,
    to: u64,
    read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, String> + Send + 'static,
) -> Body {
    stream_body_after(&[], from, to, read_at)
}

/// [`stream_body`], sending first the bytes `ready` (those from `from` on that are known
/// already, such as an export's fixed header bytes) without waiting for a blocking thread.
pub(super) fn stream_body_after(
    ready: &[u8],
    from: u64,
    to: u64,
    read_at: impl FnMut(u64, &mut [u8]) -> Result<usize, String> + Send + 'static,
) -> Body {
    let ready = &ready[..ready.len().min(FIRST_CHUNK).min(to.saturating_sub(from) as usize)];
    use futures::StreamExt;
    let first = (!ready.is_empty()).then(|| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(ready)));
    let from = from + ready.len() as u64;
    // One chunk per poll, read on a blocking thread that is given back at once: a client that
    // reads slowly holds no thread, only its connection (which the write timeout bounds).
    let stream = futures::stream::unfold((from, Some(read_at)), move |(pos, f)| async move {
        let mut f = f?;
        if pos >= to {
            return None;
        }
        let n = if pos == from { FIRST_CHUNK } else { CHUNK }.min((to - pos) as usize);
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; n];
            let r = f(pos, &mut buf).map(|k| {
                buf.truncate(k);
                buf
            });
            (f, r)
        })
        .await;
        let item = match read {
            Ok((f, Ok(buf))) if !buf.is_empty() => {
                let next = pos + buf.len() as u64;
                return Some((Ok(axum::body::Bytes::from(buf)), (next, Some(f))));
            }
            Ok((_, Ok(_))) => std::io::Error::other("the file ended early"),
            Ok((_, Err(e))) => std::io::Error::other(e),
            Err(e) => std::io::Error::other(e),
        };
        Some((Err(item), (to, None)))
    });
    Body::from_stream(futures::stream::iter(first).chain(stream))
}

/// The `token` parameter of a query string, decoded.
fn q_token(q: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(q?.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

pub(super) fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// An MP4 reply: `body` is bytes `from..to` of `total`.
pub(super) fn media_response(
    body: Body,
    status: StatusCode,
    (from, to, total): (u64, u64, u64),
    etag: &str,
    filename: &str,
) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, header_value((to - from).to_string()));
    h.insert(header::ETAG, header_value(etag.to_owned()));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(header::CONTENT_RANGE, header_value(format!("bytes {from}-{}/{total}", to - 1)));
    }
    h.insert(header::CONTENT_DISPOSITION, header_value(format!("inline; filename=\"{filename}\"")));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PATCH body maps to exactly the fields it names; `null` removes; a fetched entity's
    /// read-only parts pass; a misspelt or out-of-rule setting is refused by its name.
    #[test]
    fn patch_bodies() {
        let u = video_update(
            "cam",
            &json!({"name": "cam", "properties": {
                "title": "Door", "description": null, "type": "Archive", "flags": {"hasData": true},
                "archival": {"retentionPeriod": "P30D", "maximumSizeMiB": "100", "remoteTier": false},
                "mediaInfo": {"segmentLength": "PT1M", "codec": "avc1"}}}),
        )
        .expect("valid");
        assert_eq!(
            u,
            VideoUpdate {
                title: Some(Some("Door".into())),
                description: Some(None),
                segment_length: Some(Duration90k::from_secs(60)),
                retention: Some(Some(Duration90k::from_days(30))),
                max_bytes: Some(Some(100 << 20)),
                remote_tier: Some(Some(false)),
            }
        );
        let u =
            video_update("cam", &json!({"properties": {"archival": {"retentionPeriod": null, "maximumSizeMiB": 5}}}))
                .expect("valid");
        assert_eq!((u.retention, u.max_bytes, u.title), (Some(None), Some(Some(5 << 20)), None));
        let u = video_update("cam", &json!({"properties": {"archival": {"remoteTier": null}}})).expect("valid");
        assert_eq!(u, VideoUpdate { remote_tier: Some(None), ..Default::default() });
        assert_eq!(video_update("cam", &json!({})).expect("empty"), VideoUpdate::default());
        for (body, named) in [
            (json!({"properties": {"archival": {"retentionPeriod": "PT1H"}}}), "properties.archival.retentionPeriod"),
            (json!({"properties": {"archival": {"retentionperiod": "P1D"}}}), "properties.archival.retentionperiod"),
            (json!({"properties": {"archival": {"maximumSizeMiB": 0}}}), "properties.archival.maximumSizeMiB"),
            (json!({"properties": {"archival": {"maximumSizeMiB": 1.5}}}), "properties.archival.maximumSizeMiB"),
            (json!({"properties": {"archival": {"remoteTier": "yes"}}}), "properties.archival.remoteTier"),
            (json!({"properties": {"mediaInfo": {"segmentLength": "PT45S"}}}), "properties.mediaInfo.segmentLength"),
            (json!({"properties": {"retentionPeriod": "P1D"}}), "properties.retentionPeriod"),
            (json!({"properties": {"title": 7}}), "properties.title"),
            (json!({"name": "other"}), "'cam'"),
            (json!([1]), "JSON object"),
        ] {
            let e = video_update("cam", &body).expect_err("refused");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(named), "{body}: {}", e.message);
        }
    }
}
