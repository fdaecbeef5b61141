//! `colorize-fuzz <decode|model-dir|multipart> --execs N [--seed S] [--corpus DIR] [--threads T]`:
//! runs a fuzz campaign, prints the executions, execs/s and crashes found, writes crashing inputs
//! to `crashes/<target>/`, and exits with status 1 if anything crashed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use colorize_fuzz::runner::{self, RunOptions, WorkerJob};
use colorize_fuzz::targets::decode::Decode;
use colorize_fuzz::targets::model_dir::ModelDir;
use colorize_fuzz::targets::multipart::Multipart;
use colorize_fuzz::targets::{Target, TargetOptions};

/// Fuzz colorize: image decoding through the pipeline, model folders, the upload handler.
#[derive(Debug, Parser)]
#[command(name = "colorize-fuzz", version)]
struct Cli {
    /// The target: decode, model-dir or multipart.
    #[arg(value_parser = colorize_fuzz::TARGETS)]
    target: String,
    /// Executions to run.
    #[arg(long, default_value_t = 10_000)]
    execs: u64,
    /// The campaign's seed (inputs are a function of the seed and the execution index).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Extra seeds: image files (decode, multipart) or model folders (model-dir).
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Worker processes.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Where crashing inputs go (in a folder named after the target).
    #[arg(long, default_value = "crashes")]
    out: PathBuf,
    /// Folder of real photos for the seeds (default: $COLORIZE_FUZZ_DATA, else ../shared/data
    /// next to the repository).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address-space cap of each worker, in MiB (0: none); needs `prlimit`.
    #[arg(long, default_value_t = 4096)]
    mem_limit_mb: u64,
    /// Seconds one input may run before it counts as a hang.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Replay these inputs (files, model folders, or folders of them) instead of fuzzing.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
    /// Also write the summary as JSON here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Internal: run as a worker process.
    #[arg(long, hide = true)]
    worker: bool,
    /// Internal: a worker's first index.
    #[arg(long, hide = true, default_value_t = 0)]
    worker_start: u64,
    /// Internal: a worker's index step.
    #[arg(long, hide = true, default_value_t = 1)]
    worker_step: u64,
}

fn run<T: Target>(cli: &Cli, options: &RunOptions) -> ExitCode {
    if cli.worker {
        let job = WorkerJob {
            start: cli.worker_start,
            step: cli.worker_step.max(1),
            end: cli.execs,
        };
        return match runner::worker::<T>(options, &job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("colorize-fuzz worker: {e}");
                ExitCode::from(2)
            }
        };
    }
    // What every worker is told besides its indices.
    let mut extra = vec![
        "--seed".to_string(),
        cli.seed.to_string(),
        "--out".into(),
        cli.out.display().to_string(),
    ];
    if let Some(d) = &options.target.data_dir {
        extra.extend(["--data".into(), d.display().to_string()]);
    }
    if let Some(c) = &cli.corpus {
        extra.extend(["--corpus".into(), c.display().to_string()]);
    }
    if !cli.replay.is_empty() {
        extra.push("--replay".into());
        extra.extend(cli.replay.iter().map(|p| p.display().to_string()));
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match runner::supervise::<T>(options, &extra) {
        Ok(summary) => {
            summary.print(options);
            if let Some(p) = &cli.summary_json {
                let text = serde_json::to_string_pretty(&summary.to_json(options, &command))
                    .unwrap_or_default();
                if let Err(e) = std::fs::write(p, text) {
                    eprintln!("colorize-fuzz: {}: {e}", p.display());
                    return ExitCode::from(2);
                }
            }
            if summary.crashes.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("colorize-fuzz: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let data_dir = cli
        .data
        .clone()
        .or_else(colorize_fuzz::seeds::default_data_dir);
    let options = RunOptions {
        execs: cli.execs,
        seed: cli.seed,
        threads: cli.threads.max(1),
        out: cli.out.clone(),
        target: TargetOptions {
            data_dir,
            corpus: cli.corpus.clone(),
        },
        mem_limit_mb: cli.mem_limit_mb,
        timeout_s: cli.timeout_s.max(1),
        replay: cli.replay.clone(),
        progress: !cli.worker,
    };
    match cli.target.as_str() {
        "decode" => run::<Decode>(&cli, &options),
        "model-dir" => run::<ModelDir>(&cli, &options),
        _ => run::<Multipart>(&cli, &options),
    }
}
