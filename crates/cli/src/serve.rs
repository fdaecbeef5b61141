//! `colorize serve`: the web app and REST API (crate colorize-server).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use colorize_server::{HttpLimits, LogFormat, Retention, ServerConfig};

use crate::commands::{
    DEFAULT_NAME, DeviceArg, EngineArg, bundled_model, engine_for, model_source, select_device,
    set_threads,
};

/// Flags of `colorize serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5000")]
    pub bind: SocketAddr,
    /// Folder for uploaded and colourised images (created if missing).
    #[arg(long, value_name = "DIR", default_value = "colorize-data")]
    pub data_dir: PathBuf,
    /// Model directory to serve, named by its folder name, or a bundled model's name (`stable`,
    /// `artistic`); repeat for several (the first is the default). The bundled stable model is
    /// served too, as "default", unless a folder is named so.
    #[arg(long = "model", value_name = "DIR")]
    pub models: Vec<PathBuf>,
    /// Inference worker threads (each holds a copy of every model).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Uploads that may wait for a worker; more are answered 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=10000))]
    pub queue: u16,
    /// Largest upload, in megabytes (10^6 bytes); larger ones are answered 413.
    #[arg(long, value_name = "MB", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub max_upload_mb: u32,
    /// Largest image, in megapixels; larger ones are answered 413.
    #[arg(long, value_name = "MP", default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_megapixels: u32,
    /// Most images kept; the oldest are removed first (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub keep_images: usize,
    /// Hours an image is kept (0: forever).
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub keep_hours: u64,
    /// Most megabytes (10^6 bytes) of images kept, originals and results together; the oldest
    /// are removed first (0: no limit).
    #[arg(long, value_name = "MB", default_value_t = 2000)]
    pub keep_mb: u64,
    /// Largest network input in megapixels, the cost budget of one request: a `render_size`
    /// whose input on the photo's aspect ratio is larger is answered 400.
    #[arg(long, value_name = "MP", default_value_t = 2.097152, value_parser = parse_megapixels)]
    pub max_network_megapixels: f64,
    /// Seconds a client may take to send a request's headers, from their first byte.
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds a client may take to send a whole upload; slower ones get 408.
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub body_timeout: u64,
    /// Seconds a connection may stay open with nothing moving and no request in progress.
    #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout: u64,
    /// Most connections open at once; more wait in the operating system's backlog.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Seconds given to requests in flight after Ctrl+C or SIGTERM; then the connections still
    /// open are dropped. A second Ctrl+C stops at once.
    #[arg(long, value_name = "S", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86400))]
    pub shutdown_timeout: u64,
    /// Log format on standard error: `text` or `json` (one object per line); the level comes from
    /// `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// CPU threads for the network (default: all cores).
    #[arg(long, value_name = "N")]
    pub threads: Option<u16>,
    /// Forward pass: `native` (colorize's engine; the default on the CPU) or `burn` (the one that
    /// runs on the GPU; on the CPU kept for comparison).
    #[arg(long, value_enum)]
    pub engine: Option<EngineArg>,
    /// Where the network runs: `cpu` or `gpu` (Vulkan; a build with `--features gpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
}

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_megapixels(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.001..=1000.0).contains(&v) {
        return Err(format!("{v} is outside 0.001..=1000 megapixels"));
    }
    Ok(v)
}

/// Runs the server until Ctrl+C or SIGTERM.
pub fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    set_threads(args.threads)?;
    colorize_server::init_logging(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    });
    let mut models = Vec::new();
    for value in &args.models {
        models.push(model_source(value)?);
    }
    if !models.iter().any(|m| m.name() == DEFAULT_NAME) {
        models.push(bundled_model(DEFAULT_NAME).expect("a bundled model"));
    }
    let engine = engine_for(args.engine, args.device)?.single()?;
    let mut config = ServerConfig::new(args.data_dir, models, select_device(args.device)?);
    config.engine = engine;
    config.bind = args.bind;
    config.workers = args.workers.into();
    config.queue_capacity = args.queue.into();
    config.body_limit = args.max_upload_mb as usize * 1_000_000;
    config.max_pixels = args.max_megapixels as u64 * 1_000_000;
    config.retention = Retention {
        max_images: (args.keep_images > 0).then_some(args.keep_images),
        max_age: (args.keep_hours > 0).then(|| Duration::from_secs(args.keep_hours * 3600)),
        max_bytes: (args.keep_mb > 0).then(|| args.keep_mb.saturating_mul(1_000_000)),
    };
    config.max_network_pixels = (args.max_network_megapixels * 1e6).round() as u64;
    config.http = HttpLimits {
        header_read_timeout: Duration::from_secs(args.header_timeout),
        body_read_timeout: Duration::from_secs(args.body_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_connections: args.max_connections as usize,
        shutdown_deadline: Duration::from_secs(args.shutdown_timeout),
    };
    colorize_server::run(config)?;
    Ok(ExitCode::SUCCESS)
}
