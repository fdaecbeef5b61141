//! The HTTP connection layer: accepting connections under a limit, hyper's HTTP/1 with a timer,
//! an idle watchdog per connection, and a shutdown with a deadline.
//!
//! `axum::serve` runs hyper without a timer, so a client that sends its headers one byte a second,
//! or connects and sends nothing, holds a connection (and a task) forever. Here every connection
//! is bounded in time:
//!
//! | phase                         | bound                                                   |
//! |-------------------------------|---------------------------------------------------------|
//! | no request yet / between them | [`HttpLimits::idle_timeout`] without a byte read or written |
//! | request headers               | [`HttpLimits::header_read_timeout`] from their first byte (hyper's timer) |
//! | request body (uploads)        | [`HttpLimits::body_read_timeout`] in all (the handler's deadline: 408) |
//! | response written to a reader that stopped reading | [`HttpLimits::idle_timeout`]  |
//! | after the shutdown signal     | [`HttpLimits::shutdown_deadline`], then every connection is dropped |
//!
//! and at most [`HttpLimits::max_connections`] are open at once: beyond that the listener is not
//! polled, so new clients wait in the operating system's backlog instead of costing memory.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// Timeouts and connection limits of the HTTP layer (see the module documentation for which
/// phase of a connection each bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time from the first byte of a request's headers to their end (default 10 s); past it the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// Time to receive a whole upload body (default 60 s); past it the upload is answered 408
    /// and the connection closed.
    pub body_read_timeout: Duration,
    /// Time a connection may stay open with no request in progress and no byte moving in either
    /// direction (default 60 s): idle keep-alive connections, clients that connect and send
    /// nothing, readers that stopped reading.
    pub idle_timeout: Duration,
    /// Most connections open at once (default 256).
    pub max_connections: usize,
    /// After the shutdown signal, time given to the requests in flight (default 30 s); then the
    /// remaining connections are dropped.
    pub shutdown_deadline: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// How a call of [`serve_router`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServeReport {
    /// Connections still open at the shutdown deadline, dropped without an answer.
    pub dropped_connections: usize,
}

/// A TCP stream that records when a byte last moved, in milliseconds since `start`.
struct Tracked {
    inner: TcpStream,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts a request in flight on its connection while alive.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one connection until it ends, the idle watchdog closes it, or the task is aborted at
/// the shutdown deadline.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        start,
        last: last.clone(),
    });
    let service = {
        let in_flight = in_flight.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::new(&in_flight);
            let router = router.clone();
            async move {
                let response = router.oneshot(req.map(axum::body::Body::new)).await;
                drop(guard);
                response
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    if *stop.borrow_and_update() {
        stopping = true;
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let now = start.elapsed().as_millis() as u64;
        let idle = Duration::from_millis(now.saturating_sub(last.load(Ordering::Relaxed)));
        let wait = limits.idle_timeout.saturating_sub(idle);
        tokio::select! {
            _ = conn.as_mut() => return,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    // Closes an idle keep-alive connection at once; a request in progress is
                    // finished first, and nothing more is read after it.
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(wait) => {
                let now = start.elapsed().as_millis() as u64;
                let idle = now.saturating_sub(last.load(Ordering::Relaxed));
                if in_flight.load(Ordering::SeqCst) > 0 {
                    // A handler is working (an image being colourised): not idle. Look again
                    // one idle period from now.
                    last.store(now, Ordering::Relaxed);
                } else if idle >= limits.idle_timeout.as_millis() as u64 {
                    tracing::debug!(target: "colorize_server::http", idle_ms = idle, "idle connection closed");
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` completes; then stops accepting,
/// lets the requests in flight finish for up to [`HttpLimits::shutdown_deadline`], and drops the
/// connections still open after it.
///
/// Accept errors (a connection reset before it was accepted, too many open files) are logged and
/// retried after 50 ms, as `axum::serve` does; they never end the server.
///
/// # Errors
/// None today; the `io::Result` leaves room for listener errors that should end it.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<ServeReport> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _peer)) => stream,
                // An error about one connection (reset before accept) or a passing shortage
                // (too many open files): go on after a pause, as axum::serve does.
                Err(e) => {
                    tracing::warn!(target: "colorize_server::http", error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let mut report = ServeReport::default();
    if drained.is_err() {
        report.dropped_connections = connections.len();
        tracing::warn!(
            target: "colorize_server::http",
            connections = report.dropped_connections,
            deadline_s = limits.shutdown_deadline.as_secs_f64(),
            "shutdown deadline passed; dropping the connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(report)
}
