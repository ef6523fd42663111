//! `RtspSource`: the camera a live pipeline reads.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::super::catalogue::strip_type_prefix;
use super::super::config::Stage;
use super::super::error::{TopologyError, shown};
use super::super::json;
use crate::secrets::redact_url;

/// Settings of an `RtspSource`. `Debug` hides the password and any `user:password@` in the
/// URL, so logging a configuration cannot leak camera credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspSourceConfig {
    /// `endpoint.url`: an `rtsp://` or `rtsps://` URL.
    pub url: String,
    /// From `UsernamePasswordCredentials`; empty means none.
    pub username: Option<String>,
    /// From `UsernamePasswordCredentials`; empty means none.
    pub password: Option<String>,
    /// How RTP travels.
    pub transport: RtspTransport,
}

impl std::fmt::Debug for RtspSourceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtspSourceConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| super::super::SECRET_MASK))
            .field("transport", &self.transport)
            .finish()
    }
}

/// RTSP transport. AVA allowed `tcp` (interleaved, the default) and `http` (tunnelled);
/// openva also accepts `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtspTransport {
    /// RTP interleaved on the RTSP TCP connection.
    Tcp,
    /// RTP over UDP (openva extension).
    Udp,
    /// RTSP tunnelled in HTTP.
    Http,
}

pub(in crate::topology) fn build(
    node: &str,
    obj: &Map<String, Value>,
    stage: Stage,
) -> Result<RtspSourceConfig, TopologyError> {
    let what = |p: &str| format!("node '{node}' (RtspSource): {p}");
    let missing = |p: &str| TopologyError::module(format!("{} is missing", what(p)));
    let endpoint = json::opt_object(obj, "endpoint", || what("endpoint"))?.ok_or_else(|| missing("endpoint"))?;
    let url = json::opt_scalar(endpoint, "url", || what("endpoint.url"))?.ok_or_else(|| missing("endpoint.url"))?;
    if let Some(u) = stage.literal(Some(url.clone())) {
        check_rtsp_url(&u, &what("endpoint.url"))?;
    }
    let (mut username, mut password) = (None, None);
    if let Some(creds) = json::opt_object(endpoint, "credentials", || what("endpoint.credentials"))? {
        let t = json::opt_scalar(creds, "@type", || what("endpoint.credentials.@type"))?;
        if let Some(t) = stage.literal(t)
            && !strip_type_prefix(&t).is_some_and(|b| b.eq_ignore_ascii_case("UsernamePasswordCredentials"))
        {
            return Err(TopologyError::module(format!(
                "{} '{}' is not supported; use #Microsoft.VideoAnalyzer.UsernamePasswordCredentials",
                what("endpoint.credentials.@type"),
                shown(&t)
            )));
        }
        let non_empty = |v: Option<Cow<'_, str>>| v.filter(|s| !s.is_empty()).map(Cow::into_owned);
        username = non_empty(json::opt_scalar(creds, "username", || what("endpoint.credentials.username"))?);
        password = non_empty(json::opt_scalar(creds, "password", || what("endpoint.credentials.password"))?);
    }
    let transport_raw = json::opt_scalar(obj, "transport", || what("transport"))?;
    let transport = match stage.literal(transport_raw) {
        None => RtspTransport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => RtspTransport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("udp") => RtspTransport::Udp,
        Some(t) if t.eq_ignore_ascii_case("http") => RtspTransport::Http,
        Some(t) => {
            return Err(TopologyError::module(format!(
                "{} '{}' must be tcp or http (openva also accepts udp)",
                what("transport"),
                shown(&t)
            )));
        }
    };
    Ok(RtspSourceConfig { url: url.into_owned(), username, password, transport })
}

/// An RTSP URL must parse, have a host, and use `rtsp` or `rtsps`. Messages show the URL with
/// its user information hidden, as it may hold a password.
fn check_rtsp_url(url: &str, what: &str) -> Result<(), TopologyError> {
    let problem = match url::Url::parse(url) {
        Err(e) => e.to_string(),
        Ok(u) if !matches!(u.scheme(), "rtsp" | "rtsps") => "the scheme must be rtsp or rtsps".to_owned(),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => "it has no host".to_owned(),
        Ok(_) => return Ok(()),
    };
    Err(TopologyError::module(format!("{what} '{}' is not a valid RTSP URL: {problem}", shown(&redact_url(url)))))
}
