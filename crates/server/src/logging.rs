//! Structured logs: `tracing` events written by `tracing-subscriber`, as text or one JSON object
//! per line.
//!
//! The server writes one `INFO` event per request (target `colorize_server::http`, message
//! `request`, fields `status` and `latency_ms`) inside the request's span, which carries `method`
//! and `route` (the route template, never the raw path: a client cannot put arbitrary text in the
//! logs). In JSON the span's fields are under `span`:
//!
//! ```text
//! {"timestamp":"…","level":"INFO","fields":{"message":"request","status":201,"latency_ms":812.4},
//!  "target":"colorize_server::http","span":{"method":"POST","route":"/api/colorize","name":"request"}}
//! ```
//!
//! Besides these: warnings for dropped connections and
//! failed accepts; errors for panics caught in a handler or a worker. The level is set with
//! `RUST_LOG` (default `info`).

use tracing_subscriber::filter::Targets;

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line, with `timestamp`, `level`, `target` and `fields` (for log
    /// collectors such as Loki, Elasticsearch or CloudWatch).
    Json,
}

/// The filter from `RUST_LOG` (`info`, `warn,colorize_server::http=debug`...), `info` when it
/// is unset or unreadable.
fn filter_from_env() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the global log subscriber (standard error, `RUST_LOG` filter, default `info`).
/// Does nothing if one is already installed (for example by a test).
pub fn init_logging(format: LogFormat) {
    let filter = filter_from_env();
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
