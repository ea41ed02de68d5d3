//! Look-alike addresses: invisible and bidi characters and mixed scripts are
//! refused, a confusable of an existing account is absorbed like a
//! duplicate, and accounts from before these rules get their skeletons.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn invisible_bidi_and_mixed_script_addresses_are_refused() {
    let app = spawn_app().await;
    for address in [
        "kel\u{200B}vin@example.com",
        "\u{202E}nivlek@example.com",
        "k\u{0435}lvin@example.com",
        "kelvin@ex\u{0430}mple.com",
    ] {
        let response = app.signup(address, PASSWORD).await;
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_email", "{address:?}");
        // The message never repeats the address.
        assert!(!body.to_string().contains("vin"), "{body}");
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 0);
}

#[tokio::test]
async fn a_look_alike_of_an_existing_account_is_answered_like_a_duplicate() {
    let app = spawn_app().await;
    let first = app.signup("ace@example.com", PASSWORD).await;
    let first = (first.status(), first.text().await.unwrap());
    // All-Cyrillic "асе": one script, so it passes the mixed-script rule,
    // but it reads exactly like "ace". Also "paypa1" next to "paypal".
    app.create_user("paypal@example.com").await;
    for look_alike in ["\u{0430}\u{0441}\u{0435}@example.com", "paypa1@example.com"] {
        let again = app.signup(look_alike, "another strong passphrase").await;
        assert_eq!((again.status(), again.text().await.unwrap()), first);
        let login = app
            .login(look_alike, "another strong passphrase", "native")
            .await;
        assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.count("SELECT count(*) FROM users").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE event_type = 'signup' AND outcome = 'lookalike'")
            .await,
        2
    );
}

#[tokio::test]
async fn existing_accounts_get_skeletons_and_keep_logging_in() {
    let app = spawn_app().await;
    app.create_user("legacy@example.com").await;
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    // Rows as the old rules stored them: no skeleton, and one address the
    // new rules refuse, and a look-alike pair.
    sqlx::query("UPDATE users SET email_skeleton = NULL")
        .execute(&app.db)
        .await
        .unwrap();
    for (i, email) in [
        "kel\u{200B}vin@example.com",
        "ace@example.com",
        "\u{0430}\u{0441}\u{0435}@example.com",
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO users (id, email, email_key, password_hash, created_at, updated_at)
             VALUES ($1, $2, lower($2), $3, now() + make_interval(secs => $4), now())",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(email)
        .bind(&hash)
        .bind(f64::from(u32::try_from(i).unwrap() + 1))
        .execute(&app.db)
        .await
        .unwrap();
    }
    authd::domain::accounts::backfill_email_skeletons(&app.db)
        .await
        .unwrap();
    // Everyone but the younger of the look-alike pair has a skeleton.
    let missing: Vec<String> =
        sqlx::query_scalar("SELECT email FROM users WHERE email_skeleton IS NULL")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        missing,
        vec!["\u{0430}\u{0441}\u{0435}@example.com".to_owned()]
    );
    // All of them still log in, the one with a now-refused address included.
    for email in [
        "legacy@example.com",
        "kel\u{200B}vin@example.com",
        "ace@example.com",
        "\u{0430}\u{0441}\u{0435}@example.com",
    ] {
        let login = app.login(email, PASSWORD, "native").await;
        assert_eq!(login.status(), StatusCode::OK, "{email:?}");
    }
    // And can ask for a reset link or a new verification mail, which the
    // current rules alone would refuse as `invalid_email`.
    let legacy = "kel\u{200B}vin@example.com";
    for path in ["/v1/auth/password/forgot", "/v1/auth/verify-email/resend"] {
        let response = app.post_json(path, &json!({ "email": legacy })).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{path}");
    }
    // Running it again changes nothing.
    authd::domain::accounts::backfill_email_skeletons(&app.db)
        .await
        .unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE email_skeleton IS NULL")
            .await,
        1
    );
}
