//! GET /v1/me and the bearer-token checks every resource route relies on.
use crate::helpers::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::Duration;

#[tokio::test]
async fn me_returns_the_callers_account() {
    let app = spawn_app().await;
    app.create_user("Oscar@Example.com").await;
    let (access, _) = app.login_native("oscar@example.com").await;
    let response = app.me(&access).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(body["user_id"], user_id.to_string());
    // The local part keeps its case; the domain is in its UTS #46 form.
    assert_eq!(body["email"], "Oscar@example.com");
    assert_eq!(body["email_verified"], false);
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["mfa_enabled"], false);
    assert!(
        time::OffsetDateTime::parse(
            body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
}

/// Claims of a valid token, for tampering with.
async fn valid_claims(app: &TestApp) -> (Value, String) {
    app.create_user("target@example.com").await;
    let (access, _) = app.login_native("target@example.com").await;
    let (_, claims) = jwt_parts(&access);
    (claims, access)
}

fn sign_with_app_key(app: &TestApp, claims: &Value, tweak: impl FnOnce(&mut Header)) -> String {
    let set = app.state.keys.current();
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(set.active.kid.clone());
    tweak(&mut header);
    set.active.sign_with_header(&header, claims).unwrap()
}

async fn assert_invalid_token(app: &TestApp, authorization: Option<String>, case: &str) {
    let mut request = app.client.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#,
        "{case}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{case}");
}

#[tokio::test]
async fn a_re_signed_untampered_token_is_accepted() {
    // Guards the tampering tests below: the same signing path with unchanged
    // claims must pass, so each refusal is due to the one thing changed.
    let app = spawn_app().await;
    let (claims, _) = valid_claims(&app).await;
    let token = sign_with_app_key(&app, &claims, |_| {});
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn missing_and_malformed_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, access) = valid_claims(&app).await;
    assert_invalid_token(&app, None, "missing").await;
    assert_invalid_token(&app, Some("Bearer".into()), "empty bearer").await;
    assert_invalid_token(&app, Some(format!("Basic {access}")), "wrong scheme").await;
    assert_invalid_token(&app, Some("Bearer not.a.jwt".into()), "garbage").await;
    let mut tampered = access.clone();
    tampered.pop();
    tampered.push(if access.ends_with('A') { 'B' } else { 'A' });
    assert_invalid_token(&app, Some(format!("Bearer {tampered}")), "bad signature").await;
    assert_invalid_token(
        &app,
        Some(format!("Bearer {}", "a".repeat(9000))),
        "oversized",
    )
    .await;
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let app = spawn_app().await;
    let (_, access) = valid_claims(&app).await;
    app.clock.advance(Duration::seconds(899));
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
    app.clock.advance(Duration::seconds(2));
    assert_invalid_token(&app, Some(format!("Bearer {access}")), "expired").await;
}

#[tokio::test]
async fn wrong_issuer_audience_type_and_kid_are_refused() {
    let app = spawn_app().await;
    let (claims, _) = valid_claims(&app).await;
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example.net");
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("someone-else");
    let cases = [
        ("wrong issuer", sign_with_app_key(&app, &wrong_iss, |_| {})),
        (
            "wrong audience",
            sign_with_app_key(&app, &wrong_aud, |_| {}),
        ),
        (
            "unknown kid",
            sign_with_app_key(&app, &claims, |h| h.kid = Some("nope".into())),
        ),
        ("no kid", sign_with_app_key(&app, &claims, |h| h.kid = None)),
        (
            "id token type",
            sign_with_app_key(&app, &claims, |h| h.typ = Some("JWT".into())),
        ),
    ];
    for (case, token) in cases {
        assert_invalid_token(&app, Some(format!("Bearer {token}")), case).await;
    }
}

#[tokio::test]
async fn alg_none_and_hs256_confusion_are_refused() {
    let app = spawn_app().await;
    let (claims, _) = valid_claims(&app).await;
    let kid = app.state.keys.current().active.kid.clone();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        b64(&claims)
    );
    assert_invalid_token(&app, Some(format!("Bearer {none}")), "alg none").await;
    // HS256 keyed with the public JWKS document: the classic confusion attack.
    let jwks = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid);
    let hs = encode(&header, &claims, &EncodingKey::from_secret(&jwks)).unwrap();
    assert_invalid_token(&app, Some(format!("Bearer {hs}")), "hs256").await;
}

#[tokio::test]
async fn tokens_of_disabled_accounts_stop_working() {
    let app = spawn_app().await;
    let (_, access) = valid_claims(&app).await;
    sqlx::query("UPDATE users SET disabled_at = now()")
        .execute(&app.db)
        .await
        .unwrap();
    assert_invalid_token(&app, Some(format!("Bearer {access}")), "disabled").await;
}
