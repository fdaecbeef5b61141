//! The critics' output shapes at even and odd sizes, and spectral normalisation: σ converges to
//! the weight's largest singular value (checked independently in f64), and an optimiser step
//! never changes the power-iteration vectors.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use colorize_models::blocks::spectral_norm::{SpectralNormConv2d, SpectralNormConv2dConfig};
use colorize_train::critics::{CriticConfig, CriticKind};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn critic_kinds_parse_by_name_and_default_to_width_64() {
    let _rng = crate::flex_rng();
    assert_eq!(CriticKind::parse("patchgan"), Ok(CriticKind::Patchgan));
    assert_eq!(CriticKind::parse("deoldify"), Ok(CriticKind::Deoldify));
    let err = CriticKind::parse("wgan").unwrap_err();
    assert!(
        err.contains("patchgan") && err.contains("deoldify"),
        "{err}"
    );
    assert_eq!(CriticConfig::new(CriticKind::Patchgan).width, 64);
    let json = serde_json::to_string(&CriticKind::Deoldify).unwrap();
    assert_eq!(json, "\"deoldify\"");
}

#[test]
fn both_critics_give_one_logit_per_patch_at_even_and_odd_sizes() {
    let _rng = crate::flex_rng();
    let device = Device::flex();
    device.seed(3);
    // (H, W) → (h, w): PatchGAN ⌊n/8⌋ − 2, DeOldify's critic ⌊⌊⌊⌊n/2⌋/2⌋/2⌋/2⌋ − 3.
    let cases = [
        (
            CriticKind::Patchgan,
            [(128, 128, 14, 14), (96, 96, 10, 10), (70, 90, 6, 9)],
        ),
        (
            CriticKind::Deoldify,
            [(128, 128, 5, 5), (96, 96, 3, 3), (70, 90, 1, 2)],
        ),
    ];
    for (kind, sizes) in cases {
        let critic = CriticConfig::new(kind).with_width(16).init(&device);
        for (h, w, oh, ow) in sizes {
            let u =
                |c| Tensor::<4>::random([2, c, h, w], Distribution::Uniform(-1.0, 1.0), &device);
            let y = critic.forward(u(1), u(2));
            assert_eq!(y.dims(), [2, 1, oh, ow], "{kind:?} at {h}x{w}");
            assert!(
                values(y).iter().all(|v| v.is_finite()),
                "{kind:?} at {h}x{w}"
            );
        }
        // The power iteration keeps the critic usable (and is a no-op for the PatchGAN).
        let y = critic.power_iteration().forward(
            Tensor::zeros([1, 1, 64, 64], &device),
            Tensor::zeros([1, 2, 64, 64], &device),
        );
        assert!(values(y).iter().all(|v| v.is_finite()));
    }
}

/// The largest singular value of the row-major `rows x cols` matrix `w`, by 200 power
/// iterations on `wᵀw` in f64.
fn largest_singular_value(w: &[f32], rows: usize, cols: usize) -> f64 {
    let w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let mut v: Vec<f64> = (0..cols).map(|i| 1.0 + (i as f64 * 0.37).sin()).collect();
    let mut sigma = 0.0;
    for _ in 0..200 {
        let u: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] * v[c]).sum())
            .collect();
        let mut next: Vec<f64> = (0..cols)
            .map(|c| (0..rows).map(|r| w[r * cols + c] * u[r]).sum())
            .collect();
        let norm = next.iter().map(|x| x * x).sum::<f64>().sqrt();
        next.iter_mut().for_each(|x| *x /= norm);
        v = next;
        sigma = (0..rows)
            .map(|r| {
                let s: f64 = (0..cols).map(|c| w[r * cols + c] * v[c]).sum();
                s * s
            })
            .sum::<f64>()
            .sqrt();
    }
    sigma
}

#[test]
fn power_iteration_drives_the_effective_weights_spectral_norm_to_one() {
    let _rng = crate::flex_rng();
    let device = Device::flex();
    device.seed(11);
    let (cout, cin, k) = (16, 8, 3);
    let cols = cin * k * k;
    let mut conv = Conv2dConfig::new([cin, cout], [k, k]).init(&device);
    // A large weight: σ₁ ≈ 3 · (√72 + √16) ≈ 37.
    conv.weight = Param::from_tensor(Tensor::random(
        [cout, cin, k, k],
        Distribution::Normal(0.0, 3.0),
        &device,
    ));
    let orig = values(conv.weight.val());
    let sigma_orig = largest_singular_value(&orig, cout, cols);
    assert!(sigma_orig > 20.0, "σ₁(weight_orig) = {sigma_orig}");
    // Random u and v, no iteration yet: σ is a poor estimate.
    let mut sn = SpectralNormConv2d::from_conv(conv, 0);
    let before = largest_singular_value(&values(sn.weight()), cout, cols);
    assert!((before - 1.0).abs() > 0.1, "σ₁ before iterating: {before}");
    for _ in 0..60 {
        sn = sn.power_iteration(1);
    }
    let after = largest_singular_value(&values(sn.weight()), cout, cols);
    assert!((after - 1.0).abs() < 0.02, "σ₁ after iterating: {after}");
    let sigma = values(sn.sigma())[0] as f64;
    eprintln!(
        "σ₁(weight_orig) {sigma_orig:.4}, σ estimate {sigma:.4}; σ₁(weight) {before:.4} → {after:.6}"
    );
    assert!(
        (sigma / sigma_orig - 1.0).abs() < 0.02,
        "σ estimate {sigma}, true {sigma_orig}"
    );
    // weight_orig is untouched by the iteration.
    assert_eq!(values(sn.weight_orig.val()), orig);
}

#[test]
fn an_optimiser_step_changes_weight_orig_but_never_u_or_v() {
    let _rng = crate::flex_rng();
    let device = Device::flex().autodiff();
    device.seed(5);
    let sn = SpectralNormConv2dConfig::new([4, 8], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let (u0, v0) = (values(sn.weight_u.val()), values(sn.weight_v.val()));
    let w0 = values(sn.weight_orig.val());
    let b0 = values(sn.bias.as_ref().unwrap().val());
    let x = Tensor::<4>::random([2, 4, 9, 9], Distribution::Uniform(-1.0, 1.0), &device);
    let loss = sn.forward(x).square().mean();
    let grads = GradientsParams::from_grads(loss.backward(), &sn);
    assert!(
        grads.get::<4>(sn.weight_orig.id).is_some(),
        "weight_orig has a gradient"
    );
    assert!(
        grads.get::<1>(sn.weight_u.id).is_none(),
        "u has no gradient"
    );
    assert!(
        grads.get::<1>(sn.weight_v.id).is_none(),
        "v has no gradient"
    );
    // Weight decay too: AdamW decays only the parameters it steps.
    let mut optim = AdamWConfig::new().with_weight_decay(0.1).init();
    let sn = optim.step(1e-2, sn, grads);
    assert_eq!(values(sn.weight_u.val()), u0, "u changed");
    assert_eq!(values(sn.weight_v.val()), v0, "v changed");
    assert_ne!(
        values(sn.weight_orig.val()),
        w0,
        "weight_orig did not change"
    );
    assert_ne!(
        values(sn.bias.as_ref().unwrap().val()),
        b0,
        "bias did not change"
    );
}
