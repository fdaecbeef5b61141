//! DDColor (Kang, Yang, Chen, Xie, Ni, Li, Jiang, Wen, Sun & Zhang, "DDColor: Towards
//! Photo-Realistic Image Colorization via Dual Decoders", ICCV 2023, arXiv:2212.11613;
//! github.com/piddnad/DDColor at 2adb63f, Apache-2.0) as an engine graph built from its named
//! weights. Written from `../shared/reference/ddcolor.md` §3.
//!
//! ```text
//! x  [B, H, W, 3]  gray RGB normalised with ImageNet statistics (H, W multiples of 32)
//! f0..f3 = ConvNeXt(x)            LayerNorm'd stage outputs at H/4, H/8, H/16, H/32
//! out0 = block0(f3, f2)           [B, H/16, W/16, nf]      pixel decoder (fastai UnetBlockWide)
//! out1 = block1(out0, f1)         [B, H/8,  W/8,  nf]
//! out2 = block2(out1, f0)         [B, H/4,  W/4,  nf/2]
//! out3 = last_shuf(out2)          [B, H,    W,    nf/2]    1x1 conv, pixel shuffle x4, blur
//! e    = colour decoder(out0, out1, out2)   [B, Q, nf/2]   Q learnable queries, 9 layers
//! ab   = refine(concat(einsum(e, out3), x)) [B, H, W, 2]   CIELAB a, b (OpenCV float Lab units)
//! ```
//!
//! - **Encoder** (`encoder.arch.*`, Liu et al. 2022, "A ConvNet for the 2020s",
//!   arXiv:2201.03545): a 4x4 stride-4 stem and three 2x2 stride-2 downsamplers, each with a
//!   channels-first LayerNorm (ε 1e-6), and blocks of depthwise 7x7 convolution → LayerNorm →
//!   linear 4C with GELU → linear C, scaled per channel by `gamma` (folded into the second
//!   linear) and added to the block's input. ConvNeXt-L: depths `[3, 3, 27, 3]`, widths
//!   `[192, 384, 768, 1536]`; ConvNeXt-T: `[3, 3, 9, 3]`, `[96, 192, 384, 768]`. The features
//!   the decoder sees are `norm0..norm3` of each stage's output; the next stage continues from
//!   the un-normalised one.
//! - **Pixel decoder** (`decoder.layers.{0,1,2}`, `decoder.last_shuf`): fastai's
//!   `UnetBlockWide` — 1x1 convolution (batch norm folded) → ReLU → pixel shuffle x2 (Shi et al.
//!   2016) → blur (Sugawara et al. 2019), joined with the batch-normed, ReLU'd skip, then a 3x3
//!   convolution → ReLU → batch norm (run as an affine map) — and a last 1x1 convolution with
//!   bias, pixel shuffle x4 and blur to full size.
//! - **Colour decoder** (`decoder.color_decoder.*`, after Mask2Former, Cheng et al. 2022): Q
//!   learnable queries (`query_feat`) with positional embeddings (`query_embed`) attend, layer
//!   `i` to scale `i mod 3` (out0, out1, out2 projected to the hidden width with the scale's
//!   `level_embed` added, keys with DETR's sine position encoding), then to each other, then
//!   through an FFN; each step post-normed (LayerNorm ε 1e-5). `decoder_norm` and a 3-layer MLP
//!   (`color_embed`) give each query a colour embedding of out3's width.
//! - **Fusion head** (`refine_net.0.0`): a 1x1 convolution with bias over the Q query maps
//!   `einsum("bqc,bchw->bqhw", e, out3)` and the normalised input. Its query part is applied to
//!   the embeddings before the einsum (`W_q · e`, a `[2, C]` matrix per photo), so the Q
//!   full-size maps never exist: the same sum in another order, 2 instead of Q multiply-adds per
//!   pixel and channel. And as that projection, the pixel shuffle and the blur are all linear
//!   and the same at every pixel, the projection is taken before the last shuffle, on its 16
//!   interleaved sub-pixels ([`colorize_engine::Graph::token_projection_grouped`]): out3
//!   (`[B, H, W, nf/2]`, 256 MiB at 512x512) is never built either, and only 2 channels are
//!   shuffled and blurred.
//!
//! The weights are read in their folded form: `colorize import` (`colorize-import`) folds the
//! spectral norms into plain weights and takes `mean`/`std` into the model's I/O contract. Widths
//! are read from the weights' shapes; only depths, heads and decoder layers are configured. There
//! is no burn module: the network is for inference only.

use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, Value};
use serde::{Deserialize, Serialize};

use crate::blocks::fastai::{custom_conv, shuffle_up};
use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv};
use crate::weights::Weights;

/// LayerNorm ε of the ConvNeXt encoder (`eps=1e-6`).
pub const ENCODER_LN_EPS: f32 = 1e-6;
/// LayerNorm ε of the colour decoder (`nn.LayerNorm` default, 1e-5).
pub const DECODER_LN_EPS: f32 = 1e-5;

/// A DDColor network; `config.json`'s `network` with `"arch": "ddcolor"`. Channel counts (the
/// encoder's widths, the pixel decoder's `nf`, the colour decoder's hidden width, FFN width and
/// number of queries) are read from the weights' shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DdcolorConfig {
    /// ConvNeXt blocks per stage (ConvNeXt-L `[3, 3, 27, 3]`, ConvNeXt-T `[3, 3, 9, 3]`).
    pub depths: [usize; 4],
    /// Attention heads of the colour decoder (8 in every published model); the hidden width
    /// must be a multiple.
    pub heads: usize,
    /// Colour decoder layers (9 in every published model), layer `i` attending to scale
    /// `i mod 3`.
    pub decoder_layers: usize,
}

impl DdcolorConfig {
    /// The published ConvNeXt-L models (`ddcolor_paper`, `ddcolor_modelscope`,
    /// `ddcolor_artistic`).
    pub fn large() -> Self {
        Self {
            depths: [3, 3, 27, 3],
            heads: 8,
            decoder_layers: 9,
        }
    }

    /// The published ConvNeXt-T model (`ddcolor_paper_tiny`).
    pub fn tiny() -> Self {
        Self {
            depths: [3, 3, 9, 3],
            heads: 8,
            decoder_layers: 9,
        }
    }
}

/// Dimension `axis` of `w.name`.
fn dim(w: &Weights, name: &str, axis: usize) -> Result<usize, ModelError> {
    let t = w.get(name)?;
    t.shape
        .get(axis)
        .copied()
        .ok_or_else(|| ModelError::WeightShape {
            path: w.path().to_path_buf(),
            key: w.key(name),
            expected: vec![0; axis + 1],
            found: t.shape.clone(),
        })
}

/// `nn.LayerNorm(C)` / ConvNeXt's channels-first LayerNorm over the `c` channels of each
/// pixel: `w.weight [c]`, `w.bias [c]`.
fn layer_norm(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    c: usize,
    eps: f32,
) -> Result<Value, ModelError> {
    let weight = w.tensor("weight", &[c])?.to_vec();
    let bias = w.tensor("bias", &[c])?.to_vec();
    Ok(g.layer_norm(x, weight, bias, eps)?)
}

/// `nn.Linear` (`w.weight [out, in]`, `w.bias [out]`, checked against `shape`) as a packed 1x1
/// convolution over the channels of each pixel or token, its rows `[row_start, row_start +
/// rows)` only (a slice of `in_proj_weight`), each output scaled by `scale[o]` (ConvNeXt's layer
/// scale).
struct Linear<'a> {
    rows: Option<(usize, usize)>,
    scale: Option<&'a [f32]>,
    activation: Activation,
}

impl Default for Linear<'_> {
    fn default() -> Self {
        Self {
            rows: None,
            scale: None,
            activation: Activation::None,
        }
    }
}

impl Linear<'_> {
    fn act(activation: Activation) -> Self {
        Self {
            activation,
            ..Self::default()
        }
    }

    /// Packs `w.{weight_name, bias_name}`, whose weight must have `[out, in]` = `shape`.
    fn pack(
        &self,
        w: &Weights,
        weight_name: &str,
        bias_name: &str,
        [out_all, cin]: [usize; 2],
        isa: Isa,
    ) -> Result<PackedConv, ModelError> {
        let weight = w.tensor(weight_name, &[out_all, cin])?;
        let bias = w.tensor(bias_name, &[out_all])?;
        let (start, rows) = self.rows.unwrap_or((0, out_all));
        let mut weight = weight[start * cin..(start + rows) * cin].to_vec();
        let mut bias = bias[start..start + rows].to_vec();
        if let Some(scale) = self.scale {
            for (o, &s) in scale.iter().enumerate() {
                weight[o * cin..(o + 1) * cin]
                    .iter_mut()
                    .for_each(|v| *v *= s);
                bias[o] *= s;
            }
        }
        let key = w.key(weight_name);
        let name = key.strip_suffix(".weight").unwrap_or(&key);
        Ok(PackedConv::new(
            name,
            ConvSpec::square(cin, rows, 1, 1, 0),
            &weight,
            Some(&bias),
            self.activation,
            isa,
        )?)
    }

    /// Adds `w.weight` (`[out, in]` = `shape`) / `w.bias` on `x` to `g`, with `residual`
    /// summed in the epilogue.
    fn node(
        &self,
        g: &mut Graph,
        x: Value,
        w: &Weights,
        shape: [usize; 2],
        residual: Option<Value>,
        isa: Isa,
    ) -> Result<Value, ModelError> {
        let c = self.pack(w, "weight", "bias", shape, isa)?;
        Ok(g.conv(x, c, residual)?)
    }
}

/// `w.name` must have `shape` (checked here so that the error names the key and both shapes).
fn expect(w: &Weights, name: &str, shape: &[usize]) -> Result<(), ModelError> {
    w.tensor(name, shape).map(drop)
}

/// One ConvNeXt block (`stages.i.j`) of width `c`:
/// `x + gamma · pwconv2(GELU(pwconv1(LN(dwconv7x7(x)))))`.
fn convnext_block(
    g: &mut Graph,
    x: Value,
    c: usize,
    w: &Weights,
    isa: Isa,
) -> Result<Value, ModelError> {
    expect(w, "dwconv.weight", &[c, 1, 7, 7])?;
    let dw = conv(
        &w.pp("dwconv"),
        None,
        ConvGeometry::new(1, 3).with_bias().with_groups(c),
        Activation::None,
        isa,
    )?;
    let t = g.conv(x, dw, None)?;
    let t = layer_norm(g, t, &w.pp("norm"), c, ENCODER_LN_EPS)?;
    let t = Linear::act(Activation::Gelu).node(g, t, &w.pp("pwconv1"), [4 * c, c], None, isa)?;
    let gamma = w.tensor("gamma", &[c])?;
    let second = Linear {
        scale: Some(gamma),
        ..Linear::default()
    };
    second.node(g, t, &w.pp("pwconv2"), [c, 4 * c], Some(x), isa)
}

/// The ConvNeXt encoder (`encoder.arch`): the four LayerNorm'd stage outputs with their widths.
fn encoder(
    g: &mut Graph,
    x: Value,
    config: &DdcolorConfig,
    w: &Weights,
    isa: Isa,
) -> Result<Vec<(Value, usize)>, ModelError> {
    let ds = w.pp("downsample_layers");
    let mut h = x;
    let mut features = Vec::with_capacity(4);
    let mut cin = 3;
    for (i, &depth) in config.depths.iter().enumerate() {
        let d = ds.pp(i);
        // The stage's width is its downsampler's output channels.
        let conv_w = d.pp(if i == 0 { 0 } else { 1 });
        let c = dim(&conv_w, "weight", 0)?;
        let k = if i == 0 { 4 } else { 2 };
        expect(&conv_w, "weight", &[c, cin, k, k])?;
        if i == 0 {
            let stem = conv(
                &d.pp(0),
                None,
                ConvGeometry::new(4, 0).with_bias(),
                Activation::None,
                isa,
            )?;
            h = g.conv(h, stem, None)?;
            h = layer_norm(g, h, &d.pp(1), c, ENCODER_LN_EPS)?;
        } else {
            h = layer_norm(g, h, &d.pp(0), cin, ENCODER_LN_EPS)?;
            let down = conv(
                &d.pp(1),
                None,
                ConvGeometry::new(2, 0).with_bias(),
                Activation::None,
                isa,
            )?;
            h = g.conv(h, down, None)?;
        }
        for j in 0..depth {
            h = convnext_block(g, h, c, &w.pp("stages").pp(i).pp(j), isa)?;
        }
        let norm = w.pp(format!("norm{i}"));
        features.push((layer_norm(g, h, &norm, c, ENCODER_LN_EPS)?, c));
        cin = c;
    }
    // The classifier's final LayerNorm (applied to a global pool) is not used for colour.
    w.pp("norm").skip("weight");
    w.pp("norm").skip("bias");
    Ok(features)
}

/// fastai's `UnetBlockWide` as DDColor's pixel decoder uses it (`decoder.layers.k`):
/// shuffle-up `up_in`, join the batch-normed, ReLU'd `skip`, 3x3 conv → ReLU → batch norm.
fn unet_block(
    g: &mut Graph,
    (up_in, up_channels): (Value, usize),
    (skip, skip_channels): (Value, usize),
    w: &Weights,
    isa: Isa,
) -> Result<(Value, usize), ModelError> {
    let shuf = w.pp("shuf").pp("conv");
    let n_out = dim(&shuf.pp(0), "weight", 0)? / 4;
    expect(&shuf.pp(0), "weight", &[4 * n_out, up_channels, 1, 1])?;
    let up = shuffle_up(g, up_in, &shuf.pp(0), Some(&shuf.pp(1)), 2, isa)?;
    let (scale, shift) = batch_norm_affine(&w.pp("bn"), skip_channels)?;
    // ReLU(cat(up, bn(skip))): `up` is already >= 0 (a blur of ReLU outputs).
    let s = g.affine(skip, scale, shift, Activation::Relu)?;
    let cat = g.concat(&[up, s])?;
    let main = w.pp("conv");
    expect(&main.pp(0), "weight", &[n_out, n_out + skip_channels, 3, 3])?;
    Ok((custom_conv(g, cat, &main, 1, isa)?, n_out))
}

/// `out = LN(residual + out_proj(MHA(q_in, k_in, v_in)))` with `nn.MultiheadAttention`'s
/// weights `w` (`in_proj_weight [3d, d]`, `in_proj_bias [3d]`, `out_proj.{weight,bias}`) and the
/// LayerNorm `norm`.
#[allow(clippy::too_many_arguments)]
fn attention_layer(
    g: &mut Graph,
    residual: Value,
    [q_in, k_in, v_in]: [Value; 3],
    w: &Weights,
    norm: &Weights,
    d: usize,
    heads: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    let mut proj = [q_in, k_in, v_in];
    for (part, x) in proj.iter_mut().enumerate() {
        let linear = Linear {
            rows: Some((part * d, d)),
            ..Linear::default()
        };
        let c = linear.pack(w, "in_proj_weight", "in_proj_bias", [3 * d, d], isa)?;
        *x = g.conv(*x, c, None)?;
    }
    let o = g.multi_head_attention(proj[0], proj[1], proj[2], heads)?;
    let y = Linear::default().node(g, o, &w.pp("out_proj"), [d, d], Some(residual), isa)?;
    layer_norm(g, y, norm, d, DECODER_LN_EPS)
}

/// The multi-scale colour decoder (`decoder.color_decoder`): the colour embeddings
/// `[B, 1, Q, embed]` (a row of Q tokens) from the pixel decoder's three scales.
fn color_decoder(
    g: &mut Graph,
    scales: [(Value, usize); 3],
    embed: usize,
    config: &DdcolorConfig,
    w: &Weights,
    isa: Isa,
) -> Result<Value, ModelError> {
    let queries = dim(w, "query_feat.weight", 0)?;
    let d = dim(w, "query_feat.weight", 1)?;
    let query_feat = w.tensor("query_feat.weight", &[queries, d])?.to_vec();
    let query_embed = w.tensor("query_embed.weight", &[queries, d])?.to_vec();
    let level = w.tensor("level_embed.weight", &[scales.len(), d])?.to_vec();
    let mut sources = Vec::with_capacity(scales.len());
    for (l, &(x, cin)) in scales.iter().enumerate() {
        let p = w.pp("input_proj").pp(l);
        let packed = {
            // The level embedding is a per-channel constant: added to the projection's bias.
            let weight = p.tensor("weight", &[d, cin, 1, 1])?;
            let mut bias = p.tensor("bias", &[d])?.to_vec();
            bias.iter_mut()
                .zip(&level[l * d..(l + 1) * d])
                .for_each(|(b, e)| *b += e);
            let key = p.key("weight");
            PackedConv::new(
                key.strip_suffix(".weight").unwrap_or(&key),
                ConvSpec::square(cin, d, 1, 1, 0),
                weight,
                Some(&bias),
                Activation::None,
                isa,
            )?
        };
        let src = g.conv(x, packed, None)?;
        let keys = g.add_sine_position(src)?;
        sources.push((keys, src));
    }
    let mut out = g.constant(query_feat, 1, queries, d)?;
    let qpos = g.constant(query_embed, 1, queries, d)?;
    for i in 0..config.decoder_layers {
        let (keys, values) = sources[i % sources.len()];
        let cross = w.pp("transformer_cross_attention_layers").pp(i);
        let q = g.add(out, qpos)?;
        out = attention_layer(
            g,
            out,
            [q, keys, values],
            &cross.pp("multihead_attn"),
            &cross.pp("norm"),
            d,
            config.heads,
            isa,
        )?;
        let own = w.pp("transformer_self_attention_layers").pp(i);
        let q = g.add(out, qpos)?;
        out = attention_layer(
            g,
            out,
            [q, q, out],
            &own.pp("self_attn"),
            &own.pp("norm"),
            d,
            config.heads,
            isa,
        )?;
        let ffn = w.pp("transformer_ffn_layers").pp(i);
        let f = dim(&ffn.pp("linear1"), "weight", 0)?;
        let t =
            Linear::act(Activation::Relu).node(g, out, &ffn.pp("linear1"), [f, d], None, isa)?;
        let t = Linear::default().node(g, t, &ffn.pp("linear2"), [d, f], Some(out), isa)?;
        out = layer_norm(g, t, &ffn.pp("norm"), d, DECODER_LN_EPS)?;
    }
    let mut e = layer_norm(g, out, &w.pp("decoder_norm"), d, DECODER_LN_EPS)?;
    // Mask2Former's MLP(hidden, hidden, embed, 3): ReLU after all but the last layer.
    let mlp = w.pp("color_embed").pp("layers");
    for k in 0..3 {
        let (activation, out) = if k < 2 {
            (Activation::Relu, d)
        } else {
            (Activation::None, embed)
        };
        e = Linear::act(activation).node(g, e, &mlp.pp(k), [out, d], None, isa)?;
    }
    Ok(e)
}

/// A DDColor network as an engine graph from its folded, named weights
/// (`encoder.arch.stages.0.0.dwconv.weight` … `refine_net.0.0.bias`).
///
/// # Shapes
/// Input `[batch, H, W, 3]`: gray RGB normalised with ImageNet statistics (the model's
/// [`crate::InputKind::GrayRgb`]), H and W multiples of 32. Output `[batch, H, W, 2]`: CIELAB
/// a, b in OpenCV's float Lab units (about −128..127; unbounded).
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit (every tensor must be used); [`ModelError::Engine`] if `isa` is
/// not available, the hidden width is not a multiple of the heads, or a channel count does not
/// fit the next layer.
pub fn graph(config: &DdcolorConfig, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let (mut g, x) = Graph::new(3);
    let [f0, f1, f2, f3] = <[(Value, usize); 4]>::try_from(encoder(
        &mut g,
        x,
        config,
        &w.pp("encoder").pp("arch"),
        isa,
    )?)
    .expect("four stages");
    let dec = w.pp("decoder");
    let layers = dec.pp("layers");
    let out0 = unet_block(&mut g, f3, f2, &layers.pp(0), isa)?;
    let out1 = unet_block(&mut g, out0, f1, &layers.pp(1), isa)?;
    let out2 = unet_block(&mut g, out1, f0, &layers.pp(2), isa)?;
    let last_w = dec.pp("last_shuf").pp("conv").pp(0);
    let embed = dim(&last_w, "weight", 0)? / 16;
    expect(&last_w, "weight", &[16 * embed, out2.1, 1, 1])?;
    let last = conv(
        &last_w,
        None,
        ConvGeometry::new(1, 0).with_bias(),
        Activation::Relu,
        isa,
    )?;
    // out3 = blur(pixel_shuffle(t, 4)) is never built: the projection below is linear and the
    // same at every pixel, so it is taken on t's 16 interleaved sub-pixels per channel, and the
    // 2-channel result is shuffled and blurred (Graph::token_projection_grouped).
    let t = g.conv(out2.0, last, None)?;
    let e = color_decoder(
        &mut g,
        [out0, out1, out2],
        embed,
        config,
        &dec.pp("color_decoder"),
        isa,
    )?;
    // refine_net: a 1x1 conv over concat(query maps, x); the query part goes through the
    // embeddings (token_projection), the input part is a 3 → 2 convolution with the bias.
    let r = w.pp("refine_net").pp(0).pp(0);
    // ab: two outputs over the Q query maps and the 3 input channels.
    let outputs = 2;
    let queries = dim(&dec.pp("color_decoder"), "query_feat.weight", 0)?;
    let cin = queries + 3;
    let weight = r.tensor("weight", &[outputs, cin, 1, 1])?;
    let bias = r.tensor("bias", &[outputs])?;
    let mut mix = Vec::with_capacity(outputs * queries);
    let mut input_part = Vec::with_capacity(outputs * 3);
    for o in 0..outputs {
        mix.extend_from_slice(&weight[o * cin..o * cin + queries]);
        input_part.extend_from_slice(&weight[o * cin + queries..(o + 1) * cin]);
    }
    let key = r.key("weight");
    let name = key.strip_suffix(".weight").unwrap_or(&key);
    let input_conv = PackedConv::new(
        name,
        ConvSpec::square(3, outputs, 1, 1, 0),
        &input_part,
        Some(bias),
        Activation::None,
        isa,
    )?;
    let residual = g.conv(x, input_conv, None)?;
    let z = g.token_projection_grouped(t, e, mix, outputs, 16, None)?;
    let z = g.pixel_shuffle(z, 4)?;
    let z = g.blur(z);
    let y = g.add(z, residual)?;
    g.set_output(y);
    w.check_all_used()?;
    Ok(g)
}
