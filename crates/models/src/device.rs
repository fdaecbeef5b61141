//! The compute device: the one place where colorize chooses burn's backend, for the CLI, the
//! server, the trainer and the tests.
//!
//! - [`DeviceChoice::Cpu`]: burn's pure-Rust CPU backend (Flex). Inference on the CPU runs
//!   colorize's own engine by default; this device serves burn's forward pass and training.
//! - [`DeviceChoice::Gpu`]: burn's wgpu runtime pinned to **Vulkan** (Metal on macOS), with
//!   kernel fusion, compiled in only with the `gpu` cargo feature. CubeCL writes the kernels in
//!   WGSL, which wgpu translates for the driver; `gpu-autotune` adds autotuned kernels and
//!   `gpu-spirv` has CubeCL emit SPIR-V itself (faster on NVIDIA and AMD; Mesa's lavapipe crashes
//!   compiling those kernels, and autotuning is too slow on it, so CI tests `gpu`). Any Vulkan driver serves: NVIDIA's, AMD's and Intel's (Mesa
//!   RADV and ANV), or Mesa's software driver lavapipe (correct but slower than the CPU engine;
//!   what CI tests with).
//!
//! There is no CUDA device: burn's `cuda` feature builds `cubecl-cuda`, whose build script
//! downloads LLVM, so it cannot be built without network access to that host (see the README).

use std::fmt;
use std::sync::OnceLock;

use burn::prelude::Device;

/// Which device a command runs on (`--device cpu|gpu`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// burn's CPU backend (Flex), and colorize's engine for inference.
    #[default]
    Cpu,
    /// The first GPU Vulkan offers (a discrete GPU before an integrated one, a hardware driver
    /// before a software one); needs the `gpu` cargo feature.
    Gpu,
}

impl DeviceChoice {
    /// `cpu` or `gpu`, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu => "gpu",
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a device cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeviceError {
    /// This binary was built without the `gpu` feature.
    #[error(
        "this colorize was built without GPU support: rebuild it with `cargo build --release --features gpu` \
         (needs a Vulkan driver at run time; see the README)"
    )]
    NotBuilt,
    /// No Vulkan loader, no Vulkan driver, or a driver that refused to create a device (Metal on
    /// macOS). `reason` is wgpu's own.
    #[error(
        "no GPU found through {api} ({reason}); install the Vulkan loader and your GPU's Vulkan \
         driver (Debian/Ubuntu: libvulkan1 plus mesa-vulkan-drivers or NVIDIA's driver), or use --device cpu"
    )]
    NoGpu {
        /// The graphics API asked: `Vulkan`, or `Metal` on macOS.
        api: &'static str,
        /// Why wgpu found none.
        reason: String,
    },
}

/// A device and what it is, for logs and benchmark tables.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// burn's device handle.
    pub device: Device,
    /// What was chosen.
    pub choice: DeviceChoice,
    /// A human description: `"CPU (burn Flex)"` or the adapter, e.g.
    /// `"NVIDIA H200 (Vulkan, DiscreteGpu, driver 570.x)"`.
    pub description: String,
    /// True for a software Vulkan driver (lavapipe, SwiftShader): correct, but slower than the
    /// CPU engine; fine for tests, not for work.
    pub software: bool,
}

/// Returns the device for `choice`.
///
/// The GPU is set up once per process (burn's wgpu runtime can be initialised only once) and the
/// same device is returned on every later call, as is the same error.
///
/// # Errors
/// [`DeviceError::NotBuilt`] for [`DeviceChoice::Gpu`] in a build without the `gpu` feature;
/// [`DeviceError::NoGpu`] when no Vulkan (macOS: Metal) adapter can be set up.
pub fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(SelectedDevice {
            device: Device::flex(),
            choice,
            description: "CPU (burn Flex)".into(),
            software: false,
        }),
        DeviceChoice::Gpu => {
            static GPU: OnceLock<Result<SelectedDevice, DeviceError>> = OnceLock::new();
            GPU.get_or_init(init_gpu).clone()
        }
    }
}

/// The GPU for test suites: `None` (the test is skipped, with the reason on stderr) when no GPU
/// is found and the `CI` environment variable is unset.
///
/// # Panics
/// With `CI` set, when no GPU is found: CI must run the GPU tests, not skip them. Also for
/// [`DeviceError::NotBuilt`], since GPU tests are compiled only with the `gpu` feature.
pub fn gpu_for_tests() -> Option<Device> {
    match select_device(DeviceChoice::Gpu) {
        Ok(d) => {
            eprintln!("GPU: {}", d.description);
            Some(d.device)
        }
        Err(e @ DeviceError::NoGpu { .. }) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped (CI not set): {e}");
            None
        }
        Err(e) => panic!("the GPU tests need a Vulkan driver (CI: mesa-vulkan-drivers): {e}"),
    }
}

#[cfg(not(feature = "gpu"))]
fn init_gpu() -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::NotBuilt)
}

#[cfg(feature = "gpu")]
fn init_gpu() -> Result<SelectedDevice, DeviceError> {
    use burn::tensor::wgpu::WgpuBackend;
    // wgpu reports a missing loader or driver as an error, but a broken driver can panic inside
    // it; either way the user gets one line, not a backtrace.
    // Pinned, so that a machine without a GPU driver fails clearly instead of settling on a
    // software OpenGL rasteriser.
    let (api, api_name) = if cfg!(target_os = "macos") {
        (WgpuBackend::Metal, "Metal")
    } else {
        (WgpuBackend::Vulkan, "Vulkan")
    };
    let init =
        std::panic::catch_unwind(|| Device::wgpu_options().graphics_api(api).init_with_setup());
    let (device, setup) = match init {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Err(DeviceError::NoGpu {
                api: api_name,
                reason: one_line(&e.to_string()),
            });
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the Vulkan driver panicked".into());
            return Err(DeviceError::NoGpu {
                api: api_name,
                reason: one_line(&why),
            });
        }
    };
    let info = setup.adapter.get_info();
    let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
    let driver = [info.driver.as_str(), info.driver_info.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    Ok(SelectedDevice {
        device,
        choice: DeviceChoice::Gpu,
        description: format!(
            "{} ({:?}, {:?}{})",
            info.name,
            info.backend,
            info.device_type,
            if driver.is_empty() {
                String::new()
            } else {
                format!(", {driver}")
            }
        ),
        software,
    })
}

/// The first line of `s`, without trailing punctuation.
#[cfg(feature = "gpu")]
fn one_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.')
        .to_string()
}
