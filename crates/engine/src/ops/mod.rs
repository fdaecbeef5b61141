//! The graph's ops, one file each, behind one crate-internal interface (`Node`).
//!
//! A [`Graph`](crate::Graph) is a list of boxed `Node`s; its planner and executor are generic
//! over the trait: they ask each op which values it reads, what output size it makes, how much
//! scratch it needs, and then run it on views into the arena. Adding an op is one new file here
//! (a struct, its `Node` impl and its kernel) plus one builder method on `Graph` — the design of
//! ONNX Runtime's and TFLite's kernel registries (an op = shape inference + scratch request +
//! compute), without the registry since every op is known at compile time.
//!
//! - `conv.rs`: a packed convolution (kernels in [`crate::conv`]) with an optional
//!   residual.
//! - `pool.rs`: max- and average pooling.
//! - `global_pool.rs`: global average pooling to a `1 x 1` map.
//! - `resize.rs`: nearest and bilinear resizing to another value's size or by a factor.
//! - `affine.rs`: a per-channel affine map (batch norm that cannot fold into a convolution).
//! - `softmax.rs`: softmax over the channels of each pixel.
//! - `add.rs`: element-wise sum of two values.
//! - `blur.rs`: fastai's anti-checkerboard blur (replication pad + 2x2 average, stride 1).
//! - `pixel_shuffle.rs`: sub-pixel upsampling.
//! - `attention.rs`: SAGAN self-attention (kernels in [`crate::attention`]).
//! - `layer_norm.rs`: layer norm over the channels of each pixel (ConvNeXt, transformers).
//! - `constant.rs`: a fixed-size value, the same in every batch item (learned embeddings).
//! - `sine_position.rs`: `x +` DETR's normalised sine position encoding of `x`'s size.
//! - `mha.rs`: multi-head scaled dot-product attention (kernels in [`crate::mha`]).
//! - `token_projection.rs`: DDColor's token-mixed 1x1 projection (`einsum` + 1x1 conv).
//! - `copy.rs`: the graph input, and copies of it into a concatenation.
//! - `concat.rs`: concatenation along channels, planned as views.
//!
//! Pooling and resizing follow burn 0.22's Flex backend (and PyTorch) exactly, so the engine
//! reproduces burn's forward (`burn-flex-0.22.1/src/ops/{pool,interpolate}.rs`).

use std::fmt;

use crate::conv::{Dst, PackedConv, Src};
use crate::graph::Value;

pub(crate) mod add;
pub(crate) mod affine;
pub(crate) mod attention;
pub(crate) mod blur;
pub(crate) mod concat;
pub(crate) mod constant;
pub(crate) mod conv;
pub(crate) mod copy;
pub(crate) mod global_pool;
pub(crate) mod layer_norm;
pub(crate) mod mha;
pub(crate) mod pixel_shuffle;
pub(crate) mod pool;
pub(crate) mod resize;
pub(crate) mod sine_position;
pub(crate) mod softmax;
pub(crate) mod token_projection;

pub use pool::PoolKind;
pub use resize::ResizeMode;

/// Why an op cannot produce an output for the input shapes it was given.
#[derive(Debug)]
pub(crate) enum ShapeError {
    /// The input is too small for the named layer (its kernel or window does not fit); the
    /// graph adds the input size to the message.
    TooSmall(String),
    /// Any other disagreement between shapes, as a complete message.
    Mismatch(String),
}

/// Everything an op gets when it runs: views into the arena, the output's place and size, and
/// its scratch space.
pub(crate) struct Io<'a> {
    /// The view of a value (only values the op lists in [`Node::inputs`] are alive).
    pub src: &'a dyn Fn(Value) -> Src,
    /// The caller's input tensor (read by the input op only).
    pub input: Src,
    /// Where the output goes: `batch · height · width` pixels of [`Node::channels`] values.
    pub out: Dst,
    /// Batch size.
    pub batch: usize,
    /// Output height.
    pub height: usize,
    /// Output width.
    pub width: usize,
    /// [`Node::scratch_len`] writable floats, alive only during this op.
    pub scratch: *mut f32,
}

/// One op of a graph. The planner and executor in [`crate::graph`] see only this interface.
///
/// Two ops stay special in the planner, by design rather than by type: the input (node 0), whose
/// size is the graph's input size and which reads [`Io::input`]; and concatenations
/// ([`Node::is_concat`]), whose parts are planned as channel slices of the concatenation's
/// buffer. Aliasing is a property of where values live, which only the planner knows, so it is
/// not something an op could compute on its own.
pub(crate) trait Node: Send + Sync + fmt::Debug {
    /// The values the op reads at run time (the planner keeps them alive until it has run).
    fn inputs(&self) -> &[Value];

    /// Output channels.
    fn channels(&self) -> usize;

    /// Output `(height, width)`, given the size of any value of the graph (`shape` may be asked
    /// for values the op does not read, as resize asks for its target).
    ///
    /// # Errors
    /// [`ShapeError`] if the input sizes do not fit the op.
    fn output_shape(
        &self,
        shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Result<(usize, usize), ShapeError>;

    /// Floats of scratch the op needs for an output of `batch x height x width` (default none),
    /// or `None` when that number overflows `usize`; `shape` gives the size of any value of the
    /// plan (attention's scratch depends on its keys' size, not its output's).
    fn scratch_len(
        &self,
        _batch: usize,
        _height: usize,
        _width: usize,
        _shape: &dyn Fn(Value) -> (usize, usize),
    ) -> Option<usize> {
        Some(0)
    }

    /// Runs the op.
    ///
    /// # Safety
    /// `io` comes from a plan of this graph: every view addresses its value inside the arena,
    /// the output and scratch overlap no value the op reads, and `io.input` holds the caller's
    /// input.
    unsafe fn run(&self, io: &Io<'_>);

    /// The op's name in profiles ([`crate::OpTiming::name`]): a convolution's layer name, or
    /// the kind of op (`max_pool`, `resize`, ...).
    fn name(&self) -> String;

    /// Floating-point operations (2 per multiply-add) for an output of `batch x height x width`
    /// (default 0: ops without multiplies).
    fn flop(&self, _batch: usize, _height: usize, _width: usize) -> f64 {
        0.0
    }

    /// The packed convolution, if the op is one ([`crate::Graph::convolutions`],
    /// [`crate::Graph::macs`]).
    fn conv(&self) -> Option<&PackedConv> {
        None
    }

    /// Whether the op is a concatenation, whose parts the planner places inside its buffer.
    fn is_concat(&self) -> bool {
        false
    }
}
