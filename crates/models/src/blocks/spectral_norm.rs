//! Spectral normalisation of a convolution (Miyato, Kataoka, Koyama & Yoshida 2018,
//! arXiv:1802.05957), in the state-dict layout of PyTorch's `torch.nn.utils.spectral_norm`
//! (`dim = 0`, one power iteration per training step, `eps = 1e-12`).
//!
//! The layer keeps the trained weight `weight_orig` `[out, in, kh, kw]` and two vectors that are
//! not trained, `weight_u` `[out]` and `weight_v` `[in·kh·kw]`, the running estimates of the
//! first left and right singular vectors of `W = weight_orig` viewed as `[out, in·kh·kw]`. The
//! convolution uses
//!
//! ```text
//! weight = weight_orig / σ,   σ = uᵀ W v     (u, v constants: detached)
//! ```
//!
//! exactly PyTorch's formula, so gradients flow through `W` in both the numerator and σ. PyTorch
//! updates u and v in place inside `forward` in training mode; burn's `forward(&self)` cannot, so
//! the training loop calls [`SpectralNormConv2d::power_iteration`] (or
//! [`ConvLayer::power_iteration`]) once per optimiser step:
//! `v = normalize(Wᵀ u)`, `u = normalize(W v)` on detached tensors. Inference is PyTorch's eval
//! mode: σ from the stored u and v, no iteration.
//!
//! For the engine, [`conv_weight`] reads either a plain `weight` or `weight_orig`/`weight_u`/
//! `weight_v` and folds 1/σ into the weight with [`colorize_engine::fold::spectral_norm_weight`]
//! (the fold `colorize import` applies to DeOldify's checkpoints, too), so every builder that goes
//! through [`crate::layers::conv`] reads spectral-normalised layers as they are saved.
//!
//! [`ConvLayer`] lets a network switch spectral norm on by config: with burn-store's
//! `skip_enum_variants(true)` (how [`crate::model_dir`] saves and loads) its keys are
//! `conv.weight` for a plain convolution and `conv.weight_orig`, `conv.weight_u`, `conv.weight_v`
//! for a spectral one.

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::error::ModelError;
use crate::weights::{TensorData, Weights};

/// The ε of PyTorch's `spectral_norm` (`F.normalize(x, eps=1e-12)`: `x / max(‖x‖, ε)`).
pub const SPECTRAL_NORM_EPS: f64 = 1e-12;

/// Power iterations run when a layer is created, so σ is a good estimate from the first step
/// (PyTorch's `torch.nn.utils.parametrizations.spectral_norm` runs 15; the older
/// `torch.nn.utils.spectral_norm` runs none and relies on training steps).
pub const INIT_POWER_ITERATIONS: usize = 15;

/// Configuration of a [`SpectralNormConv2d`], mirroring burn's [`Conv2dConfig`].
#[derive(Config, Debug)]
pub struct SpectralNormConv2dConfig {
    /// `[in, out]` channels.
    pub channels: [usize; 2],
    /// Kernel size `[kh, kw]`.
    pub kernel_size: [usize; 2],
    /// Stride.
    #[config(default = "[1, 1]")]
    pub stride: [usize; 2],
    /// Dilation.
    #[config(default = "[1, 1]")]
    pub dilation: [usize; 2],
    /// Channel groups.
    #[config(default = "1")]
    pub groups: usize,
    /// Padding.
    #[config(default = "PaddingConfig2d::Valid")]
    pub padding: PaddingConfig2d,
    /// Whether the convolution has a bias.
    #[config(default = true)]
    pub bias: bool,
    /// Power iterations at creation (see [`INIT_POWER_ITERATIONS`]).
    #[config(default = "INIT_POWER_ITERATIONS")]
    pub init_power_iterations: usize,
}

impl SpectralNormConv2dConfig {
    /// The same convolution as burn's `Conv2dConfig` gives (Kaiming-uniform weight), with u and v
    /// random unit vectors refined by `init_power_iterations` power iterations.
    pub fn init(&self, device: &Device) -> SpectralNormConv2d {
        let conv = Conv2dConfig::new(self.channels, self.kernel_size)
            .with_stride(self.stride)
            .with_dilation(self.dilation)
            .with_groups(self.groups)
            .with_padding(self.padding.clone())
            .with_bias(self.bias)
            .init(device);
        SpectralNormConv2d::from_conv(conv, self.init_power_iterations)
    }
}

/// A spectral-normalised 2-D convolution with PyTorch's `spectral_norm` parameters.
#[derive(Module, Debug)]
pub struct SpectralNormConv2d {
    /// The trained weight before normalisation, `[out, in/groups, kh, kw]`.
    pub weight_orig: Param<Tensor<4>>,
    /// Optional bias `[out]` (not normalised).
    pub bias: Option<Param<Tensor<1>>>,
    /// Estimate of the first left singular vector, `[out]`; not trained (no gradient).
    pub weight_u: Param<Tensor<1>>,
    /// Estimate of the first right singular vector, `[in/groups · kh · kw]`; not trained.
    pub weight_v: Param<Tensor<1>>,
    /// Stride.
    pub stride: [usize; 2],
    /// Kernel size.
    pub kernel_size: [usize; 2],
    /// Dilation.
    pub dilation: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Padding.
    #[module(skip)]
    pub padding: PaddingConfig2d,
}

/// `x / max(‖x‖₂, ε)`, PyTorch's `F.normalize` on a vector.
fn normalize(x: Tensor<1>) -> Tensor<1> {
    let norm = x.clone().square().sum().sqrt().clamp_min(SPECTRAL_NORM_EPS);
    x / norm
}

/// A vector parameter that the optimiser never changes: no gradient is recorded for it, so
/// burn's optimisers (which step only parameters with gradients) leave it as it is.
fn buffer(value: Tensor<1>) -> Param<Tensor<1>> {
    Param::from_tensor(value).set_require_grad(false)
}

/// `((top, bottom), (left, right))` padding for an input of `height` x `width` (burn's
/// `PaddingConfig2d::calculate_padding_2d_pairs`, which is crate-private; `Same` puts the odd
/// pixel at the end, as ONNX does).
fn padding_pairs(
    padding: &PaddingConfig2d,
    height: usize,
    width: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [(usize, usize); 2] {
    let same = |k: usize, s: usize, n: usize| {
        let out = n.div_ceil(s);
        let total = if out > 0 {
            ((out - 1) * s + k).saturating_sub(n)
        } else {
            0
        };
        (total / 2, total - total / 2)
    };
    match *padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Same => [
            same(kernel[0], stride[0], height),
            same(kernel[1], stride[1], width),
        ],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
    }
}

impl SpectralNormConv2d {
    /// Wraps an existing convolution: its weight becomes `weight_orig`, its bias the bias; u and
    /// v start as random unit vectors (normal samples, normalised, as PyTorch's) and are refined
    /// by `power_iterations` iterations.
    pub fn from_conv(conv: Conv2d, power_iterations: usize) -> Self {
        let w = conv.weight.val();
        let device = w.device();
        let [out, per_group, kh, kw] = w.dims();
        let random = |n: usize| {
            normalize(Tensor::<1>::random(
                [n],
                Distribution::Normal(0.0, 1.0),
                &device,
            ))
        };
        Self {
            weight_u: buffer(random(out)),
            weight_v: buffer(random(per_group * kh * kw)),
            weight_orig: conv.weight,
            bias: conv.bias,
            stride: conv.stride,
            kernel_size: conv.kernel_size,
            dilation: conv.dilation,
            groups: conv.groups,
            padding: conv.padding,
        }
        .power_iteration(power_iterations)
    }

    /// `weight_orig` as the matrix `[out, in/groups · kh · kw]`.
    fn matrix(&self) -> Tensor<2> {
        let w = self.weight_orig.val();
        let [out, per_group, kh, kw] = w.dims();
        w.reshape([out, per_group * kh * kw])
    }

    /// σ = uᵀ W v, the current estimate of the largest singular value of `weight_orig`, with u
    /// and v detached (gradients flow through W only). Shape `[1]`.
    pub fn sigma(&self) -> Tensor<1> {
        let w = self.matrix();
        let [out, cols] = w.dims();
        let u = self.weight_u.val().detach().reshape([1, out]);
        let v = self.weight_v.val().detach().reshape([cols, 1]);
        u.matmul(w.matmul(v)).reshape([1]) // [1, out] · [out, 1]
    }

    /// The weight the convolution uses, `weight_orig / σ`, `[out, in/groups, kh, kw]`.
    pub fn weight(&self) -> Tensor<4> {
        self.weight_orig.val() / self.sigma().reshape([1, 1, 1, 1])
    }

    /// `steps` power iterations on detached tensors: `v = normalize(Wᵀ u)`, `u = normalize(W v)`
    /// (PyTorch's update, which its `forward` runs once per training step). Call it once per
    /// optimiser step; `weight_orig` and the bias are unchanged.
    pub fn power_iteration(mut self, steps: usize) -> Self {
        if steps == 0 {
            return self;
        }
        let w = self.matrix().detach();
        let [out, cols] = w.dims();
        let mut u = self.weight_u.val().detach();
        let mut v = self.weight_v.val().detach();
        for _ in 0..steps {
            v = normalize(
                w.clone()
                    .transpose()
                    .matmul(u.reshape([out, 1]))
                    .reshape([cols]),
            );
            u = normalize(
                w.clone()
                    .matmul(v.clone().reshape([cols, 1]))
                    .reshape([out]),
            );
        }
        self.weight_u = self.weight_u.map(|_| u);
        self.weight_v = self.weight_v.map(|_| v);
        self
    }

    /// Applies the normalised convolution.
    ///
    /// # Shapes
    /// `x: [batch, in, H, W]` → `[batch, out, H', W']`, as burn's `Conv2d` with the same
    /// geometry.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let options = ConvOptions::new_with_padding(
            self.stride,
            padding_pairs(&self.padding, h, w, self.kernel_size, self.stride),
            self.dilation,
            self.groups,
        );
        conv2d(
            x,
            self.weight(),
            self.bias.as_ref().map(|b| b.val()),
            options,
        )
    }
}

/// A convolution with or without spectral normalisation, chosen by config. Saved with
/// `skip_enum_variants(true)`, its keys are those of the variant's fields: `weight` (+ `bias`)
/// or `weight_orig`, `weight_u`, `weight_v` (+ `bias`).
#[derive(Module, Debug)]
pub enum ConvLayer {
    /// burn's plain convolution.
    Plain(Conv2d),
    /// A spectral-normalised convolution.
    Spectral(SpectralNormConv2d),
}

impl ConvLayer {
    /// The convolution `config` describes, spectral-normalised when `spectral` (u and v
    /// initialised with [`INIT_POWER_ITERATIONS`] iterations).
    pub fn init(config: &Conv2dConfig, spectral: bool, device: &Device) -> Self {
        let conv = config.init(device);
        if spectral {
            Self::Spectral(SpectralNormConv2d::from_conv(conv, INIT_POWER_ITERATIONS))
        } else {
            Self::Plain(conv)
        }
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// `x: [batch, in, H, W]` → `[batch, out, H', W']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Plain(c) => c.forward(x),
            Self::Spectral(c) => c.forward(x),
        }
    }

    /// The weight the convolution uses (`weight_orig / σ` when spectral).
    pub fn weight(&self) -> Tensor<4> {
        match self {
            Self::Plain(c) => c.weight.val(),
            Self::Spectral(c) => c.weight(),
        }
    }

    /// Whether the layer is spectral-normalised.
    pub fn is_spectral(&self) -> bool {
        matches!(self, Self::Spectral(_))
    }

    /// One power iteration (the once-per-optimiser-step update) when spectral; a plain
    /// convolution is returned unchanged.
    pub fn power_iteration(self) -> Self {
        match self {
            Self::Plain(c) => Self::Plain(c),
            Self::Spectral(c) => Self::Spectral(c.power_iteration(1)),
        }
    }
}

/// The weight of the convolution `w` as the engine runs it (PyTorch's eval mode):
/// `w.weight` as stored, or, when `w.weight_orig` exists, `weight_orig / σ` with
/// `σ = uᵀ W v` from the stored `w.weight_u` `[out]` and `w.weight_v` `[in/groups·kh·kw]` (no
/// power iteration). Marks the tensors it reads as used.
///
/// # Errors
/// [`ModelError::MissingWeight`] when neither form is complete, [`ModelError::WeightShape`] when
/// u or v does not fit `weight_orig`, [`ModelError::Engine`] when σ is not a positive number.
pub fn conv_weight(w: &Weights) -> Result<TensorData, ModelError> {
    if !w.contains("weight_orig") {
        return w.get("weight").cloned();
    }
    spectral_norm_weight(w)
}

/// `w.weight_orig / σ` (see [`conv_weight`]), for weights known to be spectral-normalised.
///
/// # Errors
/// As [`conv_weight`].
pub fn spectral_norm_weight(w: &Weights) -> Result<TensorData, ModelError> {
    let orig = w.get("weight_orig")?;
    let out = orig.shape.first().copied().unwrap_or(0);
    let cols: usize = orig.shape.iter().skip(1).product();
    let u = w.tensor("weight_u", &[out])?;
    let v = w.tensor("weight_v", &[cols])?;
    let key = w.key("weight_orig");
    let (values, _sigma) = colorize_engine::fold::spectral_norm_weight(&key, &orig.values, u, v)?;
    Ok(TensorData {
        shape: orig.shape.clone(),
        values,
    })
}
