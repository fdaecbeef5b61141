//! Losses between a predicted and a target colour, as plain functions on burn tensors so that
//! every training loop (regression today, GAN generators later) shares them.
//!
//! Both take `pred` and `target` of the same shape `[batch, 2, H, W]`: the ab channels encoded as
//! the model's I/O contract says (default `ab / 110`, roughly -1..1; see
//! `colorize_models::ModelIo::encode_target`), and return the mean over every element as a
//! one-element tensor `[1]`, which `backward()` differentiates. Shapes that differ are a
//! programming error, not bad input: burn panics on them.
//!
//! Why the regression trainer uses L1 and not MSE: the colour of most objects is ambiguous (a shirt
//! may be red or blue), and the MSE optimum is the conditional *mean* of the plausible colours,
//! which averages opposite hues to gray-brown — the washed-out sepia look of early colourisers
//! (Zhang et al. 2016, arXiv:1603.08511, §2.1). L1's optimum is the per-channel *median*, which
//! keeps more saturation, and it is less dominated by the few strongly coloured outlier pixels.
//! pix2pix (Isola et al. 2017, arXiv:1611.07004, §3.1) makes the same choice for its
//! reconstruction term. MSE is here for comparison and for losses that want it (e.g. a least-squares
//! GAN's critic, Mao et al. 2017, arXiv:1611.04076).

use burn::prelude::*;
use burn::tensor::activation::{relu, softplus};
use serde::{Deserialize, Serialize};

/// Mean absolute error, `mean(|pred − target|)`.
///
/// # Shapes
/// `pred`, `target`: `[batch, 2, H, W]` (ab as the model encodes it) → `[1]`.
pub fn l1_ab(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (pred - target).abs().mean()
}

/// Mean squared error, `mean((pred − target)²)`.
///
/// # Shapes
/// `pred`, `target`: `[batch, 2, H, W]` (ab as the model encodes it) → `[1]`.
pub fn mse_ab(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let d = pred - target;
    (d.clone() * d).mean()
}

/// The adversarial objective of a GAN schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GanLoss {
    /// The non-saturating loss of Goodfellow et al. 2014 (arXiv:1406.2661, §3) as pix2pix uses it:
    /// the critic minimises `softplus(−D(real)) + softplus(D(fake))` (binary cross-entropy on
    /// logits), the generator `softplus(−D(fake))`.
    NonSaturating,
    /// The hinge loss (Lim & Ye 2017, arXiv:1705.02894; SAGAN, arXiv:1805.08318, eq. 5): the
    /// critic minimises `relu(1 − D(real)) + relu(1 + D(fake))`, the generator `−D(fake)`.
    Hinge,
}

/// The critic's loss on real and generated samples.
///
/// # Shapes
/// `real`, `fake`: critic logits, `[batch, 1, h, w]` (one per patch) → `[1]`, the mean over
/// patches of each term, summed.
pub fn critic_loss(kind: GanLoss, real: Tensor<4>, fake: Tensor<4>) -> Tensor<1> {
    match kind {
        GanLoss::NonSaturating => softplus(real.neg(), 1.0).mean() + softplus(fake, 1.0).mean(),
        GanLoss::Hinge => {
            relu(real.neg().add_scalar(1.0)).mean() + relu(fake.add_scalar(1.0)).mean()
        }
    }
}

/// The generator's adversarial term: how far the critic is from taking `fake` for real.
///
/// # Shapes
/// `fake`: critic logits on generated samples, `[batch, 1, h, w]` → `[1]`.
pub fn generator_adversarial_loss(kind: GanLoss, fake: Tensor<4>) -> Tensor<1> {
    match kind {
        GanLoss::NonSaturating => softplus(fake.neg(), 1.0).mean(),
        GanLoss::Hinge => fake.mean().neg(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: [f32; 8], device: &Device) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), [1, 2, 2, 2]), device)
    }

    fn scalar(x: Tensor<1>) -> f32 {
        assert_eq!(x.dims(), [1]);
        x.into_scalar::<f32>()
    }

    #[test]
    fn losses_match_hand_computed_values() {
        let device = Device::flex();
        let pred = [0.5, -0.5, 0.0, 1.0, 0.25, 0.0, -1.0, 0.0];
        let target = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        // |d| = 0.5, 0.5, 0, 1, 0.25, 0, 1, 1 → sum 4.25; d² sum = 0.25+0.25+1+0.0625+1+1 = 3.5625.
        let l1 = scalar(l1_ab(t(pred, &device), t(target, &device)));
        let mse = scalar(mse_ab(t(pred, &device), t(target, &device)));
        assert!((l1 - 4.25 / 8.0).abs() < 1e-6, "{l1}");
        assert!((mse - 3.5625 / 8.0).abs() < 1e-6, "{mse}");
        assert_eq!(scalar(l1_ab(t(pred, &device), t(pred, &device))), 0.0);
    }

    #[test]
    fn l1_gradient_is_the_sign_over_n_and_mse_the_scaled_difference() {
        let device = Device::flex().autodiff();
        let pred = t([0.5, -0.5, 0.2, -0.2, 1.0, -1.0, 0.1, -0.1], &device).require_grad();
        let target = t([0.0; 8], &device);
        let grads = l1_ab(pred.clone(), target.clone()).backward();
        let g = pred
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (gi, p) in g
            .iter()
            .zip([0.5f32, -0.5, 0.2, -0.2, 1.0, -1.0, 0.1, -0.1])
        {
            assert!((gi - p.signum() / 8.0).abs() < 1e-6, "{g:?}");
        }
        let grads = mse_ab(pred.clone(), target).backward();
        let g = pred
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for (gi, p) in g
            .iter()
            .zip([0.5f32, -0.5, 0.2, -0.2, 1.0, -1.0, 0.1, -0.1])
        {
            assert!((gi - 2.0 * p / 8.0).abs() < 1e-6, "{g:?}");
        }
    }
    #[test]
    fn gan_losses_match_their_formulas() {
        let device = Device::flex();
        let logits = |v: [f32; 2]| {
            Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 1, 2]), &device)
        };
        let sp = |x: f32| (1.0 + x.exp()).ln();
        let (r, f) = ([2.0f32, -0.5], [0.3f32, -3.0]);
        let ns = scalar(critic_loss(GanLoss::NonSaturating, logits(r), logits(f)));
        let want = (sp(-r[0]) + sp(-r[1])) / 2.0 + (sp(f[0]) + sp(f[1])) / 2.0;
        assert!((ns - want).abs() < 1e-5, "{ns} {want}");
        let hinge = scalar(critic_loss(GanLoss::Hinge, logits(r), logits(f)));
        // relu(1-2)=0, relu(1.5)=1.5 → 0.75; relu(1.3)=1.3, relu(-2)=0 → 0.65.
        assert!((hinge - 1.4).abs() < 1e-6, "{hinge}");
        let g = scalar(generator_adversarial_loss(
            GanLoss::NonSaturating,
            logits(f),
        ));
        assert!((g - (sp(-f[0]) + sp(-f[1])) / 2.0).abs() < 1e-5);
        let g = scalar(generator_adversarial_loss(GanLoss::Hinge, logits(f)));
        assert!((g - 1.35).abs() < 1e-6, "{g}");
        // A critic that is right about both has a lower loss than one that is wrong.
        let right = scalar(critic_loss(
            GanLoss::Hinge,
            logits([3.0, 3.0]),
            logits([-3.0, -3.0]),
        ));
        let wrong = scalar(critic_loss(
            GanLoss::Hinge,
            logits([-3.0, -3.0]),
            logits([3.0, 3.0]),
        ));
        assert!(right < wrong);
    }
}
