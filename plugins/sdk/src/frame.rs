//! [`Frame`]: one type over the host-owned frame resource and a by-value frame.

use crate::bindings::openva::processor::types::{Frame as HostFrame, FrameData, FrameInfo, PixelFormat, PlaneLayout};
use openva_algos::scale::{I420, plane_size, scale_plane_area};
use std::cell::OnceCell;

/// Largest width or height of a frame a plugin creates; the host applies its own limits too.
const MAX_SIDE: u32 = 16_384;

/// A video frame (I420) being processed, or a new one made by the plugin.
///
/// In [`crate::CallMode::Resource`] the pixels stay in the host and every accessor is a host
/// call that copies only what it names; in [`crate::CallMode::ByValue`] the frame is in the
/// plugin's memory. The API is the same. Plane data is always tightly packed: plane `i` is
/// `plane_size(i)` = `width × height` bytes with no row padding.
pub struct Frame<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    /// A frame in the host: the input, borrowed for one `process` call, or a new one.
    Host { frame: HostRef<'a>, info: OnceCell<FrameInfo> },
    /// A frame in plugin memory: the by-value input, or a new frame. `dirty` once written.
    Data { data: FrameData, dirty: bool },
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.info();
        write!(
            f,
            "Frame({}x{} pts {}, {})",
            i.width,
            i.height,
            i.pts,
            if self.is_by_value() { "by value" } else { "host" }
        )
    }
}

/// The host frame behind [`Inner::Host`]: the call's input (borrowed) or one the plugin made
/// with [`Frame::new_in_host`] (owned, returned as the replacement).
enum HostRef<'a> {
    Borrowed(&'a HostFrame),
    Owned(HostFrame),
}

impl std::ops::Deref for HostRef<'_> {
    type Target = HostFrame;

    fn deref(&self) -> &HostFrame {
        match self {
            HostRef::Borrowed(f) => f,
            HostRef::Owned(f) => f,
        }
    }
}

fn packed_info(width: u32, height: u32) -> FrameInfo {
    let mut offset = 0;
    let planes = (0..3)
        .map(|i| {
            let (w, h) = plane_size(width, height, i);
            let l = PlaneLayout { offset, stride: w, width: w, height: h };
            offset += w * h;
            l
        })
        .collect();
    FrameInfo { width, height, format: PixelFormat::I420, pts: 0, planes }
}

/// Checks that plane `plane` of a by-value frame lies inside its buffer, and returns its layout.
fn data_plane(data: &FrameData, plane: u32) -> Result<PlaneLayout, String> {
    let l = *data.info.planes.get(plane as usize).ok_or_else(|| format!("no plane {plane}"))?;
    let end = (l.height as u64).checked_sub(1).map(|r| l.offset as u64 + r * l.stride as u64 + l.width as u64);
    match end {
        Some(end) if l.stride >= l.width && l.width > 0 && end <= data.data.len() as u64 => Ok(l),
        _ => Err(format!("plane {plane} layout {l:?} does not fit the frame's {} bytes", data.data.len())),
    }
}

fn row_range(l: &PlaneLayout, y: u32) -> std::ops::Range<usize> {
    let start = l.offset as usize + y as usize * l.stride as usize;
    start..start + l.width as usize
}

impl<'a> Frame<'a> {
    pub(crate) fn from_host(frame: &'a HostFrame) -> Self {
        Frame { inner: Inner::Host { frame: HostRef::Borrowed(frame), info: OnceCell::new() } }
    }

    pub(crate) fn from_data(data: FrameData) -> Self {
        Frame { inner: Inner::Data { data, dirty: false } }
    }

    /// A new black I420 frame (Y 16, U and V 128) of `width × height`, for plugins that output
    /// another size: fill it, then return it with [`crate::Output::replace`]. It lives in plugin
    /// memory; the SDK hands it to the host when `process` returns.
    pub fn new_i420(width: u32, height: u32) -> Result<Frame<'static>, String> {
        let black = I420::black(width, height)?;
        Frame::from_i420(width, height, black.data)
    }

    /// A new black I420 frame of `width × height` that lives in the host: rows and planes
    /// written to it go straight to the host, and returning it with [`crate::Output::replace`]
    /// copies nothing more. The fast way for a resource-mode plugin to make a frame of another
    /// size band by band ([`Frame::set_rows`]); [`Frame::new_i420`] keeps the pixels in plugin
    /// memory until `process` returns.
    pub fn new_in_host(width: u32, height: u32) -> Result<Frame<'static>, String> {
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(format!("frame size {width}x{height} is outside 1..={MAX_SIDE}"));
        }
        let frame = HostFrame::new(width, height, PixelFormat::I420);
        Ok(Frame { inner: Inner::Host { frame: HostRef::Owned(frame), info: OnceCell::new() } })
    }

    /// A new I420 frame from tightly packed planes (Y, then U, then V, as
    /// `openva_algos::scale::I420` lays them out), without copying.
    pub fn from_i420(width: u32, height: u32, data: Vec<u8>) -> Result<Frame<'static>, String> {
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(format!("frame size {width}x{height} is outside 1..={MAX_SIDE}"));
        }
        let info = packed_info(width, height);
        let need = info.planes.iter().map(|p| p.width as usize * p.height as usize).sum::<usize>();
        if data.len() != need {
            return Err(format!("I420 {width}x{height} needs {need} bytes, got {}", data.len()));
        }
        Ok(Frame { inner: Inner::Data { data: FrameData { info, data }, dirty: true } })
    }

    /// Size, format, time and plane layout (fetched from the host once per call, then cached).
    pub fn info(&self) -> &FrameInfo {
        match &self.inner {
            Inner::Host { frame, info } => info.get_or_init(|| frame.info()),
            Inner::Data { data, .. } => &data.info,
        }
    }

    /// Luma width in pixels.
    pub fn width(&self) -> u32 {
        self.info().width
    }

    /// Luma height in pixels.
    pub fn height(&self) -> u32 {
        self.info().height
    }

    /// The frame's wall-clock time: 90 kHz ticks since the Unix epoch (AVA's timestamp). The
    /// plugin's only clock.
    pub fn pts(&self) -> i64 {
        self.info().pts
    }

    /// Whether the pixels are in plugin memory (by-value call or a new frame) rather than in
    /// the host.
    pub fn is_by_value(&self) -> bool {
        matches!(self.inner, Inner::Data { .. })
    }

    /// Width and height of plane `plane` (0 = Y, 1 = U, 2 = V).
    pub fn plane_size(&self, plane: u32) -> Result<(u32, u32), String> {
        let l = self.info().planes.get(plane as usize).ok_or_else(|| format!("no plane {plane}"))?;
        Ok((l.width, l.height))
    }

    /// A copy of a whole plane, packed.
    pub fn plane(&self, plane: u32) -> Result<Vec<u8>, String> {
        match &self.inner {
            Inner::Host { frame, .. } => frame.read_plane(plane),
            Inner::Data { data, .. } => {
                let l = data_plane(data, plane)?;
                if l.stride == l.width {
                    let start = l.offset as usize;
                    return Ok(data.data[start..start + (l.width * l.height) as usize].to_vec());
                }
                Ok((0..l.height).flat_map(|y| data.data[row_range(&l, y)].iter().copied()).collect())
            }
        }
    }

    /// A copy of `rows` rows of a plane from row `y`, packed: for plugins that work in strips.
    pub fn rows(&self, plane: u32, y: u32, rows: u32) -> Result<Vec<u8>, String> {
        match &self.inner {
            Inner::Host { frame, .. } => frame.read_rows(plane, y, rows),
            Inner::Data { data, .. } => {
                let l = data_plane(data, plane)?;
                if y.checked_add(rows).is_none_or(|end| end > l.height) {
                    return Err(format!("rows {y}+{rows} outside plane {plane} of height {}", l.height));
                }
                Ok((y..y + rows).flat_map(|r| data.data[row_range(&l, r)].iter().copied()).collect())
            }
        }
    }

    /// A plane downscaled (area average) to `width × height`, packed. In resource mode the host
    /// scales, so only the small copy crosses: the way to analyse a frame (motion detection
    /// reads luma at about 1/8 size).
    pub fn scaled(&self, plane: u32, width: u32, height: u32) -> Result<Vec<u8>, String> {
        match &self.inner {
            Inner::Host { frame, .. } => frame.read_scaled(plane, width, height),
            Inner::Data { data, .. } => {
                let l = data_plane(data, plane)?;
                let src = &data.data[l.offset as usize..];
                let (w, h, s) = (l.width as usize, l.height as usize, l.stride as usize);
                scale_plane_area(src, w, h, s, width as usize, height as usize)
            }
        }
    }

    /// The luma plane downscaled to `width × height` (see [`Frame::scaled`]).
    pub fn scaled_luma(&self, width: u32, height: u32) -> Result<Vec<u8>, String> {
        self.scaled(0, width, height)
    }

    /// Replaces a whole plane with packed `data` (exactly `plane_size` bytes).
    pub fn set_plane(&mut self, plane: u32, bytes: &[u8]) -> Result<(), String> {
        match &mut self.inner {
            Inner::Host { frame, .. } => frame.write_plane(plane, bytes),
            Inner::Data { data, dirty } => {
                let l = data_plane(data, plane)?;
                if bytes.len() != (l.width * l.height) as usize {
                    return Err(format!("plane {plane} needs {} bytes, got {}", l.width * l.height, bytes.len()));
                }
                for (y, src) in bytes.chunks_exact(l.width as usize).enumerate() {
                    data.data[row_range(&l, y as u32)].copy_from_slice(src);
                }
                *dirty = true;
                Ok(())
            }
        }
    }

    /// Replaces `bytes.len() / width` rows of a plane from row `y`.
    pub fn set_rows(&mut self, plane: u32, y: u32, bytes: &[u8]) -> Result<(), String> {
        match &mut self.inner {
            Inner::Host { frame, .. } => frame.write_rows(plane, y, bytes),
            Inner::Data { data, dirty } => {
                let l = data_plane(data, plane)?;
                let rows = bytes.len() / l.width as usize;
                if !bytes.len().is_multiple_of(l.width as usize) || y as usize + rows > l.height as usize {
                    return Err(format!("{} bytes from row {y} do not fit plane {plane}", bytes.len()));
                }
                for (r, src) in bytes.chunks_exact(l.width as usize).enumerate() {
                    data.data[row_range(&l, y + r as u32)].copy_from_slice(src);
                }
                *dirty = true;
                Ok(())
            }
        }
    }

    /// Sets every byte of a plane (chroma 128 makes a frame gray). In resource mode nothing
    /// crosses but the call.
    pub fn fill_plane(&mut self, plane: u32, value: u8) -> Result<(), String> {
        match &mut self.inner {
            Inner::Host { frame, .. } => frame.fill_plane(plane, value),
            Inner::Data { data, dirty } => {
                let l = data_plane(data, plane)?;
                for y in 0..l.height {
                    data.data[row_range(&l, y)].fill(value);
                }
                *dirty = true;
                Ok(())
            }
        }
    }

    /// The frame as a new host frame, to return from a resource-mode `process`.
    pub(crate) fn into_host(self) -> Result<HostFrame, String> {
        if let Inner::Host { frame: HostRef::Owned(frame), .. } = self.inner {
            return Ok(frame);
        }
        let data = self.into_data()?;
        let info = &data.info;
        let host = HostFrame::new(info.width, info.height, info.format);
        let frame = Frame::from_data(data);
        for plane in 0..frame.info().planes.len() as u32 {
            host.write_plane(plane, &frame.plane(plane)?)?;
        }
        Ok(host)
    }

    /// The frame's bytes, to return from a by-value `process`.
    pub(crate) fn into_data(self) -> Result<FrameData, String> {
        match self.inner {
            Inner::Data { data, .. } => Ok(data),
            Inner::Host { frame: HostRef::Owned(_), .. } => {
                // Made with `new_in_host` but returned by value: bring the pixels over.
                let info = self.info().clone();
                let mut data = Vec::with_capacity(info.planes.iter().map(|p| (p.width * p.height) as usize).sum());
                for plane in 0..info.planes.len() as u32 {
                    data.extend_from_slice(&self.plane(plane)?);
                }
                Ok(FrameData { info: packed_info(info.width, info.height), data })
            }
            Inner::Host { frame: HostRef::Borrowed(_), .. } => {
                Err("the input frame cannot be its own replacement: change it in place, or return a \
                                       frame made with Frame::new_i420"
                    .into())
            }
        }
    }

    /// The by-value input's bytes if the plugin wrote to them.
    pub(crate) fn take_if_dirty(self) -> Option<FrameData> {
        match self.inner {
            Inner::Data { data, dirty: true } => Some(data),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4×2 I420 frame by value with padded rows (stride 6 luma, 4 chroma) and a prefix.
    fn padded() -> Frame<'static> {
        let mut data = vec![0xEEu8; 3 + 6 * 2 + 4 + 4];
        let planes = vec![
            PlaneLayout { offset: 3, stride: 6, width: 4, height: 2 },
            PlaneLayout { offset: 15, stride: 4, width: 2, height: 1 },
            PlaneLayout { offset: 19, stride: 4, width: 2, height: 1 },
        ];
        data[3..7].copy_from_slice(&[1, 2, 3, 4]);
        data[9..13].copy_from_slice(&[5, 6, 7, 8]);
        data[15..17].copy_from_slice(&[100, 101]);
        data[19..21].copy_from_slice(&[200, 201]);
        let info = FrameInfo { width: 4, height: 2, format: PixelFormat::I420, pts: 42, planes };
        Frame::from_data(FrameData { info, data })
    }

    #[test]
    fn by_value_planes_respect_layout() {
        let f = padded();
        assert_eq!(f.plane(0).unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(f.plane(2).unwrap(), vec![200, 201]);
        assert_eq!(f.rows(0, 1, 1).unwrap(), vec![5, 6, 7, 8]);
        assert!(f.rows(0, 1, 2).is_err());
        assert!(f.rows(0, u32::MAX, 2).is_err());
        assert!(f.plane(3).is_err());
        assert_eq!(f.scaled_luma(2, 1).unwrap(), vec![4, 6]);
        assert_eq!((f.pts(), f.plane_size(1).unwrap()), (42, (2, 1)));
    }

    #[test]
    fn by_value_writes_keep_padding_and_mark_dirty() {
        let mut f = padded();
        f.fill_plane(1, 128).unwrap();
        f.set_plane(0, &[9; 8]).unwrap();
        f.set_rows(0, 1, &[7; 4]).unwrap();
        assert!(f.set_plane(0, &[9; 7]).is_err());
        assert!(f.set_rows(0, 1, &[7; 8]).is_err());
        let d = f.take_if_dirty().unwrap();
        assert_eq!(&d.data[..16], &[0xEE, 0xEE, 0xEE, 9, 9, 9, 9, 0xEE, 0xEE, 7, 7, 7, 7, 0xEE, 0xEE, 128]);
        assert!(padded().take_if_dirty().is_none());
    }

    #[test]
    fn bad_layouts_are_errors() {
        let mut f = padded();
        if let Inner::Data { data, .. } = &mut f.inner {
            data.data.truncate(20);
        }
        assert!(f.plane(2).unwrap_err().contains("does not fit"));
        assert_eq!(f.plane(0).unwrap().len(), 8);
    }

    #[test]
    fn new_frames() {
        let f = Frame::new_i420(4, 3).unwrap();
        assert_eq!(f.plane(0).unwrap(), vec![16; 12]);
        assert_eq!(f.plane(1).unwrap(), vec![128; 4]);
        assert_eq!(f.info().planes[2].offset, 16);
        assert!(Frame::new_i420(0, 3).is_err());
        assert!(Frame::from_i420(4, 4, vec![0; 23]).is_err());
        assert!(Frame::from_i420(4, 4, vec![0; 24]).unwrap().into_data().is_ok());
    }
}
