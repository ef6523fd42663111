//! One segment's share of an export: what it adds to the file, and its tables and byte ranges
//! generated from its sample index.

use super::super::ArchiveError;
use super::super::index::Decoded;
use crate::mp4::file::{self, Chunk, Tables};
use crate::time::{TICKS_PER_SEC, rescale};
use std::path::PathBuf;
use std::sync::Arc;

/// One segment's share of an export, and what generating its tables needs.
#[derive(Debug)]
pub(super) struct Piece {
    /// Segment row id (its sample index is read by it).
    pub(super) id: i64,
    /// Segment file.
    pub(super) path: PathBuf,
    /// Wall time of the segment's first frame.
    pub(super) start: i64,
    pub(super) wall_dur: i64,
    pub(super) media_start: i64,
    pub(super) media_dur: i64,
    pub(super) audio_start: i64,
    /// The sample index, when it was read while planning.
    pub(super) idx: Option<Arc<[u8]>>,
    /// Video samples taken, `[from, to)` in decode order (None: all).
    pub(super) video: Option<(usize, usize)>,
    /// Video sample entry (index into the movie's).
    pub(super) entry: usize,
    /// The audio taken: its entry, its clock, and which samples (None: all).
    pub(super) audio: Option<PieceAudio>,
    /// What the last frame's duration runs to.
    pub(super) video_end: VideoEnd,
}

#[derive(Debug)]
pub(super) struct PieceAudio {
    pub(super) entry: usize,
    pub(super) rate: u32,
    pub(super) samples: Option<(usize, usize)>,
    /// Wall time of the range's first audio sample: audio durations are differences of wall
    /// times measured from it, in the audio clock, so the track's timeline is wall time too.
    pub(super) base: i64,
    /// Wall time of the range's next audio sample after this piece's (None: the last piece
    /// with audio in its range; its last sample keeps its own duration).
    pub(super) next: Option<i64>,
}

#[derive(Copy, Clone, Debug)]
pub(super) enum VideoEnd {
    /// The next piece's first frame, at this wall time: a gap before it is held.
    Next(i64),
    /// The end of the shown range (the last frame of a range lasts until then, at most its
    /// own duration).
    RangeEnd(i64),
}

impl Piece {
    pub(super) fn wall(&self, media_off: i64) -> i64 {
        self.start + rescale(media_off, self.media_dur, self.wall_dur)
    }

    pub(super) fn audio_wall(&self, media_off: i64, rate: u32) -> i64 {
        let at90 = rescale(self.audio_start + media_off, i64::from(rate), TICKS_PER_SEC);
        self.start + rescale(at90 - self.media_start, self.media_dur, self.wall_dur)
    }

    /// The piece's samples and chunks, and for each chunk where its bytes lie in the segment
    /// file (offset, length).
    pub(super) fn tables(&self, d: &Decoded) -> Result<(Tables, Vec<(u64, u64)>), ArchiveError> {
        let corrupt = |what: &str| ArchiveError::Corrupt(format!("{}: {what}", self.path.display()));
        let (from, to) = self.video.unwrap_or((0, d.video.len()));
        let video = d.video.get(from..to).ok_or_else(|| corrupt("its index holds fewer frames than planned"))?;
        let mut t = Tables { video: Vec::with_capacity(video.len()), ..Tables::default() };
        // (fragment, chunk, file offset) of each track, merged into file order below.
        let mut vchunks: Vec<(u32, Chunk, u64)> = Vec::new();
        let mut wall = video.first().map(|s| self.wall(s.media_off)).unwrap_or(self.start);
        for (j, s) in video.iter().enumerate() {
            let next = video.get(j + 1).map(|n| self.wall(n.media_off));
            let dur = match (next, self.video_end) {
                (Some(n), _) => (n - wall).max(1),
                (None, VideoEnd::Next(n)) => (n - wall).max(1),
                (None, VideoEnd::RangeEnd(e)) => {
                    let own = self.wall(s.media_off + i64::from(s.duration)) - wall;
                    (e - wall).clamp(1, own.max(1))
                }
            };
            let duration = u32::try_from(dur).map_err(|_| {
                ArchiveError::BadRange(
                    "a gap longer than 13 hours inside one export; export the parts separately".into(),
                )
            })?;
            t.video.push(file::Sample { duration, size: s.size, key: s.key, cts: s.cts });
            add_to_chunks(&mut vchunks, s.fragment, self.entry, false, s.file_off, s.size);
            wall = next.unwrap_or(wall);
        }
        let mut achunks: Vec<(u32, Chunk, u64)> = Vec::new();
        if let Some(a) = &self.audio {
            let (from, to) = a.samples.unwrap_or((0, d.audio.len()));
            let audio =
                d.audio.get(from..to).ok_or_else(|| corrupt("its index holds fewer audio frames than planned"))?;
            let rate = i64::from(a.rate);
            let at = |w: i64| rescale(w - a.base, TICKS_PER_SEC, rate);
            t.audio.reserve(audio.len());
            for (j, s) in audio.iter().enumerate() {
                let wall = self.audio_wall(s.media_off, a.rate);
                let dur = match (audio.get(j + 1), a.next) {
                    (Some(n), _) => at(self.audio_wall(n.media_off, a.rate)) - at(wall),
                    (None, Some(n)) => at(n) - at(wall),
                    (None, None) => i64::from(s.duration),
                };
                let duration = u32::try_from(dur.max(1)).unwrap_or(u32::MAX);
                t.audio.push(file::AudioSample { duration, size: s.size });
                add_to_chunks(&mut achunks, s.fragment, a.entry, true, s.file_off, s.size);
            }
        }
        // In the order the bytes lie in the segment file: each fragment's video, then its audio.
        let mut sources = Vec::with_capacity(vchunks.len() + achunks.len());
        let mut v = vchunks.into_iter().peekable();
        let mut a = achunks.into_iter().peekable();
        loop {
            let take_audio = match (v.peek(), a.peek()) {
                (Some(x), Some(y)) => y.0 < x.0,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            let Some((_, chunk, off)) = (if take_audio { a.next() } else { v.next() }) else { break };
            t.chunks.push(chunk);
            sources.push((off, chunk.bytes));
        }
        Ok((t, sources))
    }
}

/// Adds a sample to the chunk of its fragment (a new chunk when the fragment changes).
fn add_to_chunks(chunks: &mut Vec<(u32, Chunk, u64)>, fragment: u32, entry: usize, audio: bool, off: u64, size: u32) {
    match chunks.last_mut() {
        Some((f, c, _)) if *f == fragment => {
            c.samples += 1;
            c.bytes += u64::from(size);
        }
        _ => chunks.push((fragment, Chunk { entry, samples: 1, bytes: u64::from(size), audio }, off)),
    }
}
