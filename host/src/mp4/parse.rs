//! Reading segment files back: the init segment, our metadata box and every complete fragment.
//! Used by crash recovery (find the last complete fragment, truncate the rest) and by `check`
//! (compare files with the index, rebuild the index from files alone).

use super::fragment::{AudioFragSample, FragSample};
use super::{AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use std::io::{Read, Seek, SeekFrom};

/// Why a segment file cannot be read at all (a damaged tail is not an error: see
/// [`SegmentScan::valid_len`]).
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file could not be read.
    #[error("reading segment: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with an init segment we can use.
    #[error("not an openva segment: {0}")]
    NotASegment(&'static str),
}

/// A fragment found in a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFragment {
    /// `mfhd` sequence number.
    pub seq: u32,
    /// File offset of its `moof` (what playlists address it by).
    pub offset: u64,
    /// `tfdt` base media decode time (90 kHz, run-relative).
    pub base_decode_time: u64,
    /// File offset of the first sample's data.
    pub data_start: u64,
    /// The fragment's video samples.
    pub samples: Vec<FragSample>,
    /// `tfdt` of the audio `traf` (audio clock), when the fragment holds audio.
    pub audio_base: Option<u64>,
    /// The fragment's audio samples (their data follows the video data).
    pub audio: Vec<AudioFragSample>,
}

/// The audio track of a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedAudio {
    /// Its sample entry box.
    pub sample_entry: Vec<u8>,
    /// Its timescale (`mdhd`): the sample rate.
    pub timescale: u32,
}

/// What a scan of a segment file found.
#[derive(Clone, Debug)]
pub struct SegmentScan {
    /// Length of the init segment (`ftyp` + `moov`).
    pub init_len: u64,
    /// The body of our `ovmd` metadata box, if present.
    pub meta: Option<Vec<u8>>,
    /// The first sample entry of `stsd` (e.g. the `avc1` box).
    pub sample_entry: Vec<u8>,
    /// `tkhd` display width and height.
    pub dims: (u32, u32),
    /// The audio track, if the segment has one.
    pub audio: Option<ScannedAudio>,
    /// Complete, self-consistent fragments in file order.
    pub fragments: Vec<ScannedFragment>,
    /// Offset just past the last complete fragment (or the metadata box): everything after is
    /// a torn write to be truncated.
    pub valid_len: u64,
    /// Length of the file as found.
    pub file_len: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub tail_problem: Option<String>,
}

/// Largest box body read into memory (moov, moof, ovmd); anything larger is damage.
const MAX_HEADER_BOX: u64 = 16 << 20;

/// A box header: type, header length, and total length (None: the box runs to end of file).
type BoxHeader = ([u8; 4], u64, Option<u64>);

/// Reads a box header at the reader's position; None at end of file.
fn box_header<R: Read>(r: &mut R) -> std::io::Result<Option<BoxHeader>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let typ = [h[4], h[5], h[6], h[7]];
    Ok(Some(match size {
        0 => (typ, 8, None),
        1 => {
            let mut l = [0u8; 8];
            r.read_exact(&mut l)?;
            (typ, 16, Some(u64::from_be_bytes(l)))
        }
        n => (typ, 8, Some(u64::from(n))),
    }))
}

/// Iterates over the child boxes of a box body held in memory: (type, body).
pub fn children(mut body: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if body.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
        let typ = [body[4], body[5], body[6], body[7]];
        let (hdr, size) = match size {
            0 => (8, body.len()),
            1 if body.len() >= 16 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&body[8..16]);
                (16, usize::try_from(u64::from_be_bytes(l)).ok()?)
            }
            n => (8, n),
        };
        if size < hdr || size > body.len() {
            return None;
        }
        let child = &body[hdr..size];
        body = &body[size..];
        Some((typ, child))
    })
}

/// Finds a child box by type.
pub fn child<'a>(body: &'a [u8], typ: &[u8; 4]) -> Option<&'a [u8]> {
    children(body).find(|(t, _)| t == typ).map(|(_, b)| b)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The first `stsd` entry of a track.
fn first_entry(trak: &[u8]) -> Option<Vec<u8>> {
    let stbl = child(child(child(trak, b"mdia")?, b"minf")?, b"stbl")?;
    let stsd = child(stbl, b"stsd")?;
    let entries = stsd.get(8..)?;
    let size = be32(entries, 0)? as usize;
    Some(entries.get(..size)?.to_vec())
}

/// What a `moov` describes: the video track's first sample entry and `tkhd` size, and the audio
/// track if there is one.
type MoovInfo = (Vec<u8>, (u32, u32), Option<ScannedAudio>);

/// Reads the video track (id 1) and the audio track (id 2) of a `moov` body.
fn parse_moov(moov: &[u8]) -> Option<MoovInfo> {
    let mut video = None;
    let mut audio = None;
    for (typ, trak) in children(moov) {
        if &typ != b"trak" {
            continue;
        }
        let tkhd = child(trak, b"tkhd")?;
        let v1 = tkhd.first()? == &1;
        let id = if v1 { be32(tkhd, 20)? } else { be32(tkhd, 12)? };
        let handler = child(child(trak, b"mdia")?, b"hdlr")?.get(8..12)?;
        if id == VIDEO_TRACK_ID && handler == b"vide" {
            let (w, h) = if v1 {
                (be32(tkhd, 88)? >> 16, be32(tkhd, 92)? >> 16)
            } else {
                (be32(tkhd, 76)? >> 16, be32(tkhd, 80)? >> 16)
            };
            video = Some((first_entry(trak)?, (w, h)));
        } else if id == AUDIO_TRACK_ID && handler == b"soun" {
            let mdhd = child(child(trak, b"mdia")?, b"mdhd")?;
            let timescale = if mdhd.first()? == &1 { be32(mdhd, 20)? } else { be32(mdhd, 12)? };
            if timescale == 0 {
                return None;
            }
            audio = Some(ScannedAudio { sample_entry: first_entry(trak)?, timescale });
        }
    }
    let (entry, dims) = video?;
    Some((entry, dims, audio))
}

/// A `moof` as we write it (see [`super::fragment::fragment_header`]).
struct Moof {
    seq: u32,
    base: u64,
    video_offset: u32,
    samples: Vec<FragSample>,
    audio: Option<(u64, u32, Vec<AudioFragSample>)>,
}

/// One `trun` sample: duration, size, flags, composition offset.
type TrunSample = (u32, u32, u32, i32);

/// Reads a `trun`: (data offset, per-sample fields), for the layouts we write.
fn parse_trun(trun: &[u8], video: bool) -> Option<(u32, Vec<TrunSample>)> {
    let version = *trun.first()?;
    let flags = be32(trun, 0)? & 0x00ff_ffff;
    let has_flags = flags & 0x400 != 0;
    let has_cts = flags & 0x800 != 0;
    if flags & 0x301 != 0x301 || flags & 0x4 != 0 || (video && !has_flags) || (!video && (has_flags || has_cts)) {
        return None; // not a layout we write
    }
    let n = be32(trun, 4)? as usize;
    let data_offset = be32(trun, 8)?;
    let per = 8 + if has_flags { 4 } else { 0 } + if has_cts { 4 } else { 0 };
    if n > trun.len() / per {
        return None;
    }
    let mut at = 12;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let duration = be32(trun, at)?;
        let size = be32(trun, at + 4)?;
        at += 8;
        let sflags = if has_flags {
            at += 4;
            be32(trun, at - 4)?
        } else {
            0
        };
        let cts = if has_cts {
            at += 4;
            let raw = be32(trun, at - 4)?;
            // Version 0 offsets are unsigned; we only ever write small ones.
            if version == 0 { i32::try_from(raw).ok()? } else { raw as i32 }
        } else {
            0
        };
        out.push((duration, size, sflags, cts));
    }
    Some((data_offset, out))
}

/// Parses a `moof` body written by [`super::fragment::fragment_header`].
fn parse_moof(moof: &[u8]) -> Option<Moof> {
    let seq = be32(child(moof, b"mfhd")?, 4)?;
    let mut video = None;
    let mut audio = None;
    for (typ, traf) in children(moof) {
        if &typ != b"traf" {
            continue;
        }
        let track = be32(child(traf, b"tfhd")?, 4)?;
        let tfdt = child(traf, b"tfdt")?;
        let base = if tfdt.first()? == &1 { be64(tfdt, 4)? } else { u64::from(be32(tfdt, 4)?) };
        let is_video = track == VIDEO_TRACK_ID;
        if !is_video && track != AUDIO_TRACK_ID {
            return None;
        }
        let (offset, samples) = parse_trun(child(traf, b"trun")?, is_video)?;
        if is_video {
            let s = samples
                .into_iter()
                .map(|(duration, size, f, cts)| FragSample { duration, size, key: f & 0x0001_0000 == 0, cts })
                .collect();
            video = Some((base, offset, s));
        } else {
            let s = samples.into_iter().map(|(duration, size, _, _)| AudioFragSample { duration, size }).collect();
            audio = Some((base, offset, s));
        }
    }
    let (base, video_offset, samples) = video?;
    Some(Moof { seq, base, video_offset, samples, audio })
}

/// Scans a segment file. Never fails on a damaged tail: it reports where the valid part ends.
pub fn scan_segment<R: Read + Seek>(r: &mut R) -> Result<SegmentScan, ParseError> {
    let file_len = r.seek(SeekFrom::End(0))?;
    r.seek(SeekFrom::Start(0))?;
    let mut pos = 0u64;
    let mut init_len = None;
    let mut moov_info = None;
    let mut meta = None;
    let mut fragments = Vec::new();
    let mut valid_len = 0u64;
    let mut tail_problem = None;
    while pos < file_len {
        r.seek(SeekFrom::Start(pos))?;
        let Some((typ, hdr, size)) = box_header(r)? else {
            tail_problem = Some(format!("truncated box header at {pos}"));
            break;
        };
        let size = size.unwrap_or(file_len - pos);
        if size < hdr || pos + size > file_len {
            tail_problem =
                Some(format!("box '{}' at {pos} runs past the end of the file", String::from_utf8_lossy(&typ)));
            break;
        }
        let body_len = size - hdr;
        let read_body = |r: &mut R| -> Result<Vec<u8>, ParseError> {
            let mut b = vec![0u8; body_len as usize];
            r.read_exact(&mut b)?;
            Ok(b)
        };
        match &typ {
            b"ftyp" if pos == 0 => {}
            b"moov" if init_len.is_none() => {
                if body_len > MAX_HEADER_BOX {
                    return Err(ParseError::NotASegment("moov too large"));
                }
                let body = read_body(r)?;
                moov_info =
                    Some(parse_moov(&body).ok_or(ParseError::NotASegment("moov without a usable video track"))?);
                init_len = Some(pos + size);
            }
            b"ovmd" if init_len.is_some() => {
                if body_len > MAX_HEADER_BOX {
                    tail_problem = Some("metadata box too large".into());
                    break;
                }
                meta = Some(read_body(r)?);
            }
            b"moof" if init_len.is_some() => {
                if body_len > MAX_HEADER_BOX {
                    tail_problem = Some(format!("moof at {pos} too large"));
                    break;
                }
                let body = read_body(r)?;
                let Some(m) = parse_moof(&body) else {
                    tail_problem = Some(format!("unreadable moof at {pos}"));
                    break;
                };
                let mdat_pos = pos + size;
                r.seek(SeekFrom::Start(mdat_pos))?;
                let Some((mtyp, mhdr, msize)) = box_header(r)? else {
                    tail_problem = Some(format!("moof at {pos} has no mdat (torn write)"));
                    break;
                };
                let video_payload: u64 = m.samples.iter().map(|s| u64::from(s.size)).sum();
                let audio_payload: u64 =
                    m.audio.as_ref().map_or(0, |(_, _, a)| a.iter().map(|s| u64::from(s.size)).sum());
                let msize = msize.unwrap_or(file_len - mdat_pos);
                let audio_ok =
                    m.audio.as_ref().is_none_or(|(_, off, _)| u64::from(*off) == size + mhdr + video_payload);
                if &mtyp != b"mdat"
                    || msize < mhdr
                    || msize - mhdr != video_payload + audio_payload
                    || u64::from(m.video_offset) != size + mhdr
                    || !audio_ok
                    || mdat_pos + msize > file_len
                {
                    tail_problem = Some(format!("fragment at {pos} is incomplete or inconsistent"));
                    break;
                }
                let (audio_base, audio) = match m.audio {
                    Some((b, _, a)) => (Some(b), a),
                    None => (None, Vec::new()),
                };
                fragments.push(ScannedFragment {
                    seq: m.seq,
                    offset: pos,
                    base_decode_time: m.base,
                    data_start: mdat_pos + mhdr,
                    samples: m.samples,
                    audio_base,
                    audio,
                });
                pos = mdat_pos + msize;
                valid_len = pos;
                continue;
            }
            _ if init_len.is_none() && pos == 0 => {
                return Err(ParseError::NotASegment("does not start with ftyp"));
            }
            _ => {
                tail_problem = Some(format!("unexpected box '{}' at {pos}", String::from_utf8_lossy(&typ)));
                break;
            }
        }
        pos += size;
        valid_len = pos;
    }
    let init_len = init_len.ok_or(ParseError::NotASegment("no moov"))?;
    let (sample_entry, dims, audio) = moov_info.ok_or(ParseError::NotASegment("no moov"))?;
    Ok(SegmentScan { init_len, meta, sample_entry, dims, audio, fragments, valid_len, file_len, tail_problem })
}

#[cfg(test)]
mod tests {
    use super::super::{fragment, init};
    use super::*;

    fn avc1() -> Vec<u8> {
        let mut e = Vec::new();
        super::super::put_box(&mut e, b"avc1", |o| o.extend_from_slice(&[0u8; 78]));
        e
    }

    #[test]
    fn scan_finds_fragments_and_stops_at_a_torn_tail() {
        let mut f = init::init_segment(&avc1(), 640, 360, None);
        let init_len = f.len() as u64;
        let s = [
            fragment::FragSample { duration: 3600, size: 5, key: true, cts: 0 },
            fragment::FragSample { duration: 3600, size: 3, key: false, cts: 0 },
        ];
        f.extend(fragment::fragment_header(1, 0, &s, None));
        f.extend([1u8; 8]);
        let good = f.len() as u64;
        f.extend(fragment::fragment_header(2, 7200, &s, None));
        f.extend([1u8; 4]); // torn: 4 of 8 payload bytes
        let scan = scan_segment(&mut std::io::Cursor::new(&f)).unwrap();
        assert_eq!(scan.init_len, init_len);
        assert_eq!(scan.dims, (640, 360));
        assert_eq!(scan.sample_entry, avc1());
        assert_eq!(scan.audio, None);
        assert_eq!(scan.fragments.len(), 1);
        assert_eq!(scan.fragments[0].samples, s.to_vec());
        assert_eq!(scan.valid_len, good);
        assert!(scan.tail_problem.is_some());
    }

    #[test]
    fn scan_reads_composition_offsets_and_audio() {
        let mut mp4a = Vec::new();
        super::super::put_box(&mut mp4a, b"mp4a", |o| o.extend_from_slice(&[0u8; 28]));
        let track = super::super::AudioTrack { sample_entry: &mp4a, timescale: 48_000 };
        let mut f = init::init_segment(&avc1(), 640, 360, Some(&track));
        let s = [
            fragment::FragSample { duration: 3600, size: 5, key: true, cts: 0 },
            fragment::FragSample { duration: 3600, size: 3, key: false, cts: 7200 },
            fragment::FragSample { duration: 3600, size: 2, key: false, cts: -3600 },
        ];
        let a = [fragment::AudioFragSample { duration: 1024, size: 4 }; 3];
        for (seq, audio) in [(1, &a[..]), (2, &[][..])] {
            let part = fragment::AudioPart { base_decode_time: 96_000, samples: audio };
            f.extend(fragment::fragment_header(seq, 10_800, &s, Some(part)));
            f.extend([1u8; 10]);
            f.extend(vec![2u8; 4 * audio.len()]);
        }
        let scan = scan_segment(&mut std::io::Cursor::new(&f)).unwrap();
        assert_eq!(scan.audio, Some(ScannedAudio { sample_entry: mp4a, timescale: 48_000 }));
        assert_eq!(scan.fragments.len(), 2, "{:?}", scan.tail_problem);
        assert_eq!(scan.fragments[0].samples, s.to_vec());
        assert_eq!((scan.fragments[0].audio_base, scan.fragments[0].audio.len()), (Some(96_000), 3));
        assert_eq!((scan.fragments[1].audio_base, scan.fragments[1].audio.len()), (None, 0));
        assert_eq!(scan.valid_len, f.len() as u64);
    }

    #[test]
    fn garbage_is_not_a_segment() {
        let scan = scan_segment(&mut std::io::Cursor::new(vec![0x55u8; 100]));
        assert!(scan.is_err());
    }
}
