//! Decoding images under limits (with EXIF orientation) and writing them atomically.
//!
//! Decoding: JPEG, PNG (8 and 16 bit), WebP, TIFF, BMP and GIF (first frame), the format guessed
//! from the content, not the name. The pixel count is checked against [`DecodeLimits`] from the
//! header, before any pixel buffer is allocated, so a decompression bomb is refused up front.
//!
//! Writing: every file goes to a temporary file in the target folder and is renamed into place,
//! so a crash or a full disk never leaves a half-written image under the final name.

use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::error::CoreError;
use crate::lab::{SampleDepth, quantize8, quantize16};

/// Limits applied while decoding untrusted images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (`width * height`) an image may have. Default 100 megapixels.
    pub max_pixels: u64,
}

impl DecodeLimits {
    /// The default: 100 megapixels.
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// A decoded, upright image and what it was.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, EXIF orientation already applied.
    pub image: DynamicImage,
    /// The format found in the content.
    pub format: ImageFormat,
}

impl DecodedImage {
    /// Whether the source had more than 8 bits per channel (16-bit PNG/TIFF, float formats).
    pub fn is_high_bit_depth(&self) -> bool {
        !matches!(
            self.image,
            DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageRgb8(_)
                | DynamicImage::ImageRgba8(_)
        )
    }
}

fn decoder_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    // Room for the largest allowed image at 16 bits x 4 channels, never below image's default.
    l.max_alloc = Some((limits.max_pixels.saturating_mul(8)).max(512 * 1024 * 1024));
    l
}

fn decode_reader<R: std::io::BufRead + std::io::Seek>(
    reader: ImageReader<R>,
    path: &Path,
    limits: &DecodeLimits,
) -> Result<DecodedImage, CoreError> {
    let decode_err = |source| CoreError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = reader
        .with_guessed_format()
        .map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let format = reader.format().ok_or_else(|| {
        decode_err(image::ImageError::Unsupported(
            image::error::UnsupportedError::from_format_and_kind(
                image::error::ImageFormatHint::Unknown,
                image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Unknown),
            ),
        ))
    })?;
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(CoreError::LimitsExceeded {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(CoreError::NoPixels {
            path: path.to_path_buf(),
            width,
            height,
        });
    }
    // A missing or unreadable EXIF block is not an error: the image is taken as it is stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage { image, format })
}

/// Decodes the image file at `path` under `limits`, applying its EXIF orientation.
///
/// # Errors
/// [`CoreError::Io`] if the file cannot be read, [`CoreError::EmptyFile`] for 0 bytes,
/// [`CoreError::Decode`] for unknown formats and corrupt or truncated data,
/// [`CoreError::LimitsExceeded`] when the header declares more than `limits.max_pixels` pixels,
/// [`CoreError::NoPixels`] for a 0-pixel image. Never panics on bad data.
pub fn decode_image(path: &Path, limits: &DecodeLimits) -> Result<DecodedImage, CoreError> {
    let io_err = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(CoreError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    decode_reader(ImageReader::new(BufReader::new(file)), path, limits)
}

/// Decodes an image held in memory (an upload); `name` is used in error messages only.
///
/// # Errors
/// As [`decode_image`].
pub fn decode_image_bytes(
    bytes: &[u8],
    name: &Path,
    limits: &DecodeLimits,
) -> Result<DecodedImage, CoreError> {
    if bytes.is_empty() {
        return Err(CoreError::EmptyFile {
            path: name.to_path_buf(),
        });
    }
    decode_reader(ImageReader::new(Cursor::new(bytes)), name, limits)
}

/// The formats colorize writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Baseline JPEG, quality 95, 8-bit.
    Jpeg,
    /// PNG, 8-bit, or 16-bit when the input had more than 8 bits per channel.
    Png,
    /// Lossless WebP, 8-bit.
    WebP,
    /// TIFF, 8-bit, or 16-bit when the input had more than 8 bits per channel.
    Tiff,
    /// BMP, 8-bit.
    Bmp,
    /// GIF (palette-quantised by the encoder), one frame.
    Gif,
}

impl OutputFormat {
    /// The format named by a file extension or a `--format` value (case-insensitive): `jpg`,
    /// `jpeg`, `png`, `webp`, `tif`, `tiff`, `bmp`, `gif`.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "jpg" | "jpeg" => Self::Jpeg,
            "png" => Self::Png,
            "webp" => Self::WebP,
            "tif" | "tiff" => Self::Tiff,
            "bmp" => Self::Bmp,
            "gif" => Self::Gif,
            _ => return None,
        })
    }

    /// The format for an output path, from its extension.
    ///
    /// # Errors
    /// [`CoreError::UnsupportedFormat`] when the extension is missing or unknown.
    pub fn from_path(path: &Path) -> Result<Self, CoreError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        Self::from_extension(ext).ok_or_else(|| CoreError::UnsupportedFormat {
            path: path.to_path_buf(),
            format: ext.to_string(),
        })
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Png => "png",
            Self::WebP => "webp",
            Self::Tiff => "tiff",
            Self::Bmp => "bmp",
            Self::Gif => "gif",
        }
    }

    fn supports_16_bit(self) -> bool {
        matches!(self, Self::Png | Self::Tiff)
    }

    /// The samples an output of this format holds for a source with (`high_bit_depth`) or
    /// without more than 8 bits per channel: [`SampleDepth::Sixteen`] for a high-bit-depth source
    /// written as PNG or TIFF, [`SampleDepth::Eight`] otherwise (never float).
    pub fn sample_depth(self, high_bit_depth: bool) -> SampleDepth {
        if high_bit_depth && self.supports_16_bit() {
            SampleDepth::Sixteen
        } else {
            SampleDepth::Eight
        }
    }
}

/// Converts a float sRGB image (`0.0..=1.0`) to what `format` stores: 16-bit RGB for PNG and TIFF
/// when `high_bit_depth`, otherwise 8-bit RGB (rounded, clamped: [`quantize8`], [`quantize16`]).
/// [`crate::lab::join_to_srgb`] writes the same pixels without the float image.
pub fn to_output_pixels(
    rgb: image::Rgb32FImage,
    format: OutputFormat,
    high_bit_depth: bool,
) -> DynamicImage {
    use rayon::prelude::*;
    let (w, h) = rgb.dimensions();
    // Our own parallel loop: image's generic conversion takes ~8 ms for a 1024x768 photo.
    if format.sample_depth(high_bit_depth) == SampleDepth::Sixteen {
        let px: Vec<u16> = rgb
            .as_raw()
            .par_iter()
            .with_min_len(1 << 14)
            .map(|&v| quantize16(v))
            .collect();
        DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w, h, px).expect("same size"))
    } else {
        let px: Vec<u8> = rgb
            .as_raw()
            .par_iter()
            .with_min_len(1 << 14)
            .map(|&v| quantize8(v))
            .collect();
        DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, px).expect("same size"))
    }
}

/// Encodes `image` as `format` into memory.
///
/// # Errors
/// [`CoreError::Encode`] (with `name` as the path) if the encoder fails.
pub fn encode_image_bytes(
    image: &DynamicImage,
    format: OutputFormat,
    name: &Path,
) -> Result<Vec<u8>, CoreError> {
    let mut buf = Cursor::new(Vec::new());
    write_encoded(image, format, &mut buf).map_err(|source| CoreError::Encode {
        path: name.to_path_buf(),
        source,
    })?;
    Ok(buf.into_inner())
}

fn write_encoded<W: Write + std::io::Seek>(
    image: &DynamicImage,
    format: OutputFormat,
    w: &mut W,
) -> Result<(), image::ImageError> {
    let eight_bit = || DynamicImage::ImageRgb8(image.to_rgb8());
    match format {
        OutputFormat::Jpeg => write_jpeg(image, w),
        OutputFormat::Png => match image {
            DynamicImage::ImageRgb8(rgb) => {
                write_png_rows(rgb.dimensions(), rgb.as_raw(), png::BitDepth::Eight, w)
            }
            DynamicImage::ImageRgb16(rgb) => {
                write_png_rows(rgb.dimensions(), rgb.as_raw(), png::BitDepth::Sixteen, w)
            }
            _ => image.write_to(w, ImageFormat::Png),
        },
        OutputFormat::Tiff => image.write_to(w, ImageFormat::Tiff),
        OutputFormat::WebP => eight_bit().write_to(w, ImageFormat::WebP),
        OutputFormat::Bmp => eight_bit().write_to(w, ImageFormat::Bmp),
        OutputFormat::Gif => eight_bit().write_to(w, ImageFormat::Gif),
    }
}

/// Samples [`write_png_rows`] writes: 8-bit as they are, 16-bit big-endian (PNG's order).
trait PngSample: Copy {
    fn push_be(self, out: &mut Vec<u8>);
}

impl PngSample for u8 {
    fn push_be(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl PngSample for u16 {
    fn push_be(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }
}

/// RGB PNG with image's default settings (fdeflate's fast deflate, adaptive filter), fed to `png`'s stream
/// writer [`crate::resize::STRIP_ROWS`] rows at a time: neither a big-endian copy of a 16-bit
/// image (image's encoder makes one, 6 bytes per pixel) nor the whole compressed stream is held.
fn write_png_rows<T: PngSample, W: Write>(
    (width, height): (u32, u32),
    samples: &[T],
    depth: png::BitDepth,
    w: W,
) -> Result<(), image::ImageError> {
    use image::error::{EncodingError, ImageFormatHint};
    let err = |e: png::EncodingError| match e {
        png::EncodingError::IoError(e) => image::ImageError::IoError(e),
        e => image::ImageError::Encoding(EncodingError::new(
            ImageFormatHint::Exact(ImageFormat::Png),
            e,
        )),
    };
    let mut encoder = png::Encoder::new(w, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(depth);
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(err)?;
    let mut stream = writer.stream_writer_with_size(1 << 20).map_err(err)?;
    let band = 3 * width as usize * crate::resize::STRIP_ROWS;
    let mut bytes = Vec::with_capacity(band * std::mem::size_of::<T>());
    for band in samples.chunks(band.max(1)) {
        bytes.clear();
        for &v in band {
            v.push_be(&mut bytes);
        }
        stream.write_all(&bytes)?;
    }
    stream.finish().map_err(err)?;
    writer.finish().map_err(err)
}

/// Baseline JPEG, quality 95, 4:4:4, through the `jpeg-encoder` crate (AVX2 when the CPU has it;
/// about twice as fast as image's own encoder).
fn write_jpeg<W: Write>(image: &DynamicImage, w: &mut W) -> Result<(), image::ImageError> {
    use image::error::{EncodingError, ImageFormatHint};
    let err = |e: Box<dyn std::error::Error + Send + Sync>| {
        image::ImageError::Encoding(EncodingError::new(
            ImageFormatHint::Exact(ImageFormat::Jpeg),
            e,
        ))
    };
    let converted;
    let rgb = match image.as_rgb8() {
        Some(rgb) => rgb,
        None => {
            converted = image.to_rgb8();
            &converted
        }
    };
    let (width, height) = match (u16::try_from(rgb.width()), u16::try_from(rgb.height())) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return Err(err("JPEG images are at most 65535 pixels on a side".into())),
    };
    jpeg_encoder::Encoder::new(w, 95)
        .encode(rgb.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| err(Box::new(e)))
}

/// Writes `image` to `path` as `format`, atomically: the bytes go to a temporary file in the same
/// folder, which is renamed onto `path` only once complete. With `overwrite == false` an existing
/// `path` is never replaced (the rename itself refuses, so there is no check-then-write race).
///
/// # Errors
/// [`CoreError::Io`] if the folder is not writable, [`CoreError::Encode`] if encoding fails,
/// [`CoreError::OutputExists`] if `path` exists and `overwrite` is false. On any error no file is
/// left at `path` (an existing one is untouched) and the temporary file is removed.
pub fn encode_image_atomic(
    image: &DynamicImage,
    path: &Path,
    format: OutputFormat,
    overwrite: bool,
) -> Result<(), CoreError> {
    // Encoded straight into the temporary file: the encoded bytes are never held in memory.
    write_atomic_with(path, overwrite, |w| {
        write_encoded(image, format, w).map_err(|source| CoreError::Encode {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
///
/// # Errors
/// [`CoreError::Io`] for file-system errors, [`CoreError::OutputExists`] if `path` exists and
/// `overwrite` is false.
pub fn write_file_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), CoreError> {
    write_atomic_with(path, overwrite, |w| {
        w.write_all(bytes).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Creates a temporary file beside `path`, lets `write` fill it (through a buffer), syncs it and
/// renames it onto `path` (refusing an existing `path` unless `overwrite`). On any error the
/// temporary file is removed and `path` is untouched.
fn write_atomic_with(
    path: &Path,
    overwrite: bool,
    write: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let io_err = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !overwrite && path.exists() {
        return Err(CoreError::OutputExists {
            path: path.to_path_buf(),
        });
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".colorize-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(io_err)?;
    // tempfile creates files readable by the owner only; outputs are ordinary files (0644 before
    // the umask), like those `cp` or an image editor would write.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err)?;
    }
    {
        let mut w = BufWriter::new(tmp.as_file_mut());
        write(&mut w)?;
        w.flush().map_err(io_err)?;
    }
    tmp.as_file().sync_all().map_err(io_err)?;
    if overwrite {
        tmp.persist(path).map_err(|e| io_err(e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                CoreError::OutputExists {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(e.error)
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_give_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let text = dir.path().join("notes.png");
        std::fs::write(&text, b"this is not an image at all").unwrap();
        let limits = DecodeLimits::default();
        for (p, kind) in [(&empty, "empty"), (&text, "decode")] {
            let e = decode_image(p, &limits).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(p.to_str().unwrap()), "{msg}");
            match (kind, &e) {
                ("empty", CoreError::EmptyFile { .. }) | ("decode", CoreError::Decode { .. }) => {}
                _ => panic!("unexpected {e:?}"),
            }
        }
        let missing = dir.path().join("missing.png");
        assert!(matches!(
            decode_image(&missing, &limits),
            Err(CoreError::Io { .. })
        ));
    }

    #[test]
    fn pixel_limit_is_checked_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        let img = DynamicImage::ImageLuma8(image::GrayImage::new(300, 200));
        img.save(&p).unwrap();
        let e = decode_image(&p, &DecodeLimits { max_pixels: 59_999 }).unwrap_err();
        assert!(
            matches!(
                e,
                CoreError::LimitsExceeded {
                    width: 300,
                    height: 200,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(decode_image(&p, &DecodeLimits { max_pixels: 60_000 }).is_ok());
    }

    #[test]
    fn atomic_write_refuses_to_clobber_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.png");
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(3, 2));
        encode_image_atomic(&img, &p, OutputFormat::Png, false).unwrap();
        let before = std::fs::read(&p).unwrap();
        let white =
            DynamicImage::ImageRgb8(image::RgbImage::from_pixel(3, 2, image::Rgb([255; 3])));
        let e = encode_image_atomic(&white, &p, OutputFormat::Png, false).unwrap_err();
        assert!(matches!(e, CoreError::OutputExists { .. }));
        assert_eq!(std::fs::read(&p).unwrap(), before);
        encode_image_atomic(&white, &p, OutputFormat::Png, true).unwrap();
        assert_ne!(std::fs::read(&p).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn every_output_format_round_trips_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let rgb = image::Rgb32FImage::from_fn(5, 3, |x, y| {
            image::Rgb([x as f32 / 5.0, y as f32 / 3.0, 0.5])
        });
        for f in [
            OutputFormat::Jpeg,
            OutputFormat::Png,
            OutputFormat::WebP,
            OutputFormat::Tiff,
            OutputFormat::Bmp,
            OutputFormat::Gif,
        ] {
            let p = dir.path().join(format!("o.{}", f.extension()));
            let img = to_output_pixels(rgb.clone(), f, true);
            encode_image_atomic(&img, &p, f, false).unwrap();
            let back = decode_image(&p, &DecodeLimits::default()).unwrap();
            assert_eq!((back.image.width(), back.image.height()), (5, 3), "{f:?}");
            assert_eq!(
                back.is_high_bit_depth(),
                matches!(f, OutputFormat::Png | OutputFormat::Tiff),
                "{f:?}"
            );
        }
    }
}
