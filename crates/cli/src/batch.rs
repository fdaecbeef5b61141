//! `colorize batch`: one shard of a job over object storage (colorize-batch), and `--summary`,
//! which merges the shards' reports.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, ValueEnum};
use colorize_batch::{BatchConfig, FormatChoice, Location, Shard, retry_config};
use colorize_core::OutputFormat;
use colorize_core::io::DecodeLimits;
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::{EXIT_PARTIAL, ModelArgs};

/// Test hook (not a user setting): abort the process, as a kill would, once this many images
/// were written (the shard-resume tests).
const ABORT_AFTER_VARIABLE: &str = "COLORIZE_BATCH_ABORT_AFTER";

/// `--format` values of `colorize batch`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchFormat {
    /// Each input's own format (an extension colorize cannot write gets `.png` added).
    Same,
    /// JPEG, quality 95.
    #[value(alias = "jpg")]
    Jpeg,
    /// PNG (16-bit when the input is).
    Png,
    /// Lossless WebP.
    Webp,
    /// TIFF (16-bit when the input is).
    Tiff,
}

impl From<BatchFormat> for FormatChoice {
    fn from(f: BatchFormat) -> Self {
        match f {
            BatchFormat::Same => Self::Same,
            BatchFormat::Jpeg => Self::Fixed(OutputFormat::Jpeg),
            BatchFormat::Png => Self::Fixed(OutputFormat::Png),
            BatchFormat::Webp => Self::Fixed(OutputFormat::WebP),
            BatchFormat::Tiff => Self::Fixed(OutputFormat::Tiff),
        }
    }
}

/// `colorize batch`.
#[derive(Args, Debug)]
pub struct BatchArgs {
    /// Inputs: every image under this prefix (s3://bucket/prefix, gs://..., az://..., file://...
    /// or a folder). Credentials and endpoints come from the standard environment variables
    /// (AWS_*, GOOGLE_*, AZURE_*).
    #[arg(long, value_name = "URL", required_unless_present = "summary")]
    pub input: Option<String>,
    /// Where outputs go, each at its input's key relative to --input (the extension changed by
    /// --format); shard reports go under `_colorize/reports/` there. Must not overlap --input.
    #[arg(long, value_name = "URL")]
    pub output: String,
    /// Colourise the keys this file names (one per line, relative to --input; `#` comments)
    /// instead of listing --input. A key that does not exist fails on its own.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// This worker's shard, 0..count (default: $JOB_COMPLETION_INDEX (Kubernetes Indexed Job),
    /// else $AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job), else 0).
    #[arg(long, value_name = "I")]
    pub shard_index: Option<u64>,
    /// How many shards the job has (default: $COLORIZE_SHARD_COUNT, else 1). Keys are shared out
    /// by FNV-1a 64 of the key modulo the count.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = BatchFormat::Same)]
    pub format: BatchFormat,
    /// Merge the shard reports under --output, print the totals, and exit 1 if an image failed or
    /// a shard is missing or unfinished.
    #[arg(long)]
    pub summary: bool,
    /// With --summary: print the merged summary as JSON.
    #[arg(long, requires = "summary")]
    pub json: bool,
    /// A progress line (and a report update) every N images.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_every: u64,
    /// Download threads, upload threads and the depth of the queues between the stages (photos
    /// in memory: about 3 x N + 2).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `colorize batch` (or `colorize batch --summary`).
pub fn batch(args: BatchArgs) -> anyhow::Result<ExitCode> {
    if args.summary {
        return summary(&args);
    }
    let Some(input_url) = &args.input else {
        bail!("--input is required");
    };
    // Refuse a bad shard before loading anything.
    let shard = Shard::resolve(args.shard_index, args.shard_count, |n| {
        std::env::var(n).ok()
    })?;
    let input = Location::open(input_url, retry_config(), false)?;
    // Checked before the output is opened: a local output folder is created only once it passed.
    if input.overlaps_url(&args.output)? {
        return Err(colorize_batch::BatchError::Overlap {
            input: input.url.clone(),
            output: args.output.clone(),
        }
        .into());
    }
    let output = Location::open(&args.output, retry_config(), true)?;
    let manifest = match &args.manifest {
        Some(file) => Some(colorize_batch::listing::read_manifest(file, &input)?),
        None => None,
    };
    let colorizer = args.model.load()?;
    let abort_after = std::env::var(ABORT_AFTER_VARIABLE)
        .ok()
        .and_then(|v| v.parse().ok());
    let config = BatchConfig {
        input,
        output,
        manifest,
        shard,
        format: args.format.into(),
        limits: DecodeLimits {
            max_pixels: args.model.max_pixels,
        },
        concurrency: usize::from(args.concurrency),
        report_every: args.progress_every as usize,
        report_interval: Duration::from_secs(30),
        model: args
            .model
            .model
            .as_ref()
            .map_or_else(|| "stable".to_string(), |m| m.display().to_string()),
        render_size: colorizer.render_size(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        abort_after,
    };
    let every = args.progress_every;
    let bar_style = ProgressStyle::with_template("[{bar:30}] {pos}/{len} {wide_msg} ({eta})")
        .expect("valid template")
        .progress_chars("=> ");
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<ProgressBar> = None;
    let report = colorize_batch::run(
        &config,
        |image, depth| {
            colorizer
                .colorize_to(image, &[], depth)
                .map_err(|e| e.to_string())
        },
        |p, failure| {
            let bar = bar.get_or_insert_with(|| {
                if terminal {
                    ProgressBar::new(p.total).with_style(bar_style.clone())
                } else {
                    ProgressBar::hidden()
                }
            });
            if let Some(f) = failure {
                bar.suspend(|| eprintln!("error: {}: {}", f.key, f.reason));
            }
            bar.set_position(p.handled());
            bar.set_message(format!(
                "done {}, skipped {}, failed {}",
                p.done, p.skipped, p.failed
            ));
            if !terminal && (p.handled().is_multiple_of(every) || p.handled() == p.total) {
                let rate = p.done as f64 / p.elapsed_seconds.max(1e-9);
                let left = p.total - p.handled();
                eprintln!(
                    "shard {shard}: {}/{} images (done {}, skipped {}, failed {}), {rate:.2} images/s{}",
                    p.handled(),
                    p.total,
                    p.done,
                    p.skipped,
                    p.failed,
                    if rate > 0.0 && left > 0 {
                        format!(", about {:.0} s left", left as f64 / rate)
                    } else {
                        String::new()
                    }
                );
            }
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "shard {shard}: {} images: colourised {}, skipped {} (already there), failed {} in {:.1} s ({:.2} images/s); report: {}/{}",
        report.shard_images,
        report.done,
        report.skipped,
        report.failed,
        report.elapsed_seconds,
        report.images_per_second,
        config.output.url.trim_end_matches('/'),
        config
            .output
            .relative(&colorize_batch::report_path(&config.output, shard))
            .unwrap_or_default()
    );
    Ok(if report.failed > 0 {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

fn summary(args: &BatchArgs) -> anyhow::Result<ExitCode> {
    let output = Location::open(&args.output, retry_config(), false)?;
    let rt = colorize_batch::pipeline::runtime()?;
    let s = rt.block_on(colorize_batch::summarize(&output, args.shard_count))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "{}: {} of {} shard reports; {} input images: {} colourised, {} skipped (already there), {} failed; {:.2} images/s over the shards",
            args.output,
            s.reports,
            s.shard_count,
            s.input_images,
            s.done,
            s.skipped,
            s.failed,
            s.images_per_second
        );
        for (shard, f) in &s.failures {
            println!("failed (shard {shard}): {}: {}", f.key, f.reason);
        }
        if !s.missing.is_empty() {
            println!("missing shards (no report): {}", list(&s.missing));
        }
        if !s.unfinished.is_empty() {
            println!(
                "unfinished shards (killed or still running): {}",
                list(&s.unfinished)
            );
        }
        if !s.other_counts.is_empty() {
            println!(
                "also found reports of jobs with {} shards (not merged; --shard-count picks one)",
                list(&s.other_counts)
            );
        }
    }
    Ok(if s.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}

fn list(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}
