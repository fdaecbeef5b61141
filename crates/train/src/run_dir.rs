//! The run directory of a training run, its layout and the files the trainer writes into it:
//!
//! - `train.json`: the options of the run ([`RunDir::write_options`]).
//! - `metrics.csv`: one row per epoch, appended ([`RunDir::append_metrics`], columns
//!   [`METRICS_HEADER`]): train loss, validation PSNR / SSIM / colourfulness, and the gray baseline.
//! - `checkpoint/`: the last epoch for `--resume` (see [`crate::checkpoint`]).
//! - `config.json` + `model.safetensors`: the exported model, a model directory that `--model`
//!   takes ([`RunDir::export_model`]); the trainer exports the epoch with the best validation PSNR
//!   so far (TRAINING-NOTES.md: longer training raises colourfulness but can lower PSNR).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use colorize_core::io::write_file_atomic;
use colorize_models::eval::EvalReport;
use colorize_models::model_dir::CONFIG_FILE;
use colorize_models::{ModelConfig, Network, save_model_dir};
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::error::TrainError;

/// The options file of a run.
pub const TRAIN_JSON: &str = "train.json";
/// The per-epoch metrics file of a run.
pub const METRICS_FILE: &str = "metrics.csv";
/// The header line of `metrics.csv` (with its newline). Seconds are training time over resumed
/// sessions too; PSNR in dB; `gray_*` score the gray input itself, the floor a model must beat.
pub const METRICS_HEADER: &str = "epoch,step,seconds,train_loss,lr,val_psnr,val_ssim,val_colourfulness,gray_psnr,gray_ssim,truth_colourfulness,val_images,phase,critic_loss\n";

/// A run directory (see the module docs for its layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `root` (and its parents) if needed.
    ///
    /// # Errors
    /// [`TrainError::Write`] if the folder cannot be created.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(TrainError::write(&root))?;
        Ok(Self { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run's checkpoint, `root/checkpoint` (it may not exist yet).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::in_run(&self.root)
    }

    /// Writes `options` as pretty JSON to `train.json`, atomically, replacing an earlier one.
    ///
    /// # Errors
    /// [`TrainError::Json`] if `options` does not serialise, [`TrainError::Core`] on file-system
    /// errors.
    pub fn write_options<T: Serialize>(&self, options: &T) -> Result<(), TrainError> {
        write_json_atomic(&self.root.join(TRAIN_JSON), options)
    }

    /// Keeps only the `metrics.csv` rows of rounds up to `last` (see [`truncate_csv_rows`]): a run
    /// starting after round `last` (0 for a fresh run) calls it before its first row.
    ///
    /// # Errors
    /// As [`truncate_csv_rows`].
    pub fn truncate_metrics(&self, last: usize) -> Result<(), TrainError> {
        truncate_csv_rows(&self.root.join(METRICS_FILE), last)
    }

    /// Appends one row to `metrics.csv`, writing the header first if the file is new.
    ///
    /// # Errors
    /// [`TrainError::Write`] on file-system errors.
    pub fn append_metrics(&self, row: &MetricsRow<'_>) -> Result<(), TrainError> {
        append_csv_row(&self.root.join(METRICS_FILE), METRICS_HEADER, &row.to_csv())
    }

    /// Exports `network` with `config` as the run's model (`config.json` + `model.safetensors`
    /// in the root), each file atomically.
    ///
    /// # Errors
    /// [`TrainError::Model`] on file-system or serialisation errors.
    pub fn export_model(&self, config: &ModelConfig, network: &Network) -> Result<(), TrainError> {
        Ok(save_model_dir(&self.root, config, network)?)
    }

    /// Whether a model has been exported into the root.
    pub fn has_exported_model(&self) -> bool {
        self.root.join(CONFIG_FILE).exists()
    }
}

/// One row of `metrics.csv`: an epoch's training loss and validation report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricsRow<'a> {
    /// The epoch (1-based, counting resumed epochs).
    pub epoch: usize,
    /// Optimizer steps taken so far, over all epochs.
    pub step: usize,
    /// Training seconds so far, over resumed sessions too.
    pub seconds: f64,
    /// Mean training loss of the epoch.
    pub train_loss: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// The epoch's validation report.
    pub report: &'a EvalReport,
    /// The schedule's phase (`regression`, `critic-pretraining`, `adversarial`).
    pub phase: &'a str,
    /// Mean critic loss of the round, in GAN rounds.
    pub critic_loss: Option<f64>,
}

impl MetricsRow<'_> {
    /// The row as a CSV line (with its newline), in the columns of [`METRICS_HEADER`].
    pub fn to_csv(&self) -> String {
        let r = self.report;
        format!(
            "{},{},{:.1},{:.5},{:.3e},{:.3},{:.4},{:.2},{:.3},{:.4},{:.2},{},{},{}\n",
            self.epoch,
            self.step,
            self.seconds,
            self.train_loss,
            self.lr,
            r.model.psnr,
            r.model.ssim,
            r.model.colourfulness,
            r.gray.psnr,
            r.gray.ssim,
            r.ground_truth_colourfulness,
            r.images,
            self.phase,
            self.critic_loss
                .map(|v| format!("{v:.5}"))
                .unwrap_or_default()
        )
    }
}

/// Appends `row` (one line, with its newline) to the CSV file `path`, writing `header` first when
/// the file does not exist yet, in one write (header and row together for a new file), then
/// flushes it to disk. Other training loops use it for their own metrics files.
///
/// # Errors
/// [`TrainError::Write`] on file-system errors.
pub fn append_csv_row(path: &Path, header: &str, row: &str) -> Result<(), TrainError> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(TrainError::write(path))?;
    let bytes = if new {
        format!("{header}{row}")
    } else {
        row.to_string()
    };
    f.write_all(bytes.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(TrainError::write(path))
}

/// Keeps the rows of the CSV file `path` (first column: the round) for rounds up to `last`,
/// dropping later ones and any last line cut short (no newline), by rewriting the file
/// atomically when anything is dropped. A run resumed from the checkpoint of round `last` calls
/// it first, so rows written by a session that crashed before its next checkpoint are not
/// repeated when those rounds run again. A missing file stays missing.
///
/// # Errors
/// [`TrainError::Read`] if the file cannot be read, [`TrainError::Core`] if it cannot be
/// rewritten.
pub fn truncate_csv_rows(path: &Path, last: usize) -> Result<(), TrainError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TrainError::read(path)(e)),
    };
    let mut kept = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let complete = line.ends_with('\n');
        let round = line.split(',').next().and_then(|r| r.parse::<usize>().ok());
        // The header (line 0) stays; a row stays if complete and not after `last`.
        if complete && (i == 0 || round.is_some_and(|r| r <= last)) {
            kept.push_str(line);
        }
    }
    if kept.is_empty() {
        // Not even a whole header: the next row writes a new file with its header.
        std::fs::remove_file(path).map_err(TrainError::write(path))?;
    } else if kept != text {
        write_file_atomic(path, kept.as_bytes(), true)?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path` through a temporary file and a rename.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(write_file_atomic(path, &bytes, true)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use colorize_models::eval::Scores;

    #[test]
    fn metrics_rows_append_under_one_header() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path().join("a/run")).unwrap();
        let report = EvalReport {
            images: 4,
            model: Scores {
                psnr: 23.45678,
                ssim: 0.912345,
                colourfulness: 17.777,
            },
            gray: Scores {
                psnr: 21.0,
                ssim: 0.9,
                colourfulness: 0.0,
            },
            ground_truth_colourfulness: 30.123,
            failed: Vec::new(),
        };
        for epoch in 1..=2 {
            run.append_metrics(&MetricsRow {
                epoch,
                step: 10 * epoch,
                seconds: 12.34,
                train_loss: 0.123456,
                lr: 0.002,
                report: &report,
                phase: "adversarial",
                critic_loss: (epoch == 2).then_some(1.25),
            })
            .unwrap();
        }
        let csv = std::fs::read_to_string(run.root().join(METRICS_FILE)).unwrap();
        assert_eq!(
            csv,
            format!(
                "{METRICS_HEADER}1,10,12.3,0.12346,2.000e-3,23.457,0.9123,17.78,21.000,0.9000,30.12,4,adversarial,\n\
                 2,20,12.3,0.12346,2.000e-3,23.457,0.9123,17.78,21.000,0.9000,30.12,4,adversarial,1.25000\n"
            )
        );
        assert_eq!(
            METRICS_HEADER.trim_end().split(',').count(),
            csv.lines().nth(1).unwrap().split(',').count()
        );
    }

    #[test]
    fn options_are_written_as_json_and_errors_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path()).unwrap();
        run.write_options(&serde_json::json!({"epochs": 3}))
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(TRAIN_JSON)).unwrap()).unwrap();
        assert_eq!(v["epochs"], 3);
        assert!(!run.has_exported_model());

        // A file where the run folder should be: a Write error naming it, with the OS error as source.
        let blocker = tmp.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let e = RunDir::create(blocker.join("run")).unwrap_err();
        assert!(matches!(&e, TrainError::Write { .. }), "{e}");
        assert!(e.to_string().contains("file"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
