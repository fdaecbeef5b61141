//! `colorize bench`: the network alone per engine and input size (ms and GFLOP/s), the whole
//! pipeline per photo size, end-to-end JPEG → JPEG, and the process's peak resident memory.
//! Results for this machine are recorded in docs/PERFORMANCE.md with the command that made them.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use colorize_core::OutputFormat;
use colorize_core::io::{DecodeLimits, decode_image_bytes, encode_image_bytes, to_output_pixels};
use colorize_models::Colorizer;
use image::{DynamicImage, RgbImage};
use serde::Serialize;

use crate::commands::ModelArgs;

/// `colorize bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Timed runs per measurement (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// Network input sizes to time, `WIDTHxHEIGHT` (repeatable); default 256x256 and 1024x768.
    #[arg(long = "network-size", value_name = "WxH", value_parser = parse_size)]
    pub network_sizes: Vec<(usize, usize)>,
    /// Skip the pipeline and end-to-end measurements (network only).
    #[arg(long)]
    pub network_only: bool,
    /// Frames in the batch-prediction measurement (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub batch: usize,
    /// Network input size of each frame in the batch-prediction measurement.
    #[arg(long, value_name = "WxH", value_parser = parse_size, default_value = "480x320")]
    pub batch_frame: (usize, usize),
    /// Also print the time of every op of the native engine at the first network size.
    #[arg(long)]
    pub profile: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not WIDTHxHEIGHT"))?;
    let parse = |v: &str| match v.trim().parse::<usize>() {
        Ok(n) if (1..=8192).contains(&n) => Ok(n),
        _ => Err(format!("'{s}': sides must be 1..=8192")),
    };
    Ok((parse(w)?, parse(h)?))
}

#[derive(Serialize)]
struct NetworkResult {
    engine: &'static str,
    width: usize,
    height: usize,
    median_ms: f64,
    /// The fastest run (the machine's capability when nothing else runs; medians show noise).
    min_ms: f64,
    gflops_per_s: f64,
}

#[derive(Serialize)]
struct PipelineResult {
    engine: &'static str,
    photo: String,
    render: String,
    /// `Colorizer::colorize` on decoded pixels.
    pipeline_ms: f64,
    /// The network alone at the render size.
    network_ms: f64,
    /// JPEG bytes → decode → colourise → encode JPEG bytes.
    jpeg_to_jpeg_ms: f64,
}

/// `Colorizer::predict` on `frames` inputs of one size: one call per frame against one call for
/// the whole batch.
#[derive(Serialize)]
struct BatchResult {
    engine: &'static str,
    frames: usize,
    width: usize,
    height: usize,
    /// Median ms per frame, one `predict` call per frame.
    one_at_a_time_ms_per_frame: f64,
    /// Median ms per frame, one `predict` call for all frames.
    batched_ms_per_frame: f64,
    /// `one_at_a_time / batched`.
    speedup: f64,
}

#[derive(Serialize)]
struct Report {
    threads: usize,
    /// Where burn's forward runs (`--device`): the CPU or the GPU adapter's name and driver.
    burn_device: String,
    isa: String,
    model: String,
    network: Vec<NetworkResult>,
    batch: Vec<BatchResult>,
    pipeline: Vec<PipelineResult>,
    peak_rss_mib: Option<f64>,
}

/// Peak resident memory of this process in MiB (`VmHWM` of /proc/self/status; Linux only).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn test_photo(w: u32, h: u32) -> DynamicImage {
    // A smooth gradient with some texture, so that decoders and resizers do real work.
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let v = ((x * 255 / w.max(1)) ^ (y * 255 / h.max(1))) as u8;
        image::Rgb([v, v / 2 + 64, 255 - v])
    }))
}

/// Median and minimum of `iterations` timed runs of `f` (after one warm-up run), in ms.
fn time_runs(
    iterations: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    f()?;
    let mut v = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(f64::total_cmp);
    Ok((v[v.len() / 2], v[0]))
}

/// Median of `iterations` timed runs of `f` (after one warm-up run), in ms.
fn time_ms(iterations: usize, f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    Ok(time_runs(iterations, f)?.0)
}

fn jpeg_to_jpeg(c: &Colorizer, jpeg: &[u8]) -> anyhow::Result<usize> {
    let name = Path::new("bench.jpg");
    let decoded = decode_image_bytes(jpeg, name, &DecodeLimits::default())?;
    let rgb = c.colorize(&decoded.image)?;
    let out = to_output_pixels(rgb, OutputFormat::Jpeg, false);
    Ok(encode_image_bytes(&out, OutputFormat::Jpeg, name)?.len())
}

/// Runs `colorize bench`.
pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let base = args.model.load_any()?;
    let engines = args.model.engine()?.kinds();
    let iterations = args.iterations.max(1);
    let sizes = if args.network_sizes.is_empty() {
        vec![(256, 256), (1024, 768)]
    } else {
        args.network_sizes.clone()
    };
    let graph = base
        .graph()
        .context("cannot compile the network for the engine")?;
    let mut report = Report {
        threads: rayon::current_num_threads(),
        burn_device: colorize_models::device::select_device(args.model.device.into())?.description,
        isa: base.isa().to_string(),
        model: base.config().description.clone(),
        network: Vec::new(),
        batch: Vec::new(),
        pipeline: Vec::new(),
        peak_rss_mib: None,
    };
    if !args.json {
        println!(
            "threads {}, engine kernels {}, burn on {}, {} timed runs (median); model: {}",
            report.threads, report.isa, report.burn_device, iterations, report.model
        );
        println!(
            "\n{:<12} {:>8} {:>12} {:>10} {:>10}",
            "network in", "engine", "median ms", "GFLOP/s", "best ms"
        );
    }
    for &(w, h) in &sizes {
        let gflop = 2.0 * graph.macs(1, h, w)? as f64 / 1e9;
        for &engine in &engines {
            let c = base.clone().with_engine(engine);
            let l = vec![50.0f32; w * h];
            let (ms, min_ms) = time_runs(iterations, || {
                std::hint::black_box(c.predict_ab(&l, w, h)?);
                Ok(())
            })?;
            let r = NetworkResult {
                engine: engine.name(),
                width: w,
                height: h,
                median_ms: ms,
                min_ms,
                gflops_per_s: gflop / (ms / 1e3),
            };
            if !args.json {
                println!(
                    "{:<12} {:>8} {:>12.1} {:>10.1} {:>10.1}",
                    format!("{w}x{h}"),
                    r.engine,
                    r.median_ms,
                    r.gflops_per_s,
                    r.min_ms
                );
            }
            report.network.push(r);
        }
    }
    if args.batch > 0 {
        let (w, h) = args.batch_frame;
        let n = args.batch;
        if !args.json {
            println!(
                "\n{:<16} {:>8} {:>20} {:>16} {:>8}",
                "batch", "engine", "one by one ms/frame", "batched ms/frame", "speedup"
            );
        }
        for &engine in &engines {
            let c = base.clone().with_engine(engine);
            // Distinct frames (a slow pan over a gradient), as a film would give.
            let inputs: Vec<_> = (0..n)
                .map(|k| {
                    let l: Vec<f32> = (0..w * h)
                        .map(|i| ((i % w + 3 * k) as f32 / w as f32 * 100.0).min(100.0))
                        .collect();
                    c.prepare_resized(w, h, &l)
                })
                .collect();
            let one = time_ms(iterations, || {
                for x in &inputs {
                    std::hint::black_box(c.predict(std::slice::from_ref(x))?);
                }
                Ok(())
            })? / n as f64;
            let batched = time_ms(iterations, || {
                std::hint::black_box(c.predict(&inputs)?);
                Ok(())
            })? / n as f64;
            let r = BatchResult {
                engine: engine.name(),
                frames: n,
                width: w,
                height: h,
                one_at_a_time_ms_per_frame: one,
                batched_ms_per_frame: batched,
                speedup: one / batched,
            };
            if !args.json {
                println!(
                    "{:<16} {:>8} {:>20.1} {:>16.1} {:>7.2}x",
                    format!("{n} x {w}x{h}"),
                    r.engine,
                    r.one_at_a_time_ms_per_frame,
                    r.batched_ms_per_frame,
                    r.speedup
                );
            }
            report.batch.push(r);
        }
    }
    if !args.json {
        for &(w, h) in &sizes {
            println!(
                "native engine arena at {w}x{h}: {:.0} MiB (every activation of the forward pass, planned into one buffer)",
                graph.plan(1, h, w)?.arena_bytes() as f64 / (1 << 20) as f64
            );
        }
    }
    if args.profile && !args.json {
        let (w, h) = sizes[0];
        let l = vec![0.0f32; w * h * graph.input_channels()];
        graph.run(&l, 1, h, w)?; // warm-up: plan and arena
        let mut runs = Vec::new();
        for _ in 0..iterations {
            runs.push(graph.run_profiled(&l, 1, h, w)?.1);
        }
        println!("\nper op at {w}x{h}, native engine (median of {iterations} runs):");
        println!("{:<28} {:>10} {:>10} {:>8}", "op", "ms", "GFLOP/s", "share");
        let medians: Vec<f64> = (0..runs[0].len())
            .map(|i| {
                let mut v: Vec<f64> = runs.iter().map(|r| r[i].ms).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            })
            .collect();
        let total: f64 = medians.iter().sum();
        for (op, ms) in runs[0].iter().zip(&medians) {
            let rate = if op.flop > 0.0 {
                format!("{:.1}", op.flop / (ms / 1e3) / 1e9)
            } else {
                "-".into()
            };
            println!(
                "{:<28} {:>10.2} {:>10} {:>7.1}%",
                op.name,
                ms,
                rate,
                100.0 * ms / total
            );
        }
        println!("{:<28} {:>10.2}", "total", total);
    }
    if !args.network_only {
        if !args.json {
            println!(
                "\n{:<10} {:>8} {:>10} {:>14} {:>12} {:>16}",
                "photo", "render", "engine", "pipeline ms", "network ms", "JPEG->JPEG ms"
            );
        }
        for (w, h) in [(256u32, 256u32), (1024, 768)] {
            let photo = test_photo(w, h);
            let jpeg = encode_image_bytes(&photo, OutputFormat::Jpeg, Path::new("bench.jpg"))?;
            let (rw, rh) = base.network_size(w as usize, h as usize);
            for &engine in &engines {
                let c = base.clone().with_engine(engine);
                let l_small = vec![50.0f32; rw * rh];
                let pipeline_ms = time_ms(iterations, || {
                    std::hint::black_box(c.colorize(&photo)?);
                    Ok(())
                })?;
                let network_ms = time_ms(iterations, || {
                    std::hint::black_box(c.predict_ab(&l_small, rw, rh)?);
                    Ok(())
                })?;
                let jpeg_to_jpeg_ms = time_ms(iterations, || {
                    std::hint::black_box(jpeg_to_jpeg(&c, &jpeg)?);
                    Ok(())
                })?;
                let r = PipelineResult {
                    engine: engine.name(),
                    photo: format!("{w}x{h}"),
                    render: format!("{rw}x{rh}"),
                    pipeline_ms,
                    network_ms,
                    jpeg_to_jpeg_ms,
                };
                if !args.json {
                    println!(
                        "{:<10} {:>8} {:>10} {:>14.1} {:>12.1} {:>16.1}",
                        r.photo, r.render, r.engine, r.pipeline_ms, r.network_ms, r.jpeg_to_jpeg_ms
                    );
                }
                report.pipeline.push(r);
            }
        }
    }
    report.peak_rss_mib = peak_rss_mib();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if let Some(m) = report.peak_rss_mib {
        println!("\npeak resident memory: {m:.0} MiB");
    }
    if report.network.is_empty() {
        bail!("nothing was measured");
    }
    Ok(ExitCode::SUCCESS)
}
