//! Pure ISO BMFF muxing: sample tables in, bytes out. No files, no SQLite, no HTTP.
//!
//! openva writes three kinds of MP4 and reads two back:
//! - init segments (`ftyp` + `moov` with `mvex`), one per codec configuration ([`init`]);
//! - fragments (`moof` + `mdat`) appended to segment files while recording ([`fragment`]);
//! - progressive MP4 files of any range, `moov` before `mdat`, laid out from counts and their
//!   sample tables generated as they are read ([`file`]);
//! - HLS media playlists that address fragments of segment files by byte range ([`hls`]);
//! - [`parse`] reads segment files back for crash recovery and `check`;
//! - and [`read`] reads any progressive MP4's sample tables (`openva plugin run` on a file).
//!
//! Writing boxes is a few lines; the value is in how the tables are derived from our index,
//! which is our core, so this is written here rather than through a general MP4 crate.

pub mod entry;
pub mod file;
pub mod fragment;
pub mod hls;
pub mod init;
pub mod parse;
pub mod read;

/// The video track's id in every file openva writes.
pub const VIDEO_TRACK_ID: u32 = 1;

/// The audio track's id, when there is one.
pub const AUDIO_TRACK_ID: u32 = 2;

/// Media timescale of the video track: the 90 kHz time base (see `crate::time`). An audio track's
/// timescale is its sample rate, so that every audio frame's duration is exact.
pub const TIMESCALE: u32 = crate::time::TICKS_PER_SEC as u32;

/// An audio track's description: its sample entry box (`mp4a` with `esds`, `fLaC` with
/// `dfLa`…) and its clock (the sample rate, also the track's timescale).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioTrack<'a> {
    /// The complete sample entry box.
    pub sample_entry: &'a [u8],
    /// Timescale of the track (samples per second).
    pub timescale: u32,
}

/// Appends a box of type `typ` whose body `body` writes; patches the 32-bit size afterwards.
pub(crate) fn put_box(out: &mut Vec<u8>, typ: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(typ);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// Appends a full box (version and 24-bit flags before the body).
pub(crate) fn put_full_box(out: &mut Vec<u8>, typ: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_box(out, typ, |out| {
        out.extend_from_slice(&((u32::from(version) << 24) | (flags & 0x00ff_ffff)).to_be_bytes());
        body(out);
    });
}

pub(crate) fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The identity transformation matrix of `mvhd` and `tkhd`.
pub(crate) fn put_matrix(out: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32be(out, v);
    }
}

/// `ftyp` with the given major brand and compatible brands.
pub(crate) fn put_ftyp(out: &mut Vec<u8>, major: &[u8; 4], compatible: &[&[u8; 4]]) {
    put_box(out, b"ftyp", |out| {
        out.extend_from_slice(major);
        u32be(out, 0x200);
        for b in compatible {
            out.extend_from_slice(*b);
        }
    });
}

/// `mvhd` version 1 (64-bit duration).
pub(crate) fn put_mvhd(out: &mut Vec<u8>, duration: u64, next_track_id: u32) {
    put_full_box(out, b"mvhd", 1, 0, |out| {
        u64be(out, 0); // creation
        u64be(out, 0); // modification
        u32be(out, TIMESCALE);
        u64be(out, duration);
        u32be(out, 0x0001_0000); // rate 1.0
        u16be(out, 0x0100); // volume 1.0
        out.extend_from_slice(&[0; 10]);
        put_matrix(out);
        out.extend_from_slice(&[0; 24]); // pre_defined
        u32be(out, next_track_id);
    });
}

/// `tkhd` version 1 for the video track.
pub(crate) fn put_tkhd(out: &mut Vec<u8>, duration: u64, width: u32, height: u32) {
    put_tkhd_of(out, VIDEO_TRACK_ID, duration, 0, width, height);
}

/// `tkhd` version 1 for the audio track (full volume, no picture size).
pub(crate) fn put_audio_tkhd(out: &mut Vec<u8>, duration: u64) {
    put_tkhd_of(out, AUDIO_TRACK_ID, duration, 0x0100, 0, 0);
}

fn put_tkhd_of(out: &mut Vec<u8>, track: u32, duration: u64, volume: u16, width: u32, height: u32) {
    put_full_box(out, b"tkhd", 1, 0x3, |out| {
        u64be(out, 0);
        u64be(out, 0);
        u32be(out, track);
        u32be(out, 0);
        u64be(out, duration);
        out.extend_from_slice(&[0; 8]);
        u16be(out, 0); // layer
        u16be(out, 0); // alternate group
        u16be(out, volume);
        u16be(out, 0);
        put_matrix(out);
        u32be(out, width << 16);
        u32be(out, height << 16);
    });
}

/// `mdhd` (version 1) + `hdlr` for a video track; the caller appends `minf`.
pub(crate) fn put_mdhd_hdlr(out: &mut Vec<u8>, duration: u64) {
    put_mdhd_hdlr_of(out, TIMESCALE, duration, b"vide", b"openva video\0");
}

/// `mdhd` (version 1) + `hdlr` for an audio track of the given timescale.
pub(crate) fn put_audio_mdhd_hdlr(out: &mut Vec<u8>, timescale: u32, duration: u64) {
    put_mdhd_hdlr_of(out, timescale, duration, b"soun", b"openva audio\0");
}

fn put_mdhd_hdlr_of(out: &mut Vec<u8>, timescale: u32, duration: u64, handler: &[u8; 4], name: &[u8]) {
    put_full_box(out, b"mdhd", 1, 0, |out| {
        u64be(out, 0);
        u64be(out, 0);
        u32be(out, timescale);
        u64be(out, duration);
        u16be(out, 0x55c4); // language "und"
        u16be(out, 0);
    });
    put_full_box(out, b"hdlr", 0, 0, |out| {
        u32be(out, 0);
        out.extend_from_slice(handler);
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(name);
    });
}

/// `smhd` + `dinf`, the fixed part of an audio `minf`.
pub(crate) fn put_smhd_dinf(out: &mut Vec<u8>) {
    put_full_box(out, b"smhd", 0, 0, |out| out.extend_from_slice(&[0; 4]));
    put_dinf(out);
}

/// `vmhd` + `dinf` (self-contained data reference), the fixed part of a video `minf`.
pub(crate) fn put_vmhd_dinf(out: &mut Vec<u8>) {
    put_full_box(out, b"vmhd", 0, 1, |out| out.extend_from_slice(&[0; 8]));
    put_dinf(out);
}

fn put_dinf(out: &mut Vec<u8>) {
    put_box(out, b"dinf", |out| {
        put_full_box(out, b"dref", 0, 0, |out| {
            u32be(out, 1);
            put_full_box(out, b"url ", 0, 1, |_| {});
        });
    });
}

/// `stsd` holding the given sample entry boxes (e.g. `avc1` as retina builds them).
pub(crate) fn put_stsd(out: &mut Vec<u8>, entries: &[&[u8]]) {
    put_full_box(out, b"stsd", 0, 0, |out| {
        u32be(out, entries.len() as u32);
        for e in entries {
            out.extend_from_slice(e);
        }
    });
}

/// Sample flags of `trun`/`trex`: a sync sample depends on nothing; others are non-sync.
pub(crate) fn sample_flags(key: bool) -> u32 {
    if key { 0x0200_0000 } else { 0x0101_0000 }
}
