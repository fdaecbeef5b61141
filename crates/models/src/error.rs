//! The error type of colorize-models.

use std::path::PathBuf;

/// Errors from loading and saving model directories.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file of the model directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// `config.json` is not valid.
    #[error("{path}: invalid model config: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value of `config.json` is past a bound of [`crate::limits`] (a width, depth, list length,
    /// parameter count or size), refused before anything is allocated.
    #[error("{path}: {field}: {message}")]
    Limit {
        /// The config file.
        path: PathBuf,
        /// The field, as in `config.json` (`network.widths[2]`, `render_size`).
        field: String,
        /// What is wrong, with the bound.
        message: String,
    },
    /// The weights file is not a readable safetensors file.
    #[error("{path}: cannot read weights: {message}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor in the weights file has another shape than the network expects.
    #[error("{path}: weight '{key}' has shape {found:?}, the network expects {expected:?}")]
    WeightShape {
        /// The weights file.
        path: PathBuf,
        /// The tensor's key.
        key: String,
        /// The shape the network expects.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// The network needs a tensor that the weights file lacks.
    #[error("{path}: weight '{key}' is missing from the file")]
    MissingWeight {
        /// The weights file.
        path: PathBuf,
        /// The missing key.
        key: String,
    },
    /// The weights file has a tensor the network does not use (a file for another network).
    #[error("{path}: weight '{key}' is not part of this network (wrong config.json?)")]
    UnexpectedWeight {
        /// The weights file.
        path: PathBuf,
        /// The extra key.
        key: String,
    },
    /// The architecture exists only as an engine graph: burn cannot run or train it.
    #[error(
        "the {arch} network runs on the native engine only (no burn module: use --engine native)"
    )]
    InferenceOnly {
        /// The `arch` tag.
        arch: &'static str,
    },
    /// User hints were given to a model whose network does not take them.
    #[error(
        "this model does not take colour hints (only user-guided networks such as siggraph17 do)"
    )]
    HintsUnsupported,
    /// A render size the model's network cannot take (DDColor: a multiple of 32, as its
    /// encoder halves the size five times and the colour decoder needs every scale whole).
    #[error("render size {render_size}: {message}")]
    RenderSize {
        /// The render size asked for, in pixels.
        render_size: u32,
        /// Which sizes the network takes.
        message: String,
    },
    /// Running the network failed (a backend error).
    #[error("inference failed: {0}")]
    Inference(String),
    /// The network could not be compiled for, or run by, the inference engine.
    #[error("inference engine: {0}")]
    Engine(#[from] colorize_engine::EngineError),
}
