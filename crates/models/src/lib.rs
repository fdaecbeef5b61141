//! colorize-models: the networks (burn 0.22), model directories and the photo → photo
//! [`Colorizer`].
//!
//! - [`unet_resnet`]: the U-Net generator over a ResNet encoder (ResNet-34 and light presets).
//! - [`eccv16`]: Zhang et al. 2016's classification network over 313 ab bins (engine graph only).
//! - [`deoldify`]: DeOldify's generators (engine graph only).
//! - [`ddcolor`]: DDColor (ConvNeXt encoder, pixel decoder, multi-scale colour decoder; engine
//!   graph only).
//! - [`siggraph17`]: Zhang et al. 2017's user-guided network, automatic mode (engine graph only).
//! - [`plain_cnn`]: the plain encoder-decoder baseline (stride-2 convs down, transposed convs up).
//! - [`resnet18_regressor`]: a ResNet-18 encoder with an upsampling head, no skip connections.
//! - [`fusion`]: Deep Koalarization (Baldassarre et al. 2017), an encoder fused with a ResNet-18
//!   backbone's global features.
//! - [`device`]: the CPU or GPU device (`--device cpu|gpu`), chosen in one place.
//! - [`blocks`]: parts shared by networks (ResNet basic blocks).
//! - [`model_dir`]: `config.json` + `model.safetensors` directories, loading with weight checks.
//! - [`model_io`]: the I/O contract in `config.json` (what a network takes and returns, its size
//!   rule).
//! - [`limits`]: bounds on what `config.json` and `model.safetensors` may ask for, checked
//!   before allocating.
//! - [`weights`]: named weights over `model.safetensors`, with scoped key paths.
//! - [`layers`]: engine layers from named weights (batch norm folded, fused epilogues); each
//!   network file has a `graph()` builder made of them, what [`Colorizer`] runs by default.
//! - [`hints`]: user colour hints (`{x, y, color, radius}`) for networks that take them.
//! - [`pipelines`]: the published colourisers' own photo-level pipelines (Zhang's demo, DeOldify's
//!   filter), exact to their libraries' arithmetic.
//! - [`source`]: where a model comes from (bundled bytes or a folder) and how it is set up to run,
//!   shared by the CLI and the server.
//! - [`colorizer`]: the staged pipeline — prepare (full-size L → network input), predict (a batch
//!   → ab), join (ab + full-size L → CIELAB).
//!
//! Every function takes a `&Device`; [`device`] is the one place where a backend is chosen (CPU,
//! or a Vulkan GPU with the `gpu` feature).

pub mod blocks;
pub mod colorizer;
pub mod ddcolor;
pub mod deoldify;
pub mod device;
pub mod eccv16;
pub mod error;
pub mod eval;
pub mod fusion;
pub mod hints;
pub mod layers;
pub mod limits;
pub mod model_dir;
pub mod model_io;
pub mod network;
pub mod pipelines;
pub mod plain_cnn;
pub mod resnet18_regressor;
pub mod siggraph17;
pub mod source;
pub mod unet_resnet;
pub mod weights;

pub use colorize_engine::Isa;
pub use colorizer::{AbPlanes, Colorizer, EngineKind, NetworkInput};
pub use error::ModelError;
pub use hints::{Hint, parse_hints};
pub use model_dir::{ModelConfig, load_model_bytes, load_model_dir, save_model_dir};
pub use model_io::{InputKind, ModelIo, OutputKind, SizeRule};
pub use network::{Network, NetworkConfig};
pub use source::{LoadOptions, ModelSource};
pub use weights::Weights;
