//! Idempotency-Key on the mutating routes: replays, reuse with another
//! request, scoping, expiry, concurrency, and never storing tokens.
use crate::helpers::*;
use authd::clock::Clock;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use time::Duration;

const KEY: &str = "4b1d4e5c-retry-me";

fn keyed(client: &Client, app: &TestApp, path: &str, key: &str) -> RequestBuilder {
    client.post(app.url(path)).header("idempotency-key", key)
}

async fn post_keyed(
    app: &TestApp,
    client: &Client,
    path: &str,
    key: &str,
    body: &Value,
) -> Response {
    keyed(client, app, path, key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn signup_keyed(app: &TestApp, key: &str, email: &str, password: &str) -> Response {
    let body = json!({ "email": email, "password": password });
    post_keyed(app, &app.client, "/v1/auth/signup", key, &body).await
}

async fn login_keyed(app: &TestApp, key: &str, email: &str, client_type: &str) -> Response {
    let body = json!({ "email": email, "password": PASSWORD, "client_type": client_type });
    post_keyed(app, &app.client, "/v1/auth/login", key, &body).await
}

async fn cookie_post(app: &TestApp, path: &str, key: &str, token: &str) -> Response {
    keyed(&app.client, app, path, key)
        .header("cookie", format!("{REFRESH_COOKIE}={token}"))
        .send()
        .await
        .unwrap()
}

fn replayed(response: &Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

/// The error's code and message; the message must be the one documented.
async fn documented_error(response: Response, documented_as: &str) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    let spec: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap(),
    )
    .unwrap();
    let example = &spec["components"]["examples"][documented_as]["value"];
    assert_eq!(example["message"].as_str(), body["message"].as_str());
    assert_eq!(example["error"].as_str(), body["error"].as_str());
    (status, str_field(&body, "error"))
}

#[tokio::test]
async fn a_signup_retry_gets_the_stored_response_without_running_again() {
    let app = spawn_app().await;
    let first = signup_keyed(&app, KEY, "once@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    assert!(!replayed(&first));
    let first_body = first.text().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    // Were the handler to run again, the account would come back.
    sqlx::query("DELETE FROM users")
        .execute(&app.db)
        .await
        .unwrap();
    let retry = signup_keyed(&app, KEY, "once@example.com", PASSWORD).await;
    assert_eq!(retry.status(), StatusCode::ACCEPTED);
    assert!(replayed(&retry));
    assert_eq!(retry.headers()["content-type"], "application/json");
    assert_eq!(retry.headers()["cache-control"], "no-store");
    assert_eq!(retry.text().await.unwrap(), first_body);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let app = spawn_app().await;
    let first = signup_keyed(&app, KEY, "first@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let other_body = signup_keyed(&app, KEY, "second@example.com", PASSWORD).await;
    assert_eq!(
        documented_error(other_body, "IdempotencyKeyReused").await,
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused".into()
        )
    );
    // The path is part of the request too.
    let other_path = login_keyed(&app, KEY, "first@example.com", "native").await;
    assert_eq!(other_path.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn client_errors_are_stored_and_replayed() {
    let app = spawn_app().await;
    let weak = signup_keyed(&app, KEY, "weak@example.com", "short").await;
    assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
    let weak_body = weak.text().await.unwrap();
    assert!(weak_body.contains("weak_password"), "{weak_body}");
    let retry = signup_keyed(&app, KEY, "weak@example.com", "short").await;
    assert_eq!(retry.status(), StatusCode::BAD_REQUEST);
    assert!(replayed(&retry));
    assert_eq!(retry.text().await.unwrap(), weak_body);
}

/// Fails unless no 12-character piece of `token` is anywhere in the table.
async fn assert_table_holds_no_part_of(app: &TestApp, token: &str) {
    type Row = (
        String,
        String,
        Vec<u8>,
        String,
        Option<Vec<u8>>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT scope, key, request_hash, state, response_body, response_content_type
         FROM idempotency_keys",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!rows.is_empty());
    let mut haystack = Vec::new();
    for (scope, key, hash, state, body, content_type) in rows {
        haystack.extend(scope.into_bytes());
        haystack.extend(key.into_bytes());
        haystack.extend(hash);
        haystack.extend(state.into_bytes());
        haystack.extend(body.unwrap_or_default());
        haystack.extend(content_type.unwrap_or_default().into_bytes());
    }
    for piece in token.as_bytes().windows(12) {
        assert!(
            !haystack.windows(12).any(|w| w == piece),
            "token piece stored"
        );
    }
}

#[tokio::test]
async fn a_login_retry_opens_no_second_session_and_no_token_is_stored() {
    let app = spawn_app().await;
    app.create_user("login@example.com").await;
    for (key, client_type) in [("web-login", "web"), ("native-login", "native")] {
        let first = login_keyed(&app, key, "login@example.com", client_type).await;
        assert_eq!(first.status(), StatusCode::OK);
        let cookie = refresh_set_cookie(&first).map(|c| cookie_value(&c));
        let body: Value = first.json().await.unwrap();
        let retry = login_keyed(&app, key, "login@example.com", client_type).await;
        assert!(retry.headers().get("set-cookie").is_none());
        assert_eq!(
            documented_error(retry, "AlreadyProcessed").await,
            (StatusCode::CONFLICT, "already_processed".into())
        );
        let refresh = cookie.unwrap_or_else(|| str_field(&body, "refresh_token"));
        assert_table_holds_no_part_of(&app, &refresh).await;
        assert_table_holds_no_part_of(&app, &str_field(&body, "access_token")).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 2);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM idempotency_keys WHERE stored OR response_body IS NOT NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_refresh_retry_spends_nothing_and_mints_no_second_child() {
    let app = spawn_with(|s| s.auth.refresh_reuse_leeway_secs = 0).await;
    app.create_user("rotate@example.com").await;
    let (_, token) = app.login_native("rotate@example.com").await;
    let body = json!({ "refresh_token": token });
    let first = post_keyed(&app, &app.client, "/v1/auth/refresh", KEY, &body).await;
    assert_eq!(first.status(), StatusCode::OK);
    let child = str_field(&first.json::<Value>().await.unwrap(), "refresh_token");
    let retry = post_keyed(&app, &app.client, "/v1/auth/refresh", KEY, &body).await;
    assert_eq!(retry.status(), StatusCode::CONFLICT);
    // Without the key, the spent token would have been reuse and revoked
    // the session; the retry never reached the handler.
    assert_eq!(app.count("SELECT count(*) FROM refresh_tokens").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE revoked_at IS NULL")
            .await,
        1
    );
    assert_eq!(app.refresh_body(&child).await.status(), StatusCode::OK);
    assert_table_holds_no_part_of(&app, &child).await;
}

#[tokio::test]
async fn a_cookie_refresh_is_fingerprinted_by_its_cookie() {
    let app = spawn_with(|s| s.auth.refresh_reuse_leeway_secs = 0).await;
    app.create_user("cookie@example.com").await;
    let first_login = app.login("cookie@example.com", PASSWORD, "web").await;
    let token = cookie_value(&refresh_set_cookie(&first_login).unwrap());
    let first = cookie_post(&app, "/v1/auth/refresh", KEY, &token).await;
    assert_eq!(first.status(), StatusCode::OK);
    let child = cookie_value(&refresh_set_cookie(&first).unwrap());
    let retry = cookie_post(&app, "/v1/auth/refresh", KEY, &token).await;
    assert_eq!(
        error_code(retry).await,
        (StatusCode::CONFLICT, "already_processed".into())
    );
    // Same key and (empty) body, another cookie: another request.
    let other = cookie_post(&app, "/v1/auth/refresh", KEY, &child).await;
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.count("SELECT count(*) FROM refresh_tokens WHERE parent_hash IS NOT NULL")
            .await,
        1
    );
    assert_table_holds_no_part_of(&app, &child).await;
}

#[tokio::test]
async fn a_logout_retry_replays_204() {
    let app = spawn_app().await;
    app.create_user("bye@example.com").await;
    let login = app.login("bye@example.com", PASSWORD, "web").await;
    let token = cookie_value(&refresh_set_cookie(&login).unwrap());
    let first = cookie_post(&app, "/v1/auth/logout", KEY, &token).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert!(refresh_set_cookie(&first).is_some());
    let retry = cookie_post(&app, "/v1/auth/logout", KEY, &token).await;
    assert_eq!(retry.status(), StatusCode::NO_CONTENT);
    assert!(replayed(&retry));
    // Set-Cookie is never stored, so never replayed.
    assert!(retry.headers().get("set-cookie").is_none());
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE revoked_reason = 'logout'")
            .await,
        1
    );
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller() {
    let app = spawn_app().await;
    let first = signup_keyed(&app, KEY, "here@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let elsewhere = client_from("127.0.0.2");
    let body = json!({ "email": "there@example.com", "password": PASSWORD });
    let other = post_keyed(&app, &elsewhere, "/v1/auth/signup", KEY, &body).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    assert!(!replayed(&other));
    assert_eq!(app.count("SELECT count(*) FROM users").await, 2);
    // With a valid access token the scope is the user, wherever they are.
    let (access, refresh) = app.login_native("here@example.com").await;
    let body = json!({ "refresh_token": refresh });
    let logout = keyed(&app.client, &app, "/v1/auth/logout", KEY)
        .bearer_auth(&access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let scopes: Vec<String> =
        sqlx::query_scalar("SELECT scope FROM idempotency_keys ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind("here@example.com")
        .fetch_one(&app.db)
        .await
        .unwrap();
    // Anonymous callers are scoped by a keyed hash of their IP (the table
    // holds no IP), distinct per IP; bearer callers by their user id.
    assert_eq!(scopes.len(), 3);
    for scope in &scopes[..2] {
        let hashed = scope.strip_prefix("ip:").unwrap();
        assert_eq!(hashed.len(), 64, "{scope}");
        assert!(!scope.contains("127.0.0"), "{scope}");
    }
    assert_ne!(scopes[0], scopes[1]);
    assert_eq!(scopes[2], format!("user:{user_id}"));
}

#[tokio::test]
async fn a_key_older_than_the_window_is_new_again_and_purged() {
    let app = spawn_app().await;
    let first = signup_keyed(&app, KEY, "old@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    app.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    // Another body would be refused within the window; now it is a new request.
    let later = signup_keyed(&app, KEY, "new@example.com", PASSWORD).await;
    assert_eq!(later.status(), StatusCode::ACCEPTED);
    assert!(!replayed(&later));
    assert_eq!(app.count("SELECT count(*) FROM users").await, 2);
    let again = signup_keyed(&app, KEY, "new@example.com", PASSWORD).await;
    assert!(replayed(&again));
    // The background purge drops keys once they are past the window.
    app.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let now = app.clock.now();
    let cutoff = authd::http::idempotency::expired_before(&app.state, now);
    let purged = authd::storage::idempotency::purge_expired(&app.db, cutoff)
        .await
        .unwrap();
    assert_eq!(purged, 1);
}

#[tokio::test]
async fn malformed_keys_are_refused_before_any_work() {
    let app = spawn_app().await;
    let too_long = "k".repeat(300);
    for key in ["", too_long.as_str(), "two words"] {
        let response = keyed(&app.client, &app, "/v1/auth/signup", key)
            .json(&json!({ "email": "bad-key@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{key:?}");
        assert!(str_field(&body, "message").contains("Idempotency-Key"));
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn oversized_bodies_with_a_key_get_413() {
    let app = spawn_app().await;
    let body = json!({ "email": "a@example.com", "password": "p".repeat(17 * 1024) });
    let response = post_keyed(&app, &app.client, "/v1/auth/signup", KEY, &body).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".into())
    );
    assert_eq!(app.count("SELECT count(*) FROM idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_throttled_attempt_is_not_stored_so_its_retry_runs() {
    let app = spawn_with(|s| {
        s.throttle.ip_free_failures = 1;
        s.throttle.base_delay_secs = 60;
    })
    .await;
    app.create_user("slow@example.com").await;
    for _ in 0..2 {
        let wrong = app
            .login("slow@example.com", "not the password", "native")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let blocked = login_keyed(&app, KEY, "slow@example.com", "native").await;
    assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(Duration::seconds(61));
    let retry = login_keyed(&app, KEY, "slow@example.com", "native").await;
    assert_eq!(retry.status(), StatusCode::OK);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1);
}

/// Sends six copies of one keyed request at once; the responses' statuses,
/// codes and replay flags.
async fn race(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
) -> Vec<(StatusCode, String, bool)> {
    let attempts: Vec<_> = (0..6)
        .map(|_| {
            let request = keyed(&app.client, app, path, key).json(&body);
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let replay = replayed(&response);
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                let code = body["error"].as_str().unwrap_or("").to_owned();
                (status, code, replay)
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.unwrap());
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_run_once() {
    let app = spawn_app().await;
    let body = json!({ "email": "twice@example.com", "password": PASSWORD });
    let signups = race(&app, "/v1/auth/signup", "signup-race", body).await;
    let ran = signups
        .iter()
        .filter(|(s, _, replay)| *s == StatusCode::ACCEPTED && !replay)
        .count();
    assert_eq!(ran, 1, "{signups:?}");
    for (status, code, replay) in &signups {
        let ok = *status == StatusCode::ACCEPTED
            || (*status == StatusCode::CONFLICT && code == "idempotency_in_progress" && !replay);
        assert!(ok, "{signups:?}");
    }

    let body =
        json!({ "email": "twice@example.com", "password": PASSWORD, "client_type": "native" });
    let logins = race(&app, "/v1/auth/login", "login-race", body).await;
    let ok = logins.iter().filter(|(s, ..)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{logins:?}");
    for (status, code, _) in &logins {
        let conflict = ["idempotency_in_progress", "already_processed"].contains(&code.as_str());
        assert!(*status == StatusCode::OK || conflict, "{logins:?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1);
}
