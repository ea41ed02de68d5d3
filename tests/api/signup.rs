//! POST /v1/auth/signup
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn signup_answers_the_same_for_new_and_existing_addresses() {
    let app = spawn_app().await;
    let first = app.signup("alice@example.com", PASSWORD).await;
    let (s1, b1) = (first.status(), first.text().await.unwrap());
    // Same address in another case and with surrounding spaces.
    let again = app
        .signup("  ALICE@Example.com ", "another strong passphrase")
        .await;
    let (s2, b2) = (again.status(), again.text().await.unwrap());
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(b1, r#"{"status":"accepted"}"#);
    assert_eq!(b1, b2);
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    // The original password still works; the duplicate did not overwrite it.
    assert_eq!(
        app.login("alice@example.com", PASSWORD, "native")
            .await
            .status(),
        StatusCode::OK
    );
    let hijack = app
        .login("alice@example.com", "another strong passphrase", "native")
        .await;
    assert_eq!(hijack.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn new_accounts_get_the_default_role_and_store_only_a_hash() {
    let app = spawn_app().await;
    app.create_user("bob@example.com").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
    let roles: Vec<String> = sqlx::query_scalar("SELECT role FROM user_roles")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(roles, vec!["user"]);
}

#[tokio::test]
async fn weak_passwords_are_refused_with_every_reason() {
    let app = spawn_app().await;
    let cases: &[(&str, &[&str])] = &[
        ("short", &["too_short"]),
        ("password", &["too_short", "common_password"]),
        ("1qaz2wsx3edc", &["common_password"]),
        ("football2024!!", &["common_password"]),
        ("carol-is-my-name-ok", &["contains_email"]),
    ];
    for (password, reasons) in cases {
        let response = app.signup("carol@example.com", password).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{password}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "weak_password");
        assert_eq!(body["reasons"], json!(reasons), "{password}");
        // The password is never echoed back (the short ones are ordinary words).
        if password.len() >= 12 {
            assert!(!body.to_string().contains(password));
        }
    }
    let too_long = "x".repeat(129);
    let body: Value = app
        .signup("carol@example.com", &too_long)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["reasons"], json!(["too_long"]));
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn password_length_counts_the_characters_typed_not_their_nfkc_expansion() {
    let app = spawn_app().await;
    // U+FDFA is one character that NFKC expands to eighteen; ¼ becomes
    // three. Typed, these are 1, 4 and 11 characters.
    for password in ["\u{FDFA}", "¼¼¼¼", "\u{FDFA}¼¼¼¼¼¼¼¼¼¼"] {
        let response = app.signup("dana@example.com", password).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["reasons"], json!(["too_short"]), "{password}");
    }
    // Twelve such characters are twelve characters: accepted, and the
    // login compares NFKC forms, as it always did.
    let twelve = "\u{FDFA}¼¼¼¼¼¼¼¼¼¼¼";
    assert_eq!(app.signup("dana@example.com", twelve).await.status(), 202);
    assert_eq!(
        app.login("dana@example.com", twelve, "native")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_account_made_under_the_old_length_rule_still_logs_in() {
    let app = spawn_app().await;
    app.create_user("old@example.com").await;
    // What the old rule let through: "¼¼¼¼" counted 12 after NFKC.
    let hash = app
        .state
        .passwords
        .hash(secrecy::SecretString::from(
            authd::domain::password_policy::normalize("¼¼¼¼"),
        ))
        .await
        .unwrap();
    sqlx::query("UPDATE users SET password_hash = $1")
        .bind(hash)
        .execute(&app.db)
        .await
        .unwrap();
    let login = app.login("old@example.com", "¼¼¼¼", "native").await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn invalid_emails_are_refused() {
    let app = spawn_app().await;
    let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
    for email in [
        "not-an-email",
        "a@b",
        "two@@example.com",
        "spa ce@example.com",
        long.as_str(),
    ] {
        let (status, code) = error_code(app.signup(email, PASSWORD).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_email"),
            "{email}"
        );
    }
}

#[tokio::test]
async fn login_is_refused_until_verified_when_verification_is_required() {
    let app = spawn_with(|s| s.auth.require_verified_email = true).await;
    app.create_user("dave@example.com").await;
    let (status, code) = error_code(app.login("dave@example.com", PASSWORD, "web").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "email_not_verified")
    );
    // A wrong password still gets the generic answer, not the verification hint.
    let (status, code) = error_code(
        app.login("dave@example.com", "wrong password here", "web")
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    sqlx::query("UPDATE users SET email_verified = true")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.login("dave@example.com", PASSWORD, "web")
            .await
            .status(),
        StatusCode::OK
    );
}
