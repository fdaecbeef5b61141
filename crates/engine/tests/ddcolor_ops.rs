//! The ops DDColor needs (Kang et al., ICCV 2023; `../shared/reference/ddcolor.md` §3.1, §3.3)
//! against naive f64 versions: layer norm, constants, the sine position encoding, multi-head
//! attention and the token projection, on every kernel family this CPU runs; the existing
//! convolutions in ConvNeXt's shapes; and a ConvNeXt block and a transformer decoder layer
//! built as graphs.

use colorize_engine::reference;
use colorize_engine::{Activation, ConvSpec, EngineError, Graph, Isa, PackedConv, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(len: usize, rng: &mut StdRng) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn families() -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
}

/// `max |got − want| / max(1e-3, max |want|)`: the error relative to the output's scale.
fn rel_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-3f64, |m, &v| m.max(v.abs() as f64));
    got.iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

fn identity(c: usize) -> Vec<f32> {
    (0..c * c)
        .map(|i| if i / c == i % c { 1.0 } else { 0.0 })
        .collect()
}

/// A 1x1 convolution `c → out` packed for `isa`.
fn linear(
    name: &str,
    c: usize,
    out: usize,
    w: &[f32],
    b: Option<&[f32]>,
    act: Activation,
    isa: Isa,
) -> PackedConv {
    PackedConv::new(name, ConvSpec::square(c, out, 1, 1, 0), w, b, act, isa).unwrap()
}

/// A graph over `c` channels whose first op is an identity 1x1 convolution packed for `isa`
/// (so the ops added after it run on that family), and that convolution's output.
fn graph_on(isa: Isa, c: usize) -> (Graph, Value) {
    let (mut g, x0) = Graph::new(c);
    let x = g
        .conv(
            x0,
            linear("id", c, c, &identity(c), None, Activation::None, isa),
            None,
        )
        .unwrap();
    (g, x)
}

#[test]
fn layer_norm_matches_the_f64_reference() {
    let mut rng = StdRng::seed_from_u64(21);
    for isa in families() {
        for (b, h, w, c, eps) in [
            (2, 3, 5, 96, 1e-6f32),
            (1, 4, 4, 1536, 1e-6),
            (3, 1, 7, 256, 1e-5),
            (1, 2, 3, 5, 1e-5),
            (1, 1, 1, 1, 1e-5),
        ] {
            // An offset mean and a spread, as activations have.
            let x: Vec<f32> = random(b * h * w * c, &mut rng)
                .into_iter()
                .map(|v| 3.0 + 4.0 * v)
                .collect();
            let (wt, bs) = (random(c, &mut rng), random(c, &mut rng));
            let (mut g, x1) = graph_on(isa, c);
            let y = g.layer_norm(x1, wt.clone(), bs.clone(), eps).unwrap();
            g.set_output(y);
            let got = g.run(&x, b, h, w).unwrap();
            let want = reference::layer_norm(&x, &wt, &bs, eps as f64);
            let e = rel_error(&got, &want);
            assert!(e < 1e-5, "{isa} {b}x{h}x{w}x{c}: relative error {e:e}");
        }
    }
    let (mut g, x) = Graph::new(4);
    assert!(matches!(
        g.layer_norm(x, vec![1.0; 3], vec![0.0; 4], 1e-5),
        Err(EngineError::Shape(_))
    ));
    assert!(g.layer_norm(x, vec![1.0; 4], vec![0.0; 5], 1e-5).is_err());
}

/// A constant has its own size whatever the input size, and the same values in every item.
#[test]
fn constants_keep_their_size_and_repeat_per_batch_item() {
    let values: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.5).collect();
    let (mut g, x0) = Graph::new(1);
    let k = g.constant(values.clone(), 2, 3, 4).unwrap();
    let pos = g.add_sine_position(k).unwrap();
    let sum = g.add(k, pos).unwrap();
    g.set_output(sum);
    let _ = x0;
    for (b, h, w) in [(1, 5, 5), (3, 17, 2)] {
        assert_eq!(g.output_size(h, w).unwrap(), (2, 3));
        let got = g.run(&vec![0.0; b * h * w], b, h, w).unwrap();
        let p = reference::sine_position(2, 3, 4);
        let want: Vec<f32> = (0..b * 24)
            .map(|i| (2.0 * values[i % 24] as f64 + p[i % 24]) as f32)
            .collect();
        assert!(rel_error(&got, &want) < 1e-6);
    }
    let (mut g, _) = Graph::new(1);
    assert!(g.constant(vec![0.0; 5], 1, 2, 3).is_err());
    assert!(g.constant(vec![], 0, 2, 3).is_err());
    assert!(g.constant(vec![0.0; 6], 1, 2, 3).is_ok());
    assert!(g.constant(vec![0.0; 4], usize::MAX, 2, 2).is_err());
}

#[test]
fn sine_position_matches_detr_in_f64() {
    let mut rng = StdRng::seed_from_u64(22);
    for (b, h, w, c) in [
        (2, 3, 5, 4),
        (1, 1, 1, 8),
        (1, 16, 16, 256),
        (2, 7, 32, 256),
        (1, 128, 128, 256),
    ] {
        let x = random(b * h * w * c, &mut rng);
        let (mut g, x0) = Graph::new(c);
        let y = g.add_sine_position(x0).unwrap();
        g.set_output(y);
        let got = g.run(&x, b, h, w).unwrap();
        let p = reference::sine_position(h, w, c);
        let worst = got
            .iter()
            .zip(&x)
            .enumerate()
            .map(|(i, (&y, &x))| (y as f64 - (x as f64 + p[i % (h * w * c)])).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "{b}x{h}x{w}x{c}: worst {worst:e}");
    }
    // Spot values of the definition: pixel (0, 0) of a 2x2 map, 4 channels (npf = 2):
    // ye = xe = 1/(2+1e-6)·2π, dim_t = [1, 1]: [sin ye, cos ye, sin xe, cos xe].
    let p = reference::sine_position(2, 2, 4);
    let e = 1.0 / (2.0 + 1e-6) * 2.0 * std::f64::consts::PI;
    assert_eq!(&p[..4], &[e.sin(), e.cos(), e.sin(), e.cos()]);
    // Pixel (1, 0), 8 channels (npf = 4, dim_t = [1, 1, 100, 100]): the y half uses y = 1.
    let p = reference::sine_position(2, 2, 8);
    let (ye, xe) = (2.0 / (2.0 + 1e-6) * 2.0 * std::f64::consts::PI, e);
    let want = [
        ye.sin(),
        ye.cos(),
        (ye / 100.0).sin(),
        (ye / 100.0).cos(),
        xe.sin(),
        xe.cos(),
        (xe / 100.0).sin(),
        (xe / 100.0).cos(),
    ];
    assert_eq!(&p[16..24], &want);
    // C must be a multiple of 4 (C = 2·npf, npf even).
    for c in [2, 6, 9] {
        let (mut g, x0) = Graph::new(c);
        assert!(g.add_sine_position(x0).is_err(), "{c} channels");
    }
}

/// Multi-head attention on (possibly strided) views against the f64 formula.
#[test]
fn multi_head_attention_matches_the_f64_reference() {
    let mut rng = StdRng::seed_from_u64(23);
    // (batch, query map, key map, channels, heads)
    let cases = [
        (2, (1, 10), (3, 5), 32, 8),
        (1, (1, 100), (1, 100), 256, 8),
        (2, (1, 100), (7, 9), 256, 8),
        (1, (3, 4), (13, 11), 64, 4),
        (1, (1, 1), (1, 1), 64, 1),
        (2, (5, 3), (1, 1), 32, 2),
        (1, (2, 7), (17, 16), 128, 2),
        // Several key chunks (256 keys each, the last partial): the online softmax's rescaling.
        (1, (1, 100), (23, 29), 256, 8),
        (2, (5, 9), (16, 40), 64, 1),
    ];
    for isa in families() {
        for &(b, (hq, wq), (hk, wk), c, heads) in &cases {
            let nq = hq * wq;
            let nk = hk * wk;
            // Scores of a few units, as after trained projections.
            let scaled = |v: Vec<f32>| v.into_iter().map(|x| 3.0 * x).collect::<Vec<_>>();
            let q = scaled(random(b * nq * c, &mut rng));
            let k = scaled(random(b * nk * c, &mut rng));
            let v = random(b * nk * c, &mut rng);
            let want = reference::multi_head_attention(&q, &k, &v, b, c, heads);
            // The graph: input = keys|values (2C channels on the key map); queries are a
            // constant per batch item, so batch items share them: use batch-independent q.
            let q1: Vec<f32> = q[..nq * c].to_vec();
            let q_all: Vec<f32> = (0..b).flat_map(|_| q1.iter().copied()).collect();
            let want = if b > 1 {
                reference::multi_head_attention(&q_all, &k, &v, b, c, heads)
            } else {
                want
            };
            let mut kv = Vec::with_capacity(b * nk * 2 * c);
            for p in 0..b * nk {
                kv.extend_from_slice(&k[p * c..(p + 1) * c]);
                kv.extend_from_slice(&v[p * c..(p + 1) * c]);
            }
            let (mut g, x0) = Graph::new(2 * c);
            let take = |from: usize| -> Vec<f32> {
                (0..c * 2 * c)
                    .map(|i| {
                        let (o, ch) = (i / (2 * c), i % (2 * c));
                        if ch == from + o { 1.0 } else { 0.0 }
                    })
                    .collect()
            };
            let pk = PackedConv::new(
                "k",
                ConvSpec::square(2 * c, c, 1, 1, 0),
                &take(0),
                None,
                Activation::None,
                isa,
            )
            .unwrap();
            let pv = PackedConv::new(
                "v",
                ConvSpec::square(2 * c, c, 1, 1, 0),
                &take(c),
                None,
                Activation::None,
                isa,
            )
            .unwrap();
            let kk = g.conv(x0, pk, None).unwrap();
            let vv = g.conv(x0, pv, None).unwrap();
            // Keys and values as slices of one concatenation (pixel stride 2C).
            let _kv = g.concat(&[kk, vv]).unwrap();
            let qq = g.constant(q1.clone(), hq, wq, c).unwrap();
            let y = g.multi_head_attention(qq, kk, vv, heads).unwrap();
            g.set_output(y);
            let got = g.run(&kv, b, hk, wk).unwrap();
            let e = rel_error(&got, &want);
            assert!(
                e < 1e-5,
                "{isa} b{b} q{hq}x{wq} k{hk}x{wk} c{c} h{heads}: relative error {e:e}"
            );
        }
    }
}

#[test]
fn multi_head_attention_refuses_bad_shapes() {
    let (mut g, x0) = Graph::new(32);
    let q = g.constant(vec![0.0; 10 * 32], 1, 10, 32).unwrap();
    let narrow = g.constant(vec![0.0; 10 * 16], 1, 10, 16).unwrap();
    assert!(matches!(
        g.multi_head_attention(q, x0, x0, 5),
        Err(EngineError::Shape(_))
    ));
    assert!(g.multi_head_attention(q, x0, x0, 0).is_err());
    assert!(g.multi_head_attention(q, narrow, x0, 8).is_err());
    assert!(g.multi_head_attention(q, x0, narrow, 8).is_err());
    // Keys and values of different sizes: refused by the plan.
    let y = g.multi_head_attention(q, x0, q, 8).unwrap();
    g.set_output(y);
    let e = g.run(&vec![0.0; 32 * 12], 1, 3, 4).unwrap_err();
    assert!(e.to_string().contains("differ"), "{e}");
    // Same size (1x10): fine.
    assert!(g.run(&vec![0.0; 32 * 10], 1, 1, 10).is_ok());
}

#[test]
fn token_projection_matches_the_f64_reference() {
    let mut rng = StdRng::seed_from_u64(24);
    for isa in families() {
        for (b, h, w, c, nt, outputs, residual) in [
            (2, 5, 7, 32, 10, 2, true),
            (1, 16, 9, 256, 100, 2, true),
            (2, 3, 3, 40, 7, 5, false),
            (1, 1, 1, 3, 1, 1, false),
        ] {
            let x = random(b * h * w * c, &mut rng);
            let tokens = random(nt * c, &mut rng);
            let mix = random(outputs * nt, &mut rng);
            let r = random(b * h * w * outputs, &mut rng);
            // Input = x | residual; the residual comes out through a 1x1 slice.
            let cin = c + outputs;
            let mut input = Vec::with_capacity(b * h * w * cin);
            for p in 0..b * h * w {
                input.extend_from_slice(&x[p * c..(p + 1) * c]);
                input.extend_from_slice(&r[p * outputs..(p + 1) * outputs]);
            }
            let slice = |from: usize, n: usize| -> Vec<f32> {
                (0..n * cin)
                    .map(|i| if i % cin == from + i / cin { 1.0 } else { 0.0 })
                    .collect()
            };
            let (mut g, x0) = Graph::new(cin);
            let xs = g
                .conv(
                    x0,
                    linear("x", cin, c, &slice(0, c), None, Activation::None, isa),
                    None,
                )
                .unwrap();
            let rs = g
                .conv(
                    x0,
                    linear(
                        "r",
                        cin,
                        outputs,
                        &slice(c, outputs),
                        None,
                        Activation::None,
                        isa,
                    ),
                    None,
                )
                .unwrap();
            let t = g.constant(tokens.clone(), 1, nt, c).unwrap();
            let y = g
                .token_projection(xs, t, mix.clone(), outputs, residual.then_some(rs))
                .unwrap();
            g.set_output(y);
            let got = g.run(&input, b, h, w).unwrap();
            let tokens_b: Vec<f32> = (0..b).flat_map(|_| tokens.iter().copied()).collect();
            let want = reference::token_projection(
                &x,
                &tokens_b,
                &mix,
                b,
                c,
                outputs,
                residual.then_some(&r[..]),
            );
            let e = rel_error(&got, &want);
            assert!(e < 1e-5, "{isa} {b}x{h}x{w}x{c} n{nt} o{outputs}: {e:e}");
        }
    }
    // Errors: channels, residual channels, and (at plan time) the mix length.
    let (mut g, x0) = Graph::new(8);
    let t = g.constant(vec![0.0; 3 * 8], 1, 3, 8).unwrap();
    let t4 = g.constant(vec![0.0; 3 * 4], 1, 3, 4).unwrap();
    assert!(g.token_projection(x0, t4, vec![0.0; 6], 2, None).is_err());
    assert!(g.token_projection(x0, t, vec![0.0; 5], 2, None).is_err());
    assert!(
        g.token_projection(x0, t, vec![0.0; 6], 2, Some(x0))
            .is_err()
    );
    assert!(g.token_projection(x0, t, vec![], 0, None).is_err());
    let y = g.token_projection(x0, t, vec![0.0; 8], 2, None).unwrap();
    g.set_output(y);
    let e = g.run(&[0.0; 8 * 4], 1, 2, 2).unwrap_err();
    assert!(e.to_string().contains("mixing weights"), "{e}");
}

/// The existing convolutions in ConvNeXt's shapes (Liu et al. 2022): depthwise 7x7 pad 3 at
/// 96..1536 channels, the 4x4/4 stem and 2x2/2 downsampling, and 1x1 convolutions on a
/// `[B, 1, N, C]` token map (a linear layer) with residual and GELU; against the reference
/// convolution (groups = C for the depthwise one) on every family.
#[test]
fn convnext_shaped_convolutions_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(25);
    let cases: Vec<(ConvSpec, usize, usize, usize, bool, Activation)> = vec![
        (
            ConvSpec::depthwise(96, 7, 1, 3),
            2,
            9,
            6,
            false,
            Activation::None,
        ),
        (
            ConvSpec::depthwise(192, 7, 1, 3),
            1,
            8,
            8,
            true,
            Activation::None,
        ),
        (
            ConvSpec::depthwise(384, 7, 1, 3),
            1,
            5,
            7,
            false,
            Activation::Gelu,
        ),
        (
            ConvSpec::depthwise(768, 7, 1, 3),
            1,
            4,
            4,
            false,
            Activation::None,
        ),
        (
            ConvSpec::depthwise(1536, 7, 1, 3),
            1,
            3,
            2,
            false,
            Activation::None,
        ),
        (
            ConvSpec::square(3, 96, 4, 4, 0),
            2,
            16,
            12,
            false,
            Activation::None,
        ),
        (
            ConvSpec::square(96, 192, 2, 2, 0),
            1,
            8,
            6,
            false,
            Activation::None,
        ),
        (
            ConvSpec::square(256, 256, 1, 1, 0),
            2,
            1,
            100,
            true,
            Activation::None,
        ),
        (
            ConvSpec::square(96, 384, 1, 1, 0),
            2,
            1,
            37,
            false,
            Activation::Gelu,
        ),
        (
            ConvSpec::square(384, 96, 1, 1, 0),
            1,
            1,
            37,
            true,
            Activation::Gelu,
        ),
    ];
    for isa in families() {
        for &(s, b, h, w, residual, act) in &cases {
            let (oh, ow) = s.output_size(h, w).unwrap();
            let x: Vec<f32> = random(b * h * w * s.in_channels, &mut rng);
            let wt = random(
                s.out_channels * (s.in_channels / s.groups) * s.taps(),
                &mut rng,
            );
            let bias = random(s.out_channels, &mut rng);
            let res = residual.then(|| random(b * oh * ow * s.out_channels, &mut rng));
            let (want, _, _) =
                reference::conv2d(&s, &x, b, h, w, &wt, Some(&bias), res.as_deref(), act).unwrap();
            let conv = PackedConv::new("c", s, &wt, Some(&bias), act, isa).unwrap();
            let mut got = vec![0.0; want.len()];
            conv.run(
                &x,
                s.in_channels,
                b,
                h,
                w,
                &mut got,
                s.out_channels,
                res.as_deref().map(|r| (r, s.out_channels)),
            )
            .unwrap();
            let e = rel_error(&got, &want);
            assert!(e < 1e-5, "{isa} {s:?} {b}x{h}x{w}: relative error {e:e}");
        }
    }
}

/// f64 helpers for the two block tests: `[pixels, cin] · wᵀ [cout, cin] + b (+ res)`.
fn linear_f64(x: &[f64], cin: usize, w: &[f32], b: &[f32], res: Option<&[f64]>) -> Vec<f64> {
    let cout = b.len();
    let mut out = Vec::with_capacity(x.len() / cin * cout);
    for (p, px) in x.chunks_exact(cin).enumerate() {
        for o in 0..cout {
            let mut acc = b[o] as f64;
            for (k, &v) in px.iter().enumerate() {
                acc += v * w[o * cin + k] as f64;
            }
            out.push(acc + res.map_or(0.0, |r| r[p * cout + o]));
        }
    }
    out
}

fn layer_norm_f64(x: &[f64], w: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let c = w.len();
    x.chunks_exact(c)
        .flat_map(|px| {
            let mean = px.iter().sum::<f64>() / c as f64;
            let var = px.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + eps).sqrt();
            (0..c)
                .map(move |k| (px[k] - mean) * inv * w[k] as f64 + b[k] as f64)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A ConvNeXt block (Liu et al. 2022; DDColor's encoder, `ddcolor.md` §3.1) as a graph —
/// depthwise 7x7 → layer norm (eps 1e-6) → 1x1 to 4C with GELU → 1x1 back to C (layer scale
/// folded) + the block input — against a naive f64 version, at batch 2 on a non-square input.
#[test]
fn convnext_block_graph_matches_a_naive_f64_block() {
    let mut rng = StdRng::seed_from_u64(26);
    let c = 48;
    let (wd, bd) = (random(c * 49, &mut rng), random(c, &mut rng));
    let (lw, lb) = (random(c, &mut rng), random(c, &mut rng));
    let (w1, b1) = (random(4 * c * c, &mut rng), random(4 * c, &mut rng));
    let (w2, b2) = (random(c * 4 * c, &mut rng), random(c, &mut rng));
    let (b, h, w) = (2, 9, 13);
    let x = random(b * h * w * c, &mut rng);
    // Naive f64.
    let mut t = vec![0f64; x.len()];
    for n in 0..b {
        for y in 0..h {
            for xx in 0..w {
                for k in 0..c {
                    let mut acc = bd[k] as f64;
                    for ky in 0..7 {
                        for kx in 0..7 {
                            let (iy, ix) = (y as isize + ky - 3, xx as isize + kx - 3);
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let p = (n * h + iy as usize) * w + ix as usize;
                            acc += x[p * c + k] as f64 * wd[k * 49 + (ky * 7 + kx) as usize] as f64;
                        }
                    }
                    t[((n * h + y) * w + xx) * c + k] = acc;
                }
            }
        }
    }
    let t = layer_norm_f64(&t, &lw, &lb, 1e-6);
    let t: Vec<f64> = linear_f64(&t, c, &w1, &b1, None)
        .into_iter()
        .map(reference::gelu)
        .collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let want = to_f32(&linear_f64(&t, 4 * c, &w2, &b2, Some(&xd)));
    for isa in families() {
        let (mut g, x0) = Graph::new(c);
        let d = g
            .conv(
                x0,
                PackedConv::new(
                    "dwconv",
                    ConvSpec::depthwise(c, 7, 1, 3),
                    &wd,
                    Some(&bd),
                    Activation::None,
                    isa,
                )
                .unwrap(),
                None,
            )
            .unwrap();
        let n = g.layer_norm(d, lw.clone(), lb.clone(), 1e-6).unwrap();
        let u = g
            .conv(
                n,
                linear("pwconv1", c, 4 * c, &w1, Some(&b1), Activation::Gelu, isa),
                None,
            )
            .unwrap();
        let y = g
            .conv(
                u,
                linear("pwconv2", 4 * c, c, &w2, Some(&b2), Activation::None, isa),
                Some(x0),
            )
            .unwrap();
        g.set_output(y);
        let got = g.run(&x, b, h, w).unwrap();
        let e = rel_error(&got, &want);
        assert!(e < 1e-5, "{isa}: relative error {e:e}");
    }
}

/// A transformer decoder layer of DDColor's colour decoder (`ddcolor.md` §3.3; post-norm
/// cross-attention): constant queries and query positions, keys = the input map + its sine
/// position encoding, values = the input map; 1x1 projections; multi-head attention; output
/// projection with the queries as residual; layer norm (eps 1e-5). Against a naive f64
/// version, at batch 2 on a non-square input map.
#[test]
fn transformer_decoder_layer_graph_matches_a_naive_f64_layer() {
    let mut rng = StdRng::seed_from_u64(27);
    let (c, heads, nq) = (64, 8, 20);
    let (b, h, w) = (2, 5, 7);
    let feat = random(nq * c, &mut rng);
    let embed = random(nq * c, &mut rng);
    let proj = |rng: &mut StdRng| (random(c * c, rng), random(c, rng));
    let (wq, bq) = proj(&mut rng);
    let (wk, bk) = proj(&mut rng);
    let (wv, bv) = proj(&mut rng);
    let (wo, bo) = proj(&mut rng);
    let (lw, lb) = (random(c, &mut rng), random(c, &mut rng));
    let x = random(b * h * w * c, &mut rng);
    // Naive f64.
    let pos = reference::sine_position(h, w, c);
    let qin: Vec<f64> = (0..b * nq * c)
        .map(|i| feat[i % (nq * c)] as f64 + embed[i % (nq * c)] as f64)
        .collect();
    let kin: Vec<f64> = (0..x.len())
        .map(|i| x[i] as f64 + pos[i % (h * w * c)])
        .collect();
    let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let q = linear_f64(&qin, c, &wq, &bq, None);
    let k = linear_f64(&kin, c, &wk, &bk, None);
    let v = linear_f64(&xd, c, &wv, &bv, None);
    let (d, nk) = (c / heads, h * w);
    let mut o = vec![0f64; b * nq * c];
    for n in 0..b {
        for hd in 0..heads {
            for i in 0..nq {
                let s: Vec<f64> = (0..nk)
                    .map(|j| {
                        (0..d)
                            .map(|e| {
                                q[(n * nq + i) * c + hd * d + e] * k[(n * nk + j) * c + hd * d + e]
                            })
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                let sum: f64 = ex.iter().sum();
                for e in 0..d {
                    o[(n * nq + i) * c + hd * d + e] = (0..nk)
                        .map(|j| ex[j] * v[(n * nk + j) * c + hd * d + e])
                        .sum::<f64>()
                        / sum;
                }
            }
        }
    }
    let resid: Vec<f64> = (0..b * nq * c).map(|i| feat[i % (nq * c)] as f64).collect();
    let y = linear_f64(&o, c, &wo, &bo, Some(&resid));
    let want = to_f32(&layer_norm_f64(&y, &lw, &lb, 1e-5));
    for isa in families() {
        let (mut g, x0) = Graph::new(c);
        let qf = g.constant(feat.clone(), 1, nq, c).unwrap();
        let qe = g.constant(embed.clone(), 1, nq, c).unwrap();
        let qin = g.add(qf, qe).unwrap();
        let kin = g.add_sine_position(x0).unwrap();
        let lin = |name: &str, wt: &[f32], bs: &[f32]| {
            linear(name, c, c, wt, Some(bs), Activation::None, isa)
        };
        let qp = g.conv(qin, lin("q", &wq, &bq), None).unwrap();
        let kp = g.conv(kin, lin("k", &wk, &bk), None).unwrap();
        let vp = g.conv(x0, lin("v", &wv, &bv), None).unwrap();
        let att = g.multi_head_attention(qp, kp, vp, heads).unwrap();
        let y = g.conv(att, lin("out", &wo, &bo), Some(qf)).unwrap();
        let z = g.layer_norm(y, lw.clone(), lb.clone(), 1e-5).unwrap();
        g.set_output(z);
        assert_eq!(g.output_size(h, w).unwrap(), (1, nq));
        let got = g.run(&x, b, h, w).unwrap();
        let e = rel_error(&got, &want);
        assert!(e < 1e-5, "{isa}: relative error {e:e}");
    }
}

/// DDColor's largest attention: 100 queries, 16384 keys (a 128x128 map), 256 channels, 8
/// heads; prints the time per run (`cargo test -p colorize-engine -- --ignored --nocapture
/// mha_speed`).
#[test]
#[ignore = "a timing, not a check"]
fn mha_speed() {
    let mut rng = StdRng::seed_from_u64(28);
    let (c, heads, nq, side) = (256, 8, 100, 128);
    for isa in families() {
        let (mut g, x0) = Graph::new(c);
        let kv = g
            .conv(
                x0,
                linear("id", c, c, &identity(c), None, Activation::None, isa),
                None,
            )
            .unwrap();
        let q = g.constant(random(nq * c, &mut rng), 1, nq, c).unwrap();
        let y = g.multi_head_attention(q, kv, kv, heads).unwrap();
        g.set_output(y);
        let x = random(side * side * c, &mut rng);
        g.run(&x, 1, side, side).unwrap();
        let (_, profile) = g.run_profiled(&x, 1, side, side).unwrap();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let (_, profile) = g.run_profiled(&x, 1, side, side).unwrap();
            let t = profile
                .iter()
                .find(|t| t.name == "multi_head_attention")
                .unwrap()
                .ms;
            best = best.min(t);
        }
        let _ = profile;
        eprintln!(
            "{isa}: multi_head_attention {nq} queries x {} keys, C {c}, {heads} heads: {best:.1} ms ({} threads)",
            side * side,
            rayon::current_num_threads()
        );
    }
}

/// Sharp attention (scores in the hundreds, nearly one-hot rows): the max-subtracted softmax
/// neither overflows nor loses the winning key.
#[test]
fn multi_head_attention_survives_large_scores() {
    let mut rng = StdRng::seed_from_u64(29);
    // 600 keys: three chunks, so a later chunk's larger max rescales the earlier ones.
    let (b, nq, nk, c, heads) = (2, 9, 600, 32, 4);
    for isa in families() {
        let big = |v: Vec<f32>| v.into_iter().map(|x| 12.0 * x).collect::<Vec<_>>();
        let q1 = big(random(nq * c, &mut rng));
        let k = big(random(b * nk * c, &mut rng));
        let v = random(b * nk * c, &mut rng);
        let q_all: Vec<f32> = (0..b).flat_map(|_| q1.iter().copied()).collect();
        let want = reference::multi_head_attention(&q_all, &k, &v, b, c, heads);
        let mut kv = Vec::new();
        for p in 0..b * nk {
            kv.extend_from_slice(&k[p * c..(p + 1) * c]);
            kv.extend_from_slice(&v[p * c..(p + 1) * c]);
        }
        let half = |from: usize| -> Vec<f32> {
            (0..c * 2 * c)
                .map(|i| {
                    if i % (2 * c) == from + i / (2 * c) {
                        1.0
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let (mut g, x0) = Graph::new(2 * c);
        let kk = g
            .conv(
                x0,
                linear("k", 2 * c, c, &half(0), None, Activation::None, isa),
                None,
            )
            .unwrap();
        let vv = g
            .conv(
                x0,
                linear("v", 2 * c, c, &half(c), None, Activation::None, isa),
                None,
            )
            .unwrap();
        let qq = g.constant(q1.clone(), 1, nq, c).unwrap();
        let y = g.multi_head_attention(qq, kk, vv, heads).unwrap();
        g.set_output(y);
        let got = g.run(&kv, b, 20, 30).unwrap();
        assert!(got.iter().all(|x| x.is_finite()));
        let e = rel_error(&got, &want);
        assert!(e < 1e-4, "{isa}: relative error {e:e}");
    }
}

/// The grouped projection taken before a pixel shuffle equals the plain projection of the
/// shuffled map (DDColor's last pixel shuffle x4: 16 sub-pixels), on every kernel family.
#[test]
fn grouped_token_projection_equals_projecting_the_shuffled_map() {
    let mut rng = StdRng::seed_from_u64(31);
    for isa in families() {
        for (b, h, w, c, r, nt, outputs, residual) in [
            (2, 3, 5, 8, 2, 6, 2, true),
            (1, 4, 3, 32, 4, 10, 2, false),
            (2, 2, 2, 5, 4, 3, 3, true),
        ] {
            let s = r * r;
            let x = random(b * h * w * c * s, &mut rng);
            let tokens = random(nt * c, &mut rng);
            let mix = random(outputs * nt, &mut rng);
            let res = random(h * r * w * r * outputs, &mut rng);
            let run = |grouped: bool| {
                let (mut g, x0) = Graph::new(c * s);
                // A 1x1 identity first, so the ops run on the family under test.
                let eye: Vec<f32> = (0..c * s * c * s)
                    .map(|i| if i / (c * s) == i % (c * s) { 1.0 } else { 0.0 })
                    .collect();
                let xs = g
                    .conv(
                        x0,
                        linear("x", c * s, c * s, &eye, None, Activation::None, isa),
                        None,
                    )
                    .unwrap();
                let t = g.constant(tokens.clone(), 1, nt, c).unwrap();
                let y = if grouped {
                    let z = g
                        .token_projection_grouped(xs, t, mix.clone(), outputs, s, None)
                        .unwrap();
                    g.pixel_shuffle(z, r).unwrap()
                } else {
                    let up = g.pixel_shuffle(xs, r).unwrap();
                    g.token_projection(up, t, mix.clone(), outputs, None)
                        .unwrap()
                };
                let y = if residual {
                    let rv = g.constant(res.clone(), h * r, w * r, outputs).unwrap();
                    // Same residual for both batch items in this check.
                    g.add(y, rv).unwrap()
                } else {
                    y
                };
                g.set_output(y);
                g.run(&x, b, h, w).unwrap()
            };
            let (got, want) = (run(true), run(false));
            let e = rel_error(&got, &want);
            assert!(e < 1e-5, "{isa} {b}x{h}x{w} c{c} r{r}: {e:e}");
        }
    }
    let (mut g, x0) = Graph::new(12);
    let t = g.constant(vec![0.0; 3 * 4], 1, 3, 4).unwrap();
    assert!(
        g.token_projection_grouped(x0, t, vec![0.0; 6], 2, 0, None)
            .is_err()
    );
    assert!(
        g.token_projection_grouped(x0, t, vec![0.0; 6], 2, 5, None)
            .is_err()
    );
    assert!(
        g.token_projection_grouped(x0, t, vec![0.0; 6], 2, 3, None)
            .is_ok()
    );
}
