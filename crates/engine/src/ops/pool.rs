//! Max- and average pooling over NHWC views (floor mode), as PyTorch's `MaxPool2d` /
//! `AvgPool2d` and burn 0.22's Flex backend (`burn-flex-0.22.1/src/ops/pool.rs`): max-pooling
//! pads with −∞; average pooling counts padded taps in the divisor only with
//! `count_include_pad`.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::conv::{Dst, Src};
use crate::graph::Value;

/// What a pooling window computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// The maximum; padding counts as −∞ (never chosen).
    Max,
    /// The mean. With `count_include_pad` (PyTorch's default) padded taps count in the divisor
    /// (taps beyond the padding never do); without it, only taps inside the image.
    Avg {
        /// Whether padded taps count in the divisor.
        count_include_pad: bool,
    },
}

/// A pooling op of a graph.
#[derive(Debug)]
pub(crate) struct Pool {
    pub x: [Value; 1],
    pub channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 4],
    pub kind: PoolKind,
}

impl Node for Pool {
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
        pool_output_size(h, w, self.kernel, self.stride, self.padding)
            .ok_or_else(|| ShapeError::TooSmall("a pooling window".into()))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        // SAFETY: the views come from the plan (`Node::run`'s contract).
        unsafe {
            pool(
                (io.src)(self.x[0]),
                io.out,
                self.channels,
                self.kernel,
                self.stride,
                self.padding,
                self.kind,
            )
        }
    }

    fn name(&self) -> String {
        match self.kind {
            PoolKind::Max => "max_pool",
            PoolKind::Avg { .. } => "avg_pool",
        }
        .to_string()
    }
}

/// Output size of a max-pool (floor mode): `(in + pad_before + pad_after − k) / stride + 1`.
fn pool_output_size(
    height: usize,
    width: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
) -> Option<(usize, usize)> {
    let dim = |n: usize, a: usize, b: usize, k: usize, s: usize| {
        let padded = n.checked_add(a)?.checked_add(b)?;
        (padded >= k).then(|| (padded - k) / s.max(1) + 1)
    };
    Some((
        dim(height, padding[0], padding[2], kernel[0], stride[0])?,
        dim(width, padding[1], padding[3], kernel[1], stride[1])?,
    ))
}

/// Max- or average pooling of `channels` channels (floor mode).
///
/// # Safety
/// `src` addresses its pixels' first `channels` values; `dst` has room for
/// `batch · oh · ow` pixels of `channels` values and overlaps nothing `src` reads.
unsafe fn pool(
    src: Src,
    dst: Dst,
    channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
    kind: PoolKind,
) {
    let Some((oh, ow)) = pool_output_size(src.height, src.width, kernel, stride, padding) else {
        return;
    };
    (0..src.batch * oh).into_par_iter().for_each(|row| {
        let (b, oy) = (row / oh, row % oh);
        for ox in 0..ow {
            let p = (b * oh + oy) * ow + ox;
            // SAFETY: output pixel `p` is inside the destination view; rows are disjoint.
            let acc = unsafe { std::slice::from_raw_parts_mut(dst.pixel(p), channels) };
            acc.fill(if kind == PoolKind::Max {
                f32::NEG_INFINITY
            } else {
                0.0
            });
            let mut count = 0usize;
            for ky in 0..kernel[0] {
                let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                for kx in 0..kernel[1] {
                    let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                    if iy < 0 || ix < 0 || iy as usize >= src.height || ix as usize >= src.width {
                        let in_padding = iy < (src.height + padding[2]) as isize
                            && ix < (src.width + padding[3]) as isize;
                        if kind
                            == (PoolKind::Avg {
                                count_include_pad: true,
                            })
                            && in_padding
                        {
                            count += 1;
                        }
                        continue;
                    }
                    count += 1;
                    let pixel = (b * src.height + iy as usize) * src.width + ix as usize;
                    // SAFETY: the pixel is inside the source view (caller's contract).
                    let v = unsafe { std::slice::from_raw_parts(src.pixel(pixel), channels) };
                    match kind {
                        PoolKind::Max => acc.iter_mut().zip(v).for_each(|(a, &x)| *a = a.max(x)),
                        PoolKind::Avg { .. } => acc.iter_mut().zip(v).for_each(|(a, &x)| *a += x),
                    }
                }
            }
            if matches!(kind, PoolKind::Avg { .. }) {
                let inv = 1.0 / count.max(1) as f32;
                acc.iter_mut().for_each(|a| *a *= inv);
            }
        }
    });
}
