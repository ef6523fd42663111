//! The compact per-segment sample index: what `stts`, `ctts`, `stsz`, `stss` and the chunk
//! offsets of an MP4 would say, for the video track and the audio track, in about 3 bytes a
//! frame. Format written down in `docs/archive.md`, "The sample index".
//!
//! A segment's index is a sequence of fragment records, one per `moof` + `mdat`. Version 2
//! (every segment written since audio and B-frames) starts with the bytes `00 02`; then each
//! record is `varint(video samples) varint(audio samples) varint(gap)` followed by the video
//! samples, then the audio samples. `gap` is the number of bytes between the end of the
//! previous fragment's sample data (or the start of the file) and this fragment's first video
//! sample: the `moof` and `mdat` headers in between. Audio data follows the fragment's video
//! data directly.
//!
//! A video sample is `varint(zigzag(duration − previous duration) << 2 | cts changed << 1 |
//! is_key)`, then `varint(zigzag(cts − previous cts))` if the composition offset changed, then
//! `varint(zigzag(size − previous size of the same kind))`; key and non-key frames keep separate
//! running sizes because their sizes differ by an order of magnitude. An audio sample is
//! `varint(zigzag(duration − previous)) varint(zigzag(size − previous))`, durations in the audio
//! track's own clock.
//!
//! Version 1 (segments written before) has no header, no audio count and no composition
//! offsets: records are `varint(n) varint(gap)` and samples
//! `varint(zigzag(Δduration) << 1 | is_key) varint(zigzag(Δsize))`. Both decode to the same
//! types. Everything an MP4 of any range needs is derivable from this without reading media.

/// Why an index blob could not be decoded: it is corrupt or truncated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("sample index is corrupt at byte {at}: {what}")]
pub struct IndexError {
    /// Byte offset in the blob where decoding failed.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

/// The header of a version 2 index (a version 1 index never starts with a zero byte: its first
/// byte is the non-zero sample count of its first fragment).
const V2_HEADER: [u8; 2] = [0, 2];

/// One video frame as the index describes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Decode time of the frame relative to the segment's first frame (90 kHz).
    pub media_off: i64,
    /// Decode duration until the next frame (90 kHz).
    pub duration: u32,
    /// Composition offset: presentation time minus decode time (90 kHz; B-frames).
    pub cts: i32,
    /// Size of the frame's data in bytes.
    pub size: u32,
    /// Whether the frame is a random access point (IDR).
    pub key: bool,
    /// Offset of the frame's data in the segment file.
    pub file_off: u64,
    /// Index of the fragment that holds the frame (chunks of an exported MP4 follow fragments).
    pub fragment: u32,
}

impl Sample {
    /// Presentation time relative to the segment's first frame's decode time.
    pub fn pts_off(&self) -> i64 {
        self.media_off + i64::from(self.cts)
    }
}

/// One audio frame as the index describes it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AudioSample {
    /// Time relative to the segment's audio start, in the audio track's clock.
    pub media_off: i64,
    /// Duration in the audio track's clock.
    pub duration: u32,
    /// Size of the frame's data in bytes.
    pub size: u32,
    /// Offset of the frame's data in the segment file.
    pub file_off: u64,
    /// Index of the fragment that holds the frame.
    pub fragment: u32,
}

/// A video sample as the writer hands it to [`IndexBuilder::push_fragment`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VideoEntry {
    /// Decode duration (90 kHz).
    pub duration: u32,
    /// Composition offset (90 kHz).
    pub cts: i32,
    /// Bytes.
    pub size: u32,
    /// Random access point.
    pub key: bool,
}

/// An audio sample as the writer hands it to [`IndexBuilder::push_fragment`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AudioEntry {
    /// Duration in the audio clock.
    pub duration: u32,
    /// Bytes.
    pub size: u32,
}

/// Both tracks of a decoded index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Video samples in decode order.
    pub video: Vec<Sample>,
    /// Audio samples in order.
    pub audio: Vec<AudioSample>,
    /// Audio samples per fragment (fragment `i` holds `audio_per_fragment[i]` of them).
    pub audio_per_fragment: Vec<u32>,
}

/// What an MP4 of a whole segment needs before its sample index is read: the sizes of its
/// sample tables and of its media (the frame counts are the row's own columns). Kept in the
/// segment's row, so a long export is laid out from rows alone and each segment's tables are
/// generated from its index only when a reader reaches them (`archive::export`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Bytes of video sample data.
    pub video_bytes: u64,
    /// Fragments holding video samples (each is one chunk of an exported MP4's video track).
    pub video_chunks: u32,
    /// Bytes of audio sample data.
    pub audio_bytes: u64,
    /// Fragments holding audio samples.
    pub audio_chunks: u32,
    /// Least video composition offset (0 without B-frames).
    pub cts_min: i32,
    /// Greatest video composition offset (0 without B-frames).
    pub cts_max: i32,
}

impl Summary {
    /// The summary of decoded samples (what [`IndexBuilder::summary`] keeps as it goes).
    pub fn of(d: &Decoded) -> Summary {
        let mut s = Summary::default();
        let mut last_fragment = None;
        for v in &d.video {
            s.add_video(v.size, v.cts, last_fragment != Some(v.fragment));
            last_fragment = Some(v.fragment);
        }
        let mut last_fragment = None;
        for a in &d.audio {
            s.add_audio(a.size, last_fragment != Some(a.fragment));
            last_fragment = Some(a.fragment);
        }
        s
    }

    fn add_video(&mut self, size: u32, cts: i32, new_chunk: bool) {
        self.video_bytes += u64::from(size);
        self.video_chunks += u32::from(new_chunk);
        self.cts_min = self.cts_min.min(cts);
        self.cts_max = self.cts_max.max(cts);
    }

    fn add_audio(&mut self, size: u32, new_chunk: bool) {
        self.audio_bytes += u64::from(size);
        self.audio_chunks += u32::from(new_chunk);
    }
}

/// Appends samples to an index blob as fragments are written; keeps the running values needed
/// to continue the delta coding, so appending costs O(new samples). Always writes version 2.
#[derive(Clone, Debug)]
pub struct IndexBuilder {
    blob: Vec<u8>,
    prev_dur: i64,
    prev_cts: i64,
    prev_key_size: i64,
    prev_size: i64,
    prev_adur: i64,
    prev_asize: i64,
    data_end: u64,
    samples: u64,
    key_samples: u64,
    media_dur: i64,
    audio_samples: u64,
    audio_dur: i64,
    summary: Summary,
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder {
            blob: V2_HEADER.to_vec(),
            prev_dur: 0,
            prev_cts: 0,
            prev_key_size: 0,
            prev_size: 0,
            prev_adur: 0,
            prev_asize: 0,
            data_end: 0,
            samples: 0,
            key_samples: 0,
            media_dur: 0,
            audio_samples: 0,
            audio_dur: 0,
            summary: Summary::default(),
        }
    }
}

impl IndexBuilder {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one fragment whose first video sample's data starts at `data_start` in the file;
    /// its audio samples' data follows the video data.
    pub fn push_fragment(&mut self, data_start: u64, video: &[VideoEntry], audio: &[AudioEntry]) {
        let gap = data_start.saturating_sub(self.data_end);
        put_varint(&mut self.blob, video.len() as u64);
        put_varint(&mut self.blob, audio.len() as u64);
        put_varint(&mut self.blob, gap);
        let mut end = data_start;
        for (i, s) in video.iter().enumerate() {
            self.summary.add_video(s.size, s.cts, i == 0);
            let dur = i64::from(s.duration);
            let cts = i64::from(s.cts);
            let size = i64::from(s.size);
            let cts_changed = cts != self.prev_cts;
            put_varint(
                &mut self.blob,
                (zigzag(dur - self.prev_dur) << 2) | (u64::from(cts_changed) << 1) | u64::from(s.key),
            );
            if cts_changed {
                put_varint(&mut self.blob, zigzag(cts - self.prev_cts));
                self.prev_cts = cts;
            }
            let prev = if s.key { &mut self.prev_key_size } else { &mut self.prev_size };
            put_varint(&mut self.blob, zigzag(size - *prev));
            *prev = size;
            self.prev_dur = dur;
            end += size as u64;
            self.samples += 1;
            self.key_samples += u64::from(s.key);
            self.media_dur += dur;
        }
        for (i, s) in audio.iter().enumerate() {
            self.summary.add_audio(s.size, i == 0);
            let dur = i64::from(s.duration);
            let size = i64::from(s.size);
            put_varint(&mut self.blob, zigzag(dur - self.prev_adur));
            put_varint(&mut self.blob, zigzag(size - self.prev_asize));
            self.prev_adur = dur;
            self.prev_asize = size;
            end += size as u64;
            self.audio_samples += 1;
            self.audio_dur += dur;
        }
        self.data_end = end;
    }

    /// The encoded blob so far.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// File offset just past the last sample's data (video or audio).
    pub fn data_end(&self) -> u64 {
        self.data_end
    }

    /// Number of video samples so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Number of key samples so far.
    pub fn key_samples(&self) -> u64 {
        self.key_samples
    }

    /// Sum of video sample durations so far (90 kHz).
    pub fn media_dur(&self) -> i64 {
        self.media_dur
    }

    /// Number of audio samples so far.
    pub fn audio_samples(&self) -> u64 {
        self.audio_samples
    }

    /// Sum of audio sample durations so far (audio clock).
    pub fn audio_dur(&self) -> i64 {
        self.audio_dur
    }

    /// The table and media sizes so far.
    pub fn summary(&self) -> Summary {
        self.summary
    }
}

/// Decodes the video samples of an index blob (either version).
pub fn decode(blob: &[u8]) -> Result<Vec<Sample>, IndexError> {
    Ok(decode_all(blob)?.video)
}

/// Decodes both tracks of an index blob (either version).
pub fn decode_all(blob: &[u8]) -> Result<Decoded, IndexError> {
    let v2 = blob.starts_with(&V2_HEADER);
    let mut pos = if v2 { V2_HEADER.len() } else { 0 };
    let mut out = Decoded::default();
    let (mut prev_dur, mut prev_cts, mut prev_key_size, mut prev_size) = (0i64, 0i64, 0i64, 0i64);
    let (mut prev_adur, mut prev_asize) = (0i64, 0i64);
    let mut data_end = 0u64;
    let (mut media, mut amedia) = (0i64, 0i64);
    let mut fragment = 0u32;
    let range = |v: i64, at: usize, what: &'static str| {
        if (0..=i64::from(u32::MAX)).contains(&v) { Ok(v) } else { Err(IndexError { at, what }) }
    };
    while pos < blob.len() {
        let n = get_varint(blob, &mut pos)?;
        let na = if v2 { get_varint(blob, &mut pos)? } else { 0 };
        let gap = get_varint(blob, &mut pos)?;
        if n > blob.len() as u64 || na > blob.len() as u64 {
            return Err(IndexError { at: pos, what: "sample count larger than the blob" });
        }
        let mut off = data_end.checked_add(gap).ok_or(IndexError { at: pos, what: "offset overflow" })?;
        for _ in 0..n {
            let a = get_varint(blob, &mut pos)?;
            let key = a & 1 == 1;
            let (dur_delta, cts_changed) = if v2 { (a >> 2, a & 2 != 0) } else { (a >> 1, false) };
            let dur = range(prev_dur.saturating_add(unzigzag(dur_delta)), pos, "duration out of range")?;
            if cts_changed {
                prev_cts = prev_cts
                    .checked_add(unzigzag(get_varint(blob, &mut pos)?))
                    .filter(|c| i32::try_from(*c).is_ok())
                    .ok_or(IndexError { at: pos, what: "composition offset out of range" })?;
            }
            let prev = if key { &mut prev_key_size } else { &mut prev_size };
            let size = range(prev.saturating_add(unzigzag(get_varint(blob, &mut pos)?)), pos, "size out of range")?;
            *prev = size;
            prev_dur = dur;
            out.video.push(Sample {
                media_off: media,
                duration: dur as u32,
                cts: prev_cts as i32,
                size: size as u32,
                key,
                file_off: off,
                fragment,
            });
            media += dur;
            off = off.checked_add(size as u64).ok_or(IndexError { at: pos, what: "offset overflow" })?;
        }
        for _ in 0..na {
            let dur = range(
                prev_adur.saturating_add(unzigzag(get_varint(blob, &mut pos)?)),
                pos,
                "audio duration out of range",
            )?;
            let size = range(
                prev_asize.saturating_add(unzigzag(get_varint(blob, &mut pos)?)),
                pos,
                "audio size out of range",
            )?;
            prev_adur = dur;
            prev_asize = size;
            out.audio.push(AudioSample {
                media_off: amedia,
                duration: dur as u32,
                size: size as u32,
                file_off: off,
                fragment,
            });
            amedia += dur;
            off = off.checked_add(size as u64).ok_or(IndexError { at: pos, what: "offset overflow" })?;
        }
        out.audio_per_fragment.push(na as u32);
        data_end = off;
        fragment += 1;
    }
    Ok(out)
}

/// One fragment (`moof` + `mdat`) as the index describes it: what HLS needs to address it as a
/// segment of its own.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Index of its first video sample among the segment's video samples.
    pub first_sample: usize,
    /// Number of video samples.
    pub samples: usize,
    /// Number of audio samples.
    pub audio_samples: usize,
    /// Whether any of its video samples has a composition offset (its `trun` then carries them).
    pub has_cts: bool,
    /// Decode time of its first video sample, relative to the segment's first frame.
    pub media_off: i64,
    /// Sum of its video sample durations.
    pub media_dur: i64,
    /// File offset of its first video sample's data.
    pub data_start: u64,
    /// File offset just past its last sample's data (audio after video).
    pub data_end: u64,
    /// Whether its first sample is a keyframe (a player can start decoding there).
    pub starts_with_key: bool,
}

/// Groups decoded samples into their fragments, in file order.
pub fn fragments(d: &Decoded) -> Vec<Fragment> {
    let mut out: Vec<Fragment> = Vec::new();
    let mut current: Option<u32> = None;
    for (i, s) in d.video.iter().enumerate() {
        match out.last_mut() {
            Some(f) if current == Some(s.fragment) => {
                f.samples += 1;
                f.has_cts |= s.cts != 0;
                f.media_dur += i64::from(s.duration);
                f.data_end = s.file_off + u64::from(s.size);
            }
            _ => {
                out.push(Fragment {
                    first_sample: i,
                    samples: 1,
                    audio_samples: 0,
                    has_cts: s.cts != 0,
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
    // Audio data follows each fragment's video data (every fragment the writer makes has video).
    let mut first_audio = Vec::with_capacity(d.audio_per_fragment.len());
    let mut n = 0usize;
    for &k in &d.audio_per_fragment {
        first_audio.push(n);
        n += k as usize;
    }
    for f in &mut out {
        let frag = d.video[f.first_sample].fragment as usize;
        let (Some(&first), Some(&count)) = (first_audio.get(frag), d.audio_per_fragment.get(frag)) else { continue };
        f.audio_samples = count as usize;
        if let Some(last) = count.checked_sub(1).and_then(|c| d.audio.get(first + c as usize)) {
            f.data_end = f.data_end.max(last.file_off + u64::from(last.size));
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

    fn v(duration: u32, size: u32, key: bool) -> VideoEntry {
        VideoEntry { duration, cts: 0, size, key }
    }

    #[test]
    fn roundtrip_with_gaps_and_keys() {
        let mut b = IndexBuilder::new();
        b.push_fragment(700, &[v(3600, 40_000, true), v(3600, 3_000, false), v(3601, 2_900, false)], &[]);
        b.push_fragment(b.data_end() + 120, &[v(3599, 41_000, true), v(3600, 3_100, false)], &[]);
        let s = decode(b.blob()).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].file_off, 700);
        assert_eq!(s[1].file_off, 40_700);
        assert_eq!(s[3].file_off, 700 + 40_000 + 3_000 + 2_900 + 120);
        assert_eq!(s[3].fragment, 1);
        assert_eq!(s[4].media_off, 3600 * 3 + 1 + 3599);
        assert!(s[3].key && !s[4].key);
        assert_eq!((b.samples(), b.key_samples(), b.media_dur()), (5, 2, 3600 * 4 + 1 + 3599));
    }

    #[test]
    fn composition_offsets_and_audio_roundtrip() {
        let mut b = IndexBuilder::new();
        let video = [
            VideoEntry { duration: 3600, cts: 0, size: 9000, key: true },
            VideoEntry { duration: 3600, cts: 7200, size: 3000, key: false },
            VideoEntry { duration: 3600, cts: -3600, size: 900, key: false },
            VideoEntry { duration: 3600, cts: -3600, size: 950, key: false },
        ];
        let audio = [AudioEntry { duration: 1024, size: 300 }, AudioEntry { duration: 1024, size: 310 }];
        b.push_fragment(800, &video, &audio);
        b.push_fragment(b.data_end() + 200, &video[1..], &[]);
        b.push_fragment(b.data_end() + 150, &video[1..2], &audio[..1]);
        let d = decode_all(b.blob()).unwrap();
        assert_eq!(
            d.video.iter().map(|s| s.cts).collect::<Vec<_>>(),
            [0, 7200, -3600, -3600, 7200, -3600, -3600, 7200]
        );
        assert_eq!(d.video[2].pts_off(), 3600);
        assert_eq!(d.audio.len(), 3);
        assert_eq!(d.audio_per_fragment, [2, 0, 1]);
        let video_end = 800 + 9000 + 3000 + 900 + 950;
        assert_eq!((d.audio[0].file_off, d.audio[1].file_off), (video_end, video_end + 300));
        assert_eq!(d.audio[1].media_off, 1024);
        assert_eq!(d.video[4].file_off, video_end + 610 + 200, "the next fragment's gap counts from the audio's end");
        assert_eq!((b.audio_samples(), b.audio_dur()), (3, 3072));
        let f = fragments(&d);
        assert_eq!(
            f.iter().map(|f| (f.samples, f.audio_samples, f.has_cts)).collect::<Vec<_>>(),
            [(4, 2, true), (3, 0, true), (1, 1, true)]
        );
        assert_eq!(f[0].data_end, video_end + 610);
        assert_eq!(f[2].data_end, b.data_end());
        // The running summary agrees with the one computed from the decoded samples.
        let video_bytes = 9000 + 2 * (3000 + 900 + 950) + 3000;
        let want = Summary {
            video_bytes,
            video_chunks: 3,
            audio_bytes: 300 + 310 + 300,
            audio_chunks: 2,
            cts_min: -3600,
            cts_max: 7200,
        };
        assert_eq!((b.summary(), Summary::of(&d)), (want, want));
    }

    /// Segments written before version 2 still decode.
    #[test]
    fn version_1_blobs_decode() {
        // Two fragments: (n=2, gap=700) key 3600/100, non-key 3600/10; (n=1, gap=8) key 3601/120.
        let mut blob = Vec::new();
        for x in [2, 700, zigzag(3600) << 1 | 1, zigzag(100), 0, zigzag(10), 1, 8, zigzag(1) << 1 | 1, zigzag(20)] {
            put_varint(&mut blob, x);
        }
        let d = decode_all(&blob).unwrap();
        assert_eq!(d.video.len(), 3);
        assert!(d.audio.is_empty());
        assert_eq!((d.video[1].file_off, d.video[1].cts), (800, 0));
        assert_eq!((d.video[2].duration, d.video[2].size, d.video[2].file_off), (3601, 120, 818));
        assert_eq!(fragments(&d).len(), 2);
    }

    #[test]
    fn typical_stream_costs_about_three_bytes_a_frame() {
        // 25 fps, GOP 50, P-frames of 4-6 kB, keyframes of 60 kB: like a 1-2 Mb/s camera.
        let mut b = IndexBuilder::new();
        let mut frames = Vec::new();
        for i in 0..750u32 {
            let key = i % 50 == 0;
            let size = if key { 60_000 + (i * 7) % 900 } else { 4_000 + (i * 7919) % 2_000 };
            frames.push(v(3600, size, key));
        }
        for chunk in frames.chunks(25) {
            b.push_fragment(b.data_end() + 100, chunk, &[]);
        }
        let per_frame = b.blob().len() as f64 / 750.0;
        assert!(per_frame <= 3.4, "{per_frame} bytes/frame");
    }

    #[test]
    fn fragments_group_samples_with_their_byte_ranges() {
        let mut b = IndexBuilder::new();
        b.push_fragment(700, &[v(3600, 40_000, true), v(3600, 3_000, false)], &[]);
        b.push_fragment(b.data_end() + 120, &[v(3600, 2_000, false)], &[]);
        b.push_fragment(b.data_end() + 108, &[v(3601, 41_000, true)], &[]);
        let f = fragments(&decode_all(b.blob()).unwrap());
        assert_eq!(f.len(), 3);
        assert_eq!((f[0].first_sample, f[0].samples, f[0].data_start, f[0].data_end), (0, 2, 700, 43_700));
        assert_eq!((f[1].media_off, f[1].media_dur, f[1].data_start), (7200, 3600, 43_820));
        assert!(f[0].starts_with_key && !f[1].starts_with_key && f[2].starts_with_key);
        assert_eq!((f[2].first_sample, f[2].media_dur, f[2].data_end), (3, 3601, 45_928 + 41_000));
        assert!(fragments(&Decoded::default()).is_empty());
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        assert!(decode(&[0x80]).is_err());
        assert!(decode(&[5, 0, 0x02]).is_err());
        assert!(decode(&[0xff; 20]).is_err());
        assert!(decode(&[0, 2, 1, 0x7f, 0]).is_err());
        assert_eq!(decode(&V2_HEADER).unwrap(), []);
        // A composition offset whose running sum overflows: an error, not a panic.
        let mut b = V2_HEADER.to_vec();
        for x in [2, 0, 0, 0b10, u64::MAX, 0, 0b10, u64::MAX] {
            put_varint(&mut b, x);
        }
        assert!(decode(&b).is_err());
    }
}
