//! Planar CIELAB images and the join of a full-size L with ab predicted at the render size.

use image::{DynamicImage, Rgb32FImage};

use rayon::prelude::*;

use crate::color::{
    SRGB_TO_XYZ, SRGB8_TO_LINEAR, lab_planar_to_srgb, lightness_from_luminance, srgb_to_lab_planar,
    srgb_to_lightness,
};
use crate::resize::resize_plane;

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

/// The CIELAB L plane (`0..=100`) of any image; for a colour image this is its gray version.
///
/// Returns `(width, height, l)` with `l.len() == width * height`.
pub fn lightness_of(image: &DynamicImage) -> (usize, usize, Vec<f32>) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    // 8-bit images (nearly every photo) skip the float copy: the transfer curve is a table, and a
    // gray image has only 256 possible L values.
    let lin = &*SRGB8_TO_LINEAR;
    let y_of = |r: u8, g: u8, b: u8| {
        SRGB_TO_XYZ[1][0] * lin[r as usize]
            + SRGB_TO_XYZ[1][1] * lin[g as usize]
            + SRGB_TO_XYZ[1][2] * lin[b as usize]
    };
    const CHUNK: usize = 16 * 1024;
    // One L per gray code value.
    let table: [f32; 256] =
        std::array::from_fn(|v| lightness_from_luminance(y_of(v as u8, v as u8, v as u8)));
    // Gray pixels (`step` bytes each, gray first).
    let gray = |raw: &[u8], step: usize| -> Vec<f32> {
        raw.par_chunks_exact(step)
            .with_min_len(CHUNK)
            .map(|p| table[p[0] as usize])
            .collect()
    };
    // Colour pixels (`step` bytes each, RGB first). Gray ones (a scanned black-and-white photo
    // or film frame stored as RGB) take the table.
    let colour = |raw: &[u8], step: usize| -> Vec<f32> {
        raw.par_chunks_exact(step)
            .with_min_len(CHUNK)
            .map(|p| {
                if p[0] == p[1] && p[1] == p[2] {
                    table[p[0] as usize]
                } else {
                    lightness_from_luminance(y_of(p[0], p[1], p[2]))
                }
            })
            .collect()
    };
    match image {
        DynamicImage::ImageLuma8(g) => (w, h, gray(g.as_raw(), 1)),
        DynamicImage::ImageLumaA8(g) => (w, h, gray(g.as_raw(), 2)),
        DynamicImage::ImageRgb8(rgb) => (w, h, colour(rgb.as_raw(), 3)),
        DynamicImage::ImageRgba8(rgba) => (w, h, colour(rgba.as_raw(), 4)),
        _ => {
            let rgb = image.to_rgb32f();
            (w, h, srgb_to_lightness(rgb.as_raw()))
        }
    }
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
