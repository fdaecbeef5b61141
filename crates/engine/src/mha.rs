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
//! [`crate::attention`] does. A task is one head and a group of `mr`-row query tiles (all of
//! them unless there are fewer heads than threads to keep busy). It walks the keys in chunks of
//! [`KEY_CHUNK`]: it packs the chunk's `K_h`, transposed and pre-scaled by `1/sqrt(d)`, as
//! `[d][chunk]`, and its `V_h` as `[chunk][d padded to nr]` (the zero columns let the kernel's
//! full-width loads stay inside), both small enough to stay in cache while every tile of the
//! group uses them. So each head reads its keys and values once, and no `[C][Nk]` transpose
//! (strided over as many pages as channels) is ever written. Per chunk and tile it computes the
//! `mr x chunk` scores, takes `exp(s − m)` in place with a vectorised branchless `exp` against
//! the row's running max `m`, rescales the row's output so far and its running sum when `m`
//! grew (the online softmax of Milakov & Gimelshein 2018, arXiv:1805.02867, as FlashAttention,
//! Dao et al. 2022, uses it), and adds the unnormalised `P V_h` (a kernel call of depth
//! `chunk`). The rows are divided by their sums at the end.

use rayon::prelude::*;

use crate::conv::{Dst, MAX_MR, Src, Tile, ZERO_BIAS, run_kernel};
use crate::isa::Isa;

/// Keys per chunk: a chunk's packed `K_h` and `V_h` (`d x 256` floats each, 32 KiB at d = 32)
/// and a tile's scores stay in L2 while the chunk is used. A multiple of every family's `nr`.
pub(crate) const KEY_CHUNK: usize = 256;

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

/// `row[i] = exp(row[i] − m)` in place, where `m = max(prev, max(row))`; returns `(m, Σ row[i])`.
#[inline(always)]
fn exp_row(row: &mut [f32], prev: f32) -> (f32, f32) {
    let mut m = [prev; L];
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
    (max, s.iter().sum())
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp_row_avx512(row: &mut [f32], prev: f32) -> (f32, f32) {
    exp_row(row, prev)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_row_avx2(row: &mut [f32], prev: f32) -> (f32, f32) {
    exp_row(row, prev)
}

/// [`exp_row`] compiled for `isa`'s vector width.
fn exp_row_isa(isa: Isa, row: &mut [f32], prev: f32) -> (f32, f32) {
    match isa {
        // SAFETY: ops hold only available families (checked when the graph chose it).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { exp_row_avx512(row, prev) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { exp_row_avx2(row, prev) },
        _ => exp_row(row, prev),
    }
}

/// The `d` output values of head `h` at pixel `p` of `dst`.
///
/// # Safety
/// `p` is a pixel of `dst` with at least `(h + 1) · d` channels, whose values of head `h` no one
/// else accesses while the slice lives.
#[allow(clippy::mut_from_ref)] // `Dst` is a raw view; the caller owns these values
unsafe fn head_values<'a>(dst: Dst, p: usize, h: usize, d: usize) -> &'a mut [f32] {
    // SAFETY: forwarded from the caller.
    unsafe { std::slice::from_raw_parts_mut(dst.pixel(p).wrapping_add(h * d), d) }
}

/// Runs multi-head attention.
///
/// # Safety
/// `q` addresses `[batch, nq, channels]` and `k`, `v` `[batch, nk, channels]` (views of the same
/// batch, `nk ≥ 1`, `channels = heads · d`); `dst` has room for `[batch, nq, channels]` and
/// overlaps none of them; `isa` is available.
pub(crate) unsafe fn multi_head_attention(
    q: Src,
    k: Src,
    v: Src,
    dst: Dst,
    channels: usize,
    heads: usize,
    isa: Isa,
) {
    let (mr, nr) = (isa.mr(), isa.nr());
    let d = channels / heads;
    let dp = d.div_ceil(nr) * nr;
    let (nq, nk) = (q.height * q.width, k.height * k.width);
    let scale = 1.0 / (d as f32).sqrt();
    let tiles = nq.div_ceil(mr);
    // One task per head, so that each head's keys and values are read once; more (groups of
    // query tiles) when there are too few heads for the threads.
    let groups = tiles.min((2 * rayon::current_num_threads()).div_ceil(heads));
    let per_group = tiles.div_ceil(groups);
    let groups = tiles.div_ceil(per_group);
    (0..q.batch * heads * groups)
        .into_par_iter()
        .for_each(|task| {
            let (b, h, group) = (
                task / (heads * groups),
                task / groups % heads,
                task % groups,
            );
            let tiles = group * per_group..((group + 1) * per_group).min(tiles);
            let first_row = tiles.start * mr;
            let rows = (tiles.end * mr).min(nq) - first_row;
            // Per query row of the group: the running max and the running Σ exp.
            let mut max = vec![f32::NEG_INFINITY; rows];
            let mut sum = vec![0f32; rows];
            let mut kt = vec![0f32; d * KEY_CHUNK];
            let mut vp = vec![0f32; KEY_CHUNK * dp];
            let mut scores = vec![0f32; mr * KEY_CHUNK];
            let p = scores.as_mut_ptr();
            let row = |m: usize| p.wrapping_add(m * KEY_CHUNK);
            for k0 in (0..nk).step_by(KEY_CHUNK) {
                let len = KEY_CHUNK.min(nk - k0);
                // Pack the chunk. Columns of `kt` past `len` keep the previous chunk's keys
                // (or zeros): their scores are computed but never read.
                for j in 0..len {
                    let pixel = b * nk + k0 + j;
                    // SAFETY: pixels of the views, channels h·d..h·d+d of `channels`.
                    let (kj, vj) = unsafe {
                        (
                            std::slice::from_raw_parts(k.pixel(pixel).add(h * d), d),
                            std::slice::from_raw_parts(v.pixel(pixel).add(h * d), d),
                        )
                    };
                    for (ch, &x) in kj.iter().enumerate() {
                        kt[ch * KEY_CHUNK + j] = x * scale;
                    }
                    vp[j * dp..j * dp + d].copy_from_slice(vj);
                }
                for tile in tiles.clone() {
                    let q0 = tile * mr;
                    let valid_m = mr.min(nq - q0);
                    // Scores: rows past `valid_m` repeat the last query; they are never stored.
                    let a: [*const f32; MAX_MR] =
                        std::array::from_fn(|m| q.pixel(b * nq + q0 + m.min(valid_m - 1)));
                    let mut out = [std::ptr::null_mut::<f32>(); MAX_MR];
                    for blk in 0..len.div_ceil(nr) {
                        for (m, o) in out.iter_mut().enumerate().take(mr) {
                            *o = row(m).wrapping_add(blk * nr);
                        }
                        let t = Tile {
                            a: &a[..mr],
                            taps: 1,
                            cin: d,
                            b: kt[blk * nr..].as_ptr(),
                            ldb: KEY_CHUNK,
                            a_offset: h * d,
                            bias: ZERO_BIAS.as_ptr(),
                            out: &out,
                            res: None,
                            valid_m,
                            valid_n: nr,
                            relu: false,
                        };
                        // SAFETY: the query pixels hold channels h·d..h·d+d; the panel's `d`
                        // rows are `nr` wide inside `kt` (KEY_CHUNK is a multiple of nr); the
                        // outputs inside `scores`.
                        unsafe { run_kernel(isa, &t) };
                    }
                    // Softmax numerators against the new running max, in place; the output
                    // so far and its sum are rescaled to that max (online softmax).
                    let mut rescale = [1f32; MAX_MR];
                    for (m, f) in rescale.iter_mut().enumerate().take(valid_m) {
                        let r = q0 - first_row + m;
                        // SAFETY: row m of `scores`, through `p` only.
                        let s = unsafe { std::slice::from_raw_parts_mut(row(m), len) };
                        let (new_max, chunk_sum) = exp_row_isa(isa, s, max[r]);
                        if k0 > 0 {
                            *f = exp_fast(max[r] - new_max);
                        }
                        sum[r] = sum[r] * *f + chunk_sum;
                        max[r] = new_max;
                    }
                    if k0 > 0 {
                        for (m, &f) in rescale.iter().enumerate().take(valid_m) {
                            // SAFETY: this task's output values (head h of row q0 + m).
                            let o = unsafe { head_values(dst, b * nq + q0 + m, h, d) };
                            o.iter_mut().for_each(|x| *x *= f);
                        }
                    }
                    // O_h (+)= P V_h over the chunk's keys.
                    let a: [*const f32; MAX_MR] =
                        std::array::from_fn(|m| row(m.min(valid_m - 1)) as *const f32);
                    let mut res = [std::ptr::null::<f32>(); MAX_MR];
                    for blk in 0..d.div_ceil(nr) {
                        for m in 0..valid_m {
                            out[m] = dst.pixel(b * nq + q0 + m).wrapping_add(h * d + blk * nr);
                            res[m] = out[m];
                        }
                        let t = Tile {
                            a: &a[..mr],
                            taps: 1,
                            cin: len,
                            b: vp[blk * nr..].as_ptr(),
                            ldb: dp,
                            a_offset: 0,
                            bias: ZERO_BIAS.as_ptr(),
                            out: &out,
                            // The first chunk writes, later ones accumulate (the kernel reads
                            // each value before it writes it).
                            res: (k0 > 0).then_some(&res),
                            valid_m,
                            valid_n: nr.min(d - blk * nr),
                            relu: false,
                        };
                        // SAFETY: `len` rows of `nr` values inside `vp` (rows `dp` wide);
                        // outputs are this head's channels of this tile's rows, which no
                        // other task writes.
                        unsafe { run_kernel(isa, &t) };
                    }
                }
            }
            for (r, &s) in sum.iter().enumerate() {
                let inv = 1.0 / s;
                // SAFETY: this task's output values (head h of row first_row + r).
                let o = unsafe { head_values(dst, b * nq + first_row + r, h, d) };
                o.iter_mut().for_each(|x| *x *= inv);
            }
        });
}
