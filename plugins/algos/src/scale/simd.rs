//! SIMD kernels for [`super::scale_plane_bilinear`], computing exactly the scalar sums so the
//! bytes never depend on the path taken.
//!
//! - Horizontal: sixteen outputs per call from four [`Quad`]s. Each quad is one 16-byte load of
//!   intermediates, one byte shuffle that interleaves the four sample pairs, and one signed
//!   16-bit dot product (`pmaddwd`). The intermediates are unsigned (up to 65280), so they are
//!   biased by −32768 first and the bias times the weight sum (256) is added back before the
//!   rounding shift: `Σ (p − 32768)·w + 32768·256 = Σ p·w`, with every term inside i32.
//! - Vertical: the weighted sum of two source rows into the intermediates, 32 pixels per loop
//!   turn on wasm (a Wasm runtime checks for interruption on every loop back-edge, so short
//!   turns cost more there than natively); natively the compiler's own vectorisation is used.
//!
//! Targets: wasm32 with `simd128` (the plugins are built with it) and x86_64 with SSSE3
//! (detected at run time, so native references and benchmarks run the same algorithm as the
//! plugins). Elsewhere [`available`] is `None` and the scalar path runs.

#![allow(unsafe_code)] // SIMD loads and stores; each block states why it is sound

use super::Quad;

/// Added to a biased dot product: the bias back (`32768 · 256`) plus half of the final divisor.
const UNBIAS_AND_ROUND: i32 = (32768 << 8) + (1 << 15);

/// Proof that the running CPU has the instructions [`Row::filter`] uses. It can only be
/// obtained from [`available`], which is what makes `filter` safe to call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token(#[allow(dead_code)] Private);

#[derive(Clone, Copy, Debug)]
struct Private;

/// Whether this target and CPU can run [`Row::filter`].
pub(crate) fn available() -> Option<Token> {
    imp::available().then_some(Token(Private))
}

/// The SIMD tables of one plane's horizontal pass: a block of four [`Quad`]s per 16 outputs,
/// and the largest sample index any quad loads from, checked once per row so the loads need
/// no per-quad bounds checks.
pub(crate) struct Row {
    blocks: Vec<[Quad; 4]>,
    /// One past the last intermediate any quad reads (`base + 8`).
    reach: usize,
}

impl Row {
    pub(crate) fn new(blocks: Vec<[Quad; 4]>) -> Self {
        let reach = blocks.iter().flatten().map(|q| q.base + 8).max().unwrap_or(0);
        Row { blocks, reach }
    }

    /// Filters the first `16 × blocks` outputs of `out` from `tmp` and returns how many it did:
    /// none if `tmp` or `out` is too short for the tables (the caller's scalar loop then does
    /// them all).
    #[inline]
    pub(crate) fn filter(&self, _: Token, tmp: &[u16], out: &mut [u8]) -> usize {
        let n = 16 * self.blocks.len();
        if tmp.len() < self.reach || out.len() < n {
            return 0;
        }
        for (quads, o16) in self.blocks.iter().zip(out.chunks_exact_mut(16)) {
            // SAFETY: every quad's `base + 8 <= reach <= tmp.len()` (checked above), `o16` is
            // exactly 16 bytes, and the token proves the CPU has the instructions.
            unsafe { imp::filter16(tmp, quads, o16) };
        }
        n
    }
}

/// `out[x] = a[x] * fa + b[x] * fb` for every `x` of `out` (`a` and `b` at least as long;
/// `fa + fb = 256`, so nothing overflows 16 bits).
#[inline(never)] // its own function: the register allocator sees only this loop
pub(crate) fn vertical(a: &[u8], b: &[u8], fa: u16, fb: u16, out: &mut [u16]) {
    let n = out.len().min(a.len()).min(b.len());
    let (a, b, out) = (&a[..n], &b[..n], &mut out[..n]);
    let done = imp::vertical32(a, b, fa, fb, out);
    for ((o, &pa), &pb) in out[done..].iter_mut().zip(&a[done..]).zip(&b[done..]) {
        *o = pa as u16 * fa + pb as u16 * fb;
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use super::{Quad, UNBIAS_AND_ROUND};
    use core::arch::wasm32::*;

    pub(super) fn available() -> bool {
        true // compiled with simd128: every runtime that loads the module has it
    }

    /// # Safety
    /// `q.base + 8 <= tmp.len()` for each quad, and `out.len() >= 16`.
    #[inline(always)]
    pub(super) unsafe fn filter16(tmp: &[u16], quads: &[Quad; 4], out: &mut [u8]) {
        let bias = u16x8_splat(0x8000);
        let add = i32x4_splat(UNBIAS_AND_ROUND);
        let mut r = [add; 4];
        for (q, r) in quads.iter().zip(&mut r) {
            // SAFETY: `tmp[q.base..q.base + 8]` is in bounds (the caller's guarantee), and
            // `q.shuffle` and `q.w` are 16 bytes each; v128 loads have no alignment requirement.
            let (v, m, w) = unsafe {
                (
                    v128_load(tmp.as_ptr().add(q.base).cast()),
                    v128_load(q.shuffle.as_ptr().cast()),
                    v128_load(q.w.as_ptr().cast()),
                )
            };
            let p = v128_xor(i8x16_swizzle(v, m), bias);
            *r = u32x4_shr(i32x4_add(i32x4_dot_i16x8(p, w), add), 16);
        }
        let bytes = u8x16_narrow_i16x8(u16x8_narrow_i32x4(r[0], r[1]), u16x8_narrow_i32x4(r[2], r[3]));
        // SAFETY: `out` has at least 16 bytes (the caller's guarantee); v128 stores have no
        // alignment requirement.
        unsafe { v128_store(out.as_mut_ptr().cast(), bytes) }
    }

    /// Whole 32-pixel runs of [`super::vertical`]; returns how many pixels it did.
    #[inline(always)]
    pub(super) fn vertical32(a: &[u8], b: &[u8], fa: u16, fb: u16, out: &mut [u16]) -> usize {
        let (wa, wb) = (u16x8_splat(fa), u16x8_splat(fb));
        let mut done = 0;
        for ((a32, b32), o32) in a.chunks_exact(32).zip(b.chunks_exact(32)).zip(out.chunks_exact_mut(32)) {
            // SAFETY: each chunk is 32 bytes (a, b) or 32 u16 = 64 bytes (out); the loads and
            // stores below cover offsets 0..32 and 0..64 bytes, and v128 accesses have no
            // alignment requirement.
            unsafe {
                for half in 0..2 {
                    let va = v128_load(a32.as_ptr().add(16 * half).cast());
                    let vb = v128_load(b32.as_ptr().add(16 * half).cast());
                    let lo =
                        i16x8_add(i16x8_mul(u16x8_extend_low_u8x16(va), wa), i16x8_mul(u16x8_extend_low_u8x16(vb), wb));
                    let hi = i16x8_add(
                        i16x8_mul(u16x8_extend_high_u8x16(va), wa),
                        i16x8_mul(u16x8_extend_high_u8x16(vb), wb),
                    );
                    v128_store(o32.as_mut_ptr().add(16 * half).cast(), lo);
                    v128_store(o32.as_mut_ptr().add(16 * half + 8).cast(), hi);
                }
            }
            done += 32;
        }
        done
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::{Quad, UNBIAS_AND_ROUND};
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("ssse3")
    }

    /// # Safety
    /// `q.base + 8 <= tmp.len()` for each quad, `out.len() >= 16`, and the CPU has SSSE3 (a
    /// `Token` exists).
    #[inline(always)]
    pub(super) unsafe fn filter16(tmp: &[u16], quads: &[Quad; 4], out: &mut [u8]) {
        // SAFETY: the caller's guarantees are `filter16_ssse3`'s.
        unsafe { filter16_ssse3(tmp, quads, out) }
    }

    /// # Safety
    /// As [`filter16`].
    #[target_feature(enable = "ssse3")]
    unsafe fn filter16_ssse3(tmp: &[u16], quads: &[Quad; 4], out: &mut [u8]) {
        let bias = _mm_set1_epi16(i16::MIN);
        let add = _mm_set1_epi32(UNBIAS_AND_ROUND);
        let mut r = [add; 4];
        for (q, r) in quads.iter().zip(&mut r) {
            // SAFETY: `tmp[q.base..q.base + 8]` is in bounds (the caller's guarantee), and
            // `q.shuffle` and `q.w` are 16 bytes each; loadu has no alignment requirement.
            let (v, m, w) = unsafe {
                (
                    _mm_loadu_si128(tmp.as_ptr().add(q.base).cast()),
                    _mm_loadu_si128(q.shuffle.as_ptr().cast()),
                    _mm_loadu_si128(q.w.as_ptr().cast()),
                )
            };
            let p = _mm_xor_si128(_mm_shuffle_epi8(v, m), bias);
            *r = _mm_srli_epi32(_mm_add_epi32(_mm_madd_epi16(p, w), add), 16);
        }
        // Every value is 0..=255, so the signed saturating packs are exact.
        let bytes = _mm_packus_epi16(_mm_packs_epi32(r[0], r[1]), _mm_packs_epi32(r[2], r[3]));
        // SAFETY: `out` has at least 16 bytes (the caller's guarantee); storeu has no
        // alignment requirement.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) }
    }

    /// Natively the compiler vectorises the scalar loop well; nothing done here.
    #[inline(always)]
    pub(super) fn vertical32(_: &[u8], _: &[u8], _: u16, _: u16, _: &mut [u16]) -> usize {
        0
    }
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
mod imp {
    use super::Quad;

    pub(super) fn available() -> bool {
        false
    }

    /// # Safety
    /// Nothing to uphold: never called (no `Token` exists on this target).
    pub(super) unsafe fn filter16(_: &[u16], _: &[Quad; 4], _: &mut [u8]) {}

    pub(super) fn vertical32(_: &[u8], _: &[u8], _: u16, _: u16, _: &mut [u16]) -> usize {
        0
    }
}
