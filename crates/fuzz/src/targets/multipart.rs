//! `multipart`: mutated `POST /api/colorize` requests through the server's router.
//!
//! A started [`App`] (two tiny models, one taking colour hints; a RAM-disk data folder; 1 MB
//! bodies, 1-megapixel images, 16 images kept) answers each request through
//! [`tower::ServiceExt::oneshot`] on a single-threaded tokio runtime, as the server's own tests
//! do. An input is a request built from parts (the image, `render_size`, `model`, `hints`,
//! unknown fields) and then changed at every level: the boundary (long, empty, quoted, not the
//! one the header names), part headers (`Content-Disposition` variants, field names, file
//! names, header folding, bare LF, many or huge headers), the request's `Content-Type` and
//! declared `Content-Length` (absent, huge, negative, wrong), the image bytes (the image
//! mutator), and the whole body byte by byte (truncation, flips, splices).
//!
//! Crashes besides panics (in the handler or in a worker thread): a 5xx status other than 500,
//! 503 and 507, a 5xx without a JSON body, a body that cannot be read.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request};
use burn::prelude::Device;
use colorize_server::{App, ModelSource, Retention, ServerConfig};
use tower::ServiceExt;

use crate::json::mutate_json_text;
use crate::mutate::{mutate, mutate_bytes};
use crate::rng::Rng;
use crate::seeds::{Seed, image_seeds};
use crate::targets::{Target, TargetOptions, scratch_dir};

/// Body limit of the fuzzed server.
pub const BODY_LIMIT: usize = 1_000_000;
/// Pixel limit of the fuzzed server.
pub const MAX_PIXELS: u64 = 1_000_000;

/// One HTTP request: `POST /api/colorize` with these headers and body.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpInput {
    /// The `Content-Type` header, if any.
    pub content_type: Option<Vec<u8>>,
    /// The `Content-Length` header, if any (need not match the body).
    pub content_length: Option<Vec<u8>>,
    /// The body.
    pub body: Vec<u8>,
}

struct Server {
    _data: tempfile::TempDir,
    _models: Vec<tempfile::TempDir>,
    app: App,
    router: Router,
}

/// The `multipart` target.
pub struct Multipart {
    seeds: Vec<Seed>,
    server: Option<Server>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Multipart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field("seeds", &self.seeds.len())
            .finish()
    }
}

const BOUNDARY: &str = "----colorize-fuzz-7MA4YWxkTrZu0gW";

/// One part before rendering.
struct Part {
    headers: Vec<Vec<u8>>,
    content: Vec<u8>,
}

fn disposition(name: &str, file: Option<&str>) -> Vec<u8> {
    match file {
        Some(f) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\""),
        None => format!("Content-Disposition: form-data; name=\"{name}\""),
    }
    .into_bytes()
}

/// Odd but plausible `Content-Disposition` lines for a field `name`.
fn odd_disposition(rng: &mut Rng, name: &str) -> Vec<u8> {
    let long = "x".repeat(rng.range(100, 20_000));
    let v = match rng.below(14) {
        0 => format!("Content-Disposition: form-data; name={name}"),
        1 => format!("content-disposition: FORM-DATA; NAME=\"{name}\""),
        2 => format!("Content-Disposition: form-data; name*=UTF-8''{name}"),
        3 => "Content-Disposition: form-data".to_string(),
        4 => format!("Content-Disposition: attachment; name=\"{name}\""),
        5 => format!("Content-Disposition: form-data; name=\"{name}\"; name=\"other\""),
        6 => format!("Content-Disposition: form-data; name=\"{name}\\\"\"; filename=\"a\\\"b\""),
        7 => format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename=\"../../../etc/passwd\""
        ),
        8 => format!("Content-Disposition: form-data; name=\"{long}\""),
        9 => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{long}\""),
        10 => format!("Content-Disposition: form-data; name=\"{name}"),
        11 => format!(
            "Content-Disposition: form-data; name=\"{name}\"; filename*=UTF-8''%E2%82%AC%00.png"
        ),
        12 => "Content-Disposition: ;;;=\"\"".to_string(),
        _ => format!("Content-Disposition: form-data;\r\n name=\"{name}\""),
    };
    v.into_bytes()
}

fn pick_bytes<'a>(rng: &mut Rng, options: &[&'a [u8]]) -> &'a [u8] {
    options[rng.below(options.len())]
}

fn text_value(rng: &mut Rng, field: &str) -> Vec<u8> {
    let v: &[u8] = match field {
        "render_size" => pick_bytes(
            rng,
            &[
                b"32".as_slice(),
                b"32",
                b" 32 ",
                b"",
                b"0",
                b"31",
                b"1024",
                b"1025",
                b"-32",
                b"4294967296",
                b"99999999999999999999",
                b"3.2e1",
                b"0x20",
                b"32\0",
                b"\xff\xfe",
            ],
        ),
        "model" => pick_bytes(
            rng,
            &[
                b"tiny".as_slice(),
                b"hints",
                b"",
                b"nope",
                b"../tiny",
                b"tiny\0",
                b"\xc3\x28",
            ],
        ),
        _ => b"whatever",
    };
    v.to_vec()
}

fn hints_value(rng: &mut Rng) -> Vec<u8> {
    let base = serde_json::json!([
        {"x": 3, "y": 2.5, "color": "#b03a2e"},
        {"x": 10, "y": 8, "color": "3366cc", "radius": 2}
    ]);
    match rng.below(4) {
        0 => serde_json::to_vec(&base).unwrap_or_default(),
        1 => b"[]".to_vec(),
        _ => mutate_json_text(rng, &base, false),
    }
}

impl Multipart {
    fn pick_image(&self, rng: &mut Rng) -> Vec<u8> {
        let a = rng.below(self.seeds.len());
        let b = rng.below(self.seeds.len());
        let mut img = self.seeds[a].bytes.clone();
        if rng.one_in(3) {
            mutate(rng, &mut img, &self.seeds[b].bytes);
        }
        img
    }

    fn start(&mut self) -> Result<(), String> {
        if self.runtime.is_none() {
            self.runtime = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        if self.server.is_none() {
            let (tiny_tmp, tiny) = crate::targets::model_dir::tiny_model(false)?;
            let (hints_tmp, hints) = crate::targets::model_dir::tiny_model(true)?;
            let data = scratch_dir("colorize-fuzz-server-").map_err(|e| e.to_string())?;
            let models = vec![
                ModelSource::dir(&tiny).map_err(|e| e.to_string())?,
                ModelSource::dir(&hints).map_err(|e| e.to_string())?,
            ];
            let mut config = ServerConfig::new(data.path(), models, Device::flex());
            config.body_limit = BODY_LIMIT;
            config.max_pixels = MAX_PIXELS;
            config.retention = Retention {
                max_images: Some(16),
                max_age: None,
                max_bytes: None,
            };
            let app = App::start(&config).map_err(|e| e.to_string())?;
            let router = app.router();
            self.server = Some(Server {
                _data: data,
                _models: vec![tiny_tmp, hints_tmp],
                app,
                router,
            });
        }
        Ok(())
    }
}

fn is_json(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok()
}

impl Target for Multipart {
    type Input = HttpInput;
    const NAME: &'static str = "multipart";

    fn new(options: &TargetOptions) -> Self {
        Self {
            seeds: image_seeds(options.data_dir.as_deref(), options.corpus.as_deref(), 48),
            server: None,
            runtime: None,
        }
    }

    fn generate(&mut self, rng: &mut Rng, _index: u64) -> HttpInput {
        // The parts.
        let mut parts = Vec::new();
        let image_part = |rng: &mut Rng, this: &Self| Part {
            headers: vec![
                disposition("image", Some("photo.png")),
                b"Content-Type: application/octet-stream".to_vec(),
            ],
            content: this.pick_image(rng),
        };
        if !rng.one_in(16) {
            parts.push(image_part(rng, self));
        }
        if !rng.one_in(4) {
            parts.push(Part {
                headers: vec![disposition("render_size", None)],
                content: if rng.one_in(3) {
                    text_value(rng, "render_size")
                } else {
                    b"32".to_vec()
                },
            });
        }
        if rng.one_in(3) {
            parts.push(Part {
                headers: vec![disposition("model", None)],
                content: text_value(rng, "model"),
            });
        }
        if rng.one_in(4) {
            parts.push(Part {
                headers: vec![disposition("hints", None)],
                content: hints_value(rng),
            });
            if rng.one_in(2) {
                parts.push(Part {
                    headers: vec![disposition("model", None)],
                    content: b"hints".to_vec(),
                });
            }
        }
        if rng.one_in(8) {
            parts.push(Part {
                headers: vec![disposition("comment", Some("notes.txt"))],
                content: vec![b'z'; rng.small_len(5000)],
            });
        }
        if rng.one_in(16) {
            parts.push(image_part(rng, self));
        }
        // Shuffle once in a while: fields after the image, the image last.
        if parts.len() > 1 && rng.one_in(4) {
            let i = rng.below(parts.len());
            let j = rng.below(parts.len());
            parts.swap(i, j);
        }
        // Part headers.
        for p in &mut parts {
            if rng.one_in(8) {
                let name = match std::str::from_utf8(&p.headers[0]) {
                    Ok(s) if s.contains("\"image\"") => "image",
                    Ok(s) if s.contains("render_size") => "render_size",
                    Ok(s) if s.contains("hints") => "hints",
                    Ok(s) if s.contains("model") => "model",
                    _ => "comment",
                };
                p.headers[0] = odd_disposition(rng, name);
            }
            if rng.one_in(12) {
                let extra: Vec<u8> = match rng.below(6) {
                    0 => b"Content-Type: text/plain; charset=utf-16".to_vec(),
                    1 => b"no colon in this header".to_vec(),
                    2 => format!("X-Long: {}", "y".repeat(rng.range(1000, 50_000))).into_bytes(),
                    3 => b"Content-Transfer-Encoding: base64".to_vec(),
                    4 => b": empty name".to_vec(),
                    _ => b"Content-Type: image/png\xff\xfe".to_vec(),
                };
                let at = rng.below(p.headers.len() + 1);
                p.headers.insert(at, extra);
            }
            if rng.one_in(64) {
                for i in 0..rng.range(10, 2000) {
                    p.headers.push(format!("X-Many-{i}: v").into_bytes());
                }
            }
            if rng.one_in(24) {
                p.headers.clear();
            }
        }
        // The boundary: what the header says, and what the body uses.
        let boundary: Vec<u8> = match rng.below(12) {
            0 => "b".repeat(70).into_bytes(),
            1 => "q".repeat(rng.range(71, 5000)).into_bytes(),
            2 => b"a b'()+_,-./:=?".to_vec(),
            3 => b"x".to_vec(),
            4 => b"--".to_vec(),
            _ => BOUNDARY.as_bytes().to_vec(),
        };
        let body_boundary = if rng.one_in(24) {
            let mut b = boundary.clone();
            mutate_bytes(rng, &mut b, b"--");
            b
        } else {
            boundary.clone()
        };
        let nl: &[u8] = if rng.one_in(16) { b"\n" } else { b"\r\n" };
        let mut body = Vec::new();
        if rng.one_in(16) {
            body.extend_from_slice(b"preamble text\r\n");
        }
        for p in &parts {
            body.extend_from_slice(b"--");
            body.extend_from_slice(&body_boundary);
            body.extend_from_slice(nl);
            for h in &p.headers {
                body.extend_from_slice(h);
                body.extend_from_slice(nl);
            }
            body.extend_from_slice(nl);
            body.extend_from_slice(&p.content);
            body.extend_from_slice(nl);
        }
        if !rng.one_in(12) {
            body.extend_from_slice(b"--");
            body.extend_from_slice(&body_boundary);
            body.extend_from_slice(b"--");
            body.extend_from_slice(nl);
        }
        if rng.one_in(16) {
            body.extend_from_slice(b"epilogue\r\n--");
        }
        // Byte-level changes to the whole body.
        if rng.one_in(4) {
            let other = self.seeds[rng.below(self.seeds.len())].bytes.clone();
            for _ in 0..rng.range(1, 3) {
                mutate_bytes(rng, &mut body, &other);
            }
        }
        // A body over the limit, now and then.
        if rng.one_in(200) {
            let pad = vec![b'p'; BODY_LIMIT + rng.below(1000)];
            let at = rng.below(body.len() + 1);
            body.splice(at..at, pad);
        }
        // The request's headers.
        let mut b = String::from_utf8_lossy(&boundary).into_owned();
        if b.contains(' ') || rng.one_in(8) {
            b = format!("\"{b}\"");
        }
        let content_type: Option<Vec<u8>> = match rng.below(20) {
            0 => None,
            1 => Some(b"text/plain".to_vec()),
            2 => Some(b"multipart/form-data".to_vec()),
            3 => Some(b"multipart/form-data; boundary=".to_vec()),
            4 => Some(format!("multipart/mixed; boundary={b}").into_bytes()),
            5 => Some(format!("MULTIPART/FORM-DATA; BOUNDARY={b}").into_bytes()),
            6 => Some(
                format!("multipart/form-data; charset=utf-8; boundary={b}; boundary=other")
                    .into_bytes(),
            ),
            7 => Some(format!("multipart/form-data;boundary={b};").into_bytes()),
            8 => Some(
                format!(
                    "multipart/form-data; boundary={}",
                    "z".repeat(rng.range(71, 3000))
                )
                .into_bytes(),
            ),
            _ => Some(format!("multipart/form-data; boundary={b}").into_bytes()),
        };
        let content_length: Option<Vec<u8>> = match rng.below(16) {
            0..=7 => None,
            8..=10 => Some(body.len().to_string().into_bytes()),
            11 => Some(b"99999999999".to_vec()),
            12 => Some(u64::MAX.to_string().into_bytes()),
            13 => Some((u128::from(u64::MAX) + 1).to_string().into_bytes()),
            14 => Some(
                rng.pick(&[b"-1".as_slice(), b"abc", b"", b"1e3", b" 12"])
                    .to_vec(),
            ),
            _ => Some(
                body.len()
                    .saturating_sub(rng.below(body.len() + 1))
                    .to_string()
                    .into_bytes(),
            ),
        };
        HttpInput {
            content_type,
            content_length,
            body,
        }
    }

    fn exec(&mut self, input: &HttpInput, _index: u64) -> Result<String, String> {
        self.start()?;
        let server = self.server.as_ref().expect("started");
        let mut req = Request::post("/api/colorize");
        for (name, value) in [
            ("content-type", &input.content_type),
            ("content-length", &input.content_length),
        ] {
            if let Some(v) = value {
                // A value no HTTP stack would deliver (control characters) is left out.
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    req = req.header(name, v);
                }
            }
        }
        let req = req
            .body(Body::from(input.body.clone()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let router = server.router.clone();
        let rt = self.runtime.as_ref().expect("started");
        let (status, ctype, body) = rt.block_on(async move {
            let resp = router
                .oneshot(req)
                .await
                .map_err(|e| format!("router error: {e}"))?;
            let status = resp.status();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .map_err(|e| format!("{status}: the body cannot be read: {e}"))?;
            Ok::<_, String>((status, ctype, body))
        })?;
        let code = status.as_u16();
        let json = is_json(&body);
        if status.is_server_error() {
            if ![500, 503, 507].contains(&code) {
                return Err(format!("status {code}: {}", String::from_utf8_lossy(&body)));
            }
            if !json {
                return Err(format!(
                    "status {code} without a JSON body ({ctype}): {}",
                    String::from_utf8_lossy(&body)
                ));
            }
        }
        // The label: the status, and the error type the API gave.
        let error_type = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error_type")
                    .and_then(|t| t.as_str())
                    .map(str::to_string)
            });
        Ok(match (json, error_type) {
            (true, Some(t)) => format!("{code}:{t}"),
            (true, None) => format!("{code}"),
            (false, _) => format!("{code}:not-json"),
        })
    }

    fn reset(&mut self) {
        if let Some(s) = self.server.take() {
            s.app.shutdown();
        }
    }

    fn save(input: &HttpInput, stem: &Path) -> std::io::Result<PathBuf> {
        let path = stem.with_extension("http");
        let mut out = Vec::new();
        for (name, value) in [
            ("content-type", &input.content_type),
            ("content-length", &input.content_length),
        ] {
            if let Some(v) = value {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(v);
                out.push(b'\n');
            }
        }
        out.push(b'\n');
        out.extend_from_slice(&input.body);
        std::fs::write(&path, out)?;
        Ok(path)
    }

    fn load(path: &Path) -> std::io::Result<HttpInput> {
        let bytes = std::fs::read(path)?;
        let bad = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "expected header lines, a blank line, then the body",
            )
        };
        let mut input = HttpInput {
            content_type: None,
            content_length: None,
            body: Vec::new(),
        };
        let mut at = 0;
        loop {
            let end = bytes[at..]
                .iter()
                .position(|&b| b == b'\n')
                .ok_or_else(bad)?
                + at;
            let line = &bytes[at..end];
            at = end + 1;
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix(b"content-type: ") {
                input.content_type = Some(v.to_vec());
            } else if let Some(v) = line.strip_prefix(b"content-length: ") {
                input.content_length = Some(v.to_vec());
            } else {
                return Err(bad());
            }
        }
        input.body = bytes[at..].to_vec();
        Ok(input)
    }
}
