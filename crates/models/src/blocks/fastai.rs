//! fastai v1's decoder layers as DeOldify's and DDColor's U-Net decoders use them
//! (`../shared/reference/deoldify.md` §4.2, `ddcolor.md` §3.2): `custom_conv_layer` (conv →
//! ReLU → batch norm) and the blurred ICNR pixel-shuffle upsampler (Shi et al. 2016,
//! arXiv:1609.05158; blur: Sugawara et al. 2019, arXiv:1806.02658).

use colorize_engine::{Activation, Graph, Isa, Value};

use crate::error::ModelError;
use crate::layers::{ConvGeometry, batch_norm_affine, conv};
use crate::weights::Weights;

/// The first dimension of `w.weight` (a convolution's output channels).
pub fn out_channels(w: &Weights) -> Result<usize, ModelError> {
    let t = w.get("weight")?;
    t.shape
        .first()
        .copied()
        .ok_or_else(|| ModelError::WeightShape {
            path: w.path().to_path_buf(),
            key: w.key("weight"),
            expected: vec![0, 0, 0, 0],
            found: t.shape.clone(),
        })
}

/// fastai's `custom_conv_layer` as DeOldify's and DDColor's decoders use it: conv (no bias) → ReLU → batch
/// norm (`w.0`, `w.2`).
pub fn custom_conv(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    pad: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    let c = conv(
        &w.pp(0),
        None,
        ConvGeometry::new(1, pad),
        Activation::Relu,
        isa,
    )?;
    let y = g.conv(x, c, None)?;
    let (scale, shift) = batch_norm_affine(&w.pp(2), out_channels(&w.pp(0))?)?;
    Ok(g.affine(y, scale, shift, Activation::None)?)
}

/// `CustomPixelShuffle_ICNR` / `PixelShuffle_ICNR`: a 1x1 convolution (with `bn` folded in, or
/// its own bias) with ReLU, pixel shuffle by `factor`, blur: `[B, H, W, C_in]` →
/// `[B, H·factor, W·factor, C_out / factor²]`.
pub fn shuffle_up(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    bn: Option<&Weights>,
    factor: usize,
    isa: Isa,
) -> Result<Value, ModelError> {
    let mut geometry = ConvGeometry::new(1, 0);
    geometry.bias = bn.is_none();
    let c = conv(w, bn, geometry, Activation::Relu, isa)?;
    let y = g.conv(x, c, None)?;
    let y = g.pixel_shuffle(y, factor)?;
    Ok(g.blur(y))
}
