//! authd's tokens against the rules AWS documents for the AppSync
//! OPENID_CONNECT authorizer and for API Gateway HTTP API JWT authorizers,
//! as implemented independently by tests/support/authorizers.mjs (a test
//! oracle with its own self-test): tokens from a login, a refresh and a
//! federated sign-in, for a registered client, must pass; others must not.
use crate::helpers::idp::{Browser, Idp, PROVIDER};
use crate::helpers::*;
use authd::clock::Clock;
use authd::domain::clients::{self, NewClient};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Runs the oracle on `tokens` at `now`; its JSON answer.
async fn authorizers(app: &TestApp, tokens: &[(&str, &str)], now: i64) -> Value {
    let input = json!({
        "issuer": app.state.settings.auth.issuer,
        "base_url": app.url(""),
        "now": now,
        "tokens": tokens.iter().map(|(name, token)| json!({ "name": name, "token": token })).collect::<Vec<_>>(),
        // AppSync: Client ID "orders-api", iatTTL 15 min, authTTL 4 h.
        "appsync": { "client_id": "orders-api", "iat_ttl_ms": 900_000, "auth_ttl_ms": 14_400_000 },
        "apigw": [
            { "name": "orders", "audience": ["orders-api"], "scopes": [] },
            { "name": "orders_read", "audience": ["orders-api"], "scopes": ["orders.read"] },
        ],
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/authorizers.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run node tests/support/authorizers.mjs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "the oracle refused its input");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// (token, authorizer) → the oracle's reasons (empty: accepted).
fn verdicts(report: &Value) -> Vec<(String, String, Vec<String>)> {
    assert_eq!(report["discovery"]["ok"], true, "{report}");
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let reasons = r["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect();
            (
                r["token"].as_str().unwrap().to_owned(),
                r["authorizer"].as_str().unwrap().to_owned(),
                reasons,
            )
        })
        .collect()
}

#[tokio::test]
async fn login_refresh_and_federated_tokens_pass_the_aws_authorizers() {
    let idp = Idp::start(&test_settings()).await;
    let provider = idp.provider_settings();
    let app = spawn_with(move |s| {
        s.federation.providers.insert(PROVIDER.into(), provider);
    })
    .await;
    let client = clients::create(
        &app.db,
        &NewClient {
            name: "orders",
            audience: "orders-api",
            access_ttl_secs: 600,
            scopes: &["orders.read".to_owned()],
        },
        app.clock.now(),
    )
    .await
    .unwrap();

    app.create_user("aws@example.com").await;
    let body = json!({
        "email": "aws@example.com",
        "password": PASSWORD,
        "client_type": "native",
        "client_id": client.id,
    });
    let login: Value = app
        .post_json("/v1/auth/login", &body)
        .await
        .json()
        .await
        .unwrap();
    let login_token = str_field(&login, "access_token");
    let refreshed: Value = app
        .refresh_body(&str_field(&login, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = str_field(&refreshed, "access_token");

    idp.signs_in(json!({
        "sub": "ops", "email": "ops@corp.example", "email_verified": true,
        "groups": ["authd-admins"], "amr": ["pwd", "mfa"],
    }))
    .await;
    let walk = Browser::new()
        .sign_in(&app, &format!("?client_id={}", client.id))
        .await;
    assert_eq!(walk.response.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_value(&refresh_set_cookie(&walk.response).unwrap());
    let federated: Value = app.refresh_cookie(&cookie).await.json().await.unwrap();
    let federated_token = str_field(&federated, "access_token");
    assert_eq!(jwt_parts(&federated_token).1["idp"], PROVIDER);

    let (default_token, _) = app.login_native("aws@example.com").await;

    let now = app.clock.now().unix_timestamp();
    let tokens = [
        ("login", login_token.as_str()),
        ("refresh", refresh_token.as_str()),
        ("federated", federated_token.as_str()),
        ("default_client", default_token.as_str()),
    ];
    for (token, authorizer, reasons) in verdicts(&authorizers(&app, &tokens, now).await) {
        if token == "default_client" {
            // Another audience, and no scope: every authorizer says no.
            assert!(
                !reasons.is_empty(),
                "{authorizer} accepted the default client's token"
            );
        } else {
            assert!(reasons.is_empty(), "{token} at {authorizer}: {reasons:?}");
        }
    }

    // Sixteen minutes on: past the client's 10-minute lifetime and AppSync's
    // iatTTL, so every authorizer refuses, each for its documented reason.
    let later = verdicts(&authorizers(&app, &tokens[..1], now + 16 * 60).await);
    assert_eq!(later.len(), 3);
    for (_, authorizer, reasons) in later {
        assert!(
            reasons.iter().any(|r| r.contains("exp")),
            "{authorizer}: {reasons:?}"
        );
        if authorizer == "appsync" {
            assert!(reasons.iter().any(|r| r.contains("iat")), "{reasons:?}");
        }
    }
}

/// The oracle itself refuses what AWS documents as refused (wrong issuer,
/// audience, algorithm, key, expiry, scope…): its self-test, run here so
/// that the README's one test command covers it.
#[tokio::test]
async fn the_authorizer_oracle_passes_its_self_test() {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/authorizers-selftest.mjs");
    let output = Command::new("node").arg(script).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}
