//! No email address, password, token or code ever reaches a log line: every
//! flow runs with logs captured at TRACE level, and the capture is searched.
//!
//! A test binary of its own: the capture is the process-wide subscriber, so
//! no test running in parallel can race with it (thread-local subscribers
//! share tracing's callsite cache with every other thread in the process).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../api/helpers.rs"]
mod helpers;

use helpers::*;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_log_no_emails_passwords_or_tokens() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let sink = helpers::smtp_sink::SmtpSink::start().await;
    let app = spawn_with(|s| {
        s.throttle.ip_free_failures = 1;
        s.throttle.base_delay_secs = 60;
        mail_to(s, sink.addr);
    })
    .await;
    let email = "Leaky.Person@Example.org";
    let weak = "leaky.person-pw";
    let wrong = "Not-The-Password-42";
    let mut secrets: Vec<String> = vec![
        email.into(),
        email.to_lowercase(),
        "leaky.person".into(),
        PASSWORD.into(),
        weak.into(),
        wrong.into(),
    ];

    app.signup(email, weak).await;
    app.create_user(email).await;
    app.signup(email, PASSWORD).await;
    let web = app.login(email, PASSWORD, "web").await;
    let cookie = cookie_value(&refresh_set_cookie(&web).unwrap());
    let web_body: Value = web.json().await.unwrap();
    let access = str_field(&web_body, "access_token");
    secrets.extend([cookie.clone(), access.clone()]);
    app.me(&access).await;
    app.me(&format!("{access}x")).await;
    let rotated = app.refresh_cookie(&cookie).await;
    secrets.push(cookie_value(&refresh_set_cookie(&rotated).unwrap()));
    app.clock.advance(time::Duration::seconds(11));
    app.refresh_cookie(&cookie).await; // reuse
    let (native_access, native_refresh) = app.login_native(email).await;
    let body: Value = app
        .refresh_body(&native_refresh)
        .await
        .json()
        .await
        .unwrap();
    let child = str_field(&body, "refresh_token");
    secrets.extend([
        native_access,
        native_refresh,
        child.clone(),
        str_field(&body, "access_token"),
    ]);
    app.post_json("/v1/auth/logout", &json!({ "refresh_token": child }))
        .await;
    for _ in 0..3 {
        app.login(email, wrong, "native").await; // fails, then throttled
    }
    app.login("nobody.here@example.net", wrong, "native").await;
    secrets.push("nobody.here".into());
    app.client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"email": "{email}", "password": "{PASSWORD}""#))
        .send()
        .await
        .unwrap();
    app.post_json(
        "/v1/auth/login",
        &json!({ "email": email, "password": [PASSWORD] }),
    )
    .await;
    app.post_json(
        "/v1/auth/signup",
        &json!({ "email": "not-an-email-leaky", "password": PASSWORD }),
    )
    .await;
    secrets.push("not-an-email-leaky".into());

    // MFA: setup, activation, a challenge, a wrong and a right code, a
    // recovery code.
    let mfa_email = "mfa.leaky@example.org";
    app.create_user(mfa_email).await;
    let (mfa_access, _) = app.login_native(mfa_email).await;
    let setup: Value = app
        .client
        .post(app.url("/v1/me/mfa/totp/setup"))
        .bearer_auth(&mfa_access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = str_field(&setup, "secret");
    let at = step_start();
    app.clock.pin(at);
    let activation_code = oathtool(&secret, at);
    let activated: Value = app
        .client
        .post(app.url("/v1/me/mfa/totp/activate"))
        .bearer_auth(&mfa_access)
        .json(&json!({ "code": activation_code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recovery: Vec<String> = activated["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let challenge: Value = app
        .login(mfa_email, PASSWORD, "native")
        .await
        .json()
        .await
        .unwrap();
    let mfa_token = str_field(&challenge, "mfa_token");
    app.clock.advance(time::Duration::seconds(30));
    let login_code = oathtool(&secret, at + time::Duration::seconds(30));
    let wrong_code = if login_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    for code in [wrong_code, login_code.as_str()] {
        app.post_json(
            "/v1/auth/login/mfa",
            &json!({ "mfa_token": mfa_token, "code": code }),
        )
        .await;
    }
    let challenge: Value = app
        .login(mfa_email, PASSWORD, "native")
        .await
        .json()
        .await
        .unwrap();
    let second_token = str_field(&challenge, "mfa_token");
    app.post_json(
        "/v1/auth/login/mfa",
        &json!({ "mfa_token": second_token, "recovery_code": recovery[0] }),
    )
    .await;
    secrets.extend([
        mfa_email.to_owned(),
        secret.clone(),
        mfa_token,
        second_token,
        // Six digits can occur by chance in timestamps and ids: look for
        // them as a logged value would appear, quoted.
        format!("\"{activation_code}\""),
        format!("\"{login_code}\""),
        str_field(&setup, "otpauth_uri"),
        str_field(&setup, "qr_png")[100..140].to_owned(),
    ]);
    secrets.extend(recovery.iter().cloned());
    secrets.extend(recovery.iter().map(|c| c.replace('-', "")));

    // The account lifecycle: mailed links, a reset, a change of address,
    // sessions, deletion.
    let life = "life.leaky@example.org";
    app.create_user(life).await;
    let verify = sink.wait_for(life, 1).await.pop().unwrap();
    let verify_token = verify.token("verify-email").unwrap();
    app.post_json("/v1/auth/verify-email", &json!({ "token": verify_token }))
        .await;
    app.post_json("/v1/auth/password/forgot", &json!({ "email": life }))
        .await;
    app.post_json(
        "/v1/auth/password/forgot",
        &json!({ "email": "ghost.leaky@example.org" }),
    )
    .await;
    let reset = sink.wait_for(life, 2).await.pop().unwrap();
    let reset_token = reset.token("reset-password").unwrap();
    let new_password = "leaky new passphrase 77";
    app.post_json(
        "/v1/auth/password/reset",
        &json!({ "token": reset_token, "new_password": new_password }),
    )
    .await;
    let (life_access, _) = {
        let body: Value = app
            .login(life, new_password, "native")
            .await
            .json()
            .await
            .unwrap();
        (str_field(&body, "access_token"), ())
    };
    let moved = "life.moved.leaky@example.org";
    app.client
        .post(app.url("/v1/me/email"))
        .bearer_auth(&life_access)
        .json(&json!({ "new_email": moved, "password": new_password }))
        .send()
        .await
        .unwrap();
    let change = sink.wait_for(moved, 1).await.pop().unwrap();
    let change_token = change.token("verify-email").unwrap();
    app.post_json("/v1/auth/verify-email", &json!({ "token": change_token }))
        .await;
    app.client
        .get(app.url("/v1/me/sessions"))
        .bearer_auth(&life_access)
        .send()
        .await
        .unwrap();
    app.client
        .delete(app.url("/v1/me"))
        .bearer_auth(&life_access)
        .json(&json!({ "password": new_password }))
        .send()
        .await
        .unwrap();
    // A relay that refuses the recipient quotes its address in the reply.
    let bounced = "Bounce.Leaky@example.org";
    app.signup(bounced, PASSWORD).await;
    sink.wait_refused(bounced, 1).await;
    // Let the worker log whatever it logs about these mails.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    secrets.extend([
        bounced.to_owned(),
        "bounce.leaky".to_owned(),
        life.to_owned(),
        "life.leaky".to_owned(),
        moved.to_owned(),
        "ghost.leaky".to_owned(),
        new_password.to_owned(),
        verify_token,
        reset_token,
        change_token,
        life_access.clone(),
    ]);

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The capture really holds the request logs (with status and route).
    assert!(
        logs.contains(r#""route":"/v1/auth/login""#),
        "{}",
        &logs[..logs.len().min(2000)]
    );
    assert!(logs.contains("refresh token reuse detected"));
    // The start warns exactly when PostgreSQL's autovacuum is off.
    let autovacuum_on: bool = sqlx::query_scalar("SHOW autovacuum")
        .fetch_one(&app.db)
        .await
        .map(|setting: String| setting == "on")
        .unwrap();
    assert_eq!(
        logs.contains("PostgreSQL's autovacuum is off"),
        !autovacuum_on,
        "autovacuum on: {autovacuum_on}"
    );
    assert!(logs.lines().count() > 50);
    let lower = logs.to_lowercase();
    for secret in &secrets {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "a secret or PII reached the logs: {secret}"
        );
    }
    // Neither does any part of a JWT (header, claims or signature).
    for part in access.split('.') {
        assert!(!logs.contains(part), "a JWT segment reached the logs");
    }
}
