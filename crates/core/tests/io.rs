use std::io::Cursor;

use colorize_core::CoreError;
use colorize_core::io::{DecodeLimits, decode_image, decode_image_bytes};
use image::{DynamicImage, ImageFormat, RgbImage};

use crate::shared_data;

fn real_photo() -> DynamicImage {
    let p = shared_data().join("val/bsds500");
    let f = std::fs::read_dir(&p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .expect("bsds500 photos in ../shared/data/val/bsds500");
    decode_image(&f, &DecodeLimits::default()).unwrap().image
}

fn encode(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
    let mut c = Cursor::new(Vec::new());
    img.write_to(&mut c, f).unwrap();
    c.into_inner()
}

#[test]
fn decodes_every_input_format_gray_and_colour() {
    let photo = real_photo();
    let (w, h) = (photo.width(), photo.height());
    let gray16 = DynamicImage::ImageLuma16(photo.to_luma16());
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "jpeg",
            encode(&DynamicImage::ImageRgb8(photo.to_rgb8()), ImageFormat::Jpeg),
            false,
        ),
        ("png8", encode(&photo, ImageFormat::Png), false),
        ("png16 gray", encode(&gray16, ImageFormat::Png), true),
        (
            "webp",
            encode(&DynamicImage::ImageRgb8(photo.to_rgb8()), ImageFormat::WebP),
            false,
        ),
        ("tiff", encode(&photo, ImageFormat::Tiff), false),
        ("bmp", encode(&photo, ImageFormat::Bmp), false),
        (
            "gif",
            encode(
                &DynamicImage::ImageRgba8(photo.to_rgba8()),
                ImageFormat::Gif,
            ),
            false,
        ),
        (
            "gray jpeg",
            encode(
                &DynamicImage::ImageLuma8(photo.to_luma8()),
                ImageFormat::Jpeg,
            ),
            false,
        ),
    ];
    for (name, bytes, high) in cases {
        let d = decode_image_bytes(&bytes, name.as_ref(), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((d.image.width(), d.image.height()), (w, h), "{name}");
        assert_eq!(d.is_high_bit_depth(), high, "{name}");
    }
}

/// A JPEG with an APP1 Exif segment whose IFD0 holds only Orientation = `value`.
fn jpeg_with_orientation(img: &RgbImage, value: u16) -> Vec<u8> {
    let jpeg = encode(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Jpeg);
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II*\0");
    tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
    tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes()); // count
    tiff.extend_from_slice(&value.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied() {
    // A 40x20 image, bright on the left half.
    let img = RgbImage::from_fn(40, 20, |x, _| {
        if x < 20 {
            image::Rgb([250; 3])
        } else {
            image::Rgb([10; 3])
        }
    });
    let plain = decode_image_bytes(
        &jpeg_with_orientation(&img, 1),
        "o1.jpg".as_ref(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!((plain.image.width(), plain.image.height()), (40, 20));
    // 6 = rotate 90° clockwise to display: the bright left half ends up on top.
    let rotated = decode_image_bytes(
        &jpeg_with_orientation(&img, 6),
        "o6.jpg".as_ref(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!((rotated.image.width(), rotated.image.height()), (20, 40));
    let g = rotated.image.to_luma8();
    assert!(g.get_pixel(10, 5).0[0] > 200 && g.get_pixel(10, 35).0[0] < 50);
}

#[test]
fn bad_bytes_are_clear_errors_not_panics() {
    let photo = real_photo();
    let png = encode(&photo, ImageFormat::Png);
    let jpeg = encode(&DynamicImage::ImageRgb8(photo.to_rgb8()), ImageFormat::Jpeg);
    let limits = DecodeLimits::default();
    // Truncated PNG: an error naming the input.
    let e = decode_image_bytes(&png[..png.len() / 2], "half.png".as_ref(), &limits).unwrap_err();
    assert!(
        matches!(e, CoreError::Decode { .. }) && e.to_string().starts_with("half.png: "),
        "{e}"
    );
    // Truncated JPEG: decoders may legitimately show the part that arrived; it must not panic.
    match decode_image_bytes(&jpeg[..jpeg.len() / 2], "half.jpg".as_ref(), &limits) {
        Ok(d) => assert_eq!(d.image.width(), photo.width()),
        Err(e) => assert!(e.to_string().starts_with("half.jpg: "), "{e}"),
    }
    // Garbage with a PNG signature, random bytes, empty input.
    let mut fake = png[..16].to_vec();
    fake.extend(std::iter::repeat_n(0xAB, 500));
    for (name, bytes) in [
        ("fake.png", fake),
        (
            "noise.bin",
            (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("empty.jpg", vec![]),
    ] {
        let e = decode_image_bytes(&bytes, name.as_ref(), &limits).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{name}: ")), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
}

#[test]
fn decompression_bomb_is_refused_from_the_header() {
    // An 11000x10000 gray PNG compresses to a few hundred kilobytes but decodes to 110 MB.
    let big = DynamicImage::ImageLuma8(image::GrayImage::new(11_000, 10_000));
    let bytes = encode(&big, ImageFormat::Png);
    assert!(bytes.len() < 2_000_000);
    let e = decode_image_bytes(
        &bytes,
        "bomb.png".as_ref(),
        &DecodeLimits {
            max_pixels: 100_000_000,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            CoreError::LimitsExceeded {
                width: 11_000,
                height: 10_000,
                max_pixels: 100_000_000,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn png_written_band_by_band_decodes_to_the_same_8_and_16_bit_pixels() {
    // PNG output goes through png's stream writer a band of rows at a time (no big-endian copy of
    // a 16-bit image, no compressed stream in memory): the file must decode to exactly the
    // pixels, with the depth kept, across several bands.
    let photo = real_photo();
    let dir = tempfile::tempdir().unwrap();
    for img in [
        DynamicImage::ImageRgb8(photo.to_rgb8()),
        DynamicImage::ImageRgb16(photo.to_rgb16()),
    ] {
        let p = dir.path().join("o.png");
        colorize_core::io::encode_image_atomic(&img, &p, colorize_core::OutputFormat::Png, true)
            .unwrap();
        let back = decode_image(&p, &DecodeLimits::default()).unwrap();
        assert_eq!(back.format, ImageFormat::Png);
        assert_eq!(back.image, img, "{:?}", img.color());
    }
}
