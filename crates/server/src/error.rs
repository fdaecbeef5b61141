//! The server's error types: [`ServerError`] for starting and stopping the server, [`ApiError`] for
//! requests. Every `ApiError` becomes a status and a one-line JSON body `{"error", "error_type"}`
//! through [`IntoResponse`] (axum's error-handling example).

use std::path::PathBuf;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The data directory could not be created or read.
    #[error("{path}: {source}")]
    DataDir {
        /// The data directory (or a file in it).
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A model could not be loaded.
    #[error("model '{name}': {source}")]
    Model {
        /// The model's name.
        name: String,
        /// Why it could not be loaded.
        source: colorize_models::ModelError,
    },
    /// The configuration is inconsistent (no models, two models with one name, zero workers...).
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// Serving failed (the runtime or the listener broke).
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A request that failed: the status, a machine-readable `error_type` and a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable name for the kind of error (`"invalid_image"`, `"queue_full"`...).
    pub error_type: &'static str,
    /// A one-line explanation for people.
    pub message: String,
    /// Seconds after which a retry may succeed (sent as `Retry-After`; 503 only).
    pub retry_after: Option<u32>,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_type: &'a str,
}

/// Every `error_type` the API returns (the OpenAPI document's `Error.error_type` enum).
pub const ERROR_TYPES: [&str; 18] = [
    "bad_request",
    "missing_field",
    "empty_file",
    "invalid_id",
    "bad_hints",
    "unknown_model",
    "render_budget",
    "not_found",
    "method_not_allowed",
    "request_timeout",
    "payload_too_large",
    "image_too_large",
    "unsupported_media_type",
    "invalid_image",
    "internal",
    "queue_full",
    "shutting_down",
    "insufficient_storage",
];

impl ApiError {
    fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `bad_request`: a malformed request (bad multipart body, bad field value).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `missing_field`: the multipart body has no `image` field.
    pub fn missing_field(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_field",
            format!("the multipart field '{field}' is missing"),
        )
    }

    /// 400 `empty_file`: the uploaded file has 0 bytes.
    pub fn empty_file() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "empty_file",
            "the uploaded file is empty (0 bytes)",
        )
    }

    /// 400 `invalid_id`: the id is not 32 lowercase hexadecimal digits.
    pub fn invalid_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            "image ids are 32 lowercase hexadecimal digits",
        )
    }

    /// 400 `bad_hints`: the `hints` field is not a valid list of hints, or the model does not
    /// take hints.
    pub fn bad_hints(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_hints", message)
    }

    /// 400 `unknown_model`: no model of that name is loaded.
    pub fn unknown_model(name: &str) -> Self {
        let shown: String = name.chars().take(64).collect();
        Self::new(
            StatusCode::BAD_REQUEST,
            "unknown_model",
            format!("no model named '{shown}' (GET /api/models lists them)"),
        )
    }

    /// 404 `not_found`: no image with that id (never stored, deleted or expired), or no such route.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    /// 413 `payload_too_large`: the request body is over the body limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the upload is larger than the limit of {} bytes ({:.1} MB)",
                limit,
                limit as f64 / 1e6
            ),
        )
    }

    /// 413 `image_too_large`: the image declares more pixels than the decode limit.
    pub fn image_too_large(width: u32, height: u32, max_pixels: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
            format!(
                "the image is {width}x{height} = {} pixels, over the limit of {max_pixels} pixels",
                width as u64 * height as u64
            ),
        )
    }

    /// 415 `unsupported_media_type`: the request is not `multipart/form-data`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the photo as multipart/form-data with a field named 'image'",
        )
    }

    /// 422 `invalid_image`: the upload is not an image in a supported format, or it is corrupt.
    pub fn invalid_image(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
            format!(
                "the upload is not a readable JPEG, PNG, WebP, TIFF, BMP or GIF image: {detail}"
            ),
        )
    }

    /// 503 `queue_full`: every worker is busy and the queue is full; retry after `seconds`.
    pub fn queue_full(seconds: u32) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "the server is busy colourising other photos; try again in a few seconds",
        );
        e.retry_after = Some(seconds);
        e
    }

    /// 503 `shutting_down`: the workers have stopped.
    pub fn shutting_down() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        );
        e.retry_after = Some(5);
        e
    }

    /// 400 `render_budget`: the render size asked for gives a network input larger than the
    /// server's budget on this photo's aspect ratio; the message names the largest render size
    /// that fits.
    pub fn render_budget(
        render_size: u32,
        network: (usize, usize),
        budget: u64,
        largest: u32,
    ) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "render_budget",
            format!(
                "render_size {render_size} gives a {}x{} network input on this photo, over the \
                 server's budget of {budget} pixels; use a render_size of at most {largest}",
                network.0, network.1
            ),
        )
    }

    /// 408 `request_timeout`: the upload's body did not arrive within the body-read timeout.
    /// The connection is closed after the answer.
    pub fn request_timeout(seconds: f64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the upload did not arrive within {seconds} s"),
        )
    }

    /// 507 `insufficient_storage`: the server's disk (or quota) is full; nothing was stored.
    /// The message never names a server path.
    pub fn insufficient_storage() -> Self {
        let mut e = Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "insufficient_storage",
            "the server has no disk space left to store the image; try again later",
        );
        e.retry_after = Some(60);
        e
    }

    /// 500 `internal`: something failed on the server's side (an inference error, a panic
    /// caught in a worker or a handler, a storage error other than a full disk).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: &self.message,
            error_type: self.error_type,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`), for the log.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Maps a decoding error of colorize-core to the API's status: 413 for the pixel limit, 400 for an
/// empty file, 422 for everything else about the content.
pub(crate) fn from_decode_error(e: colorize_core::CoreError) -> ApiError {
    use colorize_core::CoreError;
    match e {
        CoreError::LimitsExceeded {
            width,
            height,
            max_pixels,
            ..
        } => ApiError::image_too_large(width, height, max_pixels),
        CoreError::EmptyFile { .. } => ApiError::empty_file(),
        CoreError::Decode { source, .. } => ApiError::invalid_image(source),
        CoreError::NoPixels { width, height, .. } => {
            ApiError::invalid_image(format!("the image has no pixels ({width}x{height})"))
        }
        other => ApiError::invalid_image(other),
    }
}
