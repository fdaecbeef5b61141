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
    assert!(src_width > 0 && src_height > 0 && dst_width > 0 && dst_height > 0);
    if src_width == dst_width && src_height == dst_height {
        return src.to_vec();
    }
    if dst_width >= src_width && dst_height >= src_height {
        return enlarge(src, src_width, src_height, dst_width, dst_height);
    }
    let xt = axis_taps(src_width, dst_width);
    let yt = axis_taps(src_height, dst_height);
    // Horizontal pass: src_height rows of dst_width.
    let mut tmp = vec![0.0f32; src_height * dst_width];
    tmp.par_chunks_mut(dst_width)
        .zip(src.par_chunks(src_width))
        .for_each(|(out, row)| {
            for (o, t) in out.iter_mut().zip(&xt) {
                *o = row[t.start..t.start + t.weights.len()]
                    .iter()
                    .zip(&t.weights)
                    .map(|(v, w)| v * w)
                    .sum();
            }
        });
    // Vertical pass: accumulate whole rows.
    let mut dst = vec![0.0f32; dst_height * dst_width];
    dst.par_chunks_mut(dst_width)
        .zip(yt.par_iter())
        .for_each(|(out, t)| {
            for (k, w) in t.weights.iter().enumerate() {
                let row = &tmp[(t.start + k) * dst_width..(t.start + k + 1) * dst_width];
                for (o, v) in out.iter_mut().zip(row) {
                    *o += w * v;
                }
            }
        });
    dst
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
fn enlarge(src: &[f32], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<f32> {
    let xt = bilinear_taps(sw, dw);
    let yt = bilinear_taps(sh, dh);
    let mut tmp = vec![0.0f32; sh * dw];
    tmp.par_chunks_mut(dw)
        .zip(src.par_chunks(sw))
        .with_min_len(8)
        .for_each(|(out, row)| {
            for (o, &(i0, i1, f)) in out.iter_mut().zip(&xt) {
                *o = row[i0] + f * (row[i1] - row[i0]);
            }
        });
    let mut dst = vec![0.0f32; dh * dw];
    dst.par_chunks_mut(dw)
        .zip(yt.par_iter())
        .with_min_len(8)
        .for_each(|(out, &(i0, i1, f))| {
            let r0 = &tmp[i0 * dw..(i0 + 1) * dw];
            let r1 = &tmp[i1 * dw..(i1 + 1) * dw];
            for ((o, a), b) in out.iter_mut().zip(r0).zip(r1) {
                *o = a + f * (b - a);
            }
        });
    dst
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
