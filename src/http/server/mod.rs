//! The listeners' accept loop, in place of `axum::serve`, which has no
//! timeouts and no connection cap: one client could hold thousands of
//! unfinished connections and exhaust the file descriptors.
//!
//! Each accepted connection is admitted by `limits` (or closed at once),
//! then served by `connection` under its deadlines. `accept` errors (the fd
//! limit reached after all, a kernel out of buffers) back off instead of
//! spinning. HTTP/1.1 only: there is no TLS here, and HTTP/2 belongs on the
//! proxy that terminates TLS (see the README).
pub mod body;
pub mod connection;
pub mod limits;

use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::HttpSettings;
use crate::metrics::ConnectionMetrics;
use connection::{Scope, Timeouts};
use limits::{Admission, ConnectionLimits};

/// The first pause after a failed `accept`; it doubles up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Timeouts {
    pub fn from_settings(http: &HttpSettings) -> Self {
        Self {
            header_read: Duration::from_secs(http.header_read_timeout_secs),
            body_read: Duration::from_secs(http.body_read_timeout_secs),
            keep_alive_idle: Duration::from_secs(http.keep_alive_idle_secs),
            request: Duration::from_secs(http.request_timeout_secs),
        }
    }
}

/// One listener: its socket, what it serves, and its limits.
pub struct Listener {
    pub socket: TcpListener,
    pub router: Router,
    pub limits: Arc<ConnectionLimits>,
    pub timeouts: Timeouts,
    pub metrics: ConnectionMetrics,
}

/// Accepts and serves until `stop` turns true; then stops accepting (the
/// socket closes at once), lets each connection finish its request, and
/// returns when all are done. Dropping the future aborts every connection.
pub async fn serve(listener: Listener, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut connections = JoinSet::new();
    let mut backoff = MIN_BACKOFF;
    let mut stopped = stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            // Reaped as they end: a finished task's memory is held until
            // it is joined.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stopped.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = MIN_BACKOFF;
                accepted
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if backoff == MIN_BACKOFF {
                    tracing::warn!(error = %e, "accept failed; backing off");
                }
                listener.metrics.accept_error();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let (permit, scope) = match listener.limits.admit(peer.ip()) {
            Admission::Normal(permit) => (permit, Scope::All),
            Admission::Reserve(permit) => (permit, Scope::ProbesOnly),
            Admission::Refused(refusal) => {
                listener.metrics.refused(refusal.label());
                drop(stream);
                continue;
            }
        };
        let router = listener.router.clone();
        let metrics = listener.metrics.clone();
        let timeouts = listener.timeouts;
        let stop = stop.clone();
        connections.spawn(async move {
            // Released however the task ends, aborted included.
            let _held = (permit, metrics.open());
            let closed = connection::serve(stream, peer, router, scope, timeouts, stop).await;
            if let Some(reason) = closed {
                metrics.timed_out(reason);
            }
        });
    }
    drop(listener.socket);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Errors about one incoming connection (it was reset before we took it),
/// not about the listener: the next `accept` can go ahead at once.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}
