//! SAGAN self-attention over the pixels of a feature map (Zhang, Goodfellow, Metaxas & Odena 2018,
//! arXiv:1805.08318), as fastai v1's `SelfAttention`, which DeOldify's generator and critic use
//! (`../shared/reference/deoldify.md` §3.5):
//!
//! ```text
//! f = query(x), g = key(x)   [batch, C/8, N]     (N = H·W; 1x1 convolutions, no bias)
//! h = value(x)               [batch, C, N]
//! β = softmax(fᵀ g, dim=1)   [batch, N, N]       (over the first N index: each column sums to 1)
//! out = x + γ · (h β)                            ((h β)[c, j] = Σ_i h[c, i] β[i, j])
//! ```
//!
//! `γ` is a learnt scalar that starts at 0, so the block is the identity at first and the network
//! learns how much non-local evidence to mix in. The projections are [`ConvLayer`]s, spectral-
//! normalised when asked (DeOldify's are). Keys: `query.weight`, `key.weight`, `value.weight`
//! (or `*.weight_orig`/`weight_u`/`weight_v`), `gamma` `[1]` — DeOldify's names, with 1x1
//! `Conv2d` weights `[o, i, 1, 1]` where fastai's `Conv1d` has `[o, i, 1]` (`colorize import`
//! gives those a 1x1 kernel).
//!
//! [`self_attention_graph`] builds the same block for the engine
//! ([`colorize_engine::Graph::self_attention`], which computes exactly this orientation).

use burn::module::Param;
use burn::nn::conv::Conv2dConfig;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use colorize_engine::{Activation, Graph, Isa, Value};

use crate::blocks::spectral_norm::ConvLayer;
use crate::error::ModelError;
use crate::layers::{ConvGeometry, conv};
use crate::weights::Weights;

/// Configuration of a [`SelfAttention`] block.
#[derive(Config, Debug)]
pub struct SelfAttentionConfig {
    /// Channels C of the feature map.
    pub channels: usize,
    /// Whether the three projections are spectral-normalised (DeOldify: yes).
    #[config(default = false)]
    pub spectral_norm: bool,
}

impl SelfAttentionConfig {
    /// The query and key width: `C/8` (fastai's `n_channels // 8`), at least 1.
    pub fn key_channels(&self) -> usize {
        (self.channels / 8).max(1)
    }

    /// Fresh projections (burn's default Kaiming-uniform initialisation) and `γ = 0`.
    pub fn init(&self, device: &Device) -> SelfAttention {
        let (c, ck) = (self.channels, self.key_channels());
        let proj = |out: usize| {
            ConvLayer::init(
                &Conv2dConfig::new([c, out], [1, 1]).with_bias(false),
                self.spectral_norm,
                device,
            )
        };
        SelfAttention {
            query: proj(ck),
            key: proj(ck),
            value: proj(c),
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
        }
    }
}

/// fastai's / DeOldify's `SelfAttention` (see the module docs).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// 1x1 projection C → C/8, no bias.
    pub query: ConvLayer,
    /// 1x1 projection C → C/8, no bias.
    pub key: ConvLayer,
    /// 1x1 projection C → C, no bias.
    pub value: ConvLayer,
    /// The learnt residual scale `[1]`, 0 at initialisation.
    pub gamma: Param<Tensor<1>>,
}

impl SelfAttention {
    /// `x + γ · attention(x)`.
    ///
    /// # Shapes
    /// `x: [batch, C, H, W]` → `[batch, C, H, W]`. Memory grows as `(H·W)²` per image: the
    /// attention matrix is `[batch, H·W, H·W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let f = self.query.forward(x.clone()); // [batch, C/8, H, W]
        let ck = f.dims()[1];
        let f = f.reshape([b, ck, n]); // [batch, C/8, N]
        let g = self.key.forward(x.clone()).reshape([b, ck, n]); // [batch, C/8, N]
        let v = self.value.forward(x.clone()).reshape([b, c, n]); // [batch, C, N]
        let beta = softmax(f.swap_dims(1, 2).matmul(g), 1); // [batch, N (i), N (j)]
        let o = v.matmul(beta).reshape([b, c, h, w]); // [batch, C, H, W]
        x + o * self.gamma.val().reshape([1, 1, 1, 1])
    }

    /// One power iteration on each spectral-normalised projection (no-op otherwise).
    pub fn power_iteration(self) -> Self {
        Self {
            query: self.query.power_iteration(),
            key: self.key.power_iteration(),
            value: self.value.power_iteration(),
            gamma: self.gamma,
        }
    }
}

/// [`SelfAttention::forward`] on `x` in the engine graph `g`, from the weights under `w`
/// (`w.gamma` `[1]`, `w.query`, `w.key`, `w.value`: 1x1 convolutions without bias, plain or
/// spectral-normalised; the projections' widths are read from the weights).
///
/// # Errors
/// [`ModelError::MissingWeight`] / [`ModelError::WeightShape`] for an absent or mis-shaped
/// tensor; [`ModelError::Engine`] when the projections do not fit `x` or each other.
pub fn self_attention_graph(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    isa: Isa,
) -> Result<Value, ModelError> {
    let gamma = w.tensor("gamma", &[1])?[0];
    let proj = |name: &str| {
        conv(
            &w.pp(name),
            None,
            ConvGeometry::new(1, 0),
            Activation::None,
            isa,
        )
    };
    Ok(g.self_attention(x, proj("query")?, proj("key")?, proj("value")?, gamma)?)
}
