//! Reading progressive MP4 files (`moov` + `mdat`, either order) back into sample lists: what
//! `openva plugin run` decodes from any MP4 a user hands it, and what tests check exports with.
//! Only the sample tables are read (`stsd`, `stts`, `ctts`, `stss`, `stsc`, `stsz`/`stz2` is not
//! supported, `stco`/`co64`); the media stays in the file, addressed by offset. Every count and
//! offset comes from the file, so each is checked against the box that holds it: a damaged or
//! hostile file is an error, never a panic or an allocation larger than the file.

use super::parse::{child, children};
use std::io::{Read, Seek, SeekFrom};

/// Why a file cannot be read as a progressive MP4.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    /// It is not a progressive MP4 this reader understands.
    #[error("not a readable MP4: {0}")]
    Malformed(&'static str),
}

/// The largest `moov` read into memory (a day of 25 fps video takes ~30 MB).
const MAX_MOOV: u64 = 512 << 20;

/// One sample of a track.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TrackSample {
    /// File offset of its data.
    pub offset: u64,
    /// Size of its data.
    pub size: u32,
    /// Decode time, in the track's timescale, from the track's start.
    pub decode: u64,
    /// Presentation minus decode time (track timescale).
    pub cts: i64,
    /// A sync sample.
    pub key: bool,
}

/// One track of a progressive MP4.
#[derive(Clone, Debug)]
pub struct Track {
    /// `tkhd` track id.
    pub id: u32,
    /// `hdlr` handler type: `vide`, `soun`…
    pub handler: [u8; 4],
    /// `mdhd` timescale (ticks per second).
    pub timescale: u32,
    /// The first `stsd` entry, a complete box (`avc1`, `hvc1`, `mp4a`…).
    pub sample_entry: Vec<u8>,
    /// Its samples in decode order.
    pub samples: Vec<TrackSample>,
}

/// Reads the tracks of the progressive MP4 `r` (of `len` bytes).
pub fn tracks<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<Track>, ReadError> {
    let moov = find_moov(r, len)?;
    let mut out = Vec::new();
    for (_, trak) in children(&moov).filter(|(t, _)| t == b"trak") {
        out.push(track(trak, len)?);
    }
    if out.is_empty() {
        return Err(ReadError::Malformed("no track"));
    }
    Ok(out)
}

/// The body of the top-level `moov`, wherever it lies.
fn find_moov<R: Read + Seek>(r: &mut R, len: u64) -> Result<Vec<u8>, ReadError> {
    let mut at = 0u64;
    while at + 8 <= len {
        r.seek(SeekFrom::Start(at))?;
        let mut h = [0u8; 16];
        r.read_exact(&mut h[..8])?;
        let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let (hdr, size) = match size {
            0 => (8, len - at),
            1 => {
                r.read_exact(&mut h[8..16])?;
                (16, u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]))
            }
            n => (8, n),
        };
        if size < hdr || size > len - at {
            return Err(ReadError::Malformed("a top-level box runs past the end of the file"));
        }
        if &h[4..8] == b"moov" {
            if size - hdr > MAX_MOOV {
                return Err(ReadError::Malformed("moov larger than 512 MiB"));
            }
            let mut body = vec![0u8; (size - hdr) as usize];
            r.read_exact(&mut body)?;
            return Ok(body);
        }
        at += size;
    }
    Err(ReadError::Malformed("no moov box"))
}

fn be32(b: &[u8], at: usize) -> Result<u32, ReadError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(ReadError::Malformed("a table is shorter than its count"))
}

fn be64(b: &[u8], at: usize) -> Result<u64, ReadError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(ReadError::Malformed("a table is shorter than its count"))
}

/// A full box's entries: its count (at `count_at`) checked against the bytes that follow.
fn entries(b: &[u8], count_at: usize, entry_len: usize) -> Result<(usize, &[u8]), ReadError> {
    let n = be32(b, count_at)? as usize;
    let rest = b.get(count_at + 4..).unwrap_or_default();
    if n.checked_mul(entry_len).is_none_or(|need| need > rest.len()) {
        return Err(ReadError::Malformed("a table is shorter than its count"));
    }
    Ok((n, rest))
}

fn track(trak: &[u8], file_len: u64) -> Result<Track, ReadError> {
    let bad = ReadError::Malformed;
    let tkhd = child(trak, b"tkhd").ok_or(bad("trak without tkhd"))?;
    let id = be32(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })?;
    let mdia = child(trak, b"mdia").ok_or(bad("trak without mdia"))?;
    let mdhd = child(mdia, b"mdhd").ok_or(bad("mdia without mdhd"))?;
    let timescale = be32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
    let hdlr = child(mdia, b"hdlr").ok_or(bad("mdia without hdlr"))?;
    let handler: [u8; 4] = hdlr.get(8..12).and_then(|s| s.try_into().ok()).ok_or(bad("short hdlr"))?;
    let stbl = child(child(mdia, b"minf").ok_or(bad("mdia without minf"))?, b"stbl").ok_or(bad("minf without stbl"))?;
    let table = |t: &[u8; 4]| child(stbl, t);
    let stsd = table(b"stsd").ok_or(bad("stbl without stsd"))?;
    let sample_entry = stsd
        .get(8..)
        .and_then(|e| e.get(..be32(e, 0).ok()? as usize))
        .filter(|e| e.len() >= 8)
        .ok_or(bad("stsd without a complete entry"))?
        .to_vec();
    // Sizes (stsz): one per sample, or one for all.
    let stsz = table(b"stsz").ok_or(bad("stbl without stsz"))?;
    let fixed = be32(stsz, 4)?;
    let count = be32(stsz, 8)? as usize;
    let sizes: Vec<u32> = if fixed == 0 {
        let (n, rest) = entries(stsz, 8, 4)?;
        (0..n).map(|i| be32(rest, 4 * i)).collect::<Result<_, _>>()?
    } else {
        // One size for all: the count is bounded by the file (each sample takes a byte).
        if count as u64 > file_len {
            return Err(bad("more samples than the file has bytes"));
        }
        vec![fixed; count]
    };
    let n = sizes.len();
    let mut samples: Vec<TrackSample> =
        sizes.iter().map(|&size| TrackSample { offset: 0, size, decode: 0, cts: 0, key: true }).collect();
    // Decode times (stts).
    let stts = table(b"stts").ok_or(bad("stbl without stts"))?;
    let (runs, rest) = entries(stts, 4, 8)?;
    let (mut i, mut t) = (0usize, 0u64);
    for k in 0..runs {
        let (count, delta) = (be32(rest, 8 * k)?, be32(rest, 8 * k + 4)?);
        for _ in 0..count {
            let Some(s) = samples.get_mut(i) else { break };
            s.decode = t;
            t = t.saturating_add(u64::from(delta));
            i += 1;
        }
    }
    // Composition offsets (ctts; version 1 is signed).
    if let Some(ctts) = table(b"ctts") {
        let signed = ctts.first() == Some(&1);
        let (runs, rest) = entries(ctts, 4, 8)?;
        let mut i = 0usize;
        for k in 0..runs {
            let (count, off) = (be32(rest, 8 * k)?, be32(rest, 8 * k + 4)?);
            let off = if signed { i64::from(off as i32) } else { i64::from(off) };
            for _ in 0..count {
                let Some(s) = samples.get_mut(i) else { break };
                s.cts = off;
                i += 1;
            }
        }
    }
    // Sync samples (stss; absent: every sample is one).
    if let Some(stss) = table(b"stss") {
        samples.iter_mut().for_each(|s| s.key = false);
        let (keys, rest) = entries(stss, 4, 4)?;
        for k in 0..keys {
            let number = be32(rest, 4 * k)? as usize;
            if let Some(s) = number.checked_sub(1).and_then(|i| samples.get_mut(i)) {
                s.key = true;
            }
        }
    }
    // Chunk offsets (stco or co64) and samples per chunk (stsc).
    let offsets: Vec<u64> = match (table(b"co64"), table(b"stco")) {
        (Some(co64), _) => {
            let (c, rest) = entries(co64, 4, 8)?;
            (0..c).map(|i| be64(rest, 8 * i)).collect::<Result<_, _>>()?
        }
        (None, Some(stco)) => {
            let (c, rest) = entries(stco, 4, 4)?;
            (0..c).map(|i| be32(rest, 4 * i).map(u64::from)).collect::<Result<_, _>>()?
        }
        (None, None) => return Err(bad("stbl without chunk offsets")),
    };
    let stsc = table(b"stsc").ok_or(bad("stbl without stsc"))?;
    let (runs, rest) = entries(stsc, 4, 12)?;
    let mut i = 0usize;
    for k in 0..runs {
        let first = be32(rest, 12 * k)? as usize;
        let per_chunk = be32(rest, 12 * k + 4)? as usize;
        let next_first = if k + 1 < runs { be32(rest, 12 * (k + 1))? as usize } else { offsets.len() + 1 };
        if first == 0 || next_first < first {
            return Err(bad("stsc entries out of order"));
        }
        for chunk in first..next_first {
            let mut off = *offsets.get(chunk - 1).ok_or(bad("stsc names a chunk without an offset"))?;
            for _ in 0..per_chunk {
                let Some(s) = samples.get_mut(i) else { break };
                s.offset = off;
                off = off.saturating_add(u64::from(s.size));
                i += 1;
            }
        }
    }
    if i != n {
        return Err(bad("the chunks do not hold every sample"));
    }
    if samples.iter().any(|s| s.offset.saturating_add(u64::from(s.size)) > file_len) {
        return Err(bad("a sample lies past the end of the file"));
    }
    Ok(Track { id, handler, timescale, sample_entry, samples })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::file::{self, Chunk, Edit, Movie, Sample, Tables};

    /// What `mp4::file` writes reads back: offsets, sizes, times, offsets, keys.
    #[test]
    fn reads_back_what_file_writes() {
        let mut tables = Tables {
            video: vec![
                Sample { duration: 3600, size: 5, key: true, cts: 0 },
                Sample { duration: 3600, size: 3, key: false, cts: 7200 },
                Sample { duration: 3601, size: 4, key: false, cts: -3600 },
            ],
            audio: Vec::new(),
            chunks: vec![
                Chunk { entry: 0, samples: 2, bytes: 8, audio: false },
                Chunk { entry: 0, samples: 1, bytes: 4, audio: false },
            ],
        };
        let movie = Movie {
            entries: vec![vec![0, 0, 0, 8, b'a', b'v', b'c', b'1']],
            width: 64,
            height: 64,
            media_dur: 10_801,
            cts_range: (-3600, 7200),
            edits: vec![Edit { media_time: 0, duration: 10_801 }],
            audio: None,
            pieces: vec![tables.counts()],
        };
        let l = file::layout(&movie).unwrap();
        let mut bytes = l.header_bytes(&mut tables).unwrap();
        bytes.extend(1u8..=12);
        let t = tracks(&mut std::io::Cursor::new(&bytes), bytes.len() as u64).unwrap();
        assert_eq!((t.len(), t[0].id, &t[0].handler, t[0].timescale), (1, 1, b"vide", 90_000));
        assert_eq!(&t[0].sample_entry[4..8], b"avc1");
        let s = &t[0].samples;
        let base = l.header_len();
        assert_eq!(
            s.iter().map(|s| (s.offset - base, s.size, s.decode, s.cts, s.key)).collect::<Vec<_>>(),
            [(0, 5, 0, 3600, true), (5, 3, 3600, 10_800, false), (8, 4, 7200, 0, false)],
            "composition offsets come back shifted to be non-negative, as written"
        );
    }

    /// Damaged files are errors: truncated, a count past its table, no moov.
    #[test]
    fn damaged_files_are_errors() {
        let read = |b: &[u8]| tracks(&mut std::io::Cursor::new(b), b.len() as u64);
        assert!(read(b"").is_err());
        assert!(read(b"\0\0\0\x10ftypisom\0\0\0\0").is_err());
        let mut moov = Vec::new();
        crate::mp4::put_box(&mut moov, b"moov", |o| {
            crate::mp4::put_box(o, b"trak", |o| crate::mp4::put_full_box(o, b"tkhd", 0, 0, |o| o.extend([0u8; 80])))
        });
        assert!(matches!(read(&moov), Err(ReadError::Malformed(_))));
        // A box that claims more than the file.
        assert!(read(b"\xff\xff\xff\xffmoov").is_err());
    }
}
