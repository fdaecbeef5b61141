//! A convolution node: a [`PackedConv`] (the indirect implicit GEMM of Dukhan,
//! arXiv:1907.02129, or the depthwise loop, both in [`crate::conv`]) reading one value, with an
//! optional residual value added in its epilogue before the activation (ResNet's `out + x`, He
//! et al. 2015, arXiv:1512.03385).

use super::{Io, Node, ShapeError};
use crate::conv::PackedConv;
use crate::graph::Value;

/// A convolution op of a graph.
#[derive(Debug)]
pub(crate) struct Conv {
    pub conv: PackedConv,
    /// `[x]`, or `[x, residual]`.
    pub inputs: Vec<Value>,
}

impl Conv {
    /// The convolution of `x`, plus `residual` if given.
    pub(crate) fn new(x: Value, conv: PackedConv, residual: Option<Value>) -> Self {
        Self {
            conv,
            inputs: std::iter::once(x).chain(residual).collect(),
        }
    }
}

impl Node for Conv {
    fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    fn channels(&self) -> usize {
        self.conv.spec().out_channels
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        let (h, w) = shape(self.inputs[0]);
        let out = self
            .conv
            .spec()
            .output_size(h, w)
            .ok_or_else(|| ShapeError::TooSmall(self.conv.name().to_string()))?;
        if let Some(&r) = self.inputs.get(1)
            && shape(r) != out
        {
            return Err(ShapeError::Mismatch(format!(
                "{}: residual is {:?}, output {out:?}",
                self.conv.name(),
                shape(r)
            )));
        }
        Ok(out)
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let residual = self.inputs.get(1).map(|&r| (io.src)(r));
        // SAFETY: the views come from the plan (`Node::run`'s contract).
        unsafe {
            self.conv
                .run_views((io.src)(self.inputs[0]), io.out, residual)
        }
    }

    fn name(&self) -> String {
        self.conv.name().to_string()
    }

    fn flop(&self, batch: usize, height: usize, width: usize) -> f64 {
        2.0 * self.conv.spec().macs(batch * height * width) as f64
    }

    fn conv(&self) -> Option<&PackedConv> {
        Some(&self.conv)
    }
}
