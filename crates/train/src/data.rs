//! Training data: photos (found with [`colorize_core::files::find_images`]) split 90/10, decoded
//! once into CIELAB at a fixed load size, and random crops of them batched for the network.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use colorize_core::LabImage;
use colorize_core::io::{DecodeLimits, decode_image};
use colorize_core::resize::resize_plane;
use colorize_models::{ModelIo, OutputKind};

use crate::ab_bins::{AbBins, BinTargets};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::error::TrainError;

/// Splits `files` 90/10 into (training, validation) after a seeded shuffle; at least one each.
///
/// # Errors
/// [`TrainError::TooFewImages`] with fewer than 2 files.
pub fn split_files(
    files: Vec<PathBuf>,
    seed: u64,
    dir: &Path,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), TrainError> {
    if files.len() < 2 {
        return Err(TrainError::TooFewImages {
            path: dir.to_path_buf(),
            found: files.len(),
        });
    }
    let mut files = files;
    files.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_val = (files.len() / 10).max(1);
    let val = files.split_off(files.len() - n_val);
    Ok((files, val))
}

/// Training photos in CIELAB, each resized so that its shorter side is the load size.
#[derive(Debug)]
pub struct LabDataset {
    /// The photos.
    pub images: Vec<LabImage>,
    /// Files that could not be decoded, with the error (skipped).
    pub skipped: Vec<(PathBuf, String)>,
}

impl LabDataset {
    /// Decodes `files` in parallel and resizes each so its shorter side is `load_size` pixels.
    pub fn load(files: &[PathBuf], load_size: usize, limits: &DecodeLimits) -> Self {
        let results: Vec<Result<LabImage, (PathBuf, String)>> = files
            .par_iter()
            .map(|f| {
                let d = decode_image(f, limits).map_err(|e| (f.clone(), e.to_string()))?;
                let lab = LabImage::from_image(&d.image);
                Ok(resize_short_side(&lab, load_size))
            })
            .collect();
        let mut images = Vec::new();
        let mut skipped = Vec::new();
        for r in results {
            match r {
                Ok(i) => images.push(i),
                Err(e) => skipped.push(e),
            }
        }
        Self { images, skipped }
    }
}

fn resize_short_side(lab: &LabImage, short: usize) -> LabImage {
    let s = short as f64 / lab.width.min(lab.height) as f64;
    let w = ((lab.width as f64 * s).round() as usize).max(short);
    let h = ((lab.height as f64 * s).round() as usize).max(short);
    let r = |p: &[f32]| resize_plane(p, lab.width, lab.height, w, h);
    LabImage {
        width: w,
        height: h,
        l: r(&lab.l),
        a: r(&lab.a),
        b: r(&lab.b),
    }
}

/// One training sample: `crop x crop` planes of L, a, b.
struct Crop {
    l: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
}

/// A random square crop with side between `min_fraction` of the shorter side and all of it,
/// resized to `crop x crop`, flipped left–right with probability 1/2.
fn random_crop(img: &LabImage, crop: usize, min_fraction: f64, rng: &mut StdRng) -> Crop {
    let short = img.width.min(img.height);
    let lo = ((short as f64 * min_fraction).round() as usize).clamp(1, short);
    let side = rng.random_range(lo..=short);
    let x0 = rng.random_range(0..=img.width - side);
    let y0 = rng.random_range(0..=img.height - side);
    let flip = rng.random_bool(0.5);
    let cut = |p: &[f32]| {
        let mut out = Vec::with_capacity(side * side);
        for y in y0..y0 + side {
            let row = &p[y * img.width + x0..y * img.width + x0 + side];
            if flip {
                out.extend(row.iter().rev());
            } else {
                out.extend_from_slice(row);
            }
        }
        resize_plane(&out, side, side, crop, crop)
    };
    Crop {
        l: cut(&img.l),
        a: cut(&img.a),
        b: cut(&img.b),
    }
}

/// A batch ready for the network.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The network input, `[batch, channels, S, S]`, encoded as the model's I/O contract says
    /// (default: one channel, `(L − 50)/50`).
    pub l: Tensor<4>,
    /// The target, `[batch, 2, S, S]`, `ab / scale` (default scale 110; `ab / 110` for a model
    /// with ab-bin outputs).
    pub ab: Tensor<4>,
    /// The soft-encoded ab-bin targets, when `make_batch` was given bins.
    pub bins: Option<BinTargets>,
}

/// Builds a batch of random crops of the images at `indices`, encoded as `io` says; each sample
/// draws its crop from its own RNG seeded with `seed` and its position, so batches are
/// reproducible.
///
/// With `bins`, the batch also carries the ab-bin targets of [`AbBins::encode`].
///
/// # Errors
/// [`TrainError::Contract`] when `io` has an output the trainer cannot learn (not ab or ab bins).
#[allow(clippy::too_many_arguments)]
pub fn make_batch(
    io: &ModelIo,
    data: &LabDataset,
    indices: &[usize],
    crop: usize,
    min_fraction: f64,
    seed: u64,
    bins: Option<&AbBins>,
    device: &Device,
) -> Result<Batch, TrainError> {
    let crops: Vec<Crop> = indices
        .par_iter()
        .enumerate()
        .map(|(k, &i)| {
            let mut rng = StdRng::seed_from_u64(
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(k as u64),
            );
            random_crop(&data.images[i], crop, min_fraction, &mut rng)
        })
        .collect();
    let n = indices.len();
    let plane = crop * crop;
    let cin = io.input_channels();
    let mut l = Vec::with_capacity(n * cin * plane);
    let mut ab = Vec::with_capacity(2 * n * plane);
    let target_io = match io.output {
        OutputKind::AbBins { .. } => ModelIo::default(),
        _ => io.clone(),
    };
    for c in &crops {
        l.extend(io.encode_input(&c.l));
        ab.extend(
            target_io
                .encode_target(&c.a, &c.b)
                .map_err(TrainError::Contract)?,
        );
    }
    let bins = bins.map(|bins| {
        let a: Vec<f32> = crops.iter().flat_map(|c| c.a.iter().copied()).collect();
        let b: Vec<f32> = crops.iter().flat_map(|c| c.b.iter().copied()).collect();
        bins.encode(&a, &b, n, crop, crop, device)
    });
    Ok(Batch {
        l: Tensor::from_data(TensorData::new(l, [n, cin, crop, crop]), device),
        ab: Tensor::from_data(TensorData::new(ab, [n, 2, crop, crop]), device),
        bins,
    })
}
