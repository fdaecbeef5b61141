//! `colorize_core::opencv` against real OpenCV 4.7.0 (opencv-python-headless 4.7.0.72), PyTorch and
//! numpy outputs: fixtures/opencv, written by scripts/reference/opencv_ops.py (shapes.json lists
//! the shapes and versions).

use colorize_core::opencv::{
    lab_to_rgb, lab_to_rgb_pixel, lab_to_rgb_rows, resize_linear, resize_nearest_torch, rgb_to_lab,
    rgb_to_lab_l, rgb_to_lab_pixel, to_u8_round_half_even,
};
use proptest::prelude::*;

/// One LUT step of L (100 / 16384), with a little slack for the f32 products.
const L_STEP: f32 = 0.0062;
/// One LUT step of a or b (256 / 16384).
const AB_STEP: f32 = 1.0 / 64.0;

/// A fixture array: little-endian f32, checked to hold `len` values.
fn fixture(name: &str, len: usize) -> Vec<f32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opencv")
        .join(format!("{name}.bin"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len(), 4 * len, "{name}: unexpected length");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Splits interleaved triples into three planes.
fn planes(v: &[f32]) -> [Vec<f32>; 3] {
    std::array::from_fn(|k| v.iter().skip(k).step_by(3).copied().collect())
}

const N_RGB: usize = 5097;
const N_GREYS: usize = 256;

#[test]
fn rgb_to_lab_matches_opencv() {
    let rgb = fixture("rgb_in", 3 * N_RGB);
    let want = planes(&fixture("rgb_lab", 3 * N_RGB));
    let got = rgb_to_lab(&rgb);
    let l_only = rgb_to_lab_l(&rgb);
    assert_eq!(l_only, got[0], "rgb_to_lab_l is the L plane of rgb_to_lab");

    // Greys (the first 256 rows, k / 255): L bit-exact, and a = b = 0 exactly as OpenCV gives.
    for k in 0..3 {
        assert_eq!(got[k][..N_GREYS], want[k][..N_GREYS], "grey channel {k}");
    }
    // Colours: exact, or one table step off in at most 0.5 % of entries.
    for (k, step) in [(0, L_STEP), (1, AB_STEP), (2, AB_STEP)] {
        let mut off = 0;
        let mut max = 0.0f32;
        for (g, w) in got[k].iter().zip(&want[k]) {
            let d = (g - w).abs();
            max = max.max(d);
            if d > 0.0 {
                off += 1;
                assert!(d <= step + 1e-6, "channel {k}: {g} vs {w}");
            }
        }
        let share = off as f64 / N_RGB as f64;
        eprintln!("rgb_to_lab channel {k}: {off} of {N_RGB} entries off by one step, max {max}");
        assert!(share <= 0.005, "channel {k}: {off} entries off");
    }
    for (i, p) in rgb.chunks_exact(3).enumerate().step_by(97) {
        let px = rgb_to_lab_pixel([p[0], p[1], p[2]]);
        assert_eq!(px, [got[0][i], got[1][i], got[2][i]]);
    }
}

#[test]
fn grey_l_is_bit_exact_for_every_8_bit_level() {
    // The DDColor input: L of a greyscale photo. The fixture's first 256 rows are k / 255.
    let rgb = fixture("rgb_in", 3 * N_RGB);
    let want = fixture("rgb_lab", 3 * N_RGB);
    let greys: Vec<f32> = rgb[..3 * N_GREYS].to_vec();
    let l = rgb_to_lab_l(&greys);
    for (k, got) in l.iter().enumerate() {
        assert_eq!(*got, want[3 * k], "grey {k}");
    }
    assert_eq!(l[0], 0.0);
    assert_eq!(l[255], 100.0);
}

const N_LAB: usize = 2168;

#[test]
fn lab_to_rgb_matches_opencv() {
    let lab = planes(&fixture("lab_in", 3 * N_LAB));
    let want = fixture("lab_rgb", 3 * N_LAB);
    let got = lab_to_rgb(&lab[0], &lab[1], &lab[2]);
    let err = max_abs(&got, &want);
    eprintln!("lab_to_rgb: max error {err:e} over {N_LAB} pixels (one row, a multiple of 8)");
    assert!(err <= 1e-4, "{err}");
    // One row whose length is a multiple of 8 runs entirely through OpenCV's vector loop.
    assert_eq!(got, want, "expected bit-exact");
    assert_eq!(lab_to_rgb_rows(&lab[0], &lab[1], &lab[2], N_LAB), want);
    assert!(got.iter().all(|v| (0.0..=1.0).contains(v)));
    let p = lab_to_rgb_pixel([lab[0][7], lab[1][7], lab[2][7]]);
    assert_eq!(p[..], got[21..24]);
}

#[test]
fn lab_to_rgb_rows_matches_opencv_scalar_tails() {
    // 5 rows of 13: OpenCV's vector loop takes pixels 0..8 of each row, its scalar loop 8..13.
    let lab = planes(&fixture("lab_img_in", 5 * 13 * 3));
    let want = fixture("lab_img_rgb", 5 * 13 * 3);
    let exact = lab_to_rgb_rows(&lab[0], &lab[1], &lab[2], 13);
    assert_eq!(exact, want, "expected bit-exact with the row width");
    let vector_only = lab_to_rgb(&lab[0], &lab[1], &lab[2]);
    let err = max_abs(&vector_only, &want);
    eprintln!("lab_to_rgb without the row width: max error {err:e}");
    assert!(err <= 3e-7, "{err}");
}

#[test]
fn lab_to_rgb_reference_greys() {
    // ddcolor.md section 4: Lab(L, 0, 0) for L = 0/25/50/75/100 is 0/0.232515/0.466327/0.7239/1.
    for (l, want) in [
        (0.0, 0.0),
        (25.0, 0.232515),
        (50.0, 0.466327),
        (75.0, 0.7239),
        (100.0, 1.0),
    ] {
        let rgb = lab_to_rgb_pixel([l, 0.0, 0.0]);
        for c in rgb {
            assert!((c - want).abs() < 2e-6, "L {l}: {rgb:?}");
        }
    }
    // Out of range clips.
    assert_eq!(lab_to_rgb_pixel([120.0, 0.0, 0.0]), [1.0; 3]);
    assert_eq!(lab_to_rgb_pixel([-10.0, 0.0, 0.0]), [0.0; 3]);
}

fn check_resize(src: &str, (w, h, c): (usize, usize, usize), out: &str, (nw, nh): (usize, usize)) {
    let src = fixture(src, w * h * c);
    let want = fixture(out, nw * nh * c);
    let got = resize_linear(&src, w, h, c, nw, nh);
    let err = max_abs(&got, &want);
    eprintln!("resize_linear {w}x{h}x{c} -> {nw}x{nh}: max error {err:e}");
    assert!(err <= 1e-6, "{out}: {err}");
}

#[test]
fn resize_linear_matches_opencv() {
    for (nw, nh) in [(64, 64), (16, 11), (80, 40)] {
        check_resize(
            "resize_src",
            (37, 23, 3),
            &format!("resize_{nw}x{nh}"),
            (nw, nh),
        );
    }
    // An exact halving, which OpenCV runs as INTER_AREA.
    check_resize("resize_src2", (40, 22, 3), "resize_20x11", (20, 11));
    check_resize("resize1_src", (37, 23, 1), "resize1_64x64", (64, 64));
    // Same size is the identity.
    let src = fixture("resize_src", 37 * 23 * 3);
    assert_eq!(resize_linear(&src, 37, 23, 3, 37, 23), src);
}

#[test]
fn resize_nearest_matches_torch() {
    let src = fixture("nearest_src", 37 * 23);
    for (nw, nh) in [(64, 64), (16, 11), (80, 40), (74, 46), (37, 23)] {
        let want = fixture(&format!("nearest_{nw}x{nh}"), nw * nh);
        assert_eq!(
            resize_nearest_torch(&src, 37, 23, nw, nh),
            want,
            "{nw}x{nh}"
        );
    }
    let src2 = fixture("nearest_src2", 512 * 2);
    let want = fixture("nearest_1000x3", 1000 * 3);
    assert_eq!(resize_nearest_torch(&src2, 512, 2, 1000, 3), want);
}

#[test]
fn round_half_even_matches_numpy() {
    let x = fixture("round_in", 1511);
    let want = fixture("round_out", 1511);
    for (v, w) in x.iter().zip(&want) {
        assert_eq!(f32::from(to_u8_round_half_even(*v)), *w, "x = {v}");
    }
    assert_eq!(to_u8_round_half_even(0.5 / 255.0), 0);
    assert_eq!(to_u8_round_half_even(1.5 / 255.0), 2);
    assert_eq!(to_u8_round_half_even(-0.3), 0);
    assert_eq!(to_u8_round_half_even(1.7), 255);
    assert_eq!(to_u8_round_half_even(f32::NAN), 0);
}

proptest! {
    /// A grey L goes to a neutral RGB (the DDColor network input) and back to about the same L.
    /// Not closer: OpenCV's RGB -> Lab interpolates a 33-point-per-axis table linearly, with the
    /// input floored to 1/512 steps (4-bit weights), so L comes back up to 0.25 low or 0.15 high;
    /// OpenCV's own round trip over 200001 L values in 0..100 spans -0.2469..0.1483.
    #[test]
    fn grey_l_round_trips(l in 0.0f32..=100.0) {
        let rgb = lab_to_rgb(&[l], &[0.0], &[0.0]);
        let spread = rgb.iter().fold(0.0f32, |m, c| m.max((c - rgb[0]).abs()));
        prop_assert!(spread <= 1e-6, "{:?}", rgb);
        let back = rgb_to_lab_l(&rgb)[0];
        prop_assert!(back - l >= -0.25 && back - l <= 0.15, "L {} -> {:?} -> {}", l, rgb, back);
    }
}

#[test]
fn rgb_to_lab_table_matches_opencv_on_the_whole_grid() {
    // At the 33^3 grid points (r, g, b) / 32 the trilinear weights vanish and OpenCV returns its
    // table entry; the script stores the FNV-1a 64 hash of those 3 x 35937 integer codes. Equal
    // tables plus the same integer interpolation make rgb_to_lab bit-exact for every input.
    let want = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/opencv/lut_grid_fnv1a64.txt"),
    )
    .unwrap();
    let want = u64::from_str_radix(want.trim(), 16).unwrap();
    let mut rgb = Vec::with_capacity(3 * 33 * 33 * 33);
    for r in 0..33 {
        for g in 0..33 {
            for b in 0..33 {
                rgb.extend([r, g, b].map(|v| v as f32 / 32.0));
            }
        }
    }
    let [l, a, b] = rgb_to_lab(&rgb);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for i in 0..l.len() {
        let codes = [
            (f64::from(l[i]) * 16384.0 / 100.0).round(),
            ((f64::from(a[i]) + 128.0) * 64.0).round(),
            ((f64::from(b[i]) + 128.0) * 64.0).round(),
        ];
        for c in codes {
            for byte in (c as u16).to_le_bytes() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    assert_eq!(hash, want, "the 33^3 table differs from OpenCV's");
}
