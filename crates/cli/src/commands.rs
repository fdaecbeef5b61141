//! The subcommands: flags, device choice, progress bars and exit codes around the library calls.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use burn::prelude::Device;
use clap::{Args, ValueEnum};
use colorize_core::OutputFormat;
use colorize_core::files::find_images;
use colorize_core::io::{DecodeLimits, decode_image, encode_image_atomic};
use colorize_models::device::DeviceChoice;
use colorize_models::eval::evaluate_files;
use colorize_models::{Colorizer, EngineKind, Isa, LoadOptions, ModelSource};
use indicatif::{ProgressBar, ProgressStyle};

use crate::inputs::expand;

/// Exit code: some inputs failed, the others were done.
pub const EXIT_PARTIAL: u8 = 1;
/// Exit code: nothing could be done.
pub const EXIT_FATAL: u8 = 3;

/// The models compiled into the binary, by name, each from its folder under `models/` (see its
/// MODEL_CARD.md): `(name, config.json, model.safetensors)`. The first is the default.
pub(crate) const BUNDLED: &[(&str, &[u8], &[u8])] = &[
    (
        "stable",
        include_bytes!("../../../models/stable/config.json"),
        include_bytes!("../../../models/stable/model.safetensors"),
    ),
    (
        "artistic",
        include_bytes!("../../../models/artistic/config.json"),
        include_bytes!("../../../models/artistic/model.safetensors"),
    ),
];

/// The name that stands for the first bundled model.
pub(crate) const DEFAULT_NAME: &str = "default";

/// `--device` values (see [`colorize_models::device`], where the backend is chosen).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceArg {
    /// The CPU: colorize's engine for inference, burn's CPU backend for training.
    #[default]
    Cpu,
    /// The GPU through Vulkan (burn's wgpu runtime); needs a build with `--features gpu`.
    Gpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Cpu => DeviceChoice::Cpu,
            DeviceArg::Gpu => DeviceChoice::Gpu,
        }
    }
}

/// The device `--device` names, set up (a GPU is set up once per process). A software Vulkan
/// driver is named on stderr, since it is slower than the CPU.
///
/// # Errors
/// When the binary has no GPU support or no Vulkan GPU is found (one line naming the cause).
pub fn select_device(choice: DeviceArg) -> anyhow::Result<Device> {
    let selected = colorize_models::device::select_device(choice.into())?;
    if selected.software {
        eprintln!(
            "note: {} is a software Vulkan driver: correct, but slower than --device cpu",
            selected.description
        );
    }
    Ok(selected.device)
}

/// The forward pass for `--engine` (when given) on `device`: the native engine on the CPU, burn's
/// forward on the GPU (the native engine runs on the CPU only).
///
/// # Errors
/// `--engine native` (or `all` outside `colorize bench`) with `--device gpu`.
pub fn engine_for(engine: Option<EngineArg>, device: DeviceArg) -> anyhow::Result<EngineArg> {
    match (engine, device) {
        (None, DeviceArg::Cpu) => Ok(EngineArg::Native),
        (None, DeviceArg::Gpu) => Ok(EngineArg::Burn),
        (Some(EngineArg::Native), DeviceArg::Gpu) => bail!(
            "--engine native runs on the CPU; with --device gpu the forward pass is burn's (--engine burn)"
        ),
        (Some(e), _) => Ok(e),
    }
}

/// Flags shared by the commands that run a model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model directory (config.json + model.safetensors) or the name of a bundled model:
    /// `stable` (the default) or `artistic` (more colourful; see models/*/MODEL_CARD.md).
    #[arg(long, value_name = "DIR|NAME")]
    pub model: Option<PathBuf>,
    /// Shorter side, in pixels, at which the network sees the photo (rounded to a multiple of 32);
    /// default: the model's own (160 for the bundled model). Larger is slower, not always better.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub render_size: Option<u32>,
    /// DeOldify's render factor: the render size in units of 16 pixels (35 = 560, DeOldify's
    /// default for photos; 21 = 336, for video).
    #[arg(long, value_name = "N", conflicts_with = "render_size", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub render_factor: Option<u32>,
    /// Colour strength: the factor on the predicted chroma (1 = as trained, 0 = gray, above 1 more
    /// vivid); default: the model's own.
    #[arg(long, value_name = "X")]
    pub saturation: Option<f32>,
    /// Worker threads (default: all cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Refuse images with more pixels than this (decompression-bomb guard).
    #[arg(long, value_name = "PIXELS", default_value_t = DecodeLimits::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Forward pass: `native` (colorize's own engine; the default on the CPU) or `burn` (the
    /// training framework's: on the CPU several times slower, kept for comparison; the one that
    /// runs on the GPU). `colorize bench` also takes `all` (both, side by side).
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Where the network runs: `cpu` or `gpu` (Vulkan; a build with `--features gpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Kernel family of the native engine; default: the best this CPU runs.
    #[arg(long, value_enum)]
    pub isa: Option<IsaArg>,
}

/// `--engine` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineArg {
    /// colorize's inference engine (folded batch norm, fused epilogues, SIMD kernels).
    Native,
    /// burn's forward pass.
    Burn,
    /// Both, side by side (`colorize bench` only).
    All,
}

impl EngineArg {
    /// The engines this value stands for.
    pub fn kinds(self) -> Vec<EngineKind> {
        match self {
            Self::Native => vec![EngineKind::Native],
            Self::Burn => vec![EngineKind::Burn],
            Self::All => vec![EngineKind::Native, EngineKind::Burn],
        }
    }
}

/// `--isa` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsaArg {
    /// AVX-512F (x86-64).
    Avx512,
    /// AVX2 + FMA (x86-64).
    Avx2,
    /// Plain Rust (SSE2 on x86-64, NEON on aarch64).
    Portable,
}

impl From<IsaArg> for Isa {
    fn from(i: IsaArg) -> Self {
        match i {
            IsaArg::Avx512 => Isa::Avx512,
            IsaArg::Avx2 => Isa::Avx2,
            IsaArg::Portable => Isa::Portable,
        }
    }
}

/// The bundled model called `name` (`default` is the first of [`BUNDLED`], under that name), or
/// `None`.
pub fn bundled_model(name: &str) -> Option<ModelSource> {
    let (_, config, weights) = if name == DEFAULT_NAME {
        BUNDLED.first()?
    } else {
        BUNDLED.iter().find(|(n, _, _)| *n == name)?
    };
    Some(ModelSource::Bytes {
        name: name.into(),
        config_json: Arc::from(*config),
        weights: Arc::from(*weights),
    })
}

/// The model `--model VALUE` names: a model folder when one is there, otherwise a bundled model
/// by name (`stable`, `artistic`, `default`).
///
/// # Errors
/// When VALUE is neither a folder nor a bundled model's name (the message lists the names).
pub fn model_source(value: &Path) -> anyhow::Result<ModelSource> {
    if !value.exists() {
        if let Some(source) = value.to_str().and_then(bundled_model) {
            return Ok(source);
        }
        let names: Vec<&str> = BUNDLED.iter().map(|(n, _, _)| *n).collect();
        bail!(
            "no model folder {} (the bundled models are {} and {DEFAULT_NAME})",
            value.display(),
            names.join(", ")
        );
    }
    Ok(ModelSource::dir(value)?)
}

impl EngineArg {
    /// The one engine this value names.
    ///
    /// # Errors
    /// For `all`, which only `colorize bench` takes.
    pub fn single(self) -> anyhow::Result<EngineKind> {
        match self {
            EngineArg::Native => Ok(EngineKind::Native),
            EngineArg::Burn => Ok(EngineKind::Burn),
            EngineArg::All => bail!("--engine all is only for `colorize bench`"),
        }
    }
}

impl ModelArgs {
    /// Sets up the thread pool and loads the model with the chosen engine.
    pub fn load(&self) -> anyhow::Result<Colorizer> {
        self.load_with(self.engine()?.single()?)
    }

    /// The forward pass(es) `--engine` and `--device` ask for.
    ///
    /// # Errors
    /// As [`engine_for`].
    pub fn engine(&self) -> anyhow::Result<EngineArg> {
        engine_for(self.engine, self.device)
    }

    /// Sets up the thread pool and loads the model (native engine, whatever `--engine` says).
    pub fn load_any(&self) -> anyhow::Result<Colorizer> {
        self.load_with(EngineKind::Native)
    }

    fn load_with(&self, engine: EngineKind) -> anyhow::Result<Colorizer> {
        set_threads(self.threads)?;
        if let Some(s) = self.saturation
            && !(s.is_finite() && (0.0..=10.0).contains(&s))
        {
            bail!("--saturation must be between 0 and 10, not {s}");
        }
        let options = LoadOptions {
            engine,
            isa: self.isa.map(Into::into),
            render_size: self.render_size.or(self.render_factor.map(|f| f * 16)),
            saturation: self.saturation,
        };
        let source = match &self.model {
            Some(value) => model_source(value)?,
            None => bundled_model(DEFAULT_NAME).expect("a bundled model"),
        };
        source
            .load(&select_device(self.device)?, &options)
            .with_context(|| match &self.model {
                Some(dir) => format!("cannot load model {}", dir.display()),
                None => "cannot load the bundled model".to_string(),
            })
    }

    fn limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
        }
    }
}

/// Sizes rayon's global pool, which burn's CPU backend and our pixel loops share (one pool, no
/// oversubscription).
pub fn set_threads(threads: Option<u16>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n as usize)
            .build_global()
            .context("cannot set up the thread pool")?;
    }
    Ok(())
}

pub(crate) fn progress_bar(len: usize, show: bool) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("[{bar:30}] {pos}/{len} {wide_msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b
}

/// Output format names for `--format`.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    /// JPEG, quality 95.
    Jpg,
    /// PNG (16-bit when the input is).
    Png,
    /// Lossless WebP.
    Webp,
    /// TIFF (16-bit when the input is).
    Tiff,
    /// BMP.
    Bmp,
    /// GIF.
    Gif,
}

impl From<FormatArg> for OutputFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Jpg => Self::Jpeg,
            FormatArg::Png => Self::Png,
            FormatArg::Webp => Self::WebP,
            FormatArg::Tiff => Self::Tiff,
            FormatArg::Bmp => Self::Bmp,
            FormatArg::Gif => Self::Gif,
        }
    }
}

/// `colorize image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// Photos: files, folders (searched recursively) or glob patterns such as 'scans/*.png'.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created if needed). Outputs keep each input's name (and sub-folder).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Output format for every file (default: each input's own extension).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Replace outputs that already exist (inputs are never replaced).
    #[arg(long)]
    pub overwrite: bool,
    /// User colour hints for models that take them (siggraph17): a JSON file with a list of
    /// `{"x": 120, "y": 80, "color": "#b03a2e", "radius": 4}` (pixels of the photo; radius
    /// optional). The same hints apply to every input.
    #[arg(long, value_name = "FILE.json")]
    pub hints: Option<PathBuf>,
    /// Print a line per photo (size, seconds) and, at the end, the process's peak resident
    /// memory (VmHWM from /proc/self/status; Linux only).
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Exit code: stopped by Ctrl+C (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs `colorize image`. Ctrl+C stops it at once with [`EXIT_INTERRUPTED`]: outputs already
/// written are complete, the one being written is removed with its temporary file.
///
/// Memory: one photo at a time, never more than the decoded photo, the output pixels (3 bytes per
/// pixel, 6 for 16-bit PNG/TIFF) and a few bands of rows (see
/// [`colorize_models::Colorizer::colorize_to`]); the encoder writes straight into the output's
/// temporary file. docs/PERFORMANCE.md gives the measured peaks.
pub fn image(args: ImageArgs) -> anyhow::Result<ExitCode> {
    // Without this, SIGINT would kill the process between creating an output's temporary file and
    // renaming it, leaving `.colorize-*.tmp` behind.
    ctrlc::set_handler(|| {
        let removed = colorize_core::io::abandon_writes();
        eprintln!(
            "interrupted: outputs written so far are complete{}",
            if removed > 0 {
                "; the one in progress was removed"
            } else {
                ""
            }
        );
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    })
    .context("cannot install the Ctrl+C handler")?;
    let (jobs, bad) = expand(&args.inputs, &args.out, args.format.map(Into::into));
    for b in &bad {
        eprintln!("error: {}: {}", b.input.display(), b.message);
    }
    if jobs.is_empty() {
        bail!("no images to colourise");
    }
    let hints = match &args.hints {
        Some(file) => {
            let bytes = std::fs::read(file)
                .with_context(|| format!("{}: cannot read the hints", file.display()))?;
            colorize_models::parse_hints(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        }
        None => Vec::new(),
    };
    let colorizer = args.model.load()?;
    if !hints.is_empty() && !colorizer.takes_hints() {
        bail!(
            "{}: this model does not take colour hints (only user-guided networks such as siggraph17 do)",
            args.hints
                .as_deref()
                .unwrap_or(Path::new("--hints"))
                .display()
        );
    }
    let limits = args.model.limits();
    let bar = progress_bar(jobs.len(), jobs.len() > 1);
    let mut failed = bad.len();
    let mut done = 0usize;
    let started = Instant::now();
    for job in &jobs {
        bar.set_message(job.input.display().to_string());
        let result = (|| -> anyhow::Result<()> {
            if !args.overwrite && job.output.exists() {
                bail!(
                    "{}: output already exists (pass --overwrite to replace it)",
                    job.output.display()
                );
            }
            let t = Instant::now();
            let decoded = decode_image(&job.input, &limits)?;
            let depth = job.format.sample_depth(decoded.is_high_bit_depth());
            let (w, h) = (decoded.image.width(), decoded.image.height());
            let pixels = colorizer
                .colorize_to(&decoded.image, &hints, depth)
                .with_context(|| job.input.display().to_string())?;
            // The output keeps its own copy of the full-resolution L: the photo can go.
            drop(decoded);
            if let Some(dir) = job.output.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("{}: cannot create folder", dir.display()))?;
            }
            encode_image_atomic(&pixels, &job.output, job.format, args.overwrite)?;
            if args.verbose {
                bar.suspend(|| {
                    eprintln!(
                        "{}: {w}x{h} ({:.1} megapixels) in {:.1} s",
                        job.output.display(),
                        w as f64 * h as f64 / 1e6,
                        t.elapsed().as_secs_f64()
                    )
                });
            }
            Ok(())
        })();
        match result {
            Ok(()) => done += 1,
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("error: {e:#}"));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if args.verbose {
        match crate::bench::peak_rss_mib() {
            Some(mib) => eprintln!("peak resident memory: {mib:.1} MiB (VmHWM)"),
            None => eprintln!("peak resident memory: unknown (no /proc/self/status)"),
        }
    }
    eprintln!(
        "colourised {done} of {} images into {} in {:.1} s{}",
        jobs.len() + bad.len(),
        args.out.display(),
        started.elapsed().as_secs_f64(),
        if failed > 0 {
            format!("; {failed} failed")
        } else {
            String::new()
        }
    );
    Ok(if failed > 0 {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// `colorize eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder of colour photos with ground truth (searched recursively).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `colorize eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let files = find_images(&args.data)?;
    let colorizer = args.model.load()?;
    let bar = progress_bar(files.len(), true);
    let started = Instant::now();
    let report = evaluate_files(&colorizer, &files, &args.model.limits(), |_| bar.inc(1))?;
    bar.finish_and_clear();
    for (p, e) in &report.failed {
        eprintln!("error: {}: {e}", p.display());
    }
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["data"] = serde_json::Value::String(args.data.display().to_string());
        v["render_size"] = colorizer.render_size().into();
        v["saturation"] = colorizer.saturation().into();
        v["seconds"] = started.elapsed().as_secs_f64().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} images, render size {}, saturation {}",
            args.data.display(),
            report.images,
            colorizer.render_size(),
            colorizer.saturation()
        );
        println!(
            "{:<14} {:>9} {:>8} {:>15}",
            "", "PSNR (dB)", "SSIM", "colourfulness"
        );
        println!(
            "{:<14} {:>9.2} {:>8.4} {:>15.1}",
            "model", report.model.psnr, report.model.ssim, report.model.colourfulness
        );
        println!(
            "{:<14} {:>9.2} {:>8.4} {:>15.1}",
            "gray input", report.gray.psnr, report.gray.ssim, report.gray.colourfulness
        );
        println!(
            "{:<14} {:>9} {:>8} {:>15.1}",
            "ground truth", "", "", report.ground_truth_colourfulness
        );
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}
