//! The graph executor and memory planner against a chain of reference ops.

use colorize_engine::reference;
use colorize_engine::{Activation, ConvSpec, Graph, Isa, PackedConv, ResizeMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Naive NHWC max-pool (padding = −∞).
#[allow(clippy::too_many_arguments)]
fn max_pool_ref(
    x: &[f32],
    b: usize,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    s: usize,
    p: usize,
) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
    let mut out = vec![f32::NEG_INFINITY; b * oh * ow * c];
    for n in 0..b {
        for oy in 0..oh {
            for ox in 0..ow {
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (
                            (oy * s + ky) as isize - p as isize,
                            (ox * s + kx) as isize - p as isize,
                        );
                        if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= w {
                            continue;
                        }
                        for ch in 0..c {
                            let o = &mut out[((n * oh + oy) * ow + ox) * c + ch];
                            *o = o.max(x[((n * h + iy as usize) * w + ix as usize) * c + ch]);
                        }
                    }
                }
            }
        }
    }
    (out, oh, ow)
}

/// Naive nearest resize (`src = floor(dst · in / out)`).
fn nearest_ref(
    x: &[f32],
    b: usize,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let mut out = vec![0.0; b * oh * ow * c];
    for n in 0..b {
        for oy in 0..oh {
            for ox in 0..ow {
                let (sy, sx) = (oy * h / oh, ox * w / ow);
                for ch in 0..c {
                    out[((n * oh + oy) * ow + ox) * c + ch] = x[((n * h + sy) * w + sx) * c + ch];
                }
            }
        }
    }
    out
}

fn concat_ref(a: &[f32], ca: usize, b: &[f32], cb: usize) -> Vec<f32> {
    a.chunks_exact(ca)
        .zip(b.chunks_exact(cb))
        .flat_map(|(x, y)| x.iter().chain(y).copied())
        .collect()
}

/// A small U-shaped graph: conv → max-pool → conv with residual → nearest resize back →
/// concat with the first conv's output and the input → conv → tanh head.
#[test]
fn small_unet_matches_reference_ops_at_odd_sizes_and_batches() {
    let mut rng = StdRng::seed_from_u64(3);
    let (c0, c1, c2, c3) = (2, 6, 10, 5);
    let s1 = ConvSpec::square(c0, c1, 3, 1, 1);
    let s2 = ConvSpec::square(c1, c1, 3, 1, 1);
    let s3 = ConvSpec::square(c1 + c1 + c0, c3, 3, 1, 1);
    let s4 = ConvSpec::square(c3, c2, 1, 1, 0);
    let (w1, b1) = (random(c1 * c0 * 9, &mut rng), random(c1, &mut rng));
    let w2 = random(c1 * c1 * 9, &mut rng);
    let w3 = random(c3 * (2 * c1 + c0) * 9, &mut rng);
    let (w4, b4) = (random(c2 * c3, &mut rng), random(c2, &mut rng));
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let (mut g, x0) = Graph::new(c0);
        let x1 = g
            .conv(
                x0,
                PackedConv::new("c1", s1, &w1, Some(&b1), Activation::Relu, isa).unwrap(),
                None,
            )
            .unwrap();
        let p = g.max_pool(x1, [3, 3], [2, 2], [1, 1, 1, 1]);
        let x2 = g
            .conv(
                p,
                PackedConv::new("c2", s2, &w2, None, Activation::Relu, isa).unwrap(),
                Some(p),
            )
            .unwrap();
        let up = g.resize_like(x2, x1, ResizeMode::Nearest);
        let cat = g.concat(&[up, x1, x0]).unwrap();
        let x3 = g
            .conv(
                cat,
                PackedConv::new("c3", s3, &w3, None, Activation::Relu, isa).unwrap(),
                None,
            )
            .unwrap();
        let y = g
            .conv(
                x3,
                PackedConv::new("c4", s4, &w4, Some(&b4), Activation::Tanh, isa).unwrap(),
                None,
            )
            .unwrap();
        g.set_output(y);
        for (b, h, w) in [(1, 7, 5), (3, 16, 16), (2, 1, 9), (1, 33, 20)] {
            let input = random(b * h * w * c0, &mut rng);
            let got = g.run(&input, b, h, w).unwrap();
            let (r1, _, _) =
                reference::conv2d(&s1, &input, b, h, w, &w1, Some(&b1), None, Activation::Relu)
                    .unwrap();
            let (rp, ph, pw) = max_pool_ref(&r1, b, h, w, c1, 3, 2, 1);
            let (r2, _, _) =
                reference::conv2d(&s2, &rp, b, ph, pw, &w2, None, Some(&rp), Activation::Relu)
                    .unwrap();
            let rup = nearest_ref(&r2, b, ph, pw, c1, h, w);
            let rcat = concat_ref(&concat_ref(&rup, c1, &r1, c1), 2 * c1, &input, c0);
            let (r3, _, _) =
                reference::conv2d(&s3, &rcat, b, h, w, &w3, None, None, Activation::Relu).unwrap();
            let (want, _, _) =
                reference::conv2d(&s4, &r3, b, h, w, &w4, Some(&b4), None, Activation::Tanh)
                    .unwrap();
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{isa} {b}x{h}x{w}: max difference {worst}");
        }
    }
}

#[test]
fn planner_reuses_memory_of_dead_values() {
    // A chain of five same-size convolutions needs two live buffers at any time, not six.
    let isa = Isa::detect();
    let (mut g, mut x) = Graph::new(8);
    let w = vec![0.01f32; 8 * 8 * 9];
    for i in 0..5 {
        let conv = PackedConv::new(
            &format!("c{i}"),
            ConvSpec::square(8, 8, 3, 1, 1),
            &w,
            None,
            Activation::Relu,
            isa,
        )
        .unwrap();
        x = g.conv(x, conv, None).unwrap();
    }
    g.set_output(x);
    let plan = g.plan(1, 32, 32).unwrap();
    assert_eq!(plan.arena_bytes(), 2 * 32 * 32 * 8 * 4);
    // Running twice with the same shape gives the same answer (the arena is reused, not re-zeroed).
    let input: Vec<f32> = (0..32 * 32 * 8).map(|i| (i % 7) as f32 * 0.1).collect();
    assert_eq!(
        g.run(&input, 1, 32, 32).unwrap(),
        g.run(&input, 1, 32, 32).unwrap()
    );
}

#[test]
fn bad_graph_inputs_are_errors() {
    let isa = Isa::Portable;
    let (mut g, x) = Graph::new(3);
    let conv = PackedConv::new(
        "wrong",
        ConvSpec::square(4, 2, 1, 1, 0),
        &[0.0; 8],
        None,
        Activation::None,
        isa,
    )
    .unwrap();
    let e = g.conv(x, conv, None).unwrap_err();
    assert!(
        e.to_string().contains("wrong") && e.to_string().contains("3 channels"),
        "{e}"
    );
    let conv = PackedConv::new(
        "stem",
        ConvSpec::square(3, 2, 7, 1, 0),
        &[0.0; 2 * 3 * 49],
        None,
        Activation::None,
        isa,
    )
    .unwrap();
    let y = g.conv(x, conv, None).unwrap();
    // No output set yet.
    assert!(g.run(&[0.0; 3 * 64], 1, 8, 8).is_err());
    g.set_output(y);
    // Wrong input length, and an input smaller than the 7x7 kernel.
    assert!(
        g.run(&[0.0; 5], 1, 8, 8)
            .unwrap_err()
            .to_string()
            .contains("input has 5 values")
    );
    assert!(
        g.run(&[0.0; 3 * 16], 1, 4, 4)
            .unwrap_err()
            .to_string()
            .contains("too small")
    );
    assert_eq!(g.run(&[0.0; 3 * 64], 1, 8, 8).unwrap().len(), 2 * 2 * 2);
    // A value cannot be in two concatenations (the input can: it is copied in, not aliased).
    let _ = g.concat(&[x, y]).unwrap();
    assert!(g.concat(&[y]).is_err());
    assert!(g.concat(&[x]).is_ok());
}

/// A concatenation of nothing is refused when it is built (it used to index an empty list when
/// the graph was planned).
#[test]
fn empty_concat_is_an_error() {
    let (mut g, _) = Graph::new(3);
    assert!(
        g.concat(&[])
            .unwrap_err()
            .to_string()
            .contains("needs a part")
    );
}

/// SAGAN self-attention against the formula of `../shared/reference/deoldify.md` §3.5, computed
/// naively in f64: `out_j = x_j + γ Σ_i softmax_i(f_i · g_j) h_i`, softmax over i (fastai's dim=1).
#[test]
fn self_attention_matches_the_formula() {
    let mut rng = StdRng::seed_from_u64(11);
    // 13x11 = 143 positions: two chunks of h (128 + 15) and two groups of tiles.
    for (b, h, w, c, ck) in [
        (2, 5, 7, 16, 2),
        (1, 9, 4, 40, 5),
        (1, 1, 1, 8, 1),
        (2, 13, 11, 24, 3),
    ] {
        let n = h * w;
        let x = random(b * n * c, &mut rng);
        let (wq, wk, wv) = (
            random(ck * c, &mut rng),
            random(ck * c, &mut rng),
            random(c * c, &mut rng),
        );
        let gamma = 0.7f32;
        // Naive: projections, scores, softmax over i, weighted sum.
        let proj = |wt: &[f32], out: usize, px: &[f32]| -> Vec<f64> {
            (0..out)
                .map(|o| (0..c).map(|k| wt[o * c + k] as f64 * px[k] as f64).sum())
                .collect()
        };
        let mut want = vec![0f32; b * n * c];
        for bi in 0..b {
            let px = |i: usize| &x[(bi * n + i) * c..(bi * n + i + 1) * c];
            let f: Vec<Vec<f64>> = (0..n).map(|i| proj(&wq, ck, px(i))).collect();
            let g: Vec<Vec<f64>> = (0..n).map(|i| proj(&wk, ck, px(i))).collect();
            let hv: Vec<Vec<f64>> = (0..n).map(|i| proj(&wv, c, px(i))).collect();
            for j in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|i| (0..ck).map(|k| f[i][k] * g[j][k]).sum())
                    .collect();
                let max = s.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for ch in 0..c {
                    let o: f64 = (0..n).map(|i| e[i] / sum * hv[i][ch]).sum();
                    want[(bi * n + j) * c + ch] = (px(j)[ch] as f64 + gamma as f64 * o) as f32;
                }
            }
        }
        for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
            let conv = |name: &str, out: usize, wt: &[f32]| {
                PackedConv::new(
                    name,
                    ConvSpec::square(c, out, 1, 1, 0),
                    wt,
                    None,
                    Activation::None,
                    isa,
                )
                .unwrap()
            };
            let (mut g, x0) = Graph::new(c);
            let y = g
                .self_attention(
                    x0,
                    conv("query", ck, &wq),
                    conv("key", ck, &wk),
                    conv("value", c, &wv),
                    gamma,
                )
                .unwrap();
            g.set_output(y);
            let got = g.run(&x, b, h, w).unwrap();
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-4,
                "{isa} {b}x{h}x{w}x{c}: max difference {worst}"
            );
        }
    }
    // Projections that are not 1x1 are refused.
    let (mut g, x0) = Graph::new(8);
    let bad = PackedConv::new(
        "query",
        ConvSpec::square(8, 1, 3, 1, 1),
        &[0.0; 72],
        None,
        Activation::None,
        Isa::Portable,
    )
    .unwrap();
    let ok = |o: usize| {
        PackedConv::new(
            "k",
            ConvSpec::square(8, o, 1, 1, 0),
            &vec![0.0; 8 * o],
            None,
            Activation::None,
            Isa::Portable,
        )
        .unwrap()
    };
    assert!(g.self_attention(x0, bad, ok(1), ok(8), 1.0).is_err());
}

/// The server runs one graph from several worker threads at once: each run takes its own arena
/// from the pool, so concurrent results equal sequential ones.
#[test]
fn concurrent_runs_match_sequential_runs() {
    let mut rng = StdRng::seed_from_u64(5);
    let isa = Isa::detect();
    let (w1, w2) = (random(16 * 9, &mut rng), random(8 * 16 * 9, &mut rng));
    let (mut g, x0) = Graph::new(1);
    let x1 = g
        .conv(
            x0,
            PackedConv::new(
                "a",
                ConvSpec::square(1, 16, 3, 2, 1),
                &w1,
                None,
                Activation::Relu,
                isa,
            )
            .unwrap(),
            None,
        )
        .unwrap();
    let x2 = g
        .conv(
            x1,
            PackedConv::new(
                "b",
                ConvSpec::square(16, 8, 3, 1, 1),
                &w2,
                None,
                Activation::Tanh,
                isa,
            )
            .unwrap(),
            None,
        )
        .unwrap();
    g.set_output(x2);
    let inputs: Vec<Vec<f32>> = (0..6).map(|_| random(40 * 56, &mut rng)).collect();
    let sequential: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| g.run(x, 1, 40, 56).unwrap())
        .collect();
    let concurrent: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .iter()
            .map(|x| s.spawn(|| g.run(x, 1, 40, 56).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sequential, concurrent);
}

/// A ConvNeXt-style block (Liu et al. 2022, arXiv:2201.03545) on the graph: a 7x7 depthwise
/// convolution, a 1x1 expansion with ReLU, a 1x1 projection with the block input as residual,
/// then a grouped 3x3/2 convolution (4 groups) with tanh, against the reference convolution
/// chained by hand, on every kernel family, at odd sizes and batches. The profile counts the
/// depthwise layer's multiply-adds per group.
#[test]
fn depthwise_and_grouped_convolutions_in_a_graph_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(17);
    let c = 36;
    let dw = ConvSpec::depthwise(c, 7, 1, 3);
    let up = ConvSpec::square(c, 2 * c, 1, 1, 0);
    let down = ConvSpec::square(2 * c, c, 1, 1, 0);
    let grouped = ConvSpec::square(c, 8, 3, 2, 1).with_groups(4);
    let (w_dw, b_dw) = (random(c * 49, &mut rng), random(c, &mut rng));
    let w_up = random(2 * c * c, &mut rng);
    let (w_down, b_down) = (random(c * 2 * c, &mut rng), random(c, &mut rng));
    let w_g = random(8 * (c / 4) * 9, &mut rng);
    for isa in Isa::ALL.into_iter().filter(|i| i.is_available()) {
        let pack = |name: &str, s: ConvSpec, w: &[f32], b: Option<&[f32]>, a: Activation| {
            PackedConv::new(name, s, w, b, a, isa).unwrap()
        };
        let (mut g, x0) = Graph::new(c);
        let x1 = g
            .conv(
                x0,
                pack("dwconv", dw, &w_dw, Some(&b_dw), Activation::None),
                None,
            )
            .unwrap();
        let x2 = g
            .conv(x1, pack("pwconv1", up, &w_up, None, Activation::Relu), None)
            .unwrap();
        let x3 = g
            .conv(
                x2,
                pack("pwconv2", down, &w_down, Some(&b_down), Activation::None),
                Some(x0),
            )
            .unwrap();
        let y = g
            .conv(
                x3,
                pack("grouped", grouped, &w_g, None, Activation::Tanh),
                None,
            )
            .unwrap();
        g.set_output(y);
        for (b, h, w) in [(1, 9, 7), (2, 16, 11), (1, 3, 2)] {
            let input = random(b * h * w * c, &mut rng);
            let (got, profile) = g.run_profiled(&input, b, h, w).unwrap();
            let reference = |s: &ConvSpec, x: &[f32], hw: (usize, usize), wt, bias, res, act| {
                reference::conv2d(s, x, b, hw.0, hw.1, wt, bias, res, act).unwrap()
            };
            let (r1, _, _) = reference(
                &dw,
                &input,
                (h, w),
                &w_dw,
                Some(&b_dw),
                None,
                Activation::None,
            );
            let (r2, _, _) = reference(&up, &r1, (h, w), &w_up, None, None, Activation::Relu);
            let (r3, _, _) = reference(
                &down,
                &r2,
                (h, w),
                &w_down,
                Some(&b_down),
                Some(&input),
                Activation::None,
            );
            let (want, oh, ow) =
                reference(&grouped, &r3, (h, w), &w_g, None, None, Activation::Tanh);
            assert_eq!(g.output_size(h, w).unwrap(), (oh, ow));
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{isa} {b}x{h}x{w}: max difference {worst}");
            let dw_flop = profile.iter().find(|t| t.name == "dwconv").unwrap().flop;
            assert_eq!(dw_flop, 2.0 * (b * h * w * c * 49) as f64);
        }
        assert_eq!(
            g.macs(1, 10, 10).unwrap(),
            100 * c * 49 + 2 * (100 * 2 * c * c) + 25 * 8 * (c / 4) * 9
        );
    }
}

/// Naive bilinear resize by an integer factor with half-pixel centres (PyTorch
/// `Upsample(scale_factor=f, mode='bilinear')`, `align_corners=False`), NHWC.
fn upsample_bilinear_ref(x: &[f32], b: usize, h: usize, w: usize, c: usize, f: usize) -> Vec<f32> {
    let (oh, ow) = (h * f, w * f);
    let coord = |o: usize, n: usize| {
        let s = ((o as f64 + 0.5) / f as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, s - i0 as f64)
    };
    let mut out = Vec::with_capacity(b * oh * ow * c);
    for n in 0..b {
        for oy in 0..oh {
            let (y0, y1, ty) = coord(oy, h);
            for ox in 0..ow {
                let (x0, x1, tx) = coord(ox, w);
                for ch in 0..c {
                    let v = |y: usize, xx: usize| x[((n * h + y) * w + xx) * c + ch] as f64;
                    let top = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
                    let bottom = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
                    out.push((top * (1.0 - ty) + bottom * ty) as f32);
                }
            }
        }
    }
    out
}

/// The ops of Zhang et al.'s eccv16 head — batch norm after ReLU as a per-channel affine map,
/// softmax over channels, ×4 bilinear upsampling — against naive versions.
#[test]
fn affine_softmax_and_upsample_by_a_factor_match_naive_versions() {
    let mut rng = StdRng::seed_from_u64(11);
    let (b, h, w, c) = (2, 5, 7, 13);
    let x: Vec<f32> = random(b * h * w * c, &mut rng)
        .into_iter()
        .map(|v| v * 8.0)
        .collect();
    let scale = random(c, &mut rng);
    let shift = random(c, &mut rng);
    let (mut g, x0) = Graph::new(c);
    let a = g
        .affine(x0, scale.clone(), shift.clone(), Activation::None)
        .unwrap();
    let s = g.softmax(a);
    let u = g.resize_by(s, 4, ResizeMode::Bilinear).unwrap();
    g.set_output(u);
    assert_eq!(g.output_size(h, w).unwrap(), (4 * h, 4 * w));
    let got = g.run(&x, b, h, w).unwrap();
    let mut want = Vec::with_capacity(x.len());
    for px in x.chunks_exact(c) {
        let y: Vec<f64> = px
            .iter()
            .enumerate()
            .map(|(k, v)| (*v as f64) * scale[k] as f64 + shift[k] as f64)
            .collect();
        let m = y.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = y.iter().map(|v| (v - m).exp()).collect();
        let sum: f64 = e.iter().sum();
        want.extend(e.iter().map(|v| (v / sum) as f32));
    }
    let want = upsample_bilinear_ref(&want, b, h, w, c, 4);
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "worst difference {worst}");
    // Each pixel of the softmax sums to 1, and bilinear weights keep that.
    for px in got.chunks_exact(c) {
        assert!((px.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let (mut g, x0) = Graph::new(c);
    assert!(
        g.affine(x0, vec![1.0; c - 1], vec![0.0; c], Activation::None)
            .is_err()
    );
    assert!(g.resize_by(x0, 0, ResizeMode::Nearest).is_err());
}

/// DeOldify's decoder ops — blur after a pixel shuffle, batch norm + ReLU as an affine op, and a
/// residual add after the activation — against naive versions.
#[test]
fn blur_affine_relu_and_add_match_naive_versions() {
    let mut rng = StdRng::seed_from_u64(12);
    let (b, h, w, c) = (2, 6, 5, 3);
    let x = random(b * h * w * c, &mut rng);
    let scale = random(c, &mut rng);
    let shift = random(c, &mut rng);
    let (mut g, x0) = Graph::new(c);
    let blurred = g.blur(x0);
    let a = g
        .affine(blurred, scale.clone(), shift.clone(), Activation::Relu)
        .unwrap();
    let sum = g.add(a, blurred).unwrap();
    g.set_output(sum);
    let got = g.run(&x, b, h, w).unwrap();
    let at = |n: usize, y: usize, xx: usize, k: usize| x[((n * h + y) * w + xx) * c + k];
    let mut want = Vec::with_capacity(x.len());
    for n in 0..b {
        for y in 0..h {
            for xx in 0..w {
                for k in 0..c {
                    // ReplicationPad2d((1, 0, 1, 0)) then AvgPool2d(2, stride 1).
                    let (ym, xm) = (y.max(1) - 1, xx.max(1) - 1);
                    let blur =
                        (at(n, ym, xm, k) + at(n, ym, xx, k) + at(n, y, xm, k) + at(n, y, xx, k))
                            / 4.0;
                    want.push((blur * scale[k] + shift[k]).max(0.0) + blur);
                }
            }
        }
    }
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "worst difference {worst}");
    // Channel counts must agree.
    let (mut g, x0) = Graph::new(c);
    let wide = g.pixel_shuffle(x0, 1).unwrap();
    let (mut g2, y0) = Graph::new(2 * c);
    let y1 = g2.blur(y0);
    assert!(g2.add(y1, y0).is_ok());
    let narrow = g
        .affine(wide, vec![1.0; c], vec![0.0; c], Activation::None)
        .unwrap();
    assert!(g.add(narrow, wide).is_ok());
    let (mut g3, z0) = Graph::new(c);
    let z1 = g3.pixel_shuffle(z0, 1).unwrap();
    let (mut g4, w0) = Graph::new(2 * c);
    let w1 = g4.blur(w0);
    let _ = (z1, w1);
    let (mut g5, v0) = Graph::new(4 * c);
    let v1 = g5.pixel_shuffle(v0, 2).unwrap();
    let v2 = g5.blur(v0);
    assert!(g5.add(v1, v2).is_err(), "{c} and {} channels", 4 * c);
}

#[test]
fn an_outsized_run_gives_its_arena_back() {
    // Two same-size convolutions: the arena is 2 · pixels · 8 channels · 4 bytes.
    let isa = Isa::detect();
    let (mut g, mut x) = Graph::new(8);
    let w = vec![0.01f32; 8 * 8 * 9];
    for i in 0..2 {
        let conv = PackedConv::new(
            &format!("c{i}"),
            ConvSpec::square(8, 8, 3, 1, 1),
            &w,
            None,
            Activation::Relu,
            isa,
        )
        .unwrap();
        x = g.conv(x, conv, None).unwrap();
    }
    g.set_output(x);
    assert_eq!(g.pooled_arena_bytes(), 0);
    let small = 2 * 32 * 32 * 8 * 4; // 64 KiB
    g.set_arena_retain_bytes(1 << 20); // keep arenas up to 1 MiB
    g.run(&vec![0.5; 32 * 32 * 8], 1, 32, 32).unwrap();
    assert_eq!(
        g.pooled_arena_bytes(),
        small,
        "a usual run's arena is pooled"
    );
    // A 256x256 run needs a 4 MiB arena: used, then freed, not pooled.
    let out = g.run(&vec![0.5; 256 * 256 * 8], 1, 256, 256).unwrap();
    assert_eq!(out.len(), 256 * 256 * 8);
    assert!(
        g.pooled_arena_bytes() <= 1 << 20,
        "{} bytes pooled after an outsized run",
        g.pooled_arena_bytes()
    );
    // Lowering the limit frees what is pooled above it.
    g.set_arena_retain_bytes(0);
    assert_eq!(g.pooled_arena_bytes(), 0);
    assert_eq!(Graph::DEFAULT_ARENA_RETAIN_BYTES, 256 << 20);
}
