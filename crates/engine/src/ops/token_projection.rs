//! DDColor's query-map projection, fused (Kang et al., ICCV 2023;
//! `../shared/reference/ddcolor.md` §3.3–3.4): the einsum `"bqc,bchw->bqhw"` of `N` colour
//! embeddings with the pixel decoder's `C`-channel map makes `N` query maps, and the refine
//! head's 1x1 convolution mixes them into `outputs` channels. Both are linear, so per batch item
//! the op first mixes the tokens, `W[o][c] = Σ_n mix[o][n] · tokens[n][c]` (`outputs x C`, tiny),
//! then takes one dot product of length `C` per pixel and output — never materialising the
//! `N`-channel query maps (100 channels at full resolution in DDColor).
//!
//! With `group = s > 1` the map's channels are `C · s` interleaved as `c · s + k` (the input of
//! a pixel shuffle by `√s`): output `o · s + k` is `Σ_c W[o][c] · x[c · s + k]`, which is the
//! projection of the shuffled map taken before the shuffle. DDColor runs its projection there,
//! at a sixteenth of the pixels, and shuffles and blurs the 2-channel result instead of the
//! `C`-channel map (both are linear and the same at every pixel).

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;
use crate::isa::Isa;

/// The token-projection op of a graph.
#[derive(Debug)]
pub(crate) struct TokenProjection {
    /// `[x, tokens]` or `[x, tokens, residual]`.
    pub inputs: Vec<Value>,
    /// Channels of `tokens` (`x` has `in_channels · group`).
    pub in_channels: usize,
    pub outputs: usize,
    /// Interleaved sub-pixels per channel of `x` (1: a plain projection).
    pub group: usize,
    /// `[outputs, N]` row-major.
    pub mix: Vec<f32>,
    pub isa: Isa,
}

/// Partial-sum lanes of the dot products.
const L: usize = 16;

/// Largest `group` of [`row_grouped`] (its accumulators live on the stack).
pub(crate) const MAX_GROUP: usize = 64;

/// What every row of one batch item reads and writes.
struct Rows<'a> {
    x: crate::conv::Src,
    out: crate::conv::Dst,
    res: Option<crate::conv::Src>,
    /// This batch item's `W`, `[outputs][c]`.
    w: &'a [f32],
    outputs: usize,
    group: usize,
}

/// One row of `width` pixels: `out[p][o] = x[p] · w[o] (+ res[p][o])`.
///
/// # Safety
/// The views address the row's pixels (`x`: `w.len() / outputs` channels; `out`, `res`:
/// `outputs`); `out` overlaps neither.
#[inline(always)]
unsafe fn row(r: &Rows<'_>, pixels: std::ops::Range<usize>) {
    let (w, outputs) = (r.w, r.outputs);
    let c = w.len() / outputs;
    for p in pixels {
        // SAFETY: the caller's contract.
        let px = unsafe { std::slice::from_raw_parts(r.x.pixel(p), c) };
        for o in 0..outputs {
            let wo = &w[o * c..][..c];
            let mut acc = [0f32; L];
            let (xc, wc) = (px.chunks_exact(L), wo.chunks_exact(L));
            let (xt, wt) = (xc.remainder(), wc.remainder());
            for (a, b) in xc.zip(wc) {
                for ((s, &u), &v) in acc.iter_mut().zip(a).zip(b) {
                    *s += u * v;
                }
            }
            for ((s, &u), &v) in acc.iter_mut().zip(xt).zip(wt) {
                *s += u * v;
            }
            let mut y: f32 = acc.iter().sum();
            if let Some(res) = &r.res {
                // SAFETY: the caller's contract.
                y += unsafe { *res.pixel(p).add(o) };
            }
            // SAFETY: the caller's contract.
            unsafe { *r.out.pixel(p).add(o) = y };
        }
    }
}

/// One row of `width` pixels of the grouped form: `out[p][o·s + k] = Σ_c w[o][c] · x[p][c·s + k]
/// (+ res[p][o·s + k])`, the `s` sub-pixels of a channel summed as one vector.
///
/// # Safety
/// As [`row`], with `x` holding `w.len() / outputs · group` channels and `out`, `res`
/// `outputs · group`; `group <= MAX_GROUP`.
#[inline(always)]
unsafe fn row_grouped(r: &Rows<'_>, pixels: std::ops::Range<usize>) {
    let (w, outputs, s) = (r.w, r.outputs, r.group);
    let c = w.len() / outputs;
    for p in pixels {
        // SAFETY: the caller's contract.
        let px = unsafe { std::slice::from_raw_parts(r.x.pixel(p), c * s) };
        // SAFETY: the caller's contract.
        let o_px = unsafe { std::slice::from_raw_parts_mut(r.out.pixel(p), outputs * s) };
        for o in 0..outputs {
            let wo = &w[o * c..][..c];
            let mut acc = [0f32; MAX_GROUP];
            let acc = &mut acc[..s];
            for (&wc, xs) in wo.iter().zip(px.chunks_exact(s)) {
                for (a, &v) in acc.iter_mut().zip(xs) {
                    *a += wc * v;
                }
            }
            let dst = &mut o_px[o * s..][..s];
            dst.copy_from_slice(acc);
            if let Some(res) = &r.res {
                // SAFETY: the caller's contract.
                let res = unsafe { std::slice::from_raw_parts(res.pixel(p).add(o * s), s) };
                dst.iter_mut().zip(res).for_each(|(d, &v)| *d += v);
            }
        }
    }
}

/// [`row`] or [`row_grouped`] for `r.group`.
///
/// # Safety
/// As those.
#[inline(always)]
unsafe fn any_row(r: &Rows<'_>, pixels: std::ops::Range<usize>) {
    // SAFETY: forwarded.
    unsafe {
        if r.group == 1 {
            row(r, pixels)
        } else {
            row_grouped(r, pixels)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_avx512(r: &Rows<'_>, pixels: std::ops::Range<usize>) {
    // SAFETY: forwarded.
    unsafe { any_row(r, pixels) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_avx2(r: &Rows<'_>, pixels: std::ops::Range<usize>) {
    // SAFETY: forwarded.
    unsafe { any_row(r, pixels) }
}

impl Node for TokenProjection {
    fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    fn channels(&self) -> usize {
        self.outputs * self.group
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        let x = shape(self.inputs[0]);
        let (th, tw) = shape(self.inputs[1]);
        let n = th.saturating_mul(tw);
        if self.mix.len() != self.outputs.saturating_mul(n) {
            return Err(ShapeError::Mismatch(format!(
                "token projection: {} mixing weights for {} outputs of {n} tokens ({th}x{tw})",
                self.mix.len(),
                self.outputs
            )));
        }
        if let Some(&r) = self.inputs.get(2)
            && shape(r) != x
        {
            return Err(ShapeError::Mismatch(format!(
                "token projection: residual of size {:?}, map of size {x:?}",
                shape(r)
            )));
        }
        Ok(x)
    }

    fn scratch_len(
        &self,
        batch: usize,
        _height: usize,
        _width: usize,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Option<usize> {
        batch
            .checked_mul(self.outputs)?
            .checked_mul(self.in_channels)
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let x = (io.src)(self.inputs[0]);
        let tokens = (io.src)(self.inputs[1]);
        let res = self.inputs.get(2).map(|&r| (io.src)(r));
        let (c, outputs, group, out) = (self.in_channels, self.outputs, self.group, io.out);
        let n = tokens.height * tokens.width;
        let oc = outputs * c;
        // SAFETY: the scratch holds `batch · outputs · c` floats (`scratch_len`), overlapping
        // no value.
        let w_all = unsafe { std::slice::from_raw_parts_mut(io.scratch, io.batch * oc) };
        // 1. W_b = mix · tokens_b (N · C · outputs multiply-adds: tiny), one row per task.
        w_all
            .par_chunks_mut(c)
            .enumerate()
            .for_each(|(row_index, w_row)| {
                let (b, o) = (row_index / outputs, row_index % outputs);
                w_row.fill(0.0);
                for t in 0..n {
                    let m = self.mix[o * n + t];
                    // SAFETY: token `t` of item `b` is inside the view (the plan's contract).
                    let tok = unsafe { std::slice::from_raw_parts(tokens.pixel(b * n + t), c) };
                    for (a, &v) in w_row.iter_mut().zip(tok) {
                        *a += m * v;
                    }
                }
            });
        let w_all = &*w_all;
        // 2. One dot product per pixel and output, rows in parallel.
        let (h, wd, isa) = (io.height, io.width, self.isa);
        (0..io.batch * h).into_par_iter().for_each(|r| {
            let rows = Rows {
                x,
                out,
                res,
                w: &w_all[(r / h) * oc..][..oc],
                outputs,
                group,
            };
            let pixels = r * wd..(r + 1) * wd;
            // SAFETY: the row's pixels are inside every view (the plan's contract); rows are
            // disjoint; the op was built with an available family.
            unsafe {
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx512 => row_avx512(&rows, pixels),
                    #[cfg(target_arch = "x86_64")]
                    Isa::Avx2 => row_avx2(&rows, pixels),
                    _ => any_row(&rows, pixels),
                }
            }
        });
    }

    fn name(&self) -> String {
        "token_projection".to_string()
    }

    fn flop(&self, batch: usize, height: usize, width: usize) -> f64 {
        2.0 * (batch * height * width * self.outputs * self.in_channels * self.group) as f64
    }
}
