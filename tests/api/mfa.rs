//! TOTP MFA and recovery codes, end to end. Codes come from `oathtool`, an
//! independent implementation, fed the secret parsed out of the otpauth URI,
//! at times set on the app's clock.
use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

pub struct Enrolled {
    pub access: String,
    pub secret: String,
    pub recovery_codes: Vec<String>,
    /// The time of the activation code; later codes must be later steps.
    pub at: OffsetDateTime,
}

async fn post_bearer(app: &TestApp, path: &str, access: &str, body: &Value) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn delete_bearer(app: &TestApp, path: &str, access: &str, body: &Value) -> Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn secret_of(uri: &str) -> String {
    let query = uri.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("secret="))
        .unwrap()
        .to_owned()
}

/// Signs up `email`, enrols TOTP and activates it at a pinned time.
pub async fn enrol(app: &TestApp, email: &str) -> Enrolled {
    app.create_user(email).await;
    let (access, _) = app.login_native(email).await;
    let setup = post_bearer(
        app,
        "/v1/me/mfa/totp/setup",
        &access,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(setup.status(), StatusCode::OK);
    let setup: Value = setup.json().await.unwrap();
    let secret = secret_of(&str_field(&setup, "otpauth_uri"));
    assert_eq!(secret, str_field(&setup, "secret"));
    let at = step_start();
    app.clock.pin(at);
    let activate = post_bearer(
        app,
        "/v1/me/mfa/totp/activate",
        &access,
        &json!({ "code": oathtool(&secret, at) }),
    )
    .await;
    assert_eq!(activate.status(), StatusCode::OK);
    let body: Value = activate.json().await.unwrap();
    let recovery_codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        access,
        secret,
        recovery_codes,
        at,
    }
}

/// The password step for an MFA account: the `mfa_token`.
pub async fn password_step(app: &TestApp, email: &str, client_type: &str) -> String {
    let response = app.login(email, PASSWORD, client_type).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        refresh_set_cookie(&response).is_none(),
        "no cookie before MFA"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    str_field(&body, "mfa_token")
}

pub async fn mfa_step(app: &TestApp, mfa_token: &str, factor: (&str, &str)) -> Response {
    let body = json!({ "mfa_token": mfa_token, factor.0: factor.1 });
    app.post_json("/v1/auth/login/mfa", &body).await
}

#[tokio::test]
async fn setup_returns_a_secret_a_uri_and_a_qr_code_of_exactly_that_uri() {
    let app = spawn_with(|s| s.mfa.issuer = "Acme Auth".into()).await;
    app.create_user("quinn@example.com").await;
    let (access, _) = app.login_native("quinn@example.com").await;
    let response = post_bearer(
        &app,
        "/v1/me/mfa/totp/setup",
        &access,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let secret = str_field(&body, "secret");
    // 160 bits: 32 base32 characters.
    assert_eq!(secret.len(), 32);
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    );
    let uri = str_field(&body, "otpauth_uri");
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Acme%20Auth:quinn@example.com?secret={secret}&issuer=Acme%20Auth&algorithm=SHA1&digits=6&period=30"
        )
    );
    // The PNG decodes to exactly the URI.
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(str_field(&body, "qr_png"))
        .unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids[0].decode().unwrap().1, uri);
    // Pending: nothing is enforced yet.
    let me: Value = app.me(&access).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], false);
    assert_eq!(me["recovery_codes_remaining"], 0);
    assert_eq!(
        app.login("quinn@example.com", PASSWORD, "native")
            .await
            .status(),
        200
    );
    // A new setup replaces the pending secret.
    let again: Value = post_bearer(
        &app,
        "/v1/me/mfa/totp/setup",
        &access,
        &json!({ "password": PASSWORD }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(str_field(&again, "secret"), secret);
    assert_eq!(app.count("SELECT count(*) FROM mfa_totp").await, 1);
}

#[tokio::test]
async fn enrolment_then_login_needs_the_second_factor_on_either_channel() {
    let app = spawn_app().await;
    let enrolled = enrol(&app, "rita@example.com").await;
    assert_eq!(enrolled.recovery_codes.len(), 10);
    for code in &enrolled.recovery_codes {
        assert!(
            code.len() == 11
                && code.as_bytes()[5] == b'-'
                && code
                    .replace('-', "")
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric()),
            "{code}"
        );
    }
    let me: Value = app.me(&enrolled.access).await.json().await.unwrap();
    assert_eq!(me["mfa_enabled"], true);
    assert_eq!(me["recovery_codes_remaining"], 10);

    // Native: the tokens come in the body.
    let token = password_step(&app, "rita@example.com", "native").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(30));
    let response = mfa_step(&app, &token, ("code", &code)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(refresh_set_cookie(&response).is_none());
    let body: Value = response.json().await.unwrap();
    let (_, claims) = jwt_parts(&str_field(&body, "access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));
    // Refresh keeps the session's amr.
    let refreshed: Value = app
        .refresh_body(&str_field(&body, "refresh_token"))
        .await
        .json()
        .await
        .unwrap();
    let (_, claims) = jwt_parts(&str_field(&refreshed, "access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "otp", "mfa"]));

    // Web: the refresh token comes only as the cookie.
    let token = password_step(&app, "rita@example.com", "web").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(60));
    let response = mfa_step(&app, &token, ("code", &code)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(refresh_set_cookie(&response).is_some());
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("access_token").is_some());
    // With an Idempotency-Key, a retry of a successful second step gets no
    // second session: its answer held tokens and was not stored.
    let retried = password_step(&app, "rita@example.com", "native").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(90));
    for expected in [StatusCode::OK, StatusCode::CONFLICT] {
        let response = app
            .client
            .post(app.url("/v1/auth/login/mfa"))
            .header("idempotency-key", "mfa-step-1")
            .json(&json!({ "mfa_token": retried, "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    // A used mfa_token is dead.
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(120));
    let again = mfa_step(&app, &token, ("code", &code)).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::UNAUTHORIZED, "invalid_mfa_token".into())
    );
}

#[tokio::test]
async fn the_password_alone_never_yields_tokens_to_an_mfa_account() {
    let app = spawn_app().await;
    enrol(&app, "sam@example.com").await;
    for client_type in ["web", "native"] {
        let response = app
            .client
            .post(app.url("/v1/auth/login"))
            .header("idempotency-key", format!("k-{client_type}"))
            .json(&json!({ "email": "sam@example.com", "password": PASSWORD, "client_type": client_type }))
            .send()
            .await
            .unwrap();
        assert!(refresh_set_cookie(&response).is_none());
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("access_token") && !text.contains("refresh_token"),
            "{text}"
        );
    }
    // The retry of a password step with the same key is not replayed: its
    // answer held an mfa_token.
    let retry = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("idempotency-key", "k-native")
        .json(&json!({ "email": "sam@example.com", "password": PASSWORD, "client_type": "native" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(retry).await,
        (StatusCode::CONFLICT, "already_processed".into())
    );
    // A wrong password answers as for any account.
    let wrong = app
        .login("sam@example.com", "not the password at all", "native")
        .await;
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
}

#[tokio::test]
async fn wrong_codes_expiry_and_the_attempt_limit_kill_the_mfa_token() {
    let app = spawn_with(|s| s.throttle.ip_free_failures = 100).await;
    let enrolled = enrol(&app, "tara@example.com").await;
    let token = password_step(&app, "tara@example.com", "native").await;
    let later = enrolled.at + Duration::seconds(30);
    app.clock.advance(Duration::seconds(30));
    let right = oathtool(&enrolled.secret, later);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let response = mfa_step(&app, &token, ("code", wrong)).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_code".into())
        );
    }
    // Five wrong codes used it up: even the right one is refused now.
    let response = mfa_step(&app, &token, ("code", &right)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_mfa_token".into())
    );
    // A fresh token expires after five minutes.
    let token = password_step(&app, "tara@example.com", "native").await;
    app.clock.advance(Duration::seconds(301));
    let code = oathtool(&enrolled.secret, later + Duration::seconds(301));
    let response = mfa_step(&app, &token, ("code", &code)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_mfa_token".into())
    );
    for garbage in ["", "not-a-token", &"A".repeat(43)] {
        let response = mfa_step(&app, garbage, ("code", &code)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{garbage}");
    }
    // Both or neither factor: a malformed request.
    let both = json!({ "mfa_token": "x", "code": "123456", "recovery_code": "abcde-abcde" });
    let response = app.post_json("/v1/auth/login/mfa", &both).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let failures = app
        .count("SELECT count(*) FROM audit_events WHERE event_type = 'mfa_failed' AND outcome = 'failure'")
        .await;
    assert_eq!(failures, 5);
}

#[tokio::test]
async fn replayed_and_earlier_codes_are_refused_and_skew_is_one_step() {
    let app = spawn_with(|s| s.throttle.ip_free_failures = 100).await;
    let enrolled = enrol(&app, "uma@example.com").await;
    let t = enrolled.at + Duration::seconds(300);
    app.clock.pin(t);
    let code_at = |secs: i64| oathtool(&enrolled.secret, t + Duration::seconds(secs));
    // Two steps away either way: refused.
    for secs in [-60, 60] {
        let token = password_step(&app, "uma@example.com", "native").await;
        let response = mfa_step(&app, &token, ("code", &code_at(secs))).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{secs}");
    }
    // One step behind (a slow phone), then one step ahead (a fast one):
    // accepted, in that order.
    for secs in [-30, 30] {
        let token = password_step(&app, "uma@example.com", "native").await;
        let response = mfa_step(&app, &token, ("code", &code_at(secs))).await;
        assert_eq!(response.status(), StatusCode::OK, "{secs}");
    }
    // The same code again, and the current and previous steps' codes (all
    // earlier than the step just accepted): refused.
    for secs in [30, 0, -30] {
        let token = password_step(&app, "uma@example.com", "native").await;
        let response = mfa_step(&app, &token, ("code", &code_at(secs))).await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_code".into()),
            "{secs}"
        );
    }
    // The next step works.
    app.clock.advance(Duration::seconds(60));
    let token = password_step(&app, "uma@example.com", "native").await;
    assert_eq!(
        mfa_step(&app, &token, ("code", &code_at(60)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_recovery_code_works_once_and_marks_the_session() {
    let app = spawn_app().await;
    let enrolled = enrol(&app, "vera@example.com").await;
    let code = &enrolled.recovery_codes[3];
    let token = password_step(&app, "vera@example.com", "native").await;
    // Typed sloppily: upper case, no hyphen.
    let typed = code.replace('-', "").to_uppercase();
    let response = mfa_step(&app, &token, ("recovery_code", &typed)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let (_, claims) = jwt_parts(&str_field(&body, "access_token"));
    assert_eq!(claims["amr"], json!(["pwd", "mfa", "recovery_code"]));
    let me: Value = app
        .me(&str_field(&body, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["recovery_codes_remaining"], 9);
    let token = password_step(&app, "vera@example.com", "native").await;
    let again = mfa_step(&app, &token, ("recovery_code", code)).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::BAD_REQUEST, "invalid_code".into())
    );
    let used = app
        .count("SELECT count(*) FROM audit_events WHERE event_type = 'recovery_code_used'")
        .await;
    assert_eq!(used, 1);
}

#[tokio::test]
async fn disable_and_regenerate_need_a_code_and_change_what_login_asks() {
    let app = spawn_app().await;
    let enrolled = enrol(&app, "wes@example.com").await;
    let access = &enrolled.access;
    // Regenerate: the old codes stop working.
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(30));
    let response = post_bearer(
        &app,
        "/v1/me/mfa/recovery-codes",
        access,
        &json!({ "code": code }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let fresh: Value = response.json().await.unwrap();
    let fresh: Vec<String> = fresh["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let token = password_step(&app, "wes@example.com", "native").await;
    let old = mfa_step(&app, &token, ("recovery_code", &enrolled.recovery_codes[0])).await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    // Setup while active: 409.
    let setup = post_bearer(
        &app,
        "/v1/me/mfa/totp/setup",
        access,
        &json!({ "password": PASSWORD }),
    )
    .await;
    assert_eq!(
        error_code(setup).await,
        (StatusCode::CONFLICT, "mfa_already_enabled".into())
    );
    // Disable needs the password and a factor; a wrong password is 401.
    let wrong = delete_bearer(
        &app,
        "/v1/me/mfa/totp",
        access,
        &json!({ "password": "not the password at all", "recovery_code": fresh[0] }),
    )
    .await;
    assert_eq!(
        error_code(wrong).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    let disable = delete_bearer(
        &app,
        "/v1/me/mfa/totp",
        access,
        &json!({ "password": PASSWORD, "recovery_code": fresh[0] }),
    )
    .await;
    assert_eq!(disable.status(), StatusCode::NO_CONTENT);
    let me: Value = app.me(access).await.json().await.unwrap();
    assert_eq!(
        (
            me["mfa_enabled"].clone(),
            me["recovery_codes_remaining"].clone()
        ),
        (json!(false), json!(0))
    );
    assert_eq!(
        app.count("SELECT count(*) FROM mfa_recovery_codes").await,
        0
    );
    // The password alone logs in again.
    assert_eq!(
        app.login("wes@example.com", PASSWORD, "native")
            .await
            .status(),
        200
    );
    let again = delete_bearer(
        &app,
        "/v1/me/mfa/totp",
        access,
        &json!({ "password": PASSWORD, "code": "123456" }),
    )
    .await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::CONFLICT, "mfa_not_enabled".into())
    );
    for kind in [
        "mfa_setup",
        "mfa_activated",
        "recovery_codes_regenerated",
        "mfa_disabled",
    ] {
        let sql = format!(
            "SELECT count(*) FROM audit_events WHERE event_type = '{kind}' AND outcome IN ('success', 'pending')"
        );
        assert!(app.count(&sql).await >= 1, "{kind}");
    }
}

#[tokio::test]
async fn activation_needs_a_right_code_and_a_pending_setup() {
    let app = spawn_app().await;
    app.create_user("xia@example.com").await;
    let (access, _) = app.login_native("xia@example.com").await;
    let none = post_bearer(
        &app,
        "/v1/me/mfa/totp/activate",
        &access,
        &json!({ "code": "123456" }),
    )
    .await;
    assert_eq!(
        error_code(none).await,
        (StatusCode::CONFLICT, "mfa_setup_required".into())
    );
    let wrong_password = post_bearer(
        &app,
        "/v1/me/mfa/totp/setup",
        &access,
        &json!({ "password": "not the password at all" }),
    )
    .await;
    assert_eq!(
        error_code(wrong_password).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    // Counted by the password throttle like a failed login.
    assert_eq!(
        app.count("SELECT coalesce(max(failures), 0)::bigint FROM login_throttle")
            .await,
        1
    );
    let setup: Value = post_bearer(
        &app,
        "/v1/me/mfa/totp/setup",
        &access,
        &json!({ "password": PASSWORD }),
    )
    .await
    .json()
    .await
    .unwrap();
    let secret = str_field(&setup, "secret");
    let at = step_start();
    app.clock.pin(at);
    let right = oathtool(&secret, at);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let response = post_bearer(
        &app,
        "/v1/me/mfa/totp/activate",
        &access,
        &json!({ "code": wrong }),
    )
    .await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_code".into())
    );
    // Still pending: the right code activates it.
    let response = post_bearer(
        &app,
        "/v1/me/mfa/totp/activate",
        &access,
        &json!({ "code": right }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // A logged-out session cannot touch MFA, whatever its access token says.
    let (access2, refresh2) = {
        // Log in fully, then log out that session.
        let token = password_step(&app, "xia@example.com", "native").await;
        app.clock.advance(Duration::seconds(30));
        let code = oathtool(&secret, at + Duration::seconds(30));
        let body: Value = mfa_step(&app, &token, ("code", &code))
            .await
            .json()
            .await
            .unwrap();
        (
            str_field(&body, "access_token"),
            str_field(&body, "refresh_token"),
        )
    };
    let logout = app
        .post_json("/v1/auth/logout", &json!({ "refresh_token": refresh2 }))
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = post_bearer(
        &app,
        "/v1/me/mfa/recovery-codes",
        &access2,
        &json!({ "code": "123456" }),
    )
    .await;
    assert_eq!(
        error_code(after).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".into())
    );
}

#[tokio::test]
async fn wrong_codes_throttle_the_second_factor_but_not_the_password() {
    let app = spawn_app().await;
    let enrolled = enrol(&app, "yan@example.com").await;
    let later = enrolled.at + Duration::seconds(30);
    app.clock.advance(Duration::seconds(30));
    let right = oathtool(&enrolled.secret, later);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    // Five free failures per (account, IP), then backoff: the sixth code is
    // refused before it is checked.
    for _ in 0..5 {
        let token = password_step(&app, "yan@example.com", "native").await;
        assert_eq!(mfa_step(&app, &token, ("code", wrong)).await.status(), 400);
    }
    let token = password_step(&app, "yan@example.com", "native").await;
    let response = mfa_step(&app, &token, ("code", wrong)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let token = password_step(&app, "yan@example.com", "native").await;
    let response = mfa_step(&app, &token, ("code", &right)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // The password factor is untouched: its step still answers (with a new
    // challenge), and its counters hold nothing.
    password_step(&app, "yan@example.com", "native").await;
    app.clock.advance(Duration::seconds(120));
    let code = oathtool(&enrolled.secret, later + Duration::seconds(120));
    let token = password_step(&app, "yan@example.com", "native").await;
    assert_eq!(mfa_step(&app, &token, ("code", &code)).await.status(), 200);
}

#[tokio::test]
async fn two_codes_sent_at_once_to_two_replicas_open_one_session_and_spend_one_code() {
    let app = spawn_app().await;
    let (other, _) = spawn_again(&app, |_| {}).await;
    let enrolled = enrol(&app, "twice@example.com").await;
    other.clock.pin(enrolled.at);
    let mfa_token = password_step(&app, "twice@example.com", "native").await;
    let (first, second) = tokio::join!(
        mfa_step(
            &app,
            &mfa_token,
            ("recovery_code", &enrolled.recovery_codes[0])
        ),
        mfa_step(
            &other,
            &mfa_token,
            ("recovery_code", &enrolled.recovery_codes[1])
        ),
    );
    let mut statuses = [first.status(), second.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::UNAUTHORIZED]);
    let unused = "SELECT count(*) FROM mfa_recovery_codes WHERE used_at IS NULL";
    assert_eq!(app.count(unused).await, 9);
    let failed = "SELECT count(*) FROM audit_events WHERE event_type = 'mfa_failed'";
    assert_eq!(app.count(failed).await, 0);
}

/// A login of `email` with a right or a wrong code, at `at`.
async fn second_step_at(
    app: &TestApp,
    (email, secret): (&str, &str),
    at: OffsetDateTime,
    right: bool,
) -> StatusCode {
    app.clock.pin(at);
    let code = oathtool(secret, at);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let code = if right { code.as_str() } else { wrong };
    let token = password_step(app, email, "native").await;
    mfa_step(app, &token, ("code", code)).await.status()
}

#[tokio::test]
async fn wrong_codes_spread_over_hours_still_meet_the_account_wide_backoff() {
    let app = spawn_with(|s| {
        s.throttle.ip_free_failures = 1000;
        s.throttle.base_delay_secs = 60;
    })
    .await;
    let enrolled = enrol(&app, "zed@example.com").await;
    let account = ("zed@example.com", enrolled.secret.as_str());
    let mut at = enrolled.at;
    let mut next = || {
        at += Duration::seconds(30);
        at
    };
    // Ten free wrong codes, then the backoff.
    for _ in 0..11 {
        let status = second_step_at(&app, account, next(), false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let status = second_step_at(&app, account, next(), true).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Two hours later the count still stands: one more wrong code blocks
    // the account again at once.
    let later = next() + Duration::hours(2);
    let status = second_step_at(&app, account, later, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let status = second_step_at(&app, account, later + Duration::seconds(30), true).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn rfc_6238_vectors_log_in_through_the_real_path() {
    let app = spawn_app().await;
    let enrolled = enrol(&app, "zoe@example.com").await;
    // Replace the secret with the RFC's and reset the replay guard.
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let secret = authd::domain::mfa::totp::TotpSecret::from_bytes(b"12345678901234567890".to_vec());
    let sealed = secret.seal(&app.state.mfa.secrets, user_id).unwrap();
    sqlx::query("UPDATE mfa_totp SET secret_enc = $1, last_step = NULL")
        .bind(sealed)
        .execute(&app.db)
        .await
        .unwrap();
    let _ = enrolled;
    // RFC 6238 Appendix B, SHA-1, truncated to six digits.
    for (unix, code) in [
        (59, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000_i64, "353130"),
    ] {
        let at = OffsetDateTime::from_unix_timestamp(unix).unwrap();
        app.clock.pin(at);
        assert_eq!(oathtool("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", at), code);
        let token = password_step(&app, "zoe@example.com", "native").await;
        let response = mfa_step(&app, &token, ("code", code)).await;
        assert_eq!(response.status(), StatusCode::OK, "T={unix}");
    }
}

#[tokio::test]
async fn secrets_and_codes_are_not_stored_in_the_clear() {
    let app = spawn_app().await;
    app.create_user("ada@example.com").await;
    let (access, _) = app.login_native("ada@example.com").await;
    // With an Idempotency-Key, to show the secret is not kept for replays.
    let setup = app
        .client
        .post(app.url("/v1/me/mfa/totp/setup"))
        .bearer_auth(&access)
        .header("idempotency-key", "setup-1")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let setup: Value = setup.json().await.unwrap();
    let secret = str_field(&setup, "secret");
    let at = step_start();
    app.clock.pin(at);
    let activated: Value = post_bearer(
        &app,
        "/v1/me/mfa/totp/activate",
        &access,
        &json!({ "code": oathtool(&secret, at) }),
    )
    .await
    .json()
    .await
    .unwrap();
    let codes: Vec<String> = activated["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let retry = app
        .client
        .post(app.url("/v1/me/mfa/totp/setup"))
        .bearer_auth(&access)
        .header("idempotency-key", "setup-1")
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(retry).await,
        (StatusCode::CONFLICT, "already_processed".into())
    );
    let raw = base32_decode(&secret);
    // Every byte of every table, as text and as bytes.
    let dump: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT convert_to(t::text, 'UTF8') FROM (
             SELECT row_to_json(x)::text AS t FROM mfa_totp x
             UNION ALL SELECT row_to_json(x)::text FROM mfa_recovery_codes x
             UNION ALL SELECT row_to_json(x)::text FROM mfa_challenges x
             UNION ALL SELECT row_to_json(x)::text FROM audit_events x
             UNION ALL SELECT row_to_json(x)::text FROM idempotency_keys x
             UNION ALL SELECT encode(secret_enc, 'hex') FROM mfa_totp
         ) all_rows",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let text = String::from_utf8(dump.concat()).unwrap().to_lowercase();
    assert!(!text.contains(&secret.to_lowercase()));
    assert!(!text.contains(&hex(&raw)));
    for code in &codes {
        assert!(
            !text.contains(code) && !text.contains(&code.replace('-', "")),
            "{code}"
        );
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = alphabet.iter().position(|a| *a == c).unwrap() as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
