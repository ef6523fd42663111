//! Init segments: `ftyp` + `moov` (with `mvex`) describing one codec configuration.
//!
//! Every segment file starts with one, so a segment plays on its own (`ffmpeg -i SEG`), and the
//! same bytes serve as HLS `EXT-X-MAP` later.

use super::*;

/// Builds the init segment for one video sample entry (`avc1` box bytes).
pub fn init_segment(sample_entry: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(700 + sample_entry.len());
    put_ftyp(&mut out, b"iso6", &[b"isom", b"iso6", b"iso2", b"avc1", b"mp41"]);
    put_box(&mut out, b"moov", |out| {
        put_mvhd(out, 0, VIDEO_TRACK_ID + 1);
        put_box(out, b"trak", |out| {
            put_tkhd(out, 0, width, height);
            put_box(out, b"mdia", |out| {
                put_mdhd_hdlr(out, 0);
                put_box(out, b"minf", |out| {
                    put_vmhd_dinf(out);
                    put_box(out, b"stbl", |out| {
                        put_stsd(out, &[sample_entry]);
                        for t in [b"stts", b"stsc", b"stco"] {
                            put_full_box(out, t, 0, 0, |out| u32be(out, 0));
                        }
                        put_full_box(out, b"stsz", 0, 0, |out| {
                            u32be(out, 0);
                            u32be(out, 0);
                        });
                    });
                });
            });
        });
        put_box(out, b"mvex", |out| {
            put_full_box(out, b"trex", 0, 0, |out| {
                u32be(out, VIDEO_TRACK_ID);
                u32be(out, 1); // sample description index
                u32be(out, 0);
                u32be(out, 0);
                u32be(out, sample_flags(false));
            });
        });
    });
    out
}
