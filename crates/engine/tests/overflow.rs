//! Sizes are computed with checked arithmetic: dimensions whose product wraps around `usize`
//! (overflow checks are off in this profile) are an error, never a wrapped length that happens to
//! match the slices given, which the kernels would then read and write past.

use colorize_engine::{Activation, ConvSpec, EngineError, Graph, Isa, PackedConv, ResizeMode};

/// The inverse of an odd `a` modulo 2^64 (Newton's iteration), so that
/// `a.wrapping_mul(inverse(a)) == 1`.
fn inverse(a: usize) -> usize {
    let mut x = a;
    for _ in 0..6 {
        x = x.wrapping_mul(2usize.wrapping_sub(a.wrapping_mul(x)));
    }
    assert_eq!(a.wrapping_mul(x), 1);
    x
}

/// `(batch, height, width)` whose product wraps to exactly 1: `h = w = 2^32 + 1`, and the batch
/// the inverse of their wrapped product.
fn wrapping_to_one() -> (usize, usize, usize) {
    let side = (1usize << 32) + 1;
    let batch = inverse(side.wrapping_mul(side));
    assert_eq!(batch.wrapping_mul(side).wrapping_mul(side), 1);
    (batch, side, side)
}

fn identity_conv(isa: Isa) -> PackedConv {
    PackedConv::new(
        "identity",
        ConvSpec::square(1, 1, 1, 1, 0),
        &[1.0],
        None,
        Activation::None,
        isa,
    )
    .unwrap()
}

fn is_shape_error(r: Result<impl std::fmt::Debug, EngineError>) -> String {
    match r {
        Err(e @ EngineError::Shape(_)) => e.to_string(),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn conv_run_refuses_dimensions_whose_product_wraps() {
    assert_eq!(
        usize::BITS,
        64,
        "the wrapping sizes below assume 64-bit usize"
    );
    let isa = Isa::detect();
    let conv = identity_conv(isa);
    // Sanity: one real pixel runs.
    let mut out = [0f32; 1];
    assert_eq!(
        conv.run(&[0.5], 1, 1, 1, 1, &mut out, 1, None).unwrap(),
        (1, 1)
    );
    assert_eq!(out, [0.5]);
    // batch · h · w wraps to 1 = the slices' lengths: an error, not a run over 2^64 pixels.
    let (batch, h, w) = wrapping_to_one();
    let msg = is_shape_error(conv.run(&[0.5], 1, batch, h, w, &mut out, 1, None));
    assert!(msg.contains("overflows"), "{msg}");
    // h = 3, w = 3⁻¹: the same with batch 1.
    let msg = is_shape_error(conv.run(&[0.5], 1, 1, 3, inverse(3), &mut out, 1, None));
    assert!(msg.contains("overflows"), "{msg}");
    // A stride whose span wraps.
    let msg = is_shape_error(conv.run(&[0.5; 2], usize::MAX, 1, 1, 2, &mut [0.0; 2], 1, None));
    assert!(msg.contains("overflows"), "{msg}");
    // Padding that wraps the padded size: no output size rather than a wrapped one.
    let mut spec = ConvSpec::square(1, 1, 3, 1, 0);
    spec.padding = [usize::MAX, usize::MAX, 0, 0];
    assert_eq!(spec.output_size(4, 4), None);
    let mut t = ConvSpec::transposed(1, 1, 3, usize::MAX, 0);
    assert_eq!(t.output_size(3, 3), None, "(3 − 1) · stride overflows");
    t.stride = [2, 2];
    assert_eq!(t.output_size(3, 3), Some((7, 7)));
    // A weight shape whose product wraps to the weight's length.
    let spec = ConvSpec::square(1 << 32, 1 << 32, 1, 1, 0);
    let e = PackedConv::new("huge", spec, &[], None, Activation::None, isa).unwrap_err();
    assert!(matches!(e, EngineError::Layer { .. }), "{e}");
}

#[test]
fn graph_run_refuses_an_input_shape_whose_product_wraps() {
    let isa = Isa::detect();
    let (mut g, x) = Graph::new(1);
    let y = g.conv(x, identity_conv(isa), None).unwrap();
    g.set_output(y);
    assert_eq!(g.run(&[0.25], 1, 1, 1).unwrap(), [0.25]);
    let (batch, h, w) = wrapping_to_one();
    let msg = is_shape_error(g.run(&[0.25], batch, h, w));
    assert!(msg.contains("overflows"), "{msg}");
    let msg = is_shape_error(g.run(&[0.25], 1, 3, inverse(3)));
    assert!(msg.contains("overflows"), "{msg}");
    // The plan alone (what `Graph::macs` and `output_size` use) refuses it too.
    is_shape_error(g.plan(batch, h, w));
    is_shape_error(g.macs(batch, h, w));
}

#[test]
fn graph_plan_refuses_values_larger_than_the_address_space() {
    // A 1x1 input enlarged 2^32 times: 2^64 pixels, which wrap to an empty buffer.
    let (mut g, x) = Graph::new(1);
    let y = g.resize_by(x, 1 << 32, ResizeMode::Nearest).unwrap();
    g.set_output(y);
    let msg = is_shape_error(g.run(&[1.0], 1, 1, 1));
    assert!(msg.contains("address space"), "{msg}");
    // 2^31 times: 2^62 floats fit in usize but not in memory (a `Vec<f32>` holds at most
    // isize::MAX bytes): an error before anything is allocated.
    let (mut g, x) = Graph::new(1);
    let y = g.resize_by(x, 1 << 31, ResizeMode::Nearest).unwrap();
    g.set_output(y);
    let msg = is_shape_error(g.run(&[1.0], 1, 1, 1));
    assert!(msg.contains("address space"), "{msg}");
    // A pixel shuffle whose factor squared overflows is refused when built.
    let (mut g, x) = Graph::new(4);
    assert!(g.pixel_shuffle(x, 1 << 32).is_err());
}
