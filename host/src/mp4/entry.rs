//! What a sample entry box says about its track: the RFC 6381 codec string players need (HLS
//! `CODECS`, `MediaSource.isTypeSupported`), and an audio track's rate and channels. The
//! archive stores sample entries as the camera's parameters made them; everything else about a
//! track's codec is read from them here, so there is one source of truth.

use super::parse::child;

/// The video codecs the archive records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum VideoCodec {
    /// H.264 / AVC (`avc1`).
    H264,
    /// H.265 / HEVC (`hvc1`).
    H265,
}

impl VideoCodec {
    /// The codec's common name, as messages and `mediaInfo` give it.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::H265 => "H.265",
        }
    }
}

/// The video codec of a sample entry, if it is one the archive records.
pub fn video_codec(entry: &[u8]) -> Option<VideoCodec> {
    match entry.get(4..8)? {
        b"avc1" | b"avc3" => Some(VideoCodec::H264),
        b"hvc1" | b"hev1" => Some(VideoCodec::H265),
        _ => None,
    }
}

/// The picture size a visual sample entry declares.
pub fn picture_size(entry: &[u8]) -> Option<(u32, u32)> {
    video_codec(entry)?;
    let w = u16::from_be_bytes(entry.get(8 + 24..8 + 26)?.try_into().ok()?);
    let h = u16::from_be_bytes(entry.get(8 + 26..8 + 28)?.try_into().ok()?);
    Some((u32::from(w), u32::from(h)))
}

/// Bytes of the fixed part of a visual sample entry, after the box header.
const VISUAL_FIXED: usize = 78;
/// Bytes of the fixed part of an audio sample entry, after the box header.
const AUDIO_FIXED: usize = 28;

/// The body of a sample entry's child box (`avcC`, `hvcC`, `esds`, `dfLa`).
fn config_box<'a>(entry: &'a [u8], fixed: usize, typ: &[u8; 4]) -> Option<&'a [u8]> {
    let size = u32::from_be_bytes(entry.get(..4)?.try_into().ok()?) as usize;
    child(entry.get(8 + fixed..size.min(entry.len()))?, typ)
}

/// The RFC 6381 codec string of a sample entry: `avc1.64001F`, `hvc1.1.6.L93.B0`,
/// `mp4a.40.2`, `flac`. `None` for entries this module does not know.
pub fn codec_string(entry: &[u8]) -> Option<String> {
    match entry.get(4..8)? {
        t @ (b"avc1" | b"avc3") => {
            let c = config_box(entry, VISUAL_FIXED, b"avcC")?;
            let kind = std::str::from_utf8(t).ok()?;
            Some(format!("{kind}.{:02X}{:02X}{:02X}", c.get(1)?, c.get(2)?, c.get(3)?))
        }
        t @ (b"hvc1" | b"hev1") => {
            let c = config_box(entry, VISUAL_FIXED, b"hvcC")?;
            let kind = std::str::from_utf8(t).ok()?;
            hevc_codec(kind, c)
        }
        b"mp4a" => {
            let esds = config_box(entry, AUDIO_FIXED, b"esds")?;
            let (oti, asc) = esds_info(esds.get(4..)?)?;
            match (oti, asc.first()) {
                (0x40, Some(&b)) => {
                    // The audio object type: 5 bits, 31 escapes to 32 + the next 6 bits.
                    let aot = b >> 3;
                    let aot = if aot == 31 { 32 + ((b & 7) << 3 | asc.get(1)? >> 5) } else { aot };
                    Some(format!("mp4a.40.{aot}"))
                }
                (oti, _) => Some(format!("mp4a.{oti:02X}")),
            }
        }
        b"fLaC" => Some("flac".to_owned()),
        b"Opus" => Some("opus".to_owned()),
        _ => None,
    }
}

/// Every parameter set NAL unit of a video sample entry, in the order a decoder wants them
/// before the first sample: SPS then PPS from `avcC`; VPS, SPS, PPS (and SEI) from `hvcC`.
/// `None` for an entry that is not H.264 or H.265 or whose configuration box is damaged.
pub fn parameter_sets(entry: &[u8]) -> Option<(VideoCodec, Vec<Vec<u8>>)> {
    fn take(c: &[u8], at: &mut usize, n: usize, out: &mut Vec<Vec<u8>>) -> Option<()> {
        for _ in 0..n {
            let len = usize::from(u16::from_be_bytes(c.get(*at..*at + 2)?.try_into().ok()?));
            out.push(c.get(*at + 2..*at + 2 + len)?.to_vec());
            *at += 2 + len;
        }
        Some(())
    }
    let codec = video_codec(entry)?;
    let mut out = Vec::new();
    match codec {
        VideoCodec::H264 => {
            let c = config_box(entry, VISUAL_FIXED, b"avcC")?;
            let mut at = 6;
            take(c, &mut at, usize::from(*c.get(5)? & 0x1f), &mut out)?;
            let n_pps = usize::from(*c.get(at)?);
            at += 1;
            take(c, &mut at, n_pps, &mut out)?;
        }
        VideoCodec::H265 => {
            let c = config_box(entry, VISUAL_FIXED, b"hvcC")?;
            let arrays = usize::from(*c.get(22)?);
            let mut at = 23;
            for _ in 0..arrays {
                let n = usize::from(u16::from_be_bytes(c.get(at + 1..at + 3)?.try_into().ok()?));
                at += 3;
                take(c, &mut at, n, &mut out)?;
            }
        }
    }
    Some((codec, out))
}

/// `hvc1.<profile space><profile>.<compatibility, bit-reversed hex>.<tier><level>.<constraints>`
/// (ISO/IEC 14496-15 Annex E) from an `hvcC` body.
fn hevc_codec(kind: &str, c: &[u8]) -> Option<String> {
    let b = *c.get(1)?;
    let space = ["", "A", "B", "C"][usize::from(b >> 6)];
    let tier = if b & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b & 0x1f;
    let compat = u32::from_be_bytes(c.get(2..6)?.try_into().ok()?).reverse_bits();
    let constraints = c.get(6..12)?;
    let level = *c.get(12)?;
    let mut s = format!("{kind}.{space}{profile}.{compat:X}.{tier}{level}");
    let used = constraints.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    for x in &constraints[..used] {
        s.push_str(&format!(".{x:X}"));
    }
    Some(s)
}

/// An `esds` body after its version and flags: the decoder config's object type indication and
/// the decoder specific info (AAC's AudioSpecificConfig).
fn esds_info(mut d: &[u8]) -> Option<(u8, &[u8])> {
    // ES_Descriptor (3) holds DecoderConfigDescriptor (4) holds DecoderSpecificInfo (5).
    fn descriptor(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let tag = *d.first()?;
        let mut len = 0usize;
        let mut at = 1;
        loop {
            let b = *d.get(at)?;
            len = (len << 7) | usize::from(b & 0x7f);
            at += 1;
            if b & 0x80 == 0 || at > 4 {
                break;
            }
        }
        let body = d.get(at..at + len)?;
        Some((tag, body, &d[at + len..]))
    }
    let (tag, es, _) = descriptor(d)?;
    if tag != 3 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    d = es.get(at..)?;
    let (tag, dc, _) = descriptor(d)?;
    if tag != 4 {
        return None;
    }
    let oti = *dc.first()?;
    let asc = match descriptor(dc.get(13..)?) {
        Some((5, asc, _)) => asc,
        _ => &[],
    };
    Some((oti, asc))
}

/// An audio sample entry's sample rate and channel count (from the entry, or for FLAC from its
/// STREAMINFO, which also carries rates above 65535 Hz).
pub fn audio_info(entry: &[u8]) -> Option<(u32, u16)> {
    let channels = u16::from_be_bytes(entry.get(8 + 16..8 + 18)?.try_into().ok()?);
    let rate = u32::from_be_bytes(entry.get(8 + 24..8 + 28)?.try_into().ok()?) >> 16;
    if entry.get(4..8)? == b"fLaC"
        && let Some(d) = config_box(entry, AUDIO_FIXED, b"dfLa")
    {
        // version/flags 4, block header 4, then STREAMINFO: rate at bit 80 (20 bits).
        let si = d.get(8..8 + 34)?;
        let packed = u64::from_be_bytes(si.get(10..18)?.try_into().ok()?);
        return Some(((packed >> 44) as u32, ((packed >> 41) & 7) as u16 + 1));
    }
    (rate > 0 && channels > 0).then_some((rate, channels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_and_hevc_codec_strings() {
        let sps = [0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
        let pps = [0x68, 0xeb, 0xe3, 0xcb];
        let avc1 = crate::mp4::init::avc1_sample_entry(&sps, &pps, 640, 360).unwrap();
        assert_eq!(codec_string(&avc1).as_deref(), Some("avc1.64001F"));
        assert_eq!(picture_size(&avc1), Some((640, 360)));
        assert_eq!(video_codec(&avc1), Some(VideoCodec::H264));
        // An hvcC of Main profile, level 3.1, as x265 writes it.
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        hvcc.extend_from_slice(&[0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 0]);
        let mut hvc1 = Vec::new();
        crate::mp4::put_box(&mut hvc1, b"hvc1", |o| {
            o.extend_from_slice(&[0; VISUAL_FIXED]);
            crate::mp4::put_box(o, b"hvcC", |o| o.extend_from_slice(&hvcc));
        });
        assert_eq!(codec_string(&hvc1).as_deref(), Some("hvc1.1.6.L93.B0"));
        assert_eq!(video_codec(&hvc1), Some(VideoCodec::H265));
        assert_eq!(codec_string(b"garbage"), None);
        assert_eq!(codec_string(&hvc1[..20]), None);
    }

    #[test]
    fn parameter_sets_of_avcc_and_hvcc() {
        let (sps, pps) = ([0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9], [0x68, 0xeb, 0xe3, 0xcb]);
        let avc1 = crate::mp4::init::avc1_sample_entry(&sps, &pps, 640, 360).unwrap();
        assert_eq!(parameter_sets(&avc1), Some((VideoCodec::H264, vec![sps.to_vec(), pps.to_vec()])));
        // hvcC with three arrays (VPS, SPS, two PPS), as x265 writes them.
        let mut hvcc = vec![1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        hvcc.extend_from_slice(&[0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 3]);
        hvcc.extend_from_slice(&[0xa0, 0, 1, 0, 2, 0x40, 0x01]);
        hvcc.extend_from_slice(&[0xa1, 0, 1, 0, 3, 0x42, 0x01, 0x01]);
        hvcc.extend_from_slice(&[0xa2, 0, 2, 0, 2, 0x44, 0x01, 0, 3, 0x44, 0x01, 0xc1]);
        let mut hvc1 = Vec::new();
        crate::mp4::put_box(&mut hvc1, b"hvc1", |o| {
            o.extend_from_slice(&[0; VISUAL_FIXED]);
            crate::mp4::put_box(o, b"hvcC", |o| o.extend_from_slice(&hvcc));
        });
        let sets: Vec<Vec<u8>> =
            vec![vec![0x40, 0x01], vec![0x42, 0x01, 0x01], vec![0x44, 0x01], vec![0x44, 0x01, 0xc1]];
        assert_eq!(parameter_sets(&hvc1), Some((VideoCodec::H265, sets)));
        // A length running past the box: no sets rather than a panic.
        let cut = hvc1.len() - 2;
        let mut broken = hvc1[..cut].to_vec();
        broken[..4].copy_from_slice(&(cut as u32).to_be_bytes());
        assert_eq!(parameter_sets(&broken), None);
        assert_eq!(parameter_sets(b"garbage"), None);
    }

    #[test]
    fn aac_codec_string_and_info() {
        // mp4a, 48 kHz mono, esds with AudioSpecificConfig 0x11 0x88 (AAC-LC, 48 kHz, mono).
        let mut mp4a = Vec::new();
        crate::mp4::put_box(&mut mp4a, b"mp4a", |o| {
            o.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
            o.extend_from_slice(&[0, 1, 0, 16, 0, 0, 0, 0]);
            o.extend_from_slice(&(48_000u32 << 16).to_be_bytes());
            crate::mp4::put_full_box(o, b"esds", 0, 0, |o| {
                o.extend_from_slice(&[3, 25, 0, 1, 0]);
                o.extend_from_slice(&[4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
                o.extend_from_slice(&[5, 2, 0x11, 0x88]);
                o.extend_from_slice(&[6, 1, 2]);
            });
        });
        assert_eq!(codec_string(&mp4a).as_deref(), Some("mp4a.40.2"));
        assert_eq!(audio_info(&mp4a), Some((48_000, 1)));
    }
}
