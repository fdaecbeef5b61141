//! sRGB ⇄ CIE XYZ (D65) ⇄ CIELAB over whole buffers, in `f32`.
//!
//! - sRGB follows IEC 61966-2-1:1999: the piecewise transfer curve (linear below 0.04045) and the
//!   primaries/white point matrix as published by Bruce Lindbloom (derived from the standard's
//!   chromaticities, D65 white `(0.95047, 1.0, 1.08883)`).
//! - CIELAB follows CIE 15:2004: `L* = 116 f(Y/Yn) − 16`, `a* = 500 (f(X/Xn) − f(Y/Yn))`,
//!   `b* = 200 (f(Y/Yn) − f(Z/Zn))`, with `f(t) = t^(1/3)` above `(6/29)^3` and the linear segment
//!   below.
//!
//! Ranges: sRGB components in `0.0..=1.0`; L in `0..=100`; a and b roughly `-128..=127` for colours
//! inside the sRGB gamut (sRGB red is `L 53.24, a 80.09, b 67.20`).

use std::sync::LazyLock;

use rayon::prelude::*;

/// D65 reference white in CIE XYZ, `Y = 1` (IEC 61966-2-1 / CIE 15:2004).
pub const D65_WHITE: [f32; 3] = [0.950_47, 1.0, 1.088_83];

/// Linear sRGB → XYZ (D65) matrix, rows X, Y, Z (IEC 61966-2-1, Lindbloom's 7-digit values).
pub const SRGB_TO_XYZ: [[f32; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175],
    [0.019_333_9, 0.119_192, 0.950_304_1],
];

/// XYZ (D65) → linear sRGB matrix, the inverse of [`SRGB_TO_XYZ`].
pub const XYZ_TO_SRGB: [[f32; 3]; 3] = [
    [3.240_454_2, -1.537_138_5, -0.498_531_4],
    [-0.969_266, 1.876_010_8, 0.041_556],
    [0.055_643_4, -0.204_025_9, 1.057_225_2],
];

const EPSILON: f32 = 216.0 / 24389.0; // (6/29)^3, CIE 15:2004
const KAPPA: f32 = 24389.0 / 27.0; // (29/3)^3, CIE 15:2004

/// Pixels per rayon task: large enough that the split costs nothing next to the arithmetic.
const CHUNK: usize = 16 * 1024;

/// sRGB transfer curve, encoded → linear (IEC 61966-2-1). Input and output in `0.0..=1.0`.
#[inline]
pub fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// [`srgb_to_linear`] of every 8-bit code value `v / 255` (the decode of 8-bit photos is a
/// table lookup).
pub static SRGB8_TO_LINEAR: LazyLock<[f32; 256]> =
    LazyLock::new(|| std::array::from_fn(|v| srgb_to_linear(v as f32 / 255.0)));

/// Mantissa bits dropped when indexing [`SRGB_ENCODE_TABLE`]: 2^10 segments per octave.
const ENCODE_SHIFT: u32 = 13;

/// First table segment: the octave `[2^-9, 2^-8)` holding the curve's breakpoint 0.0031308.
const ENCODE_BASE: u32 = 0x3b00_0000 >> ENCODE_SHIFT; // 2^-9 = 0x3b000000

/// The encoded sRGB curve at the start of every segment from 2^-9 to 1 (plus one), in f64.
static SRGB_ENCODE_TABLE: LazyLock<Vec<f32>> = LazyLock::new(|| {
    let end = (1.0f32.to_bits() >> ENCODE_SHIFT) + 2;
    (ENCODE_BASE..end)
        .map(|i| {
            let x = f32::from_bits(i << ENCODE_SHIFT) as f64;
            (1.055 * x.powf(1.0 / 2.4) - 0.055) as f32
        })
        .collect()
});

/// sRGB transfer curve, linear → encoded (IEC 61966-2-1). Input and output in `0.0..=1.0`
/// (larger inputs are taken as 1).
///
/// Above the linear segment the curve is read from a table with 1024 segments per octave of the
/// input (indexed by the float's exponent and top mantissa bits, so the segments are evenly spread
/// on a log scale) and interpolated linearly: about 10x faster than `powf` and within 1e-7 of the
/// exact curve (a thousandth of a 16-bit step).
#[inline]
pub fn linear_to_srgb(c: f32) -> f32 {
    if c <= 0.003_130_8 {
        c * 12.92
    } else {
        let bits = c.min(1.0).to_bits();
        let i = ((bits >> ENCODE_SHIFT) - ENCODE_BASE) as usize;
        let t = (bits & ((1 << ENCODE_SHIFT) - 1)) as f32 * (1.0 / (1 << ENCODE_SHIFT) as f32);
        let table = &*SRGB_ENCODE_TABLE;
        let (lo, hi) = (table[i], table[i + 1]);
        lo + t * (hi - lo)
    }
}

/// Cube root of a positive, finite `x` (other inputs fall back to `f32::cbrt`).
///
/// A first guess from the bit pattern (dividing the exponent by 3, as in Kahan's "Computing a real
/// cube root", 1991; about 3 % off) refined by two Halley steps in `f64`
/// (`y ← y (y³ + 2x) / (2y³ + x)`, cubic convergence: 3e-2 → 3e-5 → 1e-14), then rounded to
/// `f32`: correctly rounded in practice, and branch-free enough to vectorise.
#[inline]
pub fn cbrt(x: f32) -> f32 {
    if !(x > 0.0 && x.is_finite()) || x < f32::MIN_POSITIVE {
        return x.cbrt();
    }
    let guess = f32::from_bits(x.to_bits() / 3 + 0x2a51_37a0) as f64;
    let xd = x as f64;
    let halley = |y: f64| {
        let y3 = y * y * y;
        y * (y3 + 2.0 * xd) / (2.0 * y3 + xd)
    };
    halley(halley(guess)) as f32
}

#[inline]
fn lab_f(t: f32) -> f32 {
    if t > EPSILON {
        cbrt(t)
    } else {
        (KAPPA * t + 16.0) / 116.0
    }
}

#[inline]
fn lab_f_inv(f: f32) -> f32 {
    let f3 = f * f * f;
    if f3 > EPSILON {
        f3
    } else {
        (116.0 * f - 16.0) / KAPPA
    }
}

#[inline]
fn mat3(m: &[[f32; 3]; 3], v: [f32; 3]) -> [f32; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// One sRGB colour (components `0.0..=1.0`) → CIELAB `[L, a, b]` (L in `0..=100`).
#[inline]
pub fn srgb_to_lab_pixel(rgb: [f32; 3]) -> [f32; 3] {
    let lin = [
        srgb_to_linear(rgb[0]),
        srgb_to_linear(rgb[1]),
        srgb_to_linear(rgb[2]),
    ];
    xyz_to_lab(mat3(&SRGB_TO_XYZ, lin))
}

/// Relative luminance Y (`0..=1`, D65 white `Y = 1`) → CIELAB L (`0..=100`), CIE 15:2004.
#[inline]
pub fn lightness_from_luminance(y: f32) -> f32 {
    116.0 * lab_f(y) - 16.0
}

/// CIE XYZ (D65, `Y` in `0..=1`) → CIELAB `[L, a, b]` (CIE 15:2004).
#[inline]
pub fn xyz_to_lab(xyz: [f32; 3]) -> [f32; 3] {
    let fx = lab_f(xyz[0] / D65_WHITE[0]);
    let fy = lab_f(xyz[1] / D65_WHITE[1]);
    let fz = lab_f(xyz[2] / D65_WHITE[2]);
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB `[L, a, b]` → CIE XYZ (D65, `Y` in `0..=1` for L in `0..=100`) (CIE 15:2004).
#[inline]
pub fn lab_to_xyz(lab: [f32; 3]) -> [f32; 3] {
    let fy = (lab[0] + 16.0) / 116.0;
    let fx = fy + lab[1] / 500.0;
    let fz = fy - lab[2] / 200.0;
    [
        lab_f_inv(fx) * D65_WHITE[0],
        lab_f_inv(fy) * D65_WHITE[1],
        lab_f_inv(fz) * D65_WHITE[2],
    ]
}

/// CIELAB → linear sRGB, unclamped (out-of-gamut colours give components outside `0..=1`).
#[inline]
pub fn lab_to_linear_srgb(lab: [f32; 3]) -> [f32; 3] {
    mat3(&XYZ_TO_SRGB, lab_to_xyz(lab))
}

/// One CIELAB colour → sRGB (components `0.0..=1.0`), unclamped except for the final clamp of
/// each component to `0..=1`. Use [`lab_to_srgb_pixel_gamut_mapped`] to keep L for out-of-gamut
/// colours.
#[inline]
pub fn lab_to_srgb_pixel(lab: [f32; 3]) -> [f32; 3] {
    let lin = lab_to_linear_srgb(lab);
    [
        linear_to_srgb(lin[0].clamp(0.0, 1.0)),
        linear_to_srgb(lin[1].clamp(0.0, 1.0)),
        linear_to_srgb(lin[2].clamp(0.0, 1.0)),
    ]
}

#[inline]
fn in_gamut(lin: [f32; 3]) -> bool {
    const TOL: f32 = 1e-6;
    lin.iter().all(|&c| (-TOL..=1.0 + TOL).contains(&c))
}

/// One CIELAB colour → sRGB (`0.0..=1.0`), keeping L and hue: when `(L, a, b)` lies outside the
/// sRGB gamut, the chroma is scaled down (a and b by the same factor, found by bisection) until it
/// fits, instead of clipping each RGB component, which would change L. L itself is clamped to
/// `0..=100`.
#[inline]
pub fn lab_to_srgb_pixel_gamut_mapped(lab: [f32; 3]) -> [f32; 3] {
    gamut_mapped_linear(lab).map(linear_to_srgb)
}

/// The linear sRGB (each component clamped to `0..=1`) of [`lab_to_srgb_pixel_gamut_mapped`].
#[inline]
fn gamut_mapped_linear(lab: [f32; 3]) -> [f32; 3] {
    let l = lab[0].clamp(0.0, 100.0);
    if lab[1] == 0.0 && lab[2] == 0.0 {
        // Neutral: R = G = B exactly (the 7-digit matrices would leave ~1e-7 differences that
        // occasionally round to different 8-bit values).
        let y = lab_f_inv((l + 16.0) / 116.0).clamp(0.0, 1.0);
        return [y, y, y];
    }
    let mut lin = lab_to_linear_srgb([l, lab[1], lab[2]]);
    if !in_gamut(lin) {
        // The neutral colour (L, 0, 0) is always inside the gamut; bisect the chroma factor.
        let (mut lo, mut hi) = (0.0f32, 1.0f32);
        for _ in 0..12 {
            let mid = 0.5 * (lo + hi);
            if in_gamut(lab_to_linear_srgb([l, lab[1] * mid, lab[2] * mid])) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lin = lab_to_linear_srgb([l, lab[1] * lo, lab[2] * lo]);
    }
    lin.map(|c| c.clamp(0.0, 1.0))
}

/// Buckets of the linear → 8-bit sRGB table: narrower than the closest two rounding thresholds
/// (`1 / (255 · 12.92)` apart, in the curve's linear toe), so a bucket holds at most one.
const SRGB8_BUCKETS: usize = 16384;

/// `(codes, thresholds)`: `thresholds[v]` (v in 1..=255) is the linear value from which the
/// 8-bit sRGB code rounds to at least v, `srgb_to_linear((v − 0.5) / 255)` (`thresholds[0] = −∞`,
/// `thresholds[256] = +∞`); `codes[i]` is the code at the bucket's lower edge `i / (N − 1)`.
static SRGB8_ENCODE: LazyLock<(Vec<u8>, [f32; 257])> = LazyLock::new(|| {
    let mut t = [0f32; 257];
    t[0] = f32::NEG_INFINITY;
    for (v, tv) in t.iter_mut().enumerate().take(256).skip(1) {
        *tv = srgb_to_linear((v as f32 - 0.5) / 255.0);
    }
    t[256] = f32::INFINITY;
    let codes = (0..SRGB8_BUCKETS)
        .map(|i| {
            let x = i as f32 / (SRGB8_BUCKETS - 1) as f32;
            (t[1..256].iter().filter(|&&tv| tv <= x).count()) as u8
        })
        .collect();
    (codes, t)
});

/// Linear sRGB (`0..=1`, clamped) → the 8-bit sRGB code nearest to its encoded value: one table
/// read and one comparison.
#[inline]
pub fn linear_to_srgb8(c: f32) -> u8 {
    let (codes, t) = &*SRGB8_ENCODE;
    let c = c.clamp(0.0, 1.0);
    let v = codes[(c * (SRGB8_BUCKETS - 1) as f32) as usize];
    v + u8::from(c >= t[v as usize + 1])
}

/// As [`lab_planar_to_srgb`], straight to 8-bit sRGB (`rgb.len() == 3 * l.len()`): the video
/// path, which never needs the float image. Agrees with rounding the float result to within one
/// level (exactly except where that result sits on a rounding boundary).
pub fn lab_planar_to_srgb8(l: &[f32], a: &[f32], b: &[f32], rgb: &mut [u8]) {
    lab_planar_map(l, a, b, rgb, |lab| {
        gamut_mapped_linear(lab).map(linear_to_srgb8)
    });
}

/// Planar CIELAB → interleaved pixels, `px` per pixel, in parallel chunks. Panics if the lengths
/// do not agree (`rgb.len() == 3 * l.len()`).
fn lab_planar_map<T: Send>(
    l: &[f32],
    a: &[f32],
    b: &[f32],
    rgb: &mut [T],
    px: impl Fn([f32; 3]) -> [T; 3] + Sync,
) {
    assert!(rgb.len() == 3 * l.len() && l.len() == a.len() && a.len() == b.len());
    rgb.par_chunks_mut(3 * CHUNK)
        .zip(l.par_chunks(CHUNK))
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|(((rgb, l), a), b)| {
            for (i, out) in rgb.chunks_exact_mut(3).enumerate() {
                let [r, g, bl] = px([l[i], a[i], b[i]]);
                out[0] = r;
                out[1] = g;
                out[2] = bl;
            }
        });
}

/// Interleaved sRGB (`[r, g, b, r, g, b, ...]`, components `0.0..=1.0`) → planar CIELAB.
///
/// Writes `l`, `a` and `b`, each one value per pixel (L in `0..=100`). Panics if the lengths do
/// not agree (`rgb.len() == 3 * l.len()`); callers own buffers of matching size.
pub fn srgb_to_lab_planar(rgb: &[f32], l: &mut [f32], a: &mut [f32], b: &mut [f32]) {
    assert!(rgb.len() == 3 * l.len() && l.len() == a.len() && a.len() == b.len());
    rgb.par_chunks(3 * CHUNK)
        .zip(l.par_chunks_mut(CHUNK))
        .zip(a.par_chunks_mut(CHUNK))
        .zip(b.par_chunks_mut(CHUNK))
        .for_each(|(((rgb, l), a), b)| {
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                let lab = srgb_to_lab_pixel([px[0], px[1], px[2]]);
                l[i] = lab[0];
                a[i] = lab[1];
                b[i] = lab[2];
            }
        });
}

/// Interleaved sRGB (components `0.0..=1.0`) → CIELAB L only (`0..=100`), one value per pixel.
///
/// L depends on the relative luminance Y alone, so this is the "gray" a colour photo turns into.
pub fn srgb_to_lightness(rgb: &[f32]) -> Vec<f32> {
    let mut l = vec![0.0; rgb.len() / 3];
    srgb_to_lightness_into(rgb, &mut l);
    l
}

/// As [`srgb_to_lightness`], into `l` (`rgb.len() == 3 * l.len()`).
///
/// # Panics
/// If the lengths do not agree.
pub fn srgb_to_lightness_into(rgb: &[f32], l: &mut [f32]) {
    assert_eq!(rgb.len(), 3 * l.len());
    rgb.par_chunks(3 * CHUNK)
        .zip(l.par_chunks_mut(CHUNK))
        .for_each(|(rgb, l)| {
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                let y = SRGB_TO_XYZ[1][0] * srgb_to_linear(px[0])
                    + SRGB_TO_XYZ[1][1] * srgb_to_linear(px[1])
                    + SRGB_TO_XYZ[1][2] * srgb_to_linear(px[2]);
                l[i] = lightness_from_luminance(y);
            }
        });
}

/// Planar CIELAB → interleaved sRGB (components `0.0..=1.0`), gamut-mapped so that every output
/// pixel keeps its L (see [`lab_to_srgb_pixel_gamut_mapped`]).
///
/// Panics if the lengths do not agree (`rgb.len() == 3 * l.len()`).
pub fn lab_planar_to_srgb(l: &[f32], a: &[f32], b: &[f32], rgb: &mut [f32]) {
    lab_planar_map(l, a, b, rgb, lab_to_srgb_pixel_gamut_mapped);
}

/// CIELAB L (`0..=100`) → the sRGB gray value (`0.0..=1.0`) with that L and `a = b = 0`.
#[inline]
pub fn lightness_to_srgb_gray(l: f32) -> f32 {
    linear_to_srgb(lab_f_inv((l.clamp(0.0, 100.0) + 16.0) / 116.0).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: [f32; 3], b: [f32; 3], tol: f32) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn reference_values() {
        // Published CIELAB values of the sRGB primaries and white (D65, 2°), e.g. Lindbloom's
        // calculator and CIE 15:2004 formulae.
        let cases = [
            ([1.0, 1.0, 1.0], [100.0, 0.0, 0.0]),
            ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
            ([1.0, 0.0, 0.0], [53.24, 80.09, 67.20]),
            ([0.0, 1.0, 0.0], [87.73, -86.18, 83.18]),
            ([0.0, 0.0, 1.0], [32.30, 79.19, -107.86]),
            ([0.5, 0.5, 0.5], [53.39, 0.0, 0.0]),
        ];
        for (rgb, lab) in cases {
            let got = srgb_to_lab_pixel(rgb);
            assert!(close(got, lab, 0.02), "{rgb:?}: got {got:?}, want {lab:?}");
        }
    }

    #[test]
    fn fast_cube_root_and_transfer_curve_match_f64() {
        // Every 97th f32 from 1e-30 to 1e4, and the whole 0..1 range the pipeline uses.
        let mut x = 1e-30f32;
        while x < 1e4 {
            let exact = (x as f64).cbrt();
            let rel = ((cbrt(x) as f64 - exact) / exact).abs();
            assert!(rel < 1.2e-7, "cbrt({x}) relative error {rel}");
            x = f32::from_bits(x.to_bits() + 97);
        }
        assert_eq!(cbrt(0.0), 0.0);
        assert_eq!(cbrt(-8.0), -2.0);
        assert!(cbrt(f32::NAN).is_nan());
        for i in 0..=1_000_000 {
            let c = i as f32 / 1_000_000.0;
            let exact = if (c as f64) <= 0.003_130_8 {
                c as f64 * 12.92
            } else {
                1.055 * (c as f64).powf(1.0 / 2.4) - 0.055
            };
            let err = (linear_to_srgb(c) as f64 - exact).abs();
            assert!(err < 2e-7, "linear_to_srgb({c}) off by {err}");
        }
    }

    #[test]
    fn transfer_curve_round_trip_and_breakpoint() {
        for i in 0..=1000 {
            let c = i as f32 / 1000.0;
            assert!((linear_to_srgb(srgb_to_linear(c)) - c).abs() < 2e-6, "{c}");
        }
        // Continuity at the IEC 61966-2-1 breakpoint.
        assert!((srgb_to_linear(0.040_45) - 0.040_45 / 12.92).abs() < 1e-7);
        assert!((srgb_to_linear(0.040_46) - srgb_to_linear(0.040_45)).abs() < 1e-5);
    }

    #[test]
    fn srgb8_table_rounds_like_the_exact_curve() {
        // Every 8-bit code's own linear value maps back to it, and a dense sweep of linear
        // values matches the f64 curve rounded, except within 1e-5 of a rounding boundary.
        for v in 0..=255u8 {
            assert_eq!(linear_to_srgb8(srgb_to_linear(v as f32 / 255.0)), v);
        }
        let exact = |c: f64| {
            let s = if c <= 0.003_130_8 {
                12.92 * c
            } else {
                1.055 * c.powf(1.0 / 2.4) - 0.055
            };
            s * 255.0
        };
        let mut off = 0;
        for i in 0..=200_000 {
            let c = i as f64 / 200_000.0;
            let e = exact(c);
            let got = linear_to_srgb8(c as f32) as f64;
            if (got - e.round()).abs() > 0.0 {
                assert!((e - e.floor() - 0.5).abs() < 1e-3, "{c}: {got} vs {e}");
                off += 1;
            }
        }
        assert!(off < 50, "{off} off");
        assert_eq!(linear_to_srgb8(-0.5), 0);
        assert_eq!(linear_to_srgb8(7.0), 255);
    }

    #[test]
    fn lab_to_srgb8_agrees_with_the_float_path() {
        let mut lab = (Vec::new(), Vec::new(), Vec::new());
        for l in (0..=100).step_by(5) {
            for a in (-120..=120).step_by(15) {
                for b in (-120..=120).step_by(15) {
                    lab.0.push(l as f32 + 0.37);
                    lab.1.push(a as f32 * 0.93);
                    lab.2.push(b as f32 * 1.07);
                }
            }
        }
        let n = lab.0.len();
        let mut f = vec![0f32; 3 * n];
        let mut q = vec![0u8; 3 * n];
        lab_planar_to_srgb(&lab.0, &lab.1, &lab.2, &mut f);
        lab_planar_to_srgb8(&lab.0, &lab.1, &lab.2, &mut q);
        let mut differ = 0;
        for (x, y) in f.iter().zip(&q) {
            let r = (x * 255.0 + 0.5) as u8;
            assert!(r.abs_diff(*y) <= 1, "{x} vs {y}");
            differ += usize::from(r != *y);
        }
        assert!(differ * 1000 < 3 * n, "{differ} of {}", 3 * n);
    }

    #[test]
    fn gamut_mapping_keeps_lightness() {
        // Far outside the gamut: a saturated blue-green at mid lightness.
        let lab = [60.0, -120.0, -90.0];
        let rgb = lab_to_srgb_pixel_gamut_mapped(lab);
        assert!(rgb.iter().all(|c| (0.0..=1.0).contains(c)));
        let back = srgb_to_lab_pixel(rgb);
        assert!((back[0] - 60.0).abs() < 0.05, "L drifted: {back:?}");
        // Hue kept: a and b keep their signs and ratio.
        assert!(back[1] < 0.0 && back[2] < 0.0);
        assert!((back[2] / back[1] - 0.75).abs() < 0.05, "{back:?}");
    }

    #[test]
    fn gray_has_requested_lightness() {
        for l in [0.0f32, 1.0, 8.0, 25.0, 50.0, 75.0, 99.0, 100.0] {
            let g = lightness_to_srgb_gray(l);
            let back = srgb_to_lab_pixel([g, g, g]);
            assert!((back[0] - l).abs() < 1e-3, "{l} -> {back:?}");
        }
    }
}
