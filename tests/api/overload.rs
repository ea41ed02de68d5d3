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
    app.create_user("storm@example.com").await;
    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/v1/auth/login");
            tokio::spawn(async move {
                let body = serde_json::json!({ "email": "storm@example.com", "password": PASSWORD, "client_type": "native" });
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
