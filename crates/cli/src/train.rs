//! `colorize train` (the `train` feature, on by default): flags, and the rendering of the
//! trainer's [`TrainEvent`]s: a progress bar per epoch when stderr is a terminal, otherwise one log
//! line every 50 steps; an epoch summary line either way, and the final summary.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use colorize_train::critics::CriticKind;
use colorize_train::losses::GanLoss;
use colorize_train::{Arch, Loss, Preset, Schedule, TrainEvent, TrainOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::{DeviceArg, select_device, set_threads};

/// Network sizes for `--preset`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum PresetArg {
    /// About 1-4 M parameters (the U-Net: ResNet-18 depths, half widths, 3.4 M): trains on 2 CPU
    /// cores.
    Light,
    /// The papers' widths (the U-Net: the full ResNet-34 encoder, ~24 M parameters).
    #[value(alias = "full")]
    Resnet34,
    /// A tiny network for tests.
    Tiny,
}

fn arch(s: &str) -> Result<Arch, String> {
    Arch::parse(s).map_err(|e| e.to_string())
}
fn schedule(s: &str) -> Result<Schedule, String> {
    Schedule::parse(s).map_err(|e| e.to_string())
}
fn loss(s: &str) -> Result<Loss, String> {
    Loss::parse(s).map_err(|e| e.to_string())
}
fn critic(s: &str) -> Result<CriticKind, String> {
    CriticKind::parse(s)
}
fn gan_loss(s: &str) -> Result<GanLoss, String> {
    match s {
        "non-saturating" => Ok(GanLoss::NonSaturating),
        "hinge" => Ok(GanLoss::Hinge),
        _ => Err(format!(
            "unknown GAN loss `{s}`: expected non-saturating or hinge"
        )),
    }
}

/// `colorize train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Folder tree of colour photos to learn from.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Run directory: metrics.csv, checkpoint/, and the exported model.
    #[arg(long, value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Validation photos (default: 10 % of --data held out).
    #[arg(long, value_name = "DIR")]
    pub val: Option<PathBuf>,
    /// Generator architecture: plain-cnn, resnet18-regressor, unet-resnet34 or fusion.
    #[arg(long, value_parser = arch, default_value = "unet-resnet34")]
    pub arch: Arch,
    /// Network size.
    #[arg(long, value_enum, default_value = "light")]
    pub preset: PresetArg,
    /// unet-resnet34: SAGAN self-attention in the decoder.
    #[arg(long)]
    pub self_attention: bool,
    /// unet-resnet34: spectral normalisation of the decoder's convolutions.
    #[arg(long)]
    pub spectral_norm: bool,
    /// fusion: torchvision ResNet-18 weights (safetensors) for the global-feature backbone.
    #[arg(long, value_name = "FILE")]
    pub backbone: Option<PathBuf>,
    /// Generator loss: l1, mse or ab-bins (default: the architecture's own: L1 for the U-Net,
    /// MSE for the others).
    #[arg(long, value_parser = loss)]
    pub loss: Option<Loss>,
    /// Schedule: regression, pix2pix or nogan.
    #[arg(long, value_parser = schedule, default_value = "regression")]
    pub schedule: Schedule,
    /// Progressive resizing: crop sides in order, each for an equal share of the epochs (e.g.
    /// 64,96,128; default: --image-size).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// GAN schedules: the critic, patchgan or deoldify (default: patchgan for pix2pix, deoldify
    /// for nogan).
    #[arg(long, value_parser = critic)]
    pub critic: Option<CriticKind>,
    /// GAN schedules: the critic's first-layer width.
    #[arg(long, default_value_t = 64)]
    pub critic_width: usize,
    /// GAN schedules: non-saturating or hinge (default: non-saturating for pix2pix, hinge for
    /// nogan).
    #[arg(long, value_parser = gan_loss)]
    pub gan_loss: Option<GanLoss>,
    /// GAN schedules: the critic's learning rate (default: 4 x --lr).
    #[arg(long)]
    pub critic_lr: Option<f64>,
    /// GAN schedules: weight of the reconstruction loss beside the adversarial term.
    #[arg(long, default_value_t = 100.0)]
    pub recon_weight: f64,
    /// nogan: start from this trained model folder instead of pretraining a generator.
    #[arg(long, value_name = "MODEL_DIR")]
    pub generator: Option<PathBuf>,
    /// nogan: critic pretraining steps (default: one epoch).
    #[arg(long)]
    pub critic_steps: Option<usize>,
    /// nogan: GAN steps (default: one epoch).
    #[arg(long)]
    pub gan_steps: Option<usize>,
    /// nogan: validate and snapshot every this many GAN steps (default: a quarter of the phase).
    #[arg(long)]
    pub gan_round_steps: Option<usize>,
    /// Export the best-PSNR round among those with at least this validation colourfulness.
    #[arg(long, default_value_t = 0.0)]
    pub min_colourfulness: f64,
    /// Passes over the training photos.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Photos per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Side of the square random crops the network trains on, in pixels.
    #[arg(long, default_value_t = 128)]
    pub image_size: usize,
    /// Shorter side the photos are resized to before cropping (match it with --render-size).
    #[arg(long, default_value_t = 160)]
    pub load_size: usize,
    /// Render size used for validation and written into the exported config.json.
    #[arg(long, default_value_t = 160)]
    pub render_size: u32,
    /// Peak learning rate (AdamW; linear warm-up, cosine decay).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Random seed (initialisation, order, crops).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Evaluate at most this many validation photos per epoch.
    #[arg(long)]
    pub val_limit: Option<usize>,
    /// Stop after this many minutes of training (validates and checkpoints first).
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Continue from RUN_DIR/checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Where training runs: `cpu` or `gpu` (Vulkan; a build with `--features gpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// Runs `colorize train`.
pub fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    set_threads(args.threads)?;
    let mut opts = TrainOptions::new(args.data, args.out);
    opts.val = args.val;
    opts.preset = match args.preset {
        PresetArg::Light => Preset::Light,
        PresetArg::Resnet34 => Preset::Resnet34,
        PresetArg::Tiny => Preset::Tiny,
    };
    opts.arch = args.arch;
    opts.self_attention = args.self_attention;
    opts.spectral_norm = args.spectral_norm;
    opts.backbone = args.backbone;
    opts.loss = args.loss;
    opts.schedule = args.schedule;
    opts.sizes = args.sizes;
    opts.critic = args.critic;
    opts.critic_width = args.critic_width;
    opts.gan_loss = args.gan_loss;
    opts.critic_lr = args.critic_lr;
    opts.recon_weight = args.recon_weight;
    opts.generator = args.generator;
    opts.critic_steps = args.critic_steps;
    opts.gan_steps = args.gan_steps;
    opts.gan_round_steps = args.gan_round_steps;
    opts.min_colourfulness = args.min_colourfulness;
    opts.epochs = args.epochs;
    opts.batch_size = args.batch_size;
    opts.crop_size = args.image_size;
    opts.load_size = args.load_size;
    opts.render_size = args.render_size;
    opts.learning_rate = args.lr;
    opts.seed = args.seed;
    opts.val_limit = args.val_limit;
    opts.max_minutes = args.max_minutes;
    opts.resume = args.resume;
    let device = select_device(args.device)?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let result = colorize_train::train(&opts, &device, &mut |e| progress.show(e));
    progress.clear();
    let summary = result?;
    eprintln!(
        "trained {} epochs in {:.0} s on {} photos; exported epoch {} to {}",
        summary.last_epoch,
        summary.seconds,
        summary.train_images,
        summary.best_epoch,
        opts.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Log lines without a bar come every this many steps.
const LOG_EVERY_STEPS: usize = 50;

/// Renders [`TrainEvent`]s on stderr.
struct Progress {
    /// Draw a bar (stderr is a terminal).
    bar_enabled: bool,
    /// The current epoch's bar.
    bar: Option<ProgressBar>,
    /// The run's last epoch, from [`TrainEvent::Started`].
    epochs: usize,
}

impl Progress {
    fn new(bar_enabled: bool) -> Self {
        Self {
            bar_enabled,
            bar: None,
            epochs: 0,
        }
    }

    /// Prints a line above the bar, if one is shown.
    fn line(&self, text: String) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    fn clear(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn show(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Skipped { path, reason } => {
                self.line(format!("skipped {}: {reason}", path.display()));
            }
            TrainEvent::NoCheckpoint { dir } => {
                self.line(format!("no checkpoint in {}: starting a new run", dir.display()));
            }
            TrainEvent::Resumed {
                epoch,
                step,
                best_psnr,
                best_epoch,
            } => self.line(format!(
                "resuming after epoch {epoch} (step {step}, best validation PSNR {best_psnr:.2} dB at epoch {best_epoch})"
            )),
            TrainEvent::Started { epochs, .. } => self.epochs = *epochs,
            TrainEvent::Step {
                epoch,
                step,
                steps_per_epoch,
                mean_loss,
                lr,
                images_per_s,
                data_fraction,
                critic_loss,
                ..
            } => {
                let critic = critic_loss
                    .map(|c| format!(" critic {c:.3}"))
                    .unwrap_or_default();
                if self.bar_enabled {
                    let epochs = self.epochs;
                    let bar = self.bar.get_or_insert_with(|| {
                        let b = ProgressBar::new(*steps_per_epoch as u64);
                        b.set_style(
                            ProgressStyle::with_template(
                                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                        b.set_prefix(format!("{epoch}/{epochs}"));
                        b
                    });
                    bar.set_message(format!("loss {mean_loss:.4}{critic} | {images_per_s:.1} img/s"));
                    bar.set_position(*step as u64);
                } else if step % LOG_EVERY_STEPS == 0 {
                    eprintln!(
                        "epoch {epoch} step {step}/{steps_per_epoch} loss {mean_loss:.4}{critic} lr {lr:.2e} {images_per_s:.1} img/s ({:.0} % in data)",
                        100.0 * data_fraction
                    );
                }
            }
            TrainEvent::Validating { .. } => self.clear(),
            TrainEvent::Validated {
                epoch,
                train_loss,
                critic_loss,
                train_seconds,
                images_per_s,
                report,
                val_seconds,
                total_seconds,
            } => self.line(format!(
                "epoch {epoch}: train loss {train_loss:.4}{} ({train_seconds:.0} s, {images_per_s:.1} photos/s), val PSNR {:.2} dB (gray {:.2}), SSIM {:.4}, colourfulness {:.1} (truth {:.1}) ({val_seconds:.0} s), total {total_seconds:.0} s",
                critic_loss.map(|c| format!(", critic {c:.4}")).unwrap_or_default(),
                report.model.psnr,
                report.gray.psnr,
                report.model.ssim,
                report.model.colourfulness,
                report.ground_truth_colourfulness,
            )),
            TrainEvent::Phase { phase, first_round } => {
                self.line(format!("phase {phase} from epoch {first_round}"));
            }
            TrainEvent::StoppedEarly {
                epoch,
                within_epoch: false,
            } => self.line(format!("time budget reached before epoch {epoch}")),
            TrainEvent::StoppedEarly {
                epoch,
                within_epoch: true,
            } => self.line(format!(
                "time budget reached during epoch {epoch}; checkpoint written"
            )),
            // Exported and Checkpointed happen every epoch; the summary line names the export.
            _ => {}
        }
    }
}
