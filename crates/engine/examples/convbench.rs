//! Times single convolutions of the shapes the U-Net uses, and DeOldify's self-attention at
//! 70x70x768 (560x560 input), and ConvNeXt's 7x7 depthwise convolutions (DDColor's encoder), per
//! kernel family, in GFLOP/s:
//! `cargo run -p colorize-engine --example convbench [--release]`.

use std::time::Instant;

use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv};

fn main() {
    // (name, in, out, k, stride, height, width, groups)
    let layers = [
        ("stem 7x7/2 1->64 @512x384", 1, 64, 7, 2, 768, 1024, 1),
        ("3x3 64->64 @256x192", 64, 64, 3, 1, 192, 256, 1),
        ("3x3 128->128 @128x96", 128, 128, 3, 1, 96, 128, 1),
        ("3x3 256->256 @64x48", 256, 256, 3, 1, 48, 64, 1),
        ("3x3 512->512 @32x24", 512, 512, 3, 1, 24, 32, 1),
        ("3x3 768->256 @64x48", 768, 256, 3, 1, 48, 64, 1),
        ("3x3 65->32 @1024x768", 65, 32, 3, 1, 768, 1024, 1),
        ("1x1/2 64->128 @256x192", 64, 128, 1, 2, 192, 256, 1),
        ("3x3 512->512 @8x8", 512, 512, 3, 1, 8, 8, 1),
        ("head 1x1 16->2 @1024x768", 16, 2, 1, 1, 768, 1024, 1),
        ("dw 7x7 96 @128x128", 96, 96, 7, 1, 128, 128, 96),
        ("dw 7x7 384 @32x32", 384, 384, 7, 1, 32, 32, 384),
        ("dw 7x7 768 @16x16", 768, 768, 7, 1, 16, 16, 768),
        ("3x3 g32 256->256 @64x48", 256, 256, 3, 1, 48, 64, 32),
    ];
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        for &(name, cin, cout, k, s, h, w, groups) in &layers {
            let spec = ConvSpec::square(cin, cout, k, s, k / 2).with_groups(groups);
            let weight: Vec<f32> = (0..cin / groups * cout * k * k)
                .map(|i| ((i % 13) as f32 - 6.0) * 0.01)
                .collect();
            let act = if name.starts_with("head") {
                Activation::Tanh
            } else {
                Activation::Relu
            };
            let conv = PackedConv::new(name, spec, &weight, None, act, isa).unwrap();
            let input: Vec<f32> = (0..h * w * cin).map(|i| ((i % 7) as f32) * 0.1).collect();
            let (oh, ow) = spec.output_size(h, w).unwrap();
            let mut out = vec![0f32; oh * ow * cout];
            let flop = 2.0 * spec.macs(oh * ow) as f64;
            let reps = ((2e10 / flop) as usize).clamp(3, 200);
            conv.run(&input, cin, 1, h, w, &mut out, cout, None)
                .unwrap();
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = Instant::now();
                conv.run(&input, cin, 1, h, w, &mut out, cout, None)
                    .unwrap();
                best = best.min(t.elapsed().as_secs_f64());
            }
            println!(
                "{isa:<9} {name:<28} {:8.2} ms {:7.1} GFLOP/s",
                best * 1e3,
                flop / best / 1e9
            );
        }
    }
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let (h, w, c) = (70, 70, 768);
        let wt =
            |o: usize| -> Vec<f32> { (0..o * c).map(|i| ((i % 11) as f32 - 5.0) * 1e-3).collect() };
        let conv = |name: &str, o: usize| {
            PackedConv::new(
                name,
                ConvSpec::square(c, o, 1, 1, 0),
                &wt(o),
                None,
                Activation::None,
                isa,
            )
            .unwrap()
        };
        let (mut g, x) = Graph::new(c);
        let y = g
            .self_attention(
                x,
                conv("query", c / 8),
                conv("key", c / 8),
                conv("value", c),
                0.5,
            )
            .unwrap();
        g.set_output(y);
        let input: Vec<f32> = (0..h * w * c).map(|i| ((i % 7) as f32) * 0.1).collect();
        g.run(&input, 1, h, w).unwrap();
        let (_, ops) = g.run_profiled(&input, 1, h, w).unwrap();
        for op in ops.iter().filter(|o| o.flop > 0.0) {
            println!(
                "{isa:<9} {:<28} {:8.2} ms {:7.1} GFLOP/s",
                format!("attention {} 70x70x768", op.name),
                op.ms,
                op.flop / op.ms / 1e6
            );
        }
    }
}
