//! colorize-fuzz: fuzz targets for colorize on stable Rust, with our own seeded mutator.
//!
//! Three targets, each run under `std::panic::catch_unwind` in supervised worker processes:
//!
//! - `decode` ([`targets::decode`]): image bytes through `colorize_core::io::decode_image_bytes`
//!   (1-megapixel limit) and the network-free colour pipeline (CIELAB L, join, sRGB, output
//!   pixels, encoding, re-decoding), every 16th through a tiny `Colorizer`.
//! - `model-dir` ([`targets::model_dir`]): mutated `config.json` and `model.safetensors` through
//!   `Colorizer::load` (and a colourisation when it loads) and burn's `load_model_dir`.
//! - `multipart` ([`targets::multipart`]): mutated `POST /api/colorize` requests through the
//!   server's router.
//!
//! Seeds ([`seeds`]) are small real photos from `../shared/data`, re-encoded at start-up in every
//! format and colour type colorize decodes, plus generated images. The mutator ([`mutate`],
//! [`json`]) truncates, flips, sets and splices bytes and changes header fields it understands
//! (PNG IHDR with the CRC fixed, JPEG SOF, GIF screen and frame sizes, BMP, TIFF IFD entries,
//! WebP VP8X and VP8L sizes, EXIF orientation, the safetensors header length and JSON). An
//! input is a pure function of `(seed, index)` ([`rng::Rng::for_exec`]).
//!
//! A panic in any thread, a worker that aborts (an allocation refused by the address-space cap,
//! a stack overflow) or hangs, and outcomes the target forbids (a 5xx other than 500/503/507, an
//! image that does not survive its own encoder) are crashes; the input is written to
//! `crashes/<target>/` with a note on how to replay it ([`runner`]).
//!
//! ```text
//! cargo build --workspace --features gpu --bins
//! target/debug/colorize-fuzz decode    --execs 1000000 --threads 2 --seed 1
//! target/debug/colorize-fuzz model-dir --execs 1000000 --threads 2 --seed 1
//! target/debug/colorize-fuzz multipart --execs 1000000 --threads 2 --seed 1
//! target/debug/colorize-fuzz model-dir --replay crates/fuzz/regressions/model-dir
//! ```
//!
//! See `crates/fuzz/README.md` for the options and the figures.

pub mod json;
pub mod mutate;
pub mod panics;
pub mod rng;
pub mod runner;
pub mod seeds;
pub mod targets;

/// The target names, as the command line takes them.
pub const TARGETS: [&str; 3] = ["decode", "model-dir", "multipart"];
