//! colorize-models integration tests: model directories (safetensors round trip, mismatched
//! weights) and the pipeline's size and L guarantees on real photos and extreme shapes.

mod architectures;
mod bundled_outputs;
mod contract;
mod eccv16;
mod engine;
mod model_dir;
mod pipeline;

use std::path::PathBuf;

use burn::prelude::*;
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelConfig, NetworkConfig};

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
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
