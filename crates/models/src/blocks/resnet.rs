//! ResNet basic blocks and stages (He, Zhang, Ren & Sun 2015, arXiv:1512.03385), following the
//! layout of torchvision's `resnet.py` (`BasicBlock`: 3x3 conv, BN, ReLU, 3x3 conv, BN, identity or
//! 1x1-conv projection shortcut, ReLU).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// A 3x3 convolution without bias, padding 1 (torchvision's `conv3x3`).
pub fn conv3x3(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
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
