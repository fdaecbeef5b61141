//! The banded pipeline (issue 17) against the whole-plane one it replaces: L read a band of rows
//! at a time, planes resized from bands, and the join written straight into 8/16-bit pixels must
//! give exactly the values of the whole-plane functions, on a real photo in every pixel type.

use colorize_core::LabImage;
use colorize_core::color::srgb_to_lightness;
use colorize_core::io::{DecodeLimits, OutputFormat, decode_image, to_output_pixels};
use colorize_core::lab::{Lightness, SampleDepth, join_to_srgb, lightness_of};
use colorize_core::resize::{RowResizer, STRIP_ROWS, resize_plane, resize_plane_rows};
use image::{DynamicImage, GenericImageView};

use crate::shared_data;

/// A crop of a real colour photo (BSDS500), 203x77: not a multiple of the band height.
fn photo() -> DynamicImage {
    let f = std::fs::read_dir(shared_data().join("val/bsds500"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let img = decode_image(&f, &DecodeLimits::default()).unwrap().image;
    img.view(17, 9, 203, 77).to_image().into()
}

/// The photo in every pixel type a decoder gives.
fn every_type(img: &DynamicImage) -> Vec<(&'static str, DynamicImage)> {
    vec![
        ("luma8", DynamicImage::ImageLuma8(img.to_luma8())),
        ("lumaA8", DynamicImage::ImageLumaA8(img.to_luma_alpha8())),
        ("rgb8", DynamicImage::ImageRgb8(img.to_rgb8())),
        ("rgba8", DynamicImage::ImageRgba8(img.to_rgba8())),
        ("luma16", DynamicImage::ImageLuma16(img.to_luma16())),
        ("lumaA16", DynamicImage::ImageLumaA16(img.to_luma_alpha16())),
        ("rgb16", DynamicImage::ImageRgb16(img.to_rgb16())),
        ("rgba16", DynamicImage::ImageRgba16(img.to_rgba16())),
        ("rgb32f", DynamicImage::ImageRgb32F(img.to_rgb32f())),
    ]
}

/// Largest absolute difference (the planes are long: no giant assertion messages).
fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn lightness_in_bands_is_the_whole_image_conversion_for_every_pixel_type() {
    for (name, img) in every_type(&photo()) {
        // The reference: every pixel through f32 sRGB. 8-bit photos take a table of the
        // transfer curve (as before this issue), a few ulps away; every other type, 16-bit gray
        // included (its own table is built through this very conversion), is bit-identical.
        let want = srgb_to_lightness(img.to_rgb32f().as_raw());
        let (w, h, plane) = lightness_of(&img);
        assert_eq!((w, h), (203, 77));
        let eight_bit = name.ends_with('8');
        let tolerance = if eight_bit { 1e-4 } else { 0.0 };
        let d = worst(&plane, &want);
        assert!(d <= tolerance, "{name}: L off by {d}");
        // Any band, at any offset, is the same rows of the plane.
        let l = Lightness::Image(&img);
        for (first, n) in [(0, 1), (0, 77), (5, 3), (76, 1), (31, 33)] {
            let mut band = vec![0.0; n * w];
            l.rows(first, &mut band);
            let d = worst(&band, &plane[first * w..(first + n) * w]);
            assert!(d == 0.0, "{name} rows {first}+{n}: off by {d}");
        }
    }
}

#[test]
fn resizing_from_bands_is_bit_identical_to_the_whole_plane() {
    let (_, _, l) = lightness_of(&photo());
    let (sw, sh) = (203, 77);
    // Shrink both axes (photo → network), one axis each way, enlarge, same size, to 1x1.
    for (dw, dh) in [
        (64, 32),
        (160, 25),
        (300, 40),
        (40, 200),
        (406, 154),
        (203, 77),
        (1, 1),
    ] {
        let want = resize_plane(&l, sw, sh, dw, dh);
        let src = Lightness::Plane {
            width: sw,
            height: sh,
            l: &l,
        };
        let got = resize_plane_rows(sw, sh, dw, dh, |first, out| src.rows(first, out));
        assert_eq!(got, want, "{dw}x{dh}");
        let rows = RowResizer::new(&l, sw, sh, dw, dh);
        for y in [0, dh / 2, dh - 1] {
            let mut row = vec![0.0; dw];
            rows.row(y, &mut row);
            assert_eq!(row, want[y * dw..(y + 1) * dw], "{dw}x{dh} row {y}");
        }
    }
    assert!(STRIP_ROWS < sh, "the photo spans several bands");
}

#[test]
fn join_in_bands_writes_the_pixels_of_join_then_convert() {
    let img = photo();
    let (w, h, l) = lightness_of(&img);
    // ab from the photo's own colour at a smaller, the same and a larger size than the photo.
    let lab = LabImage::from_image(&img);
    for (aw, ah) in [(64, 32), (203, 77), (250, 90), (7, 300)] {
        let a = resize_plane(&lab.a, w, h, aw, ah);
        let b = resize_plane(&lab.b, w, h, aw, ah);
        let float = LabImage::join(w, h, l.clone(), aw, ah, &a, &b).to_rgb32f();
        for (depth, format, high) in [
            (SampleDepth::Eight, OutputFormat::Jpeg, false),
            (SampleDepth::Sixteen, OutputFormat::Png, true),
        ] {
            let want = to_output_pixels(float.clone(), format, high);
            let got = join_to_srgb(&Lightness::Image(&img), aw, ah, &a, &b, depth);
            assert_eq!(got, want, "{aw}x{ah} {depth:?}");
        }
        let got = join_to_srgb(&Lightness::Image(&img), aw, ah, &a, &b, SampleDepth::Float);
        assert_eq!(got.into_rgb32f(), float, "{aw}x{ah} float");
    }
}
