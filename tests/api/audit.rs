//! The audit log: what is recorded, that it holds no secrets or PII, that it
//! is append-only, that `authd audit verify` finds edits and gaps, and that
//! users see only their own activity.
use crate::helpers::*;
use authd::domain::audit::Verdict;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Row;

async fn events(app: &TestApp) -> Vec<(String, String, Value)> {
    sqlx::query("SELECT event_type, outcome, details FROM audit_events ORDER BY seq")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get("event_type"), r.get("outcome"), r.get("details")))
        .collect()
}

async fn verdict(app: &TestApp) -> Verdict {
    app.state.audit.verify(&app.db).await.unwrap()
}

#[tokio::test]
async fn every_flow_appends_an_event_without_secrets_or_pii() {
    let app = spawn_with(|s| {
        s.throttle.ip_free_failures = 1;
        s.throttle.base_delay_secs = 60;
    })
    .await;
    app.create_user("audited@example.com").await;
    app.signup("Audited@example.com", "a different passphrase")
        .await;
    let (_, refresh) = app.login_native("audited@example.com").await;
    let body: Value = app.refresh_body(&refresh).await.json().await.unwrap();
    let child = str_field(&body, "refresh_token");
    app.clock.advance(time::Duration::seconds(11));
    app.refresh_body(&refresh).await; // reuse: the session is revoked
    let (_, second) = app.login_native("audited@example.com").await;
    app.post_json(
        "/v1/auth/logout",
        &serde_json::json!({ "refresh_token": second }),
    )
    .await;
    let attacker = client_from("127.0.0.2");
    for _ in 0..3 {
        app.login_with(
            &attacker,
            "audited@example.com",
            "wrong password guess",
            "native",
        )
        .await;
    }
    app.login("ghost@example.com", "wrong password guess", "native")
        .await;

    let kinds: Vec<(String, String)> = events(&app)
        .await
        .into_iter()
        .map(|(k, o, _)| (k, o))
        .collect();
    let expected = [
        ("signup", "created"),
        ("signup", "duplicate"),
        ("login_succeeded", "success"),
        ("refresh_token_reuse_detected", "session_revoked"),
        ("login_succeeded", "success"),
        ("logout", "success"),
        ("login_failed", "failure"),
        ("login_failed", "failure"),
        ("login_throttled", "refused"),
        ("login_failed", "failure"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, o)| (k.to_string(), o.to_string()))
        .collect();
    assert_eq!(kinds, expected);

    // Nothing secret or personal in any column of any event.
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(to_jsonb(e)::text, '\n') FROM audit_events e")
            .fetch_one(&app.db)
            .await
            .unwrap();
    for secret in [
        "audited@example.com",
        "ghost@example.com",
        "audited",
        PASSWORD,
        "a different passphrase",
        "wrong password guess",
        refresh.as_str(),
        child.as_str(),
        second.as_str(),
    ] {
        assert!(
            !dump.to_lowercase().contains(&secret.to_lowercase()),
            "{secret} leaked into the audit log"
        );
    }
    let reasons: Vec<Value> = events(&app)
        .await
        .into_iter()
        .map(|(_, _, d)| d["reason"].clone())
        .collect();
    assert!(reasons.contains(&Value::from("wrong_password")));
    assert!(reasons.contains(&Value::from("unknown_account")));
    assert_eq!(verdict(&app).await, Verdict::Intact { events: 10 });
}

#[tokio::test]
async fn events_carry_context_from_the_request() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/v1/auth/signup"))
        .header("user-agent", format!("TestAgent/1.0 {}", "x".repeat(500)))
        .header("x-request-id", "req-42")
        .json(&serde_json::json!({ "email": "ctx@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let row = sqlx::query(
        "SELECT seq, host(client_ip) AS ip, user_agent, request_id, actor_user_id, subject_user_id,
                occurred_at, length(hash) AS hash_len
         FROM audit_events",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let user_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(row.get::<i64, _>("seq"), 1);
    // An event about an account keeps its IP and user agent sealed under
    // the account's key (crypto-shredding), not in the clear...
    assert_eq!(row.get::<Option<String>, _>("ip"), None);
    assert_eq!(row.get::<Option<String>, _>("user_agent"), None);
    assert_eq!(row.get::<String, _>("request_id"), "req-42");
    // ...and its owner's key opens them.
    let event = authd::storage::audit::page(&app.db, 0, 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let key = app
        .state
        .audit
        .user_keys()
        .get(&app.db, user_id)
        .await
        .unwrap();
    let (ip, agent) = authd::domain::audit::AuditLog::personal(&event, |_| key.as_ref());
    assert_eq!(ip.map(|ip| ip.to_string()).as_deref(), Some("127.0.0.1"));
    let agent = agent.unwrap();
    assert!(agent.starts_with("TestAgent/1.0") && agent.chars().count() == 256);
    // Without it they stay closed.
    assert_eq!(
        authd::domain::audit::AuditLog::personal(&event, |_| None),
        (None, None)
    );
    assert_eq!(
        row.get::<Option<uuid::Uuid>, _>("subject_user_id"),
        Some(user_id)
    );
    assert_eq!(row.get::<i32, _>("hash_len"), 32);
}

#[tokio::test]
async fn the_table_refuses_update_delete_and_truncate() {
    let app = spawn_app().await;
    app.create_user("immutable@example.com").await;
    for statement in [
        "UPDATE audit_events SET outcome = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let result = sqlx::query(statement).execute(&app.db).await;
        let message = result.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("append-only"), "{statement}: {message}");
    }
    assert_eq!(app.count("SELECT count(*) FROM audit_events").await, 1);
}

/// Edits the log the way an attacker with database superuser rights could.
async fn tamper(app: &TestApp, statement: &str) {
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut *tx).await.unwrap();
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER USER")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn three_events(app: &TestApp) {
    for email in ["one@example.com", "two@example.com", "three@example.com"] {
        app.create_user(email).await;
    }
    assert_eq!(verdict(app).await, Verdict::Intact { events: 3 });
}

#[tokio::test]
async fn verify_finds_an_edited_event() {
    let app = spawn_app().await;
    three_events(&app).await;
    tamper(
        &app,
        "UPDATE audit_events SET outcome = 'duplicate' WHERE seq = 2",
    )
    .await;
    let Verdict::Broken { seq, reason } = verdict(&app).await else {
        panic!("edit not detected")
    };
    assert_eq!(seq, 2);
    assert!(reason.contains("altered"), "{reason}");
}

#[tokio::test]
async fn verify_finds_a_recomputed_hash_by_its_broken_link() {
    // An attacker without the audit key can only rehash with another key;
    // the next event's prev_hash then no longer matches.
    let app = spawn_app().await;
    three_events(&app).await;
    tamper(
        &app,
        "UPDATE audit_events SET hash = sha256(hash) WHERE seq = 2",
    )
    .await;
    let Verdict::Broken { seq, .. } = verdict(&app).await else {
        panic!("not detected")
    };
    assert_eq!(seq, 2);
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let app = spawn_app().await;
    three_events(&app).await;
    tamper(&app, "DELETE FROM audit_events WHERE seq = 2").await;
    let Verdict::Broken { seq, reason } = verdict(&app).await else {
        panic!("gap not detected")
    };
    assert_eq!(seq, 2);
    assert!(reason.contains("missing"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_form_one_chain_without_forks() {
    let app = spawn_app().await;
    let signups: Vec<_> = (0..12)
        .map(|i| {
            let client = app.client.clone();
            let url = app.url("/v1/auth/signup");
            tokio::spawn(async move {
                let body = serde_json::json!({ "email": format!("c{i}@example.com"), "password": PASSWORD });
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    for signup in signups {
        assert_eq!(signup.await.unwrap(), StatusCode::ACCEPTED);
    }
    assert_eq!(verdict(&app).await, Verdict::Intact { events: 12 });
}

/// Appends racing on the pool's connections (no hashing to space them out)
/// still take their turns: one chain, no fork, no gap, and each owner's
/// personal fields sealed under its own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_appends_take_turns_on_the_chain() {
    use authd::domain::audit::{AuditLog, Context, Event, Kind};
    let app = spawn_app().await;
    app.create_user("racer@example.com").await;
    let owner: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let appends: Vec<_> = (0..40)
        .map(|i| {
            let state = app.state.clone();
            tokio::spawn(async move {
                let ip = format!("10.0.0.{i}").parse().ok();
                let ctx = Context::new(ip, Some("racer"), None);
                let subject = (i % 2 == 0).then_some(owner);
                let event = Event {
                    kind: Kind::LoginFailed,
                    actor: None,
                    subject,
                    outcome: "failure",
                    details: serde_json::json!({ "i": i }),
                };
                state.audit.record(&state.db, &ctx, event).await.unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for append in appends {
        seqs.push(append.await.unwrap());
    }
    seqs.sort_unstable();
    let first = seqs[0];
    assert_eq!(seqs, (first..first + 40).collect::<Vec<_>>());
    assert_eq!(verdict(&app).await, Verdict::Intact { events: first + 39 });
    let key = app
        .state
        .audit
        .user_keys()
        .get(&app.db, owner)
        .await
        .unwrap();
    let events = authd::storage::audit::page(&app.db, first - 1, 40)
        .await
        .unwrap();
    for event in &events {
        let i = event.details["i"].as_i64().unwrap();
        let (ip, agent) = AuditLog::personal(event, |_| key.as_ref());
        assert_eq!(ip.map(|ip| ip.to_string()), Some(format!("10.0.0.{i}")));
        assert_eq!(agent.as_deref(), Some("racer"));
        assert_eq!(event.personal_enc.is_some(), i % 2 == 0, "{i}");
    }
}

#[tokio::test]
async fn users_see_only_their_own_activity_page_by_page() {
    let app = spawn_app().await;
    app.create_user("me@example.com").await;
    app.create_user("other@example.com").await;
    app.login_native("other@example.com").await;
    for _ in 0..4 {
        app.login_native("me@example.com").await;
    }
    let (access, _) = app.login_native("me@example.com").await;
    let page = |query: String| {
        let request = app
            .client
            .get(app.url(&format!("/v1/me/activity{query}")))
            .bearer_auth(&access);
        async move { request.send().await.unwrap() }
    };
    let first: Value = page("?limit=4".into()).await.json().await.unwrap();
    let events = first["events"].as_array().unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["event_type"] == "login_succeeded"));
    let cursor = str_field(&first, "next_cursor");
    let second: Value = page(format!("?limit=4&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    let older = second["events"].as_array().unwrap();
    // 5 logins and 1 signup are mine; the other account's 2 events are not.
    assert_eq!(older.len(), 2);
    assert_eq!(older[1]["event_type"], "signup");
    assert!(second["next_cursor"].is_null());
    let ids: Vec<i64> = events
        .iter()
        .chain(older)
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(events[0]["client_ip"], "127.0.0.1");
    assert!(!second.to_string().contains("other@example.com") && !first.to_string().contains("@"));

    for bad in [
        "?limit=0",
        "?limit=101",
        "?cursor=%%%",
        "?cursor=Zm9v",
        "?limit=abc",
    ] {
        let (status, code) = error_code(page(bad.into()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{bad}"
        );
    }
    let anonymous = app
        .client
        .get(app.url("/v1/me/activity"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
