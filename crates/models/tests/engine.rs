//! The inference engine against burn's forward pass: every preset, random weights with random
//! batch-norm statistics (so folding is exercised), odd sizes, batch 1 and 3, every kernel family
//! this CPU runs; and the bundled (trained) model end to end.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use colorize_engine::Graph;

use crate::{randomize, randomize_blocks, relative_error};
use colorize_models::model_dir::weights_to_bytes;
use colorize_models::unet_resnet::{UnetResnet, UnetResnetConfig, Upsample};
use colorize_models::{Colorizer, EngineKind, Isa, Network, NetworkConfig, Weights};

/// The engine graph of `net`, built from its weights as a model folder's are (serialised to
/// safetensors and read back by name).
fn compile(net: &Network, config: &NetworkConfig, isa: Isa) -> Graph {
    let bytes = weights_to_bytes(net).unwrap();
    let weights = Weights::from_bytes(&bytes, std::path::Path::new("test")).unwrap();
    config.graph(&weights, isa).unwrap()
}

pub(crate) fn random_unet(config: &UnetResnetConfig, device: &Device) -> UnetResnet {
    let mut n = config.init(device);
    randomize(&mut n.bn1, device);
    for stage in [&mut n.layer1, &mut n.layer2, &mut n.layer3, &mut n.layer4] {
        randomize_blocks(stage, device);
    }
    for d in &mut n.decoder {
        randomize(&mut d.bn, device);
    }
    n
}

/// Runs burn and the engine on the same input and returns the relative error
/// `max |engine − burn| / max |burn|` and the fraction of outputs not saturated by tanh.
fn compare(
    net: &Network,
    config: &NetworkConfig,
    isa: Isa,
    batch: usize,
    h: usize,
    w: usize,
    device: &Device,
) -> (f32, f32) {
    let x = Tensor::<4>::random([batch, 1, h, w], Distribution::Uniform(-1.0, 1.0), device);
    let input = x.clone().into_data().try_to_vec::<f32>().unwrap(); // NCHW with C = 1 is NHWC
    let want = net
        .forward(x)
        .permute([0, 2, 3, 1])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let graph = compile(net, config, isa);
    let got = graph.run(&input, batch, h, w).unwrap();
    let live = want.iter().filter(|v| v.abs() < 0.99).count() as f32 / want.len() as f32;
    (relative_error(&got, &want), live)
}

#[test]
fn engine_matches_burn_for_every_preset_size_batch_and_kernel_family() {
    let device = Device::flex();
    let mut bilinear = UnetResnetConfig::tiny();
    bilinear.upsample = Upsample::Bilinear;
    let presets = [
        ("tiny", UnetResnetConfig::tiny()),
        ("tiny-bilinear", bilinear),
        ("light", UnetResnetConfig::light()),
        ("resnet34", UnetResnetConfig::resnet34()),
    ];
    for (name, config) in presets {
        let net = Network::UnetResnet(random_unet(&config, &device));
        let config = NetworkConfig::UnetResnet(config);
        // Multiples of 32 (what the pipeline uses), odd sizes whose skips need non-integer
        // enlargement, and a batch of 3.
        let shapes: &[(usize, usize, usize)] = if name == "resnet34" {
            &[(1, 64, 96), (3, 37, 50)]
        } else {
            &[(1, 64, 64), (1, 50, 37), (3, 33, 65), (1, 1, 1)]
        };
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            for &(b, h, w) in shapes {
                let (rel, live) = compare(&net, &config, isa, b, h, w, &device);
                eprintln!(
                    "{name} {isa} {b}x{h}x{w}: relative error {rel:.2e}, {:.0}% unsaturated",
                    live * 100.0
                );
                assert!(
                    rel <= 1e-4,
                    "{name} {isa} {b}x{h}x{w}: relative error {rel}"
                );
            }
        }
    }
}

#[test]
fn bundled_model_gives_the_same_photo_with_either_engine() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/stable");
    let device = Device::flex();
    let native = Colorizer::load(&dir, &device).unwrap();
    assert_eq!(native.engine(), EngineKind::Native);
    let burn = native.clone().with_engine(EngineKind::Burn);
    let photo = image::open(
        crate::shared_data()
            .join("val/kodak")
            .read_dir()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let a = native.colorize(&photo).unwrap();
    let b = burn.colorize(&photo).unwrap();
    let worst = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    // Linear-light RGB in 0..1: below a tenth of an 8-bit step.
    assert!(worst < 4e-4, "max RGB difference {worst}");
    // The trained network is not saturated: this compares real values, not ±1.
    let (l, w, h) = (vec![60.0f32; 128 * 96], 128, 96);
    let (na, _) = native.predict_ab(&l, w, h).unwrap();
    let (ba, _) = burn.predict_ab(&l, w, h).unwrap();
    let diff = na
        .iter()
        .zip(&ba)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 110.0 * 1e-4, "a differs by {diff}");
    assert!(
        na.iter().any(|v| v.abs() > 1.0),
        "the network predicts some colour"
    );
}

/// NCHW burn tensor → NHWC values.
fn nhwc(t: Tensor<4>) -> Vec<f32> {
    t.permute([0, 2, 3, 1])
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    diff / want.iter().fold(1e-6f32, |m, v| m.max(v.abs()))
}

/// The ops no shipped network uses yet (transposed convolution for Zhang et al.'s eccv16, pixel
/// shuffle and average pooling for DeOldify-style decoders, sigmoid) against burn's own modules,
/// which follow PyTorch.
#[test]
fn transposed_conv_pixel_shuffle_and_avg_pool_match_burn() {
    use burn::nn::conv::ConvTranspose2dConfig;
    use burn::nn::pool::AvgPool2dConfig;
    use burn::nn::{PaddingConfig2d, PixelShuffleConfig};
    use colorize_engine::{Activation, ConvSpec, Graph, PackedConv};
    let device = Device::flex();
    let (b, c, h, w) = (2, 16, 7, 5);
    let x = Tensor::<4>::random([b, c, h, w], Distribution::Uniform(-1.0, 1.0), &device);
    let input = nhwc(x.clone());
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        // Zhang et al. 2016's upsampling layer: ConvTranspose2d(k 4, stride 2, padding 1).
        let deconv = ConvTranspose2dConfig::new([c, 24], [4, 4])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .init(&device);
        let weight = deconv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let bias = deconv
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let conv = PackedConv::new(
            "deconv",
            ConvSpec::transposed(c, 24, 4, 2, 1),
            &weight,
            Some(&bias),
            Activation::Sigmoid,
            isa,
        )
        .unwrap();
        let (mut g, x0) = Graph::new(c);
        let y = g.conv(x0, conv, None).unwrap();
        g.set_output(y);
        let want = nhwc(burn::tensor::activation::sigmoid(deconv.forward(x.clone())));
        let got = g.run(&input, b, h, w).unwrap();
        assert!(max_rel(&got, &want) < 1e-5, "{isa}: transposed conv");

        let (mut g, x0) = Graph::new(c);
        let y = g.pixel_shuffle(x0, 2).unwrap();
        g.set_output(y);
        let want = nhwc(PixelShuffleConfig::new(2).init().forward(x.clone()));
        assert_eq!(g.run(&input, b, h, w).unwrap(), want, "pixel shuffle");

        for include_pad in [true, false] {
            let pool = AvgPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_count_include_pad(include_pad)
                .init();
            let (mut g, x0) = Graph::new(c);
            let y = g.avg_pool(x0, [3, 3], [2, 2], [1, 1, 1, 1], include_pad);
            g.set_output(y);
            let want = nhwc(pool.forward(x.clone()));
            assert!(
                max_rel(&g.run(&input, b, h, w).unwrap(), &want) < 1e-6,
                "avg pool, count_include_pad {include_pad}"
            );
        }
    }
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// Grouped and depthwise convolutions (ResNeXt's 4 groups, ConvNeXt's 7x7 depthwise) with a
/// folded batch norm, built from named weights in PyTorch's layout by `layers::conv`, against
/// burn's `Conv2d` with `groups` and `BatchNorm`, on every kernel family.
#[test]
fn grouped_and_depthwise_convolutions_from_named_weights_match_burn() {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    use colorize_engine::Activation;
    use colorize_models::layers::{ConvGeometry, conv};
    use colorize_models::weights::TensorData;
    let device = Device::flex();
    let (b, h, w) = (2, 13, 11);
    for (groups, cin, cout, k, stride) in [(4, 8, 12, 3, 1), (16, 16, 16, 7, 1), (24, 24, 24, 3, 2)]
    {
        let p = k / 2;
        let c = Conv2dConfig::new([cin, cout], [k, k])
            .with_groups(groups)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .init(&device);
        let mut bn = BatchNormConfig::new(cout).init(&device);
        randomize(&mut bn, &device);
        let x = Tensor::<4>::random([b, cin, h, w], Distribution::Uniform(-1.0, 1.0), &device);
        let want = nhwc(burn::tensor::activation::relu(
            bn.forward(c.forward(x.clone())),
        ));
        let mut map = std::collections::HashMap::new();
        let mut put = |key: &str, shape: Vec<usize>, values: Vec<f32>| {
            map.insert(key.to_string(), TensorData { shape, values });
        };
        put(
            "conv.weight",
            vec![cout, cin / groups, k, k],
            c.weight.val().into_data().try_to_vec::<f32>().unwrap(),
        );
        put(
            "conv.bias",
            vec![cout],
            values(c.bias.as_ref().unwrap().val()),
        );
        put("bn.weight", vec![cout], values(bn.gamma.val()));
        put("bn.bias", vec![cout], values(bn.beta.val()));
        put(
            "bn.running_mean",
            vec![cout],
            values(bn.running_mean.value()),
        );
        put("bn.running_var", vec![cout], values(bn.running_var.value()));
        let named = Weights::from_map(map, std::path::Path::new("grouped"));
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let packed = conv(
                &named.pp("conv"),
                Some(&named.pp("bn")),
                ConvGeometry::new(stride, p).with_groups(groups).with_bias(),
                Activation::Relu,
                isa,
            )
            .unwrap();
            let (mut g, x0) = Graph::new(cin);
            let y = g.conv(x0, packed, None).unwrap();
            g.set_output(y);
            let got = g.run(&nhwc(x.clone()), b, h, w).unwrap();
            let rel = max_rel(&got, &want);
            assert!(
                rel < 1e-5,
                "{isa} groups {groups} k {k}: relative error {rel}"
            );
        }
        assert!(named.unused().is_empty());
    }
}

/// Safetensors bytes of any module as a model folder stores them (PyTorch names, enum variants
/// skipped), read back as named weights.
fn module_weights<M: burn::module::Module>(module: &M) -> Weights {
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    module.save_into(&mut store).unwrap();
    Weights::from_bytes(&store.get_bytes().unwrap(), std::path::Path::new("module")).unwrap()
}

/// SAGAN self-attention, plain and spectral-normalised, from its saved weights (γ ≠ 0) against
/// burn's forward, on every kernel family: the whole output and the attention term alone.
#[test]
fn self_attention_from_saved_weights_matches_burn() {
    use colorize_models::blocks::self_attention::{SelfAttentionConfig, self_attention_graph};
    let device = Device::flex();
    device.seed(21);
    let (b, c, h, w) = (2, 32, 7, 9);
    for spectral in [false, true] {
        let mut sa = SelfAttentionConfig::new(c)
            .with_spectral_norm(spectral)
            .init(&device);
        sa.gamma = Param::from_tensor(Tensor::from_floats([0.7], &device));
        let x = Tensor::<4>::random([b, c, h, w], Distribution::Uniform(-1.0, 1.0), &device);
        let input = nhwc(x.clone());
        let want = nhwc(sa.forward(x));
        let weights = module_weights(&sa);
        let key = if spectral { "weight_orig" } else { "weight" };
        for name in ["query", "key", "value"] {
            assert!(weights.pp(name).contains(key), "{name}.{key}");
        }
        assert_eq!(weights.shape("query.weight_u").is_some(), spectral);
        assert_eq!(weights.shape("gamma"), Some(&[1][..]));
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let (mut g, x0) = Graph::new(c);
            let y = self_attention_graph(&mut g, x0, &weights, isa).unwrap();
            g.set_output(y);
            weights.check_all_used().unwrap();
            let got = g.run(&input, b, h, w).unwrap();
            let rel = max_rel(&got, &want);
            assert!(
                rel < 1e-4,
                "{isa} spectral {spectral}: relative error {rel}"
            );
            // The attention term alone (x subtracted from both), so x cannot hide an error.
            let minus_x =
                |v: &[f32]| -> Vec<f32> { v.iter().zip(&input).map(|(a, x)| a - x).collect() };
            let rel_term = max_rel(&minus_x(&got), &minus_x(&want));
            eprintln!("{isa} spectral {spectral}: relative error {rel:.2e}, term {rel_term:.2e}");
            let rel = rel_term;
            assert!(
                rel < 1e-4,
                "{isa} spectral {spectral}: attention term relative error {rel}"
            );
        }
    }
}

/// The U-Net with self-attention and/or spectral normalisation: the engine graph from the saved
/// weights (`weight_orig / σ` folded at load) against burn's forward at odd sizes; a saved and
/// reloaded network gives the same output; the power iteration changes only u and v.
#[test]
fn unet_with_attention_and_spectral_norm_matches_the_engine() {
    use colorize_models::blocks::spectral_norm::ConvLayer;
    use colorize_models::model_dir::load_weights;
    let device = Device::flex();
    device.seed(8);
    for (attention, spectral) in [(true, true), (true, false), (false, true)] {
        let mut config = UnetResnetConfig::tiny();
        config.self_attention = attention;
        config.spectral_norm = spectral;
        let mut unet = random_unet(&config, &device).power_iteration();
        if let Some(a) = &mut unet.decoder[1].attention {
            a.gamma = Param::from_tensor(Tensor::from_floats([0.8], &device));
        }
        assert_eq!(unet.decoder[1].attention.is_some(), attention);
        assert_eq!(unet.decoder[0].conv.is_spectral(), spectral);
        let net = Network::UnetResnet(unet);
        let weights = module_weights(&net);
        let conv_key = if spectral {
            "conv.weight_orig"
        } else {
            "conv.weight"
        };
        assert!(weights.pp("decoder").pp(4).contains(conv_key));
        assert_eq!(
            weights.pp("decoder").pp(1).contains("attention.gamma"),
            attention
        );
        let net_config = NetworkConfig::UnetResnet(config.clone());
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            for (b, h, w) in [(1, 50, 37), (2, 33, 65)] {
                let (rel, live) = compare(&net, &net_config, isa, b, h, w, &device);
                eprintln!(
                    "attention {attention} spectral {spectral} {isa} {b}x{h}x{w}: relative \
                     error {rel:.2e}, {:.0}% unsaturated",
                    live * 100.0
                );
                assert!(
                    rel <= 1e-4,
                    "attention {attention} spectral {spectral} {isa} {b}x{h}x{w}: relative error {rel}"
                );
            }
        }
        // Save and reload into a fresh network: u, v and γ come back, so the output does too.
        let bytes = colorize_models::model_dir::weights_to_bytes(&net).unwrap();
        let mut fresh = net_config.init(&device).unwrap();
        load_weights(&mut fresh, bytes, std::path::Path::new("unet")).unwrap();
        let x = Tensor::<4>::random([1, 1, 40, 24], Distribution::Uniform(-1.0, 1.0), &device);
        assert_eq!(nhwc(net.forward(x.clone())), nhwc(fresh.forward(x)));
        // One power iteration moves u (unless it has converged) but never weight_orig.
        let Network::UnetResnet(unet) = net else {
            unreachable!()
        };
        if let ConvLayer::Spectral(c) = &unet.decoder[2].conv {
            let orig = c.weight_orig.val();
            let next = unet.power_iteration();
            let ConvLayer::Spectral(d) = &next.decoder[2].conv else {
                unreachable!()
            };
            assert_eq!(nhwc_any(orig), nhwc_any(d.weight_orig.val()));
        }
    }
}

fn nhwc_any<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// A `config.json` written before `self_attention` and `spectral_norm` existed (the bundled
/// model's) loads with both off, and its `decoder.i.conv.weight` keys fill plain convolutions.
#[test]
fn config_without_attention_or_spectral_norm_loads_as_before() {
    use colorize_models::blocks::spectral_norm::ConvLayer;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/stable");
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    assert!(!json.contains("self_attention") && !json.contains("spectral_norm"));
    let (config, net) = colorize_models::load_model_dir(&dir, &Device::flex()).unwrap();
    let NetworkConfig::UnetResnet(c) = &config.network else {
        panic!("the bundled model is a unet_resnet");
    };
    assert!(!c.self_attention && !c.spectral_norm);
    let Network::UnetResnet(unet) = &net else {
        panic!("the bundled model is a unet_resnet");
    };
    assert!(
        unet.decoder
            .iter()
            .all(|d| { matches!(d.conv, ConvLayer::Plain(_)) && d.attention.is_none() })
    );
}
