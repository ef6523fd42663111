//! The compact per-segment sample index: what `stts`, `stsz`, `stss` and the chunk offsets of
//! an MP4 would say, in about 3 bytes a frame.
//!
//! A segment's index is a sequence of fragment records. Each record is
//! `varint(sample_count) varint(gap)` followed by `sample_count` samples, where `gap` is the
//! number of bytes between the end of the previous fragment's sample data (or the start of the
//! file) and this fragment's first sample (the `moof` and `mdat` headers in between). A sample is
//! `varint(zigzag(duration - prev_duration) << 1 | is_key)` then
//! `varint(zigzag(size - prev_size_of_same_kind))`; key and non-key frames keep separate
//! running sizes because their sizes differ by an order of magnitude. Everything an MP4 of any
//! range needs is derivable from this without reading video data. Format written down in
//! `docs/archive.md`.

/// Why an index blob could not be decoded: it is corrupt or truncated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sample index is corrupt at byte {at}: {what}")]
pub struct IndexError {
    /// Byte offset in the blob where decoding failed.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// One frame as the index describes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Media time of the frame relative to the segment's first frame (90 kHz).
    pub media_off: i64,
    /// Duration until the next frame (90 kHz).
    pub duration: u32,
    /// Size of the frame's data in bytes.
    pub size: u32,
    /// Whether the frame is a random access point (IDR).
    pub key: bool,
    /// Offset of the frame's data in the segment file.
    pub file_off: u64,
    /// Index of the fragment that holds the frame (chunks of an exported MP4 follow fragments).
    pub fragment: u32,
}

/// Appends samples to an index blob as fragments are written; keeps the running values needed
/// to continue the delta coding, so appending costs O(new samples).
#[derive(Clone, Debug, Default)]
pub struct IndexBuilder {
    blob: Vec<u8>,
    prev_dur: i64,
    prev_key_size: i64,
    prev_size: i64,
    data_end: u64,
    samples: u64,
    key_samples: u64,
    media_dur: i64,
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one fragment whose sample data starts at `data_start` in the file.
    /// `samples` are `(duration, size, is_key)`.
    pub fn push_fragment(&mut self, data_start: u64, samples: &[(u32, u32, bool)]) {
        let gap = data_start.saturating_sub(self.data_end);
        put_varint(&mut self.blob, samples.len() as u64);
        put_varint(&mut self.blob, gap);
        let mut end = data_start;
        for &(dur, size, key) in samples {
            let dur = i64::from(dur);
            let size = i64::from(size);
            put_varint(&mut self.blob, (zigzag(dur - self.prev_dur) << 1) | u64::from(key));
            let prev = if key { &mut self.prev_key_size } else { &mut self.prev_size };
            put_varint(&mut self.blob, zigzag(size - *prev));
            *prev = size;
            self.prev_dur = dur;
            end += size as u64;
            self.samples += 1;
            self.key_samples += u64::from(key);
            self.media_dur += dur;
        }
        self.data_end = end;
    }

    /// The encoded blob so far.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// File offset just past the last sample's data.
    pub fn data_end(&self) -> u64 {
        self.data_end
    }

    /// Number of samples so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Number of key samples so far.
    pub fn key_samples(&self) -> u64 {
        self.key_samples
    }

    /// Sum of sample durations so far (90 kHz).
    pub fn media_dur(&self) -> i64 {
        self.media_dur
    }

    /// Rebuilds the running state from an existing blob so a recovered segment can be extended.
    pub fn from_blob(blob: &[u8]) -> Result<Self, IndexError> {
        let mut b = IndexBuilder::new();
        let samples = decode(blob)?;
        b.blob = blob.to_vec();
        for s in &samples {
            b.prev_dur = i64::from(s.duration);
            if s.key {
                b.prev_key_size = i64::from(s.size);
            } else {
                b.prev_size = i64::from(s.size);
            }
            b.data_end = s.file_off + u64::from(s.size);
            b.samples += 1;
            b.key_samples += u64::from(s.key);
            b.media_dur += i64::from(s.duration);
        }
        Ok(b)
    }
}

/// Decodes a whole index blob.
pub fn decode(blob: &[u8]) -> Result<Vec<Sample>, IndexError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let (mut prev_dur, mut prev_key_size, mut prev_size) = (0i64, 0i64, 0i64);
    let mut data_end = 0u64;
    let mut media = 0i64;
    let mut fragment = 0u32;
    while pos < blob.len() {
        let n = get_varint(blob, &mut pos)?;
        let gap = get_varint(blob, &mut pos)?;
        if n > blob.len() as u64 {
            return Err(IndexError { at: pos, what: "sample count larger than the blob" });
        }
        let mut off = data_end.checked_add(gap).ok_or(IndexError { at: pos, what: "offset overflow" })?;
        for _ in 0..n {
            let a = get_varint(blob, &mut pos)?;
            let key = a & 1 == 1;
            let dur = prev_dur + unzigzag(a >> 1);
            let prev = if key { &mut prev_key_size } else { &mut prev_size };
            let size = *prev + unzigzag(get_varint(blob, &mut pos)?);
            if !(0..=i64::from(u32::MAX)).contains(&dur) {
                return Err(IndexError { at: pos, what: "duration out of range" });
            }
            if !(0..=i64::from(u32::MAX)).contains(&size) {
                return Err(IndexError { at: pos, what: "size out of range" });
            }
            *prev = size;
            prev_dur = dur;
            out.push(Sample {
                media_off: media,
                duration: dur as u32,
                size: size as u32,
                key,
                file_off: off,
                fragment,
            });
            media += dur;
            off += size as u64;
        }
        data_end = off;
        fragment += 1;
    }
    Ok(out)
}

/// One fragment (`moof` + `mdat`) as the index describes it: what HLS needs to address it as a
/// segment of its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Index of its first sample among the segment's samples.
    pub first_sample: usize,
    /// Number of samples.
    pub samples: usize,
    /// Media time of its first sample, relative to the segment's first frame.
    pub media_off: i64,
    /// Sum of its sample durations.
    pub media_dur: i64,
    /// File offset of its first sample's data.
    pub data_start: u64,
    /// File offset just past its last sample's data.
    pub data_end: u64,
    /// Whether its first sample is a keyframe (a player can start decoding there).
    pub starts_with_key: bool,
}

/// Groups decoded samples into their fragments, in file order.
pub fn fragments(samples: &[Sample]) -> Vec<Fragment> {
    let mut out: Vec<Fragment> = Vec::new();
    let mut current: Option<u32> = None;
    for (i, s) in samples.iter().enumerate() {
        match out.last_mut() {
            Some(f) if current == Some(s.fragment) => {
                f.samples += 1;
                f.media_dur += i64::from(s.duration);
                f.data_end = s.file_off + u64::from(s.size);
            }
            _ => {
                out.push(Fragment {
                    first_sample: i,
                    samples: 1,
                    media_off: s.media_off,
                    media_dur: i64::from(s.duration),
                    data_start: s.file_off,
                    data_end: s.file_off + u64::from(s.size),
                    starts_with_key: s.key,
                });
                current = Some(s.fragment);
            }
        }
    }
    out
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(blob: &[u8], pos: &mut usize) -> Result<u64, IndexError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = blob.get(*pos) else {
            return Err(IndexError { at: *pos, what: "truncated varint" });
        };
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(IndexError { at: *pos, what: "varint longer than 64 bits" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_gaps_and_keys() {
        let mut b = IndexBuilder::new();
        b.push_fragment(700, &[(3600, 40_000, true), (3600, 3_000, false), (3601, 2_900, false)]);
        b.push_fragment(b.data_end() + 120, &[(3599, 41_000, true), (3600, 3_100, false)]);
        let s = decode(b.blob()).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].file_off, 700);
        assert_eq!(s[1].file_off, 40_700);
        assert_eq!(s[3].file_off, 700 + 40_000 + 3_000 + 2_900 + 120);
        assert_eq!(s[3].fragment, 1);
        assert_eq!(s[4].media_off, 3600 * 3 + 1 + 3599);
        assert!(s[3].key && !s[4].key);
        let again = IndexBuilder::from_blob(b.blob()).unwrap();
        assert_eq!(again.data_end(), b.data_end());
        assert_eq!(again.media_dur(), b.media_dur());
    }

    #[test]
    fn typical_stream_costs_about_three_bytes_a_frame() {
        // 25 fps, GOP 50, P-frames of 4-6 kB, keyframes of 60 kB: like a 1-2 Mb/s camera.
        let mut b = IndexBuilder::new();
        let mut frames = Vec::new();
        for i in 0..750u32 {
            let key = i % 50 == 0;
            let size = if key { 60_000 + (i * 7) % 900 } else { 4_000 + (i * 7919) % 2_000 };
            frames.push((3600, size, key));
        }
        for chunk in frames.chunks(25) {
            b.push_fragment(b.data_end() + 100, chunk);
        }
        let per_frame = b.blob().len() as f64 / 750.0;
        assert!(per_frame <= 3.4, "{per_frame} bytes/frame");
    }

    #[test]
    fn fragments_group_samples_with_their_byte_ranges() {
        let mut b = IndexBuilder::new();
        b.push_fragment(700, &[(3600, 40_000, true), (3600, 3_000, false)]);
        b.push_fragment(b.data_end() + 120, &[(3600, 2_000, false)]);
        b.push_fragment(b.data_end() + 108, &[(3601, 41_000, true)]);
        let f = fragments(&decode(b.blob()).unwrap());
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].first_sample, f[0].samples, f[0].data_start, f[0].data_end), (0, 2, 700, 43_700));
        assert_eq!((f[1].media_off, f[1].media_dur, f[1].data_start), (7200, 3600, 43_820));
        assert!(f[0].starts_with_key && !f[1].starts_with_key && f[2].starts_with_key);
        assert_eq!((f[2].first_sample, f[2].media_dur, f[2].data_end), (3, 3601, 45_928 + 41_000));
        assert!(fragments(&[]).is_empty());
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        assert!(decode(&[0x80]).is_err());
        assert!(decode(&[5, 0, 0x02]).is_err());
        assert!(decode(&[0xff; 20]).is_err());
    }
}
