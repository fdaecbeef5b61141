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
}
