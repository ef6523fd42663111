//! Progressive MP4 (`ftyp`, `moov`, `mdat`) of a sequence of samples, for exports that play in
//! browsers and seek without an index scan.
//!
//! The file is laid out from counts alone. A movie is a sequence of *pieces* (for an export,
//! one per recorded segment); each piece says beforehand how many video samples, keyframes,
//! chunks, audio samples and media bytes it adds. Every sample table is written one entry per
//! sample or chunk (no run-length coding), so those counts fix the size of every box, the
//! header's length and each chunk's offset. The tables' bytes are generated piece by piece
//! only when a reader reaches them ([`Layout::read_header`], with [`Pieces`] supplying a
//! piece's samples): a day of video is laid out from a few thousand rows in a few
//! milliseconds, where building its header outright meant touching every one of its two
//! million frames first (the idea of Moonfire NVR's `view.mp4`). The cost is a larger header
//! (8 bytes of `stts` a sample where runs would often do), the same trade Moonfire makes.
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

/// A run of samples of one track whose data is contiguous in the file and shares one sample
/// entry. A piece lists its chunks in file order; each track's samples are taken in order.
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

/// What one piece adds to the file, known before its tables are generated.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Video samples.
    pub video: u32,
    /// Of which keyframes.
    pub keys: u32,
    /// Video chunks.
    pub video_chunks: u32,
    /// Audio samples.
    pub audio: u32,
    /// Audio chunks.
    pub audio_chunks: u32,
    /// Media bytes of both tracks (the piece's share of `mdat`).
    pub bytes: u64,
}

/// One piece's samples and chunks, generated when a reader reaches them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Video samples in decode order.
    pub video: Vec<Sample>,
    /// Audio samples in order.
    pub audio: Vec<AudioSample>,
    /// Chunks of both tracks, in file order.
    pub chunks: Vec<Chunk>,
}

impl Tables {
    /// What these tables add to a file.
    pub fn counts(&self) -> Counts {
        let chunks = |audio: bool| self.chunks.iter().filter(|c| c.audio == audio).count() as u32;
        Counts {
            video: self.video.len() as u32,
            keys: self.video.iter().filter(|s| s.key).count() as u32,
            video_chunks: chunks(false),
            audio: self.audio.len() as u32,
            audio_chunks: chunks(true),
            bytes: self.chunks.iter().map(|c| c.bytes).sum(),
        }
    }
}

/// Supplies the tables of a movie's pieces, in any order and more than once (a reader of the
/// header walks the pieces once per table).
pub trait Pieces {
    /// Why a piece's tables could not be had.
    type Error: From<FileError>;
    /// The tables of piece `piece`, which must agree with its [`Counts`].
    fn tables(&mut self, piece: usize) -> Result<&Tables, Self::Error>;
}

/// A movie of one piece whose tables are at hand.
impl Pieces for Tables {
    type Error = FileError;
    fn tables(&mut self, _piece: usize) -> Result<&Tables, FileError> {
        Ok(self)
    }
}

/// The audio track of a movie.
#[derive(Clone, Debug, Default)]
pub struct AudioTrack {
    /// Sample entry boxes (`mp4a`, `fLaC`) used by its chunks.
    pub entries: Vec<Vec<u8>>,
    /// Its clock (samples per second).
    pub timescale: u32,
    /// Sum of its samples' durations, in its clock.
    pub media_dur: u64,
    /// Its edit list: media times in the audio clock, durations in 90 kHz (the movie's clock).
    /// Empty: the whole media.
    pub edits: Vec<Edit>,
}

/// Everything needed to lay out the file; the samples come from [`Pieces`].
#[derive(Clone, Debug, Default)]
pub struct Movie {
    /// Video sample entry boxes (`avc1`, `hvc1`) used by the chunks.
    pub entries: Vec<Vec<u8>>,
    /// Display size for `tkhd`.
    pub width: u32,
    /// Display size for `tkhd`.
    pub height: u32,
    /// Sum of the video samples' durations (90 kHz).
    pub media_dur: u64,
    /// Least and greatest composition offset of the video samples ((0, 0) without B-frames).
    pub cts_range: (i32, i32),
    /// The video edit list: which stretches of the media timeline players show, in order. An
    /// export that begins at a keyframe before the requested start hides that lead-in with an
    /// edit; an export of several ranges has one edit per range. Empty: the whole media.
    pub edits: Vec<Edit>,
    /// The audio track, if any.
    pub audio: Option<AudioTrack>,
    /// The pieces, in file order.
    pub pieces: Vec<Counts>,
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
    /// Tables disagree (a bug in the caller, or an index that changed under a plan), reported
    /// rather than written.
    #[error("inconsistent sample tables: {0}")]
    Inconsistent(&'static str),
    /// The header would not fit the 32-bit box sizes used.
    #[error("the file's header would exceed 4 GiB; export a shorter range")]
    TooLarge,
}

/// A sample table whose entries are generated per piece.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Table {
    /// Decode durations (video or audio track).
    Stts(bool),
    /// Composition offsets (video).
    Ctts,
    /// Sync sample numbers (video).
    Stss,
    /// Chunk to samples (video or audio).
    Stsc(bool),
    /// Sample sizes (video or audio).
    Stsz(bool),
    /// Chunk offsets (video or audio).
    Co64(bool),
}

impl Table {
    fn entry_len(self) -> u64 {
        match self {
            Table::Stts(_) | Table::Ctts | Table::Co64(_) => 8,
            Table::Stss | Table::Stsz(_) => 4,
            Table::Stsc(_) => 12,
        }
    }

    /// The running totals of this table's entries over the pieces.
    fn prefix(self, p: &Prefix) -> &[u64] {
        match self {
            Table::Stts(false) | Table::Ctts | Table::Stsz(false) => &p.video,
            Table::Stss => &p.keys,
            Table::Stsc(false) | Table::Co64(false) => &p.video_chunks,
            Table::Stts(true) | Table::Stsz(true) => &p.audio,
            Table::Stsc(true) | Table::Co64(true) => &p.audio_chunks,
        }
    }
}

/// Running totals over the pieces: entry `i` is the sum over pieces `..i` (one more entry than
/// pieces).
#[derive(Clone, Debug, Default)]
struct Prefix {
    video: Vec<u64>,
    keys: Vec<u64>,
    video_chunks: Vec<u64>,
    audio: Vec<u64>,
    audio_chunks: Vec<u64>,
    bytes: Vec<u64>,
}

impl Prefix {
    fn of(pieces: &[Counts]) -> Prefix {
        let sums = |f: &dyn Fn(&Counts) -> u64| {
            let mut v = Vec::with_capacity(pieces.len() + 1);
            let mut at = 0u64;
            v.push(0);
            for c in pieces {
                at += f(c);
                v.push(at);
            }
            v
        };
        Prefix {
            video: sums(&|c| u64::from(c.video)),
            keys: sums(&|c| u64::from(c.keys)),
            video_chunks: sums(&|c| u64::from(c.video_chunks)),
            audio: sums(&|c| u64::from(c.audio)),
            audio_chunks: sums(&|c| u64::from(c.audio_chunks)),
            bytes: sums(&|c| c.bytes),
        }
    }

    fn total(v: &[u64]) -> u64 {
        v.last().copied().unwrap_or(0)
    }
}

/// A stretch of the header: bytes known at layout, or a table generated per piece.
#[derive(Clone, Debug)]
enum Part {
    Bytes(Vec<u8>),
    Table(Table),
}

/// The layout of a file: its header as fixed bytes and generated tables, and where each
/// piece's media lies.
#[derive(Clone, Debug)]
pub struct Layout {
    parts: Vec<Part>,
    /// Offset in the file at which each part starts.
    starts: Vec<u64>,
    header_len: u64,
    total_len: u64,
    prefix: Prefix,
    /// Added to every composition offset (and the edit list) to make them non-negative.
    cts_shift: u64,
    /// Number of video and audio sample entries.
    entries: (usize, usize),
}

/// The bytes of one (table, piece) pair, kept by a reader: reading a header in order asks for
/// the same pair many times in a row.
#[derive(Debug, Default)]
pub struct Scratch {
    key: Option<(Table, usize)>,
    bytes: Vec<u8>,
}

/// Builds a header of fixed bytes and holes of known length (the tables), patching box sizes.
struct Template {
    parts: Vec<Part>,
    cur: Vec<u8>,
    /// Length of everything before `cur`.
    before: u64,
    too_large: bool,
}

impl Template {
    fn len(&self) -> u64 {
        self.before + self.cur.len() as u64
    }

    fn hole(&mut self, t: Table, len: u64) {
        if len == 0 {
            return;
        }
        let cur = std::mem::take(&mut self.cur);
        self.before += cur.len() as u64;
        if !cur.is_empty() {
            self.parts.push(Part::Bytes(cur));
        }
        self.parts.push(Part::Table(t));
        self.before += len;
    }

    /// A box whose body `f` writes (fixed bytes and holes).
    fn boxed(&mut self, typ: &[u8; 4], f: impl FnOnce(&mut Template)) {
        let start = self.len();
        let (part, at) = (self.parts.len(), self.cur.len());
        self.cur.extend_from_slice(&[0, 0, 0, 0]);
        self.cur.extend_from_slice(typ);
        f(self);
        let Ok(size) = u32::try_from(self.len() - start) else {
            self.too_large = true;
            return;
        };
        let field = if self.parts.len() == part {
            &mut self.cur[at..at + 4]
        } else {
            match &mut self.parts[part] {
                Part::Bytes(b) => &mut b[at..at + 4],
                Part::Table(_) => return,
            }
        };
        field.copy_from_slice(&size.to_be_bytes());
    }

    /// A full box of table `t`: its fixed fields (`head`), then `entries` generated entries.
    fn table(&mut self, typ: &[u8; 4], t: Table, head: &[u32], entries: u64) {
        self.boxed(typ, |b| {
            b.cur.extend_from_slice(&[0, 0, 0, 0]); // version 0, flags 0
            for &v in head {
                u32be(&mut b.cur, v);
            }
            b.hole(t, entries * t.entry_len());
        });
    }

    fn finish(mut self) -> Result<(Vec<Part>, u64), FileError> {
        if self.too_large {
            return Err(FileError::TooLarge);
        }
        let len = self.len();
        if !self.cur.is_empty() {
            self.parts.push(Part::Bytes(std::mem::take(&mut self.cur)));
        }
        Ok((self.parts, len))
    }
}

/// Lays out a fast-start MP4 whose `mdat` holds the pieces' chunks in order.
pub fn layout(movie: &Movie) -> Result<Layout, FileError> {
    let prefix = Prefix::of(&movie.pieces);
    let frames = Prefix::total(&prefix.video);
    if frames == 0 {
        return Err(FileError::Empty);
    }
    let audio_samples = Prefix::total(&prefix.audio);
    if u32::try_from(frames).is_err() || u32::try_from(audio_samples).is_err() {
        return Err(FileError::TooLarge);
    }
    if movie.entries.is_empty() || movie.audio.as_ref().is_some_and(|a| a.entries.is_empty() && audio_samples > 0) {
        return Err(FileError::Inconsistent("chunks without a sample entry"));
    }
    if movie.audio.is_none() && audio_samples > 0 {
        return Err(FileError::Inconsistent("audio samples without an audio track"));
    }
    if movie.audio.as_ref().is_some_and(|a| a.timescale == 0) {
        return Err(FileError::Inconsistent("audio track without a clock"));
    }
    let payload = Prefix::total(&prefix.bytes);
    let (cts_min, cts_max) = movie.cts_range;
    let cts_shift = i64::from(cts_min.min(0)).unsigned_abs();
    let mut t = Template { parts: Vec::new(), cur: Vec::with_capacity(4096), before: 0, too_large: false };
    let brand: &[u8; 4] =
        if movie.entries.first().and_then(|e| e.get(4..8)) == Some(b"hvc1") { b"hvc1" } else { b"avc1" };
    put_ftyp(&mut t.cur, b"isom", &[b"isom", b"iso2", brand, b"mp41"]);
    let whole = [Edit { media_time: 0, duration: movie.media_dur }];
    let edits: &[Edit] = if movie.edits.is_empty() { &whole } else { &movie.edits };
    let shown: u64 = edits.iter().map(|e| e.duration).sum();
    let audio = movie.audio.as_ref();
    let audio_whole = [Edit {
        media_time: 0,
        duration: audio.map_or(0, |a| {
            crate::time::rescale(a.media_dur as i64, i64::from(a.timescale), crate::time::TICKS_PER_SEC) as u64
        }),
    }];
    let audio_edits: &[Edit] = match audio {
        Some(a) if !a.edits.is_empty() => &a.edits,
        _ => &audio_whole,
    };
    let audio_shown: u64 = audio_edits.iter().map(|e| e.duration).sum();
    let keys = Prefix::total(&prefix.keys);
    t.boxed(b"moov", |t| {
        let next_track = if audio.is_some() { AUDIO_TRACK_ID + 1 } else { VIDEO_TRACK_ID + 1 };
        put_mvhd(&mut t.cur, shown.max(if audio.is_some() { audio_shown } else { 0 }), next_track);
        t.boxed(b"trak", |t| {
            put_tkhd(&mut t.cur, shown, movie.width, movie.height);
            put_elst(&mut t.cur, edits, cts_shift);
            t.boxed(b"mdia", |t| {
                put_mdhd_hdlr(&mut t.cur, movie.media_dur);
                t.boxed(b"minf", |t| {
                    put_vmhd_dinf(&mut t.cur);
                    t.boxed(b"stbl", |t| {
                        let entries: Vec<&[u8]> = movie.entries.iter().map(Vec::as_slice).collect();
                        put_stsd(&mut t.cur, &entries);
                        t.table(b"stts", Table::Stts(false), &[frames as u32], frames);
                        if (cts_min, cts_max) != (0, 0) {
                            t.table(b"ctts", Table::Ctts, &[frames as u32], frames);
                        }
                        // stss lists the sync samples (omitted only if every sample is one).
                        if keys < frames {
                            t.table(b"stss", Table::Stss, &[keys as u32], keys);
                        }
                        stbl_chunks(t, false, &prefix);
                    });
                });
            });
        });
        if let Some(a) = audio {
            t.boxed(b"trak", |t| {
                put_audio_tkhd(&mut t.cur, audio_shown);
                put_elst(&mut t.cur, audio_edits, 0);
                t.boxed(b"mdia", |t| {
                    put_audio_mdhd_hdlr(&mut t.cur, a.timescale, a.media_dur);
                    t.boxed(b"minf", |t| {
                        put_smhd_dinf(&mut t.cur);
                        t.boxed(b"stbl", |t| {
                            let entries: Vec<&[u8]> = a.entries.iter().map(Vec::as_slice).collect();
                            put_stsd(&mut t.cur, &entries);
                            t.table(b"stts", Table::Stts(true), &[audio_samples as u32], audio_samples);
                            stbl_chunks(t, true, &prefix);
                        });
                    });
                });
            });
        }
    });
    // mdat with a 64-bit size so any length fits.
    u32be(&mut t.cur, 1);
    t.cur.extend_from_slice(b"mdat");
    u64be(&mut t.cur, payload + 16);
    let (parts, header_len) = t.finish()?;
    // Each part's place: fixed bytes are their own length, a table entries × entry size.
    let mut starts = Vec::with_capacity(parts.len());
    let mut at = 0u64;
    for p in &parts {
        starts.push(at);
        at += match p {
            Part::Bytes(b) => b.len() as u64,
            Part::Table(tb) => Prefix::total(tb.prefix(&prefix)) * tb.entry_len(),
        };
    }
    if at != header_len {
        return Err(FileError::Inconsistent("header parts do not add up"));
    }
    let entries = (movie.entries.len(), audio.map_or(0, |a| a.entries.len()));
    Ok(Layout { parts, starts, header_len, total_len: header_len + payload, prefix, cts_shift, entries })
}

/// `stsc`, `stsz` and `co64` of one track.
fn stbl_chunks(t: &mut Template, audio: bool, prefix: &Prefix) {
    let (samples, chunks) =
        if audio { (&prefix.audio, &prefix.audio_chunks) } else { (&prefix.video, &prefix.video_chunks) };
    let (samples, chunks) = (Prefix::total(samples), Prefix::total(chunks));
    t.table(b"stsc", Table::Stsc(audio), &[chunks as u32], chunks);
    t.table(b"stsz", Table::Stsz(audio), &[0, samples as u32], samples);
    t.table(b"co64", Table::Co64(audio), &[chunks as u32], chunks);
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

impl Layout {
    /// Length of the header (`ftyp`, `moov`, the `mdat` header): where the media starts.
    pub fn header_len(&self) -> u64 {
        self.header_len
    }

    /// Length of the whole file.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Bytes of memory the layout holds.
    pub fn heap_bytes(&self) -> usize {
        let fixed: usize = self.parts.iter().map(|p| if let Part::Bytes(b) = p { b.capacity() } else { 0 }).sum();
        let p = &self.prefix;
        fixed
            + self.starts.capacity() * 8
            + [&p.video, &p.keys, &p.video_chunks, &p.audio, &p.audio_chunks, &p.bytes]
                .iter()
                .map(|v| v.capacity() * 8)
                .sum::<usize>()
    }

    /// The header's fixed bytes from `pos` to the end of the stretch holding it, if `pos` lies
    /// in one (not in a generated table): what a server can send before generating anything.
    pub fn fixed_at(&self, pos: u64) -> &[u8] {
        if pos >= self.header_len {
            return &[];
        }
        let i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
        match (self.parts.get(i), self.starts.get(i)) {
            (Some(Part::Bytes(b)), Some(&start)) => b.get((pos - start) as usize..).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Where piece `piece`'s media starts in the file, and how long it is.
    pub fn piece_media(&self, piece: usize) -> Option<(u64, u64)> {
        let (from, to) = (self.prefix.bytes.get(piece)?, self.prefix.bytes.get(piece + 1)?);
        Some((self.header_len + from, to - from))
    }

    /// The piece whose media holds file offset `pos` (at or past the header).
    pub fn piece_at(&self, pos: u64) -> Option<usize> {
        let within = pos.checked_sub(self.header_len)?;
        if within >= Prefix::total(&self.prefix.bytes) {
            return None;
        }
        // The last piece starting at or before it (empty pieces start where the next does).
        Some(self.prefix.bytes.partition_point(|&b| b <= within).saturating_sub(1))
    }

    /// Feeds the header's fixed bytes and its shape (every part's kind and length) to `h`:
    /// with the pieces' identities, what tells two files apart (HTTP entity tags).
    pub fn hash_shape(&self, h: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        for (p, start) in self.parts.iter().zip(&self.starts) {
            start.hash(h);
            if let Part::Bytes(b) = p {
                b.hash(h);
            }
        }
        self.prefix.bytes.hash(h);
        self.total_len.hash(h);
    }

    /// Fills `buf` with header bytes from `pos` (stopping at the header's end); returns how
    /// many. Tables are generated from `pieces` as they are reached.
    pub fn read_header<P: Pieces>(
        &self,
        pos: u64,
        buf: &mut [u8],
        pieces: &mut P,
        scratch: &mut Scratch,
    ) -> Result<usize, P::Error> {
        let mut done = 0usize;
        let mut pos = pos;
        while done < buf.len() && pos < self.header_len {
            let i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
            let (Some(part), Some(&start)) = (self.parts.get(i), self.starts.get(i)) else { break };
            let within = pos - start;
            let n = match part {
                Part::Bytes(b) => {
                    let from = within as usize;
                    let n = (b.len() - from).min(buf.len() - done);
                    buf[done..done + n].copy_from_slice(&b[from..from + n]);
                    n
                }
                Part::Table(t) => {
                    let prefix = t.prefix(&self.prefix);
                    let entry = within / t.entry_len();
                    let piece = prefix.partition_point(|&e| e <= entry).saturating_sub(1);
                    if scratch.key != Some((*t, piece)) {
                        scratch.key = None;
                        scratch.bytes.clear();
                        self.put_entries(*t, piece, pieces.tables(piece)?, &mut scratch.bytes)?;
                        scratch.key = Some((*t, piece));
                    }
                    let from = (within - prefix[piece] * t.entry_len()) as usize;
                    let b = &scratch.bytes;
                    if from >= b.len() {
                        return Err(FileError::Inconsistent("a piece's table is shorter than counted").into());
                    }
                    let n = (b.len() - from).min(buf.len() - done);
                    buf[done..done + n].copy_from_slice(&b[from..from + n]);
                    n
                }
            };
            done += n;
            pos += n as u64;
        }
        Ok(done)
    }

    /// The whole header at once (small files, tests).
    pub fn header_bytes<P: Pieces>(&self, pieces: &mut P) -> Result<Vec<u8>, P::Error> {
        let mut out = vec![0u8; self.header_len as usize];
        let n = self.read_header(0, &mut out, pieces, &mut Scratch::default())?;
        if n != out.len() {
            return Err(FileError::Inconsistent("header shorter than laid out").into());
        }
        Ok(out)
    }

    /// Piece `piece`'s entries of table `t`, checked against its counts.
    fn put_entries(&self, t: Table, piece: usize, tables: &Tables, out: &mut Vec<u8>) -> Result<(), FileError> {
        let p = &self.prefix;
        let count = |v: &[u64]| v[piece + 1] - v[piece];
        let c = tables.counts();
        let agrees = u64::from(c.video) == count(&p.video)
            && u64::from(c.keys) == count(&p.keys)
            && u64::from(c.video_chunks) == count(&p.video_chunks)
            && u64::from(c.audio) == count(&p.audio)
            && u64::from(c.audio_chunks) == count(&p.audio_chunks)
            && c.bytes == count(&p.bytes);
        if !agrees {
            return Err(FileError::Inconsistent("a piece's samples differ from its counts"));
        }
        let chunk_samples = |audio: bool| -> u64 {
            tables.chunks.iter().filter(|k| k.audio == audio).map(|k| u64::from(k.samples)).sum()
        };
        if chunk_samples(false) != u64::from(c.video) || chunk_samples(true) != u64::from(c.audio) {
            return Err(FileError::Inconsistent("chunk sample counts do not add up"));
        }
        if tables.chunks.iter().any(|k| k.entry >= if k.audio { self.entries.1 } else { self.entries.0 }) {
            return Err(FileError::Inconsistent("chunk refers to a missing sample entry"));
        }
        out.reserve((t.entry_len() * count(t.prefix(p))) as usize);
        match t {
            Table::Stts(false) => {
                for s in &tables.video {
                    u32be(out, 1);
                    u32be(out, s.duration);
                }
            }
            Table::Stts(true) => {
                for s in &tables.audio {
                    u32be(out, 1);
                    u32be(out, s.duration);
                }
            }
            Table::Ctts => {
                for s in &tables.video {
                    u32be(out, 1);
                    u32be(out, (i64::from(s.cts) + self.cts_shift as i64).max(0) as u32);
                }
            }
            Table::Stss => {
                let first = p.video[piece];
                for (i, s) in tables.video.iter().enumerate() {
                    if s.key {
                        u32be(out, (first + i as u64 + 1) as u32);
                    }
                }
            }
            Table::Stsz(false) => tables.video.iter().for_each(|s| u32be(out, s.size)),
            Table::Stsz(true) => tables.audio.iter().for_each(|s| u32be(out, s.size)),
            Table::Stsc(audio) => {
                let first = if audio { p.audio_chunks[piece] } else { p.video_chunks[piece] };
                for (k, c) in tables.chunks.iter().filter(|c| c.audio == audio).enumerate() {
                    u32be(out, (first + k as u64 + 1) as u32);
                    u32be(out, c.samples);
                    u32be(out, c.entry as u32 + 1);
                }
            }
            Table::Co64(audio) => {
                let mut off = self.header_len + p.bytes[piece];
                for c in &tables.chunks {
                    if c.audio == audio {
                        u64be(out, off);
                    }
                    off += c.bytes;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mp4::parse::{child, children};

    fn tables() -> Tables {
        Tables {
            video: vec![
                Sample { duration: 3600, size: 100, key: true, cts: 0 },
                Sample { duration: 3600, size: 10, key: false, cts: 7200 },
                Sample { duration: 3600, size: 11, key: false, cts: -3600 },
                Sample { duration: 3601, size: 90, key: true, cts: 0 },
            ],
            audio: vec![AudioSample { duration: 1024, size: 30 }, AudioSample { duration: 1024, size: 31 }],
            chunks: vec![
                Chunk { entry: 0, samples: 2, bytes: 110, audio: false },
                Chunk { entry: 0, samples: 1, bytes: 30, audio: true },
                Chunk { entry: 0, samples: 2, bytes: 101, audio: false },
                Chunk { entry: 0, samples: 1, bytes: 31, audio: true },
            ],
        }
    }

    fn movie(pieces: Vec<Counts>) -> Movie {
        Movie {
            entries: vec![vec![0, 0, 0, 8, b'a', b'v', b'c', b'1']],
            width: 640,
            height: 360,
            media_dur: 4 * 3600 + 1,
            cts_range: (-3600, 7200),
            edits: vec![Edit { media_time: 3600, duration: 7200 }],
            audio: Some(AudioTrack {
                entries: vec![vec![0, 0, 0, 8, b'm', b'p', b'4', b'a']],
                timescale: 48_000,
                media_dur: 2048,
                edits: Vec::new(),
            }),
            pieces,
        }
    }

    /// The same samples as one piece or as two give the same bytes; read at any offset in any
    /// sizes they are the same again; and the boxes nest with sizes that add up.
    #[test]
    fn pieces_and_reads_do_not_change_the_bytes() {
        let all = tables();
        let whole = layout(&movie(vec![all.counts()])).unwrap();
        let one = whole.header_bytes(&mut all.clone()).unwrap();
        let halves = [
            Tables { video: all.video[..2].to_vec(), audio: all.audio[..1].to_vec(), chunks: all.chunks[..2].to_vec() },
            Tables { video: all.video[2..].to_vec(), audio: all.audio[1..].to_vec(), chunks: all.chunks[2..].to_vec() },
        ];
        struct Two([Tables; 2]);
        impl Pieces for Two {
            type Error = FileError;
            fn tables(&mut self, piece: usize) -> Result<&Tables, FileError> {
                Ok(&self.0[piece])
            }
        }
        let split = layout(&movie(halves.iter().map(Tables::counts).collect())).unwrap();
        let mut two = Two(halves);
        assert_eq!(split.header_bytes(&mut two).unwrap(), one);
        assert_eq!(whole.total_len(), one.len() as u64 + 272);
        assert_eq!(split.piece_media(1), Some((one.len() as u64 + 140, 132)));
        assert_eq!(
            (split.piece_at(one.len() as u64 + 139), split.piece_at(one.len() as u64 + 140)),
            (Some(0), Some(1))
        );
        for step in [1usize, 3, 7, 64] {
            let mut got = Vec::new();
            let mut scratch = Scratch::default();
            let mut buf = vec![0u8; step];
            while (got.len() as u64) < split.header_len() {
                let n = split.read_header(got.len() as u64, &mut buf, &mut two, &mut scratch).unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, one, "read {step} bytes at a time");
        }
        // The fixed bytes from any offset are the header's own, up to a table (or its end).
        let first = split.fixed_at(0);
        assert!(first.len() > 100 && one.starts_with(first), "{} fixed bytes first", first.len());
        let mut pos = 0;
        let mut tables = 0;
        while pos < one.len() {
            let fixed = split.fixed_at(pos as u64);
            assert_eq!(fixed, &one[pos..pos + fixed.len()], "fixed bytes at {pos}");
            tables += usize::from(fixed.is_empty());
            pos += fixed.len().max(1);
        }
        assert!(tables > 0, "the tables are generated, not fixed");
        assert!(split.fixed_at(split.header_len()).is_empty() && split.fixed_at(u64::MAX).is_empty());
        // The header ends with mdat's (64-bit size: the media follows).
        assert_eq!(&one[one.len() - 12..one.len() - 8], b"mdat");
        assert_eq!(u64::from_be_bytes(one[one.len() - 8..].try_into().unwrap()), 272 + 16);
        let moov = children(&one).find(|(t, _)| t == b"moov").map(|(_, b)| b).unwrap();
        let stbl = |trak: &[u8]| -> Vec<u8> {
            child(child(child(trak, b"mdia").unwrap(), b"minf").unwrap(), b"stbl").unwrap().to_vec()
        };
        let traks: Vec<&[u8]> = children(moov).filter(|(t, _)| t == b"trak").map(|(_, b)| b).collect();
        let v = stbl(traks[0]);
        let be = |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
        // stss: samples 1 and 4; ctts shifted by 3600; co64: the second video chunk after the
        // first audio chunk.
        let stss = child(&v, b"stss").unwrap();
        assert_eq!((be(stss, 4), be(stss, 8), be(stss, 12)), (2, 1, 4));
        let ctts = child(&v, b"ctts").unwrap();
        assert_eq!((be(ctts, 12), be(ctts, 20), be(ctts, 28)), (3600, 10800, 0));
        let co64 = child(&v, b"co64").unwrap();
        let off = |i: usize| u64::from_be_bytes(co64[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        assert_eq!((off(0), off(1)), (one.len() as u64, one.len() as u64 + 140));
        let a = stbl(traks[1]);
        let stsz = child(&a, b"stsz").unwrap();
        assert_eq!((be(stsz, 8), be(stsz, 12), be(stsz, 16)), (2, 30, 31));
    }

    /// A piece whose tables disagree with its counts is an error, never a wrong file.
    #[test]
    fn tables_that_disagree_with_counts_are_refused() {
        let all = tables();
        let mut counts = all.counts();
        counts.bytes += 1;
        let l = layout(&movie(vec![counts])).unwrap();
        assert!(matches!(l.header_bytes(&mut all.clone()), Err(FileError::Inconsistent(_))));
    }

    #[test]
    fn empty_is_an_error() {
        assert!(matches!(layout(&Movie::default()), Err(FileError::Empty)));
    }
}
