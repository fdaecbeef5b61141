//! 2-D convolution as an indirect implicit GEMM over NHWC activations.
//!
//! Output pixels are the GEMM's rows, output channels its columns and `kh · kw · in_channels` its
//! depth. Instead of copying patches into an im2col matrix, each micro-kernel call gets, for every
//! kernel tap, one pointer per output pixel to the `in_channels` contiguous values of the input
//! pixel under that tap (or to a zero row where the tap falls in the padding) — the *indirection
//! buffer* of Dukhan, "The Indirect Convolution Algorithm" (arXiv:1907.02129), as XNNPACK does it.
//! One kernel therefore covers any kernel size, stride, dilation and padding — and transposed
//! convolutions, whose gather form is the same loop with another input coordinate per tap — and
//! inputs and outputs may be channel slices of wider buffers (a pixel stride larger than the
//! channel count), which is how concatenation is planned without copies. Pixels whose taps all
//! fall inside the input get their pointers by one add per tap; only border pixels are checked.
//!
//! Weights are packed once at load time into panels of `nr` output channels (`[taps · in][nr]`,
//! zero-padded), and the epilogue fuses bias (batch norm already folded in by the caller),
//! residual addition and ReLU, tanh or sigmoid before the single store of each output value.
//!
//! Grouped convolutions (PyTorch's `groups`; Krizhevsky et al. 2012, ResNeXt arXiv:1611.05431)
//! are one GEMM per group over the same indirection buffer: group `g`'s panels read input
//! channels from `g · in/groups` (each row pointer offset by that much, the input's pixel stride
//! unchanged) and write its own slice of the output channels. Depthwise convolutions (one input
//! and one output channel per group: MobileNet arXiv:1704.04861, ConvNeXt arXiv:2201.03545)
//! would waste all but one column of every panel, so they run a per-channel vector loop instead
//! (XNNPACK's depthwise kernels' structure): NHWC keeps a pixel's channels contiguous, so each
//! tap is one multiply-add across the channel vector, with the same fused epilogue.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::error::EngineError;
use crate::isa::Isa;

/// Largest register tile height of any kernel family ([`Isa::mr`]).
pub(crate) const MAX_MR: usize = 12;

/// Largest kernel (taps) a convolution may have: 11x11.
const MAX_TAPS: usize = 121;

/// Bytes of packed weights a task keeps hot while it walks its output pixels (about a quarter of
/// a 1 MiB L2 cache).
const PANEL_GROUP_BYTES: usize = 256 * 1024;

/// Geometry of a 2-D convolution, in PyTorch's terms (`Conv2d` / `ConvTranspose2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel `[height, width]`.
    pub kernel: [usize; 2],
    /// Stride `[vertical, horizontal]`, at least 1.
    pub stride: [usize; 2],
    /// Dilation `[vertical, horizontal]`, at least 1.
    pub dilation: [usize; 2],
    /// Zero padding `[top, left, bottom, right]` in input pixels (for a transposed convolution:
    /// rows and columns cropped from the full output, as PyTorch's `padding`).
    pub padding: [usize; 4],
    /// A transposed convolution (PyTorch `ConvTranspose2d`, output_padding 0): each input pixel
    /// spreads over the output, `out[iy·s − pad + ky·d] += in[iy] · w[ky]`.
    pub transposed: bool,
    /// Channel groups, at least 1 (PyTorch's `groups`): input and output channels are split into
    /// `groups` equal slices, and output slice `g` sees only input slice `g`. Both channel
    /// counts must be multiples of it. `groups == in_channels == out_channels` is a depthwise
    /// convolution (MobileNet, Howard et al. 2017, arXiv:1704.04861; ConvNeXt's 7x7, Liu et al.
    /// 2022, arXiv:2201.03545).
    pub groups: usize,
}

impl ConvSpec {
    /// A square `k x k` convolution with symmetric padding `pad`, stride `stride`, dilation 1.
    pub fn square(
        in_channels: usize,
        out_channels: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            padding: [pad, pad, pad, pad],
            transposed: false,
            groups: 1,
        }
    }

    /// A square transposed `k x k` convolution (stride `stride`, padding `pad`, dilation 1).
    pub fn transposed(
        in_channels: usize,
        out_channels: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        Self {
            transposed: true,
            ..Self::square(in_channels, out_channels, k, stride, pad)
        }
    }

    /// A square `k x k` depthwise convolution of `channels` channels (`groups = in = out`),
    /// symmetric padding `pad`, stride `stride`, dilation 1: ConvNeXt's
    /// `Conv2d(dim, dim, 7, padding=3, groups=dim)` is `ConvSpec::depthwise(dim, 7, 1, 3)`.
    pub fn depthwise(channels: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self::square(channels, channels, k, stride, pad).with_groups(channels)
    }

    /// The same geometry with `groups` channel groups (checked by [`PackedConv::new`]).
    pub fn with_groups(self, groups: usize) -> Self {
        Self { groups, ..self }
    }

    /// Whether every group has one input and one output channel (`groups = in = out`), the case
    /// [`PackedConv`] runs with a per-channel vector loop instead of a GEMM.
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.in_channels == self.groups && self.out_channels == self.groups
    }

    /// Output `(height, width)` for an input of `height x width`:
    /// `(in + pad_before + pad_after − dilation·(k − 1) − 1) / stride + 1`, or `None` when the
    /// (padded) input is smaller than the dilated kernel. Transposed:
    /// `(in − 1)·stride − pad_before − pad_after + dilation·(k − 1) + 1`, or `None` when the padding
    /// crops everything. `None` too when a size overflows `usize` (checked arithmetic throughout).
    pub fn output_size(&self, height: usize, width: usize) -> Option<(usize, usize)> {
        if self.transposed {
            let dim = |n: usize, before: usize, after: usize, k: usize, s: usize, d: usize| {
                let full = n
                    .checked_sub(1)?
                    .checked_mul(s)?
                    .checked_add(d.checked_mul(k.checked_sub(1)?)?)?
                    .checked_add(1)?;
                full.checked_sub(before.checked_add(after)?)
                    .filter(|&o| o > 0)
            };
            let [kh, kw] = self.kernel;
            let [pt, pl, pb, pr] = self.padding;
            return Some((
                dim(height, pt, pb, kh, self.stride[0], self.dilation[0])?,
                dim(width, pl, pr, kw, self.stride[1], self.dilation[1])?,
            ));
        }
        let dim = |n: usize, before: usize, after: usize, k: usize, s: usize, d: usize| {
            let padded = n.checked_add(before)?.checked_add(after)?;
            let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
            (padded >= span).then(|| (padded - span) / s.max(1) + 1)
        };
        let [kh, kw] = self.kernel;
        let [pt, pl, pb, pr] = self.padding;
        Some((
            dim(height, pt, pb, kh, self.stride[0], self.dilation[0])?,
            dim(width, pl, pr, kw, self.stride[1], self.dilation[1])?,
        ))
    }

    /// Kernel taps (`kh · kw`; saturates at `usize::MAX`, which [`PackedConv::new`] refuses).
    pub fn taps(&self) -> usize {
        self.kernel[0].saturating_mul(self.kernel[1])
    }

    /// Multiply-adds for an output of `pixels` pixels: each output value sums
    /// `in_channels / groups · taps` products; for a transposed convolution only the products
    /// that meet an input pixel, `taps / (stride_y · stride_x)` of them on average. Saturates
    /// at `usize::MAX`.
    pub fn macs(&self, pixels: usize) -> usize {
        let all = pixels
            .saturating_mul(self.out_channels)
            .saturating_mul(self.in_channels / self.groups.max(1))
            .saturating_mul(self.taps());
        if self.transposed {
            all / self.stride[0].saturating_mul(self.stride[1]).max(1)
        } else {
            all
        }
    }

    fn check(&self, layer: &str) -> Result<(), EngineError> {
        let bad = |message: &str| {
            Err(EngineError::Layer {
                layer: layer.to_string(),
                message: message.to_string(),
            })
        };
        if self.in_channels == 0 || self.out_channels == 0 {
            return bad("channel counts must be at least 1");
        }
        if self.kernel.contains(&0) || self.stride.contains(&0) || self.dilation.contains(&0) {
            return bad("kernel size, stride and dilation must be at least 1");
        }
        if self.groups == 0 {
            return bad("groups must be at least 1");
        }
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return Err(EngineError::Layer {
                layer: layer.to_string(),
                message: format!(
                    "{} input and {} output channels are not both divisible by {} groups",
                    self.in_channels, self.out_channels, self.groups
                ),
            });
        }
        Ok(())
    }
}

/// The activation fused into a convolution's epilogue (after bias and residual addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// None (identity).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// The exact (erf) GELU, `0.5 · x · (1 + erf(x / √2))` (Hendrycks & Gimpel 2016,
    /// arXiv:1606.08415; PyTorch `nn.GELU()` with its default `approximate='none'`, which
    /// ConvNeXt's blocks use: DDColor, `../shared/reference/ddcolor.md` §3.1), computed by
    /// [`gelu_fast`].
    Gelu,
}

/// A convolution ready to run: weights packed for one kernel family, bias folded, activation
/// chosen.
#[derive(Debug, Clone)]
pub struct PackedConv {
    name: String,
    spec: ConvSpec,
    isa: Isa,
    activation: Activation,
    /// GEMM: `[groups · ceil(out_g / nr)][taps · in_g][nr]` (`in_g`, `out_g`: channels per
    /// group), each group's last panel zero-padded past its `out_g` channels. Depthwise
    /// ([`ConvSpec::is_depthwise`]): `[taps][channels]`.
    weights: Vec<f32>,
    /// GEMM: `[groups · ceil(out_g / nr) · nr]`, zero-padded as the weights. Depthwise:
    /// `[channels]`.
    bias: Vec<f32>,
    /// `in_channels` zeros: the row the indirection buffer points to for padding taps.
    zeros: Vec<f32>,
    /// A strided transposed convolution, split by output phase (empty otherwise): output pixel
    /// `(oy, ox)` with `oy mod sy = a`, `ox mod sx = b` is reached only by the taps `ky`, `kx`
    /// with `(a + pad − ky·d) mod s = 0`, so each phase runs as a convolution over those taps
    /// alone. A 4x4 stride-2 kernel does 4 multiply-adds per output value instead of 16 (three
    /// quarters of which would meet zeros).
    phases: Vec<Phase>,
}

/// One output phase of a strided transposed convolution ([`PackedConv`]'s `phases`).
#[derive(Debug, Clone)]
struct Phase {
    /// Output row and column phase.
    a: usize,
    b: usize,
    /// The kernel taps `(ky, kx)` that reach this phase, in packing order.
    taps: Vec<(usize, usize)>,
    /// Weights packed as [`PackedConv`]'s, over these taps only.
    weights: Vec<f32>,
}

/// A read-only NHWC view: pixel `(b, y, x)` starts at `ptr + ((b·height + y)·width + x)·stride`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Src {
    pub ptr: *const f32,
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub stride: usize,
}

/// A writable NHWC view with the same addressing as [`Src`]; its shape is implied by the op.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dst {
    pub ptr: *mut f32,
    pub stride: usize,
}

impl Src {
    /// Address of pixel `p` (flat over batch, rows, columns); a method, so closures capture the
    /// whole (Sync) view.
    pub(crate) fn pixel(&self, p: usize) -> *const f32 {
        self.ptr.wrapping_add(p * self.stride)
    }
}

impl Dst {
    /// Address of pixel `p`, as [`Src::pixel`].
    pub(crate) fn pixel(&self, p: usize) -> *mut f32 {
        self.ptr.wrapping_add(p * self.stride)
    }
}

// SAFETY: views are plain addresses into buffers the caller keeps alive for the whole op; the ops
// write disjoint pixels from different threads (each output pixel belongs to exactly one task).
unsafe impl Send for Src {}
// SAFETY: as above.
unsafe impl Sync for Src {}
// SAFETY: as above.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

/// One micro-kernel call: `mr` output pixels x `nr` output channels.
pub(crate) struct Tile<'a> {
    /// `[taps][mr]` pointers to `cin` input values each.
    pub a: &'a [*const f32],
    pub taps: usize,
    pub cin: usize,
    /// Panel `[taps · cin][nr]`, rows `ldb` floats apart (`nr` for packed weights).
    pub b: *const f32,
    pub ldb: usize,
    /// Added to every pointer of `a` (a group's first input channel; 0 without groups).
    pub a_offset: usize,
    /// `nr` bias values.
    pub bias: *const f32,
    pub out: &'a [*mut f32; MAX_MR],
    pub res: Option<&'a [*const f32; MAX_MR]>,
    pub valid_m: usize,
    pub valid_n: usize,
    pub relu: bool,
}

/// `nr` zeros for tiles without bias.
pub(crate) static ZERO_BIAS: [f32; 32] = [0.0; 32];

/// Runs the micro-kernel of `isa` on one tile.
///
/// # Safety
/// `isa` is available on this CPU; `t` as documented on [`Tile`] (see `micro_kernel!`).
pub(crate) unsafe fn run_kernel(isa: Isa, t: &Tile<'_>) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::avx512(t),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::avx2(t),
            _ => portable::run(t),
        }
    }
}

/// Generates one micro-kernel family from its vector primitives. The body is the same for every
/// family, so the AVX-512 kernel (not runnable on every test machine) is the AVX2 kernel with
/// wider vectors.
///
/// The register tile is spelled out as one `(row index, row pointer, low accumulator, high
/// accumulator)` tuple per output pixel: with an array of accumulators LLVM kept a copy in memory
/// and stored every accumulator after every multiply-add, which halved the speed.
macro_rules! micro_kernel {
    ($(#[$attr:meta])* $name:ident, $lanes:expr, $zero:expr, $splat:path, $load:path,
     $store:path, $fma:path, $add:path, $max:path,
     [$(($m:expr, $row:ident, $lo:ident, $hi:ident)),+ $(,)?]) => {
        $(#[$attr])*
        unsafe fn $name(t: &Tile<'_>) {
            const MR: usize = [$($m),+].len();
            // SAFETY (whole body): `Tile` is built by `PackedConv::run_tile`, which guarantees
            // `a` holds `taps · MR` pointers to `a_offset + cin` readable values, `b` points to
            // `taps · cin` rows of `2 · lanes` weights, `ldb` apart, `bias` to `2 · lanes` values,
            // and `out` / `res` to `valid_n` writable / readable values for each of the first
            // `valid_m` rows.
            unsafe {
                $(let mut $lo = $zero; let mut $hi = $zero;)+
                let mut bp = t.b;
                let mut ap = t.a.as_ptr();
                for _ in 0..t.taps {
                    $(let $row = (*ap.add($m)).add(t.a_offset);)+
                    ap = ap.add(MR);
                    for c in 0..t.cin {
                        let b0 = $load(bp);
                        let b1 = $load(bp.add($lanes));
                        bp = bp.add(t.ldb);
                        $(
                            let a = $splat(*$row.add(c));
                            $lo = $fma(a, b0, $lo);
                            $hi = $fma(a, b1, $hi);
                        )+
                    }
                }
                let bias0 = $load(t.bias);
                let bias1 = $load(t.bias.add($lanes));
                let zero = $zero;
                $(
                    if $m < t.valid_m {
                        let mut v0 = $add($lo, bias0);
                        let mut v1 = $add($hi, bias1);
                        let out = t.out[$m];
                        if t.valid_n == 2 * $lanes {
                            if let Some(res) = t.res {
                                v0 = $add(v0, $load(res[$m]));
                                v1 = $add(v1, $load(res[$m].add($lanes)));
                            }
                            if t.relu {
                                v0 = $max(v0, zero);
                                v1 = $max(v1, zero);
                            }
                            $store(out, v0);
                            $store(out.add($lanes), v1);
                        } else {
                            let mut tmp = [0f32; 2 * $lanes];
                            $store(tmp.as_mut_ptr(), v0);
                            $store(tmp.as_mut_ptr().add($lanes), v1);
                            for (j, &v) in tmp.iter().enumerate().take(t.valid_n) {
                                let mut v = v;
                                if let Some(res) = t.res {
                                    v += *res[$m].add(j);
                                }
                                if t.relu {
                                    v = v.max(0.0);
                                }
                                *out.add(j) = v;
                            }
                        }
                    }
                )+
            }
        }
    };
}

/// One output row of a depthwise convolution.
pub(crate) struct DepthwiseRow<'a> {
    conv: &'a PackedConv,
    src: &'a Src,
    dst: &'a Dst,
    res: Option<&'a Src>,
    /// `b · oh + oy`.
    row: usize,
    out_size: (usize, usize),
}

/// A depthwise kernel: one output pixel from its taps inside the input (`(pointer to the input
/// pixel, tap index)`), its output and its residual pixel (see `depthwise_pixel!`).
type DepthwisePixel = unsafe fn(&PackedConv, &[(*const f32, usize)], *mut f32, Option<*const f32>);

/// A depthwise convolution's output row: for each pixel, the taps that fall inside the input
/// (padding taps add nothing), then the family's pixel kernel, then tanh or sigmoid.
///
/// # Safety
/// As [`PackedConv::run_views`], for a depthwise convolution; `r.row < batch · oh`; `pixel`
/// runs on this CPU.
unsafe fn depthwise_row(r: &DepthwiseRow<'_>, pixel: DepthwisePixel) {
    let conv = r.conv;
    let s = &conv.spec;
    let ch = s.out_channels;
    let (oh, ow) = r.out_size;
    let (b, oy) = (r.row / oh, r.row % oh);
    let (src, dst) = (r.src, r.dst);
    let mut taps = [(std::ptr::null::<f32>(), 0usize); MAX_TAPS];
    for ox in 0..ow {
        let mut n = 0;
        for ky in 0..s.kernel[0] {
            let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
            if iy < 0 || iy as usize >= src.height {
                continue;
            }
            for kx in 0..s.kernel[1] {
                let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize - s.padding[1] as isize;
                if ix < 0 || ix as usize >= src.width {
                    continue;
                }
                let pixel = (b * src.height + iy as usize) * src.width + ix as usize;
                taps[n] = (src.pixel(pixel), ky * s.kernel[1] + kx);
                n += 1;
            }
        }
        let p = r.row * ow + ox;
        let out = dst.pixel(p);
        // SAFETY: the pixels under the taps, the output and the residual pixel hold `ch` values
        // each (caller's contract); the weights hold `taps · ch` values and the bias `ch`.
        unsafe { pixel(conv, &taps[..n], out, r.res.map(|v| v.pixel(p))) };
        if conv.activation.needs_pass() {
            // SAFETY: as above; the kernel's stores are done.
            let px = unsafe { std::slice::from_raw_parts_mut(out, ch) };
            activate_slice(conv.isa, conv.activation, px);
        }
    }
}

/// Generates one family's depthwise pixel kernel from its vector primitives:
/// `out[c] = bias[c] + Σ_t in_t[c] · w[t][c] (+ res[c]) (then ReLU)`. NHWC keeps a pixel's
/// channels contiguous, so the sum runs over blocks of four vectors of channels held in registers
/// across all taps (two loads per multiply-add, one store per output value), then single vectors,
/// then a scalar tail — the loop structure of XNNPACK's depthwise (`dwconv`) micro-kernels.
/// Explicit, because LLVM left the AVX2 version of the plain loop scalar.
macro_rules! depthwise_pixel {
    ($(#[$attr:meta])* $name:ident, $lanes:expr, $zero:expr, $load:path, $store:path,
     $fma:path, $add:path, $max:path) => {
        $(#[$attr])*
        pub(super) unsafe fn $name(
            conv: &super::PackedConv,
            taps: &[(*const f32, usize)],
            out: *mut f32,
            res: Option<*const f32>,
        ) {
            const L: usize = $lanes;
            let ch = conv.spec.out_channels;
            let relu = conv.activation == super::Activation::Relu;
            let (w, bias) = (conv.weights.as_ptr(), conv.bias.as_ptr());
            // SAFETY (whole body): `depthwise_row`'s contract: every tap pointer, `out` and
            // `res` address `ch` values, the weights `[taps][ch]`, the bias `ch`.
            unsafe {
                let mut c0 = 0;
                while c0 + 4 * L <= ch {
                    let (mut a0, mut a1, mut a2, mut a3) = (
                        $load(bias.add(c0)),
                        $load(bias.add(c0 + L)),
                        $load(bias.add(c0 + 2 * L)),
                        $load(bias.add(c0 + 3 * L)),
                    );
                    for &(p, t) in taps {
                        let (x, wt) = (p.add(c0), w.add(t * ch + c0));
                        a0 = $fma($load(x), $load(wt), a0);
                        a1 = $fma($load(x.add(L)), $load(wt.add(L)), a1);
                        a2 = $fma($load(x.add(2 * L)), $load(wt.add(2 * L)), a2);
                        a3 = $fma($load(x.add(3 * L)), $load(wt.add(3 * L)), a3);
                    }
                    if let Some(r) = res {
                        a0 = $add(a0, $load(r.add(c0)));
                        a1 = $add(a1, $load(r.add(c0 + L)));
                        a2 = $add(a2, $load(r.add(c0 + 2 * L)));
                        a3 = $add(a3, $load(r.add(c0 + 3 * L)));
                    }
                    if relu {
                        let z = $zero;
                        (a0, a1, a2, a3) = ($max(a0, z), $max(a1, z), $max(a2, z), $max(a3, z));
                    }
                    $store(out.add(c0), a0);
                    $store(out.add(c0 + L), a1);
                    $store(out.add(c0 + 2 * L), a2);
                    $store(out.add(c0 + 3 * L), a3);
                    c0 += 4 * L;
                }
                while c0 + L <= ch {
                    let mut a = $load(bias.add(c0));
                    for &(p, t) in taps {
                        a = $fma($load(p.add(c0)), $load(w.add(t * ch + c0)), a);
                    }
                    if let Some(r) = res {
                        a = $add(a, $load(r.add(c0)));
                    }
                    if relu {
                        a = $max(a, $zero);
                    }
                    $store(out.add(c0), a);
                    c0 += L;
                }
                for c in c0..ch {
                    let mut a = *bias.add(c);
                    for &(p, t) in taps {
                        a += *p.add(c) * *w.add(t * ch + c);
                    }
                    if let Some(r) = res {
                        a += *r.add(c);
                    }
                    *out.add(c) = if relu { a.max(0.0) } else { a };
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MAX_MR, Tile};
    use std::arch::x86_64::*;

    micro_kernel!(
        #[target_feature(enable = "avx2,fma")]
        kernel_avx2,
        8,
        _mm256_setzero_ps(),
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_max_ps,
        [
            (0, r0, c00, c01),
            (1, r1, c10, c11),
            (2, r2, c20, c21),
            (3, r3, c30, c31),
            (4, r4, c40, c41),
            (5, r5, c50, c51)
        ]
    );

    micro_kernel!(
        #[target_feature(enable = "avx512f")]
        kernel_avx512,
        16,
        _mm512_setzero_ps(),
        _mm512_set1_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_max_ps,
        [
            (0, r0, c00, c01),
            (1, r1, c10, c11),
            (2, r2, c20, c21),
            (3, r3, c30, c31),
            (4, r4, c40, c41),
            (5, r5, c50, c51),
            (6, r6, c60, c61),
            (7, r7, c70, c71),
            (8, r8, c80, c81),
            (9, r9, c90, c91),
            (10, r10, c100, c101),
            (11, r11, c110, c111)
        ]
    );

    const _: () = assert!(MAX_MR >= 12);

    depthwise_pixel!(
        /// # Safety
        /// The CPU supports AVX-512F; as `super::depthwise_row`.
        #[target_feature(enable = "avx512f")]
        depthwise_avx512,
        16,
        _mm512_setzero_ps(),
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_fmadd_ps,
        _mm512_add_ps,
        _mm512_max_ps
    );

    depthwise_pixel!(
        /// # Safety
        /// The CPU supports AVX2 and FMA; as `super::depthwise_row`.
        #[target_feature(enable = "avx2,fma")]
        depthwise_avx2,
        8,
        _mm256_setzero_ps(),
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        _mm256_max_ps
    );

    /// # Safety
    /// The CPU supports AVX2 and FMA; `t` as documented on [`Tile`].
    pub(super) unsafe fn avx2(t: &Tile<'_>) {
        // SAFETY: the caller checked the CPU features (`Isa::is_available`).
        unsafe { kernel_avx2(t) }
    }

    /// # Safety
    /// The CPU supports AVX-512F; `t` as documented on [`Tile`].
    pub(super) unsafe fn avx512(t: &Tile<'_>) {
        // SAFETY: the caller checked the CPU features (`Isa::is_available`).
        unsafe { kernel_avx512(t) }
    }
}

/// The portable vector: four lanes of plain Rust arithmetic.
mod portable {
    use super::Tile;

    type V = [f32; 4];

    #[inline(always)]
    fn splat(x: f32) -> V {
        [x; 4]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller passes 4 readable values.
        unsafe { p.cast::<V>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller passes 4 writable values.
        unsafe { p.cast::<V>().write_unaligned(v) }
    }
    #[inline(always)]
    fn fma(a: V, b: V, c: V) -> V {
        core::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    fn add(a: V, b: V) -> V {
        core::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    fn max(a: V, b: V) -> V {
        core::array::from_fn(|i| a[i].max(b[i]))
    }

    micro_kernel!(
        kernel,
        4,
        [0f32; 4],
        splat,
        load,
        store,
        fma,
        add,
        max,
        [
            (0, r0, c00, c01),
            (1, r1, c10, c11),
            (2, r2, c20, c21),
            (3, r3, c30, c31)
        ]
    );

    depthwise_pixel!(
        /// # Safety
        /// As `super::depthwise_row`.
        depthwise,
        4,
        [0f32; 4],
        load,
        store,
        fma,
        add,
        max
    );

    /// # Safety
    /// `t` as documented on [`Tile`].
    pub(super) unsafe fn run(t: &Tile<'_>) {
        // SAFETY: forwarded from the caller.
        unsafe { kernel(t) }
    }
}

thread_local! {
    /// Each worker thread's indirection buffer (`[taps][mr]` pointers), reused across calls so a
    /// warm forward pass allocates nothing.
    static INDIRECTION: RefCell<Vec<*const f32>> = const { RefCell::new(Vec::new()) };
}

/// `tanh` as a rational function of `x²` (degree 13/6, the form Eigen uses for float tanh), clamped
/// where tanh rounds to ±1: within 5e-7 of the exact value, and about 10x cheaper than `f32::tanh`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published, rounded by the compiler
pub fn tanh_fast(x: f32) -> f32 {
    let x = x.clamp(-7.998_811_7, 7.998_811_7);
    let x2 = x * x;
    let p = ((((((-2.760_768_5e-16f32 * x2 + 2.000_187_9e-13) * x2 - 8.604_671_5e-11) * x2
        + 5.122_297e-8)
        * x2
        + 1.485_722_4e-5)
        * x2
        + 6.372_619_3e-4)
        * x2
        + 4.893_524_6e-3)
        * x;
    let q = ((1.198_258_4e-6f32 * x2 + 1.185_347_1e-4) * x2 + 2.268_434_6e-3) * x2 + 4.893_525_2e-3;
    p / q
}

/// The logistic sigmoid as `(1 + tanh(x/2)) / 2` with [`tanh_fast`]: within 3e-7.
#[inline(always)]
pub fn sigmoid_fast(x: f32) -> f32 {
    0.5 + 0.5 * tanh_fast(0.5 * x)
}

/// The exact (erf) GELU, `0.5 · x · (1 + erf(x / √2))`, with erf as a branchless rational
/// function (odd degree-13 numerator over even degree-8 denominator in `z = x/√2`, the
/// coefficients of Eigen's float `erf`), its argument clamped to `[−4, 4]` where erf rounds to
/// ±1 in f32. Within `1e-6 · max(1, |x|)` of the f64 erf-GELU for every `x` (tested over
/// −10..10, `tests/kernels.rs`); finite for every finite `x`.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the coefficients as published, rounded by the compiler
pub fn gelu_fast(x: f32) -> f32 {
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).clamp(-4.0, 4.0);
    let z2 = z * z;
    let p = ((((((-2.726_142_258_013_06e-10f32 * z2 + 2.770_681_424_959_02e-08) * z2
        - 2.101_024_020_825_08e-06)
        * z2
        - 5.692_506_394_623_46e-05)
        * z2
        - 7.349_906_303_268_55e-04)
        * z2
        - 2.954_599_808_540_25e-03)
        * z2
        - 1.609_603_332_624_15e-02)
        * z;
    let q = (((-1.456_607_184_649_96e-05f32 * z2 - 2.133_740_552_789_05e-04) * z2
        - 1.682_826_974_382_03e-03)
        * z2
        - 7.373_329_167_204_68e-03)
        * z2
        - 1.426_473_905_141_89e-02;
    0.5 * x * (1.0 + p / q)
}

impl Activation {
    /// Whether the activation runs as a pass over the stored values (tanh, sigmoid, GELU)
    /// rather than inside the micro-kernel's epilogue (none, ReLU).
    pub(crate) fn needs_pass(self) -> bool {
        matches!(
            self,
            Activation::Tanh | Activation::Sigmoid | Activation::Gelu
        )
    }
}

/// Applies `activation` to every value of `values` in place, the loop compiled for `isa`'s
/// vector width (the functions are branchless, so LLVM vectorises them).
pub(crate) fn activate_slice(isa: Isa, activation: Activation, values: &mut [f32]) {
    #[inline(always)]
    fn body(activation: Activation, values: &mut [f32]) {
        match activation {
            Activation::None => {}
            Activation::Relu => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Tanh => values.iter_mut().for_each(|v| *v = tanh_fast(*v)),
            Activation::Sigmoid => values.iter_mut().for_each(|v| *v = sigmoid_fast(*v)),
            Activation::Gelu => values.iter_mut().for_each(|v| *v = gelu_fast(*v)),
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(activation: Activation, values: &mut [f32]) {
            body(activation, values)
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(activation: Activation, values: &mut [f32]) {
            body(activation, values)
        }
        match isa {
            // SAFETY: a PackedConv or op only holds an available family (checked when built).
            Isa::Avx512 if isa.is_available() => return unsafe { avx512(activation, values) },
            // SAFETY: as above.
            Isa::Avx2 if isa.is_available() => return unsafe { avx2(activation, values) },
            _ => {}
        }
    }
    let _ = isa;
    body(activation, values)
}

/// GEMM panels `[groups · ceil(out_g / nr)][taps.len() · in_g][nr]` of `weight` (PyTorch layout,
/// as [`PackedConv::new`] takes it) over the kernel taps `taps` (indices `ky · kw + kx`), each
/// group's last panel zero-padded past its `out_g` channels.
fn pack_panels(spec: &ConvSpec, weight: &[f32], nr: usize, taps: &[usize]) -> Vec<f32> {
    let (groups, all_taps) = (spec.groups, spec.taps());
    let (cin_g, cout_g) = (spec.in_channels / groups, spec.out_channels / groups);
    let blocks_g = cout_g.div_ceil(nr);
    let k = taps.len() * cin_g;
    let mut packed = vec![0f32; groups * blocks_g * k * nr];
    for o in 0..spec.out_channels {
        let (g, ol) = (o / cout_g, o % cout_g);
        let (blk, j) = (g * blocks_g + ol / nr, ol % nr);
        for cl in 0..cin_g {
            let src = if spec.transposed {
                ((g * cin_g + cl) * cout_g + ol) * all_taps
            } else {
                (o * cin_g + cl) * all_taps
            };
            for (t, &tap) in taps.iter().enumerate() {
                packed[(blk * k + t * cin_g + cl) * nr + j] = weight[src + tap];
            }
        }
    }
    packed
}

/// The output phases of a strided transposed convolution (groups 1), each with its taps and
/// its weights packed as [`PackedConv::new`] packs all of them. `weight`: `[in, out, kh, kw]`.
fn phases(spec: &ConvSpec, weight: &[f32], nr: usize) -> Vec<Phase> {
    let [kh, kw] = spec.kernel;
    let [sy, sx] = spec.stride;
    let [dy, dx] = spec.dilation;
    let [pt, pl, _, _] = spec.padding;
    let (cin, cout) = (spec.in_channels, spec.out_channels);
    let mut out = Vec::new();
    for a in 0..sy {
        for b in 0..sx {
            let taps: Vec<(usize, usize)> = (0..kh)
                .filter(|ky| (a + pt + sy * kh * dy - ky * dy) % sy == 0)
                .flat_map(|ky| {
                    (0..kw)
                        .filter(move |kx| (b + pl + sx * kw * dx - kx * dx) % sx == 0)
                        .map(move |kx| (ky, kx))
                })
                .collect();
            // No tap reaches this phase (a stride larger than the kernel): one tap whose
            // input is never inside (the run checks exactness) and whose weights are zero, so
            // these pixels get the bias, as in PyTorch.
            let (taps, packed) = if taps.is_empty() {
                (vec![(0, 0)], vec![0f32; cout.div_ceil(nr) * cin * nr])
            } else {
                let indices: Vec<usize> = taps.iter().map(|&(ky, kx)| ky * kw + kx).collect();
                (taps, pack_panels(spec, weight, nr, &indices))
            };
            out.push(Phase {
                a,
                b,
                taps,
                weights: packed,
            });
        }
    }
    out
}

impl PackedConv {
    /// Packs a convolution for the kernel family `isa`.
    ///
    /// - `weight`: PyTorch layout `[out, in / groups, kh, kw]` (`Conv2d`), or
    ///   `[in, out / groups, kh, kw]` when `spec.transposed` (`ConvTranspose2d`);
    ///   `out · in / groups · kh · kw` values.
    /// - `bias`: `out` values, or `None` for zeros.
    /// - `name` names the layer in errors.
    ///
    /// # Errors
    /// [`EngineError::Layer`] if the lengths do not match `spec`, a size or `groups` is zero, a
    /// channel count is not divisible by `groups`, or the kernel has more than 121 taps;
    /// [`EngineError::IsaUnavailable`] if this CPU cannot run `isa`.
    pub fn new(
        name: &str,
        spec: ConvSpec,
        weight: &[f32],
        bias: Option<&[f32]>,
        activation: Activation,
        isa: Isa,
    ) -> Result<Self, EngineError> {
        spec.check(name)?;
        if !isa.is_available() {
            return Err(EngineError::IsaUnavailable(isa.name()));
        }
        let layer_err = |message: String| EngineError::Layer {
            layer: name.to_string(),
            message,
        };
        let (cin, cout, taps, groups) = (
            spec.in_channels,
            spec.out_channels,
            spec.taps(),
            spec.groups,
        );
        let (cin_g, cout_g) = (cin / groups, cout / groups);
        if taps > MAX_TAPS {
            return Err(layer_err(format!(
                "{taps} kernel taps (at most 121, 11x11)"
            )));
        }
        let Some(needed) = cout.checked_mul(cin_g).and_then(|n| n.checked_mul(taps)) else {
            return Err(layer_err(format!(
                "{cout} x {cin_g} x {taps} weights overflow the address space"
            )));
        };
        if weight.len() != needed {
            let (a, b) = if spec.transposed {
                (cin, cout_g)
            } else {
                (cout, cin_g)
            };
            return Err(layer_err(format!(
                "weight has {} values, [{a}, {b}, {}, {}] needs {}",
                weight.len(),
                spec.kernel[0],
                spec.kernel[1],
                needed
            )));
        }
        if let Some(b) = bias
            && b.len() != cout
        {
            return Err(layer_err(format!(
                "bias has {} values, expected {cout}",
                b.len()
            )));
        }
        let mut conv = Self {
            name: name.to_string(),
            spec,
            isa,
            activation,
            weights: Vec::new(),
            bias: Vec::new(),
            zeros: vec![0f32; cin],
            phases: Vec::new(),
        };
        if spec.is_depthwise() && !spec.transposed {
            // `[C, 1, kh, kw]` → `[taps][C]`: each tap's weights are one contiguous channel
            // vector, as the per-channel loop reads them.
            let mut packed = vec![0f32; taps * cout];
            for o in 0..cout {
                for t in 0..taps {
                    packed[t * cout + o] = weight[o * taps + t];
                }
            }
            conv.weights = packed;
            conv.bias = bias.map_or_else(|| vec![0f32; cout], <[f32]>::to_vec);
            conv.zeros = Vec::new();
            return Ok(conv);
        }
        let nr = isa.nr();
        let blocks_g = cout_g.div_ceil(nr);
        let mut padded_bias = vec![0f32; groups * blocks_g * nr];
        if let Some(b) = bias {
            for (o, &v) in b.iter().enumerate() {
                let (g, ol) = (o / cout_g, o % cout_g);
                padded_bias[(g * blocks_g + ol / nr) * nr + ol % nr] = v;
            }
        }
        conv.weights = pack_panels(&spec, weight, nr, &(0..taps).collect::<Vec<_>>());
        conv.bias = padded_bias;
        if spec.transposed && groups == 1 && (spec.stride[0] > 1 || spec.stride[1] > 1) {
            conv.phases = phases(&spec, weight, nr);
        }
        Ok(conv)
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The geometry.
    pub fn spec(&self) -> &ConvSpec {
        &self.spec
    }

    /// The kernel family the weights are packed for.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The same convolution with weights and bias multiplied by `factor` (folds a following
    /// scalar, such as self-attention's γ, into the layer).
    pub fn scaled(mut self, factor: f32) -> Self {
        self.weights.iter_mut().for_each(|w| *w *= factor);
        self.bias.iter_mut().for_each(|b| *b *= factor);
        for p in &mut self.phases {
            p.weights.iter_mut().for_each(|w| *w *= factor);
        }
        self
    }

    /// Runs the convolution on NHWC slices, checking every length.
    ///
    /// - `input`: `batch · height · width` pixels, pixel `p` at `input[p · in_stride..][..in]`
    ///   (`in_stride ≥ in_channels`; larger strides read a channel slice of a wider tensor).
    /// - `output`: `batch · oh · ow` pixels at stride `out_stride ≥ out_channels`; only the
    ///   first `out_channels` values of each pixel are written.
    /// - `residual`: optional `(values, stride)` with the output's pixel count, added before the
    ///   activation.
    ///
    /// Returns the output `(height, width)`.
    ///
    /// Every size is computed with checked arithmetic: dimensions whose product overflows `usize`
    /// are an error, never a wrapped product that happens to match a slice's length.
    ///
    /// # Errors
    /// [`EngineError::Shape`] if a slice is too short, a stride too small, the input smaller
    /// than the kernel, or a size overflows.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        input: &[f32],
        in_stride: usize,
        batch: usize,
        height: usize,
        width: usize,
        output: &mut [f32],
        out_stride: usize,
        residual: Option<(&[f32], usize)>,
    ) -> Result<(usize, usize), EngineError> {
        let s = &self.spec;
        let (oh, ow) = s.output_size(height, width).ok_or_else(|| {
            EngineError::Shape(format!(
                "{}: input {height}x{width} is smaller than the kernel (or its output size overflows)",
                self.name
            ))
        })?;
        let overflow = || {
            EngineError::Shape(format!(
                "{}: input {batch}x{height}x{width} overflows the address space",
                self.name
            ))
        };
        // Values a view of `pixels` pixels at `stride` spans; `None` when it overflows.
        let need = |pixels: usize, stride: usize, channels: usize| {
            if pixels == 0 {
                Some(0)
            } else {
                (pixels - 1).checked_mul(stride)?.checked_add(channels)
            }
        };
        let pixels = |h: usize, w: usize| batch.checked_mul(h)?.checked_mul(w);
        let in_pixels = pixels(height, width).ok_or_else(overflow)?;
        let out_pixels = pixels(oh, ow).ok_or_else(overflow)?;
        let in_need = need(in_pixels, in_stride, s.in_channels).ok_or_else(overflow)?;
        let out_need = need(out_pixels, out_stride, s.out_channels).ok_or_else(overflow)?;
        let short = |what: &str| Err(EngineError::Shape(format!("{}: {what}", self.name)));
        if in_stride < s.in_channels || input.len() < in_need {
            return short("input slice too short or stride below the channel count");
        }
        if out_stride < s.out_channels || output.len() < out_need {
            return short("output slice too short or stride below the channel count");
        }
        if let Some((r, rs)) = residual {
            let r_need = need(out_pixels, rs, s.out_channels).ok_or_else(overflow)?;
            if rs < s.out_channels || r.len() < r_need {
                return short("residual slice too short or stride below the channel count");
            }
        }
        let src = Src {
            ptr: input.as_ptr(),
            batch,
            height,
            width,
            stride: in_stride,
        };
        let dst = Dst {
            ptr: output.as_mut_ptr(),
            stride: out_stride,
        };
        let res = residual.map(|(r, rs)| Src {
            ptr: r.as_ptr(),
            batch,
            height: oh,
            width: ow,
            stride: rs,
        });
        // SAFETY: every length was checked above against the addresses `run_views` touches.
        unsafe { self.run_views(src, dst, res) };
        Ok((oh, ow))
    }

    /// Splits `pixels` output pixels (tiles of `mr`) and `blocks` weight panels of `k` rows into
    /// tasks and runs `body(table, tiles, panels)` for each, in parallel when there is more than
    /// one: the panels in runs of `per_run` (about `PANEL_GROUP_BYTES` of weights; not to be
    /// confused with channel groups), the tiles in `chunks`. `table` is the thread's indirection
    /// buffer, sized `taps · mr`.
    fn for_each_task(
        &self,
        pixels: usize,
        taps: usize,
        k: usize,
        blocks: usize,
        body: impl Fn(&mut [*const f32], std::ops::Range<usize>, std::ops::Range<usize>) + Sync,
    ) {
        let (mr, nr) = (self.isa.mr(), self.isa.nr());
        let tiles = pixels.div_ceil(mr);
        let per_run = (PANEL_GROUP_BYTES / (k * nr * 4).max(1)).clamp(1, blocks);
        let runs = blocks.div_ceil(per_run);
        let threads = rayon::current_num_threads().max(1);
        let chunks = (4 * threads).div_ceil(runs).clamp(1, tiles);
        let run_task = |task: usize| {
            let (chunk, run) = (task / runs, task % runs);
            let tile_range = chunk * tiles / chunks..(chunk + 1) * tiles / chunks;
            let block_range = run * per_run..((run + 1) * per_run).min(blocks);
            INDIRECTION.with(|table| {
                let mut table = table.borrow_mut();
                table.resize(taps * mr, std::ptr::null());
                body(&mut table, tile_range, block_range);
            });
        };
        let tasks = chunks * runs;
        if tasks == 1 || threads == 1 {
            (0..tasks).for_each(run_task);
        } else {
            (0..tasks).into_par_iter().for_each(run_task);
        }
    }

    /// Runs on raw views (the graph executor's entry point).
    ///
    /// # Safety
    /// `src` addresses `batch · height · width` readable pixels of `in_channels` values; `dst`
    /// and `res` address `batch · oh · ow` pixels of `out_channels` writable / readable values;
    /// `dst` overlaps neither `src` nor `res`; the input is at least the dilated kernel's size.
    pub(crate) unsafe fn run_views(&self, src: Src, dst: Dst, res: Option<Src>) {
        let s = &self.spec;
        let Some((oh, ow)) = s.output_size(src.height, src.width) else {
            return;
        };
        let pixels = src.batch * oh * ow;
        if pixels == 0 {
            return;
        }
        if s.is_depthwise() && !s.transposed {
            // SAFETY: forwarded from the caller.
            unsafe { self.run_depthwise(src, dst, res, (oh, ow)) };
            return;
        }
        if !self.phases.is_empty() {
            for phase in &self.phases {
                // SAFETY: forwarded from the caller.
                unsafe { self.run_phase(phase, &src, &dst, res.as_ref(), (oh, ow)) };
            }
            return;
        }
        let nr = self.isa.nr();
        let taps = s.taps();
        let k = taps * (s.in_channels / s.groups);
        // Panels of all groups, in order: a task's block range may span groups.
        let blocks = s.groups * (s.out_channels / s.groups).div_ceil(nr);
        // Offset (in floats) of each tap from the tap (0, 0), valid for pixels whose taps all fall
        // inside the input: those skip the per-tap bounds checks.
        let mut tap_offsets = [0usize; MAX_TAPS];
        for ky in 0..s.kernel[0] {
            for kx in 0..s.kernel[1] {
                tap_offsets[ky * s.kernel[1] + kx] =
                    (ky * s.dilation[0] * src.width + kx * s.dilation[1]) * src.stride;
            }
        }
        self.for_each_task(pixels, taps, k, blocks, |table, tiles, panels| {
            for tile in tiles {
                // SAFETY: forwarded from the caller's contract.
                unsafe {
                    self.run_tile(
                        &src,
                        &dst,
                        res.as_ref(),
                        tile,
                        pixels,
                        (oh, ow),
                        panels.clone(),
                        table,
                        &tap_offsets,
                    )
                };
            }
        });
    }

    /// The output pixels of one phase of a strided transposed convolution (see `phases`), as a
    /// convolution over the phase's taps: tasks split tiles and panels as in
    /// [`PackedConv::run_views`].
    ///
    /// # Safety
    /// As [`PackedConv::run_views`]; `(oh, ow)` is the output size.
    unsafe fn run_phase(
        &self,
        phase: &Phase,
        src: &Src,
        dst: &Dst,
        res: Option<&Src>,
        (oh, ow): (usize, usize),
    ) {
        let s = &self.spec;
        let (mr, nr) = (self.isa.mr(), self.isa.nr());
        let [sy, sx] = s.stride;
        let [dy, dx] = s.dilation;
        let [pt, pl, _, _] = s.padding;
        if phase.a >= oh || phase.b >= ow {
            return;
        }
        let (ph, pw) = ((oh - phase.a).div_ceil(sy), (ow - phase.b).div_ceil(sx));
        let pixels = src.batch * ph * pw;
        let taps = phase.taps.len();
        let k = taps * s.in_channels;
        let blocks = s.out_channels.div_ceil(nr);
        self.for_each_task(pixels, taps, k, blocks, |table, tiles, panels| {
            let zeros = self.zeros.as_ptr();
            let mut out_pixels = [0usize; MAX_MR];
            for tile in tiles {
                let p0 = tile * mr;
                let valid_m = mr.min(pixels - p0);
                for m in 0..mr {
                    if m >= valid_m {
                        for t in 0..taps {
                            table[t * mr + m] = zeros;
                        }
                        continue;
                    }
                    let q = p0 + m;
                    let (bi, rest) = (q / (ph * pw), q % (ph * pw));
                    let oy = (rest / pw) * sy + phase.a;
                    let ox = (rest % pw) * sx + phase.b;
                    out_pixels[m] = (bi * oh + oy) * ow + ox;
                    for (t, &(ky, kx)) in phase.taps.iter().enumerate() {
                        // The input pixel `i` with `i·s = o + pad − k·d`, if any.
                        let ny = (oy + pt) as isize - (ky * dy) as isize;
                        let nx = (ox + pl) as isize - (kx * dx) as isize;
                        let (iy, ix) = (ny / sy as isize, nx / sx as isize);
                        let inside = ny >= 0
                            && nx >= 0
                            && ny % sy as isize == 0
                            && nx % sx as isize == 0
                            && (iy as usize) < src.height
                            && (ix as usize) < src.width;
                        table[t * mr + m] = if inside {
                            src.pixel((bi * src.height + iy as usize) * src.width + ix as usize)
                        } else {
                            zeros
                        };
                    }
                }
                // SAFETY: forwarded from the caller's contract; the table points at input
                // pixels inside the view or at `zeros`.
                unsafe {
                    self.run_blocks(
                        dst,
                        res,
                        &table[..taps * mr],
                        taps,
                        &phase.weights,
                        panels.clone(),
                        &out_pixels,
                        valid_m,
                    )
                };
            }
        });
    }

    /// A depthwise convolution ([`ConvSpec::is_depthwise`]): one output row per task, each
    /// output pixel a per-channel multiply-add over its taps (see `depthwise_pixel!`).
    ///
    /// # Safety
    /// As [`PackedConv::run_views`]; `(oh, ow)` is the output size.
    unsafe fn run_depthwise(&self, src: Src, dst: Dst, res: Option<Src>, (oh, ow): (usize, usize)) {
        let rows = src.batch * oh;
        let pixel: DepthwisePixel = match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::depthwise_avx512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => x86::depthwise_avx2,
            _ => portable::depthwise,
        };
        let row_task = |row: usize| {
            let r = DepthwiseRow {
                conv: self,
                src: &src,
                dst: &dst,
                res: res.as_ref(),
                row,
                out_size: (oh, ow),
            };
            // SAFETY: forwarded from the caller; the ISA was checked in `new`.
            unsafe { depthwise_row(&r, pixel) };
        };
        if rows == 1 || rayon::current_num_threads() == 1 {
            (0..rows).for_each(row_task);
        } else {
            (0..rows).into_par_iter().for_each(row_task);
        }
    }

    /// One tile of `mr` output pixels against the packed blocks `blocks`.
    ///
    /// # Safety
    /// As [`PackedConv::run_views`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_tile(
        &self,
        src: &Src,
        dst: &Dst,
        res: Option<&Src>,
        tile: usize,
        pixels: usize,
        (oh, ow): (usize, usize),
        blocks: std::ops::Range<usize>,
        table: &mut [*const f32],
        tap_offsets: &[usize],
    ) {
        let s = &self.spec;
        let mr = self.isa.mr();
        let taps = s.taps();
        let [kh, kw] = s.kernel;
        let [sy, sx] = s.stride;
        let [dy, dx] = s.dilation;
        let [pt, pl, _, _] = s.padding;
        let transposed = s.transposed;
        let p0 = tile * mr;
        let valid_m = mr.min(pixels - p0);
        let zeros = self.zeros.as_ptr();
        for m in 0..mr {
            if m >= valid_m {
                for t in 0..taps {
                    table[t * mr + m] = zeros;
                }
                continue;
            }
            let p = p0 + m;
            let (b, rest) = (p / (oh * ow), p % (oh * ow));
            let (oy, ox) = (rest / ow, rest % ow);
            if !transposed {
                // Interior pixels: every tap inside the input, one add per tap.
                let (y0, x0) = (oy * sy, ox * sx);
                if y0 >= pt
                    && x0 >= pl
                    && y0 - pt + (kh - 1) * dy < src.height
                    && x0 - pl + (kw - 1) * dx < src.width
                {
                    let pixel = (b * src.height + y0 - pt) * src.width + x0 - pl;
                    let base = src.pixel(pixel);
                    for (t, &off) in tap_offsets[..taps].iter().enumerate() {
                        table[t * mr + m] = base.wrapping_add(off);
                    }
                    continue;
                }
            }
            // Input coordinate under tap `k` of output coordinate `o`: `o·s + k·d − pad` for a
            // convolution; for a transposed one the `i` with `i·s = o + pad − k·d`, if any.
            let coord = |o: usize, k: usize, s: usize, d: usize, pad: usize| -> isize {
                if transposed {
                    let num = (o + pad) as isize - (k * d) as isize;
                    if num < 0 || num % s as isize != 0 {
                        -1
                    } else {
                        num / s as isize
                    }
                } else {
                    (o * s + k * d) as isize - pad as isize
                }
            };
            for ky in 0..kh {
                let iy = coord(oy, ky, sy, dy, pt);
                let row_ok = iy >= 0 && (iy as usize) < src.height;
                for kx in 0..kw {
                    let ix = coord(ox, kx, sx, dx, pl);
                    let t = ky * kw + kx;
                    table[t * mr + m] = if row_ok && ix >= 0 && (ix as usize) < src.width {
                        let pixel = (b * src.height + iy as usize) * src.width + ix as usize;
                        // SAFETY: the pixel is inside the source view.
                        unsafe { src.ptr.add(pixel * src.stride) }
                    } else {
                        zeros
                    };
                }
            }
        }
        let mut out_pixels = [0usize; MAX_MR];
        for (m, o) in out_pixels.iter_mut().enumerate().take(valid_m) {
            *o = p0 + m;
        }
        // SAFETY: forwarded from the caller's contract.
        unsafe {
            self.run_blocks(
                dst,
                res,
                &table[..taps * mr],
                taps,
                &self.weights,
                blocks,
                &out_pixels,
                valid_m,
            )
        };
    }

    /// Runs the packed panels `blocks` of `weights` (packed over `taps` taps) on one tile whose
    /// indirection `table` is filled, writing output pixel `out_pixels[m]` for each of the
    /// `valid_m` rows.
    ///
    /// # Safety
    /// As [`PackedConv::run_views`]; `table` points at readable input pixels or `zeros`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn run_blocks(
        &self,
        dst: &Dst,
        res: Option<&Src>,
        table: &[*const f32],
        taps: usize,
        weights: &[f32],
        blocks: std::ops::Range<usize>,
        out_pixels: &[usize; MAX_MR],
        valid_m: usize,
    ) {
        let s = &self.spec;
        let nr = self.isa.nr();
        let (cin_g, cout_g) = (s.in_channels / s.groups, s.out_channels / s.groups);
        let blocks_g = cout_g.div_ceil(nr);
        let mut out = [std::ptr::null_mut::<f32>(); MAX_MR];
        let mut residual = [std::ptr::null::<f32>(); MAX_MR];
        let k = taps * cin_g;
        for blk in blocks {
            // Panel `blk` is panel `lb` of group `g`: output channels from `col0`, reading the
            // group's input channels from `g · cin_g`.
            let (g, lb) = (blk / blocks_g, blk % blocks_g);
            let col0 = g * cout_g + lb * nr;
            for m in 0..valid_m {
                // SAFETY: pixel `p0 + m` and channel `col0` are inside the output / residual
                // views.
                unsafe {
                    out[m] = dst.ptr.add(out_pixels[m] * dst.stride + col0);
                    if let Some(r) = res {
                        residual[m] = r.ptr.add(out_pixels[m] * r.stride + col0);
                    }
                }
            }
            let tile = Tile {
                a: table,
                taps,
                cin: cin_g,
                // SAFETY: block `blk` is inside the packed weights and bias.
                b: unsafe { weights.as_ptr().add(blk * k * nr) },
                ldb: nr,
                a_offset: g * cin_g,
                bias: unsafe { self.bias.as_ptr().add(blk * nr) },
                out: &out,
                res: res.map(|_| &residual),
                valid_m,
                valid_n: nr.min(cout_g - lb * nr),
                relu: self.activation == Activation::Relu,
            };
            // SAFETY: the tile satisfies the kernel contract; the ISA was checked in `new`.
            unsafe { run_kernel(self.isa, &tile) };
            let valid_n = tile.valid_n;
            if self.activation.needs_pass() {
                for &o in &out[..valid_m] {
                    // SAFETY: as for the kernel's own stores.
                    let row = unsafe { std::slice::from_raw_parts_mut(o, valid_n) };
                    activate_slice(self.isa, self.activation, row);
                }
            }
        }
    }
}
