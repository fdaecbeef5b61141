//! Resizing over NHWC views, as burn 0.22's Flex backend (and PyTorch) computes it
//! (`burn-flex-0.22.1/src/ops/interpolate.rs`): nearest reads `floor(out · in / out_size)`;
//! bilinear uses half-pixel centres (`align_corners = false`) with the source coordinate clamped
//! at 0.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::conv::{Dst, Src};
use crate::graph::Value;

/// How a resize op maps output pixels to input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest neighbour, `src = floor(dst · in / out)`.
    Nearest,
    /// Bilinear with half-pixel centres (`align_corners = false`).
    Bilinear,
}

/// A resize op of a graph: `x` resized to the height and width of `like`, or by an integer
/// factor.
#[derive(Debug)]
pub(crate) struct Resize {
    pub x: [Value; 1],
    /// The value whose size the output takes (only its size is read, so it is not an input),
    /// when `factor` is `None`.
    pub like: Value,
    /// Output = input size times this (PyTorch `Upsample(scale_factor=f)`, whose coordinate
    /// mapping `src = (dst + 0.5) / f − 0.5` is the same as for `in / out` when `out = f · in`).
    pub factor: Option<usize>,
    pub channels: usize,
    pub mode: ResizeMode,
}

impl Node for Resize {
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
        Ok(match self.factor {
            Some(f) => {
                let (h, w) = shape(self.x[0]);
                h.checked_mul(f).zip(w.checked_mul(f)).ok_or_else(|| {
                    ShapeError::Mismatch(format!(
                        "resizing {h}x{w} by {f} overflows the address space"
                    ))
                })?
            }
            None => shape(self.like),
        })
    }

    unsafe fn run(&self, io: &Io<'_>) {
        // SAFETY: the views come from the plan (`Node::run`'s contract).
        unsafe {
            resize(
                (io.src)(self.x[0]),
                io.out,
                self.channels,
                io.height,
                io.width,
                self.mode,
            )
        }
    }

    fn name(&self) -> String {
        "resize".to_string()
    }
}

/// Resizes `channels` channels to `oh x ow`.
///
/// # Safety
/// As [`pool`], with `dst` holding `batch · oh · ow` pixels.
unsafe fn resize(src: Src, dst: Dst, channels: usize, oh: usize, ow: usize, mode: ResizeMode) {
    let (h, w) = (src.height, src.width);
    if h == 0 || w == 0 {
        return;
    }
    let pixel = |b: usize, y: usize, x: usize| {
        // SAFETY: callers pass coordinates inside the source view.
        unsafe { std::slice::from_raw_parts(src.pixel((b * h + y) * w + x), channels) }
    };
    match mode {
        ResizeMode::Nearest => {
            let map = |d: usize, i: usize, o: usize| {
                ((d as f64 * (i as f64 / o as f64)).floor() as usize).min(i - 1)
            };
            (0..src.batch * oh).into_par_iter().for_each(|row| {
                let (b, oy) = (row / oh, row % oh);
                let sy = map(oy, h, oh);
                for ox in 0..ow {
                    let from = pixel(b, sy, map(ox, w, ow));
                    // SAFETY: output pixel inside the destination view; rows are disjoint.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            from.as_ptr(),
                            dst.pixel(row * ow + ox),
                            channels,
                        )
                    };
                }
            });
        }
        ResizeMode::Bilinear => {
            // (low, high, weight of high) per output coordinate, as burn computes them.
            let taps = |d: usize, i: usize, o: usize| -> (usize, usize, f32) {
                let c = (d as f64 + 0.5) * (i as f64 / o as f64) - 0.5;
                let lo = (c.floor().max(0.0) as usize).min(i - 1);
                (lo, (lo + 1).min(i - 1), (c - lo as f64).max(0.0) as f32)
            };
            (0..src.batch * oh).into_par_iter().for_each(|row| {
                let (b, oy) = (row / oh, row % oh);
                let (y0, y1, wy) = taps(oy, h, oh);
                for ox in 0..ow {
                    let (x0, x1, wx) = taps(ox, w, ow);
                    let (pa, pb, pc, pd) = (
                        pixel(b, y0, x0),
                        pixel(b, y0, x1),
                        pixel(b, y1, x0),
                        pixel(b, y1, x1),
                    );
                    // SAFETY: output pixel inside the destination view; rows are disjoint.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(dst.pixel(row * ow + ox), channels)
                    };
                    for (c, o) in out.iter_mut().enumerate() {
                        *o = pa[c] * (1.0 - wx) * (1.0 - wy)
                            + pb[c] * wx * (1.0 - wy)
                            + pc[c] * (1.0 - wx) * wy
                            + pd[c] * wx * wy;
                    }
                }
            });
        }
    }
}
