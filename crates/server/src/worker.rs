//! Inference workers: dedicated OS threads fed by a bounded queue.
//!
//! The async runtime never decodes, colourises or encodes: a handler puts a [`Job`] on the queue
//! with `try_send` (a full queue is answered 503 at once) and awaits the answer on a
//! `tokio::sync::oneshot`. Each worker loads its own copy of every model on its own thread, so
//! nothing about `Colorizer` has to be `Sync`. A job is decoded under the pixel limit,
//! colourised (under the network budget), encoded and stored on the worker.
//!
//! A panic anywhere in a job (decode, inference, encode, storage) is caught: the job is answered
//! 500 and logged, and the worker takes the next job. `Metrics::workers_live` counts the worker
//! threads running, for `/health`.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::prelude::Device;
use bytes::Bytes;
use colorize_core::DecodeLimits;
use colorize_core::io::{OutputFormat, decode_image_bytes, encode_image_bytes};
use colorize_models::{Colorizer, EngineKind, LoadOptions, ModelSource};
use tokio::sync::oneshot;

use crate::error::{ApiError, ServerError, from_decode_error};
use crate::metrics::Metrics;
use crate::store::{ImageId, ImageMeta, ImageStore, is_storage_full, timestamp};

use crate::DecodeHook;

/// Loads `source` for a worker, mapping the error to the model's name.
fn load_model(
    source: &ModelSource,
    device: &Device,
    engine: EngineKind,
) -> Result<Colorizer, ServerError> {
    let options = LoadOptions {
        engine,
        ..LoadOptions::default()
    };
    source
        .load(device, &options)
        .map_err(|source_error| ServerError::Model {
            name: source.name().to_string(),
            source: source_error,
        })
}

/// What the API says about a loaded model.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// The name clients use.
    pub name: String,
    /// The model's one-line description.
    pub description: String,
    /// Its default render size.
    pub render_size: u32,
    /// Whether its network takes user colour hints (`hints` in `POST /api/colorize`).
    pub takes_hints: bool,
}

/// One upload to colourise.
pub(crate) struct Job {
    pub bytes: Bytes,
    pub model: usize,
    pub model_name: String,
    pub render_size: Option<u32>,
    pub hints: Vec<colorize_models::Hint>,
    pub reply: oneshot::Sender<Result<Done, ApiError>>,
}

/// A stored, colourised image.
#[derive(Debug)]
pub(crate) struct Done {
    pub id: ImageId,
    pub meta: ImageMeta,
}

/// What every worker needs besides its models.
#[derive(Clone)]
pub(crate) struct WorkerContext {
    pub store: ImageStore,
    pub limits: DecodeLimits,
    pub max_network_pixels: u64,
    pub before_decode: Option<DecodeHook>,
    pub metrics: Arc<Metrics>,
    pub janitor: SyncSender<()>,
}

/// Counts a worker thread as live while it exists (also when it unwinds).
struct Live(Arc<Metrics>);

impl Live {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.workers_live.fetch_add(1, Ordering::SeqCst);
        Self(metrics.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.workers_live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The queue and the worker threads.
pub(crate) struct Pool {
    tx: Mutex<Option<SyncSender<Job>>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    janitor: Mutex<Option<(SyncSender<()>, JoinHandle<()>)>>,
    metrics: Arc<Metrics>,
    /// The loaded models, in the order given (the first is the default).
    pub models: Vec<ModelInfo>,
    /// Worker thread count.
    pub workers: usize,
    /// Queue capacity.
    pub capacity: usize,
}

impl Pool {
    /// Starts `workers` threads, each loading every model (and compiling it for the native
    /// engine, so the first upload does not pay for that); returns once all are ready.
    ///
    /// # Errors
    /// The first model that fails to load or compile.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        sources: &[ModelSource],
        device: &Device,
        engine: EngineKind,
        workers: usize,
        capacity: usize,
        store: ImageStore,
        limits: DecodeLimits,
        max_network_pixels: u64,
        before_decode: Option<DecodeHook>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ServerError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let (janitor_tx, janitor_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let janitor = spawn_janitor(store.clone(), janitor_rx, metrics.clone())?;
        let ctx = WorkerContext {
            store,
            limits,
            max_network_pixels,
            before_decode,
            metrics: metrics.clone(),
            janitor: janitor_tx.clone(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut handles = Vec::new();
        for i in 0..workers {
            let sources = sources.to_vec();
            let device = device.clone();
            let rx = rx.clone();
            let ctx = ctx.clone();
            let ready_tx = ready_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("colorize-worker-{i}"))
                .spawn(move || {
                    let loaded: Result<Vec<Colorizer>, ServerError> = sources
                        .iter()
                        .map(|s| load_model(s, &device, engine))
                        .collect();
                    match loaded {
                        Ok(models) => {
                            let infos = sources
                                .iter()
                                .zip(&models)
                                .map(|(s, c)| ModelInfo {
                                    name: s.name().to_string(),
                                    description: c.config().description.clone(),
                                    render_size: c.render_size(),
                                    takes_hints: c.takes_hints(),
                                })
                                .collect::<Vec<_>>();
                            let live = Live::new(&ctx.metrics);
                            let _ = ready_tx.send(Ok(infos));
                            drop(ready_tx);
                            worker_loop(&rx, models.into_iter().map(Some).collect(), &ctx);
                            drop(live);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            handles.push(handle);
        }
        drop(ready_tx);
        let pool = Self {
            tx: Mutex::new(Some(tx)),
            handles: Mutex::new(handles),
            janitor: Mutex::new(Some((janitor_tx, janitor))),
            metrics,
            models: Vec::new(),
            workers,
            capacity,
        };
        let mut models = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(infos)) => models = Some(infos),
                Ok(Err(e)) => {
                    pool.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    pool.shutdown();
                    return Err(ServerError::Config("a worker thread stopped".into()));
                }
            }
        }
        Ok(Self {
            models: models.unwrap_or_default(),
            ..pool
        })
    }

    /// Puts a job on the queue without waiting.
    ///
    /// # Errors
    /// 503 `queue_full` (with `Retry-After`) when the queue is full, 503 `shutting_down` once
    /// the workers are stopping.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        let guard = self
            .tx
            .lock()
            .map_err(|_| ApiError::internal("worker queue poisoned"))?;
        let Some(tx) = guard.as_ref() else {
            return Err(ApiError::shutting_down());
        };
        self.metrics.queue_depth.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
                match e {
                    TrySendError::Full(_) => {
                        self.metrics.rejected_queue_full.inc();
                        Err(ApiError::queue_full(2))
                    }
                    TrySendError::Disconnected(_) => Err(ApiError::shutting_down()),
                }
            }
        }
    }

    /// Closes the queue, lets the workers finish the jobs already queued, and joins them.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let handles = self
            .handles
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default();
        for h in handles {
            let _ = h.join();
        }
        if let Ok(mut j) = self.janitor.lock()
            && let Some((tx, handle)) = j.take()
        {
            drop(tx);
            let _ = handle.join();
        }
    }
}

fn spawn_janitor(
    store: ImageStore,
    rx: Receiver<()>,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, ServerError> {
    Ok(std::thread::Builder::new()
        .name("colorize-janitor".into())
        .spawn(move || {
            loop {
                let n = std::panic::catch_unwind(AssertUnwindSafe(|| store.enforce_retention()))
                    .unwrap_or(0);
                metrics.images_expired.inc_by(n as u64);
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })?)
}

fn worker_loop(rx: &Mutex<Receiver<Job>>, mut models: Vec<Option<Colorizer>>, ctx: &WorkerContext) {
    loop {
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        ctx.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
        if job.reply.is_closed() {
            // The client is gone (it hung up, or its connection was dropped at the shutdown
            // deadline): nobody would see the result.
            continue;
        }
        ctx.metrics.in_progress.fetch_add(1, Ordering::SeqCst);
        let t0 = Instant::now();
        let result = match std::panic::catch_unwind(AssertUnwindSafe(|| {
            process(&job, &mut models, ctx)
        })) {
            Ok(result) => result,
            Err(panic) => {
                let what = crate::error::panic_message(panic.as_ref());
                tracing::error!(target: "colorize_server::worker", panic = %what, "a job panicked; the worker goes on");
                ctx.metrics.worker_panics.inc();
                Err(ApiError::internal(
                    "the server failed on this image (an internal error, logged)",
                ))
            }
        };
        ctx.metrics.record_inference(t0.elapsed());
        if result.is_ok() {
            ctx.metrics.images_colorized.inc();
            let _ = ctx.janitor.try_send(());
        }
        ctx.metrics.in_progress.fetch_sub(1, Ordering::SeqCst);
        // The client may have gone; the image is stored either way.
        let _ = job.reply.send(result);
    }
}

fn mime_of(format: image::ImageFormat) -> &'static str {
    format.to_mime_type()
}

/// The render size for a `width x height` photo under the network budget: the one asked for if
/// its network input fits, else (for the model's default) the largest that fits.
///
/// # Errors
/// 400 `render_budget` when the client asked for a render size whose input does not fit.
fn budgeted_render_size(
    colorizer: &Colorizer,
    width: usize,
    height: usize,
    asked: Option<u32>,
    budget: u64,
) -> Result<u32, ApiError> {
    let pixels = |size: u32| {
        let (w, h) = colorizer.config().io.size.network_size(width, height, size);
        (w as u64).saturating_mul(h as u64)
    };
    let wanted = asked.unwrap_or(colorizer.config().render_size).max(1);
    if pixels(wanted) <= budget {
        return Ok(wanted);
    }
    // The network input grows with the render size: the largest that fits, by bisection.
    let (mut lo, mut hi) = (0u32, wanted); // pixels(lo) fits (or lo = 0), pixels(hi) does not
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pixels(mid) <= budget {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    match asked {
        Some(size) => {
            let (w, h) = colorizer.config().io.size.network_size(width, height, size);
            Err(ApiError::render_budget(size, (w, h), budget, lo))
        }
        None if lo >= 1 => Ok(lo),
        None => Err(ApiError::render_budget(wanted, (width, height), budget, 0)),
    }
}

fn process(
    job: &Job,
    models: &mut [Option<Colorizer>],
    ctx: &WorkerContext,
) -> Result<Done, ApiError> {
    if let Some(hook) = &ctx.before_decode {
        hook(&job.bytes);
    }
    // A render size the model's network cannot take (DDColor's multiples of 32) is refused
    // before any work.
    if let (Some(asked), Some(Some(colorizer))) = (job.render_size, models.get(job.model)) {
        colorize_models::source::check_render_size(colorizer, asked)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let decoded = decode_image_bytes(&job.bytes, Path::new("upload"), &ctx.limits)
        .map_err(from_decode_error)?;
    let slot = models
        .get_mut(job.model)
        .ok_or_else(|| ApiError::internal("model index out of range"))?;
    let render_size = {
        let colorizer = slot
            .as_ref()
            .ok_or_else(|| ApiError::internal("model unavailable"))?;
        budgeted_render_size(
            colorizer,
            decoded.image.width() as usize,
            decoded.image.height() as usize,
            job.render_size,
            ctx.max_network_pixels,
        )?
    };
    let colorizer = slot
        .take()
        .ok_or_else(|| ApiError::internal("model unavailable"))?;
    let colorizer = colorizer.with_render_size(render_size);
    let model_name_path = Path::new("colorized");
    // A panic inside the network must not take the worker down; the model itself is immutable
    // during a forward pass, so it stays usable.
    let (format, colorized_type) = if decoded.format == image::ImageFormat::Jpeg {
        (OutputFormat::Jpeg, "image/jpeg")
    } else {
        (OutputFormat::Png, "image/png")
    };
    // Straight to the output's 8- or 16-bit pixels (no float image; see `Colorizer::colorize_to`).
    let depth = format.sample_depth(decoded.is_high_bit_depth());
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        colorizer.colorize_to(&decoded.image, &job.hints, depth)
    }));
    *slot = Some(colorizer);
    let pixels = match result {
        Ok(Ok(pixels)) => pixels,
        Ok(Err(e)) => return Err(ApiError::internal(format!("inference failed: {e}"))),
        Err(_) => return Err(ApiError::internal("inference failed (panic)")),
    };
    let (original_format, width, height) = (
        decoded.format,
        decoded.image.width(),
        decoded.image.height(),
    );
    drop(decoded);
    let encoded = encode_image_bytes(&pixels, format, model_name_path)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let meta = ImageMeta {
        original_type: mime_of(original_format).to_string(),
        colorized_type: colorized_type.to_string(),
        width,
        height,
        model: job.model_name.clone(),
        render_size,
        created_unix: timestamp(),
    };
    // The answer never names a server path; the log has the details.
    let id = ctx.store.insert(&job.bytes, &encoded, &meta).map_err(|e| {
        tracing::error!(target: "colorize_server::store", error = %e, "cannot store an image");
        if is_storage_full(&e) {
            ApiError::insufficient_storage()
        } else {
            ApiError::internal("cannot store the image (logged on the server)")
        }
    })?;
    Ok(Done { id, meta })
}
