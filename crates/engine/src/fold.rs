//! Load-time folding of normalisation layers into plain convolution weights, so inference runs
//! one convolution where training ran several ops.
//!
//! - Batch norm (inference form): `y = γ (x − μ) / √(σ² + ε) + β` after a convolution folds into
//!   `w' = w · s`, `b' = (b − μ) · s + β` per output channel, `s = γ / √(σ² + ε)` (Jacob et al. 2018,
//!   arXiv:1712.05877, §3.2).
//! - Spectral norm (Miyato et al. 2018, arXiv:1802.05957; PyTorch `spectral_norm` in eval mode,
//!   which does no power iteration): `W = W_orig / σ`, `σ = uᵀ W_mat v` with `W_mat` the weight
//!   as `[out, in·kh·kw]` (`../shared/reference/deoldify.md`, "Spectral norm").
//! - Weight norm (Salimans & Kingma 2016, arXiv:1602.07868; PyTorch `weight_norm`, dim 0):
//!   `W[o] = g[o] · v[o] / ‖v[o]‖₂` over all of `(in, kh, kw)`.
//!
//! Weights are PyTorch's `[out, in, kh, kw]`, flattened; arithmetic in f64.

use crate::error::EngineError;

fn check(layer: &str, what: &str, len: usize, expected: usize) -> Result<(), EngineError> {
    if len == expected {
        Ok(())
    } else {
        Err(EngineError::Layer {
            layer: layer.to_string(),
            message: format!("{what} has {len} values, expected {expected}"),
        })
    }
}

/// Folds an inference-mode batch norm (`gamma`, `beta`, running `mean` and `var`, `epsilon`) into
/// the preceding convolution's `weight` (`[out, …]`) and `bias` (`[out]`, zeros if it had none),
/// in place.
///
/// # Errors
/// [`EngineError::Layer`] if a length disagrees with `bias.len()` (the output channels).
#[allow(clippy::too_many_arguments)]
pub fn fold_batch_norm(
    layer: &str,
    weight: &mut [f32],
    bias: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
) -> Result<(), EngineError> {
    let out = bias.len();
    for (what, v) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running mean", mean),
        ("running var", var),
    ] {
        check(layer, what, v.len(), out)?;
    }
    if out == 0 || !weight.len().is_multiple_of(out) {
        return Err(EngineError::Layer {
            layer: layer.to_string(),
            message: format!(
                "weight of {} values does not split into {out} outputs",
                weight.len()
            ),
        });
    }
    let per_out = weight.len() / out;
    for o in 0..out {
        let s = gamma[o] as f64 / (var[o] as f64 + epsilon).sqrt();
        for w in &mut weight[o * per_out..(o + 1) * per_out] {
            *w = (*w as f64 * s) as f32;
        }
        bias[o] = ((bias[o] as f64 - mean[o] as f64) * s + beta[o] as f64) as f32;
    }
    Ok(())
}

/// The weight a spectral-normalised layer uses in eval mode: `weight_orig / σ`,
/// `σ = dot(u, W_mat · v)`.
///
/// - `weight_orig`: `[out, in, kh, kw]`; `u`: `[out]`; `v`: `[in · kh · kw]`.
///
/// Returns the weight and σ.
///
/// # Errors
/// [`EngineError::Layer`] if the lengths disagree or σ is not a positive finite number.
pub fn spectral_norm_weight(
    layer: &str,
    weight_orig: &[f32],
    u: &[f32],
    v: &[f32],
) -> Result<(Vec<f32>, f64), EngineError> {
    // A product that overflows can match no slice's length (`usize::MAX` floats do not fit).
    let expected = u.len().saturating_mul(v.len());
    check(layer, "weight_orig", weight_orig.len(), expected)?;
    let cols = v.len();
    let sigma: f64 = u
        .iter()
        .enumerate()
        .map(|(o, &uo)| {
            let row = &weight_orig[o * cols..(o + 1) * cols];
            uo as f64
                * row
                    .iter()
                    .zip(v)
                    .map(|(&w, &vi)| w as f64 * vi as f64)
                    .sum::<f64>()
        })
        .sum();
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(EngineError::Layer {
            layer: layer.to_string(),
            message: format!("spectral norm σ = {sigma} (u and v do not fit the weight)"),
        });
    }
    Ok((
        weight_orig
            .iter()
            .map(|&w| (w as f64 / sigma) as f32)
            .collect(),
        sigma,
    ))
}

/// The weight of a weight-normalised layer (dim 0): `g[o] · v[o] / ‖v[o]‖₂`.
///
/// - `g`: `[out]` (PyTorch stores `[out, 1, 1, 1]`); `v`: `[out, in, kh, kw]`.
///
/// # Errors
/// [`EngineError::Layer`] if `v` does not split into `g.len()` rows or a row is all zeros.
pub fn weight_norm_weight(layer: &str, g: &[f32], v: &[f32]) -> Result<Vec<f32>, EngineError> {
    if g.is_empty() || !v.len().is_multiple_of(g.len()) {
        return Err(EngineError::Layer {
            layer: layer.to_string(),
            message: format!(
                "weight_v of {} values does not split into {} outputs",
                v.len(),
                g.len()
            ),
        });
    }
    let per_out = v.len() / g.len();
    let mut w = Vec::with_capacity(v.len());
    for (o, &go) in g.iter().enumerate() {
        let row = &v[o * per_out..(o + 1) * per_out];
        let norm = row.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if norm == 0.0 {
            return Err(EngineError::Layer {
                layer: layer.to_string(),
                message: format!("weight_v row {o} is all zeros"),
            });
        }
        w.extend(row.iter().map(|&x| (go as f64 * x as f64 / norm) as f32));
    }
    Ok(w)
}
