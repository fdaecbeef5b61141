//! Layer norm over the channels of each pixel (Ba, Kiros & Hinton 2016, arXiv:1607.06450):
//! PyTorch `nn.LayerNorm(C)` over the last dim of NHWC, which is also ConvNeXt's
//! "channels-first" LayerNorm (Liu et al. 2022, arXiv:2201.03545) on NCHW, and the post-norm of
//! DDColor's colour decoder (`../shared/reference/ddcolor.md` §3.1, §3.3):
//!
//! ```text
//! mean = Σ_c x[c] / C;   var = Σ_c (x[c] − mean)² / C        (biased)
//! y[c] = (x[c] − mean) / sqrt(var + eps) · weight[c] + bias[c]
//! ```
//!
//! Mean and variance are two passes in f32 over 16 interleaved partial sums (so the loops
//! vectorise and each partial sum adds only `C/16` terms), compiled for the CPU's vector width;
//! pixels run in parallel.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;
use crate::isa::Isa;

/// The layer-norm op of a graph.
#[derive(Debug)]
pub(crate) struct LayerNorm {
    pub x: [Value; 1],
    /// One factor per channel.
    pub weight: Vec<f32>,
    /// One offset per channel.
    pub bias: Vec<f32>,
    pub eps: f32,
    pub isa: Isa,
}

/// Lanes of the partial sums.
const L: usize = 16;

#[inline(always)]
fn sum16(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; L];
    let chunks = values.chunks_exact(L);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += f(v);
    }
    acc.iter().sum()
}

/// One pixel: `to = (from − mean) / sqrt(var + eps) · weight + bias`.
#[inline(always)]
fn normalise(from: &[f32], to: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = from.len() as f32;
    let mean = sum16(from, |v| v) / n;
    let var = sum16(from, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((y, &x), &w), &b) in to.iter_mut().zip(from).zip(weight).zip(bias) {
        *y = (x - mean) * inv * w + b;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn normalise_avx512(from: &[f32], to: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    normalise(from, to, weight, bias, eps)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn normalise_avx2(from: &[f32], to: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    normalise(from, to, weight, bias, eps)
}

impl Node for LayerNorm {
    fn inputs(&self) -> &[Value] {
        &self.x
    }

    fn channels(&self) -> usize {
        self.weight.len()
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok(shape(self.x[0]))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c) = (io.out, self.weight.len());
        let pixels = io.batch * io.height * io.width;
        let (w, b, eps, isa) = (&self.weight[..], &self.bias[..], self.eps, self.isa);
        (0..pixels).into_par_iter().with_min_len(64).for_each(|p| {
            // SAFETY: pixel `p` is inside both views (the plan's contract); every task writes
            // its own output pixel, and the output overlaps nothing the op reads.
            let (from, to) = unsafe {
                (
                    std::slice::from_raw_parts(src.pixel(p), c),
                    std::slice::from_raw_parts_mut(out.pixel(p), c),
                )
            };
            match isa {
                // SAFETY: the op was built with an available family (`Isa::detect`).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { normalise_avx512(from, to, w, b, eps) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { normalise_avx2(from, to, w, b, eps) },
                _ => normalise(from, to, w, b, eps),
            }
        });
    }

    fn name(&self) -> String {
        "layer_norm".to_string()
    }

    fn flop(&self, batch: usize, height: usize, width: usize) -> f64 {
        7.0 * (batch * height * width * self.weight.len()) as f64
    }
}
