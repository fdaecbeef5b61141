//! colorize-models integration tests: model directories (safetensors round trip, mismatched
//! weights) and the pipeline's size and L guarantees on real photos and extreme shapes.

mod architectures;
mod bundled_outputs;
mod contract;
mod eccv16;
mod engine;
#[cfg(feature = "gpu")]
mod gpu;
mod model_dir;
mod pipeline;

use std::path::PathBuf;

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::Distribution;
use colorize_models::blocks::resnet::BasicBlock;
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelConfig, NetworkConfig};

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// `max |got − want| / max |want|`, the relative error every parity test here reports.
pub fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    diff / scale
}

/// A model config around a network preset.
pub fn config(net: UnetResnetConfig) -> ModelConfig {
    ModelConfig {
        network: NetworkConfig::UnetResnet(net),
        io: Default::default(),
        render_size: 64,
        saturation: 1.0,
        description: "test".into(),
    }
}

/// A tiny network with random weights, seeded.
pub fn tiny_colorizer(seed: u64) -> Colorizer {
    let device = Device::flex();
    device.seed(seed);
    let cfg = config(UnetResnetConfig::tiny());
    let net = cfg.network.init(&device).unwrap();
    Colorizer::new(net, cfg, device).unwrap()
}

/// Replaces fresh batch-norm parameters (γ=1, β=0, μ=0, σ²=1, which fold to nothing) with random ones in the ranges
/// trained networks show.
pub fn randomize(bn: &mut BatchNorm, device: &Device) {
    let n = bn.gamma.val().dims()[0];
    let u = |lo: f64, hi: f64| Tensor::<1>::random([n], Distribution::Uniform(lo, hi), device);
    bn.gamma = Param::from_tensor(u(0.5, 1.5));
    bn.beta = Param::from_tensor(u(-0.2, 0.2));
    bn.running_mean = RunningState::new(u(-0.3, 0.3));
    bn.running_var = RunningState::new(u(0.5, 2.0));
}

/// [`randomize`] on every batch norm of ResNet basic blocks.
pub fn randomize_blocks(blocks: &mut [BasicBlock], device: &Device) {
    for b in blocks {
        randomize(&mut b.bn1, device);
        randomize(&mut b.bn2, device);
        if let Some(d) = &mut b.downsample {
            randomize(&mut d.bn, device);
        }
    }
}
