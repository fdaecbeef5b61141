//! colorize-fuzz's integration tests: a short campaign of every target with a fixed seed, and a
//! replay of every regression input under `crates/fuzz/regressions/<target>/`.
//!
//! Both run the `colorize-fuzz` binary, so an input that aborts the process (an oversized
//! allocation) fails a test instead of killing the test runner.

mod campaigns;
mod regressions;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_colorize-fuzz");

/// The regression inputs of `target`.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

/// What a run of the binary gave.
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// The JSON summary.
    pub summary: serde_json::Value,
    /// stdout and stderr, for failure messages.
    pub output: String,
}

/// Runs `colorize-fuzz` with `args`, crash inputs and the summary in a temporary folder.
pub fn run(args: &[&str]) -> Run {
    let tmp = tempfile::tempdir().expect("tempdir");
    let summary = tmp.path().join("summary.json");
    let o = Command::new(BIN)
        .args(args)
        .arg("--out")
        .arg(tmp.path().join("crashes"))
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .expect("colorize-fuzz runs");
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = std::fs::read(&summary)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("no summary:\n{output}"));
    Run {
        code: o.status.code(),
        summary,
        output,
    }
}
