//! The non-convolution ops over NHWC views: max- and average pooling, resizing (nearest,
//! bilinear) and pixel shuffle.
//!
//! Both follow burn 0.22's Flex backend (and PyTorch) exactly, so the engine reproduces burn's
//! forward: max-pooling pads with −∞; nearest resizing reads `floor(out · in / out_size)`;
//! bilinear resizing uses half-pixel centres (`align_corners = false`) with the source
//! coordinate clamped at 0 (`burn-flex-0.22.1/src/ops/interpolate.rs`).

use rayon::prelude::*;

use crate::conv::{Dst, Src};

/// How a resize op maps output pixels to input pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// Nearest neighbour, `src = floor(dst · in / out)`.
    Nearest,
    /// Bilinear with half-pixel centres (`align_corners = false`).
    Bilinear,
}

/// Output size of a max-pool (floor mode): `(in + pad_before + pad_after − k) / stride + 1`.
pub(crate) fn pool_output_size(
    height: usize,
    width: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 4],
) -> Option<(usize, usize)> {
    let dim = |n: usize, a: usize, b: usize, k: usize, s: usize| {
        (n + a + b >= k).then(|| (n + a + b - k) / s + 1)
    };
    Some((
        dim(height, padding[0], padding[2], kernel[0], stride[0])?,
        dim(width, padding[1], padding[3], kernel[1], stride[1])?,
    ))
}

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

/// Max- or average pooling of `channels` channels (floor mode).
///
/// # Safety
/// `src` addresses its pixels' first `channels` values; `dst` has room for
/// `batch · oh · ow` pixels of `channels` values and overlaps nothing `src` reads.
pub(crate) unsafe fn pool(
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

/// Pixel shuffle (Shi et al. 2016, arXiv:1609.05158; PyTorch `PixelShuffle`): `[c · r², h, w]` →
/// `[c, h · r, w · r]` with `out[c, y·r + i, x·r + j] = in[c·r² + i·r + j, y, x]`.
///
/// # Safety
/// `src` addresses `channels · r²` values per pixel; `dst` has room for `batch · h·r · w·r` pixels
/// of `channels` values and overlaps nothing `src` reads.
pub(crate) unsafe fn pixel_shuffle(src: Src, dst: Dst, channels: usize, r: usize) {
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

/// Resizes `channels` channels to `oh x ow`.
///
/// # Safety
/// As [`pool`], with `dst` holding `batch · oh · ow` pixels.
pub(crate) unsafe fn resize(
    src: Src,
    dst: Dst,
    channels: usize,
    oh: usize,
    ow: usize,
    mode: ResizeMode,
) {
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
