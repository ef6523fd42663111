//! The one decoder every pixel feature uses (previews, processors, re-encoding exports and jobs,
//! transcode-on-playback, `openva plugin run`), whatever the codec: libavcodec when the host is
//! built with it (H.264 with or without B-frames, H.265), else openh264 (H.264 without
//! B-frames only; other streams get [`CodecError::Unsupported`] naming what is missing).
//!
//! Callers feed samples in decode order with their presentation times and get pictures in
//! presentation order carrying those times; [`Decoder::flush`] gives the pictures a reordering
//! decoder still holds at the end. A sample that fails to decode is counted and the samples up
//! to the next keyframe are skipped (they would decode against a broken reference), so a
//! damaged stream costs a GOP, never the decoder.

use openh264::decoder::Decoder as H264Decoder;
use openh264::formats::YUVSource;

use super::{CodecError, I420, MAX_PICTURE_PIXELS, nal_units};
use crate::mp4::entry::{VideoCodec, parameter_sets, picture_size, video_codec};

/// Whether the build has libavcodec (the `ffmpeg` feature).
pub const HAVE_LIBAV: bool = cfg!(feature = "ffmpeg");

/// Whether the pictures of a recording with `sample_entry` can be decoded here; `b_frames`:
/// whether its frames are reordered (composition offsets). The error names what cannot be.
pub fn check_decodable(sample_entry: &[u8], b_frames: bool) -> Result<(), CodecError> {
    // A picture larger than any real camera's is a hostile or broken stream: decoding it would
    // allocate gigabytes. Recording it costs nothing; its pixels are refused.
    if let Some((w, h)) = picture_size(sample_entry)
        && (w == 0 || h == 0 || u64::from(w) * u64::from(h) > MAX_PICTURE_PIXELS)
    {
        return Err(CodecError::Unsupported(format!("a {w}x{h} picture (the largest decoded is 8192x8192)")));
    }
    match video_codec(sample_entry) {
        Some(_) if HAVE_LIBAV => Ok(()),
        Some(VideoCodec::H264) if !b_frames => Ok(()),
        Some(VideoCodec::H264) => Err(CodecError::Unsupported(format!("H.264 with B-frames{WITHOUT_LIBAV}"))),
        Some(VideoCodec::H265) => Err(CodecError::Unsupported(format!("H.265{WITHOUT_LIBAV}"))),
        None => Err(CodecError::Unsupported("this video codec".into())),
    }
}

/// What a host built without libavcodec says about the streams only it decodes.
const WITHOUT_LIBAV: &str =
    " (this host was built without libavcodec: build it with `--features ffmpeg`, docs/decode.md)";

/// A video decoder fed with MP4 samples (4-byte length-prefixed NAL units).
pub struct Decoder {
    backend: Backend,
    codec: VideoCodec,
    /// The stream's parameter sets, sent before the next sample when `send_params` (the first
    /// one, after a change, and at the keyframe after a failure).
    params: Vec<Vec<u8>>,
    send_params: bool,
    /// A picture buffer handed back by the caller, reused for the next picture: no
    /// frame-sized allocation per frame (glibc would trim and re-fault it every time).
    spare: Vec<u8>,
    /// A sample failed: the ones before the next keyframe are skipped.
    resync: bool,
    errors: u64,
    skipped: u64,
}

enum Backend {
    OpenH264 {
        inner: Box<H264Decoder>,
        annexb: Vec<u8>,
    },
    #[cfg(feature = "ffmpeg")]
    Av(Box<super::av::AvDecoder>),
}

impl Decoder {
    /// A decoder for a stream described by `sample_entry` (`avc1`/`hvc1`: its parameter sets
    /// are sent before the first sample); `b_frames` if its frames are reordered, `threads`
    /// for libavcodec (0: its choice; 1: no frame delay, what live analysis wants).
    pub fn for_entry(sample_entry: &[u8], b_frames: bool, threads: u16) -> Result<Self, CodecError> {
        let (codec, params) = decodable_parameter_sets(sample_entry, b_frames)?;
        let backend = if HAVE_LIBAV {
            Self::libav(codec, threads)?
        } else {
            Backend::OpenH264 { inner: Box::new(H264Decoder::new().map_err(dec_err)?), annexb: Vec::new() }
        };
        Ok(Decoder {
            backend,
            codec,
            params,
            send_params: true,
            spare: Vec::new(),
            resync: false,
            errors: 0,
            skipped: 0,
        })
    }

    #[cfg(feature = "ffmpeg")]
    fn libav(codec: VideoCodec, threads: u16) -> Result<Backend, CodecError> {
        Ok(Backend::Av(Box::new(super::av::AvDecoder::new(codec, threads)?)))
    }

    #[cfg(not(feature = "ffmpeg"))]
    fn libav(_: VideoCodec, _: u16) -> Result<Backend, CodecError> {
        Err(CodecError::Unsupported(WITHOUT_LIBAV.trim().into()))
    }

    /// A new sample entry (the camera changed its parameters): its parameter sets go before
    /// the next sample. Another codec is refused (the caller makes a new decoder).
    pub fn set_entry(&mut self, sample_entry: &[u8], b_frames: bool) -> Result<(), CodecError> {
        let (codec, params) = decodable_parameter_sets(sample_entry, b_frames)?;
        if codec != self.codec {
            return Err(CodecError::Malformed(format!(
                "the stream changed from {} to {}",
                self.codec.name(),
                codec.name()
            )));
        }
        self.params = params;
        self.send_params = true;
        Ok(())
    }

    /// The codec decoded.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Gives a picture's buffer back for reuse by the next picture.
    pub fn recycle(&mut self, pic: I420) {
        self.spare = pic.data;
    }

    /// Samples that failed to decode.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Samples skipped after a failure, until the next keyframe.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Decodes one sample (`pts`: its presentation time; `key`: a keyframe); the next picture
    /// in presentation order if one is ready. An error is counted and returned once; the
    /// samples after it are skipped (`Ok(None)`) until the next keyframe.
    pub fn decode(&mut self, sample: &[u8], pts: i64, key: bool) -> Result<Option<I420>, CodecError> {
        if self.resync && !key {
            self.skipped += 1;
            return Ok(None);
        }
        self.resync = false;
        let result = self.decode_inner(sample, pts);
        if result.is_ok() {
            self.send_params = false;
        } else {
            self.errors += 1;
            self.resync = true;
            self.send_params = true;
            #[cfg(feature = "ffmpeg")]
            if let Backend::Av(d) = &mut self.backend {
                // Pictures already decoded are lost with the references they would need.
                d.reset();
            }
        }
        result
    }

    fn decode_inner(&mut self, sample: &[u8], pts: i64) -> Result<Option<I420>, CodecError> {
        let spare = std::mem::take(&mut self.spare);
        let params: &[Vec<u8>] = if self.send_params { &self.params } else { &[] };
        match &mut self.backend {
            Backend::OpenH264 { inner, annexb } => {
                annexb.clear();
                for p in params {
                    annexb.extend_from_slice(&[0, 0, 0, 1]);
                    annexb.extend_from_slice(p);
                }
                for nal in nal_units(sample) {
                    annexb.extend_from_slice(&[0, 0, 0, 1]);
                    annexb.extend_from_slice(nal?);
                }
                let Some(yuv) = inner.decode(annexb).map_err(dec_err)? else {
                    self.spare = spare;
                    return Ok(None);
                };
                Ok(Some(copy_yuv(&yuv, pts, spare)))
            }
            #[cfg(feature = "ffmpeg")]
            Backend::Av(d) => {
                d.send(params, sample, pts)?;
                d.receive(spare)
            }
        }
    }

    /// The end of the stream: the pictures the decoder still holds (B-frames, frame threads),
    /// in presentation order. The decoder starts afresh afterwards (the next sample must be a
    /// keyframe).
    pub fn flush(&mut self) -> Vec<I420> {
        match &mut self.backend {
            Backend::OpenH264 { .. } => Vec::new(),
            #[cfg(feature = "ffmpeg")]
            Backend::Av(d) => {
                d.send_eof();
                let mut out = Vec::new();
                while let Ok(Some(p)) = d.receive(Vec::new()) {
                    out.push(p);
                }
                d.reset();
                self.send_params = true;
                out
            }
        }
    }
}

/// The codec and parameter sets of a sample entry this host can decode.
fn decodable_parameter_sets(sample_entry: &[u8], b_frames: bool) -> Result<(VideoCodec, Vec<Vec<u8>>), CodecError> {
    check_decodable(sample_entry, b_frames)?;
    parameter_sets(sample_entry)
        .ok_or_else(|| CodecError::Malformed("a sample entry without readable parameter sets".into()))
}

fn dec_err(e: impl std::fmt::Display) -> CodecError {
    CodecError::H264 { what: "decoder", message: e.to_string() }
}

/// Copies an openh264 picture (strided planes) into a packed I420, in `buf` when it is large
/// enough.
fn copy_yuv(yuv: &impl YUVSource, pts: i64, mut buf: Vec<u8>) -> I420 {
    let (w, h) = yuv.dimensions();
    let (sy, su, sv) = yuv.strides();
    let planes = I420::planes(w as u32, h as u32);
    buf.resize(I420::size(w as u32, h as u32), 0);
    let mut data = buf;
    for (plane, (src, stride)) in planes.iter().zip([(yuv.y(), sy), (yuv.u(), su), (yuv.v(), sv)]) {
        for row in 0..plane.height {
            let s = row * stride;
            let d = plane.offset + row * plane.width;
            if let (Some(src_row), Some(dst_row)) = (src.get(s..s + plane.width), data.get_mut(d..d + plane.width)) {
                dst_row.copy_from_slice(src_row);
            }
        }
    }
    I420 { width: w as u32, height: h as u32, pts, data }
}
