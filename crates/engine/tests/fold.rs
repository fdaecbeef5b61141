//! Normalisation folding against the layers it replaces.

use colorize_engine::fold::{fold_batch_norm, spectral_norm_weight, weight_norm_weight};
use colorize_engine::reference::conv2d;
use colorize_engine::{Activation, ConvSpec};

#[test]
fn folded_batch_norm_equals_conv_then_batch_norm() {
    let spec = ConvSpec::square(3, 4, 3, 1, 1);
    let weight: Vec<f32> = (0..4 * 3 * 9)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
        .collect();
    let input: Vec<f32> = (0..5 * 6 * 3)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1)
        .collect();
    let (gamma, beta) = ([0.5, 1.5, -1.0, 2.0], [0.1, -0.2, 0.3, 0.0]);
    let (mean, var) = ([0.2, -0.1, 0.0, 1.0], [0.5, 2.0, 1.0, 0.1]);
    let (plain, _, _) = conv2d(
        &spec,
        &input,
        1,
        5,
        6,
        &weight,
        None,
        None,
        Activation::None,
    )
    .unwrap();
    let expected: Vec<f32> = plain
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            let o = i % 4;
            gamma[o] * (y - mean[o]) / (var[o] + 1e-5f32).sqrt() + beta[o]
        })
        .collect();
    let (mut w, mut b) = (weight.clone(), vec![0.0; 4]);
    fold_batch_norm("conv", &mut w, &mut b, &gamma, &beta, &mean, &var, 1e-5).unwrap();
    let (folded, _, _) =
        conv2d(&spec, &input, 1, 5, 6, &w, Some(&b), None, Activation::None).unwrap();
    for (a, e) in folded.iter().zip(&expected) {
        assert!((a - e).abs() < 1e-5, "{a} vs {e}");
    }
    assert!(
        fold_batch_norm(
            "conv",
            &mut w,
            &mut b,
            &gamma[..3],
            &beta,
            &mean,
            &var,
            1e-5
        )
        .is_err()
    );
}

#[test]
fn spectral_norm_divides_by_the_given_singular_value() {
    // W = [[3, 0], [0, 1]] with u, v its top singular vectors: σ = 3.
    let (w, sigma) =
        spectral_norm_weight("sn", &[3.0, 0.0, 0.0, 1.0], &[1.0, 0.0], &[1.0, 0.0]).unwrap();
    assert!((sigma - 3.0).abs() < 1e-12);
    assert_eq!(w, vec![1.0, 0.0, 0.0, 1.0 / 3.0]);
    // A rank-one weight u vᵀ · 5 with unit u, v: σ = 5 and the folded weight is u vᵀ.
    let (u, v) = ([0.6f32, 0.8], [0.0f32, 1.0, 0.0]);
    let orig: Vec<f32> = u
        .iter()
        .flat_map(|&a| v.iter().map(move |&b| 5.0 * a * b))
        .collect();
    let (w, sigma) = spectral_norm_weight("sn", &orig, &u, &v).unwrap();
    assert!((sigma - 5.0).abs() < 1e-6);
    assert!(w.iter().zip(&orig).all(|(a, b)| (a - b / 5.0).abs() < 1e-7));
    assert!(spectral_norm_weight("sn", &orig, &u, &v[..2]).is_err());
    assert!(spectral_norm_weight("sn", &orig, &[0.0, 0.0], &v).is_err());
}

#[test]
fn weight_norm_rows_have_norm_g() {
    let v = [3.0f32, 4.0, 0.0, 0.0, 0.0, 2.0];
    let w = weight_norm_weight("wn", &[10.0, -1.0], &v).unwrap();
    assert_eq!(w, vec![6.0, 8.0, 0.0, 0.0, 0.0, -1.0]);
    assert!(weight_norm_weight("wn", &[1.0, 1.0, 1.0, 1.0], &v[..5]).is_err());
    assert!(weight_norm_weight("wn", &[1.0, 1.0], &[1.0, 0.0, 0.0, 0.0]).is_err());
}
