//! Resizing planar `f32` buffers with a separable triangle filter.
//!
//! Enlarging is exactly bilinear interpolation with half-pixel centres (PyTorch's
//! `F.interpolate(mode="bilinear", align_corners=False)`, edges clamped); shrinking widens the
//! triangle to the scale factor (area-weighted, so no aliasing when a large photo goes down to the
//! render size). Values are never clamped, so L (`0..=100`) and ab (negative values) pass through.

use rayon::prelude::*;

/// One output sample's taps: first source index and the normalised weights that follow it.
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

fn axis_taps(src: usize, dst: usize) -> Vec<Taps> {
    let scale = src as f64 / dst as f64;
    let support = scale.max(1.0);
    (0..dst)
        .map(|x| {
            let centre = (x as f64 + 0.5) * scale - 0.5;
            let lo = (centre - support).floor() as i64 + 1;
            let hi = (centre + support).ceil() as i64 - 1;
            // Accumulate clamped-edge weights per source index.
            let first = lo.clamp(0, src as i64 - 1) as usize;
            let last = hi.clamp(0, src as i64 - 1) as usize;
            let mut weights = vec![0.0f64; last - first + 1];
            for i in lo..=hi {
                let w = 1.0 - ((i as f64 - centre) / support).abs();
                if w > 0.0 {
                    let idx = i.clamp(0, src as i64 - 1) as usize;
                    weights[idx - first] += w;
                }
            }
            let sum: f64 = weights.iter().sum();
            Taps {
                start: first,
                weights: weights.iter().map(|w| (w / sum) as f32).collect(),
            }
        })
        .collect()
}

/// Resizes one plane of `src_width x src_height` values (row-major) to `dst_width x dst_height`.
///
/// Bilinear (half-pixel centres) when enlarging, triangle-filtered when shrinking; each axis is
/// handled on its own, so aspect ratios may change. Returns `dst_width * dst_height` values.
///
/// # Panics
/// If `src.len() != src_width * src_height` or any size is zero.
pub fn resize_plane(
    src: &[f32],
    src_width: usize,
    src_height: usize,
    dst_width: usize,
    dst_height: usize,
) -> Vec<f32> {
    assert_eq!(src.len(), src_width * src_height, "plane size mismatch");
    RowResizer::new(src, src_width, src_height, dst_width, dst_height).to_plane()
}

/// Source rows per task when a plane is read strip by strip ([`resize_plane_rows`]): a strip of a
/// 12000-pixel-wide photo is 1.5 MB of `f32`.
pub const STRIP_ROWS: usize = 32;

/// As [`resize_plane`] for a source plane that is never held whole: `fill(first_row, buf)` writes
/// source rows `first_row..first_row + buf.len() / src_width` (row-major, `src_width` values per
/// row) into `buf`, at most [`STRIP_ROWS`] rows at a time and from several threads at once.
///
/// When shrinking (the photo → network-input direction, the one that matters for memory) only
/// a `src_height x dst_width` intermediate plus one strip per thread is allocated, i.e.
/// `4 · dst_width` bytes per source row instead of `4 · src_width`; when enlarging or keeping the
/// size, the source is gathered whole first (it is then no larger than the result). The values are
/// bit-identical to [`resize_plane`] on the whole plane.
///
/// # Panics
/// If any size is zero.
pub fn resize_plane_rows(
    src_width: usize,
    src_height: usize,
    dst_width: usize,
    dst_height: usize,
    fill: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    assert!(src_width > 0 && src_height > 0 && dst_width > 0 && dst_height > 0);
    if dst_width >= src_width && dst_height >= src_height {
        let mut src = vec![0.0f32; src_width * src_height];
        src.par_chunks_mut(STRIP_ROWS * src_width)
            .enumerate()
            .for_each(|(i, strip)| fill(i * STRIP_ROWS, strip));
        return resize_plane(&src, src_width, src_height, dst_width, dst_height);
    }
    let xt = axis_taps(src_width, dst_width);
    let mut tmp = vec![0.0f32; src_height * dst_width];
    tmp.par_chunks_mut(STRIP_ROWS * dst_width)
        .enumerate()
        .for_each(|(i, out)| {
            let rows = out.len() / dst_width;
            let mut strip = vec![0.0f32; rows * src_width];
            fill(i * STRIP_ROWS, &mut strip);
            for (out, row) in out.chunks_mut(dst_width).zip(strip.chunks(src_width)) {
                filter_row(row, &xt, out);
            }
        });
    let resizer = RowResizer {
        dst_width,
        dst_height,
        mode: Mode::General {
            tmp,
            yt: axis_taps(src_height, dst_height),
        },
    };
    resizer.to_plane()
}

/// One row through the general (triangle) filter's horizontal taps.
#[inline]
fn filter_row(row: &[f32], xt: &[Taps], out: &mut [f32]) {
    for (o, t) in out.iter_mut().zip(xt) {
        *o = row[t.start..t.start + t.weights.len()]
            .iter()
            .zip(&t.weights)
            .map(|(v, w)| v * w)
            .sum();
    }
}

/// A plane being resized, one output row at a time: the horizontal pass is done once up front
/// (`src_height x dst_width` values), each output row is then blended from it on demand. This is
/// how ab goes from the network's size to the photo's in strips ([`crate::lab::join_to_srgb`]):
/// for a 100-megapixel photo and a 160-pixel render size, about 8 MB per plane instead of 400 MB.
///
/// [`RowResizer::row`] gives exactly the rows [`resize_plane`] returns.
pub struct RowResizer {
    dst_width: usize,
    dst_height: usize,
    mode: Mode,
}

enum Mode {
    /// Same size: the source, copied.
    Same(Vec<f32>),
    /// Both axes grow or stay: two taps per axis (bilinear).
    Enlarge {
        tmp: Vec<f32>,
        yt: Vec<(usize, usize, f32)>,
    },
    /// Any axis shrinks: the triangle filter.
    General { tmp: Vec<f32>, yt: Vec<Taps> },
}

impl RowResizer {
    /// Prepares `src` (`src_width x src_height` values, row-major) for resizing to
    /// `dst_width x dst_height`, filtered as [`resize_plane`] does.
    ///
    /// # Panics
    /// If `src.len() != src_width * src_height` or any size is zero.
    pub fn new(
        src: &[f32],
        src_width: usize,
        src_height: usize,
        dst_width: usize,
        dst_height: usize,
    ) -> Self {
        assert_eq!(src.len(), src_width * src_height, "plane size mismatch");
        assert!(src_width > 0 && src_height > 0 && dst_width > 0 && dst_height > 0);
        let mode = if src_width == dst_width && src_height == dst_height {
            Mode::Same(src.to_vec())
        } else if dst_width >= src_width && dst_height >= src_height {
            let xt = bilinear_taps(src_width, dst_width);
            let mut tmp = vec![0.0f32; src_height * dst_width];
            tmp.par_chunks_mut(dst_width)
                .zip(src.par_chunks(src_width))
                .with_min_len(8)
                .for_each(|(out, row)| {
                    for (o, &(i0, i1, f)) in out.iter_mut().zip(&xt) {
                        *o = row[i0] + f * (row[i1] - row[i0]);
                    }
                });
            Mode::Enlarge {
                tmp,
                yt: bilinear_taps(src_height, dst_height),
            }
        } else {
            let xt = axis_taps(src_width, dst_width);
            let mut tmp = vec![0.0f32; src_height * dst_width];
            tmp.par_chunks_mut(dst_width)
                .zip(src.par_chunks(src_width))
                .for_each(|(out, row)| filter_row(row, &xt, out));
            Mode::General {
                tmp,
                yt: axis_taps(src_height, dst_height),
            }
        };
        Self {
            dst_width,
            dst_height,
            mode,
        }
    }

    /// Output width in pixels.
    pub fn width(&self) -> usize {
        self.dst_width
    }

    /// Output height in pixels.
    pub fn height(&self) -> usize {
        self.dst_height
    }

    /// Writes output row `y` (`0..height`) into `out` (`width` values).
    ///
    /// # Panics
    /// If `y >= height` or `out.len() != width`.
    pub fn row(&self, y: usize, out: &mut [f32]) {
        let dw = self.dst_width;
        assert!(y < self.dst_height && out.len() == dw, "row out of range");
        match &self.mode {
            Mode::Same(src) => out.copy_from_slice(&src[y * dw..(y + 1) * dw]),
            Mode::Enlarge { tmp, yt } => {
                let (i0, i1, f) = yt[y];
                let r0 = &tmp[i0 * dw..(i0 + 1) * dw];
                let r1 = &tmp[i1 * dw..(i1 + 1) * dw];
                for ((o, a), b) in out.iter_mut().zip(r0).zip(r1) {
                    *o = a + f * (b - a);
                }
            }
            Mode::General { tmp, yt } => {
                let t = &yt[y];
                out.fill(0.0);
                for (k, w) in t.weights.iter().enumerate() {
                    let row = &tmp[(t.start + k) * dw..(t.start + k + 1) * dw];
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += w * v;
                    }
                }
            }
        }
    }

    /// Writes output rows `first..first + out.len() / width` into `out`.
    ///
    /// # Panics
    /// If the rows run past `height` or `out.len()` is not a multiple of `width`.
    pub fn rows(&self, first: usize, out: &mut [f32]) {
        assert_eq!(out.len() % self.dst_width, 0, "whole rows only");
        for (i, row) in out.chunks_mut(self.dst_width).enumerate() {
            self.row(first + i, row);
        }
    }

    /// The whole resized plane, `width * height` values.
    pub fn to_plane(&self) -> Vec<f32> {
        if let Mode::Same(src) = &self.mode {
            return src.clone();
        }
        let mut dst = vec![0.0f32; self.dst_width * self.dst_height];
        dst.par_chunks_mut(self.dst_width)
            .enumerate()
            .with_min_len(8)
            .for_each(|(y, out)| self.row(y, out));
        dst
    }
}

/// Bilinear taps of one axis when enlarging: for each output index, the two source indices
/// (edges clamped) and the weight of the second, as `axis_taps` computes them.
fn bilinear_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|x| {
            let centre = ((x as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (centre.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, (centre - i0 as f64) as f32)
        })
        .collect()
}

/// The enlarging case of [`resize_plane`] (both axes grow or stay): two taps per axis, with
/// flat tap tables instead of per-sample weight lists (ab goes from the render size to the full
/// frame this way for every video frame).
#[cfg(test)]
fn enlarge(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    assert!(dw >= sw && dh >= sh);
    RowResizer::new(src, sw, sh, dw, dh).to_plane()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_constant() {
        let src: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(resize_plane(&src, 4, 3, 4, 3), src);
        let c = vec![-37.5f32; 7 * 5];
        for (w, h) in [(1, 1), (3, 11), (20, 2), (7, 5), (64, 1)] {
            let out = resize_plane(&c, 7, 5, w, h);
            assert!(out.iter().all(|v| (v + 37.5).abs() < 1e-4), "{w}x{h}");
        }
    }

    #[test]
    fn bilinear_upscale_matches_half_pixel_formula() {
        // 2 -> 4 along x: PyTorch align_corners=False gives [a, 0.75a+0.25b, 0.25a+0.75b, b].
        let out = resize_plane(&[0.0, 100.0], 2, 1, 4, 1);
        let want = [0.0, 25.0, 75.0, 100.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-4, "{out:?}");
        }
    }

    #[test]
    fn enlarging_fast_path_matches_the_general_filter() {
        // The general triangle filter (the path shrinking takes) against the two-tap path, on
        // a random plane enlarged by awkward factors (edges included).
        let (sw, sh) = (23, 17);
        let src: Vec<f32> = (0..sw * sh)
            .map(|i| ((i * 7919) % 1000) as f32 / 10.0 - 50.0)
            .collect();
        for (dw, dh) in [(23, 40), (80, 17), (97, 61), (854, 480)] {
            let fast = enlarge(&src, sw, sh, dw, dh);
            let xt = axis_taps(sw, dw);
            let yt = axis_taps(sh, dh);
            for y in 0..dh {
                for x in 0..dw {
                    let mut want = 0.0f64;
                    for (j, wy) in yt[y].weights.iter().enumerate() {
                        for (i, wx) in xt[x].weights.iter().enumerate() {
                            let v = src[(yt[y].start + j) * sw + xt[x].start + i];
                            want += (wy * wx * v) as f64;
                        }
                    }
                    let got = fast[y * dw + x] as f64;
                    assert!(
                        (got - want).abs() < 1e-3,
                        "{dw}x{dh} at {x},{y}: {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn downscale_by_two_averages_pairs() {
        // Shrinking by exactly 2 with a triangle of radius 2 weights the pair 3/8 + 3/8 and the
        // outer neighbours 1/8 each; on a linear ramp that is the pair mean.
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let out = resize_plane(&src, 16, 1, 8, 1);
        for (i, o) in out.iter().enumerate().skip(1).take(6) {
            assert!((o - (2 * i) as f32 - 0.5).abs() < 1e-4, "{out:?}");
        }
    }
}
