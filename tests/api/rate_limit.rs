//! Per-IP request limits and the per-account login backoff.
use crate::helpers::*;
use reqwest::StatusCode;
use time::Duration;

async fn login_from(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.login_with(client, email, password, "native").await
}

#[tokio::test]
async fn login_is_limited_per_client_ip_and_spoofed_forwarding_headers_do_not_help() {
    let app = spawn_with(|s| {
        s.rate_limit.login.burst = 3;
        s.rate_limit.login.replenish_ms = 60_000;
    })
    .await;
    let attacker = client_from("127.0.0.2");
    for _ in 0..3 {
        let response = login_from(&app, &attacker, "x@example.com", "wrong password here").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login_from(&app, &attacker, "x@example.com", "wrong password here").await;
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(
        error_code(limited).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // X-Forwarded-For from an untrusted peer is ignored.
    let spoofed = attacker
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", "203.0.113.77")
        .json(&serde_json::json!({ "email": "x@example.com", "password": "wrong password here" }))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client IP has its own bucket; other route groups are unaffected.
    let other = client_from("127.0.0.3");
    assert_eq!(
        login_from(&app, &other, "x@example.com", "wrong password here")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let signup = app
        .post_json_with(
            &attacker,
            "/v1/auth/signup",
            &serde_json::json!({ "email": "y@example.com", "password": PASSWORD }),
        )
        .await;
    assert_eq!(signup.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_ip_is_the_key() {
    let app = spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rate_limit.signup.burst = 2;
        s.rate_limit.signup.replenish_ms = 60_000;
    })
    .await;
    let signup_as = |ip: &'static str| {
        app.client
            .post(app.url("/v1/auth/signup"))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({ "email": "p@example.com", "password": "short" }))
            .send()
    };
    assert_eq!(
        signup_as("198.51.100.1").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        signup_as("198.51.100.1").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        signup_as("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        signup_as("198.51.100.2").await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn an_ipv6_client_gets_one_bucket_for_its_whole_64() {
    let app = spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.rate_limit.signup.burst = 2;
        s.rate_limit.signup.replenish_ms = 60_000;
    })
    .await;
    let signup_as = |ip: String| {
        app.client
            .post(app.url("/v1/auth/signup"))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({ "email": "p@example.com", "password": "short" }))
            .send()
    };
    // A fresh address of the same /64 for every request.
    for n in 1..=2 {
        let status = signup_as(format!("2001:db8:7:7::{n}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let status = signup_as("2001:db8:7:7:ffff::3".into())
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another /64 is another client.
    let status = signup_as("2001:db8:7:8::1".into()).await.unwrap().status();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // An entry the proxy wrote that is not an address stops the walk: the
    // address the client put left of it is not believed, so rotating it
    // gets nothing (the proxy itself is then the client).
    for n in 1..=2 {
        let status = signup_as(format!("198.51.100.{n}, unknown"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let status = signup_as("198.51.100.3, unknown".into())
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

fn backoff_settings(s: &mut authd::config::Settings) {
    s.throttle.ip_free_failures = 2;
    s.throttle.account_free_failures = 100;
    s.throttle.base_delay_secs = 60;
}

#[tokio::test]
async fn parallel_guesses_at_one_account_get_no_more_than_sequential_ones() {
    let app = spawn_with(|s| {
        backoff_settings(s);
        s.throttle.base_delay_secs = 900;
        s.rate_limit.login.burst = 1000;
    })
    .await;
    app.create_user("target@example.com").await;
    let mut guesses = tokio::task::JoinSet::new();
    for n in 0..20 {
        let (client, url) = (app.client.clone(), app.url("/v1/auth/login"));
        guesses.spawn(async move {
            let body = serde_json::json!({ "email": "target@example.com", "password": format!("guess number {n}") });
            client.post(url).json(&body).send().await.unwrap().status()
        });
    }
    let statuses = guesses.join_all().await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    // Each guess waits for the one before it, which the counters then
    // judge: no more than the free failures, plus the one that trips them.
    assert!((1..=3).contains(&checked), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE event_type = 'login_failed'")
            .await,
        i64::try_from(checked).unwrap()
    );
}

#[tokio::test]
async fn failed_logins_back_off_per_account_and_ip_without_locking_out_the_owner() {
    let app = spawn_with(backoff_settings).await;
    app.create_user("victim@example.com").await;
    let attacker = client_from("127.0.0.2");
    for _ in 0..3 {
        let response = login_from(&app, &attacker, "victim@example.com", "guessing guessing").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused from the attacker's IP...
    let blocked = login_from(&app, &attacker, "victim@example.com", PASSWORD).await;
    let retry_after: i64 = blocked.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        error_code(blocked).await,
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited".into())
    );
    // ...while the owner, elsewhere, logs in normally.
    let owner = client_from("127.0.0.3");
    assert_eq!(
        login_from(&app, &owner, "victim@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
    // The backoff doubles with each further failure once it expires.
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        login_from(&app, &attacker, "victim@example.com", "guess again now")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.clock.advance(Duration::seconds(61));
    assert_eq!(
        login_from(&app, &attacker, "victim@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    app.clock.advance(Duration::seconds(60));
    assert_eq!(
        login_from(&app, &attacker, "victim@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn unknown_emails_are_throttled_exactly_like_real_ones() {
    let app = spawn_with(backoff_settings).await;
    app.create_user("real@example.com").await;
    let attacker = client_from("127.0.0.2");
    let mut transcripts = Vec::new();
    for email in ["real@example.com", "ghost@example.com"] {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let response = login_from(&app, &attacker, email, "guessing guessing").await;
            statuses.push((response.status(), response.text().await.unwrap()));
        }
        transcripts.push(statuses);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    let codes: Vec<u16> = transcripts[0].iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(codes, vec![401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn an_account_wide_ceiling_stops_attacks_spread_over_many_ips() {
    let app = spawn_with(|s| {
        s.throttle.ip_free_failures = 100;
        s.throttle.account_free_failures = 3;
        s.throttle.base_delay_secs = 60;
    })
    .await;
    app.create_user("spread@example.com").await;
    for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        let response = login_from(
            &app,
            &client_from(ip),
            "spread@example.com",
            "guessing guessing",
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{ip}");
    }
    let fresh_ip = client_from("127.0.0.6");
    assert_eq!(
        login_from(&app, &fresh_ip, "spread@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Other accounts are unaffected.
    app.create_user("bystander@example.com").await;
    assert_eq!(
        login_from(&app, &fresh_ip, "bystander@example.com", PASSWORD)
            .await
            .status(),
        StatusCode::OK
    );
}
