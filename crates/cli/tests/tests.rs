//! End-to-end tests of the `colorize` binary (assert_cmd) on temporary folders of real photos
//! from ../shared/data, including corrupt files and names with spaces and commas.

mod batch_cmd;
mod device_cmd;
mod engine_cmd;
mod eval;
mod image_cmd;
mod import_cmd;
mod serve_cmd;
#[cfg(feature = "train")]
mod train_cmd;
mod video_cmd;

use std::path::PathBuf;

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The binary under test.
pub fn colorize() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("colorize").unwrap()
}

/// The largest difference, in levels, between two 8-bit RGB photos of one size.
pub fn worst_difference(a: &image::RgbImage, b: &image::RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}
