//! The regression training loop: L → ab with an L1 loss and AdamW.
//!
//! Why L1 and not MSE: the colour of most objects is ambiguous (a shirt may be red or blue), and
//! the MSE optimum is the conditional *mean* of the plausible colours, which averages opposite hues
//! to gray-brown — the washed-out sepia look of early colourisers (Zhang et al. 2016,
//! arXiv:1603.08511, §2.1). L1's optimum is the per-channel *median*, which keeps more saturation,
//! and it is less dominated by the few strongly coloured outlier pixels. pix2pix (Isola et al. 2017)
//! makes the same choice for its reconstruction term.
//!
//! Layout of a run directory:
//! - `train.json`: the options of the run.
//! - `metrics.csv`: one row per epoch (train loss, validation PSNR / SSIM / colourfulness, and
//!   the gray baseline).
//! - `checkpoint/`: the last epoch (model, optimizer state, `state.json`) for `--resume`.
//! - `config.json` + `model.safetensors`: the exported model — the epoch with the best validation
//!   PSNR so far (TRAINING-NOTES.md: longer training raises colourfulness but can lower PSNR).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use colorize_core::io::{DecodeLimits, write_file_atomic};
use colorize_models::eval::{EvalReport, evaluate_files};
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE, load_weights};
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelConfig, NetworkConfig, save_model_dir};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::data::{LabDataset, find_images, make_batch, split_files};
use crate::error::TrainError;
use crate::schedule::lr_at;

/// Network presets the trainer can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// [`UnetResnetConfig::resnet34`].
    Resnet34,
    /// [`UnetResnetConfig::light`].
    Light,
    /// [`UnetResnetConfig::tiny`] (tests).
    Tiny,
}

impl Preset {
    /// The network config of the preset.
    pub fn network(self) -> NetworkConfig {
        NetworkConfig::UnetResnet(match self {
            Self::Resnet34 => UnetResnetConfig::resnet34(),
            Self::Light => UnetResnetConfig::light(),
            Self::Tiny => UnetResnetConfig::tiny(),
        })
    }
}

/// Options of a training run (the flags of `colorize train`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Folder tree of colour photos.
    pub data: PathBuf,
    /// Validation folder; without it 10 % of `data` is held out.
    pub val: Option<PathBuf>,
    /// Run directory.
    pub out: PathBuf,
    /// Network preset.
    pub preset: Preset,
    /// Epochs (passes over the training photos).
    pub epochs: usize,
    /// Photos per step.
    pub batch_size: usize,
    /// Side of the square training crops, in pixels.
    pub crop_size: usize,
    /// Shorter side the photos are resized to before cropping, in pixels.
    pub load_size: usize,
    /// Smallest crop side as a fraction of the shorter side (random-resized-crop scale).
    pub min_crop_fraction: f64,
    /// Render size used for validation and stored in the exported `config.json`.
    pub render_size: u32,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Fraction of all steps spent in linear warm-up.
    pub warmup_fraction: f64,
    /// Seed for initialisation, shuffling and crops.
    pub seed: u64,
    /// At most this many validation photos per epoch (evenly spaced); `None` = all.
    pub val_limit: Option<usize>,
    /// Stop (after validating and checkpointing) once this many minutes of training have passed,
    /// counted over resumed sessions too.
    pub max_minutes: Option<f64>,
    /// Continue from `out/checkpoint` if it exists.
    pub resume: bool,
    /// Show a progress bar (else one log line every 50 steps).
    pub progress: bool,
}

impl TrainOptions {
    /// Defaults for `data` and `out`: the light preset, 10 epochs, batch 16, 128-pixel crops of
    /// photos loaded at shorter side 160, AdamW at 2e-3 with 3 % warm-up, seed 42.
    pub fn new(data: PathBuf, out: PathBuf) -> Self {
        Self {
            data,
            val: None,
            out,
            preset: Preset::Light,
            epochs: 10,
            batch_size: 16,
            crop_size: 128,
            load_size: 160,
            min_crop_fraction: 0.7,
            render_size: 160,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            warmup_fraction: 0.03,
            seed: 42,
            val_limit: None,
            max_minutes: None,
            resume: false,
            progress: std::io::stderr().is_terminal(),
        }
    }

    fn check(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Option(m.to_string()));
        if self.epochs == 0 {
            return bad("--epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1");
        }
        if self.crop_size < 8 {
            return bad("--image-size must be at least 8");
        }
        if self.load_size < self.crop_size {
            return bad("--load-size must be at least --image-size");
        }
        if !(0.05..=1.0).contains(&self.min_crop_fraction) {
            return bad("--min-crop-fraction must be in 0.05..=1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("--lr must be positive");
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainSummary {
    /// Mean training loss of every epoch run in this call, in order.
    pub epoch_losses: Vec<f64>,
    /// The last epoch completed (1-based; counts resumed epochs).
    pub last_epoch: usize,
    /// The epoch of the exported model (best validation PSNR).
    pub best_epoch: usize,
    /// Its validation report.
    pub best: Option<EvalReport>,
    /// Training seconds, over resumed sessions too.
    pub seconds: f64,
    /// Training photos used.
    pub train_images: usize,
    /// Validation photos evaluated per epoch.
    pub val_images: usize,
}

/// Resume state, `checkpoint/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    epoch: usize,
    step: usize,
    best_psnr: f64,
    best_epoch: usize,
    seconds: f64,
}

const CHECKPOINT_DIR: &str = "checkpoint";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";
const METRICS_FILE: &str = "metrics.csv";
const METRICS_HEADER: &str = "epoch,step,seconds,train_loss,lr,val_psnr,val_ssim,val_colourfulness,gray_psnr,gray_ssim,truth_colourfulness,val_images\n";

fn evenly_spaced(files: Vec<PathBuf>, limit: Option<usize>) -> Vec<PathBuf> {
    match limit {
        Some(k) if k < files.len() && k > 0 => {
            let n = files.len();
            (0..k).map(|i| files[i * n / k].clone()).collect()
        }
        _ => files,
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| TrainError::io(path, e))?;
    write_file_atomic(path, &bytes, true).map_err(|e| TrainError::io(path, e))
}

fn append_metrics(path: &Path, row: &str) -> Result<(), TrainError> {
    use std::io::Write;
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TrainError::io(path, e))?;
    if new {
        f.write_all(METRICS_HEADER.as_bytes())
            .map_err(|e| TrainError::io(path, e))?;
    }
    f.write_all(row.as_bytes())
        .map_err(|e| TrainError::io(path, e))
}

/// Trains a network as `opts` says, on `device` (a plain device; autodiff is enabled here).
///
/// # Errors
/// [`TrainError`] for bad options, missing or empty data folders, unreadable checkpoints and
/// file-system errors in the run directory.
pub fn train(opts: &TrainOptions, device: &Device) -> Result<TrainSummary, TrainError> {
    opts.check()?;
    let limits = DecodeLimits::default();
    let started = Instant::now();
    std::fs::create_dir_all(opts.out.join(CHECKPOINT_DIR))
        .map_err(|e| TrainError::io(&opts.out, e))?;

    // Data.
    let files = find_images(&opts.data)?;
    let (train_files, val_files) = match &opts.val {
        Some(v) => (files, find_images(v)?),
        None => split_files(files, opts.seed, &opts.data)?,
    };
    let val_files = evenly_spaced(val_files, opts.val_limit);
    let data = LabDataset::load(&train_files, opts.load_size, &limits);
    for (p, e) in &data.skipped {
        eprintln!("skipped {}: {e}", p.display());
    }
    if data.images.is_empty() {
        return Err(TrainError::NoImages {
            path: opts.data.clone(),
        });
    }
    let n = data.images.len();
    let batch = opts.batch_size.min(n);
    let steps_per_epoch = (n / batch).max(1);
    let total_steps = steps_per_epoch * opts.epochs;
    let warmup = ((total_steps as f64 * opts.warmup_fraction).round() as usize).max(1);

    // Model, optimizer, state.
    let ad = device.clone().autodiff();
    let ckpt = opts.out.join(CHECKPOINT_DIR);
    let mut state = State {
        best_psnr: f64::NEG_INFINITY,
        ..State::default()
    };
    let mut optim = AdamWConfig::new()
        .with_weight_decay(opts.weight_decay as f32)
        .init();
    let read =
        |name: &str| std::fs::read(ckpt.join(name)).map_err(|e| TrainError::io(ckpt.join(name), e));
    let resuming = opts.resume && ckpt.join(STATE_FILE).exists();
    // A resumed run keeps the checkpoint's architecture, whatever --preset says now.
    let network_config = if resuming {
        ModelConfig::from_json(&read(CONFIG_FILE)?, &ckpt.join(CONFIG_FILE))?.network
    } else {
        opts.preset.network()
    };
    device.seed(opts.seed);
    let mut model = network_config.init(&ad)?;
    if opts.resume && !resuming {
        eprintln!("no checkpoint in {}: starting a new run", ckpt.display());
    }
    if resuming {
        state = serde_json::from_slice(&read(STATE_FILE)?)
            .map_err(|e| TrainError::io(ckpt.join(STATE_FILE), e))?;
        load_weights(&mut model, read(WEIGHTS_FILE)?, &ckpt.join(WEIGHTS_FILE))?;
        let bytes = read(OPTIMIZER_FILE)?;
        optim = optim
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
            .map_err(|e| TrainError::io(ckpt.join(OPTIMIZER_FILE), format!("{e:?}")))?;
        eprintln!(
            "resuming after epoch {} (step {}, best validation PSNR {:.2} dB at epoch {})",
            state.epoch, state.step, state.best_psnr, state.best_epoch
        );
    }
    write_json(&opts.out.join("train.json"), opts)?;
    let model_config = ModelConfig {
        network: network_config,
        io: colorize_models::ModelIo::default(),
        render_size: opts.render_size,
        saturation: 1.0,
        description: format!(
            "U-Net ({:?} preset) trained by `colorize train` on {}",
            opts.preset,
            opts.data.display()
        ),
    };

    let mut summary = TrainSummary {
        train_images: n,
        val_images: val_files.len(),
        best_epoch: state.best_epoch,
        ..TrainSummary::default()
    };
    // Every call runs at least one step; the budget is checked after each step.
    let state_epoch_at_start = state.epoch;
    // Time of earlier sessions (resume) plus this one's, data loading included.
    let earlier_seconds = state.seconds;
    let over_time = || {
        opts.max_minutes
            .is_some_and(|m| earlier_seconds + started.elapsed().as_secs_f64() >= m * 60.0)
    };

    for epoch in state.epoch + 1..=opts.epochs {
        if epoch > state_epoch_at_start + 1 && over_time() {
            eprintln!("time budget reached before epoch {epoch}");
            break;
        }
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            opts.seed ^ (epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
        ));
        let bar = if opts.progress {
            let b = ProgressBar::new(steps_per_epoch as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{epoch}/{}", opts.epochs));
            b
        } else {
            ProgressBar::hidden()
        };
        let (mut loss_sum, mut loss_n) = (0.0f64, 0usize);
        let mut lr = 0.0;
        let mut stopped_early = false;
        let mut data_secs = 0.0f64;
        for s in 0..steps_per_epoch {
            let t_data = Instant::now();
            let idx = &order[s * batch..(s + 1) * batch];
            let b = make_batch(
                &model_config.io,
                &data,
                idx,
                opts.crop_size,
                opts.min_crop_fraction,
                opts.seed ^ (state.step as u64).wrapping_mul(0x9E37_79B9),
                &ad,
            )?;
            data_secs += t_data.elapsed().as_secs_f64();
            let pred = model.forward(b.l); // [batch, 2, S, S]
            let loss = (pred - b.ab).abs().mean();
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = lr_at(state.step, total_steps, warmup, opts.learning_rate, 0.01);
            model = optim.step(lr, model, grads);
            state.step += 1;
            loss_sum += loss_value;
            loss_n += 1;
            let ips = (loss_n * batch) as f64 / epoch_start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "loss {:.4} | {ips:.1} img/s",
                loss_sum / loss_n as f64
            ));
            bar.inc(1);
            if !opts.progress && (s + 1) % 50 == 0 {
                eprintln!(
                    "epoch {epoch} step {}/{steps_per_epoch} loss {:.4} lr {lr:.2e} {ips:.1} img/s ({:.0} % in data)",
                    s + 1,
                    loss_sum / loss_n as f64,
                    100.0 * data_secs / epoch_start.elapsed().as_secs_f64()
                );
            }
            if over_time() {
                stopped_early = true;
                break;
            }
        }
        bar.finish_and_clear();
        let train_loss = loss_sum / loss_n.max(1) as f64;
        let train_secs = epoch_start.elapsed().as_secs_f64();
        let val_start = Instant::now();
        summary.epoch_losses.push(train_loss);

        // Validate the epoch's model through the real pipeline.
        let colorizer = Colorizer::new(model.valid(), model_config.clone(), device.clone())?;
        let report = evaluate_files(&colorizer, &val_files, &limits, |_| {})?;
        state.epoch = epoch;
        state.seconds = earlier_seconds + started.elapsed().as_secs_f64();
        append_metrics(
            &opts.out.join(METRICS_FILE),
            &format!(
                "{epoch},{},{:.1},{train_loss:.5},{lr:.3e},{:.3},{:.4},{:.2},{:.3},{:.4},{:.2},{}\n",
                state.step,
                state.seconds,
                report.model.psnr,
                report.model.ssim,
                report.model.colourfulness,
                report.gray.psnr,
                report.gray.ssim,
                report.ground_truth_colourfulness,
                report.images
            ),
        )?;
        eprintln!(
            "epoch {epoch}: train loss {train_loss:.4} ({train_secs:.0} s), val PSNR {:.2} dB (gray {:.2}), SSIM {:.4}, colourfulness {:.1} (truth {:.1}) ({:.0} s), total {:.0} s",
            report.model.psnr,
            report.gray.psnr,
            report.model.ssim,
            report.model.colourfulness,
            report.ground_truth_colourfulness,
            val_start.elapsed().as_secs_f64(),
            state.seconds
        );
        if report.model.psnr > state.best_psnr {
            state.best_psnr = report.model.psnr;
            state.best_epoch = epoch;
            save_model_dir(&opts.out, &model_config, &*colorizer.network()?)?;
            summary.best = Some(report);
            summary.best_epoch = epoch;
        }
        // Checkpoint: weights, optimizer, then the state that points at them.
        save_model_dir(&ckpt, &model_config, &*colorizer.network()?)?;
        let opt_bytes = optim
            .into_bytes()
            .map_err(|e| TrainError::io(ckpt.join(OPTIMIZER_FILE), format!("{e:?}")))?;
        write_file_atomic(&ckpt.join(OPTIMIZER_FILE), &opt_bytes, true)
            .map_err(|e| TrainError::io(ckpt.join(OPTIMIZER_FILE), e))?;
        write_json(&ckpt.join(STATE_FILE), &state)?;
        summary.last_epoch = epoch;
        if stopped_early {
            eprintln!("time budget reached during epoch {epoch}; checkpoint written");
            break;
        }
    }
    summary.seconds = state.seconds;
    if !opts.out.join(CONFIG_FILE).exists() {
        // Every epoch was already run (resume of a finished run): nothing new to export.
        save_model_dir(&opts.out, &model_config, &model.valid())?;
    }
    Ok(summary)
}
