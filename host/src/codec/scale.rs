//! Resizing decoded pictures (transcode-on-playback's smaller variants): libswscale when the
//! host has libavcodec, else the `scale` plugin's bilinear algorithm natively (openva-algos,
//! the same one extensions use). Either way one interface, made once per size pair.

use super::{CodecError, I420};

/// Scales packed I420 pictures of one size to another.
pub struct Scaler {
    from: (u32, u32),
    to: (u32, u32),
    #[cfg(feature = "ffmpeg")]
    sws: super::av::SwScaler,
}

impl Scaler {
    /// A scaler from `from` to `to` (width, height; even target sizes).
    pub fn new(from: (u32, u32), to: (u32, u32)) -> Result<Self, CodecError> {
        let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        if from.0 == 0 || from.1 == 0 || to.0 == 0 || to.1 == 0 || area(from).max(area(to)) > super::MAX_PICTURE_PIXELS
        {
            return Err(CodecError::Malformed(format!("cannot scale {}x{} to {}x{}", from.0, from.1, to.0, to.1)));
        }
        Ok(Scaler {
            from,
            to,
            #[cfg(feature = "ffmpeg")]
            sws: super::av::SwScaler::new(from, to)?,
        })
    }

    /// The output size.
    pub fn output(&self) -> (u32, u32) {
        self.to
    }

    /// `pic` scaled (its time kept); `spare` is a buffer to reuse for the output.
    pub fn scale(&mut self, pic: &I420, spare: Vec<u8>) -> Result<I420, CodecError> {
        if (pic.width, pic.height) != self.from || !pic.is_consistent() {
            return Err(CodecError::Malformed(format!(
                "a {}x{} picture given to a scaler for {}x{}",
                pic.width, pic.height, self.from.0, self.from.1
            )));
        }
        self.scale_inner(pic, spare)
    }

    #[cfg(feature = "ffmpeg")]
    fn scale_inner(&mut self, pic: &I420, spare: Vec<u8>) -> Result<I420, CodecError> {
        self.sws.scale(pic, spare)
    }

    #[cfg(not(feature = "ffmpeg"))]
    fn scale_inner(&mut self, pic: &I420, _spare: Vec<u8>) -> Result<I420, CodecError> {
        use openva_algos::scale as algo;
        let (w, h) = self.to;
        let g = algo::Geometry { width: w, height: h, picture: algo::Rect { x: 0, y: 0, w, h } };
        let src = algo::I420Ref::packed(pic.width, pic.height, &pic.data).map_err(CodecError::Malformed)?;
        let out = algo::scale_i420(&src, &g).map_err(CodecError::Malformed)?;
        Ok(I420 { width: out.width, height: out.height, pts: pic.pts, data: out.data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_a_square_to_half_size_and_refuses_the_wrong_input() {
        let mut pic = I420::black(320, 240, 5);
        for y in 80..160 {
            pic.data[y * 320 + 80..y * 320 + 240].fill(235);
        }
        let mut s = Scaler::new((320, 240), (160, 120)).expect("scaler");
        let out = s.scale(&pic, Vec::new()).expect("scaled");
        assert_eq!((out.width, out.height, out.pts), (160, 120, 5));
        assert!(out.is_consistent());
        // The square is now at 40..120 × 40..80; outside it stays black.
        assert!(out.data[60 * 160 + 60] > 200, "inside: {}", out.data[60 * 160 + 60]);
        assert!(out.data[10 * 160 + 10] < 40, "outside: {}", out.data[10 * 160 + 10]);
        assert!(s.scale(&I420::black(64, 64, 0), Vec::new()).is_err());
        assert!(Scaler::new((0, 10), (10, 10)).is_err());
        assert!(Scaler::new((10, 10), (100_000, 100_000)).is_err());
    }
}
