//! Softmax over the channels of each pixel (PyTorch `Softmax(dim=1)` on NCHW): Zhang et al.
//! 2016's distribution over the 313 quantised ab bins.
//!
//! `y[p, c] = exp(x[p, c] − m) / Σ_k exp(x[p, k] − m)` with `m = max_k x[p, k]`, so large logits
//! cannot overflow.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The softmax op of a graph.
#[derive(Debug)]
pub(crate) struct Softmax {
    pub x: [Value; 1],
    pub channels: usize,
}

impl Node for Softmax {
    fn inputs(&self) -> &[Value] {
        &self.x
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok(shape(self.x[0]))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c) = (io.out, self.channels);
        let pixels = io.batch * io.height * io.width;
        (0..pixels).into_par_iter().with_min_len(16).for_each(|p| {
            // SAFETY: pixel `p` is inside both views (the plan's contract); every task writes
            // its own output pixel, and the output overlaps nothing the op reads.
            let (from, to) = unsafe {
                (
                    std::slice::from_raw_parts(src.pixel(p), c),
                    std::slice::from_raw_parts_mut(out.pixel(p), c),
                )
            };
            let max = from.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let mut sum = 0.0f32;
            for (y, &x) in to.iter_mut().zip(from) {
                *y = (x - max).exp();
                sum += *y;
            }
            let inv = 1.0 / sum;
            for y in to.iter_mut() {
                *y *= inv;
            }
        });
    }

    fn name(&self) -> String {
        "softmax".to_string()
    }
}
