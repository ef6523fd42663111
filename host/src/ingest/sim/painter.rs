//! Paints the simulated camera's frames (I420): the frame stamp band, a moving pattern and a
//! readable UTC clock.
//!
//! The frame stamp is the contract tests rely on: the top 32 rows hold 48 cells, each
//! `floor(W/48)` pixels wide from x=0; cell `i` is white (luma 235) if bit `47-i` of T is 1, else
//! black (luma 16), where T is the frame's capture time in ms since the Unix epoch. Chroma in the
//! band is 128.

use crate::codec::I420;

/// Height of the stamp band in rows.
pub const STAMP_ROWS: usize = 32;
/// Number of stamp cells (bits).
pub const STAMP_BITS: usize = 48;

/// The simulated camera's picture: codec's packed I420 (the one frame type the encoder takes),
/// painted in place frame after frame.
pub struct Frame {
    /// Width (even, ≥ 640).
    pub width: usize,
    /// Height (even).
    pub height: usize,
    /// The picture.
    pub pic: I420,
}

impl Frame {
    /// A black frame.
    pub fn new(width: usize, height: usize) -> Self {
        Frame { width, height, pic: I420::black(width as u32, height as u32, 0) }
    }

    /// The luma and the two chroma planes, to paint.
    fn planes(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let p = I420::planes(self.width as u32, self.height as u32);
        let (y, chroma) = self.pic.data.split_at_mut(p[1].offset);
        let (u, v) = chroma.split_at_mut(p[2].offset - p[1].offset);
        (y, u, v)
    }

    /// Paints frame number `n` captured at `t_ms` (ms since the epoch).
    pub fn paint(&mut self, n: u64, t_ms: i64) {
        let (w, h) = (self.width, self.height);
        let (y, u, v) = self.planes();
        // Moving diagonal bars below the band.
        let shift = (n as usize).wrapping_mul(4);
        for yy in STAMP_ROWS..h {
            let row = &mut y[yy * w..(yy + 1) * w];
            for (x, p) in row.iter_mut().enumerate() {
                let k = (x + yy + shift) & 0xff;
                *p = 16 + ((k * 219) >> 8) as u8;
            }
        }
        let (cw, ch) = (w / 2, h / 2);
        for yy in STAMP_ROWS / 2..ch {
            for x in 0..cw {
                u[yy * cw + x] = 96 + (((x + shift / 2) >> 3) & 63) as u8;
                v[yy * cw + x] = 96 + (((yy + shift / 4) >> 3) & 63) as u8;
            }
        }
        // A box that moves across, so motion is obvious to a person.
        let bx = (n as usize * 8) % w.saturating_sub(64).max(1);
        for yy in (h / 2)..(h / 2 + 64).min(h) {
            for p in &mut y[yy * w + bx..yy * w + bx + 64.min(w - bx)] {
                *p = 235;
            }
        }
        self.stamp(t_ms);
        self.clock(t_ms);
    }

    fn stamp(&mut self, t_ms: i64) {
        let w = self.width;
        let (y, u, v) = self.planes();
        let cell = w / STAMP_BITS;
        for yy in 0..STAMP_ROWS {
            let row = &mut y[yy * w..(yy + 1) * w];
            row.fill(16);
            for i in 0..STAMP_BITS {
                if (t_ms >> (STAMP_BITS - 1 - i)) & 1 == 1 {
                    row[i * cell..(i + 1) * cell].fill(235);
                }
            }
        }
        let cw = w / 2;
        u[..cw * STAMP_ROWS / 2].fill(128);
        v[..cw * STAMP_ROWS / 2].fill(128);
    }

    fn clock(&mut self, t_ms: i64) {
        let t = crate::time::Time90k::from_millis(t_ms).to_iso_millis();
        // "2026-11-23T05:06:07.123Z" -> "2026-11-23 05:06:07.123 UTC"
        let text = format!("{} UTC", t.trim_end_matches('Z').replace('T', " "));
        let (width, height) = (self.width, self.height);
        let (y, _, _) = self.planes();
        let scale = (width / 320).max(2);
        let (x0, y0) = (16, STAMP_ROWS + 16);
        let (gw, gh) = (6 * scale, 9 * scale);
        // Dark plate behind the text for contrast.
        let plate_w = (text.len() * gw + 16).min(width - x0 + 8);
        for yy in y0 - 8..(y0 + gh + 8).min(height) {
            let row = &mut y[yy * width..(yy + 1) * width];
            row[x0 - 8..x0 - 8 + plate_w].fill(16);
        }
        for (i, c) in text.chars().enumerate() {
            let Some(g) = glyph(c) else { continue };
            for (gy, bits) in g.iter().enumerate() {
                for gx in 0..5 {
                    if bits >> (4 - gx) & 1 == 1 {
                        for sy in 0..scale {
                            let yy = y0 + gy * scale + sy;
                            let xx = x0 + i * gw + gx * scale;
                            if yy < height && xx + scale <= width {
                                y[yy * width + xx..yy * width + xx + scale].fill(235);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Reads the frame stamp back from a decoded luma plane (tests and benchmarks use this).
pub fn read_stamp(luma: &[u8], width: usize) -> i64 {
    let cell = width / STAMP_BITS;
    let mut t = 0i64;
    for i in 0..STAMP_BITS {
        // Sample the middle of the cell, away from edges the encoder may blur.
        let x = i * cell + cell / 2;
        let v = luma[(STAMP_ROWS / 2) * width + x];
        t = (t << 1) | i64::from(v > 125);
    }
    t
}

/// 5x7 glyphs for the clock.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_reads_back() {
        let mut f = Frame::new(1280, 720);
        let t = 1_795_000_123_456;
        f.paint(7, t);
        assert_eq!(read_stamp(&f.pic.data, 1280), t);
        assert!(f.pic.data[1280 * 720..][..640 * 16].iter().all(|&c| c == 128));
    }

    #[test]
    fn odd_widths_still_work() {
        let mut f = Frame::new(650, 360);
        f.paint(0, 42);
        assert_eq!(read_stamp(&f.pic.data, 650), 42);
    }
}
