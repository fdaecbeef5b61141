//! A self-attention node: SAGAN's attention (Zhang et al. 2018, arXiv:1805.08318; fastai v1's
//! `SelfAttention`) over the outputs of its three 1x1 projections, which the graph adds as
//! ordinary convolution nodes. The kernel is [`crate::attention`].

use super::{Io, Node, ShapeError};
use crate::attention::{scratch_len, self_attention};
use crate::graph::Value;
use crate::isa::Isa;

/// The attention op of a graph: `x + Σ_i softmax_i(f_i · g_j) h_i` (γ already folded into `h`).
#[derive(Debug)]
pub(crate) struct Attention {
    /// `[f, g, h, x]`: query and key projections (`key_channels`), the scaled value projection
    /// and the input (`channels`).
    pub inputs: [Value; 4],
    pub key_channels: usize,
    pub channels: usize,
    pub isa: Isa,
}

impl Node for Attention {
    fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok(shape(self.inputs[3]))
    }

    fn scratch_len(
        &self,
        _batch: usize,
        height: usize,
        width: usize,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Option<usize> {
        scratch_len(
            self.isa,
            height.checked_mul(width)?,
            self.key_channels,
            self.channels,
        )
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let [f, g, h, x] = self.inputs.map(io.src);
        // SAFETY: the views and the scratch come from the plan (`Node::run`'s contract), the
        // scratch sized by `scratch_len`.
        unsafe {
            self_attention(
                f,
                g,
                h,
                x,
                io.out,
                self.key_channels,
                self.channels,
                self.isa,
                io.scratch,
            )
        }
    }

    fn name(&self) -> String {
        "self_attention".to_string()
    }

    fn flop(&self, batch: usize, height: usize, width: usize) -> f64 {
        let pixels = height * width;
        2.0 * (batch * pixels * pixels * (self.key_channels + self.channels)) as f64
    }
}
