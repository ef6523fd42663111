//! Browsers can't be turned against the host. Every web page a user opens can send requests to
//! the host (a "simple" cross-site POST needs no CORS preflight), and a page on a name that
//! rebinds to 127.0.0.1 can even read the replies. So, for every route:
//!
//! - **`Host`** must be an IP address (a rebinding attack needs a name), `localhost`, this
//!   machine's own name, or a name given with `--allowed-host`; else `421 MisdirectedRequest`.
//! - **Requests that change something** (any method but GET, HEAD, OPTIONS) are refused with
//!   `403 CrossSiteRequest` when the browser says they come from another site
//!   (`Sec-Fetch-Site: cross-site`/`same-site`, or an `Origin` other than the host's own);
//!   clients that are not browsers send neither and are not affected.
//! - **A body is JSON**: a request that changes something and declares a body must say
//!   `Content-Type: application/json` (a cross-site form or `text/plain` post cannot), else
//!   `415 UnsupportedMediaType`.
//!
//! CORS stays closed: no route answers with `Access-Control-Allow-*`. See docs/api.md,
//! "Browsers".

use super::ApiState;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// The names (besides IP addresses and `localhost`) the host answers to, lower case.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// `names` from `--allowed-host`, plus this machine's own name (`/etc/hostname`) and its
    /// `.local` form: names an attacker's DNS cannot hand out for this machine.
    pub fn new(names: &[String]) -> Self {
        let mut v: Vec<String> = names.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()).collect();
        if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
            let h = h.trim().to_ascii_lowercase();
            if !h.is_empty() {
                v.push(format!("{h}.local"));
                v.push(h);
            }
        }
        v.retain(|n| !n.is_empty());
        AllowedHosts(v)
    }

    fn allows(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost" || name.ends_with(".localhost") || self.0.contains(&name)
    }
}

/// The host part of a `Host` header or an origin's authority (`name`, `1.2.3.4`, `[::1]`,
/// each with an optional `:port`), without the port.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The authority the request was sent to (HTTP/1.1 `Host`, or HTTP/2's `:authority`).
fn authority(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
}

fn check_host(allowed: &AllowedHosts, authority: Option<&str>) -> Result<(), ApiError> {
    // HTTP/1.0 without Host: not a browser (browsers always send it).
    let Some(authority) = authority else { return Ok(()) };
    let host = host_part(authority.trim());
    if host.parse::<IpAddr>().is_ok() || allowed.allows(host) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "MisdirectedRequest",
        format!(
            "this host answers to its IP addresses, localhost and the names given with --allowed-host; '{}' is none \
             of them",
            host.chars().take(100).collect::<String>()
        ),
    ))
}

/// Whether the browser says this request comes from another site than `authority`.
fn cross_site(headers: &HeaderMap, authority: Option<&str>) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site.trim(), "same-origin" | "none")
    {
        return Some(format!("Sec-Fetch-Site: {}", site.trim()));
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("null").trim();
    // `scheme://authority`; an opaque origin ("null", a sandboxed page or a file) is never ours.
    let Some((_, origin_authority)) = origin.split_once("://") else {
        return Some(format!("Origin: {origin}"));
    };
    let same =
        authority.is_some_and(|a| with_default_port(origin_authority).eq_ignore_ascii_case(&with_default_port(a)));
    (!same).then(|| format!("Origin: {}", origin.chars().take(100).collect::<String>()))
}

/// `authority` with `:80` when it names no port (the host is plain HTTP).
fn with_default_port(authority: &str) -> String {
    let a = authority.trim().trim_end_matches('/');
    let has_port = match a.strip_prefix('[') {
        Some(rest) => rest.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
        None => a.contains(':'),
    };
    if has_port { a.to_owned() } else { format!("{a}:80") }
}

/// Whether the request declares a body that is not JSON: a content type other than JSON, or
/// a length above zero without a content type. (A chunked body without a type may be empty,
/// as some clients send for a bare POST; the JSON parser refuses it if it is not.)
fn not_json_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::CONTENT_TYPE) {
        return !is_json(headers);
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().parse::<u64>().map_or(true, |n| n > 0))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// The checks of this module, in front of every route.
pub(super) async fn guard(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let authority = authority(&req);
    if let Err(e) = check_host(&st.allowed_hosts, authority.as_deref()) {
        return e.into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(why) = cross_site(req.headers(), authority.as_deref()) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "CrossSiteRequest",
                format!("requests that change something are refused from other sites ({why})"),
            )
            .into_response();
        }
        if not_json_body(req.headers()) {
            return ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "a request body must be JSON, sent with 'Content-Type: application/json'",
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts_are_addresses_localhost_or_named() {
        let a = AllowedHosts(vec!["nvr.example".into()]);
        for ok in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "10.0.0.5",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost",
            "nvr.example:80",
            "nvr.example.",
        ] {
            assert!(check_host(&a, Some(ok)).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8080", "127.0.0.1.nip.io:8080", "nvr.example.evil"] {
            assert!(check_host(&a, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cross_site_by_origin_or_fetch_metadata() {
        let host = Some("127.0.0.1:8080");
        assert_eq!(cross_site(&headers(&[]), host), None, "curl, openva call");
        assert_eq!(cross_site(&headers(&[("origin", "http://127.0.0.1:8080")]), host), None);
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "same-origin")]), host), None);
        assert_eq!(cross_site(&headers(&[("origin", "http://localhost")]), Some("localhost:80")), None);
        assert!(cross_site(&headers(&[("origin", "http://evil.example")]), host).is_some());
        assert!(cross_site(&headers(&[("origin", "null")]), host).is_some());
        assert!(cross_site(&headers(&[("origin", "http://127.0.0.1:9999")]), host).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")]), host).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")]), host).is_some());
    }

    #[test]
    fn bodies_are_json() {
        assert!(is_json(&headers(&[("content-type", "application/json; charset=utf-8")])));
        assert!(is_json(&headers(&[("content-type", "application/merge-patch+json")])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[("content-type", "application/x-www-form-urlencoded")])));
        assert!(!not_json_body(&headers(&[("content-length", "0")])));
        assert!(not_json_body(&headers(&[("content-length", "12")])));
        assert!(!not_json_body(&headers(&[("transfer-encoding", "chunked")])));
        assert!(not_json_body(&headers(&[("transfer-encoding", "chunked"), ("content-type", "text/plain")])));
        assert!(!not_json_body(&headers(&[("content-length", "12"), ("content-type", "application/json")])));
    }
}
