//! Counters and histograms for `GET /metrics`, in the Prometheus text format (version 0.0.4).
//!
//! Routes are reported by their template (`/api/images/{id}/original`), never by the raw path, so a
//! client cannot grow the label set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (c, b) in self.counts.iter_mut().zip(BUCKETS) {
            if seconds <= b {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (c, b) in self.counts.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[derive(Debug, Default)]
struct Http {
    requests: BTreeMap<(String, &'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
}

/// The server's metrics; shared by the handlers and the workers.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<Http>,
    inference: Mutex<Histogram>,
    /// Jobs waiting in the queue (not yet taken by a worker).
    pub queue_depth: AtomicUsize,
    /// Jobs being processed by a worker right now.
    pub in_progress: AtomicUsize,
    /// Images colourised and stored since start.
    pub images_colorized: AtomicU64,
    /// Uploads refused because the queue was full.
    pub rejected_queue_full: AtomicU64,
    /// Images removed by the retention policy.
    pub images_expired: AtomicU64,
}

/// The route template for a request path (bounded label set).
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/api/colorize" => "/api/colorize",
        "/api/models" => "/api/models",
        "/health" => "/health",
        "/metrics" => "/metrics",
        "/docs" | "/openapi.json" => "/docs",
        p if p.starts_with("/api/images/") => {
            if p.ends_with("/original") {
                "/api/images/{id}/original"
            } else if p.ends_with("/colorized") {
                "/api/images/{id}/colorized"
            } else {
                "/api/images/{id}"
            }
        }
        _ => "other",
    }
}

impl Metrics {
    /// Records one finished HTTP request.
    pub fn record_request(&self, method: &str, route: &'static str, status: u16, took: Duration) {
        if let Ok(mut h) = self.http.lock() {
            let method = match method {
                "GET" | "POST" | "DELETE" | "HEAD" | "PUT" | "OPTIONS" | "PATCH" => method,
                _ => "other",
            };
            *h.requests
                .entry((method.to_string(), route, status))
                .or_default() += 1;
            h.latency
                .entry(route)
                .or_default()
                .observe(took.as_secs_f64());
        }
    }

    /// Records the worker time of one image (decode, colourise, encode, store).
    pub fn record_inference(&self, took: Duration) {
        if let Ok(mut h) = self.inference.lock() {
            h.observe(took.as_secs_f64());
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self, queue_capacity: usize, workers: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP colorize_http_requests_total HTTP requests by method, route and status.\n# TYPE colorize_http_requests_total counter\n");
        if let Ok(h) = self.http.lock() {
            for ((method, route, status), n) in &h.requests {
                let _ = writeln!(
                    out,
                    "colorize_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
            out.push_str("# HELP colorize_http_request_duration_seconds Time from request to response headers, by route.\n# TYPE colorize_http_request_duration_seconds histogram\n");
            for (route, hist) in &h.latency {
                hist.render(
                    &mut out,
                    "colorize_http_request_duration_seconds",
                    &format!("route=\"{route}\""),
                );
            }
        }
        out.push_str("# HELP colorize_inference_duration_seconds Worker time per image: decode, colourise, encode, store.\n# TYPE colorize_inference_duration_seconds histogram\n");
        if let Ok(h) = self.inference.lock() {
            h.render(&mut out, "colorize_inference_duration_seconds", "");
        }
        let gauges = [
            (
                "colorize_queue_depth",
                "gauge",
                "Jobs waiting for a worker.",
                self.queue_depth.load(Ordering::Relaxed) as u64,
            ),
            (
                "colorize_queue_capacity",
                "gauge",
                "Most jobs that may wait.",
                queue_capacity as u64,
            ),
            (
                "colorize_jobs_in_progress",
                "gauge",
                "Jobs a worker is processing.",
                self.in_progress.load(Ordering::Relaxed) as u64,
            ),
            (
                "colorize_workers",
                "gauge",
                "Inference worker threads.",
                workers as u64,
            ),
            (
                "colorize_images_colorized_total",
                "counter",
                "Images colourised and stored.",
                self.images_colorized.load(Ordering::Relaxed),
            ),
            (
                "colorize_rejected_queue_full_total",
                "counter",
                "Uploads answered 503 because the queue was full.",
                self.rejected_queue_full.load(Ordering::Relaxed),
            ),
            (
                "colorize_images_expired_total",
                "counter",
                "Images removed by the retention policy.",
                self.images_expired.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.record_request(
            "POST",
            route_label("/api/colorize"),
            201,
            Duration::from_millis(30),
        );
        m.record_request(
            "GET",
            route_label("/api/images/abc/original"),
            404,
            Duration::from_millis(1),
        );
        let text = m.render(8, 1);
        assert!(text.contains(
            "colorize_http_requests_total{method=\"POST\",route=\"/api/colorize\",status=\"201\"} 1"
        ));
        assert!(text.contains("route=\"/api/images/{id}/original\",status=\"404\"} 1"));
        assert!(text.contains(
            "colorize_http_request_duration_seconds_bucket{route=\"/api/colorize\",le=\"0.05\"} 1"
        ));
        assert!(text.contains(
            "colorize_http_request_duration_seconds_bucket{route=\"/api/colorize\",le=\"0.025\"} 0"
        ));
        assert!(text.contains("colorize_queue_capacity 8"));
        assert_eq!(route_label("/../../etc/passwd"), "other");
    }
}
