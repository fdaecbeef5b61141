//! Naive reference implementations (f64 accumulation, no blocking, no SIMD), the ground truth the
//! kernels are tested against.

use crate::conv::{Activation, ConvSpec};

/// Direct convolution, as the definition reads.
///
/// - `input`: `[batch, height, width, in]` NHWC; `weight`: `[out, in, kh, kw]`; `bias`: `[out]`;
///   `residual`: `[batch, oh, ow, out]`, added before the activation.
/// - returns `([batch, oh, ow, out], oh, ow)`, or `None` when the input is smaller than the kernel.
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
    let (oh, ow) = spec.output_size(height, width)?;
    let (cin, cout) = (spec.in_channels, spec.out_channels);
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
                            for c in 0..cin {
                                acc += input[ip * cin + c] as f64
                                    * weight[((o * cin + c) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                    if let Some(r) = residual {
                        acc += r[p * cout + o] as f64;
                    }
                    out[p * cout + o] = match activation {
                        Activation::None => acc as f32,
                        Activation::Relu => acc.max(0.0) as f32,
                        Activation::Tanh => acc.tanh() as f32,
                    };
                }
            }
        }
    }
    Some((out, oh, ow))
}
