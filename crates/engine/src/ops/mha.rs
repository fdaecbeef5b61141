//! The multi-head attention op: `softmax(Q_h K_hᵀ / sqrt(d)) V_h` per head over already
//! projected query, key and value maps (the projections are ordinary 1x1 convolutions of the
//! graph). The kernel is [`crate::mha`].

use super::{Io, Node, ShapeError};
use crate::graph::Value;
use crate::isa::Isa;
use crate::mha::multi_head_attention;

/// The multi-head attention op of a graph.
#[derive(Debug)]
pub(crate) struct MultiHeadAttention {
    /// `[q, k, v]`, all of `channels` channels; `k` and `v` of the same size.
    pub inputs: [Value; 3],
    pub channels: usize,
    pub heads: usize,
    pub isa: Isa,
}

impl Node for MultiHeadAttention {
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
        let [q, k, v] = self.inputs.map(shape);
        if k != v {
            return Err(ShapeError::Mismatch(format!(
                "attention: keys of size {k:?} and values of size {v:?} differ"
            )));
        }
        Ok(q)
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let [q, k, v] = self.inputs.map(io.src);
        // SAFETY: the views come from the plan (`Node::run`'s contract); `k` and `v` have the
        // same size (`output_shape`).
        unsafe { multi_head_attention(q, k, v, io.out, self.channels, self.heads, self.isa) }
    }

    fn name(&self) -> String {
        "multi_head_attention".to_string()
    }
}
