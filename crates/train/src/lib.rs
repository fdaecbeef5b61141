//! colorize-train: training colourisers on folders of colour photos.
//!
//! - [`data`]: finding photos, the 90/10 split, decoding them once into CIELAB at a fixed load
//!   size, random square crops and flips into `[batch, 1, S, S]` L / `[batch, 2, S, S]` ab batches.
//! - [`schedule`]: the learning-rate schedule (linear warm-up, cosine decay).
//! - [`trainer`]: the regression training loop (L1 on ab, AdamW), per-epoch validation into
//!   `metrics.csv`, checkpoints every epoch, `--resume`, and the export of the best model.

pub mod data;
pub mod error;
pub mod schedule;
pub mod trainer;

pub use error::TrainError;
pub use trainer::{Preset, TrainOptions, TrainSummary, train};
