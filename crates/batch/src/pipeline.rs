//! One shard's run: list, filter to the shard, skip what is done, and colourise the rest through
//! a bounded pipeline.
//!
//! ```text
//! keys ─▶ download threads (HEAD output, GET input, decode) ─▶ [bounded] ─▶ inference (caller's
//!         thread, owns the model) ─▶ [bounded] ─▶ upload threads (encode, PUT) ─▶ results
//!                                                                    (collector: report, progress)
//! ```
//!
//! Each channel holds at most `concurrency` items, so at any time at most about
//! `3 · concurrency + 2` photos are in memory, whatever the size of the job. Storage calls run
//! on a small tokio runtime; the stage threads block on them.
//!
//! **Idempotence.** An output that exists and is not empty is skipped (HEAD before GET). Outputs
//! are complete or absent: up to [`MULTIPART_THRESHOLD`] bytes one PUT (atomic on S3, GCS and
//! Azure; a temporary file and a rename on a local folder), above it a multipart upload completed
//! only after its last part (and aborted on error), so a killed shard never leaves a partial
//! output under the final key, and a rerun finishes the job without redoing completed images.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use colorize_core::OutputFormat;
use colorize_core::io::{DecodeLimits, decode_image_bytes, encode_image_bytes};
use colorize_core::lab::SampleDepth;
use image::DynamicImage;
use object_store::path::Path as StorePath;
use object_store::{Attribute, Attributes, ObjectStoreExt, PutOptions, PutPayload, WriteMultipart};
use tokio::runtime::Runtime;

use crate::error::BatchError;
use crate::listing::list_images;
use crate::location::{Location, preflight_retry_config};
use crate::report::{Failure, ShardReport, Timings, report_path, write_report};
use crate::shard::Shard;

/// Outputs larger than this go up as a multipart upload (completed after the last part); smaller
/// ones as one PUT.
pub const MULTIPART_THRESHOLD: usize = 64 * 1024 * 1024;

/// Part size of a multipart upload (S3 takes 5 MiB to 5 GiB per part).
pub const MULTIPART_CHUNK: usize = 16 * 1024 * 1024;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// Each input's own (an extension colorize cannot write, such as `.jpeg`'s cousins, gets
    /// `.png` added).
    Same,
    /// One format for every output (the key's extension replaced).
    Fixed(OutputFormat),
}

impl FormatChoice {
    /// The output key (relative) and format for the input key `key`.
    pub fn output_for(self, key: &str) -> (String, OutputFormat) {
        let dot = key.rfind('.').filter(|&i| !key[i..].contains('/'));
        match self {
            Self::Fixed(f) => {
                let stem = dot.map_or(key, |i| &key[..i]);
                (format!("{stem}.{}", f.extension()), f)
            }
            Self::Same => match dot.and_then(|i| OutputFormat::from_extension(&key[i + 1..])) {
                Some(f) => (key.to_string(), f),
                None => (format!("{key}.png"), OutputFormat::Png),
            },
        }
    }

    /// `same` or the format's extension (for the report).
    pub fn name(self) -> &'static str {
        match self {
            Self::Same => "same",
            Self::Fixed(f) => f.extension(),
        }
    }
}

/// What one shard runs.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Where the inputs are.
    pub input: Location,
    /// Where the outputs (and the reports, under `_colorize/reports/`) go.
    pub output: Location,
    /// The keys (relative to the input prefix) of a manifest; `None` lists the input prefix.
    pub manifest: Option<Vec<String>>,
    /// This shard.
    pub shard: Shard,
    /// The output format.
    pub format: FormatChoice,
    /// Decode limits for every input.
    pub limits: DecodeLimits,
    /// Download threads, upload threads, and the capacity of each channel between stages.
    pub concurrency: usize,
    /// Write the report every this many images (and at least every [`BatchConfig::report_interval`]).
    pub report_every: usize,
    /// Longest time between two report writes while images complete.
    pub report_interval: Duration,
    /// The model's name, for the report.
    pub model: String,
    /// The render size, for the report.
    pub render_size: u32,
    /// The colorize version, for the report.
    pub version: String,
    /// Test hook: abort the process (as a kill would) once this many images were written.
    pub abort_after: Option<u64>,
}

/// Where a shard stands, passed to the progress callback after each image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Images of this shard.
    pub total: u64,
    /// Colourised and written.
    pub done: u64,
    /// Already there.
    pub skipped: u64,
    /// Failed.
    pub failed: u64,
    /// Seconds since the pipeline started.
    pub elapsed_seconds: f64,
}

impl Progress {
    /// Images handled so far (done, skipped or failed).
    pub fn handled(&self) -> u64 {
        self.done + self.skipped + self.failed
    }
}

/// A photo on its way to the network.
struct Decoded {
    key: String,
    out: StorePath,
    format: OutputFormat,
    depth: SampleDepth,
    image: DynamicImage,
}

/// A photo on its way to the store.
struct Colorized {
    key: String,
    out: StorePath,
    format: OutputFormat,
    pixels: DynamicImage,
}

enum Outcome {
    Done,
    Skipped,
    Failed(Failure),
}

/// Timing of one stage of one image, sent with its outcome.
#[derive(Default, Clone, Copy)]
struct StageTimes {
    download: f64,
    decode: f64,
    inference: f64,
    encode: f64,
    upload: f64,
}

struct Event {
    outcome: Outcome,
    times: StageTimes,
}

fn failed(key: &str, reason: impl std::fmt::Display, times: StageTimes) -> Event {
    Event {
        outcome: Outcome::Failed(Failure {
            key: key.to_string(),
            reason: reason.to_string(),
        }),
        times,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The small multi-threaded runtime storage calls run on.
///
/// # Errors
/// [`BatchError::Runtime`] if its threads cannot start.
pub fn runtime() -> Result<Runtime, BatchError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("colorize-io")
        .enable_all()
        .build()
        .map_err(BatchError::Runtime)
}

/// The keys of a job before sharding: the manifest's, or the images listed under the input.
/// Checks first what can be known before any work: input and output must not overlap, the input
/// must be listable (its first call with [`preflight_retry_config`], so an unreachable store
/// fails in seconds) and hold images, the output store must answer.
///
/// # Errors
/// [`BatchError::Overlap`], [`BatchError::List`], [`BatchError::NoImages`],
/// [`BatchError::Output`].
pub fn plan(rt: &Runtime, config: &BatchConfig) -> Result<Vec<String>, BatchError> {
    if config.input.overlaps(&config.output) {
        return Err(BatchError::Overlap {
            input: config.input.url.clone(),
            output: config.output.url.clone(),
        });
    }
    let input = config.input.with_retry(preflight_retry_config())?;
    let output = config.output.with_retry(preflight_retry_config())?;
    rt.block_on(async {
        // The output store must answer (a missing report is the normal answer).
        match output.store.head(&report_path(&output, config.shard)).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => {
                return Err(BatchError::Output {
                    url: output.url.clone(),
                    error,
                });
            }
        }
        match &config.manifest {
            Some(keys) => {
                // Listing would read the whole prefix; one call shows the store answers.
                let prefix = (!input.prefix.as_ref().is_empty()).then_some(&input.prefix);
                input
                    .store
                    .list_with_delimiter(prefix)
                    .await
                    .map_err(|error| BatchError::List {
                        url: input.url.clone(),
                        error,
                    })?;
                if keys.is_empty() {
                    return Err(BatchError::NoImages {
                        url: input.url.clone(),
                        what: "the manifest names no key".into(),
                    });
                }
                Ok(keys.clone())
            }
            None => {
                let keys = list_images(&input).await?;
                if keys.is_empty() {
                    return Err(BatchError::NoImages {
                        url: input.url.clone(),
                        what: format!(
                            "no file with an image extension ({}) under the prefix",
                            colorize_core::files::IMAGE_EXTENSIONS.join(", ")
                        ),
                    });
                }
                Ok(keys)
            }
        }
    })
}

/// Runs one shard: [`plan`], then every key of the shard through the pipeline, with
/// `colorize` (called on this thread, one photo at a time) as the inference stage and
/// `progress` called after each image (with the failure, when it failed). Returns the final
/// report, also written under the output.
///
/// # Errors
/// What [`plan`] refuses, and a final report that cannot be written. Failures of single images
/// are in the report, not errors.
pub fn run<C, P>(
    config: &BatchConfig,
    mut colorize: C,
    progress: P,
) -> Result<ShardReport, BatchError>
where
    C: FnMut(&DynamicImage, SampleDepth) -> Result<DynamicImage, String>,
    P: FnMut(&Progress, Option<&Failure>) + Send,
{
    let rt = runtime()?;
    let all = plan(&rt, config)?;
    let keys: Vec<String> = all
        .iter()
        .filter(|k| config.shard.contains(k))
        .cloned()
        .collect();
    let started = Instant::now();
    let mut report = ShardReport {
        format: crate::report::REPORT_FORMAT,
        version: config.version.clone(),
        state: "running".into(),
        input: config.input.url.clone(),
        output: config.output.url.clone(),
        shard_index: config.shard.index,
        shard_count: config.shard.count,
        model: config.model.clone(),
        render_size: config.render_size,
        output_format: config.format.name().into(),
        input_images: all.len() as u64,
        shard_images: keys.len() as u64,
        done: 0,
        skipped: 0,
        failed: 0,
        started_unix: unix_now(),
        updated_unix: unix_now(),
        elapsed_seconds: 0.0,
        images_per_second: 0.0,
        timings: Timings::default(),
        failures: Vec::new(),
    };
    // The first report says the shard started (and how many images it has).
    rt.block_on(write_report(&config.output, &report))?;

    let cap = config.concurrency.max(1);
    let (work_tx, work_rx) = sync_channel::<(Decoded, StageTimes)>(cap);
    let (done_tx, done_rx) = sync_channel::<(Colorized, StageTimes)>(cap);
    let (event_tx, event_rx) = sync_channel::<Event>(4 * cap);
    let next = AtomicUsize::new(0);
    let done_rx = Mutex::new(done_rx);

    let collected = std::thread::scope(|scope| {
        for _ in 0..cap {
            let work_tx = work_tx.clone();
            let event_tx = event_tx.clone();
            let (rt, keys, next) = (&rt, &keys, &next);
            scope.spawn(move || download(rt, config, keys, next, &work_tx, &event_tx));
        }
        drop(work_tx);
        for _ in 0..cap {
            let event_tx = event_tx.clone();
            let (rt, done_rx) = (&rt, &done_rx);
            scope.spawn(move || upload(rt, config, done_rx, &event_tx));
        }
        let collector = {
            let rt = &rt;
            let report = &mut report;
            scope.spawn(move || collect(rt, config, report, started, event_rx, progress))
        };
        // Inference on this thread: the caller's model never moves.
        for (item, mut times) in work_rx {
            let t = Instant::now();
            let result = colorize(&item.image, item.depth);
            times.inference = t.elapsed().as_secs_f64();
            drop(item.image);
            match result {
                Ok(pixels) => {
                    let next = Colorized {
                        key: item.key,
                        out: item.out,
                        format: item.format,
                        pixels,
                    };
                    if done_tx.send((next, times)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = event_tx.send(failed(&item.key, e, times));
                }
            }
        }
        drop(done_tx);
        drop(event_tx);
        collector.join().expect("the collector does not panic")
    });
    collected?;
    report.state = "finished".into();
    report.updated_unix = unix_now();
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    report.images_per_second = report.done as f64 / report.elapsed_seconds.max(1e-9);
    rt.block_on(write_report(&config.output, &report))?;
    Ok(report)
}

fn download(
    rt: &Runtime,
    config: &BatchConfig,
    keys: &[String],
    next: &AtomicUsize,
    work: &SyncSender<(Decoded, StageTimes)>,
    events: &SyncSender<Event>,
) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(key) = keys.get(i) else { return };
        let mut times = StageTimes::default();
        let (rel_out, format) = config.format.output_for(key);
        let out = config.output.path(&rel_out);
        let input = config.input.path(key);
        let t = Instant::now();
        let fetched = rt.block_on(async {
            match config.output.store.head(&out).await {
                Ok(meta) if meta.size > 0 => return Ok(None),
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(format!("cannot check the output {rel_out}: {e}")),
            }
            let get = async { config.input.store.get(&input).await?.bytes().await };
            match get.await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(object_store::Error::NotFound { .. }) => {
                    Err("not found in the input".to_string())
                }
                Err(e) => Err(format!("cannot read: {e}")),
            }
        });
        times.download = t.elapsed().as_secs_f64();
        let bytes = match fetched {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                let _ = events.send(Event {
                    outcome: Outcome::Skipped,
                    times,
                });
                continue;
            }
            Err(reason) => {
                let _ = events.send(failed(key, reason, times));
                continue;
            }
        };
        let t = Instant::now();
        let decoded = decode_image_bytes(&bytes, std::path::Path::new(key), &config.limits);
        drop(bytes);
        times.decode = t.elapsed().as_secs_f64();
        match decoded {
            Ok(d) => {
                let depth = format.sample_depth(d.is_high_bit_depth());
                let item = Decoded {
                    key: key.clone(),
                    out,
                    format,
                    depth,
                    image: d.image,
                };
                if work.send((item, times)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = events.send(failed(key, e, times));
            }
        }
    }
}

fn upload(
    rt: &Runtime,
    config: &BatchConfig,
    done: &Mutex<Receiver<(Colorized, StageTimes)>>,
    events: &SyncSender<Event>,
) {
    loop {
        // The lock is held only while waiting for the next item.
        let item = done.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((item, mut times)) = item else { return };
        let t = Instant::now();
        let encoded =
            encode_image_bytes(&item.pixels, item.format, std::path::Path::new(&item.key));
        drop(item.pixels);
        times.encode = t.elapsed().as_secs_f64();
        let bytes = match encoded {
            Ok(b) => b,
            Err(e) => {
                let _ = events.send(failed(&item.key, e, times));
                continue;
            }
        };
        let t = Instant::now();
        let written = rt.block_on(put(&config.output, &item.out, item.format, bytes));
        times.upload = t.elapsed().as_secs_f64();
        let event = match written {
            Ok(()) => Event {
                outcome: Outcome::Done,
                times,
            },
            Err(e) => failed(&item.key, format!("cannot write the output: {e}"), times),
        };
        let _ = events.send(event);
    }
}

fn content_type(format: OutputFormat) -> &'static str {
    match format {
        OutputFormat::Jpeg => "image/jpeg",
        OutputFormat::Png => "image/png",
        OutputFormat::WebP => "image/webp",
        OutputFormat::Tiff => "image/tiff",
        OutputFormat::Bmp => "image/bmp",
        OutputFormat::Gif => "image/gif",
    }
}

/// Writes `bytes` at `path`: one PUT up to [`MULTIPART_THRESHOLD`], otherwise a multipart upload
/// completed after the last part (aborted on error, so no partial object is ever visible).
///
/// # Errors
/// object_store's, after its retries.
pub async fn put(
    output: &Location,
    path: &StorePath,
    format: OutputFormat,
    bytes: Vec<u8>,
) -> object_store::Result<()> {
    put_with_threshold(output, path, format, bytes, MULTIPART_THRESHOLD).await
}

/// [`put`] with another multipart threshold (tests use a small one).
///
/// # Errors
/// As [`put`].
pub async fn put_with_threshold(
    output: &Location,
    path: &StorePath,
    format: OutputFormat,
    bytes: Vec<u8>,
    threshold: usize,
) -> object_store::Result<()> {
    let mut attributes = Attributes::new();
    if output.cloud {
        // Local folders and the in-memory store take no attributes.
        attributes.insert(Attribute::ContentType, content_type(format).into());
    }
    if bytes.len() <= threshold {
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        output
            .store
            .put_opts(path, PutPayload::from(bytes), options)
            .await?;
        return Ok(());
    }
    let options = object_store::PutMultipartOptions {
        attributes,
        ..Default::default()
    };
    let upload = output.store.put_multipart_opts(path, options).await?;
    let mut writer =
        WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK.min(threshold.max(1)));
    writer.put(bytes.into());
    // `finish` completes the upload after the last part, or aborts it on error (parts of an
    // upload killed before either stay invisible; deploy/README.md's lifecycle rule removes them).
    writer.finish().await.map(|_| ())
}

fn collect<P>(
    rt: &Runtime,
    config: &BatchConfig,
    report: &mut ShardReport,
    started: Instant,
    events: Receiver<Event>,
    mut progress: P,
) -> Result<(), BatchError>
where
    P: FnMut(&Progress, Option<&Failure>),
{
    let every = config.report_every.max(1) as u64;
    let mut last_write = Instant::now();
    for event in events {
        let t = &mut report.timings;
        t.download_seconds += event.times.download;
        t.decode_seconds += event.times.decode;
        t.inference_seconds += event.times.inference;
        t.encode_seconds += event.times.encode;
        t.upload_seconds += event.times.upload;
        let failure = match event.outcome {
            Outcome::Done => {
                report.done += 1;
                None
            }
            Outcome::Skipped => {
                report.skipped += 1;
                None
            }
            Outcome::Failed(f) => {
                report.failed += 1;
                report.failures.push(f);
                report.failures.last()
            }
        };
        let elapsed = started.elapsed().as_secs_f64();
        let p = Progress {
            total: report.shard_images,
            done: report.done,
            skipped: report.skipped,
            failed: report.failed,
            elapsed_seconds: elapsed,
        };
        progress(&p, failure);
        let handled = p.handled();
        if handled.is_multiple_of(every) || last_write.elapsed() >= config.report_interval {
            report.updated_unix = unix_now();
            report.elapsed_seconds = elapsed;
            report.images_per_second = report.done as f64 / elapsed.max(1e-9);
            // A periodic write that fails is not fatal: the final one is retried as well.
            let _ = rt.block_on(write_report(&config.output, report));
            last_write = Instant::now();
        }
        if config.abort_after.is_some_and(|k| report.done >= k) {
            std::process::abort();
        }
    }
    Ok(())
}
