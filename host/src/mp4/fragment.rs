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

#[cfg(test)]
mod tests {
    use super::*;

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
