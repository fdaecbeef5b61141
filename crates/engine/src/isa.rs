//! Instruction sets the convolution kernels are written for, detected at run time.
//!
//! The release binary is built for baseline x86-64 (or aarch64); the AVX-512 and AVX2+FMA kernels
//! are compiled with `#[target_feature]` and chosen only when the running CPU reports the feature
//! (`is_x86_feature_detected!`), so one binary runs everywhere and uses what it finds.

use std::fmt;

/// A kernel family. Every family computes the same convolution; they differ in vector width and
/// register tile (`mr` output pixels x `nr` output channels per micro-kernel call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// 512-bit vectors (x86-64 `avx512f`): tile 12 pixels x 32 channels, 24 accumulators of the
    /// 32 zmm registers.
    Avx512,
    /// 256-bit vectors with fused multiply-add (x86-64 `avx2` + `fma`): tile 6 x 16, 12 accumulators
    /// of the 16 ymm registers (the classic BLIS shape for Haswell-class cores).
    Avx2,
    /// Plain Rust over `[f32; 4]` lanes, which LLVM turns into SSE2 on x86-64 and NEON on aarch64:
    /// tile 4 x 8.
    Portable,
}

impl Isa {
    /// Every family, best first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Portable];

    /// The best family this CPU runs.
    pub fn detect() -> Isa {
        Self::ALL
            .into_iter()
            .find(|isa| isa.is_available())
            .unwrap_or(Isa::Portable)
    }

    /// Whether this CPU can run the family.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Output pixels per micro-kernel call (rows of the register tile).
    pub fn mr(self) -> usize {
        match self {
            Isa::Avx512 => 12,
            Isa::Avx2 => 6,
            Isa::Portable => 4,
        }
    }

    /// Output channels per micro-kernel call (two vectors); packed weights are padded to a
    /// multiple of this.
    pub fn nr(self) -> usize {
        match self {
            Isa::Avx512 => 32,
            Isa::Avx2 => 16,
            Isa::Portable => 8,
        }
    }

    /// The name used on the command line and in benchmarks (`avx512`, `avx2`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
