//! The plain CNN, the ResNet-18 regressor and Deep Koalarization's fusion network: burn's
//! forward against the engine graph built from the saved weights (random weights and batch-norm
//! statistics, odd sizes, batches 1 and 2, every kernel family this CPU runs, ab and 313-logit
//! heads), model directories end to end on a real photo, and loading a torchvision backbone.

use std::collections::HashMap;
use std::path::Path;

use crate::{randomize, randomize_blocks};

use burn::prelude::*;
use burn::tensor::Distribution;

use colorize_models::fusion::{Fusion, FusionConfig, load_backbone};
use colorize_models::model_dir::weights_to_bytes;
use colorize_models::plain_cnn::{PlainCnn, PlainCnnConfig};
use colorize_models::resnet18_regressor::{Resnet18Regressor, Resnet18RegressorConfig};
use colorize_models::unet_resnet::OutputActivation;
use colorize_models::weights::{TensorData, to_safetensors_bytes};
use colorize_models::{
    Colorizer, EngineKind, Isa, ModelConfig, ModelError, Network, NetworkConfig, Weights,
    save_model_dir,
};

fn random_plain(config: &PlainCnnConfig, device: &Device) -> PlainCnn {
    let mut n = config.init(device);
    for b in n.encoder.iter_mut().chain(&mut n.bottleneck) {
        randomize(&mut b.bn, device);
    }
    for b in &mut n.decoder {
        randomize(&mut b.bn, device);
    }
    n
}

fn random_regressor(config: &Resnet18RegressorConfig, device: &Device) -> Resnet18Regressor {
    let mut n = config.init(device);
    randomize(&mut n.bn1, device);
    for layer in [&mut n.layer1, &mut n.layer2, &mut n.layer3, &mut n.layer4] {
        randomize_blocks(layer, device);
    }
    for b in &mut n.decoder {
        randomize(&mut b.bn, device);
    }
    n
}

fn random_fusion(config: &FusionConfig, device: &Device) -> Fusion {
    let mut n = config.init(device);
    for b in n.encoder.iter_mut().chain(&mut n.decoder) {
        randomize(&mut b.bn, device);
    }
    let bb = &mut n.backbone;
    randomize(&mut bb.bn1, device);
    for layer in [
        &mut bb.layer1,
        &mut bb.layer2,
        &mut bb.layer3,
        &mut bb.layer4,
    ] {
        randomize_blocks(layer, device);
    }
    n
}

/// A network config and burn network with random weights.
pub(crate) fn random_network(config: &NetworkConfig, device: &Device) -> Network {
    match config {
        NetworkConfig::PlainCnn(c) => Network::PlainCnn(random_plain(c, device)),
        NetworkConfig::Resnet18Regressor(c) => {
            Network::Resnet18Regressor(random_regressor(c, device))
        }
        NetworkConfig::Fusion(c) => Network::Fusion(random_fusion(c, device)),
        other => panic!("not an architecture of this file: {}", other.arch()),
    }
}

/// The three architectures' `(name, config)` for a preset.
pub(crate) fn presets() -> Vec<(&'static str, NetworkConfig)> {
    vec![
        (
            "plain_cnn tiny",
            NetworkConfig::PlainCnn(PlainCnnConfig::tiny()),
        ),
        (
            "plain_cnn light",
            NetworkConfig::PlainCnn(PlainCnnConfig::light()),
        ),
        (
            "resnet18_regressor tiny",
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::tiny()),
        ),
        (
            "resnet18_regressor light",
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::light()),
        ),
        ("fusion tiny", NetworkConfig::Fusion(FusionConfig::tiny())),
        ("fusion light", NetworkConfig::Fusion(FusionConfig::light())),
    ]
}

/// The tiny preset of each architecture with 313 outputs and no activation (logits over
/// quantised ab bins).
fn logit_presets() -> Vec<(&'static str, NetworkConfig)> {
    let (out_channels, output_activation) = (313, OutputActivation::None);
    vec![
        (
            "plain_cnn tiny-313",
            NetworkConfig::PlainCnn(PlainCnnConfig {
                out_channels,
                output_activation,
                ..PlainCnnConfig::tiny()
            }),
        ),
        (
            "resnet18_regressor tiny-313",
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig {
                out_channels,
                output_activation,
                ..Resnet18RegressorConfig::tiny()
            }),
        ),
        (
            "fusion tiny-313",
            NetworkConfig::Fusion(FusionConfig {
                out_channels,
                output_activation,
                ..FusionConfig::tiny()
            }),
        ),
    ]
}

/// The engine graph of `net`, built from its weights as a model folder's are.
fn compile(net: &Network, config: &NetworkConfig, isa: Isa) -> colorize_engine::Graph {
    let bytes = weights_to_bytes(net).unwrap();
    let weights = Weights::from_bytes(&bytes, Path::new("test")).unwrap();
    config.graph(&weights, isa).unwrap()
}

fn parameters(net: &Network) -> usize {
    let bytes = weights_to_bytes(net).unwrap();
    let weights = Weights::from_bytes(&bytes, Path::new("test")).unwrap();
    weights
        .tensors()
        .iter()
        .filter(|(k, _)| !k.ends_with("running_mean") && !k.ends_with("running_var"))
        .map(|(_, t)| t.values.len())
        .sum()
}

/// Every preset and the logit variants: burn's output has the input's size, and the engine
/// (every available kernel family) agrees with it to a relative error below 1e-4.
#[test]
fn architectures_engine_matches_burn_at_odd_sizes_for_every_isa() {
    let device = Device::flex();
    device.seed(11);
    let shapes = [(1, 37, 53), (2, 64, 48), (1, 8, 11)];
    for (name, config) in presets().into_iter().chain(logit_presets()) {
        let net = random_network(&config, &device);
        let (cin, cout) = config.channels();
        eprintln!("{name}: {} parameters", parameters(&net));
        let graphs: Vec<_> = Isa::ALL
            .into_iter()
            .filter(|i| i.is_available())
            .map(|isa| (isa, compile(&net, &config, isa)))
            .collect();
        for (b, h, w) in shapes {
            let x = Tensor::<4>::random([b, cin, h, w], Distribution::Uniform(-1.0, 1.0), &device);
            let input = x.clone().into_data().try_to_vec::<f32>().unwrap(); // C = 1: NCHW is NHWC
            let y = net.forward(x);
            assert_eq!(y.dims(), [b, cout, h, w], "{name} {b}x{h}x{w}");
            let want = y
                .permute([0, 2, 3, 1])
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 1e-3, "{name}: output is all zeros");
            for (isa, graph) in &graphs {
                assert_eq!(graph.output_size(h, w).unwrap(), (h, w));
                let got = graph.run(&input, b, h, w).unwrap();
                assert_eq!(got.len(), want.len());
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, e)| (a - e).abs())
                    .fold(0f32, f32::max);
                let rel = diff / scale;
                eprintln!("{name} {isa} {b}x{h}x{w}: relative error {rel:.2e}");
                assert!(rel < 1e-4, "{name} {isa} {b}x{h}x{w}: relative error {rel}");
            }
        }
    }
}

/// The full (`--preset resnet34`) widths too: one odd size, the best kernel family.
#[test]
fn architectures_full_presets_engine_matches_burn() {
    let device = Device::flex();
    device.seed(12);
    let isa = Isa::ALL.into_iter().find(|i| i.is_available()).unwrap();
    for config in [
        NetworkConfig::PlainCnn(PlainCnnConfig::full()),
        NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::full()),
        NetworkConfig::Fusion(FusionConfig::full()),
    ] {
        let net = random_network(&config, &device);
        let (b, h, w) = (1, 45, 67);
        let x = Tensor::<4>::random([b, 1, h, w], Distribution::Uniform(-1.0, 1.0), &device);
        let input = x.clone().into_data().try_to_vec::<f32>().unwrap();
        let want = net
            .forward(x)
            .permute([0, 2, 3, 1])
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let got = compile(&net, &config, isa).run(&input, b, h, w).unwrap();
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, e)| (a - e).abs())
            .fold(0f32, f32::max);
        assert!(
            scale > 1e-3 && diff / scale < 1e-4,
            "{}: {diff} of {scale}",
            config.arch()
        );
    }
}

/// Each architecture (tiny) as a model directory: saved, loaded by `Colorizer::load` (the
/// engine) and by burn, colourising a real photo to its own size, both engines alike.
#[test]
fn architectures_model_directories_colourise_a_photo_to_its_size() {
    let device = Device::flex();
    device.seed(12);
    let photo_path = crate::shared_data()
        .join("val/kodak")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let photo = image::open(&photo_path).unwrap();
    for (name, network) in presets().into_iter().filter(|(n, _)| n.ends_with("tiny")) {
        let net = random_network(&network, &device);
        let config = ModelConfig {
            network,
            io: Default::default(),
            render_size: 64,
            saturation: 1.0,
            description: name.into(),
        };
        let dir = tempfile::tempdir().unwrap();
        save_model_dir(dir.path(), &config, &net).unwrap();
        let native = Colorizer::load(dir.path(), &device).unwrap();
        assert_eq!(native.engine(), EngineKind::Native);
        let a = native.colorize(&photo).unwrap();
        assert_eq!(a.dimensions(), (photo.width(), photo.height()), "{name}");
        let b = native
            .clone()
            .with_engine(EngineKind::Burn)
            .colorize(&photo)
            .unwrap();
        let worst = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{name}: burn and engine differ by {worst}");
    }
}

/// `tiny`, `light` and `full` of each architecture stay in their parameter budgets (tiny under
/// 100 k for tests; light 1-4 M to train on 2 cores).
#[test]
fn architectures_presets_have_the_documented_sizes() {
    let device = Device::flex();
    let sizes = [
        (
            "plain_cnn",
            NetworkConfig::PlainCnn(PlainCnnConfig::tiny()),
            NetworkConfig::PlainCnn(PlainCnnConfig::light()),
            NetworkConfig::PlainCnn(PlainCnnConfig::full()),
        ),
        (
            "resnet18_regressor",
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::tiny()),
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::light()),
            NetworkConfig::Resnet18Regressor(Resnet18RegressorConfig::full()),
        ),
        (
            "fusion",
            NetworkConfig::Fusion(FusionConfig::tiny()),
            NetworkConfig::Fusion(FusionConfig::light()),
            NetworkConfig::Fusion(FusionConfig::full()),
        ),
    ];
    for (name, tiny, light, full) in sizes {
        let count = |c: &NetworkConfig| parameters(&c.init(&device).unwrap());
        let (t, l, f) = (count(&tiny), count(&light), count(&full));
        eprintln!("{name}: tiny {t}, light {l}, full {f} parameters");
        assert!(t < 100_000, "{name} tiny: {t}");
        assert!((1_000_000..=4_000_000).contains(&l), "{name} light: {l}");
        assert!(f > l, "{name} full: {f}");
        // Every config survives config.json.
        for c in [tiny, light, full] {
            let json = serde_json::to_string(&c).unwrap();
            assert!(json.contains(&format!("\"arch\":\"{name}\"")), "{json}");
            assert_eq!(serde_json::from_str::<NetworkConfig>(&json).unwrap(), c);
        }
    }
}

/// The tensors of `net`'s backbone under torchvision's ResNet names (`downsample.0`/`.1`), with
/// a 1000-way `fc` and `num_batches_tracked` buffers that the loader must ignore.
fn torchvision_backbone(net: &Fusion) -> HashMap<String, TensorData> {
    let bytes = weights_to_bytes(&Network::Fusion(net.clone())).unwrap();
    let weights = Weights::from_bytes(&bytes, Path::new("backbone")).unwrap();
    let mut map: HashMap<String, TensorData> = weights
        .tensors()
        .into_iter()
        .filter_map(|(k, t)| {
            let k = k.strip_prefix("backbone.")?;
            (!k.starts_with("fc.")).then(|| {
                let k = k
                    .replace(".downsample.conv.", ".downsample.0.")
                    .replace(".downsample.bn.", ".downsample.1.");
                (k, t.clone())
            })
        })
        .collect();
    let c = net.backbone.fc.weight.dims()[0];
    map.insert(
        "fc.weight".into(),
        TensorData {
            shape: vec![1000, c],
            values: vec![0.01; 1000 * c],
        },
    );
    map.insert(
        "fc.bias".into(),
        TensorData {
            shape: vec![1000],
            values: vec![0.0; 1000],
        },
    );
    map.insert(
        "bn1.num_batches_tracked".into(),
        TensorData {
            shape: vec![],
            values: vec![1.0],
        },
    );
    map
}

fn write(dir: &Path, name: &str, map: &HashMap<String, TensorData>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, to_safetensors_bytes(map.iter(), None).unwrap()).unwrap();
    path
}

fn backbone_output(net: &Fusion, x: Tensor<4>) -> Vec<f32> {
    net.backbone
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

/// `load_backbone` reads torchvision's keys into the backbone (exactly: the loaded backbone
/// computes what the file's did), ignores `fc`, and names the key and both shapes of a tensor
/// that does not fit, and the key of one that is missing.
#[test]
fn architectures_fusion_loads_a_torchvision_backbone() {
    let device = Device::flex();
    device.seed(13);
    let config = FusionConfig::tiny();
    let source = random_fusion(&config, &device);
    let target = config.init(&device);
    let dir = tempfile::tempdir().unwrap();
    let map = torchvision_backbone(&source);
    assert!(map.contains_key("layer2.0.downsample.0.weight"));
    assert!(map.contains_key("layer2.0.downsample.1.running_var"));
    let good = write(dir.path(), "resnet.safetensors", &map);

    let x = Tensor::<4>::random([2, 3, 37, 53], Distribution::Uniform(-1.0, 1.0), &device);
    let before = backbone_output(&target, x.clone());
    let want = backbone_output(&source, x.clone());
    // `fc` is not loaded: give the target the source's, so the outputs can be compared whole.
    let mut target = target;
    target.backbone.fc = source.backbone.fc.clone();
    let loaded = load_backbone(target, &good, &device).unwrap();
    let after = backbone_output(&loaded, x.clone());
    assert_ne!(before, after, "loading changed nothing");
    let diff = after
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-5,
        "loaded backbone differs from the file's by {diff}"
    );

    let mut wrong = map.clone();
    wrong.insert(
        "layer1.0.conv1.weight".into(),
        TensorData {
            shape: vec![8, 8, 5, 5],
            values: vec![0.0; 8 * 8 * 25],
        },
    );
    let path = write(dir.path(), "wrong.safetensors", &wrong);
    match load_backbone(config.init(&device), &path, &device) {
        Err(ModelError::WeightShape {
            key,
            expected,
            found,
            ..
        }) => {
            assert_eq!(key, "layer1.0.conv1.weight");
            assert_eq!(expected, [8, 8, 3, 3]);
            assert_eq!(found, [8, 8, 5, 5]);
        }
        other => panic!("expected a shape error, got {other:?}"),
    }

    let mut missing = map.clone();
    missing.remove("layer2.0.downsample.1.running_var");
    let path = write(dir.path(), "missing.safetensors", &missing);
    match load_backbone(config.init(&device), &path, &device) {
        Err(ModelError::MissingWeight { key, .. }) => {
            assert_eq!(key, "layer2.0.downsample.1.running_var");
        }
        other => panic!("expected a missing weight, got {other:?}"),
    }
}
