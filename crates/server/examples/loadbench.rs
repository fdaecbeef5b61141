//! Load benchmark of `POST /api/colorize` (not a test): starts the server in this process on an
//! ephemeral port with the bundled model, runs N concurrent HTTP/1.1 clients (one keep-alive
//! connection each) for a fixed time, and prints throughput, p50/p99 latency, the responses by
//! status and the process's peak resident memory (VmHWM; server and clients together).
//!
//! ```text
//! cargo run --release -p colorize-server --example loadbench -- \
//!     --clients 4 --seconds 20 [--image examples/1864UnionSoldier.jpg] [--render-size N] \
//!     [--workers 1] [--queue 8]
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::prelude::Device;
use colorize_server::{App, ModelSource, Retention, ServerConfig};
use http_body_util::BodyExt;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BUNDLED_CONFIG: &[u8] = include_bytes!("../../../models/stable/config.json");
const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../../models/stable/model.safetensors");

struct Options {
    clients: usize,
    seconds: u64,
    image: String,
    render_size: Option<u32>,
    workers: usize,
    queue: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        clients: 4,
        seconds: 20,
        image: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/1864UnionSoldier.jpg"
        )
        .into(),
        render_size: None,
        workers: 1,
        queue: 8,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--clients" => o.clients = num(value()?)? as usize,
            "--seconds" => o.seconds = num(value()?)?,
            "--image" => o.image = value()?,
            "--render-size" => o.render_size = Some(num(value()?)? as u32),
            "--workers" => o.workers = num(value()?)? as usize,
            "--queue" => o.queue = num(value()?)? as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(o)
}

fn multipart(image: &[u8], render_size: Option<u32>) -> (String, Vec<u8>) {
    let boundary = "colorize-loadbench-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(image);
    body.extend_from_slice(b"\r\n");
    if let Some(n) = render_size {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"render_size\"\r\n\r\n{n}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Status (0 = connection error) and latency of every request one client made before `until`.
async fn client(
    addr: SocketAddr,
    content_type: Arc<str>,
    body: bytes::Bytes,
    until: Instant,
) -> Vec<(u16, Duration)> {
    let mut out = Vec::new();
    let mut sender = None;
    while Instant::now() < until {
        if sender.is_none() {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                out.push((0, Duration::ZERO));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let io = hyper_util::rt::TokioIo::new(stream);
            match hyper::client::conn::http1::handshake(io).await {
                Ok((s, conn)) => {
                    tokio::spawn(conn);
                    sender = Some(s);
                }
                Err(_) => {
                    out.push((0, Duration::ZERO));
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let req = hyper::Request::post("/api/colorize")
            .header("host", addr.to_string())
            .header("content-type", &*content_type)
            .body(http_body_util::Full::new(body.clone()));
        let Ok(req) = req else { break };
        let t0 = Instant::now();
        match s.send_request(req).await {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry = res.headers().get("retry-after").is_some();
                let _ = res.into_body().collect().await;
                out.push((status, t0.elapsed()));
                if status == 503 && retry {
                    // A polite client waits a little before retrying (not the full Retry-After,
                    // which would idle the benchmark).
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(_) => {
                out.push((0, t0.elapsed()));
                sender = None;
            }
        }
    }
    out
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let o = parse_args()?;
    let image = std::fs::read(&o.image).map_err(|e| format!("{}: {e}", o.image))?;
    let data = tempfile::tempdir()?;
    let mut config = ServerConfig::new(
        data.path(),
        vec![ModelSource::Bytes {
            name: "default".into(),
            config_json: Arc::from(BUNDLED_CONFIG),
            weights: Arc::from(BUNDLED_WEIGHTS),
        }],
        Device::flex(),
    );
    config.workers = o.workers;
    config.queue_capacity = o.queue;
    config.retention = Retention {
        max_images: Some(200),
        max_age: None,
        max_bytes: None,
    };
    let app = App::start(&config)?;
    let rss_idle = peak_rss_kib();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(colorize_server::serve(listener, app, async {
            let _ = stopped.await;
        }));
        let (ct, body) = multipart(&image, o.render_size);
        let ct: Arc<str> = Arc::from(ct);
        let body = bytes::Bytes::from(body);
        println!(
            "loadbench: {} clients x {} s, image {} ({} bytes), render size {}, {} worker(s), queue {}",
            o.clients,
            o.seconds,
            o.image,
            image.len(),
            o.render_size
                .map_or("model default".to_string(), |n| n.to_string()),
            o.workers,
            o.queue
        );
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(o.seconds);
        let tasks: Vec<_> = (0..o.clients)
            .map(|_| tokio::spawn(client(addr, ct.clone(), body.clone(), until)))
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.extend(t.await?);
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let _ = stop.send(());
        server.await??;

        let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
        for (s, _) in &results {
            *by_status.entry(*s).or_default() += 1;
        }
        let mut ok: Vec<Duration> = results
            .iter()
            .filter(|(s, _)| *s == 201)
            .map(|(_, d)| *d)
            .collect();
        ok.sort();
        println!("elapsed: {elapsed:.1} s (the last requests finish after the deadline)");
        println!(
            "throughput: {:.2} images/s ({} colourised)",
            ok.len() as f64 / elapsed,
            ok.len()
        );
        println!(
            "latency of 201s: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            percentile(&ok, 0.50).as_secs_f64() * 1e3,
            percentile(&ok, 0.99).as_secs_f64() * 1e3,
            ok.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        let statuses: Vec<String> = by_status
            .iter()
            .map(|(s, n)| {
                if *s == 0 {
                    format!("connection error: {n}")
                } else {
                    format!("{s}: {n}")
                }
            })
            .collect();
        println!("responses by status: {}", statuses.join(", "));
        if let (Some(idle), Some(peak)) = (rss_idle, peak_rss_kib()) {
            println!(
                "peak RSS (VmHWM): {:.0} MiB after loading the model, {:.0} MiB at the end",
                idle as f64 / 1024.0,
                peak as f64 / 1024.0
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
