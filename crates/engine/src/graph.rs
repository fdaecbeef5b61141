//! A network as a list of fused ops over NHWC values, planned into one reusable buffer arena.
//! The planner and executor are generic over the ops' one interface (`ops::Node`:
//! inputs, output size, scratch, run, name); only the input and concatenations' aliasing are
//! special here.
//!
//! A [`Graph`] is built once at load time (convolutions already folded and packed). For each input
//! shape `(batch, height, width)` it computes a [`Plan`] once: every value's shape, and its place in
//! one `f32` arena. Concatenations are planned as views: each concatenated value is written straight
//! into its channel slice of the concatenation's buffer (pixel stride = the total channel count), so
//! a concat costs nothing at run time. Buffers whose lifetimes do not overlap share arena space
//! (greedy best-fit by size, as TFLite's and ONNX Runtime's planners do). Arenas are pooled, so
//! a warm forward pass allocates nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::conv::{Activation, Dst, PackedConv, Src};
use crate::error::EngineError;
use crate::isa::Isa;
use crate::ops::add::Add;
use crate::ops::affine::Affine;
use crate::ops::attention::Attention;
use crate::ops::blur::Blur;
use crate::ops::concat::Concat;
use crate::ops::constant::Constant;
use crate::ops::conv::Conv;
use crate::ops::copy::{Copy, Input};
use crate::ops::global_pool::GlobalAvgPool;
use crate::ops::layer_norm::LayerNorm;
use crate::ops::mha::MultiHeadAttention;
use crate::ops::pixel_shuffle::PixelShuffle;
use crate::ops::pool::Pool;
use crate::ops::resize::Resize;
use crate::ops::sine_position::SinePosition;
use crate::ops::softmax::Softmax;
use crate::ops::token_projection::TokenProjection;
use crate::ops::{Io, Node, PoolKind, ResizeMode, ShapeError};

/// A value of a [`Graph`]: the output of one node, an NHWC tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Value(pub(crate) usize);

/// One node of a graph: an op, and where its output lives.
#[derive(Debug)]
struct Slot {
    op: Box<dyn Node>,
    /// `(concat node, channel offset)` when this value lives inside a concatenation's buffer.
    alias: Option<(usize, usize)>,
}

/// Where a value lives for one input shape.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// Offset in floats of the value's first pixel's first channel.
    offset: usize,
    /// Pixel stride in floats.
    stride: usize,
    height: usize,
    width: usize,
}

/// Time spent in one op of a profiled run ([`Graph::run_profiled`]).
#[derive(Debug, Clone)]
pub struct OpTiming {
    /// The op: a convolution's layer name, or `input`, `max_pool`, `resize`, `concat`.
    pub name: String,
    /// Wall time in milliseconds.
    pub ms: f64,
    /// Floating-point operations (2 per multiply-add; 0 for ops without multiplies).
    pub flop: f64,
}

/// The memory plan of a graph for one input shape.
#[derive(Debug)]
pub struct Plan {
    batch: usize,
    places: Vec<Place>,
    /// Offset of each node's scratch space (ops that need one).
    scratch: Vec<usize>,
    arena_len: usize,
}

impl Plan {
    /// Arena size in bytes.
    pub fn arena_bytes(&self) -> usize {
        self.arena_len * 4
    }
}

/// A network ready to run: a list of fused ops, with plans and arenas cached per input shape.
///
/// Inputs and outputs are NHWC `f32` (`[batch, height, width, channels]`); with one input channel
/// that is simply `batch` planes of `height · width` values.
pub struct Graph {
    nodes: Vec<Slot>,
    output: Option<Value>,
    plans: Mutex<HashMap<(usize, usize, usize), Arc<Plan>>>,
    arenas: Mutex<Vec<Vec<f32>>>,
    arena_retain: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Graph")
            .field("nodes", &self.nodes.len())
            .field("convolutions", &self.convolutions().count())
            .finish()
    }
}

impl Graph {
    /// The default of [`Graph::arena_retain_bytes`]: 256 MiB. The bundled light U-Net's arena is
    /// 74 MiB at a 768x512 network input (render size 512 on a 3:2 photo: pooled) and 294 MiB at
    /// 1536x1024 (render size 1024: freed after the run); measured with `colorize bench
    /// --network-only --network-size 768x512 --network-size 1536x1024`.
    pub const DEFAULT_ARENA_RETAIN_BYTES: usize = 256 << 20;

    /// A graph whose input has `channels` channels; returns the graph and its input value.
    pub fn new(channels: usize) -> (Self, Value) {
        let graph = Self {
            nodes: vec![Slot {
                op: Box::new(Input { channels }),
                alias: None,
            }],
            output: None,
            plans: Mutex::new(HashMap::new()),
            arenas: Mutex::new(Vec::new()),
            arena_retain: std::sync::atomic::AtomicUsize::new(Self::DEFAULT_ARENA_RETAIN_BYTES),
        };
        (graph, Value(0))
    }

    fn push(&mut self, op: impl Node + 'static) -> Value {
        self.nodes.push(Slot {
            op: Box::new(op),
            alias: None,
        });
        self.plans.get_mut().map(|p| p.clear()).ok();
        Value(self.nodes.len() - 1)
    }

    fn channels(&self, v: Value) -> usize {
        self.nodes[v.0].op.channels()
    }

    /// Adds a convolution of `x`, with `residual` (same shape as the output) added before the
    /// activation.
    ///
    /// # Errors
    /// [`EngineError::Layer`] if `x` or `residual` has the wrong channel count.
    pub fn conv(
        &mut self,
        x: Value,
        conv: PackedConv,
        residual: Option<Value>,
    ) -> Result<Value, EngineError> {
        let spec = *conv.spec();
        let err = |message: String| EngineError::Layer {
            layer: conv.name().to_string(),
            message,
        };
        if self.channels(x) != spec.in_channels {
            return Err(err(format!(
                "input has {} channels, the convolution expects {}",
                self.channels(x),
                spec.in_channels
            )));
        }
        if let Some(r) = residual
            && self.channels(r) != spec.out_channels
        {
            return Err(err(format!(
                "residual has {} channels, the output has {}",
                self.channels(r),
                spec.out_channels
            )));
        }
        Ok(self.push(Conv::new(x, conv, residual)))
    }

    /// Adds a pooling window of `kind` (floor mode; see [`PoolKind`] for the padding rules).
    pub fn pool(
        &mut self,
        x: Value,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        kind: PoolKind,
    ) -> Value {
        let c = self.channels(x);
        self.push(Pool {
            x: [x],
            channels: c,
            kernel,
            stride,
            padding,
            kind,
        })
    }

    /// Adds a max-pool (floor mode, padding counts as −∞).
    pub fn max_pool(
        &mut self,
        x: Value,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
    ) -> Value {
        self.pool(x, kernel, stride, padding, PoolKind::Max)
    }

    /// Adds an average pool (floor mode); `count_include_pad` as PyTorch's `AvgPool2d` (whose
    /// default is `true`).
    pub fn avg_pool(
        &mut self,
        x: Value,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 4],
        count_include_pad: bool,
    ) -> Value {
        self.pool(
            x,
            kernel,
            stride,
            padding,
            PoolKind::Avg { count_include_pad },
        )
    }

    /// Adds a global average pool: the mean of each channel over the whole image, a `1 x 1`
    /// value (`[batch, H, W, C]` → `[batch, 1, 1, C]`; PyTorch `AdaptiveAvgPool2d(1)`). Resize it
    /// with [`ResizeMode::Nearest`] to another value's size ([`Graph::resize_like`]) to replicate
    /// the vector over that grid.
    pub fn global_avg_pool(&mut self, x: Value) -> Value {
        let c = self.channels(x);
        self.push(GlobalAvgPool {
            x: [x],
            channels: c,
        })
    }

    /// Adds a pixel shuffle by `factor` (`[c·r², h, w]` → `[c, h·r, w·r]`, PyTorch order).
    ///
    /// # Errors
    /// [`EngineError::Shape`] if the channels of `x` are not a multiple of `factor²`.
    pub fn pixel_shuffle(&mut self, x: Value, factor: usize) -> Result<Value, EngineError> {
        let c = self.channels(x);
        let Some(r2) = factor.checked_mul(factor) else {
            return Err(EngineError::Shape(format!(
                "pixel shuffle by {factor}: the factor's square overflows"
            )));
        };
        if factor == 0 || !c.is_multiple_of(r2) {
            return Err(EngineError::Shape(format!(
                "pixel shuffle by {factor} needs a multiple of {r2} channels, not {c}"
            )));
        }
        Ok(self.push(PixelShuffle {
            x: [x],
            channels: c / r2,
            factor,
        }))
    }

    /// Adds SAGAN self-attention (fastai's `SelfAttention`, see [`crate::attention`]):
    /// `x + γ · attention(x)`, with `query` and `key` 1x1 convolutions to `C/8` (or any common
    /// width) and `value` a 1x1 convolution to `C`, all without activation.
    ///
    /// # Errors
    /// [`EngineError::Layer`] if a convolution is not 1x1 / stride 1 / unpadded, or the channel
    /// counts do not fit `x` and each other.
    pub fn self_attention(
        &mut self,
        x: Value,
        query: PackedConv,
        key: PackedConv,
        value: PackedConv,
        gamma: f32,
    ) -> Result<Value, EngineError> {
        let c = self.channels(x);
        for conv in [&query, &key, &value] {
            let s = conv.spec();
            if s.kernel != [1, 1] || s.stride != [1, 1] || s.padding != [0; 4] || s.transposed {
                return Err(EngineError::Layer {
                    layer: conv.name().to_string(),
                    message: "self-attention projections must be 1x1, stride 1, unpadded".into(),
                });
            }
        }
        let ck = query.spec().out_channels;
        if key.spec().out_channels != ck || value.spec().out_channels != c {
            return Err(EngineError::Layer {
                layer: value.name().to_string(),
                message: format!(
                    "query/key give {ck} and {} channels, value {} (expected {c})",
                    key.spec().out_channels,
                    value.spec().out_channels
                ),
            });
        }
        let isa = value.isa();
        let f = self.conv(x, query, None)?;
        let g = self.conv(x, key, None)?;
        let h = self.conv(x, value.scaled(gamma), None)?;
        Ok(self.push(Attention {
            inputs: [f, g, h, x],
            key_channels: ck,
            channels: c,
            isa,
        }))
    }

    /// Adds a resize of `x` to the height and width of `like`.
    pub fn resize_like(&mut self, x: Value, like: Value, mode: ResizeMode) -> Value {
        let c = self.channels(x);
        self.push(Resize {
            x: [x],
            like,
            factor: None,
            channels: c,
            mode,
        })
    }

    /// Adds a resize of `x` by the integer `factor` (PyTorch `Upsample(scale_factor=factor)`).
    ///
    /// # Errors
    /// [`EngineError::Shape`] for a factor of 0.
    pub fn resize_by(
        &mut self,
        x: Value,
        factor: usize,
        mode: ResizeMode,
    ) -> Result<Value, EngineError> {
        if factor == 0 {
            return Err(EngineError::Shape("resize factor 0".into()));
        }
        let c = self.channels(x);
        Ok(self.push(Resize {
            x: [x],
            like: x,
            factor: Some(factor),
            channels: c,
            mode,
        }))
    }

    /// Adds a per-channel affine map `y = activation(x · scale[c] + shift[c])` (batch norm in
    /// inference form where it cannot fold into a convolution: after a ReLU, before a padded
    /// convolution).
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `scale` or `shift` does not have one value per channel of `x`.
    pub fn affine(
        &mut self,
        x: Value,
        scale: Vec<f32>,
        shift: Vec<f32>,
        activation: Activation,
    ) -> Result<Value, EngineError> {
        let c = self.channels(x);
        if scale.len() != c || shift.len() != c {
            return Err(EngineError::Shape(format!(
                "affine map over {c} channels got {} scales and {} shifts",
                scale.len(),
                shift.len()
            )));
        }
        Ok(self.push(Affine {
            x: [x],
            scale,
            shift,
            activation,
        }))
    }

    /// Adds the element-wise sum `a + b` of two values of the same channels and size (a residual
    /// connection whose activation comes before the add, as fastai's `res_block`).
    ///
    /// # Errors
    /// [`EngineError::Shape`] if the channel counts differ (sizes are checked by the plan).
    pub fn add(&mut self, a: Value, b: Value) -> Result<Value, EngineError> {
        let c = self.channels(a);
        if self.channels(b) != c {
            return Err(EngineError::Shape(format!(
                "cannot add {c} channels to {}",
                self.channels(b)
            )));
        }
        Ok(self.push(Add {
            xs: [a, b],
            channels: c,
        }))
    }

    /// Adds fastai's blur after a pixel shuffle (Sugawara et al. 2019, arXiv:1806.02658):
    /// replication padding of one row on top and one column on the left, then a 2x2 average
    /// pool with stride 1, so the output keeps the size and pixel `(i, j)` is the mean of
    /// `(i−1..=i, j−1..=j)` with index −1 clamped to 0.
    pub fn blur(&mut self, x: Value) -> Value {
        let c = self.channels(x);
        self.push(Blur {
            x: [x],
            channels: c,
        })
    }

    /// Adds a softmax over the channels of each pixel (PyTorch `Softmax(dim=1)` on NCHW).
    pub fn softmax(&mut self, x: Value) -> Value {
        let c = self.channels(x);
        self.push(Softmax {
            x: [x],
            channels: c,
        })
    }

    /// The kernel family of the graph's ops that take none as an argument (layer norm,
    /// multi-head attention, token projection): that of the last convolution added so far, or
    /// the best this CPU runs ([`Isa::detect`]) when there is none. A graph built for one family
    /// (`--isa`, tests that loop over [`Isa::ALL`]) thus runs every op on it.
    fn isa(&self) -> Isa {
        self.nodes
            .iter()
            .rev()
            .find_map(|n| n.op.conv())
            .map_or_else(Isa::detect, PackedConv::isa)
    }

    /// Adds a layer norm over the channels of each pixel, with the biased variance:
    /// `y[c] = (x[c] − mean) / sqrt(var + eps) · weight[c] + bias[c]`. This is PyTorch's
    /// `nn.LayerNorm(C, eps)` over the last dim of NHWC, and ConvNeXt's channels-first LayerNorm
    /// (Liu et al. 2022, arXiv:2201.03545; DDColor's encoder uses `eps = 1e-6` and its colour
    /// decoder `1e-5`: Kang et al., ICCV 2023, `../shared/reference/ddcolor.md` §3.1, §3.3).
    ///
    /// - `x`: `[batch, H, W, C]`; `weight`, `bias`: `C` values each; `eps > 0` (any finite
    ///   value is taken as given).
    /// - returns `[batch, H, W, C]`. Mean and variance are two f32 passes over 16 partial sums
    ///   (relative error about 1e-6 against f64 for C up to 1536).
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `weight` or `bias` does not have one value per channel of `x`.
    pub fn layer_norm(
        &mut self,
        x: Value,
        weight: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
    ) -> Result<Value, EngineError> {
        let c = self.channels(x);
        if weight.len() != c || bias.len() != c {
            return Err(EngineError::Shape(format!(
                "layer norm over {c} channels got {} weights and {} biases",
                weight.len(),
                bias.len()
            )));
        }
        let isa = self.isa();
        Ok(self.push(LayerNorm {
            x: [x],
            weight,
            bias,
            eps,
            isa,
        }))
    }

    /// Adds a constant: a value of fixed size `[batch, height, width, channels]` whatever the
    /// graph's input size, with the same `values` in every batch item — learned embeddings such
    /// as DDColor's colour queries `query_feat` / `query_embed` (`[100, 256]` each, held as a
    /// `1 x 100` map of 256 channels; Kang et al., ICCV 2023, `../shared/reference/ddcolor.md`
    /// §3.3).
    ///
    /// - `values`: `[height, width, channels]` row-major (HWC), `height · width · channels`
    ///   values.
    /// - returns a value of size `height x width`, `channels` channels.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if a size is zero, their product overflows, or `values` has
    /// another length.
    pub fn constant(
        &mut self,
        values: Vec<f32>,
        height: usize,
        width: usize,
        channels: usize,
    ) -> Result<Value, EngineError> {
        if height == 0 || width == 0 || channels == 0 {
            return Err(EngineError::Shape(format!(
                "constant of size {height}x{width}x{channels} is empty"
            )));
        }
        let needed = height
            .checked_mul(width)
            .and_then(|n| n.checked_mul(channels));
        if needed != Some(values.len()) {
            return Err(EngineError::Shape(format!(
                "constant of size {height}x{width}x{channels} got {} values",
                values.len()
            )));
        }
        Ok(self.push(Constant {
            values,
            height,
            width,
            channels,
        }))
    }

    /// Adds `x + pos`, with `pos` DETR's normalised sine position encoding (Carion et al. 2020,
    /// arXiv:2005.12872, `normalize=True`, temperature 10000, scale 2π) for `x`'s own height
    /// `h` and width `w`, as DDColor adds it to its key maps (Kang et al., ICCV 2023,
    /// `../shared/reference/ddcolor.md` §3.3):
    ///
    /// ```text
    /// C = 2·npf (npf even);  ye = (y+1)/(h+1e-6)·2π;  xe = (x+1)/(w+1e-6)·2π
    /// dim_t[k] = 10000^(2·floor(k/2)/npf)
    /// channel 2m, 2m+1 (m < npf/2):          sin(ye / dim_t[2m]), cos(ye / dim_t[2m])
    /// channel npf+2m, npf+2m+1:              sin(xe / dim_t[2m]), cos(xe / dim_t[2m])
    /// ```
    ///
    /// - `x`: `[batch, h, w, C]`; returns `[batch, h, w, C]`. The encoding is computed in f64
    ///   on each run (it depends only on `h` and `w`), then rounded to f32 and added.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `C` is not a positive multiple of 4.
    pub fn add_sine_position(&mut self, x: Value) -> Result<Value, EngineError> {
        let c = self.channels(x);
        if c == 0 || !c.is_multiple_of(4) {
            return Err(EngineError::Shape(format!(
                "a sine position encoding needs a positive multiple of 4 channels, not {c}"
            )));
        }
        Ok(self.push(SinePosition {
            x: [x],
            channels: c,
        }))
    }

    /// Adds multi-head scaled dot-product attention (Vaswani et al. 2017, arXiv:1706.03762):
    /// PyTorch `nn.MultiheadAttention` between its input projection and its output projection
    /// (both ordinary 1x1 convolutions of the graph), without mask or dropout, as DDColor's
    /// colour decoder uses it (Kang et al., ICCV 2023, `../shared/reference/ddcolor.md` §3.3:
    /// 256 channels, 8 heads; 100 queries; 100 keys in self-attention, up to 16384 in
    /// cross-attention).
    ///
    /// - `q`: `[batch, hq, wq, C]`, already projected (bias added); `k`, `v`: `[batch, hk, wk,
    ///   C]`, already projected, of the same size. Tokens are pixels in row-major order; channel
    ///   `c` belongs to head `c / (C / heads)`.
    /// - returns `[batch, hq, wq, C]`: per batch item and head
    ///   `O_h = softmax_over_keys(Q_h K_hᵀ / sqrt(C/heads)) V_h`, heads concatenated in channel
    ///   order.
    ///
    /// Both products run on the convolution micro-kernels, on the graph's kernel family (that
    /// of the last convolution added, else the best this CPU runs); the softmax uses a
    /// vectorised exp, online over chunks of 256 keys (FlashAttention's loop), so a task (a
    /// head) holds only one chunk's packed keys, values and scores, never a `[queries, keys]`
    /// matrix; no planned scratch.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `heads` is 0 or does not divide `C`, or the channel counts of
    /// `q`, `k`, `v` differ; the plan ([`Graph::plan`]) fails if `k` and `v` differ in size.
    pub fn multi_head_attention(
        &mut self,
        q: Value,
        k: Value,
        v: Value,
        heads: usize,
    ) -> Result<Value, EngineError> {
        let c = self.channels(q);
        if self.channels(k) != c || self.channels(v) != c {
            return Err(EngineError::Shape(format!(
                "attention: query, key and value have {c}, {} and {} channels",
                self.channels(k),
                self.channels(v)
            )));
        }
        if heads == 0 || !c.is_multiple_of(heads) {
            return Err(EngineError::Shape(format!(
                "attention: {c} channels cannot be split into {heads} heads"
            )));
        }
        let isa = self.isa();
        Ok(self.push(MultiHeadAttention {
            inputs: [q, k, v],
            channels: c,
            heads,
            isa,
        }))
    }

    /// Adds DDColor's query-map projection, fused (Kang et al., ICCV 2023,
    /// `../shared/reference/ddcolor.md` §3.3–3.4): the einsum `"bqc,bchw->bqhw"` of the colour
    /// embeddings with the pixel decoder's output, followed by the 1x1 convolution over the
    /// query maps (the refine head's first 100 input channels):
    ///
    /// ```text
    /// W_b[o][c] = Σ_n mix[o][n] · tokens[b, n, c]                (outputs x C, per batch item)
    /// y[b, p, o] = Σ_c x[b, p, c] · W_b[o][c]  (+ residual[b, p, o])
    /// ```
    ///
    /// - `x`: `[batch, H, W, C]`; `tokens`: `[batch, th, tw, C]`, `N = th · tw` tokens in
    ///   row-major order (their size must not depend on the input: a chain from
    ///   [`Graph::constant`]); `mix`: `[outputs, N]` row-major; `residual`:
    ///   `[batch, H, W, outputs]` (for example the refine head's bias and its 1x1 convolution of
    ///   the 3 normalised input channels).
    /// - returns `[batch, H, W, outputs]`.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `outputs` is 0, `mix` is not a multiple of `outputs` long,
    /// `tokens` and `x` differ in channels, or `residual` does not have `outputs` channels; the
    /// plan ([`Graph::plan`]) fails if `mix.len() ≠ outputs · N` or `residual` differs in size
    /// from `x`.
    pub fn token_projection(
        &mut self,
        x: Value,
        tokens: Value,
        mix: Vec<f32>,
        outputs: usize,
        residual: Option<Value>,
    ) -> Result<Value, EngineError> {
        self.token_projection_grouped(x, tokens, mix, outputs, 1, residual)
    }

    /// [`Graph::token_projection`] taken before a pixel shuffle: `x` is `[batch, H, W, C · s]`
    /// with the `s = group` sub-pixels of channel `c` at `c · s + k` (the input of a pixel
    /// shuffle by `√s`), and output channel `o · s + k` is `Σ_c x[b, p, c · s + k] · W_b[o][c]
    /// (+ residual)`: `[batch, H, W, outputs · s]`, whose pixel shuffle by `√s` is the
    /// projection of the shuffled `C`-channel map. DDColor takes its query-map projection this
    /// way, before its last pixel shuffle (x4, `s = 16`) and blur, so the 256-channel
    /// full-resolution map never exists.
    ///
    /// # Errors
    /// As [`Graph::token_projection`], with `tokens` having `C` channels and `x` `C · group`;
    /// [`EngineError::Shape`] for a `group` of 0 or above 64.
    pub fn token_projection_grouped(
        &mut self,
        x: Value,
        tokens: Value,
        mix: Vec<f32>,
        outputs: usize,
        group: usize,
        residual: Option<Value>,
    ) -> Result<Value, EngineError> {
        if group == 0 || group > crate::ops::token_projection::MAX_GROUP {
            return Err(EngineError::Shape(format!(
                "token projection: a group of {group} sub-pixels is outside 1..=64"
            )));
        }
        if !self.channels(x).is_multiple_of(group) {
            return Err(EngineError::Shape(format!(
                "token projection: {} channels are not groups of {group}",
                self.channels(x)
            )));
        }
        let c = self.channels(x) / group;
        if outputs == 0 || mix.is_empty() || !mix.len().is_multiple_of(outputs) {
            return Err(EngineError::Shape(format!(
                "token projection to {outputs} outputs got {} mixing weights",
                mix.len()
            )));
        }
        if self.channels(tokens) != c {
            return Err(EngineError::Shape(format!(
                "token projection: tokens have {} channels, the map {c}",
                self.channels(tokens)
            )));
        }
        if let Some(r) = residual
            && self.channels(r) != outputs * group
        {
            return Err(EngineError::Shape(format!(
                "token projection: residual has {} channels, the output {}",
                self.channels(r),
                outputs * group
            )));
        }
        let isa = self.isa();
        let inputs = match residual {
            Some(r) => vec![x, tokens, r],
            None => vec![x, tokens],
        };
        Ok(self.push(TokenProjection {
            inputs,
            in_channels: c,
            outputs,
            group,
            mix,
            isa,
        }))
    }

    /// Adds a concatenation along channels. Each part is then computed straight into its slice
    /// of the concatenation's buffer.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if there are no parts, or a part is already part of another
    /// concatenation, is itself a concatenation, or appears twice.
    pub fn concat(&mut self, xs: &[Value]) -> Result<Value, EngineError> {
        if xs.is_empty() {
            return Err(EngineError::Shape("a concatenation needs a part".into()));
        }
        for (i, x) in xs.iter().enumerate() {
            if xs[..i].contains(x) {
                return Err(EngineError::Shape(format!(
                    "value {} cannot join a second concatenation",
                    x.0
                )));
            }
        }
        // The graph's input is copied in rather than aliased: aliasing would keep the whole
        // concatenation buffer (at a U-Net's full resolution, the largest) alive from the first
        // op to the last.
        let xs: Vec<Value> = xs
            .iter()
            .map(|&x| {
                if x.0 == 0 {
                    let channels = self.channels(x);
                    self.push(Copy { x: [x], channels })
                } else {
                    x
                }
            })
            .collect();
        for (i, x) in xs.iter().enumerate() {
            let node = &self.nodes[x.0];
            if node.alias.is_some() || node.op.is_concat() || xs[..i].contains(x) {
                return Err(EngineError::Shape(format!(
                    "value {} cannot join a second concatenation",
                    x.0
                )));
            }
        }
        let channels = xs.iter().map(|&x| self.channels(x)).sum();
        let id = self.nodes.len();
        let mut offset = 0;
        for &x in &xs {
            self.nodes[x.0].alias = Some((id, offset));
            offset += self.channels(x);
        }
        Ok(self.push(Concat { xs, channels }))
    }

    /// Marks the graph's output.
    pub fn set_output(&mut self, v: Value) {
        self.output = Some(v);
    }

    /// Channels of the input.
    pub fn input_channels(&self) -> usize {
        self.nodes[0].op.channels()
    }

    /// Channels of the output (0 before [`Graph::set_output`]).
    pub fn output_channels(&self) -> usize {
        self.output.map_or(0, |v| self.channels(v))
    }

    /// The packed convolutions, in order.
    pub fn convolutions(&self) -> impl Iterator<Item = &PackedConv> {
        self.nodes.iter().filter_map(|n| n.op.conv())
    }

    /// Multiply-adds of one forward pass on `batch x height x width`.
    ///
    /// # Errors
    /// As [`Graph::plan`].
    pub fn macs(&self, batch: usize, height: usize, width: usize) -> Result<usize, EngineError> {
        let plan = self.plan(batch, height, width)?;
        Ok(self
            .nodes
            .iter()
            .zip(&plan.places)
            .filter_map(|(n, p)| Some(n.op.conv()?.spec().macs(batch * p.height * p.width)))
            .fold(0usize, usize::saturating_add))
    }

    /// The memory plan for one input shape (computed once, then cached).
    ///
    /// # Errors
    /// [`EngineError::Shape`] if the input is too small for a layer, the parts of a concatenation
    /// differ in size, no output was set, or a size overflows (a value, or all of them together,
    /// larger than the address space: sizes are computed with checked arithmetic).
    pub fn plan(
        &self,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Arc<Plan>, EngineError> {
        let key = (batch, height, width);
        if let Some(p) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let plan = Arc::new(self.make_plan(batch, height, width)?);
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, plan.clone());
        Ok(plan)
    }

    fn make_plan(&self, batch: usize, height: usize, width: usize) -> Result<Plan, EngineError> {
        let output = self
            .output
            .ok_or_else(|| EngineError::Shape("the graph has no output".into()))?;
        if batch == 0 || height == 0 || width == 0 {
            return Err(EngineError::Shape(format!(
                "input {batch}x{height}x{width} is empty"
            )));
        }
        // 1. Shapes. Node 0 is the input, whose size is the graph's.
        let mut shapes: Vec<(usize, usize)> = Vec::with_capacity(self.nodes.len());
        shapes.push((height, width));
        for node in &self.nodes[1..] {
            let shape = node
                .op
                .output_shape(&|v: Value| shapes[v.0])
                .map_err(|e| match e {
                    ShapeError::TooSmall(what) => EngineError::Shape(format!(
                        "input {height}x{width} is too small for {what}"
                    )),
                    ShapeError::Mismatch(message) => EngineError::Shape(message),
                })?;
            shapes.push(shape);
        }
        // 2. Buffers: a value owns one unless it is a slice of a concatenation's buffer.
        let root = |i: usize| self.nodes[i].alias.map_or(i, |(c, _)| c);
        let n = self.nodes.len();
        let mut first = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        for (i, node) in self.nodes.iter().enumerate() {
            let r = root(i);
            first[r] = first[r].min(i);
            last[r] = last[r].max(i);
            // A concatenation's parts share its root, so listing them changes nothing.
            for x in node.op.inputs() {
                let r = root(x.0);
                last[r] = last[r].max(i);
            }
        }
        last[root(output.0)] = n;
        // Every size with checked arithmetic: a product that wraps would plan a small buffer for
        // a large value, and the ops write through raw pointers.
        let too_large = || {
            EngineError::Shape(format!(
                "input {batch}x{height}x{width} needs more memory than the address space holds"
            ))
        };
        let align = |v: usize| v.checked_next_multiple_of(16);
        let mut buffers: Vec<(usize, usize)> = Vec::with_capacity(2 * n);
        for i in (0..n).filter(|&i| self.nodes[i].alias.is_none()) {
            let (h, w) = shapes[i];
            let len = batch
                .checked_mul(h)
                .and_then(|v| v.checked_mul(w))
                .and_then(|v| v.checked_mul(self.nodes[i].op.channels()))
                .and_then(align)
                .ok_or_else(too_large)?;
            buffers.push((i, len));
        }
        // Scratch space of ops that need it, alive only during the op (ids n + node).
        first.resize(2 * n, usize::MAX);
        last.resize(2 * n, 0);
        for (i, node) in self.nodes.iter().enumerate() {
            let (h, w) = shapes[i];
            let len = node
                .op
                .scratch_len(batch, h, w, &|v: Value| shapes[v.0])
                .and_then(align)
                .ok_or_else(too_large)?;
            if len > 0 {
                buffers.push((n + i, len));
                (first[n + i], last[n + i]) = (i, i);
            }
        }
        // Every offset the placement below computes is at most the sum of all lengths; with that
        // sum within what a `Vec<f32>` can hold, no offset or length arithmetic can overflow.
        buffers
            .iter()
            .try_fold(0usize, |sum, &(_, len)| sum.checked_add(len))
            .filter(|&total| total <= isize::MAX as usize / std::mem::size_of::<f32>())
            .ok_or_else(too_large)?;
        buffers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // 3. Offsets: greedy, largest first, lowest offset that overlaps no buffer alive at the
        //    same time.
        let mut placed: Vec<(usize, usize, usize)> = Vec::new(); // (node, offset, len)
        let mut offsets = vec![0usize; 2 * n];
        let mut arena_len = 0;
        for &(i, len) in &buffers {
            let live = |j: usize| first[i] <= last[j] && first[j] <= last[i];
            let mut candidates: Vec<usize> = std::iter::once(0)
                .chain(placed.iter().filter(|p| live(p.0)).map(|p| p.1 + p.2))
                .collect();
            candidates.sort_unstable();
            let offset = candidates
                .into_iter()
                .find(|&off| {
                    placed
                        .iter()
                        .filter(|p| live(p.0))
                        .all(|p| off + len <= p.1 || p.1 + p.2 <= off)
                })
                .unwrap_or(arena_len);
            placed.push((i, offset, len));
            offsets[i] = offset;
            arena_len = arena_len.max(offset + len);
        }
        let places = (0..n)
            .map(|i| {
                let (h, w) = shapes[i];
                let (offset, stride) = match self.nodes[i].alias {
                    Some((c, ch)) => (offsets[c] + ch, self.nodes[c].op.channels()),
                    None => (offsets[i], self.nodes[i].op.channels()),
                };
                Place {
                    offset,
                    stride,
                    height: h,
                    width: w,
                }
            })
            .collect();
        Ok(Plan {
            batch,
            places,
            scratch: offsets[n..].to_vec(),
            arena_len,
        })
    }

    /// Output `(height, width)` for an input of `height x width`.
    ///
    /// # Errors
    /// As [`Graph::plan`].
    pub fn output_size(&self, height: usize, width: usize) -> Result<(usize, usize), EngineError> {
        let plan = self.plan(1, height, width)?;
        let out = self.output.map_or(0, |v| v.0);
        Ok((plan.places[out].height, plan.places[out].width))
    }

    /// Runs the graph.
    ///
    /// - `input`: `[batch, height, width, input_channels]`, NHWC.
    /// - returns `[batch, oh, ow, output_channels]`, NHWC.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if `input` has another length than the shape says (the product is
    /// checked: one that overflows is an error, not a wrapped length), or as [`Graph::plan`].
    pub fn run(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let mut out = Vec::new();
        self.run_into(input, batch, height, width, &mut out)?;
        Ok(out)
    }

    /// As [`Graph::run`], writing into `out` (resized as needed; reusing it avoids the one
    /// allocation of [`Graph::run`]).
    ///
    /// # Errors
    /// As [`Graph::run`].
    pub fn run_into(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
        out: &mut Vec<f32>,
    ) -> Result<(), EngineError> {
        self.run_impl(input, batch, height, width, out, None)
    }

    /// As [`Graph::run`], timing every op (for `colorize bench --profile`).
    ///
    /// # Errors
    /// As [`Graph::run`].
    pub fn run_profiled(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<(Vec<f32>, Vec<OpTiming>), EngineError> {
        let (mut out, mut timings) = (Vec::new(), Vec::new());
        self.run_impl(input, batch, height, width, &mut out, Some(&mut timings))?;
        Ok((out, timings))
    }

    fn run_impl(
        &self,
        input: &[f32],
        batch: usize,
        height: usize,
        width: usize,
        out: &mut Vec<f32>,
        timings: Option<&mut Vec<OpTiming>>,
    ) -> Result<(), EngineError> {
        let cin = self.input_channels();
        let needed = batch
            .checked_mul(height)
            .and_then(|v| v.checked_mul(width))
            .and_then(|v| v.checked_mul(cin));
        if needed != Some(input.len()) {
            return Err(EngineError::Shape(match needed {
                Some(n) => format!(
                    "input has {} values, [{batch}, {height}, {width}, {cin}] needs {n}",
                    input.len()
                ),
                None => {
                    format!("input [{batch}, {height}, {width}, {cin}] overflows the address space")
                }
            }));
        }
        let plan = self.plan(batch, height, width)?;
        let mut arena = self
            .arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        if arena.len() < plan.arena_len {
            arena.resize(plan.arena_len, 0.0);
        }
        // SAFETY: the plan places every value inside the arena (offset + pixels · stride ≤
        // arena_len by construction), no op's output shares arena space with a value alive
        // during it (lifetimes overlap), and the input length was checked.
        unsafe { self.execute(&plan, input, arena.as_mut_ptr(), timings) };
        let o = self.output.expect("plan() checked the output");
        let place = plan.places[o.0];
        let c = self.channels(o);
        let pixels = plan.batch * place.height * place.width;
        out.clear();
        out.reserve(pixels * c);
        for p in 0..pixels {
            let start = place.offset + p * place.stride;
            out.extend_from_slice(&arena[start..start + c]);
        }
        // Pool the arena for the next run, unless it is outsized: one unusually large request
        // (a server's upload at the largest render size) must not pin its memory for good.
        if arena.len() * std::mem::size_of::<f32>() <= self.arena_retain_bytes() {
            self.arenas
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(arena);
        }
        Ok(())
    }

    /// Bytes of pooled arenas kept between runs: arenas larger than this are freed after their
    /// run (default [`Graph::DEFAULT_ARENA_RETAIN_BYTES`]).
    pub fn arena_retain_bytes(&self) -> usize {
        self.arena_retain.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the largest arena kept for reuse between runs (see [`Graph::arena_retain_bytes`]);
    /// arenas already pooled above it are freed now.
    pub fn set_arena_retain_bytes(&self, bytes: usize) {
        self.arena_retain
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
        self.arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|a| a.len() * std::mem::size_of::<f32>() <= bytes);
    }

    /// Bytes held by the pooled arenas now (between runs).
    pub fn pooled_arena_bytes(&self) -> usize {
        self.arenas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|a| a.capacity() * std::mem::size_of::<f32>())
            .sum()
    }

    /// # Safety
    /// `arena` holds at least `plan.arena_len` floats; `input` holds the input.
    unsafe fn execute(
        &self,
        plan: &Plan,
        input: &[f32],
        arena: *mut f32,
        mut timings: Option<&mut Vec<OpTiming>>,
    ) {
        let src = |v: Value| {
            let p = plan.places[v.0];
            Src {
                // SAFETY: offsets are inside the arena.
                ptr: unsafe { arena.add(p.offset) },
                batch: plan.batch,
                height: p.height,
                width: p.width,
                stride: p.stride,
            }
        };
        let input = Src {
            ptr: input.as_ptr(),
            batch: plan.batch,
            height: plan.places[0].height,
            width: plan.places[0].width,
            stride: self.input_channels(),
        };
        for (i, node) in self.nodes.iter().enumerate() {
            let place = plan.places[i];
            let io = Io {
                src: &src,
                input,
                out: Dst {
                    // SAFETY: offsets are inside the arena.
                    ptr: unsafe { arena.add(place.offset) },
                    stride: place.stride,
                },
                batch: plan.batch,
                height: place.height,
                width: place.width,
                // Only dereferenced by ops with scratch, whose offset the plan set.
                scratch: arena.wrapping_add(plan.scratch[i]),
            };
            let start = timings.is_some().then(std::time::Instant::now);
            // SAFETY: the views come from the plan (see `run_into`).
            unsafe { node.op.run(&io) };
            if let (Some(t), Some(start)) = (timings.as_deref_mut(), start) {
                t.push(OpTiming {
                    name: node.op.name(),
                    ms: start.elapsed().as_secs_f64() * 1e3,
                    flop: node.op.flop(plan.batch, place.height, place.width),
                });
            }
        }
    }
}
