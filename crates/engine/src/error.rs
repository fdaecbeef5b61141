//! The error type of colorize-engine.

/// Errors from building or running an engine graph.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A layer's parameters do not fit together (weight length, channel counts, kernel size).
    #[error("invalid layer '{layer}': {message}")]
    Layer {
        /// The layer's name (the weight key it came from).
        layer: String,
        /// What is wrong.
        message: String,
    },
    /// An input or output buffer has the wrong length or shape.
    #[error("invalid tensor: {0}")]
    Shape(String),
    /// The requested instruction set is not available on this CPU.
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(&'static str),
}
