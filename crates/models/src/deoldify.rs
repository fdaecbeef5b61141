//! DeOldify's generators (Jason Antic, github.com/jantic/DeOldify, commit 5f86c28,
//! `deoldify/unet.py`: `DynamicUnetDeep` for "Artistic", `DynamicUnetWide` for "Stable" and
//! "Video", over fastai v1's layers), as engine graphs built from their named weights. Written
//! from `../shared/reference/deoldify.md` §3-5.
//!
//! A U-Net (Ronneberger et al. 2015, arXiv:1505.04597) over a torchvision ResNet-34 (Artistic) or
//! ResNet-101 (Stable, Video; bottleneck blocks) encoder:
//! after the encoder a free-standing batch norm and ReLU (`layers.1`, `layers.2`) and two 3x3
//! "middle" convolutions (`layers.3`); four decoder blocks (`layers.4`-`layers.7`) each enlarge x2
//! with a 1x1 convolution + pixel shuffle (Shi et al. 2016, arXiv:1609.05158) + blur (Sugawara et
//! al. 2019, arXiv:1806.02658), join the encoder's skip (batch-normed, ReLU'd) and mix with two
//! 3x3 convolutions (Deep) or one (Wide), the second block ending in SAGAN self-attention (Zhang et al. 2018,
//! arXiv:1805.08318); a last pixel shuffle to full size (`layers.8`), the network input
//! concatenated back (`layers.9`), a residual block (`layers.10`), a 1x1 convolution to RGB and
//! `sigmoid · 6 − 3` (`layers.11`, `layers.12`).
//!
//! The decoder's convolutions are conv → ReLU → batch norm, so their batch norms run as
//! per-channel affine ops; the encoder's and the shuffle convolutions' fold into the weights.
//! The weights are read in their folded form: spectral and weight norm are folded by
//! `colorize import` (`colorize-import`), which also maps the checkpoint's keys one to one.
//!
//! The input is gray RGB normalised with ImageNet statistics, `[batch, S, S, 3]` with `S` a
//! multiple of 16 (DeOldify: `render_factor · 16`); the output is RGB in the same normalised
//! space, in `-3..3`. There is no burn module: the network is for inference only.

use colorize_engine::{Activation, Graph, Isa, ResizeMode};
use serde::{Deserialize, Serialize};

use crate::blocks::fastai::{custom_conv, out_channels, shuffle_up};
use crate::blocks::resnet::{bottleneck_graph, stage_graph};
use crate::blocks::self_attention::self_attention_graph;
use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv};
use crate::weights::Weights;

/// Which of DeOldify's decoders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeoldifyDecoder {
    /// `DynamicUnetDeep` (Artistic): two 3x3 convolutions per block, ResNet-34 encoder.
    Deep,
    /// `DynamicUnetWide` (Stable, Video): one 3x3 convolution per block, ResNet-101 encoder.
    Wide,
}

/// A DeOldify generator; `config.json`'s `network` with `"arch": "deoldify"`. Channel counts are
/// read from the weights' shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeoldifyConfig {
    /// The decoder.
    pub decoder: DeoldifyDecoder,
    /// Blocks per encoder stage (ResNet-34: `[3, 4, 6, 3]`; ResNet-101: `[3, 4, 23, 3]`). The
    /// block type is read from the weights: bottleneck blocks have a `conv3`.
    pub depths: [usize; 4],
}

impl DeoldifyConfig {
    /// The published Artistic generator (`ColorizeArtistic_gen.pth`).
    pub fn artistic() -> Self {
        Self {
            decoder: DeoldifyDecoder::Deep,
            depths: [3, 4, 6, 3],
        }
    }

    /// The published Stable and Video generators (`ColorizeStable_gen.pth`,
    /// `ColorizeVideo_gen.pth`: one architecture, two sets of weights).
    pub fn stable() -> Self {
        Self {
            decoder: DeoldifyDecoder::Wide,
            depths: [3, 4, 23, 3],
        }
    }
}

/// A DeOldify generator (Artistic: Deep over ResNet-34; Stable and Video: Wide over ResNet-101)
/// as an engine graph from its folded, named weights (`layers.0.0.weight` … `layers.11.0.bias`).
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit (every tensor must be used); [`ModelError::Engine`] if `isa` is
/// not available or a channel count does not fit the next layer.
pub fn graph(config: &DeoldifyConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let enc = w.pp("layers").pp(0);
    let (mut g, x0) = Graph::new(3);
    // Encoder: torchvision ResNet-34 (deoldify.md §4.1).
    let stem = conv(
        &enc.pp(0),
        Some(&enc.pp(1)),
        ConvGeometry::new(2, 3),
        Activation::Relu,
        isa,
    )?;
    let stem_width = out_channels(&enc.pp(0))?;
    let e0 = g.conv(x0, stem, None)?;
    let mut x = g.max_pool(e0, [3, 3], [2, 2], [1; 4]);
    let mut skips = vec![(e0, stem_width)];
    let mut cin = stem_width;
    for (i, &depth) in config.depths.iter().enumerate() {
        let stage = enc.pp(4 + i);
        let stride = if i == 0 { 1 } else { 2 };
        if stage.pp(0).contains("conv3.weight") {
            // ResNet-101: bottleneck blocks, the first with a projection shortcut.
            for b in 0..depth {
                (x, cin) = bottleneck_graph(
                    &mut g,
                    x,
                    &stage.pp(b),
                    if b == 0 { stride } else { 1 },
                    isa,
                )?;
            }
        } else {
            let width = out_channels(&stage.pp(0).pp("conv1"))?;
            x = stage_graph(&mut g, x, &stage, cin, width, depth, stride, isa)?;
            cin = width;
        }
        skips.push((x, cin));
    }
    skips.pop(); // layer4's output is the decoder's input, not a skip
    let layers = w.pp("layers");
    let (scale, shift) = batch_norm_affine(&layers.pp(1), cin)?;
    let mut h = g.affine(x, scale, shift, Activation::Relu)?;
    h = custom_conv(&mut g, h, &layers.pp(3).pp(0), 1, isa)?;
    h = custom_conv(&mut g, h, &layers.pp(3).pp(1), 1, isa)?;
    // Decoder blocks 0-3 join layer3, layer2, layer1 and the stem (deoldify.md §4.2).
    for block in 4..8 {
        let b = layers.pp(block);
        let (skip, skip_channels) = skips.pop().expect("four skips");
        let shuf = b.pp("shuf").pp("conv");
        let up = shuffle_up(&mut g, h, &shuf.pp(0), Some(&shuf.pp(1)), 2, isa)?;
        let up = g.resize_like(up, skip, ResizeMode::Nearest);
        let (scale, shift) = batch_norm_affine(&b.pp("bn"), skip_channels)?;
        // ReLU(cat(up, bn(skip))): `up` is already >= 0 (a blur of ReLU outputs).
        let s = g.affine(skip, scale, shift, Activation::Relu)?;
        let cat = g.concat(&[up, s])?;
        let last = match config.decoder {
            DeoldifyDecoder::Deep => {
                let a = custom_conv(&mut g, cat, &b.pp("conv1"), 1, isa)?;
                h = custom_conv(&mut g, a, &b.pp("conv2"), 1, isa)?;
                "conv2"
            }
            DeoldifyDecoder::Wide => {
                h = custom_conv(&mut g, cat, &b.pp("conv"), 1, isa)?;
                "conv"
            }
        };
        let sa = b.pp(last).pp(3);
        if sa.contains("gamma") {
            h = self_attention_graph(&mut g, h, &sa, isa)?;
        }
    }
    // Final x2 (weight-normed conv with bias), the input joined back, the residual block, RGB.
    h = shuffle_up(&mut g, h, &layers.pp(8).pp("conv").pp(0), None, 2, isa)?;
    let cat = g.concat(&[h, x0])?;
    let res = layers.pp(10).pp("layers");
    let geometry = ConvGeometry::new(1, 1).with_bias();
    let a = conv(&res.pp(0).pp(0), None, geometry, Activation::Relu, isa)?;
    let a = g.conv(cat, a, None)?;
    let b = conv(&res.pp(1).pp(0), None, geometry, Activation::Relu, isa)?;
    let b = g.conv(a, b, None)?;
    let h = g.add(cat, b)?;
    let last = conv(
        &layers.pp(11).pp(0),
        None,
        ConvGeometry::new(1, 0).with_bias(),
        Activation::Sigmoid,
        isa,
    )?;
    let y = g.conv(h, last, None)?;
    // SigmoidRange(-3, 3): sigmoid · 6 − 3.
    let y = g.affine(y, vec![6.0; 3], vec![-3.0; 3], Activation::None)?;
    g.set_output(y);
    w.check_all_used()?;
    Ok(g)
}
