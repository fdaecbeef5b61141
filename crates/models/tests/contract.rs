//! The model contract end to end: engine graphs built straight from a safetensors file (no burn
//! module), and a model folder whose `config.json` states a non-default contract (gray RGB with
//! ImageNet statistics in, RGB out, as DeOldify's) colourising a real photo as it should.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use colorize_core::io::{DecodeLimits, decode_image};
use colorize_core::lab::lightness_of;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE, weights_to_bytes};
use colorize_models::model_io::{IMAGENET_MEAN, IMAGENET_STD};
use colorize_models::unet_resnet::{OutputActivation, UnetResnetConfig};
use colorize_models::weights::{TensorData, to_safetensors_bytes};
use colorize_models::{
    Colorizer, EngineKind, InputKind, Isa, ModelConfig, ModelIo, NetworkConfig, OutputKind,
    SizeRule, Weights,
};
use palette::{FromColor, Lab, Srgb};

use crate::shared_data;

fn bundled_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/stable")
}

fn historical(name: &str) -> image::DynamicImage {
    decode_image(
        &shared_data().join("historical").join(name),
        &DecodeLimits::default(),
    )
    .unwrap()
    .image
}

#[test]
fn engine_graph_from_a_safetensors_file_without_a_burn_module() {
    let dir = bundled_dir();
    let config = ModelConfig::from_json(
        &std::fs::read(dir.join(CONFIG_FILE)).unwrap(),
        &dir.join(CONFIG_FILE),
    )
    .unwrap();
    let weights = Weights::open(&dir.join(WEIGHTS_FILE)).unwrap();
    let graph = config.network.graph(&weights, Isa::detect()).unwrap();
    assert!(weights.unused().is_empty(), "every tensor is used");
    // The graph of the trained model on a real photo's L at the render size: colour comes out,
    // within the tanh range.
    let photo = historical("1916Sweeden.jpg");
    let (w, h, l) = lightness_of(&photo);
    let (rw, rh) = config.io.size.network_size(w, h, config.render_size);
    let small = colorize_core::resize::resize_plane(&l, w, h, rw, rh);
    let x = config.io.encode_input(&small);
    let y = graph.run(&x, 1, rh, rw).unwrap(); // [1, rh, rw, 2]
    assert_eq!(y.len(), rw * rh * 2);
    assert!(y.iter().all(|v| v.abs() <= 1.0));
    let (a, b) = config.io.decode_output_nhwc(&y, rw * rh);
    let mean_chroma = a.iter().zip(&b).map(|(a, b)| a.hypot(*b)).sum::<f32>() / a.len() as f32;
    assert!(mean_chroma > 3.0, "mean chroma {mean_chroma}");

    // Loading the folder for inference creates no burn network either, and the result equals
    // burn's forward pass on the same weights (created only when asked for).
    let c = Colorizer::load(&dir, &Device::flex()).unwrap();
    let (na, nb) = c.predict_ab(&small, rw, rh).unwrap();
    assert!(!c.has_burn_network(), "inference built a burn module");
    let k = c.saturation();
    let worst = na
        .iter()
        .zip(&a)
        .chain(nb.iter().zip(&b))
        .map(|(x, y)| (x - y * k).abs())
        .fold(0f32, f32::max);
    assert!(
        worst < 1e-3,
        "Colorizer and the bare graph differ by {worst}"
    );
    let burn = c.clone().with_engine(EngineKind::Burn);
    let (ba, _) = burn.predict_ab(&small, rw, rh).unwrap();
    assert!(burn.has_burn_network());
    let worst = na
        .iter()
        .zip(&ba)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 110.0 * 1e-4, "engine and burn differ by {worst}");
}

/// The tint the hand-made network applies to a gray value `v`: `(v, 0.8 v, 0.6 v)`, sepia.
const TINT: [f32; 3] = [1.0, 0.8, 0.6];

/// A tiny `unet_resnet` taking 3 channels and returning 3, with weights set by hand so that its
/// output is exactly `normalise(TINT · v)` for the gray input `v` (ImageNet statistics in and out):
/// every weight is zero except the last decoder convolution, which passes the input's channels
/// through (shifted by +3 so the ReLU keeps them), and the 1x1 head, which undoes the shift and
/// applies the tint in normalised units.
fn sepia_model(dir: &Path) -> ModelConfig {
    let mut net = UnetResnetConfig::tiny();
    net.in_channels = 3;
    net.out_channels = 3;
    net.output_activation = OutputActivation::None;
    let config = ModelConfig {
        network: NetworkConfig::UnetResnet(net.clone()),
        io: ModelIo {
            input: InputKind::GrayRgb {
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            output: OutputKind::Rgb {
                mean: IMAGENET_MEAN,
                std: IMAGENET_STD,
            },
            size: SizeRule::MultipleOf { multiple: 32 },
            pipeline: Default::default(),
        },
        render_size: 96,
        saturation: 1.0,
        description: "hand-made sepia network (test)".into(),
    };
    // The keys and shapes of the architecture, from a freshly built network.
    let bytes = weights_to_bytes(&config.network.init(&Device::flex()).unwrap()).unwrap();
    let template = Weights::from_bytes(&bytes, Path::new("template")).unwrap();
    let mut map: BTreeMap<String, TensorData> = BTreeMap::new();
    for (key, t) in template.tensors() {
        let fill =
            if key.ends_with("running_var") || (t.shape.len() == 1 && key.ends_with(".weight")) {
                // Batch norm: unit variance (1 − ε, so that √(σ² + ε) is exactly 1) and unit scale.
                if key.ends_with("running_var") {
                    1.0 - 1e-5
                } else {
                    1.0
                }
            } else {
                0.0
            };
        map.insert(
            key.to_string(),
            TensorData {
                shape: t.shape.clone(),
                values: vec![fill; t.values.len()],
            },
        );
    }
    let d0 = net.decoder_widths[4];
    let cin_last = net.decoder_widths[3] + 3;
    let conv = map.get_mut("decoder.4.conv.weight").unwrap();
    assert_eq!(conv.shape, vec![d0, cin_last, 3, 3]);
    for c in 0..3 {
        // Output channel c, input channel (decoder width + c) = the input's channel c, centre tap.
        let i = net.decoder_widths[3] + c;
        conv.values[((c * cin_last + i) * 3 + 1) * 3 + 1] = 1.0;
    }
    map.get_mut("decoder.4.bn.bias").unwrap().values[..3].fill(3.0);
    let (m, s) = (IMAGENET_MEAN, IMAGENET_STD);
    let head = map.get_mut("head.weight").unwrap();
    assert_eq!(head.shape, vec![3, d0, 1, 1]);
    for c in 0..3 {
        head.values[c * d0] = TINT[c] * s[0] / s[c];
    }
    let bias = &mut map.get_mut("head.bias").unwrap().values;
    for c in 0..3 {
        bias[c] = (TINT[c] * (m[0] - 3.0 * s[0]) - m[c]) / s[c];
    }
    std::fs::write(
        dir.join(WEIGHTS_FILE),
        to_safetensors_bytes(&map, None).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join(CONFIG_FILE),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    config
}

/// CIELAB a and b of `TINT · v` by palette (an independent implementation of sRGB → CIELAB, D65).
fn tinted_ab(v: f32) -> (f32, f32) {
    let lab =
        Lab::from_color(Srgb::new(TINT[0] * v, TINT[1] * v, TINT[2] * v).into_linear::<f32>());
    (lab.a, lab.b)
}

#[test]
fn rgb_in_rgb_out_model_folder_gives_the_right_photo() {
    let dir = tempfile::tempdir().unwrap();
    sepia_model(dir.path());
    let json = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
    assert!(
        json.contains("\"gray_rgb\"") && json.contains("\"rgb\""),
        "{json}"
    );
    let c = Colorizer::load(dir.path(), &Device::flex()).unwrap();
    let photo = historical("1864UnionSoldier.jpg");
    let (w, h, l) = lightness_of(&photo);
    // Stage by stage: the network's ab at its own size is the tint's ab for each input gray.
    let input = c.prepare(w, h, &l);
    assert_eq!((input.width, input.height), c.network_size(w, h));
    assert_eq!(input.values.len(), 3 * input.width * input.height);
    let pixels = input.width * input.height;
    let ab = c.predict(std::slice::from_ref(&input)).unwrap().remove(0);
    assert!(!c.has_burn_network());
    let mut worst = 0f32;
    for p in 0..pixels {
        let v = input.values[p] * IMAGENET_STD[0] + IMAGENET_MEAN[0];
        let (a, b) = tinted_ab(v);
        worst = worst.max((ab.a[p] - a).abs()).max((ab.b[p] - b).abs());
    }
    assert!(worst < 0.05, "ab differs from the tint's by {worst}");
    // burn's forward pass of the same folder agrees.
    let burn_ab = c
        .clone()
        .with_engine(EngineKind::Burn)
        .predict(std::slice::from_ref(&input))
        .unwrap()
        .remove(0);
    let diff =
        ab.a.iter()
            .zip(&burn_ab.a)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
    assert!(diff < 0.01, "engine and burn differ by {diff}");
    // The whole photo: the input's L, with a sepia hue (a > 0, b > a where there is light).
    let out = image::DynamicImage::ImageRgb32F(c.colorize(&photo).unwrap()).into_rgb8();
    assert_eq!(out.dimensions(), (w as u32, h as u32));
    let (_, _, l_out) = lightness_of(&image::DynamicImage::ImageRgb8(out.clone()));
    let l_err = l
        .iter()
        .zip(&l_out)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(l_err < 1.0, "L moved by {l_err}");
    let bright: Vec<_> = out.pixels().filter(|p| p.0[0] > 100).collect();
    assert!(bright.len() > 1000);
    assert!(
        bright.iter().all(|p| p.0[0] >= p.0[1] && p.0[1] >= p.0[2]),
        "a bright pixel is not sepia"
    );
}
