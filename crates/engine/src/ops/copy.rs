//! The graph's input op, and copies of a value (the input) into a concatenation's slice: the
//! only ops that move pixels unchanged.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The graph's input (node 0): copies the caller's tensor ([`Io::input`]) into the arena.
#[derive(Debug)]
pub(crate) struct Input {
    pub channels: usize,
}

impl Node for Input {
    fn inputs(&self) -> &[Value] {
        &[]
    }

    fn channels(&self) -> usize {
        self.channels
    }

    /// Never asked: the planner gives node 0 the graph's input size.
    fn output_shape(
        &self,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Err(ShapeError::Mismatch(
            "the input's size is the graph's input size".into(),
        ))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let (c, out, input) = (self.channels, io.out, io.input);
        let pixels = io.batch * io.height * io.width;
        // SAFETY: `io.input` holds `pixels` pixels of `c` values at stride `c` (checked by
        // `Graph::run_into`), the output view holds as many.
        unsafe {
            if out.stride == c {
                std::ptr::copy_nonoverlapping(input.ptr, out.ptr, pixels * c);
            } else {
                for p in 0..pixels {
                    std::ptr::copy_nonoverlapping(input.pixel(p), out.pixel(p), c);
                }
            }
        }
    }

    fn name(&self) -> String {
        "input".to_string()
    }
}

/// A copy of `x` (the graph's input joins concatenations as a copy, see `Graph::concat`).
#[derive(Debug)]
pub(crate) struct Copy {
    pub x: [Value; 1],
    pub channels: usize,
}

impl Node for Copy {
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
        let (from, out, c, width) = ((io.src)(self.x[0]), io.out, self.channels, io.width);
        (0..io.batch * io.height).into_par_iter().for_each(|row| {
            for p in row * width..(row + 1) * width {
                // SAFETY: pixel `p` is inside both views; rows are disjoint.
                unsafe { std::ptr::copy_nonoverlapping(from.pixel(p), out.pixel(p), c) };
            }
        });
    }

    fn name(&self) -> String {
        "copy".to_string()
    }
}
