//! Camera audio the archive cannot store as sent: G.711 (µ-law, A-law).
//!
//! MP4 has no sample entry for G.711 that browsers play, so the archive stores it as FLAC in
//! MP4 (`fLaC` + `dfLa`), which Chromium's Media Source Extensions and ffmpeg both play. It is
//! lossless: every G.711 byte expands to exactly one 16-bit sample, and companding that sample
//! again gives the byte back, so the camera's audio is kept bit for bit (`docs/archive.md`,
//! "Audio"). Encoding is flacenc's (pure Rust); this module only re-blocks the camera's packets
//! into fixed FLAC blocks, fills short losses with silence, and builds the sample entry.

use flacenc::component::BitRepr;
use flacenc::error::Verify;

/// Why audio could not be converted.
#[derive(Debug, thiserror::Error)]
#[error("FLAC encoder: {0}")]
pub struct AudioError(String);

/// G.711's two companding laws.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum G711 {
    /// µ-law (RTP payload PCMU).
    MuLaw,
    /// A-law (RTP payload PCMA).
    ALaw,
}

impl G711 {
    /// The 16-bit linear sample of one G.711 byte (ITU-T G.711, the reference expansion).
    pub fn expand(self, byte: u8) -> i16 {
        match self {
            G711::MuLaw => {
                let u = !byte;
                let t = ((i32::from(u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
                (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
            }
            G711::ALaw => {
                let a = byte ^ 0x55;
                let seg = (a & 0x70) >> 4;
                let mut t = i32::from(a & 0x0f) << 4;
                t = match seg {
                    0 => t + 8,
                    1 => t + 0x108,
                    _ => (t + 0x108) << (seg - 1),
                };
                (if a & 0x80 != 0 { t } else { -t }) as i16
            }
        }
    }
}

/// One FLAC frame ready to store: its start (in samples, the camera's clock), length in
/// samples, and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlacFrame {
    /// Time of its first sample, in the audio clock.
    pub start: i64,
    /// Samples (the FLAC block size).
    pub samples: u32,
    /// The encoded frame.
    pub data: Vec<u8>,
}

/// Longest loss filled with silence; a longer one starts a new block sequence (the archive
/// stretches the previous frame over the gap).
const MAX_FILL_SECS: i64 = 1;

/// Re-blocks a G.711 stream into FLAC frames of a fixed block size (40 ms).
pub struct G711ToFlac {
    law: G711,
    rate: u32,
    channels: u16,
    block: usize,
    config: flacenc::error::Verified<flacenc::config::Encoder>,
    info: flacenc::component::StreamInfo,
    /// Interleaved samples waiting to fill a block, and the time of the first.
    pcm: Vec<i32>,
    pcm_start: i64,
    /// Where the next packet should start if nothing was lost.
    next: Option<i64>,
    frame_number: usize,
}

impl G711ToFlac {
    /// A converter for a stream at `rate` Hz with `channels` interleaved channels.
    pub fn new(law: G711, rate: u32, channels: u16) -> Result<Self, AudioError> {
        let err = |e: &dyn std::fmt::Debug| AudioError(format!("{e:?}"));
        if !(1000..=192_000).contains(&rate) || !(1..=8).contains(&channels) {
            return Err(AudioError(format!("unsupported G.711 stream: {rate} Hz, {channels} channels")));
        }
        let block = (rate / 25).max(16) as usize;
        let config = flacenc::config::Encoder::default().into_verified().map_err(|e| err(&e))?;
        let mut info =
            flacenc::component::StreamInfo::new(rate as usize, usize::from(channels), 16).map_err(|e| err(&e))?;
        info.set_block_sizes(block, block).map_err(|e| err(&e))?;
        Ok(G711ToFlac {
            law,
            rate,
            channels,
            block,
            config,
            info,
            pcm: Vec::new(),
            pcm_start: 0,
            next: None,
            frame_number: 0,
        })
    }

    /// The samples of one FLAC frame.
    pub fn block_samples(&self) -> u32 {
        self.block as u32
    }

    /// The `fLaC` sample entry (with `dfLa` holding the stream's STREAMINFO).
    pub fn sample_entry(&self) -> Vec<u8> {
        flac_sample_entry(self.rate, self.channels, self.block as u16)
    }

    /// Takes one packet's bytes starting at `start` (audio clock); returns the frames completed.
    pub fn push(&mut self, start: i64, bytes: &[u8]) -> Result<Vec<FlacFrame>, AudioError> {
        let mut out = Vec::new();
        let ch = i64::from(self.channels);
        match self.next {
            Some(next) if start > next && start - next <= MAX_FILL_SECS * i64::from(self.rate) => {
                // A short loss: silence keeps the blocks continuous.
                let missing = (start - next) as usize * self.channels as usize;
                self.pcm.extend(std::iter::repeat_n(0, missing));
            }
            Some(next) if start == next => {}
            _ => {
                // First packet, a long loss or a step back: finish what is buffered, start anew.
                out.extend(self.flush()?);
                self.pcm_start = start;
            }
        }
        self.pcm.extend(bytes.iter().map(|&b| i32::from(self.law.expand(b))));
        self.next = Some(start + bytes.len() as i64 / ch);
        let per_block = self.block * usize::from(self.channels);
        while self.pcm.len() >= per_block {
            let rest = self.pcm.split_off(per_block);
            let block = std::mem::replace(&mut self.pcm, rest);
            out.push(self.encode(&block)?);
        }
        Ok(out)
    }

    /// Encodes what is buffered, padded with silence to a whole block (end of a run).
    pub fn flush(&mut self) -> Result<Option<FlacFrame>, AudioError> {
        if self.pcm.is_empty() {
            return Ok(None);
        }
        let per_block = self.block * usize::from(self.channels);
        let mut block = std::mem::take(&mut self.pcm);
        block.resize(per_block, 0);
        let f = self.encode(&block)?;
        self.next = None;
        Ok(Some(f))
    }

    fn encode(&mut self, interleaved: &[i32]) -> Result<FlacFrame, AudioError> {
        use flacenc::source::Fill;
        let err = |e: &dyn std::fmt::Debug| AudioError(format!("{e:?}"));
        let mut fb =
            flacenc::source::FrameBuf::with_size(usize::from(self.channels), self.block).map_err(|e| err(&e))?;
        fb.fill_interleaved(interleaved).map_err(|e| err(&e))?;
        let frame =
            flacenc::encode_fixed_size_frame(&self.config, &fb, self.frame_number, &self.info).map_err(|e| err(&e))?;
        let mut sink = flacenc::bitsink::ByteSink::new();
        frame.write(&mut sink).map_err(|e| err(&e))?;
        self.frame_number = (self.frame_number + 1) % (1 << 31);
        let start = self.pcm_start;
        self.pcm_start += self.block as i64;
        Ok(FlacFrame { start, samples: self.block as u32, data: sink.into_inner() })
    }
}

/// The `fLaC` sample entry ("Encapsulation of FLAC in ISO Base Media File Format") for a
/// 16-bit stream of fixed block size.
pub fn flac_sample_entry(rate: u32, channels: u16, block: u16) -> Vec<u8> {
    use crate::mp4::{put_box, put_full_box, u16be, u32be};
    let mut out = Vec::with_capacity(90);
    put_box(&mut out, b"fLaC", |out| {
        out.extend_from_slice(&[0; 6]); // reserved
        u16be(out, 1); // data reference index
        out.extend_from_slice(&[0; 8]); // reserved
        u16be(out, channels);
        u16be(out, 16); // sample size
        out.extend_from_slice(&[0; 4]); // pre_defined, reserved
        // 16.16 fixed point; rates above 65535 Hz are carried by STREAMINFO alone.
        u32be(out, if rate <= 0xffff { rate << 16 } else { 0 });
        put_full_box(out, b"dfLa", 0, 0, |out| {
            out.push(0x80); // last metadata block, type STREAMINFO
            out.extend_from_slice(&[0, 0, 34]);
            u16be(out, block); // min block size
            u16be(out, block); // max block size
            out.extend_from_slice(&[0; 6]); // min/max frame size unknown
            // sample rate (20 bits), channels − 1 (3), bits per sample − 1 (5), total samples
            // (36 bits, unknown = 0).
            let packed: u64 = (u64::from(rate) << 44) | (u64::from(channels.saturating_sub(1)) << 41) | (15u64 << 36);
            out.extend_from_slice(&packed.to_be_bytes());
            out.extend_from_slice(&[0; 16]); // MD5 unknown
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_expansion_matches_the_reference_points() {
        assert_eq!(G711::MuLaw.expand(0xff), 0);
        assert_eq!(G711::MuLaw.expand(0x7f), 0);
        assert_eq!(G711::MuLaw.expand(0x80), 32124);
        assert_eq!(G711::MuLaw.expand(0x00), -32124);
        assert_eq!(G711::ALaw.expand(0xd5), 8);
        assert_eq!(G711::ALaw.expand(0x55), -8);
        assert_eq!(G711::ALaw.expand(0xaa), 32256);
        // Distinct bytes give distinct samples (except µ-law's two zeros): the expansion can be
        // undone, so storing the samples loses nothing.
        for law in [G711::MuLaw, G711::ALaw] {
            let mut v: Vec<i16> = (0..=255u8).map(|b| law.expand(b)).collect();
            v.sort_unstable();
            v.dedup();
            assert!(v.len() >= 255, "{law:?}");
        }
    }

    #[test]
    fn packets_become_fixed_blocks_and_short_losses_are_filled() {
        let mut c = G711ToFlac::new(G711::MuLaw, 8000, 1).unwrap();
        assert_eq!(c.block_samples(), 320);
        let mut frames = Vec::new();
        // 20 ms packets, the third lost.
        for (i, start) in [0i64, 160, 480, 640, 800].into_iter().enumerate() {
            let bytes: Vec<u8> = (0..160).map(|j| ((i * 31 + j) % 256) as u8).collect();
            frames.extend(c.push(start, &bytes).unwrap());
        }
        frames.extend(c.flush().unwrap());
        assert_eq!(frames.iter().map(|f| f.start).collect::<Vec<_>>(), [0, 320, 640]);
        assert!(frames.iter().all(|f| f.samples == 320 && f.data.starts_with(&[0xff, 0xf8])));
        let e = c.sample_entry();
        assert_eq!(&e[4..8], b"fLaC");
        assert_eq!(crate::mp4::entry::codec_string(&e).as_deref(), Some("flac"));
        assert_eq!(crate::mp4::entry::audio_info(&e), Some((8000, 1)));
    }
}
