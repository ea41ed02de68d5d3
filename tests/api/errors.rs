//! Malformed requests get JSON errors with stable codes, never 500s.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app().await;
    let body = json!({ "email": "a@example.com", "password": "p".repeat(17 * 1024) });
    let (status, code) = error_code(app.post_json("/v1/auth/signup", &body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let response = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(vec![b' '; 20 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn non_json_bodies_get_415_and_broken_json_400() {
    let app = spawn_app().await;
    let no_type = app
        .client
        .post(app.url("/v1/auth/login"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(no_type).await,
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type".into()
        )
    );
    let form = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=a&password=b")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"email": "a@example.com", "password": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(broken).await,
        (StatusCode::BAD_REQUEST, "malformed_json".into())
    );
}

#[tokio::test]
async fn wrong_shapes_get_invalid_request_without_echoing_values() {
    let app = spawn_app().await;
    let cases = [
        json!({ "email": "a@example.com" }),
        json!({ "email": "a@example.com", "password": "secret-value-123", "admin": true }),
        json!({ "email": "a@example.com", "password": ["secret-value-123"] }),
        json!({ "email": "a@example.com", "password": "secret-value-123", "client_type": "tv" }),
        json!([1, 2]),
    ];
    for body in cases {
        let response = app.post_json("/v1/auth/login", &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let text = response.text().await.unwrap();
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["error"], "invalid_request", "{body}");
        assert!(!text.contains("secret-value-123"), "{text}");
    }
    // An array is not an object, even where every field is optional.
    for path in ["/v1/auth/logout", "/v1/auth/refresh"] {
        let response = app.post_json(path, &json!([null])).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_request".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_nul_character_is_a_client_mistake_not_a_500() {
    let app = spawn_app().await;
    app.create_user("nul@example.com").await;
    let login = json!({ "email": "nul@example.com", "password": PASSWORD, "client_id": "x\0" });
    let refresh = json!({ "refresh_token": "A".repeat(43), "client_id": "\0" });
    for (path, body) in [("/v1/auth/login", login), ("/v1/auth/refresh", refresh)] {
        let response = app.post_json(path, &body).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_client".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_path_segment_that_does_not_decode_is_a_json_404() {
    let app = spawn_app().await;
    app.create_user("path@example.com").await;
    let (access, _) = app.login_native("path@example.com").await;
    let start = app
        .client
        .get(app.url("/v1/auth/federation/%FF/start"))
        .send()
        .await
        .unwrap();
    let session = app
        .client
        .delete(app.url("/v1/me/sessions/%FF%FE"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    for response in [start, session] {
        assert_eq!(
            error_code(response).await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/v1/nope")).send().await.unwrap();
    assert_eq!(
        error_code(missing).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    let wrong = app
        .client
        .get(app.url("/v1/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    let h = response.headers();
    assert_eq!(h["x-request-id"], "trace-me-123");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let generated = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(generated.headers()["x-request-id"].len(), 36);
    // A hostile id (log forging, flooding) is replaced, not echoed.
    for hostile in ["a\"b{}", &"x".repeat(65)] {
        let response = app
            .client
            .get(app.url("/healthz"))
            .header("x-request-id", hostile)
            .send()
            .await
            .unwrap();
        let echoed = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_ne!(echoed, hostile);
        assert_eq!(echoed.len(), 36);
    }
}
