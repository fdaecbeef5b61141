//! Shard reports and their summary.
//!
//! Each shard writes `_colorize/reports/shard-<I>-of-<N>.json` under the output prefix: every
//! few images while it runs (`"state": "running"`, so a killed shard leaves its progress) and
//! once more at the end (`"state": "finished"`). A rerun of the shard replaces it; the outputs
//! the earlier run wrote then count as `skipped`. [`summarize`] reads every report of a job.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::error::BatchError;
use crate::listing::META_DIR;
use crate::location::Location;
use crate::shard::Shard;

/// The version of the report's layout.
pub const REPORT_FORMAT: u32 = 1;

/// One image that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The input key, relative to the input prefix.
    pub key: String,
    /// What went wrong (one line).
    pub reason: String,
}

/// Seconds spent in each stage, summed over the images (stages overlap, so the sum exceeds the
/// wall-clock time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Checking whether the output exists and reading the input.
    pub download_seconds: f64,
    /// Decoding.
    pub decode_seconds: f64,
    /// The colourisation step (network and colour conversion).
    pub inference_seconds: f64,
    /// Encoding the output.
    pub encode_seconds: f64,
    /// Writing the output.
    pub upload_seconds: f64,
}

/// What a shard did: `_colorize/reports/shard-<I>-of-<N>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardReport {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// The colorize version that wrote it.
    pub version: String,
    /// `running` (written periodically) or `finished` (written at the end).
    pub state: String,
    /// The input URL.
    pub input: String,
    /// The output URL.
    pub output: String,
    /// This shard.
    pub shard_index: u64,
    /// The job's shard count.
    pub shard_count: u64,
    /// The model (its `--model` value, or `stable`).
    pub model: String,
    /// The render size the network ran at.
    pub render_size: u32,
    /// The output format (`same` or a format's extension).
    pub output_format: String,
    /// Images in the input (listed or named by the manifest), all shards.
    pub input_images: u64,
    /// Images of this shard.
    pub shard_images: u64,
    /// Colourised and written by this run.
    pub done: u64,
    /// Left alone because the output already existed (written by an earlier run).
    pub skipped: u64,
    /// Failed (see `failures`).
    pub failed: u64,
    /// Unix time (seconds) the run started.
    pub started_unix: u64,
    /// Unix time (seconds) of this report.
    pub updated_unix: u64,
    /// Seconds since the start.
    pub elapsed_seconds: f64,
    /// `done / elapsed_seconds`.
    pub images_per_second: f64,
    /// Seconds per stage.
    pub timings: Timings,
    /// Each failed image and why.
    pub failures: Vec<Failure>,
}

impl ShardReport {
    /// Whether the shard ran to its end.
    pub fn finished(&self) -> bool {
        self.state == "finished"
    }
}

/// The key of shard `shard`'s report under `output`.
pub fn report_path(output: &Location, shard: Shard) -> StorePath {
    output.path(&format!(
        "{META_DIR}/reports/shard-{}-of-{}.json",
        shard.index, shard.count
    ))
}

/// Writes `report` to its key under `output` (one PUT: the report is replaced whole).
///
/// # Errors
/// [`BatchError::Report`] when the write fails.
pub async fn write_report(output: &Location, report: &ShardReport) -> Result<(), BatchError> {
    let shard = Shard {
        index: report.shard_index,
        count: report.shard_count,
    };
    let path = report_path(output, shard);
    let json = serde_json::to_vec_pretty(report).expect("a report serialises");
    output
        .store
        .put(&path, PutPayload::from(json))
        .await
        .map_err(|e| BatchError::Report {
            path: format!(
                "{}/{}",
                output.url.trim_end_matches('/'),
                report_key(output, &path)
            ),
            message: format!("cannot write the report: {e}"),
        })?;
    Ok(())
}

fn report_key(output: &Location, path: &StorePath) -> String {
    output.relative(path).unwrap_or_else(|| path.to_string())
}

/// The merged reports of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The shard count of the reports merged.
    pub shard_count: u64,
    /// Reports found (one per shard index at most).
    pub reports: u64,
    /// Shard indexes with no report.
    pub missing: Vec<u64>,
    /// Shard indexes whose report says `running` (killed, or still at work).
    pub unfinished: Vec<u64>,
    /// Images in the input (from the reports; the same in each).
    pub input_images: u64,
    /// Colourised by the last run of each shard.
    pub done: u64,
    /// Already there at the last run of each shard.
    pub skipped: u64,
    /// Failed in the last run of each shard.
    pub failed: u64,
    /// Sum over shards of images/s.
    pub images_per_second: f64,
    /// Every failure, with its shard.
    pub failures: Vec<(u64, Failure)>,
    /// Shard counts of other reports found (an earlier job with another count), not merged.
    pub other_counts: Vec<u64>,
}

impl Summary {
    /// Whether every shard finished and no image failed.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.unfinished.is_empty() && self.failed == 0
    }
}

/// Reads every report under `output` and merges those of `count` shards (when `None`: the count
/// the reports share; with several, the one of the most recently updated report).
///
/// # Errors
/// [`BatchError::Output`] when the reports cannot be listed, [`BatchError::Report`] when one
/// cannot be read or parsed, or none is there.
pub async fn summarize(output: &Location, count: Option<u64>) -> Result<Summary, BatchError> {
    let dir = output.path(&format!("{META_DIR}/reports"));
    let mut stream = output.store.list(Some(&dir));
    let mut reports = Vec::new();
    while let Some(item) = stream.next().await {
        let meta = item.map_err(|error| BatchError::Output {
            url: output.url.clone(),
            error,
        })?;
        let name = meta.location.filename().unwrap_or("");
        if !(name.starts_with("shard-") && name.ends_with(".json")) {
            continue;
        }
        let where_ = || {
            format!(
                "{}/{}",
                output.url.trim_end_matches('/'),
                report_key(output, &meta.location)
            )
        };
        let bytes = async { output.store.get(&meta.location).await?.bytes().await }
            .await
            .map_err(|e| BatchError::Report {
                path: where_(),
                message: format!("cannot read the report: {e}"),
            })?;
        let report: ShardReport =
            serde_json::from_slice(&bytes).map_err(|e| BatchError::Report {
                path: where_(),
                message: format!("not a shard report: {e}"),
            })?;
        reports.push(report);
    }
    if reports.is_empty() {
        return Err(BatchError::Report {
            path: format!("{}/{META_DIR}/reports/", output.url.trim_end_matches('/')),
            message: "no shard reports (has `colorize batch` run with this --output?)".into(),
        });
    }
    let count = count.unwrap_or_else(|| {
        reports
            .iter()
            .max_by_key(|r| r.updated_unix)
            .map(|r| r.shard_count)
            .expect("not empty")
    });
    let mut by_index = BTreeMap::new();
    let mut other_counts = Vec::new();
    for r in reports {
        if r.shard_count == count && r.shard_index < count {
            by_index.insert(r.shard_index, r);
        } else if !other_counts.contains(&r.shard_count) {
            other_counts.push(r.shard_count);
        }
    }
    other_counts.sort_unstable();
    let mut s = Summary {
        shard_count: count,
        reports: by_index.len() as u64,
        missing: (0..count).filter(|i| !by_index.contains_key(i)).collect(),
        other_counts,
        ..Summary::default()
    };
    for (i, r) in &by_index {
        if !r.finished() {
            s.unfinished.push(*i);
        }
        s.input_images = s.input_images.max(r.input_images);
        s.done += r.done;
        s.skipped += r.skipped;
        s.failed += r.failed;
        s.images_per_second += r.images_per_second;
        s.failures
            .extend(r.failures.iter().map(|f| (*i, f.clone())));
    }
    Ok(s)
}
