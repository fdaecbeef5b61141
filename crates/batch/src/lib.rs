//! colorize-batch: colourise a collection of photos in object storage (S3, GCS, Azure Blob
//! Storage) or a local folder, as one shard of a job that a batch engine (a Kubernetes Indexed
//! Job, an AWS Batch array job, Argo, Ray) runs on many machines.
//!
//! It is not a scheduler: each process is a well-behaved worker. It lists the inputs under a
//! prefix (or reads a manifest), keeps the keys whose stable hash falls in its shard
//! ([`shard`]), skips the outputs that already exist, and runs the rest through a bounded
//! pipeline ([`pipeline`]): download and decode on a few threads, inference on one (the caller's,
//! which owns the model), encode and upload on a few more, joined by bounded channels so memory
//! stays flat. Each shard writes a JSON report next to the outputs ([`report`]), periodically
//! and at the end; [`report::summarize`] merges them.
//!
//! Storage goes through the `object_store` crate ([`location`]); this crate knows nothing about
//! models: the caller passes the colourisation step as a closure.

pub mod error;
pub mod listing;
pub mod location;
pub mod pipeline;
pub mod report;
pub mod shard;

pub use error::BatchError;
pub use location::{Location, retry_config};
pub use pipeline::{BatchConfig, FormatChoice, Progress, run};
pub use report::{Failure, ShardReport, Summary, report_path, summarize};
pub use shard::{Shard, fnv1a64};
