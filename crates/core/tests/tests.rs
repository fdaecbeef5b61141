//! colorize-core integration tests: colour science against palette and published values, image
//! I/O on real photos from ../shared/data and on crafted bad files.

mod color;
mod io;
mod opencv;
mod strips;

use std::path::PathBuf;

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}
