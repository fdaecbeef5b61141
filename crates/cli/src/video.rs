//! `colorize video` and `colorize eval-video`: flags, Ctrl+C, progress bar and report around
//! `colorize_video`'s library calls.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use colorize_video::ffmpeg::check_tool;
use colorize_video::{
    EncodeOptions, TemporalOptions, VideoError, VideoOptions, colorize_video, evaluate_video, probe,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::commands::{EXIT_FATAL, ModelArgs};

/// `--temporal` values.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalArg {
    /// Carry colour along the optical flow within each scene (the default).
    Flow,
    /// Colourise every frame on its own (the baseline).
    Off,
}

/// Flags of the temporal step, shared by `video` and `eval-video`.
#[derive(Args, Debug, Clone)]
pub struct TemporalArgs {
    /// Weight of the colour carried from the previous frame along the motion, 0 to 0.95 (higher:
    /// steadier colour, slower to follow the network).
    #[arg(long, value_name = "X", default_value_t = 0.75)]
    pub strength: f32,
    /// Scene-cut threshold (FFmpeg scdet's score, 0-100): colour is reset at each cut.
    #[arg(long, value_name = "T", default_value_t = 10.0)]
    pub scene_threshold: f64,
}

impl TemporalArgs {
    fn options(&self, keyframe_interval: usize) -> anyhow::Result<TemporalOptions> {
        if !(self.strength.is_finite() && (0.0..=0.95).contains(&self.strength)) {
            bail!(
                "--strength must be between 0 and 0.95, not {}",
                self.strength
            );
        }
        if !(self.scene_threshold.is_finite() && (0.0..=100.0).contains(&self.scene_threshold)) {
            bail!(
                "--scene-threshold must be between 0 and 100, not {}",
                self.scene_threshold
            );
        }
        Ok(TemporalOptions {
            strength: self.strength,
            scene_threshold: self.scene_threshold,
            keyframe_interval,
            ..TemporalOptions::default()
        })
    }
}

/// `colorize video`.
#[derive(Args, Debug)]
pub struct VideoArgs {
    /// The black-and-white video (any format FFmpeg reads).
    pub input: PathBuf,
    /// Output video: H.264 in MP4 (.mp4), Matroska (.mkv) or QuickTime (.mov).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Temporal consistency: `flow` carries colour along the motion, `off` colourises frame by
    /// frame.
    #[arg(long, value_enum, default_value_t = TemporalArg::Flow)]
    pub temporal: TemporalArg,
    #[command(flatten)]
    pub temporal_args: TemporalArgs,
    /// Run the network on every K-th frame only and carry colour along the motion between
    /// (faster; 1 = every frame).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub keyframe_interval: u16,
    /// H.264 quality: libx264's CRF, 0-51 (lower is better and larger).
    #[arg(long, value_name = "N", default_value_t = 18, value_parser = clap::value_parser!(u8).range(0..=51))]
    pub crf: u8,
    /// libx264's preset (ultrafast, superfast, veryfast, faster, fast, medium, slow, slower,
    /// veryslow).
    #[arg(long, value_name = "NAME", default_value = "medium")]
    pub preset: String,
    /// Frames per network call.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub batch: u16,
    /// Replace the output if it exists.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

const PRESETS: [&str; 9] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
];

/// A flag set by the first Ctrl+C; a second one exits at once.
fn stop_flag() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    stop
}

fn bar(total: Option<u64>, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    b.set_style(
        ProgressStyle::with_template(
            "[{bar:30}] {pos}/{len} frames, {per_sec}, {elapsed} elapsed, {eta} left",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}

fn check_ffmpeg() -> Result<(), VideoError> {
    check_tool("ffmpeg")?;
    check_tool("ffprobe")
}

/// Runs `colorize video`.
pub fn video(args: VideoArgs) -> anyhow::Result<ExitCode> {
    if !PRESETS.contains(&args.preset.as_str()) {
        bail!(
            "--preset {}: not a libx264 preset (one of {})",
            args.preset,
            PRESETS.join(", ")
        );
    }
    let temporal = match args.temporal {
        TemporalArg::Flow => Some(
            args.temporal_args
                .options(args.keyframe_interval as usize)?,
        ),
        TemporalArg::Off => None,
    };
    let options = VideoOptions {
        temporal,
        encode: EncodeOptions {
            crf: args.crf,
            preset: args.preset.clone(),
        },
        batch: args.batch as usize,
        overwrite: args.overwrite,
    };
    check_ffmpeg()?;
    // Probe before loading the model, so a bad input fails fast.
    let info = probe(&args.input)?;
    let colorizer = args.model.load()?;
    let stop = stop_flag();
    let progress = bar(info.frame_estimate(), args.quiet);
    let started = Instant::now();
    let report = colorize_video(
        &colorizer,
        &args.input,
        &args.out,
        &options,
        &stop,
        &mut |n| progress.set_position(n),
    );
    progress.finish_and_clear();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} frames ({}x{}, {} fps) in {:.1} s ({:.1} frames/s); network on {} frames; {} scene{}{}",
        args.out.display(),
        report.frames,
        report.info.width,
        report.info.height,
        report.info.frame_rate,
        secs,
        report.frames as f64 / secs.max(1e-9),
        report.network_frames,
        report.cuts.len(),
        if report.cuts.len() == 1 { "" } else { "s" },
        report
            .trusted_share
            .map(|t| format!("; motion trusted on {:.0} % of pixels", t * 100.0))
            .unwrap_or_default(),
    );
    Ok(ExitCode::SUCCESS)
}

/// `colorize eval-video`.
#[derive(Args, Debug)]
pub struct EvalVideoArgs {
    /// A colour video: it is made gray, colourised frame by frame and with temporal consistency,
    /// and both are scored against it.
    pub input: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub temporal_args: TemporalArgs,
    /// Stop after this many frames.
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Runs `colorize eval-video`.
pub fn eval_video(args: EvalVideoArgs) -> anyhow::Result<ExitCode> {
    let temporal = args.temporal_args.options(1)?;
    check_ffmpeg()?;
    let info = probe(&args.input)?;
    let colorizer = args.model.load()?;
    let total = match (info.frame_estimate(), args.max_frames) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let progress = bar(total, args.quiet);
    let report = evaluate_video(
        &colorizer,
        &args.input,
        temporal,
        args.max_frames,
        &mut |n| progress.set_position(n),
    )
    .with_context(|| format!("cannot evaluate {}", args.input.display()));
    progress.finish_and_clear();
    let report = report?;
    if report.frames < 2 {
        eprintln!(
            "error: {}: {} frame(s); flicker needs at least 2",
            args.input.display(),
            report.frames
        );
        return Ok(ExitCode::from(EXIT_FATAL));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} frames, {} scene{}, warping error at {}x{}",
        args.input.display(),
        report.frames,
        report.cuts.len(),
        if report.cuts.len() == 1 { "" } else { "s" },
        report.eval_size.0,
        report.eval_size.1
    );
    println!(
        "{:<12} {:>14} {:>10} {:>14} {:>10}",
        "", "warping error", "CDC", "colourfulness", "PSNR dB"
    );
    for (name, s) in [
        ("per frame", report.per_frame),
        ("temporal", report.temporal),
    ] {
        println!(
            "{name:<12} {:>14.3e} {:>10.3e} {:>14.2} {:>10.2}",
            s.warping_error, s.cdc, s.colourfulness, s.psnr
        );
    }
    println!(
        "{:<12} {:>14} {:>10} {:>14.2}",
        "original", "", "", report.original_colourfulness
    );
    let ratio = report.temporal.warping_error / report.per_frame.warping_error.max(1e-12);
    println!("temporal / per frame warping error: {ratio:.2}");
    Ok(ExitCode::SUCCESS)
}
