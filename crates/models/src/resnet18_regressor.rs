//! A ResNet-18 encoder with an upsampling head, regressing ab from L (no skip connections).
//!
//! The encoder is torchvision's ResNet-18 (He, Zhang, Ren & Sun 2015, arXiv:1512.03385;
//! `resnet.py` layout and key names: 7x7/2 conv `conv1`, `bn1`, 3x3/2 max-pool, stages
//! `layer1`..`layer4` of basic blocks; the projection shortcuts are `downsample.conv`/`.bn`,
//! torchvision's `downsample.0`/`.1`, as in [`crate::blocks::resnet`]), so an ImageNet state dict
//! could initialise it with that rename and `conv1` summed over its RGB inputs. The head enlarges
//! x2 by nearest neighbour and mixes with 3x3 conv + BN + ReLU, once per halving, then a 3x3 conv
//! gives `out_channels`, the output activation bounds them, and a bilinear resize
//! (`align_corners = false`) restores the input size exactly.
//!
//! The number of stages is part of the config. The `full` preset keeps all four (1/32 resolution,
//! the whole ResNet-18 trunk); `light` and `tiny` keep only the first three (1/16), as the common
//! "ResNet-18 regressor" colourisation tutorials do (Luke Melas-Kyriazi, "Image Colorization with
//! Convolutional Neural Networks", 2018, keeps `resnet18.children()[:6]`, up to `layer2`): the
//! last stage holds most of ResNet-18's parameters at a resolution too coarse to place colour
//! edges, and without skip connections the head has to rebuild the detail from the deepest
//! features alone. Recipe: MSE (or L1) on ab; the trainer owns the loss.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use colorize_engine::{Graph, Isa, ResizeMode};

use crate::blocks::resnet::{
    BasicBlock, forward_stage, forward_stem, stage, stage_graph, stem, stem_graph,
};
use crate::error::ModelError;
use crate::layers::ConvGeometry;
use crate::plain_cnn::{ConvBnRelu, finish, head_graph, one, two, up2};
use crate::unet_resnet::OutputActivation;
use crate::weights::Weights;

/// Architecture of a [`Resnet18Regressor`]; what `config.json` stores under `network` with
/// `"arch": "resnet18_regressor"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resnet18RegressorConfig {
    /// Output channels of the 7x7/2 stem convolution (ResNet-18: 64).
    pub stem_width: usize,
    /// Channels of the encoder stages kept, 1 to 4 of them (ResNet-18: `[64, 128, 256, 512]`).
    pub widths: Vec<usize>,
    /// Basic blocks per stage, as many as `widths` (ResNet-18: `[2, 2, 2, 2]`).
    pub depths: Vec<usize>,
    /// Output channels of the head's x2 nearest + 3x3 conv + BN + ReLU blocks, from the
    /// encoder's resolution up (one per halving: 1 + number of stages for full resolution).
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

impl Resnet18RegressorConfig {
    /// The whole ResNet-18 trunk (widths 64-128-256-512, depths 2-2-2-2, 1/32 resolution) and a
    /// head 256-128-64-32-16 (about 12.8 M parameters).
    pub fn full() -> Self {
        Self {
            stem_width: 64,
            widths: vec![64, 128, 256, 512],
            depths: vec![2, 2, 2, 2],
            decoder_widths: vec![256, 128, 64, 32, 16],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A light preset for 2 CPU cores: the first three stages at 3/4 width (48-96-192, depths
    /// 2-2-2, 1/16 resolution) and a head 96-48-24-16 (about 1.6 M parameters).
    pub fn light() -> Self {
        Self {
            stem_width: 48,
            widths: vec![48, 96, 192],
            depths: vec![2, 2, 2],
            decoder_widths: vec![96, 48, 24, 16],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A tiny preset for tests (three stages of one block, 8-32 channels).
    pub fn tiny() -> Self {
        Self {
            stem_width: 8,
            widths: vec![8, 16, 32],
            depths: vec![1, 1, 1],
            decoder_widths: vec![16, 8, 8, 8],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// Checks that the config describes a network: 1 to 4 stages, one depth (at least 1) per
    /// width.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.widths.is_empty() || self.widths.len() > 4 {
            return Err(format!(
                "a ResNet-18 encoder has 1 to 4 stages, not {}",
                self.widths.len()
            ));
        }
        if self.depths.contains(&0) {
            return Err("every stage needs at least one block".into());
        }
        if self.depths.len() != self.widths.len() {
            return Err(format!(
                "{} stage widths but {} depths",
                self.widths.len(),
                self.depths.len()
            ));
        }
        Ok(())
    }

    /// Builds the network with freshly initialised weights (Kaiming-uniform convolutions, BN
    /// with unit scale and zero shift).
    ///
    /// # Panics
    /// If [`Self::validate`] fails.
    pub fn init(&self, device: &Device) -> Resnet18Regressor {
        if let Err(e) = self.validate() {
            panic!("invalid resnet18_regressor config: {e}");
        }
        let (conv1, bn1, maxpool) = stem(self.in_channels, self.stem_width, device);
        let mut layers: [Vec<BasicBlock>; 4] = Default::default();
        let mut cin = self.stem_width;
        for (i, (&width, &depth)) in self.widths.iter().zip(&self.depths).enumerate() {
            let stride = if i == 0 { 1 } else { 2 };
            layers[i] = stage(cin, width, depth, stride, device);
            cin = width;
        }
        let mut decoder = Vec::new();
        for &width in &self.decoder_widths {
            decoder.push(ConvBnRelu::new(cin, width, 3, 1, device));
            cin = width;
        }
        let [layer1, layer2, layer3, layer4] = layers;
        Resnet18Regressor {
            conv1,
            bn1,
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
            decoder,
            head: Conv2dConfig::new([cin, self.out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            output_activation: self.output_activation,
        }
    }
}

/// The ResNet-18 regressor (see the [module docs](self)). Keys follow torchvision's ResNet:
/// `conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`, ..., `layer2.0.downsample.conv.weight`,
/// `layer2.0.downsample.bn.*`; then the head `decoder.{i}.conv.weight`, `decoder.{i}.bn.*`,
/// `head.weight`, `head.bias`. Stages the config leaves out are empty.
#[derive(Module, Debug)]
pub struct Resnet18Regressor {
    /// Stem: 7x7 conv, stride 2, `[stem, in, 7, 7]`.
    pub conv1: Conv2d,
    /// Stem batch norm.
    pub bn1: BatchNorm,
    /// 3x3 max-pool, stride 2, padding 1.
    pub maxpool: MaxPool2d,
    /// Stage 1 (1/4 resolution).
    pub layer1: Vec<BasicBlock>,
    /// Stage 2 (1/8 resolution).
    pub layer2: Vec<BasicBlock>,
    /// Stage 3 (1/16 resolution), empty when the config keeps fewer stages.
    pub layer3: Vec<BasicBlock>,
    /// Stage 4 (1/32 resolution), empty when the config keeps fewer stages.
    pub layer4: Vec<BasicBlock>,
    /// x2 nearest + 3x3 conv + BN + ReLU blocks.
    pub decoder: Vec<ConvBnRelu>,
    /// Final 3x3 conv (with bias) to `out_channels`.
    pub head: Conv2d,
    /// The activation after `head`.
    #[module(skip)]
    pub output_activation: OutputActivation,
}

impl Resnet18Regressor {
    /// Predicts ab from L.
    ///
    /// # Shapes
    /// - `l`: `[batch, in_channels, H, W]` (default `[batch, 1, H, W]`, `(L − 50)/50` in
    ///   `-1..1`); any H, W ≥ 1.
    /// - returns `[batch, out_channels, H, W]` (default `[batch, 2, H, W]`, `ab/110` in `-1..1`,
    ///   tanh; with `OutputActivation::None`, unbounded logits).
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = l.dims();
        let (_, mut x) = forward_stem(&self.conv1, &self.bn1, &self.maxpool, l); // [batch, stem, H/4, W/4]
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            x = forward_stage(layer, x); // [batch, w_i, H/2^(i+2), W/2^(i+2)]
        }
        for block in &self.decoder {
            x = block.forward(up2(x)); // [batch, d_i, 2·h, 2·w]
        }
        let y = self.head.forward(x); // [batch, out_channels, ~H, ~W]
        finish(y, self.output_activation, [h, w]) // [batch, out_channels, H, W]
    }
}

/// [`Resnet18Regressor::forward`] as an engine graph, built from named weights (see
/// [`Resnet18Regressor`] for the keys; torchvision's `downsample.0`/`downsample.1` spelling is
/// read too) with no burn module. Input `[batch, H, W, in_channels]`, output `[batch, H, W,
/// out_channels]` (NHWC).
///
/// # Errors
/// [`ModelError::Config`] when the config is invalid; [`ModelError::MissingWeight`],
/// [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`] when the weights do not fit
/// it; [`ModelError::Engine`] if `isa` is not available.
pub fn graph(config: &Resnet18RegressorConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    config.validate().map_err(|message| ModelError::Config {
        path: w.path().to_path_buf(),
        message,
    })?;
    let (mut g, x0) = Graph::new(config.in_channels);
    let (_, mut x) = stem_graph(&mut g, x0, w, config.in_channels, config.stem_width, isa)?;
    let mut cin = config.stem_width;
    for (i, (&width, &depth)) in config.widths.iter().zip(&config.depths).enumerate() {
        let stride = if i == 0 { 1 } else { 2 };
        let layer = w.pp(format!("layer{}", i + 1));
        x = stage_graph(&mut g, x, &layer, cin, width, depth, stride, isa)?;
        cin = width;
    }
    for (i, &width) in config.decoder_widths.iter().enumerate() {
        let up = g.resize_by(x, 2, ResizeMode::Nearest)?;
        x = ConvBnRelu::graph(&mut g, up, &w.pp("decoder").pp(i), cin, width, 3, 1, isa)?;
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
