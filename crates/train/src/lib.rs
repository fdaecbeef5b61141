//! colorize-train: training colourisers on folders of colour photos.
//!
//! The parts are separate so that other loops (a GAN's generator and critic, two optimizers,
//! phases) can reuse them:
//!
//! - [`data`]: the 90/10 split, decoding photos once into CIELAB at a fixed load size, random
//!   square crops and flips into batches encoded by the model's I/O contract (`[batch, C, S, S]`
//!   input, `[batch, 2, S, S]` ab target). Finding the photos is `colorize_core::files`.
//! - [`losses`]: L1 and MSE on ab, `[batch, 2, H, W]` → `[1]`, with why L1 is the default, and
//!   the GAN losses (non-saturating, hinge) for critic and generator.
//! - [`ab_bins`]: classification over 313 quantised ab bins with class rebalancing (Zhang et al.
//!   2016), a loss for any generator.
//! - [`critics`]: the discriminators: pix2pix's 70x70 PatchGAN and DeOldify's critic.
//! - [`options`]: [`TrainOptions`] — architecture, preset, loss, schedule, sizes, GAN settings.
//! - [`schedule`]: the learning-rate schedule (linear warm-up, cosine decay).
//! - [`run_dir`]: the run directory: `train.json`, `metrics.csv`, the exported model.
//! - [`checkpoint`]: weights + optimizer state + `state.json`, replaced as a whole, for `--resume`.
//! - [`events`]: [`TrainEvent`], the progress a loop reports to its caller (the library never
//!   prints).
//! - [`trainer`]: the loop of every schedule ([`train`]): regression, pix2pix and NoGAN rounds,
//!   progressive resizing, validation through the real pipeline after every round, a checkpoint
//!   every round, and the export of the best one.

pub mod ab_bins;
pub mod checkpoint;
pub mod critics;
pub mod data;
pub mod error;
pub mod events;
pub mod losses;
pub mod options;
pub mod run_dir;
pub mod schedule;
pub mod trainer;

pub use error::TrainError;
pub use events::TrainEvent;
pub use options::{Arch, Loss, Preset, Schedule, TrainOptions};
pub use trainer::{Phase, TrainSummary, train};
