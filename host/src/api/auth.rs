//! Who may call: the API token, and content tokens (AVA's `listContentToken`).
//!
//! The API token opens everything and goes in an `Authorization: Bearer` header. Content tokens
//! are short-lived, signed, and good for one video's media reads only, so the URLs a player or a
//! page puts a token in (`?token=` on segments, images, downloads) need not carry the API token:
//! a leaked media URL then exposes one video for at most [`LIFETIME_S`], not the whole host.
//!
//! A content token is `{expiry}.{mac}`: the expiry in Unix seconds and an HMAC-SHA256 over the
//! video's name and that expiry, keyed by a key derived from the API token. Nothing is stored:
//! checking is recomputing. Deriving the key from the API token means content tokens survive a
//! host restart and die with the API token when it is changed, with no key file of their own.

use super::ApiState;
use super::error::ApiError;
use super::videos::video_name;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a content token is good for. A player that plays longer sends its requests with
/// the API token in a header (the web UI does) or asks for a new content token.
pub const LIFETIME_S: i64 = 3600;

type HmacSha256 = Hmac<Sha256>;

/// The host's API token and the content tokens derived from it (see the module doc).
#[derive(Clone)]
pub struct Auth {
    token: std::sync::Arc<str>,
    content: ContentTokens,
}

impl Auth {
    /// Requests must carry `token` (see [`authorise`]).
    pub fn new(token: &str) -> Self {
        Self { token: token.into(), content: ContentTokens::new(token) }
    }

    /// Whether `given` opens the request: the API token for anything, a content token for a
    /// read of its own video's media (`video`, when the request is one).
    fn admits(&self, given: &str, video: Option<&str>) -> bool {
        // An empty configured token would match an absent header: never accept that.
        if !self.token.is_empty() && constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            return true;
        }
        video.is_some_and(|v| self.content.verify(given, v, unix_now()))
    }
}

/// Seconds since the Unix epoch, by the system clock (as the tokens' expiry is).
fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Compares without an early exit, so response time does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Requires `Authorization: Bearer <token>` when the host has an API token. Reads of a video's
/// media (`GET`/`HEAD` under `/api/videos/{name}/`: manifests, segments, images, downloads,
/// `availableMedia`) may instead give that video's content token, in the header or as
/// `?token=`: players fetch the segment and image URLs a manifest or page names by themselves
/// and cannot add a header. Those reads and the event stream also take the API token as
/// `?token=`, for clients that cannot do better (browsers' `EventSource` sends no headers); the
/// web UI never puts the API token in a URL.
pub async fn authorise(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(auth) = &st.auth {
        let media = media_read(&req);
        let header_token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned());
        let query_token = media.as_ref().and_then(|_| query_token(&req));
        let given = header_token.or(query_token).unwrap_or_default();
        if !auth.admits(&given, media.as_ref().and_then(|m| m.as_deref())) {
            let mut r = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "this host needs 'Authorization: Bearer <token>' (see --token-file), or for a video's media \
                 that video's content token (POST /api/videos/{name}/listContentToken)",
            )
            .into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// What a read-only media request reads: `Some(Some(video))` for a video's own resources
/// (`/videos/{name}/…`), `Some(None)` for the event stream, `None` for anything else (which
/// needs the API token in a header).
fn media_read(req: &Request) -> Option<Option<String>> {
    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        return None;
    }
    // Nested under /api, the path may or may not still carry the prefix.
    let path = req.uri().path();
    let path = path.strip_prefix("/api").unwrap_or(path);
    if path == "/events" {
        return Some(None);
    }
    let rest = path.strip_prefix("/videos/")?;
    // A video's own resources only (`/videos/{name}/…`), not the list or the entity.
    let (name, _) = rest.split_once('/').filter(|(name, sub)| !name.is_empty() && !sub.is_empty())?;
    let name = percent_encoding::percent_decode_str(name).decode_utf8().ok()?;
    Some(Some(name.into_owned()))
}

/// The `token` query parameter.
fn query_token(req: &Request) -> Option<String> {
    url::form_urlencoded::parse(req.uri().query()?.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

/// `POST /api/videos/{name}/listContentToken` (AVA's action): a content token for the video's
/// media, `{"expirationDate", "token"}`. Asked with the API token; a host without one issues
/// it all the same (it admits every request anyway), so clients need not care which it is.
pub async fn list_content_token(State(st): State<ApiState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    video_name(&name)?;
    // Only for a video that exists.
    st.runtime.archive().video(&name)?;
    let tokens = st.auth.as_ref().map_or_else(|| ContentTokens::new(""), |a| a.content.clone());
    let (token, expiry) = tokens.issue(&name, unix_now());
    let expiration = jiff::Timestamp::from_second(expiry)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()))?;
    Ok(axum::Json(serde_json::json!({"expirationDate": expiration.to_string(), "token": token})).into_response())
}

/// Issues and checks content tokens (see the module doc).
#[derive(Clone)]
struct ContentTokens {
    key: [u8; 32],
}

impl ContentTokens {
    /// Tokens tied to the host's API token.
    fn new(api_token: &str) -> Self {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = HmacSha256::new_from_slice(api_token.as_bytes()).expect("HMAC takes a key of any length");
        mac.update(b"openva content token v1");
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(&self, video: &str, expiry: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(video.as_bytes());
        mac.update(b"\n");
        mac.update(expiry.to_string().as_bytes());
        mac
    }

    /// A token for `video`, good from `now` (Unix seconds) for [`LIFETIME_S`]; with its expiry.
    fn issue(&self, video: &str, now: i64) -> (String, i64) {
        use base64::Engine as _;
        let expiry = now.saturating_add(LIFETIME_S);
        let tag = self.mac(video, expiry).finalize().into_bytes();
        (format!("{expiry}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)), expiry)
    }

    /// Whether `token` was issued by us for `video` and is still good at `now`.
    fn verify(&self, token: &str, video: &str, now: i64) -> bool {
        use base64::Engine as _;
        let Some((expiry, tag)) = token.split_once('.') else { return false };
        let (Ok(expiry), Ok(tag)) =
            (expiry.parse::<i64>(), base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag))
        else {
            return false;
        };
        // `verify_slice` compares in constant time.
        now < expiry && self.mac(video, expiry).verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_video_until_it_expires() {
        let t = ContentTokens::new("api-token");
        let (tok, expiry) = t.issue("cam", 1_000);
        assert_eq!(expiry, 1_000 + LIFETIME_S);
        assert!(t.verify(&tok, "cam", 1_000));
        assert!(t.verify(&tok, "cam", expiry - 1));
        assert!(!t.verify(&tok, "cam", expiry), "expired");
        assert!(!t.verify(&tok, "cam2", 1_000), "another video");
        assert!(!ContentTokens::new("other-api-token").verify(&tok, "cam", 1_000), "another API token");
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let t = ContentTokens::new("api-token");
        let (tok, expiry) = t.issue("cam", 1_000);
        let tag = tok.split_once('.').map(|(_, tag)| tag).unwrap_or_default();
        // A later expiry with the old signature.
        assert!(!t.verify(&format!("{}.{tag}", expiry + 3600), "cam", 1_000));
        for bad in ["", ".", "x.y", "123", &format!("{expiry}."), &format!("{expiry}.{tag}x"), "-1.AAAA"] {
            assert!(!t.verify(bad, "cam", 1_000), "{bad}");
        }
    }
}
