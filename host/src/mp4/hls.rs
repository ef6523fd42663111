//! HLS media playlists (RFC 8216, fMP4/CMAF flavour) over segment files as they lie on disk.
//!
//! Every archive fragment (`moof` + `mdat`) is one HLS segment, addressed by
//! `EXT-X-BYTERANGE` into its segment file, and every segment file's `ftyp` + `moov` is its
//! `EXT-X-MAP`: playback reads the recorded bytes without copying or remuxing them. Pure: a
//! list of fragments in, playlist text out; choosing the fragments is the archive's job.

use crate::time::{TICKS_PER_SEC, Time90k};
use std::fmt::Write as _;

/// How the playlist may change after it is served (`EXT-X-PLAYLIST-TYPE` and `EXT-X-ENDLIST`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A closed range: complete, never changes (`VOD`, with `EXT-X-ENDLIST`).
    Vod,
    /// A range still being recorded with a fixed start: segments are only appended (`EVENT`,
    /// no `EXT-X-ENDLIST` yet).
    Event,
    /// A window that slides with the clock: segments are appended at the end and drop off the
    /// start, so the media and discontinuity sequence numbers carry the count of those gone.
    Sliding,
}

/// One HLS segment: one fragment of a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// URI of the segment file (the same for all of its fragments and for its init segment),
    /// or with `map`, of this segment alone.
    pub uri: String,
    /// The init segment's own URI when segments are whole resources rather than byte ranges of
    /// a file (transcoded variants, made on request): then no `BYTERANGE` is given, and
    /// `init_len`, `offset` and `len` are not used.
    pub map: Option<String>,
    /// Length of the file's init segment (`ftyp` + `moov`), at offset 0.
    pub init_len: u64,
    /// Offset of the fragment's `moof` in the file.
    pub offset: u64,
    /// Length of `moof` + `mdat`.
    pub len: u64,
    /// Wall-clock time of the fragment's first frame (`EXT-X-PROGRAM-DATE-TIME`).
    pub wall_start: Time90k,
    /// Media duration of the fragment, 90 kHz ticks (`EXTINF`; the `tfdt` timeline's steps).
    pub duration: i64,
    /// Whether the timeline restarts or the encoding changes before this fragment (another
    /// recording run, or new codec parameters): `EXT-X-DISCONTINUITY`.
    pub discontinuity: bool,
}

/// Everything a media playlist says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Playlist {
    /// VOD, EVENT or sliding.
    pub kind: Kind,
    /// Media sequence number of the first segment (`EXT-X-MEDIA-SEQUENCE`).
    pub media_sequence: u64,
    /// Discontinuity sequence number of the first segment (`EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_sequence: u64,
    /// Smallest `EXT-X-TARGETDURATION` to declare, in seconds: a live playlist must not change
    /// its target duration between reloads, so it declares the bound its fragments keep.
    pub min_target_duration: u32,
    /// Where players should start, ticks from the start of the first segment
    /// (`EXT-X-START:TIME-OFFSET=…,PRECISE=YES`): the requested start time, when the first
    /// fragment (which starts at a keyframe) begins before it.
    pub start_offset: Option<i64>,
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// Seconds with three decimals, as `EXTINF` and `TIME-OFFSET` take them.
use crate::time::format_seconds_ms as seconds;

impl Playlist {
    /// `EXT-X-TARGETDURATION`: the longest segment rounded up to whole seconds (so every
    /// `EXTINF`, rounded to the nearest integer, is at most it, as RFC 8216 §4.3.3.1 requires),
    /// and at least [`Playlist::min_target_duration`] and 1.
    pub fn target_duration(&self) -> u64 {
        let longest = self.segments.iter().map(|s| s.duration.max(0)).max().unwrap_or(0) as u64;
        longest.div_ceil(TICKS_PER_SEC as u64).max(u64::from(self.min_target_duration)).max(1)
    }

    /// The playlist text (`#EXTM3U`, version 7: fMP4 segments need `EXT-X-MAP`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(256 + self.segments.len() * 160);
        out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_duration());
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence);
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuity_sequence);
        }
        match self.kind {
            Kind::Vod => out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
            Kind::Event => out.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            Kind::Sliding => {}
        }
        if self.kind != Kind::Vod {
            // Live playlists answer `_HLS_msn` (blocking reload): players ask for the next
            // segment and get the playlist the moment it is written, instead of polling.
            out.push_str("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n");
        }
        if let Some(off) = self.start_offset.filter(|&o| o > 0) {
            let _ = writeln!(out, "#EXT-X-START:TIME-OFFSET={},PRECISE=YES", seconds(off));
        }
        let mut map: Option<(&str, u64)> = None;
        for (i, s) in self.segments.iter().enumerate() {
            // The first segment's discontinuity is already counted in the sequence number.
            if s.discontinuity && i > 0 {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            // A new file has its own init segment; after a discontinuity it is declared again
            // even when unchanged, as players expect.
            let this_map = (s.map.as_deref().unwrap_or(&s.uri), s.init_len);
            if map != Some(this_map) || (s.discontinuity && i > 0) {
                match &s.map {
                    Some(m) => _ = writeln!(out, "#EXT-X-MAP:URI=\"{m}\""),
                    None => _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\",BYTERANGE=\"{}@0\"", s.uri, s.init_len),
                }
                map = Some(this_map);
            }
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", s.wall_start.to_iso_millis());
            let _ = writeln!(out, "#EXTINF:{},", seconds(s.duration));
            if s.map.is_none() {
                let _ = writeln!(out, "#EXT-X-BYTERANGE:{}@{}", s.len, s.offset);
            }
            out.push_str(&s.uri);
            out.push('\n');
        }
        if self.kind == Kind::Vod {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

/// One variant of a multivariant playlist: the media playlist of a recorded range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    /// URI of the media playlist.
    pub uri: String,
    /// Peak bit rate of its segments (`BANDWIDTH`), bits per second.
    pub bandwidth: u64,
    /// RFC 6381 codecs of its tracks (`CODECS`), e.g. `avc1.64001F`, `mp4a.40.2`.
    pub codecs: Vec<String>,
    /// Picture size (`RESOLUTION`).
    pub resolution: Option<(u32, u32)>,
}

/// A multivariant playlist of one variant: what tells a player, before it loads any media,
/// which codecs it needs (H.265, audio) and so which buffer to open.
pub fn multivariant(v: &Variant) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
    if !v.codecs.is_empty() {
        let _ = write!(out, ",CODECS=\"{}\"", v.codecs.join(","));
    }
    if let Some((w, h)) = v.resolution.filter(|&(w, h)| w > 0 && h > 0) {
        let _ = write!(out, ",RESOLUTION={w}x{h}");
    }
    let _ = writeln!(out, "\n{}", v.uri);
    out
}

/// The peak bit rate of segments (bits per second, rounded up), for `BANDWIDTH`.
pub fn peak_bandwidth(segments: &[Segment]) -> Option<u64> {
    segments
        .iter()
        .filter(|s| s.duration > 0)
        .map(|s| (s.len * 8 * TICKS_PER_SEC as u64).div_ceil(s.duration as u64))
        .max()
}

#[cfg(test)]
mod tests {
    #[test]
    fn multivariant_lists_codecs_and_the_media_playlist() {
        let v = Variant {
            uri: "media.m3u8?startTime=2026-11-23T05:00:00Z".into(),
            bandwidth: 2_000_000,
            codecs: vec!["hvc1.1.6.L93.B0".into(), "mp4a.40.2".into()],
            resolution: Some((1280, 720)),
        };
        assert_eq!(
            multivariant(&v),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=2000000,\
             CODECS=\"hvc1.1.6.L93.B0,mp4a.40.2\",RESOLUTION=1280x720\nmedia.m3u8?startTime=2026-11-23T05:00:00Z\n"
        );
        let s = [seg("a", 0, 0, 90_000, false)];
        assert_eq!(peak_bandwidth(&s), Some(8000));
    }

    use super::*;

    const T0: i64 = 1_795_447_540_000 * 90; // 2026-11-23T…Z in ticks

    fn seg(uri: &str, offset: u64, start_ms: i64, dur: i64, disc: bool) -> Segment {
        Segment {
            uri: uri.into(),
            map: None,
            init_len: 693,
            offset,
            len: 1000,
            wall_start: Time90k(T0 + start_ms * 90),
            duration: dur,
            discontinuity: disc,
        }
    }

    fn playlist(kind: Kind, segments: Vec<Segment>) -> Playlist {
        Playlist {
            kind,
            media_sequence: 0,
            discontinuity_sequence: 0,
            min_target_duration: 0,
            start_offset: None,
            segments,
        }
    }

    #[test]
    fn vod_of_two_runs_has_maps_byte_ranges_dates_and_one_discontinuity() {
        let p = playlist(
            Kind::Vod,
            vec![
                seg("segments/a.mp4", 850, 0, 90_000, false),
                seg("segments/a.mp4", 1850, 1000, 90_000, false),
                seg("segments/b.mp4", 850, 6000, 45_000, true),
            ],
        );
        let text = p.render();
        let expected = "#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI=\"segments/a.mp4\",BYTERANGE=\"693@0\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T15:25:40.000Z
#EXTINF:1.000,
#EXT-X-BYTERANGE:1000@850
segments/a.mp4
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T15:25:41.000Z
#EXTINF:1.000,
#EXT-X-BYTERANGE:1000@1850
segments/a.mp4
#EXT-X-DISCONTINUITY
#EXT-X-MAP:URI=\"segments/b.mp4\",BYTERANGE=\"693@0\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-23T15:25:46.000Z
#EXTINF:0.500,
#EXT-X-BYTERANGE:1000@850
segments/b.mp4
#EXT-X-ENDLIST
";
        assert_eq!(text, expected);
    }

    #[test]
    fn a_new_file_of_the_same_run_gets_a_map_without_discontinuity() {
        let p = playlist(
            Kind::Vod,
            vec![seg("segments/a.mp4", 850, 0, 90_000, false), seg("segments/c.mp4", 850, 1000, 90_000, false)],
        );
        let text = p.render();
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
        assert!(!text.contains("#EXT-X-DISCONTINUITY"));
    }

    #[test]
    fn target_duration_is_the_ceiling_of_the_longest_segment() {
        let mut p = playlist(Kind::Vod, vec![seg("a", 0, 0, 90_000, false), seg("a", 0, 1000, 90_001, false)]);
        assert_eq!(p.target_duration(), 2);
        p.segments.truncate(1);
        assert_eq!(p.target_duration(), 1);
        p.min_target_duration = 2;
        assert_eq!(p.target_duration(), 2);
        p.segments.clear();
        p.min_target_duration = 0;
        assert_eq!(p.target_duration(), 1, "never 0, even when empty");
        assert!(p.render().contains("#EXT-X-TARGETDURATION:1\n"));
    }

    #[test]
    fn live_playlists_have_no_endlist_and_sliding_ones_carry_sequences() {
        let mut p = playlist(Kind::Event, vec![seg("a", 0, 0, 90_000, false)]);
        let text = p.render();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"));
        assert!(!text.contains("ENDLIST"));
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES\n"), "live playlists block");
        p.kind = Kind::Vod;
        assert!(!p.render().contains("SERVER-CONTROL"), "closed ones have nothing to wait for");
        p.kind = Kind::Sliding;
        p.media_sequence = 1_795_447_540_000;
        p.discontinuity_sequence = 3;
        // A first segment marked as a discontinuity is covered by the sequence number.
        p.segments[0].discontinuity = true;
        let text = p.render();
        assert!(!text.contains("PLAYLIST-TYPE") && !text.contains("ENDLIST"));
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1795447540000\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n"));
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
    }

    #[test]
    fn start_offset_is_precise_and_only_when_positive() {
        let mut p = playlist(Kind::Vod, vec![seg("a", 0, 0, 90_000, false)]);
        p.start_offset = Some(40_500);
        assert!(p.render().contains("#EXT-X-START:TIME-OFFSET=0.450,PRECISE=YES\n"));
        p.start_offset = Some(0);
        assert!(!p.render().contains("EXT-X-START"));
    }

    #[test]
    fn durations_keep_milliseconds() {
        assert_eq!(seconds(90_000), "1.000");
        assert_eq!(seconds(93_600), "1.040");
        assert_eq!(seconds(3_600), "0.040");
        assert_eq!(seconds(-5), "0.000");
        assert_eq!(seconds(89), "0.001", "rounded, not truncated");
    }
}
