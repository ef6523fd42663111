//! Streaming playback of archive videos: HLS manifests of any range (also at AVA's
//! `content.ism/manifest(format=m3u8-cmaf,…)` URL), the segment files they point into, and
//! preview images. The rules are the archive's (`archive::playback`) and the playlist text is
//! `mp4::hls`'s; this module parses, authorises and shapes replies.

use super::ApiState;
use super::error::ApiError;
use super::videos::{
    ByteRange, blocking, byte_range, header_value, media_response, query_param, stream_body, time_param, video_name,
};
use crate::archive::ArchiveError;
use crate::archive::playback::{Liveness, Playback, PlaybackRequest};
use crate::mp4::hls;
use crate::pipeline::preview::{self, StillError, StillSize};
use crate::pipeline::variant::{self, VariantError, VariantSpec};
use crate::time::Time90k;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::hash::{Hash, Hasher};

/// HLS playlists' media type (RFC 8216 §4).
const M3U8: &str = "application/vnd.apple.mpegurl";

/// Target duration a live playlist declares at least: fragments are cut at ~1 s, so with a
/// frame's jitter they round up to 2 s; declaring it from the start keeps the value fixed
/// across reloads, as RFC 8216 requires.
const LIVE_TARGET_DURATION: u32 = 2;

/// `GET /api/videos/{name}/manifest.m3u8?startTime=&endTime=`: the multivariant playlist,
/// whose one variant is `media.m3u8` with the same query.
pub async fn manifest(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let (start, end) = (time_param(&q, "startTime")?, time_param(&q, "endTime")?);
    block_until(&q)?;
    serve_multivariant(st, name, start, end, query_param(&q, "token"), variant_spec(&q)?).await
}

/// Runs blocking work (the archive's index, transcoding) off the async workers.
pub(super) async fn off_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()))?
}

/// The transcoded variant a playlist or segment request asks for (`codec`, `height`,
/// `bitrate`), if any; a bad value is a 400 naming its parameter.
pub(super) fn variant_spec(q: &Option<String>) -> Result<Option<VariantSpec>, ApiError> {
    let p = |k| query_param(q, k);
    VariantSpec::parse(p("codec").as_deref(), p("height").as_deref(), p("bitrate").as_deref()).map_err(variant_error)
}

/// A variant's error as AVA's error shape: 400 for a bad parameter, 404 for no such fragment,
/// 415 for pictures this host cannot decode, 503 with `Retry-After` when every slot is busy.
pub(super) fn variant_error(e: VariantError) -> ApiError {
    match e {
        VariantError::BadRequest(m) => ApiError::bad_request("InvalidRequest", m),
        VariantError::NotFound(m) => ApiError::not_found(m),
        VariantError::Archive(e) => e.into(),
        VariantError::Codec(e @ crate::codec::CodecError::Unsupported(_)) => {
            ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaFormat", e.to_string())
        }
        e @ VariantError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ServerBusy", e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()),
    }
}

/// A variant's error as the reply: [`variant_error`]'s, and a 503 says when to try again.
pub(super) fn variant_reply(e: VariantError) -> Result<Response, ApiError> {
    match e {
        e @ VariantError::Busy(_) => {
            let mut r = variant_error(e).into_response();
            // About one segment's transcode.
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(r)
        }
        e => Err(variant_error(e)),
    }
}

/// `GET /api/videos/{name}/media.m3u8?startTime=&endTime=` (also under `content.ism/`): the
/// media playlist, live ranges answering blocking reloads.
pub async fn media(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let (start, end) = (time_param(&q, "startTime")?, time_param(&q, "endTime")?);
    let spec = variant_spec(&q)?;
    serve_manifest(st, name, start, end, query_param(&q, "token"), block_until(&q)?, spec).await
}

/// `GET /api/videos/{name}/content.ism/manifest(format=m3u8-cmaf,starttime=…,endtime=…)`,
/// with or without a `.m3u8` suffix: AVA's manifest URL, as its player widget builds it (a
/// multivariant playlist); and `content.ism/media.m3u8?startTime=&endTime=`, its variant.
pub async fn ava_manifest(
    State(st): State<ApiState>,
    Path((name, spec)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let variant = variant_spec(&q)?;
    if spec == "media.m3u8" {
        let (start, end) = (time_param(&q, "startTime")?, time_param(&q, "endTime")?);
        return serve_manifest(st, name, start, end, query_param(&q, "token"), block_until(&q)?, variant).await;
    }
    let m = AvaManifest::parse(&spec)?;
    block_until(&q)?;
    serve_multivariant(st, name, m.start, m.end, query_param(&q, "token"), variant).await
}

/// The multivariant playlist of a range: the codecs and peak bit rate of what it lists (or,
/// for a live range with nothing yet, of the newest recording), and the media playlist's URI.
async fn serve_multivariant(
    st: ApiState,
    name: String,
    start: Option<Time90k>,
    end: Option<Time90k>,
    token: Option<String>,
    variant: Option<VariantSpec>,
) -> Result<Response, ApiError> {
    let archive = st.runtime.archive().clone();
    let req = PlaybackRequest { start, end, recording: st.runtime.video_in_use(&name), now: Time90k::now() };
    let n = name.clone();
    let (pb, info) = blocking(move || Ok((archive.playback(&n, &req)?, archive.media_info(&n)?))).await??;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(s) = start {
        query.push(("startTime", s.to_iso_millis()));
    }
    if let Some(e) = end {
        query.push(("endTime", e.to_iso_millis()));
    }
    if let Some(t) = token.clone() {
        query.push(("token", t));
    }
    if let Some(v) = &variant {
        query.push(("codec", "h264".into()));
        if let Some(h) = v.height {
            query.push(("height", h.to_string()));
        }
        query.push(("bitrate", v.kbps.to_string()));
    }
    let mut uri = "media.m3u8".to_owned();
    for (i, (k, v)) in query.iter().enumerate() {
        let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
        uri.push_str(&format!("{}{k}={v}", if i == 0 { '?' } else { '&' }));
    }
    let listed = playlist(&pb, token.as_deref(), None);
    let mut codecs = pb.codecs.clone();
    if codecs.is_empty()
        && let Some(i) = &info
    {
        codecs.push(i.codec.clone());
        codecs.extend(i.audio.as_ref().map(|a| a.codec.clone()));
    }
    let resolution = info.as_ref().map(|i| (i.width, i.height));
    let described = match (&variant, resolution) {
        (Some(v), Some(size)) => {
            // The transcoded stream: H.264 of the variant's size (its codec string from the
            // encoder itself), the recorded audio, the asked bit rate plus audio's share.
            let out = v.output_size(size);
            let v = *v;
            let video_codec = off_thread(move || variant::codec_string(&v, out).map_err(variant_error)).await?;
            if let Some(c) = codecs.first_mut() {
                *c = video_codec;
            }
            hls::Variant { uri, bandwidth: u64::from(v.kbps) * 1000 + 256_000, codecs, resolution: Some(out) }
        }
        _ => hls::Variant {
            uri,
            // Without fragments yet (a live range just started), a typical camera's rate.
            bandwidth: hls::peak_bandwidth(&listed.segments).unwrap_or(4_000_000),
            codecs,
            resolution,
        },
    };
    let mut resp = ([(header::CONTENT_TYPE, M3U8)], hls::multivariant(&described)).into_response();
    if pb.liveness != Liveness::Closed {
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// The parenthesised arguments of AVA's manifest URL.
#[derive(Debug, PartialEq, Eq)]
struct AvaManifest {
    start: Option<Time90k>,
    end: Option<Time90k>,
}

impl AvaManifest {
    /// Parses `manifest(key=value,…)` (keys case-insensitive; `format` must be `m3u8-cmaf`, the
    /// only format served). Anything that is not a manifest at all is a 404.
    fn parse(spec: &str) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request("InvalidRequest", m);
        let lower = spec.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("manifest").map(|_| &spec["manifest".len()..]) else {
            return Err(ApiError::not_found("no such resource under content.ism; see docs/api.md"));
        };
        let inner = match rest {
            "" | ".m3u8" => "",
            r => r
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(".m3u8").unwrap_or(r).strip_suffix(')'))
                .ok_or_else(|| bad(format!("'{spec}' is not manifest(format=m3u8-cmaf,starttime=…,endtime=…)")))?,
        };
        let (mut format, mut start, mut end) = (None, None, None);
        for arg in inner.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let (k, v) =
                arg.split_once('=').ok_or_else(|| bad(format!("manifest argument '{arg}' is not key=value")))?;
            let time = |key: &str| Time90k::parse_iso(v).map_err(|e| bad(format!("{key} '{v}': {e}")));
            match k.trim().to_ascii_lowercase().as_str() {
                "format" => format = Some(v.trim().to_owned()),
                "starttime" => start = Some(time("starttime")?),
                "endtime" => end = Some(time("endtime")?),
                other => {
                    return Err(bad(format!(
                        "manifest argument '{other}' is not supported; use format, starttime and endtime"
                    )));
                }
            }
        }
        match format.as_deref() {
            Some(f) if f.eq_ignore_ascii_case("m3u8-cmaf") => Ok(AvaManifest { start, end }),
            Some(f) => Err(bad(format!(
                "format '{f}' is not served: only m3u8-cmaf (HLS with CMAF/fMP4 segments) is; \
                 use manifest(format=m3u8-cmaf,…)"
            ))),
            None => Err(bad("format is missing: only m3u8-cmaf (HLS with CMAF/fMP4 segments) is served; \
                 use manifest(format=m3u8-cmaf,…)"
                .into())),
        }
    }
}

/// How long a blocking playlist reload (`_HLS_msn`) waits for the segment it asks for: three
/// target durations, as RFC 8216bis §6.2.5.2 suggests. Then the playlist is served as it is (a
/// camera may be down for long; players simply ask again, where a 503 would count as a failure).
const BLOCK_LIMIT: std::time::Duration = std::time::Duration::from_secs(3 * LIVE_TARGET_DURATION as u64);

/// The LL-HLS delivery directives of a playlist request: `_HLS_msn=N` asks to hold the reply
/// until segment N is listed. Partial segments and delta updates are not served (a fragment,
/// one GOP or at most ~1 s, is the smallest unit), so `_HLS_part` and `_HLS_skip` are refused.
fn block_until(q: &Option<String>) -> Result<Option<u64>, ApiError> {
    for (key, what) in [("_HLS_part", "partial segments"), ("_HLS_skip", "playlist delta updates")] {
        if query_param(q, key).is_some() {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!("{key}: {what} are not served (one segment is one recorded fragment); use _HLS_msn alone"),
            ));
        }
    }
    query_param(q, "_HLS_msn")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request("InvalidRequest", format!("_HLS_msn '{v}' is not a media sequence number"))
            })
        })
        .transpose()
}

async fn serve_manifest(
    st: ApiState,
    name: String,
    start: Option<Time90k>,
    end: Option<Time90k>,
    token: Option<String>,
    msn: Option<u64>,
    variant: Option<VariantSpec>,
) -> Result<Response, ApiError> {
    let archive = st.runtime.archive().clone();
    // Subscribed before the first look, so a fragment written meanwhile is not missed.
    let mut changes = archive.recorded_changes();
    let deadline = tokio::time::Instant::now() + BLOCK_LIMIT;
    let pb = 'fresh: loop {
        let req = PlaybackRequest { start, end, recording: st.runtime.video_in_use(&name), now: Time90k::now() };
        let (a, n) = (archive.clone(), name.clone());
        let (video_id, generation, pb) = blocking(move || {
            let id = a.video(&n)?.id;
            let generation = a.recording_generation(id);
            a.playback(&n, &req).map(|pb| (id, generation, pb))
        })
        .await??;
        let Some(wanted) = msn.filter(|_| pb.liveness != Liveness::Closed) else { break pb };
        let next = pb.media_sequence + pb.segments.iter().map(|s| s.fragments.len() as u64).sum::<u64>();
        if wanted > next + 1 {
            return Err(ApiError::bad_request(
                "InvalidRequest",
                format!(
                    "_HLS_msn {wanted} is more than two segments past the last one listed ({})",
                    next.saturating_sub(1)
                ),
            ));
        }
        if wanted < next {
            break pb;
        }
        // Hold the reply until this video records something new, then look again.
        loop {
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) if archive.recording_generation(video_id) != generation => continue 'fresh,
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break 'fresh pb,
            }
        }
    };
    let text = playlist(&pb, token.as_deref(), variant.as_ref()).render();
    let mut resp = ([(header::CONTENT_TYPE, M3U8)], text).into_response();
    if pb.liveness != Liveness::Closed {
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// The playlist of `pb`. Segment URIs are relative (`segments/<file>`), so they resolve under
/// whichever manifest URL was used; a `token` given in the query goes on each of them, since
/// players fetch segments themselves and cannot add a header. With a `variant`, each fragment
/// is its own transcoded resource (`variants/<file>/<moof offset>.m4s?codec=…`) with the file's
/// `variants/<file>/init.mp4?codec=…` as its map: the same fragments, durations and
/// discontinuities as the recording.
fn playlist(pb: &Playback, token: Option<&str>, variant: Option<&VariantSpec>) -> hls::Playlist {
    let token =
        token.map(|t| format!("token={}", url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>()));
    let query = match (variant.map(VariantSpec::query), token) {
        (Some(v), Some(t)) => format!("?{v}&{t}"),
        (Some(q), None) | (None, Some(q)) => format!("?{q}"),
        (None, None) => String::new(),
    };
    let mut segments = Vec::new();
    for s in &pb.segments {
        let uri = format!("segments/{}{query}", s.file_name);
        let map = variant.map(|_| format!("variants/{}/init.mp4{query}", s.file_name));
        for (i, f) in s.fragments.iter().enumerate() {
            segments.push(hls::Segment {
                uri: match variant {
                    Some(_) => format!("variants/{}/{}.m4s{query}", s.file_name, f.offset),
                    None => uri.clone(),
                },
                map: map.clone(),
                init_len: s.init_len,
                offset: f.offset,
                len: f.len,
                wall_start: f.wall_start,
                duration: f.media_dur,
                discontinuity: i == 0 && s.new_timeline,
            });
        }
    }
    let start_offset = match (pb.requested_start, pb.first_start()) {
        (Some(r), Some(f)) if r > f => Some(r.0 - f.0),
        _ => None,
    };
    hls::Playlist {
        kind: match pb.liveness {
            Liveness::Closed => hls::Kind::Vod,
            Liveness::Growing => hls::Kind::Event,
            Liveness::Sliding => hls::Kind::Sliding,
        },
        media_sequence: pb.media_sequence,
        discontinuity_sequence: pb.discontinuity_sequence,
        min_target_duration: if pb.liveness == Liveness::Closed { 0 } else { LIVE_TARGET_DURATION },
        start_offset,
        segments,
    }
}

/// `GET /api/videos/{name}/segments/{file}` (also under `content.ism/`): a segment file's bytes
/// as far as the index covers them, with `Range` support. Only files the index lists for that
/// video are served; a file still being recorded is served up to its last committed fragment,
/// which never changes once written.
pub async fn segment(
    State(st): State<ApiState>,
    Path((name, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let archive = st.runtime.archive().clone();
    let (video, wanted) = (name.clone(), file.clone());
    let (seg, f) = blocking(move || {
        let seg = archive.segment_file(&video, &wanted)?;
        let f = archive.open_segment(&seg.rel);
        Ok::<_, ArchiveError>((seg, f))
    })
    .await??;
    let f = match f {
        Ok(f) => f,
        // Deleted by retention since the lookup.
        Err(ArchiveError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ArchiveError::UnknownSegment { video: name, file }.into());
        }
        Err(e) => return Err(e.into()),
    };
    let etag = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (seg.id, seg.bytes).hash(&mut h);
        format!("\"{:016x}\"", h.finish())
    };
    let (status, from, to) = match byte_range(&headers, seg.bytes, &etag) {
        ByteRange::Send(status, from, to) => (status, from, to),
        ByteRange::Reply(reply) => return Ok(reply),
    };
    let what = format!("reading segment '{file}' of video '{name}'");
    let committed = seg.bytes;
    let body = stream_body(from, to, move |pos, buf| {
        // Never past the committed length (an open file grows beyond it).
        let n = buf.len().min(committed.saturating_sub(pos) as usize);
        f.read_exact_at(&mut buf[..n], pos).map(|()| n).map_err(|e| format!("{what}: {e}"))
    });
    let mut resp = media_response(body, status, (from, to, seg.bytes), &etag, &file);
    if seg.open {
        // The file grows: its length (and so a whole-file reply) changes with every commit.
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    Ok(resp)
}

/// `GET /api/videos/{name}/variants/{file}/{init.mp4|OFFSET.m4s}?codec=h264&height=&bitrate=`
/// (also under `content.ism/`): a segment file's init segment, or its fragment whose `moof` is
/// at OFFSET, transcoded (`pipeline::variant`): made on the first request, cached on disk for
/// the next, 503 with `Retry-After` when every transcoding slot is busy.
pub async fn variant_segment(
    State(st): State<ApiState>,
    Path((name, file, part)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let spec = variant_spec(&q)?.ok_or_else(|| {
        ApiError::bad_request(
            "InvalidRequest",
            "codec is missing: variants are asked for with codec=h264 (and height, bitrate)",
        )
    })?;
    let offset =
        match part.as_str() {
            "init.mp4" => None,
            p => Some(p.strip_suffix(".m4s").and_then(|o| o.parse::<u64>().ok()).ok_or_else(|| {
                ApiError::not_found(format!("'{p}' is neither init.mp4 nor a fragment (OFFSET.m4s)"))
            })?),
        };
    let archive = st.runtime.archive().clone();
    let cache = st.variants.clone();
    let key = variant::cache_key(&name, &file, &part, &spec);
    let made = off_thread(move || {
        // The segment must still exist (retention, a deleted video) before anything is served,
        // even from the cache.
        let seg = archive.segment_file(&name, &file)?;
        Ok(cache.get_or_make(&key, || match offset {
            None => variant::init(archive.open_segment(&seg.rel)?, &file, &spec),
            Some(o) => variant::fragment(archive.open_segment(&seg.rel)?, &file, o, &spec),
        }))
    })
    .await?;
    let bytes = match made {
        Ok(b) => b,
        Err(e) => return variant_reply(e),
    };
    let mut resp = ([(header::CONTENT_TYPE, "video/mp4")], bytes).into_response();
    // Made once from recorded media that never changes.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    Ok(resp)
}

/// `GET /api/videos/{name}/images/latest/{small|medium|large}.jpg`: the latest recorded
/// keyframe, never cached (it changes as recording goes on).
pub async fn latest_image(
    State(st): State<ApiState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let size = file
        .strip_suffix(".jpg")
        .ok_or_else(|| {
            ApiError::bad_request("InvalidRequest", format!("'{file}' is not small.jpg, medium.jpg or large.jpg"))
        })?
        .parse::<StillSize>()
        .map_err(|e| ApiError::bad_request("InvalidRequest", e.to_string()))?;
    image(st, name, None, size).await
}

/// `GET /api/videos/{name}/images/at.jpg?time=&size=`: the keyframe at or before `time` in
/// what was recorded then (`size` defaults to small).
pub async fn image_at(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    video_name(&name)?;
    let time = time_param(&q, "time")?
        .ok_or_else(|| ApiError::bad_request("InvalidRequest", "time (ISO 8601 UTC) is required"))?;
    let size = match query_param(&q, "size") {
        Some(s) => s.parse::<StillSize>().map_err(|e| ApiError::bad_request("InvalidRequest", e.to_string()))?,
        None => StillSize::Small,
    };
    image(st, name, Some(time), size).await
}

async fn image(st: ApiState, name: String, at: Option<Time90k>, size: StillSize) -> Result<Response, ApiError> {
    let archive = st.runtime.archive().clone();
    let made = tokio::task::spawn_blocking(move || preview::still(&archive, &name, at, size))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()))?;
    let still = match made {
        Ok(s) => s,
        Err(StillError::Archive(e)) => return Err(e.into()),
        Err(StillError::Codec(e @ crate::codec::CodecError::Unsupported(_))) => {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaFormat", e.to_string()));
        }
        Err(e @ StillError::Codec(_)) => {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", e.to_string()));
        }
    };
    let mut resp = ([(header::CONTENT_TYPE, "image/jpeg")], still.jpeg).into_response();
    let h = resp.headers_mut();
    // The latest picture changes as recording goes on; a picture at a time changes only if
    // retention deletes it: revalidate both rather than trust a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("openva-frame-time", header_value(still.time.to_iso_millis()));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Option<Time90k> {
        Some(Time90k::parse_iso(s).unwrap())
    }

    #[test]
    fn ava_manifest_urls() {
        let m = AvaManifest::parse(
            "manifest(format=m3u8-cmaf,starttime=2026-11-23T05:00:00Z,endtime=2026-11-23T06:00:00Z)",
        )
        .unwrap();
        assert_eq!(m, AvaManifest { start: t("2026-11-23T05:00:00Z"), end: t("2026-11-23T06:00:00Z") });
        // The widget's `.m3u8` suffix, keys in any case, dates.
        let m = AvaManifest::parse("manifest(Format=M3U8-CMAF,StartTime=2026-11-23).m3u8").unwrap();
        assert_eq!(m, AvaManifest { start: t("2026-11-23T00:00:00Z"), end: None });
        assert_eq!(AvaManifest::parse("manifest(format=m3u8-cmaf)").unwrap(), AvaManifest { start: None, end: None });
    }

    #[test]
    fn ava_manifest_errors_name_what_is_wrong() {
        let msg = |s: &str| match AvaManifest::parse(s) {
            Err(e) => (e.status.as_u16(), e.message),
            Ok(m) => panic!("{s}: {m:?}"),
        };
        for f in ["m3u8-aapl", "mpd-time-cmaf"] {
            let (st, m) = msg(&format!("manifest(format={f})"));
            assert_eq!(st, 400);
            assert!(m.contains(f) && m.contains("only m3u8-cmaf"), "{m}");
        }
        let (st, m) = msg("manifest");
        assert!(st == 400 && m.contains("only m3u8-cmaf"), "{m}");
        let (st, m) = msg("manifest(format=m3u8-cmaf,starttime=yesterday)");
        assert!(st == 400 && m.contains("starttime"), "{m}");
        let (st, m) = msg("manifest(format=m3u8-cmaf,filter=x)");
        assert!(st == 400 && m.contains("filter"), "{m}");
        let (st, m) = msg("manifest(format=m3u8-cmaf");
        assert!(st == 400, "{m}");
        assert_eq!(msg("something-else").0, 404);
    }
}
