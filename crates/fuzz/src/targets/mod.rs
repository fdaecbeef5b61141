//! The fuzz targets: what an input is, how one is generated from a seed, how it is executed and
//! judged, and how it is written to and read from disk.

use std::path::{Path, PathBuf};

use crate::rng::Rng;

pub mod decode;
pub mod model_dir;
pub mod multipart;

/// What the campaign needs to know about how it runs: where seed photos and extra corpus
/// files are.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// The data folder with real photos (`../shared/data`); `None`: generated seeds only.
    pub data_dir: Option<PathBuf>,
    /// An extra corpus folder (`--corpus`): image files for `decode` and `multipart`, model
    /// folders for `model-dir`.
    pub corpus: Option<PathBuf>,
}

/// A fuzz target.
///
/// `generate` must be a pure function of the seed set and the [`Rng`], so any input can be
/// regenerated from `(seed, index)`; `exec` may keep state (a started server) but must not let
/// it change the verdict on an input.
pub trait Target {
    /// One input.
    type Input;

    /// The target's command-line name (`decode`, `model-dir`, `multipart`).
    const NAME: &'static str;

    /// Builds the seed set. Expensive resources (a server, a model) are created on first use
    /// by [`Target::exec`], so a supervisor can build a target just to regenerate an input.
    fn new(options: &TargetOptions) -> Self
    where
        Self: Sized;

    /// A fresh input for execution `index`, from `rng`.
    fn generate(&mut self, rng: &mut Rng, index: u64) -> Self::Input;

    /// Runs one input. `Ok(label)` is any acceptable outcome (an `Err` from the code under test
    /// included; the label counts outcomes in the summary); `Err(description)` is a crash that
    /// is not a panic (a response the API must never give, a broken invariant).
    ///
    /// # Errors
    /// The description of the crash.
    fn exec(&mut self, input: &Self::Input, index: u64) -> Result<String, String>;

    /// Replay mode: run every check on every input (a target may otherwise run its slower
    /// checks on some executions only).
    fn thorough(&mut self) {}

    /// Drops state a panic may have left broken (a server whose worker thread died).
    fn reset(&mut self) {}

    /// Writes `input` at `stem` plus the target's extension; returns the path written.
    ///
    /// # Errors
    /// The I/O error.
    fn save(input: &Self::Input, stem: &Path) -> std::io::Result<PathBuf>;

    /// Reads an input written by [`Target::save`] (or hand-made in that layout).
    ///
    /// # Errors
    /// The I/O error, or [`std::io::ErrorKind::InvalidData`] for a malformed file.
    fn load(path: &Path) -> std::io::Result<Self::Input>;
}

/// A scratch folder on a RAM disk where there is one (`/dev/shm`), else in the system's
/// temporary folder: the model and upload targets write files on every execution.
///
/// # Errors
/// The I/O error.
pub fn scratch_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new().prefix(prefix).to_owned();
    if shm.is_dir()
        && let Ok(d) = b.tempdir_in(shm)
    {
        return Ok(d);
    }
    b.tempdir()
}
