//! A recorded range as one transcoded MP4 (`content.mp4?codec=h264&height=…`): the variant's
//! init segment, then the range's variant fragments back to back (`docs/decode.md`,
//! "Transcoded MP4").
//!
//! The fragments are the HLS variant's, made and cached once for both. Each keeps its length
//! and only has its numbers moved ([`crate::mp4::fragment::retime`]): its sequence number
//! becomes its place in the file, and its times count from the file's start. Within a timeline
//! (one run of one camera configuration) a fragment starts where the one before it ended, in
//! media time, exactly as recorded; a new timeline starts at its wall-clock offset from the
//! file's start, so a gap in the recording is a gap in the file's clock (never a jump back).
//! So the file's layout (each fragment's offset, the total length, the duration) follows from
//! the index and the cached fragments' lengths, and a byte range of it can be served without
//! making the fragments before it.

use crate::archive::playback::Playback;
use crate::time::Time90k;

/// One variant fragment of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Segment file holding the recorded fragment.
    pub file: String,
    /// Offset of its `moof` in that file (the variant fragment's name, `OFFSET.m4s`).
    pub offset: u64,
    /// Its video `tfdt` in the file, 90 kHz from the file's start.
    pub tfdt: u64,
    /// Wall-clock time of its first frame.
    pub wall_start: Time90k,
}

/// The layout of a transcoded MP4 of a range, from the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentPlan {
    /// The fragments, in file order.
    pub pieces: Vec<Piece>,
    /// Indexes of the pieces that start a new timeline (after the first): another run, or
    /// another camera configuration, whose init segment may differ from the first's.
    pub timelines: Vec<usize>,
    /// Each piece's end in the file (90 kHz): the last one's is the file's duration.
    ends: Vec<u64>,
    /// Wall-clock end of each piece.
    wall_ends: Vec<Time90k>,
}

impl ContentPlan {
    /// The layout of `pb` (a closed range), from the fragment holding `start` on: the
    /// fragments before it are listed for players that need a keyframe, and a transcoded
    /// fragment starts with one of its own. `None` when nothing is listed.
    pub fn new(pb: &Playback, start: Time90k) -> Option<Self> {
        let all: Vec<(&str, &crate::archive::playback::FragmentRef, bool)> = pb
            .segments
            .iter()
            .flat_map(|s| {
                s.fragments.iter().enumerate().map(move |(i, f)| (s.file_name.as_str(), f, i == 0 && s.new_timeline))
            })
            .collect();
        // The last fragment starting at or before `start` (the first one if none does).
        let skip = all.iter().rposition(|(_, f, _)| f.wall_start <= start).unwrap_or(0);
        let wall0 = all.get(skip)?.1.wall_start;
        let mut plan =
            ContentPlan { pieces: Vec::new(), timelines: Vec::new(), ends: Vec::new(), wall_ends: Vec::new() };
        let mut next = 0u64;
        for (k, (file, f, new_timeline)) in all[skip..].iter().enumerate() {
            let tfdt = if k > 0 && *new_timeline {
                plan.timelines.push(k);
                next.max(u64::try_from(f.wall_start.0 - wall0.0).unwrap_or(0))
            } else {
                next
            };
            next = tfdt + u64::try_from(f.media_dur).unwrap_or(0);
            plan.pieces.push(Piece { file: (*file).to_owned(), offset: f.offset, tfdt, wall_start: f.wall_start });
            plan.ends.push(next);
            let next_wall = all.get(skip + k + 1).map(|n| n.1.wall_start);
            // A fragment's wall end: the next one's start within a timeline, else its media
            // duration from its own start.
            let own_end = Time90k(f.wall_start.0 + f.media_dur);
            plan.wall_ends.push(match (next_wall, all.get(skip + k + 1).is_some_and(|n| n.2)) {
                (Some(n), false) => n,
                _ => own_end,
            });
        }
        Some(plan)
    }

    /// Keeps the first `n` pieces (a later timeline the file cannot describe: another picture
    /// size or audio track).
    pub fn cut(&mut self, n: usize) {
        self.pieces.truncate(n.max(1));
        self.ends.truncate(self.pieces.len());
        self.wall_ends.truncate(self.pieces.len());
        self.timelines.retain(|&t| t < self.pieces.len());
    }

    /// Each piece's duration in the file, 90 kHz.
    pub fn durations(&self) -> impl Iterator<Item = u64> + '_ {
        self.ends.iter().scan(0u64, |prev, &end| {
            let d = end - *prev;
            *prev = end;
            Some(d)
        })
    }

    /// The file's duration, 90 kHz.
    pub fn duration(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// What the file shows, wall clock: its first fragment's start to its last one's end
    /// (whole fragments: the unit transcoded and cached, about a second each).
    pub fn actual(&self) -> (Time90k, Time90k) {
        let start = self.pieces.first().map_or(Time90k(0), |p| p.wall_start);
        (start, self.wall_ends.last().copied().unwrap_or(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::playback::{FragmentRef, Liveness, SegmentFragments};

    fn seg(name: &str, new_timeline: bool, starts: &[f64]) -> SegmentFragments {
        SegmentFragments {
            file_name: name.into(),
            init_len: 700,
            new_timeline,
            fragments: starts
                .iter()
                .enumerate()
                .map(|(i, &s)| FragmentRef {
                    offset: 700 + 1000 * i as u64,
                    len: 1000,
                    wall_start: Time90k((s * 90_000.0) as i64),
                    media_dur: 90_000,
                })
                .collect(),
        }
    }

    fn pb(segments: Vec<SegmentFragments>) -> Playback {
        Playback {
            liveness: Liveness::Closed,
            requested_start: None,
            media_sequence: 0,
            discontinuity_sequence: 0,
            segments,
            codecs: vec![],
        }
    }

    #[test]
    fn times_follow_media_within_a_timeline_and_the_wall_clock_across_one() {
        // Listed from the keyframe at 0 s; the range starts at 2.5 s; a gap of 3 s before the
        // second run.
        let p = pb(vec![seg("a", false, &[0.0, 1.0, 2.0, 3.0]), seg("b", true, &[7.0, 8.0])]);
        let plan = ContentPlan::new(&p, Time90k(225_000)).unwrap();
        let t: Vec<(String, u64)> = plan.pieces.iter().map(|p| (p.file.clone(), p.tfdt)).collect();
        assert_eq!(t, [("a".into(), 0), ("a".into(), 90_000), ("b".into(), 450_000), ("b".into(), 540_000)]);
        assert_eq!(plan.timelines, [2]);
        assert_eq!(plan.duration(), 630_000);
        assert_eq!(plan.durations().collect::<Vec<_>>(), [90_000, 90_000, 360_000, 90_000]);
        assert_eq!(plan.actual(), (Time90k(180_000), Time90k(810_000)));
        // Cut before the second run: it ends with the first.
        let mut cut = plan.clone();
        cut.cut(2);
        assert_eq!((cut.pieces.len(), cut.timelines.len(), cut.duration()), (2, 0, 180_000));
        assert_eq!(cut.actual().1, Time90k(360_000));
        // A start before everything listed starts at the first fragment; nothing listed: none.
        assert_eq!(ContentPlan::new(&p, Time90k(-5)).unwrap().pieces.len(), 6);
        assert!(ContentPlan::new(&pb(vec![]), Time90k(0)).is_none());
    }
}
