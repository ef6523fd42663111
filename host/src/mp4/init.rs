//! Init segments: `ftyp` + `moov` (with `mvex`) describing one codec configuration.
//!
//! Every segment file starts with one, so a segment plays on its own (`ffmpeg -i SEG`), and the
//! same bytes serve as HLS `EXT-X-MAP` later.

use super::*;

/// Builds the init segment for one video sample entry (`avc1`/`hvc1` box bytes) and, when the
/// segment records audio, one audio track.
pub fn init_segment(sample_entry: &[u8], width: u32, height: u32, audio: Option<&AudioTrack<'_>>) -> Vec<u8> {
    init_segment_lasting(sample_entry, width, height, audio, 0)
}

/// [`init_segment`] of a fragmented file whose fragments last `duration` (90 kHz) in all, when
/// that is known before they are made (a transcoded MP4 of a recorded range): `mvhd`, `mehd`
/// and each track's `tkhd` and `mdhd` say it, so a player shows the file's length and can seek
/// before it has read every fragment (libavformat, and so Chromium's `<video src>`, takes a
/// fragmented file's length from the tracks, else from the fragments it has read so far).
/// `0`: unknown (segment files, HLS maps), no `mehd`.
pub fn init_segment_lasting(
    sample_entry: &[u8],
    width: u32,
    height: u32,
    audio: Option<&AudioTrack<'_>>,
    duration: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(900 + sample_entry.len() + audio.map_or(0, |a| a.sample_entry.len()));
    let brand: &[u8; 4] = if sample_entry.get(4..8) == Some(b"hvc1") { b"hvc1" } else { b"avc1" };
    put_ftyp(&mut out, b"iso6", &[b"isom", b"iso6", b"iso2", brand, b"mp41"]);
    put_box(&mut out, b"moov", |out| {
        put_mvhd(out, duration, if audio.is_some() { AUDIO_TRACK_ID + 1 } else { VIDEO_TRACK_ID + 1 });
        put_box(out, b"trak", |out| {
            put_tkhd(out, duration, width, height);
            put_box(out, b"mdia", |out| {
                put_mdhd_hdlr(out, duration);
                put_box(out, b"minf", |out| {
                    put_vmhd_dinf(out);
                    put_box(out, b"stbl", |out| empty_stbl(out, sample_entry));
                });
            });
        });
        if let Some(a) = audio {
            put_box(out, b"trak", |out| {
                put_audio_tkhd(out, duration);
                put_box(out, b"mdia", |out| {
                    let audio_duration =
                        crate::time::rescale(duration as i64, i64::from(TIMESCALE), i64::from(a.timescale));
                    put_audio_mdhd_hdlr(out, a.timescale, u64::try_from(audio_duration).unwrap_or(0));
                    put_box(out, b"minf", |out| {
                        put_smhd_dinf(out);
                        put_box(out, b"stbl", |out| empty_stbl(out, a.sample_entry));
                    });
                });
            });
        }
        put_box(out, b"mvex", |out| {
            if duration > 0 {
                put_full_box(out, b"mehd", 1, 0, |out| u64be(out, duration));
            }
            put_trex(out, VIDEO_TRACK_ID, sample_flags(false));
            if audio.is_some() {
                put_trex(out, AUDIO_TRACK_ID, sample_flags(true));
            }
        });
    });
    out
}

/// A sample table with one sample entry and no samples (they are in the fragments).
fn empty_stbl(out: &mut Vec<u8>, sample_entry: &[u8]) {
    put_stsd(out, &[sample_entry]);
    for t in [b"stts", b"stsc", b"stco"] {
        put_full_box(out, t, 0, 0, |out| u32be(out, 0));
    }
    put_full_box(out, b"stsz", 0, 0, |out| {
        u32be(out, 0);
        u32be(out, 0);
    });
}

fn put_trex(out: &mut Vec<u8>, track: u32, default_flags: u32) {
    put_full_box(out, b"trex", 0, 0, |out| {
        u32be(out, track);
        u32be(out, 1); // sample description index
        u32be(out, 0);
        u32be(out, 0);
        u32be(out, default_flags);
    });
}

/// Builds an `avc1` sample entry (with `avcC`) from one SPS and one PPS: what an encoded
/// stream needs to be muxed (ingest gets its entries from retina instead).
pub fn avc1_sample_entry(sps: &[u8], pps: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    if sps.len() < 4 || sps.len() > 0xffff || pps.is_empty() || pps.len() > 0xffff {
        return Err(format!("bad parameter sets (SPS {} bytes, PPS {} bytes)", sps.len(), pps.len()));
    }
    let (w, h) =
        (u16::try_from(width).map_err(|_| "width too large")?, u16::try_from(height).map_err(|_| "height too large")?);
    let mut out = Vec::with_capacity(120 + sps.len() + pps.len());
    put_box(&mut out, b"avc1", |out| {
        out.extend_from_slice(&[0; 6]); // reserved
        u16be(out, 1); // data reference index
        out.extend_from_slice(&[0; 16]); // pre_defined, reserved
        u16be(out, w);
        u16be(out, h);
        u32be(out, 0x0048_0000); // 72 dpi
        u32be(out, 0x0048_0000);
        u32be(out, 0);
        u16be(out, 1); // frame count
        out.extend_from_slice(&[0; 32]); // compressor name
        u16be(out, 0x0018); // depth
        u16be(out, 0xffff); // pre_defined = -1
        put_box(out, b"avcC", |out| {
            out.push(1); // configurationVersion
            out.extend_from_slice(&sps[1..4]); // profile, compatibility, level
            out.push(0xff); // 4-byte NAL lengths
            out.push(0xe1); // one SPS
            u16be(out, sps.len() as u16);
            out.extend_from_slice(sps);
            out.push(1); // one PPS
            u16be(out, pps.len() as u16);
            out.extend_from_slice(pps);
        });
    });
    Ok(out)
}

/// The first SPS and PPS of an `avc1` sample entry's `avcC`: what a decoder needs before the
/// stream's first sample. `None` for anything else.
pub fn avc1_parameter_sets(sample_entry: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    // avc1 box: 8-byte header, 78 bytes of visual sample entry fields, then child boxes.
    if sample_entry.get(4..8)? != b"avc1" {
        return None;
    }
    let mut rest = sample_entry.get(8 + 78..)?;
    while rest.len() >= 8 {
        let size = u32::from_be_bytes(rest[..4].try_into().ok()?) as usize;
        if size < 8 || size > rest.len() {
            return None;
        }
        if &rest[4..8] == b"avcC" {
            let c = &rest[8..size];
            let n_sps = usize::from(*c.get(5)? & 0x1f);
            let (sps, at) = first_of_sets(c, 6, n_sps)?;
            let n_pps = usize::from(*c.get(at)?);
            let (pps, _) = first_of_sets(c, at + 1, n_pps)?;
            return sps.zip(pps);
        }
        rest = &rest[size..];
    }
    None
}

/// The first of `n` 16-bit-length-prefixed parameter sets starting at `at`, and the offset past
/// all of them.
fn first_of_sets(c: &[u8], mut at: usize, n: usize) -> Option<(Option<Vec<u8>>, usize)> {
    let mut first = None;
    for _ in 0..n {
        let len = usize::from(u16::from_be_bytes([*c.get(at)?, *c.get(at + 1)?]));
        first.get_or_insert_with(|| c.get(at + 2..at + 2 + len).map(<[u8]>::to_vec));
        at += 2 + len;
    }
    Some((first.flatten(), at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc1_round_trips_its_parameter_sets() {
        let sps = vec![0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9];
        let pps = vec![0x68, 0xeb, 0xe3, 0xcb];
        let entry = avc1_sample_entry(&sps, &pps, 640, 360).expect("entry");
        assert_eq!(avc1_parameter_sets(&entry), Some((sps, pps)));
        assert_eq!(avc1_parameter_sets(&entry[..40]), None);
        assert_eq!(avc1_parameter_sets(b"garbage garbage"), None);
    }
}
