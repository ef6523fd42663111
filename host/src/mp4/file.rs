//! Progressive MP4 (`ftyp`, `moov`, `mdat`) of a sequence of samples, for exports that play in
//! browsers and seek without an index scan. The caller supplies sample tables derived from the
//! archive's index; this module lays out the header and says where each chunk's bytes go.
//!
//! One video track (90 kHz) and optionally one audio track (its own clock as timescale). Video
//! composition offsets (B-frames) go into `ctts` shifted to be non-negative, with the edit list
//! moved by the same amount, which every player reads (signed `ctts` is not universal).

use super::*;

/// One video sample of the output file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Decode duration in 90 kHz ticks (the output timeline is wall time).
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
    /// Sync sample.
    pub key: bool,
    /// Presentation minus decode time (90 kHz).
    pub cts: i32,
}

/// One audio sample of the output file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AudioSample {
    /// Duration in the audio track's clock.
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
}

/// A run of samples of one track whose data is contiguous in one source and shares one sample
/// entry. Chunks are listed in file order; each track's samples are taken in order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Index into the track's entries.
    pub entry: usize,
    /// Number of samples.
    pub samples: u32,
    /// Total bytes of the chunk's samples.
    pub bytes: u64,
    /// Whether the chunk is of the audio track.
    pub audio: bool,
}

/// The audio track of a movie.
#[derive(Clone, Debug, Default)]
pub struct AudioTrack {
    /// Sample entry boxes (`mp4a`, `fLaC`) used by its chunks.
    pub entries: Vec<Vec<u8>>,
    /// Its clock (samples per second).
    pub timescale: u32,
    /// Its samples in order.
    pub samples: Vec<AudioSample>,
    /// Its edit list: media times in the audio clock, durations in 90 kHz (the movie's clock).
    pub edits: Vec<Edit>,
}

/// Everything needed to write the file header.
#[derive(Clone, Debug, Default)]
pub struct Movie {
    /// Video sample entry boxes (`avc1`, `hvc1`) used by the chunks.
    pub entries: Vec<Vec<u8>>,
    /// Display size for `tkhd`.
    pub width: u32,
    /// Display size for `tkhd`.
    pub height: u32,
    /// All video samples in decode order.
    pub samples: Vec<Sample>,
    /// Chunks of both tracks, in file order.
    pub chunks: Vec<Chunk>,
    /// The video edit list: which stretches of the media timeline players show, in order. An
    /// export that begins at a keyframe before the requested start hides that lead-in with an
    /// edit; an export of several ranges has one edit per range. Empty: the whole media.
    pub edits: Vec<Edit>,
    /// The audio track, if any.
    pub audio: Option<AudioTrack>,
}

/// The media time of an empty edit (`elst` −1): nothing is shown for its duration (audio that
/// starts after the video, or a range without audio).
pub const EMPTY_EDIT: u64 = u64::MAX;

/// One entry of the edit list (`elst`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Media time (track clock, from the first sample's decode time) where the stretch starts.
    pub media_time: u64,
    /// How long it is shown (90 kHz, the movie's clock).
    pub duration: u64,
}

/// Why a movie cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Nothing to put in the file.
    #[error("no samples to write")]
    Empty,
    /// Tables disagree (a bug in the caller, reported rather than written).
    #[error("inconsistent sample tables: {0}")]
    Inconsistent(&'static str),
}

/// The layout of a written header.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `ftyp` + `moov` + `mdat` header; chunk data follows in chunk order.
    pub header: Vec<u8>,
    /// Total file size.
    pub total_len: u64,
}

/// Builds the header of a fast-start MP4 whose `mdat` holds the chunks in order.
pub fn build(movie: &Movie) -> Result<Layout, FileError> {
    if movie.samples.is_empty() || movie.chunks.is_empty() {
        return Err(FileError::Empty);
    }
    let count =
        |audio: bool| -> u64 { movie.chunks.iter().filter(|c| c.audio == audio).map(|c| u64::from(c.samples)).sum() };
    if count(false) != movie.samples.len() as u64 {
        return Err(FileError::Inconsistent("video chunk sample counts do not add up"));
    }
    let audio_samples = movie.audio.as_ref().map_or(0, |a| a.samples.len() as u64);
    if count(true) != audio_samples {
        return Err(FileError::Inconsistent("audio chunk sample counts do not add up"));
    }
    let audio_entries = movie.audio.as_ref().map_or(0, |a| a.entries.len());
    if movie.chunks.iter().any(|c| c.entry >= if c.audio { audio_entries } else { movie.entries.len() }) {
        return Err(FileError::Inconsistent("chunk refers to a missing sample entry"));
    }
    if movie.audio.as_ref().is_some_and(|a| a.timescale == 0) {
        return Err(FileError::Inconsistent("audio track without a clock"));
    }
    let payload: u64 = movie.chunks.iter().map(|c| c.bytes).sum();
    // co64 entries are fixed-size, so the header length does not depend on the offsets:
    // lay out once to measure, then again with the real base.
    let probe = header(movie, 0, payload);
    let base = probe.len() as u64;
    let header = header(movie, base, payload);
    debug_assert_eq!(header.len() as u64, base);
    Ok(Layout { total_len: base + payload, header })
}

fn put_elst(out: &mut Vec<u8>, edits: &[Edit], shift: u64) {
    put_box(out, b"edts", |out| {
        put_full_box(out, b"elst", 1, 0, |out| {
            u32be(out, edits.len() as u32);
            for e in edits {
                u64be(out, e.duration);
                u64be(out, if e.media_time == EMPTY_EDIT { EMPTY_EDIT } else { e.media_time + shift });
                u32be(out, 0x0001_0000); // rate 1.0
            }
        });
    });
}

fn header(movie: &Movie, base: u64, payload: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 + movie.samples.len() * 10 + movie.chunks.len() * 12);
    let brand: &[u8; 4] =
        if movie.entries.first().and_then(|e| e.get(4..8)) == Some(b"hvc1") { b"hvc1" } else { b"avc1" };
    put_ftyp(&mut out, b"isom", &[b"isom", b"iso2", brand, b"mp41"]);
    let media_dur: u64 = movie.samples.iter().map(|s| u64::from(s.duration)).sum();
    let whole = [Edit { media_time: 0, duration: media_dur }];
    let edits: &[Edit] = if movie.edits.is_empty() { &whole } else { &movie.edits };
    let shown: u64 = edits.iter().map(|e| e.duration).sum();
    // Composition offsets are written non-negative: every one shifted up by the most negative,
    // and the edit list moved along.
    let shift = movie.samples.iter().map(|s| i64::from(s.cts)).min().unwrap_or(0).min(0).unsigned_abs();
    let audio = movie.audio.as_ref();
    let audio_media: u64 = audio.map_or(0, |a| a.samples.iter().map(|s| u64::from(s.duration)).sum());
    let audio_whole = [Edit {
        media_time: 0,
        duration: audio.map_or(0, |a| {
            crate::time::rescale(audio_media as i64, i64::from(a.timescale), crate::time::TICKS_PER_SEC) as u64
        }),
    }];
    let audio_edits: &[Edit] = match audio {
        Some(a) if !a.edits.is_empty() => &a.edits,
        _ => &audio_whole,
    };
    let audio_shown: u64 = audio_edits.iter().map(|e| e.duration).sum();
    put_box(&mut out, b"moov", |out| {
        let next_track = if audio.is_some() { AUDIO_TRACK_ID + 1 } else { VIDEO_TRACK_ID + 1 };
        put_mvhd(out, shown.max(if audio.is_some() { audio_shown } else { 0 }), next_track);
        put_box(out, b"trak", |out| {
            put_tkhd(out, shown, movie.width, movie.height);
            put_elst(out, edits, shift);
            put_box(out, b"mdia", |out| {
                put_mdhd_hdlr(out, media_dur);
                put_box(out, b"minf", |out| {
                    put_vmhd_dinf(out);
                    put_box(out, b"stbl", |out| video_stbl(out, movie, base, shift));
                });
            });
        });
        if let Some(a) = audio {
            put_box(out, b"trak", |out| {
                put_audio_tkhd(out, audio_shown);
                put_elst(out, audio_edits, 0);
                put_box(out, b"mdia", |out| {
                    put_audio_mdhd_hdlr(out, a.timescale, audio_media);
                    put_box(out, b"minf", |out| {
                        put_smhd_dinf(out);
                        put_box(out, b"stbl", |out| audio_stbl(out, movie, a, base));
                    });
                });
            });
        }
    });
    // mdat with a 64-bit size so any length fits.
    u32be(&mut out, 1);
    out.extend_from_slice(b"mdat");
    u64be(&mut out, payload + 16);
    out
}

/// Run-length encoding of per-sample values, as `stts` and `ctts` hold them: (count, value).
fn run_lengths(values: impl Iterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for v in values {
        match runs.last_mut() {
            Some((n, x)) if *x == v => *n += 1,
            _ => runs.push((1, v)),
        }
    }
    runs
}

/// A full box of (count, value) entries: `stts`, `ctts`.
fn put_runs(out: &mut Vec<u8>, typ: &[u8; 4], values: impl Iterator<Item = u32>) {
    let runs = run_lengths(values);
    put_full_box(out, typ, 0, 0, |out| {
        u32be(out, runs.len() as u32);
        for (n, v) in &runs {
            u32be(out, *n);
            u32be(out, *v);
        }
    });
}

/// `stsc`, `stsz` and `co64` of one track's chunks (in file order among all chunks).
fn put_chunks(out: &mut Vec<u8>, movie: &Movie, audio: bool, sizes: &[u32], base: u64) {
    let mut stsc: Vec<(u32, u32, u32)> = Vec::new();
    let mut offsets = Vec::new();
    let mut off = base;
    let mut n = 0u32;
    for c in &movie.chunks {
        if c.audio == audio {
            n += 1;
            let desc = c.entry as u32 + 1;
            match stsc.last() {
                Some(&(_, k, d)) if k == c.samples && d == desc => {}
                _ => stsc.push((n, c.samples, desc)),
            }
            offsets.push(off);
        }
        off += c.bytes;
    }
    put_full_box(out, b"stsc", 0, 0, |out| {
        u32be(out, stsc.len() as u32);
        for (first, k, d) in stsc {
            u32be(out, first);
            u32be(out, k);
            u32be(out, d);
        }
    });
    put_full_box(out, b"stsz", 0, 0, |out| {
        u32be(out, 0);
        u32be(out, sizes.len() as u32);
        for s in sizes {
            u32be(out, *s);
        }
    });
    put_full_box(out, b"co64", 0, 0, |out| {
        u32be(out, offsets.len() as u32);
        for o in offsets {
            u64be(out, o);
        }
    });
}

fn video_stbl(out: &mut Vec<u8>, movie: &Movie, base: u64, shift: u64) {
    let entries: Vec<&[u8]> = movie.entries.iter().map(Vec::as_slice).collect();
    put_stsd(out, &entries);
    put_runs(out, b"stts", movie.samples.iter().map(|s| s.duration));
    if movie.samples.iter().any(|s| s.cts != 0) {
        put_runs(out, b"ctts", movie.samples.iter().map(|s| (i64::from(s.cts) + shift as i64) as u32));
    }
    // stss: 1-based numbers of sync samples (omitted only if every sample is sync).
    if movie.samples.iter().any(|s| !s.key) {
        let keys: Vec<u32> = (1u32..).zip(&movie.samples).filter(|(_, s)| s.key).map(|(i, _)| i).collect();
        put_full_box(out, b"stss", 0, 0, |out| {
            u32be(out, keys.len() as u32);
            for k in keys {
                u32be(out, k);
            }
        });
    }
    let sizes: Vec<u32> = movie.samples.iter().map(|s| s.size).collect();
    put_chunks(out, movie, false, &sizes, base);
}

fn audio_stbl(out: &mut Vec<u8>, movie: &Movie, a: &AudioTrack, base: u64) {
    let entries: Vec<&[u8]> = a.entries.iter().map(Vec::as_slice).collect();
    put_stsd(out, &entries);
    put_runs(out, b"stts", a.samples.iter().map(|s| s.duration));
    let sizes: Vec<u32> = a.samples.iter().map(|s| s.size).collect();
    put_chunks(out, movie, true, &sizes, base);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_is_stable_and_offsets_point_past_it() {
        let movie = Movie {
            entries: vec![vec![0, 0, 0, 8, b'a', b'v', b'c', b'1']],
            width: 640,
            height: 360,
            samples: vec![
                Sample { duration: 3600, size: 100, key: true, cts: 0 },
                Sample { duration: 3600, size: 10, key: false, cts: 7200 },
                Sample { duration: 3600, size: 11, key: false, cts: -3600 },
            ],
            chunks: vec![
                Chunk { entry: 0, samples: 2, bytes: 110, audio: false },
                Chunk { entry: 0, samples: 1, bytes: 30, audio: true },
                Chunk { entry: 0, samples: 1, bytes: 11, audio: false },
            ],
            edits: vec![Edit { media_time: 3600, duration: 7200 }],
            audio: Some(AudioTrack {
                entries: vec![vec![0, 0, 0, 8, b'm', b'p', b'4', b'a']],
                timescale: 48_000,
                samples: vec![AudioSample { duration: 1024, size: 30 }],
                edits: Vec::new(),
            }),
        };
        let l = build(&movie).unwrap();
        assert_eq!(l.total_len, l.header.len() as u64 + 151);
        assert_eq!(&l.header[4..8], b"ftyp");
        let mdat = &l.header[l.header.len() - 16..];
        assert_eq!(&mdat[4..8], b"mdat");
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(build(&Movie::default()), Err(FileError::Empty)));
    }
}
