//! Naive reference implementations (f64 accumulation, no blocking, no SIMD), the ground truth the
//! kernels are tested against.

use crate::conv::{Activation, ConvSpec};

fn activate(x: f64, activation: Activation) -> f32 {
    (match activation {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Gelu => gelu(x),
    }) as f32
}

/// The complementary error function `erfc(x) = 1 − erf(x)` in f64, to about 1e-15 relative:
/// for `0 ≤ x < 3` one minus the series `erf(x) = 2/√π · e^{−x²} Σ_n 2ⁿ x^{2n+1} / (2n+1)!!`
/// (all terms positive, no cancellation), for `x ≥ 3` Laplace's continued fraction
/// `e^{−x²}/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …))))` evaluated backwards over 200 terms, and
/// `2 − erfc(−x)` for negative `x` (Abramowitz & Stegun 7.1.6, 7.1.14).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let two_over_sqrt_pi = std::f64::consts::FRAC_2_SQRT_PI;
    if x < 3.0 {
        let (mut term, mut sum) = (x, x);
        let mut n = 1.0;
        while term > 1e-18 * sum {
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
            n += 1.0;
        }
        return 1.0 - two_over_sqrt_pi * (-x * x).exp() * sum;
    }
    let mut f = x;
    for k in (1..=200).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

/// The error function in f64 (`1 − erfc(x)`, see [`erfc`]).
pub fn erf(x: f64) -> f64 {
    1.0 - erfc(x)
}

/// The exact GELU `0.5 · x · (1 + erf(x/√2)) = 0.5 · x · erfc(−x/√2)` in f64 (the second form keeps
/// its relative accuracy for large negative `x`).
pub fn gelu(x: f64) -> f64 {
    0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// Layer norm over the channels of each pixel with the biased variance, in f64:
/// `(x − mean) / sqrt(var + eps) · weight[c] + bias[c]` (PyTorch `LayerNorm` over the last dim
/// of NHWC; ConvNeXt's channels-first LayerNorm). `x`: pixels of `weight.len()` values.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f64) -> Vec<f32> {
    let c = weight.len();
    let mut out = Vec::with_capacity(x.len());
    for px in x.chunks_exact(c) {
        let mean = px.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (k, &v) in px.iter().enumerate() {
            out.push(((v as f64 - mean) * inv * weight[k] as f64 + bias[k] as f64) as f32);
        }
    }
    out
}

/// DETR's normalised sine position encoding for an `h x w` map (`num_pos_feats = channels / 2`,
/// temperature 10000, `normalize=True`, scale 2π; DDColor `../shared/reference/ddcolor.md` §3.3),
/// in f64: `[h, w, channels]` row-major. Channel `2m` / `2m+1` is `sin` / `cos` of
/// `ye / 10000^(2m/npf)` with `ye = (y+1)/(h+1e-6)·2π` (channels `0..npf`), and channel
/// `npf + 2m` / `npf + 2m+1` the same of `xe = (x+1)/(w+1e-6)·2π`. `channels` must be a multiple
/// of 4.
pub fn sine_position(h: usize, w: usize, channels: usize) -> Vec<f64> {
    let npf = channels / 2;
    let tau = 2.0 * std::f64::consts::PI;
    let dim_t = |k: usize| 10000f64.powf((2 * (k / 2)) as f64 / npf as f64);
    let mut out = Vec::with_capacity(h * w * channels);
    for y in 0..h {
        let ye = (y + 1) as f64 / (h as f64 + 1e-6) * tau;
        for x in 0..w {
            let xe = (x + 1) as f64 / (w as f64 + 1e-6) * tau;
            for e in [ye, xe] {
                for m in 0..npf / 2 {
                    out.push((e / dim_t(2 * m)).sin());
                    out.push((e / dim_t(2 * m + 1)).cos());
                }
            }
        }
    }
    out
}

/// Multi-head scaled dot-product attention in f64, per batch item (PyTorch
/// `nn.MultiheadAttention` between its input and output projections: no mask, no dropout).
///
/// - `q`: `[batch, nq, c]`; `k`, `v`: `[batch, nk, c]`; channel `ch` belongs to head
///   `ch / (c / heads)`.
/// - returns `[batch, nq, c]`: per head `softmax_over_keys(Q_h K_hᵀ / sqrt(c/heads)) V_h`, heads
///   concatenated in channel order.
pub fn multi_head_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    batch: usize,
    c: usize,
    heads: usize,
) -> Vec<f32> {
    let (nq, nk, d) = (q.len() / batch / c, k.len() / batch / c, c / heads);
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0f32; q.len()];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..nq {
                let qi = &q[(b * nq + i) * c + h * d..][..d];
                let s: Vec<f64> = (0..nk)
                    .map(|j| {
                        let kj = &k[(b * nk + j) * c + h * d..][..d];
                        qi.iter()
                            .zip(kj)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|&x| (x - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for ch in 0..d {
                    let o: f64 = (0..nk)
                        .map(|j| e[j] * v[(b * nk + j) * c + h * d + ch] as f64)
                        .sum();
                    out[(b * nq + i) * c + h * d + ch] = (o / sum) as f32;
                }
            }
        }
    }
    out
}

/// DDColor's query projection (`einsum("bqc,bchw->bqhw")` then a 1x1 convolution over the query
/// maps) in f64: per batch item `W[o][c] = Σ_n mix[o][n] · tokens[n][c]` and
/// `y[p][o] = Σ_c x[p][c] · W[o][c] (+ residual[p][o])`.
///
/// - `x`: `[batch, pixels, c]`; `tokens`: `[batch, n, c]`; `mix`: `[outputs, n]`;
///   `residual`: `[batch, pixels, outputs]`.
/// - returns `[batch, pixels, outputs]`.
pub fn token_projection(
    x: &[f32],
    tokens: &[f32],
    mix: &[f32],
    batch: usize,
    c: usize,
    outputs: usize,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let (pixels, n) = (x.len() / batch / c, tokens.len() / batch / c);
    let mut out = Vec::with_capacity(batch * pixels * outputs);
    for b in 0..batch {
        let w: Vec<f64> = (0..outputs * c)
            .map(|i| {
                let (o, ch) = (i / c, i % c);
                (0..n)
                    .map(|t| mix[o * n + t] as f64 * tokens[(b * n + t) * c + ch] as f64)
                    .sum()
            })
            .collect();
        for p in 0..pixels {
            let px = &x[(b * pixels + p) * c..][..c];
            for o in 0..outputs {
                let mut acc: f64 = px
                    .iter()
                    .zip(&w[o * c..(o + 1) * c])
                    .map(|(&a, &b)| a as f64 * b)
                    .sum();
                if let Some(r) = residual {
                    acc += r[(b * pixels + p) * outputs + o] as f64;
                }
                out.push(acc as f32);
            }
        }
    }
    out
}

/// Input and output channels per group, or `None` for an invalid group count.
fn group_sizes(spec: &ConvSpec) -> Option<(usize, usize)> {
    let g = spec.groups;
    (g > 0 && spec.in_channels.is_multiple_of(g) && spec.out_channels.is_multiple_of(g))
        .then(|| (spec.in_channels / g, spec.out_channels / g))
}

/// Direct convolution, as the definition reads (`spec.transposed` is handed to
/// [`conv_transpose2d`]): output channel `o` of group `g = o / (out / groups)` sums over the
/// input channels `g · in/groups .. (g + 1) · in/groups` (PyTorch `Conv2d(groups=…)`).
///
/// - `input`: `[batch, height, width, in]` NHWC; `weight`: `[out, in / groups, kh, kw]`;
///   `bias`: `[out]`; `residual`: `[batch, oh, ow, out]`, added before the activation.
/// - returns `([batch, oh, ow, out], oh, ow)`, or `None` when the input is smaller than the
///   kernel, or `groups` is 0 or does not divide both channel counts.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    spec: &ConvSpec,
    input: &[f32],
    batch: usize,
    height: usize,
    width: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    activation: Activation,
) -> Option<(Vec<f32>, usize, usize)> {
    if spec.transposed {
        return conv_transpose2d(
            spec, input, batch, height, width, weight, bias, residual, activation,
        );
    }
    let (oh, ow) = spec.output_size(height, width)?;
    let (cin, cout) = (spec.in_channels, spec.out_channels);
    let (cin_g, cout_g) = group_sizes(spec)?;
    let [kh, kw] = spec.kernel;
    let mut out = vec![0f32; batch * oh * ow * cout];
    for b in 0..batch {
        for oy in 0..oh {
            for ox in 0..ow {
                let p = (b * oh + oy) * ow + ox;
                for o in 0..cout {
                    let mut acc = bias.map_or(0.0, |bs| bs[o] as f64);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * spec.stride[0] + ky * spec.dilation[0]) as isize
                                - spec.padding[0] as isize;
                            let ix = (ox * spec.stride[1] + kx * spec.dilation[1]) as isize
                                - spec.padding[1] as isize;
                            if iy < 0 || ix < 0 || iy as usize >= height || ix as usize >= width {
                                continue;
                            }
                            let ip = (b * height + iy as usize) * width + ix as usize;
                            for cl in 0..cin_g {
                                let c = o / cout_g * cin_g + cl;
                                acc += input[ip * cin + c] as f64
                                    * weight[((o * cin_g + cl) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                    if let Some(r) = residual {
                        acc += r[p * cout + o] as f64;
                    }
                    out[p * cout + o] = activate(acc, activation);
                }
            }
        }
    }
    Some((out, oh, ow))
}

/// Transposed convolution in its scatter form (each input pixel adds `in · w` to the output
/// pixels under its taps), the opposite formulation to the engine's gather.
///
/// `weight`: `[in, out / groups, kh, kw]` (PyTorch `ConvTranspose2d`; input channel `c` of group
/// `g = c / (in / groups)` spreads over the output channels of group `g`); the rest as
/// [`conv2d`].
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d(
    spec: &ConvSpec,
    input: &[f32],
    batch: usize,
    height: usize,
    width: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    activation: Activation,
) -> Option<(Vec<f32>, usize, usize)> {
    let (oh, ow) = spec.output_size(height, width)?;
    let (cin, cout) = (spec.in_channels, spec.out_channels);
    let (cin_g, cout_g) = group_sizes(spec)?;
    let [kh, kw] = spec.kernel;
    let mut acc = vec![0f64; batch * oh * ow * cout];
    for b in 0..batch {
        for iy in 0..height {
            for ix in 0..width {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let oy = (iy * spec.stride[0] + ky * spec.dilation[0]) as isize
                            - spec.padding[0] as isize;
                        let ox = (ix * spec.stride[1] + kx * spec.dilation[1]) as isize
                            - spec.padding[1] as isize;
                        if oy < 0 || ox < 0 || oy as usize >= oh || ox as usize >= ow {
                            continue;
                        }
                        let p = (b * oh + oy as usize) * ow + ox as usize;
                        let ip = (b * height + iy) * width + ix;
                        for c in 0..cin {
                            for ol in 0..cout_g {
                                let o = c / cin_g * cout_g + ol;
                                acc[p * cout + o] += input[ip * cin + c] as f64
                                    * weight[((c * cout_g + ol) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let out = acc
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let o = i % cout;
            let v = v + bias.map_or(0.0, |bs| bs[o] as f64) + residual.map_or(0.0, |r| r[i] as f64);
            activate(v, activation)
        })
        .collect();
    Some((out, oh, ow))
}
