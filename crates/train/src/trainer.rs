//! The regression training loop: L → ab with the L1 loss of [`crate::losses`] and AdamW, a
//! linear warm-up + cosine learning-rate schedule ([`crate::schedule`]), validation through the
//! real pipeline after every epoch, a checkpoint every epoch ([`crate::checkpoint`]) and the run
//! directory's files ([`crate::run_dir`]).
//!
//! The loop prints nothing: it reports progress as [`TrainEvent`]s to a callback, and the caller
//! (the CLI, a test, a notebook) decides how to show them.

use std::path::PathBuf;
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use colorize_core::files::find_images;
use colorize_core::io::DecodeLimits;
use colorize_models::eval::{EvalReport, evaluate_files};
use colorize_models::unet_resnet::UnetResnetConfig;
use colorize_models::{Colorizer, ModelConfig, NetworkConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{OPTIMIZER_FILE, TrainState};
use crate::data::{LabDataset, make_batch, split_files};
use crate::error::TrainError;
use crate::events::TrainEvent;
use crate::losses::l1_ab;
use crate::run_dir::{MetricsRow, RunDir};
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

fn evenly_spaced(files: Vec<PathBuf>, limit: Option<usize>) -> Vec<PathBuf> {
    match limit {
        Some(k) if k < files.len() && k > 0 => {
            let n = files.len();
            (0..k).map(|i| files[i * n / k].clone()).collect()
        }
        _ => files,
    }
}

/// Trains a network as `opts` says, on `device` (a plain device; autodiff is enabled here), and
/// reports progress to `on_event` (see [`TrainEvent`] for the order); the function itself prints
/// nothing.
///
/// Writes the run directory `opts.out` ([`crate::run_dir`]): `train.json`, a `metrics.csv` row
/// and a [`crate::checkpoint`] per epoch, and the best epoch's model. With `opts.resume` and a
/// checkpoint there, the run continues after its last epoch with its architecture, weights,
/// optimizer state and schedule position.
///
/// # Errors
/// [`TrainError`] for bad options, missing or empty data folders, unreadable checkpoints and
/// file-system errors in the run directory.
pub fn train(
    opts: &TrainOptions,
    device: &Device,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainSummary, TrainError> {
    opts.check()?;
    let limits = DecodeLimits::default();
    let started = Instant::now();
    let run = RunDir::create(&opts.out)?;

    // Data.
    let files = find_images(&opts.data)?;
    let (train_files, val_files) = match &opts.val {
        Some(v) => (files, find_images(v)?),
        None => split_files(files, opts.seed, &opts.data)?,
    };
    let val_files = evenly_spaced(val_files, opts.val_limit);
    let data = LabDataset::load(&train_files, opts.load_size, &limits);
    for (path, reason) in &data.skipped {
        on_event(&TrainEvent::Skipped {
            path: path.clone(),
            reason: reason.clone(),
        });
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
    let ckpt = run.checkpoint();
    let mut state = TrainState {
        best_psnr: f64::NEG_INFINITY,
        ..TrainState::default()
    };
    let mut optim = AdamWConfig::new()
        .with_weight_decay(opts.weight_decay as f32)
        .init();
    let resuming = opts.resume && ckpt.find()?;
    // A resumed run keeps the checkpoint's architecture, whatever --preset says now.
    let network_config = if resuming {
        ckpt.read_config()?.network
    } else {
        opts.preset.network()
    };
    device.seed(opts.seed);
    let mut model = network_config.init(&ad)?;
    if opts.resume && !resuming {
        on_event(&TrainEvent::NoCheckpoint {
            dir: ckpt.dir().to_path_buf(),
        });
    }
    if resuming {
        state = ckpt.read_state()?;
        ckpt.load_weights(&mut model)?;
        optim = ckpt.load_optimizer(OPTIMIZER_FILE, optim)?;
        on_event(&TrainEvent::Resumed {
            epoch: state.epoch,
            step: state.step,
            best_psnr: state.best_psnr,
            best_epoch: state.best_epoch,
        });
    }
    run.write_options(opts)?;
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
    on_event(&TrainEvent::Started {
        train_images: n,
        val_images: val_files.len(),
        first_epoch: state.epoch + 1,
        epochs: opts.epochs,
        steps_per_epoch,
        batch_size: batch,
    });

    for epoch in state.epoch + 1..=opts.epochs {
        if epoch > state_epoch_at_start + 1 && over_time() {
            on_event(&TrainEvent::StoppedEarly {
                epoch,
                within_epoch: false,
            });
            break;
        }
        let epoch_start = Instant::now();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            opts.seed ^ (epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
        ));
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
            let loss = l1_ab(pred, b.ab); // [1]
            let loss_value = f64::from(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = lr_at(state.step, total_steps, warmup, opts.learning_rate, 0.01);
            model = optim.step(lr, model, grads);
            state.step += 1;
            loss_sum += loss_value;
            loss_n += 1;
            let elapsed = epoch_start.elapsed().as_secs_f64();
            on_event(&TrainEvent::Step {
                epoch,
                step: s + 1,
                steps_per_epoch,
                loss: loss_value,
                mean_loss: loss_sum / loss_n as f64,
                lr,
                images_per_s: (loss_n * batch) as f64 / elapsed,
                data_fraction: data_secs / elapsed,
            });
            if over_time() {
                stopped_early = true;
                break;
            }
        }
        let train_loss = loss_sum / loss_n.max(1) as f64;
        let train_secs = epoch_start.elapsed().as_secs_f64();
        let val_start = Instant::now();
        summary.epoch_losses.push(train_loss);
        on_event(&TrainEvent::Validating {
            epoch,
            images: val_files.len(),
        });

        // Validate the epoch's model through the real pipeline.
        let colorizer = Colorizer::new(model.valid(), model_config.clone(), device.clone())?;
        let report = evaluate_files(&colorizer, &val_files, &limits, |_| {})?;
        state.epoch = epoch;
        state.seconds = earlier_seconds + started.elapsed().as_secs_f64();
        run.append_metrics(&MetricsRow {
            epoch,
            step: state.step,
            seconds: state.seconds,
            train_loss,
            lr,
            report: &report,
        })?;
        on_event(&TrainEvent::Validated {
            epoch,
            train_loss,
            train_seconds: train_secs,
            report: report.clone(),
            val_seconds: val_start.elapsed().as_secs_f64(),
            total_seconds: state.seconds,
        });
        let network = colorizer.network()?;
        if report.model.psnr > state.best_psnr {
            state.best_psnr = report.model.psnr;
            state.best_epoch = epoch;
            run.export_model(&model_config, &network)?;
            on_event(&TrainEvent::Exported {
                epoch,
                psnr: report.model.psnr,
                dir: run.root().to_path_buf(),
            });
            summary.best = Some(report);
            summary.best_epoch = epoch;
        }
        // Checkpoint: weights, optimizer and the state that points at them, swapped in together.
        let writer = ckpt.begin()?;
        writer.save_model(&model_config, &network)?;
        writer.save_optimizer(OPTIMIZER_FILE, &optim)?;
        writer.save_state(&state)?;
        writer.commit()?;
        on_event(&TrainEvent::Checkpointed {
            epoch,
            step: state.step,
            dir: ckpt.dir().to_path_buf(),
        });
        summary.last_epoch = epoch;
        if stopped_early {
            on_event(&TrainEvent::StoppedEarly {
                epoch,
                within_epoch: true,
            });
            break;
        }
    }
    summary.seconds = state.seconds;
    if !run.has_exported_model() {
        // Every epoch was already run (resume of a finished run): nothing new to export.
        run.export_model(&model_config, &model.valid())?;
    }
    Ok(summary)
}
