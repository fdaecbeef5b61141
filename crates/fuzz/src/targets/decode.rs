//! `decode`: mutated image files through decoding and the colour pipeline.
//!
//! Each input is decoded by [`colorize_core::io::decode_image_bytes`] under a 1-megapixel
//! [`DecodeLimits`]. A decoded image then goes through the parts of the pipeline that need no
//! network: its CIELAB L ([`lightness_of`]) and full conversion ([`LabImage::from_image`]), the
//! join with ab planes at a smaller size ([`LabImage::join`]), the way back to sRGB, the output
//! pixels ([`to_output_pixels`]) and encoding ([`encode_image_bytes`]) in one of the six output
//! formats, and for small images decoding the result again. Every 16th decoded image also goes
//! through a tiny [`Colorizer`] at render size 32.
//!
//! Crashes besides panics: L outside `0..=100` or not finite, an output that does not decode to
//! the same size.

use std::path::{Path, PathBuf};

use colorize_core::io::{OutputFormat, decode_image_bytes, encode_image_bytes, to_output_pixels};
use colorize_core::lab::lightness_of;
use colorize_core::{CoreError, DecodeLimits, LabImage};
use colorize_models::Colorizer;

use crate::mutate::mutate;
use crate::rng::Rng;
use crate::seeds::{Seed, image_seeds};
use crate::targets::{Target, TargetOptions};

/// Largest image the target decodes: 1 megapixel keeps an execution fast (a mutated header
/// often declares a large image, and a 4-megapixel one takes up to a second through the
/// pipeline); the limit logic is exercised all the same by larger declared sizes.
pub const MAX_PIXELS: u64 = 1_000_000;

/// The `decode` target.
pub struct Decode {
    seeds: Vec<Seed>,
    colorizer: Option<(tempfile::TempDir, Colorizer)>,
    thorough: bool,
}

impl std::fmt::Debug for Decode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decode")
            .field("seeds", &self.seeds.len())
            .finish()
    }
}

impl Decode {
    /// The seed files.
    pub fn seeds(&self) -> &[Seed] {
        &self.seeds
    }

    fn colorizer(&mut self) -> Result<&Colorizer, String> {
        if self.colorizer.is_none() {
            let (tmp, dir) = crate::targets::model_dir::tiny_model(false)?;
            let c = Colorizer::load(&dir, &burn::prelude::Device::flex())
                .map_err(|e| e.to_string())?
                .with_render_size(32);
            self.colorizer = Some((tmp, c));
        }
        Ok(&self.colorizer.as_ref().expect("set above").1)
    }
}

fn error_kind(e: &CoreError) -> &'static str {
    match e {
        CoreError::EmptyFile { .. } => "empty",
        CoreError::Decode { .. } => "decode-error",
        CoreError::LimitsExceeded { .. } => "too-large",
        CoreError::NoPixels { .. } => "no-pixels",
        CoreError::Io { .. } => "io",
        _ => "other-error",
    }
}

const FORMATS: [OutputFormat; 6] = [
    OutputFormat::Png,
    OutputFormat::Jpeg,
    OutputFormat::Tiff,
    OutputFormat::Bmp,
    OutputFormat::WebP,
    OutputFormat::Gif,
];

fn check_lightness(l: &[f32], what: &str) -> Result<(), String> {
    match l
        .iter()
        .find(|v| !(v.is_finite() && (-1e-3..=100.001).contains(*v)))
    {
        Some(v) => Err(format!("{what}: L value {v} outside 0..=100")),
        None => Ok(()),
    }
}

impl Target for Decode {
    type Input = Vec<u8>;
    const NAME: &'static str = "decode";

    fn new(options: &TargetOptions) -> Self {
        Self {
            seeds: image_seeds(options.data_dir.as_deref(), options.corpus.as_deref(), 64),
            colorizer: None,
            thorough: false,
        }
    }

    fn generate(&mut self, rng: &mut Rng, _index: u64) -> Vec<u8> {
        let a = rng.below(self.seeds.len());
        let b = rng.below(self.seeds.len());
        let mut data = self.seeds[a].bytes.clone();
        if !rng.one_in(32) {
            mutate(rng, &mut data, &self.seeds[b].bytes);
        }
        data
    }

    fn exec(&mut self, input: &Vec<u8>, index: u64) -> Result<String, String> {
        let limits = DecodeLimits {
            max_pixels: MAX_PIXELS,
        };
        let decoded = match decode_image_bytes(input, Path::new("fuzz-input"), &limits) {
            Ok(d) => d,
            Err(e) => return Ok(error_kind(&e).to_string()),
        };
        let image = &decoded.image;
        let (w, h) = (image.width() as usize, image.height() as usize);
        let pixels = w * h;

        // The L plane the pipeline keeps, and the full conversion.
        let (lw, lh, l) = lightness_of(image);
        if (lw, lh) != (w, h) || l.len() != pixels {
            return Err(format!(
                "lightness_of: {lw}x{lh} with {} values for a {w}x{h} image",
                l.len()
            ));
        }
        check_lightness(&l, "lightness_of")?;
        let lab = LabImage::from_image(image);
        check_lightness(&lab.l, "LabImage::from_image")?;

        // Join with ab predicted at a smaller size, back to sRGB, output pixels, encoding.
        let (aw, ah) = ((w / 3).max(1), (h / 3).max(1));
        let a: Vec<f32> = (0..aw * ah)
            .map(|i| ((i * 37) % 220) as f32 - 110.0)
            .collect();
        let b: Vec<f32> = (0..aw * ah)
            .map(|i| ((i * 91) % 220) as f32 - 110.0)
            .collect();
        let joined = LabImage::join(w, h, l, aw, ah, &a, &b);
        let rgb = joined.to_rgb32f();
        let small = pixels <= 64 * 1024;
        // GIF and WebP encoders are slow on big images; the others take any size.
        let format = if small {
            FORMATS[(index % 6) as usize]
        } else {
            FORMATS[(index % 3) as usize]
        };
        let out = to_output_pixels(rgb, format, decoded.is_high_bit_depth());
        let encoded = match encode_image_bytes(&out, format, Path::new("fuzz-output")) {
            Ok(e) => e,
            Err(e) => {
                return Ok(
                    format!("encode-error:{}", format.extension()).replace(' ', "_")
                        + &format!("({})", error_kind(&e)),
                );
            }
        };
        if small || self.thorough {
            let back =
                decode_image_bytes(&encoded, Path::new("fuzz-output"), &limits).map_err(|e| {
                    format!("our own {} output does not decode: {e}", format.extension())
                })?;
            if (back.image.width(), back.image.height()) != (w as u32, h as u32) {
                return Err(format!(
                    "{w}x{h} encoded as {} decodes as {}x{}",
                    format.extension(),
                    back.image.width(),
                    back.image.height()
                ));
            }
        }

        // Every 16th image through a tiny network.
        if index.is_multiple_of(16) || self.thorough {
            let image = decoded.image.clone();
            let c = self.colorizer()?;
            let rgb = c
                .colorize(&image)
                .map_err(|e| format!("tiny colorizer: {e}"))?;
            if (rgb.width(), rgb.height()) != (w as u32, h as u32) {
                return Err(format!(
                    "colourised {w}x{h} came back {}x{}",
                    rgb.width(),
                    rgb.height()
                ));
            }
            let out = to_output_pixels(rgb, OutputFormat::Png, decoded.is_high_bit_depth());
            encode_image_bytes(&out, OutputFormat::Png, Path::new("fuzz-colorized"))
                .map_err(|e| format!("colourised PNG: {e}"))?;
            return Ok(format!("colorized:{}", format_name(decoded.format)));
        }
        Ok(format!("decoded:{}", format_name(decoded.format)))
    }

    fn thorough(&mut self) {
        self.thorough = true;
    }

    fn save(input: &Vec<u8>, stem: &Path) -> std::io::Result<PathBuf> {
        let path = stem.with_extension("bin");
        std::fs::write(&path, input)?;
        Ok(path)
    }

    fn load(path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

fn format_name(f: image::ImageFormat) -> String {
    f.extensions_str()
        .first()
        .copied()
        .unwrap_or("unknown")
        .to_string()
}
