//! Progressive MP4 (`ftyp`, `moov`, `mdat`) of a sequence of samples, for exports that play in
//! browsers and seek without an index scan. The caller supplies sample tables derived from the
//! archive's index; this module lays out the header and says where each chunk's bytes go.

use super::*;

/// One sample of the output file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Duration in 90 kHz ticks (the output timeline is wall time).
    pub duration: u32,
    /// Size in bytes.
    pub size: u32,
    /// Sync sample.
    pub key: bool,
}

/// A run of samples whose data is contiguous in one source and shares one sample entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Index into [`Movie::entries`].
    pub entry: usize,
    /// Number of samples (taken in order from [`Movie::samples`]).
    pub samples: u32,
    /// Total bytes of the chunk's samples.
    pub bytes: u64,
}

/// Everything needed to write the file header.
#[derive(Clone, Debug, Default)]
pub struct Movie {
    /// Sample entry boxes (`avc1`…) used by the chunks.
    pub entries: Vec<Vec<u8>>,
    /// Display size for `tkhd`.
    pub width: u32,
    /// Display size for `tkhd`.
    pub height: u32,
    /// All samples in decode order.
    pub samples: Vec<Sample>,
    /// Chunks covering `samples` in order.
    pub chunks: Vec<Chunk>,
    /// The edit list: which stretches of the media timeline players show, in order. An export
    /// that begins at a keyframe before the requested start hides that lead-in with an edit;
    /// an export of several ranges has one edit per range. Empty: the whole media.
    pub edits: Vec<Edit>,
}

/// One entry of the edit list (`elst`), in 90 kHz ticks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Media time (ticks from the first sample) where the shown stretch starts.
    pub media_time: u64,
    /// How long it is shown.
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
    let n: u64 = movie.chunks.iter().map(|c| u64::from(c.samples)).sum();
    if n != movie.samples.len() as u64 {
        return Err(FileError::Inconsistent("chunk sample counts do not add up"));
    }
    if movie.chunks.iter().any(|c| c.entry >= movie.entries.len()) {
        return Err(FileError::Inconsistent("chunk refers to a missing sample entry"));
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

fn header(movie: &Movie, base: u64, payload: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024 + movie.samples.len() * 6 + movie.chunks.len() * 12);
    put_ftyp(&mut out, b"isom", &[b"isom", b"iso2", b"avc1", b"mp41"]);
    let media_dur: u64 = movie.samples.iter().map(|s| u64::from(s.duration)).sum();
    let whole = [Edit { media_time: 0, duration: media_dur }];
    let edits: &[Edit] = if movie.edits.is_empty() { &whole } else { &movie.edits };
    let shown: u64 = edits.iter().map(|e| e.duration).sum();
    put_box(&mut out, b"moov", |out| {
        put_mvhd(out, shown, VIDEO_TRACK_ID + 1);
        put_box(out, b"trak", |out| {
            put_tkhd(out, shown, movie.width, movie.height);
            put_box(out, b"edts", |out| {
                put_full_box(out, b"elst", 1, 0, |out| {
                    u32be(out, edits.len() as u32);
                    for e in edits {
                        u64be(out, e.duration);
                        u64be(out, e.media_time);
                        u32be(out, 0x0001_0000); // rate 1.0
                    }
                });
            });
            put_box(out, b"mdia", |out| {
                put_mdhd_hdlr(out, media_dur);
                put_box(out, b"minf", |out| {
                    put_vmhd_dinf(out);
                    put_box(out, b"stbl", |out| stbl(out, movie, base));
                });
            });
        });
    });
    // mdat with a 64-bit size so any length fits.
    u32be(&mut out, 1);
    out.extend_from_slice(b"mdat");
    u64be(&mut out, payload + 16);
    out
}

fn stbl(out: &mut Vec<u8>, movie: &Movie, base: u64) {
    let entries: Vec<&[u8]> = movie.entries.iter().map(Vec::as_slice).collect();
    put_stsd(out, &entries);
    // stts: run-length of durations.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    for s in &movie.samples {
        match runs.last_mut() {
            Some((n, d)) if *d == s.duration => *n += 1,
            _ => runs.push((1, s.duration)),
        }
    }
    put_full_box(out, b"stts", 0, 0, |out| {
        u32be(out, runs.len() as u32);
        for (n, d) in &runs {
            u32be(out, *n);
            u32be(out, *d);
        }
    });
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
    // stsc: run-length of (samples per chunk, sample description index).
    let mut stsc: Vec<(u32, u32, u32)> = Vec::new();
    for (i, c) in movie.chunks.iter().enumerate() {
        let desc = c.entry as u32 + 1;
        match stsc.last() {
            Some(&(_, n, d)) if n == c.samples && d == desc => {}
            _ => stsc.push((i as u32 + 1, c.samples, desc)),
        }
    }
    put_full_box(out, b"stsc", 0, 0, |out| {
        u32be(out, stsc.len() as u32);
        for (first, n, d) in stsc {
            u32be(out, first);
            u32be(out, n);
            u32be(out, d);
        }
    });
    put_full_box(out, b"stsz", 0, 0, |out| {
        u32be(out, 0);
        u32be(out, movie.samples.len() as u32);
        for s in &movie.samples {
            u32be(out, s.size);
        }
    });
    put_full_box(out, b"co64", 0, 0, |out| {
        u32be(out, movie.chunks.len() as u32);
        let mut off = base;
        for c in &movie.chunks {
            u64be(out, off);
            off += c.bytes;
        }
    });
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
                Sample { duration: 3600, size: 100, key: true },
                Sample { duration: 3600, size: 10, key: false },
                Sample { duration: 3600, size: 11, key: false },
            ],
            chunks: vec![Chunk { entry: 0, samples: 2, bytes: 110 }, Chunk { entry: 0, samples: 1, bytes: 11 }],
            edits: vec![Edit { media_time: 3600, duration: 7200 }],
        };
        let l = build(&movie).unwrap();
        assert_eq!(l.total_len, l.header.len() as u64 + 121);
        assert_eq!(&l.header[4..8], b"ftyp");
        let mdat = &l.header[l.header.len() - 16..];
        assert_eq!(&mdat[4..8], b"mdat");
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(build(&Movie::default()), Err(FileError::Empty)));
    }
}
