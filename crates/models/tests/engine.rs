//! The inference engine against burn's forward pass: every preset, random weights with random
//! batch-norm statistics (so folding is exercised), odd sizes, batch 1 and 3, every kernel family
//! this CPU runs; and the bundled (trained) model end to end.

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::Distribution;
use colorize_engine::Graph;
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

/// Replaces fresh batch-norm parameters (γ=1, β=0, μ=0, σ²=1, which fold to nothing) with random
/// ones in the ranges trained networks show.
fn randomize(bn: &mut BatchNorm, device: &Device) {
    let n = bn.gamma.val().dims()[0];
    let u = |lo: f64, hi: f64| Tensor::<1>::random([n], Distribution::Uniform(lo, hi), device);
    bn.gamma = Param::from_tensor(u(0.5, 1.5));
    bn.beta = Param::from_tensor(u(-0.2, 0.2));
    bn.running_mean = RunningState::new(u(-0.3, 0.3));
    bn.running_var = RunningState::new(u(0.5, 2.0));
}

fn random_unet(config: &UnetResnetConfig, device: &Device) -> UnetResnet {
    let mut n = config.init(device);
    randomize(&mut n.bn1, device);
    for stage in [&mut n.layer1, &mut n.layer2, &mut n.layer3, &mut n.layer4] {
        for b in stage.iter_mut() {
            randomize(&mut b.bn1, device);
            randomize(&mut b.bn2, device);
            if let Some(d) = &mut b.downsample {
                randomize(&mut d.bn, device);
            }
        }
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
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let live = want.iter().filter(|v| v.abs() < 0.99).count() as f32 / want.len() as f32;
    (diff / scale, live)
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
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/default");
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
