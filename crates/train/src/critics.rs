//! The critics (discriminators) for GAN training: each scores `(L, ab)` pairs patch by patch,
//! conditioned on L as pix2pix's discriminator is (Isola et al. 2017, arXiv:1611.07004, §3.2:
//! a conditional GAN sees the input beside the output, so it can judge whether the colours fit
//! the picture and not only whether they look like colours).
//!
//! - [`PatchGan`]: pix2pix's 70x70 PatchGAN (`NLayerDiscriminator`, `n_layers = 3`).
//! - [`DeoldifyCritic`]: DeOldify's `custom_gan_critic` (fastai v1's `gan_critic` with spectral
//!   norm and self-attention; github.com/jantic/DeOldify `deoldify/critics.py`).
//!
//! Both return raw logits (no sigmoid), one per patch, for a binary cross-entropy with logits
//! or a hinge loss. Their inputs are the model's encoding: L as `L/50 − 1` and ab as `ab/110`.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::leaky_relu;
use colorize_models::blocks::self_attention::{SelfAttention, SelfAttentionConfig};
use colorize_models::blocks::spectral_norm::{SpectralNormConv2d, SpectralNormConv2dConfig};
use serde::{Deserialize, Serialize};

/// The negative slope of every critic's LeakyReLU (pix2pix and fastai: 0.2).
pub const LEAKY_SLOPE: f64 = 0.2;

/// Input channels of every critic: L and ab.
const IN_CHANNELS: usize = 3;

/// Which critic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticKind {
    /// pix2pix's 70x70 PatchGAN ([`PatchGan`]).
    Patchgan,
    /// DeOldify's spectral-normalised critic with self-attention ([`DeoldifyCritic`]).
    Deoldify,
}

impl CriticKind {
    /// Every kind with its name, in the order help texts list them.
    pub const ALL: [(&'static str, Self); 2] =
        [("patchgan", Self::Patchgan), ("deoldify", Self::Deoldify)];

    /// Parses `"patchgan"` or `"deoldify"`.
    ///
    /// # Errors
    /// A message listing the valid names.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, kind)| kind)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown critic '{name}' (valid: {})", names.join(", "))
            })
    }

    /// The name [`CriticKind::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Patchgan => "patchgan",
            Self::Deoldify => "deoldify",
        }
    }
}

/// A critic's architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CriticConfig {
    /// Which critic.
    pub kind: CriticKind,
    /// Channels of the first layer; the others are multiples of it. 64 is the papers' (pix2pix's
    /// `ndf`; DeOldify trained with 256), 32 suits light CPU runs.
    pub width: usize,
}

impl CriticConfig {
    /// `kind` at width 64.
    pub fn new(kind: CriticKind) -> Self {
        Self { kind, width: 64 }
    }

    /// The same critic at another width.
    pub fn with_width(mut self, width: usize) -> Self {
        self.width = width;
        self
    }

    /// Builds the critic with fresh weights.
    pub fn init(&self, device: &Device) -> Critic {
        match self.kind {
            CriticKind::Patchgan => Critic::Patchgan(PatchGan::new(self.width, device)),
            CriticKind::Deoldify => Critic::Deoldify(DeoldifyCritic::new(self.width, device)),
        }
    }
}

/// A critic of either kind.
// The variants differ by a kilobyte of layer handles (the tensors live on the device), and one
// critic exists per training run: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Critic {
    /// pix2pix's PatchGAN.
    Patchgan(PatchGan),
    /// DeOldify's critic.
    Deoldify(DeoldifyCritic),
}

impl Critic {
    /// Scores each patch of the colouring `ab` of `l`: higher means "real".
    ///
    /// # Shapes
    /// - `l`: `[batch, 1, H, W]`, `L/50 − 1`.
    /// - `ab`: `[batch, 2, H, W]`, `ab/110`.
    /// - returns raw logits `[batch, 1, h, w]`, one per patch ([`PatchGan::forward`] and
    ///   [`DeoldifyCritic::forward`] give `h` and `w`).
    pub fn forward(&self, l: Tensor<4>, ab: Tensor<4>) -> Tensor<4> {
        let x = Tensor::cat(vec![l, ab], 1); // [batch, 3, H, W]
        match self {
            Self::Patchgan(c) => c.forward(x),
            Self::Deoldify(c) => c.forward(x),
        }
    }

    /// One power iteration on every spectral-normalised layer; call it once per critic
    /// optimiser step. The PatchGAN has none and is returned unchanged.
    pub fn power_iteration(self) -> Self {
        match self {
            Self::Patchgan(c) => Self::Patchgan(c),
            Self::Deoldify(c) => Self::Deoldify(c.power_iteration()),
        }
    }
}

/// A 4x4 convolution, padding 1, as every PatchGAN layer has.
fn conv4(cin: usize, cout: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [4, 4])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device)
}

/// One PatchGAN layer: 4x4 conv, batch norm (all but the first), LeakyReLU 0.2.
#[derive(Module, Debug)]
pub struct PatchBlock {
    /// The 4x4 convolution (bias only where there is no batch norm, as pix2pix).
    pub conv: Conv2d,
    /// Batch norm (absent in the first layer).
    pub bn: Option<BatchNorm>,
}

/// pix2pix's 70x70 PatchGAN (Isola et al. 2017, arXiv:1611.07004, appendix 6.1.2; the reference
/// `NLayerDiscriminator` with `n_layers = 3` and batch norm): C64-C128-C256-C512, then a
/// convolution to one channel. Every convolution is 4x4 with padding 1; the first three have
/// stride 2, the last two stride 1. Each is followed by batch norm (not the first) and
/// LeakyReLU 0.2; the last gives logits.
///
/// The receptive field of one output is 70x70 input pixels (backwards from the output,
/// `r ← (r − 1)·stride + 4`: 1 → 4 → 7 → 16 → 34 → 70), so the critic judges overlapping 70x70
/// patches: high-frequency structure, with L1 or perceptual losses left to carry the
/// low frequencies (pix2pix §3.2.2).
#[derive(Module, Debug)]
pub struct PatchGan {
    /// The four C-k layers (widths `w`, `2w`, `4w`, `8w`).
    pub layers: Vec<PatchBlock>,
    /// The 4x4 stride-1 convolution to one channel (with bias).
    pub head: Conv2d,
}

impl PatchGan {
    /// A PatchGAN whose first layer has `width` channels (pix2pix: 64).
    pub fn new(width: usize, device: &Device) -> Self {
        let widths = [width, 2 * width, 4 * width, 8 * width];
        let mut cin = IN_CHANNELS;
        let layers = widths
            .iter()
            .enumerate()
            .map(|(i, &cout)| {
                let stride = if i < 3 { 2 } else { 1 };
                let first = i == 0;
                let block = PatchBlock {
                    // pix2pix: `use_bias = norm_layer == InstanceNorm2d`, so no bias before BN.
                    conv: conv4(cin, cout, stride, first, device),
                    bn: (!first).then(|| BatchNormConfig::new(cout).init(device)),
                };
                cin = cout;
                block
            })
            .collect();
        Self {
            layers,
            head: conv4(8 * width, 1, 1, true, device),
        }
    }

    /// Logits per 70x70 patch.
    ///
    /// # Shapes
    /// `x: [batch, 3, H, W]` → `[batch, 1, h, w]` with, per side, three halvings
    /// `n ← ⌊n/2⌋` (4x4, stride 2, padding 1) and two `n ← n − 1` (4x4, stride 1, padding 1):
    /// 128 → 14, 256 → 30, 96 → 10. Needs H, W ≥ 16.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x; // [batch, 3, H, W]
        for block in &self.layers {
            y = block.conv.forward(y);
            if let Some(bn) = &block.bn {
                y = bn.forward(y);
            }
            y = leaky_relu(y, LEAKY_SLOPE); // [batch, w·2^i, ...]: H/2, H/4, H/8, H/8 − 1
        }
        self.head.forward(y) // [batch, 1, H/8 − 2, W/8 − 2]
    }
}

/// A spectral-normalised convolution with fastai's padding `(k − 1) / 2` and a bias (fastai's
/// `conv_layer` with `NormType.Spectral` has no batch norm, so it keeps the bias).
fn sn_conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    device: &Device,
) -> SpectralNormConv2d {
    let p = (k - 1) / 2;
    SpectralNormConv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// One block of DeOldify's critic: 3x3 conv, then a 4x4 stride-2 conv doubling the channels,
/// each LeakyReLU'd; the first block's is followed by self-attention.
#[derive(Module, Debug)]
pub struct CriticBlock {
    /// 3x3, stride 1, `C → C`.
    pub conv: SpectralNormConv2d,
    /// 4x4, stride 2, `C → 2C`.
    pub down: SpectralNormConv2d,
    /// Self-attention over `2C` channels (first block only).
    pub attention: Option<SelfAttention>,
}

/// DeOldify's critic, `custom_gan_critic(n_channels=3, nf, n_blocks=3)`: fastai `conv_layer`s
/// with spectral norm, LeakyReLU 0.2 and no batch norm:
///
/// ```text
/// stem   4x4 s2, 3 → w                               H/2
/// block0 3x3 s1, w → w;   4x4 s2, w → 2w; attention   H/4   (self_attention=(i == 0))
/// block1 3x3 s1, 2w → 2w; 4x4 s2, 2w → 4w             H/8
/// block2 3x3 s1, 4w → 4w; 4x4 s2, 4w → 8w             H/16
/// mid    3x3 s1, 8w → 8w                              H/16
/// head   4x4 s1 padding 0, 8w → 1, no bias, no activation     H/16 − 3
/// ```
///
/// The self-attention sits after the first block's downsampling (the second downsampling of
/// the critic, at 1/4 resolution), where DeOldify's code puts it. DeOldify's
/// `Dropout2d(p/2)` after the stem and `Dropout2d(p)` in each block (`p = 0.15`) are omitted:
/// burn 0.22 has no channel dropout, and spectral norm is the critic's main regulariser.
/// fastai flattens the logits; they are kept as a map here.
#[derive(Module, Debug)]
pub struct DeoldifyCritic {
    /// 4x4 stride-2 stem, `3 → w`.
    pub stem: SpectralNormConv2d,
    /// Three downsampling blocks, `w → 2w → 4w → 8w`.
    pub blocks: Vec<CriticBlock>,
    /// 3x3 convolution at the lowest resolution, `8w → 8w`.
    pub mid: SpectralNormConv2d,
    /// 4x4 convolution without padding or bias to one channel.
    pub head: SpectralNormConv2d,
}

impl DeoldifyCritic {
    /// A critic whose stem has `width` channels (DeOldify: 256).
    pub fn new(width: usize, device: &Device) -> Self {
        let blocks = (0..3)
            .map(|i| {
                let c = width << i;
                CriticBlock {
                    conv: sn_conv(c, c, 3, 1, device),
                    down: sn_conv(c, 2 * c, 4, 2, device),
                    attention: (i == 0).then(|| {
                        SelfAttentionConfig::new(2 * c)
                            .with_spectral_norm(true)
                            .init(device)
                    }),
                }
            })
            .collect();
        let top = width << 3;
        Self {
            stem: sn_conv(IN_CHANNELS, width, 4, 2, device),
            blocks,
            mid: sn_conv(top, top, 3, 1, device),
            head: SpectralNormConv2dConfig::new([top, 1], [4, 4])
                .with_bias(false)
                .init(device),
        }
    }

    /// Logits per patch.
    ///
    /// # Shapes
    /// `x: [batch, 3, H, W]` → `[batch, 1, h, w]` with, per side, four halvings `n ← ⌊n/2⌋`
    /// (4x4, stride 2, padding 1) then `n ← n − 3` (4x4, no padding): 128 → 5, 256 → 13,
    /// 96 → 3. Needs H, W ≥ 64.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = leaky_relu(self.stem.forward(x), LEAKY_SLOPE); // [batch, w, H/2, W/2]
        for block in &self.blocks {
            y = leaky_relu(block.conv.forward(y), LEAKY_SLOPE);
            y = leaky_relu(block.down.forward(y), LEAKY_SLOPE); // [batch, 2C, H', W'] halved
            if let Some(a) = &block.attention {
                y = a.forward(y);
            }
        }
        let y = leaky_relu(self.mid.forward(y), LEAKY_SLOPE); // [batch, 8w, H/16, W/16]
        self.head.forward(y) // [batch, 1, H/16 − 3, W/16 − 3]
    }

    /// One power iteration on every layer.
    pub fn power_iteration(self) -> Self {
        Self {
            stem: self.stem.power_iteration(1),
            blocks: self
                .blocks
                .into_iter()
                .map(|b| CriticBlock {
                    conv: b.conv.power_iteration(1),
                    down: b.down.power_iteration(1),
                    attention: b.attention.map(SelfAttention::power_iteration),
                })
                .collect(),
            mid: self.mid.power_iteration(1),
            head: self.head.power_iteration(1),
        }
    }
}
