//! An RTSP camera through `retina`: connect, pick the video stream (H.264 or H.265) and the
//! audio stream (AAC or G.711) if any, and yield access units with decode and presentation
//! times (RTP, 90 kHz for video; the audio clock for audio), local arrival time and the codec
//! configuration when it changes.
//!
//! Video frames pass through a [`DecodeClock`]: RTP gives presentation times, MP4 needs decode
//! times too (B-frames). Audio times are put on the video's timeline (`docs/archive.md`,
//! "Audio").

use super::reorder::{DecodeClock, Timed, h264_reorder_depth, h265_reorder_depth};
use crate::time::{Time90k, duration_to_ticks};
use futures::StreamExt;
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, Session, SessionOptions, SetupOptions, Transport,
};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for the camera to answer a request or send the next frame before giving up
/// on the session (the recorder then reconnects).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Largest access unit accepted (a 4K keyframe at a very high bit rate is a few MB). A bigger
/// one is a broken or hostile camera; the session ends rather than buffering it.
pub const MAX_FRAME_BYTES: usize = 32 << 20;

/// Audio held while the first video frame is awaited (so its time can be put on the video's
/// timeline), at most.
const MAX_EARLY_AUDIO: usize = 512;

/// A step of the host's wall clock larger than this during a session (NTP setting the clock
/// after a boot without a real-time clock, an operator) is followed: from the next keyframe on,
/// frames are dated by the new clock, in a new run (`docs/archive.md`, "Clock steps").
pub const MAX_CLOCK_STEP_90K: i64 = crate::time::TICKS_PER_SEC;

/// Beyond this disagreement between the RTSP session's common timeline (`RTP-Info`) and the
/// arrival times of audio and video, the camera's timeline is not trusted and audio is placed
/// by arrival (a camera that sends no `rtptime`, or wrong ones).
const MAX_NPT_DISAGREEMENT_90K: i64 = crate::time::TICKS_PER_SEC;

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
    /// The camera offers no video openva records (H.264 or H.265).
    #[error("camera {url} offers no H.264 or H.265 video stream (it offers: {found})")]
    NoVideo {
        /// Redacted URL.
        url: String,
        /// What it offered.
        found: String,
    },
    /// The camera sent something that cannot be a frame (too large, undecodable parameters).
    #[error("camera {url} sent a bad stream: {what}")]
    BadStream {
        /// Redacted URL.
        url: String,
        /// What was wrong.
        what: String,
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
        matches!(self, IngestError::BadUrl(..) | IngestError::Unauthorized { .. } | IngestError::NoVideo { .. })
    }
}

/// The codec configuration of the video stream.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoParams {
    /// Complete `avc1`/`hvc1` box (with `avcC`/`hvcC`), as retina builds it.
    pub sample_entry: Vec<u8>,
    /// Display width.
    pub width: u32,
    /// Display height.
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.64001F`, `hvc1.1.6.L93.B0`.
    pub codec: String,
    /// Frames per second the SPS declares, if it does.
    pub frame_rate: Option<f64>,
    /// How many frames may be shown after a frame decoded later (B-frames), as the SPS
    /// declares it; `None` when it does not say.
    pub reorder_depth: Option<usize>,
}

/// One video access unit from the camera.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// Decode time in 90 kHz ticks on the session's timeline (strictly increasing).
    pub media_90k: i64,
    /// Presentation minus decode time (B-frames), 90 kHz.
    pub cts: i32,
    /// Local wall time at which the frame's first packet arrived.
    pub received: Time90k,
    /// Random access point: a keyframe (IDR, CRA, recovery point) that holds its first slice.
    pub key: bool,
    /// 4-byte length-prefixed NAL units (MP4 sample format).
    pub data: Vec<u8>,
    /// Set on the first frame and whenever the configuration changes.
    pub params: Option<VideoParams>,
    /// The host's wall clock stepped since the last keyframe: this keyframe (and what follows)
    /// is dated by the new clock, so it starts a new run.
    pub clock_stepped: bool,
    /// RTP packets lost just before this frame (retina's count). The frame is recorded as
    /// received, but its picture, and every later one up to the next keyframe, may be damaged:
    /// a decoder for analysis waits for that keyframe instead.
    pub loss: u16,
}

impl AccessUnit {
    /// Presentation time, 90 kHz on the session's timeline.
    pub fn pts_90k(&self) -> i64 {
        self.media_90k + i64::from(self.cts)
    }
}

/// The audio codecs a camera may send that openva records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC (RTP `MPEG4-GENERIC`): stored as sent; the `mp4a` sample entry retina builds.
    Aac {
        /// The `mp4a` box (with `esds`).
        sample_entry: Vec<u8>,
    },
    /// G.711 µ-law (RTP `PCMU`): one byte per sample.
    Pcmu,
    /// G.711 A-law (RTP `PCMA`).
    Pcma,
}

/// The audio stream's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioParams {
    /// The codec and what describes it.
    pub codec: AudioCodec,
    /// The RTP clock: samples per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// The codec as the camera names it (`MPEG4-GENERIC`, `PCMU`), for events and `mediaInfo`.
    pub name: String,
}

/// One audio frame (one or more samples) from the camera.
#[derive(Clone, Debug)]
pub struct AudioUnit {
    /// Time of its first sample, in the audio clock, on the video's timeline (the same origin
    /// as [`AccessUnit::media_90k`], scaled to the audio rate).
    pub media: i64,
    /// Its length in samples.
    pub samples: u32,
    /// Local wall time at which it arrived.
    pub received: Time90k,
    /// The frame (raw AAC, or G.711 bytes).
    pub data: Vec<u8>,
}

/// What a session yields.
#[derive(Clone, Debug)]
pub enum Media {
    /// A video access unit, in decode order.
    Video(AccessUnit),
    /// An audio frame.
    Audio(AudioUnit),
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
    /// Whether to receive the camera's audio (AVA's `outputSelectors` may exclude it).
    pub audio: bool,
}

/// Removes credentials from a URL so it can be logged and shown (see [`crate::secrets`]).
pub use crate::secrets::redact_url as redact;

/// A playing session.
pub struct Source {
    url: String,
    sdp: String,
    demuxed: retina::client::Demuxed,
    video_stream: usize,
    /// The video is H.265 (2-byte NAL headers), from the SDP: known before the first frame.
    hevc: bool,
    audio: Option<AudioStream>,
    /// An audio stream the camera offers that openva does not record (reported once).
    unsupported_audio: Option<String>,
    last_params: Option<VideoParams>,
    clock: DecodeClock<Held>,
    /// Output waiting to be returned (frames released together, audio held for the first video).
    ready: VecDeque<Media>,
    /// The least-delayed anchors `received − media` of video and of audio (90 kHz), for placing
    /// audio when the camera's `RTP-Info` cannot be trusted.
    video_anchor: Option<i64>,
    /// How far the host's wall clock stepped (once seen, or confirmed), waiting for the next
    /// keyframe to be followed.
    step: Option<StepSeen>,
    wall0: Time90k,
    mono0: Instant,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

/// A step of the host's wall clock, seen on one frame or confirmed by the next.
#[derive(Copy, Clone, Debug)]
enum StepSeen {
    Once(i64),
    Twice(i64),
}

/// A video frame waiting in the [`DecodeClock`] for its decode time.
struct Held {
    received: Time90k,
    key: bool,
    data: Vec<u8>,
    params: Option<VideoParams>,
    clock_stepped: bool,
    loss: u16,
}

/// The audio stream being received.
struct AudioStream {
    index: usize,
    params: AudioParams,
    /// Audio clock ticks added to put audio on the video's timeline; decided at the first audio
    /// frame after the first video frame.
    offset: Option<i64>,
    /// Audio that arrived before the first video frame.
    early: VecDeque<AudioUnit>,
    anchor: Option<i64>,
}

fn rtsp_err(url: &str, e: retina::Error) -> IngestError {
    if e.status_code() == Some(401) {
        IngestError::Unauthorized { url: url.to_owned() }
    } else {
        IngestError::Rtsp { url: url.to_owned(), message: e.to_string(), status: e.status_code() }
    }
}

/// The codecs openva records, by RTP encoding name (retina gives them lower-case).
fn recorded_video(s: &retina::client::Stream) -> bool {
    s.media() == "video" && matches!(s.encoding_name().to_ascii_lowercase().as_str(), "h264" | "h265")
}

fn recorded_audio(s: &retina::client::Stream) -> bool {
    s.media() == "audio" && matches!(s.encoding_name().to_ascii_lowercase().as_str(), "mpeg4-generic" | "pcmu" | "pcma")
}

impl Source {
    /// Connects, sets up the video stream (and the audio stream, when wanted and recordable)
    /// and starts playing.
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
        let offered = || {
            session
                .streams()
                .iter()
                .map(|s| format!("{}/{}", s.media(), s.encoding_name().to_ascii_uppercase()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let video_stream = session
            .streams()
            .iter()
            .position(recorded_video)
            .ok_or_else(|| IngestError::NoVideo { url: shown.clone(), found: offered() })?;
        let hevc = session.streams().get(video_stream).is_some_and(|s| s.encoding_name().eq_ignore_ascii_case("h265"));
        let audio_stream = if opts.audio { session.streams().iter().position(recorded_audio) } else { None };
        let unsupported_audio = match audio_stream {
            None if opts.audio => session
                .streams()
                .iter()
                .find(|s| s.media() == "audio")
                .map(|s| format!("audio/{}", s.encoding_name().to_ascii_uppercase())),
            _ => None,
        };
        let sdp = String::from_utf8_lossy(session.sdp()).into_owned();
        let transport =
            || if opts.udp { Transport::Udp(Default::default()) } else { Transport::Tcp(Default::default()) };
        for stream in std::iter::once(video_stream).chain(audio_stream) {
            tokio::time::timeout(
                TIMEOUT,
                session.setup(stream, SetupOptions::default().transport(transport()).frame_format(FrameFormat::MP4)),
            )
            .await
            .map_err(|_| timeout("SETUP"))?
            .map_err(|e| rtsp_err(&shown, e))?;
        }
        let audio = match audio_stream {
            Some(index) => {
                let s = &session.streams()[index];
                let name = s.encoding_name().to_ascii_uppercase();
                let rate = s.clock_rate_hz();
                let channels = s.channels().map_or(1, |c| c.get());
                let codec = match name.as_str() {
                    "PCMU" => Some(AudioCodec::Pcmu),
                    "PCMA" => Some(AudioCodec::Pcma),
                    _ => match s.parameters() {
                        Some(ParametersRef::Audio(a)) => {
                            a.mp4_sample_entry().build().ok().map(|sample_entry| AudioCodec::Aac { sample_entry })
                        }
                        _ => None,
                    },
                };
                codec.map(|codec| AudioStream {
                    index,
                    params: AudioParams { codec, rate, channels, name },
                    offset: None,
                    early: VecDeque::new(),
                    anchor: None,
                })
            }
            None => None,
        };
        // With several streams, each stream's RTP time is put on the session's common timeline
        // from `RTP-Info` when the camera sends it for all of them (otherwise from the first
        // packet of each, checked against arrival times later).
        let play = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
        let playing = tokio::time::timeout(TIMEOUT, session.play(play))
            .await
            .map_err(|_| timeout("PLAY"))?
            .map_err(|e| rtsp_err(&shown, e))?;
        let demuxed = playing.demuxed().map_err(|e| rtsp_err(&shown, e))?;
        Ok(Source {
            url: shown,
            sdp,
            demuxed,
            video_stream,
            hevc,
            unsupported_audio: unsupported_audio.or_else(|| {
                audio_stream.filter(|_| audio.is_none()).map(|_| "audio with unreadable parameters".to_owned())
            }),
            audio,
            last_params: None,
            clock: DecodeClock::new(0),
            ready: VecDeque::new(),
            video_anchor: None,
            step: None,
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

    /// The audio stream being recorded, if any.
    pub fn audio(&self) -> Option<&AudioParams> {
        self.audio.as_ref().map(|a| &a.params)
    }

    /// An audio stream the camera offers that is not recorded (an unsupported codec), to be
    /// reported once.
    pub fn unsupported_audio(&self) -> Option<&str> {
        self.unsupported_audio.as_deref()
    }

    /// How many times the video showed more B-frame reordering than its SPS declared.
    pub fn reorder_surprises(&self) -> u32 {
        self.clock.grown()
    }

    /// The next access unit or audio frame; `Ok(None)` when the camera ended the session (after
    /// the frames held back for their decode times).
    pub async fn next(&mut self) -> Result<Option<Media>, IngestError> {
        // One timer, re-armed per item, rather than a new timeout future each time.
        self.deadline.as_mut().reset(tokio::time::Instant::now() + TIMEOUT);
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Ok(Some(m));
            }
            let item = tokio::select! {
                i = self.demuxed.next() => i,
                _ = self.deadline.as_mut() => {
                    return Err(IngestError::Timeout { url: self.url.clone(), secs: TIMEOUT.as_secs() });
                }
            };
            match item {
                None => {
                    // The session ended: release the frames held back for their decode times.
                    let held = self.clock.drain();
                    self.release(held);
                    if self.ready.is_empty() {
                        return Ok(None);
                    }
                }
                Some(Err(e)) => return Err(rtsp_err(&self.url, e)),
                Some(Ok(CodecItem::VideoFrame(f))) if f.stream_id() == self.video_stream => self.video(f)?,
                Some(Ok(CodecItem::AudioFrame(f))) if self.audio.as_ref().is_some_and(|a| a.index == f.stream_id()) => {
                    self.audio_frame(f)?
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Ends the session's media: the frames still held back for their decode times, and audio
    /// still waiting, in order. Call when stopping or after an error, so nothing received is
    /// lost.
    pub fn finish(&mut self) -> Vec<Media> {
        let held = self.clock.drain();
        self.release(held);
        self.ready.drain(..).collect()
    }

    /// How far the host's wall clock is now from the session's local time (which follows the
    /// monotonic clock from the wall clock at connect): a step of the wall clock since. `None`
    /// when the thread was held up between the readings (the difference would be that delay).
    fn clock_offset(&self) -> Option<i64> {
        let before = Time90k::now();
        let mono = Instant::now();
        let after = Time90k::now();
        if after.0 - before.0 > MAX_CLOCK_STEP_90K / 20 {
            return None;
        }
        Some((before.0 + after.0) / 2 - self.local(mono).0)
    }

    /// Local time = wall clock sampled at connect + monotonic time since: a wall-clock step
    /// during the session does not distort it (docs/archive.md, "Time").
    fn local(&self, at: Instant) -> Time90k {
        Time90k(self.wall0.0 + duration_to_ticks(at.saturating_duration_since(self.mono0)))
    }

    fn video(&mut self, frame: retina::codec::VideoFrame) -> Result<(), IngestError> {
        if frame.data().len() > MAX_FRAME_BYTES {
            return Err(IngestError::BadStream {
                url: self.url.clone(),
                what: format!("a frame of {} bytes (at most {MAX_FRAME_BYTES} are accepted)", frame.data().len()),
            });
        }
        // A camera with periodic intra refresh sends no IDR for minutes; its recovery points
        // are where decoding can begin, so the archive starts runs and segments there too.
        let hevc = self.hevc;
        // retina counts only IDR pictures as H.265 random access points; a CRA (or BLA), what
        // x265 and open-GOP cameras send at every keyframe after the first, is one too.
        // A keyframe without its first slice (this session began between two of its slices,
        // on a camera stream shared with earlier clients) decodes to a picture missing that
        // part, and so does every frame up to the next keyframe: it is no place to start a run
        // or to begin decoding.
        let key = (frame.is_random_access_point()
            || crate::codec::is_recovery_point(frame.data(), hevc)
            || (hevc && crate::codec::is_hevc_irap(frame.data())))
            && crate::codec::has_first_slice(frame.data(), hevc);
        // The wall clock is sampled once per session and followed by the monotonic clock (a
        // step does not distort frames); a step is noticed here and followed at a keyframe.
        if let Some(step) = self.clock_offset() {
            // Seen on two frames in a row (within 0.1 s of each other) before it is believed.
            self.step = match self.step {
                Some(StepSeen::Once(s)) if (s - step).abs() <= 9_000 => Some(StepSeen::Twice(step)),
                Some(StepSeen::Twice(s)) if (s - step).abs() <= 9_000 => Some(StepSeen::Twice(s)),
                _ if step.abs() > MAX_CLOCK_STEP_90K => Some(StepSeen::Once(step)),
                _ => None,
            };
        }
        let clock_stepped = key && matches!(self.step, Some(StepSeen::Twice(_)));
        if clock_stepped && let Some(StepSeen::Twice(step)) = self.step.take() {
            tracing::warn!(url = %self.url, secs = step as f64 / crate::time::TICKS_PER_SEC as f64, "the host's clock stepped; a new run follows it");
            self.wall0 = Time90k(self.wall0.0 + step);
            self.video_anchor = None;
        }
        let received = self.local(frame.start_ctx().received());
        let loss = frame.loss();
        let params = if frame.has_new_parameters() || self.last_params.is_none() {
            let p = self.params();
            if p.is_some() && p != self.last_params {
                self.last_params.clone_from(&p);
                self.clock.set_depth(p.as_ref().and_then(|p| p.reorder_depth).unwrap_or(0));
                p
            } else {
                None
            }
        } else {
            None
        };
        let ts = frame.timestamp();
        let pts = crate::time::rescale(ts.elapsed(), i64::from(ts.clock_rate().get()), crate::time::TICKS_PER_SEC);
        let anchor = received.0 - pts;
        self.video_anchor = Some(self.video_anchor.map_or(anchor, |a| a.min(anchor)));
        tracing::trace!(pts, key, bytes = frame.data().len(), "video frame");
        let mut timed = Vec::new();
        self.clock.push(Held { received, key, data: frame.into_data(), params, clock_stepped, loss }, pts, &mut timed);
        self.release(timed);
        // Audio that waited for the first video frame can be placed now.
        if let Some(a) = self.audio.as_mut()
            && !a.early.is_empty()
        {
            let early: Vec<AudioUnit> = a.early.drain(..).collect();
            for u in early {
                self.place_audio(u);
            }
        }
        Ok(())
    }

    fn release(&mut self, timed: Vec<Timed<Held>>) {
        for t in timed {
            let Held { received, key, data, params, clock_stepped, loss } = t.frame;
            self.ready.push_back(Media::Video(AccessUnit {
                media_90k: t.dts,
                cts: i32::try_from(t.cts).unwrap_or(0),
                received,
                key,
                data,
                params,
                clock_stepped,
                loss,
            }));
        }
    }

    fn audio_frame(&mut self, frame: retina::codec::AudioFrame) -> Result<(), IngestError> {
        if frame.data().len() > MAX_FRAME_BYTES {
            return Err(IngestError::BadStream {
                url: self.url.clone(),
                what: format!("an audio frame of {} bytes", frame.data().len()),
            });
        }
        let received = self.local(frame.ctx().received());
        let unit = AudioUnit {
            media: frame.timestamp().elapsed(),
            samples: frame.frame_length().get(),
            received,
            data: frame.data().to_vec(),
        };
        let Some(a) = self.audio.as_mut() else { return Ok(()) };
        let anchor =
            received.0 - crate::time::rescale(unit.media, i64::from(a.params.rate), crate::time::TICKS_PER_SEC);
        a.anchor = Some(a.anchor.map_or(anchor, |x| x.min(anchor)));
        if self.video_anchor.is_none() {
            if a.early.len() >= MAX_EARLY_AUDIO {
                a.early.pop_front();
            }
            a.early.push_back(unit);
            return Ok(());
        }
        self.place_audio(unit);
        Ok(())
    }

    /// Puts an audio frame on the video's timeline and queues it.
    fn place_audio(&mut self, mut unit: AudioUnit) {
        let Some(a) = self.audio.as_mut() else { return };
        let offset = *a.offset.get_or_insert_with(|| {
            // If both streams' anchors agree with the session's timeline, keep it (exact, from
            // RTP-Info); otherwise place audio by when it arrived.
            let disagreement = a.anchor.zip(self.video_anchor).map_or(0, |(au, v)| au - v);
            if disagreement.abs() <= MAX_NPT_DISAGREEMENT_90K {
                0
            } else {
                tracing::warn!(
                    url = %self.url,
                    secs = disagreement as f64 / crate::time::TICKS_PER_SEC as f64,
                    "the camera's audio and video timelines disagree; placing audio by arrival time"
                );
                crate::time::rescale(disagreement, crate::time::TICKS_PER_SEC, i64::from(a.params.rate))
            }
        });
        unit.media += offset;
        self.ready.push_back(Media::Audio(unit));
    }

    /// The reorder depth the current SPS declares.
    fn reorder_depth(&self) -> Option<usize> {
        let stream = self.demuxed.streams().get(self.video_stream)?;
        match stream.parameters()? {
            ParametersRef::Video(v) => match v.codec_params() {
                VideoParametersCodec::H264 { sps, .. } => h264_reorder_depth(sps),
                VideoParametersCodec::H265 { sps, .. } => h265_reorder_depth(sps),
                _ => None,
            },
            _ => None,
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
                    frame_rate: v.frame_rate().filter(|(n, _)| *n > 0).map(|(n, d)| f64::from(d) / f64::from(n)),
                    reorder_depth: self.reorder_depth(),
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
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss"), "p@ss");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
