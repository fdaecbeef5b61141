//! The error type of colorize-train.

use std::path::PathBuf;

/// Errors from training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A data folder holds no readable photo.
    #[error(
        "{path}: no readable images found (looked for jpg, jpeg, png, webp, tif, tiff, bmp, gif)"
    )]
    NoImages {
        /// The folder.
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
    /// A file of the run directory could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
    /// The model's I/O contract is one the trainer cannot train (see `ModelIo::encode_target`).
    #[error("model contract: {0}")]
    Contract(String),
    /// Saving or loading a model failed.
    #[error(transparent)]
    Model(#[from] colorize_models::ModelError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.into(),
            message: e.to_string(),
        }
    }
}
