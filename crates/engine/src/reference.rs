//! Naive reference implementations (f64 accumulation, no blocking, no SIMD), the ground truth the
//! kernels are tested against.

use crate::conv::{Activation, ConvSpec};

fn activate(x: f64, activation: Activation) -> f32 {
    (match activation {
        Activation::None => x,
        Activation::Relu => x.max(0.0),
        Activation::Tanh => x.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
    }) as f32
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
