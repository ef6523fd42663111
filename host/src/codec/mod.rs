//! Decode (H.264, H.265: `decode`) and encode (H.264, openh264) behind a small API. Only
//! pipelines and tools that need pixels (processors, previews, re-encoding exports,
//! transcode-on-playback, `openva plugin run`) pay for it.

pub mod audio;
#[cfg(feature = "ffmpeg")]
mod av;
mod decode;
mod heap;
mod scale;
pub mod still;

pub use decode::{Decoder, HAVE_LIBAV, check_decodable};
pub use heap::tune_allocator_for_frames;
pub use scale::Scaler;

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder as H264Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
};
use openh264::formats::YUVSlices;

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// openh264 refused the data or the settings.
    #[error("H.264 {what}: {message}")]
    H264 {
        /// "decoder" or "encoder".
        what: &'static str,
        /// openh264's description.
        message: String,
    },
    /// A sample that is not 4-byte length-prefixed NAL units, or a frame of the wrong size.
    #[error("{0}")]
    Malformed(String),
    /// libavcodec or libswscale refused the data or the settings.
    #[error("libav {what}: {message}")]
    Av {
        /// "decoder", "scaler", …
        what: &'static str,
        /// FFmpeg's description.
        message: String,
    },
    /// The JPEG encoder refused a picture.
    #[error("JPEG encoder: {0}")]
    Jpeg(String),
    /// The video's codec has no decoder here (H.265 or H.264 with B-frames on a host built
    /// without libavcodec; a picture too large): features that need pixels say so instead of
    /// producing garbage.
    #[error("{0} cannot be decoded on this host (recording, copy exports and playback are not affected)")]
    Unsupported(String),
}

/// Largest picture decoded (8K UHD and then some: 8192 × 8192).
pub const MAX_PICTURE_PIXELS: u64 = 8192 * 8192;

fn enc_err(e: impl std::fmt::Display) -> CodecError {
    CodecError::H264 { what: "encoder", message: e.to_string() }
}

/// A decoded picture in I420: Y (width × height) then U and V ((width+1)/2 × (height+1)/2),
/// tightly packed. `pts` is the frame's wall time in 90 kHz ticks since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420 {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Wall time, 90 kHz ticks since the epoch.
    pub pts: i64,
    /// The three planes, packed.
    pub data: Vec<u8>,
}

/// Offset, stride, width and height of one plane of a packed I420 picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plane {
    /// Byte offset of the plane.
    pub offset: usize,
    /// Bytes per row (= width: packed).
    pub stride: usize,
    /// Width in samples.
    pub width: usize,
    /// Height in rows.
    pub height: usize,
}

impl I420 {
    /// The three planes of a packed `width` × `height` picture.
    pub fn planes(width: u32, height: u32) -> [Plane; 3] {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        [
            Plane { offset: 0, stride: w, width: w, height: h },
            Plane { offset: w * h, stride: cw, width: cw, height: ch },
            Plane { offset: w * h + cw * ch, stride: cw, width: cw, height: ch },
        ]
    }

    /// Bytes of a packed `width` × `height` picture.
    pub fn size(width: u32, height: u32) -> usize {
        let p = Self::planes(width, height);
        p[2].offset + p[2].width * p[2].height
    }

    /// A black picture (Y 16, chroma 128).
    pub fn black(width: u32, height: u32, pts: i64) -> Self {
        let p = Self::planes(width, height);
        let mut data = vec![128u8; Self::size(width, height)];
        data[..p[1].offset].fill(16);
        I420 { width, height, pts, data }
    }

    /// Whether `data` has exactly the size the dimensions call for.
    pub fn is_consistent(&self) -> bool {
        self.width > 0 && self.height > 0 && self.data.len() == Self::size(self.width, self.height)
    }
}

/// The NAL units of an MP4 sample (4-byte big-endian lengths), or an error for a length that
/// runs past the end.
pub fn nal_units(sample: &[u8]) -> impl Iterator<Item = Result<&[u8], CodecError>> {
    let mut rest = sample;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(CodecError::Malformed("sample ends inside a NAL length".into())));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            rest = &[];
            return Some(Err(CodecError::Malformed(format!("NAL of {len} bytes in {} remaining", tail.len()))));
        }
        let (nal, next) = tail.split_at(len);
        rest = next;
        Some(Ok(nal))
    })
}

/// Whether no later frame can refer to this sample: every coded slice in it has
/// `nal_ref_idc == 0` (H.264 §7.4.1). Such a frame can be left undecoded without breaking the
/// decoding of the frames after it. A malformed sample, or one without slices, counts as a
/// reference (the safe answer).
pub fn is_non_reference(sample: &[u8]) -> bool {
    let mut slices = 0;
    for nal in nal_units(sample) {
        let Ok(&[header, ..]) = nal else { return false };
        if matches!(header & 0x1f, 1 | 5) {
            if header & 0x60 != 0 {
                return false;
            }
            slices += 1;
        }
    }
    slices > 0
}

/// Whether an access unit (4-byte length-prefixed NAL units) carries a recovery point SEI
/// (payload type 6, H.264 §D.2.8 and H.265 §D.3.8): where a camera using periodic intra refresh
/// (no IDR frames for minutes) says decoding can begin. `hevc`: the sample is H.265 (2-byte
/// NAL headers, prefix SEI type 39) rather than H.264 (type 6).
pub fn is_recovery_point(sample: &[u8], hevc: bool) -> bool {
    nal_units(sample).filter_map(Result::ok).any(|nal| {
        let (is_sei, header) = if hevc {
            (nal.first().is_some_and(|b| (b >> 1) & 0x3f == 39), 2)
        } else {
            (nal.first().is_some_and(|b| b & 0x1f == 6), 1)
        };
        is_sei && sei_payload_types(nal.get(header..).unwrap_or_default()).any(|t| t == 6)
    })
}

/// Whether an access unit holds its picture's first slice: its first coded slice starts at the
/// picture's first macroblock (H.264: `first_mb_in_slice` is 0, the slice header's first
/// field, coded `ue(v)`, so its first bit is 1, §7.3.3) or is the picture's first segment
/// (H.265: `first_slice_segment_in_pic_flag`, §7.3.6.1). A client that joins a camera's shared
/// stream between two slices of a picture gets an access unit with only the later ones; a
/// decoder given it shows the missing part as garbage, and every picture referring to it too.
/// A sample without slices, or a malformed one, does not.
pub fn has_first_slice(sample: &[u8], hevc: bool) -> bool {
    for nal in nal_units(sample) {
        let Ok(nal) = nal else { return false };
        let (vcl, first) = if hevc {
            let Some(&h) = nal.first() else { return false };
            ((h >> 1) & 0x3f < 32, nal.get(2))
        } else {
            let Some(&h) = nal.first() else { return false };
            ((1..=5).contains(&(h & 0x1f)), nal.get(1))
        };
        if vcl {
            return first.is_some_and(|b| b & 0x80 != 0);
        }
    }
    false
}

/// Whether an H.265 access unit is an intra random access point: every coded slice in it is a
/// BLA, IDR or CRA picture (NAL types 16–23, H.265 §7.4.2.2), so decoding can begin there (a
/// CRA's leading RASL pictures, if any, are skipped by decoders that start at it). An access
/// unit without slices, or a malformed one, is not.
pub fn is_hevc_irap(sample: &[u8]) -> bool {
    let mut slices = 0;
    for nal in nal_units(sample) {
        let Ok(&[header, ..]) = nal else { return false };
        let typ = (header >> 1) & 0x3f;
        if typ < 32 {
            if !(16..=23).contains(&typ) {
                return false;
            }
            slices += 1;
        }
    }
    slices > 0
}

/// The payload types of the SEI messages of an SEI NAL unit's payload (after its header).
fn sei_payload_types(mut rbsp: &[u8]) -> impl Iterator<Item = u32> + '_ {
    std::iter::from_fn(move || {
        // Both numbers are coded as runs of 0xFF plus a last byte (§7.3.5).
        let read = |rbsp: &mut &[u8]| -> Option<u32> {
            let mut v = 0u32;
            loop {
                let (&b, rest) = rbsp.split_first()?;
                *rbsp = rest;
                v = v.checked_add(u32::from(b))?;
                if b != 0xff {
                    return Some(v);
                }
            }
        };
        // The RBSP trailing bits (0x80) end the messages.
        if rbsp.first().is_none_or(|&b| b == 0x80) {
            return None;
        }
        let typ = read(&mut rbsp)?;
        let size = read(&mut rbsp)? as usize;
        rbsp = rbsp.get(size..).unwrap_or_default();
        Some(typ)
    })
}

/// Encoder settings.
#[derive(Clone, Debug)]
pub struct EncoderSettings {
    /// Target bit rate, bits per second.
    pub bitrate: u32,
    /// Frame rate (for rate control).
    pub fps: f32,
    /// Keyframe interval in frames.
    pub gop: u32,
    /// Encoder threads (openh264 slices); 0 or 1 encodes on the calling thread only.
    pub threads: u16,
    /// openh264's lowest complexity: fastest, a little larger for the same quality (what
    /// batch exports use, as ffmpeg's `ultrafast` would).
    pub fast: bool,
}

/// One encoded picture as an MP4 sample.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// 4-byte length-prefixed NAL units (SPS/PPS removed: they go in the sample entry).
    pub sample: Vec<u8>,
    /// An IDR picture.
    pub key: bool,
    /// SPS and PPS, when this picture carried them.
    pub params: Option<(Vec<u8>, Vec<u8>)>,
}

/// An H.264 encoder producing MP4 samples.
pub struct Encoder {
    inner: H264Encoder,
}

impl Encoder {
    /// A new encoder.
    pub fn new(s: &EncoderSettings) -> Result<Self, CodecError> {
        let cfg = EncoderConfig::new()
            .bitrate(BitRate::from_bps(s.bitrate))
            .max_frame_rate(FrameRate::from_hz(s.fps))
            .intra_frame_period(IntraFramePeriod::from_num_frames(s.gop.max(1)))
            .num_threads(s.threads.max(1))
            .complexity(if s.fast { Complexity::Low } else { Complexity::Medium })
            .skip_frames(false);
        Ok(Encoder { inner: H264Encoder::with_api_config(OpenH264API::from_source(), cfg).map_err(enc_err)? })
    }

    /// Makes the next picture an IDR (a client that joins a live stream starts at once).
    pub fn force_idr(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Encodes one picture (even dimensions).
    pub fn encode(&mut self, pic: &I420) -> Result<Encoded, CodecError> {
        if !pic.is_consistent() || pic.width % 2 == 1 || pic.height % 2 == 1 {
            return Err(CodecError::Malformed(format!(
                "cannot encode a {}x{} picture of {} bytes (even sizes, packed I420)",
                pic.width,
                pic.height,
                pic.data.len()
            )));
        }
        let p = I420::planes(pic.width, pic.height);
        let d = &pic.data;
        let yuv = YUVSlices::new(
            (&d[..p[1].offset], &d[p[1].offset..p[2].offset], &d[p[2].offset..]),
            (pic.width as usize, pic.height as usize),
            (p[0].stride, p[1].stride, p[2].stride),
        );
        let bs = self.inner.encode(&yuv).map_err(enc_err)?;
        let key = bs.frame_type() == FrameType::IDR;
        let (mut sample, mut sps, mut pps) = (Vec::new(), None, None);
        for l in 0..bs.num_layers() {
            let Some(layer) = bs.layer(l) else { continue };
            for i in 0..layer.nal_count() {
                let Some(nal) = layer.nal_unit(i) else { continue };
                let nal = strip_start_code(nal);
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(_) => {
                        sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                        sample.extend_from_slice(nal);
                    }
                    None => {}
                }
            }
        }
        Ok(Encoded { sample, key, params: sps.zip(pps) })
    }
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    nal.strip_prefix(&[0, 0, 0, 1]).or_else(|| nal.strip_prefix(&[0, 0, 1])).unwrap_or(nal)
}

#[cfg(test)]
mod recovery_tests {
    use super::*;

    fn sample(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn pictures_without_their_first_slice_are_told_apart() {
        // H.264 as x264 sends it with two slice threads: AUD, SPS, PPS, SEI, then two IDR
        // slices; the first starts at macroblock 0 (first bit 1), the second does not.
        let (sps, pps, sei) = (&[0x67u8, 0x64][..], &[0x68u8, 0xEF][..], &[0x06u8, 0x05][..]);
        assert!(has_first_slice(&sample(&[&[0x09, 0x10], sps, pps, sei, &[0x65, 0x88], &[0x65, 0x00]]), false));
        // A client that joined between the slices gets only the second.
        assert!(!has_first_slice(&sample(&[&[0x65, 0x00, 0x12]]), false));
        assert!(has_first_slice(&sample(&[&[0x41, 0x9A]]), false));
        assert!(!has_first_slice(&sample(&[&[0x41, 0x00]]), false));
        // H.265: the flag is the first bit after the two-byte header (IDR_W_RADL = 19, TRAIL_R = 1).
        assert!(has_first_slice(&sample(&[&[0x40, 0x01, 0x0C], &[0x26, 0x01, 0xAF], &[0x26, 0x01, 0x20]]), true));
        assert!(!has_first_slice(&sample(&[&[0x26, 0x01, 0x20]]), true));
        assert!(has_first_slice(&sample(&[&[0x02, 0x01, 0xD0]]), true));
        // No slice, a slice without a header byte, a truncated sample: not whole.
        assert!(!has_first_slice(&sample(&[sps, pps]), false));
        assert!(!has_first_slice(&sample(&[&[0x65]]), false));
        assert!(!has_first_slice(&[0, 0, 0, 9, 0x65], false));
        assert!(!has_first_slice(&[], false));
    }

    #[test]
    fn recovery_point_seis_are_found() {
        // x264's periodic intra refresh: SEI(recovery point: cnt 24, flags) then a P slice.
        let rp = sample(&[&[0x06, 0x06, 0x02, 0xb1, 0x88, 0x80], &[0x41, 0x9a, 0x00]]);
        assert!(is_recovery_point(&rp, false));
        // A user-data SEI (type 5) of 300 bytes (size coded 0xFF 0x2D) is not one.
        let mut ud = vec![0x06, 0x05, 0xff, 0x2d];
        ud.extend(std::iter::repeat_n(0x11, 300));
        ud.push(0x80);
        assert!(!is_recovery_point(&sample(&[&ud, &[0x41, 0x9a]]), false));
        // Two messages in one NAL, the second a recovery point.
        let two = sample(&[&[0x06, 0x05, 0x01, 0x00, 0x06, 0x02, 0xb1, 0x88, 0x80]]);
        assert!(is_recovery_point(&two, false));
        // H.265: a prefix SEI NAL (type 39, 2-byte header).
        let hevc = sample(&[&[0x4e, 0x01, 0x06, 0x02, 0xb1, 0x88, 0x80]]);
        assert!(is_recovery_point(&hevc, true) && !is_recovery_point(&hevc, false));
        // Truncated or garbage: never a panic.
        assert!(!is_recovery_point(&[0, 0, 0, 9, 0x06], false));
        // H.265 random access points: CRA (21) and IDR (19, 20) with parameter sets before them
        // (VPS 32, SPS 33, PPS 34: not slices); a trailing picture (1), or a CRA with a RASL
        // slice (8) in the same unit, is not one.
        let cra = sample(&[&[0x40, 0x01], &[0x42, 0x01], &[0x44, 0x01], &[0x2a, 0x01, 0xaf]]);
        assert!(is_hevc_irap(&cra));
        assert!(is_hevc_irap(&sample(&[&[0x26, 0x01, 0xaf], &[0x26, 0x01, 0x11]])));
        assert!(!is_hevc_irap(&sample(&[&[0x02, 0x01, 0xd0]])));
        assert!(!is_hevc_irap(&sample(&[&[0x2a, 0x01], &[0x10, 0x01]])));
        assert!(!is_hevc_irap(&sample(&[&[0x40, 0x01]])));
        assert!(!is_hevc_irap(&[0, 0, 0, 9, 0x2a]));
        assert!(!is_recovery_point(&sample(&[&[0x06, 0xff, 0xff]]), false));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_frames_are_told_apart() {
        let sample = |nals: &[&[u8]]| -> Vec<u8> {
            nals.iter().flat_map(|n| (n.len() as u32).to_be_bytes().into_iter().chain(n.iter().copied())).collect()
        };
        // nal_ref_idc 0, type 1 (non-IDR slice): droppable; with an SEI (type 6) before it too.
        assert!(super::is_non_reference(&sample(&[&[0x01, 0xAA]])));
        assert!(super::is_non_reference(&sample(&[&[0x06, 0x05], &[0x01, 0xAA]])));
        // nal_ref_idc 2 (0x41) or an IDR (0x65): a reference.
        assert!(!super::is_non_reference(&sample(&[&[0x41, 0xAA]])));
        assert!(!super::is_non_reference(&sample(&[&[0x65, 0xAA]])));
        // Two slices, one of them a reference.
        assert!(!super::is_non_reference(&sample(&[&[0x01, 0xAA], &[0x21, 0xBB]])));
        // No slice at all, an empty NAL, or a truncated sample: treated as a reference.
        assert!(!super::is_non_reference(&sample(&[&[0x06, 0x05]])));
        assert!(!super::is_non_reference(&sample(&[&[]])));
        assert!(!super::is_non_reference(&[0, 0, 0, 9, 0x01]));
        assert!(!super::is_non_reference(&[]));
    }

    use super::*;

    #[test]
    fn encode_then_decode_round_trips_size_and_roughly_pixels() {
        let mut enc =
            Encoder::new(&EncoderSettings { bitrate: 2_000_000, fps: 25.0, gop: 25, threads: 1, fast: false })
                .expect("encoder");
        let mut pic = I420::black(320, 240, 0);
        // A bright square.
        for y in 100..140 {
            pic.data[y * 320 + 100..y * 320 + 140].fill(235);
        }
        let e = enc.encode(&pic).expect("encode");
        assert!(e.key);
        let (sps, pps) = e.params.expect("first picture carries SPS/PPS");
        let entry = crate::mp4::init::avc1_sample_entry(&sps, &pps, 320, 240).expect("entry");
        let mut dec = Decoder::for_entry(&entry, false, 1).expect("decoder");
        let out = dec.decode(&e.sample, 7, true).expect("decode");
        let out = out.or_else(|| dec.flush().pop()).expect("a picture");
        assert_eq!((out.width, out.height, out.pts), (320, 240, 7));
        assert!(out.is_consistent());
        assert!(out.data[120 * 320 + 120] > 200 && out.data[10 * 320 + 10] < 40);
        assert!(dec.decode(&[0, 0, 0, 9, 1], 0, false).is_err(), "a truncated sample is an error");
        // Until the next keyframe, samples are skipped (counted), not decoded.
        assert!(dec.decode(&e.sample, 8, false).expect("skipped").is_none());
        assert_eq!((dec.errors(), dec.skipped()), (1, 1));
        let again = dec.decode(&e.sample, 9, true).expect("decode").or_else(|| dec.flush().pop());
        assert_eq!(again.map(|p| p.pts), Some(9), "decoding resumes at the keyframe");
    }
}
