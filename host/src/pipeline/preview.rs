//! Preview images (AVA's `images/latest/{small|medium|large}.jpg`, and a picture at any time):
//! a recorded keyframe from the archive, decoded, shrunk and encoded as JPEG. Made on request
//! from the archive rather than written every segment, so there is nothing to store or expire,
//! and a picture of any moment costs the same as the latest one.

use crate::archive::{Archive, ArchiveError};
use crate::codec::{CodecError, Decoder, still};
use crate::time::Time90k;

/// JPEG quality of preview images: thumbnails, where 85 is visually clean and small.
const QUALITY: u8 = 85;

/// AVA's preview image sizes, by width (the height keeps the video's aspect ratio).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StillSize {
    /// 320 pixels wide (320×180 for 16:9).
    Small,
    /// 640 pixels wide.
    Medium,
    /// 1280 pixels wide.
    Large,
}

impl StillSize {
    /// Largest width of the size; a smaller video keeps its own width (never scaled up).
    pub fn max_width(self) -> u32 {
        match self {
            StillSize::Small => 320,
            StillSize::Medium => 640,
            StillSize::Large => 1280,
        }
    }
}

/// A size name that is not one of AVA's.
#[derive(Debug, thiserror::Error)]
#[error("size '{0}' is not one of small, medium, large")]
pub struct BadSize(pub String);

impl std::str::FromStr for StillSize {
    type Err = BadSize;

    /// `small`, `medium` or `large`, case-insensitively as AVA matched names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "small" => Ok(StillSize::Small),
            "medium" => Ok(StillSize::Medium),
            "large" => Ok(StillSize::Large),
            _ => Err(BadSize(s.to_owned())),
        }
    }
}

/// Why a preview image could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StillError {
    /// The archive has no such video or picture, or could not be read.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The recorded keyframe did not decode, or the JPEG could not be written.
    #[error("{0}")]
    Codec(#[from] CodecError),
}

/// A preview image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Still {
    /// The JPEG file.
    pub jpeg: Vec<u8>,
    /// Wall-clock time of the keyframe it shows.
    pub time: Time90k,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
}

/// The picture of `video` at `at` (the keyframe at or before it) or, without `at`, the latest
/// recorded keyframe, as a JPEG of `size`. Blocking: decodes one frame (tens of milliseconds
/// for 1080p).
pub fn still(archive: &Archive, video: &str, at: Option<Time90k>, size: StillSize) -> Result<Still, StillError> {
    let key = archive.keyframe(video, at)?;
    // A keyframe alone decodes even in a stream with B-frames.
    let mut decoder = Decoder::for_entry(&key.sample_entry, false, 1)?;
    let pic = match decoder.decode(&key.data, key.wall.0, true)? {
        Some(p) => Some(p),
        None => decoder.flush().into_iter().next(),
    }
    .ok_or_else(|| CodecError::Malformed(format!("the keyframe at {} gave no picture", key.wall)))?;
    let (w, h) = still::fit(pic.width, pic.height, size.max_width());
    let small = if (w, h) == (pic.width, pic.height) { pic } else { still::scale(&pic, w, h) };
    Ok(Still { jpeg: still::jpeg(&small, QUALITY)?, time: key.wall, width: w, height: h })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_ava() {
        assert_eq!("Small".parse::<StillSize>().unwrap(), StillSize::Small);
        assert_eq!("large".parse::<StillSize>().unwrap().max_width(), 1280);
        assert!("huge".parse::<StillSize>().is_err());
    }
}
