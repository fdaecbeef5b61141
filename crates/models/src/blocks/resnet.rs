//! ResNet basic blocks and stages (He, Zhang, Ren & Sun 2015, arXiv:1512.03385), following the
//! layout of torchvision's `resnet.py` (`BasicBlock`: 3x3 conv, BN, ReLU, 3x3 conv, BN, identity or
//! 1x1-conv projection shortcut, ReLU).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use colorize_engine::{Activation, Graph, Isa, Value};

use crate::error::ModelError;
use crate::layers::{ConvGeometry, conv, conv_node};
use crate::weights::Weights;

/// A 3x3 convolution without bias, padding 1 (torchvision's `conv3x3`).
pub fn conv3x3(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// torchvision's ResNet stem, the fields `conv1`, `bn1` and `maxpool` of every network here with
/// a ResNet encoder: a 7x7 stride-2 convolution without bias (padding 3) from `in_channels` to
/// `width`, its batch norm, and a 3x3 stride-2 max-pool (padding 1).
pub fn stem(in_channels: usize, width: usize, device: &Device) -> (Conv2d, BatchNorm, MaxPool2d) {
    (
        Conv2dConfig::new([in_channels, width], [7, 7])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
            .with_bias(false)
            .init(device),
        BatchNormConfig::new(width).init(device),
        MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(),
    )
}

/// Runs the [`stem`]: `x: [batch, in, H, W]` → `(relu(bn1(conv1(x))): [batch, width, H/2, W/2],
/// its max-pool: [batch, width, H/4, W/4])`.
pub fn forward_stem(
    conv1: &Conv2d,
    bn1: &BatchNorm,
    maxpool: &MaxPool2d,
    x: Tensor<4>,
) -> (Tensor<4>, Tensor<4>) {
    let x1 = relu(bn1.forward(conv1.forward(x)));
    let pooled = maxpool.forward(x1.clone());
    (x1, pooled)
}

/// [`forward_stem`] as engine nodes, from the weights `conv1.weight` `[width, in_channels, 7, 7]`
/// and `bn1.*` under `w` (batch norm folded): `(the stem's output, its max-pool)`.
///
/// # Errors
/// [`ModelError::MissingWeight`] or [`ModelError::WeightShape`] when the weights do not fit;
/// [`ModelError::Engine`] if `isa` is not available.
pub fn stem_graph(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    in_channels: usize,
    width: usize,
    isa: Isa,
) -> Result<(Value, Value), ModelError> {
    w.tensor("conv1.weight", &[width, in_channels, 7, 7])?;
    let c = conv(
        &w.pp("conv1"),
        Some(&w.pp("bn1")),
        ConvGeometry::new(2, 3),
        Activation::Relu,
        isa,
    )?;
    let x1 = g.conv(x, c, None)?;
    let pooled = g.max_pool(x1, [3, 3], [2, 2], [1; 4]);
    Ok((x1, pooled))
}

/// The projection shortcut of a block that changes width or resolution: 1x1 conv (stride `s`) + BN.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1x1 convolution, `[out, in, 1, 1]`, no bias.
    pub conv: Conv2d,
    /// Batch norm over `out` channels.
    pub bn: BatchNorm,
}

impl Downsample {
    /// `x: [batch, in, H, W]` -> `[batch, out, H/s, W/s]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// torchvision's `BasicBlock` (expansion 1).
#[derive(Module, Debug)]
pub struct BasicBlock {
    /// First 3x3 convolution (carries the stride).
    pub conv1: Conv2d,
    /// Batch norm after `conv1`.
    pub bn1: BatchNorm,
    /// Second 3x3 convolution.
    pub conv2: Conv2d,
    /// Batch norm after `conv2`.
    pub bn2: BatchNorm,
    /// Projection shortcut when width or resolution changes.
    pub downsample: Option<Downsample>,
}

impl BasicBlock {
    /// A block from `in_channels` to `out_channels` with the given stride (1 or 2).
    pub fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_channels != out_channels).then(|| Downsample {
            conv: Conv2dConfig::new([in_channels, out_channels], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(out_channels).init(device),
        });
        Self {
            conv1: conv3x3(in_channels, out_channels, stride, device),
            bn1: BatchNormConfig::new(out_channels).init(device),
            conv2: conv3x3(out_channels, out_channels, 1, device),
            bn2: BatchNormConfig::new(out_channels).init(device),
            downsample,
        }
    }

    /// # Shapes
    /// `x: [batch, in, H, W]` -> `[batch, out, ceil(H/stride), ceil(W/stride)]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let out = relu(self.bn1.forward(self.conv1.forward(x)));
        let out = self.bn2.forward(self.conv2.forward(out));
        relu(out + identity)
    }
}

/// One ResNet stage: `depth` basic blocks, the first carrying the stride.
pub fn stage(
    in_channels: usize,
    out_channels: usize,
    depth: usize,
    stride: usize,
    device: &Device,
) -> Vec<BasicBlock> {
    (0..depth)
        .map(|i| {
            if i == 0 {
                BasicBlock::new(in_channels, out_channels, stride, device)
            } else {
                BasicBlock::new(out_channels, out_channels, 1, device)
            }
        })
        .collect()
}

/// Runs the blocks of a stage in order.
pub fn forward_stage(blocks: &[BasicBlock], mut x: Tensor<4>) -> Tensor<4> {
    for b in blocks {
        x = b.forward(x);
    }
    x
}

/// One basic block as two fused engine convolutions,
/// `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, from the weights under `w`
/// (`conv1.weight`, `bn1.*`, `conv2.weight`, `bn2.*`, and `downsample.conv.weight`,
/// `downsample.bn.*` — or torchvision's `downsample.0.weight`, `downsample.1.*` — when the block
/// changes width or resolution).
///
/// # Errors
/// As [`crate::layers::conv`]: a missing or mis-shaped tensor, named by key.
#[allow(clippy::too_many_arguments)]
pub fn basic_block_graph(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    w.tensor("conv1.weight", &[out_channels, in_channels, 3, 3])?;
    w.tensor("conv2.weight", &[out_channels, out_channels, 3, 3])?;
    let identity = if stride != 1 || in_channels != out_channels {
        // Ours: `downsample.conv` / `downsample.bn`; torchvision's: `downsample.0` / `.1`.
        let d = w.pp("downsample");
        let (c, b) = if d.contains("conv.weight") {
            ("conv", "bn")
        } else {
            ("0", "1")
        };
        d.pp(c)
            .tensor("weight", &[out_channels, in_channels, 1, 1])?;
        let geometry = ConvGeometry::new(stride, 0);
        conv_node(
            g,
            x,
            &d.pp(c),
            Some(&d.pp(b)),
            geometry,
            Activation::None,
            isa,
            None,
        )?
    } else {
        x
    };
    let h = conv_bn_relu(g, x, w, 1, ConvGeometry::new(stride, 1), isa, None)?;
    conv_bn_relu(g, h, w, 2, ConvGeometry::new(1, 1), isa, Some(identity))
}

/// `conv{i}` with `bn{i}` folded and ReLU (after `residual`, when given).
fn conv_bn_relu(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    i: usize,
    geometry: ConvGeometry,
    isa: Isa,
    residual: Option<Value>,
) -> Result<Value, ModelError> {
    let (c, b) = (w.pp(format!("conv{i}")), w.pp(format!("bn{i}")));
    conv_node(
        g,
        x,
        &c,
        Some(&b),
        geometry,
        Activation::Relu,
        isa,
        residual,
    )
}

/// One ResNet stage as engine convolutions (see [`stage`]): `depth` basic blocks under `w.0`,
/// `w.1`, ..., the first carrying the stride.
///
/// # Errors
/// As [`basic_block_graph`].
#[allow(clippy::too_many_arguments)]
pub fn stage_graph(
    g: &mut Graph,
    mut x: Value,
    w: &Weights,
    in_channels: usize,
    out_channels: usize,
    depth: usize,
    stride: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    for i in 0..depth {
        let (cin, s) = if i == 0 {
            (in_channels, stride)
        } else {
            (out_channels, 1)
        };
        x = basic_block_graph(g, x, &w.pp(i), cin, out_channels, s, isa)?;
    }
    Ok(x)
}

/// One bottleneck block (torchvision's `Bottleneck`, ResNet v1.5: the stride on the 3x3) as three
/// fused engine convolutions, `relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) +
/// shortcut(x))`, from the weights under `w` (`conv1`-`conv3`, `bn1`-`bn3`, and `downsample.0`,
/// `downsample.1` on the first block of a stage). Widths are read from the weights.
///
/// Returns the output and its channel count.
///
/// # Errors
/// As [`crate::layers::conv`]: a missing or mis-shaped tensor, named by key.
pub fn bottleneck_graph(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    stride: usize,
    isa: Isa,
) -> Result<(Value, usize), ModelError> {
    let out = w.get("conv3.weight")?.shape[0];
    let identity = if w.contains("downsample.0.weight") {
        let d = w.pp("downsample");
        let geometry = ConvGeometry::new(stride, 0);
        conv_node(
            g,
            x,
            &d.pp(0),
            Some(&d.pp(1)),
            geometry,
            Activation::None,
            isa,
            None,
        )?
    } else {
        x
    };
    let h = conv_bn_relu(g, x, w, 1, ConvGeometry::new(1, 0), isa, None)?;
    let h = conv_bn_relu(g, h, w, 2, ConvGeometry::new(stride, 1), isa, None)?;
    let y = conv_bn_relu(g, h, w, 3, ConvGeometry::new(1, 0), isa, Some(identity))?;
    Ok((y, out))
}
