//! Two authd processes on one database, each caching sessions (see
//! `domain::session_cache`): a revocation made through one is refused by
//! the other as soon as it is answered; one made straight in the database
//! is refused by both as soon as its notification arrives.
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::process::{Child, Command};

/// `authd serve` as a child process on the app's database and master key.
struct Replica {
    _child: Child,
    url: String,
    admin_addr: std::net::SocketAddr,
}

async fn another_process(app: &TestApp) -> Replica {
    let (port, admin_port) = (free_port(), free_port());
    let database = database_url(&app.db_name);
    let child = Command::new(env!("CARGO_BIN_EXE_authd"))
        .arg("serve")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DATABASE_URL")
        .env("AUTHD_PROFILE", "test")
        .env("AUTHD_DATABASE__URL", &database)
        .env("AUTHD_SECRETS__MASTER_KEY_FILE", &app.master_key_file)
        .env("AUTHD_HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("AUTHD_HTTP__ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("start authd serve");
    let replica = Replica {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
        admin_addr: ([127, 0, 0, 1], admin_port).into(),
    };
    for _ in 0..300 {
        let ready = app
            .client
            .get(format!("{}/readyz", replica.url))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == StatusCode::OK) {
            return replica;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the second process never became ready");
}

impl Replica {
    async fn me(&self, app: &TestApp, access: &str) -> StatusCode {
        app.client
            .get(format!("{}/v1/me", self.url))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `authd_session_checks_total{source="cache"}`.
    async fn cache_hits(&self) -> u64 {
        metrics_text(self.admin_addr)
            .await
            .lines()
            .find(|l| l.starts_with(r#"authd_session_checks_total{source="cache"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    /// Calls /v1/me until the answer comes from the replica's cache.
    async fn until_cached(&self, app: &TestApp, access: &str) {
        let before = self.cache_hits().await;
        for _ in 0..100 {
            assert_eq!(self.me(app, access).await, StatusCode::OK);
            if self.cache_hits().await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the second process never answered from its cache");
    }
}

#[tokio::test]
async fn a_revocation_anywhere_is_refused_by_another_process_at_once() {
    let app = spawn_app().await;
    let other = another_process(&app).await;
    app.create_user("two@example.com").await;

    for round in 0..10 {
        // Logout through this process; the other had the session cached.
        let (access, refresh) = app.login_native("two@example.com").await;
        other.until_cached(&app, &access).await;
        let logout = app
            .post_json("/v1/auth/logout", &json!({ "refresh_token": refresh }))
            .await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            other.me(&app, &access).await,
            StatusCode::UNAUTHORIZED,
            "round {round}"
        );
        assert_eq!(app.me(&access).await.status(), StatusCode::UNAUTHORIZED);
    }

    // Revoked in the database by someone else (an operator, a tool): both
    // processes hear of it.
    let (access, _) = app.login_native("two@example.com").await;
    other.until_cached(&app, &access).await;
    assert_eq!(app.me(&access).await.status(), StatusCode::OK);
    let sid = jwt_parts(&access).1["sid"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE sessions SET revoked_at = now() WHERE id = $1::uuid")
        .bind(&sid)
        .execute(&app.db)
        .await
        .unwrap();
    // Nobody here waits for the acknowledgements, so allow the
    // notification its milliseconds (far below the cache's 2 s lifetime).
    let mut statuses = (StatusCode::OK, StatusCode::OK);
    for _ in 0..20 {
        statuses = (
            other.me(&app, &access).await,
            app.me(&access).await.status(),
        );
        if statuses == (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        statuses,
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );

    // A role granted through authd (as the admin API does) shows at once.
    let (access, _) = app.login_native("two@example.com").await;
    other.until_cached(&app, &access).await;
    let shown: Value = other_me(&app, &other, &access).await;
    assert_eq!(shown["roles"], json!(["user"]));
    let user_id = jwt_parts(&access).1["sub"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ctx = authd::domain::audit::Context::cli();
    let caller = authd::domain::admin::authorize::AdminCaller::cli();
    let roles = ["admin".to_owned(), "user".to_owned()];
    authd::domain::admin::users::set_roles(&app.state, &ctx, caller, user_id, &roles, "test")
        .await
        .unwrap();
    let shown: Value = other_me(&app, &other, &access).await;
    assert_eq!(shown["roles"], json!(["admin", "user"]));
}

async fn other_me(app: &TestApp, other: &Replica, access: &str) -> Value {
    let response = app
        .client
        .get(format!("{}/v1/me", other.url))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}
