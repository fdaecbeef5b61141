//! Multi-head scaled dot-product attention (Vaswani et al. 2017, arXiv:1706.03762), as PyTorch's
//! `nn.MultiheadAttention` computes it between its input and output projections (no mask, no
//! dropout), for DDColor's colour decoder (Kang et al., ICCV 2023;
//! `../shared/reference/ddcolor.md` §3.3):
//!
//! ```text
//! per batch item and head h (channels h·d .. (h+1)·d, d = C / heads):
//!   S = Q_h K_hᵀ / sqrt(d)   [Nq, Nk];   P = softmax over keys (rows of S);   O_h = P V_h
//! ```
//!
//! Both products run on the convolution micro-kernels (`taps = 1`, B rows `ldb` apart), as
//! [`crate::attention`] does: per batch item `K` is packed once, transposed and pre-scaled by
//! `1/sqrt(d)`, as `[C][Nk padded to nr]`, and `V` as `[Nk][C + nr]` (the `nr` zero columns let
//! the kernel's full-width loads of the last head stay inside). A task is one head and one tile
//! of `mr` query rows: it computes the tile's `mr x Nk` scores into its thread's buffer (never
//! more), takes `exp(s − max)` in place with a vectorised branchless `exp`, multiplies the
//! unnormalised rows by `V_h` (a kernel call of depth `Nk`), and scales the tile's `d` output
//! values of each row by `1 / Σ exp`.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::conv::{Dst, MAX_MR, Src, Tile, ZERO_BIAS, run_kernel};
use crate::isa::Isa;

/// Floats of planned scratch for one batch item with `keys` keys of `channels` channels:
/// `Kᵀ` as `[channels][keys padded to nr]` and `V` as `[keys][channels + nr]`; `None` when
/// that overflows `usize`.
pub(crate) fn scratch_len(isa: Isa, keys: usize, channels: usize) -> Option<usize> {
    let nr = isa.nr();
    let kp = keys.div_ceil(nr).checked_mul(nr)?;
    let kt = channels.checked_mul(kp)?;
    let vp = keys.checked_mul(channels.checked_add(nr)?)?;
    kt.checked_add(vp)
}

thread_local! {
    /// Each worker's tile of scores (`mr` rows of `Nk` padded), reused across calls.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `e^x` for `x ≤ 88`: Cody–Waite reduction `x = n·ln2 + r` (`|r| ≤ ln2/2`, `ln2` split in two
/// parts), Cephes' degree-7 polynomial for `e^r` (about 1 ulp), and `2^n` built from its bits.
/// Branchless; inputs below −87 give `e^−87` (≈ 1.6e-38) instead of smaller values or 0, which
/// a softmax (whose largest term is 1) cannot tell apart.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published
pub fn exp_fast(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5 · 2^23 (no SSE4.1 `round` needed).
    let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = x - n * 0.693_359_375 + n * 2.121_944_4e-4;
    let r2 = r * r;
    let p = (((((1.987_569_1e-4f32 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r
        + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1)
        * r2
        + r
        + 1.0;
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Partial-sum lanes of the row reductions (vectorisable: independent lanes).
const L: usize = 16;

/// `row[i] = exp(row[i] − max(row))` in place; returns `Σ row[i]`.
#[inline(always)]
fn exp_row(row: &mut [f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; L];
    let chunks = row.chunks_exact(L);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in m.iter_mut().zip(chunk) {
            *a = if v > *a { v } else { *a };
        }
    }
    for (a, &v) in m.iter_mut().zip(tail) {
        *a = if v > *a { v } else { *a };
    }
    let max = m.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    let mut s = [0f32; L];
    let mut chunks = row.chunks_exact_mut(L);
    for chunk in &mut chunks {
        for (a, v) in s.iter_mut().zip(chunk) {
            *v = exp_fast(*v - max);
            *a += *v;
        }
    }
    for (a, v) in s.iter_mut().zip(chunks.into_remainder()) {
        *v = exp_fast(*v - max);
        *a += *v;
    }
    s.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_row_avx512(row: &mut [f32]) -> f32 {
    exp_row(row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_row_avx2(row: &mut [f32]) -> f32 {
    exp_row(row)
}

/// [`exp_row`] compiled for `isa`'s vector width.
fn exp_row_isa(isa: Isa, row: &mut [f32]) -> f32 {
    match isa {
        // SAFETY: ops hold only available families (checked when the graph chose it).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { exp_row_avx512(row) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { exp_row_avx2(row) },
        _ => exp_row(row),
    }
}

/// A raw pointer the workers share (they read the packed operands after packing is done, and
/// each writes disjoint parts).
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: see above.
unsafe impl Send for Shared {}
// SAFETY: see above.
unsafe impl Sync for Shared {}

/// Runs multi-head attention.
///
/// # Safety
/// `q` addresses `[batch, nq, channels]` and `k`, `v` `[batch, nk, channels]` (views of the same
/// batch, `nk ≥ 1`, `channels = heads · d`); `dst` has room for `[batch, nq, channels]` and
/// overlaps none of them; `scratch` holds [`scratch_len`]`(isa, nk, channels)` writable floats
/// overlapping nothing else; `isa` is available.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn multi_head_attention(
    q: Src,
    k: Src,
    v: Src,
    dst: Dst,
    channels: usize,
    heads: usize,
    isa: Isa,
    scratch: *mut f32,
) {
    let (mr, nr) = (isa.mr(), isa.nr());
    let c = channels;
    let d = c / heads;
    let (nq, nk) = (q.height * q.width, k.height * k.width);
    let kp = nk.div_ceil(nr) * nr;
    let vs = c + nr;
    let scale = 1.0 / (d as f32).sqrt();
    let kt = Shared(scratch);
    // SAFETY: inside the scratch (`scratch_len`).
    let vp = Shared(unsafe { scratch.add(c * kp) });
    let tiles = nq.div_ceil(mr);
    for b in 0..q.batch {
        // 1. Pack Kᵀ (scaled) and V, in parallel over blocks of 16 keys (one cache line of
        //    each Kᵀ row per block).
        (0..nk.div_ceil(16)).into_par_iter().for_each(|blk| {
            let (kt, vp) = (kt, vp);
            let keys = blk * 16..(blk * 16 + 16).min(nk);
            // SAFETY: writes inside the scratch (keys < nk ≤ kp; channels < c); reads inside
            // the views; blocks write disjoint columns of Kᵀ and rows of V.
            unsafe {
                for j in keys.clone() {
                    let from = k.pixel(b * nk + j);
                    for ch in 0..c {
                        *kt.0.add(ch * kp + j) = *from.add(ch) * scale;
                    }
                }
                for j in keys {
                    let row = vp.0.add(j * vs);
                    std::ptr::copy_nonoverlapping(v.pixel(b * nk + j), row, c);
                    std::ptr::write_bytes(row.add(c), 0, nr);
                }
            }
        });
        for ch in 0..c {
            // SAFETY: the padding columns of row `ch`, inside the scratch.
            unsafe { std::ptr::write_bytes(kt.0.add(ch * kp + nk), 0, kp - nk) };
        }
        // 2. One task per (head, tile of query rows).
        (0..heads * tiles).into_par_iter().for_each(|task| {
            let (kt, vp) = (kt, vp);
            let (h, tile) = (task / tiles, task % tiles);
            let q0 = tile * mr;
            let valid_m = mr.min(nq - q0);
            ROWS.with(|rows| {
                let mut rows = rows.borrow_mut();
                rows.resize(mr * kp, 0.0);
                let p = rows.as_mut_ptr();
                let row = |m: usize| p.wrapping_add(m * kp);
                // Scores: rows past `valid_m` repeat the last query; they are never stored.
                let a: [*const f32; MAX_MR] =
                    std::array::from_fn(|m| q.pixel(b * nq + q0 + m.min(valid_m - 1)));
                let mut out = [std::ptr::null_mut::<f32>(); MAX_MR];
                for blk in 0..kp / nr {
                    for (m, o) in out.iter_mut().enumerate().take(mr) {
                        *o = row(m).wrapping_add(blk * nr);
                    }
                    let t = Tile {
                        a: &a[..mr],
                        taps: 1,
                        cin: d,
                        // SAFETY: rows h·d.. of Kᵀ, block `blk`, inside the scratch.
                        b: unsafe { kt.0.add(h * d * kp + blk * nr) },
                        ldb: kp,
                        a_offset: h * d,
                        bias: ZERO_BIAS.as_ptr(),
                        out: &out,
                        res: None,
                        valid_m,
                        valid_n: nr,
                        relu: false,
                    };
                    // SAFETY: the query pixels hold channels h·d..h·d+d; the panel rows are
                    // `nr` wide inside Kᵀ; the outputs inside the thread's buffer.
                    unsafe { run_kernel(isa, &t) };
                }
                // Softmax numerators in place, and each row's sum.
                let mut inv = [0f32; MAX_MR];
                for (m, i) in inv.iter_mut().enumerate().take(valid_m) {
                    // SAFETY: row m of the buffer, through `p` only.
                    let r = unsafe { std::slice::from_raw_parts_mut(row(m), nk) };
                    *i = 1.0 / exp_row_isa(isa, r);
                }
                // O_h = P V_h, then each row scaled by 1 / Σ.
                let a: [*const f32; MAX_MR] =
                    std::array::from_fn(|m| row(m.min(valid_m - 1)) as *const f32);
                for blk in 0..d.div_ceil(nr) {
                    for (m, o) in out.iter_mut().enumerate().take(valid_m) {
                        *o = dst.pixel(b * nq + q0 + m).wrapping_add(h * d + blk * nr);
                    }
                    let t = Tile {
                        a: &a[..mr],
                        taps: 1,
                        cin: nk,
                        // SAFETY: column h·d + blk·nr of the packed V; its `nr`-wide rows end
                        // by column c + nr.
                        b: unsafe { vp.0.add(h * d + blk * nr) },
                        ldb: vs,
                        a_offset: 0,
                        bias: ZERO_BIAS.as_ptr(),
                        out: &out,
                        res: None,
                        valid_m,
                        valid_n: nr.min(d - blk * nr),
                        relu: false,
                    };
                    // SAFETY: as above; outputs are this head's channels of this tile's rows,
                    // which no other task writes.
                    unsafe { run_kernel(isa, &t) };
                }
                for (m, &i) in inv.iter().enumerate().take(valid_m) {
                    // SAFETY: this task's output values (head h of row q0 + m).
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.pixel(b * nq + q0 + m).wrapping_add(h * d),
                            d,
                        )
                    };
                    o.iter_mut().for_each(|x| *x *= i);
                }
            });
        });
    }
}
