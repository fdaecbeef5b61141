//! Hostile clients and unlucky servers, over real sockets: slow headers and bodies, silent and
//! surplus connections, a shutdown with a client still trickling, panics in a worker, a full disk,
//! the network budget, streamed downloads, structured logs and the OpenAPI document.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use colorize_server::{FaultInjection, HttpLimits};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestApp, assert_error, body_bytes, gray_image, upload_request};

/// Limits with short timeouts, so the tests take seconds.
fn short_limits() -> HttpLimits {
    HttpLimits {
        header_read_timeout: Duration::from_secs(1),
        body_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        max_connections: 64,
        shutdown_deadline: Duration::from_secs(1),
    }
}

/// Reads until the server closes the connection (EOF or reset) or `limit` passes; returns what was
/// read and when the connection closed (`None`: still open at `limit`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Option<Instant>) {
    let mut got = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return (got, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, Some(Instant::now())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `bytes` one at a time, `gap` apart, until they run out or a write fails (the server
/// closed the connection); returns whether every byte was written.
async fn trickle(stream: &mut (impl AsyncWriteExt + Unpin), bytes: &[u8], gap: Duration) -> bool {
    for b in bytes {
        if stream.write_all(&[*b]).await.is_err() {
            return false;
        }
        tokio::time::sleep(gap).await;
    }
    true
}

/// GET `path` on a fresh connection; the status code, or `None` if no answer came within `limit`.
async fn get_status(addr: SocketAddr, path: &str, limit: Duration) -> Option<u16> {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out);
        text.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(limit, attempt).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_disconnected_while_others_are_served() {
    let t = TestApp::with(|c| c.http = short_limits());
    let (addr, stop, server) = t.serve_on_socket().await;

    // Headers one byte every 100 ms: the header timeout (1 s from the first byte) ends it.
    let slow_headers = tokio::spawn(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let t0 = Instant::now();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            let header = [
                b"POST /api/colorize HTTP/1.1\r\nHost: t\r\nX-Padding: ".as_slice(),
                &[b'a'; 200],
            ]
            .concat();
            trickle(&mut w, &header, Duration::from_millis(100)).await
        });
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
        writer.abort();
        closed.is_ok().then(|| t0.elapsed())
    });
    // Connects and sends nothing: the idle timeout ends it.
    let silent = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let t0 = Instant::now();
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(10)).await;
        closed.map(|c| c - t0)
    });
    // Full headers, then a body one byte every 100 ms: 408 after the body timeout, then closed.
    let slow_body = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"POST /api/colorize HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n",
        )
        .await
        .unwrap();
        let t0 = Instant::now();
        let (mut r, mut w) = s.into_split();
        let writer = tokio::spawn(async move {
            for _ in 0..200 {
                if w.write_all(b"-").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut got = Vec::new();
        let limit = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut got)).await;
        writer.abort();
        (
            limit.is_ok().then(|| t0.elapsed()),
            String::from_utf8_lossy(&got).to_string(),
        )
    });

    // Meanwhile other clients are served promptly.
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(
            get_status(addr, "/health", Duration::from_secs(5)).await,
            Some(200)
        );
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let slow_headers = slow_headers
        .await
        .unwrap()
        .expect("slow headers never disconnected");
    assert!(
        slow_headers >= Duration::from_millis(900) && slow_headers < Duration::from_secs(4),
        "slow headers closed after {slow_headers:?}"
    );
    let silent = silent
        .await
        .unwrap()
        .expect("silent client never disconnected");
    assert!(
        silent >= Duration::from_millis(900) && silent < Duration::from_secs(4),
        "silent client closed after {silent:?}"
    );
    let (took, response) = slow_body.await.unwrap();
    let took = took.expect("slow body never disconnected");
    assert!(
        took < Duration::from_secs(4),
        "slow body closed after {took:?}"
    );
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"error_type\":\"request_timeout\""),
        "{response}"
    );
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let t = TestApp::with(|c| {
        c.http = HttpLimits {
            max_connections: 2,
            idle_timeout: Duration::from_secs(30),
            ..short_limits()
        }
    });
    let (addr, stop, server) = t.serve_on_socket().await;
    let first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Two connections are open: a third is not served...
    assert_eq!(
        get_status(addr, "/health", Duration::from_millis(700)).await,
        None,
        "a third connection was served beyond the limit of 2"
    );
    // ...until one of them closes.
    drop(first);
    assert_eq!(
        get_status(addr, "/health", Duration::from_secs(5)).await,
        Some(200)
    );
    drop(second);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_within_the_deadline_with_a_client_still_trickling() {
    let t = TestApp::with(|c| {
        c.http = HttpLimits {
            header_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            shutdown_deadline: Duration::from_secs(1),
            ..short_limits()
        }
    });
    let (addr, stop, server) = t.serve_on_socket().await;
    let trickler = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").await;
        trickle(&mut s, &[b'a'; 600], Duration::from_millis(50)).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    stop.send(()).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server did not stop within 10 s")
        .unwrap()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "stopped after {took:?} (deadline 1 s)"
    );
    assert_eq!(report.dropped_connections, 1);
    // The trickling client finds its connection closed.
    let completed = tokio::time::timeout(Duration::from_secs(10), trickler)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !completed,
        "the trickling client could go on writing after the shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_decode_is_answered_500_and_the_next_upload_gets_201() {
    let armed = Arc::new(AtomicBool::new(true));
    let hook_armed = armed.clone();
    let t = TestApp::with(move |c| {
        c.faults = FaultInjection {
            before_decode: Some(Arc::new(move |_bytes: &[u8]| {
                if hook_armed.swap(false, Ordering::SeqCst) {
                    panic!("injected decode panic");
                }
            })),
            ..FaultInjection::default()
        }
    });
    let (addr, stop, server) = t.serve_on_socket().await;
    let png = gray_image(64, 48, image::ImageFormat::Png);
    let (ct, body) = crate::common::multipart(&[("image", Some("a.png"), &png)]);
    let (status, text) = crate::common::http_post(addr, "/api/colorize", &ct, body.clone()).await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&text));
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["error_type"], "internal");
    assert!(!armed.load(Ordering::SeqCst));

    let (status, text) = crate::common::http_post(addr, "/api/colorize", &ct, body).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&text));

    let r = t
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["live_workers"], 1);
    assert_eq!(v["workers"], 1);
    let metrics = String::from_utf8(
        body_bytes(
            t.send(Request::get("/metrics").body(Body::empty()).unwrap())
                .await,
        )
        .await,
    )
    .unwrap();
    assert!(
        metrics.contains("colorize_worker_panics_total 1"),
        "{metrics}"
    );
    assert_eq!(t.assert_store_complete(), 1);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_full_disk_is_answered_507_without_a_path_and_leaves_nothing_half_written() {
    let full = Arc::new(AtomicBool::new(true));
    let hook_full = full.clone();
    let t = TestApp::with(move |c| {
        c.faults = FaultInjection {
            store_write: Some(Arc::new(move |name: &str| {
                if name == "colorized" && hook_full.load(Ordering::SeqCst) {
                    Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
                } else {
                    Ok(())
                }
            })),
            ..FaultInjection::default()
        }
    });
    let png = gray_image(64, 48, image::ImageFormat::Png);
    let r = t
        .send(upload_request(&[("image", Some("a.png"), &png)]))
        .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body = body_bytes(r).await;
    let text = String::from_utf8(body).unwrap();
    let dir = t.dir.path().display().to_string();
    assert!(!text.contains(&dir) && !text.contains("/tmp"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error_type"], "insufficient_storage");
    // Nothing half-written: no image folder, no temporary folder, no stray file.
    assert_eq!(t.all_files(), ["images"], "{:?}", t.all_files());

    // Space again: the next upload is stored.
    full.store(false, Ordering::SeqCst);
    let r = t
        .send(upload_request(&[("image", Some("a.png"), &png)]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(t.assert_store_complete(), 1);
}

#[tokio::test]
async fn the_network_input_is_bounded_by_the_budget() {
    // 128x128 = 16384 pixels of network input at most.
    let t = TestApp::with(|c| c.max_network_pixels = 128 * 128);
    let wide = gray_image(128, 32, image::ImageFormat::Png);

    // render_size 1024 on a 4:1 photo would be a 4096x1024 input: refused, with the largest fit.
    let r = t
        .send(upload_request(&[
            ("image", Some("w.png"), &wide),
            ("render_size", None, b"1024"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = String::from_utf8(body_bytes(r).await).unwrap();
    assert!(text.contains("render_budget"), "{text}");
    assert!(text.contains("4096x1024"), "{text}");
    // The largest render size that fits: at least 64 (256x64 = 16384 pixels), below 128.
    let largest: u32 = text
        .split("at most ")
        .nth(1)
        .and_then(|s| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no largest size in {text}"));
    assert!((64..128).contains(&largest), "{text}");

    // Within the budget: served at the size asked for.
    let r = t
        .send(upload_request(&[
            ("image", Some("w.png"), &wide),
            ("render_size", None, b"64"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
    assert_eq!(v["render_size"], 64);

    // No render size asked for: the model's default is lowered to fit, not refused.
    let r = t
        .send(upload_request(&[("image", Some("w.png"), &wide)]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
    assert_eq!(v["render_size"], largest, "{v}");
}

#[tokio::test]
async fn stored_images_are_streamed_in_chunks() {
    let t = TestApp::new();
    // A noisy PNG compresses badly: about 250 KB, several 64 KiB chunks.
    let mut state = 12345u32;
    let noisy = image::GrayImage::from_fn(500, 500, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        image::Luma([(state >> 24) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(noisy)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    assert!(png.len() > 200_000, "{}", png.len());
    let r = t
        .send(upload_request(&[
            ("image", Some("n.png"), &png),
            ("render_size", None, b"64"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
    let r = t
        .send(
            Request::get(v["original_url"].as_str().unwrap())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        png.len().to_string()
    );
    let mut body = r.into_body();
    let (mut frames, mut got) = (0, Vec::new());
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        assert!(data.len() <= 64 * 1024, "a frame of {} bytes", data.len());
        got.extend_from_slice(&data);
        frames += 1;
    }
    assert_eq!(got, png, "the original comes back byte for byte");
    assert!(frames >= 4, "{frames} frames: the file was not streamed");
}

/// A `MakeWriter` into a shared buffer, to read the log lines back.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn every_request_is_one_json_log_line_with_its_route_template() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = TestApp::new();
    runtime.block_on(async {
        let r = t
            .send(Request::get("/health").body(Body::empty()).unwrap())
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = t
            .send(
                Request::get("/api/images/0123456789abcdef0123456789abcdef/original")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let requests: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each line is JSON"))
        .filter(|v| v["target"] == "colorize_server::http")
        .collect();
    assert_eq!(requests.len(), 2, "{text}");
    assert_eq!(requests[0]["level"], "INFO");
    assert_eq!(requests[0]["fields"]["message"], "request");
    assert_eq!(requests[0]["fields"]["status"], 200);
    assert!(requests[0]["fields"]["latency_ms"].as_f64().is_some());
    assert_eq!(requests[0]["span"]["method"], "GET");
    assert_eq!(requests[0]["span"]["route"], "/health");
    assert_eq!(requests[1]["fields"]["status"], 404);
    // The route template, never the raw path with the client's id in it.
    assert_eq!(requests[1]["span"]["route"], "/api/images/{id}/original");
    assert!(!text.contains("0123456789abcdef0123456789abcdef"), "{text}");
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let t = TestApp::new();
    let r = t
        .send(Request::get("/openapi.json").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<(String, String)> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            listed.push((method.to_uppercase(), path.clone()));
        }
    }
    listed.sort();
    let mut expected: Vec<(String, String)> = [
        ("GET", "/"),
        ("POST", "/api/colorize"),
        ("DELETE", "/api/images/{id}"),
        ("GET", "/api/images/{id}/original"),
        ("GET", "/api/images/{id}/colorized"),
        ("GET", "/api/models"),
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    expected.sort();
    assert_eq!(listed, expected);
    // Every documented operation reaches its handler (not the 404/405 fallbacks), and answers
    // with a status the document lists for it.
    for (method, path) in &listed {
        let uri = path.replace("{id}", "0123456789abcdef0123456789abcdef");
        let r = t
            .send(
                Request::builder()
                    .method(method.as_str())
                    .uri(&uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        let status = r.status().as_u16().to_string();
        let body = String::from_utf8_lossy(&body_bytes(r).await).to_string();
        assert!(
            !body.contains("no such page or API route") && status != "405",
            "{method} {path} is documented but not routed: {status} {body}"
        );
        let responses = &doc["paths"][path][method.to_lowercase()]["responses"];
        assert!(
            responses.get(&status).is_some(),
            "{method} {path} answered {status}, which the document does not list"
        );
    }
    // And a route that is not documented does not exist.
    let r = t
        .send(Request::get("/api/secret").body(Body::empty()).unwrap())
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
}
