//! Keeps frame-sized heap blocks in the process instead of handing them back to the kernel
//! after every frame.
//!
//! glibc serves blocks above a threshold (128 KiB at start, raised on the fly up to 32 MiB)
//! with `mmap` and returns them with `munmap`, and trims the top of the heap when more than
//! twice that is free. A decoded 1080p frame is 3 MiB, and the pixel path allocates and frees
//! several such buffers per frame (decoder output, a plugin's bytes crossing the Wasm boundary);
//! measured on the plugin benchmark, the page faults of fresh mappings made a by-value plugin
//! call ~6× slower (1.4 ms vs 0.23 ms for a 1080p frame). Raising both thresholds keeps those
//! blocks on the heap for reuse: memory the process already used stays mapped (bounded by its
//! own peak), small allocations are unaffected.

/// Blocks up to this size come from the heap (glibc's largest allowed value on 64-bit).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of the heap kept rather than trimmed.
const TRIM_THRESHOLD: i32 = 64 << 20;

/// Applies the thresholds above; call once, early in `main`. A no-op outside glibc.
pub fn tune_allocator_for_frames() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; it is thread-safe in glibc (it takes
    // the arena locks) and both values are within the documented ranges, so it cannot corrupt
    // the heap. Its return value (0 = refused) needs no handling: the defaults then stay.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
