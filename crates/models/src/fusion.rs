//! Deep Koalarization: an encoder-decoder colouriser fused with a classifier's global features.
//!
//! Baldassarre, Morín & Rodés-Guirao 2017, "Deep Koalarization: Image Colorization using CNNs
//! and Inception-ResNet-v2" (arXiv:1712.03400). Four parts:
//!
//! - **encoder**: 3x3 conv + BN + ReLU layers down to 1/8 resolution (the paper's 8 layers,
//!   64-128-128-256-256-512-512-256 with strides 2-1-2-1-2-1-1-1, in the `full` preset);
//! - **backbone**: a classification network over the same input, reduced to one global feature
//!   vector. The paper uses Inception-ResNet-v2's 1000-way output; here a torchvision-layout
//!   ResNet-18 (He et al. 2015, arXiv:1512.03385: `backbone.conv1` 7x7/2, `backbone.bn1`, 3x3/2
//!   max-pool, `backbone.layer1`..`layer4`, global average pool) followed by a linear layer
//!   `backbone.fc` to `global_dim` values. In the `full` preset it is ResNet-18 itself, with 3
//!   input channels fed the L input replicated (as the paper feeds its grey image to Inception),
//!   so a torchvision ImageNet state dict loads into it ([`load_backbone`]). Global average
//!   pooling makes it work at any input size;
//! - **fusion**: the vector is replicated over the encoder's grid, concatenated after the
//!   encoder's features, and mixed by a 1x1 conv + ReLU (the paper's fusion layer);
//! - **decoder**: x2 nearest + 3x3 conv + BN + ReLU, three times back to full resolution, then a
//!   3x3 conv to `out_channels`, the output activation and a bilinear resize
//!   (`align_corners = false`) to the input size when 8 does not divide it.
//!
//! Departures from the paper, for training from scratch on a CPU: batch norm after every
//! encoder and decoder convolution (it folds away at inference), nearest-then-conv upsampling
//! blocks instead of conv-then-upsample, and the backbone runs at the input's size rather than
//! on a separate 299x299 copy. A torchvision backbone expects ImageNet-normalised RGB, not
//! `(L − 50)/50` replicated; the batch norms absorb the scale only approximately, so fine-tune
//! (or freeze and accept) accordingly. Recipe: MSE on ab (the trainer owns the loss).

use std::path::Path;

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::store::{ApplyError, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, ResizeMode, Value};

use crate::blocks::resnet::{
    BasicBlock, forward_stage, forward_stem, stage, stage_graph, stem as resnet_stem,
};
use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv};
use crate::plain_cnn::{ConvBnRelu, finish, head_graph, one, two, up2};
use crate::unet_resnet::OutputActivation;
use crate::weights::Weights;

/// Architecture of a [`Fusion`] network; what `config.json` stores under `network` with
/// `"arch": "fusion"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusionConfig {
    /// The encoder's 3x3 conv + BN + ReLU layers as `[out_channels, stride]` (strides 1 or 2;
    /// three 2s bring it to 1/8 resolution).
    pub encoder: Vec<[usize; 2]>,
    /// Input channels of the backbone's `conv1`: `in_channels`, or 3 with a one-channel input,
    /// which is then replicated (a torchvision ResNet-18 takes RGB).
    pub backbone_in_channels: usize,
    /// Output channels of the backbone's 7x7/2 stem (ResNet-18: 64).
    pub backbone_stem_width: usize,
    /// Channels of the backbone's four stages (ResNet-18: `[64, 128, 256, 512]`).
    pub backbone_widths: [usize; 4],
    /// Basic blocks per backbone stage, each at least 1 (ResNet-18: `[2, 2, 2, 2]`).
    pub backbone_depths: [usize; 4],
    /// Length of the global feature vector (`backbone.fc`'s output).
    pub global_dim: usize,
    /// Output channels of the 1x1 fusion convolution.
    pub fusion_width: usize,
    /// Output channels of the decoder's x2 nearest + 3x3 conv + BN + ReLU blocks.
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

impl FusionConfig {
    /// The paper's encoder (64-128-128-256-256-512-512-256, strides 2-1-2-1-2-1-1-1), a full
    /// ResNet-18 backbone with 3 input channels (torchvision's state dict fits it), a
    /// 256-value global vector, fusion to 256 and decoder 128-64-32 (about 17.6 M parameters,
    /// 11.3 M of them the backbone).
    pub fn full() -> Self {
        Self {
            encoder: vec![
                [64, 2],
                [128, 1],
                [128, 2],
                [256, 1],
                [256, 2],
                [512, 1],
                [512, 1],
                [256, 1],
            ],
            backbone_in_channels: 3,
            backbone_stem_width: 64,
            backbone_widths: [64, 128, 256, 512],
            backbone_depths: [2, 2, 2, 2],
            global_dim: 256,
            fusion_width: 256,
            decoder_widths: vec![128, 64, 32],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A light preset for 2 CPU cores: encoder 32/2-64/2-64-128/2-128, a half-width,
    /// one-block-per-stage ResNet backbone on the one-channel input (32-64-128-256), a
    /// 64-value global vector, fusion to 128 and decoder 64-32-16 (about 1.6 M parameters).
    pub fn light() -> Self {
        Self {
            encoder: vec![[32, 2], [64, 2], [64, 1], [128, 2], [128, 1]],
            backbone_in_channels: 1,
            backbone_stem_width: 32,
            backbone_widths: [32, 64, 128, 256],
            backbone_depths: [1, 1, 1, 1],
            global_dim: 64,
            fusion_width: 128,
            decoder_widths: vec![64, 32, 16],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// A tiny preset for tests (8-16 channels; the backbone takes the input replicated to 3
    /// channels, as `full`'s does).
    pub fn tiny() -> Self {
        Self {
            encoder: vec![[8, 2], [16, 2], [16, 2], [16, 1]],
            backbone_in_channels: 3,
            backbone_stem_width: 8,
            backbone_widths: [8, 8, 16, 16],
            backbone_depths: [1, 1, 1, 1],
            global_dim: 16,
            fusion_width: 16,
            decoder_widths: vec![16, 8, 8],
            in_channels: 1,
            out_channels: 2,
            output_activation: OutputActivation::Tanh,
        }
    }

    /// Checks that the config describes a network: the backbone takes the input as it is or
    /// replicated from one channel, every backbone stage has a block, strides are 1 or 2.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn validate(&self) -> Result<(), String> {
        if self.backbone_in_channels != self.in_channels && self.in_channels != 1 {
            return Err(format!(
                "the backbone takes {} channels; a {}-channel input cannot be replicated to them",
                self.backbone_in_channels, self.in_channels
            ));
        }
        if self.backbone_depths.contains(&0) {
            return Err("every backbone stage needs at least one block".into());
        }
        if let Some([_, s]) = self.encoder.iter().find(|[_, s]| *s != 1 && *s != 2) {
            return Err(format!("encoder strides are 1 or 2, not {s}"));
        }
        Ok(())
    }

    /// Width of the encoder's output.
    fn encoder_width(&self) -> usize {
        self.encoder.last().map_or(self.in_channels, |&[c, _]| c)
    }

    /// Builds the network with freshly initialised weights (Kaiming-uniform convolutions and
    /// linear layer, BN with unit scale and zero shift).
    ///
    /// # Panics
    /// If [`Self::validate`] fails.
    pub fn init(&self, device: &Device) -> Fusion {
        if let Err(e) = self.validate() {
            panic!("invalid fusion config: {e}");
        }
        let mut cin = self.in_channels;
        let mut encoder = Vec::new();
        for &[width, stride] in &self.encoder {
            encoder.push(ConvBnRelu::new(cin, width, 3, stride, device));
            cin = width;
        }
        let [w1, w2, w3, w4] = self.backbone_widths;
        let [d1, d2, d3, d4] = self.backbone_depths;
        let stem = self.backbone_stem_width;
        let (conv1, bn1, maxpool) = resnet_stem(self.backbone_in_channels, stem, device);
        let backbone = ResnetBackbone {
            conv1,
            bn1,
            maxpool,
            layer1: stage(stem, w1, d1, 1, device),
            layer2: stage(w1, w2, d2, 2, device),
            layer3: stage(w2, w3, d3, 2, device),
            layer4: stage(w3, w4, d4, 2, device),
            fc: LinearConfig::new(w4, self.global_dim).init(device),
        };
        let fusion =
            Conv2dConfig::new([cin + self.global_dim, self.fusion_width], [1, 1]).init(device);
        cin = self.fusion_width;
        let mut decoder = Vec::new();
        for &width in &self.decoder_widths {
            decoder.push(ConvBnRelu::new(cin, width, 3, 1, device));
            cin = width;
        }
        Fusion {
            encoder,
            backbone,
            fusion,
            decoder,
            head: Conv2dConfig::new([cin, self.out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            output_activation: self.output_activation,
        }
    }
}

/// The global-feature backbone: a torchvision-layout ResNet (keys as torchvision's
/// `resnet18()`, under `backbone.`), global average pooling, and `fc` to the global vector.
#[derive(Module, Debug)]
pub struct ResnetBackbone {
    /// Stem: 7x7 conv, stride 2, `[stem, backbone_in, 7, 7]`, no bias.
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
    /// Linear layer from the pooled features to the global vector (PyTorch keys
    /// `backbone.fc.weight` `[global_dim, w4]`, `backbone.fc.bias` `[global_dim]`).
    pub fc: Linear,
}

impl ResnetBackbone {
    /// The global feature vector of an image.
    ///
    /// # Shapes
    /// `x: [batch, backbone_in, H, W]` (any H, W ≥ 1) → `[batch, global_dim]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let (_, x) = forward_stem(&self.conv1, &self.bn1, &self.maxpool, x); // [batch, stem, H/4, W/4]
        let x = forward_stage(&self.layer1, x); // [batch, w1, H/4, W/4]
        let x = forward_stage(&self.layer2, x); // [batch, w2, H/8, W/8]
        let x = forward_stage(&self.layer3, x); // [batch, w3, H/16, W/16]
        let x = forward_stage(&self.layer4, x); // [batch, w4, H/32, W/32]
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]); // [batch, w4]
        self.fc.forward(pooled) // [batch, global_dim]
    }
}

/// The Deep Koalarization generator (see the [module docs](self)). Keys:
/// `encoder.{i}.conv.weight`, `encoder.{i}.bn.*`; `backbone.conv1.weight`, `backbone.bn1.*`,
/// `backbone.layer{s}.{i}.conv1.weight`, ..., `backbone.layer{s}.0.downsample.conv.weight`,
/// `backbone.layer{s}.0.downsample.bn.*`, `backbone.fc.weight`, `backbone.fc.bias`;
/// `fusion.weight` `[fusion_width, encoder_width + global_dim, 1, 1]`, `fusion.bias`;
/// `decoder.{i}.conv.weight`, `decoder.{i}.bn.*`; `head.weight`, `head.bias`.
#[derive(Module, Debug)]
pub struct Fusion {
    /// 3x3 conv + BN + ReLU layers down to 1/8 resolution.
    pub encoder: Vec<ConvBnRelu>,
    /// The global-feature classifier trunk.
    pub backbone: ResnetBackbone,
    /// The 1x1 fusion convolution (with bias; ReLU after it) over `[encoder, replicated global]`.
    pub fusion: Conv2d,
    /// x2 nearest + 3x3 conv + BN + ReLU blocks.
    pub decoder: Vec<ConvBnRelu>,
    /// Final 3x3 conv (with bias) to `out_channels`.
    pub head: Conv2d,
    /// The activation after `head`.
    #[module(skip)]
    pub output_activation: OutputActivation,
}

impl Fusion {
    /// Predicts ab from L.
    ///
    /// # Shapes
    /// - `l`: `[batch, in_channels, H, W]` (default `[batch, 1, H, W]`, `(L − 50)/50` in
    ///   `-1..1`); any H, W ≥ 1.
    /// - returns `[batch, out_channels, H, W]` (default `[batch, 2, H, W]`, `ab/110` in `-1..1`,
    ///   tanh; with `OutputActivation::None`, unbounded logits).
    pub fn forward(&self, l: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = l.dims();
        let mut e = l.clone(); // [batch, in, H, W]
        for block in &self.encoder {
            e = block.forward(e); // [batch, e_i, ...]
        }
        let [_, _, gh, gw] = e.dims(); // [batch, e, H/8, W/8] with the presets
        let backbone_in = self.backbone.conv1.weight.dims()[1];
        let rgb = if backbone_in == c {
            l
        } else {
            l.repeat_dim(1, backbone_in) // [batch, 3, H, W], L replicated
        };
        let global = self.backbone.forward(rgb); // [batch, global_dim]
        let g = global.dims()[1];
        let global = global.reshape([b, g, 1, 1]).expand([b, g, gh, gw]); // [batch, g, h8, w8]
        let x = Tensor::cat(vec![e, global], 1); // [batch, e + g, H/8, W/8]
        let mut x = relu(self.fusion.forward(x)); // [batch, fusion_width, H/8, W/8]
        for block in &self.decoder {
            x = block.forward(up2(x)); // [batch, d_i, 2·h, 2·w]
        }
        let y = self.head.forward(x); // [batch, out_channels, ~H, ~W]
        finish(y, self.output_activation, [h, w]) // [batch, out_channels, H, W]
    }
}

/// The backbone's stem: `backbone.conv1` (summed over its input channels when it takes the
/// one-channel input replicated: `conv(x, w)` over `[x, x, x]` is `conv(x, Σ_c w[:, c])`) with
/// `backbone.bn1` folded and ReLU fused.
fn stem_graph(
    g: &mut Graph,
    x: Value,
    config: &FusionConfig,
    w: &Weights,
    isa: Isa,
) -> Result<Value, ModelError> {
    let (stem, bin, cin) = (
        config.backbone_stem_width,
        config.backbone_in_channels,
        config.in_channels,
    );
    let weight = w.tensor("conv1.weight", &[stem, bin, 7, 7])?;
    let mut folded = if bin == cin {
        weight.to_vec()
    } else {
        // Replicated input: sum the kernels over the input channels.
        let mut sum = vec![0f32; stem * 49];
        for (o, out) in sum.chunks_exact_mut(49).enumerate() {
            for c in 0..bin {
                let k = &weight[(o * bin + c) * 49..][..49];
                out.iter_mut().zip(k).for_each(|(s, v)| *s += v);
            }
        }
        sum
    };
    let (scale, shift) = batch_norm_affine(&w.pp("bn1"), stem)?;
    for (o, kernel) in folded.chunks_exact_mut(cin * 49).enumerate() {
        kernel.iter_mut().for_each(|v| *v *= scale[o]);
    }
    let packed = PackedConv::new(
        &w.key("conv1"),
        ConvSpec::square(cin, stem, 7, 2, 3),
        &folded,
        Some(&shift),
        Activation::Relu,
        isa,
    )?;
    Ok(g.conv(x, packed, None)?)
}

/// [`Fusion::forward`] as an engine graph, built from named weights (see [`Fusion`] for the
/// keys) with no burn module. The backbone's global average pool is
/// [`Graph::global_avg_pool`], its `fc` a 1x1 convolution on the `1 x 1` map, and the
/// replication a nearest resize to the encoder's grid. Input `[batch, H, W, in_channels]`,
/// output `[batch, H, W, out_channels]` (NHWC).
///
/// # Errors
/// [`ModelError::Config`] when the config is invalid; [`ModelError::MissingWeight`],
/// [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`] when the weights do not fit
/// it; [`ModelError::Engine`] if `isa` is not available.
pub fn graph(config: &FusionConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    config.validate().map_err(|message| ModelError::Config {
        path: w.path().to_path_buf(),
        message,
    })?;
    let (mut g, x0) = Graph::new(config.in_channels);
    // Encoder.
    let mut e = x0;
    let mut cin = config.in_channels;
    for (i, &[width, stride]) in config.encoder.iter().enumerate() {
        e = ConvBnRelu::graph(
            &mut g,
            e,
            &w.pp("encoder").pp(i),
            cin,
            width,
            3,
            stride,
            isa,
        )?;
        cin = width;
    }
    debug_assert_eq!(cin, config.encoder_width());
    // Backbone: the global vector as a 1 x 1 map.
    let bw = w.pp("backbone");
    let x = stem_graph(&mut g, x0, config, &bw, isa)?;
    let mut x = g.max_pool(x, [3, 3], [2, 2], [1; 4]);
    let mut c = config.backbone_stem_width;
    for (i, (&width, &depth)) in config
        .backbone_widths
        .iter()
        .zip(&config.backbone_depths)
        .enumerate()
    {
        let stride = if i == 0 { 1 } else { 2 };
        let layer = bw.pp(format!("layer{}", i + 1));
        x = stage_graph(&mut g, x, &layer, c, width, depth, stride, isa)?;
        c = width;
    }
    let pooled = g.global_avg_pool(x); // [batch, 1, 1, w4]
    // burn's Linear is saved as PyTorch's `[out, in]`, which is a 1x1 conv's `[out, in, 1, 1]`.
    let gd = config.global_dim;
    let fc_weight = bw.tensor("fc.weight", &[gd, c])?;
    let fc_bias = bw.tensor("fc.bias", &[gd])?;
    let fc = PackedConv::new(
        &bw.key("fc"),
        ConvSpec::square(c, gd, 1, 1, 0),
        fc_weight,
        Some(fc_bias),
        Activation::None,
        isa,
    )?;
    let global = g.conv(pooled, fc, None)?; // [batch, 1, 1, global_dim]
    // Fusion: replicate over the encoder's grid, concatenate, 1x1 conv + ReLU.
    let global = g.resize_like(global, e, ResizeMode::Nearest);
    let cat = g.concat(&[e, global])?;
    w.tensor("fusion.weight", &[config.fusion_width, cin + gd, 1, 1])?;
    let fusion = conv(
        &w.pp("fusion"),
        None,
        ConvGeometry::new(1, 0).with_bias(),
        Activation::Relu,
        isa,
    )?;
    let mut x = g.conv(cat, fusion, None)?;
    cin = config.fusion_width;
    // Decoder.
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

/// A backbone key as torchvision spells it (`bn1.weight`, `layer2.0.downsample.0.weight`) from
/// burn's path (`bn1.gamma`, `layer2.0.downsample.conv.weight`).
fn torchvision_key(path: &str) -> String {
    let key = path
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.");
    if let Some(k) = key.strip_suffix(".gamma") {
        format!("{k}.weight")
    } else if let Some(k) = key.strip_suffix(".beta") {
        format!("{k}.bias")
    } else {
        key
    }
}

/// Loads a torchvision ResNet-18 state dict (safetensors, torchvision's keys: `conv1.weight`,
/// `bn1.weight`, `bn1.bias`, `bn1.running_mean`, `bn1.running_var`, `layer1.0.conv1.weight`,
/// ..., `layer2.0.downsample.0.weight`, `layer2.0.downsample.1.*`) into `net`'s backbone, for
/// example ImageNet weights exported with `safetensors.torch.save_file(resnet18(weights=
/// "DEFAULT").state_dict(), path)`. `fc.*` is ignored (the classifier's 1000-way layer is not
/// the global-vector layer, which keeps its own weights), as is `num_batches_tracked`. The
/// config must match the file: [`FusionConfig::full`] does for ResNet-18.
///
/// Returns the network, on `device`.
///
/// # Errors
/// [`ModelError::Io`] when the file cannot be read, [`ModelError::Weights`] when it is not
/// safetensors, [`ModelError::WeightShape`] naming the key (torchvision's spelling) and both
/// shapes when a tensor does not fit, [`ModelError::MissingWeight`] when one is absent and
/// [`ModelError::UnexpectedWeight`] for a key that is not part of a ResNet backbone.
pub fn load_backbone(mut net: Fusion, path: &Path, device: &Device) -> Result<Fusion, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let weights_err = |message: String| ModelError::Weights {
        path: path.to_path_buf(),
        message,
    };
    // Check that it is safetensors first (the store would report it in its own words).
    safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| weights_err(format!("not a safetensors file ({e})")))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(r"^(layer\d+\.\d+\.downsample)\.0\.", "${1}.conv.")
        .with_key_remapping(r"^(layer\d+\.\d+\.downsample)\.1\.", "${1}.bn.")
        .with_predicate(|path, _| !path.starts_with("fc."))
        .allow_partial(true)
        .validate(false);
    let result = net
        .backbone
        .load_from(&mut store)
        .map_err(|e| weights_err(e.to_string()))?;
    if let Some(e) = result.errors.first() {
        return Err(match e {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => ModelError::WeightShape {
                path: path.to_path_buf(),
                key: torchvision_key(key),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => weights_err(other.to_string()),
        });
    }
    if let Some((key, _)) = result.missing.iter().find(|(k, _)| !k.starts_with("fc.")) {
        return Err(ModelError::MissingWeight {
            path: path.to_path_buf(),
            key: torchvision_key(key),
        });
    }
    if let Some(key) = result
        .unused
        .iter()
        .find(|k| !k.starts_with("fc.") && !k.ends_with("num_batches_tracked"))
    {
        return Err(ModelError::UnexpectedWeight {
            path: path.to_path_buf(),
            key: torchvision_key(key),
        });
    }
    Ok(net.to_device(device))
}
