//! The training loop of every schedule ([`crate::options::Schedule`]): regression, pix2pix and
//! NoGAN, over any generator architecture and loss, with progressive resizing.
//!
//! A run is a list of *rounds* ([`plan`]), each validated through the real pipeline, written to
//! `metrics.csv` and checkpointed:
//! - regression and pix2pix: a round is an epoch; with `--sizes 64,96,128` the epochs are shared
//!   out among the sizes in order, and each size is its own linear warm-up + cosine cycle whose
//!   peak halves at each larger size (progressive resizing as fastai and DeOldify train: the
//!   weights learnt at a small size need a gentler rate at the next).
//! - NoGAN (Antic 2019, DeOldify's README; the same loop): the regression epochs (skipped with
//!   `--generator`), one round of critic pretraining on generated vs real photos with the
//!   generator frozen, then GAN rounds of `--gan-round-steps` steps each, every one saved under
//!   `snapshots/` so the best point can be picked by validation.
//!
//! In a GAN round each step first updates the critic on `(L, real ab)` against `(L, G(L))`, then
//! the generator on `recon_weight × reconstruction + adversarial`, both with Adam β1 = 0.5
//! (pix2pix), the critic at its own learning rate (two time-scale update rule). A loss that is
//! not finite stops the run with [`TrainError::Diverged`] before anything of that round is
//! written, so the last checkpoint and the exported model stay the last good ones.
//!
//! The loop prints nothing: it reports progress as [`TrainEvent`]s to a callback.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use colorize_core::files::find_images;
use colorize_core::io::{DecodeLimits, write_file_atomic};
use colorize_models::eval::{EvalReport, evaluate_files};
use colorize_models::model_dir::WEIGHTS_FILE;
use colorize_models::{Colorizer, ModelConfig, Network, load_model_dir};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::ab_bins::{AbBins, ab_bins_loss};
use crate::checkpoint::{OPTIMIZER_FILE, TrainState};
use crate::critics::{Critic, CriticConfig};
use crate::data::{Batch, LabDataset, make_batch, split_files};
use crate::error::TrainError;
use crate::events::TrainEvent;
use crate::losses::{critic_loss, generator_adversarial_loss, l1_ab, mse_ab};
use crate::options::{Loss, Schedule, TrainOptions};
use crate::run_dir::{MetricsRow, RunDir};
use crate::schedule::lr_at;

pub use crate::options::Preset;

/// The critic's weights in a checkpoint.
pub const CRITIC_FILE: &str = "critic.safetensors";
/// The critic's optimizer state in a checkpoint.
pub const CRITIC_OPTIMIZER_FILE: &str = "critic-optimizer.bpk";
/// NoGAN: the pretrained generator, inside the run directory.
pub const PRETRAINED_DIR: &str = "pretrained";
/// NoGAN: one model directory per GAN round, inside the run directory.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// What a round trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The generator alone on its reconstruction loss.
    Regression,
    /// The critic alone, the generator frozen (NoGAN).
    CriticPretraining,
    /// Critic and generator in turn.
    Adversarial,
}

impl Phase {
    /// The name in logs and `metrics.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Regression => "regression",
            Self::CriticPretraining => "critic-pretraining",
            Self::Adversarial => "adversarial",
        }
    }
}

/// One round of a run: `steps` steps of `phase` at crop side `size`, then validation and a
/// checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Round {
    /// What is trained.
    pub phase: Phase,
    /// Training crop side, in pixels.
    pub size: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Whether this round samples photos in a fresh shuffled order (an epoch) rather than
    /// continuing a random stream.
    pub epoch: bool,
    /// The learning-rate cycle the round belongs to: `(first global step, steps, peak)`.
    pub cycle: (usize, usize, f64),
}

/// The rounds of a run for `opts` with `steps_per_epoch` steps per epoch (see the module docs).
pub fn plan(opts: &TrainOptions, steps_per_epoch: usize) -> Vec<Round> {
    let sizes = opts.sizes();
    let last = *sizes.last().expect("at least one size");
    let mut rounds = Vec::new();
    let mut step = 0;
    let pretrain = !(opts.schedule == Schedule::Nogan && opts.generator.is_some());
    if pretrain {
        let phase = match opts.schedule {
            Schedule::Pix2pix => Phase::Adversarial,
            _ => Phase::Regression,
        };
        let e = opts.epochs;
        let n = sizes.len();
        for (i, &size) in sizes.iter().enumerate() {
            // Size i gets epochs [i·e/n, (i+1)·e/n).
            let epochs = (i + 1) * e / n - i * e / n;
            let cycle = (
                step,
                epochs * steps_per_epoch,
                opts.learning_rate * 0.5f64.powi(i as i32),
            );
            for _ in 0..epochs {
                rounds.push(Round {
                    phase,
                    size,
                    steps: steps_per_epoch,
                    epoch: true,
                    cycle,
                });
                step += steps_per_epoch;
            }
        }
    }
    if opts.schedule == Schedule::Nogan {
        let critic_steps = opts.critic_steps.unwrap_or(steps_per_epoch);
        rounds.push(Round {
            phase: Phase::CriticPretraining,
            size: last,
            steps: critic_steps,
            epoch: false,
            cycle: (step, critic_steps, opts.critic_lr()),
        });
        step += critic_steps;
        let gan = opts.gan_steps.unwrap_or(steps_per_epoch);
        let k = opts.gan_round_steps.unwrap_or(gan.div_ceil(4)).min(gan);
        let cycle = (step, gan, opts.learning_rate);
        let mut left = gan;
        while left > 0 {
            let steps = k.min(left);
            rounds.push(Round {
                phase: Phase::Adversarial,
                size: last,
                steps,
                epoch: false,
                cycle,
            });
            left -= steps;
        }
    }
    rounds
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainSummary {
    /// Mean training loss (the generator's) of every round run in this call, in order.
    pub epoch_losses: Vec<f64>,
    /// The last round completed (1-based; counts resumed rounds).
    pub last_epoch: usize,
    /// The round of the exported model.
    pub best_epoch: usize,
    /// Its validation report.
    pub best: Option<EvalReport>,
    /// Training seconds, over resumed sessions too.
    pub seconds: f64,
    /// Training photos used.
    pub train_images: usize,
    /// Validation photos evaluated per round.
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

fn finite(value: f64, what: &str, epoch: usize, step: usize) -> Result<f64, TrainError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(TrainError::Diverged {
            what: what.to_string(),
            epoch,
            step,
        })
    }
}

/// Whether the safetensors files `a` and `b` hold the same tensors (false if either is missing
/// or unreadable).
fn same_weights(a: &Path, b: &Path) -> bool {
    let read = |p: &Path| colorize_models::Weights::open(p).ok();
    match (read(a), read(b)) {
        (Some(a), Some(b)) => a.tensors() == b.tensors(),
        _ => false,
    }
}

/// The key of the first weight of `network` that is not finite, if any.
fn non_finite_weight(network: &Network) -> Result<Option<String>, TrainError> {
    let bytes = colorize_models::model_dir::weights_to_bytes(network)?;
    let weights = colorize_models::Weights::from_bytes(&bytes, Path::new("<generator>"))?;
    Ok(weights
        .tensors()
        .into_iter()
        .find(|(_, t)| t.values.iter().any(|v| !v.is_finite()))
        .map(|(key, _)| key.to_string()))
}

fn gan_optimizer() -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(0.5)
        .with_weight_decay(0.0)
        .init()
}

fn save_critic(dir: &Path, critic: &Critic) -> Result<(), TrainError> {
    let path = dir.join(CRITIC_FILE);
    let mut store = SafetensorsStore::from_bytes(None);
    let err = |m: String| TrainError::Option(format!("{}: {m}", path.display()));
    critic
        .save_into(&mut store)
        .map_err(|e| err(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| err(e.to_string()))?;
    Ok(write_file_atomic(&path, &bytes, true)?)
}

fn load_critic(dir: &Path, mut critic: Critic) -> Result<Critic, TrainError> {
    let path = dir.join(CRITIC_FILE);
    let bytes = std::fs::read(&path).map_err(TrainError::read(&path))?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let r = critic
        .load_from(&mut store)
        .map_err(|e| TrainError::Option(format!("{}: {e}", path.display())))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(TrainError::Option(format!(
            "{}: the critic's weights do not fit the critic (resume with the same --critic)",
            path.display()
        )));
    }
    Ok(critic)
}

/// Trains a generator as `opts` says, on `device` (a plain device; autodiff is enabled here), and
/// reports progress to `on_event`; the function itself prints nothing.
///
/// Writes the run directory `opts.out` ([`crate::run_dir`]): `train.json`, a `metrics.csv` row
/// and a [`crate::checkpoint`] per round, and the exported model (the best round by validation
/// PSNR among those reaching `min_colourfulness`; for NoGAN among the GAN rounds). With
/// `opts.resume` and a checkpoint there, the run continues after its last round with its
/// architecture, weights, optimizer states and schedule position.
///
/// # Errors
/// [`TrainError`] for bad options, missing, empty or all-gray data folders, a `--generator` or
/// `--backbone` that does not fit, unreadable checkpoints, a loss that stops being finite
/// ([`TrainError::Diverged`]) and file-system errors in the run directory.
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
    if data
        .images
        .iter()
        .all(|im| im.a.iter().chain(&im.b).all(|v| v.abs() < 2.0))
    {
        return Err(TrainError::AllGray {
            path: opts.data.clone(),
        });
    }
    let n = data.images.len();
    let batch = opts.batch_size.min(n);
    let steps_per_epoch = (n / batch).max(1);
    let rounds = plan(opts, steps_per_epoch);

    // Generator, critic, optimizers, state.
    let ad = device.clone().autodiff();
    let ckpt = run.checkpoint();
    let mut state = TrainState {
        best_psnr: f64::NEG_INFINITY,
        ..TrainState::default()
    };
    let resuming = opts.resume && ckpt.find()?;
    if opts.resume && !resuming {
        on_event(&TrainEvent::NoCheckpoint {
            dir: ckpt.dir().to_path_buf(),
        });
    }
    device.seed(opts.seed);
    let mut model_config = ModelConfig {
        network: opts.network(),
        io: opts.model_io(),
        render_size: opts.render_size,
        saturation: 1.0,
        description: format!(
            "{} ({:?} preset, {:?} loss, {:?} schedule) trained by `colorize train` on {}",
            opts.arch.name(),
            opts.preset,
            opts.loss(),
            opts.schedule,
            opts.data.display()
        ),
    };
    let mut generator;
    if resuming {
        // A resumed run keeps the checkpoint's architecture, whatever the flags say now.
        model_config = ckpt.read_config()?;
        generator = model_config.network.init(&ad)?;
        ckpt.load_weights(&mut generator)?;
    } else if let Some(dir) = &opts.generator {
        let (config, network) = load_model_dir(dir, &ad)?;
        if !matches!(config.io.output, colorize_models::OutputKind::Ab { .. }) {
            return Err(TrainError::Option(format!(
                "--generator {}: a GAN needs a model that outputs ab",
                dir.display()
            )));
        }
        model_config.network = config.network;
        model_config.io = config.io;
        generator = network;
    } else {
        generator = model_config.network.init(&ad)?;
        if let Some(path) = &opts.backbone {
            generator = match generator {
                Network::Fusion(f) => {
                    Network::Fusion(colorize_models::fusion::load_backbone(f, path, &ad)?)
                }
                _ => unreachable!("--backbone is checked to go with --arch fusion"),
            };
        }
    }
    let uses_critic = rounds.iter().any(|r| r.phase != Phase::Regression);
    let mut critic = uses_critic.then(|| {
        CriticConfig {
            kind: opts.critic(),
            width: opts.critic_width,
        }
        .init(&ad)
    });
    let regression_optim = || {
        AdamWConfig::new()
            .with_weight_decay(opts.weight_decay as f32)
            .init()
    };
    if resuming {
        state = ckpt.read_state()?;
    }
    // The generator's optimizer of the round after the last completed one. (Resuming at the
    // end of the regression phase, the loop replaces it by a fresh GAN optimizer.)
    let mut g_optim = match rounds.get(state.epoch).map(|r| r.phase) {
        Some(Phase::Regression) | None => regression_optim(),
        _ => gan_optimizer(),
    };
    let mut d_optim = gan_optimizer();
    if resuming {
        if ckpt.dir().join(OPTIMIZER_FILE).is_file() {
            g_optim = ckpt.load_optimizer(OPTIMIZER_FILE, g_optim)?;
        }
        if let Some(c) = critic.take() {
            let dir = ckpt.dir();
            critic = Some(if dir.join(CRITIC_FILE).is_file() {
                d_optim = ckpt.load_optimizer(CRITIC_OPTIMIZER_FILE, d_optim)?;
                load_critic(dir, c)?
            } else {
                c
            });
        }
        on_event(&TrainEvent::Resumed {
            epoch: state.epoch,
            step: state.step,
            best_psnr: state.best_psnr,
            best_epoch: state.best_epoch,
        });
    }
    run.write_options(opts)?;
    // Rows of rounds after the checkpoint were written by a session that stopped before its
    // next checkpoint: those rounds run again, so their old rows go (and a row cut short).
    run.truncate_metrics(state.epoch)?;
    if resuming
        && state.epoch > 0
        && state.best_epoch == state.epoch
        && !same_weights(
            &run.root().join(WEIGHTS_FILE),
            &ckpt.dir().join(WEIGHTS_FILE),
        )
    {
        // The checkpoint's own round is the best, but the exported model is another: a session
        // stopped between the checkpoint and the export. Export the checkpoint's generator.
        run.export_model(&model_config, &generator.valid())?;
    }
    let bins = (opts.loss() == Loss::AbBins).then(|| AbBins::from_dataset(&data));

    let mut summary = TrainSummary {
        train_images: n,
        val_images: val_files.len(),
        best_epoch: state.best_epoch,
        ..TrainSummary::default()
    };
    let state_epoch_at_start = state.epoch;
    let earlier_seconds = state.seconds;
    let over_time = || {
        opts.max_minutes
            .is_some_and(|m| earlier_seconds + started.elapsed().as_secs_f64() >= m * 60.0)
    };
    on_event(&TrainEvent::Started {
        train_images: n,
        val_images: val_files.len(),
        first_epoch: state.epoch + 1,
        epochs: rounds.len(),
        steps_per_epoch,
        batch_size: batch,
    });

    // A random stream of photo indices for rounds that are not epochs.
    let mut stream_rng = StdRng::seed_from_u64(opts.seed ^ 0xA5A5_5A5A ^ state.step as u64);
    for (i, round) in rounds.iter().enumerate().skip(state.epoch) {
        let epoch = i + 1;
        if epoch > state_epoch_at_start + 1 && over_time() {
            on_event(&TrainEvent::StoppedEarly {
                epoch,
                within_epoch: false,
            });
            break;
        }
        // Entering a new phase.
        let previous = i.checked_sub(1).map(|p| rounds[p].phase);
        let first_of_many = i == 0 && opts.schedule != Schedule::Regression;
        if previous.is_some_and(|p| p != round.phase) || first_of_many {
            on_event(&TrainEvent::Phase {
                phase: round.phase.name(),
                first_round: epoch,
            });
        }
        if previous == Some(Phase::Regression) && round.phase != Phase::Regression {
            // NoGAN: the GAN starts from the best pretrained generator, which stays as it is.
            let pretrained = opts.out.join(PRETRAINED_DIR);
            if run.has_exported_model() {
                std::fs::create_dir_all(&pretrained).map_err(TrainError::write(&pretrained))?;
                for f in [
                    colorize_models::model_dir::CONFIG_FILE,
                    colorize_models::model_dir::WEIGHTS_FILE,
                ] {
                    std::fs::copy(run.root().join(f), pretrained.join(f))
                        .map_err(TrainError::write(pretrained.join(f)))?;
                }
                let (_, network) = load_model_dir(&pretrained, &ad)?;
                generator = network;
            }
            g_optim = gan_optimizer();
            state.best_psnr = f64::NEG_INFINITY;
            state.best_colourful = false;
        }
        let round_start = Instant::now();
        let order: Vec<usize> = if round.epoch {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut StdRng::seed_from_u64(
                opts.seed ^ (epoch as u64).wrapping_mul(0x2545_F491_4F6C_DD1D),
            ));
            order
        } else {
            (0..round.steps * batch)
                .map(|_| rand::Rng::random_range(&mut stream_rng, 0..n))
                .collect()
        };
        let (mut loss_sum, mut d_loss_sum, mut loss_n) = (0.0f64, 0.0f64, 0usize);
        let mut lr = 0.0;
        let mut stopped_early = false;
        let mut data_secs = 0.0f64;
        let (cycle_start, cycle_steps, peak) = round.cycle;
        // Critic pretraining: the generator in inference mode (`[batch, C, S, S]` in and out).
        let frozen = (round.phase == Phase::CriticPretraining).then(|| generator.valid());
        let warmup = ((cycle_steps as f64 * opts.warmup_fraction).round() as usize).max(1);
        let recon = |pred: Tensor<4>, b: &Batch| -> Tensor<1> {
            match opts.loss() {
                Loss::L1 => l1_ab(pred, b.ab.clone()),
                Loss::Mse => mse_ab(pred, b.ab.clone()),
                Loss::AbBins => ab_bins_loss(pred, b.bins.as_ref().expect("bins batch")),
            }
        };
        let mut last_batch = None;
        for s in 0..round.steps {
            let t_data = Instant::now();
            let idx = &order[(s * batch) % order.len()..][..batch];
            let b: Batch = make_batch(
                &model_config.io,
                &data,
                idx,
                round.size,
                opts.min_crop_fraction,
                opts.seed ^ (state.step as u64).wrapping_mul(0x9E37_79B9),
                bins.as_ref(),
                &ad,
            )?;
            data_secs += t_data.elapsed().as_secs_f64();
            let local = state.step.saturating_sub(cycle_start);
            let final_fraction = if round.phase == Phase::Regression {
                0.01
            } else {
                1.0
            };
            lr = lr_at(local, cycle_steps, warmup, peak, final_fraction);
            let mut d_loss_value = None;
            // The generator's output, computed once per step (pix2pix's order): the critic
            // learns from it detached, then the generator from the updated critic's verdict.
            let pred = match &frozen {
                None => Some(generator.forward(b.l.clone())), // [batch, C, S, S]
                Some(_) => None,
            };
            if round.phase != Phase::Regression {
                // The critic's step: real (L, ab) against (L, G(L)) with the generator fixed.
                let c = critic.take().expect("GAN rounds have a critic");
                let fake = match (&pred, &frozen) {
                    (Some(p), _) => p.clone().detach(),
                    // Critic pretraining: the frozen generator in inference mode, so that not
                    // even its batch-norm statistics change.
                    (None, Some(g)) => Tensor::from_inner(g.forward(b.l.clone().inner())),
                    (None, None) => unreachable!("one of the two is set"),
                };
                let real = c.forward(b.l.clone(), b.ab.clone());
                let fake = c.forward(b.l.clone(), fake);
                let d_loss = critic_loss(opts.gan_loss(), real, fake);
                let v = finite(
                    f64::from(d_loss.clone().into_scalar::<f32>()),
                    "critic loss",
                    epoch,
                    state.step,
                )?;
                let grads = GradientsParams::from_grads(d_loss.backward(), &c);
                let d_lr = if round.phase == Phase::CriticPretraining {
                    lr
                } else {
                    lr * opts.critic_lr() / opts.learning_rate
                };
                critic = Some(d_optim.step(d_lr, c, grads).power_iteration());
                d_loss_value = Some(v);
                d_loss_sum += v;
            }
            let loss_value = if let Some(pred) = pred {
                let mut loss = recon(pred.clone(), &b);
                if round.phase == Phase::Adversarial {
                    let c = critic.as_ref().expect("critic");
                    let adv =
                        generator_adversarial_loss(opts.gan_loss(), c.forward(b.l.clone(), pred));
                    loss = loss.mul_scalar(opts.recon_weight) + adv;
                }
                let v = finite(
                    f64::from(loss.clone().into_scalar::<f32>()),
                    "generator loss",
                    epoch,
                    state.step,
                )?;
                let grads = GradientsParams::from_grads(loss.backward(), &generator);
                generator = g_optim.step(lr, generator, grads).power_iteration();
                v
            } else {
                0.0
            };
            state.step += 1;
            loss_sum += loss_value;
            loss_n += 1;
            let elapsed = round_start.elapsed().as_secs_f64();
            on_event(&TrainEvent::Step {
                epoch,
                step: s + 1,
                steps_per_epoch: round.steps,
                loss: loss_value,
                mean_loss: loss_sum / loss_n as f64,
                critic_loss: d_loss_value,
                lr,
                images_per_s: (loss_n * batch) as f64 / elapsed,
                data_fraction: data_secs / elapsed,
            });
            last_batch = Some(b);
            if over_time() {
                stopped_early = true;
                break;
            }
        }
        // The last step's update can leave weights that are not finite, or so large that the
        // network's output is not, while every loss it computed was: check the generator as it
        // will be validated, checkpointed and exported (inference mode, on the last batch), and
        // its weights, before anything of the round is written.
        if round.phase != Phase::CriticPretraining {
            let valid = generator.valid();
            if let Some(b) = &last_batch {
                let pred = Tensor::from_inner(valid.forward(b.l.clone().inner()));
                finite(
                    f64::from(recon(pred, b).into_scalar::<f32>()),
                    "generator loss in inference mode",
                    epoch,
                    state.step,
                )?;
            }
            if let Some(key) = non_finite_weight(&valid)? {
                return Err(TrainError::Diverged {
                    what: format!("generator weight '{key}'"),
                    epoch,
                    step: state.step,
                });
            }
        }
        let train_loss = loss_sum / loss_n.max(1) as f64;
        let critic_mean =
            (round.phase != Phase::Regression).then(|| d_loss_sum / loss_n.max(1) as f64);
        let train_secs = round_start.elapsed().as_secs_f64();
        let val_start = Instant::now();
        summary.epoch_losses.push(train_loss);
        on_event(&TrainEvent::Validating {
            epoch,
            images: val_files.len(),
        });

        // Validate the round's generator through the real pipeline.
        let colorizer = Colorizer::new(generator.valid(), model_config.clone(), device.clone())?;
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
            phase: round.phase.name(),
            critic_loss: critic_mean,
        })?;
        on_event(&TrainEvent::Validated {
            epoch,
            train_loss,
            critic_loss: critic_mean,
            train_seconds: train_secs,
            images_per_s: (loss_n * batch) as f64 / train_secs.max(1e-9),
            report: report.clone(),
            val_seconds: val_start.elapsed().as_secs_f64(),
            total_seconds: state.seconds,
        });
        let network = colorizer.network()?;
        if round.phase == Phase::Adversarial && opts.schedule == Schedule::Nogan {
            let dir = opts
                .out
                .join(SNAPSHOTS_DIR)
                .join(format!("step-{}", state.step));
            colorize_models::save_model_dir(&dir, &model_config, &network)?;
        }
        // The exported model: colourful enough first, then the best PSNR. The critic
        // pretraining round does not change the generator.
        let colourful = report.model.colourfulness >= opts.min_colourfulness;
        let better = (colourful, report.model.psnr) > (state.best_colourful, state.best_psnr);
        let export = round.phase != Phase::CriticPretraining && better;
        if export {
            state.best_psnr = report.model.psnr;
            state.best_colourful = colourful;
            state.best_epoch = epoch;
        }
        // Checkpoint: networks, optimizers and the state that points at them, swapped in
        // together; then the export. A crash between the two leaves a checkpoint whose best
        // round is its own round, and a resumed run exports it again (see above).
        let writer = ckpt.begin()?;
        writer.save_model(&model_config, &network)?;
        writer.save_optimizer(OPTIMIZER_FILE, &g_optim)?;
        if let Some(c) = &critic {
            save_critic(writer.dir(), c)?;
            writer.save_optimizer(CRITIC_OPTIMIZER_FILE, &d_optim)?;
        }
        writer.save_state(&state)?;
        writer.commit()?;
        if export {
            run.export_model(&model_config, &network)?;
            on_event(&TrainEvent::Exported {
                epoch,
                psnr: report.model.psnr,
                dir: run.root().to_path_buf(),
            });
            summary.best = Some(report);
            summary.best_epoch = epoch;
        }
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
        // Every round was already run (resume of a finished run): nothing new to export.
        run.export_model(&model_config, &generator.valid())?;
    }
    Ok(summary)
}
