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

// Bombs: small files whose headers declare far more than they hold. Each is refused from what it
// declares, before a buffer of that size exists; the generous time bound only catches a decoder
// that actually filled memory.

const BOMB_SECONDS: f64 = 5.0;

fn refuse(bytes: &[u8], name: &str) -> CoreError {
    let started = std::time::Instant::now();
    let e = decode_image_bytes(bytes, name.as_ref(), &DecodeLimits::default())
        .err()
        .unwrap_or_else(|| panic!("{name}: decoded"));
    assert!(
        started.elapsed().as_secs_f64() < BOMB_SECONDS,
        "{name}: {:?}",
        started.elapsed()
    );
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{name}: ")), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    e
}

fn assert_over_limit(e: &CoreError, w: u32, h: u32) {
    assert!(
        matches!(e, CoreError::LimitsExceeded { width, height, .. } if (*width, *height) == (w, h)),
        "{e:?}"
    );
}

/// Whether `e` is a decoder refusing to allocate (image's `Limits` error).
fn is_alloc_refusal(e: &CoreError) -> bool {
    matches!(
        e,
        CoreError::Decode {
            source: image::ImageError::Limits(_),
            ..
        }
    )
}

/// A GIF with a `screen` logical screen, a two-colour global palette and one frame of size
/// `frame` whose LZW data holds a single white pixel.
fn gif(screen: (u16, u16), frame: (u16, u16)) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&screen.0.to_le_bytes());
    g.extend_from_slice(&screen.1.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0]); // global colour table of 2 entries
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    // A graphic control extension first, so the scan has an extension block to skip.
    g.extend_from_slice(&[0x21, 0xF9, 4, 0, 0, 0, 0, 0]);
    g.push(0x2C);
    g.extend_from_slice(&[0, 0, 0, 0]);
    g.extend_from_slice(&frame.0.to_le_bytes());
    g.extend_from_slice(&frame.1.to_le_bytes());
    g.push(0);
    // LZW, minimum code size 2: clear (4), index 1, end (5), 3 bits each, LSB first.
    g.extend_from_slice(&[2, 2, 0x4C, 0x01, 0, 0x3B]);
    g
}

#[test]
fn gif_bombs_are_refused_by_their_first_frame() {
    // The builder makes valid GIFs: a 1x1 white one decodes.
    let ok = decode_image_bytes(
        &gif((1, 1), (1, 1)),
        "ok.gif".as_ref(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(ok.image.to_rgb8().get_pixel(0, 0).0, [255; 3]);
    // A huge logical screen: refused from the header.
    assert_over_limit(
        &refuse(&gif((65535, 65535), (1, 1)), "screen.gif"),
        65535,
        65535,
    );
    // A 1x1 screen whose first frame is 12000x12000 (576 MB of RGBA): image reports the screen's
    // size, so only colorize's own look at the frame descriptor refuses it.
    assert_over_limit(
        &refuse(&gif((1, 1), (12000, 12000)), "frame.gif"),
        12000,
        12000,
    );
    // Under the pixel limit but 256 MB for a 1-pixel image: the decoder may not allocate it.
    let e = refuse(&gif((1, 1), (8000, 8000)), "wide.gif");
    assert!(is_alloc_refusal(&e), "{e:?}");
}

#[test]
fn png_metadata_bomb_decodes_without_its_profile() {
    // A 1x1 PNG whose ICC profile inflates from about 100 kB to 100 MB. The PNG decoder inflates
    // metadata only up to its allocation limit (64 MiB while the header is read; it was 800 MB)
    // and then drops the profile: the photo itself still decodes. The bound is not observable
    // from here (no allocation hook without unsafe); this pins that it is not an error.
    let mut bytes = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut bytes);
    image::ImageEncoder::set_icc_profile(&mut enc, vec![0; 100 << 20]).unwrap();
    image::ImageEncoder::write_image(enc, &[200], 1, 1, image::ExtendedColorType::L8).unwrap();
    assert!(bytes.len() < 1_000_000, "{}", bytes.len());
    let started = std::time::Instant::now();
    let d = decode_image_bytes(&bytes, "icc.png".as_ref(), &DecodeLimits::default()).unwrap();
    assert!(started.elapsed().as_secs_f64() < BOMB_SECONDS);
    assert_eq!(d.image.to_luma8().get_pixel(0, 0).0, [200]);
}

/// A lossless 1x1 WebP's `VP8L` chunk (header and data), from image's encoder.
fn vp8l_chunk() -> Vec<u8> {
    let one = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, image::Rgb([9, 99, 199])));
    let webp = encode(&one, ImageFormat::WebP);
    assert_eq!(&webp[12..16], b"VP8L");
    webp[12..].to_vec()
}

/// An extended WebP: a `VP8X` header (canvas `w`x`h`, `flags`), then `chunks` as they are.
fn webp_extended(w: u32, h: u32, flags: u8, chunks: &[u8]) -> Vec<u8> {
    let mut body = b"WEBPVP8X".to_vec();
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&[flags, 0, 0, 0]);
    body.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    body.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    body.extend_from_slice(chunks);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn webp_bombs_are_refused() {
    let vp8l = vp8l_chunk();
    let ok = decode_image_bytes(
        &webp_extended(1, 1, 0, &vp8l),
        "ok.webp".as_ref(),
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(ok.image.to_rgb8().get_pixel(0, 0).0, [9, 99, 199]);
    // A 16384x16384 canvas around a 1x1 image.
    assert_over_limit(
        &refuse(&webp_extended(16384, 16384, 0, &vp8l), "canvas.webp"),
        16384,
        16384,
    );
    // An EXIF chunk declaring 4 GiB in a file of 100 bytes: image-webp would allocate the
    // declared size to read the orientation.
    let mut chunks = vp8l.clone();
    chunks.extend_from_slice(b"EXIF");
    chunks.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    chunks.extend_from_slice(b"II*\0");
    let e = refuse(&webp_extended(1, 1, 0x08, &chunks), "exif.webp");
    assert!(
        matches!(e, CoreError::Decode { .. }) && e.to_string().contains("EXIF chunk declares"),
        "{e}"
    );
}

#[test]
fn jpeg_and_bmp_header_bombs_are_refused() {
    let tiny = DynamicImage::ImageRgb8(RgbImage::new(8, 8));
    // JPEG: the frame header (SOF0) says 65535x65535.
    let mut jpeg = encode(&tiny, ImageFormat::Jpeg);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a baseline JPEG");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_over_limit(&refuse(&jpeg, "sof.jpg"), 65535, 65535);
    // BMP: 65535 wide and -65535 high (a top-down bitmap), in a 90-byte file.
    let mut bmp = encode(&tiny, ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&65535i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&(-65535i32).to_le_bytes());
    assert_over_limit(&refuse(&bmp, "topdown.bmp"), 65535, 65535);
    // Past BMP's own 65535 limit, and the most negative height: decode errors.
    bmp[18..22].copy_from_slice(&i32::MAX.to_le_bytes());
    assert!(matches!(refuse(&bmp, "wide.bmp"), CoreError::Decode { .. }));
    bmp[18..22].copy_from_slice(&8i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&i32::MIN.to_le_bytes());
    assert!(matches!(refuse(&bmp, "min.bmp"), CoreError::Decode { .. }));
}

/// One page of a gray 8-bit uncompressed TIFF: its size, the strip length its header declares and
/// the pixel value stored (the strip really holds `w * h` bytes).
struct Page {
    w: u32,
    h: u32,
    declared_bytes: u32,
    value: u8,
}

/// A little-endian TIFF of `pages`, each IFD pointing to the next; with `loop_back`, the last one
/// points back to the first.
fn tiff(pages: &[Page], loop_back: bool) -> Vec<u8> {
    const IFD_LEN: u32 = 2 + 9 * 12 + 4;
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    for (i, p) in pages.iter().enumerate() {
        let ifd = t.len() as u32;
        let data = ifd + IFD_LEN;
        let stored = (p.w as usize * p.h as usize).min(64);
        let next = if i + 1 < pages.len() {
            data + stored as u32
        } else if loop_back {
            8
        } else {
            0
        };
        t.extend_from_slice(&9u16.to_le_bytes());
        for (tag, ty, value) in [
            (256u16, 4u16, p.w),        // ImageWidth, LONG
            (257, 4, p.h),              // ImageLength
            (258, 3, 8),                // BitsPerSample, SHORT
            (259, 3, 1),                // Compression: none
            (262, 3, 1),                // PhotometricInterpretation: BlackIsZero
            (273, 4, data),             // StripOffsets
            (277, 3, 1),                // SamplesPerPixel
            (278, 4, p.h),              // RowsPerStrip
            (279, 4, p.declared_bytes), // StripByteCounts
        ] {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&ty.to_le_bytes());
            t.extend_from_slice(&1u32.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        }
        t.extend_from_slice(&next.to_le_bytes());
        t.extend(std::iter::repeat_n(p.value, stored));
    }
    t
}

#[test]
fn tiff_bombs_are_refused_and_only_the_first_page_is_read() {
    let page = |w, h, declared_bytes, value| Page {
        w,
        h,
        declared_bytes,
        value,
    };
    let first = |bytes: &[u8], name: &str| {
        let started = std::time::Instant::now();
        let d = decode_image_bytes(bytes, name.as_ref(), &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(started.elapsed().as_secs_f64() < BOMB_SECONDS, "{name}");
        (
            d.image.width(),
            d.image.height(),
            d.image.to_luma8().get_pixel(0, 0).0[0],
        )
    };
    assert_eq!(
        first(&tiff(&[page(2, 1, 2, 77)], false), "ok.tif"),
        (2, 1, 77)
    );
    // Huge dimensions.
    assert_over_limit(
        &refuse(&tiff(&[page(100_000, 100_000, 1, 0)], false), "dims.tif"),
        100_000,
        100_000,
    );
    // A 1x1 image whose one strip claims 4 GiB: refused (over the decoder's allocation limit)
    // without reading or allocating it.
    let e = refuse(&tiff(&[page(1, 1, u32::MAX, 5)], false), "strip.tif");
    assert!(is_alloc_refusal(&e), "{e:?}");
    // Thousands of pages, and pages that loop back to the first: the first page, quickly.
    let pages: Vec<Page> = (0..5000)
        .map(|i| page(1, 1, 1, (i % 200) as u8 + 3))
        .collect();
    assert_eq!(first(&tiff(&pages, false), "pages.tif"), (1, 1, 3));
    assert_eq!(first(&tiff(&pages[..2], true), "loop.tif"), (1, 1, 3));
}

/// An RGB TIFF of `w`x`h` whose one strip is `jpeg` (compression 7, new-style JPEG).
fn tiff_with_jpeg_strip(w: u32, h: u32, jpeg: &[u8]) -> Vec<u8> {
    let mut t = tiff(
        &[Page {
            w,
            h,
            declared_bytes: jpeg.len() as u32,
            value: 0,
        }],
        false,
    );
    // Entries 3, 4 and 6: Compression = 7, Photometric = 2 (RGB), SamplesPerPixel = 3.
    let value = |i: usize| 8 + 2 + i * 12 + 8;
    t[value(3)..value(3) + 2].copy_from_slice(&7u16.to_le_bytes());
    t[value(4)..value(4) + 2].copy_from_slice(&2u16.to_le_bytes());
    t[value(6)..value(6) + 2].copy_from_slice(&3u16.to_le_bytes());
    t.truncate(8 + 2 + 9 * 12 + 4);
    t.extend_from_slice(jpeg);
    t
}

#[test]
fn tiff_jpeg_strip_larger_than_its_page_is_refused() {
    let tiny = DynamicImage::ImageRgb8(RgbImage::from_pixel(16, 16, image::Rgb([90; 3])));
    let mut jpeg = encode(&tiny, ImageFormat::Jpeg);
    // The strip as it should be: decodes.
    let ok = tiff_with_jpeg_strip(16, 16, &jpeg);
    let d = decode_image_bytes(&ok, "ok.tif".as_ref(), &DecodeLimits::default()).unwrap();
    assert_eq!((d.image.width(), d.image.height()), (16, 16));
    // A 1x1 page whose strip's JPEG frame header claims 16000x16000: the TIFF decoder would
    // decode all 768 MB of it (1.5 s here) to keep one pixel.
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0x3E, 0x80, 0x3E, 0x80]);
    let e = refuse(&tiff_with_jpeg_strip(1, 1, &jpeg), "strip.tif");
    assert!(
        matches!(e, CoreError::Decode { .. }) && e.to_string().contains("16000x16000"),
        "{e}"
    );
}
