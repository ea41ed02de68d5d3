//! One HTTP/1.1 connection, watched so that it can never be held open
//! without doing work: a request head must arrive within
//! `http.header_read_timeout_secs` of the connection opening or of its
//! first byte, an idle keep-alive connection closes after
//! `http.keep_alive_idle_secs`, and a request (handler plus response) gets
//! `http.request_timeout_secs`. The body has its own deadline (`body`).
//! A connection past its deadline is dropped, which closes the socket.
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::body::DeadlineBody;
use crate::error::Error;

/// Connection timeouts, from `http.*`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub body_read: Duration,
    pub keep_alive_idle: Duration,
    pub request: Duration,
}

/// The largest read buffer hyper may grow per connection: request heads and
/// bodies are small here, so a client cannot make a connection cost more.
const MAX_BUF_BYTES: usize = 64 * 1024;

/// The only paths a reserve connection serves.
const PROBE_PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// What a connection is doing, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, nothing received yet.
    Fresh,
    /// Between requests, nothing received since the last response.
    Idle,
    /// Bytes of a request head have arrived; the head is not complete.
    ReadingHead,
    /// A request is being handled.
    Busy,
}

#[derive(Debug)]
pub struct Activity {
    state: Mutex<(Phase, Instant)>,
    /// Wakes the watchdog to recompute its deadline after a change.
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new((Phase::Fresh, Instant::now())),
            changed: Notify::new(),
        })
    }

    fn set(&self, phase: Phase) {
        *self.lock() = (phase, Instant::now());
        self.changed.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Phase, Instant)> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: between requests, that starts a request head.
    fn received(&self) {
        let mut state = self.lock();
        if matches!(state.0, Phase::Fresh | Phase::Idle) {
            *state = (Phase::ReadingHead, Instant::now());
            self.changed.notify_one();
        }
    }

    /// When the connection must have moved on, and what it is late for.
    fn deadline(&self, timeouts: &Timeouts) -> (Instant, &'static str) {
        let (phase, since) = *self.lock();
        match phase {
            Phase::Fresh | Phase::ReadingHead => (since + timeouts.header_read, "header_timeout"),
            Phase::Idle => (since + timeouts.keep_alive_idle, "idle_timeout"),
            Phase::Busy => (since + timeouts.request, "request_timeout"),
        }
    }
}

/// Marks a request in flight; back to idle when dropped (response ready,
/// or the request abandoned).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.set(Phase::Busy);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

pin_project! {
    /// The socket, reporting each read to the connection's `Activity`.
    struct Watched {
        #[pin]
        stream: TcpStream,
        activity: Arc<Activity>,
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.stream.poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// How a connection may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    /// A reserve connection: probes only, one request.
    ProbesOnly,
}

/// Serves `stream` until the client closes it, a deadline passes, or
/// `stop` turns true (then in-flight requests finish first). Returns why a
/// deadline closed it, if one did.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    scope: Scope,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) -> Option<&'static str> {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let in_flight = InFlight::start(&service_activity);
        let router = router.clone();
        async move {
            let response = handle(router, request, peer, scope, timeouts.body_read).await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.max_buf_size(MAX_BUF_BYTES);
    if scope == Scope::ProbesOnly {
        builder.keep_alive(false);
    }
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let (deadline, late_for) = activity.deadline(&timeouts);
        tokio::select! {
            _ = connection.as_mut() => return None,
            () = activity.changed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                if activity.deadline(&timeouts).0 <= Instant::now() {
                    return Some(late_for);
                }
            }
            changed = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                let _ = changed;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn handle(
    router: Router,
    request: Request<Incoming>,
    peer: SocketAddr,
    scope: Scope,
    body_timeout: Duration,
) -> Response {
    if scope == Scope::ProbesOnly && !PROBE_PATHS.contains(&request.uri().path()) {
        let mut response = Error::Overloaded.into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let mut request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
    request.extensions_mut().insert(ConnectInfo(peer));
    match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
