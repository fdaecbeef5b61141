//! A value of fixed size, the same in every batch item, whatever the graph's input size:
//! learned embeddings such as DDColor's 100 colour queries and their positional embeddings
//! (`query_feat`, `query_embed`, `[100, 256]`; `../shared/reference/ddcolor.md` §3.3), held as a
//! `1 x 100` map of 256 channels.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The constant op of a graph: `values` (`[height, width, channels]` row-major) copied into
/// every batch item.
#[derive(Debug)]
pub(crate) struct Constant {
    pub values: Vec<f32>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl Node for Constant {
    fn inputs(&self) -> &[Value] {
        &[]
    }

    fn channels(&self) -> usize {
        self.channels
    }

    /// Its own size, not derived from any value.
    fn output_shape(
        &self,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok((self.height, self.width))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let (out, c) = (io.out, self.channels);
        let per_item = self.height * self.width;
        (0..io.batch * per_item)
            .into_par_iter()
            .with_min_len(256)
            .for_each(|p| {
                let from = &self.values[(p % per_item) * c..][..c];
                // SAFETY: pixel `p` is inside the output view (the plan's contract); tasks
                // write disjoint pixels.
                unsafe { std::ptr::copy_nonoverlapping(from.as_ptr(), out.pixel(p), c) };
            });
    }

    fn name(&self) -> String {
        "constant".to_string()
    }
}
