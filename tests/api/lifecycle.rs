//! The account lifecycle over real SMTP (a sink in the test support code):
//! verification, "account exists", forgotten and changed passwords,
//! sessions, address change, deletion, and the outbox's durability.
use crate::helpers::smtp_sink::SmtpSink;
use crate::helpers::*;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn spawn_with_sink(
    configure: impl FnOnce(&mut authd::config::Settings),
) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let addr = sink.addr;
    let app = spawn_with(|s| {
        mail_to(s, addr);
        configure(s);
    })
    .await;
    (app, sink)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> Response {
    app.post_json(path, body).await
}

async fn bearer(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    access: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .bearer_auth(access);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Signs up `email` and follows the verification link from the mail.
async fn signup_verified(app: &TestApp, sink: &SmtpSink, email: &str) {
    app.create_user(email).await;
    let mail = sink.wait_for(email, 1).await.pop().unwrap();
    let token = mail.token("verify-email").expect("a verification link");
    let verified = post(app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn signup_mails_a_link_that_verifies_the_address_once() {
    let (app, sink) = spawn_with_sink(|s| s.auth.require_verified_email = true).await;
    let response = app
        .post_json(
            "/v1/auth/signup",
            &json!({ "email": "ana@example.com", "password": PASSWORD, "locale": "de-AT" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = sink.wait_for("ana@example.com", 1).await.pop().unwrap();
    // The account's locale picks the templates; both bodies are there.
    assert!(mail.subject().contains("Bestätigen"), "{}", mail.subject());
    assert!(
        mail.html()
            .contains("<a href=\"http://localhost:3000/verify-email?token=")
    );
    let token = mail.token("verify-email").unwrap();
    assert_eq!(token.len(), 43);
    // Not verified yet: the right password gets 403.
    let login = app.login("ana@example.com", PASSWORD, "native").await;
    assert_eq!(
        error_code(login).await,
        (StatusCode::FORBIDDEN, "email_not_verified".into())
    );
    let verified = post(&app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("ana@example.com", PASSWORD, "native")
            .await
            .status(),
        200
    );
    let again = post(&app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(
        error_code(again).await,
        (StatusCode::BAD_REQUEST, "invalid_token".into())
    );
    // The token is stored only as its SHA-256; the outbox is empty once
    // the mail is delivered.
    let hashed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM account_tokens WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(&token)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(hashed, 1);
    assert_eq!(app.count("SELECT count(*) FROM mail_outbox").await, 0);
}

#[tokio::test]
async fn verification_links_expire_after_a_day_and_resend_answers_the_same_for_anyone() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    app.create_user("ben@example.com").await;
    let first = sink.wait_for("ben@example.com", 1).await.pop().unwrap();
    app.clock.advance(time::Duration::hours(25));
    let expired = post(
        &app,
        "/v1/auth/verify-email",
        &json!({ "token": first.token("verify-email").unwrap() }),
    )
    .await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    // Timing: the request only queues work, whatever the address.
    app.create_user("cal@example.com").await;
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (email, times) in [
            ("cal@example.com", &mut known_times),
            ("nobody@example.com", &mut unknown_times),
        ] {
            let started = Instant::now();
            let response = post(
                &app,
                "/v1/auth/verify-email/resend",
                &json!({ "email": email }),
            )
            .await;
            times.push(started.elapsed());
            assert_eq!(response.status(), StatusCode::ACCEPTED);
        }
    }
    assert_similar(&mut known_times, &mut unknown_times);
    let known = post(
        &app,
        "/v1/auth/verify-email/resend",
        &json!({ "email": "ben@example.com" }),
    )
    .await;
    let unknown = post(
        &app,
        "/v1/auth/verify-email/resend",
        &json!({ "email": "nobody@example.com" }),
    )
    .await;
    assert_eq!(known.status(), StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), StatusCode::ACCEPTED);
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
    let second = sink.wait_for("ben@example.com", 2).await.pop().unwrap();
    let token = second.token("verify-email").unwrap();
    let verified = post(&app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(verified.status(), StatusCode::NO_CONTENT);
    // A verified address gets no more verification mail.
    post(
        &app,
        "/v1/auth/verify-email/resend",
        &json!({ "email": "ben@example.com" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.to("ben@example.com").len(), 2);
    assert!(sink.to("nobody@example.com").is_empty());
}

#[tokio::test]
async fn a_second_signup_tells_the_owner_and_answers_like_a_new_one() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    let mut new_times = Vec::new();
    let mut taken_times = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        let new = app.signup(&format!("new{i}@example.com"), PASSWORD).await;
        new_times.push(started.elapsed());
        let new_body = (new.status(), new.text().await.unwrap());
        let started = Instant::now();
        let taken = app
            .signup("new0@example.com", "a different strong passphrase")
            .await;
        taken_times.push(started.elapsed());
        assert_eq!((taken.status(), taken.text().await.unwrap()), new_body);
    }
    assert_similar(&mut new_times, &mut taken_times);
    // One verification, then "account exists" for the later signups, until
    // the hourly cap of 3 mails per address stops the rest.
    sink.wait_for("new0@example.com", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails = sink.to("new0@example.com");
    assert_eq!(mails.len(), 3);
    let verifications = mails
        .iter()
        .filter(|m| m.token("verify-email").is_some())
        .count();
    let exists = mails
        .iter()
        .filter(|m| m.subject().contains("already have"))
        .count();
    assert_eq!((verifications, exists), (1, 2));
}

/// Medians within a generous factor: answers for existing and unknown
/// addresses must not be told apart by timing.
fn assert_similar(a: &mut [Duration], b: &mut [Duration]) {
    a.sort();
    b.sort();
    let (ma, mb) = (a[a.len() / 2], b[b.len() / 2]);
    let (lo, hi) = if ma < mb { (ma, mb) } else { (mb, ma) };
    assert!(
        hi <= lo * 3 + Duration::from_millis(20),
        "medians {ma:?} vs {mb:?}"
    );
}

#[tokio::test]
async fn forgot_and_reset_revoke_every_session_and_tell_the_owner() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "cora@example.com").await;
    let (access, refresh) = app.login_native("cora@example.com").await;
    // Known and unknown addresses: the same answer, in about the same time.
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let a = post(
            &app,
            "/v1/auth/password/forgot",
            &json!({ "email": "cora@example.com" }),
        )
        .await;
        known.push(started.elapsed());
        let started = Instant::now();
        let b = post(
            &app,
            "/v1/auth/password/forgot",
            &json!({ "email": "nobody@example.com" }),
        )
        .await;
        unknown.push(started.elapsed());
        assert_eq!(a.status(), StatusCode::ACCEPTED);
        assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    }
    assert_similar(&mut known, &mut unknown);
    // The hourly cap of 3 per address: the verification mail and 2 resets.
    let mails = sink.wait_for("cora@example.com", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.to("cora@example.com").len(), 3);
    let tokens: Vec<String> = mails
        .iter()
        .filter_map(|m| m.token("reset-password"))
        .collect();
    assert_eq!(tokens.len(), 2);
    // A newer request voids the older links.
    let old = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": tokens[0], "new_password": "a brand new passphrase" }),
    )
    .await;
    assert_eq!(
        error_code(old).await,
        (StatusCode::BAD_REQUEST, "invalid_token".into())
    );
    let latest = &tokens[1];
    // A weak password is refused and leaves the link usable.
    let weak = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": latest, "new_password": "password" }),
    )
    .await;
    assert_eq!(error_code(weak).await.1, "weak_password");
    let reset = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": latest, "new_password": "a brand new passphrase" }),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh_body(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.login("cora@example.com", PASSWORD, "native")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.login("cora@example.com", "a brand new passphrase", "native")
            .await
            .status(),
        200
    );
    let changed = sink.wait_for("cora@example.com", 4).await.pop().unwrap();
    assert!(
        changed.subject().contains("password was changed"),
        "{}",
        changed.subject()
    );
    let again = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": latest, "new_password": "yet another passphrase" }),
    )
    .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reset_links_expire_after_thirty_minutes() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "dirk@example.com").await;
    post(
        &app,
        "/v1/auth/password/forgot",
        &json!({ "email": "dirk@example.com" }),
    )
    .await;
    let mail = sink.wait_for("dirk@example.com", 2).await.pop().unwrap();
    app.clock.advance(time::Duration::minutes(31));
    let reset = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": mail.token("reset-password").unwrap(), "new_password": "a brand new passphrase" }),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "eve@example.com").await;
    let (this, this_refresh) = app.login_native("eve@example.com").await;
    let (_, other_refresh) = app.login_native("eve@example.com").await;
    let wrong = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/password",
        &this,
        Some(json!({ "current_password": "not it at all, sorry", "new_password": "a brand new passphrase" })),
    )
    .await;
    assert_eq!(error_code(wrong).await.1, "invalid_credentials");
    let changed = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/password",
        &this,
        Some(json!({ "current_password": PASSWORD, "new_password": "a brand new passphrase" })),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh_body(&other_refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh_body(&this_refresh).await.status(),
        StatusCode::OK
    );
    sink.wait_for("eve@example.com", 2).await;
}

#[tokio::test]
async fn sessions_are_listed_and_ended_by_their_owner_only() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "finn@example.com").await;
    signup_verified(&app, &sink, "gail@example.com").await;
    let phone = reqwest::Client::builder()
        .user_agent("Phone/1.0")
        .build()
        .unwrap();
    let (this, _) = app.login_native("finn@example.com").await;
    let other: Value = app
        .login_with(&phone, "finn@example.com", PASSWORD, "native")
        .await
        .json()
        .await
        .unwrap();
    let (gail, _) = app.login_native("gail@example.com").await;
    let list: Value = bearer(&app, reqwest::Method::GET, "/v1/me/sessions", &this, None)
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let phone_session = list
        .iter()
        .find(|s| s["user_agent"] == "Phone/1.0")
        .unwrap();
    assert_eq!(phone_session["ip"], "127.0.0.1");
    assert_eq!(phone_session["current"], false);
    let phone_id = phone_session["id"].as_str().unwrap();
    // Gail cannot end Finn's session: 404, as for an unknown id.
    for (token, id) in [
        (&gail, phone_id),
        (&this, "00000000-0000-0000-0000-000000000000"),
        (&this, "not-a-uuid"),
    ] {
        let response = bearer(
            &app,
            reqwest::Method::DELETE,
            &format!("/v1/me/sessions/{id}"),
            token,
            None,
        )
        .await;
        assert_eq!(
            error_code(response).await,
            (StatusCode::NOT_FOUND, "not_found".into()),
            "{id}"
        );
    }
    let ended = bearer(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/me/sessions/{phone_id}"),
        &this,
        None,
    )
    .await;
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me(&str_field(&other, "access_token")).await.status(),
        401
    );
    let (_, third_refresh) = app.login_native("finn@example.com").await;
    let others = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/sessions/revoke-others",
        &this,
        None,
    )
    .await;
    assert_eq!(others.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.refresh_body(&third_refresh).await.status(), 401);
    assert_eq!(app.me(&this).await.status(), 200);
    assert_eq!(app.me(&gail).await.status(), 200);
}

#[tokio::test]
async fn an_address_change_waits_for_the_new_address_to_confirm() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "hana@example.com").await;
    signup_verified(&app, &sink, "taken@example.com").await;
    let (access, _) = app.login_native("hana@example.com").await;
    let change = |to: &'static str| {
        bearer(
            &app,
            reqwest::Method::POST,
            "/v1/me/email",
            &access,
            Some(json!({ "new_email": to, "password": PASSWORD })),
        )
    };
    // A taken address: the same answer, and its owner hears of it.
    let taken = change("taken@example.com").await;
    assert_eq!(taken.status(), StatusCode::ACCEPTED);
    let exists = sink.wait_for("taken@example.com", 2).await.pop().unwrap();
    assert!(exists.token("verify-email").is_none());
    let response = change("hana.new@example.com").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let confirm = sink
        .wait_for("hana.new@example.com", 1)
        .await
        .pop()
        .unwrap();
    let notices = sink.wait_for("hana@example.com", 3).await;
    for notice in &notices[1..] {
        assert!(
            notice.subject().contains("is changing"),
            "{}",
            notice.subject()
        );
        assert!(notice.token("verify-email").is_none());
    }
    // Until confirmed, the old address still signs in.
    assert_eq!(
        app.login("hana@example.com", PASSWORD, "native")
            .await
            .status(),
        200
    );
    let token = confirm.token("verify-email").unwrap();
    assert_eq!(
        post(&app, "/v1/auth/verify-email", &json!({ "token": token }))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.login("hana@example.com", PASSWORD, "native")
            .await
            .status(),
        401
    );
    let (new_access, _) = app.login_native("hana.new@example.com").await;
    let me: Value = app.me(&new_access).await.json().await.unwrap();
    assert_eq!(me["email"], "hana.new@example.com");
    assert_eq!(me["email_verified"], true);
}

#[tokio::test]
async fn a_password_reset_voids_a_pending_address_change() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "ines@example.com").await;
    // An attacker with the password starts moving the account away.
    let (thief, _) = app.login_native("ines@example.com").await;
    let body = json!({ "new_email": "thief@evil.example", "password": PASSWORD });
    let response = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/email",
        &thief,
        Some(body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let link = sink.wait_for("thief@evil.example", 1).await.pop().unwrap();
    let link = link.token("verify-email").unwrap();
    // The owner gets the notice and resets the password.
    sink.wait_for("ines@example.com", 2).await;
    let forgot = json!({ "email": "ines@example.com" });
    post(&app, "/v1/auth/password/forgot", &forgot).await;
    let reset = sink.wait_for("ines@example.com", 3).await.pop().unwrap();
    let reset = reset.token("reset-password").unwrap();
    let body = json!({ "token": reset, "new_password": "a brand new passphrase" });
    let response = post(&app, "/v1/auth/password/reset", &body).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // The thief's link no longer moves the account.
    let response = post(&app, "/v1/auth/verify-email", &json!({ "token": link })).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_token".into())
    );
    let login = app
        .login("ines@example.com", "a brand new passphrase", "native")
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let login = app
        .login("thief@evil.example", "a brand new passphrase", "native")
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_password_change_and_a_move_void_the_links_already_mailed() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "jo@example.com").await;
    let (access, _) = app.login_native("jo@example.com").await;
    let change_to = |to: &'static str, password: &'static str| {
        let body = json!({ "new_email": to, "password": password });
        bearer(
            &app,
            reqwest::Method::POST,
            "/v1/me/email",
            &access,
            Some(body),
        )
    };
    // A move started, then the password changed: the move's link is void.
    assert_eq!(change_to("jo.a@example.com", PASSWORD).await.status(), 202);
    let first = sink.wait_for("jo.a@example.com", 1).await.pop().unwrap();
    let new_password = "another fine passphrase";
    let body = json!({ "current_password": PASSWORD, "new_password": new_password });
    let response = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/password",
        &access,
        Some(body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let token = first.token("verify-email").unwrap();
    let response = post(&app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A reset link mailed to the old address, then the account moves: the
    // old mailbox's link no longer acts on it.
    post(
        &app,
        "/v1/auth/password/forgot",
        &json!({ "email": "jo@example.com" }),
    )
    .await;
    let mails = sink.wait_for("jo@example.com", 4).await;
    let reset = mails
        .iter()
        .find_map(|m| m.token("reset-password"))
        .unwrap();
    assert_eq!(
        change_to("jo.b@example.com", new_password).await.status(),
        202
    );
    let second = sink.wait_for("jo.b@example.com", 1).await.pop().unwrap();
    let token = second.token("verify-email").unwrap();
    let response = post(&app, "/v1/auth/verify-email", &json!({ "token": token })).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let body = json!({ "token": reset, "new_password": "the old mailbox wins" });
    let response = post(&app, "/v1/auth/password/reset", &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let login = app.login("jo.b@example.com", new_password, "native").await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_move_racing_a_signup_for_the_same_address_is_a_void_link_not_a_500() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "kai@example.com").await;
    let (access, _) = app.login_native("kai@example.com").await;
    let body = json!({ "new_email": "kai.new@example.com", "password": PASSWORD });
    let response = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/email",
        &access,
        Some(body),
    )
    .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = sink.wait_for("kai.new@example.com", 1).await.pop().unwrap();
    let token = mail.token("verify-email").unwrap();
    // Someone signs up with the new address; their insert is not yet
    // committed when the link comes back.
    let mut signup = app.db.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, email_key, password_hash, created_at, updated_at)
         VALUES ($1, 'kai.new@example.com', 'kai.new@example.com', 'x', now(), now())",
    )
    .bind(uuid::Uuid::new_v4())
    .execute(&mut *signup)
    .await
    .unwrap();
    let verify = tokio::spawn({
        let (client, url) = (app.client.clone(), app.url("/v1/auth/verify-email"));
        async move {
            client
                .post(url)
                .json(&json!({ "token": token }))
                .send()
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    signup.commit().await.unwrap();
    assert_eq!(
        error_code(verify.await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "invalid_token".into())
    );
    let login = app.login("kai@example.com", PASSWORD, "native").await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn deleting_the_account_frees_the_address_and_shreds_its_traces() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    let agent = "ShredMe/7.7";
    let client = reqwest::Client::builder()
        .user_agent(agent)
        .local_address("127.0.0.77".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let email = "ivy.gone@example.com";
    let signup = app
        .post_json_with(
            &client,
            "/v1/auth/signup",
            &json!({ "email": email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(signup.status(), 202);
    let mail = sink.wait_for(email, 1).await.pop().unwrap();
    app.post_json_with(
        &client,
        "/v1/auth/verify-email",
        &json!({ "token": mail.token("verify-email").unwrap() }),
    )
    .await;
    let login: Value = app
        .login_with(&client, email, PASSWORD, "native")
        .await
        .json()
        .await
        .unwrap();
    let access = str_field(&login, "access_token");
    let refresh = str_field(&login, "refresh_token");
    // A failed login (a throttle counter for this IP) and a request with an
    // Idempotency-Key (a key scoped by this IP) leave rows behind.
    client
        .post(app.url("/v1/auth/login"))
        .header("idempotency-key", "shred-1")
        .json(&json!({ "email": email, "password": "a wrong password entirely" }))
        .send()
        .await
        .unwrap();
    assert!(app.count("SELECT count(*) FROM login_throttle").await > 0);
    assert!(app.count("SELECT count(*) FROM idempotency_keys").await > 0);
    // Before deletion, the owner reads their own events with IP and agent.
    let activity: Value = client
        .get(app.url("/v1/me/activity"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        activity["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["client_ip"] == "127.0.0.77" && e["user_agent"] == agent)
    );
    // The deletion comes from another address, so that it does not clear
    // the first one's counter.
    let client = reqwest::Client::builder()
        .user_agent(agent)
        .local_address("127.0.0.78".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let wrong = client
        .delete(app.url("/v1/me"))
        .bearer_auth(&access)
        .json(&json!({ "password": "a wrong password entirely" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let deleted = client
        .delete(app.url("/v1/me"))
        .bearer_auth(&access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&access).await.status(), 401);
    assert_eq!(app.refresh_body(&refresh).await.status(), 401);
    // Nothing of the account is readable anywhere in the database.
    let dump: String = sqlx::query_scalar(
        "SELECT string_agg(t, ' ') FROM (
             SELECT row_to_json(x)::text AS t FROM users x
             UNION ALL SELECT row_to_json(x)::text FROM sessions x
             UNION ALL SELECT row_to_json(x)::text FROM audit_events x
             UNION ALL SELECT row_to_json(x)::text FROM login_throttle x
             UNION ALL SELECT row_to_json(x)::text FROM idempotency_keys x
             UNION ALL SELECT row_to_json(x)::text FROM mail_outbox x
             UNION ALL SELECT row_to_json(x)::text FROM mail_quota x
             UNION ALL SELECT row_to_json(x)::text FROM account_tokens x
             UNION ALL SELECT row_to_json(x)::text FROM user_data_keys x
         ) all_rows",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    for trace in [email, "ivy.gone", "127.0.0.77", "127.0.0.78", agent] {
        assert!(!dump.contains(trace), "{trace} is still in the database");
    }
    // The chain still verifies; the events keep their kinds.
    let verdict = app.state.audit.verify(&app.db).await.unwrap();
    assert!(
        matches!(verdict, authd::domain::audit::Verdict::Intact { .. }),
        "{verdict:?}"
    );
    assert!(app.count("SELECT count(*) FROM audit_events WHERE event_type = 'account_deleted' AND outcome = 'success'").await == 1);
    // The address is free again.
    assert_eq!(app.signup(email, PASSWORD).await.status(), 202);
    sink.wait_for(email, 2).await;
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
}

#[tokio::test]
async fn deleting_an_mfa_account_needs_a_second_factor() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "jay@example.com").await;
    let (access, _) = app.login_native("jay@example.com").await;
    let setup: Value = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/mfa/totp/setup",
        &access,
        Some(json!({ "password": PASSWORD })),
    )
    .await
    .json()
    .await
    .unwrap();
    let at = step_start();
    app.clock.pin(at);
    let activated: Value = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/mfa/totp/activate",
        &access,
        Some(json!({ "code": oathtool(&str_field(&setup, "secret"), at) })),
    )
    .await
    .json()
    .await
    .unwrap();
    let without = bearer(
        &app,
        reqwest::Method::DELETE,
        "/v1/me",
        &access,
        Some(json!({ "password": PASSWORD })),
    )
    .await;
    assert_eq!(error_code(without).await.1, "invalid_request");
    let code = activated["recovery_codes"][0].as_str().unwrap();
    let with = bearer(
        &app,
        reqwest::Method::DELETE,
        "/v1/me",
        &access,
        Some(json!({ "password": PASSWORD, "recovery_code": code })),
    )
    .await;
    assert_eq!(with.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("SELECT count(*) FROM mfa_totp").await, 0);
}

#[tokio::test]
async fn a_dead_smtp_server_delays_mail_but_never_a_request() {
    // A free port with nobody on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = spawn_with(|s| mail_to(s, port)).await;
    let started = Instant::now();
    let response = app.signup("kim@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(started.elapsed() < Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count("SELECT count(*) FROM mail_outbox").await, 1);
    // The server comes back: the mail goes out within the retry interval.
    let sink = SmtpSink::start_on(port).await;
    sink.wait_for("kim@example.com", 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.count("SELECT count(*) FROM mail_outbox").await > 0 {
        assert!(Instant::now() < deadline, "the delivered row stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_recipient_the_relay_refuses_is_given_up_at_once() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    let response = app.signup("bounce.kim@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    sink.wait_refused("bounce.kim@example.com", 1).await;
    // A 550 for this recipient: the row goes, rather than being retried
    // (and logged) every few seconds for a day.
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.count("SELECT count(*) FROM mail_outbox").await > 0 {
        assert!(Instant::now() < deadline, "the refused mail stays queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.refusals("bounce.kim@example.com"), 1);
    // A 550 for the relay's policy (5.7.1) is its configuration, not the
    // recipient: kept and tried again.
    let response = app.signup("denied.kim@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    sink.wait_refused("denied.kim@example.com", 2).await;
    assert_eq!(app.count("SELECT count(*) FROM mail_outbox").await, 1);
}

#[tokio::test]
async fn queued_mail_survives_a_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (first, server) = spawn_until(|s| mail_to(s, port), async {
        let _ = stopped.await;
    })
    .await;
    first.signup("lou@example.com", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(first.count("SELECT count(*) FROM mail_outbox").await, 1);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    // Stopped before it could send; started again, with the server up.
    let sink = SmtpSink::start_on(port).await;
    let (_second, _) = spawn_again(&first, |s| mail_to(s, port)).await;
    let mail = sink.wait_for("lou@example.com", 1).await.pop().unwrap();
    assert!(mail.token("verify-email").is_some());
}

#[tokio::test]
async fn a_reset_leaves_mfa_on() {
    let (app, sink) = spawn_with_sink(|_| {}).await;
    signup_verified(&app, &sink, "mona@example.com").await;
    let (access, _) = app.login_native("mona@example.com").await;
    let setup: Value = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/mfa/totp/setup",
        &access,
        Some(json!({ "password": PASSWORD })),
    )
    .await
    .json()
    .await
    .unwrap();
    let at = step_start();
    app.clock.pin(at);
    let code = oathtool(&str_field(&setup, "secret"), at);
    let activated = bearer(
        &app,
        reqwest::Method::POST,
        "/v1/me/mfa/totp/activate",
        &access,
        Some(json!({ "code": code })),
    )
    .await;
    assert_eq!(activated.status(), StatusCode::OK);
    // "MFA on" reached the account.
    let on = sink.wait_for("mona@example.com", 2).await.pop().unwrap();
    assert!(
        on.subject().contains("Two-step verification is on"),
        "{}",
        on.subject()
    );
    post(
        &app,
        "/v1/auth/password/forgot",
        &json!({ "email": "mona@example.com" }),
    )
    .await;
    let mail = sink.wait_for("mona@example.com", 3).await.pop().unwrap();
    let reset = post(
        &app,
        "/v1/auth/password/reset",
        &json!({ "token": mail.token("reset-password").unwrap(), "new_password": "a brand new passphrase" }),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let login: Value = app
        .login("mona@example.com", "a brand new passphrase", "native")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(login["mfa_required"], true);
    assert!(login.get("access_token").is_none());
}
