//! The error type of colorize-batch: what stops a shard before (or instead of) any work. A
//! problem with one image is not an error here: it is a [`crate::Failure`] in the report.

/// Errors that stop a batch (each names the URL or file it is about).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A URL or path that names no store colorize can use.
    #[error("{url}: {message}")]
    BadUrl {
        /// The URL or path as given.
        url: String,
        /// Why it cannot be used.
        message: String,
    },
    /// The store could not be set up (missing bucket, bad configuration, missing folder).
    #[error("{url}: cannot open the store: {error}")]
    Open {
        /// The URL.
        url: String,
        /// object_store's error.
        error: object_store::Error,
    },
    /// Listing the input failed: the store is unreachable, the credentials are wrong or the
    /// bucket does not exist.
    #[error(
        "{url}: cannot list the input (unreachable store, wrong credentials or no such bucket?): {error}"
    )]
    List {
        /// The input URL.
        url: String,
        /// object_store's error.
        error: object_store::Error,
    },
    /// The output store could not be reached before any work.
    #[error(
        "{url}: cannot reach the output store (unreachable store, wrong credentials or no such bucket?): {error}"
    )]
    Output {
        /// The output URL.
        url: String,
        /// object_store's error.
        error: object_store::Error,
    },
    /// The input prefix (or manifest) names no image.
    #[error("{url}: no images to colourise ({what})")]
    NoImages {
        /// The input URL.
        url: String,
        /// What was looked at.
        what: String,
    },
    /// The output would be inside the input, or the input inside the output.
    #[error(
        "output {output} is inside input {input} (or the input inside it): outputs would be listed as inputs; choose a separate prefix"
    )]
    Overlap {
        /// The input URL.
        input: String,
        /// The output URL.
        output: String,
    },
    /// A shard index that is not below the shard count, or a count of 0.
    #[error(
        "shard index {index} is outside the shard count {count} (indexes run from 0 to count - 1)"
    )]
    BadShard {
        /// The index.
        index: u64,
        /// The count.
        count: u64,
    },
    /// The manifest could not be read.
    #[error("{path}: cannot read the manifest: {error}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A report could not be written, read or parsed.
    #[error("{path}: {message}")]
    Report {
        /// The report's URL.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the I/O runtime: {0}")]
    Runtime(std::io::Error),
}
