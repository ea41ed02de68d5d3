//! Graceful shutdown: stop accepting on both listeners, let in-flight
//! requests finish within `http.shutdown_grace_secs`, close the pool.
//!
//! The in-flight request is held open by sending its body in two parts, so
//! the test decides when it finishes instead of racing a timer.
use crate::helpers::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A login whose body has been sent only in part; the server is waiting
/// for the rest.
async fn start_login(app: &TestApp, email: &str) -> (TcpStream, Vec<u8>) {
    let body = serde_json::json!({ "email": email, "password": PASSWORD, "client_type": "native" })
        .to_string()
        .into_bytes();
    let head = format!(
        "POST /v1/auth/login HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        app.addr,
        body.len()
    );
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    // Let the server accept the connection and parse the head, so the
    // request is in flight before shutdown begins.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (stream, rest.to_vec())
}

/// Waits until connecting to `addr` is refused, i.e. nobody listens.
async fn wait_until_refused(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            _ if Instant::now() > deadline => panic!("{addr} still accepts connections"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn trigger() -> (
    oneshot::Sender<()>,
    impl Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async {
        let _ = rx.await;
    })
}

#[tokio::test]
async fn in_flight_requests_finish_while_new_connections_are_refused() {
    let (stop, shutdown) = trigger();
    let (app, server) = spawn_until(|_| {}, shutdown).await;
    app.create_user("drain@example.com").await;
    let (mut stream, rest) = start_login(&app, "drain@example.com").await;

    stop.send(()).unwrap();
    wait_until_refused(app.addr).await;
    wait_until_refused(app.admin_addr).await;
    assert!(!server.is_finished(), "shutdown must wait for the login");

    stream.write_all(&rest).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("response in time")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains("\"access_token\""), "{response}");

    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(app.state.db.is_closed());
}

#[tokio::test]
async fn the_grace_period_bounds_how_long_shutdown_waits() {
    let (stop, shutdown) = trigger();
    let (app, server) = spawn_until(|s| s.http.shutdown_grace_secs = 1, shutdown).await;
    // Never completed: without the bound, shutdown would wait forever.
    let (_stream, _rest) = start_login(&app, "stuck@example.com").await;

    let started = Instant::now();
    stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(10), server).await;
    let waited = started.elapsed();
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert!(app.state.db.is_closed());
}
