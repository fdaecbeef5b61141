//! Pixel shuffle (sub-pixel convolution's rearrangement; Shi et al. 2016, arXiv:1609.05158;
//! PyTorch `PixelShuffle`) over NHWC views.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::conv::{Dst, Src};
use crate::graph::Value;

/// A pixel-shuffle op of a graph: `[c · r², h, w]` → `[c, h · r, w · r]`.
#[derive(Debug)]
pub(crate) struct PixelShuffle {
    pub x: [Value; 1],
    /// Output channels (`c`).
    pub channels: usize,
    /// `r`, at least 1.
    pub factor: usize,
}

impl Node for PixelShuffle {
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
        let (h, w) = shape(self.x[0]);
        let f = self.factor;
        h.checked_mul(f).zip(w.checked_mul(f)).ok_or_else(|| {
            ShapeError::Mismatch(format!(
                "pixel shuffle of {h}x{w} by {f} overflows the address space"
            ))
        })
    }

    unsafe fn run(&self, io: &Io<'_>) {
        // SAFETY: the views come from the plan (`Node::run`'s contract).
        unsafe { pixel_shuffle((io.src)(self.x[0]), io.out, self.channels, self.factor) }
    }

    fn name(&self) -> String {
        "pixel_shuffle".to_string()
    }
}

/// Pixel shuffle (Shi et al. 2016, arXiv:1609.05158; PyTorch `PixelShuffle`): `[c · r², h, w]` →
/// `[c, h · r, w · r]` with `out[c, y·r + i, x·r + j] = in[c·r² + i·r + j, y, x]`.
///
/// # Safety
/// `src` addresses `channels · r²` values per pixel; `dst` has room for `batch · h·r · w·r` pixels
/// of `channels` values and overlaps nothing `src` reads.
unsafe fn pixel_shuffle(src: Src, dst: Dst, channels: usize, r: usize) {
    let (oh, ow) = (src.height * r, src.width * r);
    (0..src.batch * oh).into_par_iter().for_each(|row| {
        let (b, oy) = (row / oh, row % oh);
        let (y, i) = (oy / r, oy % r);
        for ox in 0..ow {
            let (x, j) = (ox / r, ox % r);
            let pixel = (b * src.height + y) * src.width + x;
            // SAFETY: both pixels are inside their views; output rows are disjoint.
            unsafe {
                let from = src.pixel(pixel);
                let to = dst.pixel(row * ow + ox);
                for c in 0..channels {
                    *to.add(c) = *from.add(c * r * r + i * r + j);
                }
            }
        }
    });
}
