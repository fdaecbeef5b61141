//! Seed inputs: small real photos from `../shared/data` (downscaled and re-encoded at start-up in
//! every format and colour type colorize decodes) plus generated images (gradients, noise, 1x1,
//! odd sizes, 16-bit, alpha, CMYK and progressive JPEG, EXIF orientation, animated GIF, WebP in a
//! VP8X container).
//!
//! The set is a pure function of the photos found, so every worker process builds the same list
//! and an input is identified by `(seed, execution index)` alone.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, Rgb, Rgba};

use crate::mutate::crc32;

/// One seed input.
#[derive(Debug, Clone)]
pub struct Seed {
    /// What it is (`photo3-420.jpg`), for reports.
    pub name: String,
    /// The encoded file.
    pub bytes: Vec<u8>,
}

/// The data folder the seeds come from: `$COLORIZE_FUZZ_DATA`, else `../shared/data` next to the
/// repository root (`None` when absent: generated seeds only).
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COLORIZE_FUZZ_DATA") {
        return Some(PathBuf::from(p));
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = repo.join("../shared/data");
    p.is_dir().then_some(p)
}

/// Up to `n` photos from `dir`, evenly spaced in its sorted recursive listing.
fn pick_photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    let Ok(all) = colorize_core::find_images(dir) else {
        return Vec::new();
    };
    if all.is_empty() {
        return Vec::new();
    }
    let n = n.min(all.len());
    (0..n).map(|i| all[i * all.len() / n].clone()).collect()
}

/// Real photos (from `data_dir`'s `historical` and `val` folders, or the repository's example
/// photo) downscaled to at most `max_side` pixels.
pub fn photos(data_dir: Option<&Path>, max_side: u32) -> Vec<DynamicImage> {
    let mut paths = Vec::new();
    if let Some(d) = data_dir {
        paths.extend(pick_photos(&d.join("historical"), 3));
        paths.extend(pick_photos(&d.join("val"), 3));
    }
    if paths.is_empty() {
        paths.push(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/1864UnionSoldier.jpg"),
        );
    }
    let limits = colorize_core::DecodeLimits::default();
    paths
        .iter()
        .filter_map(|p| colorize_core::decode_image(p, &limits).ok())
        .map(|d| d.image.thumbnail(max_side, max_side))
        .collect()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).ok()?;
    Some(out.into_inner())
}

/// A JPEG through `jpeg-encoder`: `sampling` (h, v) for chroma, progressive or not, a restart
/// interval, and an EXIF orientation (APP1) when given.
fn jpeg(
    img: &DynamicImage,
    colour: jpeg_encoder::ColorType,
    sampling: (u8, u8),
    progressive: bool,
    restart: u16,
    orientation: Option<u16>,
) -> Option<Vec<u8>> {
    let (w, h) = (
        u16::try_from(img.width()).ok()?,
        u16::try_from(img.height()).ok()?,
    );
    let data = match colour {
        jpeg_encoder::ColorType::Luma => img.to_luma8().into_raw(),
        jpeg_encoder::ColorType::Cmyk => img
            .to_rgb8()
            .pixels()
            .flat_map(|p| [255 - p.0[0], 255 - p.0[1], 255 - p.0[2], 0])
            .collect(),
        _ => img.to_rgb8().into_raw(),
    };
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::from_factors(
        sampling.0, sampling.1,
    )?);
    enc.set_progressive(progressive);
    if restart > 0 {
        enc.set_restart_interval(restart);
    }
    if let Some(o) = orientation {
        enc.add_exif_metadata(&exif_orientation(o)).ok()?;
    }
    enc.encode(&data, w, h, colour).ok()?;
    Some(out)
}

/// A little-endian TIFF structure holding one IFD entry: Orientation (0x0112) = `o`.
pub fn exif_orientation(o: u16) -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&u32::from(o).to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t
}

/// `png` with an `eXIf` chunk (orientation `o`) inserted after IHDR.
fn png_with_exif(png: &[u8], o: u16) -> Vec<u8> {
    let exif = exif_orientation(o);
    let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(&exif);
    chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
    let at = 8 + 12 + 13; // signature + IHDR
    let mut out = png[..at].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[at..]);
    out
}

/// A lossless WebP (`RIFF WEBP VP8L`) rewrapped in an extended (`VP8X`) container.
fn webp_vp8x(webp: &[u8], w: u32, h: u32, alpha: bool) -> Option<Vec<u8>> {
    let vp8l = webp.get(12..)?;
    let mut x = b"VP8X".to_vec();
    x.extend_from_slice(&10u32.to_le_bytes());
    x.push(if alpha { 0x10 } else { 0 });
    x.extend_from_slice(&[0, 0, 0]);
    x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    x.extend_from_slice(vp8l);
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((4 + x.len()) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&x);
    Some(out)
}

/// A two-frame GIF (the second frame offset and smaller).
fn animated_gif(img: &DynamicImage) -> Option<Vec<u8>> {
    use image::codecs::gif::GifEncoder;
    let a = img.to_rgba8();
    let b = image::imageops::thumbnail(&a, (a.width() / 2).max(1), (a.height() / 2).max(1));
    let mut out = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut out);
        enc.encode_frame(image::Frame::new(a)).ok()?;
        enc.encode_frame(image::Frame::from_parts(
            b,
            3,
            2,
            image::Delay::from_numer_denom_ms(10, 1),
        ))
        .ok()?;
    }
    Some(out)
}

/// Generated images: gradients, noise, tiny and odd sizes, every colour type.
fn generated() -> Vec<(String, DynamicImage)> {
    let grad = |w: u32, h: u32| {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 255 / w.max(1)) as u8,
                (y * 255 / h.max(1)) as u8,
                ((x + y) * 7) as u8,
            ])
        }))
    };
    let noise = |w: u32, h: u32| {
        let mut r = crate::rng::Rng::new(u64::from(w * 1000 + h));
        DynamicImage::ImageRgba8(image::RgbaImage::from_fn(w, h, |_, _| {
            Rgba([r.byte(), r.byte(), r.byte(), r.byte()])
        }))
    };
    vec![
        ("1x1".into(), grad(1, 1)),
        ("3x2".into(), grad(3, 2)),
        ("17x9-noise".into(), noise(17, 9)),
        ("40x24-grad".into(), grad(40, 24)),
        ("9x33-noise".into(), noise(9, 33)),
    ]
}

/// Every encoding of `img` worth fuzzing, named `{stem}.{kind}`. `rich` adds the colour-type
/// variants (16-bit, gray with alpha, CMYK JPEG, ...).
fn encodings(stem: &str, img: &DynamicImage, rich: bool) -> Vec<Seed> {
    use jpeg_encoder::ColorType as J;
    let (w, h) = (img.width(), img.height());
    let mut out: Vec<(String, Option<Vec<u8>>)> = vec![
        ("444.jpg".into(), jpeg(img, J::Rgb, (1, 1), false, 0, None)),
        (
            "420-progressive.jpg".into(),
            jpeg(img, J::Rgb, (2, 2), true, 0, None),
        ),
        (
            "rgb8.png".into(),
            encode(&DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Png),
        ),
        (
            "l8.gif".into(),
            encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::Gif),
        ),
        (
            "rgb8.bmp".into(),
            encode(&DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Bmp),
        ),
        (
            "rgb8.tiff".into(),
            encode(&DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Tiff),
        ),
        (
            "rgba8.webp".into(),
            encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::WebP),
        ),
    ];
    if rich {
        let l16 = DynamicImage::ImageLuma16(img.to_luma16());
        let rgb16 = DynamicImage::ImageRgb16(img.to_rgb16());
        let png = encode(&DynamicImage::ImageLuma8(img.to_luma8()), ImageFormat::Png);
        let webp = encode(&DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::WebP);
        out.extend([
            (
                "gray-exif6.jpg".into(),
                jpeg(img, J::Luma, (1, 1), false, 0, Some(6)),
            ),
            (
                "422-restart-exif3.jpg".into(),
                jpeg(img, J::Rgb, (2, 1), false, 2, Some(3)),
            ),
            (
                "cmyk.jpg".into(),
                jpeg(img, J::Cmyk, (1, 1), false, 0, None),
            ),
            ("l8-exif8.png".into(), png.map(|p| png_with_exif(&p, 8))),
            (
                "la8.png".into(),
                encode(
                    &DynamicImage::ImageLumaA8(img.to_luma_alpha8()),
                    ImageFormat::Png,
                ),
            ),
            (
                "rgba8.png".into(),
                encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::Png),
            ),
            ("l16.png".into(), encode(&l16, ImageFormat::Png)),
            ("rgb16.png".into(), encode(&rgb16, ImageFormat::Png)),
            ("l16.tiff".into(), encode(&l16, ImageFormat::Tiff)),
            (
                "rgba8.tiff".into(),
                encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::Tiff),
            ),
            (
                "l8.bmp".into(),
                encode(&DynamicImage::ImageLuma8(img.to_luma8()), ImageFormat::Bmp),
            ),
            (
                "rgba8.bmp".into(),
                encode(&DynamicImage::ImageRgba8(img.to_rgba8()), ImageFormat::Bmp),
            ),
            (
                "vp8x.webp".into(),
                webp.and_then(|b| webp_vp8x(&b, w, h, false)),
            ),
            ("animated.gif".into(), animated_gif(img)),
        ]);
    }
    out.into_iter()
        .filter_map(|(kind, b)| {
            b.map(|bytes| Seed {
                name: format!("{stem}-{kind}"),
                bytes,
            })
        })
        .collect()
}

/// The image seed set: each photo (at most `max_side` pixels) and each generated image in every
/// format; the first photo and the generated ones in every colour type too. `extra` adds every
/// file of a corpus folder as it is.
pub fn image_seeds(data_dir: Option<&Path>, extra: Option<&Path>, max_side: u32) -> Vec<Seed> {
    let mut out = Vec::new();
    for (i, photo) in photos(data_dir, max_side).iter().enumerate() {
        out.extend(encodings(&format!("photo{i}"), photo, i == 0));
    }
    for (name, img) in generated() {
        out.extend(encodings(&name, &img, true));
    }
    if let Some(dir) = extra {
        out.extend(corpus_files(dir));
    }
    out
}

/// Every regular file directly in `dir`, sorted by name.
pub fn corpus_files(dir: &Path) -> Vec<Seed> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let bytes = std::fs::read(&p).ok()?;
            Some(Seed {
                name: p.file_name()?.to_string_lossy().into_owned(),
                bytes,
            })
        })
        .collect()
}
