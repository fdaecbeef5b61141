//! `colorize bench`: per-image latency of the whole pipeline and of the network alone, at
//! 256x256 and at a 1024x768 photo, and the process's peak resident memory.

use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use colorize_models::render_dims;
use image::{DynamicImage, RgbImage};

use crate::commands::ModelArgs;

/// `colorize bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Timed runs per size (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Peak resident memory of this process in MiB (`VmHWM` of /proc/self/status; Linux only).
fn peak_rss_mib() -> Option<f64> {
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `colorize bench`.
pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let colorizer = args.model.load()?;
    let iterations = args.iterations.max(1);
    println!(
        "threads {}, render size {}, {} timed runs (median)",
        rayon::current_num_threads(),
        colorizer.render_size(),
        iterations
    );
    println!(
        "{:<10} {:>12} {:>16} {:>16}",
        "photo", "render", "pipeline (ms)", "network (ms)"
    );
    for (w, h) in [(256u32, 256u32), (1024, 768)] {
        let photo = test_photo(w, h);
        let (rw, rh) = render_dims(w as usize, h as usize, colorizer.render_size());
        let l_small = vec![50.0f32; rw * rh];
        colorizer.colorize(&photo)?; // warm-up
        let mut pipeline = Vec::new();
        let mut network = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            std::hint::black_box(colorizer.colorize(&photo)?);
            pipeline.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            std::hint::black_box(colorizer.predict_ab(&l_small, rw, rh)?);
            network.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{:<10} {:>12} {:>16.1} {:>16.1}",
            format!("{w}x{h}"),
            format!("{rw}x{rh}"),
            median(pipeline),
            median(network)
        );
    }
    if let Some(m) = peak_rss_mib() {
        println!("peak resident memory: {m:.0} MiB");
    }
    Ok(ExitCode::SUCCESS)
}
