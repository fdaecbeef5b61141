//! Graceful shutdown over a real socket (an ephemeral port): a request in flight when the signal
//! comes is finished; afterwards uploads are refused with 503.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::common::{
    TestApp, assert_error, body_bytes, example_photo, http_post, multipart, upload_request,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight() {
    let t = TestApp::new();
    let (addr, stop, server) = t.serve_on_socket().await;

    let jpg = std::fs::read(example_photo()).expect("example photo");
    let (ct, body) = multipart(&[
        ("image", Some("a.jpg"), &jpg),
        ("render_size", None, b"384"),
    ]);
    let client = tokio::spawn(async move { http_post(addr, "/api/colorize", &ct, body).await });

    // Wait until a worker has the job, then ask the server to stop.
    let mut started = false;
    for _ in 0..400 {
        let r = t
            .send(Request::get("/health").body(Body::empty()).unwrap())
            .await;
        let v: serde_json::Value = serde_json::from_slice(&body_bytes(r).await).unwrap();
        if v["in_progress"].as_u64() == Some(1) {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started, "the upload never reached a worker");
    stop.send(()).expect("server still running");

    let (status, body) = client.await.expect("client");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("server stops")
        .expect("no panic")
        .expect("no I/O error");
    assert_eq!(t.assert_store_complete(), 1);

    // The workers are gone: a new upload is refused cleanly.
    let png = crate::common::gray_image(32, 32, image::ImageFormat::Png);
    let r = t
        .send(upload_request(&[("image", Some("a.png"), &png)]))
        .await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "shutting_down").await;
}
