//! Global average pooling: the mean of each channel over the whole image, a `1 x 1` map
//! (PyTorch `AdaptiveAvgPool2d(1)`, torchvision ResNet's `avgpool`; Lin, Chen & Yan 2013,
//! arXiv:1312.4400). Its output size does not depend on the input's, which is what lets a
//! classification backbone's global features join a network of any input size (Deep
//! Koalarization's fusion, [`crate::Graph::global_avg_pool`]).
//!
//! Sums are accumulated in f64, so the mean is exact to f32 rounding whatever the image size.

use rayon::prelude::*;

use super::{Io, Node, ShapeError};
use crate::graph::Value;

/// The global average pool op of a graph: `[batch, H, W, C]` → `[batch, 1, 1, C]`.
#[derive(Debug)]
pub(crate) struct GlobalAvgPool {
    pub x: [Value; 1],
    pub channels: usize,
}

impl Node for GlobalAvgPool {
    fn inputs(&self) -> &[Value] {
        &self.x
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn output_shape(
        &self,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError> {
        Ok((1, 1))
    }

    unsafe fn run(&self, io: &Io<'_>) {
        let src = (io.src)(self.x[0]);
        let (out, c) = (io.out, self.channels);
        let pixels = src.height * src.width;
        // One task per (image, block of channels): each writes its own output values.
        const BLOCK: usize = 64;
        let blocks = c.div_ceil(BLOCK);
        (0..src.batch * blocks).into_par_iter().for_each(|task| {
            let (b, block) = (task / blocks, task % blocks);
            let (lo, hi) = (block * BLOCK, ((block + 1) * BLOCK).min(c));
            let mut acc = [0f64; BLOCK];
            for p in 0..pixels {
                // SAFETY: pixel `b · H · W + p` is inside the source view (the plan's contract).
                let v = unsafe { std::slice::from_raw_parts(src.pixel(b * pixels + p), c) };
                for (a, &x) in acc.iter_mut().zip(&v[lo..hi]) {
                    *a += x as f64;
                }
            }
            let inv = 1.0 / pixels.max(1) as f64;
            // SAFETY: output pixel `b` holds `c` values; tasks write disjoint channel ranges,
            // and the output overlaps nothing the op reads.
            let to = unsafe { std::slice::from_raw_parts_mut(out.pixel(b).add(lo), hi - lo) };
            for (o, a) in to.iter_mut().zip(&acc) {
                *o = (a * inv) as f32;
            }
        });
    }

    fn name(&self) -> String {
        "global_avg_pool".to_string()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use crate::{Graph, ResizeMode};

    /// The mean of each channel of each image, naively in f64: `[b, h, w, c]` → `[b, c]`.
    fn global_avg_pool_ref(x: &[f32], b: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
        let mut out = vec![0f32; b * c];
        for n in 0..b {
            for ch in 0..c {
                let mut sum = 0f64;
                for p in 0..h * w {
                    sum += x[(n * h * w + p) * c + ch] as f64;
                }
                out[n * c + ch] = (sum / (h * w) as f64) as f32;
            }
        }
        out
    }

    #[test]
    fn global_avg_pool_matches_the_naive_mean_on_random_shapes() {
        let mut rng = StdRng::seed_from_u64(7);
        // Channel counts below, at and above the 64-channel block; sizes down to 1x1.
        for (b, h, w, c) in [
            (1, 1, 1, 3),
            (2, 7, 5, 64),
            (3, 13, 1, 130),
            (1, 37, 53, 17),
        ] {
            let x: Vec<f32> = (0..b * h * w * c)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let (mut g, x0) = Graph::new(c);
            let y = g.global_avg_pool(x0);
            g.set_output(y);
            assert_eq!(g.output_size(h, w).unwrap(), (1, 1));
            let got = g.run(&x, b, h, w).unwrap();
            let want = global_avg_pool_ref(&x, b, h, w, c);
            assert_eq!(got.len(), want.len());
            for (i, (a, e)) in got.iter().zip(&want).enumerate() {
                assert!((a - e).abs() <= 1e-6, "{b}x{h}x{w}x{c} [{i}]: {a} vs {e}");
            }
        }
    }

    /// A `1 x 1` map resized (nearest) to another value's size replicates each channel over
    /// every pixel: how a global feature vector is broadcast over a feature grid.
    #[test]
    fn global_avg_pool_then_nearest_resize_replicates_the_vector() {
        let mut rng = StdRng::seed_from_u64(8);
        let (b, h, w, c) = (2, 9, 6, 5);
        let x: Vec<f32> = (0..b * h * w * c)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let (mut g, x0) = Graph::new(c);
        let v = g.global_avg_pool(x0);
        let y = g.resize_like(v, x0, ResizeMode::Nearest);
        g.set_output(y);
        let got = g.run(&x, b, h, w).unwrap();
        let want = global_avg_pool_ref(&x, b, h, w, c);
        assert_eq!(got.len(), b * h * w * c);
        for n in 0..b {
            for p in 0..h * w {
                let px = &got[(n * h * w + p) * c..][..c];
                assert_eq!(px, &want[n * c..][..c], "image {n} pixel {p}");
            }
        }
    }
}
