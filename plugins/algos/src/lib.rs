//! Pixel algorithms used by openva's processor plugins.
//!
//! The same source is compiled into the WebAssembly plugins and natively into the host's tests
//! and benchmarks, so the pixel algorithms are integer arithmetic with a fixed rounding: a native
//! run and a wasm run give bit-identical output. (`tracking`, run natively by the host, keeps
//! its boxes in `f64` fractions, as AVA's inferences are.) The crate has no dependencies; its only `unsafe` is
//! the SIMD loads and stores of `scale::simd`, each with its proof.
//!
//! Frames are I420: plane 0 is luma (Y, `width × height`), planes 1 and 2 are chroma (U, V,
//! `(width + 1) / 2 × (height + 1) / 2`). Regions are given as ratios of the frame (0.0–1.0,
//! origin top-left), as in AVA's inference schema, so one region applies to every plane.
//!
//! Functions that take caller input return `Err(String)` on inconsistent sizes instead of
//! panicking: a plugin turns the message into a refused configuration or a failed frame.

#![deny(unsafe_code)]

pub mod blur;
pub mod geometry;
pub mod motion;
pub mod scale;
pub mod tracking;

pub use blur::{Region, blur_regions, blur_regions_in_rows, rows_needed};
pub use geometry::{Point, RatioBox};
pub use motion::{MotionDetector, Sensitivity};
pub use scale::{
    BilinearPlan, Geometry, I420, I420Ref, PlaneRef, Rect, ScaleMode, output_geometry, scale_i420, scale_plane_bilinear,
};

/// Checks that a plane of `width × height` bytes with `stride` fits in `len` bytes, so the
/// algorithms can index without bounds surprises.
pub(crate) fn check_plane(what: &str, len: usize, width: usize, height: usize, stride: usize) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("{what}: empty plane {width}x{height}"));
    }
    if stride < width {
        return Err(format!("{what}: stride {stride} is less than width {width}"));
    }
    let need = stride
        .checked_mul(height - 1)
        .and_then(|n| n.checked_add(width))
        .ok_or_else(|| format!("{what}: plane size overflows"))?;
    if len < need {
        return Err(format!("{what}: {len} bytes, a {width}x{height} plane with stride {stride} needs {need}"));
    }
    Ok(())
}
