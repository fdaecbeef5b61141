//! The REST API through the router (`oneshot`, no ports): the happy path and every bad input.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use image::ImageFormat;

use crate::common::{
    TEST_BODY_LIMIT, TestApp, assert_error, body_bytes, example_photo, gray_image, multipart,
    upload_request,
};

/// A multipart part: field name, file name (None for text fields), bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

async fn json(r: axum::http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(&body_bytes(r).await).expect("JSON body")
}

#[tokio::test]
async fn upload_get_and_delete_round_trip() {
    let t = TestApp::new();
    let png = gray_image(96, 64, ImageFormat::Png);
    let r = t
        .send(upload_request(&[
            ("image", Some("photo.png"), &png),
            ("render_size", None, b"64"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json(r).await;
    let id = v["id"].as_str().expect("id").to_string();
    assert_eq!(id.len(), 32);
    assert_eq!(v["width"], 96);
    assert_eq!(v["height"], 64);
    assert_eq!(v["model"], "default");
    assert_eq!(v["render_size"], 64);
    assert!(v["millis"].as_u64().is_some());
    assert_eq!(v["original_url"], format!("/api/images/{id}/original"));
    assert_eq!(v["colorized_url"], format!("/api/images/{id}/colorized"));

    // The original comes back byte for byte, with its real content type.
    let r = t
        .send(
            Request::get(format!("/api/images/{id}/original"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(body_bytes(r).await, png);

    // The colourised image is a PNG of the same size.
    let r = t
        .send(
            Request::get(format!("/api/images/{id}/colorized"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    let out =
        image::load_from_memory_with_format(&body_bytes(r).await, ImageFormat::Png).expect("PNG");
    assert_eq!((out.width(), out.height()), (96, 64));
    assert_eq!(t.assert_store_complete(), 1);

    // Delete: 204, then 404 for everything about that id.
    let del = || {
        Request::delete(format!("/api/images/{id}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(t.send(del()).await.status(), StatusCode::NO_CONTENT);
    assert_error(t.send(del()).await, StatusCode::NOT_FOUND, "not_found").await;
    for variant in ["original", "colorized"] {
        let r = t
            .send(
                Request::get(format!("/api/images/{id}/{variant}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_eq!(t.assert_store_complete(), 0);
}

#[tokio::test]
async fn jpeg_upload_gives_a_colour_jpeg_with_the_model_default_render_size() {
    let t = TestApp::new();
    let jpg = std::fs::read(example_photo()).expect("example photo");
    let r = t
        .send(upload_request(&[("image", Some("soldier.jpg"), &jpg)]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json(r).await;
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(466))
    );
    assert_eq!(v["render_size"], t.app.models()[0].render_size);
    let url = v["colorized_url"].as_str().unwrap().to_string();
    let r = t.send(Request::get(url).body(Body::empty()).unwrap()).await;
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&body_bytes(r).await)
        .expect("JPEG")
        .to_rgb8();
    // A colourised photo is not gray: some pixels have a != b channels.
    let coloured = img
        .pixels()
        .filter(|p| p.0[0].abs_diff(p.0[1]) > 4 || p.0[1].abs_diff(p.0[2]) > 4)
        .count();
    assert!(
        coloured > img.len() / 3 / 100,
        "only {coloured} coloured pixels"
    );
}

#[tokio::test]
async fn bad_uploads_get_4xx_json_and_leave_nothing_on_disk() {
    let t = TestApp::new();
    let png = gray_image(40, 30, ImageFormat::Png);
    let jpg = gray_image(40, 30, ImageFormat::Jpeg);
    let text = b"this is not an image at all, just some text".to_vec();
    let truncated_png = png[..png.len() / 2].to_vec();
    let truncated_jpg = jpg[..jpg.len() / 2].to_vec();
    let mut corrupt = png.clone();
    for b in corrupt.iter_mut().skip(40) {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    // A decompression bomb: a 2000x2000 black PNG is a few kB but 4 megapixels decoded.
    let mut bomb = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(image::GrayImage::new(2000, 2000))
        .write_to(&mut bomb, ImageFormat::Png)
        .unwrap();
    let bomb = bomb.into_inner();
    assert!(bomb.len() < TEST_BODY_LIMIT / 20);
    let forged = forged_png_header(100_000, 100_000);

    let cases: Vec<(&str, Vec<Part>, StatusCode, &str)> = vec![
        (
            "text",
            vec![("image", Some("a.png"), &text)],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "truncated png",
            vec![("image", Some("a.png"), &truncated_png)],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "truncated jpeg",
            vec![("image", Some("a.jpg"), &truncated_jpg)],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "corrupt png",
            vec![("image", Some("a.png"), &corrupt)],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_image",
        ),
        (
            "empty file",
            vec![("image", Some("a.png"), b"")],
            StatusCode::BAD_REQUEST,
            "empty_file",
        ),
        (
            "missing field",
            vec![("render_size", None, b"128")],
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "wrong field name",
            vec![("photo", Some("a.png"), &png)],
            StatusCode::BAD_REQUEST,
            "missing_field",
        ),
        (
            "two images",
            vec![
                ("image", Some("a.png"), &png),
                ("image", Some("b.png"), &png),
            ],
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "render size text",
            vec![
                ("image", Some("a.png"), &png),
                ("render_size", None, b"big"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "render size small",
            vec![("image", Some("a.png"), &png), ("render_size", None, b"8")],
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "render size huge",
            vec![
                ("image", Some("a.png"), &png),
                ("render_size", None, b"100000"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "unknown model",
            vec![
                ("image", Some("a.png"), &png),
                ("model", None, b"../../etc/passwd"),
            ],
            StatusCode::BAD_REQUEST,
            "unknown_model",
        ),
        (
            "hints for a model that takes none",
            vec![
                ("image", Some("a.png"), &png),
                (
                    "hints",
                    None,
                    br##"[{"x": 1, "y": 1, "color": "#ff0000"}]"##,
                ),
            ],
            StatusCode::BAD_REQUEST,
            "bad_hints",
        ),
        (
            "malformed hints",
            vec![
                ("image", Some("a.png"), &png),
                ("hints", None, b"[{\"x\": 1}]"),
            ],
            StatusCode::BAD_REQUEST,
            "bad_hints",
        ),
        (
            "decompression bomb",
            vec![("image", Some("a.png"), &bomb)],
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
        ),
        (
            "forged header",
            vec![("image", Some("a.png"), &forged)],
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
        ),
    ];
    for (what, parts, status, error_type) in cases {
        eprintln!("case: {what}");
        assert_error(t.send(upload_request(&parts)).await, status, error_type).await;
    }

    // Not multipart: JSON, no content type, form-urlencoded.
    for ct in [
        Some("application/json"),
        None,
        Some("application/x-www-form-urlencoded"),
        Some("image/png"),
    ] {
        let mut b = Request::post("/api/colorize");
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let r = t.send(b.body(Body::from(png.clone())).unwrap()).await;
        assert_error(
            r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
    // Multipart without a boundary, and an empty multipart body.
    let r = t
        .send(
            Request::post("/api/colorize")
                .header("content-type", "multipart/form-data")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(r, StatusCode::BAD_REQUEST, "bad_request").await;
    let (ct, _) = multipart(&[]);
    let r = t
        .send(
            Request::post("/api/colorize")
                .header("content-type", &ct)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Garbage that claims to be multipart.
    let r = t
        .send(
            Request::post("/api/colorize")
                .header("content-type", &ct)
                .body(Body::from("garbage\r\n--x"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Oversized body: refused from Content-Length at once, and while streaming without it.
    let big = vec![7u8; TEST_BODY_LIMIT + 1000];
    assert_error(
        t.send(upload_request(&[("image", Some("big.png"), &big)]))
            .await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    let (ct, body) = multipart(&[("image", Some("big.png"), &big)]);
    let r = t
        .send(
            Request::post("/api/colorize")
                .header("content-type", ct)
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    // Nothing was stored, and nothing but the empty store exists.
    assert_eq!(t.assert_store_complete(), 0);
    assert_eq!(t.all_files(), ["images"]);
}

#[tokio::test]
async fn a_client_file_name_never_becomes_a_path() {
    let t = TestApp::new();
    let png = gray_image(40, 30, ImageFormat::Png);
    let outside = t.dir.path().parent().unwrap().join("evil.png");
    let names = [
        "../../evil.png".to_string(),
        "..%2F..%2Fevil.png".to_string(),
        outside.display().to_string(),
        "/etc/passwd".to_string(),
    ];
    for name in &names {
        let r = t
            .send(upload_request(&[
                ("image", Some(name), &png),
                ("render_size", None, b"32"),
            ]))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
    }
    assert!(!outside.exists());
    assert_eq!(t.assert_store_complete(), names.len());
    assert!(
        t.all_files()
            .iter()
            .all(|f| !f.contains("evil") && !f.contains("passwd"))
    );
}

#[tokio::test]
async fn malformed_and_unknown_ids_are_refused() {
    let t = TestApp::new();
    let unknown = "0123456789abcdef0123456789abcdef";
    for path in [
        format!("/api/images/{unknown}/original"),
        format!("/api/images/{unknown}/colorized"),
    ] {
        let r = t
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let r = t
        .send(
            Request::delete(format!("/api/images/{unknown}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;

    for bad in [
        "abc",
        "0123456789ABCDEF0123456789ABCDEF",
        "0123456789abcdef0123456789abcdef0",
        "..",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e%2f%2e%2e%2fetc",
        "%2Fetc%2Fpasswd",
        "images",
        "0123456789abcdef0123456789abcde%00",
        "%FF%FE",
    ] {
        for path in [
            format!("/api/images/{bad}/original"),
            format!("/api/images/{bad}/colorized"),
        ] {
            let r = t
                .send(Request::get(&path).body(Body::empty()).unwrap())
                .await;
            assert_error(r, StatusCode::BAD_REQUEST, "invalid_id").await;
        }
        let r = t
            .send(
                Request::delete(format!("/api/images/{bad}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_error(r, StatusCode::BAD_REQUEST, "invalid_id").await;
    }
    // Paths that are not routes at all.
    for path in [
        "/api/images/../../etc/passwd",
        "/api/images/a/b/original",
        "/../etc/passwd",
        "/nope",
    ] {
        let r = t
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let r = t
        .send(Request::put("/api/colorize").body(Body::empty()).unwrap())
        .await;
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    assert_eq!(t.all_files(), ["images"]);
}

#[tokio::test]
async fn parallel_uploads_succeed_or_get_a_clean_503() {
    let t = TestApp::with(|c| {
        c.workers = 1;
        c.queue_capacity = 2;
    });
    let png = gray_image(64, 48, ImageFormat::Png);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let router = t.router.clone();
        let req = upload_request(&[("image", Some("p.png"), &png), ("render_size", None, b"64")]);
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            router.oneshot(req).await.expect("infallible")
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for task in tasks {
        let r = task.await.expect("no panic");
        match r.status() {
            StatusCode::CREATED => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(r.headers().get("retry-after").is_some());
                assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "queue_full").await;
                busy += 1;
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(ok + busy, 16);
    assert!(ok >= 1);
    assert!(
        busy >= 1,
        "a queue of 2 and one worker cannot take 16 at once"
    );
    assert_eq!(t.assert_store_complete(), ok);
    let r = t
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    let text = String::from_utf8(body_bytes(r).await).unwrap();
    assert!(
        text.contains(&format!("colorize_images_colorized_total {ok}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("colorize_rejected_queue_full_total {busy}")),
        "{text}"
    );
    assert!(text.contains("colorize_queue_depth 0"), "{text}");
    assert!(text.contains(&format!(
        "colorize_http_requests_total{{method=\"POST\",route=\"/api/colorize\",status=\"503\"}} {busy}"
    )), "{text}");
}

#[tokio::test]
async fn service_routes_describe_themselves() {
    let t = TestApp::new();
    let r = t
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v = json(r).await;
    assert_eq!(v["status"], "ok");
    assert_eq!(v["queue_capacity"], 8);

    let v = json(
        t.send(Request::get("/api/models").body(Body::empty()).unwrap())
            .await,
    )
    .await;
    assert_eq!(v["default"], "default");
    assert_eq!(v["models"][0]["name"], "default");
    assert!(v["models"][0]["render_size"].as_u64().is_some());

    let r = t
        .send(Request::get("/docs").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = json(r).await;
    let post = &doc["paths"]["/api/colorize"]["post"]["responses"];
    for status in ["201", "400", "413", "415", "422", "500", "503"] {
        assert!(post.get(status).is_some(), "/api/colorize lacks {status}");
    }
    for path in ["/api/images/{id}/original", "/api/images/{id}/colorized"] {
        for status in ["200", "400", "404"] {
            assert!(
                doc["paths"][path]["get"]["responses"].get(status).is_some(),
                "{path} {status}"
            );
        }
    }

    let r = t
        .send(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(body_bytes(r).await).unwrap();
    assert!(
        text.contains(
            "colorize_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE colorize_http_request_duration_seconds histogram"));
    assert!(text.contains("colorize_images_colorized_total 0"));

    // The page: embedded, strict CSP, no external URL anywhere in it.
    let r = t.send(Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = String::from_utf8(body_bytes(r).await).unwrap();
    assert!(html.contains("id=\"file\"") && html.contains("/api/colorize"));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"));
    assert!(html.contains("name=\"viewport\""));
    // Every error type the API can return has a message on the page.
    let types =
        doc["components"]["schemas"]["Error"]["properties"]["error_type"]["oneOf"][0]["enum"]
            .as_array()
            .unwrap();
    assert!(types.len() >= 18, "{types:?}");
    for ty in types {
        let ty = ty.as_str().unwrap();
        assert!(
            html.contains(&format!("{ty}:")),
            "the page has no message for {ty}"
        );
    }
}

/// A PNG whose header declares `width x height` (no pixel data): the bomb is refused from the
/// header, before any allocation.
fn forged_png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A few bytes of (bogus) pixel data: the decoder reads the header up to the first IDAT.
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    out.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    let iend = b"IEND";
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(iend);
    out.extend_from_slice(&crc32(iend).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An imported DDColor (the reduced tiny fixture of scripts/reference/ddcolor.py) chosen by name:
/// it runs at a render size it takes, and a render size its network cannot take (not a multiple
/// of 32) is a 400 naming the sizes that work, with nothing stored.
#[tokio::test]
async fn an_imported_ddcolor_model_runs_and_refuses_a_render_size_it_cannot_take() {
    let models = tempfile::tempdir().expect("tempdir");
    let dir = models.path().join("ddc");
    colorize_import::import(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/tests/fixtures/ddcolor-tiny/checkpoint.pth"),
        None,
        &dir,
        false,
    )
    .expect("the DDColor fixture imports");
    let t = TestApp::with(|c| {
        c.models.push(colorize_server::ModelSource::Dir {
            name: "ddc".into(),
            path: dir.clone(),
        })
    });
    let png = gray_image(96, 64, ImageFormat::Png);
    let r = t
        .send(upload_request(&[
            ("image", Some("photo.png"), &png),
            ("model", None, b"ddc"),
            ("render_size", None, b"64"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json(r).await;
    assert_eq!(
        (v["model"].as_str(), v["width"].as_u64()),
        (Some("ddc"), Some(96))
    );
    let stored = t.assert_store_complete();
    let r = t
        .send(upload_request(&[
            ("image", Some("photo.png"), &png),
            ("model", None, b"ddc"),
            ("render_size", None, b"100"),
        ]))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v = json(r).await;
    assert_eq!(v["error_type"], "bad_request", "{v}");
    let message = v["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("multiple of 32") && message.contains("try 96 or 128"),
        "{v}"
    );
    assert_eq!(t.assert_store_complete(), stored);
}
