//! Prometheus metrics on the admin listener. Each app has its own registry,
//! so exact values can be asserted although tests run concurrently.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;

/// `GET /metrics` on the admin listener: the content type and the body.
async fn scrape(app: &TestApp) -> (String, String) {
    let response = app
        .client
        .get(format!("http://{}/metrics", app.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

/// The value of one series, written exactly as in the exposition
/// (`name{label="value",...}`), or None when it is absent.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

#[track_caller]
fn assert_value(text: &str, series: &str, expected: f64) {
    assert_eq!(value(text, series), Some(expected), "{series} in\n{text}");
}

#[tokio::test]
async fn traffic_shows_up_in_the_metrics_with_route_templates_and_outcomes() {
    let app = spawn_with(|s| {
        s.rate_limit.login.burst = 4;
        s.rate_limit.login.replenish_ms = 60_000;
        // Any replay of a spent token is reuse.
        s.auth.refresh_reuse_leeway_secs = 0;
    })
    .await;
    let (_, before) = scrape(&app).await;
    assert_value(&before, r#"authd_logins_total{outcome="success"}"#, 0.0);

    app.create_user("metered@example.com").await;
    let (_, first_refresh) = app.login_native("metered@example.com").await;
    let wrong = app
        .login("metered@example.com", "not the password", "native")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let malformed = app
        .client
        .post(app.url("/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let unknown_field = app
        .post_json("/v1/auth/login", &json!({ "email": "a@example.com" }))
        .await;
    assert_eq!(unknown_field.status(), StatusCode::BAD_REQUEST);
    // The fifth login from this IP exceeds the burst of 4.
    let limited = app.login("metered@example.com", PASSWORD, "native").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);

    let refreshed = app.refresh_body(&first_refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let replayed = app.refresh_body(&first_refresh).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);

    // Raw paths must not become labels.
    for path in ["/metrics", "/v1/users/leaked@example.com"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let (content_type, text) = scrape(&app).await;
    assert_eq!(content_type, "text/plain; version=0.0.4");
    assert!(!text.contains("leaked"), "{text}");

    let logins = |outcome: &str| format!(r#"authd_logins_total{{outcome="{outcome}"}}"#);
    assert_value(&text, &logins("success"), 1.0);
    assert_value(&text, &logins("invalid_credentials"), 1.0);
    assert_value(&text, &logins("invalid_request"), 2.0);
    for outcome in ["email_not_verified", "throttled", "overloaded", "error"] {
        assert_value(&text, &logins(outcome), 0.0);
    }
    assert_value(&text, r#"authd_refreshes_total{outcome="success"}"#, 1.0);
    assert_value(&text, r#"authd_refreshes_total{outcome="invalid"}"#, 1.0);
    assert_value(&text, r#"authd_refreshes_total{outcome="error"}"#, 0.0);
    assert_value(&text, "authd_refresh_reuse_detected_total", 1.0);
    assert_value(&text, r#"authd_rate_limited_total{group="login"}"#, 1.0);
    for group in ["signup", "refresh"] {
        let series = format!(r#"authd_rate_limited_total{{group="{group}"}}"#);
        assert_value(&text, &series, 0.0);
    }

    let requests = |method: &str, route: &str, status: u16| {
        format!(
            r#"authd_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#
        )
    };
    assert_value(&text, &requests("POST", "/v1/auth/signup", 202), 1.0);
    assert_value(&text, &requests("POST", "/v1/auth/login", 200), 1.0);
    assert_value(&text, &requests("POST", "/v1/auth/login", 401), 1.0);
    assert_value(&text, &requests("POST", "/v1/auth/login", 400), 2.0);
    assert_value(&text, &requests("POST", "/v1/auth/login", 429), 1.0);
    assert_value(&text, &requests("POST", "/v1/auth/refresh", 200), 1.0);
    assert_value(&text, &requests("POST", "/v1/auth/refresh", 401), 1.0);
    assert_value(&text, &requests("GET", "unmatched", 404), 2.0);

    let login_latency = r#"{method="POST",route="/v1/auth/login""#;
    let count = format!("authd_http_request_duration_seconds_count{login_latency}}}");
    assert_value(&text, &count, 5.0);
    let inf = format!(r#"authd_http_request_duration_seconds_bucket{login_latency},le="+Inf"}}"#);
    assert_value(&text, &inf, 5.0);
    assert!(
        value(
            &text,
            &format!("authd_http_request_duration_seconds_sum{login_latency}}}")
        )
        .unwrap()
            > 0.0
    );

    // One hash at signup, one verification per checked password.
    assert_value(&text, "authd_argon2_wait_seconds_count", 3.0);
    assert_value(&text, r#"authd_argon2_wait_seconds_bucket{le="+Inf"}"#, 3.0);
    assert_value(&text, "authd_argon2_queue_depth", 0.0);
    assert_value(
        &text,
        r#"authd_argon2_rejected_total{reason="queue_full"}"#,
        0.0,
    );
    assert_value(
        &text,
        r#"authd_argon2_rejected_total{reason="waited_too_long"}"#,
        0.0,
    );
    let idle = value(&text, r#"authd_db_pool_connections{state="idle"}"#).unwrap();
    let in_use = value(&text, r#"authd_db_pool_connections{state="in_use"}"#).unwrap();
    assert!(
        idle >= 1.0 && idle + in_use <= 10.0,
        "idle={idle} in_use={in_use}"
    );
}

#[tokio::test]
async fn metrics_are_served_only_on_the_admin_listener() {
    let app = spawn_app().await;
    let public = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        error_code(public).await,
        (StatusCode::NOT_FOUND, "not_found".into())
    );
    // The admin listener serves nothing but GET /metrics.
    let admin = |path: &str| format!("http://{}{path}", app.admin_addr);
    let other = app.client.get(admin("/v1/me")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    let post = app.client.post(admin("/metrics")).send().await.unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Only the public request counts as API traffic; admin requests and
    // scrapes do not.
    let (_, text) = scrape(&app).await;
    assert!(!text.contains(r#"route="/metrics""#), "{text}");
    assert_value(
        &text,
        r#"authd_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        1.0,
    );
    assert_eq!(
        text.matches("authd_http_requests_total{").count(),
        1,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hashing_pool_refusals_are_counted() {
    let app = spawn_with(|s| {
        s.password.pool_threads = 1;
        s.password.pool_queue = 1;
    })
    .await;
    // Distinct accounts: checks of one account run one at a time anyway.
    for n in 0..12 {
        app.create_user(&format!("busy{n}@example.com")).await;
    }
    let attempts: Vec<_> = (0..12)
        .map(|n| {
            let client = app.client.clone();
            let url = app.url("/v1/auth/login");
            tokio::spawn(async move {
                let email = format!("busy{n}@example.com");
                let body = json!({ "email": email, "password": PASSWORD, "client_type": "native" });
                client.post(url).json(&body).send().await.unwrap().status()
            })
        })
        .collect();
    let mut shed = 0.0;
    for attempt in attempts {
        if attempt.await.unwrap() == StatusCode::SERVICE_UNAVAILABLE {
            shed += 1.0;
        }
    }
    assert!(shed >= 1.0);
    let (_, text) = scrape(&app).await;
    assert_value(&text, r#"authd_logins_total{outcome="overloaded"}"#, shed);
    let full = value(&text, r#"authd_argon2_rejected_total{reason="queue_full"}"#).unwrap();
    let late = value(
        &text,
        r#"authd_argon2_rejected_total{reason="waited_too_long"}"#,
    )
    .unwrap();
    // Refused unread by the shed layer, or by the pool itself.
    let unread = value(&text, r#"authd_argon2_rejected_total{reason="shed"}"#).unwrap();
    assert_eq!(full + late + unread, shed, "{text}");
}
