//! Fragments: `moof` + `mdat` header for a run of samples, written as the camera sends them.

use super::*;

/// One sample of a fragment: duration (90 kHz), size in bytes, whether it is a sync sample.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FragSample {
    /// Duration until the next sample, 90 kHz.
    pub duration: u32,
    /// Size of the sample data.
    pub size: u32,
    /// Random access point.
    pub key: bool,
}

/// Length of the `moof` + `mdat` header [`fragment_header`] writes for `samples` samples: what
/// lies between the end of one fragment's sample data and the next fragment's first sample, so
/// readers of the index find where a fragment starts without reading the file.
pub fn fragment_header_len(samples: usize) -> u64 {
    // moof 8, mfhd 16, traf 8, tfhd 16, tfdt 20, trun 20 + 12 per sample, mdat header 8.
    96 + 12 * samples as u64
}

/// Builds `moof` and the `mdat` header for `samples`; the samples' data must follow directly.
/// `base_decode_time` is the media time of the first sample (`tfdt`), `seq` the fragment's
/// sequence number in its segment (`mfhd`, from 1). Returns the header bytes; the first sample's
/// data starts at `header.len()` bytes past the header's own start.
pub fn fragment_header(seq: u32, base_decode_time: u64, samples: &[FragSample]) -> Vec<u8> {
    let mut out = Vec::with_capacity(100 + samples.len() * 12);
    let payload: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let mut data_offset_pos = 0;
    put_box(&mut out, b"moof", |out| {
        put_full_box(out, b"mfhd", 0, 0, |out| u32be(out, seq));
        put_box(out, b"traf", |out| {
            // default-base-is-moof: data offsets count from the start of this moof.
            put_full_box(out, b"tfhd", 0, 0x02_0000, |out| u32be(out, VIDEO_TRACK_ID));
            put_full_box(out, b"tfdt", 1, 0, |out| u64be(out, base_decode_time));
            // data-offset, sample-duration, sample-size, sample-flags present.
            put_full_box(out, b"trun", 0, 0x000701, |out| {
                u32be(out, samples.len() as u32);
                data_offset_pos = out.len();
                u32be(out, 0);
                for s in samples {
                    u32be(out, s.duration);
                    u32be(out, s.size);
                    u32be(out, sample_flags(s.key));
                }
            });
        });
    });
    let data_offset = (out.len() + 8) as u32;
    out[data_offset_pos..data_offset_pos + 4].copy_from_slice(&data_offset.to_be_bytes());
    u32be(&mut out, (payload + 8) as u32);
    out.extend_from_slice(b"mdat");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_matches_the_header() {
        for n in [1usize, 2, 25, 300] {
            let samples = vec![FragSample { duration: 3600, size: 1000, key: false }; n];
            assert_eq!(fragment_header(7, 1 << 40, &samples).len() as u64, fragment_header_len(n));
        }
    }
}
