//! Zhang, Zhu, Isola, Geng, Lin, Yu & Efros, "Real-Time User-Guided Image Colorization with
//! Learned Deep Priors", SIGGRAPH 2017 (arXiv:1705.02999): the `SIGGRAPHGenerator` of the official
//! PyTorch release (github.com/richzhang/colorization, `colorizers/siggraph17.py`, commit
//! 4bda68f), as an engine graph built from its named weights. Written from
//! `../shared/reference/zhang.md` §5.
//!
//! eccv16's trunk (blocks `model1` … `model7`, batch norm after the ReLU as a per-channel affine
//! op), but the resolution is halved by taking every second pixel (`x[:, :, ::2, ::2]`, a 1x1
//! pooling window with stride 2) between blocks 1-4, and three transposed convolutions
//! (`model8up`, `model9up`, `model10up`) climb back to full resolution, each summed with a 3x3
//! "shortcut" convolution of the encoder's features at that scale (`model3short8`,
//! `model2short9`, `model1short10`; the sum and the following ReLU run in the shortcut
//! convolution's epilogue). `model10` ends in LeakyReLU(0.2), `max(z, 0.2 z) = relu(0.8 z) + 0.2 z`,
//! built from two affine ops and an add; `model_out` is a 1x1 convolution with tanh.
//! The classification head `model_class` is in the state dict but never used by `forward`.
//!
//! The input is `[batch, H, W, 4]`: `(L − 50)/100`, ab hints / 110 and the hint mask (zeros for
//! automatic colourisation); H and W multiples of 8. The output is `[batch, H, W, 2]`, `ab/110`.
//! There is no burn module: the network is for inference only.

use colorize_engine::{Activation, Graph, Isa, Value};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv, conv_transpose};
use crate::weights::Weights;

/// A siggraph17 network; `config.json`'s `network` with `"arch": "siggraph17"`. Every width is
/// read from the weights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Siggraph17Config {}

/// Block `name`: `convs` 3x3 convolutions with bias and ReLU at indices 0, 2, 4, then the batch
/// norm at index `2 · convs` as an affine op.
fn block(
    g: &mut Graph,
    mut x: Value,
    w: &Weights,
    convs: usize,
    dilation: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    for i in 0..convs {
        let mut geometry = ConvGeometry::new(1, dilation).with_bias();
        geometry.dilation = [dilation, dilation];
        let c = conv(&w.pp(2 * i), None, geometry, Activation::Relu, isa)?;
        x = g.conv(x, c, None)?;
    }
    let channels = w.pp(2 * (convs - 1)).get("weight")?.shape[0];
    let (scale, shift) = batch_norm_affine(&w.pp(2 * convs), channels)?;
    Ok(g.affine(x, scale, shift, Activation::None)?)
}

/// `x[:, :, ::2, ::2]`: every second row and column, from the first.
fn subsample(g: &mut Graph, x: Value) -> Value {
    g.max_pool(x, [1, 1], [2, 2], [0; 4])
}

/// `relu(up(x) + short(skip))`: the transposed convolution `up`, then the shortcut convolution
/// with the sum and the ReLU in its epilogue.
fn up_and_short(
    g: &mut Graph,
    x: Value,
    skip: Value,
    up: &Weights,
    short: &Weights,
    isa: Isa,
) -> Result<Value, ModelError> {
    let u = conv_transpose(
        up,
        ConvGeometry::new(2, 1).with_bias(),
        Activation::None,
        isa,
    )?;
    let u = g.conv(x, u, None)?;
    let s = conv(
        short,
        None,
        ConvGeometry::new(1, 1).with_bias(),
        Activation::Relu,
        isa,
    )?;
    Ok(g.conv(skip, s, Some(u))?)
}

/// The siggraph17 network as an engine graph from its named weights (`model1.0.weight` …
/// `model_out.0.bias`; `model_class.*` is read and left unused, as the reference does).
///
/// # Errors
/// [`ModelError::MissingWeight`], [`ModelError::WeightShape`] or [`ModelError::UnexpectedWeight`]
/// when the weights do not fit (every tensor must be used); [`ModelError::Engine`] if `isa` is
/// not available or a channel count does not fit the next layer.
pub fn graph(_config: &Siggraph17Config, w: &Weights, isa: Isa) -> Result<Graph, ModelError> {
    let (mut g, x0) = Graph::new(4);
    let c1 = block(&mut g, x0, &w.pp("model1"), 2, 1, isa)?;
    let s1 = subsample(&mut g, c1);
    let c2 = block(&mut g, s1, &w.pp("model2"), 2, 1, isa)?;
    let s2 = subsample(&mut g, c2);
    let c3 = block(&mut g, s2, &w.pp("model3"), 3, 1, isa)?;
    let s3 = subsample(&mut g, c3);
    let c4 = block(&mut g, s3, &w.pp("model4"), 3, 1, isa)?;
    let c5 = block(&mut g, c4, &w.pp("model5"), 3, 2, isa)?;
    let c6 = block(&mut g, c5, &w.pp("model6"), 3, 2, isa)?;
    let c7 = block(&mut g, c6, &w.pp("model7"), 3, 1, isa)?;
    // model8 = [ReLU (in the shortcut's epilogue), conv, ReLU, conv, ReLU, BN].
    let relu_conv = |g: &mut Graph, x: Value, w: &Weights| -> Result<Value, ModelError> {
        let c = conv(
            w,
            None,
            ConvGeometry::new(1, 1).with_bias(),
            Activation::Relu,
            isa,
        )?;
        Ok(g.conv(x, c, None)?)
    };
    let bn =
        |g: &mut Graph, x: Value, w: &Weights, conv_key: &Weights| -> Result<Value, ModelError> {
            let channels = conv_key.get("weight")?.shape[0];
            let (scale, shift) = batch_norm_affine(w, channels)?;
            Ok(g.affine(x, scale, shift, Activation::None)?)
        };
    let h = up_and_short(
        &mut g,
        c7,
        c3,
        &w.pp("model8up").pp(0),
        &w.pp("model3short8").pp(0),
        isa,
    )?;
    let m8 = w.pp("model8");
    let h = relu_conv(&mut g, h, &m8.pp(1))?;
    let h = relu_conv(&mut g, h, &m8.pp(3))?;
    let c8 = bn(&mut g, h, &m8.pp(5), &m8.pp(3))?;
    let h = up_and_short(
        &mut g,
        c8,
        c2,
        &w.pp("model9up").pp(0),
        &w.pp("model2short9").pp(0),
        isa,
    )?;
    let m9 = w.pp("model9");
    let h = relu_conv(&mut g, h, &m9.pp(1))?;
    let c9 = bn(&mut g, h, &m9.pp(3), &m9.pp(1))?;
    let h = up_and_short(
        &mut g,
        c9,
        c1,
        &w.pp("model10up").pp(0),
        &w.pp("model1short10").pp(0),
        isa,
    )?;
    let m10 = w.pp("model10").pp(1);
    let c = conv(
        &m10,
        None,
        ConvGeometry::new(1, 1).with_bias(),
        Activation::None,
        isa,
    )?;
    let z = g.conv(h, c, None)?;
    // LeakyReLU(0.2): relu(0.8 z) + 0.2 z.
    let channels = m10.get("weight")?.shape[0];
    let pos = g.affine(
        z,
        vec![0.8; channels],
        vec![0.0; channels],
        Activation::Relu,
    )?;
    let lin = g.affine(
        z,
        vec![0.2; channels],
        vec![0.0; channels],
        Activation::None,
    )?;
    let c10 = g.add(pos, lin)?;
    let out = conv(
        &w.pp("model_out").pp(0),
        None,
        ConvGeometry::new(1, 0).with_bias(),
        Activation::Tanh,
        isa,
    )?;
    let ab = g.conv(c10, out, None)?;
    g.set_output(ab);
    // The classification head is never called by the reference's forward.
    w.skip("model_class.0.weight");
    w.skip("model_class.0.bias");
    w.check_all_used()?;
    Ok(g)
}
