//! Registered clients: `authd clients create`, and tokens minted for them
//! (their `client_id`, `aud`, lifetime and `scope`) through login, refresh
//! and the MFA step.
use crate::cli::{authd, stderr, stdout};
use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Registers a client through the CLI against the app's database.
fn create_client(app: &TestApp, args: &[&str]) -> Result<String, String> {
    let url = database_url(&app.db_name);
    let mut all = vec!["clients", "create"];
    all.extend_from_slice(args);
    let output = authd(&all, &[("AUTHD_DATABASE__URL", url.as_str())]);
    if output.status.success() {
        Ok(stdout(&output).trim().to_owned())
    } else {
        Err(stderr(&output))
    }
}

async fn login_for(app: &TestApp, email: &str, client_type: &str, client_id: &str) -> Response {
    let body = json!({
        "email": email,
        "password": PASSWORD,
        "client_type": client_type,
        "client_id": client_id,
    });
    app.post_json("/v1/auth/login", &body).await
}

fn claims_of(body: &Value) -> Value {
    jwt_parts(&str_field(body, "access_token")).1
}

#[tokio::test]
async fn tokens_carry_the_registered_clients_audience_lifetime_and_scope() {
    let app = spawn_app().await;
    app.create_user("cli@example.com").await;
    let id = create_client(
        &app,
        &[
            "--name",
            "mobile",
            "--audience",
            "orders-api",
            "--access-ttl",
            "600",
            "--scope",
            "orders.read",
            "--scope",
            "orders.write",
        ],
    )
    .unwrap();
    assert_eq!(id.len(), 26, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );

    let response = login_for(&app, "cli@example.com", "native", &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 600);
    let claims = claims_of(&body);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["scope"], "orders.read orders.write");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 600);
    // authd's own API serves every client.
    let access = str_field(&body, "access_token");
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);

    // Refresh keeps the client, whether or not the caller names it.
    let refresh = str_field(&body, "refresh_token");
    let response = app.refresh_body(&refresh).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(claims_of(&body)["client_id"], id.as_str());
    let refresh = str_field(&body, "refresh_token");
    let body = json!({ "refresh_token": refresh, "client_id": id });
    let response = app.post_json("/v1/auth/refresh", &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(claims_of(&body)["aud"], "orders-api");

    // Naming another client spends nothing: the token still refreshes.
    let refresh = str_field(&body, "refresh_token");
    for other in ["default", "zzzzzzzzzzzzzzzzzzzzzzzzzz"] {
        let body = json!({ "refresh_token": refresh, "client_id": other });
        let response = app.post_json("/v1/auth/refresh", &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_client".into())
        );
    }
    assert_eq!(app.refresh_body(&refresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_token_naming_another_client_is_still_reuse() {
    let app = spawn_app().await;
    app.create_user("replay@example.com").await;
    let id = create_client(&app, &["--name", "mobile", "--audience", "orders-api"]).unwrap();
    let response = login_for(&app, "replay@example.com", "native", &id).await;
    let stolen = str_field(&response.json::<Value>().await.unwrap(), "refresh_token");
    let response = app.refresh_body(&stolen).await;
    let newest = str_field(&response.json::<Value>().await.unwrap(), "refresh_token");
    app.clock.advance(time::Duration::seconds(11));
    // The thief replays the spent token and names another client: it is
    // reuse (401, the family revoked), not a hint that the family lives.
    let body = json!({ "refresh_token": stolen, "client_id": "default" });
    let response = app.post_json("/v1/auth/refresh", &body).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into())
    );
    assert_eq!(
        app.refresh_body(&newest).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_events WHERE event_type = 'refresh_token_reuse_detected'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn browsers_keep_their_client_through_the_cookie() {
    let app = spawn_app().await;
    app.create_user("web@example.com").await;
    let id = create_client(
        &app,
        &["--name", "spa", "--audience", "https://api.example.com"],
    )
    .unwrap();
    let response = login_for(&app, "web@example.com", "web", &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = cookie_value(&refresh_set_cookie(&response).unwrap());
    let body: Value = response.json().await.unwrap();
    // The default lifetime when --access-ttl is not given.
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none());
    let refreshed = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", format!("{REFRESH_COOKIE}={cookie}"))
        .json(&json!({ "client_id": id }))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    let claims = claims_of(&body);
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["client_id"], id.as_str());
}

#[tokio::test]
async fn unknown_clients_are_refused_and_the_default_one_is_kept() {
    let app = spawn_app().await;
    app.create_user("def@example.com").await;
    for unknown in ["nope", "", &"a".repeat(65)] {
        let response = login_for(&app, "def@example.com", "native", unknown).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_client".into()),
            "{unknown:?}"
        );
    }
    let response = login_for(&app, "def@example.com", "native", "default").await;
    let body: Value = response.json().await.unwrap();
    let claims = claims_of(&body);
    assert_eq!(claims["client_id"], "default");
    assert_eq!(claims["aud"], app.state.settings.auth.audience.as_str());
    // Nothing about the refusals above reached the throttle.
    assert_eq!(app.count("SELECT count(*) FROM login_throttle").await, 0);
}

#[tokio::test]
async fn the_cli_refuses_bad_clients_and_lists_good_ones() {
    let app = spawn_app().await;
    let id = create_client(&app, &["--name", "web", "--audience", "web-api"]).unwrap();
    let taken = create_client(&app, &["--name", "web", "--audience", "other"]).unwrap_err();
    assert!(taken.contains("already exists"), "{taken}");
    for ttl in ["59", "3601"] {
        let refused = create_client(
            &app,
            &["--name", "x", "--audience", "a", "--access-ttl", ttl],
        )
        .unwrap_err();
        assert!(refused.contains("--access-ttl"), "{refused}");
    }
    let spaced = create_client(&app, &["--name", "y", "--audience", "a b"]).unwrap_err();
    assert!(spaced.contains("--audience"), "{spaced}");
    let url = database_url(&app.db_name);
    let list = authd(
        &["clients", "list"],
        &[("AUTHD_DATABASE__URL", url.as_str())],
    );
    let listed = stdout(&list);
    assert!(
        listed.contains(&id) && listed.contains("web-api"),
        "{listed}"
    );
    assert_eq!(app.count("SELECT count(*) FROM clients").await, 1);
}
