//! colorize-models: the networks (burn 0.22), model directories and the photo → photo
//! [`Colorizer`].
//!
//! - [`unet_resnet`]: the U-Net generator over a ResNet encoder (ResNet-34 and light presets).
//! - [`blocks`]: parts shared by networks (ResNet basic blocks).
//! - [`model_dir`]: `config.json` + `model.safetensors` directories, loading with weight checks.
//! - [`compile`](mod@compile): a loaded network → a `colorize_engine::Graph` (batch norm folded, fused,
//!   packed), what [`Colorizer`] runs by default.
//! - [`colorizer`]: the pipeline — full-size L → render size → network → ab → full size → sRGB.
//!
//! No backend is chosen here: every function takes a `&Device`; the binary picks it.

pub mod blocks;
pub mod colorizer;
pub mod compile;
pub mod error;
pub mod eval;
pub mod model_dir;
pub mod network;
pub mod unet_resnet;

pub use colorize_engine::Isa;
pub use colorizer::{Colorizer, EngineKind, render_dims};
pub use compile::compile;
pub use error::ModelError;
pub use model_dir::{ModelConfig, load_model_bytes, load_model_dir, save_model_dir};
pub use network::{Network, NetworkConfig};
