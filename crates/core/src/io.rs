//! Decoding images under limits (with EXIF orientation) and writing them atomically.
//!
//! Decoding: JPEG, PNG (8 and 16 bit), WebP, TIFF, BMP and GIF (first frame), the format guessed
//! from the content, not the name. The pixel count is checked against [`DecodeLimits`] from the
//! header, before any pixel buffer is allocated, so a decompression bomb is refused up front. What
//! the header does not cover is bounded too: a GIF's first frame (which may be larger than the
//! logical screen) is checked against the same pixel limit, WebP chunks must fit in the file, and
//! the decoders' own allocations are capped ([`DECODER_HEADROOM_BYTES`] while the header is read,
//! [`decoder_alloc_limit`] of the declared size while the pixels are), so no file makes colorize
//! allocate much more than the image its header declares. The output buffer is always the
//! header's size: an image cannot decode larger than it said.
//!
//! Writing: every file goes to a temporary file in the target folder and is renamed into place,
//! so a crash or a full disk never leaves a half-written image under the final name.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// Bytes a decoder may allocate for its own use (line buffers, metadata such as an ICC profile or
/// an EXIF block) while it reads a header, and beyond twice the decoded image while it reads the
/// pixels: 64 MiB, the PNG crate's own default.
pub const DECODER_HEADROOM_BYTES: u64 = 64 * 1024 * 1024;

/// The limits in force while the header is read, before the image's size is known: only
/// [`DECODER_HEADROOM_BYTES`], whatever `max_pixels` allows, so that metadata cannot grow past it
/// (a PNG `iCCP` chunk that inflates to hundreds of megabytes is refused).
fn header_limits() -> image::Limits {
    let mut l = image::Limits::default();
    l.max_alloc = Some(DECODER_HEADROOM_BYTES);
    l
}

/// The most a decoder may allocate besides the output buffer once the header said the image holds
/// `image_bytes` bytes (at most `max_pixels` x 16 bytes): twice that (TIFF decodes into a buffer
/// of its own and may read a whole uncompressed strip; a GIF frame may be larger than its logical
/// screen) plus [`DECODER_HEADROOM_BYTES`].
pub fn decoder_alloc_limit(image_bytes: u64) -> u64 {
    image_bytes
        .saturating_mul(2)
        .saturating_add(DECODER_HEADROOM_BYTES)
}

fn decode_error(path: &Path, format: ImageFormat, message: String) -> CoreError {
    CoreError::Decode {
        path: path.to_path_buf(),
        source: image::ImageError::Decoding(image::error::DecodingError::new(
            image::error::ImageFormatHint::Exact(format),
            message,
        )),
    }
}

/// Checks what image's decoders take on trust before any of them runs: a GIF's first frame (which
/// may be larger than the logical screen that [`ImageDecoder::dimensions`] reports) against
/// `max_pixels`, the chunk sizes of a WebP file against the file's length (a metadata chunk
/// declaring 4 GiB would otherwise be allocated before it is read), and the JPEG frame headers in
/// a JPEG-compressed TIFF's first page against its strips or tiles (the TIFF decoder would decode
/// a 1x1 page's strip at whatever size the strip claims). Leaves `r` where it was.
fn prescan<R: BufRead + Seek>(
    r: &mut R,
    format: ImageFormat,
    path: &Path,
    limits: &DecodeLimits,
) -> Result<(), CoreError> {
    let io_err = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let start = r.stream_position().map_err(io_err)?;
    let len = r.seek(SeekFrom::End(0)).map_err(io_err)?;
    r.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let result = match format {
        ImageFormat::Gif => gif_first_frame(r).map(|frame| match frame {
            Some((w, h)) if u64::from(w) * u64::from(h) > limits.max_pixels => {
                Err(CoreError::LimitsExceeded {
                    path: path.to_path_buf(),
                    width: w.into(),
                    height: h.into(),
                    max_pixels: limits.max_pixels,
                })
            }
            _ => Ok(()),
        }),
        ImageFormat::WebP => webp_chunks_fit(r, len).map(|bad| match bad {
            Some(message) => Err(decode_error(path, format, message)),
            None => Ok(()),
        }),
        ImageFormat::Tiff => tiff_jpeg_chunks_fit(r).map(|bad| match bad {
            Some(message) => Err(decode_error(path, format, message)),
            None => Ok(()),
        }),
        _ => Ok(Ok(())),
    };
    r.seek(SeekFrom::Start(start)).map_err(io_err)?;
    // A file too short to scan is left to the decoder, which names what is missing.
    match result {
        Ok(checked) => checked,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

fn read_array<const N: usize, R: Read>(r: &mut R) -> std::io::Result<[u8; N]> {
    let mut b = [0; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

/// The size of the first image descriptor of a GIF, `None` when the file ends (trailer) first.
fn gif_first_frame<R: BufRead + Seek>(r: &mut R) -> std::io::Result<Option<(u16, u16)>> {
    let header: [u8; 13] = read_array(r)?; // signature, version, logical screen descriptor
    let packed = header[10];
    if packed & 0x80 != 0 {
        r.seek_relative(3 << ((packed & 7) + 1))?; // global colour table
    }
    loop {
        match read_array::<1, _>(r)?[0] {
            0x2C => {
                let d: [u8; 8] = read_array(r)?; // left, top, width, height
                let w = u16::from_le_bytes([d[4], d[5]]);
                let h = u16::from_le_bytes([d[6], d[7]]);
                return Ok(Some((w, h)));
            }
            0x21 => {
                let _label = read_array::<1, _>(r)?;
                loop {
                    let n = read_array::<1, _>(r)?[0];
                    if n == 0 {
                        break;
                    }
                    r.seek_relative(i64::from(n))?;
                }
            }
            // The trailer or an unknown block: the decoder will say what is wrong.
            _ => return Ok(None),
        }
    }
}

/// A message when a top-level chunk of a RIFF/WebP file of `len` bytes ends past the end of the
/// file, `None` when all of them fit.
fn webp_chunks_fit<R: BufRead + Seek>(r: &mut R, len: u64) -> std::io::Result<Option<String>> {
    let _riff: [u8; 12] = read_array(r)?; // "RIFF", size, "WEBP"
    let mut pos = 12u64;
    while pos + 8 <= len {
        let h: [u8; 8] = read_array(r)?;
        let size = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        let end = pos + 8 + size;
        if end > len {
            return Ok(Some(format!(
                "{} chunk declares {size} bytes but the file has {} left (truncated or forged)",
                String::from_utf8_lossy(&h[..4]).escape_default(),
                len - pos - 8
            )));
        }
        pos = end + (size & 1);
        r.seek(SeekFrom::Start(pos))?;
    }
    Ok(None)
}

/// Reads the first IFD of a TIFF (classic or BigTIFF) for what [`tiff_jpeg_chunks_fit`] needs.
struct TiffReader<'a, R> {
    r: &'a mut R,
    big_endian: bool,
    big_tiff: bool,
}

impl<R: Read + Seek> TiffReader<'_, R> {
    fn uint(&mut self, bytes: usize) -> std::io::Result<u64> {
        let mut b = [0u8; 8];
        self.r.read_exact(&mut b[..bytes])?;
        Ok(self.parse(&b[..bytes]))
    }

    fn parse(&self, b: &[u8]) -> u64 {
        let mut v = 0u64;
        for i in 0..b.len() {
            let byte = if self.big_endian {
                b[i]
            } else {
                b[b.len() - 1 - i]
            };
            v = v << 8 | u64::from(byte);
        }
        v
    }

    /// The values of an entry (`typ`, `count`, its raw value field) of type SHORT, LONG or
    /// LONG8; `None` for other types or more than 2^18 values (which the TIFF decoder refuses).
    fn values(&mut self, typ: u16, count: u64, field: &[u8]) -> std::io::Result<Option<Vec<u64>>> {
        let size = match typ {
            3 => 2,
            4 => 4,
            16 => 8,
            _ => return Ok(None),
        };
        if count > 1 << 18 {
            return Ok(None);
        }
        let bytes = size * count as usize;
        let raw = if bytes <= field.len() {
            field[..bytes].to_vec()
        } else {
            let offset = self.parse(field);
            self.r.seek(SeekFrom::Start(offset))?;
            let mut raw = vec![0; bytes];
            self.r.read_exact(&mut raw)?;
            raw
        };
        Ok(Some(
            raw.chunks_exact(size).map(|c| self.parse(c)).collect(),
        ))
    }
}

/// The frame size (`width`, `height`) in the JPEG stream at the reader's position, `None` when
/// none comes before the first scan.
fn jpeg_frame_size<R: Read + Seek>(r: &mut R) -> std::io::Result<Option<(u64, u64)>> {
    if read_array::<2, _>(r)? != [0xFF, 0xD8] {
        return Ok(None);
    }
    for _ in 0..256 {
        let mut m = read_array::<2, _>(r)?;
        while m[0] == 0xFF && m[1] == 0xFF {
            m[1] = read_array::<1, _>(r)?[0]; // fill bytes
        }
        match m {
            [0xFF, 0xC0..=0xCF] if !matches!(m[1], 0xC4 | 0xC8 | 0xCC) => {
                let f: [u8; 7] = read_array(r)?; // length, precision, height, width
                let h = u64::from(u16::from_be_bytes([f[3], f[4]]));
                let w = u64::from(u16::from_be_bytes([f[5], f[6]]));
                return Ok(Some((w, h)));
            }
            [0xFF, 0xDA | 0xD9] => return Ok(None),
            [0xFF, 0x01 | 0xD0..=0xD7] => {}
            [0xFF, _] => {
                let len = u16::from_be_bytes(read_array(r)?);
                r.seek_relative(i64::from(len) - 2)?;
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// A message when a strip or tile of a JPEG-compressed TIFF's first page holds a JPEG frame larger
/// than the strip or tile (rounded up to whole 16-pixel blocks), `None` when all fit or the page
/// is not JPEG-compressed.
fn tiff_jpeg_chunks_fit<R: Read + Seek>(r: &mut R) -> std::io::Result<Option<String>> {
    let header: [u8; 4] = read_array(r)?;
    let (big_endian, big_tiff) = match header {
        [b'I', b'I', 42, 0] => (false, false),
        [b'M', b'M', 0, 42] => (true, false),
        [b'I', b'I', 43, 0] => (false, true),
        [b'M', b'M', 0, 43] => (true, true),
        _ => return Ok(None),
    };
    let mut t = TiffReader {
        r,
        big_endian,
        big_tiff,
    };
    let ifd = if t.big_tiff {
        t.uint(4)?; // offset size, reserved
        t.uint(8)?
    } else {
        t.uint(4)?
    };
    t.r.seek(SeekFrom::Start(ifd))?;
    let (count_bytes, len_bytes, field_bytes) = if t.big_tiff { (8, 8, 8) } else { (2, 4, 4) };
    let entries = t.uint(count_bytes)?;
    if entries > 4096 {
        return Ok(None);
    }
    let mut tags = std::collections::HashMap::new();
    for _ in 0..entries {
        let tag = t.uint(2)? as u16;
        let typ = t.uint(2)? as u16;
        let count = t.uint(len_bytes)?;
        let mut field = vec![0; field_bytes];
        t.r.read_exact(&mut field)?;
        tags.insert(tag, (typ, count, field));
    }
    let mut get = |t: &mut TiffReader<'_, R>, tag: u16| -> std::io::Result<Option<Vec<u64>>> {
        match tags.remove(&tag) {
            Some((typ, count, field)) => t.values(typ, count, &field),
            None => Ok(None),
        }
    };
    let first = |v: Option<Vec<u64>>| v.and_then(|v| v.first().copied());
    if first(get(&mut t, 259)?) != Some(7) {
        return Ok(None); // not (new-style) JPEG
    }
    let (w, h) = match (first(get(&mut t, 256)?), first(get(&mut t, 257)?)) {
        (Some(w), Some(h)) => (w, h),
        _ => return Ok(None),
    };
    let (chunk_w, chunk_h, offsets, counts) = match first(get(&mut t, 322)?) {
        Some(tile_w) => (
            tile_w,
            first(get(&mut t, 323)?).unwrap_or(h),
            get(&mut t, 324)?,
            get(&mut t, 325)?,
        ),
        None => (
            w,
            first(get(&mut t, 278)?).unwrap_or(h).min(h),
            get(&mut t, 273)?,
            get(&mut t, 279)?,
        ),
    };
    let (Some(offsets), Some(_)) = (offsets, counts) else {
        return Ok(None);
    };
    let (max_w, max_h) = (chunk_w.next_multiple_of(16), chunk_h.next_multiple_of(16));
    for (i, &offset) in offsets.iter().enumerate() {
        t.r.seek(SeekFrom::Start(offset))?;
        match jpeg_frame_size(t.r) {
            Ok(Some((fw, fh))) if fw > max_w || fh > max_h => {
                return Ok(Some(format!(
                    "JPEG data of strip or tile {i} is {fw}x{fh}, larger than its {chunk_w}x{chunk_h}"
                )));
            }
            // A strip cut short is the decoder's to report.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn decode_reader<R: BufRead + Seek>(
    reader: ImageReader<R>,
    path: &Path,
    limits: &DecodeLimits,
) -> Result<DecodedImage, CoreError> {
    let decode_err = |source| CoreError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let reader = reader
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
    let mut inner = reader.into_inner();
    prescan(&mut inner, format, path, limits)?;
    let mut reader = ImageReader::with_format(inner, format);
    reader.limits(header_limits());
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
    // Now that the size is known (and within max_pixels), the decoder's own buffers are bounded by
    // it; the output buffer itself is `total_bytes`, allocated by `from_decoder`.
    let mut pixel_limits = image::Limits::default();
    pixel_limits.max_alloc = Some(decoder_alloc_limit(decoder.total_bytes()));
    decoder.set_limits(pixel_limits).map_err(decode_err)?;
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

/// Writes `image` to `path` as `format`, atomically: the encoder writes into a temporary file in
/// the same folder, which is renamed onto `path` only once complete. With `overwrite == false` an
/// existing `path` is never replaced (the rename itself refuses, so there is no check-then-write
/// race).
///
/// # Errors
/// [`CoreError::Io`] if the folder is not writable (or after [`abandon_writes`]),
/// [`CoreError::Encode`] if encoding fails, [`CoreError::OutputExists`] if `path` exists and
/// `overwrite` is false. On any error no file is left at `path` (an existing one is untouched)
/// and the temporary file is removed.
pub fn encode_image_atomic(
    image: &DynamicImage,
    path: &Path,
    format: OutputFormat,
    overwrite: bool,
) -> Result<(), CoreError> {
    // Encoded straight into the temporary file: the encoded bytes are never held in memory.
    write_atomic(path, overwrite, |w| {
        write_encoded(image, format, w).map_err(|source| CoreError::Encode {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
///
/// # Errors
/// [`CoreError::Io`] for file-system errors (and after [`abandon_writes`]),
/// [`CoreError::OutputExists`] if `path` exists and `overwrite` is false.
pub fn write_file_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), CoreError> {
    write_atomic(path, overwrite, |w| {
        w.write_all(bytes).map_err(|source| CoreError::Io {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// The temporary files of the writes in progress, and whether [`abandon_writes`] was called.
struct InFlight {
    temp_files: Vec<PathBuf>,
    abandoned: bool,
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight {
    temp_files: Vec::new(),
    abandoned: false,
});

fn in_flight() -> MutexGuard<'static, InFlight> {
    // The list stays meaningful even if a thread panicked while holding the lock.
    IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Removes the temporary file of every write in progress ([`write_file_atomic`],
/// [`encode_image_atomic`]) and makes those writes, and all later ones, fail with
/// [`CoreError::Io`] (`Interrupted`) instead of renaming anything into place. For a Ctrl+C handler
/// that is about to exit: outputs already renamed stay complete, the ones in progress never
/// appear, and no `.colorize-*.tmp` file is left behind. Returns how many files were removed.
pub fn abandon_writes() -> usize {
    let mut live = in_flight();
    live.abandoned = true;
    live.temp_files
        .drain(..)
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count()
}

fn write_atomic(
    path: &Path,
    overwrite: bool,
    fill: impl FnOnce(&mut BufWriter<&mut File>) -> Result<(), CoreError>,
) -> Result<(), CoreError> {
    let io_err = |source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let interrupted = || {
        io_err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "interrupted; nothing written",
        ))
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
    // Created and registered under the lock, so that `abandon_writes` sees every temporary file
    // that exists.
    let mut tmp = {
        let mut live = in_flight();
        if live.abandoned {
            return Err(interrupted());
        }
        let tmp = tempfile::Builder::new()
            .prefix(".colorize-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(io_err)?;
        live.temp_files.push(tmp.path().to_path_buf());
        tmp
    };
    let written = (|| {
        // tempfile creates files readable by the owner only; outputs are ordinary files (0644
        // before the umask), like those `cp` or an image editor would write.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io_err)?;
        }
        {
            let mut w = BufWriter::new(tmp.as_file_mut());
            fill(&mut w)?;
            w.flush().map_err(io_err)?;
        }
        tmp.as_file().sync_all().map_err(io_err)
    })();
    let mut live = in_flight();
    live.temp_files.retain(|p| p != tmp.path());
    if live.abandoned {
        return Err(interrupted()); // `tmp` is already gone; dropping it is a no-op
    }
    written?; // dropping `tmp` removes it
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
    drop(live);
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
