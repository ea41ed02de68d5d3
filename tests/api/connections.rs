//! Connection-level limits, tried the way an attacker would: raw TCP
//! clients that send slowly, never finish, or open too many connections.
use crate::helpers::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection from `source` (any 127.0.0.0/8 address is a distinct peer).
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes the connection (or `limit` passes);
/// returns what arrived and when the close came.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let remaining = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(remaining, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&received).into_owned(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), None),
        }
    }
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_off() {
    let app = spawn_with(|s| s.http.header_read_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nhost: authd\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaa";
    let started = Instant::now();
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let (received, closed_after) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(
        closed || closed_after.is_some(),
        "the slow head was never cut off"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(received.is_empty(), "{received}");
    // Others are unaffected.
    let ok = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let app = spawn_with(|s| s.http.header_read_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let (_, closed_after) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    let closed_after = closed_after.expect("closed");
    assert!(
        closed_after >= Duration::from_millis(900),
        "{closed_after:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_with(|s| {
        s.http.header_read_timeout_secs = 5;
        s.http.keep_alive_idle_secs = 1;
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: authd\r\n\r\n")
        .await
        .unwrap();
    let (received, closed_after) = read_until_closed(&mut stream, Duration::from_secs(4)).await;
    assert!(received.starts_with("HTTP/1.1 200 "), "{received}");
    let closed_after = closed_after.expect("idle connection closed");
    // Closed by the 1 s idle timeout, long before the 5 s header timeout.
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_and_the_connection_closes() {
    let app = spawn_with(|s| s.http.body_read_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /v1/auth/login HTTP/1.1\r\nhost: authd\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\":";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (received, closed_after) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 408 "), "{received}");
    assert!(
        received.contains(r#""error":"request_timeout""#),
        "{received}"
    );
    assert!(
        received.to_ascii_lowercase().contains("connection: close"),
        "{received}"
    );
    assert!(closed_after.is_some());
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_declared_oversize_body_is_refused_before_it_is_sent() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /v1/auth/signup HTTP/1.1\r\nhost: authd\r\ncontent-type: application/json\r\ncontent-length: 100000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    // Not one byte of the body is sent: the answer must come anyway.
    let (received, closed_after) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(received.starts_with("HTTP/1.1 413 "), "{received}");
    assert!(
        received.contains(r#""error":"payload_too_large""#),
        "{received}"
    );
    assert!(closed_after.is_some(), "the connection must close");
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share() {
    let app = spawn_with(|s| s.http.max_connections_per_peer = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from("127.0.0.2", app.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect_from("127.0.0.2", app.addr).await;
    let (received, closed_after) = read_until_closed(&mut extra, Duration::from_secs(2)).await;
    assert!(received.is_empty() && closed_after.is_some(), "{received}");
    // Another address is served.
    let other = client_from("127.0.0.3");
    let ok = other.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(
            r#"authd_connections_refused_total{listener="public",reason="peer_limit"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn probes_answer_on_the_reserve_when_every_connection_is_taken() {
    let app = spawn_with(|s| {
        s.http.max_connections = 20;
        s.http.max_connections_per_peer = 10;
        s.http.reserved_connections = 4;
    })
    .await;
    let mut held = Vec::new();
    for source in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..10 {
            held.push(connect_from(source, app.addr).await);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The cap is reached: the probes still answer, on reserve connections
    // that close after one answer...
    for path in ["/healthz", "/readyz"] {
        let probe = client_from("127.0.0.4");
        let response = probe.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // ...which serve nothing else.
    let response = client_from("127.0.0.5")
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (
            reqwest::StatusCode::SERVICE_UNAVAILABLE,
            "overloaded".into()
        )
    );
    // Once connections are released, everything is served again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let response = client_from("127.0.0.5")
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn http2_without_tls_is_not_spoken() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let (received, closed_after) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    // An HTTP/2 server would answer with a SETTINGS frame (binary, type 4);
    // authd answers in HTTP/1.1, or not at all, and closes.
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 4"),
        "{received:?}"
    );
    assert!(closed_after.is_some());
}

async fn metrics_text(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
