//! Checkpoints for `--resume`: the network's weights (a model directory: `config.json` +
//! `model.safetensors`), the optimizer state (`optimizer.bpk`, burn's burnpack) and the loop's
//! position (`state.json`), in `RUN_DIR/checkpoint/`.
//!
//! A checkpoint is replaced as a whole: [`Checkpoint::begin`] stages the new files in
//! `checkpoint.partial/`, and [`CheckpointWriter::commit`] swaps that folder into place (the old
//! one goes to `checkpoint.previous/` and is then removed). A crash at any moment leaves either the
//! old or the new checkpoint complete, never weights of one epoch with the state of another;
//! [`Checkpoint::find`] finishes a swap that was cut short. A loop with more networks or optimizers
//! (a GAN's generator and critic) writes more files into the same [`CheckpointWriter`].

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use colorize_core::io::write_file_atomic;
use colorize_models::model_dir::{CONFIG_FILE, WEIGHTS_FILE, load_weights};
use colorize_models::{ModelConfig, Network, save_model_dir};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::run_dir::write_json_atomic;

/// The checkpoint folder inside a run directory.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// The regression trainer's optimizer file in a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
/// The loop-position file of a checkpoint; written last, its presence marks a checkpoint.
pub const STATE_FILE: &str = "state.json";

/// The position of a training loop, `state.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The last completed round, usually an epoch (1-based; 0 before the first).
    pub epoch: usize,
    /// Optimizer steps taken, over all epochs (drives the learning-rate schedule and crop seeds).
    pub step: usize,
    /// Validation PSNR of the exported model, in dB.
    pub best_psnr: f64,
    /// Whether the exported model reached the run's `min_colourfulness`.
    #[serde(default)]
    pub best_colourful: bool,
    /// The epoch that reached it (the exported model).
    pub best_epoch: usize,
    /// Training seconds over every session of the run.
    pub seconds: f64,
}

/// A checkpoint folder, which may not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The checkpoint at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The checkpoint of the run directory `run`: `run/checkpoint`.
    pub fn in_run(run: &Path) -> Self {
        Self::new(run.join(CHECKPOINT_DIR))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.dir.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Whether a complete checkpoint is there (its `state.json` exists). A swap that a crash cut
    /// short (no checkpoint, but a complete `checkpoint.previous/`) is finished first by moving
    /// the previous checkpoint back.
    ///
    /// # Errors
    /// [`TrainError::Write`] if that move fails.
    pub fn find(&self) -> Result<bool, TrainError> {
        if self.dir.join(STATE_FILE).is_file() {
            return Ok(true);
        }
        let previous = self.sibling(".previous");
        if previous.join(STATE_FILE).is_file() {
            if self.dir.exists() {
                std::fs::remove_dir_all(&self.dir).map_err(TrainError::write(&self.dir))?;
            }
            std::fs::rename(&previous, &self.dir).map_err(TrainError::write(&self.dir))?;
            return Ok(true);
        }
        Ok(false)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, TrainError> {
        let path = self.dir.join(name);
        std::fs::read(&path).map_err(TrainError::read(path))
    }

    /// The model config saved with the weights (the architecture to rebuild before loading).
    ///
    /// # Errors
    /// [`TrainError::Read`] if `config.json` cannot be read, [`TrainError::Model`] if it is invalid.
    pub fn read_config(&self) -> Result<ModelConfig, TrainError> {
        let bytes = self.read(CONFIG_FILE)?;
        Ok(ModelConfig::from_json(&bytes, &self.dir.join(CONFIG_FILE))?)
    }

    /// Loads the saved weights into `network` (built from [`Checkpoint::read_config`]).
    ///
    /// # Errors
    /// [`TrainError::Read`] if `model.safetensors` cannot be read, [`TrainError::Model`] if its
    /// tensors do not fit `network`.
    pub fn load_weights(&self, network: &mut Network) -> Result<(), TrainError> {
        let bytes = self.read(WEIGHTS_FILE)?;
        Ok(load_weights(network, bytes, &self.dir.join(WEIGHTS_FILE))?)
    }

    /// Restores the optimizer state saved as `file` (e.g. [`OPTIMIZER_FILE`]) into `optimizer`,
    /// a freshly initialised optimizer of the same kind.
    ///
    /// # Errors
    /// [`TrainError::Read`] if the file cannot be read, [`TrainError::Optimizer`] if burn cannot
    /// decode it.
    pub fn load_optimizer(
        &self,
        file: &str,
        optimizer: ModuleOptimizer,
    ) -> Result<ModuleOptimizer, TrainError> {
        let bytes = self.read(file)?;
        optimizer
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|source| TrainError::Optimizer {
                path: self.dir.join(file),
                source,
            })
    }

    /// The loop position, `state.json`.
    ///
    /// # Errors
    /// [`TrainError::Read`] if it cannot be read, [`TrainError::Json`] if it does not parse as `S`.
    pub fn read_state<S: DeserializeOwned>(&self) -> Result<S, TrainError> {
        let bytes = self.read(STATE_FILE)?;
        serde_json::from_slice(&bytes).map_err(|source| TrainError::Json {
            path: self.dir.join(STATE_FILE),
            source,
        })
    }

    /// Starts writing a new checkpoint into an empty staging folder (`checkpoint.partial/`,
    /// cleared first if an earlier attempt left one). Nothing replaces the current checkpoint
    /// until [`CheckpointWriter::commit`].
    ///
    /// # Errors
    /// [`TrainError::Write`] if the staging folder cannot be made.
    pub fn begin(&self) -> Result<CheckpointWriter, TrainError> {
        let staging = self.sibling(".partial");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(TrainError::write(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(TrainError::write(&staging))?;
        Ok(CheckpointWriter {
            staging,
            target: self.clone(),
        })
    }
}

/// A checkpoint being written (see [`Checkpoint::begin`]); dropped without
/// [`CheckpointWriter::commit`], it leaves the current checkpoint as it was.
#[derive(Debug)]
pub struct CheckpointWriter {
    staging: PathBuf,
    target: Checkpoint,
}

impl CheckpointWriter {
    /// The staging folder, for extra files of other loops.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// Saves `network` with `config` (`config.json` + `model.safetensors`).
    ///
    /// # Errors
    /// [`TrainError::Model`] on file-system or serialisation errors.
    pub fn save_model(&self, config: &ModelConfig, network: &Network) -> Result<(), TrainError> {
        Ok(save_model_dir(&self.staging, config, network)?)
    }

    /// Saves the optimizer state as `file` (burnpack bytes).
    ///
    /// # Errors
    /// [`TrainError::Optimizer`] if burn cannot serialise it, [`TrainError::Core`] on file-system
    /// errors.
    pub fn save_optimizer(
        &self,
        file: &str,
        optimizer: &ModuleOptimizer,
    ) -> Result<(), TrainError> {
        let path = self.staging.join(file);
        let bytes = optimizer
            .into_bytes()
            .map_err(|source| TrainError::Optimizer {
                path: path.clone(),
                source,
            })?;
        Ok(write_file_atomic(&path, &bytes, true)?)
    }

    /// Saves the loop position as `state.json`.
    ///
    /// # Errors
    /// [`TrainError::Json`] if `state` does not serialise, [`TrainError::Core`] on file-system
    /// errors.
    pub fn save_state<S: Serialize>(&self, state: &S) -> Result<(), TrainError> {
        write_json_atomic(&self.staging.join(STATE_FILE), state)
    }

    /// Puts the staged checkpoint in place of the current one: current → `checkpoint.previous/`,
    /// staging → `checkpoint/`, then the previous one is removed.
    ///
    /// # Errors
    /// [`TrainError::Write`] if a rename or the removal fails.
    pub fn commit(self) -> Result<Checkpoint, TrainError> {
        let target = self.target.dir.clone();
        let previous = self.target.sibling(".previous");
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(TrainError::write(&previous))?;
        }
        if target.exists() {
            std::fs::rename(&target, &previous).map_err(TrainError::write(&previous))?;
        }
        std::fs::rename(&self.staging, &target).map_err(TrainError::write(&target))?;
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(TrainError::write(&previous))?;
        }
        Ok(self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epoch: usize) -> TrainState {
        TrainState {
            epoch,
            step: 10 * epoch,
            best_psnr: 22.5,
            best_epoch: epoch,
            seconds: 1.5,
            best_colourful: false,
        }
    }

    #[test]
    fn commit_replaces_the_whole_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let ckpt = Checkpoint::in_run(tmp.path());
        assert!(!ckpt.find().unwrap());
        let w = ckpt.begin().unwrap();
        w.save_state(&state(1)).unwrap();
        std::fs::write(w.dir().join("extra.bin"), b"1").unwrap();
        // Not committed yet: no checkpoint.
        assert!(!ckpt.find().unwrap());
        w.commit().unwrap();
        assert!(ckpt.find().unwrap());
        assert_eq!(ckpt.read_state::<TrainState>().unwrap(), state(1));

        let w = ckpt.begin().unwrap();
        w.save_state(&state(2)).unwrap();
        w.commit().unwrap();
        assert_eq!(ckpt.read_state::<TrainState>().unwrap(), state(2));
        assert!(
            !ckpt.dir().join("extra.bin").exists(),
            "the old checkpoint is gone as a whole"
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["checkpoint"], "no staging or previous folder left");
    }

    #[test]
    fn an_interrupted_swap_is_finished_and_bad_files_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let ckpt = Checkpoint::in_run(tmp.path());
        let w = ckpt.begin().unwrap();
        w.save_state(&state(3)).unwrap();
        w.commit().unwrap();
        // A crash between the two renames: only checkpoint.previous/ is left.
        std::fs::rename(ckpt.dir(), tmp.path().join("checkpoint.previous")).unwrap();
        assert!(ckpt.find().unwrap());
        assert_eq!(ckpt.read_state::<TrainState>().unwrap(), state(3));

        std::fs::write(ckpt.dir().join(STATE_FILE), b"{ not json").unwrap();
        let e = ckpt.read_state::<TrainState>().unwrap_err();
        assert!(matches!(&e, TrainError::Json { .. }), "{e}");
        assert!(e.to_string().contains(STATE_FILE), "{e}");
        let e = ckpt.read_config().unwrap_err();
        assert!(matches!(&e, TrainError::Read { .. }), "{e}");
        assert!(e.to_string().contains(CONFIG_FILE), "{e}");

        std::fs::write(ckpt.dir().join(OPTIMIZER_FILE), b"garbage").unwrap();
        let Err(e) = ckpt.load_optimizer(OPTIMIZER_FILE, burn::optim::AdamWConfig::new().init())
        else {
            panic!("garbage loaded as optimizer state");
        };
        assert!(matches!(&e, TrainError::Optimizer { .. }), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
