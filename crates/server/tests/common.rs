//! Shared helpers: a started app with the bundled model, multipart bodies, test images.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use burn::prelude::Device;
use colorize_server::{App, ModelSource, Retention, ServerConfig};
use http_body_util::BodyExt;
use image::{DynamicImage, ImageFormat, Luma};
use tower::ServiceExt;

const BUNDLED_CONFIG: &[u8] = include_bytes!("../../../models/stable/config.json");
const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../../models/stable/model.safetensors");

/// Body limit of the test server (small, so 413 is cheap to provoke).
pub const TEST_BODY_LIMIT: usize = 1_000_000;
/// Pixel limit of the test server.
pub const TEST_MAX_PIXELS: u64 = 1_000_000;

/// The bundled model as a source named "default".
pub fn bundled_model() -> ModelSource {
    ModelSource::Bytes {
        name: "default".into(),
        config_json: Arc::from(BUNDLED_CONFIG),
        weights: Arc::from(BUNDLED_WEIGHTS),
    }
}

/// A test configuration: bundled model, small limits, render size 64 by default requests.
pub fn test_config(data_dir: &Path) -> ServerConfig {
    let mut c = ServerConfig::new(data_dir, vec![bundled_model()], Device::flex());
    c.body_limit = TEST_BODY_LIMIT;
    c.max_pixels = TEST_MAX_PIXELS;
    c.retention = Retention {
        max_images: None,
        max_age: None,
        max_bytes: None,
    };
    c
}

/// A started app over a fresh temporary data directory.
pub struct TestApp {
    pub app: App,
    pub router: Router,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(edit: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        edit(&mut config);
        let app = App::start(&config).expect("server starts");
        let router = app.router();
        Self { app, router, dir }
    }

    /// Serves the app on an ephemeral loopback port: returns the address, the sender that asks
    /// for a graceful shutdown, and the server task.
    pub async fn serve_on_socket(
        &self,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<colorize_server::ServeReport>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(colorize_server::serve(listener, self.app.clone(), async {
            let _ = stopped.await;
        }));
        (addr, stop, server)
    }

    pub fn images_dir(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    /// Every entry in the data directory, recursively, relative to it.
    pub fn all_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
                if p.is_dir() {
                    walk(root, &p, out);
                }
            }
        }
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }

    /// Checks that every image folder is complete (original, decodable colourised, meta.json) and
    /// that nothing else lies in the store; returns the number of images.
    pub fn assert_store_complete(&self) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir(self.images_dir())
            .expect("images dir")
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                name.len() == 32 && name.bytes().all(|c| c.is_ascii_hexdigit()),
                "unexpected entry in the store: {name}"
            );
            let mut files: Vec<String> = std::fs::read_dir(e.path())
                .expect("image dir")
                .flatten()
                .map(|f| f.file_name().to_string_lossy().to_string())
                .collect();
            files.sort();
            assert_eq!(files, ["colorized", "meta.json", "original"], "{name}");
            let colorized = std::fs::read(e.path().join("colorized")).expect("read");
            image::load_from_memory(&colorized).expect("colourised image decodes");
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path().join("meta.json")).expect("meta"))
                    .expect("meta.json parses");
            assert!(meta["width"].as_u64().is_some_and(|w| w > 0));
            n += 1;
        }
        n
    }
}

/// A multipart/form-data body: `(name, file name, bytes)`; `None` file name for text fields.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----colorize-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A POST /api/colorize request with these parts (Content-Length set).
pub fn upload_request(parts: &[(&str, Option<&str>, &[u8])]) -> Request<Body> {
    let (ct, body) = multipart(parts);
    Request::post("/api/colorize")
        .header("content-type", ct)
        .header("content-length", body.len())
        .body(Body::from(body))
        .expect("request")
}

/// A small gray gradient photo, encoded as `format`.
pub fn gray_image(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let img = image::GrayImage::from_fn(width, height, |x, y| {
        Luma([((x * 255 / width.max(1) + y * 128 / height.max(1)) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(img)
        .write_to(&mut out, format)
        .expect("encode");
    out.into_inner()
}

/// The example photo at the repository root.
pub fn example_photo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/1864UnionSoldier.jpg")
}

/// The whole body.
pub async fn body_bytes(r: Response<Body>) -> Vec<u8> {
    r.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

/// Checks an error response: the status, a one-line JSON body with `error` and this `error_type`.
pub async fn assert_error(r: Response<Body>, status: StatusCode, error_type: &str) {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = body_bytes(r).await;
    let text = String::from_utf8(body).expect("utf-8");
    assert!(!text.contains('\n'), "one line: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["error_type"], error_type, "{text}");
    assert!(v["error"].as_str().is_some_and(|s| !s.is_empty()), "{text}");
}

/// POSTs `body` to `http://addr{path}` over a real TCP connection; returns status and body.
pub async fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", content_type)
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let res = sender.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, body.to_vec())
}
