//! Compiles a loaded burn network into a [`colorize_engine::Graph`] for fast inference.
//!
//! Batch norm in inference mode is an affine map per channel, `y = γ·(x − μ)/√(σ² + ε) + β`, so it
//! folds into the preceding convolution: `w' = w · s`, `b' = (b − μ) · s + β` with
//! `s = γ / √(σ² + ε)` (Jacob et al. 2018, arXiv:1712.05877, §3.2; what ONNX Runtime and TensorRT
//! do at load time). ReLU, tanh and the residual addition of a ResNet block go into the
//! convolution's epilogue. The graph reproduces each network's `forward` op for op; the tests
//! compare the two.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;
use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, ResizeMode, Value};

use crate::blocks::resnet::BasicBlock;
use crate::error::ModelError;
use crate::network::Network;
use crate::unet_resnet::UnetResnet;

/// Compiles `network` for the kernel family `isa` ([`Isa::detect`] for the best this CPU runs).
///
/// The graph's input is `[batch, H, W, 1]` (`L/50 − 1`), its output `[batch, H, W, 2]`
/// (`ab/110`, tanh), both NHWC — the same values as [`Network::forward`] in another layout.
///
/// # Errors
/// [`ModelError::Engine`] if a layer cannot be expressed (grouped convolution, dilated or
/// ceil-mode pooling, `Same` padding with an even kernel) or `isa` is not available;
/// [`ModelError::Inference`] if a weight cannot be read from the backend.
pub fn compile(network: &Network, isa: Isa) -> Result<Graph, ModelError> {
    match network {
        Network::UnetResnet(n) => compile_unet_resnet(n, isa),
    }
}

fn values(t: Tensor<1>) -> Result<Vec<f32>, ModelError> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::Inference(format!("{e:?}")))
}

fn unsupported(layer: &str, message: &str) -> ModelError {
    colorize_engine::EngineError::Layer {
        layer: layer.to_string(),
        message: message.to_string(),
    }
    .into()
}

fn padding(
    layer: &str,
    p: &PaddingConfig2d,
    kernel: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4], ModelError> {
    match *p {
        PaddingConfig2d::Valid => Ok([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Ok([top, left, bottom, right]),
        PaddingConfig2d::Same => {
            if kernel.iter().any(|k| k % 2 == 0) {
                return Err(unsupported(layer, "'same' padding with an even kernel"));
            }
            let (ph, pw) = (
                dilation[0] * (kernel[0] - 1) / 2,
                dilation[1] * (kernel[1] - 1) / 2,
            );
            Ok([ph, pw, ph, pw])
        }
    }
}

/// Folds `bn` (if any) into `conv` and packs it with `activation` in the epilogue.
fn fold(
    name: &str,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    activation: Activation,
    isa: Isa,
) -> Result<PackedConv, ModelError> {
    if conv.groups != 1 {
        return Err(unsupported(name, "grouped convolution"));
    }
    let [cout, cin, kh, kw] = conv.weight.val().dims();
    let spec = ConvSpec {
        in_channels: cin,
        out_channels: cout,
        kernel: [kh, kw],
        stride: conv.stride,
        dilation: conv.dilation,
        padding: padding(name, &conv.padding, [kh, kw], conv.dilation)?,
        transposed: false,
    };
    let mut weight = values(conv.weight.val().reshape([cout * cin * kh * kw]))?;
    let mut bias = match &conv.bias {
        Some(b) => values(b.val())?,
        None => vec![0.0; cout],
    };
    if let Some(bn) = bn {
        let param = |p: &Param<Tensor<1>>| values(p.val());
        colorize_engine::fold::fold_batch_norm(
            name,
            &mut weight,
            &mut bias,
            &param(&bn.gamma)?,
            &param(&bn.beta)?,
            &values(bn.running_mean.value())?,
            &values(bn.running_var.value())?,
            bn.epsilon,
        )?;
    }
    Ok(PackedConv::new(
        name,
        spec,
        &weight,
        Some(&bias),
        activation,
        isa,
    )?)
}

fn max_pool(g: &mut Graph, x: Value, pool: &MaxPool2d) -> Result<Value, ModelError> {
    if pool.dilation != [1, 1] || pool.ceil_mode {
        return Err(unsupported("maxpool", "dilated or ceil-mode max-pooling"));
    }
    let pad = padding("maxpool", &pool.padding, pool.kernel_size, pool.dilation)?;
    Ok(g.max_pool(x, pool.kernel_size, pool.stride, pad))
}

/// One basic block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, as two fused convs.
fn basic_block(
    g: &mut Graph,
    x: Value,
    b: &BasicBlock,
    name: &str,
    isa: Isa,
) -> Result<Value, ModelError> {
    let identity = match &b.downsample {
        Some(d) => {
            let conv = fold(
                &format!("{name}.downsample"),
                &d.conv,
                Some(&d.bn),
                Activation::None,
                isa,
            )?;
            g.conv(x, conv, None)?
        }
        None => x,
    };
    let c1 = fold(
        &format!("{name}.conv1"),
        &b.conv1,
        Some(&b.bn1),
        Activation::Relu,
        isa,
    )?;
    let h = g.conv(x, c1, None)?;
    let c2 = fold(
        &format!("{name}.conv2"),
        &b.conv2,
        Some(&b.bn2),
        Activation::Relu,
        isa,
    )?;
    Ok(g.conv(h, c2, Some(identity))?)
}

/// [`UnetResnet::forward`] as an engine graph.
fn compile_unet_resnet(n: &UnetResnet, isa: Isa) -> Result<Graph, ModelError> {
    let (mut g, x0) = Graph::new(1);
    let stem = fold("conv1", &n.conv1, Some(&n.bn1), Activation::Relu, isa)?;
    let x1 = g.conv(x0, stem, None)?;
    let mut x = max_pool(&mut g, x1, &n.maxpool)?;
    let mut skips = vec![x0, x1];
    for (stage, blocks) in [&n.layer1, &n.layer2, &n.layer3, &n.layer4]
        .into_iter()
        .enumerate()
    {
        for (i, b) in blocks.iter().enumerate() {
            x = basic_block(&mut g, x, b, &format!("layer{}.{i}", stage + 1), isa)?;
        }
        skips.push(x);
    }
    // skips = [x0, x1, x2, x3, x4, x5]; the decoder joins x4, x3, x2, x1, x0 in turn.
    let mut y = skips.pop().expect("six values");
    let mode = if n.bilinear {
        ResizeMode::Bilinear
    } else {
        ResizeMode::Nearest
    };
    for (i, block) in n.decoder.iter().enumerate() {
        let skip = skips
            .pop()
            .ok_or_else(|| unsupported("decoder", "more decoder blocks than skips"))?;
        let up = g.resize_like(y, skip, mode);
        let cat = g.concat(&[up, skip])?;
        let conv = fold(
            &format!("decoder.{i}.conv"),
            &block.conv,
            Some(&block.bn),
            Activation::Relu,
            isa,
        )?;
        y = g.conv(cat, conv, None)?;
    }
    let head = fold("head", &n.head, None, Activation::Tanh, isa)?;
    let out = g.conv(y, head, None)?;
    g.set_output(out);
    Ok(g)
}
