//! libavcodec (FFmpeg) behind the codec module: the decoder for H.265 and for H.264 with
//! B-frames, whose pictures openh264 cannot give, and libswscale for pictures of another pixel
//! format or size. Built with `--features ffmpeg` (docs/decode.md).
//!
//! Samples go in as Annex B with the sample entry's parameter sets in front of the first one
//! (and again after a change), so the decoder needs no extradata and follows a camera that
//! changes its parameters mid-stream. Each packet carries the frame's time; libavcodec hands
//! it back on the picture it belongs to, whatever the reordering.

use std::sync::Once;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{CodecError, I420};
use crate::mp4::entry::VideoCodec;

fn av_err(what: &'static str) -> impl Fn(ff::Error) -> CodecError {
    move |e| CodecError::Av { what, message: e.to_string() }
}

/// libavcodec logs every damaged slice to stderr; a hostile or lossy camera would flood the
/// host's log. Decode errors are counted by the caller instead.
fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| ff::util::log::set_level(ff::util::log::Level::Fatal));
}

/// One libavcodec video decoder.
pub(super) struct AvDecoder {
    dec: ff::decoder::Video,
    frame: ff::frame::Video,
    /// Converts pictures that are not 8-bit 4:2:0 (10-bit H.265, 4:2:2) into I420.
    convert: Option<(scaling::Context, ff::frame::Video)>,
    annexb: Vec<u8>,
}

impl AvDecoder {
    /// A decoder for `codec`; `threads` 0 lets libavcodec choose (frame threads: more
    /// throughput, a few frames more delay).
    pub(super) fn new(codec: VideoCodec, threads: u16) -> Result<Self, CodecError> {
        init();
        let id = match codec {
            VideoCodec::H264 => ff::codec::Id::H264,
            VideoCodec::H265 => ff::codec::Id::HEVC,
        };
        let found = ff::decoder::find(id)
            .ok_or_else(|| CodecError::Unsupported(format!("{} (libavcodec has no decoder for it)", codec.name())))?;
        let mut ctx = ff::codec::Context::new_with_codec(found);
        let count = usize::from(threads);
        let kind = if count == 1 { ff::threading::Type::None } else { ff::threading::Type::Frame };
        ctx.set_threading(ff::threading::Config { kind, count, ..Default::default() });
        let dec = ctx.decoder().video().map_err(av_err("decoder"))?;
        Ok(AvDecoder { dec, frame: ff::frame::Video::empty(), convert: None, annexb: Vec::new() })
    }

    /// Sends one sample (4-byte length-prefixed NAL units), with `params` (parameter set NAL
    /// units) in front when given.
    pub(super) fn send(&mut self, params: &[Vec<u8>], sample: &[u8], pts: i64) -> Result<(), CodecError> {
        self.annexb.clear();
        for p in params {
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(p);
        }
        for nal in super::nal_units(sample) {
            self.annexb.extend_from_slice(&[0, 0, 0, 1]);
            self.annexb.extend_from_slice(nal?);
        }
        let mut packet = ff::Packet::copy(&self.annexb);
        packet.set_pts(Some(pts));
        packet.set_dts(None);
        // EAGAIN (output queue full) cannot happen: each send is followed by a receive, and a
        // packet gives at most one picture.
        self.dec.send_packet(&packet).map_err(av_err("decoder"))
    }

    /// Tells the decoder the stream ended: the pictures it holds back come out of `receive`.
    pub(super) fn send_eof(&mut self) {
        // An error here means it was already draining or never got data: nothing held back.
        let _ = self.dec.send_eof();
    }

    /// Forgets everything held back (a seek, or a new stream after draining).
    pub(super) fn reset(&mut self) {
        self.dec.flush();
    }

    /// The next decoded picture, in presentation order, as I420 (in `spare` when it fits).
    pub(super) fn receive(&mut self, spare: Vec<u8>) -> Result<Option<I420>, CodecError> {
        match self.dec.receive_frame(&mut self.frame) {
            Ok(()) => {}
            Err(ff::Error::Other { errno: ff::util::error::EAGAIN } | ff::Error::Eof) => return Ok(None),
            Err(e) => return Err(av_err("decoder")(e)),
        }
        let pts = self.frame.pts().or_else(|| self.frame.timestamp()).unwrap_or(0);
        let (w, h) = (self.frame.width(), self.frame.height());
        if w == 0 || h == 0 || u64::from(w) * u64::from(h) > super::MAX_PICTURE_PIXELS {
            return Err(CodecError::Unsupported(format!("a {w}x{h} picture (the largest decoded is 8192x8192)")));
        }
        let src = match self.frame.format() {
            Pixel::YUV420P | Pixel::YUVJ420P => &self.frame,
            format => {
                let fresh = self
                    .convert
                    .as_ref()
                    .is_none_or(|(c, _)| c.input().format != format || c.input().width != w || c.input().height != h);
                if fresh {
                    let ctx = scaling::Context::get(format, w, h, Pixel::YUV420P, w, h, scaling::Flags::POINT)
                        .map_err(|e| CodecError::Unsupported(format!("pictures in pixel format {format:?} ({e})")))?;
                    self.convert = Some((ctx, ff::frame::Video::empty()));
                }
                let Some((ctx, out)) = self.convert.as_mut() else { return Ok(None) };
                ctx.run(&self.frame, out).map_err(av_err("pixel converter"))?;
                out
            }
        };
        Ok(Some(copy_planes(src, pts, spare)))
    }
}

/// A packed I420 copy of an 8-bit 4:2:0 libav picture (strided planes).
fn copy_planes(frame: &ff::frame::Video, pts: i64, mut buf: Vec<u8>) -> I420 {
    let (w, h) = (frame.width(), frame.height());
    let planes = I420::planes(w, h);
    buf.resize(I420::size(w, h), 0);
    for (i, plane) in planes.iter().enumerate() {
        let (src, stride) = (frame.data(i), frame.stride(i));
        for row in 0..plane.height {
            let s = row * stride;
            let d = plane.offset + row * plane.width;
            if let (Some(src_row), Some(dst_row)) = (src.get(s..s + plane.width), buf.get_mut(d..d + plane.width)) {
                dst_row.copy_from_slice(src_row);
            }
        }
    }
    I420 { width: w, height: h, pts, data: buf }
}

/// Scales packed I420 pictures with libswscale (bilinear).
pub(super) struct SwScaler {
    ctx: scaling::Context,
    src: ff::frame::Video,
    dst: ff::frame::Video,
}

impl SwScaler {
    pub(super) fn new(from: (u32, u32), to: (u32, u32)) -> Result<Self, CodecError> {
        init();
        let ctx =
            scaling::Context::get(Pixel::YUV420P, from.0, from.1, Pixel::YUV420P, to.0, to.1, scaling::Flags::BILINEAR)
                .map_err(av_err("scaler"))?;
        Ok(SwScaler {
            ctx,
            src: ff::frame::Video::new(Pixel::YUV420P, from.0, from.1),
            dst: ff::frame::Video::new(Pixel::YUV420P, to.0, to.1),
        })
    }

    /// `pic` (of the size given to `new`, packed) scaled, in `spare`'s buffer when it fits.
    pub(super) fn scale(&mut self, pic: &I420, spare: Vec<u8>) -> Result<I420, CodecError> {
        let (w, h) = (pic.width, pic.height);
        for (i, plane) in I420::planes(w, h).iter().enumerate() {
            let stride = self.src.stride(i);
            let dst = self.src.data_mut(i);
            for row in 0..plane.height {
                let s = plane.offset + row * plane.width;
                let d = row * stride;
                if let (Some(src_row), Some(dst_row)) =
                    (pic.data.get(s..s + plane.width), dst.get_mut(d..d + plane.width))
                {
                    dst_row.copy_from_slice(src_row);
                }
            }
        }
        self.ctx.run(&self.src, &mut self.dst).map_err(av_err("scaler"))?;
        Ok(copy_planes(&self.dst, pic.pts, spare))
    }
}
