//! Element-wise sum of two values of the same shape: a residual connection whose activation
//! comes before the add (fastai's `res_block`: `x + relu(conv(relu(conv(x))))`), which a
//! convolution's epilogue (residual, then activation) cannot express.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The add op of a graph: `xs[0] + xs[1]`.
#[derive(Debug)]
pub(crate) struct Add {
    pub xs: [Value; 2],
    pub channels: usize,
}

impl Node for Add {
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
        let (a, b) = (shape(self.xs[0]), shape(self.xs[1]));
        if a != b {
            return Err(ShapeError::Mismatch(format!(
                "cannot add values of sizes {a:?} and {b:?}"
            )));
        }
        Ok(a)
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let (a, b) = ((io.src)(self.xs[0]), (io.src)(self.xs[1]));
        let (out, c) = (io.out, self.channels);
        let pixels = io.batch * io.height * io.width;
        (0..pixels).into_par_iter().with_min_len(256).for_each(|p| {
            // SAFETY: pixel `p` is inside every view (the plan's contract); each task writes
            // its own output pixel, and the output overlaps nothing the op reads.
            let (x, y, to) = unsafe {
                (
                    std::slice::from_raw_parts(a.pixel(p), c),
                    std::slice::from_raw_parts(b.pixel(p), c),
                    std::slice::from_raw_parts_mut(out.pixel(p), c),
                )
            };
            for ((o, x), y) in to.iter_mut().zip(x).zip(y) {
                *o = x + y;
            }
        });
    }

    fn name(&self) -> String {
        "add".to_string()
    }
}
