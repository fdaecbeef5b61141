//! Engine layers from named weights: the pieces every network's `graph()` builder is made of.
//!
//! Batch norm in inference mode is an affine map per channel, `y = γ·(x − μ)/√(σ² + ε) + β`, so it
//! folds into the preceding convolution: `w' = w · s`, `b' = (b − μ) · s + β` with
//! `s = γ / √(σ² + ε)` (Jacob et al. 2018, arXiv:1712.05877, §3.2; what ONNX Runtime and TensorRT
//! do at load time). ReLU, tanh and sigmoid, and a residual addition, go into the convolution's
//! epilogue ([`colorize_engine::Graph::conv`]).
//!
//! Keys follow PyTorch's `state_dict`: a convolution's `weight` `[out, in/groups, kh, kw]` and
//! optional `bias` `[out]`; a batch norm's `weight`, `bias`, `running_mean`, `running_var` (`[C]`
//! each; burn's own names `gamma` and `beta` are read too, so model folders written before the
//! trainer switched to PyTorch's names still load).

use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, Value};

use crate::error::ModelError;
use crate::weights::Weights;

/// PyTorch's and burn's default batch-norm ε.
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// Geometry of a convolution whose kernel size and channels come from its weight's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Stride `[vertical, horizontal]`.
    pub stride: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    /// Dilation `[vertical, horizontal]`.
    pub dilation: [usize; 2],
    /// Channel groups (PyTorch's `groups`; the weight is `[out, in/groups, kh, kw]`; depthwise
    /// when it equals the channel count).
    pub groups: usize,
    /// Whether the layer has a `bias` tensor (PyTorch's `bias=True`): then it must be present,
    /// otherwise it must not be (a stray one is reported as an unexpected weight).
    pub bias: bool,
}

impl ConvGeometry {
    /// Stride `stride`, symmetric padding `pad`, no dilation, one group, no bias.
    pub fn new(stride: usize, pad: usize) -> Self {
        Self {
            stride: [stride, stride],
            padding: [pad; 4],
            dilation: [1, 1],
            groups: 1,
            bias: false,
        }
    }

    /// The same geometry for a layer with a bias.
    pub fn with_bias(mut self) -> Self {
        self.bias = true;
        self
    }

    /// The same geometry with `groups` channel groups.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// The convolution `w.weight` (+ `w.bias` when `geometry.bias`), with the batch norm `bn` folded in when
/// given, packed for `isa` with `activation` in its epilogue. The layer is named by `w`'s prefix.
/// A spectral-normalised layer (`w.weight_orig`, `w.weight_u`, `w.weight_v`) is read with 1/σ
/// folded into its weight ([`crate::blocks::spectral_norm::conv_weight`]).
///
/// # Errors
/// [`ModelError::MissingWeight`] / [`ModelError::WeightShape`] when a tensor is absent or its
/// shape does not fit the weight's; [`ModelError::Engine`] when the engine cannot pack it.
pub fn conv(
    w: &Weights,
    bn: Option<&Weights>,
    geometry: ConvGeometry,
    activation: Activation,
    isa: Isa,
) -> Result<PackedConv, ModelError> {
    let name = w.key("weight");
    let name = name.strip_suffix(".weight").unwrap_or(&name).to_string();
    // A plain `weight`, or `weight_orig / σ` for a spectral-normalised layer.
    let weight = crate::blocks::spectral_norm::conv_weight(w)?;
    let [cout, cin_per_group, kh, kw] = match weight.shape[..] {
        [o, i, h, k] => [o, i, h, k],
        _ => {
            return Err(ModelError::WeightShape {
                path: w.path().to_path_buf(),
                key: w.key("weight"),
                expected: vec![0, 0, 0, 0],
                found: weight.shape.clone(),
            });
        }
    };
    let mut spec = ConvSpec::square(cin_per_group * geometry.groups, cout, kh, 1, 0)
        .with_groups(geometry.groups);
    spec.kernel = [kh, kw];
    spec.stride = geometry.stride;
    spec.padding = geometry.padding;
    spec.dilation = geometry.dilation;
    let mut weights = weight.values;
    let mut bias = if geometry.bias {
        w.tensor("bias", &[cout])?.to_vec()
    } else {
        vec![0.0; cout]
    };
    if let Some(bn) = bn {
        let shape = [cout];
        colorize_engine::fold::fold_batch_norm(
            &name,
            &mut weights,
            &mut bias,
            bn.tensor_any(&["weight", "gamma"], &shape)?,
            bn.tensor_any(&["bias", "beta"], &shape)?,
            bn.tensor("running_mean", &shape)?,
            bn.tensor("running_var", &shape)?,
            BATCH_NORM_EPS,
        )?;
        bn.skip("num_batches_tracked");
    }
    Ok(PackedConv::new(
        &name,
        spec,
        &weights,
        Some(&bias),
        activation,
        isa,
    )?)
}

/// [`conv`] added to `g` on `x`, with `residual` summed in its epilogue: one node of a builder.
///
/// # Errors
/// As [`conv`], and [`ModelError::Engine`] when the channels do not fit `x` or `residual`.
#[allow(clippy::too_many_arguments)]
pub fn conv_node(
    g: &mut Graph,
    x: Value,
    w: &Weights,
    bn: Option<&Weights>,
    geometry: ConvGeometry,
    activation: Activation,
    isa: Isa,
    residual: Option<Value>,
) -> Result<Value, ModelError> {
    let c = conv(w, bn, geometry, activation, isa)?;
    Ok(g.conv(x, c, residual)?)
}

/// The transposed convolution `w.weight` (`[in, out/groups, kh, kw]`, PyTorch's
/// `ConvTranspose2d` layout) + `w.bias` when `geometry.bias`, packed for `isa` with `activation`.
/// `geometry.padding` is PyTorch's `padding` (rows and columns cropped from the full output).
///
/// # Errors
/// As [`conv`].
pub fn conv_transpose(
    w: &Weights,
    geometry: ConvGeometry,
    activation: Activation,
    isa: Isa,
) -> Result<PackedConv, ModelError> {
    let key = w.key("weight");
    let name = key.strip_suffix(".weight").unwrap_or(&key).to_string();
    let weight = w.get("weight")?;
    let [cin, cout_per_group, kh, kw] = match weight.shape[..] {
        [i, o, h, k] => [i, o, h, k],
        _ => {
            return Err(ModelError::WeightShape {
                path: w.path().to_path_buf(),
                key,
                expected: vec![0, 0, 0, 0],
                found: weight.shape.clone(),
            });
        }
    };
    let cout = cout_per_group * geometry.groups;
    let mut spec = ConvSpec::transposed(cin, cout, kh, 1, 0).with_groups(geometry.groups);
    spec.kernel = [kh, kw];
    spec.stride = geometry.stride;
    spec.padding = geometry.padding;
    spec.dilation = geometry.dilation;
    let bias = if geometry.bias {
        w.tensor("bias", &[cout])?.to_vec()
    } else {
        vec![0.0; cout]
    };
    Ok(PackedConv::new(
        &name,
        spec,
        &weight.values,
        Some(&bias),
        activation,
        isa,
    )?)
}

/// A batch norm over `channels` channels as the per-channel affine map it is in inference form:
/// `(scale, shift)` with `scale = γ / √(σ² + ε)` and `shift = β − μ · scale`, for
/// [`colorize_engine::Graph::affine`] where the norm cannot fold into a convolution.
///
/// # Errors
/// [`ModelError::MissingWeight`] / [`ModelError::WeightShape`] for an absent or mis-shaped
/// tensor.
pub fn batch_norm_affine(
    bn: &Weights,
    channels: usize,
) -> Result<(Vec<f32>, Vec<f32>), ModelError> {
    let shape = [channels];
    let gamma = bn.tensor_any(&["weight", "gamma"], &shape)?;
    let beta = bn.tensor_any(&["bias", "beta"], &shape)?;
    let mean = bn.tensor("running_mean", &shape)?;
    let var = bn.tensor("running_var", &shape)?;
    bn.skip("num_batches_tracked");
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| (g as f64 / (v as f64 + BATCH_NORM_EPS).sqrt()) as f32)
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| b - m * s)
        .collect();
    Ok((scale, shift))
}
