//! Flicker metrics for colourised video, computed as the frames stream past.
//!
//! - [`WarpingError`]: Lai et al. 2018 ("Learning Blind Video Temporal Consistency", arXiv
//!   1808.00449, section 4.1): the previous output frame is warped onto the current one by the
//!   optical flow computed on the *input* frames, occluded pixels (forward-backward check) are
//!   masked out, and the squared difference is averaged over the remaining pixels, then over the
//!   frame pairs. Here on ab / 128 (so a full swing of a is 2): per pixel
//!   `((a_t - a'_{t-1}) / 128)^2 + ((b_t - b'_{t-1}) / 128)^2`. Pairs across a scene cut are
//!   skipped (the flow has nothing to match there).
//! - [`Cdc`]: the colour distribution consistency index of Liu et al. 2021 ("Temporally
//!   Consistent Video Colorization with Deep Feature Propagation and Self-regularization
//!   Learning", arXiv 2110.04562): the Jensen-Shannon divergence (natural log) between the
//!   256-bin histograms of each RGB channel of frames t and t + d, averaged over t, over
//!   d in {1, 2, 4} and over the three channels. Lower is steadier.

use crate::flow::{FlowParams, Plane, flow_with_consistency, warp};

/// Lai et al.'s warping error on ab, accumulated frame by frame (see the module doc).
pub struct WarpingError {
    params: FlowParams,
    previous: Option<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    width: usize,
    height: usize,
    sum: f64,
    pairs: usize,
}

impl WarpingError {
    /// An empty accumulator for frames of `width x height` (the evaluation size).
    pub fn new(width: usize, height: usize, params: FlowParams) -> Self {
        Self {
            params,
            previous: None,
            width,
            height,
            sum: 0.0,
            pairs: 0,
        }
    }

    /// Adds the next frame: `input_l` the *input* frame's L (0..=100; the flow is computed on
    /// it), `a` and `b` the output's ab (CIELAB units), all `width * height` values. `cut`: a new
    /// scene starts here (the pair with the previous frame is skipped).
    ///
    /// # Panics
    /// If a plane's length is not `width * height`.
    pub fn push(&mut self, input_l: &[f32], a: &[f32], b: &[f32], cut: bool) {
        let n = self.width * self.height;
        assert!(input_l.len() == n && a.len() == n && b.len() == n);
        if let (Some((pl, pa, pb)), false) = (&self.previous, cut) {
            let plane = |v| Plane {
                width: self.width,
                height: self.height,
                values: v,
            };
            let (fwd, mask) = flow_with_consistency(plane(input_l), plane(pl), &self.params);
            let (wa, wb) = (warp(pa, &fwd), warp(pb, &fwd));
            let (mut sum, mut count) = (0.0f64, 0usize);
            for i in 0..n {
                if mask[i] {
                    let da = (a[i] - wa[i]) as f64 / 128.0;
                    let db = (b[i] - wb[i]) as f64 / 128.0;
                    sum += da * da + db * db;
                    count += 1;
                }
            }
            if count > 0 {
                self.sum += sum / count as f64;
                self.pairs += 1;
            }
        }
        match &mut self.previous {
            Some((pl, pa, pb)) => {
                pl.copy_from_slice(input_l);
                pa.copy_from_slice(a);
                pb.copy_from_slice(b);
            }
            None => self.previous = Some((input_l.to_vec(), a.to_vec(), b.to_vec())),
        }
    }

    /// The mean over the frame pairs so far; `None` before the first pair.
    pub fn value(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.sum / self.pairs as f64)
    }
}

/// A 256-bin histogram per RGB channel, normalised to sum 1.
type Histogram = [[f64; 256]; 3];

fn histogram(rgb: &[u8]) -> Histogram {
    let mut h = [[0f64; 256]; 3];
    for p in rgb.chunks_exact(3) {
        for c in 0..3 {
            h[c][p[c] as usize] += 1.0;
        }
    }
    let n = (rgb.len() / 3).max(1) as f64;
    for ch in &mut h {
        for v in ch.iter_mut() {
            *v /= n;
        }
    }
    h
}

/// The Jensen-Shannon divergence (natural log, so 0..=ln 2) of two distributions.
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    let kl = |x: f64, m: f64| if x > 0.0 { x * (x / m).ln() } else { 0.0 };
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let m = 0.5 * (a + b);
            0.5 * kl(a, m) + 0.5 * kl(b, m)
        })
        .sum()
}

/// Liu et al.'s colour distribution consistency, accumulated frame by frame (module doc).
#[derive(Default)]
pub struct Cdc {
    recent: std::collections::VecDeque<Histogram>,
    /// Per dilation (1, 2, 4): sum of the channel-mean JS divergences, and pair count.
    sums: [(f64, usize); 3],
}

impl Cdc {
    /// Adds the next output frame (8-bit RGB, row-major, any size).
    pub fn push(&mut self, rgb: &[u8]) {
        let h = histogram(rgb);
        for (k, d) in [1usize, 2, 4].into_iter().enumerate() {
            if self.recent.len() >= d {
                let old = &self.recent[self.recent.len() - d];
                let js: f64 = (0..3).map(|c| js_divergence(&old[c], &h[c])).sum::<f64>() / 3.0;
                self.sums[k].0 += js;
                self.sums[k].1 += 1;
            }
        }
        self.recent.push_back(h);
        if self.recent.len() > 4 {
            self.recent.pop_front();
        }
    }

    /// The index so far: the mean over the dilations that have pairs; `None` before any pair.
    pub fn value(&self) -> Option<f64> {
        let means: Vec<f64> = self
            .sums
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| s / *n as f64)
            .collect();
        (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_divergence_reference_values() {
        // Identical: 0. Disjoint: ln 2. Half overlap: computed by hand.
        assert_eq!(js_divergence(&[0.5, 0.5], &[0.5, 0.5]), 0.0);
        assert!((js_divergence(&[1.0, 0.0], &[0.0, 1.0]) - 2f64.ln()).abs() < 1e-12);
        // p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25);
        // 0.5 * ln(1/0.75) + 0.5 * (0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25)).
        let want = 0.5 * (1.0f64 / 0.75).ln()
            + 0.5 * (0.5 * (0.5f64 / 0.75).ln() + 0.5 * (0.5f64 / 0.25).ln());
        assert!((js_divergence(&[1.0, 0.0], &[0.5, 0.5]) - want).abs() < 1e-12);
    }

    #[test]
    fn cdc_is_zero_for_a_still_and_grows_with_colour_flicker() {
        let still = vec![120u8; 3 * 100];
        let mut c = Cdc::default();
        for _ in 0..6 {
            c.push(&still);
        }
        assert_eq!(c.value(), Some(0.0));
        let mut f = Cdc::default();
        for i in 0..6 {
            let v = if i % 2 == 0 { 100u8 } else { 140 };
            f.push(&vec![v; 300]);
        }
        // Odd dilation pairs are disjoint (ln 2), even ones identical (0):
        // d=1: ln 2, d=2: 0, d=4: 0 -> mean ln 2 / 3.
        let v = f.value().unwrap();
        assert!((v - 2f64.ln() / 3.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn warping_error_is_zero_for_colour_that_moves_with_the_picture() {
        let (w, h) = (64, 48);
        let tex = |s: f32| -> Vec<f32> {
            (0..w * h)
                .map(|i| {
                    let (x, y) = ((i % w) as f32 + s, (i / w) as f32);
                    50.0 + 20.0 * (x * 0.3).sin() * (y * 0.2).cos() + 10.0 * (x * 0.05).cos()
                })
                .collect()
        };
        let mut moving = WarpingError::new(w, h, FlowParams::default());
        let mut flicker = WarpingError::new(w, h, FlowParams::default());
        for t in 0..4 {
            let l = tex(t as f32);
            // Colour that is a function of the moving picture moves with it.
            let a: Vec<f32> = l.iter().map(|v| v - 50.0).collect();
            let b = vec![5.0; w * h];
            moving.push(&l, &a, &b, t == 0);
            // The same plus a global flicker of +-12.8 in a: error (25.6 / 128)^2 = 0.04.
            let a2: Vec<f32> = a
                .iter()
                .map(|v| v + if t % 2 == 0 { 12.8 } else { -12.8 })
                .collect();
            flicker.push(&l, &a2, &b, t == 0);
        }
        let m = moving.value().unwrap();
        let f = flicker.value().unwrap();
        assert!(m < 2e-4, "moving colour: {m}");
        assert!((f - 0.04).abs() < 0.005, "flicker: {f}");
    }
}
