//! A per-channel affine map over NHWC views, `y[p, c] = act(x[p, c] · scale[c] + shift[c])`.
//!
//! Batch norm in inference form is such a map. Where it follows a convolution it is folded into
//! the convolution's weights ([`crate::fold`]); where it follows a ReLU and precedes a padded
//! convolution (Zhang et al. 2016's eccv16 ends every block with ReLU then BN; DeOldify's decoder
//! convolutions are conv → ReLU → BN), folding it into the next convolution would be wrong at the
//! borders (the padding would hold `shift`, not 0), so it runs as this op. A following ReLU (a
//! free-standing BN + ReLU, as DeOldify's after its encoder) or sigmoid runs in the same pass.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::conv::{Activation, activate_slice};
use crate::graph::Value;
use crate::isa::Isa;

/// The affine op of a graph.
#[derive(Debug)]
pub(crate) struct Affine {
    pub x: [Value; 1],
    /// One factor per channel.
    pub scale: Vec<f32>,
    /// One offset per channel.
    pub shift: Vec<f32>,
    /// Applied after the map.
    pub activation: Activation,
}

impl Node for Affine {
    fn inputs(&self) -> &[Value] {
        &self.x
    }

    fn channels(&self) -> usize {
        self.scale.len()
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok(shape(self.x[0]))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c) = (io.out, self.scale.len());
        let pixels = io.batch * io.height * io.width;
        let isa = Isa::detect();
        (0..pixels).into_par_iter().with_min_len(256).for_each(|p| {
            // SAFETY: pixel `p` is inside both views (the plan's contract); every task writes
            // its own output pixel, and the output overlaps nothing the op reads.
            let (from, to) = unsafe {
                (
                    std::slice::from_raw_parts(src.pixel(p), c),
                    std::slice::from_raw_parts_mut(out.pixel(p), c),
                )
            };
            for (((y, x), s), t) in to.iter_mut().zip(from).zip(&self.scale).zip(&self.shift) {
                *y = x * s + t;
            }
            activate_slice(isa, self.activation, to);
        });
    }

    fn name(&self) -> String {
        "affine".to_string()
    }

    fn flop(&self, batch: usize, height: usize, width: usize) -> f64 {
        2.0 * (batch * height * width * self.scale.len()) as f64
    }
}
