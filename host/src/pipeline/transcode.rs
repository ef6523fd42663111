//! Re-encoding exports: recorded ranges decoded (codec::Decoder: H.264 or H.265, B-frames
//! reordered), scaled by the `scale` Wasm plugin
//! when the output size differs, encoded again (openh264) and written as one progressive MP4.
//!
//! The cut is frame-exact: the file starts with the frame on screen at each range's start
//! (decoding begins at the keyframe before it, the lead-in is decoded but not encoded) and
//! ends with the frame on screen just before the range's end. Ranges follow each other in the
//! file; a gap inside a range holds the last frame for the gap's length, so the file's timeline
//! stays the wall clock's within a range.
//!
//! Decoding and encoding run on two threads (a small queue between them), so a two-core edge
//! device uses both.

use super::spool::{Mp4Spool, SpoolError};
use crate::archive::export::FrameList;
use crate::archive::{Archive, ArchiveError};
use crate::codec::{CodecError, Decoder, Encoder, EncoderSettings, I420};
use crate::plugins::{PluginError, PluginHost};
use crate::time::Time90k;
use crate::topology::EncodeSpec;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Decoded frames waiting for the encoder.
const QUEUE: usize = 4;

/// Why a re-encoding export failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    /// Reading the archive failed (or nothing was recorded in the ranges).
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Decoding or encoding failed.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// The scale plugin failed or is missing.
    #[error("scaling: {0}")]
    Scale(String),
    /// Writing the output failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The job was canceled.
    #[error("canceled")]
    Canceled,
}

impl From<SpoolError> for TranscodeError {
    fn from(e: SpoolError) -> Self {
        match e {
            SpoolError::Io { path, source } => TranscodeError::Io { path, source },
            SpoolError::Malformed(m) => TranscodeError::Codec(CodecError::Malformed(m)),
            SpoolError::Empty => TranscodeError::Archive(ArchiveError::Internal("no frame could be encoded".into())),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TranscodeError + '_ {
    move |source| TranscodeError::Io { path: path.to_owned(), source }
}

/// What a finished export holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Per range that had media: the stretch actually exported.
    pub actual: Vec<(Time90k, Time90k)>,
    /// Unrecorded stretches inside the ranges (and ranges with nothing recorded).
    pub gaps: Vec<(Time90k, Time90k)>,
    /// Frames in the file.
    pub frames: u64,
    /// Picture size.
    pub width: u32,
    /// Picture size.
    pub height: u32,
    /// Shown duration, 90 kHz ticks.
    pub duration_90k: i64,
    /// File size.
    pub bytes: u64,
}

/// The encode half of every decode → process → encode path (re-encoding jobs, `openva plugin
/// run`): pictures in, an MP4 out. The encoder starts on the first picture, with settings
/// chosen for its size; every later picture must have that size (an MP4 track has one).
pub struct PictureWriter {
    settings: Box<dyn Fn(&I420) -> EncoderSettings + Send>,
    encoder: Option<(Encoder, (u32, u32))>,
    spool: Mp4Spool,
}

impl PictureWriter {
    /// A writer of the MP4 `out`, encoding with `settings(first picture)`.
    pub fn new(
        out: &Path,
        settings: impl Fn(&I420) -> EncoderSettings + Send + 'static,
    ) -> Result<Self, TranscodeError> {
        Ok(PictureWriter { settings: Box::new(settings), encoder: None, spool: Mp4Spool::new(out)? })
    }

    /// Encodes `pic`, shown from `at` (90 kHz, growing within a range).
    pub fn push(&mut self, pic: &I420, at: i64) -> Result<(), TranscodeError> {
        let size = (pic.width, pic.height);
        let (enc, first) = match &mut self.encoder {
            Some(e) => e,
            None => self.encoder.insert((Encoder::new(&(self.settings)(pic))?, size)),
        };
        if size != *first {
            return Err(TranscodeError::Codec(CodecError::Malformed(format!(
                "the picture size changed from {}x{} to {}x{} mid-stream (the camera changed resolution, or a \
                 plugin resized the picture); export the parts separately",
                first.0, first.1, size.0, size.1
            ))));
        }
        let e = enc.encode(pic)?;
        if let Some((sps, pps)) = &e.params
            && !self.spool.has_entry()
        {
            let entry = crate::mp4::init::avc1_sample_entry(sps, pps, pic.width, pic.height)
                .map_err(|m| TranscodeError::Codec(CodecError::Malformed(m.to_string())))?;
            self.spool.set_entry(entry, pic.width, pic.height);
        }
        // The encoder may skip a picture (an empty sample): the previous one lasts longer.
        Ok(self.spool.push(&e.sample, e.key, 0, at)?)
    }

    /// The current range is shown until `end`.
    pub fn end_range(&mut self, end: i64) {
        self.spool.end_range(end);
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.spool.frames()
    }

    /// Writes the MP4 (see [`Mp4Spool::finish`]).
    pub fn finish(self, out: &Path) -> Result<(u64, i64, u32, u32), TranscodeError> {
        Ok(self.spool.finish(out)?)
    }
}

/// One decoded frame on its way to the encoder.
struct Job {
    pic: I420,
    /// Index of the range.
    range: usize,
    /// Shown from (clipped to the range's start).
    at: i64,
}

/// What the decoding thread tells the encoding thread.
enum Msg {
    Frame(Job),
    /// Range `0` is finished; it is shown until `1`.
    EndRange(usize, i64),
}

/// The bit rate for a re-encoding of `spec` to pictures `height` lines high, bits/s.
fn bitrate_for(spec: &EncodeSpec, height: u32) -> u32 {
    spec.bitrate_kbps.unwrap_or(default_kbps(height)).saturating_mul(1000)
}

/// The H.264 bit rate, kbit/s, a re-encoding uses for pictures `height` lines high when none is
/// asked for (exports, jobs, transcoded playback).
pub(crate) fn default_kbps(height: u32) -> u32 {
    match height {
        0..=480 => 2000,
        481..=720 => 3500,
        721..=1080 => 6000,
        _ => 16000,
    }
}

/// What to re-encode: ranges of a recorded video.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    /// The archive holding it.
    pub archive: &'a Archive,
    /// The (archive) video.
    pub video: &'a str,
    /// Ranges, exported in this order.
    pub ranges: &'a [(Time90k, Time90k)],
}

/// Re-encodes `source` into the MP4 `out` as `spec` asks; `progress` gets the share done
/// (0–1). `cancel` stops it between frames (the partial output is removed).
pub fn transcode(
    source: Source<'_>,
    spec: &EncodeSpec,
    plugins: Option<&Arc<PluginHost>>,
    out: &Path,
    cancel: &AtomicBool,
    progress: &mut (dyn FnMut(f64) + Send),
) -> Result<Outcome, TranscodeError> {
    let Source { archive, video, ranges } = source;
    let mut lists: Vec<(usize, FrameList)> = Vec::new();
    let mut outcome = Outcome::default();
    for (i, &(start, end)) in ranges.iter().enumerate() {
        match archive.frames_for_range(video, start, end) {
            Ok(l) => {
                outcome.actual.push(l.actual);
                outcome.gaps.extend(l.gaps.iter().copied());
                lists.push((i, l));
            }
            Err(ArchiveError::NoData { .. }) => outcome.gaps.push((start, end)),
            Err(e) => return Err(e.into()),
        }
    }
    for (_, l) in &lists {
        let b_frames = l.frames.iter().any(|f| f.cts != 0);
        for e in &l.entries {
            crate::codec::check_decodable(e, b_frames)?;
        }
    }
    if lists.is_empty() {
        return Err(ArchiveError::NoData {
            video: video.to_owned(),
            start: ranges[0].0,
            end: ranges[ranges.len() - 1].1,
        }
        .into());
    }
    let scaler = match &spec.scale {
        None => None,
        Some(s) => {
            let host = plugins.ok_or_else(|| {
                TranscodeError::Scale(
                    "re-encoding to another size needs the 'scale' plugin: start the host with --plugins DIR".into(),
                )
            })?;
            Some(
                host.instantiate(super::nodes::SCALE_PLUGIN, &s.plugin_config())
                    .map_err(|e| TranscodeError::Scale(e.to_string()))?,
            )
        }
    };
    let total: i64 = lists.iter().map(|(_, l)| (l.actual.1.0 - l.actual.0.0).max(1)).sum();
    let (tx, rx) = sync_channel::<Msg>(QUEUE);
    let fps = spec.frame_rate.unwrap_or(25.0) as f32;
    let bitrate_spec = spec.clone();
    let mut writer = PictureWriter::new(out, move |pic| EncoderSettings {
        bitrate: bitrate_for(&bitrate_spec, pic.height),
        fps,
        gop: (fps.round() as u32).max(1) * 2,
        threads: 1,
        fast: true,
    })?;
    let result = std::thread::scope(|scope| {
        let decoder = scope.spawn(|| decode_all(archive, &lists, tx, cancel));
        let encoded = encode_all(rx, spec, scaler, &mut writer, &lists, total, progress, cancel);
        let decoded = decoder.join().unwrap_or_else(|_| {
            Err(TranscodeError::Codec(CodecError::Malformed("the decoder thread panicked".into())))
        });
        // The encoder's error is the cause when both failed (the decoder then only saw the
        // queue close).
        encoded.and(decoded)
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    outcome.frames = writer.frames();
    let (bytes, duration, w, h) = writer.finish(out)?;
    (outcome.bytes, outcome.duration_90k, outcome.width, outcome.height) = (bytes, duration, w, h);
    Ok(outcome)
}

/// Reads and decodes every range's frames, sending those shown to the encoder.
fn decode_all(
    archive: &Archive,
    lists: &[(usize, FrameList)],
    tx: SyncSender<Msg>,
    cancel: &AtomicBool,
) -> Result<(), TranscodeError> {
    let mut decoder: Option<Decoder> = None;
    let mut current_entry: Option<(usize, usize)> = None; // (list, entry) whose params the decoder has
    let mut file: Option<(PathBuf, crate::archive::SegmentReader)> = None;
    let mut buf = Vec::new();
    for (li, (range, list)) in lists.iter().enumerate() {
        let b_frames = list.frames.iter().any(|f| f.cts != 0);
        let mut shown = Shown::new(*range, list);
        for f in &list.frames {
            if cancel.load(Ordering::Relaxed) {
                return Err(TranscodeError::Canceled);
            }
            if current_entry != Some((li, f.entry)) {
                let entry = &list.entries[f.entry];
                let kept = decoder.as_mut().is_some_and(|d| d.set_entry(entry, b_frames).is_ok());
                if !kept {
                    // Another codec: what the old decoder holds comes out first.
                    if let Some(mut old) = decoder.take() {
                        for pic in old.flush() {
                            if let Offered::EncoderStopped = shown.offer(pic, &tx) {
                                return Ok(());
                            }
                        }
                    }
                    decoder = Some(Decoder::for_entry(entry, b_frames, DECODE_THREADS)?);
                }
                current_entry = Some((li, f.entry));
            }
            let Some(dec) = decoder.as_mut() else { continue };
            if file.as_ref().is_none_or(|(p, _)| *p != f.path) {
                // (Local, or read from the remote tier when only it keeps the segment.)
                let fh = archive.open_segment_path(&f.path)?;
                file = Some((f.path.clone(), fh));
            }
            let Some((path, fh)) = file.as_mut() else { continue };
            buf.resize(f.size as usize, 0);
            fh.read_exact_at(&mut buf, f.offset).map_err(io(path))?;
            let pic = match dec.decode(&buf, f.wall.0 + i64::from(f.cts), f.key) {
                Ok(Some(pic)) => pic,
                Ok(None) => continue,
                // A damaged sample costs the frames up to the next keyframe (counted), not the
                // export; the frame before is held over the hole.
                Err(e) if dec.errors() <= MAX_DECODE_ERRORS => {
                    tracing::warn!("re-encoding: a frame of {} did not decode: {e}", f.wall);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            match shown.offer(pic, &tx) {
                Offered::Sent => {}
                Offered::NotShown(spare) => dec.recycle(spare),
                Offered::EncoderStopped => return Ok(()),
            }
        }
        // The range ends: the pictures a reordering decoder holds back come out.
        for pic in decoder.as_mut().map(Decoder::flush).unwrap_or_default() {
            if let Offered::EncoderStopped = shown.offer(pic, &tx) {
                return Ok(());
            }
        }
        if tx.send(Msg::EndRange(*range, list.actual.1.0)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// libavcodec's frame threads for a re-encoding export's decoder (the encoder has a thread of
/// its own).
const DECODE_THREADS: u16 = 2;

/// Frames of one export that may fail to decode (each costs the rest of its GOP) before the
/// export fails.
const MAX_DECODE_ERRORS: u64 = 25;

/// Which decoded pictures of one range go to the encoder, and dated when. Pictures come out of
/// the decoder in presentation order; whether one is shown depends on when the next one is
/// presented, so the range's presentation times are sorted once up front.
struct Shown {
    range: usize,
    start: i64,
    end: i64,
    /// Presentation times of the range's frames, sorted, each with its own duration.
    times: Vec<(i64, i64)>,
    first: bool,
}

impl Shown {
    fn new(range: usize, list: &FrameList) -> Self {
        let mut times: Vec<(i64, i64)> =
            list.frames.iter().map(|f| (f.wall.0 + i64::from(f.cts), f.wall_dur)).collect();
        times.sort_unstable();
        Shown { range, start: list.actual.0.0, end: list.actual.1.0, times, first: true }
    }

    /// Sends `pic` to the encoder if it is shown.
    fn offer(&mut self, pic: I420, tx: &SyncSender<Msg>) -> Offered {
        let at = pic.pts;
        // Shown if it is on screen for at least half its time inside [start, end): a sliver
        // of a frame at either end would give a sample of a few ticks, which players and
        // muxers round onto its neighbour. The first frame shown starts at `start` (taking
        // the sliver's time), the last lasts until `end`.
        let i = self.times.partition_point(|&(t, _)| t <= at);
        let own_dur = i.checked_sub(1).and_then(|j| self.times.get(j)).map_or(1, |t| t.1);
        let next = self.times.get(i).map_or(at + own_dur, |t| t.0);
        let own = (next - at).max(1);
        let visible = next.min(self.end) - at.max(self.start);
        if visible * 2 < own && !(visible > 0 && self.first && next >= self.end) {
            return Offered::NotShown(pic);
        }
        let at = if self.first { self.start } else { at };
        self.first = false;
        match tx.send(Msg::Frame(Job { pic, range: self.range, at })) {
            Ok(()) => Offered::Sent,
            Err(_) => Offered::EncoderStopped,
        }
    }
}

/// What became of a decoded picture.
enum Offered {
    Sent,
    /// Not on screen in the range: its buffer goes back to the decoder.
    NotShown(I420),
    /// The encoder stopped (its error is reported).
    EncoderStopped,
}

/// Scales and encodes what the decoder sends, into the writer.
#[allow(clippy::too_many_arguments)]
fn encode_all(
    rx: Receiver<Msg>,
    spec: &EncodeSpec,
    mut scaler: Option<crate::plugins::PluginInstance>,
    writer: &mut PictureWriter,
    lists: &[(usize, FrameList)],
    total: i64,
    progress: &mut (dyn FnMut(f64) + Send),
    cancel: &AtomicBool,
) -> Result<(), TranscodeError> {
    let mut done_before = 0i64; // media of finished ranges
    let mut last_report = -1.0f64;
    // Frame-rate reduction: the next output slot (per range).
    let slot = spec.frame_rate.map(|f| (crate::time::TICKS_PER_SEC as f64 / f).round() as i64);
    let mut next_slot: Option<i64> = None;
    let mut range_start = 0i64;
    for msg in rx {
        if cancel.load(Ordering::Relaxed) {
            return Err(TranscodeError::Canceled);
        }
        let Job { mut pic, range, at } = match msg {
            Msg::Frame(j) => j,
            Msg::EndRange(range, end) => {
                writer.end_range(end);
                next_slot = None;
                if let Some((_, l)) = lists.iter().find(|(r, _)| *r == range) {
                    done_before += (l.actual.1.0 - l.actual.0.0).max(1);
                }
                continue;
            }
        };
        if next_slot.is_none() {
            range_start = lists.iter().find(|(r, _)| *r == range).map_or(at, |(_, l)| l.actual.0.0);
        }
        if let Some(step) = slot {
            if next_slot.is_some_and(|s| at < s - step / 8) {
                continue; // dropped: the previous sample lasts over it
            }
            next_slot = Some(next_slot.map_or(at, |s| s.max(at - step)) + step);
        } else {
            next_slot = Some(at);
        }
        if let Some(s) = scaler.as_mut() {
            s.process(&mut pic).map_err(|e| match e {
                PluginError::Fault { message, .. } | PluginError::Process { message, .. } => {
                    TranscodeError::Scale(message)
                }
                e => TranscodeError::Scale(e.to_string()),
            })?;
        }
        writer.push(&pic, at)?;
        let share = (done_before + (at - range_start)) as f64 / total as f64;
        if share - last_report >= 0.01 {
            last_report = share;
            progress(share.clamp(0.0, 1.0));
        }
    }
    progress(1.0);
    Ok(())
}
