//! colorize-engine: the inference engine that runs colorize's networks on the CPU.
//!
//! burn stays the training framework; for inference a network is compiled once into a [`Graph`]:
//! batch norm folded into the convolution weights (by the caller, `colorize-models`), bias,
//! residual addition and activation fused into each convolution's epilogue, weights pre-packed
//! for the micro-kernel of the CPU's instruction set ([`Isa`]: AVX-512, AVX2+FMA, or portable),
//! and one reusable buffer arena planned per input shape, with concatenations as views.
//!
//! Activations are NHWC `f32` throughout (`[batch, height, width, channels]`).
//!
//! - [`conv`]: the indirect implicit-GEMM convolution and its micro-kernels (grouped convolutions
//!   as one GEMM per group, depthwise ones as a per-channel vector loop).
//! - [`ops`]: the graph's ops, one file each behind one internal interface: convolution,
//!   pooling, resizing, pixel shuffle, self-attention, layer norm, constants, sine position
//!   encoding, multi-head attention, token projection, copy, concatenation.
//! - [`attention`]: SAGAN self-attention on the convolution kernels.
//! - [`mha`]: multi-head scaled dot-product attention on the convolution kernels.
//! - [`fold`]: batch, spectral and weight norm folded into plain weights at load time.
//! - [`graph`]: graph building, memory planning and execution, generic over the ops.
//! - [`reference`](mod@reference): naive, obviously-correct versions for tests.

pub mod attention;
pub mod conv;
pub mod error;
pub mod fold;
pub mod graph;
pub mod isa;
pub mod mha;
pub mod ops;
pub mod reference;

pub use conv::{Activation, ConvSpec, PackedConv};
pub use error::EngineError;
pub use graph::{Graph, OpTiming, Plan, Value};
pub use isa::Isa;
pub use ops::{PoolKind, ResizeMode};
