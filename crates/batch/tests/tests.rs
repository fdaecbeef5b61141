//! Integration tests of colorize-batch over in-memory and local stores, with a stand-in for the
//! network (the CLI's tests run the real model).

mod memory;

use std::path::PathBuf;

/// `../shared/data` beside the repository.
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}
