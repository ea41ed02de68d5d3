//! POST /v1/auth/refresh and /v1/auth/logout: rotation, reuse detection,
//! lifetimes, channels, CSRF origin checks.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use time::Duration;

async fn web_login(app: &TestApp, email: &str) -> String {
    app.create_user(email).await;
    let response = app.login(email, PASSWORD, "web").await;
    cookie_value(&refresh_set_cookie(&response).expect("cookie"))
}

fn assert_cleared(response: &reqwest::Response) {
    let set_cookie = refresh_set_cookie(response).expect("clearing cookie");
    assert_eq!(cookie_value(&set_cookie), "");
    assert!(
        cookie_attributes(&set_cookie).contains(&"Max-Age=0".to_owned()),
        "{set_cookie}"
    );
    assert!(cookie_attributes(&set_cookie).contains(&"Path=/".to_owned()));
}

#[tokio::test]
async fn cookie_refresh_rotates_through_the_cookie_only() {
    let app = spawn_with(|s| s.auth.refresh_reuse_leeway_secs = 0).await;
    let first = web_login(&app, "ivan@example.com").await;
    let response = app.refresh_cookie(&first).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = cookie_value(&refresh_set_cookie(&response).expect("new cookie"));
    assert_ne!(first, second);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(
        app.me(&str_field(&body, "access_token")).await.status(),
        StatusCode::OK
    );
    // The new token works once; the spent one does not.
    let third = app.refresh_cookie(&second).await;
    assert_eq!(third.status(), StatusCode::OK);
    assert_eq!(
        app.refresh_cookie(&first).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn body_refresh_rotates_through_the_body_only() {
    let app = spawn_app().await;
    app.create_user("judy@example.com").await;
    let (_, first) = app.login_native("judy@example.com").await;
    let response = app.refresh_body(&first).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.unwrap();
    let second = str_field(&body, "refresh_token");
    assert_ne!(first, second);
    assert_eq!(app.refresh_body(&second).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_spent_token_after_the_leeway_revokes_the_whole_session() {
    let app = spawn_app().await;
    app.create_user("mallory@example.com").await;
    let (_, stolen) = app.login_native("mallory@example.com").await;
    let body: Value = app.refresh_body(&stolen).await.json().await.unwrap();
    let legit = str_field(&body, "refresh_token");
    let access = str_field(&body, "access_token");
    app.clock.advance(Duration::seconds(11));
    let reuse = app.refresh_body(&stolen).await;
    assert_eq!(reuse.status(), StatusCode::UNAUTHORIZED);
    assert_cleared(&reuse);
    assert_eq!(error_code(reuse).await.1, "invalid_refresh_token");
    // The legitimate child dies with the family, and so do its access tokens.
    assert_eq!(
        app.refresh_body(&legit).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    let reason: String = sqlx::query_scalar("SELECT revoked_reason FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason, "refresh_token_reuse");
}

#[tokio::test]
async fn within_the_leeway_a_spent_token_yields_one_more_child_then_counts_as_reuse() {
    let app = spawn_app().await;
    app.create_user("tabs@example.com").await;
    let (_, token) = app.login_native("tabs@example.com").await;
    let tab_one = app.refresh_body(&token).await;
    app.clock.advance(Duration::seconds(5));
    let tab_two = app.refresh_body(&token).await;
    assert_eq!(
        (tab_one.status(), tab_two.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let one: Value = tab_one.json().await.unwrap();
    let two: Value = tab_two.json().await.unwrap();
    assert_ne!(one["refresh_token"], two["refresh_token"]);
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE revoked_at IS NULL")
            .await,
        1
    );
    // A third presentation, even inside the leeway, is reuse.
    let third = app.refresh_body(&token).await;
    assert_eq!(third.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.refresh_body(&str_field(&one, "refresh_token"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Presents `token` `n` times at once; the statuses, in no particular order.
async fn race_refreshes(app: &TestApp, token: &str, n: usize) -> Vec<StatusCode> {
    let attempts: Vec<_> = (0..n)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/v1/auth/refresh");
            let body = serde_json::json!({ "refresh_token": token });
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        let status = attempt.await.unwrap().unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
            "{status}"
        );
        statuses.push(status);
    }
    statuses
}

fn successes(statuses: &[StatusCode]) -> usize {
    statuses.iter().filter(|s| **s == StatusCode::OK).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_never_both_succeed() {
    let app = spawn_with(|s| s.auth.refresh_reuse_leeway_secs = 0).await;
    app.create_user("race@example.com").await;
    for _ in 0..3 {
        let (_, token) = app.login_native("race@example.com").await;
        let ok = successes(&race_refreshes(&app, &token, 8).await);
        assert!(ok <= 1, "{ok} concurrent refreshes succeeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_inside_the_leeway_mint_at_most_two_children() {
    let app = spawn_app().await;
    app.create_user("race2@example.com").await;
    let (_, token) = app.login_native("race2@example.com").await;
    let ok = successes(&race_refreshes(&app, &token, 8).await);
    assert!((1..=2).contains(&ok), "{ok}");
    let children = app
        .count("SELECT count(*) FROM refresh_tokens WHERE parent_hash IS NOT NULL")
        .await;
    assert!(children <= 2, "{children}");
}

#[tokio::test]
async fn sessions_expire_after_the_idle_lifetime() {
    let app = spawn_app().await;
    app.create_user("idle@example.com").await;
    let (_, token) = app.login_native("idle@example.com").await;
    app.clock.advance(Duration::days(29));
    let body: Value = app.refresh_body(&token).await.json().await.unwrap();
    let token = str_field(&body, "refresh_token");
    // Sliding: 29 more days after the last use is still fine...
    app.clock.advance(Duration::days(29));
    let body: Value = app.refresh_body(&token).await.json().await.unwrap();
    let token = str_field(&body, "refresh_token");
    // ...but 31 idle days is not.
    app.clock.advance(Duration::days(31));
    let expired = app.refresh_body(&token).await;
    assert_eq!(
        error_code(expired).await,
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into())
    );
}

#[tokio::test]
async fn sessions_end_at_the_absolute_lifetime_however_active() {
    let app = spawn_app().await;
    app.create_user("busy@example.com").await;
    let (_, mut token) = app.login_native("busy@example.com").await;
    for _ in 0..4 {
        app.clock.advance(Duration::days(20));
        let response = app.refresh_body(&token).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        token = str_field(&body, "refresh_token");
    }
    app.clock.advance(Duration::days(11));
    assert_eq!(
        app.refresh_body(&token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cookie_max_age_never_outlives_the_absolute_lifetime() {
    let app = spawn_with(|s| {
        s.auth.session_idle_ttl_secs = 1000;
        s.auth.session_absolute_ttl_secs = 1500;
    })
    .await;
    let token = web_login(&app, "maxage@example.com").await;
    app.clock.advance(Duration::seconds(900));
    let response = app.refresh_cookie(&token).await;
    let set_cookie = refresh_set_cookie(&response).unwrap();
    // 600 s remain, less the milliseconds the request took.
    let max_age = cookie_attributes(&set_cookie)
        .into_iter()
        .find_map(|a| a.strip_prefix("Max-Age=").map(str::to_owned));
    assert!(
        matches!(max_age.as_deref(), Some("599" | "600")),
        "{set_cookie}"
    );
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_refused_and_the_cookie_cleared() {
    let app = spawn_app().await;
    for token in ["", "garbage", &"A".repeat(43), &"x".repeat(512)] {
        let response = app.refresh_cookie(token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
        assert_cleared(&response);
    }
    // Longer than openapi.yaml's maxLength: a malformed request, by either
    // channel, and never looked up.
    let too_long = "x".repeat(513);
    for response in [
        app.refresh_cookie(&too_long).await,
        app.refresh_body(&too_long).await,
    ] {
        assert_eq!(
            error_code(response).await,
            (StatusCode::BAD_REQUEST, "invalid_request".into())
        );
    }
    let logout = app
        .post_json(
            "/v1/auth/logout",
            &serde_json::json!({ "refresh_token": too_long }),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::BAD_REQUEST);
    let none = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(none).await,
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into())
    );
    assert_eq!(
        app.refresh_body("nope").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn two_refresh_cookies_are_refused_whichever_comes_first() {
    let app = spawn_with(|s| s.auth.refresh_reuse_leeway_secs = 0).await;
    let victim = web_login(&app, "victim@example.com").await;
    let attacker = web_login(&app, "attacker@example.com").await;
    // A sibling subdomain planted its own cookie of the same name; the
    // browser sends both, in either order, in one header or two.
    let tossed = [
        vec![format!(
            "{REFRESH_COOKIE}={victim}; {REFRESH_COOKIE}={attacker}"
        )],
        vec![format!(
            "{REFRESH_COOKIE}={attacker}; {REFRESH_COOKIE}={victim}"
        )],
        vec![
            format!("{REFRESH_COOKIE}={victim}"),
            format!("{REFRESH_COOKIE}={attacker}"),
        ],
    ];
    for cookies in tossed {
        for path in ["/v1/auth/refresh", "/v1/auth/logout"] {
            let mut request = app.client.post(app.url(path));
            for cookie in &cookies {
                request = request.header("cookie", cookie);
            }
            let response = request.send().await.unwrap();
            assert_cleared(&response);
            assert_eq!(
                error_code(response).await,
                (StatusCode::UNAUTHORIZED, "invalid_refresh_token".into()),
                "{path} {cookies:?}"
            );
        }
    }
    // Also when the token comes in the body: the cookies make the request
    // suspect whichever channel carries the token.
    let with_body = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("cookie", format!("{REFRESH_COOKIE}=a; {REFRESH_COOKIE}=b"))
        .json(&serde_json::json!({ "refresh_token": victim }))
        .send()
        .await
        .unwrap();
    assert_eq!(with_body.status(), StatusCode::UNAUTHORIZED);
    // Neither session was used, rotated or ended.
    assert_eq!(app.refresh_cookie(&victim).await.status(), StatusCode::OK);
    assert_eq!(app.refresh_cookie(&attacker).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_session_clears_the_cookie_and_is_idempotent() {
    let app = spawn_app().await;
    let token = web_login(&app, "leaving@example.com").await;
    let response = app.refresh_cookie(&token).await;
    let token = cookie_value(&refresh_set_cookie(&response).unwrap());
    let access = str_field(&response.json::<Value>().await.unwrap(), "access_token");
    for _ in 0..2 {
        let logout = app
            .client
            .post(app.url("/v1/auth/logout"))
            .header("cookie", format!("{REFRESH_COOKIE}={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        assert_cleared(&logout);
    }
    assert_eq!(
        app.refresh_cookie(&token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    let reason: String = sqlx::query_scalar("SELECT revoked_reason FROM sessions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(reason, "logout");
    // No token at all, or an unknown one: still 204.
    let empty = app
        .client
        .post(app.url("/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    let native = app
        .post_json(
            "/v1/auth/logout",
            &serde_json::json!({ "refresh_token": "A".repeat(43) }),
        )
        .await;
    assert_eq!(native.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn logout_through_the_body_revokes_a_native_session() {
    let app = spawn_app().await;
    app.create_user("nat@example.com").await;
    let (_, token) = app.login_native("nat@example.com").await;
    let logout = app
        .post_json(
            "/v1/auth/logout",
            &serde_json::json!({ "refresh_token": token }),
        )
        .await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.refresh_body(&token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cookie_requests_from_foreign_origins_are_refused() {
    let app = spawn_app().await;
    let token = web_login(&app, "csrf@example.com").await;
    for path in ["/v1/auth/refresh", "/v1/auth/logout"] {
        let response = app
            .client
            .post(app.url(path))
            .header("origin", "https://evil.example.net")
            .header("cookie", format!("{REFRESH_COOKIE}={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (StatusCode::FORBIDDEN, "forbidden_origin".into()),
            "{path}"
        );
    }
    // The refused requests did nothing: the token is still unspent.
    let allowed = app
        .client
        .post(app.url("/v1/auth/refresh"))
        .header("origin", "https://app.example.com")
        .header("cookie", format!("{REFRESH_COOKIE}={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
}

#[tokio::test]
async fn cors_preflight_is_answered_only_for_allowed_origins() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/auth/refresh"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    // Exactly what the README's CORS paragraph lists.
    assert_eq!(
        ok.headers()["access-control-allow-methods"],
        "GET,POST,PUT,DELETE"
    );
    assert_eq!(
        ok.headers()["access-control-allow-headers"],
        "content-type,authorization,x-request-id,idempotency-key"
    );
    assert_eq!(ok.headers()["access-control-max-age"], "600");
    let evil = preflight("https://evil.example.net").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // Every route, the discovery documents included, answers CORS requests
    // with the same rules, and exposes these response headers.
    for path in ["/.well-known/jwks.json", "/v1/me"] {
        let response = app
            .client
            .get(app.url(path))
            .header("origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert_eq!(
            headers["access-control-expose-headers"],
            "x-request-id,retry-after,idempotent-replayed"
        );
    }
}
