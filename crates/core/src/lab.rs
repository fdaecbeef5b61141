//! Planar CIELAB images and the join of a full-size L with ab predicted at the render size.

use std::sync::LazyLock;

use image::{DynamicImage, Rgb32FImage};

use rayon::prelude::*;

use crate::color::{
    SRGB_TO_XYZ, SRGB8_TO_LINEAR, lab_planar_to_srgb, lab_to_srgb_pixel_gamut_mapped,
    lightness_from_luminance, srgb_to_lab_planar, srgb_to_lightness, srgb_to_lightness_into,
};
use crate::resize::{RowResizer, STRIP_ROWS, resize_plane};

/// A CIELAB image in planar layout: three row-major planes of `width * height` values.
///
/// L in `0..=100`; a and b roughly `-128..=127` (CIE 15:2004, D65).
#[derive(Debug, Clone, PartialEq)]
pub struct LabImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Lightness L, `0..=100`.
    pub l: Vec<f32>,
    /// Green–red opponent a.
    pub a: Vec<f32>,
    /// Blue–yellow opponent b.
    pub b: Vec<f32>,
}

impl LabImage {
    /// Converts an sRGB image (any colour type; 8/16-bit or float) to CIELAB.
    pub fn from_image(image: &DynamicImage) -> Self {
        Self::from_rgb32f(&image.to_rgb32f())
    }

    /// Converts an sRGB float image (components `0.0..=1.0`) to CIELAB.
    pub fn from_rgb32f(rgb: &Rgb32FImage) -> Self {
        let (width, height) = (rgb.width() as usize, rgb.height() as usize);
        let n = width * height;
        let (mut l, mut a, mut b) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        srgb_to_lab_planar(rgb.as_raw(), &mut l, &mut a, &mut b);
        Self {
            width,
            height,
            l,
            a,
            b,
        }
    }

    /// A neutral image (`a = b = 0`) with the given L plane (`width * height` values, `0..=100`).
    ///
    /// # Panics
    /// If `l.len() != width * height`.
    pub fn gray(width: usize, height: usize, l: Vec<f32>) -> Self {
        assert_eq!(l.len(), width * height);
        let n = l.len();
        Self {
            width,
            height,
            l,
            a: vec![0.0; n],
            b: vec![0.0; n],
        }
    }

    /// Joins a full-size L plane with a and b planes predicted at another size (the render size):
    /// a and b are resized bilinearly to `width x height` (see [`resize_plane`]) and L is kept
    /// exactly. This is the heart of the pipeline: the network never touches the full-resolution
    /// detail, which lives in L.
    ///
    /// # Panics
    /// If a plane's length does not match its stated size.
    pub fn join(
        width: usize,
        height: usize,
        l: Vec<f32>,
        ab_width: usize,
        ab_height: usize,
        a: &[f32],
        b: &[f32],
    ) -> Self {
        assert_eq!(l.len(), width * height);
        Self {
            width,
            height,
            l,
            a: resize_plane(a, ab_width, ab_height, width, height),
            b: resize_plane(b, ab_width, ab_height, width, height),
        }
    }

    /// Converts to 8-bit sRGB with L-preserving gamut mapping (as [`LabImage::to_rgb32f`]
    /// rounded, within one level; faster, with no float image in between).
    pub fn to_rgb8(&self) -> image::RgbImage {
        let mut rgb = vec![0u8; 3 * self.width * self.height];
        crate::color::lab_planar_to_srgb8(&self.l, &self.a, &self.b, &mut rgb);
        image::RgbImage::from_raw(self.width as u32, self.height as u32, rgb)
            .expect("buffer sized from width and height")
    }

    /// Converts to sRGB floats (`0.0..=1.0`) with L-preserving gamut mapping.
    pub fn to_rgb32f(&self) -> Rgb32FImage {
        let mut rgb = vec![0.0f32; 3 * self.width * self.height];
        lab_planar_to_srgb(&self.l, &self.a, &self.b, &mut rgb);
        Rgb32FImage::from_raw(self.width as u32, self.height as u32, rgb)
            .expect("buffer sized from width and height")
    }
}

/// L (`0..=100`) of every 8-bit gray code value.
static GRAY8_LIGHTNESS: LazyLock<[f32; 256]> = LazyLock::new(|| {
    std::array::from_fn(|v| lightness_from_luminance(luminance8(v as u8, v as u8, v as u8)))
});

/// L of every 16-bit gray code value, computed the way every other photo is (through image's
/// `f32` conversion and [`srgb_to_lightness`]), so that 16-bit gray photos, the usual
/// high-bit-depth scan, take a table lookup with the same values.
static GRAY16_LIGHTNESS: LazyLock<Vec<f32>> = LazyLock::new(|| {
    let ramp = image::ImageBuffer::from_fn(1 << 16, 1, |x, _| image::Luma([x as u16]));
    srgb_to_lightness(DynamicImage::ImageLuma16(ramp).to_rgb32f().as_raw())
});

/// Relative luminance Y of an 8-bit sRGB colour.
#[inline]
fn luminance8(r: u8, g: u8, b: u8) -> f32 {
    let lin = &*SRGB8_TO_LINEAR;
    SRGB_TO_XYZ[1][0] * lin[r as usize]
        + SRGB_TO_XYZ[1][1] * lin[g as usize]
        + SRGB_TO_XYZ[1][2] * lin[b as usize]
}

/// Where a photo's full-size L plane comes from, a band of rows at a time, so that the pipeline
/// never has to hold it whole (a 100-megapixel L plane is 400 MB of `f32`; the 8-bit gray photo it
/// comes from is 100 MB).
#[derive(Debug, Clone, Copy)]
pub enum Lightness<'a> {
    /// Computed from a decoded photo row by row, as [`lightness_of`] computes it (8-bit and
    /// 16-bit gray photos by table lookup, others through `f32` sRGB one band at a time); a colour
    /// photo gives its gray version.
    Image(&'a DynamicImage),
    /// An L plane already computed: `width * height` values, `0..=100`, row-major.
    Plane {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The values.
        l: &'a [f32],
    },
}

impl Lightness<'_> {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        match self {
            Self::Image(i) => i.width() as usize,
            Self::Plane { width, .. } => *width,
        }
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        match self {
            Self::Image(i) => i.height() as usize,
            Self::Plane { height, .. } => *height,
        }
    }

    /// Writes L (`0..=100`) of rows `first..first + out.len() / width` into `out`, row-major.
    /// Only the rows asked for are converted; a band of `n` rows of a 16-bit or float photo
    /// allocates `12 · width · n` bytes while it is converted.
    ///
    /// # Panics
    /// If `out.len()` is not a multiple of the width, the rows run past the height, or a
    /// [`Lightness::Plane`] holds fewer than `width * height` values.
    pub fn rows(&self, first: usize, out: &mut [f32]) {
        let w = self.width();
        assert_eq!(out.len() % w, 0, "whole rows only");
        let n = out.len() / w;
        assert!(first + n <= self.height(), "rows past the image");
        let image = match self {
            Self::Plane { l, .. } => {
                out.copy_from_slice(&l[first * w..(first + n) * w]);
                return;
            }
            Self::Image(image) => image,
        };
        let table = &*GRAY8_LIGHTNESS;
        // Gray pixels (`step` bytes each, gray first).
        let gray = |raw: &[u8], step: usize, out: &mut [f32]| {
            let raw = &raw[first * w * step..(first + n) * w * step];
            for (o, p) in out.iter_mut().zip(raw.chunks_exact(step)) {
                *o = table[p[0] as usize];
            }
        };
        // Colour pixels (`step` bytes each, RGB first). Gray ones (a scanned black-and-white
        // photo or film frame stored as RGB) take the table.
        let colour = |raw: &[u8], step: usize, out: &mut [f32]| {
            let raw = &raw[first * w * step..(first + n) * w * step];
            for (o, p) in out.iter_mut().zip(raw.chunks_exact(step)) {
                *o = if p[0] == p[1] && p[1] == p[2] {
                    table[p[0] as usize]
                } else {
                    lightness_from_luminance(luminance8(p[0], p[1], p[2]))
                };
            }
        };
        match image {
            DynamicImage::ImageLuma8(g) => gray(g.as_raw(), 1, out),
            DynamicImage::ImageLumaA8(g) => gray(g.as_raw(), 2, out),
            DynamicImage::ImageRgb8(rgb) => colour(rgb.as_raw(), 3, out),
            DynamicImage::ImageRgba8(rgba) => colour(rgba.as_raw(), 4, out),
            DynamicImage::ImageLuma16(g) => {
                let table = &*GRAY16_LIGHTNESS;
                let raw = &g.as_raw()[first * w..(first + n) * w];
                for (o, &v) in out.iter_mut().zip(raw) {
                    *o = table[v as usize];
                }
            }
            _ => {
                // The same conversion as on the whole image, on a copy of these rows only.
                let band = image
                    .crop_imm(0, first as u32, w as u32, n as u32)
                    .to_rgb32f();
                srgb_to_lightness_into(band.as_raw(), out);
            }
        }
    }

    /// The whole L plane, `width * height` values (computed in parallel bands).
    pub fn to_plane(&self) -> Vec<f32> {
        let w = self.width();
        let mut l = vec![0.0f32; w * self.height()];
        l.par_chunks_mut(STRIP_ROWS * w)
            .enumerate()
            .for_each(|(i, band)| self.rows(i * STRIP_ROWS, band));
        l
    }
}

/// The CIELAB L plane (`0..=100`) of any image; for a colour image this is its gray version.
///
/// Returns `(width, height, l)` with `l.len() == width * height`. 8-bit images (nearly every
/// photo) skip the float copy: the transfer curve is a table, and a gray image has only 256
/// possible L values. See [`Lightness`] for the same values a band at a time.
pub fn lightness_of(image: &DynamicImage) -> (usize, usize, Vec<f32>) {
    let src = Lightness::Image(image);
    (src.width(), src.height(), src.to_plane())
}

/// The sample type [`join_to_srgb`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleDepth {
    /// 8-bit sRGB codes (`0..=255`): [`DynamicImage::ImageRgb8`].
    Eight,
    /// 16-bit sRGB codes (`0..=65535`): [`DynamicImage::ImageRgb16`].
    Sixteen,
    /// `f32` sRGB (`0.0..=1.0`): [`DynamicImage::ImageRgb32F`].
    Float,
}

impl SampleDepth {
    /// Bytes per pixel of an RGB image of this depth: 3, 6 or 12.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Eight => 3,
            Self::Sixteen => 6,
            Self::Float => 12,
        }
    }
}

/// A float sRGB component (`0.0..=1.0`, clamped) → the nearest 8-bit code. Rounding is
/// `+ 0.5` then truncation (the value is non-negative), which vectorises.
#[inline]
pub fn quantize8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

/// A float sRGB component (`0.0..=1.0`, clamped) → the nearest 16-bit code.
#[inline]
pub fn quantize16(v: f32) -> u16 {
    (v.clamp(0.0, 1.0) * 65535.0 + 0.5) as u16
}

/// Joins full-size L with a and b predicted at another size and converts to sRGB
/// (L-preserving gamut mapping, [`crate::color::lab_to_srgb_pixel_gamut_mapped`]) a band of
/// [`STRIP_ROWS`] rows at a time, straight into an RGB image of `depth`.
///
/// - `l`: the photo's L, `width x height` (its size is the output's).
/// - `a`, `b`: `ab_width * ab_height` values each (CIELAB units), enlarged bilinearly (or
///   filtered, see [`resize_plane`]) to the photo's size.
///
/// The pixels are exactly those of [`LabImage::join`] followed by [`LabImage::to_rgb32f`] (and,
/// for 8 or 16 bits, [`quantize8`] / [`quantize16`] of each component), but neither the
/// full-size a and b planes nor a float RGB image are ever held: besides the output
/// (`depth.bytes_per_pixel()` bytes per pixel) this allocates `ab_height x width` values per
/// plane (the horizontal pass of the enlargement) and `12 · width · STRIP_ROWS` bytes per thread.
///
/// # Panics
/// If `a` or `b` does not hold `ab_width * ab_height` values, or a size is zero.
pub fn join_to_srgb(
    l: &Lightness,
    ab_width: usize,
    ab_height: usize,
    a: &[f32],
    b: &[f32],
    depth: SampleDepth,
) -> DynamicImage {
    let (w, h) = (l.width(), l.height());
    let a = RowResizer::new(a, ab_width, ab_height, w, h);
    let b = RowResizer::new(b, ab_width, ab_height, w, h);
    let (w32, h32) = (w as u32, h as u32);
    match depth {
        SampleDepth::Eight => {
            let mut px = vec![0u8; 3 * w * h];
            join_into(l, &a, &b, &mut px, |lab| {
                lab_to_srgb_pixel_gamut_mapped(lab).map(quantize8)
            });
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w32, h32, px).expect("sized"))
        }
        SampleDepth::Sixteen => {
            let mut px = vec![0u16; 3 * w * h];
            join_into(l, &a, &b, &mut px, |lab| {
                lab_to_srgb_pixel_gamut_mapped(lab).map(quantize16)
            });
            DynamicImage::ImageRgb16(image::ImageBuffer::from_raw(w32, h32, px).expect("sized"))
        }
        SampleDepth::Float => {
            let mut px = vec![0f32; 3 * w * h];
            join_into(l, &a, &b, &mut px, lab_to_srgb_pixel_gamut_mapped);
            DynamicImage::ImageRgb32F(Rgb32FImage::from_raw(w32, h32, px).expect("sized"))
        }
    }
}

/// Fills interleaved pixels (`3 · width · height` values) from L and the two resizers, a band
/// of rows per rayon task.
fn join_into<T: Send>(
    l: &Lightness,
    a: &RowResizer,
    b: &RowResizer,
    out: &mut [T],
    px: impl Fn([f32; 3]) -> [T; 3] + Sync,
) {
    let w = l.width();
    assert_eq!(out.len(), 3 * w * l.height());
    assert_eq!((a.width(), a.height()), (w, l.height()));
    assert_eq!((b.width(), b.height()), (w, l.height()));
    out.par_chunks_mut(3 * STRIP_ROWS * w)
        .enumerate()
        .for_each(|(i, out)| {
            let first = i * STRIP_ROWS;
            let n = out.len() / (3 * w);
            let mut lab = vec![0.0f32; 3 * n * w];
            let (lp, ab) = lab.split_at_mut(n * w);
            let (ap, bp) = ab.split_at_mut(n * w);
            l.rows(first, lp);
            a.rows(first, ap);
            b.rows(first, bp);
            for (k, o) in out.chunks_exact_mut(3).enumerate() {
                let [r, g, bl] = px([lp[k], ap[k], bp[k]]);
                o[0] = r;
                o[1] = g;
                o[2] = bl;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rgb_lab_round_trip_on_all_8bit_grays_and_some_colours() {
        let mut px = Vec::new();
        for v in 0..=255u8 {
            px.extend_from_slice(&[v, v, v]);
            px.extend_from_slice(&[v, 255 - v, v / 2]);
        }
        let w = px.len() as u32 / 3;
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, 1, px.clone()).unwrap());
        let back = LabImage::from_image(&img).to_rgb32f();
        let back8 = DynamicImage::ImageRgb32F(back).into_rgb8();
        assert_eq!(back8.as_raw(), &px);
    }
}
