//! Progress of a training run as events, so that the library never prints: the loop calls
//! `on_event(&TrainEvent)` and the caller renders (the CLI draws a progress bar on a terminal and
//! writes log lines otherwise; tests collect them).

use std::path::PathBuf;

use colorize_models::eval::EvalReport;

/// Something that happened during training, in the order the loop reports it:
/// `Skipped`* → (`NoCheckpoint` | `Resumed`)? → `Started` → per epoch: `Step`+ → `Validating` →
/// `Validated` → `Exported`? → `Checkpointed`; `StoppedEarly` ends a run cut by the time budget.
///
/// Epochs are 1-based and count resumed epochs; steps within an epoch are 1-based. Times are in
/// seconds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrainEvent {
    /// A training photo could not be decoded and is left out.
    Skipped {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// `--resume` was asked for but the run has no checkpoint: a new run starts.
    NoCheckpoint {
        /// The checkpoint folder looked at.
        dir: PathBuf,
    },
    /// The run continues from its checkpoint.
    Resumed {
        /// The last epoch the checkpoint completed.
        epoch: usize,
        /// Optimizer steps taken so far.
        step: usize,
        /// The best validation PSNR so far, in dB.
        best_psnr: f64,
        /// The epoch that reached it.
        best_epoch: usize,
    },
    /// Data and model are ready; the first step comes next.
    Started {
        /// Training photos decoded.
        train_images: usize,
        /// Validation photos evaluated after each epoch.
        val_images: usize,
        /// The first epoch this call runs.
        first_epoch: usize,
        /// The last epoch of the run (`--epochs`).
        epochs: usize,
        /// Optimizer steps per epoch.
        steps_per_epoch: usize,
        /// Photos per step.
        batch_size: usize,
    },
    /// A phase of the schedule starts (regression, critic pretraining, adversarial).
    Phase {
        /// Its name, as in `metrics.csv`.
        phase: &'static str,
        /// Its first round.
        first_round: usize,
    },
    /// One optimizer step is done.
    Step {
        /// The epoch.
        epoch: usize,
        /// The step within the epoch, `1..=steps_per_epoch`.
        step: usize,
        /// Steps in an epoch.
        steps_per_epoch: usize,
        /// This step's generator loss (0 while only the critic trains).
        loss: f64,
        /// This step's critic loss, in GAN rounds.
        critic_loss: Option<f64>,
        /// Mean loss of the epoch's steps so far.
        mean_loss: f64,
        /// The learning rate the step used.
        lr: f64,
        /// Training throughput of the epoch so far, in photos per second.
        images_per_s: f64,
        /// Fraction of the epoch's time spent making batches (crops, encoding), 0..=1.
        data_fraction: f64,
    },
    /// The epoch's steps are done; validation starts.
    Validating {
        /// The epoch.
        epoch: usize,
        /// Validation photos.
        images: usize,
    },
    /// The epoch is validated and its row is in `metrics.csv`.
    Validated {
        /// The epoch.
        epoch: usize,
        /// Mean training loss of the epoch (the generator's; 0 while only the critic trains).
        train_loss: f64,
        /// Mean critic loss of the epoch, in GAN rounds.
        critic_loss: Option<f64>,
        /// Seconds the epoch's steps took.
        train_seconds: f64,
        /// Training throughput of the epoch, in photos per second (every network's steps
        /// included: in GAN rounds, critic and generator).
        images_per_s: f64,
        /// The validation report (model, gray input, ground truth).
        report: EvalReport,
        /// Seconds validation took.
        val_seconds: f64,
        /// Training seconds over the whole run so far (resumed sessions too).
        total_seconds: f64,
    },
    /// The epoch has the best validation PSNR so far and was exported as the run's model. (The
    /// checkpoint is written first, the export after it; both events come once both are done.)
    Exported {
        /// The epoch.
        epoch: usize,
        /// Its validation PSNR, in dB.
        psnr: f64,
        /// The model directory (the run directory).
        dir: PathBuf,
    },
    /// The checkpoint now holds this epoch.
    Checkpointed {
        /// The epoch.
        epoch: usize,
        /// Optimizer steps taken so far.
        step: usize,
        /// The checkpoint folder.
        dir: PathBuf,
    },
    /// The time budget (`max_minutes`) ran out; the run ends here.
    StoppedEarly {
        /// With `within_epoch`, the epoch that was cut short (validated and checkpointed);
        /// otherwise the epoch that was not started.
        epoch: usize,
        /// Whether the budget ran out during an epoch rather than between two.
        within_epoch: bool,
    },
}
