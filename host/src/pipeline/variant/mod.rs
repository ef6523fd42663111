//! Transcode-on-playback: any recorded fragment as H.264 of a chosen height and bit rate, made
//! when a player asks for it (`docs/decode.md`, "Transcode-on-playback").
//!
//! A variant segment is one recorded fragment, transcoded on its own: decoding starts at the
//! keyframe at or before the fragment (in its segment file, which starts with one), the pictures
//! of the fragment are scaled and encoded starting with an IDR, and the fragment's audio is
//! passed through. So any segment can be asked for first (a seek costs one GOP of decoding, not
//! the range before it), a variant's timeline is the recording's (the same fragments, the same
//! durations, the same discontinuities), and a segment, once made, never changes: it is cached
//! on disk (`cache`) for the next viewer.

pub mod cache;
pub mod content;

use crate::archive::{ArchiveError, SegmentReader};
use crate::codec::{CodecError, Decoder, Encoder, EncoderSettings, I420, Scaler};
use crate::mp4::fragment::{AudioFragSample, AudioPart, FragSample, fragment_header};
use crate::mp4::parse::{ScannedFragment, SegmentScan, scan_segment};
use crate::mp4::{AudioTrack, init::avc1_sample_entry, init::init_segment_lasting};
use std::io::BufReader;

/// Why a variant could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    /// A parameter of the request is out of range (a 400 naming it).
    #[error("{0}")]
    BadRequest(String),
    /// No such fragment in that segment file (a 404).
    #[error("{0}")]
    NotFound(String),
    /// Every transcoding slot is busy (a 503 with `Retry-After`).
    #[error("every transcoding slot is busy ({0} at a time); try again shortly")]
    Busy(usize),
    /// The recording's pictures cannot be decoded or encoded here.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Reading the archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The segment file could not be read or is damaged.
    #[error("segment {file}: {message}")]
    Segment {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
}

/// What a player asks for instead of the recorded stream: H.264, at most `height` lines high
/// (the recording's own height when absent or larger: never enlarged), at `kbps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VariantSpec {
    /// Largest height, even; `None`: the recording's.
    pub height: Option<u32>,
    /// Video bit rate, kilobits per second.
    pub kbps: u32,
}

/// Heights a variant may ask for (below 64 lines a picture is useless; above 4320, 8K's, there
/// is no camera).
pub const HEIGHTS: std::ops::RangeInclusive<u32> = 64..=4320;
/// Bit rates a variant may ask for, kbit/s.
pub const KBPS: std::ops::RangeInclusive<u32> = 100..=50_000;

impl VariantSpec {
    /// The variant a request's `codec`, `height` and `bitrate` (kbit/s) parameters ask for;
    /// `None` when none is given (the recorded stream). `height` or `bitrate` alone imply
    /// `codec=h264`. Each bad value is a 400 naming its parameter.
    pub fn parse(
        codec: Option<&str>,
        height: Option<&str>,
        bitrate: Option<&str>,
    ) -> Result<Option<Self>, VariantError> {
        if codec.is_none() && height.is_none() && bitrate.is_none() {
            return Ok(None);
        }
        if let Some(c) = codec
            && !c.eq_ignore_ascii_case("h264")
        {
            return Err(VariantError::BadRequest(format!(
                "codec '{c}' is not one the host encodes: transcoded playback is codec=h264"
            )));
        }
        let number = |name: &str, v: &str, range: &std::ops::RangeInclusive<u32>, unit: &str| {
            v.parse::<u32>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                VariantError::BadRequest(format!(
                    "{name} '{v}' is out of range: {}–{} {unit}",
                    range.start(),
                    range.end()
                ))
            })
        };
        let height = height.map(|h| number("height", h, &HEIGHTS, "lines")).transpose()?;
        let kbps = match bitrate {
            Some(b) => number("bitrate", b, &KBPS, "kbit/s")?,
            None => crate::pipeline::transcode::default_kbps(height.unwrap_or(1080)),
        };
        Ok(Some(VariantSpec { height: height.map(|h| h & !1), kbps }))
    }

    /// The query that asks for this variant: `codec=h264&height=720&bitrate=1500`.
    pub fn query(&self) -> String {
        match self.height {
            Some(h) => format!("codec=h264&height={h}&bitrate={}", self.kbps),
            None => format!("codec=h264&bitrate={}", self.kbps),
        }
    }

    /// The picture size of this variant of a `width` × `height` recording: its height capped,
    /// the aspect kept, both even.
    pub fn output_size(&self, (width, height): (u32, u32)) -> (u32, u32) {
        let h = self.height.map_or(height, |cap| cap.min(height)).max(2) & !1;
        let w = (u64::from(width) * u64::from(h) / u64::from(height.max(1))) as u32;
        ((w.max(2) + 1) & !1, h)
    }

    /// Encoder settings for pictures at `fps` (rate control spreads the bit rate over them).
    /// One IDR per fragment, its first picture; each fragment's parameter sets also go in
    /// band, so an init segment made with another frame rate still serves.
    fn encoder_settings(&self, fps: f32) -> EncoderSettings {
        EncoderSettings { bitrate: self.kbps.saturating_mul(1000), fps, gop: 10_000, threads: 1, fast: true }
    }
}

/// A segment file's fragments, read from the file (as far as its index has committed them).
fn scan(src: &mut SegmentReader, file: &str) -> Result<SegmentScan, VariantError> {
    scan_segment(&mut BufReader::new(src))
        .map_err(|e| VariantError::Segment { file: file.to_owned(), message: e.to_string() })
}

/// The recorded picture size of a scanned segment file.
fn recorded_size(scan: &SegmentScan) -> (u32, u32) {
    crate::mp4::entry::picture_size(&scan.sample_entry).unwrap_or(scan.dims)
}

/// The cache key of `part` (`init.mp4` or `OFFSET.m4s`) of segment file `file` of `video` as
/// `spec`: one for every request that serves it (HLS segments and transcoded MP4s share what
/// they made). It starts with `video/`: a deleted video's entries are forgotten by that prefix.
pub fn cache_key(video: &str, file: &str, part: &str, spec: &VariantSpec) -> String {
    format!("{video}/{file}/{part}?{}", spec.query())
}

/// The variant's init segment for segment file `file` (read from `src`, local or remote): an
/// `avc1` track of the variant's size and the file's audio track as recorded.
pub fn init(src: SegmentReader, file: &str, spec: &VariantSpec) -> Result<Vec<u8>, VariantError> {
    head(src, file, spec, 0).map(|(init, _)| init)
}

/// [`init`] for fragments lasting `duration` (90 kHz; 0: unknown), and the clock of the file's
/// audio track, if it has one.
pub fn head(
    mut src: SegmentReader,
    file: &str,
    spec: &VariantSpec,
    duration: u64,
) -> Result<(Vec<u8>, Option<u32>), VariantError> {
    let scan = scan(&mut src, file)?;
    crate::codec::check_decodable(&scan.sample_entry, false)?;
    let (w, h) = spec.output_size(recorded_size(&scan));
    let entry = sample_entry(spec, (w, h))?;
    let audio = scan.audio.as_ref().map(|a| AudioTrack { sample_entry: &a.sample_entry, timescale: a.timescale });
    Ok((init_segment_lasting(&entry, w, h, audio.as_ref(), duration), audio.map(|a| a.timescale)))
}

/// The `avc1` sample entry of this variant at `(w, h)`: the parameter sets of one black picture
/// encoded with the variant's settings.
fn sample_entry(spec: &VariantSpec, (w, h): (u32, u32)) -> Result<Vec<u8>, VariantError> {
    let first = Encoder::new(&spec.encoder_settings(25.0))?.encode(&I420::black(w, h, 0))?;
    let (sps, pps) = first.params.ok_or_else(|| CodecError::Malformed("the encoder gave no parameter sets".into()))?;
    Ok(avc1_sample_entry(&sps, &pps, w, h).map_err(CodecError::Malformed)?)
}

/// The RFC 6381 codec string of this variant at `size` (`avc1.PPCCLL`, from the parameter sets
/// the encoder writes for it): what a multivariant playlist announces before any segment is
/// made.
pub fn codec_string(spec: &VariantSpec, size: (u32, u32)) -> Result<String, VariantError> {
    let entry = sample_entry(spec, size)?;
    crate::mp4::entry::codec_string(&entry)
        .ok_or_else(|| CodecError::Malformed("the encoder's parameter sets have no codec string".into()).into())
}

/// Presentation times (90 kHz, run-relative) of a fragment's samples, in decode order.
fn presentation_times(f: &ScannedFragment) -> Vec<i64> {
    let mut t = f.base_decode_time as i64;
    f.samples
        .iter()
        .map(|s| {
            let shown = t + i64::from(s.cts);
            t += i64::from(s.duration);
            shown
        })
        .collect()
}

/// The fragment whose `moof` is at `offset` in segment file `file` (read from `src`), transcoded as
/// `spec` asks: `moof` + `mdat` with its pictures in H.264 and its audio as recorded.
pub fn fragment(mut src: SegmentReader, file: &str, offset: u64, spec: &VariantSpec) -> Result<Vec<u8>, VariantError> {
    let scan = scan(&mut src, file)?;
    let i = scan
        .fragments
        .iter()
        .position(|f| f.offset == offset)
        .ok_or_else(|| VariantError::NotFound(format!("segment '{file}' has no fragment at offset {offset}")))?;
    let b_frames = scan.fragments.iter().any(|f| f.samples.iter().any(|s| s.cts != 0));
    // Decoding starts at the last keyframe at or before the fragment (a file starts with one).
    let k = (0..=i).rev().find(|&j| scan.fragments[j].samples.first().is_some_and(|s| s.key)).unwrap_or(0);
    let target = &scan.fragments[i];
    let mut wanted = presentation_times(target);
    wanted.sort_unstable();
    let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
        return Err(VariantError::NotFound(format!("fragment at {offset} of segment '{file}' has no video")));
    };
    let file_err = |e: std::io::Error| VariantError::Segment { file: file.to_owned(), message: e.to_string() };
    let fh = &src;
    let mut decoder = Decoder::for_entry(&scan.sample_entry, b_frames, 1)?;
    let (w, h) = spec.output_size(recorded_size(&scan));
    let mut scaler: Option<Scaler> = None;
    let span: i64 = target.samples.iter().map(|s| i64::from(s.duration)).sum();
    let fps = (target.samples.len() as f64 * crate::time::TICKS_PER_SEC as f64 / span.max(1) as f64).round();
    let mut encoder = Encoder::new(&spec.encoder_settings(fps.clamp(1.0, 120.0) as f32))?;
    let mut out_samples: Vec<FragSample> = Vec::with_capacity(target.samples.len());
    let mut pts_out: Vec<i64> = Vec::with_capacity(target.samples.len());
    let mut video = Vec::new();
    // Scaled pictures' buffer, reused from one picture to the next (the decoder reuses its own).
    let mut scaled_spare = Vec::new();
    let mut encode = |pic: I420, decoder: &mut Decoder| -> Result<(), VariantError> {
        if wanted.binary_search(&pic.pts).is_err() {
            decoder.recycle(pic); // a lead-in picture from before the fragment
            return Ok(());
        }
        let (pic, scaled) = if (pic.width, pic.height) == (w, h) {
            (pic, false)
        } else {
            let s = match &mut scaler {
                Some(s) => s,
                None => scaler.insert(Scaler::new((pic.width, pic.height), (w, h))?),
            };
            let out = s.scale(&pic, std::mem::take(&mut scaled_spare))?;
            decoder.recycle(pic);
            (out, true)
        };
        let e = encoder.encode(&pic)?;
        let start = video.len();
        // The first picture carries the parameter sets in band too: a player whose init
        // segment came from another request still decodes it.
        if let Some((sps, pps)) = &e.params {
            for p in [sps, pps] {
                video.extend_from_slice(&(p.len() as u32).to_be_bytes());
                video.extend_from_slice(p);
            }
        }
        video.extend_from_slice(&e.sample);
        out_samples.push(FragSample { duration: 0, size: (video.len() - start) as u32, key: e.key, cts: 0 });
        pts_out.push(pic.pts);
        if scaled {
            scaled_spare = pic.data;
        } else {
            decoder.recycle(pic);
        }
        Ok(())
    };
    let mut data = Vec::new();
    for f in &scan.fragments[k..=i] {
        let mut at = f.data_start;
        for (s, pts) in f.samples.iter().zip(presentation_times(f)) {
            data.resize(s.size as usize, 0);
            fh.read_exact_at(&mut data, at).map_err(file_err)?;
            at += u64::from(s.size);
            match decoder.decode(&data, pts, s.key) {
                Ok(Some(pic)) => encode(pic, &mut decoder)?,
                Ok(None) => {}
                // A damaged sample costs the pictures up to the next keyframe (counted by the
                // decoder); the fragment keeps the ones that decoded.
                Err(e) => tracing::warn!("transcoding {file}: a sample did not decode: {e}"),
            }
        }
    }
    for pic in decoder.flush() {
        encode(pic, &mut decoder)?;
    }
    if out_samples.is_empty() {
        return Err(CodecError::Malformed(format!("no picture of the fragment at {offset} of '{file}' decoded")).into());
    }
    // Durations: to the next picture; the last takes what is left of the fragment's own span,
    // so the variant's fragment lasts exactly as long as the recorded one (players that append
    // segments back to back keep the playlist's clock).
    let n = out_samples.len();
    for j in 0..n {
        let d = match pts_out.get(j + 1) {
            Some(next) => next - pts_out[j],
            None => {
                let used = pts_out[j] - pts_out[0];
                let left = span - used;
                if left > 0 { left } else { (last - first).max(1) / (n as i64).max(1) }
            }
        };
        out_samples[j].duration = u32::try_from(d.max(1)).unwrap_or(u32::MAX);
    }
    // The fragment's audio, as recorded.
    let audio_bytes: u64 = target.audio.iter().map(|a| u64::from(a.size)).sum();
    let video_bytes: u64 = target.samples.iter().map(|s| u64::from(s.size)).sum();
    let mut audio = vec![0u8; audio_bytes as usize];
    fh.read_exact_at(&mut audio, target.data_start + video_bytes).map_err(file_err)?;
    let audio_samples: Vec<AudioFragSample> = target.audio.clone();
    let part = target.audio_base.map(|base| AudioPart { base_decode_time: base, samples: &audio_samples });
    let base = u64::try_from(pts_out[0]).unwrap_or(0);
    let mut out = fragment_header(target.seq, base, &out_samples, part);
    out.extend_from_slice(&video);
    out.extend_from_slice(&audio);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_the_bad_parameter() {
        assert_eq!(VariantSpec::parse(None, None, None).unwrap(), None);
        let s = VariantSpec::parse(Some("H264"), Some("720"), Some("1500")).unwrap().unwrap();
        assert_eq!(s, VariantSpec { height: Some(720), kbps: 1500 });
        assert_eq!(s.query(), "codec=h264&height=720&bitrate=1500");
        // Height alone: H.264 at that height's usual rate; odd heights become even.
        assert_eq!(VariantSpec::parse(None, Some("361"), None).unwrap().unwrap().height, Some(360));
        for (c, h, b, name) in [
            (Some("h265"), None, None, "codec"),
            (Some("vp9"), Some("720"), None, "codec"),
            (None, Some("0"), None, "height"),
            (None, Some("100000"), None, "height"),
            (None, Some("tall"), None, "height"),
            (None, None, Some("5"), "bitrate"),
            (None, None, Some("900000"), "bitrate"),
        ] {
            match VariantSpec::parse(c, h, b) {
                Err(VariantError::BadRequest(m)) => assert!(m.starts_with(name), "{m}"),
                other => panic!("{c:?} {h:?} {b:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn output_keeps_the_aspect_and_never_enlarges() {
        let s = |h: Option<u32>| VariantSpec { height: h, kbps: 1000 };
        assert_eq!(s(Some(720)).output_size((1920, 1080)), (1280, 720));
        assert_eq!(s(Some(360)).output_size((1920, 1080)), (640, 360));
        assert_eq!(s(Some(2160)).output_size((1920, 1080)), (1920, 1080));
        assert_eq!(s(None).output_size((640, 360)), (640, 360));
        // Odd results round to even.
        assert_eq!(s(Some(100)).output_size((1000, 750)), (134, 100));
    }
}
