//! Concatenation along channels (PyTorch `torch.cat(dim=1)`), planned as views: every part is
//! computed straight into its channel slice of the concatenation's buffer (pixel stride = the
//! total channel count), so the op itself does nothing at run time. The aliasing lives in the
//! planner ([`crate::graph`]), which alone knows where values are placed.

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// A concatenation op of a graph.
#[derive(Debug)]
pub(crate) struct Concat {
    /// The parts, in channel order.
    pub xs: Vec<Value>,
    /// The sum of their channels.
    pub channels: usize,
}

impl Node for Concat {
    fn inputs(&self) -> &[Value] {
        &self.xs
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        let s = self.xs.first().map_or((0, 0), |&x| shape(x));
        if self.xs.iter().any(|&x| shape(x) != s) {
            return Err(ShapeError::Mismatch(format!(
                "concatenated values differ in size: {:?}",
                self.xs.iter().map(|&x| shape(x)).collect::<Vec<_>>()
            )));
        }
        Ok(s)
    }

    /// Nothing to do: the parts were written into their slices.
    unsafe fn run(&self, _io: &Io<'_>) {}

    fn name(&self) -> String {
        "concat".to_string()
    }

    fn is_concat(&self) -> bool {
        true
    }
}
