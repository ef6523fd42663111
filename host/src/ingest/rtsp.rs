//! An RTSP camera through `retina`: connect, pick the H.264 video stream, and yield access units
//! with media time (RTP, 90 kHz), local arrival time and the codec configuration when it changes.

use crate::time::{Time90k, duration_to_ticks};
use futures::StreamExt;
use retina::client::{Credentials, PlayOptions, Session, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for the camera to answer a request or send the next frame before giving up
/// on the session (the recorder then reconnects).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a camera could not be read. Each message names the camera's problem in one line.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The URL is not an RTSP URL.
    #[error("bad camera URL '{0}': {1}")]
    BadUrl(String, String),
    /// The camera refused the credentials (or wanted some).
    #[error("camera {url} refused the credentials (401 Unauthorized): check --user/--password")]
    Unauthorized {
        /// Redacted URL.
        url: String,
    },
    /// Any other RTSP or network failure.
    #[error("camera {url}: {message}")]
    Rtsp {
        /// Redacted URL.
        url: String,
        /// retina's description.
        message: String,
        /// The RTSP status the camera answered with, if it answered.
        status: Option<u16>,
    },
    /// The camera offers no H.264 video.
    #[error("camera {url} has no H.264 video stream (found: {found})")]
    NoH264 {
        /// Redacted URL.
        url: String,
        /// What it offered.
        found: String,
    },
    /// Nothing arrived in time.
    #[error("camera {url} sent nothing for {secs} s")]
    Timeout {
        /// Redacted URL.
        url: String,
        /// Seconds waited.
        secs: u64,
    },
}

impl IngestError {
    /// The RTSP status code behind the error, when the camera answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            IngestError::Unauthorized { .. } => Some(401),
            IngestError::Rtsp { status, .. } => *status,
            _ => None,
        }
    }

    /// Whether retrying cannot help (bad URL, bad credentials, wrong codec).
    pub fn is_permanent(&self) -> bool {
        matches!(self, IngestError::BadUrl(..) | IngestError::Unauthorized { .. } | IngestError::NoH264 { .. })
    }
}

/// The codec configuration of the stream: the `avc1` sample entry and display size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoParams {
    /// Complete `avc1` box (with `avcC`), as retina builds it.
    pub sample_entry: Vec<u8>,
    /// Display width.
    pub width: u32,
    /// Display height.
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001F`.
    pub codec: String,
}

/// One access unit from the camera.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// RTP time in 90 kHz ticks since the start of the session (increasing).
    pub media_90k: i64,
    /// Local wall time at which the frame's first packet arrived.
    pub received: Time90k,
    /// Random access point.
    pub key: bool,
    /// 4-byte length-prefixed NAL units (MP4 sample format).
    pub data: Vec<u8>,
    /// Set on the first frame and whenever the configuration changes.
    pub params: Option<VideoParams>,
}

/// Options for connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceOptions {
    /// `rtsp://` URL (credentials may be in it, or given separately).
    pub url: String,
    /// User name, if the camera needs one.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// TCP interleaved (default) or UDP.
    pub udp: bool,
}

/// Removes credentials from a URL so it can be logged and shown.
pub fn redact(url: &str) -> String {
    // Everything between the scheme and the last '@' may be credentials: a password may hold
    // '/', ':' or '@' unescaped (`rtsp://admin:pa/ss@cam/x` parses with host "admin"), so no
    // URL parser's idea of the user info is trusted. Hiding too much beats leaking.
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    let tail = &rest[at + 1..];
    match scheme {
        Some(s) => format!("{s}://***@{tail}"),
        None => format!("***@{tail}"),
    }
}

/// A playing session.
pub struct Source {
    url: String,
    sdp: String,
    demuxed: retina::client::Demuxed,
    video_stream: usize,
    last_params: Option<VideoParams>,
    wall0: Time90k,
    mono0: Instant,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

fn rtsp_err(url: &str, e: retina::Error) -> IngestError {
    if e.status_code() == Some(401) {
        IngestError::Unauthorized { url: url.to_owned() }
    } else {
        IngestError::Rtsp { url: url.to_owned(), message: e.to_string(), status: e.status_code() }
    }
}

impl Source {
    /// Connects, sets up the H.264 stream and starts playing.
    pub async fn connect(opts: &SourceOptions) -> Result<Self, IngestError> {
        let shown = redact(&opts.url);
        let mut url = url::Url::parse(&opts.url).map_err(|e| IngestError::BadUrl(shown.clone(), e.to_string()))?;
        if url.scheme() != "rtsp" {
            return Err(IngestError::BadUrl(shown, "the scheme must be rtsp://".into()));
        }
        let mut user = opts.user.clone();
        let mut password = opts.password.clone();
        if !url.username().is_empty() {
            let decode = |s: &str| percent_decode(s);
            user.get_or_insert_with(|| decode(url.username()));
            password.get_or_insert_with(|| url.password().map(decode).unwrap_or_default());
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let creds = user.map(|username| Credentials { username, password: password.unwrap_or_default() });
        let timeout =
            |what: &'static str| IngestError::Timeout { url: format!("{shown} ({what})"), secs: TIMEOUT.as_secs() };
        let mut session = tokio::time::timeout(
            TIMEOUT,
            Session::describe(
                url,
                SessionOptions::default().creds(creds).user_agent(format!("openva/{}", env!("CARGO_PKG_VERSION"))),
            ),
        )
        .await
        .map_err(|_| timeout("DESCRIBE"))?
        .map_err(|e| rtsp_err(&shown, e))?;
        let video_stream = session
            .streams()
            .iter()
            .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
            .ok_or_else(|| IngestError::NoH264 {
                url: shown.clone(),
                found: session
                    .streams()
                    .iter()
                    .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let sdp = String::from_utf8_lossy(session.sdp()).into_owned();
        let transport = if opts.udp { Transport::Udp(Default::default()) } else { Transport::Tcp(Default::default()) };
        tokio::time::timeout(
            TIMEOUT,
            session.setup(video_stream, SetupOptions::default().transport(transport).frame_format(FrameFormat::MP4)),
        )
        .await
        .map_err(|_| timeout("SETUP"))?
        .map_err(|e| rtsp_err(&shown, e))?;
        let playing = tokio::time::timeout(TIMEOUT, session.play(PlayOptions::default()))
            .await
            .map_err(|_| timeout("PLAY"))?
            .map_err(|e| rtsp_err(&shown, e))?;
        let demuxed = playing.demuxed().map_err(|e| rtsp_err(&shown, e))?;
        Ok(Source {
            url: shown,
            sdp,
            demuxed,
            video_stream,
            last_params: None,
            wall0: Time90k::from_system(SystemTime::now()),
            mono0: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(TIMEOUT)),
        })
    }

    /// The camera's URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The session description the camera sent (AVA's MediaSessionEstablished event carries it).
    pub fn sdp(&self) -> &str {
        &self.sdp
    }

    /// The next video access unit; `Ok(None)` when the camera ended the session.
    pub async fn next(&mut self) -> Result<Option<AccessUnit>, IngestError> {
        // One timer, re-armed per frame, rather than a new timeout future each time.
        self.deadline.as_mut().reset(tokio::time::Instant::now() + TIMEOUT);
        loop {
            let item = tokio::select! {
                i = self.demuxed.next() => i,
                _ = self.deadline.as_mut() => {
                    return Err(IngestError::Timeout { url: self.url.clone(), secs: TIMEOUT.as_secs() });
                }
            };
            let frame = match item {
                None => return Ok(None),
                Some(Err(e)) => return Err(rtsp_err(&self.url, e)),
                Some(Ok(CodecItem::VideoFrame(f))) if f.stream_id() == self.video_stream => f,
                Some(Ok(_)) => continue,
            };
            // Local time = wall clock sampled at connect + monotonic time since: a wall-clock
            // step during the session does not distort it (docs/archive.md, "Time").
            let since = frame.start_ctx().received().saturating_duration_since(self.mono0);
            let received = Time90k(self.wall0.0 + duration_to_ticks(since));
            let params = if frame.has_new_parameters() || self.last_params.is_none() {
                let p = self.params();
                if p.is_some() && p != self.last_params {
                    self.last_params.clone_from(&p);
                    p
                } else {
                    None
                }
            } else {
                None
            };
            let ts = frame.timestamp();
            let media_90k = if ts.clock_rate().get() == 90_000 {
                ts.elapsed()
            } else {
                crate::time::rescale(ts.elapsed(), i64::from(ts.clock_rate().get()), 90_000)
            };
            return Ok(Some(AccessUnit {
                media_90k,
                received,
                key: frame.is_random_access_point(),
                data: frame.into_data(),
                params,
            }));
        }
    }

    fn params(&self) -> Option<VideoParams> {
        let stream = self.demuxed.streams().get(self.video_stream)?;
        match stream.parameters()? {
            ParametersRef::Video(v) => {
                let (width, height) = v.pixel_dimensions();
                Some(VideoParams {
                    sample_entry: v.mp4_sample_entry().build().ok()?,
                    width,
                    height,
                    codec: v.rfc6381_codec().to_owned(),
                })
            }
            _ => None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_credentials() {
        assert_eq!(redact("rtsp://admin:s3cret@10.0.0.1:554/x"), "rtsp://***@10.0.0.1:554/x");
        assert_eq!(redact("rtsp://10.0.0.1/x"), "rtsp://10.0.0.1/x");
        assert_eq!(redact("rtsp://admin:1234/abc@cam/x"), "rtsp://***@cam/x");
        assert_eq!(redact("rtsp://a:b@c@cam:554/x"), "rtsp://***@cam:554/x");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
