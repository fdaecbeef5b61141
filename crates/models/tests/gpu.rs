//! The GPU path (`--features gpu`): burn's forward on the Vulkan device against the same network
//! on the CPU (burn Flex), for every preset of the U-Net (with and without self-attention and
//! spectral norm) and of the other architectures, with random weights and batch-norm statistics
//! loaded from saved weights (as a model folder's are), odd sizes and a batch of 2.
//! The bundled model's photos on both devices are compared by the CLI's tests (`device_cmd.rs`).
//!
//! CI runs these on Mesa's software Vulkan driver (lavapipe). With `CI` set, a missing Vulkan
//! driver fails them; elsewhere they print why and pass without running.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::Distribution;

use crate::architectures::{presets, random_network};
use crate::engine::random_unet;
use crate::relative_error;
use colorize_models::device::gpu_for_tests;
use colorize_models::model_dir::{load_weights, weights_to_bytes};
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Network, NetworkConfig};

/// [`relative_error`] of `net`'s forward on the GPU against the CPU on both devices for a random input.
fn gpu_vs_cpu(net: &Network, config: &NetworkConfig, shape: [usize; 4], gpu: &Device) -> f32 {
    let cpu = Device::flex();
    let x = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu);
    let data = x.clone().into_data();
    let want = net.forward(x).into_data().try_to_vec::<f32>().unwrap();

    // The GPU network is built and loaded from the saved weights, as Colorizer::load does.
    let mut on_gpu = config.init(gpu).unwrap();
    load_weights(
        &mut on_gpu,
        weights_to_bytes(net).unwrap(),
        Path::new("test"),
    )
    .unwrap();
    let got = on_gpu
        .forward(Tensor::<4>::from_data(data, gpu))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        want.iter().any(|v| *v != 0.0),
        "the reference output is all zero"
    );
    relative_error(&got, &want)
}

#[test]
fn gpu_forward_equals_cpu_for_every_preset_and_architecture() {
    let Some(gpu) = gpu_for_tests() else { return };
    let cpu = Device::flex();
    cpu.seed(16);
    let mut attention = UnetResnetConfig::tiny();
    attention.self_attention = true;
    attention.spectral_norm = true;
    let mut cases: Vec<(String, NetworkConfig, Network)> = [
        ("unet tiny", UnetResnetConfig::tiny()),
        ("unet light", UnetResnetConfig::light()),
        ("unet resnet34", UnetResnetConfig::resnet34()),
        ("unet tiny + self-attention + spectral norm", attention),
    ]
    .into_iter()
    .map(|(name, c)| {
        let net = Network::UnetResnet(random_unet(&c, &cpu)).power_iteration();
        (name.to_string(), NetworkConfig::UnetResnet(c), net)
    })
    .collect();
    for (name, config) in presets() {
        let net = random_network(&config, &cpu);
        cases.push((name.to_string(), config, net));
    }
    // A size the pipeline uses, and odd sides (the skips need non-integer enlargement) with a
    // batch of 2.
    for (name, config, net) in &cases {
        for shape in [[1, 1, 64, 64], [2, 1, 37, 50]] {
            let rel = gpu_vs_cpu(net, config, shape, &gpu);
            eprintln!("{name} {shape:?}: relative error {rel:.2e}");
            assert!(rel <= 1e-3, "{name} {shape:?}: relative error {rel}");
        }
    }
}
