//! Self-attention over the pixels of a feature map, as SAGAN (Zhang, Goodfellow, Metaxas & Odena
//! 2018, arXiv:1805.08318) and fastai v1's `SelfAttention`, which DeOldify's decoder uses
//! (`../shared/reference/deoldify.md` §3.5):
//!
//! ```text
//! f = Wq x, g = Wk x   [N, C/8];   h = γ · Wv x   [N, C]        (N = H·W, 1x1 convolutions)
//! out_j = x_j + Σ_i softmax_i(f_i · g_j) · h_i                   (softmax over i, fastai's dim=1)
//! ```
//!
//! Both matrix products run on the convolution micro-kernels (`taps = 1`, B rows `ldb` apart):
//! `S = G Fᵀ` for a tile of `mr` output positions, a softmax per row, then `out = P H + x`, with
//! the residual in the epilogue. Only one group of rows of the `N x N` attention matrix exists at a
//! time per thread (96 rows with AVX2), never the whole matrix.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::conv::{Dst, MAX_MR, Src, Tile, ZERO_BIAS, run_kernel};
use crate::isa::Isa;

/// Floats of planned scratch the op needs for `pixels` positions: `fᵀ` padded to `[C/8][Np]` and
/// `h` padded to `[N][Cp]`; `None` when that overflows `usize`.
pub(crate) fn scratch_len(
    isa: Isa,
    pixels: usize,
    key_channels: usize,
    channels: usize,
) -> Option<usize> {
    let nr = isa.nr();
    let keys = key_channels.checked_mul(pixels.div_ceil(nr).checked_mul(nr)?)?;
    let values = pixels.checked_mul(channels.div_ceil(nr).checked_mul(nr)?)?;
    keys.checked_add(values)
}

/// Tiles of output positions per task (96 rows with the AVX2 kernel).
const TILES_PER_GROUP: usize = 16;

/// Positions `i` per chunk of `h` in the second product (`128 · C` floats: 384 KiB at C = 768).
const K_CHUNK: usize = 128;

thread_local! {
    /// Each worker's rows of attention probabilities (one group of tiles), reused across calls.
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs the attention part (after the three 1x1 convolutions).
///
/// # Safety
/// `f`, `g` address `[batch, H, W, key_channels]`, `h`, `x` `[batch, H, W, channels]` (same
/// batch, H, W); `dst` has room for `[batch, H, W, channels]` and overlaps none of them;
/// `scratch` holds [`scratch_len`] writable floats; `isa` is available.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn self_attention(
    f: Src,
    g: Src,
    h: Src,
    x: Src,
    dst: Dst,
    key_channels: usize,
    channels: usize,
    isa: Isa,
    scratch: *mut f32,
) {
    let (mr, nr) = (isa.mr(), isa.nr());
    let n = f.height * f.width;
    let np = n.div_ceil(nr) * nr;
    let cp = channels.div_ceil(nr) * nr;
    #[derive(Clone, Copy)]
    struct Scratch(*mut f32);
    // SAFETY: workers only read the scratch after it is filled, before the next batch element.
    unsafe impl Send for Scratch {}
    // SAFETY: as above.
    unsafe impl Sync for Scratch {}
    let ft = Scratch(scratch);
    // SAFETY: inside the scratch (`scratch_len`).
    let hp = Scratch(unsafe { scratch.add(key_channels * np) });
    for b in 0..f.batch {
        // fᵀ as [key_channels][np] and h as [n][cp], zero-padded, so the kernels' full-width
        // loads stay inside the scratch.
        // SAFETY: writes stay inside the scratch; reads inside the views.
        unsafe {
            for k in 0..key_channels {
                let row = ft.0.add(k * np);
                for i in 0..n {
                    *row.add(i) = *f.pixel(b * n + i).add(k);
                }
                std::ptr::write_bytes(row.add(n), 0, np - n);
            }
            for i in 0..n {
                let row = hp.0.add(i * cp);
                std::ptr::copy_nonoverlapping(h.pixel(b * n + i), row, channels);
                std::ptr::write_bytes(row.add(channels), 0, cp - channels);
            }
        }
        // Work in groups of TILES_PER_GROUP tiles, so that each block of fᵀ and each chunk of h
        // is read once per group from L2 rather than once per tile from memory.
        let tiles = n.div_ceil(mr);
        let groups = tiles.div_ceil(TILES_PER_GROUP);
        (0..groups).into_par_iter().for_each(|group| {
            let (ft, hp) = (ft, hp);
            let tile_range = group * TILES_PER_GROUP..((group + 1) * TILES_PER_GROUP).min(tiles);
            ROWS.with(|rows| {
                let mut rows = rows.borrow_mut();
                rows.resize(TILES_PER_GROUP * mr * np, 0.0);
                let p = rows.as_mut_ptr();
                // Row pointers of tile `t` (relative to the group): rows past the end repeat the
                // last position or row; their results are never stored.
                let valid = |tile: usize| mr.min(n - tile * mr);
                let p_row = |local: usize, m: usize| -> *mut f32 {
                    // SAFETY: inside the thread's buffer.
                    unsafe { p.add((local * mr + m) * np) }
                };
                let mut out = [std::ptr::null_mut::<f32>(); MAX_MR];
                // 1. Scores S[j][i] = g_j · f_i, one block of nr positions i at a time.
                for blk in 0..np / nr {
                    for (local, tile) in tile_range.clone().enumerate() {
                        let valid_m = valid(tile);
                        let a: [*const f32; MAX_MR] = std::array::from_fn(|m| {
                            g.pixel(b * n + tile * mr + m.min(valid_m - 1))
                        });
                        for (m, o) in out.iter_mut().enumerate().take(mr) {
                            *o = p_row(local, m).wrapping_add(blk * nr);
                        }
                        let t = Tile {
                            a: &a[..mr],
                            taps: 1,
                            cin: key_channels,
                            // SAFETY: block inside the padded fᵀ.
                            b: unsafe { ft.0.add(blk * nr) },
                            ldb: np,
                            a_offset: 0,
                            bias: ZERO_BIAS.as_ptr(),
                            out: &out,
                            res: None,
                            valid_m,
                            valid_n: nr,
                            relu: false,
                        };
                        // SAFETY: the tile's pointers are valid as built above.
                        unsafe { run_kernel(isa, &t) };
                    }
                }
                // 2. Softmax over i of each row.
                for (local, tile) in tile_range.clone().enumerate() {
                    for m in 0..valid(tile) {
                        // SAFETY: row m of the buffer (through `p`, the one pointer used into it).
                        let row = unsafe { std::slice::from_raw_parts_mut(p_row(local, m), n) };
                        let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                        let mut sum = 0.0f32;
                        for v in row.iter_mut() {
                            *v = (*v - max).exp();
                            sum += *v;
                        }
                        let inv = 1.0 / sum;
                        row.iter_mut().for_each(|v| *v *= inv);
                    }
                }
                // 3. out_j = x_j + Σ_i P[j][i] h_i, over chunks of K_CHUNK positions i (the
                //    first chunk adds x, later ones add the output so far), nr channels at a time.
                let mut res = [std::ptr::null::<f32>(); MAX_MR];
                for k0 in (0..n).step_by(K_CHUNK) {
                    let kc = K_CHUNK.min(n - k0);
                    for (local, tile) in tile_range.clone().enumerate() {
                        let valid_m = valid(tile);
                        let a: [*const f32; MAX_MR] = std::array::from_fn(|m| {
                            p_row(local, m.min(mr - 1)).wrapping_add(k0) as *const f32
                        });
                        for blk in 0..cp / nr {
                            for m in 0..valid_m {
                                let j = b * n + tile * mr + m;
                                out[m] = dst.pixel(j).wrapping_add(blk * nr);
                                res[m] = if k0 == 0 {
                                    x.pixel(j).wrapping_add(blk * nr)
                                } else {
                                    out[m]
                                };
                            }
                            let t = Tile {
                                a: &a[..mr],
                                taps: 1,
                                cin: kc,
                                // SAFETY: chunk and block inside the padded h.
                                b: unsafe { hp.0.add(k0 * cp + blk * nr) },
                                ldb: cp,
                                a_offset: 0,
                                bias: ZERO_BIAS.as_ptr(),
                                out: &out,
                                res: Some(&res),
                                valid_m,
                                valid_n: nr.min(channels - blk * nr),
                                relu: false,
                            };
                            // SAFETY: the tile's pointers are valid as built above; the kernel
                            // reads each residual value before it stores that output value.
                            unsafe { run_kernel(isa, &t) };
                        }
                    }
                }
            });
        });
    }
}
