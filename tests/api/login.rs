//! POST /v1/auth/login
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn web_login_sets_a_hardened_cookie_and_keeps_the_token_out_of_the_body() {
    let app = spawn_app().await;
    app.create_user("web@example.com").await;
    let response = app.login("web@example.com", PASSWORD, "web").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let set_cookie = refresh_set_cookie(&response).expect("refresh cookie");
    // `__Host-`, no Domain, Path=/: no sibling subdomain can plant one.
    assert!(
        set_cookie.starts_with("__Host-authd_refresh="),
        "{set_cookie}"
    );
    let mut attributes = cookie_attributes(&set_cookie);
    attributes.sort();
    assert_eq!(
        attributes,
        vec![
            "HttpOnly",
            "Max-Age=2592000",
            "Path=/",
            "SameSite=Strict",
            "Secure"
        ]
    );
    let token = cookie_value(&set_cookie);
    assert_eq!(token.len(), 43);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none());
    assert!(!body.to_string().contains(&token));
    // Web is the default when client_type is absent.
    let default = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({ "email": "web@example.com", "password": PASSWORD }),
        )
        .await;
    assert!(refresh_set_cookie(&default).is_some());
}

#[tokio::test]
async fn native_login_returns_the_refresh_token_in_the_body_and_sets_no_cookie() {
    let app = spawn_app().await;
    app.create_user("native@example.com").await;
    let response = app.login("native@example.com", PASSWORD, "native").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(str_field(&body, "refresh_token").len(), 43);
    // Only the SHA-256 of the token is stored.
    let token = str_field(&body, "refresh_token");
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0],
        authd::crypto::random::sha256(token.as_bytes()).to_vec()
    );
}

#[tokio::test]
async fn access_token_follows_rfc_9068_and_carries_no_pii() {
    let app = spawn_app().await;
    app.create_user("claims@example.com").await;
    let (access, _) = app.login_native("claims@example.com").await;
    let (header, claims) = jwt_parts(&access);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt");
    let kid = app.state.keys.current().active.kid.clone();
    assert_eq!(header["kid"], kid.as_str());
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let session_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(claims["iss"], app.state.settings.auth.issuer.as_str());
    assert_eq!(claims["aud"], "authd");
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["sid"], session_id.to_string());
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 900);
    assert_eq!(claims["auth_time"].as_i64().unwrap(), iat);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    // The default client: RFC 9068's client_id, and an empty scope.
    assert_eq!(claims["client_id"], "default");
    assert_eq!(claims["scope"], "");
    let mut names: Vec<&str> = claims
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "amr",
            "aud",
            "auth_time",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "roles",
            "scope",
            "sid",
            "sub"
        ]
    );
    assert!(!claims.to_string().contains("claims@example.com"));
}

#[tokio::test]
async fn wrong_password_unknown_email_and_disabled_account_look_identical() {
    let app = spawn_app().await;
    app.create_user("erin@example.com").await;
    app.create_user("frank@example.com").await;
    sqlx::query("UPDATE users SET disabled_at = now() WHERE email = 'frank@example.com'")
        .execute(&app.db)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for (email, password) in [
        ("erin@example.com", "not the right password"),
        ("nobody@example.com", "not the right password"),
        ("frank@example.com", PASSWORD),
    ] {
        let response = app.login(email, password, "web").await;
        assert!(refresh_set_cookie(&response).is_none());
        answers.push((response.status(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answers[0].1,
        r#"{"error":"invalid_credentials","message":"the email or password is incorrect"}"#
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[tokio::test]
async fn login_is_case_insensitive_and_nfkc_normalised() {
    let app = spawn_app().await;
    // Fullwidth digits in the password NFKC-normalise to ASCII ones.
    app.signup("Grace@Example.com", "passphrase with １２３ digits")
        .await;
    let response = app
        .login("grace@EXAMPLE.com", "passphrase with 123 digits", "native")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn outdated_hash_parameters_are_upgraded_at_login() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let app = spawn_app().await;
    app.create_user("heidi@example.com").await;
    let weak = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(4096, 1, 1, None).unwrap(),
    );
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    let old = weak
        .hash_password(PASSWORD.as_bytes(), &salt)
        .unwrap()
        .to_string();
    sqlx::query("UPDATE users SET password_hash = $1")
        .bind(&old)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.login("heidi@example.com", PASSWORD, "native")
            .await
            .status(),
        StatusCode::OK
    );
    let upgraded: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    assert_eq!(
        app.login("heidi@example.com", PASSWORD, "native")
            .await
            .status(),
        StatusCode::OK
    );
}
