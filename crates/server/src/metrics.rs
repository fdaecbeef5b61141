//! Counters, gauges and histograms for `GET /metrics`, kept and written by the `prometheus-client`
//! crate in the OpenMetrics text format (which Prometheus scrapes, as it does the older 0.0.4
//! text format).
//!
//! Routes are reported by their template (`/api/images/{id}/original`), never by the raw path, so
//! a client cannot grow the label set; methods outside the standard ones are reported as `other`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The content type of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's metrics; shared by the handlers and the workers.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    inference: Histogram,
    queue_depth_gauge: Gauge,
    queue_capacity: Gauge,
    in_progress_gauge: Gauge,
    workers: Gauge,
    workers_live_gauge: Gauge,
    /// Jobs waiting in the queue (not yet taken by a worker).
    pub queue_depth: AtomicUsize,
    /// Jobs being processed by a worker right now.
    pub in_progress: AtomicUsize,
    /// Worker threads running (a worker that died would no longer count).
    pub workers_live: AtomicUsize,
    /// Images colourised and stored since start.
    pub images_colorized: Counter,
    /// Uploads refused because the queue was full.
    pub rejected_queue_full: Counter,
    /// Images removed by the retention policy.
    pub images_expired: Counter,
    /// Jobs that panicked (answered 500; the worker went on).
    pub worker_panics: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("colorize");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by route",
            latency.clone(),
        );
        let inference = latency_histogram();
        registry.register(
            "inference_duration_seconds",
            "Worker time per image: decode, colourise, encode, store",
            inference.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let queue_depth_gauge = gauge(&mut registry, "queue_depth", "Jobs waiting for a worker");
        let queue_capacity = gauge(&mut registry, "queue_capacity", "Most jobs that may wait");
        let in_progress_gauge = gauge(
            &mut registry,
            "jobs_in_progress",
            "Jobs a worker is processing",
        );
        let workers = gauge(&mut registry, "workers", "Inference worker threads started");
        let workers_live_gauge = gauge(
            &mut registry,
            "workers_live",
            "Inference worker threads running",
        );
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let images_colorized = counter(
            &mut registry,
            "images_colorized",
            "Images colourised and stored",
        );
        let rejected_queue_full = counter(
            &mut registry,
            "rejected_queue_full",
            "Uploads answered 503 because the queue was full",
        );
        let images_expired = counter(
            &mut registry,
            "images_expired",
            "Images removed by the retention policy",
        );
        let worker_panics = counter(
            &mut registry,
            "worker_panics",
            "Jobs that panicked in a worker (answered 500; the worker went on)",
        );
        Self {
            registry,
            requests,
            latency,
            inference,
            queue_depth_gauge,
            queue_capacity,
            in_progress_gauge,
            workers,
            workers_live_gauge,
            queue_depth: AtomicUsize::new(0),
            in_progress: AtomicUsize::new(0),
            workers_live: AtomicUsize::new(0),
            images_colorized,
            rejected_queue_full,
            images_expired,
            worker_panics,
        }
    }
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

/// The method as a bounded label.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

impl Metrics {
    /// Records one finished HTTP request.
    pub fn record_request(&self, method: &str, route: &'static str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_label(method),
                route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels { route })
            .observe(took.as_secs_f64());
    }

    /// Records the worker time of one image (decode, colourise, encode, store).
    pub fn record_inference(&self, took: Duration) {
        self.inference.observe(took.as_secs_f64());
    }

    /// The metrics in the OpenMetrics text format (ends with `# EOF`).
    pub fn render(&self, queue_capacity: usize, workers: usize) -> String {
        let gauge = |g: &Gauge, v: usize| {
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        };
        gauge(
            &self.queue_depth_gauge,
            self.queue_depth.load(Ordering::Relaxed),
        );
        gauge(&self.queue_capacity, queue_capacity);
        gauge(
            &self.in_progress_gauge,
            self.in_progress.load(Ordering::Relaxed),
        );
        gauge(&self.workers, workers);
        gauge(
            &self.workers_live_gauge,
            self.workers_live.load(Ordering::Relaxed),
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
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
            "colorize_http_request_duration_seconds_bucket{le=\"0.05\",route=\"/api/colorize\"} 1"
        ));
        assert!(text.contains(
            "colorize_http_request_duration_seconds_bucket{le=\"0.025\",route=\"/api/colorize\"} 0"
        ));
        assert!(text.contains("colorize_queue_capacity 8"));
        assert!(text.contains("# TYPE colorize_http_request_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(route_label("/../../etc/passwd"), "other");
    }
}
