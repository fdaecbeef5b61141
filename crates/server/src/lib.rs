//! colorize-server: the web app and REST API of colorize.
//!
//! [`run`] is the one entry the binary calls (`colorize serve`). Underneath, [`App::start`] opens
//! the image store and starts the inference workers, [`App::router`] is the axum router (tests call
//! it with `tower::ServiceExt::oneshot`, no ports), and [`serve`] serves it on a listener until a
//! shutdown future completes, finishing the requests in flight within a deadline.
//!
//! Every limit, timeout and budget is a field of [`ServerConfig`] with a documented default;
//! `docs/RELIABILITY.md` lists them with the tests that prove them.
//!
//! ```text
//! request -> axum handler (async: parse multipart, validate)
//!         -> bounded queue (try_send; full -> 503 + Retry-After)
//!         -> worker thread (decode under limits -> colourise -> encode -> store atomically)
//!         -> oneshot reply -> 201 JSON
//! ```

mod api;
pub mod conn;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod store;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use burn::prelude::Device;
use colorize_core::DecodeLimits;

pub use colorize_models::ModelSource;
pub use conn::{HttpLimits, ServeReport};
pub use error::{ApiError, ServerError};
pub use logging::{LogFormat, init_logging};
pub use store::{ImageId, ImageStore, Retention};
pub use worker::ModelInfo;

use crate::metrics::Metrics;
use crate::worker::Pool;

/// Smallest render size a client may ask for.
pub const MIN_RENDER_SIZE: u32 = 32;
/// Largest render size a client may ask for (the network's cost grows with its square).
pub const MAX_RENDER_SIZE: u32 = 1024;

/// A test hook called with an upload's bytes before they are decoded.
#[doc(hidden)]
pub type DecodeHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Faults injected by tests at named points of a job (never set outside tests). Each hook is
/// called on the worker thread; a hook may panic (to prove a panic is answered 500 and the worker
/// lives on) or return an error (to simulate a full disk while the image is stored).
#[derive(Clone, Default)]
#[doc(hidden)]
pub struct FaultInjection {
    /// Called with the upload's bytes just before they are decoded.
    pub before_decode: Option<DecodeHook>,
    /// Called with the name of each file of an image (`original`, `colorized`, `meta.json`) after
    /// half of it has been written into the image's temporary folder; an error fails the write.
    pub store_write: Option<store::WriteHook>,
}

impl std::fmt::Debug for FaultInjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjection")
            .field("before_decode", &self.before_decode.is_some())
            .field("store_write", &self.store_write.is_some())
            .finish()
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:5000`; port 0 picks a free port).
    pub bind: SocketAddr,
    /// Where images are stored (`DATA_DIR/images/<id>/`).
    pub data_dir: PathBuf,
    /// The models to serve; the first is the default. At least one.
    pub models: Vec<ModelSource>,
    /// The compute device the workers run on.
    pub device: Device,
    /// Which forward pass runs the networks (default: the native engine).
    pub engine: colorize_models::EngineKind,
    /// Inference worker threads (default 1: the network already uses every core).
    pub workers: usize,
    /// Jobs that may wait for a worker before uploads are answered 503 (default 8).
    pub queue_capacity: usize,
    /// Largest request body in bytes (default 20 MB); larger uploads get 413.
    pub body_limit: usize,
    /// Largest decoded image in pixels (default 40 megapixels); larger images get 413.
    pub max_pixels: u64,
    /// Largest network input in pixels, the cost budget of one request (default 2^21 = 2.1
    /// megapixels: a 3:2 photo at the largest render size, 1024x1536, fits). A `render_size`
    /// asked for that gives a larger input on the upload's aspect ratio is answered 400
    /// `render_budget`; the model's own default render size is lowered to fit instead.
    pub max_network_pixels: u64,
    /// How many images to keep, for how long, and in how many bytes.
    pub retention: Retention,
    /// Timeouts and connection limits of the HTTP layer.
    pub http: HttpLimits,
    /// Test hooks (see [`FaultInjection`]); empty by default.
    #[doc(hidden)]
    pub faults: FaultInjection,
}

impl ServerConfig {
    /// A configuration with the defaults: `127.0.0.1:5000`, one worker, a queue of 8, 20 MB
    /// bodies, 40 megapixels, a network budget of 2^21 pixels, 1000 images (at most 2 GB) for 24
    /// hours, and [`HttpLimits::default`].
    pub fn new(data_dir: impl Into<PathBuf>, models: Vec<ModelSource>, device: Device) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 5000)),
            data_dir: data_dir.into(),
            models,
            device,
            engine: colorize_models::EngineKind::Native,
            workers: 1,
            queue_capacity: 8,
            body_limit: 20_000_000,
            max_pixels: 40_000_000,
            max_network_pixels: 1 << 21,
            retention: Retention::default(),
            http: HttpLimits::default(),
            faults: FaultInjection::default(),
        }
    }
}

/// The shared state of the handlers.
pub(crate) struct AppState {
    pub pool: Pool,
    pub store: ImageStore,
    pub metrics: Arc<Metrics>,
    pub body_limit: usize,
    pub http: HttpLimits,
    /// The OpenAPI document as JSON, generated once from the handlers' annotations.
    pub openapi: std::sync::OnceLock<bytes::Bytes>,
}

/// A started server: image store open, workers running, models loaded.
#[derive(Clone)]
pub struct App {
    state: Arc<AppState>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("images", &self.state.store.images_dir())
            .field("workers", &self.state.pool.workers)
            .finish()
    }
}

impl App {
    /// Opens the store under `config.data_dir` and starts the workers (each loads every model).
    ///
    /// # Errors
    /// [`ServerError::Config`] for no models, duplicate names or zero workers/queue,
    /// [`ServerError::DataDir`] if the data directory is unusable, [`ServerError::Model`] if a
    /// model cannot be loaded.
    pub fn start(config: &ServerConfig) -> Result<Self, ServerError> {
        if config.models.is_empty() {
            return Err(ServerError::Config("no model to serve".into()));
        }
        for (i, m) in config.models.iter().enumerate() {
            if config.models[..i].iter().any(|o| o.name() == m.name()) {
                return Err(ServerError::Config(format!(
                    "two models are named '{}'",
                    m.name()
                )));
            }
        }
        if config.workers == 0 || config.queue_capacity == 0 {
            return Err(ServerError::Config(
                "workers and queue capacity must be at least 1".into(),
            ));
        }
        if config.http.max_connections == 0 {
            return Err(ServerError::Config(
                "the connection limit must be at least 1".into(),
            ));
        }
        if config.max_network_pixels < u64::from(MIN_RENDER_SIZE).pow(2) {
            return Err(ServerError::Config(format!(
                "the network budget must be at least {} pixels ({MIN_RENDER_SIZE}x{MIN_RENDER_SIZE})",
                u64::from(MIN_RENDER_SIZE).pow(2)
            )));
        }
        let store = ImageStore::open(&config.data_dir, config.retention)?
            .with_write_hook(config.faults.store_write.clone());
        let metrics = Arc::new(Metrics::default());
        let pool = Pool::start(
            &config.models,
            &config.device,
            config.engine,
            config.workers,
            config.queue_capacity,
            store.clone(),
            DecodeLimits {
                max_pixels: config.max_pixels,
            },
            config.max_network_pixels,
            config.faults.before_decode.clone(),
            metrics.clone(),
        )?;
        Ok(Self {
            state: Arc::new(AppState {
                pool,
                store,
                metrics,
                body_limit: config.body_limit,
                http: config.http,
                openapi: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The axum router with every route, the body limit and the metrics middleware.
    pub fn router(&self) -> Router {
        api::router(self.state.clone())
    }

    /// The OpenAPI 3.1 document of the API, generated from the handlers' annotations and types
    /// (the same one `GET /openapi.json` serves).
    pub fn openapi() -> utoipa::openapi::OpenApi {
        api::openapi()
    }

    /// The timeouts and connection limits this app was started with.
    pub fn http_limits(&self) -> HttpLimits {
        self.state.http
    }

    /// The loaded models; the first is the default.
    pub fn models(&self) -> &[ModelInfo] {
        &self.state.pool.models
    }

    /// Stops accepting jobs, finishes the queued ones and joins the worker threads.
    pub fn shutdown(&self) {
        self.state.pool.shutdown();
    }
}

/// Serves `app` on `listener` under its [`HttpLimits`] until `shutdown` completes; then stops
/// accepting, gives the requests in flight up to the shutdown deadline, drops the connections
/// still open after it, and stops the workers (jobs whose client is gone are skipped).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ServeReport> {
    let router = app.router();
    let result = conn::serve_router(listener, router, app.state.http, shutdown).await;
    let stopper = app.clone();
    let _ = tokio::task::spawn_blocking(move || stopper.shutdown()).await;
    result
}

/// Completes on SIGINT (Ctrl+C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs the server until SIGINT or SIGTERM: loads the models, binds `config.bind`, prints the URL
/// to open on standard output, serves, and on a signal finishes the requests in flight.
///
/// # Errors
/// As [`App::start`], [`ServerError::Bind`] if the address is taken, [`ServerError::Io`] if the
/// runtime cannot start.
pub fn run(config: ServerConfig) -> Result<(), ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("colorize-http")
        .build()?;
    let app = App::start(&config)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| ServerError::Bind {
                addr: config.bind.to_string(),
                source,
            })?;
        let addr = listener.local_addr()?;
        let shown = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let names: Vec<&str> = app.models().iter().map(|m| m.name.as_str()).collect();
        println!(
            "colorize serve: open http://{shown}/ (models: {}; images in {}; Ctrl+C to stop)",
            names.join(", "),
            config.data_dir.display()
        );
        let deadline = config.http.shutdown_deadline;
        let shutdown = async move {
            shutdown_signal().await;
            eprintln!(
                "colorize serve: stopping; finishing the requests in flight (at most {} s; \
                 Ctrl+C again to stop at once)",
                deadline.as_secs_f64()
            );
            // A second signal ends the process at once, as users of servers expect.
            tokio::spawn(async {
                shutdown_signal().await;
                eprintln!("colorize serve: stopped at once (second signal)");
                std::process::exit(130);
            });
        };
        let report = serve(listener, app, shutdown).await?;
        if report.dropped_connections > 0 {
            println!(
                "colorize serve: stopped ({} connections dropped at the deadline)",
                report.dropped_connections
            );
        } else {
            println!("colorize serve: stopped");
        }
        Ok(())
    })
}
