//! Fragments: `moof` + `mdat` header for a run of samples, written as the camera sends them.
//!
//! One `traf` for the video track and, when the fragment holds audio, one for the audio track;
//! the `mdat` holds the video samples, then the audio samples. The video `trun` carries
//! composition offsets (version 1, signed) only when a sample of the fragment has one, so a
//! stream without B-frames costs what it always did.

use super::*;

/// One video sample of a fragment: decode duration (90 kHz), size, sync, composition offset.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FragSample {
    /// Decode duration until the next sample, 90 kHz.
    pub duration: u32,
    /// Size of the sample data.
    pub size: u32,
    /// Random access point.
    pub key: bool,
    /// Presentation minus decode time, 90 kHz.
    pub cts: i32,
}

/// One audio sample of a fragment: duration in the audio track's clock and size.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AudioFragSample {
    /// Duration, audio clock.
    pub duration: u32,
    /// Size of the sample data.
    pub size: u32,
}

/// The audio part of a fragment: decode time of its first sample (audio clock, run-relative)
/// and its samples.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AudioPart<'a> {
    /// `tfdt` of the audio `traf`.
    pub base_decode_time: u64,
    /// The samples; their data follows the video data in the `mdat`.
    pub samples: &'a [AudioFragSample],
}

/// Length of the `moof` + `mdat` header [`fragment_header`] writes: what lies between the end of
/// one fragment's sample data and the next fragment's first video sample, so readers of the
/// index find where a fragment starts without reading the file.
pub fn fragment_header_len(video: usize, has_cts: bool, audio: usize) -> u64 {
    // moof 8, mfhd 16, traf 8, tfhd 16, tfdt 20, trun 20 + 12 (16 with cts) per sample, mdat 8.
    let per = if has_cts { 16 } else { 12 };
    let audio_traf = if audio > 0 { 64 + 8 * audio as u64 } else { 0 };
    96 + per * video as u64 + audio_traf
}

/// Builds `moof` and the `mdat` header for `samples` (and `audio`); the samples' data must
/// follow directly, video first. `base_decode_time` is the decode time of the first video
/// sample (`tfdt`), `seq` the fragment's sequence number in its segment (`mfhd`, from 1).
pub fn fragment_header(
    seq: u32,
    base_decode_time: u64,
    samples: &[FragSample],
    audio: Option<AudioPart<'_>>,
) -> Vec<u8> {
    let audio = audio.filter(|a| !a.samples.is_empty());
    let mut out = Vec::with_capacity(170 + samples.len() * 16 + audio.map_or(0, |a| a.samples.len() * 8));
    let video_payload: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let audio_payload: u64 = audio.map_or(0, |a| a.samples.iter().map(|s| u64::from(s.size)).sum());
    let has_cts = samples.iter().any(|s| s.cts != 0);
    let mut video_offset_pos = 0;
    let mut audio_offset_pos = None;
    put_box(&mut out, b"moof", |out| {
        put_full_box(out, b"mfhd", 0, 0, |out| u32be(out, seq));
        put_box(out, b"traf", |out| {
            // default-base-is-moof: data offsets count from the start of this moof.
            put_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32be(out, VIDEO_TRACK_ID));
            put_full_box(out, b"tfdt", 1, 0, |out| u64be(out, base_decode_time));
            // data-offset, sample-duration, sample-size, sample-flags present; with B-frames
            // also sample-composition-time-offset, signed (version 1).
            let (version, flags) = if has_cts { (1, 0x000f01) } else { (0, 0x000701) };
            put_full_box(out, b"trun", version, flags, |out| {
                u32be(out, samples.len() as u32);
                video_offset_pos = out.len();
                u32be(out, 0);
                for s in samples {
                    u32be(out, s.duration);
                    u32be(out, s.size);
                    u32be(out, sample_flags(s.key));
                    if has_cts {
                        out.extend_from_slice(&s.cts.to_be_bytes());
                    }
                }
            });
        });
        if let Some(a) = audio {
            put_box(out, b"traf", |out| {
                put_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32be(out, AUDIO_TRACK_ID));
                put_full_box(out, b"tfdt", 1, 0, |out| u64be(out, a.base_decode_time));
                // data-offset, sample-duration, sample-size; every audio sample is a sync
                // sample (trex default).
                put_full_box(out, b"trun", 0, 0x000301, |out| {
                    u32be(out, a.samples.len() as u32);
                    audio_offset_pos = Some(out.len());
                    u32be(out, 0);
                    for s in a.samples {
                        u32be(out, s.duration);
                        u32be(out, s.size);
                    }
                });
            });
        }
    });
    let data_offset = (out.len() + 8) as u32;
    out[video_offset_pos..video_offset_pos + 4].copy_from_slice(&data_offset.to_be_bytes());
    if let Some(pos) = audio_offset_pos {
        let audio_offset = data_offset + video_payload as u32;
        out[pos..pos + 4].copy_from_slice(&audio_offset.to_be_bytes());
    }
    u32be(&mut out, (video_payload + audio_payload + 8) as u32);
    out.extend_from_slice(b"mdat");
    out
}

/// A `sidx` (segment index, version 1) of fragments that follow it back to back, each given
/// as (bytes of `moof` + `mdat`, duration in `timescale`), the first starting at time 0 and
/// with a keyframe: what lets a player of a fragmented file seek without reading every `moof`
/// first (libavformat, and so Chromium's `<video src>`, seeks only within fragments it has
/// read otherwise).
pub fn sidx(timescale: u32, fragments: &[(u64, u64)]) -> Result<Vec<u8>, String> {
    let count =
        u16::try_from(fragments.len()).map_err(|_| format!("{} fragments: more than a sidx lists", fragments.len()))?;
    let mut out = Vec::with_capacity(40 + 12 * fragments.len());
    let mut bad = None;
    put_full_box(&mut out, b"sidx", 1, 0, |out| {
        u32be(out, VIDEO_TRACK_ID);
        u32be(out, timescale);
        u64be(out, 0); // earliest presentation time
        u64be(out, 0); // first fragment right after this box
        u16be(out, 0);
        u16be(out, count);
        for &(size, duration) in fragments {
            match (u32::try_from(size).ok().filter(|s| *s < 1 << 31), u32::try_from(duration)) {
                (Some(size), Ok(duration)) => {
                    u32be(out, size); // reference type 0: media
                    u32be(out, duration);
                    u32be(out, 0x9000_0000); // starts with SAP, type 1
                }
                _ => bad = Some(format!("a fragment of {size} bytes and {duration} ticks does not fit a sidx")),
            }
        }
    });
    match bad {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The box at `at` in `b[..end]`: its type, where its body starts and where it ends (32-bit
/// sizes only: what [`fragment_header`] writes).
fn box_at(b: &[u8], at: usize, end: usize) -> Option<([u8; 4], usize, usize)> {
    let size = u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize;
    let typ: [u8; 4] = b.get(at + 4..at + 8)?.try_into().ok()?;
    (size >= 8 && at + size <= end).then_some((typ, at + 8, at + size))
}

/// Moves a fragment written by [`fragment_header`] (a transcoded variant segment, cached as
/// made) to its place in another file: its `mfhd` sequence number becomes `seq`, its video
/// `tfdt` becomes `video_tfdt` (90 kHz), and its audio `tfdt` moves by the same time in the
/// audio track's clock (`audio_rate`), so the sound stays where it was against the pictures.
/// Only numbers change, never a length: a file laid out from its fragments' lengths keeps its
/// offsets.
pub fn retime(frag: &mut [u8], seq: u32, video_tfdt: u64, audio_rate: Option<u32>) -> Result<(), String> {
    let bad = |what: &str| format!("not a fragment openva wrote: {what}");
    let (typ, body, moof_end) = box_at(frag, 0, frag.len()).ok_or_else(|| bad("no box"))?;
    if &typ != b"moof" {
        return Err(bad("it does not start with moof"));
    }
    // (track, position of the tfdt's number, 64-bit)
    let mut times: Vec<(u32, usize, bool)> = Vec::new();
    let mut at = body;
    while at < moof_end {
        let (typ, body, end) = box_at(frag, at, moof_end).ok_or_else(|| bad("a box overruns moof"))?;
        match &typ {
            b"mfhd" if end >= body + 8 => frag[body + 4..body + 8].copy_from_slice(&seq.to_be_bytes()),
            b"traf" => {
                let (mut track, mut tfdt) = (None, None);
                let mut c = body;
                while c < end {
                    let (typ, cbody, cend) = box_at(frag, c, end).ok_or_else(|| bad("a box overruns traf"))?;
                    match &typ {
                        b"tfhd" if cend >= cbody + 8 => {
                            track = Some(u32::from_be_bytes([
                                frag[cbody + 4],
                                frag[cbody + 5],
                                frag[cbody + 6],
                                frag[cbody + 7],
                            ]))
                        }
                        b"tfdt" if cend >= cbody + 8 => {
                            let wide = frag[cbody] == 1;
                            if cend < cbody + if wide { 12 } else { 8 } {
                                return Err(bad("short tfdt"));
                            }
                            tfdt = Some((cbody + 4, wide));
                        }
                        _ => {}
                    }
                    c = cend;
                }
                if let (Some(track), Some((pos, wide))) = (track, tfdt) {
                    times.push((track, pos, wide));
                }
            }
            _ => {}
        }
        at = end;
    }
    let read = |frag: &[u8], pos: usize, wide: bool| -> u64 {
        if wide {
            u64::from_be_bytes(frag[pos..pos + 8].try_into().unwrap_or_default())
        } else {
            u64::from(u32::from_be_bytes(frag[pos..pos + 4].try_into().unwrap_or_default()))
        }
    };
    let write = |frag: &mut [u8], pos: usize, wide: bool, v: u64| -> Result<(), String> {
        if wide {
            frag[pos..pos + 8].copy_from_slice(&v.to_be_bytes());
        } else {
            let v = u32::try_from(v).map_err(|_| format!("a time of {v} does not fit a 32-bit tfdt"))?;
            frag[pos..pos + 4].copy_from_slice(&v.to_be_bytes());
        }
        Ok(())
    };
    let &(_, vpos, vwide) = times.iter().find(|t| t.0 == VIDEO_TRACK_ID).ok_or_else(|| bad("no video tfdt"))?;
    let moved = i128::from(video_tfdt) - i128::from(read(frag, vpos, vwide));
    write(frag, vpos, vwide, video_tfdt)?;
    if let (Some(&(_, apos, awide)), Some(rate)) = (times.iter().find(|t| t.0 == AUDIO_TRACK_ID), audio_rate) {
        let old = i128::from(read(frag, apos, awide));
        let new = old + moved * i128::from(rate) / i128::from(TIMESCALE);
        write(frag, apos, awide, u64::try_from(new.max(0)).unwrap_or(0))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retimed_fragments_move_both_tracks_and_keep_their_length() {
        let samples = [FragSample { duration: 3600, size: 3, key: true, cts: 0 }; 2];
        let audio = [AudioFragSample { duration: 1024, size: 2 }; 3];
        let part = AudioPart { base_decode_time: 48_000, samples: &audio };
        let mut f = fragment_header(7, 90_000, &samples, Some(part));
        f.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let len = f.len();
        // Two seconds later in the new file: audio (48 kHz) moves by two seconds too.
        retime(&mut f, 3, 270_000, Some(48_000)).unwrap();
        assert_eq!(f.len(), len);
        let moof = crate::mp4::parse::child(&f[..], b"moof").unwrap();
        let mfhd = crate::mp4::parse::child(moof, b"mfhd").unwrap();
        assert_eq!(mfhd[4..8], 3u32.to_be_bytes());
        let tfdts: Vec<u64> = crate::mp4::parse::children(moof)
            .filter(|(t, _)| t == b"traf")
            .map(|(_, traf)| {
                let t = crate::mp4::parse::child(traf, b"tfdt").unwrap();
                u64::from_be_bytes(t[4..12].try_into().unwrap())
            })
            .collect();
        assert_eq!(tfdts, [270_000, 144_000]);
        // Earlier than the audio's own start: clamped at zero, never wrapped.
        retime(&mut f, 1, 0, Some(48_000)).unwrap();
        assert!(retime(&mut [0u8; 16], 1, 0, None).is_err());
        assert!(retime(&mut f[..20], 1, 0, None).is_err());
    }

    #[test]
    fn sidx_lists_each_fragment() {
        let b = sidx(90_000, &[(1000, 90_000), (1200, 45_000)]).unwrap();
        assert_eq!(b.len(), 40 + 2 * 12);
        assert_eq!(u32::from_be_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
        assert_eq!(&b[4..8], b"sidx");
        assert_eq!(b[8], 1, "version 1");
        assert_eq!(u32::from_be_bytes(b[16..20].try_into().unwrap()), 90_000);
        assert_eq!(u16::from_be_bytes([b[38], b[39]]), 2);
        assert_eq!(u32::from_be_bytes(b[40..44].try_into().unwrap()), 1000);
        assert_eq!(u32::from_be_bytes(b[48..52].try_into().unwrap()), 0x9000_0000);
        assert_eq!(u32::from_be_bytes(b[56..60].try_into().unwrap()), 45_000);
        assert!(sidx(90_000, &[(1 << 31, 1)]).is_err());
    }

    #[test]
    fn header_len_matches_the_header() {
        for n in [1usize, 2, 25, 300] {
            for cts in [0, -3600] {
                let mut samples = vec![FragSample { duration: 3600, size: 1000, key: false, cts: 0 }; n];
                samples[n - 1].cts = cts;
                for na in [0usize, 1, 40] {
                    let audio = vec![AudioFragSample { duration: 1024, size: 300 }; na];
                    let part = AudioPart { base_decode_time: 7, samples: &audio };
                    let h = fragment_header(7, 1 << 40, &samples, Some(part));
                    assert_eq!(h.len() as u64, fragment_header_len(n, cts != 0, na), "{n} {cts} {na}");
                }
            }
        }
    }
}
