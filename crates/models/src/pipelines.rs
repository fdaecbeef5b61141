//! The published colourisers' own photo-level pipelines, so an imported model gives the photo its
//! authors' code gives (`config.json`'s `io.pipeline`; colorize's own CIELAB pipeline is the
//! default).
//!
//! - **`zhang`** (richzhang/colorization `demo_release.py` and `colorizers/util.py`,
//!   `../shared/reference/zhang.md` §3): the 8-bit RGB photo resized to the network size with
//!   Pillow's bicubic filter; skimage's `rgb2lab` L of the resized and of the full-size photo; the
//!   network's ab enlarged with PyTorch's bilinear `interpolate` (`align_corners = false`, no
//!   antialiasing); skimage's `lab2rgb` of the full-size L with that ab, clipped, and
//!   `floor(255 · x)` as matplotlib's `imsave` stores it.
//! - **`deoldify`** (jantic/DeOldify `filters.py`, `../shared/reference/deoldify.md` §2, §7): the
//!   photo stretched to the square network size with Pillow's bilinear filter, made gray with
//!   Pillow's ITU-R 601 luma, normalised with ImageNet statistics; the network's RGB denormalised,
//!   clamped and truncated to 8 bits, resized back with Pillow's bilinear filter, and its chroma
//!   joined with the original's luma in OpenCV's 8-bit YUV.
//!
//! - **`ddcolor`** (piddnad/DDColor `ddcolor/pipeline.py`, `ColorizationPipeline.process`,
//!   `../shared/reference/ddcolor.md` §4): the 8-bit photo as float RGB, OpenCV's float Lab L at
//!   full size; the photo stretched to the square network size with `cv2.resize` (bilinear, no
//!   antialiasing), its Lab L made neutral gray RGB (`Lab2RGB` of `(L, 0, 0)`) and normalised
//!   with the model's mean/std; the network's ab enlarged with PyTorch's nearest `interpolate`,
//!   joined with the full-size L, `Lab2RGB`, `round(255 · x)` (half to even). OpenCV's Lab and
//!   resize are [`colorize_core::opencv`].
//!
//! Pillow's resampling (a separable fixed-point convolution, horizontal pass first, antialiased
//! when shrinking), Pillow's luma, OpenCV's YUV and skimage's Lab are written from the exact
//! formulas in `deoldify.md` §7 and `zhang.md` §3.

use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::colorizer::{Colorizer, NetworkInput};
use crate::error::ModelError;
use crate::hints::Hint;
use crate::model_io::{InputKind, OutputKind};

/// Which photo-level pipeline runs around the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pipeline {
    /// colorize's own: the photo's full-resolution CIELAB L kept, the network's ab enlarged
    /// bilinearly and joined with it, L-preserving gamut mapping.
    #[default]
    Colorize,
    /// Zhang et al.'s demo (eccv16, siggraph17): Pillow bicubic, skimage Lab.
    Zhang,
    /// DeOldify's `ColorizerFilter`: Pillow bilinear, 601 luma, OpenCV YUV luminance transfer.
    Deoldify,
    /// DDColor's `ColorizationPipeline`: OpenCV float Lab and bilinear resize, PyTorch nearest
    /// upsampling of ab.
    Ddcolor,
}

/// Pillow's resampling filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BILINEAR`: triangle, support 1.
    Bilinear,
    /// `Image.BICUBIC`: Keys cubic with `a = −0.5`, support 2.
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Self::Bilinear => 1.0,
            Self::Bicubic => 2.0,
        }
    }

    fn weight(self, t: f64) -> f64 {
        let t = t.abs();
        match self {
            Self::Bilinear => (1.0 - t).max(0.0),
            Self::Bicubic => {
                let a = -0.5;
                if t < 1.0 {
                    ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
                } else if t < 2.0 {
                    (((t - 5.0) * t + 8.0) * t - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

/// Pillow's fixed-point precision (`PRECISION_BITS = 32 − 8 − 2`).
const PRECISION_BITS: u32 = 22;

/// One pass of Pillow's resampling along an axis: for each output index, the first input index
/// and the fixed-point coefficients.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Vec<(usize, Vec<i32>)> {
    let scale = in_size as f64 / out_size as f64;
    let fs = scale.max(1.0);
    let support = filter.support() * fs;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) / fs))
                .collect();
            let sum: f64 = w.iter().sum();
            let one = (1u64 << PRECISION_BITS) as f64;
            let k = w
                .iter()
                .map(|&v| {
                    let v = if sum != 0.0 { v / sum } else { v };
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin, k)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes 8-bit RGB exactly as Pillow's `Image.resize` does (`deoldify.md` §7): a horizontal
/// pass, rounded to 8 bits, then a vertical one; a pass is skipped when its size does not change.
pub fn pillow_resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let mut cur: Vec<u8> = img.as_raw().clone();
    let mut cw = w;
    if ow != w {
        let coeffs = coefficients(w, ow, filter);
        let mut out = vec![0u8; ow * h * 3];
        for y in 0..h {
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                for c in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for (i, &kk) in k.iter().enumerate() {
                        ss += cur[(y * cw + xmin + i) * 3 + c] as i64 * kk as i64;
                    }
                    out[(y * ow + xx) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = out;
        cw = ow;
    }
    if oh != h {
        let coeffs = coefficients(h, oh, filter);
        let mut out = vec![0u8; cw * oh * 3];
        for (yy, (ymin, k)) in coeffs.iter().enumerate() {
            for x in 0..cw {
                for c in 0..3 {
                    let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                    for (i, &kk) in k.iter().enumerate() {
                        ss += cur[((ymin + i) * cw + x) * 3 + c] as i64 * kk as i64;
                    }
                    out[(yy * cw + x) * 3 + c] = clip8(ss);
                }
            }
        }
        cur = out;
    }
    RgbImage::from_raw(cw as u32, oh as u32, cur).expect("sized from width and height")
}

/// skimage's `rgb2lab` L (D65, 2°) of 8-bit sRGB, in f64 (`zhang.md` §3).
fn skimage_l(p: [u8; 3]) -> f64 {
    let lin = |u: u8| {
        let c = u as f64 / 255.0;
        if c > 0.04045 {
            ((c + 0.055) / 1.055).powf(2.4)
        } else {
            c / 12.92
        }
    };
    let y = 0.212671 * lin(p[0]) + 0.715160 * lin(p[1]) + 0.072169 * lin(p[2]);
    let f = if y > 0.008856 {
        y.cbrt()
    } else {
        7.787 * y + 16.0 / 116.0
    };
    116.0 * f - 16.0
}

/// skimage's `rgb2lab` matrix (sRGB → XYZ, D65).
const M: [[f64; 3]; 3] = [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
];
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];

fn inverse(m: [[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c =
        |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    [
        [
            c(1, 1, 2, 2) / det,
            -c(0, 1, 2, 2) / det,
            c(0, 1, 1, 2) / det,
        ],
        [
            -c(1, 0, 2, 2) / det,
            c(0, 0, 2, 2) / det,
            -c(0, 0, 1, 2) / det,
        ],
        [
            c(1, 0, 2, 1) / det,
            -c(0, 0, 2, 1) / det,
            c(0, 0, 1, 1) / det,
        ],
    ]
}

/// skimage's `lab2rgb` (clipped to `0..=1`), then matplotlib's `floor(255 · x)`.
fn skimage_lab_to_u8(l: f64, a: f64, b: f64, inv: &[[f64; 3]; 3]) -> [u8; 3] {
    let fy = (l + 16.0) / 116.0;
    let fx = a / 500.0 + fy;
    let fz = (fy - b / 200.0).max(0.0);
    let g = |v: f64| {
        if v > 0.2068966 {
            v * v * v
        } else {
            (v - 16.0 / 116.0) / 7.787
        }
    };
    let xyz = [g(fx) * WHITE[0], g(fy) * WHITE[1], g(fz) * WHITE[2]];
    std::array::from_fn(|k| {
        let lin = inv[k][0] * xyz[0] + inv[k][1] * xyz[1] + inv[k][2] * xyz[2];
        let c = if lin > 0.0031308 {
            1.055 * lin.powf(1.0 / 2.4) - 0.055
        } else {
            12.92 * lin
        };
        (c.clamp(0.0, 1.0) * 255.0).floor() as u8
    })
}

/// PyTorch's bilinear `interpolate` (`align_corners = false`, no antialiasing) of a plane.
fn torch_bilinear(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f64> {
    if (w, h) == (ow, oh) {
        return src.iter().map(|&v| v as f64).collect();
    }
    let axis = |o: usize, n: usize, out: usize| {
        let s = ((o as f64 + 0.5) * n as f64 / out as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, s - i0 as f64)
    };
    let xs: Vec<_> = (0..ow).map(|x| axis(x, w, ow)).collect();
    let mut out = Vec::with_capacity(ow * oh);
    for y in 0..oh {
        let (y0, y1, ty) = axis(y, h, oh);
        for &(x0, x1, tx) in &xs {
            let v = |yy: usize, xx: usize| src[yy * w + xx] as f64;
            let top = v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx;
            let bottom = v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx;
            out.push(top * (1.0 - ty) + bottom * ty);
        }
    }
    out
}

/// Zhang et al.'s demo pipeline (`zhang.md` §3).
fn zhang(c: &Colorizer, photo: &RgbImage, hints: &[Hint]) -> Result<RgbImage, ModelError> {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let (nw, nh) = c.network_size(w, h);
    let small = pillow_resize(photo, nw as u32, nh as u32, Filter::Bicubic);
    let l_small: Vec<f32> = small.pixels().map(|p| skimage_l(p.0) as f32).collect();
    let mut input = c.prepare_resized(nw, nh, &l_small);
    c.add_hints(&mut input, w, h, hints)?;
    let ab = c.predict(std::slice::from_ref(&input))?.remove(0);
    let a = torch_bilinear(&ab.a, ab.width, ab.height, w, h);
    let b = torch_bilinear(&ab.b, ab.width, ab.height, w, h);
    let inv = inverse(M);
    let mut out = RgbImage::new(w as u32, h as u32);
    for (i, (p, q)) in photo.pixels().zip(out.pixels_mut()).enumerate() {
        q.0 = skimage_lab_to_u8(skimage_l(p.0), a[i], b[i], &inv);
    }
    Ok(out)
}

/// OpenCV's 8-bit RGB → YUV (`deoldify.md` §2 step 7).
/// DDColor's photo pipeline (ddcolor.md §4): `photo` `[h, w]` 8-bit sRGB → the colourised
/// `[h, w]` 8-bit sRGB photo, the full-size OpenCV Lab L kept.
///
/// # Errors
/// [`ModelError::Inference`] for a model whose contract is not gray RGB in and ab out; as
/// [`Colorizer::predict_raw`].
pub fn ddcolor(c: &Colorizer, photo: &RgbImage) -> Result<RgbImage, ModelError> {
    use colorize_core::opencv;
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let (mean, std) = match c.config().io.input {
        InputKind::GrayRgb { mean, std } => (mean, std),
        _ => {
            return Err(ModelError::Inference(
                "the ddcolor pipeline needs gray_rgb input".into(),
            ));
        }
    };
    let scale = match c.config().io.output {
        OutputKind::Ab { scale } => scale,
        _ => {
            return Err(ModelError::Inference(
                "the ddcolor pipeline needs ab output".into(),
            ));
        }
    };
    let (nw, nh) = c.network_size(w, h);
    // `img = bgr_u8 / 255.0` (float32), then L at the original size.
    let rgb: Vec<f32> = photo.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
    let full_l = opencv::rgb_to_lab_l(&rgb);
    let small = opencv::resize_linear(&rgb, w, h, 3, nw, nh);
    drop(rgb);
    let small_l = opencv::rgb_to_lab_l(&small);
    let zeros = vec![0f32; nw * nh];
    let gray = opencv::lab_to_rgb_rows(&small_l, &zeros, &zeros, nw);
    let pixels = nw * nh;
    let mut values = vec![0f32; 3 * pixels];
    for (i, p) in gray.chunks_exact(3).enumerate() {
        for k in 0..3 {
            values[k * pixels + i] = (p[k] - mean[k]) / std[k];
        }
    }
    let input = NetworkInput {
        width: nw,
        height: nh,
        values,
    };
    let (ow, oh, y) = c.predict_raw(&input)?;
    let n = ow * oh;
    let plane = |k: usize| -> Vec<f32> {
        let p: Vec<f32> = y[k * n..(k + 1) * n].iter().map(|v| v * scale).collect();
        opencv::resize_nearest_torch(&p, ow, oh, w, h)
    };
    let (a, b) = (plane(0), plane(1));
    let out = opencv::lab_to_rgb_rows(&full_l, &a, &b, w);
    let bytes = out.into_iter().map(opencv::to_u8_round_half_even).collect();
    Ok(RgbImage::from_raw(w as u32, h as u32, bytes).expect("sized from the photo"))
}

fn rgb_to_yuv(p: [u8; 3]) -> [i32; 3] {
    const HALF: i32 = 1 << 13;
    let [r, g, b] = p.map(i32::from);
    let y = (4899 * r + 9617 * g + 1868 * b + HALF) >> 14;
    let u = (((b - y) * 8061 + (128 << 14) + HALF) >> 14).clamp(0, 255);
    let v = (((r - y) * 14369 + (128 << 14) + HALF) >> 14).clamp(0, 255);
    [y, u, v]
}

/// OpenCV's 8-bit YUV → RGB.
fn yuv_to_rgb([y, u, v]: [i32; 3]) -> [u8; 3] {
    const HALF: i32 = 1 << 13;
    let (u, v) = (u - 128, v - 128);
    let r = y + ((v * 18678 + HALF) >> 14);
    let g = y + ((u * -6472 + v * -9519 + HALF) >> 14);
    let b = y + ((u * 33292 + HALF) >> 14);
    [r, g, b].map(|c| c.clamp(0, 255) as u8)
}

/// DeOldify's `ColorizerFilter` pipeline (`deoldify.md` §2, watermark left out): the network's
/// colour at render size, then [`deoldify_post_process`].
fn deoldify(c: &Colorizer, photo: &RgbImage) -> Result<RgbImage, ModelError> {
    let colour = deoldify_colour(c, photo)?;
    Ok(deoldify_post_process(photo, &colour))
}

/// Steps 1-5 of DeOldify's pipeline (`deoldify.md` §2): `photo` stretched to the network size
/// with Pillow's bilinear filter, made gray with Pillow's 601 luma, normalised with the model's
/// `gray_rgb` mean and std, run through the network, denormalised with the `rgb` output's mean and
/// std, clamped to 0..=1 and truncated to 8 bits (numpy's `astype(uint8)`).
///
/// Returns the network's colour, 8-bit RGB at the network size (`render factor x 16` squared).
///
/// # Errors
/// [`ModelError::Inference`] when the model's `io` is not `gray_rgb` in and `rgb` out, then as
/// [`Colorizer::predict_raw`].
pub fn deoldify_colour(c: &Colorizer, photo: &RgbImage) -> Result<RgbImage, ModelError> {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let (nw, nh) = c.network_size(w, h);
    let small = pillow_resize(photo, nw as u32, nh as u32, Filter::Bilinear);
    let (mean, std) = match c.config().io.input {
        InputKind::GrayRgb { mean, std } => (mean, std),
        _ => {
            return Err(ModelError::Inference(
                "the deoldify pipeline needs gray_rgb input".into(),
            ));
        }
    };
    let pixels = nw * nh;
    let mut values = vec![0f32; 3 * pixels];
    for (i, p) in small.pixels().enumerate() {
        let [r, g, b] = p.0.map(u32::from);
        let luma = ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16) as f32 / 255.0;
        for k in 0..3 {
            values[k * pixels + i] = (luma - mean[k]) / std[k];
        }
    }
    let input = NetworkInput {
        width: nw,
        height: nh,
        values,
    };
    let (ow, oh, y) = c.predict_raw(&input)?;
    let (mean, std) = match c.config().io.output {
        OutputKind::Rgb { mean, std } => (mean, std),
        _ => {
            return Err(ModelError::Inference(
                "the deoldify pipeline needs rgb output".into(),
            ));
        }
    };
    let n = ow * oh;
    let mut raw = Vec::with_capacity(3 * n);
    for i in 0..n {
        for k in 0..3 {
            // numpy's `astype(uint8)`: truncation.
            raw.push(((y[k * n + i] * std[k] + mean[k]).clamp(0.0, 1.0) * 255.0) as u8);
        }
    }
    Ok(RgbImage::from_raw(ow as u32, oh as u32, raw).expect("sized"))
}

/// Steps 6-7 of DeOldify's pipeline (`deoldify.md` §2), in integer arithmetic exactly as Pillow
/// and OpenCV do them: `colour` (8-bit RGB, any size) resized to `photo`'s size with Pillow's
/// bilinear filter, then OpenCV's 8-bit YUV: Y from `photo`, U and V from the colour.
///
/// Returns the colourised photo, 8-bit RGB at `photo`'s size. A gray `photo` and a gray
/// `colour` give back `photo` exactly.
pub fn deoldify_post_process(photo: &RgbImage, colour: &RgbImage) -> RgbImage {
    let (w, h) = photo.dimensions();
    let colour = pillow_resize(colour, w, h, Filter::Bilinear);
    let mut out = RgbImage::new(w, h);
    for ((o, c), q) in photo.pixels().zip(colour.pixels()).zip(out.pixels_mut()) {
        let [y, _, _] = rgb_to_yuv(o.0);
        let [_, u, v] = rgb_to_yuv(c.0);
        q.0 = yuv_to_rgb([y, u, v]);
    }
    out
}

/// Runs `pipeline` on `image` (made 8-bit RGB, as the reference code opens photos).
///
/// # Errors
/// As [`Colorizer::predict`]; [`ModelError::HintsUnsupported`] for hints to a network without
/// hint input, or to the DeOldify pipeline.
pub fn run(
    c: &Colorizer,
    pipeline: Pipeline,
    image: &DynamicImage,
    hints: &[Hint],
) -> Result<Option<RgbImage>, ModelError> {
    match pipeline {
        Pipeline::Colorize => Ok(None),
        Pipeline::Zhang => zhang(c, &image.to_rgb8(), hints).map(Some),
        Pipeline::Deoldify if !hints.is_empty() => Err(ModelError::HintsUnsupported),
        Pipeline::Deoldify => deoldify(c, &image.to_rgb8()).map(Some),
        Pipeline::Ddcolor if !hints.is_empty() => Err(ModelError::HintsUnsupported),
        Pipeline::Ddcolor => ddcolor(c, &image.to_rgb8()).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opencv_yuv_keeps_gray_exactly_and_round_trips_colour_closely() {
        for v in 0..=255u8 {
            assert_eq!(rgb_to_yuv([v, v, v])[0], v as i32);
            assert_eq!(yuv_to_rgb(rgb_to_yuv([v, v, v])), [v, v, v]);
        }
        let back = yuv_to_rgb(rgb_to_yuv([200, 40, 90]));
        assert!(
            back.iter()
                .zip([200, 40, 90])
                .all(|(a, b)| a.abs_diff(b) <= 2),
            "{back:?}"
        );
    }

    #[test]
    fn deoldify_post_process_keeps_the_photo_luminance() {
        // A gray colour leaves a gray photo exactly as it was, whatever the colour's size.
        let photo = RgbImage::from_fn(30, 20, |x, y| {
            let v = (x * 8 + y * 3) as u8;
            image::Rgb([v, v, v])
        });
        let gray = RgbImage::from_pixel(7, 5, image::Rgb([90, 90, 90]));
        assert_eq!(deoldify_post_process(&photo, &gray), photo);
        // A colour brings its chroma and keeps the photo's Y within OpenCV's rounding (for Y
        // far enough from 0 and 255 that no channel clips).
        let photo = RgbImage::from_fn(30, 20, |x, y| {
            let v = (60 + x * 2 + y) as u8;
            image::Rgb([v, v, v])
        });
        let red = RgbImage::from_pixel(4, 4, image::Rgb([200, 40, 40]));
        let out = deoldify_post_process(&photo, &red);
        for (o, p) in out.pixels().zip(photo.pixels()) {
            assert!(o.0[0] > o.0[1], "{o:?} is not reddish");
            let y = rgb_to_yuv(o.0)[0];
            assert!(
                (y - p.0[0] as i32).abs() <= 2,
                "{o:?} lost the luminance {p:?}"
            );
        }
    }

    #[test]
    fn pillow_resize_keeps_flat_images_and_sizes() {
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([90, 120, 200]));
        for filter in [Filter::Bilinear, Filter::Bicubic] {
            let out = pillow_resize(&flat, 16, 50, filter);
            assert_eq!(out.dimensions(), (16, 50));
            assert!(out.pixels().all(|p| p.0 == [90, 120, 200]));
        }
    }

    #[test]
    fn skimage_lab_round_trips_grays() {
        let inv = inverse(M);
        for v in [0u8, 1, 17, 128, 200, 255] {
            let l = skimage_l([v, v, v]);
            let back = skimage_lab_to_u8(l, 0.0, 0.0, &inv);
            // floor(255 · x) can land one below the original value.
            assert!(back.iter().all(|&c| c == v || c + 1 == v), "{v}: {back:?}");
        }
    }
}
