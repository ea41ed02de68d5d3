//! Discovery, JWKS, and key rotation as a resource server sees them.
use crate::helpers::*;
use authd::clock::Clock;
use authd::domain::key_material::SigningAlgorithm;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use time::Duration;

async fn jwks(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    response.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Verifies an RS256 or ES256 JWT with nothing but the JWKS and aws-lc-rs's
/// primitives: an implementation independent of the one authd verifies
/// with. The JWK must be the one its header's `alg` calls for.
fn verify_independently(jwks: &Value, token: &str) -> bool {
    let (header, _) = jwt_parts(token);
    let Some(key) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], header["alg"]);
    let decode = |field: &str| {
        URL_SAFE_NO_PAD
            .decode(key[field].as_str().unwrap())
            .unwrap()
    };
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    match header["alg"].as_str() {
        Some("RS256") => {
            assert_eq!(key["kty"], "RSA");
            let public = RsaPublicKeyComponents {
                n: decode("n"),
                e: decode("e"),
            };
            public
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
                .is_ok()
        }
        Some("ES256") => {
            assert_eq!(
                (key["kty"].as_str(), key["crv"].as_str()),
                (Some("EC"), Some("P-256"))
            );
            let point = [vec![4u8], decode("x"), decode("y")].concat();
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(signed.as_bytes(), &signature)
                .is_ok()
        }
        other => panic!("unexpected alg {other:?}"),
    }
}

#[tokio::test]
async fn issued_tokens_verify_against_the_published_jwks() {
    let app = spawn_app().await;
    app.create_user("rs@example.com").await;
    let (access, _) = app.login_native("rs@example.com").await;
    let keys = jwks(&app).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
    let n = URL_SAFE_NO_PAD
        .decode(keys["keys"][0]["n"].as_str().unwrap())
        .unwrap();
    assert!(n.len() * 8 >= 2048);
    assert!(verify_independently(&keys, &access));
    // And a flipped claim breaks the signature.
    let mut parts: Vec<&str> = access.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"someone-else"}"#);
    parts[1] = &forged_claims;
    assert!(!verify_independently(&keys, &parts.join(".")));
}

#[tokio::test]
async fn discovery_document_points_at_the_jwks() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: Value = response.json().await.unwrap();
    let issuer = app.state.settings.auth.issuer.clone();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
}

#[tokio::test]
async fn keys_sealed_under_another_master_key_are_refused() {
    let app = spawn_app().await;
    let other = authd::crypto::MasterKey::generate().unwrap();
    app.rotate_keys_with(
        &other.derive(authd::domain::keys::SEALING_LABEL).unwrap(),
        true,
    )
    .await;
    // The app cannot open the new active key, so it keeps its current keys.
    let reloaded = app.state.keys.reload(&app.db, app.clock.now()).await;
    let message = format!("{:#}", reloaded.err().unwrap());
    assert!(message.contains("another master key"), "{message}");
    app.create_user("still@example.com").await;
    let (token, _) = app.login_native("still@example.com").await;
    assert_eq!(app.me(&token).await.status(), StatusCode::OK);
}

fn kid_of(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

async fn statuses(app: &TestApp) -> Vec<(String, &'static str)> {
    let listed = authd::domain::keys::list(&app.db, app.clock.now())
        .await
        .unwrap();
    listed.into_iter().map(|k| (k.kid, k.status)).collect()
}

#[tokio::test]
async fn rotation_publishes_first_signs_later_and_retires_the_old_key() {
    let app = spawn_app().await;
    app.create_user("rot@example.com").await;
    let (old_token, _) = app.login_native("rot@example.com").await;
    let old_kid = kid_of(&old_token);

    // Published at once, but the old key keeps signing during the delay.
    let new_kid = app.rotate_keys().await;
    let keys = jwks(&app).await;
    assert_eq!(kids(&keys).len(), 2);
    assert!(kids(&keys).contains(&new_kid));
    let (during_delay, _) = app.login_native("rot@example.com").await;
    assert_eq!(kid_of(&during_delay), old_kid);
    let listed = statuses(&app).await;
    assert!(listed.contains(&(new_kid.clone(), "pending")), "{listed:?}");
    assert!(listed.contains(&(old_kid.clone(), "active")), "{listed:?}");

    // After the delay, new tokens use the new key; old ones still verify.
    app.clock.advance(Duration::seconds(10800));
    app.reload_keys().await;
    let (new_token, _) = app.login_native("rot@example.com").await;
    assert_eq!(kid_of(&new_token), new_kid);
    let keys = jwks(&app).await;
    assert!(verify_independently(&keys, &new_token));
    assert!(verify_independently(&keys, &during_delay));
    assert!(
        statuses(&app)
            .await
            .contains(&(old_kid.clone(), "verify-only"))
    );

    // Once every token the old key signed can have expired (a registered
    // client's may live an hour), it leaves the JWKS.
    app.clock.advance(Duration::seconds(900));
    app.reload_keys().await;
    assert!(kids(&jwks(&app).await).contains(&old_kid));
    app.clock
        .advance(Duration::seconds(3600 - 900 + 5 * 60 + 1));
    app.reload_keys().await;
    assert_eq!(kids(&jwks(&app).await), vec![new_kid.clone()]);
    let listed = statuses(&app).await;
    assert!(listed.contains(&(old_kid, "retired")), "{listed:?}");
    assert!(listed.contains(&(new_kid, "active")), "{listed:?}");
}

#[tokio::test]
async fn tokens_signed_before_activation_keep_working_after_it() {
    let app = spawn_app().await;
    app.create_user("edge@example.com").await;
    app.rotate_keys().await;
    // Signed by the old key a minute before the new one takes over.
    app.clock.advance(Duration::seconds(10800 - 60));
    let (old_token, _) = app.login_native("edge@example.com").await;
    app.clock.advance(Duration::seconds(120));
    app.reload_keys().await;
    let (new_token, _) = app.login_native("edge@example.com").await;
    assert_ne!(kid_of(&old_token), kid_of(&new_token));
    assert_eq!(app.me(&old_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&new_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn immediate_rotation_signs_with_the_new_key_at_once() {
    let app = spawn_app().await;
    app.create_user("now@example.com").await;
    let (old_token, _) = app.login_native("now@example.com").await;
    let kid = app
        .rotate_keys_with(app.state.keys.sealing_key(), true)
        .await;
    let (new_token, _) = app.login_native("now@example.com").await;
    assert_eq!(kid_of(&new_token), kid);
    assert_eq!(app.me(&old_token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_immediate_rotation_cuts_short_the_key_a_pending_rotation_left_signing() {
    let app = spawn_app().await;
    app.create_user("leak@example.com").await;
    let (token, _) = app.login_native("leak@example.com").await;
    let feared = kid_of(&token);
    // A scheduled rotation leaves the old key signing for its delay, with a
    // retirement far beyond it...
    let pending = app.rotate_keys().await;
    app.clock.advance(Duration::minutes(30));
    // ...then the old key is feared compromised.
    let fresh = app
        .rotate_keys_with(app.state.keys.sealing_key(), true)
        .await;
    let (signed_now, _) = app.login_native("leak@example.com").await;
    assert_eq!(kid_of(&signed_now), fresh);
    // Once any token it signed can have expired (an hour for a registered
    // client, plus the margin), neither older key is trusted any more,
    // where before the fix the feared one stayed until the scheduled
    // rotation's end, three hours on.
    app.clock.advance(Duration::seconds(3600 + 5 * 60 + 1));
    app.reload_keys().await;
    assert_eq!(kids(&jwks(&app).await), vec![fresh]);
    let listed = statuses(&app).await;
    assert!(listed.contains(&(feared, "retired")), "{listed:?}");
    assert!(listed.contains(&(pending, "retired")), "{listed:?}");
}

#[tokio::test]
async fn private_keys_are_stored_encrypted() {
    let app = spawn_app().await;
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT private_key_enc FROM signing_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    // A PKCS#8 RSA key in the clear starts with a DER SEQUENCE and holds the
    // rsaEncryption OID; the sealed form starts with our version byte.
    assert_eq!(sealed[0], 1);
    let rsa_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    assert!(!sealed.windows(rsa_oid.len()).any(|w| w == rsa_oid));
}

/// A scheduled rotation to `algorithm` (the settings' delay).
async fn rotate_to(app: &TestApp, algorithm: SigningAlgorithm) -> String {
    let settings = &app.state.settings;
    let mut rotation =
        authd::domain::keys::Rotation::from_settings(&settings.keys, &settings.auth, false);
    rotation.algorithm = algorithm;
    let ctx = authd::domain::audit::Context::cli();
    let kid = authd::domain::keys::rotate(
        &app.db,
        app.state.keys.sealing_key(),
        (&app.state.audit, &ctx),
        rotation,
        app.clock.now(),
    )
    .await
    .unwrap();
    app.reload_keys().await;
    kid
}

async fn discovery_algorithms(app: &TestApp) -> Value {
    let discovery = app.get_json("/.well-known/openid-configuration").await;
    discovery["id_token_signing_alg_values_supported"].clone()
}

#[tokio::test]
async fn a_service_configured_for_es256_signs_es256_from_its_first_key() {
    let app = spawn_with(|s| s.keys.algorithm = SigningAlgorithm::ES256).await;
    app.create_user("ec@example.com").await;
    let (access, refresh) = app.login_native("ec@example.com").await;
    let (header, _) = jwt_parts(&access);
    assert_eq!(header["alg"], "ES256");
    let keys = jwks(&app).await;
    assert_eq!(keys["keys"][0]["kty"], "EC");
    assert!(verify_independently(&keys, &access));
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
    let refreshed: Value = app.refresh_body(&refresh).await.json().await.unwrap();
    let next = str_field(&refreshed, "access_token");
    assert!(verify_independently(&keys, &next));
    assert_eq!(
        discovery_algorithms(&app).await,
        serde_json::json!(["ES256"])
    );
}

#[tokio::test]
async fn rotating_from_rs256_to_es256_publishes_both_and_honours_both() {
    let app = spawn_app().await;
    app.create_user("switch@example.com").await;
    let new_kid = rotate_to(&app, SigningAlgorithm::ES256).await;

    // Both published, each with its own alg, during the switch.
    let keys = jwks(&app).await;
    let mut algs: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "RS256"]);
    assert_eq!(
        discovery_algorithms(&app).await,
        serde_json::json!(["ES256", "RS256"])
    );

    // An RS256 token from just before the ES256 key takes over, and an
    // ES256 one from just after: both accepted.
    app.clock.advance(Duration::seconds(10800 - 60));
    let (rs256_token, _) = app.login_native("switch@example.com").await;
    assert_eq!(jwt_parts(&rs256_token).0["alg"], "RS256");
    app.clock.advance(Duration::seconds(120));
    app.reload_keys().await;
    let (es256_token, _) = app.login_native("switch@example.com").await;
    assert_eq!(jwt_parts(&es256_token).0["alg"], "ES256");
    assert_eq!(kid_of(&es256_token), new_kid);
    let keys = jwks(&app).await;
    assert!(verify_independently(&keys, &es256_token));
    assert!(verify_independently(&keys, &rs256_token));
    assert_eq!(app.me(&rs256_token).await.status(), StatusCode::OK);
    assert_eq!(app.me(&es256_token).await.status(), StatusCode::OK);

    // The key decides the algorithm: the ES256 key's signature under a
    // header that claims RS256 (or the reverse) is refused.
    let (_, claims) = jwt_parts(&es256_token);
    let set = app.state.keys.current();
    let header = serde_json::json!({ "typ": "at+jwt", "alg": "RS256", "kid": new_kid });
    let forged = set.active.sign_with_header(&header, &claims).unwrap();
    assert_eq!(app.me(&forged).await.status(), StatusCode::UNAUTHORIZED);
}
