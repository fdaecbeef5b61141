//! The plain CNN baseline: an encoder-decoder of plain convolutions, predicting ab from L.
//!
//! The simplest colouriser that works, as in Cheng, Yang & Sheng 2015 ("Deep Colorization",
//! ICCV, arXiv:1605.00075, regression of chrominance from luminance with a plain network) and the
//! "plain CNN" baseline of colourisation tutorials (for example Emil Wallner's "Colorizing B&W
//! Photos with Neural Networks", FloydHub 2017: stride-2 3x3 convolutions down, a few stride-1
//! convolutions, then upsampling back to the input size, trained with mean squared error on ab).
//!
//! Layout: an encoder of 3x3 stride-2 conv + BN + ReLU blocks (each halves the size), a few 3x3
//! stride-1 conv + BN + ReLU blocks at the bottom, a decoder of 4x4 stride-2 transposed
//! convolutions + BN + ReLU (each doubles the size; the 4x4/2/1 geometry of DCGAN, Radford, Metz
//! & Chintala 2015, arXiv:1511.06434), a final 3x3 conv to `out_channels`, the output activation,
//! and a bilinear resize (`align_corners = false`) to the input size, which is the identity when
//! the input is a multiple of `2^levels`. Its recipe is MSE on ab (the trainer owns the loss); no
//! skip connections, so fine detail comes only from the full-size L it is joined with.
//!
//! This file also holds the pieces the other simple generators share
//! ([`crate::resnet18_regressor`], [`crate::fusion`]): [`ConvBnRelu`], the output activation and
//! the final resize.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, ResizeMode, Value};

use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv, conv_node};
use crate::unet_resnet::OutputActivation;
use crate::weights::Weights;

pub(crate) fn one() -> usize {
    1
}

pub(crate) fn two() -> usize {
    2
}

/// The engine's fused epilogue for an output activation.
pub(crate) fn engine_activation(a: OutputActivation) -> Activation {
    match a {
        OutputActivation::Tanh => Activation::Tanh,
        OutputActivation::Sigmoid => Activation::Sigmoid,
        OutputActivation::None => Activation::None,
    }
}

/// `activation(y)`, then a bilinear resize (half-pixel centres, as PyTorch's
/// `align_corners=False`) to `[height, width]` when `y` has another size.
pub(crate) fn finish(y: Tensor<4>, activation: OutputActivation, size: [usize; 2]) -> Tensor<4> {
    let y = match activation {
        OutputActivation::Tanh => tanh(y),
        OutputActivation::Sigmoid => sigmoid(y),
        OutputActivation::None => y,
    };
    let [_, _, h, w] = y.dims();
    if [h, w] == size {
        return y;
    }
    interpolate(
        y,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}

/// `x` enlarged x2 by nearest neighbour (PyTorch `Upsample(scale_factor=2)`).
pub(crate) fn up2(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest)
            .with_align_corners(false)
            .with_output_size([2 * h, 2 * w]),
    )
}

/// The final `head` conv (with bias, `activation` fused) and the bilinear resize to `like`'s
/// size: the engine side of [`finish`].
pub(crate) fn head_graph(
    g: &mut Graph,
    y: Value,
    like: Value,
    w: &Weights,
    geometry: ConvGeometry,
    activation: OutputActivation,
    isa: Isa,
) -> Result<Value, ModelError> {
    let head = conv(w, None, geometry, engine_activation(activation), isa)?;
    let out = g.conv(y, head, None)?;
    Ok(g.resize_like(out, like, ResizeMode::Bilinear))
}

/// A `k x k` convolution without bias (padding `k/2`), batch norm and ReLU.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution, `[out, in, k, k]`, no bias.
    pub conv: Conv2d,
    /// Batch norm over `out` channels.
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    /// A block from `in_channels` to `out_channels` with a `kernel x kernel` convolution of
    /// stride `stride` and padding `kernel / 2`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let p = kernel / 2;
        Self {
            conv: Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(out_channels).init(device),
        }
    }

    /// # Shapes
    /// `x: [batch, in, H, W]` → `[batch, out, ceil(H/stride), ceil(W/stride)]` (odd kernels).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }

    /// The block as one engine convolution (batch norm folded, ReLU fused) from the weights
    /// under `w` (`conv.weight` `[out, in, k, k]`, `bn.weight`, `bn.bias`, `bn.running_mean`,
    /// `bn.running_var`).
    ///
    /// # Errors
    /// [`ModelError::MissingWeight`] / [`ModelError::WeightShape`] naming the key;
    /// [`ModelError::Engine`] when `x` does not have `in_channels` channels.
    #[allow(clippy::too_many_arguments)]
    pub fn graph(
        g: &mut Graph,
        x: Value,
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        isa: Isa,
    ) -> Result<Value, ModelError> {
        w.tensor("conv.weight", &[out_channels, in_channels, kernel, kernel])?;
        conv_node(
            g,
            x,
            &w.pp("conv"),
            Some(&w.pp("bn")),
            ConvGeometry::new(stride, kernel / 2),
            Activation::Relu,
            isa,
            None,
        )
    }
}

/// A 4x4 stride-2 transposed convolution (padding 1, no bias: exactly doubles the size), batch
/// norm and ReLU.
#[derive(Module, Debug)]
pub struct DeconvBnRelu {
    /// The transposed convolution, `[in, out, 4, 4]` (PyTorch's `ConvTranspose2d` layout).
    pub deconv: ConvTranspose2d,
    /// Batch norm over `out` channels.
    pub bn: BatchNorm,
}

impl DeconvBnRelu {
    /// A block from `in_channels` to `out_channels`.
    pub fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            deconv: ConvTranspose2dConfig::new([in_channels, out_channels], [4, 4])
                .with_stride([2, 2])
                .with_padding([1, 1])
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(out_channels).init(device),
        }
    }

    /// # Shapes
    /// `x: [batch, in, H, W]` → `[batch, out, 2H, 2W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.deconv.forward(x)))
    }

    /// The block as one engine transposed convolution, batch norm folded into it (`w'[i, o] =
    /// w[i, o] · s[o]`, bias `β − μ · s`, `s = γ / √(σ² + ε)`) and ReLU fused, from the weights
    /// under `w` (`deconv.weight` `[in, out, 4, 4]`, `bn.*`).
    ///
    /// # Errors
    /// As [`ConvBnRelu::graph`].
    pub fn graph(
        g: &mut Graph,
        x: Value,
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        isa: Isa,
    ) -> Result<Value, ModelError> {
        let mut weight = w
            .tensor("deconv.weight", &[in_channels, out_channels, 4, 4])?
            .to_vec();
        let (scale, shift) = batch_norm_affine(&w.pp("bn"), out_channels)?;
        for (i, v) in weight.iter_mut().enumerate() {
            *v *= scale[(i / 16) % out_channels];
        }
        let packed = PackedConv::new(
            &w.key("deconv"),
            ConvSpec::transposed(in_channels, out_channels, 4, 2, 1),
            &weight,
            Some(&shift),
            Activation::Relu,
            isa,
        )?;
        Ok(g.conv(x, packed, None)?)
    }
}

/// Architecture of a [`PlainCnn`]; what `config.json` stores under `network` with
/// `"arch": "plain_cnn"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainCnnConfig {
    /// Output channels of the encoder's 3x3 stride-2 blocks, one per halving.
    pub encoder_widths: Vec<usize>,
    /// Number of 3x3 stride-1 blocks at the bottom (each keeps the last encoder width).
    pub bottleneck_depth: usize,
    /// Output channels of the decoder's 4x4 stride-2 transposed blocks, one per doubling
    /// (usually as many as encoder blocks; any difference is covered by the final resize).
    pub decoder_widths: Vec<usize>,
    /// Input channels (1 for L). Default 1.
    #[serde(default = "one")]
    pub in_channels: usize,
    /// Output channels (2 for ab; 313 for logits over quantised ab bins). Default 2.
    #[serde(default = "two")]
    pub out_channels: usize,
    /// Activation after the final convolution (tanh for ab/110; none for logits). Default tanh.
    #[serde(default)]
    pub output_activation: OutputActivation,
}

impl PlainCnnConfig {
    /// The full baseline: encoder 64-128-256 (to 1/8), two 256-wide blocks at the bottom,
    /// decoder 128-64-64 (about 2.3 M parameters).
    pub fn full() -> Self {
        Self {
            encoder_widths: vec![64, 128, 256],
            bottleneck_depth: 2,
            decoder_widths: vec![128, 64, 64],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A light preset for 2 CPU cores: encoder 32-64-192, two 192-wide blocks at the bottom,
    /// decoder 96-48-24 (about 1.2 M parameters, about 0.25 G multiply-adds at 96x96).
    pub fn light() -> Self {
        Self {
            encoder_widths: vec![32, 64, 192],
            bottleneck_depth: 2,
            decoder_widths: vec![96, 48, 24],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A tiny preset for tests (8-32 channels, under 40 k parameters).
    pub fn tiny() -> Self {
        Self {
            encoder_widths: vec![8, 16, 32],
            bottleneck_depth: 2,
            decoder_widths: vec![16, 8, 8],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// Width entering the decoder.
    fn bottom_width(&self) -> usize {
        self.encoder_widths
            .last()
            .copied()
            .unwrap_or(self.in_channels)
    }

    /// Builds the network with freshly initialised weights (Kaiming-uniform convolutions, BN
    /// with unit scale and zero shift).
    pub fn init(&self, device: &Device) -> PlainCnn {
        let mut cin = self.in_channels;
        let mut encoder = Vec::new();
        for &width in &self.encoder_widths {
            encoder.push(ConvBnRelu::new(cin, width, 3, 2, device));
            cin = width;
        }
        let bottleneck = (0..self.bottleneck_depth)
            .map(|_| ConvBnRelu::new(cin, cin, 3, 1, device))
            .collect();
        let mut decoder = Vec::new();
        for &width in &self.decoder_widths {
            decoder.push(DeconvBnRelu::new(cin, width, device));
            cin = width;
        }
        PlainCnn {
            encoder,
            bottleneck,
            decoder,
            head: Conv2dConfig::new([cin, self.out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            output_activation: self.output_activation,
        }
    }
}

/// The plain CNN baseline (see the [module docs](self)). Keys: `encoder.{i}.conv.weight`,
/// `encoder.{i}.bn.*`, `bottleneck.{i}.conv.weight`, `bottleneck.{i}.bn.*`,
/// `decoder.{i}.deconv.weight`, `decoder.{i}.bn.*`, `head.weight`, `head.bias`.
#[derive(Module, Debug)]
pub struct PlainCnn {
    /// 3x3 stride-2 conv + BN + ReLU blocks, each halving the size.
    pub encoder: Vec<ConvBnRelu>,
    /// 3x3 stride-1 conv + BN + ReLU blocks at the bottom.
    pub bottleneck: Vec<ConvBnRelu>,
    /// 4x4 stride-2 transposed conv + BN + ReLU blocks, each doubling the size.
    pub decoder: Vec<DeconvBnRelu>,
    /// Final 3x3 conv (with bias) to `out_channels`.
    pub head: Conv2d,
    /// The activation after `head`.
    #[module(skip)]
    pub output_activation: OutputActivation,
}

impl PlainCnn {
    /// Predicts ab from L.
    ///
    /// # Shapes
    /// - `l`: `[batch, in_channels, H, W]` (default `[batch, 1, H, W]`, `(L − 50)/50` in
    ///   `-1..1`); any H, W ≥ 1.
    /// - returns `[batch, out_channels, H, W]` (default `[batch, 2, H, W]`, `ab/110` in `-1..1`,
    ///   tanh; with `OutputActivation::None`, unbounded logits).
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = l.dims();
        let mut x = l; // [batch, in, H, W]
        for block in &self.encoder {
            x = block.forward(x); // [batch, e_i, ceil(H/2^i), ...]
        }
        for block in &self.bottleneck {
            x = block.forward(x); // [batch, e_last, ceil(H/8), ceil(W/8)] with three levels
        }
        for block in &self.decoder {
            x = block.forward(x); // [batch, d_i, 2·h, 2·w]
        }
        let y = self.head.forward(x); // [batch, out_channels, ~H, ~W]
        finish(y, self.output_activation, [h, w]) // [batch, out_channels, H, W]
    }
}

/// [`PlainCnn::forward`] as an engine graph, built from named weights (see [`PlainCnn`] for the
/// keys) with no burn module. Input `[batch, H, W, in_channels]`, output `[batch, H, W,
/// out_channels]` (NHWC).
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit `config`; [`ModelError::Engine`] if `isa` is not available.
pub fn graph(config: &PlainCnnConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let (mut g, x0) = Graph::new(config.in_channels);
    let mut x = x0;
    let mut cin = config.in_channels;
    for (i, &width) in config.encoder_widths.iter().enumerate() {
        x = ConvBnRelu::graph(&mut g, x, &w.pp("encoder").pp(i), cin, width, 3, 2, isa)?;
        cin = width;
    }
    debug_assert_eq!(cin, config.bottom_width());
    for i in 0..config.bottleneck_depth {
        x = ConvBnRelu::graph(&mut g, x, &w.pp("bottleneck").pp(i), cin, cin, 3, 1, isa)?;
    }
    for (i, &width) in config.decoder_widths.iter().enumerate() {
        x = DeconvBnRelu::graph(&mut g, x, &w.pp("decoder").pp(i), cin, width, isa)?;
        cin = width;
    }
    w.tensor("head.weight", &[config.out_channels, cin, 3, 3])?;
    let out = head_graph(
        &mut g,
        x,
        x0,
        &w.pp("head"),
        ConvGeometry::new(1, 1).with_bias(),
        config.output_activation,
        isa,
    )?;
    g.set_output(out);
    w.check_all_used()?;
    Ok(g)
}
