//! Colour as classification over quantised ab, with class rebalancing (Zhang, Isola & Efros 2016,
//! "Colorful Image Colorization", arXiv:1603.08511, §2.1-2.2), as an option for any generator.
//!
//! Why: an L1 or MSE regression is pulled to the median or mean of the plausible colours of an
//! object, which for most objects is a gray-brown (the muted look of the bundled regression model).
//! Predicting a distribution over 313 ab bins keeps every mode; decoding with the *annealed mean*
//! (`softmax(logits / T)` with `T = 0.38`, see `colorize_models::OutputKind::AbBins`) then picks a
//! vivid but spatially consistent colour. Rare (saturated) colours are weighted up by the inverse of
//! a smoothed empirical prior mixed with a uniform one, so the loss is not dominated by the
//! desaturated pixels that make up most of every photo.
//!
//! The bins are the 313 in-gamut centres of a 10×10 grid over ab (`pts_in_hull.csv`, copied from
//! `resources/pts_in_hull.npy` of github.com/richzhang/colorization, BSD-2-Clause, via
//! `../shared/reference/zhang.md`). A target pixel is soft-encoded onto its 5 nearest centres with
//! Gaussian weights `exp(−d²/2σ²)`, σ = 5 (the paper's values), normalised to sum 1.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::data::LabDataset;

/// The bin centres file (`index,a,b` rows; 313 bins).
const PTS_IN_HULL: &str = include_str!("pts_in_hull.csv");

/// Nearest bins a target pixel is spread over.
pub const NEIGHBOURS: usize = 5;
/// σ of the soft encoding's Gaussian, in CIELAB units.
pub const SIGMA: f32 = 5.0;
/// Weight of the uniform distribution in the rebalancing mixture (the paper's λ).
pub const LAMBDA: f64 = 0.5;
/// The annealed-mean temperature the paper decodes with.
pub const TEMPERATURE: f32 = 0.38;

/// The 313 bin centres `[a, b]` in CIELAB units, in `pts_in_hull.npy`'s order.
pub fn gamut_bins() -> Vec<[f32; 2]> {
    PTS_IN_HULL
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<f32> = l
                .split(',')
                .map(|x| x.trim().parse().expect("number"))
                .collect();
            [v[1], v[2]]
        })
        .collect()
}

/// Quantised ab with rebalancing weights: what the classification loss needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AbBins {
    /// Bin centres `[a, b]`, CIELAB units.
    pub bins: Vec<[f32; 2]>,
    /// Rebalancing weight of each bin (expectation 1 under the prior).
    pub weights: Vec<f32>,
}

/// Soft-encoded targets of a batch, ready for [`ab_bins_loss`].
#[derive(Debug, Clone)]
pub struct BinTargets {
    /// Indices of the [`NEIGHBOURS`] nearest bins of each pixel, `[batch, NEIGHBOURS, H, W]`.
    pub indices: Tensor<4, Int>,
    /// Their Gaussian weights (sum 1 over dim 1), `[batch, NEIGHBOURS, H, W]`.
    pub soft: Tensor<4>,
    /// Each pixel's rebalancing weight (of its nearest bin), `[batch, 1, H, W]`.
    pub pixel_weight: Tensor<4>,
}

impl AbBins {
    /// Bins with the given rebalancing weights (`weights.len() == bins.len()`).
    pub fn new(bins: Vec<[f32; 2]>, weights: Vec<f32>) -> Self {
        assert_eq!(bins.len(), weights.len());
        Self { bins, weights }
    }

    /// The 313 bins with weights from the empirical prior of `data`: every 4th pixel of every
    /// photo is counted in its nearest bin, the histogram is smoothed with a Gaussian (σ = 5) over
    /// the bin centres, and `w ∝ 1 / ((1 − λ)·p + λ/Q)` normalised so that `Σ p·w = 1`
    /// (Zhang et al. 2016, eq. 4).
    pub fn from_dataset(data: &LabDataset) -> Self {
        let bins = gamut_bins();
        let mut counts = vec![0f64; bins.len()];
        for img in &data.images {
            for p in (0..img.a.len()).step_by(4) {
                counts[nearest(&bins, img.a[p], img.b[p])] += 1.0;
            }
        }
        let weights = rebalancing_weights(&bins, &counts);
        Self { bins, weights }
    }

    /// Soft-encodes ab planes (CIELAB units, `[batch, H, W]` flattened: `a.len() == batch·h·w`)
    /// into [`BinTargets`] on `device`.
    pub fn encode(
        &self,
        a: &[f32],
        b: &[f32],
        batch: usize,
        h: usize,
        w: usize,
        device: &Device,
    ) -> BinTargets {
        let plane = h * w;
        assert_eq!(a.len(), batch * plane);
        let mut idx = vec![0i64; batch * NEIGHBOURS * plane];
        let mut soft = vec![0f32; batch * NEIGHBOURS * plane];
        let mut pw = vec![0f32; batch * plane];
        let inv = 1.0 / (2.0 * SIGMA * SIGMA);
        for n in 0..batch {
            for p in 0..plane {
                let (pa, pb) = (a[n * plane + p], b[n * plane + p]);
                let near = self.k_nearest(pa, pb);
                let mut sum = 0.0;
                let mut ws = [0f32; NEIGHBOURS];
                for (k, &(d2, _)) in near.iter().enumerate() {
                    ws[k] = (-d2 * inv).exp();
                    sum += ws[k];
                }
                for (k, &(_, q)) in near.iter().enumerate() {
                    let o = (n * NEIGHBOURS + k) * plane + p;
                    idx[o] = q as i64;
                    soft[o] = ws[k] / sum;
                }
                pw[n * plane + p] = self.weights[near[0].1];
            }
        }
        BinTargets {
            indices: Tensor::from_data(TensorData::new(idx, [batch, NEIGHBOURS, h, w]), device),
            soft: Tensor::from_data(TensorData::new(soft, [batch, NEIGHBOURS, h, w]), device),
            pixel_weight: Tensor::from_data(TensorData::new(pw, [batch, 1, h, w]), device),
        }
    }

    /// The [`NEIGHBOURS`] nearest bins of `(a, b)`, nearest first: `(squared distance, index)`.
    fn k_nearest(&self, a: f32, b: f32) -> [(f32, usize); NEIGHBOURS] {
        let mut best = [(f32::INFINITY, 0usize); NEIGHBOURS];
        for (q, c) in self.bins.iter().enumerate() {
            let d2 = (c[0] - a).powi(2) + (c[1] - b).powi(2);
            if d2 < best[NEIGHBOURS - 1].0 {
                let mut k = NEIGHBOURS - 1;
                while k > 0 && best[k - 1].0 > d2 {
                    best[k] = best[k - 1];
                    k -= 1;
                }
                best[k] = (d2, q);
            }
        }
        best
    }
}

fn nearest(bins: &[[f32; 2]], a: f32, b: f32) -> usize {
    let mut best = (f32::INFINITY, 0);
    for (q, c) in bins.iter().enumerate() {
        let d2 = (c[0] - a).powi(2) + (c[1] - b).powi(2);
        if d2 < best.0 {
            best = (d2, q);
        }
    }
    best.1
}

/// Rebalancing weights from bin counts (see [`AbBins::from_dataset`]). With no counts at all
/// every weight is 1.
pub fn rebalancing_weights(bins: &[[f32; 2]], counts: &[f64]) -> Vec<f32> {
    let q = bins.len();
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return vec![1.0; q];
    }
    // Smooth the empirical distribution over the bin centres (σ = 5 in ab units).
    let inv = 1.0 / (2.0 * f64::from(SIGMA) * f64::from(SIGMA));
    let mut smooth = vec![0f64; q];
    for (i, ci) in bins.iter().enumerate() {
        let mut s = 0.0;
        let mut wsum = 0.0;
        for (j, cj) in bins.iter().enumerate() {
            let d2 = f64::from(ci[0] - cj[0]).powi(2) + f64::from(ci[1] - cj[1]).powi(2);
            let k = (-d2 * inv).exp();
            s += k * counts[j] / total;
            wsum += k;
        }
        smooth[i] = s / wsum;
    }
    let z: f64 = smooth.iter().sum();
    let prior: Vec<f64> = smooth.iter().map(|p| p / z).collect();
    let raw: Vec<f64> = prior
        .iter()
        .map(|p| 1.0 / ((1.0 - LAMBDA) * p + LAMBDA / q as f64))
        .collect();
    let expectation: f64 = prior.iter().zip(&raw).map(|(p, w)| p * w).sum();
    raw.iter().map(|w| (w / expectation) as f32).collect()
}

/// The rebalanced multinomial cross-entropy of Zhang et al. 2016 (eq. 2 with the weights of
/// eq. 3): `−mean over pixels of v(pixel) · Σ_k soft_k · log softmax(logits)[idx_k]`.
///
/// # Shapes
/// `logits`: `[batch, Q, H, W]` (raw network output, Q = number of bins); the targets as
/// [`AbBins::encode`] gives them for the same batch, H and W → `[1]`.
pub fn ab_bins_loss(logits: Tensor<4>, t: &BinTargets) -> Tensor<1> {
    let log_p = log_softmax(logits, 1); // [batch, Q, H, W]
    let picked = log_p.gather(1, t.indices.clone()); // [batch, K, H, W]
    let per_pixel = (picked * t.soft.clone()).sum_dim(1); // [batch, 1, H, W]
    (per_pixel * t.pixel_weight.clone()).mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gamut_has_313_bins_on_a_10_grid() {
        let bins = gamut_bins();
        assert_eq!(bins.len(), 313);
        assert!(
            bins.iter()
                .all(|c| c[0] % 10.0 == 0.0 && c[1] % 10.0 == 0.0)
        );
        assert_eq!(bins[0], [-90.0, 50.0]);
        assert!(bins.contains(&[0.0, 0.0]));
    }

    #[test]
    fn weights_favour_rare_bins_and_have_unit_expectation() {
        let bins = gamut_bins();
        let gray = bins.iter().position(|c| *c == [0.0, 0.0]).unwrap();
        let red = bins.iter().position(|c| *c == [60.0, 40.0]).unwrap();
        let mut counts = vec![1.0; bins.len()];
        counts[gray] = 10_000.0;
        let w = rebalancing_weights(&bins, &counts);
        assert!(w[red] > 5.0 * w[gray], "{} vs {}", w[red], w[gray]);
        // Σ p·w = 1 under the smoothed prior; with the raw counts it is close.
        assert!(w.iter().all(|x| x.is_finite() && *x > 0.0));
        // Uniform counts: every weight is 1.
        let w = rebalancing_weights(&bins, &vec![3.0; bins.len()]);
        let (lo, hi) = w
            .iter()
            .fold((f32::MAX, 0f32), |(l, h), &x| (l.min(x), h.max(x)));
        assert!(lo > 0.5 && hi < 2.0, "{lo} {hi}");
    }

    #[test]
    fn soft_encoding_sums_to_one_and_peaks_at_the_nearest_bin() {
        let device = Device::flex();
        let bins = AbBins::new(gamut_bins(), vec![1.0; 313]);
        let t = bins.encode(&[0.0, 42.0], &[0.0, -17.0], 1, 1, 2, &device);
        let soft = t.soft.into_data().try_to_vec::<f32>().unwrap();
        let idx = t
            .indices
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        // Layout [1, K, 1, 2]: soft[k * 2 + p].
        for p in 0..2 {
            let s: f32 = (0..NEIGHBOURS).map(|k| soft[k * 2 + p]).sum();
            assert!((s - 1.0).abs() < 1e-5);
            assert!((1..NEIGHBOURS).all(|k| soft[k * 2 + p] <= soft[p] + 1e-6));
        }
        assert_eq!(bins.bins[idx[0] as usize], [0.0, 0.0]);
        assert_eq!(bins.bins[idx[1] as usize], [40.0, -20.0]);
    }

    #[test]
    fn the_loss_is_cross_entropy_and_lowest_at_the_target() {
        let device = Device::flex();
        let bins = AbBins::new(gamut_bins(), vec![1.0; 313]);
        let t = bins.encode(&[0.0], &[0.0], 1, 1, 1, &device);
        let gray = bins.bins.iter().position(|c| *c == [0.0, 0.0]).unwrap();
        // Uniform logits: loss = ln 313.
        let uniform = Tensor::<4>::zeros([1, 313, 1, 1], &device);
        let l = ab_bins_loss(uniform, &t).into_scalar::<f32>();
        assert!((l - (313f32).ln()).abs() < 1e-4, "{l}");
        // Logits peaked on the target bin give a lower loss than ones peaked elsewhere.
        let mut v = vec![0f32; 313];
        v[gray] = 8.0;
        let good = ab_bins_loss(
            Tensor::from_data(TensorData::new(v, [1, 313, 1, 1]), &device),
            &t,
        )
        .into_scalar::<f32>();
        let mut v = vec![0f32; 313];
        v[0] = 8.0;
        let bad = ab_bins_loss(
            Tensor::from_data(TensorData::new(v, [1, 313, 1, 1]), &device),
            &t,
        )
        .into_scalar::<f32>();
        assert!(good < l && l < bad, "{good} {l} {bad}");
    }
}
