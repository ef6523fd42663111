//! The host side of `wit/processor.wit`: generated bindings, the per-instance store state,
//! and the `frame` resource the host implements.
//!
//! Frames live in the store's resource table as [`I420`] values; the input frame is moved in
//! for the duration of one call (no copy) and moved out afterwards.

pub use crate::codec::I420;
use std::ops::Range;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceTable, WasmList};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    with: { "openva:processor/types.frame": I420 },
    imports: { default: trappable },
});

pub use exports::openva::processor::processor::{CallMode, Output, OutputData, PluginInfo};
pub use openva::processor::types::{FrameData, FrameInfo, Inference, PixelFormat, PlaneLayout};

use openva::processor::types::{Host, HostFrame};

/// Largest frame a plugin may create (8192 × 4320, AVA's largest scale target).
const MAX_W: u32 = 8192;
const MAX_H: u32 = 4320;
/// Bytes of stderr kept per instance (a panic message fits; a flood does not).
const STDERR_CAP: usize = 16 * 1024;
/// Longest log line passed on.
const MAX_LOG_LINE: usize = 1024;

/// Per-call counters the host enforces.
#[derive(Debug, Default)]
pub struct CallBudget {
    /// Log lines written during this call.
    pub log_lines: u32,
    /// Log lines allowed per call before further ones are dropped.
    pub max_log_lines: u32,
    /// Log lines at which the call is stopped as a flood.
    pub flood_log_lines: u32,
    /// Log lines dropped over the budget (reported once per call).
    pub dropped_logs: u32,
}

/// What a plugin instance's store holds.
/// A plugin's memory: its linear memory and the frames it created in the host, which count
/// against the same cap. Without the second, a plugin could make the host allocate frames
/// (the frame constructor, handles kept across calls) far beyond its limit.
pub(crate) struct PluginMemory {
    limits: StoreLimits,
    cap: usize,
    /// Linear memory, as last grown.
    linear: usize,
    /// Bytes of the frames the plugin created that are still in the table.
    frames: usize,
}

impl PluginMemory {
    /// Counts a new frame of `bytes`, or refuses it past the cap (a trap: the fault is a
    /// memory limit, as for linear memory).
    fn take_frame(&mut self, bytes: usize) -> wasmtime::Result<()> {
        if self.linear.saturating_add(self.frames).saturating_add(bytes) > self.cap {
            return Err(wasmtime::Error::msg(format!(
                "frames of {} MiB besides {} MiB of linear memory: over the memory size limit of {} MiB",
                (self.frames + bytes) >> 20,
                self.linear >> 20,
                self.cap >> 20
            )));
        }
        self.frames += bytes;
        Ok(())
    }

    /// A frame the plugin created left the table (dropped, or taken as its output).
    pub(crate) fn give_frame(&mut self, bytes: usize) {
        self.frames = self.frames.saturating_sub(bytes);
    }
}

impl wasmtime::ResourceLimiter for PluginMemory {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired.saturating_add(self.frames) > self.cap {
            return Err(wasmtime::Error::msg(format!(
                "forcing trap when growing memory to {desired} bytes: with {} MiB of frames it is over the memory \
                 size limit",
                self.frames >> 20
            )));
        }
        let ok = self.limits.memory_growing(current, desired, maximum)?;
        if ok {
            self.linear = desired;
        }
        Ok(ok)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

pub struct StoreState {
    pub(crate) table: ResourceTable,
    wasi: WasiCtx,
    pub(crate) limits: PluginMemory,
    pub(crate) stderr: MemoryOutputPipe,
    pub(crate) stderr_seen: usize,
    pub(crate) plugin: String,
    pub(crate) budget: CallBudget,
    /// A frame buffer to reuse for the next frame the plugin creates.
    pub(crate) spare: Option<Vec<u8>>,
}

impl StoreState {
    /// A store state with an empty WASI context (no files, network, environment, clock beyond
    /// WASI's defaults) and a memory cap.
    pub fn new(plugin: &str, memory_bytes: usize, max_log_lines: u32) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        StoreState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            limits: PluginMemory {
                cap: memory_bytes,
                linear: 0,
                frames: 0,
                limits: StoreLimitsBuilder::new()
                    .memory_size(memory_bytes)
                    .instances(16)
                    .tables(16)
                    .memories(4)
                    .trap_on_grow_failure(true)
                    .build(),
            },
            stderr,
            stderr_seen: 0,
            plugin: plugin.to_owned(),
            budget: CallBudget {
                max_log_lines,
                flood_log_lines: max_log_lines.saturating_mul(50),
                ..Default::default()
            },
            spare: None,
        }
    }

    /// New stderr output since the last call (a panic message), lossily decoded.
    pub fn take_stderr(&mut self) -> Option<String> {
        let all = self.stderr.contents();
        if all.len() <= self.stderr_seen {
            return None;
        }
        let new = String::from_utf8_lossy(&all[self.stderr_seen..]).trim().to_owned();
        self.stderr_seen = all.len();
        (!new.is_empty()).then_some(new)
    }
}

impl StoreState {
    fn write_rows_impl(
        &mut self,
        f: &Resource<I420>,
        plane: u32,
        y: u32,
        data: &[u8],
        whole: bool,
    ) -> wasmtime::Result<Result<(), String>> {
        let pic = self.table.get_mut(f)?;
        Ok(write_span(pic, plane, y, data.len(), whole)?.map(|span| pic.data[span].copy_from_slice(data)))
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Plane index checked against I420's three planes.
fn plane_of(pic: &I420, plane: u32) -> wasmtime::Result<crate::codec::Plane> {
    I420::planes(pic.width, pic.height)
        .get(plane as usize)
        .copied()
        .ok_or_else(|| wasmtime::Error::msg(format!("plane {plane} does not exist (I420 has 0, 1, 2)")))
}

/// Where `len` bytes written at row `y` of `plane` go in the frame's buffer (`whole`: they
/// must be the entire plane), or the plugin's error message.
fn write_span(
    pic: &I420,
    plane: u32,
    y: u32,
    len: usize,
    whole: bool,
) -> wasmtime::Result<Result<Range<usize>, String>> {
    let p = plane_of(pic, plane)?;
    let y = y as usize;
    if whole && len != p.width * p.height {
        return Ok(Err(format!("plane {plane} needs {} bytes, got {len}", p.width * p.height)));
    }
    if p.width == 0 || !len.is_multiple_of(p.width) || y + len / p.width > p.height {
        return Ok(Err(format!(
            "write-rows of {len} bytes at row {y} does not fit plane {plane} ({}x{})",
            p.width, p.height
        )));
    }
    let at = p.offset + y * p.width;
    Ok(Ok(at..at + len))
}

/// Replaces the bindings' `write-plane` and `write-rows` with versions that copy straight
/// from the plugin's memory into the frame (`WasmList`), instead of lifting the bytes into a
/// fresh `Vec` first: one copy and no allocation per write, which is most of what a plugin
/// that makes frames pays the host. Call after `Plugin::add_to_linker`.
pub(crate) fn add_zero_copy_writes(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance("openva:processor/types@0.1.0")?;
    types.func_wrap(
        "[method]frame.write-plane",
        |store: StoreContextMut<'_, StoreState>, (f, plane, data): (Resource<I420>, u32, WasmList<u8>)| {
            write_from_guest(store, &f, plane, 0, &data, true).map(|r| (r,))
        },
    )?;
    types.func_wrap(
        "[method]frame.write-rows",
        |store: StoreContextMut<'_, StoreState>, (f, plane, y, data): (Resource<I420>, u32, u32, WasmList<u8>)| {
            write_from_guest(store, &f, plane, y, &data, false).map(|r| (r,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn write_from_guest(
    mut store: StoreContextMut<'_, StoreState>,
    f: &Resource<I420>,
    plane: u32,
    y: u32,
    data: &WasmList<u8>,
    whole: bool,
) -> wasmtime::Result<Result<(), String>> {
    let span = match write_span(store.data().table.get(f)?, plane, y, data.len(), whole)? {
        Ok(span) => span,
        Err(message) => return Ok(Err(message)),
    };
    // The bytes borrow the store, so the destination buffer steps out of the table for the
    // copy (a move, not a copy) and goes back right after; nothing in between can fail.
    let mut buf = std::mem::take(&mut store.data_mut().table.get_mut(f)?.data);
    buf[span].copy_from_slice(data.as_le_slice(&store));
    store.data_mut().table.get_mut(f)?.data = buf;
    Ok(Ok(()))
}

/// The frame layout as the contract describes it.
pub fn frame_info(pic: &I420) -> FrameInfo {
    FrameInfo {
        width: pic.width,
        height: pic.height,
        format: PixelFormat::I420,
        pts: pic.pts,
        planes: I420::planes(pic.width, pic.height)
            .iter()
            .map(|p| PlaneLayout {
                offset: p.offset as u32,
                stride: p.stride as u32,
                width: p.width as u32,
                height: p.height as u32,
            })
            .collect(),
    }
}

/// Area-average downscale of one plane (what `read-scaled` gives analysis plugins).
fn downscale(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let mut out = vec![0u8; dw * dh];
    for y in 0..dh {
        let (y0, y1) = (y * sh / dh, ((y + 1) * sh / dh).max(y * sh / dh + 1).min(sh));
        for x in 0..dw {
            let (x0, x1) = (x * sw / dw, ((x + 1) * sw / dw).max(x * sw / dw + 1).min(sw));
            let mut sum = 0u32;
            for yy in y0..y1 {
                sum += src[yy * sw + x0..yy * sw + x1].iter().map(|&v| u32::from(v)).sum::<u32>();
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            out[y * dw + x] = (sum / n.max(1)) as u8;
        }
    }
    out
}

// Errors returned as `result<_, string>` are the plugin's to handle; `wasmtime::Error`s trap it
// (only for a resource that does not exist, which the guest cannot cause through the SDK).
impl HostFrame for StoreState {
    fn new(&mut self, width: u32, height: u32, _format: PixelFormat) -> wasmtime::Result<Resource<I420>> {
        if width == 0 || height == 0 || width > MAX_W || height > MAX_H {
            return Err(wasmtime::Error::msg(format!(
                "plugin asked for a {width}x{height} frame (allowed 1..={MAX_W} x 1..={MAX_H})"
            )));
        }
        // Reuse the buffer of the frame this instance replaced last time: a scaler then
        // allocates nothing per frame.
        self.limits.take_frame(I420::size(width, height))?;
        let mut data = self.spare.take().unwrap_or_default();
        let planes = I420::planes(width, height);
        data.clear();
        data.resize(I420::size(width, height), 128);
        data[..planes[1].offset].fill(16);
        Ok(self.table.push(I420 { width, height, pts: 0, data })?)
    }

    fn info(&mut self, f: Resource<I420>) -> wasmtime::Result<FrameInfo> {
        Ok(frame_info(self.table.get(&f)?))
    }

    fn read_plane(&mut self, f: Resource<I420>, plane: u32) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let pic = self.table.get(&f)?;
        let p = plane_of(pic, plane)?;
        Ok(Ok(pic.data[p.offset..p.offset + p.width * p.height].to_vec()))
    }

    fn read_rows(
        &mut self,
        f: Resource<I420>,
        plane: u32,
        y: u32,
        rows: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let pic = self.table.get(&f)?;
        let p = plane_of(pic, plane)?;
        let (y, rows) = (y as usize, rows as usize);
        if y.checked_add(rows).is_none_or(|end| end > p.height) {
            return Ok(Err(format!("rows {y}..{} outside plane {plane} of height {}", y + rows, p.height)));
        }
        Ok(Ok(pic.data[p.offset + y * p.width..p.offset + (y + rows) * p.width].to_vec()))
    }

    fn read_scaled(
        &mut self,
        f: Resource<I420>,
        plane: u32,
        width: u32,
        height: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let pic = self.table.get(&f)?;
        let p = plane_of(pic, plane)?;
        if width == 0 || height == 0 || width as usize > p.width || height as usize > p.height {
            return Ok(Err(format!(
                "read-scaled to {width}x{height}: must be 1x1 up to the plane's {}x{}",
                p.width, p.height
            )));
        }
        let src = &pic.data[p.offset..p.offset + p.width * p.height];
        Ok(Ok(downscale(src, p.width, p.height, width as usize, height as usize)))
    }

    // `write-plane` and `write-rows` are served by `add_zero_copy_writes`; these trait
    // methods are the generated bindings' fallback and behave the same.
    fn write_plane(&mut self, f: Resource<I420>, plane: u32, data: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        self.write_rows_impl(&f, plane, 0, &data, true)
    }

    fn write_rows(
        &mut self,
        f: Resource<I420>,
        plane: u32,
        y: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.write_rows_impl(&f, plane, y, &data, false)
    }

    fn fill_plane(&mut self, f: Resource<I420>, plane: u32, value: u8) -> wasmtime::Result<Result<(), String>> {
        let pic = self.table.get_mut(&f)?;
        let p = plane_of(pic, plane)?;
        pic.data[p.offset..p.offset + p.width * p.height].fill(value);
        Ok(Ok(()))
    }

    fn drop(&mut self, f: Resource<I420>) -> wasmtime::Result<()> {
        // Only frames the guest owns (ones it created) are dropped by it; the host takes
        // borrowed input frames back itself.
        if f.owned() {
            let gone = self.table.delete(f)?;
            self.limits.give_frame(gone.data.len());
        }
        Ok(())
    }
}

impl Host for StoreState {}

impl PluginImports for StoreState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let b = &mut self.budget;
        b.log_lines += 1;
        if b.log_lines > b.flood_log_lines {
            return Err(wasmtime::Error::msg(format!("flooded the log ({} lines in one call)", b.log_lines)));
        }
        if b.log_lines > b.max_log_lines {
            b.dropped_logs += 1;
            return Ok(());
        }
        let mut m = message;
        if m.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push('…');
        }
        let plugin = &self.plugin;
        match level {
            LogLevel::Error => tracing::error!(plugin, "{m}"),
            LogLevel::Warn => tracing::warn!(plugin, "{m}"),
            LogLevel::Info => tracing::info!(plugin, "{m}"),
            LogLevel::Debug => tracing::debug!(plugin, "{m}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downscale_averages_areas() {
        let src: Vec<u8> = (0..16).map(|i| if i % 4 < 2 { 0 } else { 200 }).collect();
        assert_eq!(downscale(&src, 4, 4, 2, 2), vec![0, 200, 0, 200]);
        assert_eq!(downscale(&src, 4, 4, 1, 1), vec![100]);
    }
}
