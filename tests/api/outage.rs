//! A database outage, played by cutting a proxy between authd and
//! PostgreSQL: every DB-bound route answers `503 unavailable` with
//! `Retry-After` within the acquire timeout (2 s by default), no
//! acknowledged write is lost, and service resumes by itself.
use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

/// The configured bound, plus slack for a loaded machine.
const BOUND: Duration = Duration::from_millis(2800);

async fn assert_unavailable(response: Response, started: Instant, what: &str) {
    let elapsed = started.elapsed();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.unwrap();
    assert!(elapsed < BOUND, "{what} took {elapsed:?}");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(
        retry_after.as_ref().map(|v| v.to_str().unwrap()),
        Some("2"),
        "{what}"
    );
    let code = serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        code == "unavailable" || (what == "/readyz" && code == "not_ready"),
        "{what}: {code}"
    );
}

#[tokio::test]
async fn an_outage_gets_503_with_retry_after_and_service_resumes() {
    let (app, proxy) = spawn_behind_proxy(|_| {}).await;
    app.create_user("before@example.com").await;
    let (access, refresh) = app.login_native("before@example.com").await;

    proxy.cut();
    let started = Instant::now();
    let signup = app.signup("during@example.com", PASSWORD).await;
    assert_unavailable(signup, started, "signup").await;
    let started = Instant::now();
    let login = app.login("before@example.com", PASSWORD, "native").await;
    assert_unavailable(login, started, "login").await;
    let started = Instant::now();
    assert_unavailable(app.refresh_body(&refresh).await, started, "refresh").await;
    let started = Instant::now();
    let logout = app
        .post_json("/v1/auth/logout", &json!({ "refresh_token": refresh }))
        .await;
    assert_unavailable(logout, started, "logout").await;
    let started = Instant::now();
    assert_unavailable(app.me(&access).await, started, "/v1/me").await;
    let started = Instant::now();
    let activity = app
        .client
        .get(app.url("/v1/me/activity"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_unavailable(activity, started, "/v1/me/activity").await;
    let started = Instant::now();
    let readyz = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_unavailable(readyz, started, "/readyz").await;
    // What needs no database still answers.
    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await;
    assert_eq!(jwks.unwrap().status(), StatusCode::OK);

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.me(&access).await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "no recovery without a restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The refresh token refused during the outage was not spent.
    assert_eq!(app.refresh_body(&refresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.signup("after@example.com", PASSWORD).await.status(),
        202
    );
}

#[tokio::test]
async fn every_acknowledged_signup_survives_a_cut_in_the_middle_of_traffic() {
    let (app, proxy) = spawn_behind_proxy(|_| {}).await;
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20 * i)).await;
            let email = format!("user{i}@example.com");
            let status = app.signup(&email, PASSWORD).await.status();
            (email, status)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let (email, status) = task.await.unwrap();
        match status {
            StatusCode::ACCEPTED => acknowledged.push(email),
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{email}: {other} (only 202 or 503 are acceptable)"),
        }
    }
    proxy.restore().await;
    assert!(
        !acknowledged.is_empty() && refused > 0,
        "{acknowledged:?} {refused}"
    );
    for email in &acknowledged {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email_key = $1")
            .bind(email)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(stored, 1, "{email} was acknowledged but is gone");
    }
    let verdict = app.state.audit.verify(&app.db).await.unwrap();
    assert!(
        matches!(verdict, authd::domain::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn the_pool_replaces_connections_that_broke_while_idle() {
    let (app, proxy) = spawn_behind_proxy(|_| {}).await;
    // A pool of authd's own making, through the proxy, that nothing else
    // uses (the app's background tasks would tidy its broken connections).
    let url: sqlx::postgres::PgConnectOptions = database_url(&app.db_name).parse().unwrap();
    let pool = authd::storage::db::pool_options(&app.state.settings.database)
        .connect_with(url.host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap();
    drop(hold(&pool, 3).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pool.num_idle() < 3 {
        assert!(Instant::now() < deadline, "connections not returned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // PostgreSQL goes away and comes back while the pool sits idle: every
    // pooled connection is now dead, and nothing has noticed yet.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.restore().await;
    tokio::time::sleep(authd::storage::db::PING_AFTER_IDLE).await;
    for _ in 0..3 {
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}

/// `n` connections taken out of `pool` at once, so that it opens `n`.
async fn hold(pool: &sqlx::PgPool, n: usize) -> Vec<sqlx::pool::PoolConnection<sqlx::Postgres>> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.acquire().await.unwrap());
    }
    held
}
