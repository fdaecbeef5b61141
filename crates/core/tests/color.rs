use colorize_core::LabImage;
use colorize_core::color::{lab_to_srgb_pixel_gamut_mapped, srgb_to_lab_pixel};
use colorize_core::io::{DecodeLimits, decode_image};
use image::DynamicImage;
use palette::{FromColor, Lab, Srgb};
use proptest::prelude::*;

use crate::shared_data;

proptest! {
    /// Our sRGB -> CIELAB agrees with palette (D65, IEC 61966-2-1) over the whole cube.
    #[test]
    fn srgb_to_lab_matches_palette(r in 0.0f32..=1.0, g in 0.0f32..=1.0, b in 0.0f32..=1.0) {
        let ours = srgb_to_lab_pixel([r, g, b]);
        let theirs: Lab = Lab::from_color(Srgb::new(r, g, b).into_linear());
        prop_assert!((ours[0] - theirs.l).abs() < 0.01, "L {} vs {}", ours[0], theirs.l);
        prop_assert!((ours[1] - theirs.a).abs() < 0.02, "a {} vs {}", ours[1], theirs.a);
        prop_assert!((ours[2] - theirs.b).abs() < 0.02, "b {} vs {}", ours[2], theirs.b);
    }

    /// sRGB -> Lab -> sRGB is the identity (in-gamut colours need no gamut mapping).
    #[test]
    fn srgb_lab_srgb_round_trip(r in 0.0f32..=1.0, g in 0.0f32..=1.0, b in 0.0f32..=1.0) {
        let back = lab_to_srgb_pixel_gamut_mapped(srgb_to_lab_pixel([r, g, b]));
        for (x, y) in back.iter().zip([r, g, b]) {
            prop_assert!((x - y).abs() < 2e-4, "{:?} vs {:?}", back, [r, g, b]);
        }
    }

    /// Any Lab colour, in gamut or not, comes back as valid sRGB with the same L.
    #[test]
    fn gamut_mapping_keeps_l(l in 0.0f32..=100.0, a in -128.0f32..=127.0, b in -128.0f32..=127.0) {
        let rgb = lab_to_srgb_pixel_gamut_mapped([l, a, b]);
        prop_assert!(rgb.iter().all(|c| (0.0..=1.0).contains(c)));
        let back = srgb_to_lab_pixel(rgb);
        prop_assert!((back[0] - l).abs() < 0.05, "L {} -> {}", l, back[0]);
    }
}

#[test]
fn issue_reference_values() {
    // The issue's check: white, and sRGB red = L 53.24, a 80.09, b 67.20.
    let white = srgb_to_lab_pixel([1.0, 1.0, 1.0]);
    assert!(
        (white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 1e-3 && white[2].abs() < 1e-3,
        "{white:?}"
    );
    let red = srgb_to_lab_pixel([1.0, 0.0, 0.0]);
    assert!((red[0] - 53.24).abs() < 0.01, "{red:?}");
    assert!((red[1] - 80.09).abs() < 0.01, "{red:?}");
    assert!((red[2] - 67.20).abs() < 0.01, "{red:?}");
}

#[test]
fn real_photo_round_trips_through_lab_exactly_in_8_bit() {
    let path = shared_data().join("val/kodak");
    let first = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .min()
        .expect("kodak photos in ../shared/data/val/kodak");
    let photo = decode_image(&first, &DecodeLimits::default())
        .unwrap()
        .image;
    let truth = photo.to_rgb8();
    let lab = LabImage::from_image(&photo);
    assert_eq!(
        (lab.width, lab.height),
        (truth.width() as usize, truth.height() as usize)
    );
    let back = DynamicImage::ImageRgb32F(lab.to_rgb32f()).into_rgb8();
    let max_diff = truth
        .as_raw()
        .iter()
        .zip(back.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(max_diff <= 1, "max 8-bit difference {max_diff}");
    // Natural photos: L spans most of 0..=100, a and b stay inside -128..=127.
    let (lmin, lmax) = lab
        .l
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    assert!(
        lmin >= 0.0 && lmax <= 100.0 && lmax - lmin > 50.0,
        "{lmin}..{lmax}"
    );
    assert!(
        lab.a
            .iter()
            .chain(&lab.b)
            .all(|v| (-128.0..=127.0).contains(v))
    );
}
