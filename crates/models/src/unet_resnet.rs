//! U-Net generator over a ResNet encoder, predicting ab from L.
//!
//! The encoder is a ResNet (He et al. 2015, arXiv:1512.03385; torchvision `resnet.py` layout:
//! 7x7/2 conv, BN, ReLU, 3x3/2 max-pool, four stages of basic blocks). The decoder follows the U-Net
//! of Ronneberger, Fischer & Brox 2015 (arXiv:1505.04597) as DeOldify's `DynamicUnet` uses it over a
//! ResNet-34: at each level the features are enlarged x2 (nearest or bilinear, never transposed
//! convolutions, which cause checkerboard artefacts — Odena et al. 2016, Distill), concatenated with
//! the encoder features of the same resolution, and mixed by 3x3 conv + BN + ReLU. The last level
//! joins the input L itself, then a 1x1 conv gives 2 channels and tanh bounds them.
//!
//! The network's input and output scaling are the model's I/O contract
//! ([`crate::model_io::ModelIo`]); the default one, which every model trained here uses, is
//! `(L − 50)/50` in and `ab/110` out (tanh). Input and output channel counts and the output
//! activation are configurable (for example gray RGB in and RGB out with a sigmoid, as DeOldify's
//! generator has).
//!
//! Two options bring DeOldify's generator tricks (`../shared/reference/deoldify.md` §3-4) for GAN
//! training, both off by default:
//! - `self_attention`: SAGAN self-attention (Zhang et al. 2018, arXiv:1805.08318;
//!   [`crate::blocks::self_attention`]) after decoder level 1, whose output is at 1/8 resolution.
//!   DeOldify puts its one attention block in the same place (UNet block 1, beside layer2's
//!   1/8-resolution skip): low enough that the `(H·W)²` attention matrix stays affordable (a
//!   256x256 crop gives 32x32 = 1024 positions, a 1024² matrix per image, where 1/4 resolution
//!   would be 16 times larger), high enough that long-range context (the colour of one part of
//!   a sky or a dress matching another) still reaches most of the picture before the fine levels.
//! - `spectral_norm`: spectral normalisation (Miyato et al. 2018, arXiv:1802.05957;
//!   [`crate::blocks::spectral_norm`]) on the decoder's five 3x3 convolutions (and the attention's
//!   projections), keeping their batch norms, as DeOldify's decoder does (`NormType.Spectral`
//!   with `extra_bn`). Spectral norm bounds each layer's Lipschitz constant, which keeps a
//!   generator trained against a critic stable (Zhang et al. 2018 §4, who found it helps the
//!   generator too). The encoder stays plain, as DeOldify's pretrained ResNet does. The
//!   training loop calls [`UnetResnet::power_iteration`] once per optimiser step.
//!
//! With both off the keys are unchanged (`decoder.i.conv.weight`), so earlier model folders load.
//! With `spectral_norm` the decoder convolutions are saved as `decoder.i.conv.weight_orig`,
//! `weight_u`, `weight_v`; with `self_attention`, `decoder.1.attention.{query,key,value}.*` and
//! `decoder.1.attention.gamma`.
//!
//! [`graph`] builds the same network for the inference engine straight from named weights
//! (PyTorch-style keys, see [`crate::layers`]), with no burn module.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

use colorize_engine::{Activation, Graph, Isa, ResizeMode};

use crate::blocks::resnet::{
    BasicBlock, forward_stage, forward_stem, stage, stage_graph, stem, stem_graph,
};
use crate::blocks::self_attention::{SelfAttention, SelfAttentionConfig, self_attention_graph};
use crate::blocks::spectral_norm::ConvLayer;
use crate::error::ModelError;
use crate::layers::{ConvGeometry, conv};
use crate::weights::Weights;

/// How the decoder enlarges features x2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upsample {
    /// Nearest neighbour (cheapest; the following 3x3 conv smooths).
    Nearest,
    /// Bilinear with half-pixel centres (`align_corners = false`).
    Bilinear,
}

/// The activation after the final 1x1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputActivation {
    /// `tanh`, outputs in `-1..1` (ab/110).
    #[default]
    Tanh,
    /// The logistic sigmoid, outputs in `0..1`.
    Sigmoid,
    /// None: the convolution's output as it is.
    None,
}

impl OutputActivation {
    fn engine(self) -> Activation {
        match self {
            Self::Tanh => Activation::Tanh,
            Self::Sigmoid => Activation::Sigmoid,
            Self::None => Activation::None,
        }
    }
}

fn one() -> usize {
    1
}

fn two() -> usize {
    2
}

/// Architecture of a [`UnetResnet`]; this is what `config.json` stores under `network`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetResnetConfig {
    /// Output channels of the 7x7/2 stem convolution (ResNet: 64).
    pub stem_width: usize,
    /// Channels of the four encoder stages (ResNet: `[64, 128, 256, 512]`).
    pub widths: [usize; 4],
    /// Basic blocks per stage (ResNet-34: `[3, 4, 6, 3]`; ResNet-18: `[2, 2, 2, 2]`).
    pub depths: [usize; 4],
    /// Output channels of the five decoder blocks, from 1/16 resolution up to full resolution.
    pub decoder_widths: [usize; 5],
    /// How the decoder enlarges features.
    pub upsample: Upsample,
    /// Input channels (1 for L; 3 for gray RGB). Default 1.
    #[serde(default = "one")]
    pub in_channels: usize,
    /// Output channels (2 for ab; 3 for RGB). Default 2.
    #[serde(default = "two")]
    pub out_channels: usize,
    /// Activation after the final 1x1 convolution. Default tanh.
    #[serde(default)]
    pub output_activation: OutputActivation,
    /// SAGAN self-attention after decoder level 1 (1/8 resolution), as DeOldify's generator.
    /// Default false.
    #[serde(default)]
    pub self_attention: bool,
    /// Spectral normalisation on the decoder's 3x3 convolutions (and the attention's
    /// projections), batch norm kept, as DeOldify's decoder. Default false.
    #[serde(default)]
    pub spectral_norm: bool,
}

/// The decoder level followed by self-attention: level 1, whose output is at 1/8 resolution
/// (see the module docs).
pub const ATTENTION_LEVEL: usize = 1;

impl UnetResnetConfig {
    /// The reference network: a full ResNet-34 encoder (stages 3-4-6-3 of 64/128/256/512
    /// channels) and decoder widths 256-128-64-64-32 (about 24 M parameters).
    pub fn resnet34() -> Self {
        Self {
            stem_width: 64,
            widths: [64, 128, 256, 512],
            depths: [3, 4, 6, 3],
            decoder_widths: [256, 128, 64, 64, 32],
            upsample: Upsample::Nearest,
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
            self_attention: false,
            spectral_norm: false,
        }
    }

    /// A light preset that trains in reasonable time on 2 CPU cores: ResNet-18 depths (2-2-2-2),
    /// half the widths (32/64/128/256), decoder 128-64-32-32-16 (about 3.4 M parameters).
    pub fn light() -> Self {
        Self {
            stem_width: 32,
            widths: [32, 64, 128, 256],
            depths: [2, 2, 2, 2],
            decoder_widths: [128, 64, 32, 32, 16],
            upsample: Upsample::Nearest,
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
            self_attention: false,
            spectral_norm: false,
        }
    }

    /// A tiny preset for tests (stages of one block, 8-64 channels).
    pub fn tiny() -> Self {
        Self {
            stem_width: 8,
            widths: [8, 16, 32, 64],
            depths: [1, 1, 1, 1],
            decoder_widths: [32, 16, 8, 8, 8],
            upsample: Upsample::Nearest,
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
            self_attention: false,
            spectral_norm: false,
        }
    }

    /// Builds the network with freshly initialised weights (Kaiming-uniform convolutions, BN with
    /// unit scale and zero shift).
    pub fn init(&self, device: &Device) -> UnetResnet {
        let [w1, w2, w3, w4] = self.widths;
        let [d4, d3, d2, d1, d0] = self.decoder_widths;
        let dec = |i, o, level| DecoderBlock {
            conv: ConvLayer::init(
                &Conv2dConfig::new([i, o], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_bias(false),
                self.spectral_norm,
                device,
            ),
            bn: BatchNormConfig::new(o).init(device),
            attention: (self.self_attention && level == ATTENTION_LEVEL).then(|| {
                SelfAttentionConfig::new(o)
                    .with_spectral_norm(self.spectral_norm)
                    .init(device)
            }),
        };
        let (conv1, bn1, maxpool) = stem(self.in_channels, self.stem_width, device);
        UnetResnet {
            conv1,
            bn1,
            maxpool,
            layer1: stage(self.stem_width, w1, self.depths[0], 1, device),
            layer2: stage(w1, w2, self.depths[1], 2, device),
            layer3: stage(w2, w3, self.depths[2], 2, device),
            layer4: stage(w3, w4, self.depths[3], 2, device),
            decoder: vec![
                dec(w4 + w3, d4, 0),
                dec(d4 + w2, d3, 1),
                dec(d3 + w1, d2, 2),
                dec(d2 + self.stem_width, d1, 3),
                dec(d1 + self.in_channels, d0, 4),
            ],
            head: Conv2dConfig::new([d0, self.out_channels], [1, 1]).init(device),
            bilinear: self.upsample == Upsample::Bilinear,
            output_activation: self.output_activation,
        }
    }
}

/// One decoder level: 3x3 conv (no bias) + BN + ReLU over `[up(x), skip]`, then
/// self-attention at [`ATTENTION_LEVEL`] when configured.
#[derive(Module, Debug)]
pub struct DecoderBlock {
    /// 3x3 convolution over the concatenation (spectral-normalised when configured).
    pub conv: ConvLayer,
    /// Batch norm after the convolution.
    pub bn: BatchNorm,
    /// Self-attention after the ReLU (level [`ATTENTION_LEVEL`] only, when configured).
    pub attention: Option<SelfAttention>,
}

impl DecoderBlock {
    /// `relu(bn(conv(x)))`, then the attention if any.
    ///
    /// # Shapes
    /// `x: [batch, in, H, W]` → `[batch, out, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.bn.forward(self.conv.forward(x)));
        match &self.attention {
            Some(a) => a.forward(y),
            None => y,
        }
    }

    /// One power iteration on each spectral-normalised convolution (no-op without).
    pub fn power_iteration(self) -> Self {
        Self {
            conv: self.conv.power_iteration(),
            bn: self.bn,
            attention: self.attention.map(SelfAttention::power_iteration),
        }
    }
}

/// The U-Net generator over a ResNet encoder. Field names follow torchvision's ResNet keys
/// (`conv1`, `bn1`, `layer1.0.conv1`, ...), so the encoder's weights read like a torchvision
/// checkpoint with `in_channels = 1`.
#[derive(Module, Debug)]
pub struct UnetResnet {
    /// Stem: 7x7 conv, stride 2, `[stem, 1, 7, 7]`.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// 3x3 max-pool, stride 2, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (1/4 resolution).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (1/8 resolution).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (1/16 resolution).
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (1/32 resolution).
    pub layer4: Vec<BasicBlock>,
    /// Five decoder levels, 1/16 up to full resolution.
    pub decoder: Vec<DecoderBlock>,
    /// Final 1x1 conv to the two ab channels.
    pub head: Conv2d,
    /// Bilinear (true) or nearest (false) enlargement.
    #[module(skip)]
    pub bilinear: bool,
    /// The activation after `head`.
    #[module(skip)]
    pub output_activation: OutputActivation,
}

impl UnetResnet {
    fn up_cat(&self, x: Tensor<4>, skip: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = skip.dims();
        let mode = if self.bilinear {
            InterpolateMode::Bilinear
        } else {
            InterpolateMode::Nearest
        };
        let up = interpolate(
            x,
            InterpolateOptions::new(mode)
                .with_align_corners(false)
                .with_output_size([h, w]),
        );
        Tensor::cat(vec![up, skip], 1)
    }

    /// Predicts ab from L.
    ///
    /// # Shapes
    /// - `l`: `[batch, in_channels, H, W]` (with the default contract, `[batch, 1, H, W]`,
    ///   `(L − 50)/50` in `-1..1`). Any H and W ≥ 1 work; multiples of 32 keep every skip
    ///   connection exactly aligned.
    /// - returns `[batch, out_channels, H, W]` (default: `[batch, 2, H, W]`, `ab/110` in `-1..1`,
    ///   tanh).
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        let x0 = l.clone(); // [batch, 1, H, W]
        // [batch, stem, H/2, W/2] and [batch, stem, H/4, W/4]
        let (x1, x) = forward_stem(&self.conv1, &self.bn1, &self.maxpool, l);
        let x2 = forward_stage(&self.layer1, x); // [batch, w1, H/4, W/4]
        let x3 = forward_stage(&self.layer2, x2.clone()); // [batch, w2, H/8, W/8]
        let x4 = forward_stage(&self.layer3, x3.clone()); // [batch, w3, H/16, W/16]
        let x5 = forward_stage(&self.layer4, x4.clone()); // [batch, w4, H/32, W/32]
        let mut y = x5;
        for (block, skip) in self.decoder.iter().zip([x4, x3, x2, x1, x0]) {
            let cat = self.up_cat(y, skip);
            y = block.forward(cat); // [batch, d_i, ...]
        }
        let y = self.head.forward(y); // [batch, out_channels, H, W]
        match self.output_activation {
            OutputActivation::Tanh => tanh(y),
            OutputActivation::Sigmoid => sigmoid(y),
            OutputActivation::None => y,
        }
    }

    /// One power iteration on every spectral-normalised layer (the decoder's convolutions and
    /// the attention's projections); the network unchanged without spectral norm. The training
    /// loop calls it once per optimiser step (PyTorch's `spectral_norm` does it inside each
    /// training-mode forward).
    pub fn power_iteration(mut self) -> Self {
        self.decoder = self
            .decoder
            .into_iter()
            .map(DecoderBlock::power_iteration)
            .collect();
        self
    }
}

/// [`UnetResnet::forward`] as an engine graph, built from named weights (`conv1.weight`,
/// `bn1.weight`, `layer1.0.conv1.weight`, ..., `decoder.4.conv.weight`, `decoder.4.bn.*`,
/// `head.weight`, `head.bias`; with `spectral_norm`, `decoder.i.conv.weight_orig`, `weight_u`,
/// `weight_v`, folded to `weight_orig / σ`; with `self_attention`, `decoder.1.attention.*`) with
/// no burn module.
///
/// The graph's input is `[batch, H, W, in_channels]` and its output `[batch, H, W,
/// out_channels]`, NHWC: the same values as [`UnetResnet::forward`] in another layout.
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit `config` (every tensor must be used); [`ModelError::Engine`] if
/// `isa` is not available on this CPU.
pub fn graph(config: &UnetResnetConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let check =
        |key: &str, shape: &[usize]| -> Result<(), ModelError> { w.tensor(key, shape).map(|_| ()) };
    let (mut g, x0) = Graph::new(config.in_channels);
    let (x1, mut x) = stem_graph(&mut g, x0, w, config.in_channels, config.stem_width, isa)?;
    let mut skips = vec![x0, x1];
    let mut cin = config.stem_width;
    for (i, (&width, &depth)) in config.widths.iter().zip(&config.depths).enumerate() {
        let stride = if i == 0 { 1 } else { 2 };
        x = stage_graph(
            &mut g,
            x,
            &w.pp(format!("layer{}", i + 1)),
            cin,
            width,
            depth,
            stride,
            isa,
        )?;
        cin = width;
        skips.push(x);
    }
    // skips = [x0, x1, x2, x3, x4, x5]; the decoder joins x4, x3, x2, x1, x0 in turn.
    let mut y = skips.pop().expect("six values");
    let mode = match config.upsample {
        Upsample::Bilinear => ResizeMode::Bilinear,
        Upsample::Nearest => ResizeMode::Nearest,
    };
    let [w1, w2, w3, w4] = config.widths;
    let [d4, d3, d2, d1, d0] = config.decoder_widths;
    let ins = [
        w4 + w3,
        d4 + w2,
        d3 + w1,
        d2 + config.stem_width,
        d1 + config.in_channels,
    ];
    for (i, (&cin, cout)) in ins.iter().zip([d4, d3, d2, d1, d0]).enumerate() {
        let skip = skips.pop().expect("five skips");
        let up = g.resize_like(y, skip, mode);
        let cat = g.concat(&[up, skip])?;
        let block = w.pp("decoder").pp(i);
        let weight = if config.spectral_norm {
            "conv.weight_orig"
        } else {
            "conv.weight"
        };
        block.tensor(weight, &[cout, cin, 3, 3])?;
        let c = conv(
            &block.pp("conv"),
            Some(&block.pp("bn")),
            ConvGeometry::new(1, 1),
            Activation::Relu,
            isa,
        )?;
        y = g.conv(cat, c, None)?;
        if config.self_attention && i == ATTENTION_LEVEL {
            y = self_attention_graph(&mut g, y, &block.pp("attention"), isa)?;
        }
    }
    check("head.weight", &[config.out_channels, d0, 1, 1])?;
    let head = conv(
        &w.pp("head"),
        None,
        ConvGeometry::new(1, 0).with_bias(),
        config.output_activation.engine(),
        isa,
    )?;
    let out = g.conv(y, head, None)?;
    g.set_output(out);
    w.check_all_used()?;
    Ok(g)
}
