//! `GET /api/videos/{name}/content.mp4?startTime=&endTime=&codec=h264&height=&bitrate=`: a
//! recorded range as one transcoded MP4, made of the HLS variant's fragments
//! (`pipeline::variant::content`, `docs/decode.md`, "Transcoded MP4").
//!
//! - The first byte waits for the first fragment only: the file is sent as its fragments are
//!   made, one transcoding slot at a time, and a fragment already made for anyone (an HLS
//!   viewer, an earlier download) is read from the cache.
//! - Until every fragment is made the length is unknown: the reply has none, and ranges are not
//!   offered (`Accept-Ranges: none`). Once all are cached, the same bytes are served with a
//!   length and byte ranges, so a player seeks in the file; a player may also seek by asking
//!   for another `startTime`, which transcodes from the keyframe before it.
//! - A full host answers the first request 503 with `Retry-After`; once a file is being sent,
//!   its next fragment waits for a slot (bounded) rather than fail the transfer.

use super::ApiState;
use super::error::ApiError;
use super::playback::{off_thread, variant_error, variant_reply};
use super::videos::{ByteRange, blocking, byte_range, header_value, media_response};
use crate::archive::playback::{Liveness, PlaybackRequest};
use crate::archive::{Archive, ArchiveError};
use crate::pipeline::variant::cache::VariantCache;
use crate::pipeline::variant::content::ContentPlan;
use crate::pipeline::variant::{self, VariantError, VariantSpec};
use crate::time::{TICKS_PER_SEC, Time90k};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest range one transcoded MP4 covers: an hour of 1080p takes minutes to make on an edge
/// device. Longer ranges are re-encoding exports (a batch job), or several requests.
pub const MAX_SPAN_90K: i64 = 3600 * TICKS_PER_SEC;

/// How long a fragment of a file being sent waits for a slot other viewers hold before the
/// transfer is abandoned.
const SLOT_PATIENCE: Duration = Duration::from_secs(120);

/// What the body reads from.
struct Source {
    archive: Arc<Archive>,
    cache: Arc<VariantCache>,
    video: String,
    spec: VariantSpec,
    plan: ContentPlan,
    /// The audio track's clock (the first file's), for moving audio times.
    audio_rate: Option<u32>,
}

impl Source {
    /// The cache key of piece `i`.
    fn key(&self, i: usize) -> String {
        let p = &self.plan.pieces[i];
        variant::cache_key(&self.video, &p.file, &format!("{}.m4s", p.offset), &self.spec)
    }

    /// Piece `i`, made (or read from the cache) and moved to its place in the file. `patient`:
    /// wait for a slot rather than answer Busy.
    fn piece(&self, i: usize, patient: bool) -> Result<Bytes, VariantError> {
        let p = &self.plan.pieces[i];
        let key = self.key(i);
        let deadline = Instant::now() + SLOT_PATIENCE;
        let made = loop {
            // The segment must still exist (retention) before anything is served.
            let seg = self.archive.segment_file(&self.video, &p.file)?;
            match self.cache.get_or_make(&key, || {
                variant::fragment(self.archive.open_segment(&seg.rel)?, &p.file, p.offset, &self.spec)
            }) {
                Err(VariantError::Busy(_)) if patient && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                r => break r?,
            }
        };
        let mut out = made.to_vec();
        let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
        crate::mp4::fragment::retime(&mut out, seq, p.tfdt, self.audio_rate)
            .map_err(|message| VariantError::Segment { file: p.file.clone(), message })?;
        Ok(Bytes::from(out))
    }

    /// The variant's init segment of segment file `file` (shared with HLS through the cache).
    fn init_of(&self, file: &str) -> Result<Bytes, VariantError> {
        let seg = self.archive.segment_file(&self.video, file)?;
        let key = variant::cache_key(&self.video, file, "init.mp4", &self.spec);
        self.cache.get_or_make(&key, || variant::init(self.archive.open_segment(&seg.rel)?, file, &self.spec))
    }
}

/// The reply to a transcoded `content.mp4` request for `[start, end)` of archive video `name`.
pub(super) async fn content_mp4(
    st: ApiState,
    name: String,
    (start, end): (Time90k, Time90k),
    spec: VariantSpec,
    token: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if end <= start {
        return Err(ArchiveError::EndNotAfterStart { start, end }.into());
    }
    if end.0 - start.0 > MAX_SPAN_90K {
        return Err(ApiError::bad_request(
            "InvalidRequest",
            format!(
                "the range from {start} to {end} is longer than 1 hour, the most one transcoded MP4 covers; \
                 ask for it in parts, or run a re-encoding export job"
            ),
        ));
    }
    let archive = st.runtime.archive().clone();
    let req = PlaybackRequest {
        start: Some(start),
        end: Some(end),
        recording: st.runtime.video_in_use(&name),
        now: Time90k::now(),
    };
    let (a, n) = (archive.clone(), name.clone());
    let pb = blocking(move || a.playback(&n, &req)).await??;
    let plan = ContentPlan::new(&pb, start)
        .ok_or_else(|| ApiError::from(ArchiveError::NoData { video: name.clone(), start, end }))?;
    if pb.liveness != Liveness::Closed {
        // Still being recorded: a different file on every request, and byte ranges of
        // different files do not splice. The range that exists now is fixed.
        let to = plan.actual().1;
        if to <= start {
            return Err(ArchiveError::NoData { video: name, start, end }.into());
        }
        let iso = |t: Time90k| t.to_iso_millis().replace(':', "%3A");
        let mut q = format!("startTime={}&endTime={}&{}", iso(start), iso(to), spec.query());
        if let Some(t) = token {
            q.push_str("&token=");
            q.push_str(&percent_encoding::utf8_percent_encode(&t, percent_encoding::NON_ALPHANUMERIC).to_string());
        }
        let location = format!("/api/videos/{name}/content.mp4?{q}");
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response());
    }
    let src = Source { archive, cache: st.variants.clone(), video: name.clone(), spec, plan, audio_rate: None };
    // The head and the first fragment before any byte is sent: a busy host, an undecodable
    // recording or a vanished segment is a status, not a cut transfer.
    let prepared = off_thread(move || {
        Ok((|| {
            let mut src = src;
            let first = src.init_of(&src.plan.pieces[0].file)?;
            // A later timeline with another picture size or audio track cannot share the
            // file's one init segment: the file ends before it (the reply says where).
            for t in src.plan.timelines.clone() {
                if src.init_of(&src.plan.pieces[t].file)? != first {
                    src.plan.cut(t);
                    break;
                }
            }
            let file0 = src.plan.pieces[0].file.clone();
            let seg = src.archive.segment_file(&src.video, &file0)?;
            let (head, rate) =
                variant::head(src.archive.open_segment(&seg.rel)?, &file0, &src.spec, src.plan.duration())?;
            src.audio_rate = rate;
            let piece0 = src.piece(0, false)?;
            Ok::<_, VariantError>((src, Bytes::from(head), piece0))
        })())
    })
    .await?;
    let (src, head, piece0) = match prepared {
        Ok(p) => p,
        Err(e) => return variant_reply(e),
    };
    let etag = {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&src.video, src.spec.query(), head.len()).hash(&mut h);
        for p in &src.plan.pieces {
            (&p.file, p.offset, p.tfdt).hash(&mut h);
        }
        format!("\"{:016x}\"", h.finish())
    };
    let (actual_start, actual_end) = src.plan.actual();
    let filename = format!(
        "{name}-{}-{}.mp4",
        actual_start.to_iso_millis().replace(':', ""),
        src.spec.height.map_or("h264".to_owned(), |h| format!("{h}p"))
    );
    // Every fragment cached: the length is known, and so is each fragment's place.
    let lens: Option<Vec<u64>> = (0..src.plan.pieces.len())
        .map(|i| if i == 0 { Some(piece0.len() as u64) } else { src.cache.cached_len(&src.key(i)) })
        .collect();
    let timelines = src.plan.timelines.len();
    let mut resp = match lens {
        Some(lens) => {
            // Every fragment known: a segment index after the head, so players seek without
            // reading each fragment first. These bytes differ from the streamed file's, and
            // so does the tag.
            let refs: Vec<(u64, u64)> = lens.iter().copied().zip(src.plan.durations()).collect();
            let sidx = crate::mp4::fragment::sidx(crate::mp4::TIMESCALE, &refs)
                .map_err(|m| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", m))?;
            let head = Bytes::from([&head[..], &sidx[..]].concat());
            let etag = format!("\"{}-i\"", etag.trim_matches('"'));
            let total = head.len() as u64 + lens.iter().sum::<u64>();
            let (status, from, to) = match byte_range(headers, total, &etag) {
                ByteRange::Send(status, from, to) => (status, from, to),
                ByteRange::Reply(reply) => return Ok(reply),
            };
            let body = body(src, head, piece0, from, to, Some(lens));
            media_response(body, status, (from, to, total), &etag, &filename)
        }
        None => {
            let mut r = Response::new(body(src, head, piece0, 0, u64::MAX, None));
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
            h.insert(header::ETAG, header_value(etag));
            h.insert(header::CONTENT_DISPOSITION, header_value(format!("inline; filename=\"{filename}\"")));
            r
        }
    };
    let h = resp.headers_mut();
    h.insert("openva-actual-start", header_value(actual_start.to_iso_millis()));
    h.insert("openva-actual-end", header_value(actual_end.to_iso_millis()));
    h.insert("openva-gaps", header_value(timelines.to_string()));
    Ok(resp)
}

/// Bytes `from..to` of the file: its head, then each piece made in turn (on a blocking thread,
/// one at a time: a download holds at most one slot). With `lens` (every piece cached), pieces
/// wholly before `from` are skipped unread.
fn body(src: Source, head: Bytes, piece0: Bytes, from: u64, to: u64, lens: Option<Vec<u64>>) -> Body {
    struct Sending {
        src: Arc<Source>,
        /// Chunk to send next: 0 the head, `i + 1` piece `i`.
        next: usize,
        /// Offset of that chunk in the file.
        pos: u64,
        ready: [Option<Bytes>; 2],
        lens: Option<Vec<u64>>,
    }
    let start = Sending { src: Arc::new(src), next: 0, pos: 0, ready: [Some(head), Some(piece0)], lens };
    let stream = futures::stream::unfold(Some(start), move |state| async move {
        let mut s = state?;
        loop {
            if s.pos >= to || s.next > s.src.plan.pieces.len() {
                return None;
            }
            let known = match (s.next, &s.lens) {
                (0, _) => s.ready[0].as_ref().map(|b| b.len() as u64),
                (n, Some(l)) => l.get(n - 1).copied(),
                _ => None,
            };
            if let Some(len) = known
                && s.pos + len <= from
            {
                s.pos += len;
                s.next += 1;
                continue;
            }
            let bytes = match s.ready.get_mut(s.next).and_then(Option::take) {
                Some(b) => b,
                None => {
                    let (src, i) = (s.src.clone(), s.next - 1);
                    match tokio::task::spawn_blocking(move || src.piece(i, true)).await {
                        Ok(Ok(b)) => b,
                        Ok(Err(e)) => return Some((Err(std::io::Error::other(variant_error(e).message)), None)),
                        Err(e) => return Some((Err(std::io::Error::other(e)), None)),
                    }
                }
            };
            let len = bytes.len() as u64;
            if known.is_some_and(|k| k != len) {
                // Made again after eviction, differently: the promised layout no longer holds.
                let e = std::io::Error::other("a transcoded fragment changed length; ask again");
                return Some((Err(e), None));
            }
            let (a, b) = (from.saturating_sub(s.pos).min(len), to.saturating_sub(s.pos).min(len));
            s.pos += len;
            s.next += 1;
            if a < b {
                return Some((Ok(bytes.slice(a as usize..b as usize)), Some(s)));
            }
        }
    });
    Body::from_stream(stream)
}
