//! Admin sign-in through an OpenID Provider: a real one (node
//! oidc-provider, tests/support/idp.mjs) driven through the browser flow.
use crate::helpers::idp::{Browser, Idp, PROVIDER};
use crate::helpers::*;
use authd::config::ProviderSettings;
use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};
use time::Duration;

async fn setup(configure: impl FnOnce(&mut ProviderSettings)) -> (TestApp, Idp) {
    let idp = Idp::start(&test_settings()).await;
    let mut provider = idp.provider_settings();
    configure(&mut provider);
    let app = spawn_with(move |s| {
        s.federation.providers.insert(PROVIDER.into(), provider);
    })
    .await;
    (app, idp)
}

fn admin_account(sub: &str, amr: &[&str]) -> Value {
    json!({
        "sub": sub,
        "email": format!("{sub}@corp.example"),
        "email_verified": true,
        "groups": ["authd-admins", "unrelated"],
        "amr": amr,
    })
}

/// The access token a finished sign-in's refresh cookie yields.
async fn access_token_after(app: &TestApp, callback: &Response) -> String {
    let cookie = cookie_value(&refresh_set_cookie(callback).expect("a refresh cookie"));
    let refreshed = app.refresh_cookie(&cookie).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let body: Value = refreshed.json().await.unwrap();
    str_field(&body, "access_token")
}

/// `reason`s of the `federation_failed` events, oldest first.
async fn failures(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT details->>'reason' FROM audit_events WHERE event_type = 'federation_failed' ORDER BY seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn sessions(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM sessions").await
}

async fn admin_users(app: &TestApp, access: &str) -> Response {
    app.client
        .get(app.url("/v1/admin/users"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idp_admin_with_mfa_gets_an_admin_session_for_its_return_path() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("alice", &["pwd", "mfa"])).await;
    let mut browser = Browser::new();
    let walk = browser
        .sign_in(&app, "?return_to=/console%3Ftab%3Dusers")
        .await;
    let response = walk.response;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/console?tab=users");
    // The state cookie is cleared; the session arrives as the refresh cookie.
    let cleared = set_cookie(&response, "__Host-authd_federation_corp").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let refresh = refresh_set_cookie(&response).unwrap();
    let attributes = cookie_attributes(&refresh);
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(attributes.iter().any(|a| a == attribute), "{refresh}");
    }
    // The admin cap (4 h by default) bounds the cookie.
    let max_age: i64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 14400, "{max_age}");

    let access = access_token_after(&app, &response).await;
    let (_, claims) = jwt_parts(&access);
    assert_eq!(claims["idp"], PROVIDER);
    assert_eq!(claims["amr"], json!(["fed", "mfa"]));
    assert_eq!(claims["roles"], json!(["admin", "user"]));
    assert_eq!(admin_users(&app, &access).await.status(), StatusCode::OK);

    // authd used client_secret_basic and sent the PKCE verifier.
    let token_request = idp.last_token_request().await;
    let basic = token_request["authorization"].as_str().unwrap();
    assert!(basic.starts_with("Basic "), "{basic}");
    let body = token_request["body"].as_str().unwrap();
    assert!(body.contains("code_verifier="), "{body}");
    assert!(!body.contains("client_secret"), "{body}");
    let created: i64 = app
        .count("SELECT count(*) FROM audit_events WHERE event_type = 'federated_account_created'")
        .await;
    assert_eq!(created, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE password_hash IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn without_mfa_at_the_idp_the_admin_role_cannot_act() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("bob", &["pwd"])).await;
    let walk = Browser::new().sign_in(&app, "").await;
    assert_eq!(walk.response.status(), StatusCode::SEE_OTHER);
    assert_eq!(walk.response.headers()[header::LOCATION], "/");
    let access = access_token_after(&app, &walk.response).await;
    assert_eq!(jwt_parts(&access).1["amr"], json!(["fed"]));
    assert_eq!(
        error_code(admin_users(&app, &access).await).await,
        (StatusCode::FORBIDDEN, "mfa_required".into())
    );
    // One method that is a factor on its own (a passwordless SMS sign-in)
    // is not two; with a password beside it, it is.
    for (methods, amr) in [
        (&["sms"][..], json!(["fed"])),
        (&["pwd", "otp"][..], json!(["fed", "mfa"])),
    ] {
        idp.signs_in(admin_account("bob", methods)).await;
        let walk = Browser::new().sign_in(&app, "").await;
        let access = access_token_after(&app, &walk.response).await;
        assert_eq!(jwt_parts(&access).1["amr"], amr, "{methods:?}");
    }
}

#[tokio::test]
async fn assume_mfa_trusts_an_idp_that_sends_no_amr() {
    let (app, idp) = setup(|p| p.assume_mfa = true).await;
    let mut account = admin_account("carol", &[]);
    account.as_object_mut().unwrap().remove("amr");
    idp.signs_in(account).await;
    let walk = Browser::new().sign_in(&app, "").await;
    let access = access_token_after(&app, &walk.response).await;
    assert_eq!(jwt_parts(&access).1["amr"], json!(["fed", "mfa"]));
}

#[tokio::test]
async fn a_group_removed_upstream_takes_the_role_away() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("dave", &["pwd", "mfa"])).await;
    let first = Browser::new().sign_in(&app, "").await;
    let access = access_token_after(&app, &first.response).await;
    assert_eq!(jwt_parts(&access).1["roles"], json!(["admin", "user"]));

    let mut demoted = admin_account("dave", &["pwd", "mfa"]);
    demoted["groups"] = json!(["helpdesk"]);
    idp.signs_in(demoted).await;
    let second = Browser::new().sign_in(&app, "").await;
    let access = access_token_after(&app, &second.response).await;
    assert_eq!(jwt_parts(&access).1["roles"], json!(["support", "user"]));
    // Same account both times (found by provider and subject).
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    let changes: Vec<Value> = sqlx::query_scalar(
        "SELECT details FROM audit_events WHERE event_type = 'roles_changed' ORDER BY seq",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[1]["by"], "federation");
    assert_eq!(changes[1]["roles"], json!(["support", "user"]));
}

#[tokio::test]
async fn state_must_match_the_cookie_and_works_once_within_ten_minutes() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("erin", &["pwd", "mfa"])).await;

    // Another browser's state (login CSRF): the cookie does not match.
    let mut victim = Browser::new();
    let mut attacker = Browser::new();
    let started = attacker.start(&app, "").await;
    let location = started.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let query = attacker.through_provider(&app, location).await;
    victim.start(&app, "").await;
    let response = victim.callback(&app, &query, "application/json").await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_state".into())
    );
    // No cookie at all.
    let response = Browser::new()
        .callback(&app, &query, "application/json")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Replayed: the first use wins, the second is refused.
    let mut browser = Browser::new();
    let walk = browser.sign_in(&app, "").await;
    assert_eq!(walk.response.status(), StatusCode::SEE_OTHER);
    let replay = browser
        .callback(&app, &walk.callback_query, "application/json")
        .await;
    assert_eq!(
        error_code(replay).await,
        (StatusCode::BAD_REQUEST, "invalid_state".into())
    );

    // Expired: more than 10 minutes between start and callback.
    let mut slow = Browser::new();
    let started = slow.start(&app, "").await;
    let location = started.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let query = slow.through_provider(&app, location).await;
    app.clock
        .advance(Duration::minutes(10) + Duration::seconds(1));
    let late = slow.callback(&app, &query, "application/json").await;
    assert_eq!(
        error_code(late).await,
        (StatusCode::BAD_REQUEST, "invalid_state".into())
    );

    assert_eq!(sessions(&app).await, 1);
    assert_eq!(
        failures(&app).await,
        [
            "cookie_mismatch",
            "missing_cookie",
            "unknown_or_used",
            "expired"
        ]
    );
}

/// Signs in with the next ID token altered by `mode`; returns authd's answer.
async fn sign_in_tampered(app: &TestApp, idp: &Idp, mode: &str) -> Response {
    idp.signs_in(admin_account("mallory", &["pwd", "mfa"]))
        .await;
    idp.tamper(mode).await;
    Browser::new().sign_in(app, "").await.response
}

#[tokio::test]
async fn forged_or_mismatched_id_tokens_open_no_session() {
    let (app, idp) = setup(|_| {}).await;
    let cases = [
        ("nonce", "nonce"),
        ("aud", "audience"),
        ("aud_multi_no_azp", "audience"),
        ("azp_wrong", "audience"),
        ("expired", "expired_or_not_yet_valid"),
        ("iat_future", "expired_or_not_yet_valid"),
        ("iss", "issuer"),
        ("other_key", "signature"),
        ("unknown_kid_unpublished", "unknown_key"),
        ("alg_none", "algorithm"),
        ("hs256", "algorithm"),
    ];
    for (mode, _) in cases {
        let response = sign_in_tampered(&app, &idp, mode).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{mode}");
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{mode}: {content_type}"
        );
        let page = response.text().await.unwrap();
        assert!(page.contains("invalid_id_token"), "{mode}: {page}");
    }
    let expected: Vec<&str> = cases.iter().map(|(_, reason)| *reason).collect();
    assert_eq!(failures(&app).await, expected);
    assert_eq!(sessions(&app).await, 0);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_rotated_idp_key_is_fetched_once_and_accepted() {
    let (app, idp) = setup(|_| {}).await;
    let response = sign_in_tampered(&app, &idp, "unknown_kid").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(sessions(&app).await, 1);
}

#[tokio::test]
async fn an_unverified_idp_address_is_never_linked_to_a_local_account() {
    let (app, idp) = setup(|p| p.link_by_verified_email = true).await;
    app.create_user("frank@corp.example").await;
    sqlx::query("UPDATE users SET email_verified = true")
        .execute(&app.db)
        .await
        .unwrap();
    let local: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();

    let mut unverified = admin_account("frank", &["pwd", "mfa"]);
    unverified["email_verified"] = json!(false);
    idp.signs_in(unverified).await;
    let refused = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("federation_denied"));
    assert_eq!(failures(&app).await, ["address_taken"]);

    // Verified on both sides: linked to the existing account.
    let (password_access, password_refresh) = app.login_native("frank@corp.example").await;
    idp.signs_in(admin_account("frank", &["pwd", "mfa"])).await;
    let linked = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    let access = access_token_after(&app, &linked).await;
    assert_eq!(jwt_parts(&access).1["sub"], local.to_string());
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    // From now on only the provider signs it in: the password and the
    // sessions it opened are gone, so leaving the company (or a group)
    // there cannot be dodged with them.
    let login = app.login("frank@corp.example", PASSWORD, "native").await;
    assert_eq!(
        error_code(login).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    assert_eq!(
        app.refresh_body(&password_refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me(&password_access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_linking_a_taken_address_is_refused() {
    let (app, idp) = setup(|_| {}).await;
    app.create_user("gina@corp.example").await;
    idp.signs_in(admin_account("gina", &["pwd", "mfa"])).await;
    let refused = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(failures(&app).await, ["address_taken"]);
    assert_eq!(sessions(&app).await, 0);
}

#[tokio::test]
async fn only_allowed_email_domains_and_provisioned_accounts_get_in() {
    let (app, idp) = setup(|p| {
        p.allowed_email_domains = vec!["corp.example".into()];
        p.auto_provision = false;
    })
    .await;
    let mut outsider = admin_account("hank", &["pwd", "mfa"]);
    outsider["email"] = json!("hank@elsewhere.example");
    idp.signs_in(outsider).await;
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("email_domain_not_allowed")
    );

    idp.signs_in(admin_account("ivy", &["pwd", "mfa"])).await;
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(failures(&app).await, ["email_domain", "not_provisioned"]);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_hosted_domain_admits_only_accounts_its_workspace_manages() {
    let (app, idp) = setup(|p| p.hosted_domain = Some("corp.example".into())).await;
    // A consumer account holding a verified company address: no `hd`.
    idp.signs_in(admin_account("jill", &["pwd", "mfa"])).await;
    let mut browser = Browser::new();
    let started = browser.start(&app, "").await;
    let location = started.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.contains("hd=corp.example"), "{location}");
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("email_domain_not_allowed")
    );
    let mut managed = admin_account("jill", &["pwd", "mfa"]);
    managed["hd"] = json!("corp.example");
    idp.signs_in(managed).await;
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn a_user_who_cancels_at_the_idp_gets_a_clear_refusal() {
    let (app, idp) = setup(|_| {}).await;
    idp.denies().await;
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(failures(&app).await, ["provider_error"]);
}

#[tokio::test]
async fn return_to_must_stay_on_a_known_origin() {
    let (app, _idp) = setup(|_| {}).await;
    for bad in [
        "https://evil.example/",
        "//evil.example",
        "https:/\\evil.example",
    ] {
        let query = format!("?return_to={}", percent_encode(bad));
        let response = Browser::new().start(&app, &query).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.headers().get(header::LOCATION).is_none());
        assert!(response.text().await.unwrap().contains("invalid_return_to"));
    }
    let ok = format!(
        "?return_to={}",
        percent_encode("https://app.example.com/done")
    );
    let mut browser = Browser::new();
    let response = browser.start(&app, &ok).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let cookie = set_cookie(&response, "__Host-authd_federation_corp").unwrap();
    let attributes = cookie_attributes(&cookie);
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(attributes.iter().any(|a| a == attribute), "{cookie}");
    }
    // The authorization request: code flow, PKCE S256, a nonce, the state.
    let location = url::Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["state"], cookie_value(&cookie));
    assert!(params["state"].len() >= 22 && params["nonce"].len() >= 22);
    assert!(params["scope"].split(' ').any(|s| s == "openid"));
    // Unknown provider: 404.
    let unknown = app
        .client
        .get(app.url("/v1/auth/federation/nope/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unreachable_idp_is_a_clear_error_and_no_session() {
    let (app, mut idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("jack", &["pwd", "mfa"])).await;
    let mut browser = Browser::new();
    let started = browser.start(&app, "").await;
    let location = started.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let query = browser.through_provider(&app, location).await;
    idp.stop().await;
    let response = browser.callback(&app, &query, "application/json").await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "idp_unavailable");
    assert_eq!(failures(&app).await, ["idp_unavailable"]);
    assert_eq!(sessions(&app).await, 0);
}

#[tokio::test]
async fn federated_accounts_have_no_password_to_log_in_reset_or_change() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account("kate", &["pwd", "mfa"])).await;
    let walk = Browser::new().sign_in(&app, "").await;
    let access = access_token_after(&app, &walk.response).await;
    for password in [PASSWORD, ""] {
        let response = app.login("kate@corp.example", password, "native").await;
        let unknown = app.login("nobody@corp.example", password, "native").await;
        assert_eq!(error_code(response).await, error_code(unknown).await);
    }
    let forgot = app
        .post_json(
            "/v1/auth/password/forgot",
            &json!({ "email": "kate@corp.example" }),
        )
        .await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let change = app
        .client
        .post(app.url("/v1/me/password"))
        .bearer_auth(&access)
        .json(&json!({ "current_password": PASSWORD, "new_password": "another long passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(change).await,
        (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
    );
    // The worker resolved the reset request without a mail or a token
    // (as for an unknown address).
    for _ in 0..100 {
        if app.count("SELECT count(*) FROM mail_outbox").await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM mail_outbox").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM account_tokens").await, 0);
}

#[tokio::test]
async fn the_provider_list_names_each_sign_in_button() {
    let (app, _idp) = setup(|_| {}).await;
    let body = app.get_json("/v1/auth/federation").await;
    assert_eq!(
        body,
        json!({ "providers": [{
            "id": "corp",
            "display_name": "Corp SSO",
            "start_url": "/v1/auth/federation/corp/start",
        }] })
    );
}

fn percent_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn a_subject_longer_than_oidc_allows_is_refused_cleanly() {
    let (app, idp) = setup(|_| {}).await;
    idp.signs_in(admin_account(&"s".repeat(256), &["pwd", "mfa"]))
        .await;
    let response = Browser::new().sign_in(&app, "").await.response;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(failures(&app).await, ["subject"]);
    assert_eq!(sessions(&app).await, 0);
}
