//! Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016 (arXiv:1603.08511): the
//! `ECCVGenerator` of the official PyTorch release (github.com/richzhang/colorization,
//! `colorizers/eccv16.py`, commit 4bda68f), as an engine graph built from its named weights.
//!
//! Written from `../shared/reference/zhang.md` §4: eight blocks of 3x3 convolutions with ReLU
//! (`model1` … `model8`, each an `nn.Sequential`, so keys are `modelN.<index>.weight`); blocks 1-7
//! end with a batch norm *after* the ReLU, which cannot fold into the next (padded) convolution and
//! runs as a per-channel affine op; blocks 5 and 6 are dilated (dilation 2, padding 2); block 8
//! starts with a transposed convolution (k 4, stride 2, padding 1) and ends with a 1x1 convolution
//! to logits over the 313 quantised ab bins; then a softmax over the bins, `model_out` (a 1x1
//! convolution without bias: the expectation of the bin centres, `ab / 110`), and a x4 bilinear
//! upsampling (`align_corners = false`).
//!
//! The input is `(L − 50) / 100` and the output `ab / 110` at the input's size: the model's
//! [`crate::ModelIo`] is `lightness {offset 50, scale 100}` → `ab {scale 110}`. There is no burn
//! module: the network is for inference only.

use colorize_engine::{Activation, Graph, Isa, ResizeMode, Value};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv, conv_transpose};
use crate::weights::Weights;

fn default_bins() -> usize {
    313
}

/// The widths of an eccv16 network; `config.json`'s `network` with `"arch": "eccv16"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eccv16Config {
    /// Output channels of `model1` … `model7` (the release: 64, 128, 256, 512, 512, 512, 512).
    pub widths: [usize; 7],
    /// Channels of `model8`'s convolutions (the release: 256).
    pub decoder_width: usize,
    /// Quantised ab bins (the release: 313).
    #[serde(default = "default_bins")]
    pub bins: usize,
}

impl Eccv16Config {
    /// The published network (`colorization_release_v2`, 32.2 M parameters).
    pub fn release() -> Self {
        Self {
            widths: [64, 128, 256, 512, 512, 512, 512],
            decoder_width: 256,
            bins: 313,
        }
    }
}

/// `(convolutions, index of the strided one, dilation)` of blocks 1-7 (zhang.md §4).
const BLOCKS: [(usize, Option<usize>, usize); 7] = [
    (2, Some(1), 1),
    (2, Some(1), 1),
    (3, Some(2), 1),
    (3, None, 1),
    (3, None, 2),
    (3, None, 2),
    (3, None, 1),
];

/// The eccv16 network as an engine graph from its named weights (`model1.0.weight` …
/// `model8.6.bias`, `model_out.weight`, as the official state dict).
///
/// The graph's input is `[batch, H, W, 1]`, `(L − 50)/100`, with H and W multiples of 8; its
/// output `[batch, H, W, 2]`, `ab / 110`.
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit `config` (every tensor must be used); [`ModelError::Engine`] if
/// `isa` is not available.
pub fn graph(config: &Eccv16Config, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let (mut g, mut x): (Graph, Value) = Graph::new(1);
    let mut cin = 1;
    for (b, &(convs, strided, dilation)) in BLOCKS.iter().enumerate() {
        let block = w.pp(format!("model{}", b + 1));
        let cout = config.widths[b];
        for i in 0..convs {
            let layer = block.pp(2 * i);
            layer.tensor("weight", &[cout, cin, 3, 3])?;
            let stride = if strided == Some(i) { 2 } else { 1 };
            // 3x3 kernels: padding 1, or 2 where dilated by 2 (the output keeps its size).
            let mut geometry = ConvGeometry::new(stride, dilation).with_bias();
            geometry.dilation = [dilation, dilation];
            let c = conv(&layer, None, geometry, Activation::Relu, isa)?;
            x = g.conv(x, c, None)?;
            cin = cout;
        }
        let (scale, shift) = batch_norm_affine(&block.pp(2 * convs), cout)?;
        x = g.affine(x, scale, shift, Activation::None)?;
    }
    let block = w.pp("model8");
    let d = config.decoder_width;
    block.pp(0).tensor("weight", &[cin, d, 4, 4])?;
    let up = conv_transpose(
        &block.pp(0),
        ConvGeometry::new(2, 1).with_bias(),
        Activation::Relu,
        isa,
    )?;
    x = g.conv(x, up, None)?;
    for i in [2, 4] {
        block.pp(i).tensor("weight", &[d, d, 3, 3])?;
        let c = conv(
            &block.pp(i),
            None,
            ConvGeometry::new(1, 1).with_bias(),
            Activation::Relu,
            isa,
        )?;
        x = g.conv(x, c, None)?;
    }
    block.pp(6).tensor("weight", &[config.bins, d, 1, 1])?;
    let logits = conv(
        &block.pp(6),
        None,
        ConvGeometry::new(1, 0).with_bias(),
        Activation::None,
        isa,
    )?;
    x = g.conv(x, logits, None)?;
    let p = g.softmax(x);
    w.tensor("model_out.weight", &[2, config.bins, 1, 1])?;
    let out = conv(
        &w.pp("model_out"),
        None,
        ConvGeometry::new(1, 0),
        Activation::None,
        isa,
    )?;
    let ab = g.conv(p, out, None)?;
    let ab = g.resize_by(ab, 4, ResizeMode::Bilinear)?;
    g.set_output(ab);
    w.check_all_used()?;
    Ok(g)
}
