//! Roles, default-deny authorization and the admin API.
use crate::helpers::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use time::Duration;
use uuid::Uuid;

async fn user_id(app: &TestApp, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email_key = $1")
        .bind(email)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn grant(app: &TestApp, email: &str, roles: &[&str]) {
    let id = user_id(app, email).await;
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    let ctx = authd::domain::audit::Context::cli();
    let caller = authd::domain::admin::authorize::AdminCaller::cli();
    authd::domain::admin::users::set_roles(&app.state, &ctx, caller, id, &roles, "test setup")
        .await
        .unwrap();
}

/// An account with `roles`, and an access token from a session that
/// passed MFA (or only the password, without `mfa`).
async fn staff(app: &TestApp, email: &str, roles: &[&str], mfa: bool) -> String {
    if !mfa {
        app.create_user(email).await;
        grant(app, email, roles).await;
        return app.login_native(email).await.0;
    }
    let enrolled = crate::mfa::enrol(app, email).await;
    grant(app, email, roles).await;
    let mfa_token = crate::mfa::password_step(app, email, "native").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(30));
    let done = crate::mfa::mfa_step(app, &mfa_token, ("code", &code)).await;
    assert_eq!(done.status(), StatusCode::OK);
    str_field(&done.json().await.unwrap(), "access_token")
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app.client.request(method, app.url(path));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The JSON body of a GET as `token`.
async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    call(app, Method::GET, path, token, None)
        .await
        .json()
        .await
        .unwrap()
}

/// Every (method, path) under /v1/admin in openapi.yaml.
fn admin_operations() -> Vec<(Method, String)> {
    let spec: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_mapping().unwrap() {
        let path = path.as_str().unwrap();
        if !path.starts_with("/v1/admin") {
            continue;
        }
        for method in item.as_mapping().unwrap().keys().filter_map(|k| k.as_str()) {
            if let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes())
                && ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&m.as_str())
            {
                out.push((m, path.to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_admin_path_is_401_without_a_token_and_403_for_a_plain_user() {
    let app = spawn_app().await;
    let plain = staff(&app, "plain@example.com", &[], false).await;
    let operations = admin_operations();
    assert!(operations.len() >= 9, "{operations:?}");
    for (method, path) in operations {
        // Whatever the id or the body.
        for id in [Uuid::new_v4().to_string(), "not-an-id".into()] {
            let path = path.replace("{id}", &id);
            let body =
                (method != Method::GET).then(|| json!({ "reason": "x", "roles": ["admin"] }));
            let anonymous = call(&app, method.clone(), &path, "", body.clone()).await;
            assert_eq!(
                anonymous.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path}"
            );
            let denied = call(&app, method.clone(), &path, &plain, body).await;
            assert_eq!(
                error_code(denied).await,
                (StatusCode::FORBIDDEN, "forbidden".into()),
                "{method} {path}"
            );
            let garbage = call(&app, method.clone(), &path, &plain, Some(json!([1, 2, 3]))).await;
            assert_eq!(garbage.status(), StatusCode::FORBIDDEN, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn each_role_gets_exactly_its_permissions() {
    let app = spawn_app().await;
    app.create_user("target@example.com").await;
    let target = user_id(&app, "target@example.com").await;
    // (method, path, body, which roles may)
    let reason = json!({ "reason": "table test" });
    let routes: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (
            Method::GET,
            "/v1/admin/users".into(),
            None,
            &["support", "admin"],
        ),
        (
            Method::GET,
            format!("/v1/admin/users/{target}"),
            None,
            &["support", "admin"],
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/sessions/revoke"),
            Some(reason.clone()),
            &["support", "admin"],
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/verification/resend"),
            Some(reason.clone()),
            &["support", "admin"],
        ),
        (
            Method::GET,
            "/v1/admin/audit".into(),
            None,
            &["auditor", "admin"],
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/disable"),
            Some(reason.clone()),
            &["admin"],
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/enable"),
            Some(reason.clone()),
            &["admin"],
        ),
        (
            Method::PUT,
            format!("/v1/admin/users/{target}/roles"),
            Some(json!({ "roles": ["user"], "reason": "table test" })),
            &["admin"],
        ),
        (
            Method::DELETE,
            format!("/v1/admin/users/{target}/mfa"),
            Some(reason.clone()),
            &["admin"],
        ),
    ];
    // Every admin route of openapi.yaml is in the table.
    let covered: BTreeSet<(String, String)> = routes
        .iter()
        .map(|(m, p, _, _)| (m.to_string(), p.replace(&target.to_string(), "{id}")))
        .collect();
    let documented: BTreeSet<(String, String)> = admin_operations()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p))
        .collect();
    assert_eq!(covered, documented);
    for role in ["user", "support", "auditor", "admin"] {
        let token = staff(&app, &format!("{role}.staff@example.com"), &[role], true).await;
        for (method, path, body, allowed) in &routes {
            let response = call(&app, method.clone(), path, &token, body.clone()).await;
            let status = response.status();
            if allowed.contains(&role) {
                assert!(status.is_success(), "{role}: {method} {path} -> {status}");
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn admin_roles_need_a_session_that_passed_mfa() {
    let app = spawn_app().await;
    let token = staff(&app, "nomfa@example.com", &["admin"], false).await;
    let response = call(&app, Method::GET, "/v1/admin/users", &token, None).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::FORBIDDEN, "mfa_required".into())
    );
}

#[tokio::test]
async fn admin_sessions_end_after_the_admin_cap_and_the_cookie_never_outlives_it() {
    let app = spawn_with(|s| s.admin.session_max_secs = 3600).await;
    app.create_user("cap@example.com").await;
    grant(&app, "cap@example.com", &["support"]).await;
    let web = app.login("cap@example.com", PASSWORD, "web").await;
    let cookie = refresh_set_cookie(&web).unwrap();
    let max_age: i64 = cookie_attributes(&cookie)
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age=").map(|v| v.parse().unwrap()))
        .unwrap();
    assert!(max_age <= 3600, "{cookie}");
    let (_, refresh) = app.login_native("cap@example.com").await;
    app.clock.advance(Duration::seconds(3500));
    let body: Value = app.refresh_body(&refresh).await.json().await.unwrap();
    let refresh = str_field(&body, "refresh_token");
    app.clock.advance(Duration::seconds(200));
    assert_eq!(
        app.refresh_body(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // An access token that outlives the session's cap (a registered
    // client's may live an hour) no longer acts on the admin API.
    let enrolled = crate::mfa::enrol(&app, "capped@example.com").await;
    grant(&app, "capped@example.com", &["admin"]).await;
    let mfa_token = crate::mfa::password_step(&app, "capped@example.com", "native").await;
    app.clock.advance(Duration::seconds(30));
    let code = oathtool(&enrolled.secret, enrolled.at + Duration::seconds(30));
    let done = crate::mfa::mfa_step(&app, &mfa_token, ("code", &code)).await;
    let refresh = str_field(&done.json().await.unwrap(), "refresh_token");
    app.clock.advance(Duration::seconds(3500));
    let body: Value = app.refresh_body(&refresh).await.json().await.unwrap();
    let admin = str_field(&body, "access_token");
    let listed = call(&app, Method::GET, "/v1/admin/users", &admin, None).await;
    assert_eq!(listed.status(), StatusCode::OK);
    // Past the cap, before the token's own `exp`.
    app.clock.advance(Duration::seconds(200));
    let late = call(&app, Method::GET, "/v1/admin/users", &admin, None).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    // A role granted to an account already signed in caps its sessions too.
    app.create_user("late@example.com").await;
    let (_, refresh) = app.login_native("late@example.com").await;
    grant(&app, "late@example.com", &["auditor"]).await;
    app.clock.advance(Duration::seconds(3700));
    assert_eq!(
        app.refresh_body(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revoking_a_role_bites_on_the_next_call_and_actions_are_audited() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss@example.com", &["admin"], true).await;
    let helper = staff(&app, "helper@example.com", &["support"], true).await;
    assert_eq!(
        call(&app, Method::GET, "/v1/admin/users", &helper, None)
            .await
            .status(),
        200
    );
    let helper_id = user_id(&app, "helper@example.com").await;
    let demote = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{helper_id}/roles"),
        &boss,
        Some(json!({ "roles": [], "reason": "moved teams" })),
    )
    .await;
    assert_eq!(demote.status(), StatusCode::OK);
    assert_eq!(
        demote.json::<Value>().await.unwrap()["roles"],
        json!(["user"])
    );
    // Same access token, which still says "support": refused now.
    let after = call(&app, Method::GET, "/v1/admin/users", &helper, None).await;
    assert_eq!(after.status(), StatusCode::FORBIDDEN);
    let boss_id = user_id(&app, "boss@example.com").await;
    let (actor, subject, reason): (Option<Uuid>, Option<Uuid>, Option<String>) = sqlx::query_as(
        "SELECT actor_user_id, subject_user_id, details->>'reason' FROM audit_events
         WHERE event_type = 'roles_changed' AND details->>'reason' = 'moved teams'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (actor, subject, reason.as_deref()),
        (Some(boss_id), Some(helper_id), Some("moved teams"))
    );
    // Reads of personal data are events too.
    assert!(
        app.count("SELECT count(*) FROM audit_events WHERE event_type = 'admin_users_listed'")
            .await
            >= 1
    );
    // Unknown roles, and too long or empty reasons, are refused.
    for body in [
        json!({ "roles": ["root"], "reason": "x" }),
        json!({ "roles": [], "reason": "" }),
        json!({ "roles": [], "reason": "x".repeat(501) }),
    ] {
        let response = call(
            &app,
            Method::PUT,
            &format!("/v1/admin/users/{helper_id}/roles"),
            &boss,
            Some(body),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    // The last admin keeps the role.
    let last = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{boss_id}/roles"),
        &boss,
        Some(json!({ "roles": ["support"], "reason": "oops" })),
    )
    .await;
    assert_eq!(
        error_code(last).await,
        (StatusCode::CONFLICT, "last_admin".into())
    );
    let disable_self = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{boss_id}/disable"),
        &boss,
        Some(json!({ "reason": "oops" })),
    )
    .await;
    assert_eq!(disable_self.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_last_admin_cannot_delete_their_account() {
    let app = spawn_app().await;
    let enrolled = crate::mfa::enrol(&app, "solo@example.com").await;
    grant(&app, "solo@example.com", &["admin"]).await;
    let delete = |code: &str| {
        let body = json!({ "password": PASSWORD, "recovery_code": code });
        call(&app, Method::DELETE, "/v1/me", &enrolled.access, Some(body))
    };
    assert_eq!(
        error_code(delete(&enrolled.recovery_codes[0]).await).await,
        (StatusCode::CONFLICT, "last_admin".into())
    );
    assert_eq!(app.count("SELECT count(*) FROM users").await, 1);
    // Refused before the factor was spent: the same code works once
    // another admin exists.
    app.create_user("heir@example.com").await;
    grant(&app, "heir@example.com", &["admin"]).await;
    let deleted = delete(&enrolled.recovery_codes[0]).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.count("SELECT count(*) FROM user_roles WHERE role = 'admin'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_nul_character_in_admin_input_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss4@example.com", &["admin"], true).await;
    app.create_user("target@example.com").await;
    let id = user_id(&app, "target@example.com").await;
    let path = format!("/v1/admin/users/{id}/disable");
    let body = json!({ "reason": "a\0b" });
    let response = call(&app, Method::POST, &path, &boss, Some(body)).await;
    assert_eq!(
        error_code(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".into())
    );
    let login = app.login("target@example.com", PASSWORD, "native").await;
    assert_eq!(login.status(), StatusCode::OK);
    for query in ["email_prefix=%00", "kind=%00"] {
        let path = if query.starts_with("kind") {
            "/v1/admin/audit"
        } else {
            "/v1/admin/users"
        };
        let response = call(&app, Method::GET, &format!("{path}?{query}"), &boss, None).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}?{query}");
    }
}

#[tokio::test]
async fn users_see_what_staff_changed_but_not_who_looked_or_from_where() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss5@example.com", &["admin"], true).await;
    app.create_user("watched@example.com").await;
    let id = user_id(&app, "watched@example.com").await;
    let as_staff = |method: Method, path: String, body: Option<Value>| {
        let mut request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&boss)
            .header("user-agent", "staff-console/9");
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let viewed = as_staff(Method::GET, format!("/v1/admin/users/{id}"), None).await;
    assert_eq!(viewed.unwrap().status(), StatusCode::OK);
    let audit = as_staff(Method::GET, format!("/v1/admin/audit?user_id={id}"), None).await;
    assert_eq!(audit.unwrap().status(), StatusCode::OK);
    let body = json!({ "reason": "fraud inquiry 42" });
    let path = format!("/v1/admin/users/{id}/sessions/revoke");
    let revoked = as_staff(Method::POST, path, Some(body)).await.unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);

    // An operator's note at the command line stays staff's too.
    let ctx = authd::domain::audit::Context::cli();
    let cli = authd::domain::admin::authorize::AdminCaller::cli();
    for disabled in [true, false] {
        let change = (id, disabled);
        authd::domain::admin::users::set_disabled(&app.state, &ctx, cli, change, "cli note 7")
            .await
            .unwrap();
    }
    let (access, _) = app.login_native("watched@example.com").await;
    let activity = call(
        &app,
        Method::GET,
        "/v1/me/activity?limit=100",
        &access,
        None,
    )
    .await;
    let text = activity.text().await.unwrap();
    let events: Value = serde_json::from_str(&text).unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"sessions_revoked_by_admin"), "{kinds:?}");
    assert!(!kinds.contains(&"admin_user_viewed"), "{kinds:?}");
    assert!(!kinds.contains(&"admin_audit_read"), "{kinds:?}");
    assert!(!text.contains("staff-console"), "{text}");
    assert!(!text.contains("fraud inquiry"), "{text}");
    assert!(!text.contains("cli note"), "{text}");
    assert!(kinds.contains(&"account_disabled"), "{kinds:?}");
    // The staff member's own activity still lists their reads.
    let own = call(&app, Method::GET, "/v1/me/activity?limit=100", &boss, None).await;
    assert!(own.text().await.unwrap().contains("admin_user_viewed"));
    // The staff member's address is theirs: sealed under their key, it
    // outlives the deletion of the account they acted on.
    let body = json!({ "password": PASSWORD });
    let deleted = call(&app, Method::DELETE, "/v1/me", &access, Some(body)).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let path = "/v1/admin/audit?kind=sessions_revoked_by_admin";
    let log = get_json(&app, path, &boss).await;
    let entry = &log["events"][0];
    assert_eq!(entry["user_agent"], "staff-console/9", "{log}");
}

#[tokio::test]
async fn support_cannot_end_the_sessions_of_those_who_outrank_it() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss6@example.com", &["admin"], true).await;
    let helper = staff(&app, "helpdesk@example.com", &["support"], true).await;
    app.create_user("customer@example.com").await;
    let revoke = |email: &'static str| {
        let app = &app;
        let helper = &helper;
        async move {
            let id = user_id(app, email).await;
            let path = format!("/v1/admin/users/{id}/sessions/revoke");
            let body = json!({ "reason": "ticket 7" });
            call(app, Method::POST, &path, helper, Some(body)).await
        }
    };
    assert_eq!(
        error_code(revoke("boss6@example.com").await).await,
        (StatusCode::FORBIDDEN, "forbidden".into())
    );
    let still = call(&app, Method::GET, "/v1/admin/users", &boss, None).await;
    assert_eq!(still.status(), StatusCode::OK);
    assert_eq!(
        revoke("customer@example.com").await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn disabling_voids_an_mfa_login_half_way_through() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss3@example.com", &["admin"], true).await;
    let enrolled = crate::mfa::enrol(&app, "mid@example.com").await;
    let mfa_token = crate::mfa::password_step(&app, "mid@example.com", "native").await;
    let id = user_id(&app, "mid@example.com").await;
    let body = json!({ "reason": "stolen password" });
    let path = format!("/v1/admin/users/{id}/disable");
    let disable = call(&app, Method::POST, &path, &boss, Some(body)).await;
    assert_eq!(disable.status(), StatusCode::NO_CONTENT);
    // The password step came before: the code opens nothing now.
    let at = enrolled.at + Duration::seconds(30);
    app.clock.pin(at);
    let code = oathtool(&enrolled.secret, at);
    let done = crate::mfa::mfa_step(&app, &mfa_token, ("code", &code)).await;
    assert_eq!(
        error_code(done).await,
        (StatusCode::UNAUTHORIZED, "invalid_mfa_token".into())
    );
    let opened = "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE u.email_key = 'mid@example.com' AND s.revoked_at IS NULL";
    assert_eq!(app.count(opened).await, 0);
}

#[tokio::test]
async fn disabling_ends_sessions_at_once_and_login_fails_like_a_wrong_password() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss2@example.com", &["admin"], true).await;
    app.create_user("victim@example.com").await;
    let (access, refresh) = app.login_native("victim@example.com").await;
    let id = user_id(&app, "victim@example.com").await;
    let disable = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{id}/disable"),
        &boss,
        Some(json!({ "reason": "fraud" })),
    )
    .await;
    assert_eq!(disable.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me(&access).await.status(), 401);
    assert_eq!(app.refresh_body(&refresh).await.status(), 401);
    let disabled = app.login("victim@example.com", PASSWORD, "native").await;
    let wrong = app
        .login("victim@example.com", "not the password at all", "native")
        .await;
    let (a, b) = (disabled.status(), wrong.status());
    assert_eq!(
        (a, disabled.text().await.unwrap()),
        (b, wrong.text().await.unwrap())
    );
    let detail: Value = get_json(&app, &format!("/v1/admin/users/{id}"), &boss).await;
    assert_eq!(detail["disabled"], true);
    assert_eq!(detail["active_sessions"], 0);
    assert_eq!(detail["email"], "victim@example.com");
    assert!(detail["last_login_at"].is_string());
    call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{id}/enable"),
        &boss,
        Some(json!({ "reason": "cleared" })),
    )
    .await;
    assert_eq!(
        app.login("victim@example.com", PASSWORD, "native")
            .await
            .status(),
        200
    );
    // Unknown and malformed ids: 404.
    for id in [Uuid::new_v4().to_string(), "garbage".into(), "1".into()] {
        let response = call(
            &app,
            Method::GET,
            &format!("/v1/admin/users/{id}"),
            &boss,
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        let response = call(
            &app,
            Method::POST,
            &format!("/v1/admin/users/{id}/disable"),
            &boss,
            Some(json!({ "reason": "x" })),
        )
        .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
    }
}

#[tokio::test]
async fn cursor_paging_returns_every_user_once_while_users_are_added() {
    let app = spawn_app().await;
    let boss = staff(&app, "pager@example.com", &["admin"], true).await;
    for i in 0..12 {
        app.create_user(&format!("paged{i}@example.com")).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=5&cursor={c}"),
            None => "/v1/admin/users?limit=5".into(),
        };
        let page: Value = get_json(&app, &path, &boss).await;
        for u in page["users"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
        // Signups while paging.
        app.create_user(&format!("late{added}@example.com")).await;
        added += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a user came twice");
    for i in 0..12 {
        assert!(seen.contains(&format!("paged{i}@example.com")));
    }
    let prefixed: Value = get_json(&app, "/v1/admin/users?email_prefix=PAGED1", &boss).await;
    let emails: Vec<&str> = prefixed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "{emails:?}"); // paged1, paged10, paged11
    for bad in ["limit=0", "limit=101", "cursor=%%%", "surprise=1"] {
        let response = call(
            &app,
            Method::GET,
            &format!("/v1/admin/users?{bad}"),
            &boss,
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn an_mfa_reset_removes_totp_and_the_audit_view_filters() {
    let sink = crate::helpers::smtp_sink::SmtpSink::start().await;
    let app = spawn_with(|s| mail_to(s, sink.addr)).await;
    let boss = staff(&app, "boss3@example.com", &["admin"], true).await;
    let _lost = staff(&app, "lostphone@example.com", &[], true).await;
    let id = user_id(&app, "lostphone@example.com").await;
    let reset = call(
        &app,
        Method::DELETE,
        &format!("/v1/admin/users/{id}/mfa"),
        &boss,
        Some(json!({ "reason": "lost phone, ticket 42" })),
    )
    .await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.login("lostphone@example.com", PASSWORD, "native")
            .await
            .json::<Value>()
            .await
            .unwrap()["mfa_required"],
        Value::Null
    );
    let mails = sink.wait_for("lostphone@example.com", 3).await;
    assert!(
        mails
            .iter()
            .any(|m| m.subject().contains("Two-step verification is off"))
    );
    let events: Value = get_json(
        &app,
        &format!("/v1/admin/audit?kind=mfa_reset_by_admin&user_id={id}"),
        &boss,
    )
    .await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["reason"], "lost phone, ticket 42");
    assert_eq!(events[0]["subject"], id.to_string());
    assert_eq!(events[0]["client_ip"], "127.0.0.1");
    let bad = call(
        &app,
        Method::GET,
        "/v1/admin/audit?user_id=nope",
        &boss,
        None,
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_admins_disabled_at_once_leave_one_enabled() {
    let app = spawn_app().await;
    for round in 0..5 {
        let (a, b) = (
            format!("a{round}@example.com"),
            format!("b{round}@example.com"),
        );
        for email in [&a, &b] {
            app.create_user(email).await;
            grant(&app, email, &["admin"]).await;
        }
        // Only these two are enabled admins (each round retires its
        // survivor at the end).
        let ids = [user_id(&app, &a).await, user_id(&app, &b).await];
        let disable = |id: Uuid| {
            let state = app.state.clone();
            tokio::spawn(async move {
                let ctx = authd::domain::audit::Context::cli();
                let caller = authd::domain::admin::authorize::AdminCaller::cli();
                authd::domain::admin::users::set_disabled(&state, &ctx, caller, (id, true), "race")
                    .await
                    .map_err(|e| e.code())
            })
        };
        let outcomes = [disable(ids[0]), disable(ids[1])];
        let mut refused = 0;
        for outcome in outcomes {
            match outcome.await.unwrap() {
                Ok(()) => {}
                Err(code) => {
                    assert_eq!(code, "last_admin");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 1, "round {round}: exactly one must be refused");
        let enabled_admins = app
            .count(
                "SELECT count(*) FROM user_roles r JOIN users u ON u.id = r.user_id
                 WHERE r.role = 'admin' AND u.disabled_at IS NULL",
            )
            .await;
        assert_eq!(enabled_admins, 1, "round {round}");
        // Retire this round's survivor through SQL (no last-admin rule
        // there), so the next round starts with none.
        sqlx::query("UPDATE users SET disabled_at = now() WHERE id = ANY($1)")
            .bind(&ids[..])
            .execute(&app.db)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_audit_view_opens_each_accounts_fields_but_not_a_deleted_ones() {
    let app = spawn_app().await;
    let boss = staff(&app, "boss4@example.com", &["auditor"], true).await;
    let mut owners = Vec::new();
    for name in ["kept1", "kept2", "gone"] {
        let email = format!("{name}@example.com");
        app.create_user(&email).await;
        let (access, _) = app.login_native(&email).await;
        owners.push((user_id(&app, &email).await, access));
    }
    let (gone, gone_access) = owners.pop().unwrap();
    let deleted = app
        .client
        .delete(app.url("/v1/me"))
        .bearer_auth(&gone_access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    let page: Value = get_json(&app, "/v1/admin/audit?kind=login_succeeded", &boss).await;
    let ip_of = |id: Uuid| {
        let events: Vec<&Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == id.to_string())
            .collect();
        assert_eq!(events.len(), 1, "{id}: {page}");
        events[0]["client_ip"].clone()
    };
    for (kept, _) in &owners {
        assert_eq!(ip_of(*kept), "127.0.0.1");
    }
    assert_eq!(ip_of(gone), Value::Null);
}
