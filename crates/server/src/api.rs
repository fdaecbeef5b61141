//! The routes and their handlers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::metrics::route_label;
use crate::store::{ImageId, Variant};
use crate::worker::Job;
use crate::{AppState, MAX_RENDER_SIZE, MIN_RENDER_SIZE};

/// The web page, embedded in the binary: HTML, CSS and JavaScript in one file, no external requests.
const INDEX_HTML: &str = include_str!("web/index.html");
/// The OpenAPI 3 description of the API.
const OPENAPI_JSON: &str = include_str!("openapi.json");
/// The page may load only what it embeds and the images it gets from this server.
const PAGE_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
     img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

type AppRef = State<Arc<AppState>>;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.body_limit;
    Router::new()
        .route("/", get(index))
        .route("/api/colorize", post(colorize))
        .route("/api/images/{id}", axum::routing::delete(delete_image))
        .route("/api/images/{id}/original", get(original))
        .route("/api/images/{id}/colorized", get(colorized))
        .route("/api/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/docs", get(docs))
        .route("/openapi.json", get(docs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts every request, times it, and adds `X-Content-Type-Options: nosniff`.
async fn track(State(state): AppRef, req: Request, next: Next) -> Response {
    let t0 = Instant::now();
    let method = req.method().clone();
    let route = route_label(req.uri().path());
    let mut response = next.run(req).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
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

async fn docs() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// The answer to a successful upload.
#[derive(Debug, Serialize)]
struct ColorizeResponse {
    id: String,
    original_url: String,
    colorized_url: String,
    width: u32,
    height: u32,
    millis: u64,
    model: String,
    render_size: u32,
}

fn multipart_error(e: MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large(limit)
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

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

async fn image_file(
    state: Arc<AppState>,
    raw: RawId,
    variant: Variant,
) -> Result<Response, ApiError> {
    let id = parse_id(&raw)?;
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking(move || store.read(&id, variant))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let (bytes, content_type) =
        found.ok_or_else(|| ApiError::not_found(format!("no image with id {id}")))?;
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
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, max-age=86400".to_string()),
        ],
        bytes,
    )
        .into_response())
}

async fn original(State(state): AppRef, id: RawId) -> Result<Response, ApiError> {
    image_file(state, id, Variant::Original).await
}

async fn colorized(State(state): AppRef, id: RawId) -> Result<Response, ApiError> {
    image_file(state, id, Variant::Colorized).await
}

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

async fn models(State(state): AppRef) -> Response {
    let models = &state.pool.models;
    Json(serde_json::json!({
        "default": models.first().map(|m| m.name.as_str()),
        "models": models,
        "render_size": { "min": MIN_RENDER_SIZE, "max": MAX_RENDER_SIZE },
    }))
    .into_response()
}

async fn health(State(state): AppRef) -> Response {
    let depth = state
        .metrics
        .queue_depth
        .load(std::sync::atomic::Ordering::Relaxed);
    Json(serde_json::json!({
        "status": "ok",
        "workers": state.pool.workers,
        "queue_depth": depth,
        "in_progress": state.metrics.in_progress.load(std::sync::atomic::Ordering::Relaxed),
        "queue_capacity": state.pool.capacity,
    }))
    .into_response()
}

async fn metrics(State(state): AppRef) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state
            .metrics
            .render(state.pool.capacity, state.pool.workers),
    )
        .into_response()
}
