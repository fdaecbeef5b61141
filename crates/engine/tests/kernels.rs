//! Each micro-kernel family (AVX-512, AVX2+FMA, portable) against the naive f64 convolution on
//! random shapes, strides, dilations, paddings, pixel strides and channel groups (grouped GEMMs
//! and the depthwise loop).

use colorize_engine::reference;
use colorize_engine::{Activation, ConvSpec, EngineError, Isa, PackedConv};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The families this CPU can run (the portable one always).
fn families() -> Vec<Isa> {
    let v: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.is_available()).collect();
    assert!(v.contains(&Isa::Portable));
    v
}

#[derive(Debug, Clone)]
struct Case {
    spec: ConvSpec,
    batch: usize,
    height: usize,
    width: usize,
    in_extra: usize,
    out_extra: usize,
    residual: bool,
    bias: bool,
    activation: Activation,
    seed: u64,
}

/// Runs one case on every available family and compares with the reference; also checks that the
/// channels past `out_channels` of each output pixel (another tensor's slice) are left untouched.
fn check(case: &Case) -> Result<(), TestCaseError> {
    let s = case.spec;
    let Some((oh, ow)) = s.output_size(case.height, case.width) else {
        return Ok(());
    };
    let mut rng = StdRng::seed_from_u64(case.seed);
    let in_pixels = case.batch * case.height * case.width;
    let out_pixels = case.batch * oh * ow;
    let input = random(in_pixels * s.in_channels, &mut rng);
    let weight = random(
        s.out_channels * (s.in_channels / s.groups) * s.taps(),
        &mut rng,
    );
    let bias = case.bias.then(|| random(s.out_channels, &mut rng));
    let residual = case
        .residual
        .then(|| random(out_pixels * s.out_channels, &mut rng));
    let (expected, _, _) = reference::conv2d(
        &s,
        &input,
        case.batch,
        case.height,
        case.width,
        &weight,
        bias.as_deref(),
        residual.as_deref(),
        case.activation,
    )
    .expect("output size checked above");
    // The same data laid out with wider pixel strides.
    let in_stride = s.in_channels + case.in_extra;
    let out_stride = s.out_channels + case.out_extra;
    let widen = |v: &[f32], c: usize, stride: usize| {
        let mut w = vec![9.0f32; v.len() / c * stride];
        for (p, px) in v.chunks_exact(c).enumerate() {
            w[p * stride..p * stride + c].copy_from_slice(px);
        }
        w
    };
    let wide_input = widen(&input, s.in_channels, in_stride);
    let wide_residual = residual
        .as_ref()
        .map(|r| widen(r, s.out_channels, out_stride));
    let scale = 1.0 + expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    for isa in families() {
        let conv = PackedConv::new("case", s, &weight, bias.as_deref(), case.activation, isa)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut out = vec![7.0f32; out_pixels * out_stride];
        conv.run(
            &wide_input,
            in_stride,
            case.batch,
            case.height,
            case.width,
            &mut out,
            out_stride,
            wide_residual.as_deref().map(|r| (r, out_stride)),
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for p in 0..out_pixels {
            for o in 0..s.out_channels {
                let (got, want) = (out[p * out_stride + o], expected[p * s.out_channels + o]);
                prop_assert!(
                    (got - want).abs()
                        <= 2e-6 * scale * ((s.taps() * s.in_channels) as f32).sqrt() + 1e-6,
                    "{isa}: pixel {p} channel {o}: {got} vs reference {want} ({case:?})"
                );
            }
            for extra in s.out_channels..out_stride {
                prop_assert_eq!(
                    out[p * out_stride + extra],
                    7.0,
                    "{}: wrote past the channels",
                    isa
                );
            }
        }
    }
    Ok(())
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Tanh),
        Just(Activation::Sigmoid),
        Just(Activation::Gelu)
    ]
}

prop_compose! {
    fn case()(
        cin in 1usize..20, cout in 1usize..45, kh in 1usize..6, kw in 1usize..6,
        sy in 1usize..4, sx in 1usize..4, dy in 1usize..4, dx in 1usize..4,
        pad in proptest::array::uniform4(0usize..4),
        batch in 1usize..4, height in 1usize..14, width in 1usize..14,
        in_extra in 0usize..3, out_extra in 0usize..3,
        residual in any::<bool>(), bias in any::<bool>(), activation in activation(),
        seed in any::<u64>(), transposed in any::<bool>(),
    ) -> Case {
        Case {
            spec: ConvSpec {
                in_channels: cin, out_channels: cout, kernel: [kh, kw], stride: [sy, sx],
                dilation: [dy, dx], padding: pad, transposed, groups: 1,
            },
            batch, height, width, in_extra, out_extra, residual, bias, activation, seed,
        }
    }
}

prop_compose! {
    /// Grouped convolutions: groups in {1, 2, 4, channels} (depthwise, with and without a
    /// channel multiplier), per-group channel counts around every family's panel width, and
    /// depthwise channel counts around every family's register block (16, 32, 64).
    fn grouped_case()(
        mode in 0usize..5, cin_g in 1usize..7, cout_g in 1usize..40, channels in 1usize..80,
        multiplier in 1usize..3, kh in 1usize..8, kw in 1usize..8,
        sy in 1usize..4, sx in 1usize..4, dy in 1usize..3, dx in 1usize..3,
        pad in proptest::array::uniform4(0usize..4),
        batch in 1usize..3, height in 1usize..12, width in 1usize..12,
        in_extra in 0usize..3, out_extra in 0usize..3,
        residual in any::<bool>(), bias in any::<bool>(), activation in activation(),
        seed in any::<u64>(), transposed in any::<bool>(),
    ) -> Case {
        let (cin, cout, groups) = match mode {
            0 => (cin_g, cout_g, 1),
            1 => (2 * cin_g, 2 * cout_g, 2),
            2 => (4 * cin_g, 4 * cout_g, 4),
            // Depthwise: one input and one output channel per group (the per-channel loop).
            3 => (channels, channels, channels),
            // Depthwise with a channel multiplier (a grouped GEMM of depth `taps`).
            _ => (channels, channels * multiplier, channels),
        };
        Case {
            spec: ConvSpec {
                in_channels: cin, out_channels: cout, kernel: [kh, kw], stride: [sy, sx],
                dilation: [dy, dx], padding: pad, transposed, groups,
            },
            batch, height, width, in_extra, out_extra, residual, bias, activation, seed,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_kernel_family_matches_the_reference(case in case()) {
        check(&case)?;
    }

    #[test]
    fn grouped_and_depthwise_convolutions_match_the_reference(case in grouped_case()) {
        check(&case)?;
    }
}

fn edge(spec: ConvSpec, batch: usize, height: usize, width: usize) -> Case {
    Case {
        spec,
        batch,
        height,
        width,
        in_extra: 1,
        out_extra: 2,
        residual: true,
        bias: true,
        activation: Activation::Relu,
        seed: 7,
    }
}

#[test]
fn padding_and_dilation_edge_cases() {
    let cases = [
        // A 7x7/2 stem on a 1x1 image: every tap but the centre is padding.
        edge(ConvSpec::square(1, 64, 7, 2, 3), 1, 1, 1),
        // Padding as large as the kernel reach: the border outputs see only zeros.
        edge(ConvSpec::square(5, 17, 3, 1, 2), 2, 4, 3),
        // Dilation 2 with padding 2 keeps the size; dilation 3 with no padding shrinks it to 1x1.
        edge(
            ConvSpec {
                dilation: [2, 2],
                ..ConvSpec::square(8, 33, 3, 1, 2)
            },
            1,
            9,
            6,
        ),
        edge(
            ConvSpec {
                dilation: [3, 3],
                ..ConvSpec::square(3, 16, 3, 1, 0)
            },
            3,
            7,
            7,
        ),
        // Asymmetric padding (top, left, bottom, right) and a 1x1 stride-2 projection.
        edge(
            ConvSpec {
                padding: [0, 1, 2, 0],
                ..ConvSpec::square(4, 9, 3, 1, 0)
            },
            1,
            5,
            8,
        ),
        edge(ConvSpec::square(64, 128, 1, 2, 0), 1, 9, 7),
        // Channel counts around every family's panel width (8, 16, 32) and a deep K.
        edge(ConvSpec::square(130, 31, 3, 1, 1), 1, 6, 5),
        edge(ConvSpec::square(2, 32, 3, 1, 1), 1, 13, 13),
        edge(ConvSpec::square(3, 65, 3, 2, 1), 2, 11, 10),
        // Transposed: Zhang et al.'s 4x4/2 pad-1 upsampling (output exactly 2x), a 3x3/2 whose
        // outputs get 1 or 2 taps by parity, and one whose padding crops all but one row.
        edge(ConvSpec::transposed(16, 24, 4, 2, 1), 2, 5, 7),
        edge(ConvSpec::transposed(5, 9, 3, 2, 0), 1, 4, 3),
        edge(ConvSpec::transposed(2, 3, 3, 1, 1), 1, 1, 1),
        // Depthwise: ConvNeXt's 7x7 pad 3 (Liu et al. 2022) at 96 channels (one and a half of
        // the AVX-512 register block), on an image smaller than the kernel; MobileNet's 3x3/2;
        // a dilated 3x3; and one channel.
        edge(ConvSpec::depthwise(96, 7, 1, 3), 2, 9, 6),
        edge(ConvSpec::depthwise(40, 7, 1, 3), 1, 3, 2),
        edge(ConvSpec::depthwise(33, 3, 2, 1), 1, 11, 8),
        edge(
            ConvSpec {
                dilation: [2, 2],
                ..ConvSpec::depthwise(17, 3, 1, 2)
            },
            1,
            7,
            7,
        ),
        edge(ConvSpec::depthwise(1, 3, 1, 1), 1, 4, 4),
        // Grouped: ResNeXt-style 32 groups of 4 channels, 2 groups crossing the AVX-512 panel,
        // and a grouped transposed convolution.
        edge(ConvSpec::square(128, 128, 3, 1, 1).with_groups(32), 1, 5, 6),
        edge(ConvSpec::square(6, 70, 3, 2, 1).with_groups(2), 1, 9, 9),
        edge(ConvSpec::transposed(8, 12, 4, 2, 1).with_groups(4), 2, 3, 5),
    ];
    for case in &cases {
        check(case).unwrap_or_else(|e| panic!("{case:?}: {e}"));
    }
}

#[test]
fn bad_shapes_are_errors() {
    let spec = ConvSpec::square(2, 3, 3, 1, 0);
    let w = vec![0.1; 2 * 3 * 9];
    assert!(matches!(
        PackedConv::new(
            "short",
            spec,
            &w[1..],
            None,
            Activation::None,
            Isa::Portable
        ),
        Err(EngineError::Layer { .. })
    ));
    assert!(matches!(
        PackedConv::new(
            "bias",
            spec,
            &w,
            Some(&[1.0]),
            Activation::None,
            Isa::Portable
        ),
        Err(EngineError::Layer { .. })
    ));
    let conv = PackedConv::new("ok", spec, &w, None, Activation::None, Isa::Portable).unwrap();
    let mut out = vec![0.0; 100];
    // A 2x2 input is smaller than the unpadded 3x3 kernel.
    let e = conv
        .run(&[0.0; 8], 2, 1, 2, 2, &mut out, 3, None)
        .unwrap_err();
    assert!(e.to_string().contains("smaller than the kernel"), "{e}");
    // The input slice is one value short.
    let e = conv
        .run(&[0.0; 4 * 4 * 2 - 1], 2, 1, 4, 4, &mut out, 3, None)
        .unwrap_err();
    assert!(e.to_string().contains("input slice"), "{e}");
    // The output stride is below the channel count.
    let e = conv
        .run(&[0.0; 32], 2, 1, 4, 4, &mut out, 2, None)
        .unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
}

#[test]
fn bad_group_counts_are_errors_naming_the_layer() {
    let bad = |name: &str, spec: ConvSpec, weight_len: usize| {
        for isa in families() {
            let w = vec![0.1; weight_len];
            match PackedConv::new(name, spec, &w, None, Activation::None, isa) {
                Err(EngineError::Layer { layer, message }) => {
                    assert_eq!(layer, name, "{message}")
                }
                other => panic!("{name}: expected a layer error, got {other:?}"),
            }
        }
    };
    // Zero groups; input channels (6) and output channels (10) not divisible by 4.
    bad(
        "zero",
        ConvSpec::square(4, 4, 3, 1, 1).with_groups(0),
        4 * 4 * 9,
    );
    bad("in", ConvSpec::square(6, 8, 3, 1, 1).with_groups(4), 8 * 9);
    bad(
        "out",
        ConvSpec::square(8, 10, 3, 1, 1).with_groups(4),
        10 * 2 * 9,
    );
    bad(
        "tr",
        ConvSpec::transposed(6, 8, 3, 1, 1).with_groups(4),
        6 * 2 * 9,
    );
    // The weight of an ungrouped convolution handed to a depthwise one.
    bad("len", ConvSpec::depthwise(8, 3, 1, 1), 8 * 8 * 9);
    let e = PackedConv::new(
        "convnext.dw",
        ConvSpec::square(6, 6, 7, 1, 3).with_groups(4),
        &[0.0; 6 * 49],
        None,
        Activation::None,
        Isa::Portable,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("convnext.dw") && e.to_string().contains("4 groups"),
        "{e}"
    );
}

#[test]
fn macs_count_one_group_s_input_channels() {
    assert_eq!(ConvSpec::depthwise(64, 7, 1, 3).macs(10), 10 * 64 * 49);
    assert_eq!(
        ConvSpec::square(64, 128, 3, 1, 1).with_groups(4).macs(2),
        2 * 128 * 16 * 9
    );
    assert_eq!(ConvSpec::square(3, 8, 3, 1, 1).macs(1), 8 * 3 * 9);
    assert!(ConvSpec::depthwise(5, 3, 1, 1).is_depthwise());
    assert!(!ConvSpec::square(5, 5, 3, 1, 1).is_depthwise());
    assert!(
        !ConvSpec::square(5, 10, 3, 1, 1)
            .with_groups(5)
            .is_depthwise()
    );
}

#[test]
fn detection_reports_what_runs() {
    // The detected family is available and listed; on x86-64 with AVX2 it is not the portable one.
    let isa = Isa::detect();
    assert!(isa.is_available());
    eprintln!("kernel families on this CPU: {:?}", families());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        assert_ne!(isa, Isa::Portable);
    }
}

#[test]
fn fast_tanh_and_sigmoid_are_within_5e7() {
    use colorize_engine::conv::{sigmoid_fast, tanh_fast};
    let mut x = -20.0f32;
    while x < 20.0 {
        let t = (x as f64).tanh();
        assert!((tanh_fast(x) as f64 - t).abs() < 5e-7, "tanh({x})");
        let s = 1.0 / (1.0 + (-(x as f64)).exp());
        assert!((sigmoid_fast(x) as f64 - s).abs() < 3e-7, "sigmoid({x})");
        x += 1e-3;
    }
    assert_eq!(tanh_fast(0.0), 0.0);
    assert_eq!(tanh_fast(1e30), tanh_fast(8.0));
}

/// The f64 erf of the reference against tabulated values (Abramowitz & Stegun table 7.1), so
/// the GELU test below has a trustworthy ground truth.
#[test]
fn reference_erf_matches_tabulated_values() {
    for (x, want) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (2.9, 0.999_958_902_121_900_9),
        (-1.5, -0.966_105_146_475_310_7),
    ] {
        assert!((reference::erf(x) - want).abs() < 1e-15, "erf({x})");
    }
    // erfc in its tail, where 1 − erf would have no digits left.
    assert!((reference::erfc(3.0) / 2.209_049_699_858_544e-5 - 1.0).abs() < 1e-13);
    assert!((reference::erfc(5.0) / 1.537_459_794_428_035e-12 - 1.0).abs() < 1e-13);
    assert!((reference::erfc(-3.0) - (2.0 - 2.209_049_699_858_544e-5)).abs() < 1e-15);
}

/// `gelu_fast` within `1e-6 · max(1, |x|)` of the exact erf-GELU over −10..10 (step 1e-4,
/// 200 001 points), and at the clamp and far outside it.
#[test]
fn fast_gelu_is_within_1e6_of_the_erf_gelu() {
    use colorize_engine::conv::gelu_fast;
    let mut worst = (0f64, 0f32);
    for i in -100_000..=100_000 {
        let x = i as f32 * 1e-4;
        let err =
            (gelu_fast(x) as f64 - reference::gelu(x as f64)).abs() / (x.abs() as f64).max(1.0);
        if err > worst.0 {
            worst = (err, x);
        }
    }
    assert!(
        worst.0 <= 1e-6,
        "worst scaled error {:e} at x = {}",
        worst.0,
        worst.1
    );
    eprintln!(
        "gelu_fast: worst scaled error {:e} at x = {}",
        worst.0, worst.1
    );
    assert_eq!(gelu_fast(0.0), 0.0);
    assert_eq!(gelu_fast(1e30), 1e30);
    assert_eq!(gelu_fast(-1e30), 0.0);
    assert!(gelu_fast(-1e4).abs() <= 1e-2);
}

/// The attention softmax's `exp_fast` within 2 ulp-ish (2.5e-7 relative) of the f64 `exp` over
/// −87..88, and monotone where a softmax needs it (at and below 0).
#[test]
fn fast_exp_is_within_2_5e7_relative() {
    use colorize_engine::mha::exp_fast;
    let mut worst = (0f64, 0f32);
    let mut x = -87.0f32;
    let mut prev = 0.0f32;
    while x < 88.0 {
        let (got, want) = (exp_fast(x) as f64, (x as f64).exp());
        let err = (got - want).abs() / want;
        if err > worst.0 {
            worst = (err, x);
        }
        if x <= 0.0 {
            assert!(exp_fast(x) >= prev, "not monotone at {x}");
            prev = exp_fast(x);
        }
        x += 1.7e-4;
    }
    assert!(
        worst.0 < 2.5e-7,
        "worst relative error {:e} at {}",
        worst.0,
        worst.1
    );
    assert_eq!(exp_fast(0.0), 1.0);
    assert!(exp_fast(-1e30) > 0.0 && exp_fast(-1e30) < 1e-37);
    assert!(exp_fast(f32::NEG_INFINITY) < 1e-37);
}
