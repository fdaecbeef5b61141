use colorize_core::io::{DecodeLimits, decode_image};
use colorize_core::lab::lightness_of;
use colorize_models::ModelIo;
use image::{DynamicImage, GenericImageView};
use proptest::prelude::*;

use crate::{shared_data, tiny_colorizer};

/// Colourises `img` with a random tiny network and checks that the 8-bit output has the input's
/// size and, pixel by pixel, the input's L (up to 8-bit rounding of both images).
fn check_size_and_l(img: &DynamicImage) {
    let c = tiny_colorizer(3);
    let out = DynamicImage::ImageRgb32F(c.colorize(img).unwrap()).into_rgb8();
    assert_eq!(out.dimensions(), img.dimensions());
    let (_, _, l_in) = lightness_of(img);
    let (_, _, l_out) = lightness_of(&DynamicImage::ImageRgb8(out.clone()));
    let worst = l_in
        .iter()
        .zip(&l_out)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1.0, "{:?}: L moved by {worst}", img.dimensions());
    // The random network does produce colour, so L is kept by design, not because ab = 0.
    if img.width() * img.height() > 64 {
        let chroma: f64 = out
            .pixels()
            .map(|p| (p.0[0] as f64 - p.0[2] as f64).abs())
            .sum();
        assert!(chroma > 0.0);
    }
}

/// The first photo (by name) of a validation set in ../shared/data/val.
fn first_photo(set: &str) -> DynamicImage {
    let mut files: Vec<_> = std::fs::read_dir(shared_data().join("val").join(set))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    decode_image(&files[0], &DecodeLimits::default())
        .unwrap()
        .image
}

#[test]
fn real_photo_crops_keep_size_and_l() {
    let photo = first_photo("kodak");
    for (x, y, w, h) in [
        (0, 0, 768, 512),
        (5, 7, 1, 1),
        (100, 3, 1, 401),
        (0, 200, 767, 1),
        (33, 44, 17, 23),
        (1, 1, 101, 57),
        (10, 10, 3, 500),
    ] {
        check_size_and_l(&photo.view(x, y, w, h).to_image().into());
    }
}

#[test]
fn historical_gray_photo_keeps_size_and_l() {
    let f = shared_data().join("historical/1864UnionSoldier.jpg");
    check_size_and_l(&decode_image(&f, &DecodeLimits::default()).unwrap().image);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Any size and aspect ratio, including 1xN strips.
    #[test]
    fn any_size_keeps_size_and_l(w in 1u32..300, h in 1u32..300, seed in 0u32..1000) {
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * 31 + y * 17 + seed) % 256) as u8;
            image::Rgb([v, v.wrapping_mul(3), 255 - v])
        }));
        check_size_and_l(&img);
    }

    /// The render size keeps its promises: multiples of 32, shorter side about `render_size`.
    #[test]
    fn render_dims_are_multiples_of_32(w in 1usize..5000, h in 1usize..5000, r in 16u32..1024) {
        let (rw, rh) = ModelIo::default().size.network_size(w, h, r);
        prop_assert!(rw % 32 == 0 && rh % 32 == 0 && rw >= 32 && rh >= 32);
        prop_assert!(rw.max(rh) <= 4 * r as usize + 32);
        let short = rw.min(rh) as i64;
        prop_assert!((short - r as i64).abs() <= 16 || short == 32, "{rw}x{rh} for {r}");
    }
}

#[test]
fn saturation_scales_chroma_and_zero_gives_the_gray_photo() {
    let photo = first_photo("bsds500");
    let (w, h, l) = lightness_of(&photo);
    // One network for all three runs: tests run in parallel and share the device's RNG, so two
    // networks built from the same seed are not guaranteed to be equal.
    let c = tiny_colorizer(5);
    let full = c.colorize_lightness(w, h, l.clone()).unwrap();
    let half = c
        .clone()
        .with_saturation(0.5)
        .colorize_lightness(w, h, l.clone())
        .unwrap();
    for i in (0..w * h).step_by(97) {
        assert!(
            (half.a[i] - 0.5 * full.a[i]).abs() < 1e-3
                && (half.b[i] - 0.5 * full.b[i]).abs() < 1e-3
        );
        assert_eq!(half.l[i], full.l[i]);
    }
    let gray = c.with_saturation(0.0).colorize(&photo).unwrap();
    let gray8 = DynamicImage::ImageRgb32F(gray).into_rgb8();
    assert!(gray8.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));
    let expected =
        DynamicImage::ImageRgb32F(colorize_core::LabImage::gray(w, h, l).to_rgb32f()).into_rgb8();
    assert_eq!(gray8, expected);
}

#[test]
fn colorize_to_writes_exactly_the_pixels_of_the_whole_plane_pipeline() {
    // `colorize_to` (issue 17) reads L a band of rows at a time and writes 8/16-bit pixels
    // straight away; the whole-plane path (full-size L, a, b, a float image, then quantised) must
    // give the same pixels, for 8- and 16-bit, gray and colour inputs.
    use colorize_core::io::{OutputFormat, to_output_pixels};
    use colorize_core::lab::SampleDepth;
    let c = tiny_colorizer(5);
    let photo = first_photo("kodak");
    for img in [
        DynamicImage::ImageRgb8(photo.to_rgb8()),
        DynamicImage::ImageLuma8(photo.to_luma8()),
        DynamicImage::ImageLuma16(photo.to_luma16()),
        DynamicImage::ImageRgb16(photo.to_rgb16()),
    ] {
        let (w, h, l) = lightness_of(&img);
        let float = c.colorize_lightness(w, h, l).unwrap().to_rgb32f();
        for (depth, format, high) in [
            (SampleDepth::Eight, OutputFormat::Jpeg, false),
            (SampleDepth::Sixteen, OutputFormat::Png, true),
        ] {
            let want = to_output_pixels(float.clone(), format, high);
            let got = c.colorize_to(&img, &[], depth).unwrap();
            assert!(got == want, "{:?} at {depth:?}", img.color());
        }
        let got = c.colorize_to(&img, &[], SampleDepth::Float).unwrap();
        assert!(got.into_rgb32f() == float, "{:?} float", img.color());
    }
}
