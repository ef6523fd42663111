//! The simulated camera's one encoder: paints and encodes frames in real time on its own thread
//! and fans them out to every client (N clients never cost N encoders).

use super::painter;
use crate::codec::{self, Encoder};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Picture and rate settings.
#[derive(Clone, Debug)]
pub struct EncoderSettings {
    /// Width in pixels (even, ≥ 640).
    pub width: usize,
    /// Height in pixels (even).
    pub height: usize,
    /// Frames per second.
    pub fps: u32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// Target bit rate.
    pub bitrate: u32,
    /// Still and moving stretches, for event-based recording: `None` moves all the time.
    pub motion: Option<MotionSchedule>,
}

/// A scene that alternates: `still_s` seconds frozen (the whole picture, its frame stamp
/// included, stays as it was), then `moving_s` seconds moving, repeating. The phase is the
/// wall clock's (moving when `unix seconds mod (still + moving) >= still`), so a test knows
/// when motion happens without asking the camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MotionSchedule {
    /// Seconds of a still scene.
    pub still_s: u32,
    /// Seconds of motion.
    pub moving_s: u32,
}

impl MotionSchedule {
    /// Whether the scene moves at `t_ms` (ms since the epoch).
    pub fn moving(&self, t_ms: i64) -> bool {
        let period = i64::from(self.still_s + self.moving_s).max(1);
        (t_ms / 1000).rem_euclid(period) >= i64::from(self.still_s)
    }
}

/// One encoded frame, shared by all clients.
#[derive(Debug)]
pub struct EncodedFrame {
    /// Frame number since the camera started.
    pub n: u64,
    /// Capture time (ms since the epoch), also painted into the frame stamp.
    pub t_ms: i64,
    /// IDR frame.
    pub key: bool,
    /// NAL units without start codes.
    pub nals: Vec<Bytes>,
}

/// Handle to the running encoder.
pub struct Camera {
    /// Settings in use.
    pub settings: EncoderSettings,
    /// Sequence and picture parameter sets (for the SDP).
    pub sps: Bytes,
    /// Picture parameter set.
    pub pps: Bytes,
    frames: broadcast::Sender<Arc<EncodedFrame>>,
    want_idr: Arc<AtomicBool>,
}

/// Why the camera could not start.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// Bad settings.
    #[error("invalid camera settings: {0}")]
    Settings(String),
    /// openh264 failed.
    #[error("H.264 encoder: {0}")]
    Encoder(String),
}

impl Camera {
    /// Starts the encoder thread; returns once the first IDR (and so SPS/PPS) exists.
    pub fn start(settings: EncoderSettings) -> Result<Arc<Camera>, CameraError> {
        let s = &settings;
        if s.width < 640 || s.width % 2 == 1 || s.height < 64 || s.height % 2 == 1 || s.width > 4096 || s.height > 2304
        {
            return Err(CameraError::Settings(format!(
                "size {}x{}: width must be even and 640-4096, height even and 64-2304",
                s.width, s.height
            )));
        }
        if !(1..=120).contains(&s.fps) || s.gop == 0 || s.bitrate < 10_000 {
            return Err(CameraError::Settings("fps must be 1-120, gop ≥ 1, bitrate ≥ 10000".into()));
        }
        // The host's one encoder (`codec`), as plugins and re-encoding exports use it.
        let mut enc = Encoder::new(&codec::EncoderSettings {
            bitrate: s.bitrate,
            fps: s.fps as f32,
            gop: s.gop,
            threads: 1,
            fast: false,
        })
        .map_err(|e| CameraError::Encoder(e.to_string()))?;
        let (tx, _) = broadcast::channel(512);
        let want_idr = Arc::new(AtomicBool::new(false));
        let mut painter = painter::Frame::new(s.width, s.height);
        // Encode frame 0 here to learn SPS/PPS before anyone connects.
        let start_ms = crate::time::Time90k::now().as_millis();
        let start = Instant::now();
        let motion = s.motion;
        let first = encode(&mut enc, &mut painter, motion, 0, start_ms)?;
        let sps = first.nals.iter().find(|n| n.first().map(|b| b & 0x1f) == Some(7)).cloned();
        let pps = first.nals.iter().find(|n| n.first().map(|b| b & 0x1f) == Some(8)).cloned();
        let (Some(sps), Some(pps)) = (sps, pps) else {
            return Err(CameraError::Encoder("first frame carried no SPS/PPS".into()));
        };
        let cam =
            Arc::new(Camera { settings: settings.clone(), sps, pps, frames: tx.clone(), want_idr: want_idr.clone() });
        let _ = tx.send(Arc::new(first));
        let fps = s.fps;
        std::thread::Builder::new()
            .name("sim-encoder".into())
            .spawn(move || {
                let mut n = 1u64;
                loop {
                    let due = start + Duration::from_nanos(n * 1_000_000_000 / u64::from(fps));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    // A live camera never sends the past: if the encoder is more than a second
                    // late (machine overloaded, process stopped, even mid-sleep), skip to now.
                    let now_n = start.elapsed().as_nanos() as u64 * u64::from(fps) / 1_000_000_000;
                    if now_n > n + u64::from(fps) {
                        tracing::warn!("simulated camera fell {} frames behind; skipping them", now_n - n);
                        n = now_n;
                    }
                    if want_idr.swap(false, Ordering::AcqRel) {
                        enc.force_idr();
                    }
                    let t_ms = start_ms + (n * 1000 / u64::from(fps)) as i64;
                    match encode(&mut enc, &mut painter, motion, n, t_ms) {
                        Ok(f) => {
                            let _ = tx.send(Arc::new(f));
                        }
                        Err(e) => {
                            tracing::error!("simulated camera stopped: {e}");
                            return;
                        }
                    }
                    n += 1;
                }
            })
            .map_err(|e| CameraError::Encoder(e.to_string()))?;
        Ok(cam)
    }

    /// Subscribes to the frames that follow.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EncodedFrame>> {
        self.frames.subscribe()
    }

    /// Asks for the next frame to be an IDR, so a new client starts at once.
    pub fn request_idr(&self) {
        self.want_idr.store(true, Ordering::Release);
    }
}

/// Paints frame `n` and encodes it; the NAL units as RTP carries them (SPS and PPS in band
/// before each IDR, as a camera sends them).
fn encode(
    enc: &mut Encoder,
    p: &mut painter::Frame,
    motion: Option<MotionSchedule>,
    n: u64,
    t_ms: i64,
) -> Result<EncodedFrame, CameraError> {
    if n == 0 || motion.is_none_or(|m| m.moving(t_ms)) {
        p.paint(n, t_ms);
    }
    let e = enc.encode(&p.pic).map_err(|e| CameraError::Encoder(e.to_string()))?;
    let mut nals = Vec::new();
    if let Some((sps, pps)) = e.params {
        nals.push(Bytes::from(sps));
        nals.push(Bytes::from(pps));
    }
    for nal in codec::nal_units(&e.sample) {
        nals.push(Bytes::copy_from_slice(nal.map_err(|e| CameraError::Encoder(e.to_string()))?));
    }
    Ok(EncodedFrame { n, t_ms, key: e.key, nals })
}
