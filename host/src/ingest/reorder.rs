//! Decode timestamps for streams with B-frames.
//!
//! RTP carries one timestamp per access unit: its presentation time (pts). Frames arrive in
//! decode order, so with B-frames the pts go back and forth (I0 P3 B1 B2 P6 B4 B5 …). MP4 needs
//! a decode time (dts) per sample that only increases, plus the composition offset `pts − dts`.
//!
//! The rule (written down in `docs/archive.md`, "Time"): **the dts of the i-th frame in decode
//! order is the i-th smallest pts of the stream.** So the decode timeline covers exactly the
//! same span as the presentation timeline; a keyframe that starts a closed GOP gets dts = pts
//! (offset 0: everything before it in decode order is shown before it, everything after, after);
//! B-frames get negative offsets, the P-frames they depend on positive ones.
//!
//! Knowing the i-th smallest pts needs the stream's reorder depth R (how many frames may precede
//! a frame in decode order yet follow it in presentation order): after R more frames have
//! arrived, no later frame can have a smaller pts. R comes from the SPS (H.264 VUI
//! `max_num_reorder_frames`, H.265 `sps_max_num_reorder_pics`; 0 for profiles without B-slices).
//! Where the SPS does not say, R starts at 0 and grows when a frame proves it too small; the
//! frames already timed keep increasing dts (a tick apart) and exact pts, so nothing is lost or
//! misplaced in presentation, only the decode timeline is squeezed for a moment.
//!
//! Frames come out R frames after they go in, still in decode order.

use std::collections::{BinaryHeap, VecDeque};

/// Largest reorder depth accepted (H.264 and H.265 allow at most 16 frames in the DPB).
pub const MAX_REORDER: usize = 16;

/// A presentation time this far before the last decode time is not reordering but a camera
/// whose clock went back: the frames held are released and timing starts again (the archive
/// then starts a new run). In the clock's units, which are 90 kHz ticks for the ingest.
pub const MAX_BACKWARD_90K: i64 = 5 * crate::time::TICKS_PER_SEC;

/// A frame with its decode time and composition offset.
#[derive(Debug, PartialEq, Eq)]
pub struct Timed<T> {
    /// The frame as pushed.
    pub frame: T,
    /// Decode time, same clock as the pts (strictly increasing).
    pub dts: i64,
    /// Presentation minus decode time.
    pub cts: i64,
}

/// Assigns decode times to frames pushed in decode order with their presentation times.
#[derive(Debug)]
pub struct DecodeClock<T> {
    depth: usize,
    pending: VecDeque<(T, i64)>,
    /// Pending presentation times, smallest first (a max-heap of negated values).
    heap: BinaryHeap<std::cmp::Reverse<i64>>,
    last_dts: Option<i64>,
    /// How often the depth had to grow (a stream whose SPS understates its reordering).
    grown: u32,
}

impl<T> DecodeClock<T> {
    /// A clock for a stream whose reorder depth is `depth` (clamped to [`MAX_REORDER`]).
    pub fn new(depth: usize) -> Self {
        DecodeClock {
            depth: depth.min(MAX_REORDER),
            pending: VecDeque::new(),
            heap: BinaryHeap::new(),
            last_dts: None,
            grown: 0,
        }
    }

    /// The reorder depth in use (frames held back).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How many times a frame showed the depth to be too small.
    pub fn grown(&self) -> u32 {
        self.grown
    }

    /// Sets the depth for frames from now on (new codec parameters). Never below what the
    /// stream has shown it needs.
    pub fn set_depth(&mut self, depth: usize) {
        self.depth = self.depth.max(depth.min(MAX_REORDER));
    }

    /// Frames held back, waiting for their decode time.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Takes a frame with presentation time `pts`; appends to `out` the frames whose decode
    /// time is now known, in decode order (usually one, none while the first frames fill the
    /// reorder window, all held ones when the clock went back).
    pub fn push(&mut self, frame: T, pts: i64, out: &mut Vec<Timed<T>>) {
        if let Some(last) = self.last_dts {
            if pts < last - MAX_BACKWARD_90K {
                // Not reordering: the camera's clock went back. What is held keeps its times;
                // the new frames start a new timeline.
                out.extend(self.drain());
                self.last_dts = None;
            } else if pts <= last && self.depth < MAX_REORDER {
                // A frame shown before one already timed: the stream reorders deeper than said.
                self.depth += 1;
                self.grown += 1;
            }
        }
        self.pending.push_back((frame, pts));
        self.heap.push(std::cmp::Reverse(pts));
        if self.pending.len() > self.depth {
            out.extend(self.pop());
        }
    }

    /// Emits every frame held back (end of the session or of the run).
    pub fn drain(&mut self) -> Vec<Timed<T>> {
        let mut out = Vec::with_capacity(self.pending.len());
        while let Some(t) = self.pop() {
            out.push(t);
        }
        out
    }

    /// Forgets everything held back (a new run starts from scratch).
    pub fn reset(&mut self) {
        self.pending.clear();
        self.heap.clear();
        self.last_dts = None;
    }

    fn pop(&mut self) -> Option<Timed<T>> {
        let (frame, pts) = self.pending.pop_front()?;
        let smallest = self.heap.pop().map_or(pts, |r| r.0);
        let dts = match self.last_dts {
            Some(last) if smallest <= last => last + 1,
            _ => smallest,
        };
        self.last_dts = Some(dts);
        Some(Timed { frame, dts, cts: pts - dts })
    }
}

/// The reorder depth an H.264 SPS (NAL unit with header) declares, or implies for profiles
/// that cannot reorder. `None`: the SPS does not say (the clock then learns it).
pub fn h264_reorder_depth(sps: &[u8]) -> Option<usize> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{BitReader, ByteReader};
    let parsed = SeqParameterSet::from_bits(BitReader::new(ByteReader::skipping_h264_header(sps))).ok()?;
    if let Some(r) = parsed.vui_parameters.as_ref().and_then(|v| v.bitstream_restrictions.as_ref()) {
        return usize::try_from(r.max_num_reorder_frames).ok();
    }
    let profile = sps.get(1).copied()?;
    let constraint_set3 = sps.get(2).is_some_and(|c| c & 0x10 != 0);
    // Baseline has no B-slices; the intra-only profiles have no inter prediction at all.
    let no_reorder = profile == 66 || (constraint_set3 && matches!(profile, 44 | 100 | 110 | 122 | 244));
    no_reorder.then_some(0)
}

/// The reorder depth an H.265 SPS (NAL unit with its 2-byte header) declares for its highest
/// temporal layer (`sps_max_num_reorder_pics`, which H.265 always sends).
pub fn h265_reorder_depth(sps: &[u8]) -> Option<usize> {
    use h264_reader::rbsp::{BitRead, BitReader, ByteReader};
    let mut r = BitReader::new(ByteReader::skipping_bytes(sps, std::num::NonZeroUsize::new(2)?));
    r.skip(4, "sps_video_parameter_set_id").ok()?;
    let max_sub_layers_minus1: u8 = r.read(3, "sps_max_sub_layers_minus1").ok()?;
    r.skip(1, "sps_temporal_id_nesting_flag").ok()?;
    // profile_tier_level(1, max_sub_layers_minus1): the general part is 88 + 8 bits.
    r.skip(88, "general_profile").ok()?;
    r.skip(8, "general_level_idc").ok()?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..usize::from(max_sub_layers_minus1) {
        sub_profile[i] = r.read_bool("sub_layer_profile_present_flag").ok()?;
        sub_level[i] = r.read_bool("sub_layer_level_present_flag").ok()?;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2, "reserved_zero_2bits").ok()?;
        }
    }
    for i in 0..usize::from(max_sub_layers_minus1) {
        if sub_profile[i] {
            r.skip(88, "sub_layer_profile").ok()?;
        }
        if sub_level[i] {
            r.skip(8, "sub_layer_level_idc").ok()?;
        }
    }
    r.read_ue("sps_seq_parameter_set_id").ok()?;
    if r.read_ue("chroma_format_idc").ok()? == 3 {
        r.skip(1, "separate_colour_plane_flag").ok()?;
    }
    r.read_ue("pic_width_in_luma_samples").ok()?;
    r.read_ue("pic_height_in_luma_samples").ok()?;
    if r.read_bool("conformance_window_flag").ok()? {
        for _ in 0..4 {
            r.read_ue("conf_win_offset").ok()?;
        }
    }
    r.read_ue("bit_depth_luma_minus8").ok()?;
    r.read_ue("bit_depth_chroma_minus8").ok()?;
    r.read_ue("log2_max_pic_order_cnt_lsb_minus4").ok()?;
    let all_layers = r.read_bool("sps_sub_layer_ordering_info_present_flag").ok()?;
    let first = if all_layers { 0 } else { max_sub_layers_minus1 };
    let mut reorder = 0;
    for _ in first..=max_sub_layers_minus1 {
        r.read_ue("sps_max_dec_pic_buffering_minus1").ok()?;
        reorder = r.read_ue("sps_max_num_reorder_pics").ok()?;
        r.read_ue("sps_max_latency_increase_plus1").ok()?;
    }
    usize::try_from(reorder).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(c: &mut DecodeClock<i64>, pts: &[i64]) -> Vec<(i64, i64, i64)> {
        let mut timed = Vec::new();
        for &p in pts {
            c.push(p, p, &mut timed);
        }
        timed.extend(c.drain());
        timed.into_iter().map(|t| (t.frame, t.dts, t.cts)).collect()
    }

    fn run(depth: usize, pts: &[i64]) -> Vec<(i64, i64, i64)> {
        run_with(&mut DecodeClock::new(depth), pts)
    }

    fn check(out: &[(i64, i64, i64)], pts: &[i64]) {
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), pts, "decode order kept");
        assert!(out.windows(2).all(|w| w[1].1 > w[0].1), "dts increase: {out:?}");
        assert!(out.iter().all(|o| o.1 + o.2 == o.0), "pts = dts + cts");
    }

    #[test]
    fn two_b_frames_get_the_sorted_presentation_times() {
        // I0 P3 B1 B2 P6 B4 B5 I9 … in frames of 3600 ticks; reorder depth 1.
        let pts: Vec<i64> = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8].iter().map(|f| f * 3600).collect();
        let out = run(1, &pts);
        check(&out, &pts);
        assert_eq!(out.iter().map(|o| o.1 / 3600).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        // Keyframes of closed GOPs show at their decode time; B-frames before, P-frames after.
        assert_eq!(out[0].2, 0);
        assert_eq!(out[1].2, 2 * 3600);
        assert_eq!(out[2].2, -3600);
    }

    #[test]
    fn pyramids_need_depth_two() {
        // I0 P4 B2 b1 b3 P8 B6 b5 b7: reorder depth 2.
        let pts: Vec<i64> = [0, 4, 2, 1, 3, 8, 6, 5, 7].iter().map(|f| f * 3600).collect();
        let out = run(2, &pts);
        check(&out, &pts);
        assert_eq!(out.iter().map(|o| o.1 / 3600).collect::<Vec<_>>(), (0..9).collect::<Vec<_>>());
    }

    #[test]
    fn an_understated_depth_grows_and_timing_stays_monotonic() {
        let pts: Vec<i64> = [0, 4, 2, 1, 3, 8, 6, 5, 7, 12, 10, 9, 11].iter().map(|f| f * 3600).collect();
        let mut c = DecodeClock::new(0);
        let out = run_with(&mut c, &pts);
        check(&out, &pts);
        assert!(c.depth() >= 2 && c.grown() > 0, "depth {}", c.depth());
        // Once the depth suffices, decode times are the sorted presentation times again.
        assert_eq!(out[9..].iter().map(|o| o.1).collect::<Vec<_>>(), [9, 10, 11, 12].map(|f| f * 3600));
    }

    #[test]
    fn no_b_frames_no_delay() {
        let mut c = DecodeClock::new(0);
        let mut out = Vec::new();
        c.push("a", 100, &mut out);
        assert_eq!((out.len(), out[0].dts, out[0].cts), (1, 100, 0));
    }

    #[test]
    fn a_clock_that_goes_back_by_days_restarts_the_timeline() {
        let day = 86_400 * 90_000;
        let pts: Vec<i64> =
            [0, 2, 1, 4, 3].iter().map(|f| day + f * 3600).chain([0, 2, 1, 4, 3].map(|f| f * 3600)).collect();
        let out = run(1, &pts);
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), pts, "every frame, in order");
        assert!(out.iter().all(|o| o.1 + o.2 == o.0));
        // Each half is timed on its own: decode times are its sorted presentation times.
        assert_eq!(out[..5].iter().map(|o| o.1 - day).collect::<Vec<_>>(), [0, 1, 2, 3, 4].map(|f| f * 3600));
        assert_eq!(out[5..].iter().map(|o| o.1).collect::<Vec<_>>(), [0, 1, 2, 3, 4].map(|f| f * 3600));
    }

    #[test]
    fn reorder_depth_from_real_parameter_sets() {
        // Captured from GStreamer's RTSP server (shared/tools/gst-zoo.py): x264 High with
        // bframes=2, with bframes=3 and b-pyramid, Constrained Baseline; x265 with bframes=3 and
        // without B-frames.
        let b2 = hex("6764001eacd940a02ff97016a0c0c0d4a0000003002000000651e2c5b2c0");
        let b3 = hex("6764001eacd900a02ff97016a0c0c0d4a0000003002000000651e2c5b2c0");
        let base = hex("6742c01eda0280bfe5c05a83030352800000030080000019478b1750");
        let h265b =
            hex("420101040800000300980800000300003f9000a0402d2294b2b2dc985ffe00020002d4181818100000030010000003019080");
        let h265 =
            hex("420101040800000300980800000300003f9000a0402d2294b7572617ff80008000b5060606040000030004000003006420");
        let got = [b2, b3, base].map(|s| h264_reorder_depth(&s));
        let got265 = [h265b, h265].map(|s| h265_reorder_depth(&s));
        assert_eq!(got, [Some(2), Some(2), Some(0)]);
        assert_eq!(got265, [Some(2), Some(0)]);
        assert_eq!(h264_reorder_depth(b"\x67"), None);
        assert_eq!(h265_reorder_depth(b"\x42\x01"), None);
    }

    pub(super) fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0)).collect()
    }
}
