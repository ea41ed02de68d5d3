//! The hashing pool sheds load with 503 instead of queueing without bound.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_beyond_the_pool_queue_get_503_with_retry_after() {
    let app = spawn_with(|s| {
        s.password.pool_threads = 1;
        s.password.pool_queue = 1;
    })
    .await;
    // Distinct accounts: checks of one account run one at a time anyway.
    for n in 0..16 {
        app.create_user(&format!("storm{n}@example.com")).await;
    }
    let attempts: Vec<_> = (0..16)
        .map(|n| {
            let client = app.client.clone();
            let url = app.url("/v1/auth/login");
            tokio::spawn(async move {
                let email = format!("storm{n}@example.com");
                let body = serde_json::json!({ "email": email, "password": PASSWORD, "client_type": "native" });
                let response = client.post(url).json(&body).send().await.unwrap();
                let status = response.status();
                let retry_after = response.headers().get("retry-after").is_some();
                let body: Value = response.json().await.unwrap();
                (status, retry_after, body)
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for attempt in attempts {
        let (status, retry_after, body) = attempt.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after);
                assert_eq!(body["error"], "overloaded");
                shed += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok={ok} shed={shed}");
    // Refused before any work: no audit event, no throttle counter, no
    // session for the shed requests.
    let logins = app
        .count("SELECT count(*) FROM audit_events WHERE event_type LIKE 'login%'")
        .await;
    assert_eq!(logins, ok);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, ok);
    assert_eq!(app.count("SELECT count(*) FROM login_throttle").await, 0);
}

/// The raw answer to `head` (a request whose body is never sent).
async fn answer_to_head(addr: std::net::SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the whole answer (the JSON body ends in `}`) or EOF.
    while !answer.ends_with(b"}") {
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer before the body was sent")
            .unwrap();
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..read]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn a_full_pool_refuses_logins_and_signups_before_reading_them() {
    // A body that never comes would hold a normal request for 60 s.
    let app = spawn_with(|s| {
        s.password.pool_threads = 1;
        s.password.pool_queue = 1;
        s.http.body_read_timeout_secs = 60;
    })
    .await;
    app.create_user("shed@example.com").await;
    let pool = app.state.passwords.pool();
    let held = [pool.reserve().unwrap(), pool.reserve().unwrap()];

    for path in ["/v1/auth/login", "/v1/auth/signup"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: authd\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
        );
        let answer = answer_to_head(app.addr, &head).await.to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 503"), "{answer}");
        assert!(answer.contains("\r\nretry-after: "), "{answer}");
        assert!(
            answer.contains("x-content-type-options: nosniff"),
            "{answer}"
        );
        assert!(answer.contains(r#""error":"overloaded""#), "{answer}");
    }
    let metrics = metrics_text(app.admin_addr).await;
    assert!(
        metrics.contains(r#"authd_argon2_rejected_total{reason="shed"} 2"#),
        "{metrics}"
    );

    // With room again, the same login goes through.
    drop(held);
    let login = app.login("shed@example.com", PASSWORD, "native").await;
    assert_eq!(login.status(), StatusCode::OK);
}

/// With `password.shed_delay_ms`, a shed login still gets the same 503 with
/// Retry-After, only not before the delay: a flooding connection that
/// retries at once sends one request per delay instead of as fast as
/// refusals come back. Once the pool has room, the login goes through.
#[tokio::test]
async fn shed_refusals_wait_out_the_configured_delay() {
    const DELAY: std::time::Duration = std::time::Duration::from_millis(400);
    let app = spawn_with(|s| {
        s.password.pool_threads = 1;
        s.password.pool_queue = 1;
        s.password.shed_delay_ms = DELAY.as_millis() as u64;
    })
    .await;
    app.create_user("slow@example.com").await;
    let pool = app.state.passwords.pool();
    let held = [pool.reserve().unwrap(), pool.reserve().unwrap()];

    let started = std::time::Instant::now();
    let refused = app.login("slow@example.com", PASSWORD, "native").await;
    let waited = started.elapsed();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(error_code(refused).await.1, "overloaded");
    assert!(waited >= DELAY, "answered after {waited:?}");

    drop(held);
    let login = app.login("slow@example.com", PASSWORD, "native").await;
    assert_eq!(login.status(), StatusCode::OK);
}
