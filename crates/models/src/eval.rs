//! Evaluation on colour photos with ground truth: each photo is made gray (its CIELAB L with
//! `a = b = 0`), colourised, and compared with the original by PSNR, SSIM (RGB, 0–255) and
//! colourfulness (Hasler & Süsstrunk 2003), next to the same numbers for the gray input itself
//! (the baseline every colouriser must beat on PSNR).

use std::path::{Path, PathBuf};

use colorize_core::LabImage;
use colorize_core::io::{DecodeLimits, decode_image};
use colorize_core::lab::lightness_of;
use colorize_core::metrics::{colourfulness, psnr_capped, ssim};
use image::{DynamicImage, RgbImage};
use serde::Serialize;

use crate::colorizer::Colorizer;
use crate::error::ModelError;

/// Metrics of one image (or means over several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    /// PSNR in dB against the ground truth (RGB, peak 255; capped at 100 dB).
    pub psnr: f64,
    /// Mean SSIM against the ground truth (RGB, 0–255).
    pub ssim: f64,
    /// Hasler–Süsstrunk colourfulness of the image itself.
    pub colourfulness: f64,
}

/// Mean scores over a data set.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// The colouriser's output.
    pub model: Scores,
    /// The gray input (the baseline).
    pub gray: Scores,
    /// Colourfulness of the ground truth.
    pub ground_truth_colourfulness: f64,
    /// Files that could not be read, with the error.
    pub failed: Vec<(PathBuf, String)>,
}

/// Scores one photo: returns `(model, gray, ground-truth colourfulness)`.
///
/// # Errors
/// [`ModelError::Inference`] if the network fails.
pub fn evaluate_image(
    colorizer: &Colorizer,
    image: &DynamicImage,
) -> Result<(Scores, Scores, f64), ModelError> {
    let truth: RgbImage = image.to_rgb8();
    let (w, h, l) = lightness_of(image);
    let gray = to_rgb8(&LabImage::gray(w, h, l.clone()));
    let out = if colorizer.config().io.pipeline == crate::pipelines::Pipeline::Colorize {
        to_rgb8(&colorizer.colorize_lightness(w, h, l)?)
    } else {
        // A published model's own pipeline starts from an 8-bit photo: the gray version.
        DynamicImage::ImageRgb32F(colorizer.colorize(&DynamicImage::ImageRgb8(gray.clone()))?)
            .into_rgb8()
    };
    let score = |img: &RgbImage| Scores {
        psnr: psnr_capped(img, &truth),
        ssim: ssim(img, &truth),
        colourfulness: colourfulness(img),
    };
    Ok((score(&out), score(&gray), colourfulness(&truth)))
}

fn to_rgb8(lab: &LabImage) -> RgbImage {
    DynamicImage::ImageRgb32F(lab.to_rgb32f()).into_rgb8()
}

/// Evaluates `files`, calling `on_image` after each one (for progress bars). Files that cannot be
/// decoded are listed in [`EvalReport::failed`] and left out of the means.
///
/// # Errors
/// [`ModelError::Inference`] if the network fails.
pub fn evaluate_files(
    colorizer: &Colorizer,
    files: &[PathBuf],
    limits: &DecodeLimits,
    mut on_image: impl FnMut(&Path),
) -> Result<EvalReport, ModelError> {
    let mut report = EvalReport::default();
    let (mut m, mut g) = (Scores::default(), Scores::default());
    let mut gt_cf = 0.0;
    for f in files {
        match decode_image(f, limits) {
            Ok(d) => {
                let (sm, sg, cf) = evaluate_image(colorizer, &d.image)?;
                m.psnr += sm.psnr;
                m.ssim += sm.ssim;
                m.colourfulness += sm.colourfulness;
                g.psnr += sg.psnr;
                g.ssim += sg.ssim;
                g.colourfulness += sg.colourfulness;
                gt_cf += cf;
                report.images += 1;
            }
            Err(e) => report.failed.push((f.clone(), e.to_string())),
        }
        on_image(f);
    }
    let n = report.images.max(1) as f64;
    let mean = |s: Scores| Scores {
        psnr: s.psnr / n,
        ssim: s.ssim / n,
        colourfulness: s.colourfulness / n,
    };
    report.model = mean(m);
    report.gray = mean(g);
    report.ground_truth_colourfulness = gt_cf / n;
    Ok(report)
}
