//! The error type of colorize-train. Failures of a lower layer keep their cause as
//! [`std::error::Error::source`], so `{:#}` in the CLI (anyhow) prints the whole chain on one line.

use std::path::PathBuf;

/// Errors from training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// None of the training photos could be decoded (each was reported as
    /// [`crate::TrainEvent::Skipped`]).
    #[error("{path}: no readable images found (every image file failed to decode)")]
    NoImages {
        /// The data folder.
        path: PathBuf,
    },
    /// Too few photos to make both a training and a validation set.
    #[error("{path}: {found} images, need at least 2 to split into training and validation")]
    TooFewImages {
        /// The folder.
        path: PathBuf,
        /// Images found.
        found: usize,
    },
    /// A file or folder of the run directory could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file or folder of the run directory could not be created or written.
    #[error("cannot write {path}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the run directory (`train.json`, `checkpoint/state.json`) could not be
    /// parsed or serialised.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The optimizer state (`checkpoint/optimizer.bpk`) could not be serialised or loaded.
    #[error("{path}: cannot save or load the optimizer state")]
    Optimizer {
        /// The file.
        path: PathBuf,
        /// burn's error.
        #[source]
        source: burn::store::RecordError,
    },
    /// Every training photo is gray (a and b near 0): there is no colour to learn.
    #[error(
        "{path}: every training photo is gray (a and b within ±2): nothing to learn colour from"
    )]
    AllGray {
        /// The training folder.
        path: PathBuf,
    },
    /// A loss, or the generator's weights, stopped being finite; nothing of the round was
    /// written (no metrics row, checkpoint or export), so the last good checkpoint and the
    /// exported model stand.
    #[error(
        "the {what} became NaN or infinite in round {epoch} at step {step}; the last good checkpoint and exported model are kept (lower --lr or --critic-lr)"
    )]
    Diverged {
        /// What stopped being finite: `generator loss`, `critic loss`, `generator loss in
        /// inference mode`, or `generator weight '<key>'`.
        what: String,
        /// The round (usually the epoch, 1-based) that diverged.
        epoch: usize,
        /// The global step (optimizer steps taken before it).
        step: usize,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
    /// The model's I/O contract is one the trainer cannot train (see `ModelIo::encode_target`).
    #[error("model contract: {0}")]
    Contract(String),
    /// Finding the photos or writing a file atomically failed (the path is in the error).
    #[error(transparent)]
    Core(#[from] colorize_core::CoreError),
    /// Saving or loading a model failed.
    #[error(transparent)]
    Model(#[from] colorize_models::ModelError),
}

impl TrainError {
    /// A [`TrainError::Read`] for `path`, as a `map_err` closure argument.
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Read { path, source }
    }

    /// A [`TrainError::Write`] for `path`, as a `map_err` closure argument.
    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Write { path, source }
    }
}
