//! The routes and their handlers, and the OpenAPI document generated from them.
//!
//! Every route is registered through `utoipa_axum::routes!`, which takes the path and method from
//! the handler's `#[utoipa::path]` annotation: a route cannot exist without its documentation, and
//! the document's schemas are the response types themselves (`ColorizeResponse`, `Health`...).
//! The layers, outermost first: tower-http's `TraceLayer` (one log line per request),
//! `CatchPanicLayer` (a panicking handler is answered 500 JSON), `SetResponseHeaderLayer`
//! (`X-Content-Type-Options: nosniff`), the metrics middleware, and axum's body limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::route_label;
use crate::store::{ImageId, StoredFile, Variant};
use crate::worker::{Job, ModelInfo};
use crate::{AppState, MAX_RENDER_SIZE, MIN_RENDER_SIZE};

/// The web page, embedded in the binary: HTML, CSS and JavaScript in one file, no external requests.
const INDEX_HTML: &str = include_str!("web/index.html");
/// The page may load only what it embeds and the images it gets from this server.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

type AppRef = State<Arc<AppState>>;

/// The document's fixed parts; the paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "colorize",
        description = "Colourise black-and-white photographs. Every error is JSON \
            {error, error_type} with the status listed; error_type is one of the Error schema's \
            enum."
    ),
    components(schemas(ErrorDoc)),
    tags(
        (name = "images", description = "Upload, fetch and delete photos"),
        (name = "service", description = "The page, models, health, metrics and this document")
    )
)]
struct ApiDoc;

/// Every route, each with its OpenAPI description.
fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(index))
        .routes(routes!(colorize))
        .routes(routes!(delete_image))
        .routes(routes!(original))
        .routes(routes!(colorized))
        .routes(routes!(models))
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(docs))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document generated from the handlers.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.body_limit;
    let (routes, doc) = api_routes().split_for_parts();
    state
        .openapi
        .get_or_init(|| Bytes::from(doc.to_json().unwrap_or_else(|_| "{}".to_string())));
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(CatchPanicLayer::custom(handler_panicked))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    // The route template, never the raw path (bounded, no client text in logs).
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(|m| m.as_str().to_string())
                        .unwrap_or_else(|| route_label(req.uri().path()).to_string());
                    tracing::info_span!(
                        target: "colorize_server::http",
                        "request",
                        method = %req.method(),
                        route = %route,
                    )
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    // Called inside the request's span: the line carries method and route.
                    tracing::info!(
                        target: "colorize_server::http",
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1e3,
                        "request"
                    );
                })
                .on_failure(()),
        )
        .with_state(state)
}

/// A panic in a handler (not in a worker: those are caught there) is answered 500 JSON.
fn handler_panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = crate::error::panic_message(panic.as_ref());
    tracing::error!(target: "colorize_server::http", panic = %what, "a handler panicked");
    ApiError::internal("the server failed on this request (an internal error, logged)")
        .into_response()
}

/// Counts every request and times it.
async fn track(State(state): AppRef, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let method = req.method().clone();
    let route = route_label(req.uri().path());
    let response = next.run(req).await;
    state.metrics.record_request(
        method.as_str(),
        route,
        response.status().as_u16(),
        t0.elapsed(),
    );
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such page or API route (see GET /docs)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[utoipa::path(
    get, path = "/", tag = "service",
    summary = "The web page",
    responses((status = 200, description = "The page: HTML, CSS and JavaScript in one file, no external requests.", content_type = "text/html", body = String))
)]
async fn index() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(INDEX_HTML),
    )
        .into_response()
}

fn openapi_response(state: &AppState) -> Response {
    let json = state.openapi.get().cloned().unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

#[utoipa::path(
    get, path = "/docs", tag = "service",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document, generated from the handlers.", content_type = "application/json", body = Object))
)]
async fn docs(State(state): AppRef) -> Response {
    openapi_response(&state)
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "service",
    summary = "This document (OpenAPI 3.1), at the conventional path",
    responses((status = 200, description = "The same document as GET /docs.", content_type = "application/json", body = Object))
)]
async fn openapi_json(State(state): AppRef) -> Response {
    openapi_response(&state)
}

/// The JSON body of every error: `error` for people, `error_type` for programs.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
struct ErrorDoc {
    /// A one-line explanation for people.
    error: String,
    /// A stable, machine-readable kind of error.
    #[schema(inline)]
    error_type: ErrorType,
}

/// Every kind of error the API returns.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ErrorType {
    BadRequest,
    MissingField,
    EmptyFile,
    InvalidId,
    BadHints,
    UnknownModel,
    RenderBudget,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    ImageTooLarge,
    UnsupportedMediaType,
    InvalidImage,
    Internal,
    QueueFull,
    ShuttingDown,
    InsufficientStorage,
}

/// The answer to a successful upload.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Colorized)]
struct ColorizeResponse {
    /// The image's id: 32 lowercase hexadecimal digits.
    id: String,
    /// Where the upload is kept, byte for byte.
    original_url: String,
    /// Where the colourised image is.
    colorized_url: String,
    /// Width in pixels (after EXIF orientation).
    width: u32,
    /// Height in pixels.
    height: u32,
    /// Time from request to answer, in milliseconds.
    millis: u64,
    /// The model used.
    model: String,
    /// The render size used (the shorter side the network saw, for the default size rule).
    render_size: u32,
}

/// The multipart form of `POST /api/colorize` (the handler reads the fields one by one as they
/// stream in).
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// JPEG, PNG, WebP, TIFF, BMP or GIF. Its file name is ignored.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Shorter side at which the network sees the photo (32 to 1024); default: the model's,
    /// lowered if needed to fit the server's network budget.
    #[schema(minimum = 32, maximum = 1024)]
    render_size: Option<u32>,
    /// A name from GET /api/models; default: the first model.
    model: Option<String>,
    /// User colour hints for models that take them (`takes_hints` in GET /api/models): a JSON
    /// list `[{"x": 120, "y": 80, "color": "#b03a2e", "radius": 4}]`, x and y in pixels of the
    /// photo, radius optional (pixels).
    hints: Option<String>,
}

fn multipart_error(e: MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit)
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

#[utoipa::path(
    post, path = "/api/colorize", tag = "images",
    summary = "Colourise an uploaded photo",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Colourised and stored.", body = ColorizeResponse,
            headers(("Location" = String, description = "The colourised image's URL"))),
        (status = 400, description = "missing_field (no 'image'), empty_file, unknown_model, bad_hints (not a list of hints, or a model without hints), render_budget (the render size asked for gives a network input over the server's budget on this photo), bad_request (malformed multipart, bad render_size).", body = ErrorDoc),
        (status = 408, description = "request_timeout: the body did not arrive within the body-read timeout; the connection is closed.", body = ErrorDoc),
        (status = 413, description = "payload_too_large (body over the body limit, 20 MB by default) or image_too_large (more pixels than the decode limit: decompression bombs).", body = ErrorDoc),
        (status = 415, description = "unsupported_media_type: the request is not multipart/form-data.", body = ErrorDoc),
        (status = 422, description = "invalid_image: not an image in a supported format, corrupt or truncated.", body = ErrorDoc),
        (status = 500, description = "internal: inference failed, or a bug (a panic, caught and logged; the server goes on).", body = ErrorDoc),
        (status = 503, description = "queue_full: every worker is busy and the queue is full, or shutting_down. Retry after the Retry-After header's seconds.", body = ErrorDoc,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
        (status = 507, description = "insufficient_storage: the server's disk is full; nothing was stored.", body = ErrorDoc,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    )
)]
async fn colorize(
    State(state): AppRef,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let t0 = Instant::now();
    let limit = state.body_limit;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.starts_with("multipart/form-data") {
        return Err(ApiError::unsupported_media_type());
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::bad_request(format!("malformed multipart request: {}", e.body_text()))
    })?;

    // The whole body must arrive within the body-read timeout: a client trickling its upload
    // cannot hold a connection (and the body's memory) for longer.
    let body_timeout = state.http.body_read_timeout;
    let read = async {
        let mut image: Option<Bytes> = None;
        let mut render_size: Option<u32> = None;
        let mut model: Option<String> = None;
        let mut hints: Vec<colorize_models::Hint> = Vec::new();
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, limit))?
        {
            // The client's file name is never read: it could name any path.
            match field.name().unwrap_or("") {
                "image" => {
                    if image.is_some() {
                        return Err(ApiError::bad_request("more than one 'image' field"));
                    }
                    image = Some(field.bytes().await.map_err(|e| multipart_error(e, limit))?);
                }
                "render_size" => {
                    let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                    let text = text.trim();
                    if !text.is_empty() {
                        let n = text
                            .parse::<u32>()
                            .ok()
                            .filter(|n| (MIN_RENDER_SIZE..=MAX_RENDER_SIZE).contains(n))
                            .ok_or_else(|| {
                                ApiError::bad_request(format!(
                                    "render_size must be a whole number from {MIN_RENDER_SIZE} to {MAX_RENDER_SIZE}"
                                ))
                            })?;
                        render_size = Some(n);
                    }
                }
                "model" => {
                    let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                    let text = text.trim();
                    if !text.is_empty() {
                        model = Some(text.to_string());
                    }
                }
                "hints" => {
                    let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                    if !text.trim().is_empty() {
                        hints = colorize_models::parse_hints(text.as_bytes())
                            .map_err(ApiError::bad_hints)?;
                    }
                }
                // Unknown fields are read and ignored (still under the body limit).
                _ => {
                    field.bytes().await.map_err(|e| multipart_error(e, limit))?;
                }
            }
        }
        Ok::<_, ApiError>((image, render_size, model, hints))
    };
    let (image, render_size, model, hints) = tokio::time::timeout(body_timeout, read)
        .await
        .map_err(|_| ApiError::request_timeout(body_timeout.as_secs_f64()))??;
    let image = image.ok_or_else(|| ApiError::missing_field("image"))?;
    if image.is_empty() {
        return Err(ApiError::empty_file());
    }
    let models = &state.pool.models;
    let model_index = match &model {
        None => 0,
        Some(name) => models
            .iter()
            .position(|m| &m.name == name)
            .ok_or_else(|| ApiError::unknown_model(name))?,
    };
    if !hints.is_empty() && !models[model_index].takes_hints {
        return Err(ApiError::bad_hints(format!(
            "model '{}' does not take colour hints",
            models[model_index].name
        )));
    }
    let (reply, answer) = oneshot::channel();
    state.pool.submit(Job {
        bytes: image,
        model: model_index,
        model_name: models[model_index].name.clone(),
        render_size,
        hints,
        reply,
    })?;
    let done = answer.await.map_err(|_| ApiError::shutting_down())??;
    let id = done.id.to_string();
    let body = ColorizeResponse {
        original_url: format!("/api/images/{id}/original"),
        colorized_url: format!("/api/images/{id}/colorized"),
        id,
        width: done.meta.width,
        height: done.meta.height,
        millis: t0.elapsed().as_millis() as u64,
        model: done.meta.model,
        render_size: done.meta.render_size,
    };
    let location = body.colorized_url.clone();
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// The id of a path, or 400 `invalid_id` (also for a segment that is not valid percent-encoded UTF-8).
type RawId = Result<Path<String>, PathRejection>;

fn parse_id(raw: &RawId) -> Result<ImageId, ApiError> {
    match raw {
        Ok(Path(s)) => ImageId::parse(s).ok_or_else(ApiError::invalid_id),
        Err(_) => Err(ApiError::invalid_id()),
    }
}

/// Bytes read from disk per chunk when a stored image is streamed.
const STREAM_CHUNK: usize = 64 * 1024;

async fn image_file(
    state: Arc<AppState>,
    raw: RawId,
    variant: Variant,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || store.open_file(&id, variant))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let StoredFile {
        file,
        len,
        content_type,
    } = found.ok_or_else(|| ApiError::not_found(format!("no image with id {id}")))?;
    let ext = match content_type.as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/tiff" => "tiff",
        "image/bmp" => "bmp",
        "image/gif" => "gif",
        _ => "bin",
    };
    let stem = match variant {
        Variant::Original => "original",
        Variant::Colorized => "colorized",
    };
    let disposition = format!("inline; filename=\"{stem}-{id}.{ext}\"");
    // Streamed in chunks from the open file: memory per download is one chunk, not the file.
    let stream =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), STREAM_CHUNK);
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, max-age=86400".to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(
    get, path = "/api/images/{id}/original", tag = "images",
    summary = "The uploaded photo, byte for byte",
    params(("id" = String, Path, description = "The image's id: 32 lowercase hexadecimal digits")),
    responses(
        (status = 200, description = "The upload, in its own content type; streamed.", content_type = "application/octet-stream", body = [u8]),
        (status = 400, description = "invalid_id: not 32 lowercase hexadecimal digits.", body = ErrorDoc),
        (status = 404, description = "not_found: never stored, deleted or expired.", body = ErrorDoc),
    )
)]
async fn original(State(state): AppRef, id: RawId) -> Result<Response, ApiError> {
    image_file(state, id, Variant::Original).await
}

#[utoipa::path(
    get, path = "/api/images/{id}/colorized", tag = "images",
    summary = "The colourised photo (JPEG for JPEG uploads, PNG otherwise)",
    params(("id" = String, Path, description = "The image's id: 32 lowercase hexadecimal digits")),
    responses(
        (status = 200, description = "The colourised image; streamed.", content_type = "image/jpeg", body = [u8]),
        (status = 400, description = "invalid_id: not 32 lowercase hexadecimal digits.", body = ErrorDoc),
        (status = 404, description = "not_found: never stored, deleted or expired.", body = ErrorDoc),
    )
)]
async fn colorized(State(state): AppRef, id: RawId) -> Result<Response, ApiError> {
    image_file(state, id, Variant::Colorized).await
}

#[utoipa::path(
    delete, path = "/api/images/{id}", tag = "images",
    summary = "Delete an image (original and colourised)",
    params(("id" = String, Path, description = "The image's id: 32 lowercase hexadecimal digits")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, description = "invalid_id: not 32 lowercase hexadecimal digits.", body = ErrorDoc),
        (status = 404, description = "not_found: never stored, already deleted or expired.", body = ErrorDoc),
    )
)]
async fn delete_image(State(state): AppRef, raw: RawId) -> Result<StatusCode, ApiError> {
    let id = parse_id(&raw)?;
    let store = state.store.clone();
    let deleted = tokio::task::spawn_blocking(move || store.delete(&id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if deleted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no image with id {id}")))
    }
}

/// The range of render sizes a client may ask for.
#[derive(Debug, Serialize, ToSchema)]
struct RenderRange {
    /// Smallest render size.
    min: u32,
    /// Largest render size.
    max: u32,
}

/// The models served.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Models)]
struct ModelsResponse {
    /// The model used when a request names none.
    default: Option<String>,
    /// Every model, the default first.
    models: Vec<ModelInfo>,
    /// The render sizes a client may ask for.
    render_size: RenderRange,
}

#[utoipa::path(
    get, path = "/api/models", tag = "service",
    summary = "The models served",
    responses((status = 200, description = "The models, the default first.", body = ModelsResponse))
)]
async fn models(State(state): AppRef) -> Json<ModelsResponse> {
    let models = &state.pool.models;
    Json(ModelsResponse {
        default: models.first().map(|m| m.name.clone()),
        models: models.clone(),
        render_size: RenderRange {
            min: MIN_RENDER_SIZE,
            max: MAX_RENDER_SIZE,
        },
    })
}

/// Liveness and queue state.
#[derive(Debug, Serialize, ToSchema)]
struct Health {
    /// `ok` when every worker runs, `degraded` when some have stopped, `unavailable` when none
    /// runs (then the status code is 503).
    status: &'static str,
    /// Worker threads started.
    workers: usize,
    /// Worker threads running now.
    live_workers: usize,
    /// Jobs waiting for a worker.
    queue_depth: usize,
    /// Jobs a worker is processing.
    in_progress: usize,
    /// Most jobs that may wait.
    queue_capacity: usize,
}

#[utoipa::path(
    get, path = "/health", tag = "service",
    summary = "Liveness and queue state",
    responses(
        (status = 200, description = "At least one worker runs.", body = Health),
        (status = 503, description = "No worker runs: uploads cannot be served.", body = Health),
    )
)]
async fn health(State(state): AppRef) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let live = state.metrics.workers_live.load(Relaxed);
    let workers = state.pool.workers;
    let status = if live == 0 {
        "unavailable"
    } else if live < workers {
        "degraded"
    } else {
        "ok"
    };
    let code = if live == 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        status,
        workers,
        live_workers: live,
        queue_depth: state.metrics.queue_depth.load(Relaxed),
        in_progress: state.metrics.in_progress.load(Relaxed),
        queue_capacity: state.pool.capacity,
    };
    (code, Json(body)).into_response()
}

#[utoipa::path(
    get, path = "/metrics", tag = "service",
    summary = "Metrics in the OpenMetrics text format: requests, latencies, queue depth, workers, images colourised",
    responses((status = 200, description = "For Prometheus and compatible scrapers.", content_type = "application/openmetrics-text", body = String))
)]
async fn metrics(State(state): AppRef) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state
            .metrics
            .render(state.pool.capacity, state.pool.workers),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_error_types_are_the_ones_returned() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let property = &doc["components"]["schemas"]["Error"]["properties"]["error_type"];
        // An inline enum, or (when it has its own description) `oneOf: [{enum}]`.
        let listed: Vec<&str> = property["enum"]
            .as_array()
            .or_else(|| property["oneOf"][0]["enum"].as_array())
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut want = crate::error::ERROR_TYPES.to_vec();
        let mut got = listed.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
    }
}
